"""kazoo (Debian's python3-kazoo 2.8) scenarios against a ZooKeeper-compatible server.

Usage: /usr/bin/python3 kazoo_scenarios.py HOSTS SCENARIO

Each scenario asserts the exact results a kazoo user observes and exits non-zero
with a clear message at the first difference. It prints `RESULT key=value` lines
that the Rust test (tests/tests/kazoo.rs) checks too, and `OK <scenario>` at the end.
The same scenarios pass against Apache ZooKeeper; that is what proves them.

Waiting without sleeping: ZooKeeper sends a client its watch events before the reply
to any later request of that client, and kazoo runs watch callbacks in order on one
worker thread. So after a round trip (`sync_and_flush`), every event the server sent
so far has been handled, and a missing event is really missing.
"""

import base64
import hashlib
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import namedtuple

from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    BadArgumentsError,
    BadVersionError,
    ConnectionLoss,
    InvalidACLError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
    UnimplementedError,
)
from kazoo.protocol.serialization import SASL, Connect, Watch, write_string
from kazoo.protocol.states import Callback, EventType, KazooState, KeeperState
from kazoo.recipe.cache import TreeCache, TreeEvent
from kazoo.security import (
    ACL,
    Id,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    make_digest_acl,
    make_digest_acl_credential,
)

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


def result(key, value):
    print("RESULT %s=%s" % (key, value), flush=True)


def raises(exc_type, fn, *args, **kwargs):
    """Calls fn and requires exactly the exception type exc_type."""
    try:
        value = fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - we compare the type below
        if type(e) is not exc_type:
            fail("%s%r: expected %s, got %s: %s" % (
                getattr(fn, "__name__", fn), args, exc_type.__name__,
                type(e).__name__, e))
        return e
    fail("%s%r: expected %s, returned %r" % (
        getattr(fn, "__name__", fn), args, exc_type.__name__, value))


def wait_until(cond, what, timeout=WAIT_S):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.02)
    fail("timed out after %ss waiting for %s" % (timeout, what))


def shut(*clients):
    """Stops and closes each client (kazoo needs both to release its threads)."""
    for c in clients:
        c.stop()
        c.close()


def client(hosts, **kwargs):
    kwargs.setdefault("timeout", 10.0)
    zk = KazooClient(hosts=hosts, **kwargs)
    zk.start(timeout=WAIT_S)
    return zk


def flush_callbacks(zk):
    """Returns once every watch callback kazoo queued so far has run."""
    done = threading.Event()
    zk.handler.dispatch_callback(Callback("watch", done.set, ()))
    check(done.wait(WAIT_S), "kazoo's callback queue did not drain")


def sync_and_flush(zk):
    zk.sync("/")
    flush_callbacks(zk)


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


def stat_dict(stat):
    return dict(
        version=stat.version, cversion=stat.cversion, aversion=stat.aversion,
        numChildren=stat.numChildren, dataLength=stat.dataLength,
        ephemeralOwner=stat.ephemeralOwner)


# ---------------------------------------------------------------------------------
# CRUD


def scenario_crud(hosts):
    zk = client(hosts)
    try:
        check(zk.exists("/crud") is None, "/crud exists before the test")
        eq(zk.create("/crud", b"root"), "/crud", "create returns the path")
        z_create = zk.last_zxid
        data, st = zk.get("/crud")
        eq(data, b"root", "data after create")
        eq(stat_dict(st), dict(version=0, cversion=0, aversion=0, numChildren=0,
                               dataLength=4, ephemeralOwner=0), "Stat after create")
        eq(st.czxid, z_create, "czxid is the create's zxid (reply header zxid)")
        eq(st.mzxid, st.czxid, "mzxid == czxid after create")
        eq(st.pzxid, st.czxid, "pzxid == czxid after create")
        eq(st.mtime, st.ctime, "mtime == ctime after create")
        check(st.ctime > 1500000000000, "ctime is wall-clock milliseconds: %r" % st.ctime)

        # set with the right and a wrong version
        st1 = zk.set("/crud", b"v1", version=0)
        z_set = zk.last_zxid
        eq((st1.version, st1.dataLength, st1.mzxid, st1.czxid),
           (1, 2, z_set, st.czxid), "Stat from set (version, dataLength, mzxid, czxid)")
        check(st1.mzxid > st1.czxid, "mzxid grows on set")
        eq(st1.pzxid, st.czxid, "set does not change pzxid")
        check(st1.mtime >= st.mtime, "mtime does not go back")
        raises(BadVersionError, zk.set, "/crud", b"x", version=0)
        st2 = zk.set("/crud", b"v2")  # -1: any version
        eq(st2.version, 2, "version after an unconditional set")
        eq(zk.get("/crud")[0], b"v2", "data after set")

        # errors
        raises(NoNodeError, zk.get, "/crud/none")
        raises(NoNodeError, zk.set, "/crud/none", b"")
        raises(NoNodeError, zk.delete, "/crud/none")
        raises(NoNodeError, zk.create, "/crud/none/child")
        raises(NoNodeError, zk.get_children, "/crud/none")
        raises(NodeExistsError, zk.create, "/crud")
        eq(zk.exists("/crud/none"), None, "exists on a missing node")

        # children, cversion, pzxid
        for name in ["b", "a", "c"]:
            zk.create("/crud/" + name, name.encode())
        z_last_child = zk.last_zxid
        st = zk.exists("/crud")
        eq((st.numChildren, st.cversion, st.version), (3, 3, 2),
           "parent (numChildren, cversion, version) after 3 creates")
        eq(st.pzxid, z_last_child, "parent pzxid is the last child create's zxid")
        eq(st.mzxid, st2.mzxid, "creating children does not change the parent's mzxid")
        eq(sorted(zk.get_children("/crud")), ["a", "b", "c"], "get_children")
        children, st_c = zk.get_children("/crud", include_data=True)
        eq(sorted(children), ["a", "b", "c"], "get_children include_data children")
        eq(stat_dict(st_c), stat_dict(st), "getChildren2's Stat equals exists' Stat")
        eq(st_c.pzxid, st.pzxid, "getChildren2's pzxid")
        eq(zk.get_children("/crud/a"), [], "children of a leaf")

        raises(NotEmptyError, zk.delete, "/crud")
        a = zk.exists("/crud/a")
        raises(BadVersionError, zk.delete, "/crud/a", version=a.version + 1)
        zk.delete("/crud/a", version=a.version)
        z_delete = zk.last_zxid
        st = zk.exists("/crud")
        eq((st.numChildren, st.cversion), (2, 4), "parent after a child delete")
        eq(st.pzxid, z_delete, "pzxid is the child delete's zxid")
        eq(zk.exists("/crud/a"), None, "deleted node is gone")

        # makepath and ensure_path
        eq(zk.create("/crud/deep/er/node", b"d", makepath=True), "/crud/deep/er/node",
           "create makepath")
        eq(zk.get("/crud/deep/er")[0], b"", "makepath intermediate nodes are empty")
        eq(zk.ensure_path("/crud/ens/ured"), "/crud/ens/ured", "ensure_path")
        check(zk.exists("/crud/ens/ured") is not None, "ensure_path created the node")
        zk.ensure_path("/crud/ens/ured")  # idempotent

        # recursive delete (kazoo walks the tree with get_children + delete)
        zk.delete("/crud/deep", recursive=True)
        eq(zk.exists("/crud/deep"), None, "recursive delete")

        # binary data and empty data
        zk.create("/crud/bin", bytes(range(256)))
        eq(zk.get("/crud/bin")[0], bytes(range(256)), "binary data round trip")
        zk.set("/crud/bin", b"")
        d, s = zk.get("/crud/bin")
        eq((d, s.dataLength), (b"", 0), "empty data")

        # ephemeral owner
        zk.create("/crud/eph", b"e", ephemeral=True)
        st = zk.exists("/crud/eph")
        eq(st.ephemeralOwner, zk.client_id[0], "ephemeralOwner is the session id")
        result("session_id_nonzero", zk.client_id[0] != 0)

        # system nodes
        check(zk.exists("/zookeeper") is not None, "/zookeeper exists")
        check("zookeeper" in zk.get_children("/"), "/ lists zookeeper")
    finally:
        shut(zk)


# ---------------------------------------------------------------------------------
# create2, sequential, ephemeral


