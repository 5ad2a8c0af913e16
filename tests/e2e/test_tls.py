"""TLS: tls: listeners terminate TLS (checked with openssl s_client, curl and
Python's ssl), SNI picks the certificate, non-TLS clients and slow
handshakes cost no target connection, tls: targets are verified, and
SIGHUP swaps certificates. Every certificate is made here with the openssl
command line: a private CA, a certificate for two names, one for a third
name, an expired one and an untrusted self-signed one."""

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from test_relay_limits import socket_buffers_allowance
from conftest import (CHUNK, IO_TIMEOUT, Background, Backend, Digest, HeaderSink, HttpBackend,
                      curl_digest, digest_of, free_port, payload, recv_all, recv_exact,
                      recv_until_eof, run_relayd, send_stream, sink_reply, tcp4, wait_closed)

MiB = 1 << 20
EX_NOINPUT, EX_USAGE, EX_CONFIG = 66, 64, 78


# ---------------------------------------------------------------- certificates

def openssl(*args, cwd):
    done = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, f"openssl {' '.join(map(str, args))}: {done.stderr}"
    return done.stdout


CA_CONF = """\
[ca]
default_ca = test_ca
[test_ca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = copy
x509_extensions = leaf
[any]
commonName = supplied
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


class Pki:
    """Keys and certificates in one directory that the unprivileged user can
    read (relayd reads them again as that user on SIGHUP). They carry the
    extensions a real CA sets (key usage, key identifiers, basic
    constraints): Python 3.13's default context verifies strictly."""

    def __init__(self, d):
        self.dir = Path(d)
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
                "-subj", "/CN=relayd test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
        (self.dir / "ca.cnf").write_text(CA_CONF)
        (self.dir / "index.txt").write_text("")
        (self.dir / "serial").write_text("01\n")
        self.ca = self.dir / "ca.pem"
        self.two = self.issue("two", "one.test", ["DNS:one.test", "DNS:two.test",
                                                  "IP:127.0.0.1"])
        self.other = self.issue("other", "other.test", ["DNS:other.test"])
        self.expired = self.issue("expired", "one.test", ["DNS:one.test", "IP:127.0.0.1"],
                                  dates=("20200101000000Z", "20200201000000Z"))
        self.selfsigned = self.self_signed("self", "one.test")
        for f in self.dir.iterdir():
            f.chmod(0o644)

    def issue(self, name, cn, sans, dates=None):
        """Signs a new key's certificate with the CA; returns (cert, key)."""
        key, csr, cert = f"{name}.key", f"{name}.csr", f"{name}.pem"
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", f"/CN={cn}",
                "-addext", "subjectAltName=" + ",".join(sans), cwd=self.dir)
        if dates is None:
            dates = ("-days", "30")
        else:
            dates = ("-startdate", dates[0], "-enddate", dates[1])
        openssl("ca", "-batch", "-notext", "-config", "ca.cnf", "-cert", "ca.pem",
                "-keyfile", "ca.key", "-in", csr, "-out", cert, *dates, cwd=self.dir)
        return self.dir / cert, self.dir / key

    def self_signed(self, name, cn):
        key, cert = f"{name}.key", f"{name}.pem"
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", f"/CN={cn}",
                "-addext", f"subjectAltName=DNS:{cn},IP:127.0.0.1", cwd=self.dir)
        return self.dir / cert, self.dir / key


@pytest.fixture(scope="module")
def pki():
    d = Path(f"/tmp/relayd-e2e-pki-{os.getpid()}")
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    yield Pki(d)
    shutil.rmtree(d, ignore_errors=True)


def fingerprint(cert_pem):
    """SHA-256 fingerprint of a PEM certificate, as openssl prints it."""
    done = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
                          input=cert_pem, capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split("=", 1)[1]


def file_fingerprint(path):
    return fingerprint(Path(path).read_text())


