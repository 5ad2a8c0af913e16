"""Hold and retry (--connect-retry): a target that refuses for a moment (the
tunnel reconnecting, the laptop's web server restarting) costs the client
latency, not an error. Held clients wait unread and get every byte through
once the target answers; the retry gives up after SEC; --max-held bounds
how many are held, over every loop, and what they cost."""

import os
import re
import resource
import signal
import socket
import time

import pytest

from test_tls import pki, tls_connect, tls_relay  # noqa: F401 (pki: a fixture)
from conftest import (SANITIZE, Background, HeaderSink, SinkBackend, free_port, fwd,
                      local_spec, recv_until_eof, run_relayd, send_stream, sink_reply,
                      tcp4, wait_closed)

BLINK = 1.5             # seconds the target is away
NCLIENTS = 20


def fd_count(pid):
    """Descriptors of pid, splice pipes left out (the pool keeps spares)."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:")
        except OSError:
            pass
    return n


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        kib = next(ln for ln in f if ln.startswith("VmRSS:")).split()[1]
    return int(kib) * 1024


def status_line(control, name="-"):
    p = run_relayd("--status", "--control", control)
    assert p.returncode == 0, p
    m = re.search(rf"^relay {re.escape(name)}: .*; held=(\d+): (\d+) total, (\d+) expired, "
                  rf"(\d+) over max-held", p.stdout, re.M)
    assert m, p.stdout
    return tuple(map(int, m.groups()))


def request(port, seed, nbytes=30_000):
    """Connects, sends a request of its own and half-closes, before the
    target is there; returns (client address, what was sent, socket)."""
    s = tcp4(port).connect()
    me = local_spec(s)
    sent = send_stream(s, seed, nbytes)
    s.shutdown(socket.SHUT_WR)
    return me, sent, s


def answer_of(s):
    """What s received before EOF; b"" if it was reset."""
    try:
        return recv_until_eof(s)
    except ConnectionResetError:
        return b""


def answers(clients):
    """Reads each client's answer to EOF (b"" if closed without one)."""
    readers = [Background(answer_of, s) for _, _, s in clients]
    out = [r.result() for r in readers]
    for _, _, s in clients:
        s.close()
    return out


def test_held_clients_get_their_answer_when_the_target_comes(relayd, backends, figures):
    port, tport = free_port(), free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", f"127.0.0.1:{tport}",
               "--connect-retry", "5")
    clients = [request(port, 100 + i) for i in range(NCLIENTS)]
    time.sleep(BLINK)
    up = time.monotonic()
    backends.sink(tcp4(tport))
    got = answers(clients)
    last = time.monotonic() - up
    for (me, sent, _), answer in zip(clients, got):
        assert answer == sink_reply(sent), f"{me}: sent {sent}, got {answer!r}"
    held = []
    for me, sent, _ in clients:
        c = r.wait_conn(me)
        assert c["end"] == "eof" and c["inb"] == sent[0], c["line"]
        assert c["held"] is not None, c["line"]
        held.append(float(c["held"]))
    assert min(held) >= BLINK * 0.8, held
    # Attempts are at most 250 ms apart: none waits long once it is up.
    assert last < 2.0, f"last answer {last:.2f} s after the target came"
    figures(f"{NCLIENTS} clients held {min(held):.2f}-{max(held):.2f} s, 0 errors; "
            f"last answer {last * 1000:.0f} ms after the target came")


def test_without_connect_retry_the_clients_are_closed(relayd, backends, figures):
    port, tport = free_port(), free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", f"127.0.0.1:{tport}")
    clients = []
    for i in range(NCLIENTS):
        try:
            clients.append(request(port, 200 + i))
        except OSError:         # closed while sending: refused already
            clients.append((None, None, None))
    time.sleep(BLINK)
    backends.sink(tcp4(tport))
    got = answers([c for c in clients if c[2] is not None])
    closed = sum(1 for a in got if a == b"") + sum(1 for c in clients if c[2] is None)
    assert closed == NCLIENTS, f"{closed} of {NCLIENTS} closed"
    lines = r.wait_conns(NCLIENTS)
    assert all(c["end"] == "connect failed: Connection refused" and c["held"] is None
               for c in lines), [c["line"] for c in lines]
    figures(f"without --connect-retry: {closed} of {NCLIENTS} clients closed during a "
            f"{BLINK} s blink")


