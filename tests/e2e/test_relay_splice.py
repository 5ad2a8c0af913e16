"""The splicing data path: TCP to TCP bytes go through pipes with splice(),
everything else is copied, --no-splice copies everything, and either way the
bytes arrive whole. The whole suite also runs with --no-splice (make check),
so every other test covers both paths; these say which path was taken."""

import os
import re
import signal
import socket
import time

import pytest

from conftest import (SPLICING, Background, HeaderSink, assert_spliced, echo_roundtrip, free_port,
                      local_spec, recv_all, recv_until_eof, run_relayd, send_stream, sink_reply,
                      tcp4, tcp6, unix, upload_while_reading)

MiB = 1 << 20
EX_CONFIG = 78
PIPES_KEPT = 16         # spare pipes relay/pipepool.c keeps per thread (loop)


def pipe_fds(pid):
    """How many of pid's descriptors are pipes (libevent has some of its
    own: compare with the count before any connection)."""
    d = f"/proc/{pid}/fd"
    return sum(os.readlink(f"{d}/{fd}").startswith("pipe:") for fd in os.listdir(d))


def both_ways(addr, target, nbytes, seed):
    """nbytes each way at once through addr to a PumpBackend; checks length
    and SHA-256 at both ends. Returns the client's address as relayd logs it."""
    with addr.connect() as s:
        me = local_spec(s)
        sent, got = upload_while_reading(s, seed, nbytes)
    deadline = time.monotonic() + 10
    while not (mine := [r for r in list(target.records)
                        if r["done"] and r.get("received") == sent]):
        assert time.monotonic() < deadline, f"no target connection received {sent}"
        time.sleep(0.01)
    assert "error" not in mine[0], mine[0]
    assert got == mine[0]["sent"], "target -> client stream differs"
    return me


@pytest.mark.parametrize("family", [tcp4, tcp6])
def test_tcp_to_tcp_is_spliced(relayd, backends, family):
    target = backends.pump(8 * MiB, addr=family(), seed=31)
    listen = family(free_port())
    r = relayd("--listen", listen.spec, "--to", target.spec)
    me = both_ways(listen, target, 8 * MiB, seed=32)
    c = r.wait_conn(me)
    assert (c["inb"], c["outb"], c["end"]) == (8 * MiB, 8 * MiB, "eof"), c["line"]
    assert_spliced(c)


def test_unix_target_is_copied(relayd, backends, sockdir):
    target = backends.pump(4 * MiB, addr=unix(sockdir / "target.sock"), seed=33)
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", target.spec)
    base = pipe_fds(r.pid)
    me = both_ways(tcp4(port), target, 4 * MiB, seed=34)
    c = r.wait_conn(me)
    assert (c["inb"], c["outb"], c["end"]) == (4 * MiB, 4 * MiB, "eof"), c["line"]
    assert "spliced=" not in c["line"], c["line"]
    assert pipe_fds(r.pid) == base


def test_proxy_header_first_then_spliced(relayd, backends):
    # relayd writes the header itself, before the pump starts: the bytes
    # after it may then be spliced, and arrive after it, whole.
    target = backends._make(HeaderSink, None)
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", target.spec,
               "--proxy-protocol", "v1")
    with tcp4(port).connect() as s:
        me, cport = local_spec(s), s.getsockname()[1]
        sent = send_stream(s, 44, 4 * MiB)
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == sink_reply(sent)
    [rec] = target.wait_done(1)
    assert rec["header"] == f"PROXY TCP4 127.0.0.1 127.0.0.1 {cport} {port}\r\n".encode()
    assert rec["received"] == sent
    c = r.wait_conn(me)
    assert c["inb"] == 4 * MiB, c["line"]
    assert_spliced(c)


def test_status_counts_spliced_bytes(relayd, backends, tmp_path):
    target = backends.pump(3 * MiB, seed=35)
    port = free_port()
    control = tmp_path / "control.sock"
    relayd("--listen", f"127.0.0.1:{port}", "--to", target.spec, "--control", control)
    both_ways(tcp4(port), target, 5 * MiB, seed=36)
    p = run_relayd("--status", "--control", control)
    assert p.returncode == 0, p
    m = re.search(r"in=(\d+) out=(\d+) spliced=(\d+)$", p.stdout, re.M)
    assert m, p.stdout
    assert (int(m[1]), int(m[2])) == (5 * MiB, 3 * MiB), p.stdout
    assert (4 * MiB < int(m[3]) <= 8 * MiB) if SPLICING else int(m[3]) == 0, p.stdout


def test_idle_connections_hold_no_pipe(relayd, echo):
    # Each connection moves bytes both ways, then stays open and idle: only
    # the pool's few spares may remain, never a pipe per connection.
    # One loop: each keeps spares of its own.
    n = 3 * PIPES_KEPT
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", echo.spec, "--workers", "1")
    base = pipe_fds(r.pid)
    socks = [tcp4(port).connect() for _ in range(n)]
    try:
        for i, s in enumerate(socks):
            echo_roundtrip(s, seed=i, nbytes=256 * 1024)
        pipes = pipe_fds(r.pid) - base
        assert pipes <= 2 * PIPES_KEPT, f"{pipes // 2} pipes for {n} idle connections"
        assert (pipes > 0) == SPLICING, f"{pipes} pipe descriptors"
        for i, s in enumerate(socks):       # and they still work
            echo_roundtrip(s, seed=n + i, nbytes=1000)
    finally:
        for s in socks:
            s.close()
    r.wait_conns(n)


