"""--workers N: N event loops, each accepting on its own SO_REUSEPORT socket
(unix and systemd sockets are watched by every loop), every byte intact,
counts summed in --status, --max-conns over all loops, reload and drain,
and every thread with only CAP_NET_BIND_SERVICE."""

import os
import re
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (Background, Digest, assert_dropped, echo_roundtrip, free_port,
                      local_spec, payload, proc_status, recv_until_eof, run_relayd,
                      served_once_activated, sink_reply, sink_roundtrip,
                      sink_roundtrips_at_once, tcp4, unix, wait_closed)

EX_USAGE, EX_UNAVAILABLE, EX_CONFIG = 64, 69, 78
NOBODY = 65534
PARALLEL = 48


def tasks(pid):
    return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))


def status_of(control):
    p = run_relayd("--status", "--control", control)
    assert p.returncode == 0, p
    return p.stdout


def per_loop(text, name):
    m = re.search(rf"^accepted per loop for relay {name}:((?: \d+)+)$", text, re.M)
    assert m, text
    return [int(n) for n in m.group(1).split()]


def many_at_once(addr, n, seed):
    """n connections open at the same time, each through a sink round trip
    with its own payload (length and sha256 checked at both ends)."""
    socks = [addr.connect() for _ in range(n)]
    try:
        return sink_roundtrips_at_once(socks, seed)
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("loops", [2, 3])
def test_every_loop_accepts_and_bytes_arrive(tmp_path, relayd, sink, loops):
    port, control = free_port(), tmp_path / "ctl"
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", sink.spec, "--workers", loops,
               "--control", control)
    r.wait_log(rf"^relayd: accepting in {loops} event loops$", timeout=0)
    assert len(tasks(r.pid)) == loops
    n = 0
    for round_ in range(3):
        n += len(many_at_once(tcp4(port), PARALLEL, seed=100 * round_))
    r.wait_conns(n, timeout=10)
    assert all(c["end"] == "eof" for c in r.conns())
    text = status_of(control)
    counts = per_loop(text, "-")
    assert len(counts) == loops and sum(counts) == n, text
    # The kernel hashes each new connection to one socket: with this many
    # clients, more than one loop must have taken some.
    assert sum(1 for c in counts if c > 0) >= 2, text
    assert re.search(rf"^relay -: listening on 127\.0\.0\.1:{port}; 0 active, {n} total, "
                     r"0 rejected, in=\d+ out=\d+ spliced=\d+$", text, re.M), text
    r.stop()


def test_one_worker_is_one_thread(relayd, sink):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", sink.spec, "--workers", 1)
    assert tasks(r.pid) == [r.pid]
    sink_roundtrip(tcp4(port))
    assert "event loops" not in r.log() and "accepted per loop" not in r.log()
    r.stop()


def test_fork_runs_one_loop(relayd, sink):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", sink.spec, "--fork")
    assert tasks(r.pid) == [r.pid]
    sink_roundtrip(tcp4(port))
    r.stop()


def test_unix_listener_is_served_by_every_loop(tmp_path, relayd, sink):
    path, control = tmp_path / "in.sock", tmp_path / "ctl"
    r = relayd("--listen", f"unix:{path}", "--to", sink.spec, "--workers", 2,
               "--control", control)
    n = len(many_at_once(unix(str(path)), PARALLEL, seed=7))
    r.wait_conns(n, timeout=10)
    assert sum(per_loop(status_of(control), "-")) == n
    r.stop()


def test_max_conns_counts_every_loop(relayd, echo):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", echo.spec, "--max-conns", 2,
               "--workers", 3)
    with tcp4(port).connect() as a, tcp4(port).connect() as b:
        echo_roundtrip(a, seed=1)
        echo_roundtrip(b, seed=2)
        # Whichever loop each lands in, all of them are over the limit.
        # The loops share the refusal log: five lines, then one count.
        for _ in range(12):
            with tcp4(port).connect() as c:
                wait_closed(c, 2.0)
        deadline = time.monotonic() + 3     # a second's count is said once it is over
        while True:
            log = r.log()
            lines = re.findall(r"^relayd: refused 127\.0\.0\.1:\d+: --max-conns 2 reached$",
                               log, re.M)
            quiet = re.findall(r"^relayd: (\d+) more connections refused without a log line$",
                               log, re.M)
            if len(lines) + sum(map(int, quiet)) == 12 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(lines) + sum(map(int, quiet)) == 12, (lines, quiet)
        assert len(lines) <= 10, lines
        echo_roundtrip(a, seed=3)
        echo_roundtrip(b, seed=4)
    r.wait_conns(2)
    r.stop()