def test_retry_expires_and_nothing_leaks(relayd):
    port, tport = free_port(), free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", f"127.0.0.1:{tport}",
               "--connect-retry", "2")
    base = fd_count(r.pid)
    t0 = time.monotonic()
    with tcp4(port).connect() as s:
        me = local_spec(s)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        took = wait_closed(s, 10)
    assert 1.8 <= took <= 4.0, f"closed after {took:.2f} s, --connect-retry 2"
    c = r.wait_conn(me)
    assert c["end"] == "connect retry expired" and c["held"] is None, c["line"]
    assert 1.8 <= c["time"] <= 4.0, c["line"]
    deadline = t0 + 10
    while fd_count(r.pid) != base and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fd_count(r.pid) == base, f"{fd_count(r.pid)} descriptors, {base} before"
    r.stop()


def test_a_client_that_leaves_while_held_frees_its_slot(relayd):
    port, tport = free_port(), free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", f"127.0.0.1:{tport}",
               "--connect-retry", "1")
    base = fd_count(r.pid)
    with tcp4(port).connect() as s:
        me = local_spec(s)
    c = r.wait_conn(me, timeout=5)
    assert c["end"] in ("connect retry expired", "client reset", "eof"), c["line"]
    deadline = time.monotonic() + 5
    while fd_count(r.pid) != base and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fd_count(r.pid) == base


@pytest.mark.time_limit(90)
def test_max_held_bounds_held_clients_and_their_cost(relayd, tmp_path, figures):
    n, limit = 1000, 100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * n), hard))
    port, tport = free_port(), free_port()
    control = tmp_path / "control.sock"
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", f"127.0.0.1:{tport}",
               "--connect-retry", "5", "--max-held", str(limit), "--control", control,
               nofile=4096)
    base_fds, base_rss = fd_count(r.pid), rss(r.pid)
    socks = []
    peak_held = peak_fds = peak_rss = 0
    try:
        for i in range(n):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
        deadline = time.monotonic() + 20
        while True:
            held, total, expired, over = status_line(control)
            peak_held = max(peak_held, held)
            peak_rss = max(peak_rss, rss(r.pid))
            if total + over >= n or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert total + over == n, (held, total, expired, over)
        # Settled (the burst's refused clients closed), while they are held.
        for _ in range(10):
            held = status_line(control)[0]
            peak_held = max(peak_held, held)
            peak_fds = max(peak_fds, fd_count(r.pid))
            peak_rss = max(peak_rss, rss(r.pid))
            time.sleep(0.1)
        assert peak_held <= limit and total <= limit, (peak_held, total)
        assert over >= n - limit, f"{over} closed over max-held, wanted {n - limit}"
        # The excess is closed at once: its clients see EOF or a reset now.
        closed = 0
        for s in socks:
            s.setblocking(True)
            s.settimeout(0.2)
            try:
                closed += s.recv(1) == b""
            except ConnectionResetError:
                closed += 1
            except (socket.timeout, BlockingIOError):
                pass
        assert closed >= n - limit, f"{closed} closed at once, wanted {n - limit}"
    finally:
        for s in socks:
            s.close()
    # Each held client costs its socket and at times a dial's, no more.
    assert peak_fds <= base_fds + 2 * limit + 50, f"{peak_fds} descriptors, {base_fds} idle"
    growth = peak_rss - base_rss
    assert growth < (64 if SANITIZE else 16) << 20, f"VmRSS grew {growth >> 20} MiB"
    figures(f"{n} clients, --max-held {limit}: at most {peak_held} held, {over} closed "
            f"at once; fds {base_fds} -> {peak_fds}, VmRSS +{growth >> 10} KiB")
    r.stop(signal.SIGINT, within=5)


def test_stopped_while_clients_are_held(relayd, tmp_path):
    # Their timers and slots go with them (under SANITIZE=1, LeakSanitizer
    # checks the exit).
    port, tport = free_port(), free_port()
    control = tmp_path / "control.sock"
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", f"127.0.0.1:{tport}",
               "--connect-retry", "30", "--control", control)
    with tcp4(port).connect() as s:
        me = local_spec(s)
        deadline = time.monotonic() + 5
        while status_line(control)[0] != 1:
            assert time.monotonic() < deadline, "never held"
            time.sleep(0.05)
        r.stop(signal.SIGINT, within=5)
        wait_closed(s, 2)
    assert r.wait_conn(me)["end"] == "shutdown"


