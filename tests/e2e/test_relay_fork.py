"""--fork: one process per connection, each as unprivileged as the parent,
each reaped when its connection ends."""

import socket
import time

import pytest

from conftest import (Background, assert_dropped, children_of, echo_roundtrip,
                      free_port, proc_status, recv_until_eof, sink_roundtrip, tcp4)

NOBODY = 65534


def wait_children(r, n, timeout=2):
    deadline = time.monotonic() + timeout
    while len(kids := children_of(r.pid)) != n and time.monotonic() < deadline:
        time.sleep(0.02)
    return kids


def test_fork_serves(relayd, sink):
    port = free_port()
    r = relayd("--fork", "--listen", f"127.0.0.1:{port}", "--to", sink.spec)
    sink_roundtrip(tcp4(port), seed=1, nbytes=2_000_000)
    many = [Background(sink_roundtrip, tcp4(port), seed, 500_000) for seed in range(2, 12)]
    for job in many:
        job.result()
    assert [c["end"] for c in r.wait_conns(11)] == ["eof"] * 11


@pytest.mark.root
def test_fork_children_dropped(relayd, echo):
    port = free_port()
    r = relayd("--fork", "--listen", f"127.0.0.1:{port}", "--to", echo.spec)
    socks = [tcp4(port).connect() for _ in range(3)]
    try:
        for i, s in enumerate(socks):
            echo_roundtrip(s, seed=i)
        kids = wait_children(r, 3)
        assert len(kids) == 3, f"3 open connections, children {kids}"
        for pid, _ in kids:
            assert_dropped(proc_status(pid), NOBODY, NOBODY)
    finally:
        for s in socks:
            s.close()


def test_fork_children_reaped(relayd, echo):
    port = free_port()
    r = relayd("--fork", "--listen", f"127.0.0.1:{port}", "--to", echo.spec)
    socks = [tcp4(port).connect() for _ in range(5)]
    for i, s in enumerate(socks):
        echo_roundtrip(s, seed=i)
    assert len(wait_children(r, 5)) == 5
    for s in socks:
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == b""
        s.close()
    left = wait_children(r, 0, timeout=2)
    zombies = [pid for pid, state in left if state == "Z"]
    assert not zombies, f"zombie children {zombies} 2 s after their connections ended"
    assert not left, f"children {left} still there 2 s after their connections ended"
    assert [c["end"] for c in r.wait_conns(5)] == ["eof"] * 5


def test_fork_from_a_config_file_leaves_the_parent_serving(tmp_path, relayd, sink):
    """With a config file relayd also runs the tunnels' keeper: a --fork
    child that ends must neither stop it nor take the parent's status
    requests."""
    from conftest import run_relayd
    port, control = free_port(), tmp_path / "control.sock"
    conf = tmp_path / "relayd.conf"
    conf.write_text(f"control = {control}\n\n[relay web]\nlisten = 127.0.0.1:{port}\n"
                    f"to = {sink.spec}\nfork = yes\n")
    conf.chmod(0o600)
    r = relayd("-c", conf)
    keeper = int(r.wait_log(r"^relayd: tunnel keeper (\d+) running").group(1))
    for seed in range(3):
        sink_roundtrip(tcp4(port), seed=seed, nbytes=300_000)
    assert [c["end"] for c in r.wait_conns(3)] == ["eof"] * 3
    deadline = time.monotonic() + 5
    while r.children():
        assert time.monotonic() < deadline, f"children {r.children()} not reaped"
        time.sleep(0.02)
    assert r.alive() and keeper in [pid for pid, _ in children_of(r.pid)]
    assert "shutting down" not in r.log()
    p = run_relayd("--status", "--control", control)
    assert p.returncode == 0, p
    assert f"relay web: listening on 127.0.0.1:{port}; 0 active, 3 total" in p.stdout, p.stdout
    r.stop()