def test_max_conns_per_ip_counts_every_loop(tmp_path, relayd, echo):
    port, control = free_port(), tmp_path / "ctl"
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", echo.spec, "--max-conns-per-ip", 2,
               "--workers", 3, "--control", control)
    with tcp4(port).connect() as a, tcp4(port).connect() as b:
        echo_roundtrip(a, seed=1)
        echo_roundtrip(b, seed=2)
        for _ in range(12):
            with tcp4(port).connect() as c:
                wait_closed(c, 2.0)
        text = status_of(control)
        assert re.search(r"; 2 active, 2 total, 12 rejected, .*; refused: denied=0 "
                         r"per-ip=12 rate=0 handshake=0$", text, re.M), text
        echo_roundtrip(a, seed=3)
    r.stop()


def test_port_in_use_still_fails(relayd, sink):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", sink.spec, "--workers", 2)
    p = run_relayd("--listen", f"127.0.0.1:{port}", "--to", sink.spec, "--workers", 2)
    assert p.returncode == EX_UNAVAILABLE, p
    assert "Address already in use" in p.stderr and len(p.stderr.splitlines()) == 1, p
    sink_roundtrip(tcp4(port))
    r.stop()


@pytest.mark.root
def test_every_thread_keeps_only_net_bind_service(relayd, sink, low_port):
    r = relayd("--listen", f"127.0.0.1:{low_port}", "--to", sink.spec, "--workers", 3)
    many_at_once(tcp4(low_port), 16, seed=3)
    ids = tasks(r.pid)
    assert len(ids) >= 3, ids
    for t in ids:
        st = proc_status(f"{r.pid}/task/{t}")
        assert_dropped(st, NOBODY, NOBODY)
        assert st["Seccomp"] == "2", (t, st["Seccomp"])     # and the sandbox
    r.stop()


@pytest.mark.parametrize("value, why", [
    ("0", "--workers: must be at least 1"),
    ("abc", '--workers: "abc" is not a number'),
    ("-2", '--workers: "-2" is not a number'),
    ("257", "--workers: 257 is larger than 256"),
])
def test_bad_value_is_one_line_and_64(value, why):
    p = run_relayd("--listen", "127.0.0.1:1", "--to", "127.0.0.1:2", "--workers", value)
    assert p.returncode == EX_USAGE, p
    assert p.stderr == f"relayd: {why}\n", p


def test_fork_with_workers_is_refused():
    p = run_relayd("--listen", "127.0.0.1:1", "--to", "127.0.0.1:2", "--fork",
                   "--workers", 2)
    assert p.returncode == EX_USAGE, p
    assert len(p.stderr.splitlines()) == 1 and "--fork cannot be combined with " \
        "--workers 2" in p.stderr, p


def write_conf(directory, text):
    path = Path(directory) / "relayd.conf"
    path.write_text(text)
    path.chmod(0o644)       # nobody reads it again on SIGHUP
    return path


def relay_section(name, listen, to):
    return f"[relay {name}]\nlisten = {listen}\nto = {to}\n"


def test_config_key(tmp_path, relayd, sink):
    port = free_port()
    conf = write_conf(tmp_path, "workers = 3\n" + relay_section("a", f"127.0.0.1:{port}",
                                                                 sink.spec))
    r = relayd("-c", conf)
    r.wait_log(r"^relayd: accepting in 3 event loops$", timeout=0)
    assert len(tasks(r.pid)) == 3
    many_at_once(tcp4(port), 8, seed=5)
    r.stop()


def test_bad_config_value(tmp_path):
    conf = write_conf(tmp_path, "workers = 0\n" + relay_section("a", "127.0.0.1:1",
                                                                 "127.0.0.1:2"))
    p = run_relayd("-c", conf, "--check")
    assert p.returncode == EX_CONFIG, p
    assert f"{conf}:1: --workers: must be at least 1" in p.stderr, p


@pytest.fixture
def open_dir():
    """A directory nobody may read: a dropped relayd re-reads its config
    there on SIGHUP (pytest's own temp dirs are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="relayd-workers-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def wait_active(control, name, n, timeout=10):
    """Until --status says relay name has n live connections."""
    deadline = time.monotonic() + timeout
    while not re.search(rf"^relay {name}: .*; {n} active,", text := status_of(control), re.M):
        assert time.monotonic() < deadline, text
        time.sleep(0.05)


class Stream:
    """One client connection to a SinkBackend whose bytes are sent in
    parts, possibly around a signal to relayd; finish() sends the last part
    and checks the sink's (length, sha256) of everything."""

    def __init__(self, addr, seed):
        self.sock = addr.connect()
        self.seed = seed
        self.digest = Digest()
        self.send(1000)

    def send(self, nbytes):
        self.seed += 1
        data = payload(self.seed, nbytes)
        self.sock.sendall(data)
        self.digest.update(data)

    def finish(self, nbytes):
        self.send(nbytes)
        self.sock.shutdown(socket.SHUT_WR)
        reply = recv_until_eof(self.sock)
        self.sock.close()
        assert reply == sink_reply(self.digest.result()), (self.seed, reply)
        return True


