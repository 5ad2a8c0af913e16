"""The tunnel outlives its SSH session: dropped, refused, frozen or restarted,
the server is tried again until the forwards are back, without restarting
relayd; a forward the server refuses is retried too, unless told to exit."""

import re
import socket
import time

import pytest

from conftest import free_port, fwd, sink_roundtrip
from test_relay_errors import blackhole  # noqa: F401 (a fixture)

LOST = r"lost: \S.*$"
NEXT_ATTEMPT = r"next attempt in \d+(?:\.\d+)? s\b"
BACK_WITHIN = 15        # seconds from the cause going away to the forward working
YOUNG_SESSION_SEC = 10  # tunnel.c: a session lost sooner counts as refused
EX_UNAVAILABLE = 69


def test_session_processes_killed(tunnel, sshd, sink):
    rport = free_port()
    spec = f"{rport}:{sink.spec}"
    t = tunnel("-R", spec)
    sink_roundtrip(fwd(rport))
    assert sshd.kill_session_processes(), "no sshd session process to kill"
    t0 = time.monotonic()
    t.wait(LOST, timeout=5)
    t.wait(NEXT_ATTEMPT, timeout=5)
    t.wait_up("R", spec, n=2, timeout=BACK_WITHIN)
    sink_roundtrip(fwd(rport))
    assert time.monotonic() - t0 < BACK_WITHIN


def test_sshd_stopped_and_restarted(tunnel, sshd, sink):
    rport = free_port()
    spec = f"{rport}:{sink.spec}"
    t = tunnel("-R", spec)
    sink_roundtrip(fwd(rport))
    sshd.stop()
    t.wait(LOST, timeout=5)
    t.wait(r"connecting\b", n=2, timeout=10)      # an attempt while nothing listens
    time.sleep(0.5)
    assert t.relayd.alive()
    sshd.start()
    t0 = time.monotonic()
    t.wait_up("R", spec, n=2, timeout=BACK_WITHIN)
    sink_roundtrip(fwd(rport))
    assert time.monotonic() - t0 < BACK_WITHIN


def test_sshd_frozen_detected_by_keepalive(tunnel, sshd, sink):
    rport = free_port()
    spec = f"{rport}:{sink.spec}"
    t = tunnel("-R", spec, "--keepalive", "1", "--keepalive-count", "2")
    sink_roundtrip(fwd(rport))
    sshd.pause()
    t0 = time.monotonic()
    t.wait(LOST, timeout=10)
    took = time.monotonic() - t0
    assert took >= 1.0, f"declared lost {took:.2f} s after the server froze"
    sshd.resume()
    t0 = time.monotonic()
    # The frozen session may still hold the remote port for a moment: the
    # tunnel has to retry until it is released.
    t.wait_up("R", spec, n=2, timeout=BACK_WITHIN)
    sink_roundtrip(fwd(rport))
    assert time.monotonic() - t0 < BACK_WITHIN


class PortHog:
    """Listening sockets on 127.0.0.1:PORT and [::1]:PORT, as a stale sshd
    session holding a remote forward has them (sshd binds both loopbacks
    for -R without an address, and succeeds if it gets either)."""

    def __init__(self, port):
        self.socks = []
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            s = socket.socket(family, socket.SOCK_STREAM)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((host, port))
            s.listen()
            self.socks.append(s)

    def close(self):
        for s in self.socks:
            s.close()


def wait_sshd_refused(sshd, rport, timeout=10):
    """Waits until sshd logged that it could not listen on rport for a -R."""
    deadline = time.monotonic() + timeout
    while f"cannot listen to port: {rport}" not in sshd.log():
        assert time.monotonic() < deadline, f"sshd never refused -R {rport}"
        time.sleep(0.02)


def test_exit_on_forward_failure(tunnel, sshd, sink):
    rport = free_port()
    hog = PortHog(rport)
    try:
        t = tunnel("-R", f"{rport}:{sink.spec}", "--exit-on-forward-failure",
                   up=False, ready=False)
        assert t.relayd.wait_exit(10) == EX_UNAVAILABLE
    finally:
        hog.close()
    wait_sshd_refused(sshd, rport, timeout=1)


def test_forward_refused_is_retried_until_port_freed(tunnel, sshd, sink):
    rport = free_port()
    spec = f"{rport}:{sink.spec}"
    hog = PortHog(rport)
    try:
        t = tunnel("-R", spec, up=False)
        t.wait(r"authenticated as root\b")
        wait_sshd_refused(sshd, rport)
        time.sleep(0.5)
        assert t.relayd.alive()
        assert not t.lines(r"forward -R .* up\b"), "forward up while the port is taken"
    finally:
        hog.close()
    t0 = time.monotonic()
    t.wait_up("R", spec, timeout=BACK_WITHIN)
    sink_roundtrip(fwd(rport))
    assert time.monotonic() - t0 < BACK_WITHIN


