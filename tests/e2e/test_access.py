"""Access control: --allow/--deny for IPv4 and IPv6 (first match wins),
--max-conns-per-ip and --rate; refused clients cost no target connection,
are counted in the status and logged a few lines a second at most."""

import os
import re
import signal
import socket
import threading
import time

from conftest import (CLIENT, connect_from, echo_roundtrip, free_port, run_relayd,
                      sink_roundtrip, tcp4, tcp6, wait_closed)


def assert_refused(sock):
    """relayd closes a refused connection at once, having read nothing."""
    wait_closed(sock, 5)


def status_line(r, timeout=5):
    """The relay's line of a fresh SIGUSR1 status report."""
    rx = re.compile(r"^relayd: status: relay .*$", re.M)
    before = len(rx.findall(r.log()))
    os.kill(r.pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while len(lines := rx.findall(r.log())) == before:
        assert time.monotonic() < deadline, "no status line after SIGUSR1"
        time.sleep(0.02)
    return lines[-1]


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_deny_v4_refuses_before_dialling(relayd, sink):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", sink.spec,
               "--deny", f"{CLIENT}/32")
    with connect_from(port) as s:
        s.sendall(b"never forwarded")
        assert_refused(s)
    r.wait_log(rf"^relayd: refused {re.escape(CLIENT)}:\d+: denied by --deny {CLIENT}/32$")
    assert sink.records == []
    sink_roundtrip(tcp4(port))          # 127.0.0.1 is not denied
    assert len(sink.wait_done(1)) == 1
    assert re.search(r"1 rejected.*; refused: denied=1 per-ip=0 rate=0 handshake=0$",
                     status_line(r))


def test_allow_v4_denies_the_rest(relayd, sink):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", sink.spec,
               "--deny", "127.0.0.1", "--allow", "127.0.0.0/8", "--allow", "10.0.0.0/8")
    with connect_from(port) as s:      # 127.0.0.77: allowed by 127.0.0.0/8
        s.sendall(b"x")
        s.shutdown(socket.SHUT_WR)
        wait_closed(s, 5)
    assert len(sink.wait_done(1)) == 1
    with tcp4(port).connect() as s:     # 127.0.0.1: the first match denies
        assert_refused(s)
    r.wait_log(r"^relayd: refused 127\.0\.0\.1:\d+: denied by --deny 127\.0\.0\.1/32$")
    r2port = free_port()
    r2 = relayd("--listen", f"127.0.0.1:{r2port}", "--to", sink.spec, "--allow", "10.0.0.0/8")
    with tcp4(r2port).connect() as s:
        assert_refused(s)
    r2.wait_log(r"^relayd: refused 127\.0\.0\.1:\d+: denied \(no --allow matches\)$")
    assert len(sink.records) == 1


def test_allow_and_deny_v6(relayd, sink):
    port, port2 = free_port(), free_port()
    r = relayd("--listen", f"[::1]:{port}", "--to", sink.spec, "--allow", "::1/128")
    sink_roundtrip(tcp6(port))
    assert len(sink.wait_done(1)) == 1
    r2 = relayd("--listen", f"[::1]:{port2}", "--to", sink.spec,
                "--deny", "2001:db8::/32", "--deny", "::/0")
    with tcp6(port2).connect() as s:
        assert_refused(s)
    r2.wait_log(r"^relayd: refused \[::1\]:\d+: denied by --deny ::/0$")
    assert len(sink.records) == 1
    assert r.alive()


def test_denied_flood_never_exhausts_the_relay(relayd, sink):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", sink.spec,
               "--deny", f"{CLIENT}/32", nofile=64)
    done = []

    def flood(n=250):
        for _ in range(n):
            with connect_from(port) as s:
                s.sendall(b"x" * 100)
                wait_closed(s, 5)
            done.append(1)

    t0 = time.monotonic()
    threads = [threading.Thread(target=flood) for _ in range(4)]
    for t in threads:
        t.start()
    served = 0
    try:
        # Served all along, with 64 descriptors and a thousand refusals.
        while served < 20 or any(t.is_alive() for t in threads):
            sink_roundtrip(tcp4(port), seed=served, nbytes=20_000)
            served += 1
    finally:
        for t in threads:
            t.join(60)
    took = time.monotonic() - t0
    assert len(done) == 1000
    assert len(sink.wait_done(served)) == served
    assert len(sink.records) == served, "a denied client reached the target"
    assert re.search(r"; refused: denied=1000 ", status_line(r))
    # A few lines a second, then one that counts the rest.
    lines = len(re.findall(r"^relayd: refused ", r.log(), re.M))
    assert lines <= 5 * (took + 2), f"{lines} refusal lines in {took:.1f} s"
    assert fds(r.pid) < 20
    r.stop()