def finish_all(streams, nbytes):
    """Every stream's last part at the same time."""
    jobs = [Background(st.finish, nbytes + 777 * i) for i, st in enumerate(streams)]
    assert all(j.result() for j in jobs)


@pytest.mark.root
def test_reload_keeps_and_drains_connections_in_every_loop(open_dir, relayd, sink, low_port):
    keep, gone, control = free_port(), free_port(), open_dir / "ctl"
    conf = write_conf(open_dir, f"workers = 2\ncontrol = {control}\n" +
                      relay_section("keep", f"127.0.0.1:{keep}", sink.spec) +
                      relay_section("gone", f"127.0.0.1:{gone}", sink.spec))
    r = relayd("-c", conf)
    # Connections in flight on both relays, spread over the loops.
    streams = [Stream(tcp4(keep), 10 * i) for i in range(8)]
    streams += [Stream(tcp4(gone), 10 * i + 100) for i in range(8)]
    # Accepted, not just queued: closing a listener resets its queue.
    wait_active(control, "keep", 8)
    wait_active(control, "gone", 8)
    conf.write_text(f"workers = 2\ncontrol = {control}\n" + relay_section("keep", f"127.0.0.1:{keep}", sink.spec) +
                    relay_section("low", f"127.0.0.1:{low_port}", sink.spec))
    os.kill(r.pid, signal.SIGHUP)
    r.wait_log(r"reloaded: 2 relays, 0 tunnels \(1 unchanged\)", timeout=10)
    # The removed relay no longer accepts; its connections go on.
    with pytest.raises(ConnectionRefusedError):
        sink_roundtrip(tcp4(gone))
    finish_all(streams, 200_000)
    r.wait_conns(16, timeout=10)
    assert all(c["end"] == "eof" for c in r.conns()), r.conns()
    # The new relay bound a port below 1024 with the capability kept.
    many_at_once(tcp4(low_port), 16, seed=40)
    r.stop()


def test_drain_waits_for_connections_in_every_loop(tmp_path, relayd, sink):
    port, control = free_port(), tmp_path / "ctl"
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", sink.spec, "--workers", 3,
               "--drain-timeout", 20, "--control", control)
    streams = [Stream(tcp4(port), 10 * i) for i in range(12)]
    wait_active(control, "-", 12)
    os.kill(r.pid, signal.SIGTERM)
    r.wait_log(r"^relayd: draining 12 connections for up to 20 s$")
    finish_all(streams, 30_000)
    assert r.wait_exit(10) == 0
    assert [c["end"] for c in r.conns()] == ["eof"] * 12, r.conns()


def test_reload_keeps_the_running_loops(open_dir, relayd, sink):
    port = free_port()
    conf = write_conf(open_dir, "workers = 2\n" + relay_section("a", f"127.0.0.1:{port}",
                                                                 sink.spec))
    r = relayd("-c", conf)
    conf.write_text("workers = 3\n" + relay_section("a", f"127.0.0.1:{port}", sink.spec))
    os.kill(r.pid, signal.SIGHUP)
    r.wait_log(r"^relayd: workers = 3 takes a restart; 2 event loops keep running$")
    r.wait_log(r"^relayd: reloaded: 1 relays, 0 tunnels \(1 unchanged\)$")
    assert len(tasks(r.pid)) == 2
    # --fork cannot join loops that are running: the reload is refused.
    conf.write_text(relay_section("a", f"127.0.0.1:{port}", sink.spec) + "fork = yes\n")
    os.kill(r.pid, signal.SIGHUP)
    r.wait_log(r"^relayd: --fork needs one event loop, and 2 are running: restart relayd "
               r"with --workers 1$")
    r.wait_log(r"^relayd: reload rejected: the running configuration stays$")
    many_at_once(tcp4(port), 8, seed=9)
    assert len(tasks(r.pid)) == 2
    r.stop()


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate is not installed")
def test_socket_from_systemd_is_served_by_every_loop(open_dir, relayd, sink):
    """An inherited socket cannot be bound again with SO_REUSEPORT: both
    loops watch it, and every client is served whole by one of them."""
    port, control = free_port(), open_dir / "ctl"
    conf = write_conf(open_dir, f"workers = 2\ncontrol = {control}\n" +
                      relay_section("web", f"127.0.0.1:{free_port()}", sink.spec))
    r = relayd("-c", conf, ready=False,
               prefix=("systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--fdname=web"))
    served_once_activated(port)     # it starts relayd when the first client comes
    r.wait_ready()
    n = 1 + len(many_at_once(tcp4(port), PARALLEL, seed=11))
    r.wait_conns(n, timeout=10)
    text = status_of(control)
    assert re.search(rf"^relay web: listening on 127\.0\.0\.1:{port}; 0 active, {n} total",
                     text, re.M), text
    assert sum(per_loop(text, "web")) == n, text
    r.stop()