def served_cert(port, servername=None, ca=None):
    """The certificate relayd serves on 127.0.0.1:port (for servername,
    if given), its fingerprint and s_client's verify line."""
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-showcerts"]
    args += ["-servername", servername] if servername else ["-noservername"]
    if ca:
        args += ["-CAfile", str(ca), "-verify_return_error"]
    done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=20)
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n",
                  done.stdout, re.S)
    assert m, f"s_client got no certificate: {done.stdout}{done.stderr}"
    verify = re.search(r"Verify return code: .*", done.stdout)
    return fingerprint(m.group(0)), verify.group(0) if verify else None


def client_context(ca):
    return ssl.create_default_context(cafile=str(ca))


class TlsClient:
    """A blocking TLS client over ssl.SSLObject, because SSLSocket cannot
    half-close: shutdown_write() sends close_notify and reading goes on.
    recv() returns b"" only on the peer's close_notify; a TCP EOF without
    it raises ssl.SSLEOFError. Sends and receives from one thread."""

    def __init__(self, port, ca, servername="one.test", ctx=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        ctx = ctx or client_context(ca)
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=servername)
        try:
            self._run(self.obj.do_handshake)
        except BaseException:
            self.sock.close()
            raise

    def _flush(self):
        if data := self.out.read():
            self.sock.sendall(data)

    def _run(self, fn, *args):
        while True:
            try:
                result = fn(*args)
                self._flush()
                return result
            except ssl.SSLWantReadError:
                self._flush()
                data = self.sock.recv(CHUNK)
                if data:
                    self.inc.write(data)
                else:
                    self.inc.write_eof()

    def version(self):
        return self.obj.version()

    def sendall(self, data):
        view = memoryview(data)
        while view:
            view = view[self._run(self.obj.write, view):]

    def recv(self, n):
        try:
            return self._run(self.obj.read, n)
        except ssl.SSLZeroReturnError:
            return b""

    def shutdown_write(self):
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass        # sent; the peer's close_notify comes later
        self._flush()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def tls_connect(port, ca, servername="one.test", ctx=None):
    return TlsClient(port, ca, servername, ctx)


def tls_sink_roundtrip(port, ca, seed, nbytes, servername="one.test", ctx=None):
    """Sends nbytes over TLS, close_notify, and checks a sink's answer, which
    must end with relayd's close_notify."""
    with tls_connect(port, ca, servername, ctx) as s:
        sent = send_stream(s, seed, nbytes)
        s.shutdown_write()
        answer = recv_until_eof(s)
        assert answer == sink_reply(sent), f"sent {sent}, sink answered {answer!r}"
        return s.version()


def tls_relay(relayd, pki, target, *extra, port=None, pair=None):
    port = port or free_port()
    cert, key = pair or pki.two
    r = relayd("--listen", f"tls:127.0.0.1:{port}", "--cert", cert, "--key", key,
               "--to", target, *extra)
    return r, port


# ---------------------------------------------------------------- backends

class CountingBackend(Backend):
    """Reads exactly `expect` bytes, answers sink_reply() of them, then sends
    `nbytes` of seeded data and closes: a peer that needs no EOF to answer."""

    def __init__(self, addr, expect, nbytes, seed=21):
        self.expect, self.nbytes, self.seed = expect, nbytes, seed
        super().__init__(addr)

    def handle(self, conn, record):
        got = recv_exact(conn, self.expect)
        record["received"] = digest_of(got)
        conn.sendall(sink_reply(record["received"]))
        record["sent"] = send_stream(conn, self.seed, self.nbytes)
        conn.shutdown(socket.SHUT_WR)


class TlsSinkBackend(Backend):
    """A TLS server (Python's ssl) that reads to EOF and answers with the
    length and SHA-256 of what it got, like SinkBackend."""

    def __init__(self, addr, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert), str(key))
        super().__init__(addr)

    def handle(self, conn, record):
        with self.ctx.wrap_socket(conn, server_side=True) as tconn:
            record["received"] = recv_all(tconn)
            tconn.sendall(sink_reply(record["received"]))
            tconn.unwrap()


