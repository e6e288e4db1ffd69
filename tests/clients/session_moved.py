"""A session that moves to another server: the client that reconnected keeps its
session, its ephemeral and the session's data; a write still sent through the old
server's connection is refused (ZooKeeper's checkSession owner test) and that connection
is closed, so the client sees ConnectionLoss; the write is never applied.

usage: session_moved.py HOST:PORT_A HOST:PORT_B
"""
import sys
import time

from kazoo.client import KazooClient
from kazoo.exceptions import SessionMovedError

a_host, b_host = sys.argv[1], sys.argv[2]
a = KazooClient(hosts=a_host, timeout=10)
a.start(timeout=15)
a.ensure_path("/moved")
a.create("/moved/eph", b"a", ephemeral=True)
session, passwd = a.client_id

b = KazooClient(hosts=b_host, timeout=10, client_id=(session, passwd))
b.start(timeout=15)
assert b.client_id[0] == session, "reconnected with another session"
b.sync("/moved")
assert b.exists("/moved/eph") is not None, "the ephemeral went with the move"
b.set("/moved/eph", b"b")
print("moved session", hex(session))

# The first connection is still open to server A, which no longer holds the session.
# ZooKeeper does not answer such a write: it closes the old connection
# (FinalRequestProcessor on SessionMoved), so the client sees ConnectionLoss.
try:
    a.create("/moved/stale", b"x")
    outcome = "accepted"
except SessionMovedError:
    outcome = "SessionMoved"
except Exception as e:
    outcome = type(e).__name__
print("stale write through the old server:", outcome)
assert outcome in ("ConnectionLoss", "SessionMoved"), outcome

b.sync("/moved")
assert b.exists("/moved/stale") is None, "the stale write was applied"
assert b.get("/moved/eph")[0] == b"b"
b.stop()
b.close()
try:
    a.stop()
    a.close()
except Exception:
    pass
print("ok")