def scenario_nodes(hosts):
    zk = client(hosts)
    other = client(hosts)
    try:
        path, st = zk.create("/n2", b"abc", include_data=True)
        eq(path, "/n2", "create2 path")
        eq(stat_dict(st), dict(version=0, cversion=0, aversion=0, numChildren=0,
                               dataLength=3, ephemeralOwner=0), "create2 Stat")
        eq(st.czxid, zk.last_zxid, "create2 Stat czxid is the create's zxid")
        eq(st, zk.exists("/n2"), "create2 Stat equals exists' Stat")
        path, st = zk.create("/n2/e", b"", ephemeral=True, include_data=True)
        eq(st.ephemeralOwner, zk.client_id[0], "create2 ephemeral owner")

        # Sequential names count the parent's child creates: ZooKeeper bumps cversion
        # on a child delete too, but the next sequence number does not move.
        zk.create("/seq")
        names = [zk.create("/seq/n-", b"", sequence=True) for _ in range(3)]
        eq(names, ["/seq/n-0000000000", "/seq/n-0000000001", "/seq/n-0000000002"],
           "first sequential names")
        zk.delete("/seq/n-0000000001")
        zk.create("/seq/plain")  # a non-sequential child bumps the counter too
        more = [zk.create("/seq/n-", b"", sequence=True) for _ in range(2)]
        eq(zk.exists("/seq").cversion, 7, "cversion after 6 creates and 1 delete")
        eq(more, ["/seq/n-0000000004", "/seq/n-0000000005"],
           "sequential names after a delete and a plain create")
        eph = zk.create("/seq/e-", b"", sequence=True, ephemeral=True)
        eq(eph, "/seq/e-0000000006", "ephemeral sequential name")
        p, st = zk.create("/seq/", b"", sequence=True, include_data=True)
        eq(p, "/seq/0000000007", "sequential name with an empty prefix (create2)")
        eq(sorted(zk.get_children("/seq")),
           ["0000000007", "e-0000000006", "n-0000000000", "n-0000000002",
            "n-0000000004", "n-0000000005", "plain"], "children of /seq")
        eq(zk.exists("/seq").cversion, 9, "parent cversion after 8 creates and 1 delete")
        result("seq_names", ",".join(names + more + [eph, p]))

        # ephemerals cannot have children
        zk.create("/eph", b"", ephemeral=True)
        raises(NoChildrenForEphemeralsError, zk.create, "/eph/child")
        raises(NoChildrenForEphemeralsError, zk.create, "/eph/child", ephemeral=True)

        # ephemerals vanish when the session closes, as another client sees
        rec = Recorder()
        check(other.exists("/eph", watch=rec) is not None, "other client sees /eph")
        check(other.exists("/n2/e") is not None, "other client sees /n2/e")
        zk.stop()  # returns after the server answered closeSession
        zk.close()
        eq(other.exists("/eph"), None, "/eph as soon as the owner's close returned")
        wait_until(lambda: rec.get() != [], "DELETED event for /eph")
        eq(rec.get(), [(EventType.DELETED, "/eph")], "event when the owner closed")
        eq(other.exists("/eph"), None, "/eph after its session closed")
        eq(other.exists("/n2/e"), None, "/n2/e after its session closed")
        eq(other.exists("/seq/e-0000000006"), None, "ephemeral sequential after close")
        eq(other.exists("/n2").numChildren, 0, "/n2 numChildren after close")
        eq(sorted(other.get_children("/seq")),
           ["0000000007", "n-0000000000", "n-0000000002", "n-0000000004",
            "n-0000000005", "plain"], "/seq after its ephemeral vanished")
    finally:
        shut(zk, other)


# ---------------------------------------------------------------------------------
# Watches


def scenario_watches(hosts):
    a = client(hosts)
    b = client(hosts)
    try:
        a.create("/w", b"0")
        a.create("/w/kid", b"")

        # data watch fires once with CHANGED
        rec = Recorder()
        a.get("/w", watch=rec)
        b.set("/w", b"1")
        sync_and_flush(a)
        eq(rec.get(), [(EventType.CHANGED, "/w")], "data watch after one set")
        b.set("/w", b"2")
        sync_and_flush(a)
        eq(rec.get(), [(EventType.CHANGED, "/w")], "one-shot: no event for the second set")

        # the same watcher registered twice is one watch (kazoo keeps a set)
        rec = Recorder()
        a.get("/w", watch=rec)
        a.exists("/w", watch=rec)
        b.set("/w", b"3")
        sync_and_flush(a)
        eq(rec.get(), [(EventType.CHANGED, "/w")], "get+exists with one watcher")

        # child watch
        rec = Recorder()
        a.get_children("/w", watch=rec)
        b.set("/w", b"4")  # data changes do not fire child watches
        b.create("/w/new")
        sync_and_flush(a)
        eq(rec.get(), [(EventType.CHILD, "/w")], "child watch after a create")
        b.delete("/w/new")
        sync_and_flush(a)
        eq(rec.get(), [(EventType.CHILD, "/w")], "child watch is one-shot")
        # creating a grandchild is not a child change of /w
        rec = Recorder()
        a.get_children("/w", watch=rec, include_data=True)
        b.create("/w/kid/grand")
        b.set("/w/kid", b"x")
        sync_and_flush(a)
        eq(rec.get(), [], "grandchild and child data changes fire no child watch")
        b.delete("/w/kid/grand")
        b.delete("/w/kid")
        sync_and_flush(a)
        eq(rec.get(), [(EventType.CHILD, "/w")], "getChildren2 watch on a child delete")

        # exists watch on a missing node fires CREATED
        rec = Recorder()
        eq(a.exists("/w/later", watch=rec), None, "exists on a missing node")
        b.create("/w/later", b"L")
        sync_and_flush(a)
        eq(rec.get(), [(EventType.CREATED, "/w/later")], "exists watch -> CREATED")

        # delete fires DELETED on data and child watchers
        data_rec, child_rec, exists_rec = Recorder(), Recorder(), Recorder()
        a.get("/w/later", watch=data_rec)
        a.get_children("/w/later", watch=child_rec)
        parent_rec = Recorder()
        a.get_children("/w", watch=parent_rec)
        b.delete("/w/later")
        sync_and_flush(a)
        eq(data_rec.get(), [(EventType.DELETED, "/w/later")], "data watcher on delete")
        eq(child_rec.get(), [(EventType.DELETED, "/w/later")], "child watcher on delete")
        eq(parent_rec.get(), [(EventType.CHILD, "/w")], "parent child watcher on delete")
        eq(a.exists("/w/later", watch=exists_rec), None, "gone")

        # setting data on a node with only an exists watch from NoNode: no event
        # until it is created
        b.create("/w/later")
        b.set("/w/later", b"again")
        sync_and_flush(a)
        eq(exists_rec.get(), [(EventType.CREATED, "/w/later")],
           "exists watch fires CREATED once, not CHANGED for the next set")

        # ordering: A's watch event arrives before the reply to A's next request,
        # as kazoo's connection thread sees them on the wire.
        wire = []
        conn = a._connection
        orig_event, orig_response = conn._read_watch_event, conn._read_response

        def log_event(buffer, offset):
            wire.append("event")
            return orig_event(buffer, offset)

        def log_response(header, buffer, offset):
            wire.append("reply:%d" % header.xid)
            return orig_response(header, buffer, offset)

        conn._read_watch_event, conn._read_response = log_event, log_response
        try:
            seen_at_callback = []
            rec = Recorder()

            def watcher(event):
                rec(event)
                seen_at_callback.append(list(wire))

            a.get("/w", watch=watcher)
            wire_before = len(wire)
            b.set("/w", b"ordered")
            data, _ = a.get("/w")
            eq(data, b"ordered", "A reads B's write after B's set returned")
            got = wire[wire_before:]
            eq(got, ["event", "reply:%d" % a._connection._xid],
               "A's wire after B's set: the event, then the get's reply")
            flush_callbacks(a)
            eq(rec.get(), [(EventType.CHANGED, "/w")], "ordered event")
        finally:
            conn._read_watch_event, conn._read_response = orig_event, orig_response

        # DataWatch and ChildrenWatch recipes
        data_calls, child_calls = [], []

        @a.DataWatch("/w/dw")
        def on_data(data, stat):
            data_calls.append((data, stat.version if stat else None))

        @a.ChildrenWatch("/w")
        def on_children(children):
            child_calls.append(sorted(children))

        eq(data_calls, [(None, None)], "DataWatch first call on a missing node")
        eq(child_calls, [["later"]], "ChildrenWatch first call")
        b.create("/w/dw", b"d0")
        wait_until(lambda: len(data_calls) == 2 and len(child_calls) == 2,
                   "recipes to see the create (data %r, children %r)" % (
                       data_calls, child_calls))
        eq(data_calls[1], (b"d0", 0), "DataWatch after create")
        eq(child_calls[1], ["dw", "later"], "ChildrenWatch after create")
        b.set("/w/dw", b"d1")
        wait_until(lambda: len(data_calls) == 3, "DataWatch to see the set")
        eq(data_calls[2], (b"d1", 1), "DataWatch after set")
        b.delete("/w/dw")
        wait_until(lambda: len(data_calls) == 4 and len(child_calls) == 3,
                   "recipes to see the delete")
        eq(data_calls[3], (None, None), "DataWatch after delete")
        eq(child_calls[2], ["later"], "ChildrenWatch after delete")
        sync_and_flush(a)
        eq(len(data_calls), 4, "no extra DataWatch calls: %r" % data_calls)
        eq(len(child_calls), 3, "no extra ChildrenWatch calls: %r" % child_calls)
    finally:
        shut(a, b)