class UploadHandler(BaseHTTPRequestHandler):
    """PUT answers the SHA-256 of the body; GET is not needed."""

    def do_PUT(self):
        n = int(self.headers["Content-Length"])
        h, left = hashlib.sha256(), n
        while left:
            data = self.rfile.read(min(CHUNK, left))
            assert data, "body cut short"
            h.update(data)
            left -= len(data)
        body = f"{n} {h.hexdigest()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def upload_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), UploadHandler)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        t.join(2)


@pytest.fixture
def tls_backends():
    made = []

    def make(cert, key):
        b = TlsSinkBackend(tcp4(), cert, key)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


# ---------------------------------------------------------------- termination

def test_curl_downloads_and_uploads_multi_mib(relayd, pki, tmp_path):
    www = HttpBackend(tmp_path / "www", 6 * MiB, seed=31)
    try:
        r, port = tls_relay(relayd, pki, www.spec)
        got = curl_digest(f"https://one.test:{port}/blob", "--cacert", str(pki.ca),
                          "--resolve", f"one.test:{port}:127.0.0.1")
        assert got == www.digest
    finally:
        www.stop()
    body = payload(32, 5 * MiB + 17)
    (tmp_path / "up").write_bytes(body)
    with upload_server() as target:
        r2, port = tls_relay(relayd, pki, target)
        done = subprocess.run(
            ["curl", "--silent", "--show-error", "--fail", "--max-time", "30",
             "--cacert", str(pki.ca), "--resolve", f"two.test:{port}:127.0.0.1",
             "--upload-file", str(tmp_path / "up"), f"https://two.test:{port}/up"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=40)
        assert done.returncode == 0, done.stderr
        assert done.stdout == sink_reply(digest_of(body))
    c = r.wait_conn()
    assert c["end"] == "eof" and c["outb"] > 6 * MiB, c["line"]


def test_s_client_both_ways(relayd, pki, backends, tmp_path):
    up, down = 3 * MiB + 5, 4 * MiB + 9
    target = backends._make(CountingBackend, None, up, down)
    r, port = tls_relay(relayd, pki, target.spec)
    data = payload(41, up)
    (tmp_path / "in").write_bytes(data)
    with open(tmp_path / "in", "rb") as stdin:
        done = subprocess.run(
            ["openssl", "s_client", "-quiet", "-connect", f"127.0.0.1:{port}",
             "-servername", "one.test", "-CAfile", str(pki.ca), "-verify_return_error"],
            stdin=stdin, capture_output=True, timeout=60)
    reply = sink_reply(digest_of(data))
    assert done.stdout[:len(reply)] == reply, done.stderr
    [rec] = target.wait_done(1)
    assert digest_of(done.stdout[len(reply):]) == rec["sent"]
    c = r.wait_conn()
    assert (c["inb"], c["outb"]) == (up, len(reply) + down), c["line"]


def test_close_notify_both_ways_with_big_streams(relayd, pki, sink):
    r, port = tls_relay(relayd, pki, sink.spec)
    tls_sink_roundtrip(port, pki.ca, 51, 8 * MiB)
    c = r.wait_conn()
    assert (c["inb"], c["end"]) == (8 * MiB, "eof"), c["line"]
    assert "spliced=" not in c["line"], "TLS bytes went around OpenSSL"
    r.stop()     # exit 0: under ASan, no leaked SSL objects


def test_tcp_eof_without_close_notify_is_an_eof(relayd, pki, backends):
    target = backends._make(CountingBackend, None, 1000, 2 * MiB)
    r, port = tls_relay(relayd, pki, target.spec)
    ctx = client_context(pki.ca)
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="one.test") as s:
            data = payload(52, 1000)
            s.sendall(data)
            answer = recv_exact(s, len(sink_reply(digest_of(data))))
            got = recv_all(s)
    [rec] = target.wait_done(1)
    assert answer == sink_reply(rec["received"])
    assert got == rec["sent"]
    c = r.wait_conn()
    assert (c["inb"], c["end"]) == (1000, "eof"), c["line"]
    r.stop()     # exit 0: under ASan, no leaked SSL objects