def test_refusals_forgotten_after_a_session_that_lived(tunnel, sshd, sink):
    """Refusals back off 1, 2, 4 s...; a session that then stays up proves
    the server willing, so the next refusal starts again at 1 s."""
    rport = free_port()
    spec = f"{rport}:{sink.spec}"
    t = tunnel("-R", spec)
    keys = sshd.authorized_keys.read_text()
    sshd.authorized_keys.write_text("")
    sshd.kill_session_processes()
    t.wait(r"refused: .*$", n=3, timeout=20)
    sshd.authorized_keys.write_text(keys)
    t.wait_up("R", spec, n=2, timeout=BACK_WITHIN)
    time.sleep(YOUNG_SESSION_SEC + 0.5)
    sshd.authorized_keys.write_text("")
    sshd.kill_session_processes()
    t.wait(r"refused: .*$", n=4, timeout=10)
    after = t.relayd.log().split("refused: ")[4]
    delay = float(re.search(r"next attempt in (\S+) s", after).group(1))
    assert delay <= 1.2, f"first refusal after a healthy session waits {delay} s"


RESTARTS = 10
BACK_AFTER_LISTENING = 2.0  # seconds: a retry at most 1 s apart, then a login


@pytest.mark.time_limit(180)
def test_sshd_restarted_right_after_each_reconnect(tunnel, sshd, sink, figures):
    """A session that logged in and brought its forwards up is a success,
    however short it lived: sshd killed and started again right after each
    reconnection never pushes the tunnel into the refusal backoff."""
    rport = free_port()
    spec = f"{rport}:{sink.spec}"
    t = tunnel("-R", spec)
    waits = []
    for cycle in range(1, RESTARTS + 1):
        sshd.kill()
        sshd.start()
        listening_at = time.monotonic()
        t.wait_up("R", spec, n=cycle + 1, timeout=30)
        waits.append(time.monotonic() - listening_at)
    sink_roundtrip(fwd(rport))
    figures("forward back after sshd listened again: "
            + ", ".join(f"{w:.2f}" for w in waits) + " s")
    slow = [(i + 1, round(w, 2)) for i, w in enumerate(waits) if w > BACK_AFTER_LISTENING]
    assert not slow, f"restarts whose forward took over {BACK_AFTER_LISTENING} s: {slow}"
    # A connect that the dying sshd still accepted fails before the banner,
    # a refusal: its first wait is 1 s +- 20%, but it never doubles.
    longer = [m.group(1) for m in t.lines(r"next attempt in (\S+) s$") if float(m.group(1)) > 1.2]
    assert not longer, f"waits over 1.2 s between attempts: {longer}"


def test_sshd_frozen_with_forwards_up(tunnel, sshd, sink, figures):
    """A server that stops answering while the forwards are up and idle is
    noticed within (count + 1) x keepalive."""
    keepalive, count = 2, 2
    bound = (count + 1) * keepalive + 2.0      # a tick's phase, then a loaded machine
    rport = free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}", "--keepalive", keepalive,
               "--keepalive-count", count)
    sink_roundtrip(fwd(rport))
    try:
        frozen = sshd.pause()
        assert len(frozen) >= 2, f"no sshd session process under {sshd.pid}: {frozen}"
        t0 = time.monotonic()
        t.wait(LOST, timeout=bound + 5)
        took = time.monotonic() - t0
    finally:
        sshd.resume()
    assert t.lines(rf"lost: no answer to {count} keepalives$"), t.lines(LOST)
    figures(f"server frozen with forwards up: lost after {took:.2f} s (bound {bound} s)")
    assert took <= bound, f"frozen server noticed after {took:.2f} s, bound {bound} s"


def test_open_to_a_target_that_drops_syns_keeps_the_session(tunnel, sink, blackhole):
    """While the server connects a -L client to a target that never
    answers, it owes no byte and libssh2 can send no probe: that silence
    does not end the session, whose -R forward goes on serving."""
    keepalive, count = 1, 2
    rport, lport = free_port(), free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}", "-L", f"{lport}:{blackhole.spec}",
               "--keepalive", keepalive, "--keepalive-count", count)
    with fwd(lport).connect():
        time.sleep((count + 1) * keepalive + 3)
        assert not t.lines(LOST), t.lines(LOST)
    sink_roundtrip(fwd(rport))
    assert not t.lines(LOST), t.lines(LOST)