def test_max_conns_per_ip(relayd, echo):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", echo.spec, "--max-conns-per-ip", "2")
    with connect_from(port) as a, connect_from(port) as b:
        echo_roundtrip(a, seed=1)
        echo_roundtrip(b, seed=2)
        with connect_from(port) as c:
            assert_refused(c)
        r.wait_log(rf"^relayd: refused {re.escape(CLIENT)}:\d+: --max-conns-per-ip reached$")
        with tcp4(port).connect() as other:  # another address has its own count
            echo_roundtrip(other, seed=3)
        echo_roundtrip(a, seed=4)
    # Both closed: the address may connect again.
    r.wait_conns(3)
    with connect_from(port) as d:
        echo_roundtrip(d, seed=5)
    assert re.search(r"refused: denied=0 per-ip=1 rate=0", status_line(r))
    r.stop()


def test_rate_per_ip(relayd, echo):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", echo.spec, "--rate", "2")
    served = refused = 0
    for i in range(10):
        with connect_from(port) as s:
            try:
                echo_roundtrip(s, seed=i, nbytes=10)
                served += 1
            except (AssertionError, OSError):
                refused += 1
    assert refused >= 1 and served >= 2, (served, refused)
    with tcp4(port).connect() as other:
        echo_roundtrip(other)
    assert re.search(rf"refused: denied=0 per-ip=0 rate={refused} ", status_line(r))
    r.wait_log(rf"^relayd: refused {re.escape(CLIENT)}:\d+: --rate exceeded$")


def test_access_options_in_config_file(tmp_path, relayd, sink):
    port = free_port()
    conf = tmp_path / "relayd.conf"
    conf.write_text(f"""
[relay web]
listen = 127.0.0.1:{port}
to = {sink.spec}
deny = {CLIENT}
allow = 127.0.0.0/8
max-conns-per-ip = 10
rate = 100
accept-proxy = no
proxy-protocol = v2
handshake-timeout = 3
""")
    conf.chmod(0o600)
    r = relayd("-c", conf)
    with connect_from(port) as s:
        assert_refused(s)
    r.wait_log(rf"^relayd: refused {re.escape(CLIENT)}:\d+: denied by --deny {CLIENT}/32$")


def test_bad_cidr_and_values_are_usage_errors():
    for args, msg in [(["--allow", "10.1.2.3/8"], "did you mean 10.0.0.0/8?"),
                      (["--deny", "10.0.0.0/33"], "prefix length must be 0-32"),
                      (["--deny", "example.com"], "not an IPv4 or IPv6"),
                      (["--proxy-protocol", "v3"], "is not v1 or v2"),
                      (["--rate", "x"], "is not a number"),
                      (["--handshake-timeout", "0"], "must be at least 1"),
                      (["--fork", "--max-conns-per-ip", "3"], "cannot be combined")]:
        p = run_relayd("--listen", "127.0.0.1:1", "--to", "127.0.0.1:2", *args)
        assert p.returncode == 64, (args, p.returncode, p.stderr)
        assert msg in p.stderr, (args, p.stderr)
        assert len(p.stderr.splitlines()) == 1, p.stderr


def test_reload_applies_a_changed_access_list(sockdir, relayd, sink):
    port = free_port()
    conf = sockdir / "relayd.conf"      # nobody reads it again on SIGHUP

    def write(rule):
        conf.write_text(f"[relay web]\nlisten = 127.0.0.1:{port}\nto = {sink.spec}\n{rule}\n")
        conf.chmod(0o644)

    write(f"deny = {CLIENT}")
    r = relayd("-c", conf)
    with connect_from(port) as s:
        assert_refused(s)
    write(f"allow = {CLIENT}")
    os.kill(r.pid, signal.SIGHUP)
    r.wait_log(r"^relayd: reloaded: 1 relays, 0 tunnels \(0 unchanged\)$")
    with connect_from(port) as s:
        s.sendall(b"now allowed")
        s.shutdown(socket.SHUT_WR)
        wait_closed(s, 5)
    assert len(sink.wait_done(1)) == 1
    with tcp4(port).connect() as s:        # 127.0.0.1 is no longer allowed
        assert_refused(s)