# ---------------------------------------------------------------------------------
# Transactions


def scenario_multi(hosts):
    zk = client(hosts)
    other = client(hosts)
    try:
        zk.create("/m", b"")
        zk.create("/m/s", b"s0")
        t = zk.transaction()
        t.create("/m/a", b"A")
        t.set_data("/m/s", b"s1", version=0)
        t.check("/m/s", 1)
        t.create("/m/b", b"B", ephemeral=True)
        t.delete("/m/a")
        res = t.commit()
        z_ok = zk.last_zxid
        eq(len(res), 5, "number of results")
        eq(res[0], "/m/a", "create result")
        eq(res[1].version, 1, "set_data result Stat version")
        eq(res[1].mzxid, z_ok, "set_data Stat mzxid is the multi's zxid")
        eq(res[2], True, "check result")
        eq(res[3], "/m/b", "second create result")
        eq(res[4], True, "delete result")
        eq(zk.exists("/m/a"), None, "created then deleted in one multi")
        eq(zk.exists("/m/b").czxid, z_ok, "every op in a multi has the multi's zxid")
        eq(zk.exists("/m/b").ephemeralOwner, zk.client_id[0], "ephemeral in multi")
        eq(zk.get("/m/s")[0], b"s1", "set in multi")
        eq(zk.exists("/m").cversion, 4, "cversion after 3 creates and 1 delete")

        # a failing multi: ops before get RolledBackError, the failing op its
        # error, ops after RuntimeInconsistency; nothing changes; no watch fires
        data_rec, child_rec, exists_rec = Recorder(), Recorder(), Recorder()
        other.get("/m/s", watch=data_rec)
        other.get_children("/m", watch=child_rec)
        other.exists("/m/x", watch=exists_rec)
        before = zk.exists("/m")
        t = zk.transaction()
        t.create("/m/x", b"X")
        t.set_data("/m/s", b"s2")
        t.check("/m/s", 7)
        t.delete("/m/b")
        res = t.commit()
        z_fail = zk.last_zxid
        eq([type(r) for r in res],
           [RolledBackError, RolledBackError, BadVersionError, RuntimeInconsistency],
           "failed multi result types")
        eq(zk.exists("/m/x"), None, "failed multi created nothing")
        eq(zk.get("/m/s")[0], b"s1", "failed multi set nothing")
        check(zk.exists("/m/b") is not None, "failed multi deleted nothing")
        eq(zk.exists("/m"), before, "parent Stat unchanged by a failed multi")
        result("failed_multi_zxid_delta", z_fail - z_ok)
        sync_and_flush(other)
        eq((data_rec.get(), child_rec.get(), exists_rec.get()), ([], [], []),
           "a failed multi fires no watches")

        # other failures: NoNode on a later op, NodeExists on the first
        res = zk.transaction()
        res.create("/m/b2")
        res.delete("/m/none")
        res = res.commit()
        eq([type(r) for r in res], [RolledBackError, NoNodeError], "NoNode in multi")
        res = zk.transaction()
        res.create("/m/s")
        res.create("/m/c")
        res = res.commit()
        eq([type(r) for r in res], [NodeExistsError, RuntimeInconsistency],
           "NodeExists first in multi")
        res = zk.transaction()
        res.create("/m/b/child")
        res = res.commit()
        eq([type(r) for r in res], [NoChildrenForEphemeralsError],
           "NoChildrenForEphemerals in multi")

        # the watches set before still fire for the next real change
        zk.set("/m/s", b"s3")
        zk.create("/m/x")
        sync_and_flush(other)
        eq(data_rec.get(), [(EventType.CHANGED, "/m/s")], "data watch after the failures")
        eq(child_rec.get(), [(EventType.CHILD, "/m")], "child watch after the failures")
        eq(exists_rec.get(), [(EventType.CREATED, "/m/x")], "exists watch")

        # a successful multi fires watches as its ops would
        rec = Recorder()
        other.get("/m/x", watch=rec)
        t = zk.transaction()
        t.set_data("/m/x", b"1")
        t.delete("/m/x")
        t.commit()
        sync_and_flush(other)
        # ops fire their watches in order: the set consumes the data watch
        eq(rec.get(), [(EventType.CHANGED, "/m/x")],
           "set then delete in one multi: the data watch sees")
        result("multi_delete_event", rec.get()[0][0])

        # an empty multi
        eq(zk.transaction().commit(), [], "empty multi")
    finally:
        shut(zk, other)


# ---------------------------------------------------------------------------------
# ACLs


def scenario_acl(hosts):
    owner = client(hosts)
    anon = client(hosts)
    try:
        owner.add_auth("digest", "user1:pw1")
        acl = make_digest_acl("user1", "pw1", all=True)
        eq(acl, ACL(31, Id("digest", make_digest_acl_credential("user1", "pw1"))),
           "make_digest_acl")
        owner.create("/acl", b"")
        owner.create("/acl/secret", b"s", acl=[acl])
        acls, st = owner.get_acls("/acl/secret")
        eq(acls, [acl], "get_acls")
        eq(st.aversion, 0, "aversion")
        eq(owner.get("/acl/secret")[0], b"s", "owner reads")

        raises(NoAuthError, anon.get, "/acl/secret")
        raises(NoAuthError, anon.set, "/acl/secret", b"x")
        raises(NoAuthError, anon.create, "/acl/secret/c")
        raises(NoAuthError, anon.get_children, "/acl/secret")
        raises(NoAuthError, anon.set_acls, "/acl/secret", OPEN_ACL_UNSAFE)
        # ZOOKEEPER-4799 (3.9.2, 3.8.4, 3.7.3): exists needs READ on an existing node.
        v = anon.server_version()
        if v >= (3, 9, 2) or (3, 8, 4) <= v < (3, 9) or (3, 7, 3) <= v < (3, 8):
            raises(NoAuthError, anon.exists, "/acl/secret")
            result("exists_needs_read", True)
        else:
            check(anon.exists("/acl/secret") is not None, "exists needs no permission")
            result("exists_needs_read", False)
        eq(anon.exists("/acl/secret/none"), None, "exists of a missing child")
        raises(NoAuthError, anon.get_acls, "/acl/secret")  # needs READ or ADMIN
        anon.add_auth("digest", "user1:wrong")
        raises(NoAuthError, anon.get, "/acl/secret")
        eq(anon.add_auth("digest", "user1:pw1"), True, "add_auth returns True")
        eq(anon.get("/acl/secret")[0], b"s", "reads after add_auth")

        # digest credentials without a ':' authenticate too: ZooKeeper hashes the whole
        # text, which becomes the user part of the id
        lone = client(hosts)
        try:
            eq(lone.add_auth("digest", "nocolon"), True, "add_auth without a colon")
            cred = "nocolon:" + base64.b64encode(hashlib.sha1(b"nocolon").digest()).decode()
            lone.create("/acl/lone", b"l", acl=[ACL(31, Id("digest", cred))])
            eq(lone.get("/acl/lone")[0], b"l", "the colon-less id reads its node")
            raises(NoAuthError, anon.get, "/acl/lone")
            eq(lone.state, KazooState.CONNECTED, "still connected")
        finally:
            shut(lone)

        # set_acls with a version
        both = [acl, ACL(1, Id("world", "anyone"))]
        st = owner.set_acls("/acl/secret", both, version=0)
        eq(st.aversion, 1, "aversion after set_acls")
        eq(st.version, 0, "set_acls leaves version")
        raises(BadVersionError, owner.set_acls, "/acl/secret", both, version=0)
        acls, st = owner.get_acls("/acl/secret")
        eq((acls, st.aversion), (both, 1), "get_acls after set_acls")
        raises(NoNodeError, owner.set_acls, "/acl/none", both)
        raises(NoNodeError, owner.get_acls, "/acl/none")

        # world read-only
        owner.create("/acl/ro", b"r", acl=READ_ACL_UNSAFE)
        third = client(hosts)
        try:
            eq(third.get("/acl/ro")[0], b"r", "world can read")
            raises(NoAuthError, third.set, "/acl/ro", b"x")
            raises(NoAuthError, third.create, "/acl/ro/c")
            eq(third.get_acls("/acl/ro")[0], READ_ACL_UNSAFE, "get_acls world read")
            # delete is governed by the parent's ACL
            third.delete("/acl/ro")
            eq(third.exists("/acl/ro"), None, "deleted via the parent's ACL")
        finally:
            shut(third)

        # the "auth" scheme stands for the creator's authenticated ids
        owner.create("/acl/byauth", b"", acl=[ACL(31, Id("auth", ""))])
        eq(owner.get_acls("/acl/byauth")[0],
           [ACL(31, Id("digest", make_digest_acl_credential("user1", "pw1")))],
           "auth scheme becomes the creator's digest id")

        # unknown scheme: AuthFailedError and the AUTH_FAILED state
        bad = KazooClient(hosts=hosts, timeout=10.0)
        states = []
        orig = bad._session_callback

        def record(state):
            states.append(state)
            return orig(state)

        bad._session_callback = record
        bad.start(timeout=WAIT_S)
        try:
            raises(AuthFailedError, bad.add_auth, "nosuchscheme", "x")
            wait_until(lambda: bad.client_state == KeeperState.AUTH_FAILED or
                       KeeperState.CLOSED in states,
                       "AUTH_FAILED state (states %r)" % states)
            check(KeeperState.AUTH_FAILED in states, "states: %r" % states)
            eq(bad.state, KazooState.LOST, "kazoo state after an auth failure")
            # kazoo then reconnects, resends the bad auth and gives up: how far it
            # got by now is timing, so report up to the first failure
            first = states[:states.index(KeeperState.AUTH_FAILED) + 1]
            result("auth_failed_states", ",".join(str(s) for s in first))
        finally:
            shut(bad)
    finally:
        shut(owner, anon)


