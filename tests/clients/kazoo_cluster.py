"""kazoo (Debian's python3-kazoo 2.8) against an ensemble, failing over.

Usage: /usr/bin/python3 kazoo_cluster.py SCENARIO ARGS...

The Rust test (tests/tests/cluster.rs) is the nemesis. This script asks it for faults
on stdout and waits for its answer on stdin:

    KILL <client port>      kill -9 the server listening there; answered DONE
    RESTART <client port>   start it again and wait until it serves; answered DONE

It reports every write the servers acknowledged as `ACKED <path> <data>` (so the test
can check that none is lost), measurements as `RESULT key=value`, and `OK <scenario>`
at the end. A difference from what a kazoo user must see exits non-zero with a clear
message. The same scenarios pass against Apache ZooKeeper; that is what proves them.
"""

import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError
from kazoo.protocol.states import Callback, EventType, KazooState
from kazoo.retry import KazooRetry

WAIT_S = 30.0


class Failed(Exception):
    pass


def fail(msg):
    raise Failed(msg)


def eq(actual, expected, what):
    if actual != expected:
        fail("%s: expected %r, got %r" % (what, expected, actual))


def check(cond, what):
    if not cond:
        fail(what)


def say(line):
    print(line, flush=True)


def result(key, value):
    say("RESULT %s=%s" % (key, value))


def acked(path, data):
    say("ACKED %s %s" % (path, data.decode()))


def nemesis(command):
    """Asks the test for a fault and waits until it is done."""
    say(command)
    answer = sys.stdin.readline().strip()
    eq(answer, "DONE", "the test's answer to %r" % command)


def wait_until(cond, what, timeout=WAIT_S):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.02)
    fail("timed out after %ss waiting for %s" % (timeout, what))


# Reconnect fast: the session timeout is 10 s and an election takes seconds.
RETRY = {"max_tries": -1, "delay": 0.1, "backoff": 1.5, "max_delay": 0.5}


def client(hosts, **kwargs):
    kwargs.setdefault("timeout", 10.0)
    kwargs.setdefault("connection_retry", RETRY)
    zk = KazooClient(hosts=hosts, **kwargs)
    zk.start(timeout=WAIT_S)
    return zk


def shut(*clients):
    for c in clients:
        c.stop()
        c.close()


def server_port(zk):
    """The client port of the server this client is connected to."""
    return zk._connection._socket.getpeername()[1]


def retrying(fn, *args, **kwargs):
    """Runs fn, retrying connection losses (a client may have reconnected to a
    server that is still to learn of the new leader) for at most WAIT_S."""
    return KazooRetry(max_tries=-1, delay=0.1, max_delay=0.5, deadline=WAIT_S)(
        fn, *args, **kwargs)


def create_retrying(zk, path, data):
    """A create retried on connection loss; NodeExists then means an earlier
    attempt whose answer was lost did it, and the node must hold `data`."""
    try:
        retrying(zk.create, path, data)
    except NodeExistsError:
        eq(retrying(zk.get, path)[0], data, "%s after a retried create" % path)
    acked(path, data)


class Recorder(object):
    """A watch function that records (type, path) of every event it gets."""

    def __init__(self):
        self.events = []
        self.lock = threading.Lock()

    def __call__(self, event):
        with self.lock:
            self.events.append((event.type, event.path))

    def get(self):
        with self.lock:
            return list(self.events)


def flush_callbacks(zk):
    done = threading.Event()
    zk.handler.dispatch_callback(Callback("watch", done.set, ()))
    check(done.wait(WAIT_S), "kazoo's callback queue did not drain")


