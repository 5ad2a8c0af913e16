"""Limits: idle timeout, --max-conns, bounded buffering against a slow
reader, and running out of descriptors without dying or spinning."""

import os
import re
import signal
import socket
import time

from conftest import (SANITIZE, Digest, assert_spliced, echo_roundtrip, echo_stream, free_port,
                      local_spec, recv_until_eof, tcp4, vmhwm, wait_closed)

MiB = 1 << 20


def test_idle_timeout_closes_idle_connection(relayd, echo):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", echo.spec, "--idle-timeout", "1")
    with tcp4(port).connect() as s:
        me = local_spec(s)
        echo_roundtrip(s)
        took = wait_closed(s, 5)
    assert 0.8 <= took <= 2.5, f"closed {took:.3f} s after the last byte, --idle-timeout 1"
    assert r.wait_conn(me)["end"] == "idle timeout"


def test_idle_timeout_spares_busy_connection(relayd, echo):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", echo.spec, "--idle-timeout", "1")
    with tcp4(port).connect() as s:
        me = local_spec(s)
        for i in range(8):                  # 2.4 s of traffic, never 1 s quiet
            echo_roundtrip(s, seed=i, nbytes=100)
            time.sleep(0.3)
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == b""
    assert r.wait_conn(me)["end"] == "eof"


def test_max_conns_rejects_the_excess(relayd, echo):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", echo.spec, "--max-conns", "2")
    with tcp4(port).connect() as a, tcp4(port).connect() as b:
        echo_roundtrip(a, seed=1)
        echo_roundtrip(b, seed=2)
        with tcp4(port).connect() as c:
            me = local_spec(c)
            wait_closed(c, 1.0)
        r.wait_log(rf"^relayd: refused {re.escape(me)}: --max-conns 2 reached$")
        echo_roundtrip(a, seed=3)
        echo_roundtrip(b, seed=4)


def test_max_conns_slot_freed(relayd, echo):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", echo.spec, "--max-conns", "1")
    with tcp4(port).connect() as a:
        echo_roundtrip(a)
        a.shutdown(socket.SHUT_WR)
        assert recv_until_eof(a) == b""
        r.wait_conn(local_spec(a))
    with tcp4(port).connect() as b:
        echo_stream(b, seed=5, nbytes=1 * MiB)
    assert "rejected" not in r.log()


def test_max_conns_flood_logged_a_few_lines_a_second(relayd, echo, figures):
    """3000 connections over --max-conns 1 while one is held: a few lines a
    second, then one that counts the rest, and every refusal is in them
    and in the status."""
    n = 3000
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", echo.spec, "--max-conns", "1")
    with tcp4(port).connect() as held:
        echo_roundtrip(held)
        t0 = time.monotonic()
        for _ in range(n):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.settimeout(5)
                assert s.recv(1) == b"", "a connection over --max-conns was served"
        took = time.monotonic() - t0
        time.sleep(1.2)             # the last second's count is said once it is over
        log = r.log()
        echo_roundtrip(held)
    lines = re.findall(r"^relayd: refused 127\.0\.0\.1:\d+: --max-conns 1 reached$", log, re.M)
    quiet = [int(q) for q in re.findall(
        r"^relayd: (\d+) more connections refused without a log line$", log, re.M)]
    said = re.findall(r"^relayd: .*max-conns.*$", log, re.M)
    assert len(said) <= 5 * (took + 2), f"{len(said)} lines about --max-conns in {took:.1f} s"
    figures(f"{n} refused in {took:.2f} s: {len(said)} lines about them, "
            f"{len(lines)} naming a client, counts {quiet}")
    assert len(lines) + sum(quiet) == n, (len(lines), quiet)
    os.kill(r.pid, signal.SIGUSR1)
    status = r.wait_log(r"^relayd: status: relay .*$").group(0)
    assert f" {n} rejected," in status, status


def socket_buffers_allowance():
    """What the kernel alone may hold between target and client: the largest
    send and receive buffers of both TCP connections, plus 32 MiB for
    relayd. Far below the 250 MiB an unbounded relay would take in."""
    def largest(name):
        with open(f"/proc/sys/net/ipv4/{name}") as f:
            return int(f.read().split()[2])
    return 2 * (largest("tcp_rmem") + largest("tcp_wmem")) + 32 * MiB


def test_slow_reader_bounded_memory(relayd, backends):
    # The target can send 256 MiB in well under a second; the client reads a
    # trickle for 3 s, then the rest at full speed. Backpressure must reach
    # the target instead of relayd buffering the difference.
    total = 256 * MiB
    target = backends.pump(total, seed=21)
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", target.spec)
    base = vmhwm(r.pid)
    got = Digest()
    with tcp4(port).connect() as s:
        me = local_spec(s)
        s.shutdown(socket.SHUT_WR)
        trickle_end = time.monotonic() + 3
        while time.monotonic() < trickle_end:
            got.update(s.recv(4096))
            time.sleep(0.002)
        in_flight = target.records[0]["sent_so_far"] - got.n
        assert in_flight < socket_buffers_allowance(), \
            f"target is {in_flight >> 20} MiB ahead of a slow client"
        while data := s.recv(1 << 20):
            got.update(data)
    [rec] = target.wait_done(1)
    assert got.result() == rec["sent"]
    peak = vmhwm(r.pid)
    if SANITIZE:
        assert peak - base < 32 * MiB, f"VmHWM grew {(peak - base) >> 20} MiB (ASan build)"
    else:
        assert peak < 32 * MiB, f"VmHWM {peak >> 20} MiB"
    c = r.wait_conn(me)
    assert (c["inb"], c["outb"], c["end"]) == (0, total, "eof"), c["line"]
    assert_spliced(c)


def test_fd_exhaustion_pauses_accepts(relayd, echo):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", echo.spec, nofile=64)
    flood = []
    try:
        for _ in range(200):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            flood.append(s)
        r.wait_log(r"pausing accepts$", timeout=10)
        cpu0, t0 = r.cpu_seconds(), time.monotonic()
        time.sleep(2)
        cpu1, t1 = r.cpu_seconds(), time.monotonic()
        assert r.alive()
        busy = (cpu1 - cpu0) / (t1 - t0)
        assert busy < 0.5, f"relayd used {busy:.0%} of a CPU while out of descriptors"
    finally:
        for s in flood:
            s.close()
    with tcp4(port).connect(timeout=20) as s:
        echo_stream(s, seed=8, nbytes=1 * MiB)
    assert r.alive()
    # Checked last so that a wording difference does not hide the behaviour.
    r.wait_log(rf"^relayd: accept on 127\.0\.0\.1:{port}: Too many open files; pausing accepts$", timeout=0)