def test_many_clients_at_once(relayd, pki, sink):
    r, port = tls_relay(relayd, pki, sink.spec)
    workers = [Background(tls_sink_roundtrip, port, pki.ca, 100 + i, 50_000 + 997 * i)
               for i in range(40)]
    for w in workers:
        w.result()
    assert [c["end"] for c in r.wait_conns(40)] == ["eof"] * 40


def test_tls12_and_tls13_clients(relayd, pki, sink):
    r, port = tls_relay(relayd, pki, sink.spec)
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = client_context(pki.ca)
        ctx.minimum_version = ctx.maximum_version = version
        got = tls_sink_roundtrip(port, pki.ca, 61, 300_000, ctx=ctx)
        assert got == version.name.replace("v1_", "v1.")
    assert [c["end"] for c in r.wait_conns(2)] == ["eof", "eof"]


def test_slow_tls_reader_holds_the_target_back(relayd, pki, backends):
    # Backpressure through TLS: while the client reads a trickle, relayd
    # stops reading the target instead of buffering what it sends.
    total = 256 * MiB
    target = backends.pump(total, seed=57)
    r, port = tls_relay(relayd, pki, target.spec)
    got = Digest()
    with tls_connect(port, pki.ca) as s:
        s.shutdown_write()
        trickle_end = time.monotonic() + 2
        while time.monotonic() < trickle_end:
            got.update(s.recv(4096))
            time.sleep(0.002)
        ahead = target.records[0]["sent_so_far"] - got.n
        assert ahead < socket_buffers_allowance(), \
            f"target is {ahead >> 20} MiB ahead of a slow client"
        while data := s.recv(1 << 20):
            got.update(data)
    [rec] = target.wait_done(1)
    assert got.result() == rec["sent"]
    c = r.wait_conn()
    assert (c["inb"], c["outb"], c["end"]) == (0, total, "eof"), c["line"]


def test_idle_tls_connection_costs_no_cpu(relayd, pki, echo):
    # Bytes left inside OpenSSL get one wake-up, not a busy loop.
    r, port = tls_relay(relayd, pki, echo.spec)
    with tls_connect(port, pki.ca) as s:
        for i in range(3):
            data = payload(58 + i, 100_000)
            s.sendall(data)
            assert recv_exact(s, len(data)) == data
        cpu0 = r.cpu_seconds()
        time.sleep(1.5)
        assert r.cpu_seconds() - cpu0 < 0.3, "relayd busy while the connection is idle"
        s.sendall(b"still there")
        assert recv_exact(s, 11) == b"still there"


