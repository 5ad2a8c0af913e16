"""ACME: a tls: listener's certificate from pebble (Debian's ACME test
server) on loopback. pebble validates HTTP-01 on relayd's plain listener
(its httpPort) and resolves the names through a DnsServer of ours; its
own HTTPS certificate comes from a private CA made here (--acme-ca). The
certificate is issued, served and verified against pebble's root (from
its management API), renewed when its lifetime is short, kept across a
restart, and a failing server leaves the old one serving."""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import DnsServer, digest_of, free_port, payload, run_relayd
from test_tls import openssl, served_cert, fingerprint, file_fingerprint, tls_sink_roundtrip

PEBBLE = shutil.which("pebble")
pytestmark = pytest.mark.skipif(PEBBLE is None, reason="pebble is not installed "
                                "(scripts/install-deps test)")
NAME = "www.acme.test"


class Pebble:
    """pebble on 127.0.0.1 with a short certificate validity; stopped by
    its PID."""

    def __init__(self, d, http_port, dns, validity=3600):
        self.dir = Path(d)
        self.dir.mkdir(exist_ok=True)
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                "-subj", "/CN=pebble test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign", cwd=d)
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "key.pem", "-out", "req.pem", "-subj", "/CN=localhost", cwd=d)
        (self.dir / "ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                      "basicConstraints=critical,CA:FALSE\n"
                                      "extendedKeyUsage=serverAuth\n")
        openssl("x509", "-req", "-in", "req.pem", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "ext", "-out", "cert.pem", cwd=d)
        self.ca = self.dir / "ca.pem"
        self.port, self.mgmt = free_port(), free_port()
        self.http_port, self.dns, self.validity = http_port, dns, validity
        self.proc = None

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self):
        conf = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt}",
            "certificate": str(self.dir / "cert.pem"), "privateKey": str(self.dir / "key.pem"),
            "httpPort": self.http_port, "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False,
            "certificateValidityPeriod": self.validity}}
        (self.dir / "pebble.json").write_text(json.dumps(conf))
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0",
                   PEBBLE_AUTHZREUSE="0")
        self.log = open(self.dir / "pebble.log", "ab")
        self.proc = subprocess.Popen([PEBBLE, "-config", str(self.dir / "pebble.json"),
                                      "-dnsserver", f"{self.dns.address}:53"],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert self.proc.poll() is None, self.logtext()
            time.sleep(0.1)
        pytest.fail(f"pebble did not start: {self.logtext()}")

    def logtext(self):
        return (self.dir / "pebble.log").read_text(errors="replace")

    def root(self):
        """pebble's root certificate (made at each start), from its
        management API, as a file."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        with urllib.request.urlopen(f"https://127.0.0.1:{self.mgmt}/roots/0",
                                    context=ctx, timeout=10) as r:
            pem = r.read()
        path = self.dir / "root.pem"
        path.write_bytes(pem)
        return path

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None


@pytest.fixture
def dns():
    import random
    for _ in range(20):
        address = f"127.{random.randrange(1, 255)}.{random.randrange(256)}." \
                  f"{random.randrange(1, 255)}"
        try:
            server = DnsServer(address)
            break
        except OSError:
            continue
    else:
        pytest.skip("no loopback address with a free port 53")
    server.names[NAME] = ["127.0.0.1"]
    yield server
    server.stop()


@pytest.fixture
def acme_env(tmp_path, dns):
    http_port = free_port()
    pebble = Pebble(tmp_path / "pebble", http_port, dns)
    yield pebble
    pebble.stop()


def acme_dir(sockdir):
    """In a directory the unprivileged user can reach."""
    return sockdir / "acme"


def acme_relay(relayd, pebble, d, sink, tls_port, *extra):
    return relayd("--listen", f"tls:127.0.0.1:{tls_port}",
                  "--listen", f"127.0.0.1:{pebble.http_port}",
                  "--acme-dir", d, "--acme-server", pebble.url, "--acme-ca", pebble.ca,
                  "--acme-name", NAME, "--acme-email", "ops@acme.test",
                  "--to", sink.spec, *extra)


def wait_issued(r, count=1, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(re.findall(r"certificate issued by ACME", r.log())) >= count and \
                len(re.findall(r"certificates reloaded", r.log())) >= count:
            return
        time.sleep(0.2)
    pytest.fail(f"no certificate issued:\n{r.describe()}")


def http_get(port, path, host=NAME):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        out = b""
        while chunk := s.recv(4096):
            out += chunk
    return out


def test_issue_serve_renew_restart(relayd, acme_env, sink, sockdir):
    pebble = acme_env
    pebble.validity = 45        # renewed after 30 s
    pebble.start()
    d, tls_port = acme_dir(sockdir), free_port()
    r = acme_relay(relayd, pebble, d, sink, tls_port)
    wait_issued(r)
    root = pebble.root()
    first, verify = served_cert(tls_port, NAME, root)
    assert verify == "Verify return code: 0 (ok)", verify
    assert first == file_fingerprint(d / "cert.pem")
    assert (d / "account.key").exists() and oct((d / "key.pem").stat().st_mode)[-3:] == "600"
    # Renewed at two thirds of its lifetime, swapped in.
    wait_issued(r, 2, timeout=60)
    second, verify = served_cert(tls_port, NAME, root)
    assert verify == "Verify return code: 0 (ok)" and second != first
    # Kept across a restart: served at once, no new order.
    r.stop()
    pebble.validity = 3600
    r2 = acme_relay(relayd, pebble, d, sink, tls_port)
    assert served_cert(tls_port, NAME, root)[0] == second
    r2.wait_log(r"certificate renewed in \d+ s")
    assert "asking" not in r2.log()


def test_challenge_paths_and_relaying(relayd, acme_env, http_backend, sockdir):
    """An unknown token gets relayd's own 404 (the backend never sees it);
    any other path is relayed to the backend, on the same plain listener."""
    pebble = acme_env
    pebble.start()
    d, tls_port = acme_dir(sockdir), free_port()
    r = acme_relay(relayd, pebble, d, http_backend, tls_port)
    wait_issued(r)
    reply = http_get(pebble.http_port, "/.well-known/acme-challenge/nope")
    assert reply == (b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: 10\r\nConnection: close\r\n\r\nnot found\n"), reply
    r.wait_log(r"end=ACME challenge unknown")
    reply = http_get(pebble.http_port, "/blob")
    assert reply.startswith(b"HTTP/1.0 200 ") and b"Server: SimpleHTTP" in reply, reply[:200]
    # TLS on the same relay is relayed to the backend too.
    ctx = ssl.create_default_context(cafile=str(pebble.root()))
    with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=NAME) as s:
        s.sendall(f"GET /blob HTTP/1.0\r\nHost: {NAME}\r\n\r\n".encode())
        assert s.recv(64).startswith(b"HTTP/1.0 200 ")


def test_failing_server_keeps_the_old_certificate(relayd, acme_env, sink, sockdir):
    pebble = acme_env
    pebble.validity = 30        # due again after 20 s
    pebble.start()
    d, tls_port = acme_dir(sockdir), free_port()
    r = acme_relay(relayd, pebble, d, sink, tls_port)
    wait_issued(r)
    root = pebble.root()
    served = served_cert(tls_port, NAME, root)[0]
    pebble.stop()
    r.wait_log(r"ACME failed, trying again in 60 s: .*connect", timeout=40)
    assert served_cert(tls_port, NAME)[0] == served


def test_route_names_are_the_certificate_names(relayd, acme_env, dns, backends, sockdir):
    """Without --acme-name the certificate is for the routes' names: both
    verify against pebble's root, and on the tls: listener each name's SNI
    picks its route's backend (bytes checked there)."""
    blog = "blog.acme.test"
    dns.names[blog] = ["127.0.0.1"]
    pebble = acme_env
    pebble.start()
    www_sink, blog_sink = backends.sink(), backends.sink()
    d, tls_port = acme_dir(sockdir), free_port()
    r = relayd("--listen", f"tls:127.0.0.1:{tls_port}",
               "--listen", f"127.0.0.1:{pebble.http_port}",
               "--acme-dir", d, "--acme-server", pebble.url, "--acme-ca", pebble.ca,
               "--route", f"{NAME}={www_sink.spec}", "--route", f"{blog}={blog_sink.spec}")
    wait_issued(r)
    root = pebble.root()
    for seed, (name, sink) in enumerate(((NAME, www_sink), (blog, blog_sink))):
        fp, verify = served_cert(tls_port, name, root)
        assert verify == "Verify return code: 0 (ok)" and fp == file_fingerprint(d / "cert.pem")
        # s_client's connection came first, with nothing to send.
        tls_sink_roundtrip(tls_port, root, seed, 100_000, servername=name)
        assert [rec["received"] for rec in sink.wait_done(2)] == \
            [digest_of(b""), digest_of(payload(seed, 100_000))]
    lines = [c["line"] for c in r.conns() if "end=ACME" not in c["line"]]
    assert sum(f"route={NAME} " in ln for ln in lines) == 2, lines
    assert sum(f"route={blog} " in ln for ln in lines) == 2, lines


@pytest.mark.parametrize("args, needle", [
    (["--listen", "tls:8443", "--listen", "8080", "--acme-dir", "/tmp/x", "--to", "127.0.0.1:9"],
     r"--acme needs acme-name"),
    (["--listen", "tls:8443", "--acme-dir", "/tmp/x", "--acme-name", "a.test",
      "--to", "127.0.0.1:9"], r"--acme needs a plain TCP listener"),
    (["--listen", "8080", "--acme-dir", "/tmp/x", "--acme-name", "a.test",
      "--to", "127.0.0.1:9"], r"--acme needs a tls: listener"),
    (["--listen", "8080", "--acme-name", "a.test", "--to", "127.0.0.1:9"],
     r"--acme needs acme-dir"),
    (["--listen", "tls:8443", "--listen", "8080", "--acme-dir", "/tmp/x",
      "--acme-name", "*.a.test", "--to", "127.0.0.1:9"], r"--acme-name: .* is not a host name"),
    (["--listen", "8080", "--acme-server", "http://x/dir", "--to", "127.0.0.1:9"],
     r"--acme-server: .* is not an https:// URL"),
    (["--listen", "tls:8443", "--listen", "8080", "--acme-dir", "/tmp/x",
      "--route", "a.test=127.0.0.1:9", "--route", "*.a.test=127.0.0.1:9"],
     r"--acme cannot get a wildcard route's name \(HTTP-01\): give acme-name"),
], ids=["no-name", "no-plain", "no-tls", "no-dir", "wildcard", "http-url", "wildcard-route"])
def test_usage_errors(args, needle):
    done = run_relayd(*args)
    assert done.returncode == 64 and re.search(needle, done.stderr), done


def test_check_before_the_first_start(sockdir):
    """--check passes before DIR or any certificate exists, and makes
    nothing."""
    d = sockdir / "acme"
    done = run_relayd("--check", "--listen", "tls:127.0.0.1:8443", "--listen", "127.0.0.1:8080",
                      "--acme-dir", d, "--acme-name", NAME, "--to", "127.0.0.1:9")
    assert done.returncode == 0 and done.stdout == "configuration OK\n", done
    assert not d.exists()


def test_check_takes_the_names_from_the_routes(sockdir):
    """Routes on the tls: listener and no --acme-name: the routes' names
    are the certificate's, and the configuration passes."""
    done = run_relayd("--check", "--listen", "tls:127.0.0.1:8443", "--listen", "127.0.0.1:8080",
                      "--acme-dir", sockdir / "acme", "--route", f"{NAME}=127.0.0.1:9",
                      "--route", "blog.acme.test=127.0.0.1:10")
    assert done.returncode == 0 and done.stdout == "configuration OK\n", done


def test_reload_that_adds_an_acme_relay_is_refused_alive(relayd, sink, sockdir):
    """After the drop relayd cannot make --acme-dir: a reload that adds an
    ACME relay fails with the reason and the daemon goes on."""
    p1, p2, p3 = free_port(), free_port(), free_port()
    conf = sockdir / "relayd.conf"
    conf.write_text(f"[relay plain]\nlisten = 127.0.0.1:{p1}\nto = {sink.spec}\n")
    conf.chmod(0o644)
    r = relayd("-c", conf)
    conf.write_text(conf.read_text() + f"\n[relay web]\nlisten = tls:127.0.0.1:{p2}\n"
                    f"listen = 127.0.0.1:{p3}\nacme-dir = {sockdir / 'acme'}\n"
                    f"acme-name = {NAME}\nacme-server = https://127.0.0.1:9/dir\n"
                    f"to = {sink.spec}\n")
    os.kill(r.pid, signal.SIGHUP)
    r.wait_log(r"has no certificate yet: a new ACME relay needs a restart")
    assert r.proc.poll() is None
    with socket.create_connection(("127.0.0.1", p1), timeout=5):
        pass


def test_two_relays_cannot_share_an_acme_dir(sockdir):
    """Two ACME clients would write over each other's key and certificate."""
    d = sockdir / "acme"
    conf = sockdir / "relayd.conf"
    section = ("[relay {n}]\nlisten = tls:127.0.0.1:{t}\nlisten = 127.0.0.1:{p}\n"
               "acme-dir = {d}\nacme-name = {name}\nto = 127.0.0.1:9\n")
    conf.write_text(section.format(n="a", t=8443, p=8080, d=d, name=NAME) +
                    section.format(n="b", t=8444, p=8081, d=d, name=NAME))
    conf.chmod(0o600)
    done = run_relayd("-c", conf, "--check")
    assert done.returncode == 78, done
    assert f"relays a and b both use acme-dir {d}" in done.stderr, done.stderr


class BlackHole:
    """An ACME server that never answers: a listening socket from which
    nothing is accepted. "silent": connections complete (the kernel does
    that) and then hear nothing, so a client waits in its TLS handshake.
    "unreachable": its one-place queue is filled first, so that the kernel
    drops every SYN and a client waits in connect(). Closed, not killed:
    there is no process."""

    def __init__(self, kind):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(0 if kind == "unreachable" else 16)
        self.filler = None
        if kind == "unreachable":
            self.filler = socket.create_connection(self.lsock.getsockname(), timeout=5)
            with socket.socket() as probe:
                probe.settimeout(0.5)
                with pytest.raises(socket.timeout):
                    probe.connect(self.lsock.getsockname())

    @property
    def url(self):
        return f"https://127.0.0.1:{self.lsock.getsockname()[1]}/dir"

    def close(self):
        if self.filler is not None:
            self.filler.close()
        self.lsock.close()


@pytest.fixture(params=["silent", "unreachable"])
def black_hole(request):
    hole = BlackHole(request.param)
    yield hole
    hole.close()


def black_hole_relay(relayd, hole, sink, sockdir):
    return relayd("--listen", f"tls:127.0.0.1:{free_port()}", "--listen",
                  f"127.0.0.1:{free_port()}", "--acme-dir", acme_dir(sockdir),
                  "--acme-server", hole.url, "--acme-name", NAME, "--to", sink.spec)


# A request may take 15 s (acme/order.c TIMEOUT); a stop must not wait for it.
STOP_WITHIN = 5


def test_stop_cuts_an_exchange_with_a_silent_server_short(relayd, black_hole, sink,
                                                          sockdir):
    """SIGTERM while the ACME thread waits on a server that says nothing
    (in connect() or in the TLS handshake): relayd exits 0 at once, and
    the cut exchange is not reported as a failure to retry."""
    r = black_hole_relay(relayd, black_hole, sink, sockdir)
    r.wait_log(r"asking https://127\.0\.0\.1:\d+/dir for a certificate")
    time.sleep(1)       # into the wait
    r.stop(within=STOP_WITHIN)
    assert "ACME failed" not in r.log(), r.log()


def test_reload_retires_a_client_stuck_on_a_silent_server_at_once(relayd, sink, sockdir):
    """A reload that changes an ACME relay stops its client before the
    successor's starts: with the old one stuck in connect(), the reload
    still ends in moments, and the new client asks in its turn."""
    hole = BlackHole("unreachable")
    try:
        conf = sockdir / "relayd.conf"
        section = (f"[relay web]\nlisten = tls:127.0.0.1:{free_port()}\n"
                   f"listen = 127.0.0.1:{free_port()}\nacme-dir = {acme_dir(sockdir)}\n"
                   f"acme-name = {NAME}\nacme-server = {hole.url}\nto = {sink.spec}\n")
        conf.write_text(section)
        conf.chmod(0o644)
        r = relayd("-c", conf)
        r.wait_log(r"asking https://127\.0\.0\.1:\d+/dir for a certificate")
        time.sleep(1)
        conf.write_text(section + "acme-email = ops@acme.test\n")
        os.kill(r.pid, signal.SIGHUP)
        r.wait_log(r"^relayd: reloaded: 1 relays, 0 tunnels \(0 unchanged\)$",
                   timeout=STOP_WITHIN)
        deadline = time.monotonic() + STOP_WITHIN
        while r.log().count("for a certificate") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert r.log().count("for a certificate") == 2, r.log()
        time.sleep(1)
        r.stop(within=STOP_WITHIN)
        assert "ACME failed" not in r.log(), r.log()
    finally:
        hole.close()
