"""Routing by name: one plain listener, several backends. A TLS client's
SNI (TLS not terminated: each backend keeps its own certificate) or an HTTP
request's Host picks the backend; every byte reaches it untouched, checked
by length and SHA-256 at the backend. On a tls: listener, which terminates
TLS, the SNI of the handshake picks the backend as it picks the
certificate."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (Backend, HeaderSink, HttpBackend, curl_digest, digest_of, free_port,
                      payload, recv_exact, run_relayd, sink_reply, tcp4, trickle, wait_closed)
from test_tls import pki, TlsSinkBackend, tls_sink_roundtrip  # noqa: F401 (pki: a fixture)

EX_USAGE, EX_CONFIG = 64, 78
HEAD_CAP = 65536        # relay/peek.h PEEK_MAX


class TlsCountBackend(Backend):
    """A TLS server with its own certificate: reads exactly n bytes, answers
    their length and SHA-256 (as a sink does) and closes."""

    def __init__(self, addr, cert, key, n):
        self.n = n
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert), str(key))
        super().__init__(addr)

    def handle(self, conn, record):
        with self.ctx.wrap_socket(conn, server_side=True) as tconn:
            record["received"] = digest_of(recv_exact(tconn, self.n))
            tconn.sendall(sink_reply(record["received"]))


def tls_exchange(port, name, ca, data):
    """data over TLS with SNI name through relayd; returns the answer line."""
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=name) as s:
        s.sendall(data)
        line = bytearray()
        while not line.endswith(b"\n"):
            line += s.recv(1)
        return bytes(line)


@pytest.fixture
def sinks(backends):
    """Three plain sinks: the routes' backends and the default."""
    return [backends.sink() for _ in range(3)]


def http_exchange(port, host, body=b"", seed=5, nbytes=50_000):
    """A request head naming host, then nbytes; returns (sent, answer)."""
    data = (f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: t\r\n\r\n".encode() +
            body + payload(seed, nbytes))
    with tcp4(port).connect() as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        return digest_of(data), recv_all_bytes(s)


def recv_all_bytes(s):
    out = bytearray()
    while chunk := s.recv(65536):
        out += chunk
    return bytes(out)