def test_accept_proxy_and_proxy_protocol_header_sent_once(relayd, backends):
    port, tport = free_port(), free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", f"127.0.0.1:{tport}",
               "--accept-proxy", "--proxy-protocol", "v1", "--connect-retry", "5")
    header = b"PROXY TCP4 198.51.100.7 127.0.0.1 4242 80\r\n"
    with tcp4(port).connect() as s:
        me = local_spec(s)
        s.sendall(header + b"early bytes, ")
        time.sleep(0.5)
        s.sendall(b"then the rest")
        s.shutdown(socket.SHUT_WR)
        time.sleep(1.0)
        sink = backends._make(HeaderSink, tcp4(tport))
        answer = recv_until_eof(s)
    [rec] = sink.wait_done(1)
    assert rec["header"] == b"PROXY TCP4 198.51.100.7 127.0.0.1 4242 80\r\n", rec["header"]
    body = b"early bytes, then the rest"
    assert answer == sink_reply(rec["received"])
    assert rec["received"][0] == len(body), rec
    c = r.wait_conn(f"198.51.100.7:4242 via {me}")
    assert c["held"] is not None and c["end"] == "eof", c["line"]


def test_proxy_protocol_header_reaches_a_late_target_once(relayd, backends):
    port, tport = free_port(), free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", f"127.0.0.1:{tport}",
               "--proxy-protocol", "v1", "--connect-retry", "5")
    with tcp4(port).connect() as s:
        me = local_spec(s)
        sent = send_stream(s, 7, 10_000)
        s.shutdown(socket.SHUT_WR)
        time.sleep(1.0)
        sink = backends._make(HeaderSink, tcp4(tport))
        answer = recv_until_eof(s)
    [rec] = sink.wait_done(1)
    host, cport = me.rsplit(":", 1)
    assert rec["header"] == f"PROXY TCP4 {host} 127.0.0.1 {cport} {port}\r\n".encode()
    assert rec["received"] == sent and answer == sink_reply(sent)
    assert r.wait_conn(me)["held"] is not None


def test_tls_listener_client_held_after_its_handshake(relayd, pki, backends):
    tport = free_port()
    r, port = tls_relay(relayd, pki, f"127.0.0.1:{tport}", "--connect-retry", "5")
    with tls_connect(port, pki.ca) as s:
        sent = send_stream(s, 11, 50_000)
        s.shutdown_write()
        cpu0, t0 = r.cpu_seconds(), time.monotonic()
        time.sleep(1.0)
        busy = (r.cpu_seconds() - cpu0) / (time.monotonic() - t0)
        backends.sink(tcp4(tport))
        answer = recv_until_eof(s)
    assert answer == sink_reply(sent)
    [c] = r.wait_conns(1)
    assert c["held"] is not None and float(c["held"]) >= 0.8, c["line"]
    # Held, the client is not read: no spinning on its pending bytes.
    assert busy < 0.3, f"relayd used {busy:.0%} of a CPU holding one client"


# ---------------------------------------------------------------- tunnel -R

def blink_through_tunnel(tunnel, backends, *args):
    """-R to a local sink that is away for 2 s while NCLIENTS requests come
    through the forward; returns (answered, failed, tunnel)."""
    lport, rport = free_port(), free_port()
    first = backends.sink(tcp4(lport))
    spec = f"{rport}:127.0.0.1:{lport}"
    t = tunnel("-R", spec, *args)
    first.stop()

    def one(i):
        try:
            with fwd(rport).connect(timeout=15) as s:
                sent = send_stream(s, 300 + i, 20_000)
                s.shutdown(socket.SHUT_WR)
                return recv_until_eof(s) == sink_reply(sent)
        except OSError:
            return False

    workers = []
    for i in range(NCLIENTS):
        workers.append(Background(one, i))
        time.sleep(0.05)
    time.sleep(max(0.0, 2.0 - 0.05 * NCLIENTS))
    backends._make(SinkBackend, tcp4(lport))
    results = [w.result() for w in workers]
    return results.count(True), results.count(False), t, spec


def test_remote_forward_target_restarting_is_waited_for(tunnel, backends, figures):
    ok, failed, t, spec = blink_through_tunnel(tunnel, backends, "--connect-retry", "5")
    assert (ok, failed) == (NCLIENTS, 0)
    conns = t.wait_conns(NCLIENTS, f"-R {spec}")
    held = [float(c["held"]) for c in conns if c["held"] is not None]
    assert len(held) >= NCLIENTS // 2, [c["line"] for c in conns]
    figures(f"-R target away 2 s: {ok} of {NCLIENTS} requests answered, held up to "
            f"{max(held):.2f} s")


def test_remote_forward_without_retry_fails_during_the_blink(tunnel, backends, figures):
    ok, failed, t, spec = blink_through_tunnel(tunnel, backends, "--connect-retry", "0")
    assert failed >= NCLIENTS // 2, f"{failed} of {NCLIENTS} failed without --connect-retry"
    figures(f"-R target away 2 s, --connect-retry 0: {failed} of {NCLIENTS} requests failed")
