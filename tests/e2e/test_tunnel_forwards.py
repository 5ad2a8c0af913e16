"""Forwards carry bytes untouched through a real sshd: -R from the server's
port to a backend here, -L from a port here to a backend the server reaches,
-D as a SOCKS5 proxy; volume, many channels at once, half-closes."""

import re
import socket
import time

import pytest

from conftest import (curl_digest, echo_roundtrip, echo_stream, free_port, fwd, listening,
                      recv_exact, recv_until_eof, run_relayd, sink_reply, sink_roundtrip,
                      sink_roundtrips_at_once, tcp4, tcp6, trickle, upload_while_reading,
                      wait_closed)

MiB = 1 << 20


def exchange(addr, seed, nbytes):
    """Uploads nbytes to a PumpBackend through addr while downloading what it
    sends; returns (sent, received) as (length, sha256)."""
    with addr.connect() as s:
        return upload_while_reading(s, seed, nbytes)


def test_remote_64mib_each_way(tunnel, backends):
    target = backends.pump(64 * MiB, seed=21)
    rport = free_port()
    spec = f"{rport}:{target.spec}"
    t = tunnel("-R", spec)
    sent, got = exchange(fwd(rport), 22, 64 * MiB)
    [rec] = target.wait_done(1)
    assert rec.get("received") == sent, "server side -> backend stream differs"
    assert got == rec.get("sent"), "backend -> server side stream differs"
    [c] = t.wait_conns(1, f"-R {spec}")
    assert (c["inb"], c["outb"]) == (64 * MiB, 64 * MiB), c["line"]
    t.relayd.stop()


def test_remote_50_channels_at_once(tunnel, sink, tmp_path):
    # Packets for many channels made in one pass leave in one write: after
    # 50 channels at once the status counts fewer writes than packets (one
    # write each, unbatched), and at least four packets went to each channel
    # (open confirmation, data, EOF, close).
    n = 50
    rport = free_port()
    control = tmp_path / "control.sock"
    spec = f"{rport}:{sink.spec}"
    t = tunnel("-R", spec, "--control", control)
    socks = [fwd(rport).connect() for _ in range(n)]      # all open before any data
    try:
        sent = sink_roundtrips_at_once(socks, 500)
    finally:
        for s in socks:
            s.close()
    assert sorted(r["received"] for r in sink.wait_done(n)) == sorted(sent)
    assert len(t.wait_conns(n, f"-R {spec}")) == n
    p = run_relayd("--status", "--control", control)
    assert p.returncode == 0, p
    m = re.search(r"^tunnel - \S+: up, 0 reconnects, (\d+) packets sent in (\d+) writes$",
                  p.stdout, re.M)
    assert m, p.stdout
    packets, writes = int(m[1]), int(m[2])
    assert packets >= 4 * n, p.stdout
    assert writes < packets, p.stdout


def test_remote_port_zero_allocated_by_server(tunnel, sink):
    spec = f"0:{sink.spec}"
    t = tunnel("-R", spec, up=False)
    port = t.wait_up("R", spec)
    assert 0 < port < 65536
    sink_roundtrip(fwd(port))
    [rec] = sink.wait_done(1)
    assert rec["received"][0] == 100_000


def test_local_forward(tunnel, sink):
    lport = free_port()
    t = tunnel("-L", f"{lport}:{sink.spec}")
    sink_roundtrip(fwd(lport), seed=5, nbytes=3 * MiB)
    [rec] = sink.wait_done(1)
    [c] = t.wait_conns(1)
    assert c["forward"].startswith("-L "), c["line"]
    assert (c["inb"], c["outb"]) == (3 * MiB, len(sink_reply(rec["received"]))), c["line"]


def test_local_forward_compressed(tunnel, echo):
    lport = free_port()
    tunnel("-L", f"{lport}:{echo.spec}", "-C")
    with fwd(lport).connect() as s:
        echo_stream(s, 9, 2 * MiB)


def test_ipv6_server_address(make_sshd, tunnel, sink):
    server = make_sshd(ipv6=True)
    rport = free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}", server=server, host="::1")
    assert t.dest == f"root@[::1]:{server.port}"
    sink_roundtrip(fwd(rport))


# ---------------------------------------------------------------- -D (SOCKS5)

