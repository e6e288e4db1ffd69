"""TLS clients (Debian's python3-kazoo 2.8 with use_ssl, and Python's ssl module)
against a server's secure client port (secureClientPort).

Usage: /usr/bin/python3 kazoo_tls.py SCENARIO ARGS...

  crud SECURE_HOSTS PLAIN_HOSTS CA CERT KEY
      kazoo over TLS: create, read, set, delete and watch events, checked against a
      second, plain client on the ordinary client port.
  secure_only SECURE_HOSTS CA CERT KEY
      kazoo over TLS against a server with no plain client port: create a znode in
      one session, read it back in a second one.
  refused SECURE_HOSTS CA CERT KEY
      A kazoo client that must not get a session (CERT and KEY may be "-": none).
  connects SECURE_HOSTS CA CERT KEY
      A kazoo client that must get a session (CERT and KEY may be "-").
  peer HOST PORT CA CERT KEY
      One TLS connection with Python's ssl module (hostname checked): the serial of
      the server's certificate, and the four-letter word `ruok` over TLS.
  held SECURE_HOSTS CA CERT KEY
      A kazoo session over TLS that prints READY, waits for a line on stdin, and then
      checks that it is still the same session and was never disconnected.

Each scenario exits non-zero with a message at the first difference, prints
`RESULT key=value` lines that tests/tests/tls_client.rs checks too, and `OK <scenario>`
at the end. The same scenarios pass against Apache ZooKeeper 3.8.
"""

import logging
import queue
import socket
import ssl
import sys

from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState

WAIT_S = 30.0


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def eq(actual, expected, what):
    if actual != expected:
        raise Failed(f"{what}: expected {expected!r}, got {actual!r}")


def result(key, value):
    print(f"RESULT {key}={value}", flush=True)


def opt(path):
    return None if path == "-" else path


