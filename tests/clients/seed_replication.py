"""The seed tutorial's last step, from a client's side: a write through one server is
read through each of the others, and a client given the whole ensemble's connect string
(hadoop1:2181,hadoop2:2181,hadoop3:2181) sees the same tree. Runs inside one of the
test's network namespaces, where the names hadoop1..3 resolve through /etc/hosts.

usage: seed_replication.py WRITE_HOST:PORT READ_HOST:PORT... -- CONNECT_STRING
Prints one line per step and `OK` at the end.
"""
import sys
import uuid

from kazoo.client import KazooClient

args = sys.argv[1:]
split = args.index("--")
write_host, read_hosts, ensemble = args[0], args[1:split], args[split + 1]

path = "/seed"
value = ("written through %s %s" % (write_host, uuid.uuid4())).encode()


def client(hosts):
    c = KazooClient(hosts=hosts, timeout=10)
    c.start(timeout=20)
    return c


def version(c, host):
    # The first line of `srvr` names the server software (the test checks it is the
    # target it meant to start).
    print("%s: %s" % (host, c.command(b"srvr").splitlines()[0]))


def shut(c):
    c.stop()
    c.close()


w = client(write_host)
w.ensure_path(path)
w.set(path, value)
w.create(path + "/child-", b"", sequence=True)
print("wrote %s through %s" % (path, write_host))
version(w, write_host)
shut(w)

for host in read_hosts:
    r = client(host)
    # A read is served by the server the client is connected to; sync makes it catch
    # up with the leader first, as the ZooKeeper guarantee says.
    r.sync(path)
    got, stat = r.get(path)
    assert got == value, "%s read %r, want %r" % (host, got, value)
    children = r.get_children(path)
    assert len(children) == 1, "%s children %r" % (host, children)
    print("read %s through %s: same value, zxid 0x%x" % (path, host, stat.mzxid))
    version(r, host)
    shut(r)

e = client(ensemble)
e.sync(path)
assert e.get(path)[0] == value
e.create(path + "/through-ensemble", b"e")
e.sync(path)
assert sorted(e.get_children(path))[-1] == "through-ensemble"
print("wrote and read through the ensemble %s" % ensemble)
shut(e)
print("OK")