def test_dynamic_curl_socks5_hostname(tunnel, http_backend):
    dport = free_port()
    tunnel("-D", str(dport))
    got = curl_digest(f"http://localhost:{http_backend.port}/blob",
                      "--socks5-hostname", f"127.0.0.1:{dport}")
    assert got == http_backend.digest


ATYP = {"ipv4": 1, "domain": 3, "ipv6": 4}
BOUND_LEN = {1: 4, 4: 16}


def socks5_connect(proxy, kind, host, port):
    """A SOCKS5 CONNECT (no authentication) through proxy; returns the socket
    and the reply's REP field, with the bound address read off if REP is 0."""
    s = proxy.connect()
    s.sendall(b"\x05\x01\x00")
    assert recv_exact(s, 2) == b"\x05\x00", "no-authentication method not chosen"
    if kind == "domain":
        addr = bytes([len(host)]) + host.encode()
    else:
        addr = socket.inet_pton(socket.AF_INET if kind == "ipv4" else socket.AF_INET6, host)
    s.sendall(b"\x05\x01\x00" + bytes([ATYP[kind]]) + addr + port.to_bytes(2, "big"))
    ver, rep, _, atyp = recv_exact(s, 4)
    assert ver == 5, f"reply version {ver}"
    if rep == 0:
        n = BOUND_LEN.get(atyp) or recv_exact(s, 1)[0]
        recv_exact(s, n + 2)
    return s, rep


@pytest.mark.parametrize("kind,host,family", [
    ("ipv4", "127.0.0.1", socket.AF_INET),
    ("ipv6", "::1", socket.AF_INET6),
    ("domain", "localhost", socket.AF_INET),
], ids=["ipv4", "ipv6", "domain"])
def test_dynamic_raw_socks5(tunnel, backends, kind, host, family):
    echo = backends.echo(tcp4() if family == socket.AF_INET else tcp6())
    dport = free_port()
    t = tunnel("-D", str(dport))
    s, rep = socks5_connect(fwd(dport), kind, host, echo.addr.port)
    with s:
        assert rep == 0, f"CONNECT {host}:{echo.addr.port} failed with REP {rep}"
        echo_roundtrip(s)
        echo_stream(s, 3, 1 * MiB)
    [rec] = echo.wait_done(1)
    assert rec["received"] == 4096 + MiB
    assert len(t.wait_conns(1)) == 1


def test_dynamic_connect_refused(tunnel, echo):
    dead = free_port()                  # nothing listens there
    dport = free_port()
    t = tunnel("-D", str(dport))
    s, rep = socks5_connect(fwd(dport), "ipv4", "127.0.0.1", dead)
    with s:
        assert rep != 0, f"CONNECT to closed port {dead} answered success"
        wait_closed(s, 5)
    assert t.relayd.alive()
    s, rep = socks5_connect(fwd(dport), "ipv4", "127.0.0.1", echo.addr.port)
    with s:
        assert rep == 0, f"CONNECT after a refused one failed with REP {rep}"
        echo_roundtrip(s)


def test_sigterm_exits_0_and_closes_the_forward(tunnel, sink):
    rport = free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}")
    sink_roundtrip(fwd(rport))
    t.relayd.stop(within=2.0)
    deadline = time.monotonic() + 5
    while listening(tcp4(rport)):
        assert time.monotonic() < deadline, f"the server still listens on {rport} for a dead tunnel"
        time.sleep(0.05)


def test_dynamic_handshake_dribbled_and_early_data_kept(tunnel, echo):
    """A client that sends its handshake one byte at a time is served, and
    bytes it sends right behind its request (before the reply) reach the
    target: the handshake reads exactly its own messages."""
    dport = free_port()
    tunnel("-D", str(dport))
    port = echo.addr.port
    request = bytes([5, 1, 0, 1, 127, 0, 0, 1, port >> 8, port & 0xff])
    with fwd(dport).connect() as s:
        trickle(s, bytes([5, 1, 0]), 0.05)
        assert recv_exact(s, 2) == bytes([5, 0])
        trickle(s, request[:-1], 0.05)
        s.sendall(request[-1:] + b"early bytes")
        reply = recv_exact(s, 10)
        assert reply[:2] == bytes([5, 0]), reply
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == b"early bytes"