class SClient:
    """An interactive openssl s_client (with -msg) on relayd's port: send()
    writes one line per call, so that s_client reads a command ("k", "K",
    "R") alone, and waits for what should then appear in its output."""

    def __init__(self, port, ca, *args):
        self.out = bytearray()
        self.p = subprocess.Popen(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
             "one.test", "-CAfile", str(ca), "-msg", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def send(self, data, expect, n=1):
        self.p.stdin.write(data)
        self.p.stdin.flush()
        while self.out.count(expect) < n:
            data = os.read(self.p.stdout.fileno(), 65536)
            assert data, f"s_client ended before {expect!r}: {bytes(self.out)[-800:]!r}"
            self.out.extend(data)

    def kill(self):
        self.p.kill()
        self.p.wait()


def test_key_updates_mid_stream(relayd, pki, echo):
    # s_client's "k"/"K" send a TLS 1.3 KeyUpdate (K: asking for one back,
    # which relayd must send while it reads).
    r, port = tls_relay(relayd, pki, echo.spec)
    c = SClient(port, pki.ca, "-tls1_3")
    try:
        for i, cmd in enumerate([b"k\n", b"K\n", b"K\n"]):
            c.send(f"line {i} before\n".encode(), f"line {i} before\n".encode())
            c.send(cmd, b"KEYUPDATE", i + 1)
            c.send(f"line {i} after\n".encode(), f"line {i} after\n".encode())
        # relayd answered each "K" with a KeyUpdate of its own.
        assert len(re.findall(rb"<<< TLS 1.3, Handshake \[length \w+\], KeyUpdate",
                              c.out)) == 2, bytes(c.out)
    finally:
        c.kill()
    line = r.wait_conn()
    assert line["inb"] == line["outb"] == sum(len(f"line {i} before\n") +
                                              len(f"line {i} after\n")
                                              for i in range(3)), line["line"]


def test_renegotiation_is_refused(relayd, pki, echo):
    r, port = tls_relay(relayd, pki, echo.spec)
    c = SClient(port, pki.ca, "-tls1_2")
    try:
        c.send(b"before\n", b"before\n")
        c.send(b"R\n", b"<<< TLS 1.2, Alert [length 0002], warning no_renegotiation")
    finally:
        c.kill()
    line = r.wait_conn()
    assert (line["inb"], line["outb"]) == (7, 7), line["line"]
    assert line["end"] in ("client error: Protocol error", "client reset", "eof"), line["line"]
    r.stop()     # exit 0: under ASan, no leaked SSL objects


def test_fork_mode_serves_tls(relayd, pki, sink):
    r, port = tls_relay(relayd, pki, sink.spec, "--fork")
    for i in range(3):
        tls_sink_roundtrip(port, pki.ca, 70 + i, 1 * MiB)
    assert [c["end"] for c in r.wait_conns(3)] == ["eof"] * 3


def test_proxy_protocol_from_a_tls_listener(relayd, pki, backends):
    target = backends._make(HeaderSink, None)
    r, port = tls_relay(relayd, pki, target.spec, "--proxy-protocol", "v1")
    with tls_connect(port, pki.ca) as s:
        cport = s.sock.getsockname()[1]
        sent = send_stream(s, 97, 100_000)
        s.shutdown_write()
        assert recv_until_eof(s) == sink_reply(sent)
    [rec] = target.wait_done(1)
    assert rec["header"] == f"PROXY TCP4 127.0.0.1 127.0.0.1 {cport} {port}\r\n".encode()
    assert rec["received"] == sent


def test_sni_picks_the_certificate(relayd, pki, sink):
    port = free_port()
    relayd("--listen", f"tls:127.0.0.1:{port}", "--cert", pki.two[0], "--key", pki.two[1],
           "--cert", pki.other[0], "--key", pki.other[1], "--to", sink.spec)
    two, other = file_fingerprint(pki.two[0]), file_fingerprint(pki.other[0])
    for name, want in [("one.test", two), ("two.test", two), ("other.test", other),
                       ("unknown.test", two), (None, two)]:
        got, verify = served_cert(port, name, pki.ca)
        assert got == want, f"SNI {name}: served {got}"
    got, verify = served_cert(port, "other.test", pki.ca)
    assert verify == "Verify return code: 0 (ok)"


# ---------------------------------------------------------------- not TLS

def assert_refused_without_target(r, sink, needle):
    """A client refused in its handshake: one "refused" line with the
    reason, no connection line, nothing dialled."""
    r.wait_log(rf"^relayd: refused 127\.0\.0\.1:\d+: {needle}$")
    assert r.conns() == [], "a refused client got a connection line"
    assert sink.records == [], "a target connection was made"
    assert "connected to" not in r.log()


def test_garbage_is_closed_without_a_target_connection(relayd, pki, sink):
    r, port = tls_relay(relayd, pki, sink.spec, "-v")
    with tcp4(port).connect() as s:
        s.sendall(payload(71, 3000))
        wait_closed(s, 10)
    assert_refused_without_target(r, sink, r"TLS handshake failed: .+")
    r.stop()     # exit 0: under ASan, no leaked SSL objects


def test_plain_http_is_closed_without_a_target_connection(relayd, pki, sink):
    r, port = tls_relay(relayd, pki, sink.spec, "-v")
    with tcp4(port).connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: one.test\r\n\r\n")
        wait_closed(s, 10)
    assert_refused_without_target(r, sink, r"TLS handshake failed: http request")
    r.stop()     # exit 0: under ASan, no leaked SSL objects


def test_slow_handshake_is_closed_at_the_timeout(relayd, pki, sink):
    r, port = tls_relay(relayd, pki, sink.spec, "--handshake-timeout", "1", "-v")
    with tcp4(port).connect() as s:
        s.sendall(b"\x16\x03\x01\x02\x00\x01")   # the start of a ClientHello
        wait_closed(s, 10)
    assert_refused_without_target(r, sink, r"handshake timeout")
    r.stop()     # exit 0: under ASan, no leaked SSL objects


def test_expired_certificate_is_served_with_a_warning(relayd, pki, sink):
    r, port = tls_relay(relayd, pki, sink.spec, pair=pki.expired)
    r.wait_log(rf"^relayd: certificate {re.escape(str(pki.expired[0]))} has expired$")
    assert served_cert(port, "one.test")[0] == file_fingerprint(pki.expired[0])


def test_client_that_rejects_the_certificate(relayd, pki, sink):
    # A client that does not trust us hangs up in the handshake.
    r, port = tls_relay(relayd, pki, sink.spec, pair=pki.selfsigned)
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_connect(port, pki.ca).close()
    assert_refused_without_target(r, sink, r"TLS handshake failed: .+")
    r.stop()     # exit 0: under ASan, no leaked SSL objects


# ---------------------------------------------------------------- tls: targets

def test_tls_target_good_certificate(relayd, pki, tls_backends, backends):
    target = tls_backends(*pki.two)
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", f"tls:{target.spec}",
               "--ca", pki.ca)
    with tcp4(port).connect() as s:
        sent = send_stream(s, 81, 6 * MiB)
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == sink_reply(sent)
    [rec] = target.wait_done(1)
    assert rec["received"] == sent
    c = r.wait_conn()
    assert c["target"] == f"tls:{target.spec}" and c["end"] == "eof", c["line"]


