"""--probe checks each -R forward through the server itself: the tunnel
connects to the port sshd listens on, as the server's visitors do, and the
forward must bring its token back. A port that another process answers
is noticed, reconnected once, then reported; visitors meanwhile get their
bytes untouched."""

import json
import re
import socket
import time

from conftest import (SANITIZE, Background, digest_of, free_port, fwd, recv_until_eof, run_relayd,
                      sink_reply, sink_roundtrip, tcp6)
from test_metrics import http
from test_systemd import notify_socket  # noqa: F401 (a fixture)

PROBE = 1


def test_probes_come_back_and_visitors_are_untouched(tunnel, sink, tmp_path):
    rport = free_port()
    control = tmp_path / "control.sock"
    t = tunnel("-R", f"{rport}:{sink.spec}", "--probe", PROBE, "--control", control)
    # Visitors during the probe rounds, on both addresses sshd listens on;
    # some say nothing for a while first (a server-first protocol waits
    # for no probe longer than a second).
    deadline = time.monotonic() + 4 * PROBE
    n = 0
    while time.monotonic() < deadline:
        sink_roundtrip(fwd(rport), seed=n, nbytes=20_000)
        sink_roundtrip(tcp6(rport), seed=n + 1, nbytes=20_000)
        n += 2
    assert len(sink.wait_done(n)) == n
    conns = t.wait_conns(n, f"-R {rport}:{sink.spec}")
    assert all(c["end"] == "eof" for c in conns), [c["line"] for c in conns]
    p = run_relayd("--status", "--control", control)
    assert p.returncode == 0, p
    assert re.search(r"^tunnel - probe: ok \(\d+ s ago\)$", p.stdout, re.M), p.stdout
    p = run_relayd("--status", "--json", "--control", control)
    [tun] = json.loads(p.stdout)["tunnels"]
    assert tun["probe"]["ok"] is True and tun["probe"]["why"] is None, tun["probe"]
    assert not t.lines(r"lost: "), t.lines(r"lost: ")


class Squatter:
    """A process of the server's that holds 127.0.0.1:port first, accepting
    and saying nothing: sshd then binds only ::1 for the forward."""

    def __init__(self, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.accepted = []
        self.stop = False
        self.bg = Background(self._serve)

    def _serve(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(c)

    def close(self):
        self.stop = True
        self.bg.result(timeout=5)
        for c in self.accepted:
            c.close()
        self.sock.close()


def test_a_port_another_process_answers_is_noticed(tunnel, sink, tmp_path, figures):
    """A squatter on 127.0.0.1:RPORT before the tunnel: sshd binds only ::1
    and grants the forward, so visitors on 127.0.0.1 reach the squatter.
    The probe notices within a few intervals, reconnects once, then
    reports."""
    rport = free_port()
    squatter = Squatter(rport)
    control = tmp_path / "control.sock"
    try:
        t = tunnel("-R", f"{rport}:{sink.spec}", "--probe", PROBE, "--control", control, "-v")
        t0 = time.monotonic()           # the forward is up
        lost = t.wait(r"lost: probe failed: forward -R \S+: port \d+ on 127\.0\.0\.1 "
                      r"answers, but not through this tunnel .*$", timeout=3 * PROBE + 10)
        took = time.monotonic() - t0
        t.wait(r"probe failed again after a reconnect: .*$", timeout=4 * PROBE + 15)
        time.sleep(3 * PROBE)       # said once, not each round
        # The address sshd could bind still serves, while a probe is
        # awaited: a visitor's first bytes, even a token's look-alike, and
        # a visitor silent for longer than a probe is waited for, reach
        # the target whole.
        sink_roundtrip(tcp6(rport))
        for first, pause in ((b"RELAYD-PROBE " + b"0" * 32 + b"\r\nrest", 0),
                             (b"RELAYD-PR", 0), (b"late", 1.5)):
            with tcp6(rport).connect() as v:
                time.sleep(pause)
                v.sendall(first + b"x" * 5000)
                v.shutdown(socket.SHUT_WR)
                got = recv_until_eof(v)
            assert got == sink_reply(digest_of(first + b"x" * 5000)), (first, got)
        p = run_relayd("--status", "--control", control)
    finally:
        squatter.close()
    figures(f"a squatter on 127.0.0.1: noticed {took:.1f} s after the forward came up, "
            f"probe every {PROBE} s")
    assert took <= 3 * PROBE + (2 if SANITIZE else 0.5), took
    assert squatter.accepted, "the probe never reached the squatter"
    assert lost.group(0)
    assert p.returncode == 0, p
    assert re.search(r"^tunnel - probe: failed: forward -R \S+: port \d+ on 127\.0\.0\.1 ",
                     p.stdout, re.M), p.stdout
    assert len(t.lines(r"lost: ")) == 1, t.lines(r"lost: ")
    assert len(t.lines(r"probe failed again")) == 1, t.lines(r"probe failed again")
    # Those visitors were looked at as possible probes (-v says so), and
    # their bytes arrived whole all the same.
    looked = [m.group(1) for m in t.lines(r"not a probe: a visitor \((\d+) bytes looked at\)$")]
    assert len(looked) >= 4, looked


def test_a_failed_probe_reaches_healthz_and_systemd(tunnel, sink, notify_socket):
    path, recv = notify_socket
    rport, mport = free_port(), free_port()
    squatter = Squatter(rport)
    try:
        tunnel("-R", f"{rport}:{sink.spec}", "--probe", PROBE, "--metrics", mport,
               prefix=("env", f"NOTIFY_SOCKET={path}", "WATCHDOG_USEC=1000000"))
        said = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any("degraded" in m for m in said):
            said.append(recv(5))
        code, body = http(mport, "/healthz")
    finally:
        squatter.close()
    assert said[0].startswith("READY=1\nSTATUS=serving: "), said
    [status] = [m for m in said if "degraded" in m]
    assert re.fullmatch(r"STATUS=degraded: tunnel -: probe failed: forward -R \S+: port \d+ "
                        r"on 127\.0\.0\.1 answers, but not through this tunnel .*", status), status
    assert code == 503 and "probe failed" in body, (code, body)