def move(zk, name, all_hosts):
    """One round: `zk` holds an ephemeral and watches on its server; the test kills
    that server; the client must come back on another within its session timeout
    with the same session, its ephemeral and its watches."""
    base = "/kf/" + name
    sid = zk.client_id[0]
    port = server_port(zk)
    zk.create(base, b"v0")
    acked(base, b"v0")
    zk.create(base + "/eph", b"e", ephemeral=True)
    # kazoo 2.8 sends no setWatches on a reconnect: its one-shot watches get a NONE
    # event when the connection drops, and its recipes read and watch again.
    one_shot = Recorder()
    zk.get(base, watch=one_shot)
    recipe = []
    zk.DataWatch(base, lambda d, s: recipe.append(d))
    eq(recipe, [b"v0"], "DataWatch first call")
    kids = []
    zk.ChildrenWatch(base, lambda c: kids.append(sorted(c)))
    eq(kids, [["eph"]], "ChildrenWatch first call")
    states = []
    zk.add_listener(lambda s: states.append(s))

    nemesis("KILL %d" % port)
    killed = time.time()
    wait_until(lambda: KazooState.CONNECTED in states,
               "%s to reconnect after its server died (states %r)" % (name, states))
    took = time.time() - killed
    eq(states[0], KazooState.SUSPENDED, "suspended first")
    check(KazooState.LOST not in states, "the session was lost: %r" % states)
    # The first reconnect may land on a server that has not yet noticed the leader's
    # death and drops the connection a moment later (kazoo's client_id is None while
    # it is down): read the session and server once it is connected again.
    live = []

    def connected_now():
        cid = zk.client_id
        try:
            port_now = server_port(zk)
        except (AttributeError, OSError):
            return False
        if cid is None:
            return False
        live[:] = [cid[0], port_now]
        return True

    wait_until(connected_now, "%s to be connected after the move" % name)
    check(KazooState.LOST not in states, "the session was lost: %r" % states)
    eq(live[0], sid, "the same session after the move")
    moved_to = live[1]
    check(moved_to != port, "still on the killed server's port %d" % port)
    result("%s_reconnect_ms" % name, int(took * 1000))
    result("%s_moved" % name, "%d->%d" % (port, moved_to))

    others = ",".join(h for h in all_hosts.split(",") if not h.endswith(":%d" % port))
    chk = client(others)
    try:
        st = retrying(chk.exists, base + "/eph")
        check(st is not None, "the ephemeral is gone after the move")
        eq(st.ephemeralOwner, sid, "the ephemeral's owner")
        # The watches set on the dead server fire for changes after the move.
        retrying(chk.set, base, b"v1")
        acked(base, b"v1")
        create_retrying(chk, base + "/child", b"c")
        wait_until(lambda: b"v1" in recipe, "the DataWatch to see v1 (%r)" % recipe)
        wait_until(lambda: ["child", "eph"] in kids,
                   "the ChildrenWatch to see the new child (%r)" % kids)
        flush_callbacks(zk)
        eq(one_shot.get(), [(EventType.NONE, None)], "kazoo's one-shot watch")
        # And the client goes on writing and reading.
        create_retrying(zk, base + "/after", b"after")
        eq(retrying(zk.get, base + "/after")[0], b"after",
           "read back through the new server")
        eq(sorted(retrying(zk.get_children, base)), ["after", "child", "eph"],
           "children")
    finally:
        shut(chk)
    nemesis("RESTART %d" % port)


def scenario_failover(leader_first, follower_first, all_hosts):
    """Two clients that do not shuffle their hosts: one starts on a follower, the
    other on the leader. Each in turn has its server killed -9."""
    on_follower = client(follower_first, randomize_hosts=False)
    on_leader = client(leader_first, randomize_hosts=False)
    try:
        eq("127.0.0.1:%d" % server_port(on_leader), leader_first.split(",")[0],
           "the first client's server")
        eq("127.0.0.1:%d" % server_port(on_follower), follower_first.split(",")[0],
           "the second client's server")
        on_leader.create("/kf", b"kf")
        acked("/kf", b"kf")
        move(on_follower, "follower", all_hosts)
        move(on_leader, "leader", all_hosts)
        # Both sessions are still whole: ephemerals there, writes go through.
        chk = client(all_hosts)
        try:
            for zk, name in ((on_follower, "follower"), (on_leader, "leader")):
                st = retrying(chk.exists, "/kf/%s/eph" % name)
                check(st is not None and st.ephemeralOwner == zk.client_id[0],
                      "%s's ephemeral at the end: %r" % (name, st))
                retrying(zk.set, "/kf/" + name, b"end")
                acked("/kf/" + name, b"end")
            # Closing a moved session removes its ephemerals.
            sid = on_leader.client_id[0]
            shut(on_leader)
            on_leader = None
            wait_until(lambda: retrying(chk.exists, "/kf/leader/eph") is None,
                       "the closed session's ephemeral (0x%x) to go" % sid)
        finally:
            shut(chk)
    finally:
        shut(*[c for c in (on_follower, on_leader) if c is not None])


SCENARIOS = {
    "failover": scenario_failover,
}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in SCENARIOS:
        print("usage: kazoo_cluster.py {%s} ARGS..." % "|".join(SCENARIOS),
              file=sys.stderr)
        return 2
    name = sys.argv[1]
    try:
        SCENARIOS[name](*sys.argv[2:])
    except Failed as e:
        say("FAILED %s: %s" % (name, e))
        return 1
    say("OK %s" % name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