def test_tls_target_by_name_with_verify_name(relayd, pki, tls_backends):
    target = tls_backends(*pki.two)
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", f"tls:{target.spec}",
               "--ca", pki.ca, "--verify-name", "two.test")
    with tcp4(port).connect() as s:
        sent = send_stream(s, 82, 100_000)
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == sink_reply(sent)
    assert r.wait_conn()["end"] == "eof"


def test_tls_both_sides(relayd, pki, tls_backends):
    target = tls_backends(*pki.other)
    r, port = tls_relay(relayd, pki, f"tls:{target.spec}", "--ca", pki.ca,
                        "--verify-name", "other.test")
    tls_sink_roundtrip(port, pki.ca, 83, 3 * MiB)
    assert r.wait_conn()["end"] == "eof"
    r.stop()     # exit 0: under ASan, no leaked SSL objects


@pytest.mark.parametrize("which, extra, reason", [
    ("expired", [], "certificate has expired"),
    ("selfsigned", [], "self-signed certificate"),
    ("two", ["--verify-name", "wrong.test"], "hostname mismatch"),
    ("two", ["--verify-name", "127.0.0.2"], "IP address mismatch"),
    ("two", ["-NOCA"], "unable to get local issuer certificate"),
])
def test_tls_target_refused(relayd, pki, tls_backends, which, extra, reason):
    target = tls_backends(*getattr(pki, which))
    port = free_port()
    ca = [] if extra == ["-NOCA"] else ["--ca", pki.ca]
    extra = [] if extra == ["-NOCA"] else extra
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", f"tls:{target.spec}", *ca, *extra)
    with tcp4(port).connect() as s:
        wait_closed(s, 10)
    c = r.wait_conn()
    assert c["end"] == f"target TLS handshake failed: certificate verify failed: {reason}", \
        c["line"]
    assert c["line"].startswith("relayd: conn"), c["line"]
    assert (c["inb"], c["outb"]) == (0, 0)
    [rec] = target.wait_done(1, clean=False)
    assert "received" not in rec
    r.stop()     # exit 0: under ASan, no leaked SSL objects


def test_tls_target_that_is_not_tls(relayd, sink):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", f"tls:{sink.spec}",
               "--handshake-timeout", "2")
    with tcp4(port).connect() as s:
        wait_closed(s, 10)
    assert r.wait_conn(timeout=10)["end"] == "target handshake timeout"
    r.stop()     # exit 0: under ASan, no leaked SSL objects