class Errors(logging.Handler):
    """What kazoo logs about dropped connections: the TLS error is only there."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        msg = record.getMessage()
        if "Connection dropped" in msg or "SSL" in msg:
            self.messages.append(msg)


def tls_client(hosts, ca, cert, key, **kw):
    return KazooClient(
        hosts=hosts,
        use_ssl=True,
        ca=ca,
        certfile=opt(cert),
        keyfile=opt(key),
        verify_certs=True,
        timeout=10.0,
        **kw,
    )


def negotiated(zk):
    """The TLS version of the live connection (kazoo keeps its socket private)."""
    sock = zk._connection._socket
    check(isinstance(sock, ssl.SSLSocket), f"kazoo's socket is not TLS: {sock!r}")
    return sock.version()


def scenario_crud(secure, plain_hosts, ca, cert, key):
    zk = tls_client(secure, ca, cert, key)
    zk.start(timeout=WAIT_S)
    plain = KazooClient(hosts=plain_hosts, timeout=10.0)
    plain.start(timeout=WAIT_S)
    try:
        result("tls_version", negotiated(zk))
        check(zk.client_id[0] != 0, "no session id over TLS")
        events = queue.Queue()

        def watcher(event):
            events.put((event.type, event.path))

        def next_event(what):
            try:
                return events.get(timeout=WAIT_S)
            except queue.Empty:
                raise Failed(f"no watch event: {what}")

        eq(zk.create("/tls", b"parent"), "/tls", "create /tls")
        eq(zk.create("/tls/node", b"one"), "/tls/node", "create /tls/node")
        data, stat = zk.get("/tls/node", watch=watcher)
        eq((data, stat.version), (b"one", 0), "get over TLS")
        # Written over TLS, read over the plain port: one server, one tree.
        eq(plain.get("/tls/node")[0], b"one", "get over the plain port")

        # Changed from the plain port: the TLS session's watch fires.
        plain.set("/tls/node", b"two")
        eq(next_event("data watch"), ("CHANGED", "/tls/node"), "data watch event")
        data, stat = zk.get("/tls/node")
        eq((data, stat.version), (b"two", 1), "get after the plain client's set")

        stat = zk.set("/tls/node", b"three", version=1)
        eq(stat.version, 2, "set over TLS")
        eq(plain.get("/tls/node")[0], b"three", "plain read of the TLS set")

        eq(zk.get_children("/tls", watch=watcher), ["node"], "children over TLS")
        check(zk.exists("/tls/node", watch=watcher) is not None, "exists over TLS")
        zk.delete("/tls/node")
        got = sorted([next_event("delete"), next_event("delete")])
        eq(got, [("CHILD", "/tls"), ("DELETED", "/tls/node")], "delete events")
        eq(zk.exists("/tls/node"), None, "deleted over TLS")
        eq(plain.exists("/tls/node"), None, "deleted, seen over the plain port")
        eq(events.qsize(), 0, "no further events")
        result("events", "CHANGED,CHILD,DELETED")
    finally:
        zk.stop()
        zk.close()
        plain.stop()
        plain.close()


def scenario_secure_only(secure, ca, cert, key):
    zk = tls_client(secure, ca, cert, key)
    zk.start(timeout=WAIT_S)
    try:
        result("tls_version", negotiated(zk))
        eq(zk.create("/secure-only", b"tls"), "/secure-only", "create over TLS")
        first = zk.client_id[0]
    finally:
        zk.stop()
        zk.close()
    zk = tls_client(secure, ca, cert, key)
    zk.start(timeout=WAIT_S)
    try:
        check(zk.client_id[0] != first, "the second session is a new one")
        data, stat = zk.get("/secure-only")
        eq((data, stat.version), (b"tls", 0), "get in a second TLS session")
        result("data", data.decode())
    finally:
        zk.stop()
        zk.close()


def attempt(secure, ca, cert, key):
    """Tries for a session for a few seconds; returns (connected, logged errors)."""
    errors = Errors()
    logging.getLogger("kazoo").addHandler(errors)
    logging.getLogger("kazoo").setLevel(logging.DEBUG)
    zk = tls_client(secure, ca, cert, key)
    try:
        zk.start(timeout=5.0)
        connected = zk.connected
    except Exception as e:  # kazoo raises its timeout error
        errors.messages.append(f"start: {type(e).__name__}: {e}")
        connected = False
    finally:
        zk.stop()
        zk.close()
    return connected, errors.messages


def scenario_refused(secure, ca, cert, key):
    connected, errors = attempt(secure, ca, cert, key)
    result("connected", connected)
    # One line for the Rust side: the TLS errors kazoo logged.
    unique = list(dict.fromkeys(e.replace("\n", " ") for e in errors))
    result("errors", " | ".join(unique))
    check(not connected, "got a session that must be refused")


def scenario_connects(secure, ca, cert, key):
    connected, errors = attempt(secure, ca, cert, key)
    result("connected", connected)
    check(connected, f"no session: {errors}")


def der_serial(der):
    """The serial number of a DER certificate, as hex (leading zeros dropped)."""

    def item(i):
        tag, length = der[i], der[i + 1]
        i += 2
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(der[i : i + n], "big")
            i += n
        return tag, i, i + length

    _, cert_start, _ = item(0)  # Certificate
    _, tbs_start, _ = item(cert_start)  # TBSCertificate
    tag, start, end = item(tbs_start)
    if tag == 0xA0:  # [0] version
        tag, start, end = item(end)
    eq(tag, 0x02, "serial number tag")
    return der[start:end].hex().lstrip("0") or "0"


def scenario_peer(host, port, ca, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    if opt(cert):
        ctx.load_cert_chain(certfile=cert, keyfile=key)
    with socket.create_connection((host, int(port)), timeout=WAIT_S) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            result("serial", der_serial(s.getpeercert(binary_form=True)))
            s.sendall(b"ruok")
            answer = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
            result("ruok", answer.decode())


def scenario_held(secure, ca, cert, key):
    zk = tls_client(secure, ca, cert, key)
    zk.start(timeout=WAIT_S)
    states = []
    zk.add_listener(lambda state: states.append(state))
    try:
        session = zk.client_id[0]
        sock = zk._connection._socket
        zk.create("/held", b"before", ephemeral=True)
        print(f"READY {session:x}", flush=True)
        line = sys.stdin.readline()
        eq(line.strip(), "CHECK", "the test's go-ahead")
        zk.set("/held", b"after")
        data, stat = zk.get("/held")
        eq(data, b"after", "data after the certificate changed")
        eq(stat.ephemeralOwner, session, "the ephemeral is still this session's")
        eq(zk.client_id[0], session, "session id")
        check(zk._connection._socket is sock, "kazoo reconnected (a new socket)")
        eq(states, [], "connection state changes while the certificate changed")
        eq(zk.state, KazooState.CONNECTED, "state")
        result("same_session", True)
    finally:
        zk.stop()
        zk.close()


SCENARIOS = {
    "crud": scenario_crud,
    "secure_only": scenario_secure_only,
    "refused": scenario_refused,
    "connects": scenario_connects,
    "peer": scenario_peer,
    "held": scenario_held,
}


def main():
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    name, args = sys.argv[1], sys.argv[2:]
    try:
        SCENARIOS[name](*args)
    except Failed as e:
        print(f"FAILED {name}: {e}", flush=True)
        sys.exit(1)
    print(f"OK {name}", flush=True)


if __name__ == "__main__":
    main()