def test_dynamic_partial_greeting_costs_no_cpu(tunnel):
    """One byte of a greeting, then silence: relayd waits without spinning
    and drops the client at its handshake deadline."""
    dport = free_port()
    t = tunnel("-D", str(dport))
    with fwd(dport).connect() as s:
        s.sendall(b"\x05")
        cpu0, t0 = t.relayd.cpu_seconds(), time.monotonic()
        time.sleep(1.5)
        busy = (t.relayd.cpu_seconds() - cpu0) / (time.monotonic() - t0)
        assert busy < 0.2, f"relayd used {busy:.0%} of a CPU on a 1-byte greeting"
        wait_closed(s, 15)
    assert t.relayd.alive()


def test_remote_burst_of_connections_all_served(tunnel, sink):
    """120 connections arriving at once on the server's -R port (fewer than
    sshd's listen backlog of 128) all reach the backend: none is refused for
    waiting in libssh2's accept queue, which used to hold 64."""
    n = 120
    rport = free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}")
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", rport))
            socks.append(s)
        for i, s in enumerate(socks):
            s.setblocking(True)
            s.settimeout(10)
            s.sendall(b"x" * (i + 1))
            s.shutdown(socket.SHUT_WR)
        for i, s in enumerate(socks):
            answer = recv_until_eof(s)
            assert answer.startswith(f"{i + 1} ".encode()), f"connection {i}: {answer!r}"
    finally:
        for s in socks:
            s.close()
    assert len(t.wait_conns(n)) == n


def test_dynamic_stalled_handshakes_from_one_address_leave_room(tunnel, http_backend,
                                                                   tmp_path, figures):
    """300 clients from 127.0.0.2 that never finish their SOCKS5 greeting
    hold at most a quarter of the handshake slots: a client from 127.0.0.1
    is served meanwhile, and every one turned away is counted in the
    status and logged a few lines a second."""
    n, share = 300, 64
    dport = free_port()
    control = tmp_path / "control.sock"
    t = tunnel("-D", str(dport), "--control", control)
    stalled = []

    def stall():
        s = socket.create_connection(("127.0.0.1", dport), timeout=5,
                                     source_address=("127.0.0.2", 0))
        stalled.append(s)
        try:
            s.sendall(b"\x05")      # half a greeting, then nothing
        except OSError:
            pass                    # turned away already
        return s

    try:
        for _ in range(n):
            stall()
        # One listening socket accepts in order: once this one is turned
        # away, every one before it has been looked at.
        wait_closed(stall(), 5)
        t0 = time.monotonic()
        got = curl_digest(f"http://localhost:{http_backend.port}/blob",
                          "--socks5-hostname", f"127.0.0.1:{dport}")
        assert got == http_backend.digest
        took = time.monotonic() - t0
        open_ = 0
        for s in stalled:
            s.setblocking(False)
            try:
                open_ += s.recv(1) != b""
            except BlockingIOError:
                open_ += 1
            except ConnectionResetError:
                pass
        assert open_ == share, f"{open_} stalled handshakes kept, wanted {share}"
        time.sleep(1.2)             # the last second's count is said once it is over
        p = run_relayd("--status", "--control", control)
        log = t.relayd.log()
    finally:
        for s in stalled:
            s.close()
    refused = n + 1 - share
    assert p.returncode == 0, p
    assert re.search(rf"forward -D (?:127\.0\.0\.1:)?{dport}: listening; \d+ active, \d+ total, {refused} rejected,"
                     rf".*; refused: denied=0 per-ip=0 rate=0 handshake={refused}$",
                     p.stdout, re.M), p.stdout
    lines = re.findall(r"^relayd: -D \S+: refused 127\.0\.0\.2:\d+: "
                       r"too many SOCKS handshakes from this address$", log, re.M)
    quiet = [int(q) for q in re.findall(
        r"^relayd: -D \S+: (\d+) more connections refused without a log line$", log, re.M)]
    figures(f"{n + 1} stalled clients from 127.0.0.2: {share} kept, {len(lines)} refusal "
            f"lines, counts {quiet}; curl from 127.0.0.1 served in {took:.2f} s")
    assert len(lines) <= 15, f"{len(lines)} refusal lines"
    assert len(lines) + sum(quiet) == refused, (len(lines), quiet)