# ---------------------------------------------------------------------------------
# Sessions


def hold_session(hosts, path, timeout):
    """Child process: creates an ephemeral, prints its session, then waits to be killed."""
    zk = client(hosts, timeout=float(timeout))
    zk.create(path, b"held", ephemeral=True, makepath=False)
    sid, passwd = zk.client_id
    print("SESSION %d %s" % (sid, passwd.hex()), flush=True)
    time.sleep(600)


def spawn_holder(hosts, path, timeout):
    p = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), hosts, "_hold", path, str(timeout)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = p.stdout.readline().decode()
    if not line.startswith("SESSION "):
        p.kill()
        fail("holder did not start: %r %r" % (line, p.stderr.read()))
    _, sid, pw = line.split()
    return p, int(sid), bytes.fromhex(pw)


def kill9(p):
    p.send_signal(signal.SIGKILL)
    p.wait()


def negotiated_timeout(hosts, asked_s):
    """The session timeout the server granted (ConnectResponse.timeOut, in ms)."""
    granted = []
    orig = Connect.deserialize.__func__

    def record(cls, buf, offset):
        obj, end = orig(cls, buf, offset)
        granted.append(obj.time_out)
        return obj, end

    Connect.deserialize = classmethod(record)
    try:
        zk = client(hosts, timeout=asked_s)
    finally:
        Connect.deserialize = classmethod(orig)
    shut(zk)
    return granted[0]


def scenario_sessions(hosts):
    # tickTime 2000: minSessionTimeout 4000, maxSessionTimeout 40000
    timeouts = [negotiated_timeout(hosts, t) for t in (1.0, 4.0, 10.0, 100.0)]
    eq(timeouts, [4000, 4000, 10000, 40000], "negotiated session timeouts")
    result("negotiated_timeouts", ",".join(str(t) for t in timeouts))
    watcher = client(hosts)
    try:
        watcher.create("/s")
        # a second client attaches to the same session with (id, password)
        p, sid, pw = spawn_holder(hosts, "/s/held", 10)
        kill9(p)  # the session lives on: nobody closed it
        eq(watcher.exists("/s/held").ephemeralOwner, sid, "holder's ephemeral")
        again = client(hosts, client_id=(sid, pw))
        try:
            eq(again.client_id[0], sid, "reattached to the same session id")
            eq(again.client_id[1], pw, "same password")
            st = again.exists("/s/held")
            eq(st.ephemeralOwner, again.client_id[0], "ephemeral still owned")
            again.create("/s/more", b"", ephemeral=True)
            eq(watcher.exists("/s/more").ephemeralOwner, sid, "new ephemeral owner")

            # a wrong password: the session is expired for that client, which
            # kazoo then replaces with a new session
            wrong = bytes((b ^ 0xff) for b in pw)
            states = []
            bad = KazooClient(hosts=hosts, timeout=10.0, client_id=(sid, wrong))
            orig = bad._session_callback

            def record(state):
                states.append(state)
                return orig(state)

            bad._session_callback = record
            bad.start(timeout=WAIT_S)
            try:
                check(KeeperState.EXPIRED_SESSION in states,
                      "EXPIRED_SESSION state for a wrong password: %r" % states)
                eq(states[states.index(KeeperState.EXPIRED_SESSION) - 1],
                   KeeperState.CONNECTING, "expired right at connect")
                check(bad.client_id[0] != sid, "kazoo started a new session")
                eq(states[-1], KeeperState.CONNECTED, "then connected: %r" % states)
                result("wrong_password_states", ",".join(str(s) for s in states))
            finally:
                shut(bad)
            # the real session is unaffected
            eq(again.exists("/s/held").ephemeralOwner, sid, "session survives bad login")
            eq(again.get("/s/held")[0], b"held", "reattached client reads")
        finally:
            rec = Recorder()
            watcher.exists("/s/more", watch=rec)
            shut(again)
        wait_until(lambda: rec.get() != [], "ephemeral gone after the close")
        eq(rec.get(), [(EventType.DELETED, "/s/more")], "close deletes ephemerals")
        eq(watcher.exists("/s/held"), None, "both ephemerals gone")

        # a session moves: when a second connection attaches, the server closes the
        # first one (its client is pointed at a dead port so it cannot take it back)
        first = client(hosts)
        first_states = []
        first.add_listener(lambda s: first_states.append(s))
        first.create("/s/moving", ephemeral=True)
        first.set_hosts("127.0.0.1:1")
        second = client(hosts, client_id=first.client_id)
        try:
            wait_until(lambda: first_states, "the first connection to be closed")
            eq(first_states[0], KazooState.SUSPENDED, "the first client lost its connection")
            second.create("/s/moved", ephemeral=True)
            eq(watcher.exists("/s/moved").ephemeralOwner, second.client_id[0],
               "the moved session works")
            eq(watcher.exists("/s/moving").ephemeralOwner, second.client_id[0],
               "and owns the first connection's ephemeral")
        finally:
            shut(second)
            shut(first)
        eq(watcher.exists("/s/moving"), None, "closed by the second connection")

        # the same session id with a wrong password after the session is closed
        bad = KazooClient(hosts=hosts, timeout=10.0, client_id=(sid, pw))
        states = []
        orig2 = bad._session_callback
        bad._session_callback = lambda s: (states.append(s), orig2(s))[1]
        bad.start(timeout=WAIT_S)
        try:
            check(KeeperState.EXPIRED_SESSION in states,
                  "a closed session is expired: %r" % states)
        finally:
            shut(bad)
    finally:
        shut(watcher)


