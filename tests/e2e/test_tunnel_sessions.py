"""libssh2 opens one channel at a time per session. Opens to a target that
drops SYNs hold a session's open slot for minutes: the tunnel then opens
extra sessions, so other -L and -D connections are not held up behind them,
closes them when idle, and still notices a frozen server."""

import statistics
import time

from conftest import Background, echo_roundtrip, free_port, fwd, run_relayd, sink_roundtrip
from test_relay_errors import blackhole  # noqa: F401 (a fixture)
from test_tunnel_forwards import socks5_connect
from test_tunnel_reconnect import LOST

EXTRA_MAX = 7           # beside the main session (tunnel.c)
EXTRA_IDLE_SEC = 10


def ssh_sessions(port):
    """Established TCP connections to 127.0.0.1:port from this network
    namespace's clients (sshd's own ends have port as their local port)."""
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            remote, state = fields[2], fields[3]
            if state == "01" and remote == f"0100007F:{port:04X}":
                n += 1
    return n


def first_byte(connect):
    """Seconds from the start of connect() to the echo of a 4 KiB request."""
    t0 = time.monotonic()
    s = connect()
    with s:
        echo_roundtrip(s)
    return time.monotonic() - t0


def test_slow_opens_do_not_hold_up_other_channels(tunnel, sshd, backends, blackhole, figures,
                                                  tmp_path):
    echo = backends.echo()
    slow, ok, dport = free_port(), free_port(), free_port()
    control = tmp_path / "control.sock"
    t = tunnel("-L", f"{slow}:{blackhole.spec}", "-L", f"{ok}:{echo.spec}",
               "-D", str(dport), "--control", control)
    # The common case takes one session.
    for _ in range(20):
        echo_roundtrip_once = first_byte(fwd(ok).connect)
    assert ssh_sessions(sshd.port) == 1
    held = [fwd(slow).connect() for _ in range(5)]
    try:
        t.wait(r"extra session \d+: up$", n=1, timeout=10)
        time.sleep(0.5)
        clients = [Background(first_byte, fwd(ok).connect) for _ in range(50)]
        clients += [Background(first_byte, lambda: socks5_via(dport, echo.addr.port))
                    for _ in range(50)]
        waits = sorted(c.result() for c in clients)
        sessions = ssh_sessions(sshd.port)
        pending = t.conns(f"-L 127.0.0.1:{slow}:{blackhole.spec}")
        status = run_relayd("--status", "--control", control)
    finally:
        for s in held:
            s.close()
    figures(f"100 -L/-D clients while 5 opens black-holed: first byte p50 "
            f"{statistics.median(waits):.3f} s, max {waits[-1]:.3f} s; "
            f"{sessions} SSH sessions (one client alone: {echo_roundtrip_once:.3f} s)")
    assert len(echo.wait_done(120)) == 120
    assert len(t.conns(f"-L 127.0.0.1:{ok}:{echo.spec}")) == 70
    assert pending == [], "a black-holed open ended while it should be pending"
    assert 2 <= sessions <= 1 + EXTRA_MAX, sessions
    assert status.returncode == 0, status
    assert f"tunnel - extra sessions: {sessions - 1}\n" in status.stdout, status.stdout
    # Behind one session's slot they would have waited for the black-holed
    # connects (minutes); a few seconds covers a loaded sanitizer build.
    assert waits[-1] < 5, waits[-10:]


def socks5_via(dport, port):
    s, rep = socks5_connect(fwd(dport), "ipv4", "127.0.0.1", port)
    assert rep == 0, f"SOCKS CONNECT failed with REP {rep}"
    return s


def test_extra_sessions_close_when_idle(tunnel, sshd, echo, blackhole):
    slow, ok = free_port(), free_port()
    t = tunnel("-L", f"{slow}:{blackhole.spec}", "-L", f"{ok}:{echo.spec}",
               "--keepalive", 1)
    held = [fwd(slow).connect() for _ in range(3)]
    t.wait(r"extra session \d+: up$", n=2, timeout=10)
    # Nobody waits for them once the forward's connect timeout (10 s) ends
    # the clients' connections.
    for c in t.wait_conns(3, f"-L 127.0.0.1:{slow}:{blackhole.spec}", timeout=15):
        assert c["end"] == "connect timeout", c["line"]
    for s in held:
        s.close()
    # The extra sessions hold only opens nobody waits for: they close, but
    # one, while the main session's slot is still held, as its witness.
    t.wait(r"extra session \d+: closed, idle$", n=1, timeout=EXTRA_IDLE_SEC + 5)
    deadline = time.monotonic() + 5
    while ssh_sessions(sshd.port) > 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ssh_sessions(sshd.port) <= 2
    with fwd(ok).connect() as s:
        echo_roundtrip(s)


def test_frozen_server_noticed_while_an_open_is_pending(tunnel, sshd, sink, blackhole,
                                                         figures):
    """The main session's slot is held by an open the server owes no answer
    to; a second session's silence tells that the server froze."""
    keepalive, count = 2, 2
    bound = (count + 1) * keepalive + 2.0      # a tick's phase, then a loaded machine
    rport, slow = free_port(), free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}", "-L", f"{slow}:{blackhole.spec}",
               "--keepalive", keepalive, "--keepalive-count", count)
    with fwd(slow).connect():
        t.wait(r"extra session \d+: up$", timeout=3 * keepalive + 5)
        try:
            sshd.pause()
            t0 = time.monotonic()
            t.wait(LOST, timeout=bound + 5)
            took = time.monotonic() - t0
        finally:
            sshd.resume()
    figures(f"server frozen while an open was pending: lost after {took:.2f} s "
            f"(bound {bound} s; one session alone: 150 s)")
    assert t.lines(r"lost: no answer to \d+ keepalives$"), t.lines(LOST)
    assert took <= bound, f"frozen server noticed after {took:.2f} s, bound {bound} s"
    t.wait_up("R", f"{rport}:{sink.spec}", n=2, timeout=30)
    sink_roundtrip(fwd(rport))
