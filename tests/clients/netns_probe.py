"""TCP from inside a network namespace, for the test of the harness's iptables link
faults (tests/tests/cluster_netns.rs): the test process cannot enter a namespace
itself, so it runs this there with `ip netns exec`. Standard library only.

usage:
  netns_probe.py serve IP PORT      echo server; prints `listening` once bound
  netns_probe.py probe IP PORT      one new connection and one round trip
  netns_probe.py hold IP PORT       one connection, a round trip now and one more for
                                    every line read from stdin (the line is the read
                                    timeout in seconds)

Every round trip prints one word: ok, refused, reset, closed or timeout.
"""
import socket
import sys
import threading


def echo(conn):
    with conn:
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                return
            if not data:
                return
            try:
                conn.sendall(data)
            except OSError:
                return


def serve(ip, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen(16)
    print("listening", flush=True)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def roundtrip(s, timeout):
    s.settimeout(timeout)
    try:
        s.sendall(b"ping")
        data = s.recv(4)
    except socket.timeout:
        return "timeout"
    except ConnectionResetError:
        return "reset"
    except OSError as e:
        return "error:%s" % e.__class__.__name__
    return "ok" if data == b"ping" else "closed"


def connect(ip, port, timeout):
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((ip, port))
    except socket.timeout:
        return None, "timeout"
    except ConnectionRefusedError:
        return None, "refused"
    except OSError as e:
        return None, "error:%s" % e.__class__.__name__
    return s, None


def main():
    cmd, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if cmd == "serve":
        serve(ip, port)
    elif cmd == "probe":
        s, err = connect(ip, port, 2.0)
        print(err or roundtrip(s, 2.0), flush=True)
    elif cmd == "hold":
        s, err = connect(ip, port, 2.0)
        if err:
            print(err, flush=True)
            return
        print(roundtrip(s, 2.0), flush=True)
        for line in sys.stdin:
            print(roundtrip(s, float(line.strip() or "2")), flush=True)
    else:
        sys.exit("unknown command %s" % cmd)


main()