def scenario_expiry(hosts):
    """A client that goes silent loses its session after the timeout (4 s here)."""
    zk = client(hosts)
    try:
        zk.create("/x")
        idle = client(hosts, timeout=4.0)
        idle_states = []
        idle.add_listener(lambda s: idle_states.append(s))
        idle.create("/x/idle", ephemeral=True)
        idle_sid = idle.client_id[0]
        p, sid, _ = spawn_holder(hosts, "/x/held", 4)
        rec = Recorder()
        eq(zk.exists("/x/held", watch=rec).ephemeralOwner, sid, "holder's ephemeral")
        killed = time.time()
        kill9(p)
        wait_until(lambda: rec.get() != [], "the silent session to expire")
        elapsed = time.time() - killed
        eq(rec.get(), [(EventType.DELETED, "/x/held")], "expiry deletes the ephemeral")
        eq(zk.exists("/x/held"), None, "ephemeral gone")
        result("expiry_seconds", "%.1f" % elapsed)
        # meanwhile an idle client with the same timeout kept its session by pinging
        # (a ping answered late on a loaded machine may cost it a reconnect, not
        # the session)
        check(KazooState.LOST not in idle_states, "idle client states %r" % idle_states)
        eq(idle.client_id[0], idle_sid, "the idle client's session")
        eq(zk.exists("/x/idle").ephemeralOwner, idle_sid, "the idle client's ephemeral")
        shut(idle)
        print("expired %.1f s after the holder died" % elapsed)
        # the expired session cannot be resumed
        states = []
        bad = KazooClient(hosts=hosts, timeout=4.0, client_id=(sid, _))
        orig = bad._session_callback
        bad._session_callback = lambda s: (states.append(s), orig(s))[1]
        bad.start(timeout=WAIT_S)
        try:
            check(KeeperState.EXPIRED_SESSION in states,
                  "resuming an expired session: %r" % states)
        finally:
            shut(bad)
    finally:
        shut(zk)


# ---------------------------------------------------------------------------------
# Reconnect


class SetWatches(namedtuple("SetWatches", "relative_zxid data exist child")):
    """OpCode.setWatches (101). kazoo 2.8 never re-registers watches after a
    reconnect (its watchers get a NONE event instead), so the test sends the request
    the Java client sends, through kazoo's own connection."""

    type = 101

    def serialize(self):
        b = bytearray(struct.pack("!q", self.relative_zxid))
        for paths in (self.data, self.exist, self.child):
            b.extend(struct.pack("!i", len(paths)))
            for p in paths:
                b.extend(write_string(p))
        return b

    @classmethod
    def deserialize(cls, buf, offset):
        return True


def break_connection(zk):
    """Closes kazoo's TCP connection under it; the session stays open."""
    zk._connection._socket.shutdown(socket.SHUT_RDWR)


def scenario_reconnect(hosts):
    a = client(hosts)
    b = client(hosts)
    try:
        for p in ("/r", "/r/changed", "/r/deleted", "/r/same", "/r/kids"):
            a.create(p, b"0")
        a.create("/r/eph", b"", ephemeral=True)
        sid = a.client_id[0]

        # kazoo's own behaviour: on a lost connection the watchers get a NONE event
        rec = Recorder()
        a.get("/r/changed", watch=rec)
        states = []
        a.add_listener(lambda s: states.append(s))
        a.sync("/")
        zxid_before = a.last_zxid
        break_connection(a)
        wait_until(lambda: KazooState.CONNECTED in states,
                   "kazoo to reconnect (states %r)" % states)
        eq(states[:2], [KazooState.SUSPENDED, KazooState.CONNECTED], "kazoo states")
        eq(a.client_id[0], sid, "same session after reconnect")
        flush_callbacks(a)
        eq(rec.get(), [(EventType.NONE, None)], "kazoo's NONE event on disconnect")
        eq(b.exists("/r/eph").ephemeralOwner, sid, "ephemeral survived the reconnect")

        # another client changes things while A's watches are not on the server
        b.set("/r/changed", b"1")
        b.delete("/r/deleted")
        b.create("/r/created", b"")
        b.create("/r/kids/k", b"")

        # setWatches with the zxid A had seen: everything that changed fires now
        recs = {k: Recorder() for k in
                ("changed", "deleted", "same", "created", "kids", "absent")}
        a._data_watchers["/r/changed"].add(recs["changed"])
        a._data_watchers["/r/deleted"].add(recs["deleted"])
        a._data_watchers["/r/same"].add(recs["same"])
        a._data_watchers["/r/created"].add(recs["created"])
        a._data_watchers["/r/absent"].add(recs["absent"])
        a._child_watchers["/r/kids"].add(recs["kids"])
        req = SetWatches(zxid_before,
                         ["/r/changed", "/r/deleted", "/r/same"],
                         ["/r/created", "/r/absent"],
                         ["/r/kids"])
        async_result = a.handler.async_result()
        a._call(req, async_result)
        eq(async_result.get(timeout=WAIT_S), True, "setWatches reply")
        flush_callbacks(a)
        got = {k: r.get() for k, r in recs.items()}
        eq(got, {
            "changed": [(EventType.CHANGED, "/r/changed")],
            "deleted": [(EventType.DELETED, "/r/deleted")],
            "same": [],
            "created": [(EventType.CREATED, "/r/created")],
            "kids": [(EventType.CHILD, "/r/kids")],
            "absent": [],
        }, "events fired by setWatches")

        # the watches that did not fire are registered now
        b.set("/r/same", b"1")
        b.create("/r/absent")
        sync_and_flush(a)
        eq(recs["same"].get(), [(EventType.CHANGED, "/r/same")], "re-set data watch")
        eq(recs["absent"].get(), [(EventType.CREATED, "/r/absent")], "re-set exists watch")

        # the DataWatch recipe re-reads after a reconnect and sees changes made
        # while it was disconnected
        calls = []
        a.DataWatch("/r/changed", lambda d, s: calls.append(d))
        eq(calls, [b"1"], "DataWatch first call")
        states.clear()
        break_connection(a)
        b.set("/r/changed", b"2")
        wait_until(lambda: b"2" in calls, "DataWatch to see the change across a reconnect "
                   "(calls %r)" % calls)
        eq(a.client_id[0], sid, "still the same session")
    finally:
        shut(a, b)


def scenario_restart(hosts):
    """Run by the Rust test, which kill -9s and restarts the server when this prints
    READY and writes a line to stdin when it is back. Sessions survive the restart.
    A long session timeout and a retry delay of at most 1 s keep a slow JVM start
    from expiring the sessions before kazoo gets back.

    kazoo waits session_timeout / len(hosts) for the answer to a ConnectRequest, 30 s
    with one host: once in CI one reconnect to a restarted ZooKeeper got no answer and
    used up the whole wait. Naming the server three times makes that 10 s, so a stuck
    attempt is retried while the session still lives."""
    retry = {"max_tries": -1, "delay": 0.1, "backoff": 2, "max_delay": 1.0}
    hosts = ",".join([hosts] * 3)
    a = client(hosts, timeout=30.0, connection_retry=retry)
    b = client(hosts, timeout=30.0, connection_retry=retry)
    try:
        a.create("/rs", b"0")
        a.create("/rs/eph", b"", ephemeral=True)
        sid = a.client_id[0]
        calls = []
        a.DataWatch("/rs", lambda d, s: calls.append(d))
        eq(calls, [b"0"], "DataWatch first call")
        # a session whose client is gone must still expire after the restart
        holder, dead_sid, _ = spawn_holder(hosts, "/rs/dead", 4)
        kill9(holder)
        eq(b.exists("/rs/dead").ephemeralOwner, dead_sid, "the dead client's ephemeral")
        states = {a: [], b: []}
        for c in (a, b):
            c.add_listener(lambda s, c=c: states[c].append(s))
        print("READY", flush=True)
        eq(sys.stdin.readline().strip(), "RESTARTED", "the test's go-ahead")
        for c in (a, b):
            wait_until(lambda: KazooState.CONNECTED in states[c],
                       "kazoo to reconnect after the restart (%r)" % states[c], timeout=60)
            eq(states[c][0], KazooState.SUSPENDED, "suspended first")
        eq(a.client_id[0], sid, "the session survived the restart")
        eq(b.exists("/rs/eph").ephemeralOwner, sid, "its ephemeral too")
        b.set("/rs", b"1")
        wait_until(lambda: b"1" in calls, "DataWatch to see the change (%r)" % calls)
        eq(calls, [b"0", b"1"], "DataWatch calls")
        a.create("/rs/after", b"")
        wait_until(lambda: b.exists("/rs/dead") is None,
                   "the dead client's session to expire after the restart")
        eq(sorted(b.get_children("/rs")), ["after", "eph"], "children after restart")
    finally:
        shut(a, b)


class WireEvents(object):
    """Records every notification as kazoo's connection thread reads it off the wire
    (kazoo itself merges duplicates, so this is the only way to count them)."""

    def __init__(self, zk):
        self.zk = zk
        self.seen = []
        conn = zk._connection
        orig = conn._read_watch_event

        def log_event(buffer, offset):
            w, _ = Watch.deserialize(buffer, offset)
            self.seen.append((EVENT_NAMES[w.type], w.path))
            return orig(buffer, offset)

        conn._read_watch_event = log_event

    def take(self):
        sync_and_flush(self.zk)
        got, self.seen = self.seen, []
        return got


EVENT_NAMES = {1: "CREATED", 2: "DELETED", 3: "CHANGED", 4: "CHILD"}


