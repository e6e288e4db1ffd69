"""kazoo's reconfig against an ensemble: as the super user, remove one member
(incremental `leaving`), check the answer and /zookeeper/config agree, refuse a
change based on a stale config version (BadVersion), and remove a stranger (accepted:
only the version changes). Prints RESULT lines for the Rust side and OK at the end.

usage: kazoo_reconfig.py HOSTS LEAVING_ID
"""
import sys
import time

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, ConnectionLoss, MarshallingError

hosts, leaving = sys.argv[1], sys.argv[2]
# In the given order: the first server is the one being removed.
zk = KazooClient(
    hosts=hosts,
    timeout=30,
    auth_data=[("digest", "super:admin")],
    randomize_hosts=False,
)
zk.start(timeout=60)
before, stat = zk.get("/zookeeper/config")
before = before.decode()
old_version = before.strip().splitlines()[-1]
assert f"server.{leaving}=" in before, before

data, stat = zk.reconfig(joining=None, leaving=leaving, new_members=None)
after = data.decode()
assert f"server.{leaving}=" not in after, after
assert after.strip().splitlines()[-1] != old_version, (before, after)
# On Rookery the removed server stops serving right after answering; sync (safe to
# repeat) until kazoo is connected to a member again.
deadline = time.time() + 60
while True:
    try:
        zk.sync("/zookeeper/config")
        break
    except ConnectionLoss:
        if time.time() > deadline:
            raise
        time.sleep(0.2)
read, _ = zk.get("/zookeeper/config")
assert read.decode() == after, (read, after)

# A change computed from the configuration before ours.
stale = int(old_version.split("=")[1], 16)
try:
    zk.reconfig(joining=None, leaving=leaving, new_members=None, from_config=stale)
    raise AssertionError("a stale from_config was accepted")
except BadVersionError:
    pass
# Removing a server that is not a member changes nothing but the version, as in
# ZooKeeper; a leaving id that is not a number is refused (MarshallingError, as
# ZooKeeper's failed number parse).
same, _ = zk.reconfig(joining=None, leaving="99", new_members=None)
same = same.decode()
assert same.strip().splitlines()[:-1] == after.strip().splitlines()[:-1], (same, after)
assert same.strip().splitlines()[-1] != after.strip().splitlines()[-1], (same, after)
after = same
try:
    zk.reconfig(joining=None, leaving="x", new_members=None)
    raise AssertionError("a leaving id that is not a number was accepted")
except MarshallingError:
    pass

print("RESULT config=" + after.replace("\n", "|"))
print("OK")
zk.stop()
