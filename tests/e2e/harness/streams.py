"""Byte streams and their checks: seeded payloads sent and received,
length and SHA-256 compared at both ends, round trips through a relay."""
import hashlib
import random
import socket
import time

from harness.addrs import local_spec, tcp4
from harness.procs import IO_TIMEOUT, Background


CHUNK = 65536
CLIENT = "127.0.0.77"   # a loopback source other than 127.0.0.1, for access rules


class Digest:
    """Length and SHA-256 of a byte stream, fed piece by piece."""

    def __init__(self):
        self.n = 0
        self._h = hashlib.sha256()

    def update(self, data):
        self.n += len(data)
        self._h.update(data)

    def result(self):
        return (self.n, self._h.hexdigest())


def digest_of(data):
    d = Digest()
    d.update(data)
    return d.result()


def payload(seed, nbytes):
    """nbytes of deterministic pseudo-random data, distinct per seed."""
    return random.Random(seed).randbytes(nbytes)


def send_stream(sock, seed, nbytes, progress=None):
    """Send nbytes of seeded pseudo-random data; return (length, sha256)."""
    rng = random.Random(seed)
    d = Digest()
    while d.n < nbytes:
        block = rng.randbytes(min(CHUNK, nbytes - d.n))
        sock.sendall(block)
        d.update(block)
        if progress:
            progress(d.n)
    return d.result()


def connect_from(port, source=CLIENT, host="127.0.0.1"):
    """A TCP connection to host:port from the loopback address source."""
    return socket.create_connection((host, port), timeout=IO_TIMEOUT,
                                    source_address=(source, 0))


def trickle(sock, data, pause):
    """Sends data one byte at a time, pause seconds apart: a slow client,
    each byte its own segment once TCP_NODELAY is set."""
    for b in data:
        sock.sendall(bytes([b]))
        time.sleep(pause)


def recv_all(sock, bufsize=CHUNK):
    """Read until EOF; return (length, sha256)."""
    d = Digest()
    while True:
        data = sock.recv(bufsize)
        if not data:
            return d.result()
        d.update(data)


def recv_until_eof(sock):
    buf = bytearray()
    while data := sock.recv(CHUNK):
        buf += data
    return bytes(buf)


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            raise AssertionError(f"EOF after {len(buf)} of {n} bytes")
        buf += data
    return bytes(buf)


def sink_reply(result):
    """What SinkBackend answers for a received (length, sha256)."""
    return f"{result[0]} {result[1]}\n".encode()


def wait_closed(sock, timeout):
    """Seconds until the peer closed the connection (EOF or reset), draining
    anything still arriving; fails if it is still open after timeout."""
    t0 = time.monotonic()
    while (left := t0 + timeout - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(CHUNK):
                break
        except ConnectionResetError:
            break
        except socket.timeout:
            continue
    else:
        raise AssertionError(f"connection still open after {timeout} s")
    return time.monotonic() - t0


def sink_roundtrip(addr, seed=1, nbytes=100_000):
    """Send a payload through addr to a SinkBackend and check its answer.
    Returns the client's own address as relayd would log it."""
    with addr.connect() as s:
        me = local_spec(s) if addr.family != socket.AF_UNIX else None
        sent = send_stream(s, seed, nbytes)
        s.shutdown(socket.SHUT_WR)
        answer = recv_until_eof(s)
    assert answer == sink_reply(sent), f"sent {sent}, sink answered {answer!r}"
    return me


def echo_roundtrip(sock, seed=1, nbytes=4096):
    """One request/answer exchange with an EchoBackend, connection kept open."""
    data = payload(seed, nbytes)
    sock.sendall(data)
    assert recv_exact(sock, len(data)) == data


def upload_while_reading(sock, seed, nbytes):
    """Sends nbytes (then half-closes) while reading to EOF; returns
    (sent, received), each as (length, sha256)."""
    def send():
        sent = send_stream(sock, seed, nbytes)
        sock.shutdown(socket.SHUT_WR)
        return sent
    sender = Background(send)
    got = recv_all(sock)
    return sender.result(), got


def echo_stream(sock, seed, nbytes):
    """Stream nbytes to an EchoBackend while reading the echo, half-close,
    read to EOF; asserts the echo's length and SHA-256 match what was sent."""
    sent, got = upload_while_reading(sock, seed, nbytes)
    assert got == sent, f"sent {sent}, echo returned {got}"


def sink_roundtrip_when_up(addr, relay=None, timeout=10, errors=(ConnectionRefusedError,)):
    """sink_roundtrip(addr) once something serves addr: a relay whose log
    (quiet, syslog) cannot say when it is ready, a relayd that
    systemd-socket-activate starts on the first client, an ssh -R forward
    coming up. errors are those that mean "not yet"; with relay, its exit
    ends the wait."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return sink_roundtrip(addr)
        except errors:
            if relay is not None:
                assert relay.alive() and time.monotonic() < deadline, \
                    f"relayd {relay.name} never listened on {addr}"
            elif time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def served_once_activated(port, timeout=10):
    """A round trip to 127.0.0.1:port, where systemd-socket-activate
    starts relayd on the first client (which it may refuse or reset while
    relayd starts)."""
    return sink_roundtrip_when_up(tcp4(port), timeout=timeout,
                                  errors=(ConnectionRefusedError, ConnectionResetError))


def sink_roundtrips_at_once(socks, seed):
    """Every socket in socks (all open already, each to a SinkBackend)
    sends a payload of its own at the same time and checks the sink's
    answer; returns what each sent as (length, sha256)."""
    def one(i):
        s = socks[i]
        sent = send_stream(s, seed + i, 20_000 + 1013 * i)
        s.shutdown(socket.SHUT_WR)
        return sent, recv_until_eof(s)
    workers = [Background(one, i) for i in range(len(socks))]
    sent = []
    for i, w in enumerate(workers):
        mine, answer = w.result()
        assert answer == sink_reply(mine), f"connection {i}: sent {mine}, got {answer!r}"
        sent.append(mine)
    return sent