def scenario_events(hosts):
    """Exactly which notifications the server sends, counted on the wire."""
    a = client(hosts)
    b = client(hosts)
    try:
        wire = WireEvents(a)

        def noop(event):
            pass

        a.create("/v", b"0")
        a.create("/v/k")
        a.get("/v", watch=noop)
        a.exists("/v", watch=noop)
        a.get_children("/v", watch=noop)
        b.delete("/v/k")
        eq(wire.take(), [("CHILD", "/v")], "child delete with data, exists, child watches")
        b.delete("/v")
        eq(wire.take(), [("DELETED", "/v")], "delete with data and exists watches: one event")
        a.create("/v", b"0")
        a.get("/v", watch=noop)
        a.get_children("/v", watch=noop)
        b.delete("/v")
        eq(wire.take(), [("DELETED", "/v")], "delete with data and child watches: one event")

        a.exists("/v", watch=noop)
        t = b.transaction()
        t.create("/v")
        t.delete("/v")
        t.commit()
        eq(wire.take(), [("CREATED", "/v")], "create+delete in one multi, exists watch")
        a.exists("/v", watch=noop)
        t = b.transaction()
        t.create("/v")
        t.create("/v/c")
        t.set_data("/v", b"1")
        t.commit()
        eq(wire.take(), [("CREATED", "/v")], "multi create, child, set; exists watch")
        a.get_children("/v", watch=noop)
        a.get("/v/c", watch=noop)
        b.delete("/v", recursive=True)
        eq(wire.take(), [("DELETED", "/v/c"), ("CHILD", "/v")],
           "recursive delete: data watch on the child, child watch on the parent")

        e = client(hosts)
        e.create("/sc")
        e.create("/sc/eph", ephemeral=True)
        a.get_children("/sc", watch=noop)
        a.exists("/sc/eph", watch=noop)
        a.get("/sc/eph", watch=noop)
        shut(e)
        wait_until(lambda: a.exists("/sc/eph") is None, "the closed session's ephemeral")
        eq(wire.take(), [("DELETED", "/sc/eph"), ("CHILD", "/sc")], "session close")

        # setWatches: which registrations fire at once, by relativeZxid
        def set_watches(zxid, data, exist, child):
            r = a.handler.async_result()
            a._call(SetWatches(zxid, data, exist, child), r)
            eq(r.get(timeout=WAIT_S), True, "setWatches reply")

        a.create("/sw", b"0")
        a.create("/sw/x")
        a.sync("/")
        z = a.last_zxid
        set_watches(0, ["/sw", "/sw/none"], ["/sw/x", "/sw/none2"], ["/sw", "/sw/none3"])
        eq(wire.take(), [("CHANGED", "/sw"), ("DELETED", "/sw/none"), ("CREATED", "/sw/x"),
                         ("CHILD", "/sw"), ("DELETED", "/sw/none3")],
           "setWatches from zxid 0 (a missing node's exists watch stays)")
        set_watches(z, ["/sw"], ["/sw/x"], ["/sw"])
        eq(wire.take(), [("CREATED", "/sw/x")],
           "setWatches at the current zxid: an exists watch on a node that exists fires")
        b.set("/sw", b"1")
        b.delete("/sw/x")
        eq(wire.take(), [("CHANGED", "/sw"), ("CHILD", "/sw")],
           "the watches setWatches registered")
        set_watches(z + 1000, ["/sw"], [], [])
        eq(wire.take(), [], "setWatches from a zxid in the future")
        b.set("/sw", b"2")
        eq(wire.take(), [("CHANGED", "/sw")], "registered by the future setWatches")
        set_watches(z, ["/sw"], ["/sw"], ["/sw"])
        eq(wire.take(), [("CHANGED", "/sw"), ("CREATED", "/sw"), ("CHILD", "/sw")],
           "setWatches of all three kinds on a changed node")
        b.set("/sw", b"3")
        eq(wire.take(), [], "all three fired: nothing left")

        # a watch event goes only to a client that may READ the node (the watch
        # is used up all the same)
        b.add_auth("digest", "u:p")
        secret = [make_digest_acl("u", "p", all=True)]
        a.exists("/x", watch=noop)
        b.create("/x", acl=secret)
        eq(wire.take(), [], "CREATED of a node the watcher cannot read")
        b.create("/y")
        a.get("/y", watch=noop)
        a.get_children("/y", watch=noop)
        b.set_acls("/y", secret)
        eq(wire.take(), [], "an ACL change fires no data watch")
        b.set("/y", b"1")
        b.create("/y/c")
        eq(wire.take(), [], "CHANGED and CHILD of a node the watcher cannot read")
        b.set_acls("/y", OPEN_ACL_UNSAFE)
        b.set("/y", b"2")
        b.delete("/y/c")
        eq(wire.take(), [], "the watches were used up by the events not sent")
    finally:
        shut(a, b)