# ---------------------------------------------------------------- reload

def test_sighup_swaps_the_certificate(relayd, pki, sink, tmp_path):
    d = Path(pki.dir) / f"live-{free_port()}"
    d.mkdir(mode=0o755)
    cert, key = d / "cert.pem", d / "key.pem"
    shutil.copy(pki.two[0], cert)
    shutil.copy(pki.two[1], key)
    for f in (cert, key):
        f.chmod(0o644)
    port = free_port()
    r = relayd("--listen", f"tls:127.0.0.1:{port}", "--cert", cert, "--key", key,
               "--to", sink.spec)
    assert served_cert(port, "one.test")[0] == file_fingerprint(pki.two[0])
    # A broken new certificate keeps the old one, and says why.
    cert.write_text("not a certificate\n")
    os.kill(r.pid, signal.SIGHUP)
    r.wait_log(r"^relayd: relay -: keeping the certificates loaded before: "
               rf"certificate {re.escape(str(cert))}: .+")
    assert served_cert(port, "one.test")[0] == file_fingerprint(pki.two[0])
    # A good one is served from then on.
    shutil.copy(pki.other[0], cert)
    shutil.copy(pki.other[1], key)
    os.kill(r.pid, signal.SIGHUP)
    r.wait_log(r"^relayd: relay -: certificates reloaded$")
    assert served_cert(port, "other.test", pki.ca) == (file_fingerprint(pki.other[0]),
                                                       "Verify return code: 0 (ok)")
    tls_sink_roundtrip(port, pki.ca, 91, 200_000, "other.test")
    r.stop()     # exit 0: under ASan, no leaked SSL objects


def test_config_file_keys(relayd, pki, sink, tls_backends, sockdir):
    target = tls_backends(*pki.two)
    p1, p2 = free_port(), free_port()
    conf = sockdir / "relayd.conf"      # read again as nobody on SIGHUP
    conf.write_text(f"""\
[relay in]
listen = tls:127.0.0.1:{p1}
cert = {pki.two[0]}
key = {pki.two[1]}
cert = {pki.other[0]}
key = {pki.other[1]}
handshake-timeout = 3
to = {sink.spec}

[relay out]
listen = 127.0.0.1:{p2}
to = tls:{target.spec}
ca = {pki.ca}
verify-name = two.test
""")
    conf.chmod(0o644)
    check = run_relayd("-c", conf, "--check")
    assert check.returncode == 0 and check.stdout == "configuration OK\n", check
    r = relayd("-c", conf)
    assert served_cert(p1, "other.test", pki.ca)[0] == file_fingerprint(pki.other[0])
    tls_sink_roundtrip(p1, pki.ca, 92, 100_000)
    with tcp4(p2).connect() as s:
        sent = send_stream(s, 93, 100_000)
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == sink_reply(sent)
    # SIGHUP with the file unchanged keeps both relays and rereads certificates.
    os.kill(r.pid, signal.SIGHUP)
    r.wait_log(r"^relayd: relay in: certificates reloaded$")
    r.wait_log(r"^relayd: relay out: CA certificates reloaded$")
    r.wait_log(r"\(2 unchanged\)")


# ---------------------------------------------------------------- errors

def one_error(proc, code, needle):
    lines = proc.stderr.splitlines()
    assert proc.returncode == code, proc
    assert len(lines) == 1 and lines[0].startswith("relayd: "), proc.stderr
    assert re.search(needle, lines[0]), proc.stderr


