"""Raw-socket scenario for `cargo xtask golden record` (run with /usr/bin/python3).

Speaks jute by hand to send the requests no library client sends (stand-alone check,
checkWatches, multiRead, a multi with every create variant, deleteContainer from a
client, an unknown opcode), so the golden set holds ZooKeeper's real replies to them.
Same control protocol as kazoo_scenario.py: `@step <label>`, then wait for `ok`.
"""
import socket
import struct
import sys

HOST, PORT = sys.argv[1].rsplit(":", 1)
PORT = int(PORT)
OPEN_ACL = [(31, "world", "anyone")]


def step(label):
    sys.stdout.write("@step " + label + "\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != "ok":
        raise SystemExit("recorder went away")


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def boolean(v):
    return b"\x01" if v else b"\x00"


def buf(b):
    return i32(-1) if b is None else i32(len(b)) + b


def ustr(s):
    return buf(s.encode())


def acls(lst):
    return i32(len(lst)) + b"".join(i32(p) + ustr(s) + ustr(i) for p, s, i in lst)


def mh(op, done=False, err=-1):
    return i32(op) + boolean(done) + i32(err)


class Conn:
    def __init__(self):
        self.s = socket.create_connection((HOST, PORT))
        self.s.settimeout(10)
        self.xid = 0
        body = i32(0) + i64(0) + i32(10000) + i64(0) + buf(b"\x00" * 16) + boolean(False)
        self.send(body)
        self.read_frame()

    def send(self, payload):
        self.s.sendall(i32(len(payload)) + payload)

    def read_frame(self):
        head = self.recv_exact(4)
        (n,) = struct.unpack(">i", head)
        return self.recv_exact(n)

    def recv_exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.s.recv(n - len(out))
            if not chunk:
                raise EOFError("server closed the connection")
            out += chunk
        return out

    def call(self, op, body):
        """Sends one request and returns (err, reply body), skipping notifications."""
        self.xid += 1
        self.send(i32(self.xid) + i32(op) + body)
        while True:
            frame = self.read_frame()
            xid, _zxid, err = struct.unpack(">iqi", frame[:16])
            if xid == self.xid:
                return err, frame[16:]


def attempt(conn, label, op, body):
    step(label)
    try:
        err, rest = conn.call(op, body)
        print("  %s -> err %d, %d body bytes" % (label, err, len(rest)))
    except (EOFError, OSError) as e:
        print("  %s -> %s" % (label, e))


def create_body(path, data=b"", flags=0):
    return ustr(path) + buf(data) + acls(OPEN_ACL) + i32(flags)


def main():
    step("connect")
    c = Conn()
    attempt(c, "create /raw", 1, create_body("/raw", b"r"))
    attempt(c, "stand-alone check ok", 13, ustr("/raw") + i32(0))
    attempt(c, "stand-alone check BadVersion", 13, ustr("/raw") + i32(5))
    attempt(c, "stand-alone check NoNode", 13, ustr("/raw/nope") + i32(-1))
    attempt(c, "exists with watch (data watch)", 3, ustr("/raw") + boolean(True))
    attempt(c, "checkWatches Data: present", 17, ustr("/raw") + i32(2))
    attempt(c, "checkWatches Children: NoWatcher", 17, ustr("/raw") + i32(1))
    attempt(c, "checkWatches Any: present", 17, ustr("/raw") + i32(3))
    attempt(c, "removeWatches Data", 18, ustr("/raw") + i32(2))
    attempt(c, "create /raw/a", 1, create_body("/raw/a", b"alpha"))
    attempt(c, "multiRead: getChildren, getData, getData NoNode", 22,
            mh(8) + ustr("/raw") + boolean(False)
            + mh(4) + ustr("/raw/a") + boolean(False)
            + mh(4) + ustr("/raw/nope") + boolean(False)
            + mh(-1, True, -1))
    attempt(c, "multiRead with no ops", 22, mh(-1, True, -1))
    attempt(c, "multi: create2, createTTL, createContainer, setData, check, delete", 14,
            mh(15) + create_body("/raw/c2", b"x")
            + mh(21) + create_body("/raw/ttl", b"t", 5) + i64(600000)
            + mh(19) + create_body("/raw/cont", b"c", 4)
            + mh(5) + ustr("/raw") + buf(b"d") + i32(-1)
            + mh(13) + ustr("/raw") + i32(1)
            + mh(2) + ustr("/raw/a") + i32(0)
            + mh(-1, True, -1))
    attempt(c, "multi fails on createTTL NodeExists", 14,
            mh(15) + create_body("/raw/c3", b"x")
            + mh(21) + create_body("/raw/ttl", b"t", 5) + i64(600000)
            + mh(-1, True, -1))
    attempt(c, "multi with no ops", 14, mh(-1, True, -1))
    attempt(c, "getChildren2", 12, ustr("/raw") + boolean(False))
    attempt(c, "create with null data", 1, ustr("/raw/null") + buf(None) + acls(OPEN_ACL) + i32(0))
    attempt(c, "getData of null data", 4, ustr("/raw/null") + boolean(False))
    attempt(c, "setData to null", 5, ustr("/raw/c2") + buf(None) + i32(-1))
    attempt(c, "addWatch persistent", 106, ustr("/raw") + i32(0))
    attempt(c, "removeWatches Persistent", 18, ustr("/raw") + i32(4))
    attempt(c, "create container", 19, create_body("/raw/cont2", b"c", 4))
    attempt(c, "deleteContainer sent by a client (raw path body)", 20, b"/raw/cont2")
    attempt(c, "closeSession", -11, b"")

    step("second connection")
    c = Conn()
    attempt(c, "unknown opcode 10 (Unimplemented, then the server closes)", 10, ustr("/raw"))
    step("done")


if __name__ == "__main__":
    main()