def scenario_edges(hosts):
    """Error paths and corners, as ZooKeeper 3.8 answers them."""
    zk = client(hosts)
    other = client(hosts)
    try:
        zk.create("/d")
        raises(NodeExistsError, zk.create, "/d/")  # kazoo normalizes it to /d
        raises(BadArgumentsError, zk.create, "/d/a\x00b")
        raises(BadArgumentsError, zk.delete, "/")
        raises(BadArgumentsError, zk.delete, "/zookeeper")
        raises(BadArgumentsError, zk.delete, "/zookeeper/quota")
        eq(zk.sync("/no/such"), "/no/such", "sync does not check the path")

        # which characters a path may hold (ZooKeeper's PathUtils.validatePath works on
        # Java chars: control characters, private use, specials and surrogates fail)
        zk.create("/d/u")
        for ch, ok in [("\u0001", False), ("\u001f", False), (" ", True), ("\u007f", False),
                       ("\u0080", False), ("\u009f", False), ("\u00a0", True),
                       ("\u00e9", True), ("\ud7ff", True), ("\ue000", False),
                       ("\uf8ff", False), ("\uf900", True), ("\ufff0", False),
                       ("\ufffd", False), ("\uffff", False), ("\U0001F600", False),
                       ("\t", False), (".", True), ("..", True)]:
            path = "/d/u/x" + ch
            if ok:
                eq(zk.create(path), path, "create %r" % path)
                eq(zk.exists(path).czxid, zk.last_zxid, "exists %r" % path)
            else:
                raises(BadArgumentsError, zk.create, path)
        eq(len(zk.get_children("/d/u")), 7, "valid names created")
        eq(zk.create("/zookeeper/quota/x"), "/zookeeper/quota/x", "create in quota")
        raises(NoAuthError, zk.create, "/zookeeper/config/x")
        raises(NoAuthError, zk.set, "/zookeeper/config", b"x")
        raises(BadArgumentsError, zk.delete, "/zookeeper/config")

        # ACL validation
        for bad in ([ACL(31, Id("auth", ""))], [ACL(31, Id("digest", "nocolon"))],
                    [ACL(31, Id("foo", "bar"))], [ACL(31, Id("ip", "notanip"))]):
            raises(InvalidACLError, zk.create, "/d/bad", acl=bad)
        t = zk.transaction()  # (kazoo's create replaces [] with its default ACL)
        t.create("/d/t3", acl=[])
        t.create("/d/t4")
        eq([type(r) for r in t.commit()], [InvalidACLError, RuntimeInconsistency],
           "an empty ACL list inside a multi is invalid")

        # ip ACLs
        zk.create("/d/ip", b"i", acl=[ACL(31, Id("ip", "127.0.0.1"))])
        zk.create("/d/ip8", b"i", acl=[ACL(31, Id("ip", "127.0.0.0/8"))])
        zk.create("/d/ip10", b"i", acl=[ACL(31, Id("ip", "10.0.0.0/8"))])
        eq(other.get("/d/ip")[0], b"i", "ip 127.0.0.1")
        eq(other.get("/d/ip8")[0], b"i", "ip 127.0.0.0/8")
        raises(NoAuthError, other.get, "/d/ip10")

        # permissions one by one
        zk.create("/d/p0", acl=[ACL(0, Id("world", "anyone"))])
        raises(NoAuthError, other.get, "/d/p0")
        raises(NoAuthError, other.get_children, "/d/p0")
        other.delete("/d/p0")  # the parent's DELETE permission decides
        zk.create("/d/co", acl=[ACL(4, Id("world", "anyone"))])  # CREATE only
        eq(other.create("/d/co/k"), "/d/co/k", "CREATE permission")
        raises(NoAuthError, other.get, "/d/co")
        raises(NoAuthError, other.delete, "/d/co/k")
        raises(NoAuthError, other.set_acls, "/d/co", OPEN_ACL_UNSAFE)
        raises(NoAuthError, other.get_acls, "/d/co")
        zk.create("/d/adm", b"a", acl=[ACL(16, Id("world", "anyone"))])  # ADMIN only
        eq(other.get_acls("/d/adm")[0], [ACL(16, Id("world", "anyone"))], "ADMIN reads ACLs")
        other.set_acls("/d/adm", READ_ACL_UNSAFE)
        eq(other.get("/d/adm")[0], b"a", "READ after ADMIN changed the ACL")

        # system nodes
        eq(zk.create("/zookeeper/x"), "/zookeeper/x", "create under /zookeeper")
        eq(sorted(zk.get_children("/zookeeper")), ["config", "quota", "x"],
           "children of /zookeeper")
        data, st = zk.get("/zookeeper/config")
        eq((data, st.czxid, st.version, st.aversion), (b"", 0, 0, -1),
           "/zookeeper/config in a standalone server")
        eq(zk.get_acls("/zookeeper/config")[0], READ_ACL_UNSAFE, "/zookeeper/config ACL")
        data, st = zk.get("/")
        eq((data, st.czxid, st.ctime, st.version, st.ephemeralOwner), (b"", 0, 0, 0, 0),
           "the root")
        eq(zk.get_acls("/")[0], OPEN_ACL_UNSAFE, "the root's ACL")
        eq(zk.set("/", b"root").version, 1, "set on the root")

        # another session may delete an ephemeral
        other.create("/d/theirs", ephemeral=True)
        zk.delete("/d/theirs")
        eq(other.exists("/d/theirs"), None, "ephemeral deleted by another session")

        # data close to jute.maxbuffer (1 MiB - 1) still fits in a request and a reply
        big = bytes(range(256)) * 3900  # 998400 bytes
        zk.create("/d/large", big)
        data, st = other.get("/d/large")
        eq((len(data), data == big, st.dataLength), (len(big), True, len(big)), "large data")

        # many children, listed in full
        t = zk.transaction()
        zk.create("/d/many")
        for i in range(500):
            t.create("/d/many/c%03d" % i)
        eq(len(t.commit()), 500, "500 creates in one multi")
        eq(sorted(other.get_children("/d/many")), ["c%03d" % i for i in range(500)],
           "get_children of 500")
        eq(other.exists("/d/many").numChildren, 500, "numChildren")

        # children of an ephemeral; sequential under it
        zk.create("/d/eph", ephemeral=True)
        eq(zk.get_children("/d/eph"), [], "children of an ephemeral")
        raises(NoChildrenForEphemeralsError, zk.create, "/d/eph/s", sequence=True)

        # a request larger than jute.maxbuffer: the server drops the connection;
        # kazoo reconnects to the same session
        sid = zk.client_id[0]
        raises(ConnectionLoss, zk.create, "/d/big", b"x" * (1024 * 1024))
        wait_until(lambda: zk.connected and zk.client_id, "kazoo to reconnect")
        eq(zk.client_id[0], sid, "same session after the oversized request")
        eq(zk.exists("/d/big"), None, "the oversized node was not created")

        # a SASL token to a server without SASL configured: OK with a null token, and
        # the connection stays (kazoo's own DIGEST-MD5 loop would spin on that
        # answer forever, against ZooKeeper too, so the token is sent by hand)
        sid = zk.client_id[0]
        r = zk.handler.async_result()
        zk._call(SASL(b""), r)
        eq(r.get(timeout=WAIT_S)[0], None, "the server's SASL token")
        eq((zk.connected, zk.client_id[0]), (True, sid), "connection after SASL")
        eq(zk.get("/d/ip")[0], b"i", "requests after SASL")

        # an unknown opcode: UnimplementedError, then the server closes the
        # connection (kazoo reconnects to the same session)
        sid = other.client_id[0]
        r = other.handler.async_result()
        other._call(Unknown(), r)
        e = r.exception if r.wait(WAIT_S) else None
        eq(type(e), UnimplementedError, "unknown opcode")

        def works():
            try:
                return other.exists("/d") is not None
            except ConnectionLoss:
                return False

        wait_until(works, "the client to work again")
        eq(other.client_id[0], sid, "same session after the unknown opcode")
    finally:
        shut(zk, other)


class Unknown(namedtuple("Unknown", "")):
    type = 999

    def serialize(self):
        return b""

    @classmethod
    def deserialize(cls, buf, offset):
        return True


def scenario_pipeline(hosts):
    """Hundreds of requests in flight at once, writes and reads interleaved: replies
    come back in order (kazoo checks every xid) and each read sees the same
    session's earlier writes."""
    clients = [client(hosts) for _ in range(2)]
    try:
        clients[0].create("/p")
        pending = []
        for k, zk in enumerate(clients):
            for i in range(150):
                path = "/p/c%d-%03d" % (k, i)
                data = path.encode()
                pending.append((path, "create", zk.create_async(path, data), path))
                pending.append((path, "get", zk.get_async(path), data))
                pending.append((path, "set", zk.set_async(path, data + b"!", 0), 1))
                pending.append((path, "exists", zk.exists_async(path), 1))
                pending.append((path, "children", zk.get_children_async("/p"), path))
                t = zk.transaction()
                t.check(path, 1)
                t.set_data(path, b"m", 1)
                pending.append((path, "multi", t.commit_async(), 2))
                pending.append((path, "get2", zk.get_async(path), b"m"))
                if i % 2:
                    pending.append((path, "delete", zk.delete_async(path, 2), True))
                    pending.append((path, "gone", zk.exists_async(path), None))
        for path, what, r, expected in pending:
            got = r.get(timeout=WAIT_S)
            if what == "get":
                got = got[0]
            elif what == "get2":
                got = got[0]
            elif what in ("set", "exists"):
                got = got.version
            elif what == "children":
                got = path.rsplit("/", 1)[1] in got
                expected = True
            elif what == "multi":
                got = got[1].version
            eq(got, expected, "%s %s" % (what, path))
        eq(len(clients[0].get_children("/p")), 150, "nodes left")
        result("pipelined_requests", len(pending))
    finally:
        for c in clients:
            shut(c)


# ---------------------------------------------------------------------------------
# Miscellaneous


def scenario_misc(hosts):
    zk = client(hosts)
    try:
        eq(zk.sync("/"), "/", "sync returns its path")
        zk.create("/misc")
        eq(zk.sync("/misc"), "/misc", "sync on a node")
        version = zk.server_version()
        eq(version[0], 3, "server_version major: %r" % (version,))
        check(len(version) >= 2, "server_version has major and minor: %r" % (version,))
        result("server_version", ".".join(str(v) for v in version))
        eq(zk.command(b"ruok"), "imok", "ruok")
        srvr = zk.command(b"srvr")
        check("Mode: standalone" in srvr, "srvr says standalone: %r" % srvr)
        check(srvr.startswith("Zookeeper version: 3."), "srvr version line: %r" % srvr)
        envi = zk.command(b"envi")
        check("zookeeper.version=" in envi, "envi: %r" % envi)
        stat = zk.command(b"stat")
        check("Clients:" in stat and "Mode: standalone" in stat, "stat: %r" % stat)
        # stat lists clients in the brief form: counters, no session details
        clients = stat.split("Clients:\n", 1)[1].split("\n\n", 1)[0].splitlines()
        check(len(clients) >= 2, "stat lists this client and the asking one: %r" % stat)
        for line in clients:
            check(re.match(r"^ /127\.0\.0\.1:\d+\[[01]\]\(queued=\d+,recved=\d+,sent=\d+\)$",
                           line), "stat client line %r" % line)
        cons = zk.command(b"cons")
        check(",sid=0x%x," % zk.client_id[0] in cons, "cons names our session: %r" % cons)
        eq(zk.command(b"isro"), "rw", "isro")
        eq(zk.command(b"gtmk"), "306", "gtmk: ZooKeeper's default trace mask, no newline")

        # a client that allows read-only servers gets a read-write session here
        ro = client(hosts, read_only=True)
        try:
            eq(ro.client_state, KeeperState.CONNECTED, "read_only client on a rw server")
            ro.create("/misc/from-ro")
        finally:
            shut(ro)

        # chroot is the client's business: the server sees absolute paths
        zk.create("/misc/app")
        ch = client(hosts + "/misc/app")
        try:
            eq(ch.create("/a", b"x"), "/a", "create under a chroot")
            eq(zk.get("/misc/app/a")[0], b"x", "seen at the absolute path")
            rec = Recorder()
            ch.get("/a", watch=rec)
            zk.set("/misc/app/a", b"y")
            sync_and_flush(ch)
            eq(rec.get(), [(EventType.CHANGED, "/a")], "event path under a chroot")
            t = ch.transaction()
            t.create("/b")
            t.create("/s-", sequence=True)
            eq(t.commit(), ["/b", "/s-0000000002"], "multi results under a chroot")
            eq(sorted(ch.get_children("/")), ["a", "b", "s-0000000002"], "chroot root")
        finally:
            shut(ch)

        # system nodes
        check(zk.exists("/zookeeper/quota") is not None, "/zookeeper/quota")
        check(zk.exists("/zookeeper/config") is not None, "/zookeeper/config")

        # reconfig is disabled in a standalone server. kazoo 2.8 has no exception
        # class for ReconfigDisabled (-123): its connection thread dies on the
        # unknown code, so read the error code from the reply header it got.
        probe = client(hosts)
        try:
            errors = []
            conn = probe._connection
            orig_response = conn._read_response

            def log_response(header, buffer, offset):
                errors.append(header.err)
                return orig_response(header, buffer, offset)

            conn._read_response = log_response
            probe.reconfig_async(
                joining="server.100=127.0.0.1:2889:3888:observer;0.0.0.0:2181",
                leaving=None, new_members=None, from_config=-1)
            wait_until(lambda: errors, "the reconfig reply")
            eq(errors, [-123], "reconfig's error code (ReconfigDisabled)")
            result("reconfig_err", errors[0])
        finally:
            shut(probe)
    finally:
        shut(zk)