def served_by(sinks, sent):
    """Index of the sink that received exactly sent, waiting briefly."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for i, b in enumerate(sinks):
            if any(r.get("received") == sent for r in b.records):
                return i
        time.sleep(0.02)
    return None


def routes(sinks, default=True):
    args = ["--route", f"blog.example.org={sinks[0].spec}",
            "--route", f"*.example.org={sinks[1].spec}"]
    return args + (["--to", sinks[2].spec] if default else [])


def test_host_picks_the_backend_and_bytes_pass_untouched(relayd, sinks):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", *routes(sinks))
    cases = [("blog.example.org", 0), ("BLOG.Example.org:8080", 0),
             ("git.example.org", 1), ("a.b.example.org", 2),
             ("example.org", 2), ("other.net", 2)]
    for seed, (host, want) in enumerate(cases):
        sent, answer = http_exchange(port, host, seed=seed)
        assert answer == sink_reply(sent), (host, answer)
        assert served_by(sinks, sent) == want, host
    # The summary line is written after the close the client saw.
    lines = [c["line"] for c in r.wait_conns(len(cases))]
    assert sum("route=blog.example.org" in ln for ln in lines) == 2, lines
    assert sum("route=*.example.org" in ln for ln in lines) == 1, lines
    assert sum("route=default" in ln for ln in lines) == 3, lines


def test_sni_picks_the_backend_without_terminating(relayd, pki):
    """Each backend serves its own certificate through relayd: the client
    verifies the one its SNI routed it to."""
    data = payload(9, 200_000)
    two = TlsCountBackend(tcp4(), *pki.two, len(data))
    other = TlsCountBackend(tcp4(), *pki.other, len(data))
    try:
        port = free_port()
        relayd("--listen", f"127.0.0.1:{port}", "--route", f"two.test={two.spec}",
               "--route", f"other.test={other.spec}")
        for name, backend in (("two.test", two), ("other.test", other)):
            answer = tls_exchange(port, name, pki.ca, data)
            assert answer == sink_reply(digest_of(data)), (name, answer)
            assert backend.wait_done(1)[0]["received"] == digest_of(data)
    finally:
        two.stop()
        other.stop()


def test_no_match_without_default_is_refused_and_nothing_dialled(relayd, sinks):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", *routes(sinks, default=False))
    with tcp4(port).connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: other.net\r\n\r\n")
        wait_closed(s, 5)
    r.wait_log(r"refused 127\.0\.0\.1:\d+: no route for other\.net$")
    with tcp4(port).connect() as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        wait_closed(s, 5)
    r.wait_log(r"no route for a connection without a name$")
    assert all(not b.records for b in sinks)


def test_client_hello_in_one_byte_segments(relayd, pki):
    """A ClientHello that trickles in byte by byte is gathered whole."""
    two = TlsCountBackend(tcp4(), *pki.two, 1)
    try:
        port = free_port()
        relayd("--listen", f"127.0.0.1:{port}", "--route", f"two.test={two.spec}")
        ctx = ssl.create_default_context(cafile=str(pki.ca))
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(incoming, outgoing, server_hostname="two.test")
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        hello = outgoing.read()
        with tcp4(port).connect() as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            trickle(s, hello, 0.001)
            # The backend answers with its ServerHello: the route held.
            s.settimeout(10)
            assert s.recv(5)[:1] == b"\x16"
    finally:
        two.stop()


def test_slow_and_oversized_heads_are_refused(relayd, sinks):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", *routes(sinks),
               "--handshake-timeout", "1")
    with tcp4(port).connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: blog.exa")
        took = wait_closed(s, 5)
    assert took < 4
    r.wait_log(r"refused 127\.0\.0\.1:\d+: routing timeout$")
    with tcp4(port).connect() as s:
        head = b"GET / HTTP/1.1\r\n" + b"X-Pad: yyyyyyyy\r\n" * (HEAD_CAP // 16)
        try:
            s.sendall(head)
        except (BrokenPipeError, ConnectionResetError):
            pass
        wait_closed(s, 5)
    r.wait_log(r"routing: request head larger than 64 KiB$")
    assert all(not b.records for b in sinks)


def test_proxy_header_carries_the_real_client(relayd, backends):
    hs = backends._make(HeaderSink, tcp4())
    port = free_port()
    relayd("--listen", f"127.0.0.1:{port}", "--route", f"blog.example.org={hs.spec}",
           "--proxy-protocol", "v1")
    with tcp4(port).connect() as s:
        me = s.getsockname()
        s.sendall(b"GET / HTTP/1.1\r\nHost: blog.example.org\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        recv_all_bytes(s)
    rec = hs.wait_done(1)[0]
    assert rec["header"].startswith(f"PROXY TCP4 127.0.0.1 127.0.0.1 {me[1]} {port}".encode()), rec


def test_reload_changes_routes_and_keeps_live_connections(relayd, sinks):
    port = free_port()
    d = Path(tempfile.mkdtemp(prefix="relayd-route-"))
    d.chmod(0o755)              # relayd reads the file again as nobody
    conf = d / "relayd.conf"
    conf.write_text(f"[relay web]\nlisten = 127.0.0.1:{port}\nto = {sinks[2].spec}\n"
                    f"route = blog.example.org {sinks[0].spec}\n")
    conf.chmod(0o644)
    r = relayd("-c", conf)
    live = tcp4(port).connect()
    head = b"GET / HTTP/1.1\r\nHost: blog.example.org\r\n\r\n"
    live.sendall(head)
    # Routed before the reload: the first backend has it.
    deadline = time.monotonic() + 5
    while not sinks[0].records:
        assert time.monotonic() < deadline, "the live connection was never routed"
        time.sleep(0.02)
    conf.write_text(f"[relay web]\nlisten = 127.0.0.1:{port}\nto = {sinks[2].spec}\n"
                    f"route = blog.example.org {sinks[1].spec}\n")
    os.kill(r.pid, signal.SIGHUP)
    r.wait_log(r"reloaded: 1 relays")
    sent, answer = http_exchange(port, "blog.example.org", seed=3)
    assert served_by(sinks, sent) == 1
    body = payload(4, 10_000)
    live.sendall(body)
    live.shutdown(socket.SHUT_WR)
    assert recv_all_bytes(live) == sink_reply(digest_of(head + body))
    live.close()
    assert served_by(sinks, digest_of(head + body)) == 0
    shutil.rmtree(d, ignore_errors=True)


def test_sighup_reloads_the_ca_of_routes_to_tls_targets(relayd, pki, sinks, sockdir):
    """A route to a tls: target trusts --ca as read at the last SIGHUP, as
    --to tls: does: a CA file that does not vouch for the backend fails
    its handshake, a broken one keeps the trust loaded before, and the
    right one lets the bytes through."""
    target = TlsSinkBackend(tcp4(), *pki.two)
    try:
        ca = sockdir / "ca.pem"         # read again as nobody
        shutil.copy(pki.selfsigned[0], ca)
        ca.chmod(0o644)
        port = free_port()
        r = relayd("--listen", f"127.0.0.1:{port}", "--ca", ca,
                   "--route", f"secure.example=tls:{target.spec}", "--to", sinks[0].spec)
        http_exchange(port, "secure.example", seed=1, nbytes=1000)
        assert r.wait_conn()["end"].startswith(
            "target TLS handshake failed: certificate verify failed"), r.log()
        ca.write_text("not a certificate\n")
        os.kill(r.pid, signal.SIGHUP)
        r.wait_log(rf"^relayd: relay -: keeping the CA certificates loaded before: "
                   rf"CA file {ca}: .+")
        shutil.copy(pki.ca, ca)
        os.kill(r.pid, signal.SIGHUP)
        r.wait_log(r"^relayd: relay -: CA certificates reloaded$")
        sent, answer = http_exchange(port, "SECURE.example", seed=2)
        assert answer == sink_reply(sent), answer
        assert target.wait_done(2, clean=False)[1]["received"] == sent
        line = r.wait_conns(2)[1]
        assert line["route"] == "secure.example" and line["end"] == "eof", line["line"]
        assert not sinks[0].records
    finally:
        target.stop()


def test_verify_name_applies_to_routes_to_tls_targets(relayd, pki, sinks):
    """The backend's certificate names other.test, not 127.0.0.1: a route to
    it fails verification unless --verify-name says which name to expect,
    as it does for --to tls:."""
    target = TlsSinkBackend(tcp4(), *pki.other)
    try:
        for verify, seed in ((None, 1), ("other.test", 2)):
            port = free_port()
            r = relayd("--listen", f"127.0.0.1:{port}", "--ca", pki.ca,
                       "--route", f"secure.example=tls:{target.spec}", "--to", sinks[0].spec,
                       *(["--verify-name", verify] if verify else []))
            try:
                sent, answer = http_exchange(port, "secure.example", seed=seed)
            except ConnectionResetError:
                answer = None
            line = r.wait_conn()
            if verify is None:
                assert line["end"].startswith("target TLS handshake failed: certificate "
                                              "verify failed"), line["line"]
            else:
                assert answer == sink_reply(sent), answer
                assert line["route"] == "secure.example" and line["end"] == "eof", \
                    line["line"]
            r.stop()
        assert any(rec.get("received") == sent for rec in target.wait_done(2, clean=False))
        assert not sinks[0].records
    finally:
        target.stop()


def test_status_counts_per_route(relayd, sinks, tmp_path):
    port, ctl = free_port(), tmp_path / "ctl"
    relayd("--listen", f"127.0.0.1:{port}", *routes(sinks), "--control", ctl)
    for i, host in enumerate(["blog.example.org", "blog.example.org", "x.example.org",
                              "other.net"]):
        http_exchange(port, host, seed=i, nbytes=100)
    time.sleep(0.2)
    out = run_relayd("--status", "--control", ctl).stdout
    assert "routes for relay -: blog.example.org=2 *.example.org=1 default=1" in out, out


@pytest.mark.parametrize("args, why", [
    (["--route", "blog.example.org"], "give NAME=HOST:PORT"),
    (["--route", "b@d=127.0.0.1:1"], "give NAME=HOST:PORT"),
    (["--route", "a.example=udp:127.0.0.1:1"], "not udp:"),
    (["--route", "a.example=127.0.0.1:1", "--route", "A.example=127.0.0.1:2"],
     "routed already"),
    (["--route", "a.example=127.0.0.1:1", "--accept-proxy"],
     "cannot be combined with --accept-proxy"),
    (["--route", "a.example=127.0.0.1:1", "--ca", "/etc/ssl/certs/ca-certificates.crt"],
     "--ca needs a tls: target (--to tls:HOST:PORT, or a route to one)"),
    (["--route", "a.example=127.0.0.1:1", "--verify-name", "a.example"],
     "--verify-name needs a tls: target (--to tls:HOST:PORT, or a route to one)"),
    (["--route", "a.example=tls:127.0.0.1:1", "--proxy-protocol", "v1"],
     "proxy-protocol cannot be combined with a tls: target"),
])
def test_bad_routes_are_refused_with_one_line(args, why):
    done = run_relayd("--listen", "127.0.0.1:1", *args, "--check")
    assert done.returncode in (EX_USAGE, EX_CONFIG), done
    assert why in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_config_file_route_key(tmp_path):
    conf = tmp_path / "relayd.conf"
    conf.write_text("[relay web]\nlisten = 127.0.0.1:1\n"
                    "route = blog.example.org 127.0.0.1:10080\n"
                    "route = *.example.org unix:/run/site.sock\n")
    conf.chmod(0o600)
    done = run_relayd("-c", conf, "--check")
    assert done.returncode == 0 and "configuration OK" in done.stdout, done


def test_per_address_limits_apply_before_a_name_is_read(relayd, sinks):
    """Routing learns no address: --rate counts a client at accept, so
    connections that never send a name cannot pile up in the routing step."""
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", *routes(sinks), "--rate", "2",
               "--handshake-timeout", "10")
    silent = [tcp4(port).connect() for _ in range(6)]
    try:
        r.wait_log(r"refused 127\.0\.0\.1:\d+: --rate exceeded$")
        refused = 0
        for s in silent:
            s.settimeout(0.5)
            try:
                if s.recv(1) == b"":
                    refused += 1
            except socket.timeout:
                pass
            except ConnectionResetError:
                refused += 1
        assert refused >= 3, f"only {refused} of 6 silent clients refused at accept"
    finally:
        for s in silent:
            s.close()


# ---------------------------------------------------------------- tls: listeners

def s_client_send(port, name, data):
    """data over TLS (SNI name, or none for None) with openssl s_client,
    which ends with close_notify at the end of its input; returns its
    exit status and output."""
    sni = ["-servername", name] if name else ["-noservername"]
    done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *sni],
                          input=data, capture_output=True, timeout=20)
    return done.returncode, done.stdout + done.stderr


def tls_routes_relay(relayd, pki, port, *routes_and_to):
    """A tls: listener serving pki's two pairs (one.test and two.test;
    other.test)."""
    return relayd("--listen", f"tls:127.0.0.1:{port}",
                  "--cert", pki.two[0], "--key", pki.two[1],
                  "--cert", pki.other[0], "--key", pki.other[1], *routes_and_to)


def test_tls_listener_sni_picks_the_route(relayd, pki, sinks, tmp_path):
    """The name that picked the certificate picks the backend too: exact
    before wildcard, case aside, anything else to the default; bytes
    checked at the backends, the route named in each line and counted."""
    web = HttpBackend(tmp_path / "www", 1 << 20, seed=31)
    try:
        port, ctl = free_port(), tmp_path / "ctl"
        r = tls_routes_relay(relayd, pki, port, "--route", f"two.test={sinks[0].spec}",
                             "--route", f"*.test={sinks[1].spec}",
                             "--route", f"other.test={web.spec}",
                             "--to", sinks[2].spec, "--control", ctl)
        # Exact beats the wildcard that also covers it.
        tls_sink_roundtrip(port, pki.ca, 41, 300_000, servername="two.test")
        assert served_by(sinks, digest_of(payload(41, 300_000))) == 0
        # The wildcard, named in another case (s_client may drop what
        # it has not sent when its input ends: a few KiB only).
        data = payload(42, 8_000)
        code, out = s_client_send(port, "ONE.Test", data)
        assert code == 0, out[-2000:]
        assert served_by(sinks, digest_of(data)) == 1
        # Another certificate, another backend: curl verifies other.test.
        got = curl_digest(f"https://other.test:{port}/blob", "--cacert", str(pki.ca),
                          "--resolve", f"other.test:{port}:127.0.0.1")
        assert got == web.digest
        # One label only, and no name at all: the default.
        for seed, name in ((43, "a.b.test"), (44, None)):
            data = payload(seed, 8_000)
            code, out = s_client_send(port, name, data)
            assert code == 0, out[-2000:]
            assert served_by(sinks, digest_of(data)) == 2, name
        lines = [c["line"] for c in r.wait_conns(5)]
        for route, n in (("two.test", 1), ("*.test", 1), ("other.test", 1),
                         ("default", 2)):
            assert sum(f" route={route} " in ln for ln in lines) == n, (route, lines)
        out = run_relayd("--status", "--control", ctl).stdout
        assert "routes for relay -: two.test=1 *.test=1 other.test=1 default=2" in out, out
    finally:
        web.stop()


def test_tls_listener_without_a_match_closes_after_the_handshake(relayd, pki, sinks):
    """No default: a name no route takes, or none, is refused with the
    reason once the handshake is done, and nothing is dialled."""
    port = free_port()
    r = tls_routes_relay(relayd, pki, port, "--route", f"two.test={sinks[0].spec}",
                         "--route", f"*.test={sinks[1].spec}")
    for name, why in (("a.b.test", "no route for a.b.test"),
                      ("ONE.example", "no route for one.example"),
                      (None, "no route for a connection without a name")):
        s_client_send(port, name, b"never relayed\n")
        r.wait_log(rf"^relayd: refused 127\.0\.0\.1:\d+: {why}$")
    assert r.conns() == [] and all(not b.records for b in sinks)
    assert "connected to" not in r.log()
    # A handshake that fails is refused as on any tls: listener.
    with tcp4(port).connect() as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        wait_closed(s, 5)
    r.wait_log(r"refused 127\.0\.0\.1:\d+: TLS handshake failed: ")
    assert all(not b.records for b in sinks)


def test_tls_listener_with_routes_bounds_the_handshake(relayd, pki, sinks):
    """A client that never finishes its handshake is refused at
    --handshake-timeout, as on a tls: listener without routes."""
    port = free_port()
    r = tls_routes_relay(relayd, pki, port, "--route", f"two.test={sinks[0].spec}",
                         "--handshake-timeout", "1")
    with tcp4(port).connect() as s:
        s.sendall(b"\x16\x03\x01")
        took = wait_closed(s, 5)
    assert took < 4
    r.wait_log(r"refused 127\.0\.0\.1:\d+: routing timeout$")
    assert r.conns() == [] and not sinks[0].records