def wait_pipe_fds(pid, n, timeout=10):
    deadline = time.monotonic() + timeout
    while (got := pipe_fds(pid)) != n:
        assert time.monotonic() < deadline, f"{got} pipe descriptors, wanted {n}"
        time.sleep(0.02)


def test_pool_exhausted_falls_back_to_copying(relayd, backends):
    # 64 descriptors allow 4 pipes. Four clients that do not read keep one
    # full pipe (or, had the pool been empty, a buffer) each; a fifth
    # connection then finds none and is copied, whole, and the four still
    # get every byte once they read.
    stuck_n = 4
    target = backends.pump(16 * MiB, seed=37)
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", target.spec, nofile=64)
    base = pipe_fds(r.pid)
    stuck = [tcp4(port).connect() for _ in range(stuck_n)]
    try:
        for s in stuck:
            s.shutdown(socket.SHUT_WR)
        if SPLICING:
            wait_pipe_fds(r.pid, base + 2 * stuck_n)
        me = both_ways(tcp4(port), target, 2 * MiB, seed=38)
        c = r.wait_conn(me)
        assert (c["inb"], c["outb"], c["end"]) == (2 * MiB, 16 * MiB, "eof"), c["line"]
        assert ("spliced=" in c["line"]) == SPLICING, c["line"]
        got = [Background(recv_all, s) for s in stuck]
        got = [g.result() for g in got]
        # Every target connection sent the same seeded stream.
        sent = target.wait_done(stuck_n + 1)[0]["sent"]
        assert got == [sent] * stuck_n
    finally:
        for s in stuck:
            s.close()
    conns = r.wait_conns(stuck_n + 1)
    moved = sum(c["inb"] + c["outb"] for c in conns)
    spliced = sum(c["spliced"] for c in conns)
    assert 0 < spliced < moved if SPLICING else spliced == 0, [c["line"] for c in conns]


def test_no_splice_in_the_config_file(relayd, backends, tmp_path):
    target = backends.pump(2 * MiB, seed=38)
    port = free_port()
    conf = tmp_path / "relayd.conf"
    conf.write_text(f"no-splice = yes\n[relay a]\nlisten = 127.0.0.1:{port}\n"
                    f"to = {target.spec}\n")
    conf.chmod(0o600)
    assert run_relayd("-c", conf, "--check").returncode == 0
    r = relayd("-c", conf)
    me = both_ways(tcp4(port), target, 2 * MiB, seed=39)
    c = r.wait_conn(me)
    assert (c["inb"], c["outb"]) == (2 * MiB, 2 * MiB), c["line"]
    assert "spliced=" not in c["line"], c["line"]


def test_no_splice_takes_yes_or_no(tmp_path):
    conf = tmp_path / "relayd.conf"
    conf.write_text("no-splice = maybe\n[relay a]\nlisten = 127.0.0.1:1234\n"
                    "to = 127.0.0.1:9\n")
    conf.chmod(0o600)
    p = run_relayd("-c", conf, "--check")
    assert p.returncode == EX_CONFIG, p
    assert f"{conf}:1: no-splice: \"maybe\" is not yes or no" in p.stderr, p.stderr


@pytest.mark.skipif(not SPLICING, reason="--no-splice on the command line wins")
def test_reload_turns_splicing_off_for_new_connections(relayd, backends, sockdir):
    target = backends.pump(1 * MiB, seed=41)
    port = free_port()
    conf = sockdir / "relayd.conf"
    section = f"[relay a]\nlisten = 127.0.0.1:{port}\nto = {target.spec}\n"
    conf.write_text(section)
    conf.chmod(0o644)       # read again after the drop to nobody
    r = relayd("-c", conf)
    first = both_ways(tcp4(port), target, 1 * MiB, seed=42)
    assert_spliced(r.wait_conn(first))
    conf.write_text("no-splice = yes\n" + section)
    os.kill(r.pid, signal.SIGHUP)
    r.wait_log(r"reloaded: 1 relays, 0 tunnels \(1 unchanged\)", timeout=10)
    second = both_ways(tcp4(port), target, 1 * MiB, seed=43)
    # The second line, not the first client's: a port may be used again.
    c = r.wait_conns(2)[1]
    assert c["client"] == second, (c["line"], second)
    assert (c["inb"], "spliced=" in c["line"]) == (1 * MiB, False), c["line"]
    r.stop()


def test_small_exchanges_are_copied(relayd, echo):
    # Requests and answers shorter than the buffer never fill it: they are
    # copied, and the connection never takes a pipe.
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", echo.spec, "--workers", "1")
    base = pipe_fds(r.pid)
    with tcp4(port).connect() as s:
        me = local_spec(s)
        for i in range(20):
            echo_roundtrip(s, seed=i, nbytes=1000)
        assert pipe_fds(r.pid) == base
    c = r.wait_conn(me)
    assert (c["inb"], c["outb"], c["spliced"]) == (20_000, 20_000, 0), c["line"]
    assert ("spliced=" in c["line"]) == SPLICING, c["line"]
