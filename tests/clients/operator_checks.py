"""Checks an operator or a client library makes that no other scenario covers.

Usage: operator_checks.py HOST:PORT SCENARIO
Prints "OK <scenario>" on success; any failed check raises with the values seen.
"""
import socket
import struct
import sys


def expect(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: expected {want!r}, got {got!r}")


def zktop(hostport):
    # zktop parses options at import; give it an empty command line.
    sys.argv = ["zktop"]
    import zktop as zt

    server = zt.ZKServer(hostport, 0)
    expect("zktop could parse stat", server.unavailable, False)
    expect("mode", server.mode, "standalone")
    if not server.version.startswith("3."):
        raise AssertionError(f"version {server.version!r}")
    # zktop's own connection is listed among the clients, and it parsed each line.
    if len(server.sessions) < 1:
        raise AssertionError(f"no sessions parsed from stat: {server.sessions!r}")
    for s in server.sessions:
        int(s.recved), int(s.sent), int(s.queued)
    int(server.node_count), int(server.min_latency), float(server.avg_latency)
    int(server.zxid, 16)


def superdigest(hostport):
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoAuthError
    from kazoo.security import make_digest_acl

    owner = KazooClient(hosts=hostport, auth_data=[("digest", "alice:secret")])
    owner.start(timeout=30)
    owner.create("/locked", b"v", acl=[make_digest_acl("alice", "secret", all=True)])

    stranger = KazooClient(hosts=hostport)
    stranger.start(timeout=30)
    try:
        stranger.get("/locked")
        raise AssertionError("a stranger read a node only alice may read")
    except NoAuthError:
        pass

    # The super user of zoo.cfg's superDigest (super:admin) passes every ACL check.
    root = KazooClient(hosts=hostport, auth_data=[("digest", "super:admin")])
    root.start(timeout=30)
    expect("super reads", root.get("/locked")[0], b"v")
    root.set("/locked", b"w")
    root.delete("/locked")
    expect("gone", root.exists("/locked"), None)
    for c in (owner, stranger, root):
        c.stop()
        c.close()


def zxid_ahead(hostport):
    """A client that has seen a later zxid than the server must be refused: the server
    closes the connection without a ConnectResponse ("client must try another server")."""
    host, port = hostport.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=30)
    last_zxid_seen = 0x7FFF_0000_0000_0000
    body = struct.pack(">iqiqi16s?", 0, last_zxid_seen, 30000, 0, 16, b"\0" * 16, False)
    s.sendall(struct.pack(">i", len(body)) + body)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    expect("bytes answered to a client from the future", data, b"")

    # A client that has seen nothing newer than the server is served as usual.
    s = socket.create_connection((host, int(port)), timeout=30)
    body = struct.pack(">iqiqi16s?", 0, 0, 30000, 0, 16, b"\0" * 16, False)
    s.sendall(struct.pack(">i", len(body)) + body)
    head = s.recv(4)
    expect("ConnectResponse length", struct.unpack(">i", head)[0], 37)


SCENARIOS = {"zktop": zktop, "superdigest": superdigest, "zxid_ahead": zxid_ahead}

if __name__ == "__main__":
    hostport, name = sys.argv[1], sys.argv[2]
    SCENARIOS[name](hostport)
    print(f"OK {name}")
