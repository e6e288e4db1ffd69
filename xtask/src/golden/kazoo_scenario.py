"""kazoo scenario for `cargo xtask golden record` (run with Debian's /usr/bin/python3).

Talks to the recorder on stdout/stdin: prints `@step <label>` before each step and
`@drop` to have the proxy cut the connection, then waits for `ok` on stdin.
Every ZooKeeper error is expected here (the point is to record the error replies),
so exceptions from the calls are caught and printed, not raised.
"""
import os
import sys
import threading
import time

from kazoo.client import KazooClient, KazooState
from kazoo.security import make_digest_acl, OPEN_ACL_UNSAFE

ADDR = sys.argv[1]


def ctl(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != "ok":
        raise SystemExit("recorder went away")


def step(label):
    ctl("@step " + label)


def attempt(label, fn, *args, **kwargs):
    step(label)
    try:
        result = fn(*args, **kwargs)
        print("  %s -> %r" % (label, result))
        return result
    except Exception as e:  # noqa: BLE001 - every error reply is wanted
        print("  %s -> %s: %s" % (label, type(e).__name__, e))
        return None


class Watched:
    """Collects watch events so the scenario can wait for the notification frames."""

    def __init__(self):
        self.cond = threading.Condition()
        self.events = []

    def __call__(self, event):
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait(self, n, timeout=5.0):
        end = time.time() + timeout
        with self.cond:
            while len(self.events) < n and time.time() < end:
                self.cond.wait(0.1)
        return list(self.events)


def connected_waiter(zk):
    ev = threading.Event()

    def listener(state):
        if state == KazooState.CONNECTED:
            ev.set()
        elif state == KazooState.SUSPENDED:
            print("  session suspended")

    zk.add_listener(listener)
    return ev


def main():
    step("connect")
    zk = KazooClient(hosts=ADDR, timeout=4.0)
    zk.start(timeout=15)

    attempt("create persistent", zk.create, "/kazoo", b"root")
    attempt("create persistent", zk.create, "/kazoo/a", b"hello")
    attempt("create NodeExists", zk.create, "/kazoo/a", b"again")
    attempt("create ephemeral", zk.create, "/kazoo/eph", b"e", ephemeral=True)
    attempt("create NoChildrenForEphemerals", zk.create, "/kazoo/eph/child", b"x")
    attempt("create sequential", zk.create, "/kazoo/seq-", b"s", sequence=True)
    attempt("create ephemeral sequential", zk.create, "/kazoo/eseq-", b"s",
            ephemeral=True, sequence=True)
    attempt("create2 (include_data)", zk.create, "/kazoo/b", b"bee", include_data=True)
    attempt("create2 NodeExists", zk.create, "/kazoo/b", b"bee", include_data=True)
    attempt("create NoNode parent", zk.create, "/kazoo/missing/child", b"x")
    attempt("create empty data", zk.create, "/kazoo/empty")

    attempt("exists present", zk.exists, "/kazoo/a")
    attempt("exists absent", zk.exists, "/kazoo/nope")
    attempt("getData", zk.get, "/kazoo/a")
    attempt("getData NoNode", zk.get, "/kazoo/nope")
    attempt("getData empty", zk.get, "/kazoo/empty")
    attempt("setData", zk.set, "/kazoo/a", b"world")
    attempt("setData with version", zk.set, "/kazoo/a", b"again", version=1)
    attempt("setData BadVersion", zk.set, "/kazoo/a", b"bad", version=42)
    attempt("setData NoNode", zk.set, "/kazoo/nope", b"x")
    attempt("getChildren", zk.get_children, "/kazoo")
    attempt("getChildren2 (include_data)", zk.get_children, "/kazoo", include_data=True)
    attempt("getChildren NoNode", zk.get_children, "/kazoo/nope")
    attempt("sync", zk.sync, "/kazoo")

    attempt("getACL", zk.get_acls, "/kazoo/a")
    attempt("getACL NoNode", zk.get_acls, "/kazoo/nope")
    attempt("addauth digest", zk.add_auth, "digest", "alice:secret")
    alice = make_digest_acl("alice", "secret", all=True)
    attempt("create with digest ACL", zk.create, "/kazoo/secret", b"s", acl=[alice])
    attempt("setACL with version", zk.set_acls, "/kazoo/b", [alice] + list(OPEN_ACL_UNSAFE), version=0)
    attempt("setACL BadVersion", zk.set_acls, "/kazoo/b", list(OPEN_ACL_UNSAFE), version=7)
    attempt("getACL digest", zk.get_acls, "/kazoo/secret")

    attempt("delete with version", zk.delete, "/kazoo/empty", version=0)
    attempt("delete BadVersion", zk.delete, "/kazoo/a", version=99)
    attempt("delete NotEmpty", zk.delete, "/kazoo")
    attempt("delete NoNode", zk.delete, "/kazoo/nope")

    tx = zk.transaction()
    tx.create("/kazoo/tx", b"t")
    tx.check("/kazoo/a", 2)
    tx.set_data("/kazoo/a", b"tx", version=2)
    tx.create("/kazoo/tx/kid", b"k")
    tx.delete("/kazoo/tx/kid")
    attempt("multi ok (create, check, setData, create, delete)", tx.commit)

    tx = zk.transaction()
    tx.create("/kazoo/tx2", b"t")
    tx.check("/kazoo/a", 99)
    tx.set_data("/kazoo/a", b"never")
    tx.delete("/kazoo/b")
    attempt("multi fails on check (BadVersion)", tx.commit)

    tx = zk.transaction()
    tx.delete("/kazoo/tx")
    tx.create("/kazoo/a", b"dup")
    attempt("multi fails on create (NodeExists)", tx.commit)

    w = Watched()
    attempt("exists absent with watch", zk.exists, "/kazoo/w", watch=w)
    attempt("exists present with watch", zk.exists, "/kazoo/a", watch=w)
    attempt("getData with watch", zk.get, "/kazoo/b", watch=w)
    attempt("getChildren with watch", zk.get_children, "/kazoo", watch=w)
    attempt("getChildren2 with watch", zk.get_children, "/kazoo/b", watch=w, include_data=True)
    attempt("fire NodeCreated + NodeChildrenChanged", zk.create, "/kazoo/w", b"w")
    w.wait(2)
    attempt("fire NodeDataChanged", zk.set, "/kazoo/a", b"changed")
    w.wait(3)
    attempt("fire NodeChildrenChanged on /kazoo/b", zk.create, "/kazoo/b/kid", b"k")
    w.wait(4)
    attempt("delete child", zk.delete, "/kazoo/b/kid")
    attempt("getData with watch (before delete)", zk.get, "/kazoo/w", watch=w)
    attempt("fire NodeDeleted", zk.delete, "/kazoo/w")
    w.wait(5)

    # Second session without auth: NoAuth on the digest-protected node.
    step("second session connect")
    other = KazooClient(hosts=ADDR, timeout=4.0)
    other.start(timeout=15)
    attempt("getData NoAuth", other.get, "/kazoo/secret")
    attempt("setData NoAuth", other.set, "/kazoo/secret", b"x")
    attempt("setACL NoAuth", other.set_acls, "/kazoo/secret", list(OPEN_ACL_UNSAFE))
    attempt("getACL without auth", other.get_acls, "/kazoo/secret")
    attempt("second session close", other.stop)
    other.close()

    step("idle for pings")
    time.sleep(4.0)

    # Reconnect within the session: kazoo re-sends its auth (kazoo 2.8 has no setWatches).
    w2 = Watched()
    attempt("watch before reconnect", zk.exists, "/kazoo/after", watch=w2)
    ev = connected_waiter(zk)
    step("proxy drops connection; reconnect with session id + auth")
    ctl("@drop")
    time.sleep(0.2)
    if not ev.wait(20):
        print("  did not reconnect")
    time.sleep(0.5)
    attempt("create after reconnect", zk.create, "/kazoo/after", b"x")
    w2.wait(1, 2.0)

    attempt("addauth bad scheme AuthFailed", zk.add_auth, "bogus", "whatever")
    time.sleep(1.0)
    step("close session")
    zk.stop()
    zk.close()

    sasl()
    reconfig()


def reconfig():
    """kazoo 2.8 does not know error -123: its connection thread dies on the reply, so
    this runs last, on a throwaway session, and the process exits hard afterwards."""
    step("reconfig session connect")
    zk = KazooClient(hosts=ADDR, timeout=4.0)
    zk.start(timeout=15)
    step("reconfig ReconfigDisabled")
    try:
        zk.reconfig_async("server.5=127.0.0.1:2888:3888;2181", None, None, -1).get(timeout=3)
    except Exception as e:  # noqa: BLE001
        print("  reconfig -> %s: %s" % (type(e).__name__, e))
    step("done")
    sys.stdout.flush()
    os._exit(0)


def sasl():
    """SASL DIGEST-MD5 (opcode 102), against the JAAS user the recorder configured."""
    step("sasl session connect (DIGEST-MD5)")
    try:
        zk = KazooClient(hosts=ADDR, timeout=4.0, sasl_options={
            "mechanism": "DIGEST-MD5", "username": "bob", "password": "bobsecret"})
        zk.start(timeout=15)
    except Exception as e:  # noqa: BLE001
        print("  sasl connect failed: %s: %s" % (type(e).__name__, e))
        return
    attempt("sasl session getChildren", zk.get_children, "/kazoo")
    step("sasl session close")
    zk.stop()
    zk.close()


if __name__ == "__main__":
    main()