def scenario_recipes(hosts):
    a = client(hosts)
    b = client(hosts)
    try:
        # Lock
        la = a.Lock("/recipes/lock", "alice")
        lb = b.Lock("/recipes/lock", "bob")
        eq(la.acquire(timeout=WAIT_S), True, "alice locks")
        eq(lb.acquire(blocking=False), False, "bob cannot lock")
        eq(lb.contenders(), ["alice"], "contenders")
        got = []
        t = threading.Thread(target=lambda: got.append(lb.acquire(timeout=WAIT_S)))
        t.start()
        wait_until(lambda: len(a.get_children("/recipes/lock")) == 2, "bob to queue")
        eq(lb.contenders(), ["alice", "bob"], "contenders while bob waits")
        la.release()
        t.join(WAIT_S)
        eq(got, [True], "bob gets the lock after alice releases")
        lb.release()
        eq(a.get_children("/recipes/lock"), [], "lock nodes cleaned up")

        # Counter (compare-and-set on the version)
        c = a.Counter("/recipes/counter")
        c += 5
        c2 = b.Counter("/recipes/counter")
        c2 -= 2
        eq(c.value, 3, "counter value")
        fc = a.Counter("/recipes/fcounter", default=0.5)
        fc += 1.25
        eq(fc.value, 1.75, "float counter")

        # Barrier
        bar = a.Barrier("/recipes/barrier")
        bar.create()
        eq(b.Barrier("/recipes/barrier").wait(timeout=0.2), False, "barrier holds")
        waited = []
        t = threading.Thread(target=lambda: waited.append(
            b.Barrier("/recipes/barrier").wait(timeout=WAIT_S)))
        t.start()
        time.sleep(0.2)
        bar.remove()
        t.join(WAIT_S)
        eq(waited, [True], "barrier released")

        # Queue and LockingQueue
        q = a.Queue("/recipes/queue")
        q.put(b"one")
        q.put(b"two")
        q.put(b"first", priority=1)
        eq(len(q), 3, "queue length")
        qb = b.Queue("/recipes/queue")
        eq([qb.get(), qb.get(), qb.get(), qb.get()], [b"first", b"one", b"two", None],
           "queue order")
        lq = a.LockingQueue("/recipes/lqueue")
        lq.put_all([b"x", b"y"])
        lqb = b.LockingQueue("/recipes/lqueue")
        eq(lqb.get(timeout=WAIT_S), b"x", "locking queue get")
        eq(lqb.holds_lock(), True, "holds lock")
        eq(lqb.consume(), True, "consume")
        eq(len(lq), 1, "one item left")

        # Election
        elected = threading.Event()
        leader = []
        ea = a.Election("/recipes/election", "alice")

        def lead():
            leader.append("alice")
            elected.set()
            release.wait(WAIT_S)

        release = threading.Event()
        t = threading.Thread(target=ea.run, args=(lead,))
        t.start()
        check(elected.wait(WAIT_S), "alice elected")
        eb = b.Election("/recipes/election", "bob")
        wait_until(lambda: len(eb.contenders()) == 1, "one contender")
        eq(eb.contenders(), ["alice"], "election contenders")
        release.set()
        t.join(WAIT_S)
        eq(leader, ["alice"], "leader ran")

        # TreeCache: a watch on every node of a subtree
        a.create("/recipes/tree/x", b"x0", makepath=True)
        cache = TreeCache(b, "/recipes/tree")
        tree_events = []
        lock = threading.Lock()

        def on_tree(event):
            with lock:
                data = event.event_data
                tree_events.append((event.event_type, data.path if data else None,
                                    data.data if data else None))

        cache.listen(on_tree)
        cache.start()
        wait_until(lambda: any(e[0] == TreeEvent.INITIALIZED for e in tree_events),
                   "TreeCache to initialize")
        a.create("/recipes/tree/x/y", b"y0")
        a.set("/recipes/tree/x", b"x1")
        wait_until(lambda: cache.get_children("/recipes/tree/x") == frozenset(["y"]) and
                   cache.get_data("/recipes/tree/x").data == b"x1", "TreeCache to follow")
        a.delete("/recipes/tree/x", recursive=True)
        wait_until(lambda: cache.get_children("/recipes/tree") == frozenset() and
                   len([e for e in tree_events if e[0] == TreeEvent.NODE_REMOVED]) >= 2,
                   "TreeCache to see the delete")
        cache.close()
        with lock:
            changes = [e for e in tree_events if e[0] != TreeEvent.INITIALIZED]
        eq(sorted(changes, key=repr), sorted([
            (TreeEvent.NODE_ADDED, "/recipes/tree", b""),
            (TreeEvent.NODE_ADDED, "/recipes/tree/x", b"x0"),
            (TreeEvent.NODE_ADDED, "/recipes/tree/x/y", b"y0"),
            (TreeEvent.NODE_UPDATED, "/recipes/tree/x", b"x1"),
            (TreeEvent.NODE_REMOVED, "/recipes/tree/x/y", b"y0"),
            (TreeEvent.NODE_REMOVED, "/recipes/tree/x", b"x1"),
        ], key=repr), "TreeCache events")

        # Semaphore and Party
        sem = a.Semaphore("/recipes/sem", max_leases=1, identifier="a")
        eq(sem.acquire(timeout=WAIT_S), True, "semaphore acquire")
        eq(b.Semaphore("/recipes/sem", max_leases=1, identifier="b").acquire(
            blocking=False), False, "semaphore full")
        eq(sem.lease_holders(), ["a"], "lease holders")
        sem.release()
        party = a.Party("/recipes/party", "pa")
        party.join()
        pb = b.Party("/recipes/party", "pb")
        pb.join()
        eq(sorted(party), ["pa", "pb"], "party members")
        pb.leave()
        eq(len(party), 1, "party after leave")
    finally:
        shut(a, b)


SCENARIOS = {
    "crud": scenario_crud,
    "nodes": scenario_nodes,
    "watches": scenario_watches,
    "multi": scenario_multi,
    "acl": scenario_acl,
    "sessions": scenario_sessions,
    "expiry": scenario_expiry,
    "reconnect": scenario_reconnect,
    "restart": scenario_restart,
    "events": scenario_events,
    "edges": scenario_edges,
    "pipeline": scenario_pipeline,
    "misc": scenario_misc,
    "recipes": scenario_recipes,
}


def main():
    if len(sys.argv) >= 3 and sys.argv[2] == "_hold":
        hold_session(sys.argv[1], sys.argv[3], sys.argv[4])
        return 0
    if len(sys.argv) != 3 or sys.argv[2] not in SCENARIOS:
        print("usage: kazoo_scenarios.py HOSTS {%s}" % "|".join(SCENARIOS),
              file=sys.stderr)
        return 2
    hosts, name = sys.argv[1], sys.argv[2]
    try:
        SCENARIOS[name](hosts)
    except Failed as e:
        print("FAILED %s: %s" % (name, e), flush=True)
        return 1
    print("OK %s" % name, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