@pytest.mark.parametrize("args, code, needle", [
    (["--listen", "tls:8443", "--to", "127.0.0.1:9"], EX_USAGE,
     r"tls: listener needs --cert FILE and --key FILE"),
    (["--listen", "tls:8443", "--cert", "c.pem", "--to", "127.0.0.1:9"], EX_USAGE,
     r"one --key for each --cert \(1 certificates, 0 keys\)"),
    (["--listen", "8443", "--cert", "c", "--key", "k", "--to", "127.0.0.1:9"], EX_USAGE,
     r"--cert and --key need a tls: listener"),
    (["--listen", "8443", "--to", "127.0.0.1:9", "--ca", "x"], EX_USAGE,
     r"--ca needs a tls: target"),
    (["--listen", "8443", "--to", "127.0.0.1:9", "--verify-name", "x"], EX_USAGE,
     r"--verify-name needs a tls: target"),
    (["--listen", "tls:unix:/tmp/x", "--to", "127.0.0.1:9"], EX_USAGE,
     r"TLS needs a TCP address"),
    (["--listen", "8443", "--to", "tls:127.0.0.1:9", "--handshake-timeout", "0"], EX_USAGE,
     r"--handshake-timeout: must be at least 1"),
    (["--listen", "tls:8443", "--cert", "c", "--key", "k", "--accept-proxy",
      "--to", "127.0.0.1:9"], EX_USAGE, r"accept-proxy cannot be combined with a tls: listener"),
    (["--listen", "8443", "--to", "tls:127.0.0.1:9", "--proxy-protocol", "v1"], EX_USAGE,
     r"proxy-protocol cannot be combined with a tls: target"),
], ids=["no-cert", "no-key", "cert-without-tls", "ca-without-tls",
        "verify-name-without-tls", "tls-unix", "timeout-0", "accept-proxy",
        "proxy-protocol-to-tls"])
def test_usage_errors(args, code, needle):
    one_error(run_relayd(*args), code, needle)


def test_unreadable_and_mismatched_files(pki, tmp_path):
    port = free_port()
    base = ["--listen", f"tls:127.0.0.1:{port}", "--to", "127.0.0.1:9"]
    one_error(run_relayd(*base, "--cert", tmp_path / "none.pem", "--key", pki.two[1]),
              EX_NOINPUT, r"certificate .*none\.pem: No such file or directory")
    (tmp_path / "junk.pem").write_text("junk\n")
    one_error(run_relayd(*base, "--cert", tmp_path / "junk.pem", "--key", pki.two[1]),
              EX_NOINPUT, r"certificate .*junk\.pem: .+")
    one_error(run_relayd(*base, "--cert", pki.two[0], "--key", pki.other[1]),
              EX_NOINPUT, r"key .*other\.key does not match certificate .*two\.pem")
    one_error(run_relayd("--listen", f"127.0.0.1:{port}", "--to", "tls:127.0.0.1:9",
                         "--ca", tmp_path / "none.pem"),
              EX_NOINPUT, r"CA file .*none\.pem: No such file or directory")
    # --check loads them too.
    conf = tmp_path / "relayd.conf"
    conf.write_text(f"[relay r]\nlisten = tls:{port}\ncert = {pki.two[0]}\n"
                    f"key = {pki.other[1]}\nto = 127.0.0.1:9\n")
    conf.chmod(0o600)
    one_error(run_relayd("-c", conf, "--check"), EX_NOINPUT,
              r"key .*other\.key does not match certificate .*two\.pem")
    # The same port with and without TLS is one listener given twice.
    conf.write_text(f"[relay a]\nlisten = tls:127.0.0.1:{port}\ncert = {pki.two[0]}\n"
                    f"key = {pki.two[1]}\nto = 127.0.0.1:9\n"
                    f"[relay b]\nlisten = 127.0.0.1:{port}\nto = 127.0.0.1:9\n")
    one_error(run_relayd("-c", conf, "--check"), EX_CONFIG,
              rf"listener 127\.0\.0\.1:{port} is given twice")


def test_shutdown_with_handshakes_and_transfers_in_flight(relayd, pki, backends):
    # Every close path frees its SSL objects: ASan runs check it at exit.
    target = backends.pump(64 * MiB, seed=95)
    r, port = tls_relay(relayd, pki, target.spec, "--drain-timeout", "0")
    half = tcp4(port).connect()
    half.sendall(b"\x16\x03\x01")
    busy = tls_connect(port, pki.ca)
    assert busy.recv(CHUNK)
    try:
        r.stop()
    finally:
        half.close()
        busy.close()
