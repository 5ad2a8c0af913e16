"""PROXY protocol: a real nginx (listen ... proxy_protocol) behind relay ->
sshd -R -> tunnel sees the client's own address; --accept-proxy reads a
header strictly (malformed, cut short, too long, too slow: refused, nothing
dialled) and passes its address on; --strip-proxy-header removes it for a
target that does not speak PROXY."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import (CLIENT, IO_TIMEOUT, connect_from, digest_of, free_port, fwd, payload,
                      recv_until_eof, trickle, wait_closed)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class Nginx:
    """nginx on 127.0.0.1:port with proxy_protocol, in its own prefix under
    the test's tmp dir, one process (master_process off), stopped by PID.
    Its access log lines read "<proxy_protocol_addr> <remote_addr> <uri>"."""

    def __init__(self, prefix, port):
        self.prefix = prefix
        self.port = port
        self.access_log = prefix / "access.log"
        for d in ("logs", "tmp"):
            (prefix / d).mkdir(parents=True, exist_ok=True)
        temps = "\n".join(f"    {k}_temp_path {prefix}/tmp/{k};"
                          for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (prefix / "nginx.conf").write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
{temps}
    log_format pp '$proxy_protocol_addr $remote_addr $request_uri';
    server {{
        listen 127.0.0.1:{port} proxy_protocol;
        access_log {self.access_log} pp;
        location / {{ return 200 "hello from nginx\\n"; }}
    }}
}}
""")
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
             "-e", str(prefix / "error.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert self.proc.poll() is None, f"nginx exited: {self.errors()}"
            assert time.monotonic() < deadline, "nginx did not listen within 10 s"
            time.sleep(0.05)

    def errors(self):
        p = self.prefix / "error.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def wait_access(self, uri, timeout=5):
        """(proxy_protocol_addr, remote_addr) of the request for uri."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.access_log.exists():
                for line in self.access_log.read_text().splitlines():
                    ppaddr, remote, got = line.split(" ")
                    if got == uri:
                        return ppaddr, remote
            time.sleep(0.02)
        pytest.fail(f"nginx logged no request for {uri}: {self.errors()[-2000:]}",
                    pytrace=False)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def nginx(tmp_path):
    if not os.access(NGINX, os.X_OK):
        pytest.skip("no nginx (scripts/install-deps installs it)")
    n = Nginx(tmp_path / "nginx", free_port())
    yield n
    n.stop()


def http_get(port, uri, source=CLIENT):
    """GET uri from 127.0.0.1:port with the client bound to source; returns
    the whole response."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT,
                                  source_address=(source, 0)) as s:
        s.sendall(f"GET {uri} HTTP/1.0\r\nHost: test\r\n\r\n".encode())
        return recv_until_eof(s)


# ------------------------------------------------------- nginx through -R

@pytest.mark.parametrize("version", ["v1", "v2"])
def test_nginx_behind_tunnel_sees_client_address(tunnel, nginx, version):
    rport, lport = free_port(), free_port()
    spec = f"{rport}:127.0.0.1:{nginx.port}"
    # One relayd: the public relay sends the header into the server's -R
    # port; the tunnel carries it, untouched, to nginx.
    tunnel("-R", spec, "--listen", f"127.0.0.1:{lport}", "--to", f"127.0.0.1:{rport}",
           "--proxy-protocol", version)
    reply = http_get(lport, f"/{version}")
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"hello from nginx\n"), reply
    ppaddr, remote = nginx.wait_access(f"/{version}")
    assert ppaddr == CLIENT
    assert remote == "127.0.0.1"


def test_accept_proxy_passes_the_carried_address_on(relayd, nginx):
    lport = free_port()
    r = relayd("--listen", f"127.0.0.1:{lport}", "--to", f"127.0.0.1:{nginx.port}",
               "--accept-proxy", "--proxy-protocol", "v2")
    with connect_from(lport) as s:
        s.sendall(b"PROXY TCP4 192.0.2.9 127.0.0.1 40000 80\r\n"
                  b"GET /carried HTTP/1.0\r\n\r\n")
        assert recv_until_eof(s).endswith(b"hello from nginx\n")
    assert nginx.wait_access("/carried")[0] == "192.0.2.9"
    c = r.wait_conn()
    assert c["client"].startswith(f"192.0.2.9:40000 via {CLIENT}:"), c["line"]


# ------------------------------------------------------- --accept-proxy

@pytest.fixture
def accepting(relayd, sink):
    """A relay with --accept-proxy (handshake timeout 2 s) in front of the
    sink; returns (relayd, port)."""
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", sink.spec, "--accept-proxy",
               "--handshake-timeout", "2")
    yield r, port
    r.stop()        # exits 0: under the sanitizers, nothing leaked


def refused(r, sink, port, data, reason, close=True):
    """Sends data; relayd must close the connection with nothing dialled
    and log reason."""
    with connect_from(port) as s:
        s.sendall(data)
        if close:
            s.shutdown(socket.SHUT_WR)
        wait_closed(s, 5)
    r.wait_log(rf"^relayd: refused {re.escape(CLIENT)}:\d+: {reason}")
    assert sink.records == [], "a target was dialled for a refused client"
    assert r.conns() == []


def test_truncated_header_refused(accepting, sink):
    r, port = accepting
    refused(r, sink, port, b"PROXY TCP4 192.0.2.9 127.0.0.1 4",
            "PROXY header: connection closed before its end")


def test_too_long_v1_line_refused(accepting, sink):
    r, port = accepting
    refused(r, sink, port, b"PROXY UNKNOWN " + b"x" * 200,
            r"bad PROXY header: v1: no CRLF within 107 bytes", close=False)


def test_malformed_v1_refused(accepting, sink):
    r, port = accepting
    refused(r, sink, port, b"PROXY TCP4 192.0.2.300 127.0.0.1 1 2\r\nhello",
            r"bad PROXY header: v1: bad TCP4 address or port")


def test_not_a_header_refused(accepting, sink):
    r, port = accepting
    refused(r, sink, port, b"GET / HTTP/1.0\r\n\r\n",
            "bad PROXY header: no PROXY protocol signature", close=False)


V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def test_v2_length_too_short_for_addresses_refused(accepting, sink):
    r, port = accepting
    refused(r, sink, port, V2_SIG + b"\x21\x11\x00\x0b" + bytes(11) + b"data",
            r"bad PROXY header: v2: length 11 too short for its addresses", close=False)


def test_v2_length_beyond_limit_refused(accepting, sink):
    r, port = accepting
    refused(r, sink, port, V2_SIG + b"\x21\x11\xff\xff" + bytes(100),
            r"bad PROXY header: v2: header of 65551 bytes \(more than 2048\)", close=False)


def test_slow_header_refused_after_timeout(accepting, sink):
    r, port = accepting
    with connect_from(port) as s:
        s.sendall(b"PROXY TCP4 ")
        took = wait_closed(s, 6)
    assert took >= 1.5, f"closed after {took:.2f} s, before --handshake-timeout 2"
    r.wait_log(rf"^relayd: refused {re.escape(CLIENT)}:\d+: PROXY header timeout$")
    assert sink.records == []


@pytest.mark.parametrize("header", [
    b"PROXY TCP6 2001:db8::7 ::1 5555 443\r\n",
    V2_SIG + b"\x21\x11\x00\x0c" + socket.inet_aton("198.51.100.4")
    + socket.inet_aton("127.0.0.1") + (5555).to_bytes(2, "big") + (80).to_bytes(2, "big"),
], ids=["v1", "v2"])
def test_header_dribbled_byte_by_byte_accepted(accepting, sink, header):
    r, port = accepting
    body = payload(5, 100_000)
    with connect_from(port) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)    # one byte a segment
        trickle(s, header, 0.01)
        s.sendall(body)
        s.shutdown(socket.SHUT_WR)
        recv_until_eof(s)
    [rec] = sink.wait_done(1)
    assert rec["received"] == digest_of(body), "the target must get exactly the bytes after " \
                                               "the header"
    who = "[2001:db8::7]:5555" if header.startswith(b"PROXY") else "198.51.100.4:5555"
    c = r.wait_conn()
    assert c["client"].startswith(f"{who} via {CLIENT}:"), c["line"]
    assert c["inb"] == len(body), c["line"]


def test_local_and_unknown_keep_the_socket_address(accepting, sink):
    r, port = accepting
    for i, hdr in enumerate([b"PROXY UNKNOWN\r\n", V2_SIG + b"\x20\x00\x00\x00"]):
        with connect_from(port) as s:
            s.sendall(hdr + b"x" * 10)
            s.shutdown(socket.SHUT_WR)
            recv_until_eof(s)
        sink.wait_done(i + 1)
    for c in r.wait_conns(2):
        assert c["client"].startswith(f"{CLIENT}:") and " via " not in c["client"], c["line"]
        assert c["inb"] == 10


# ------------------------------------------------------- --strip-proxy-header

def test_strip_proxy_header_on_remote_forward(tunnel, sink):
    rport, lport = free_port(), free_port()
    spec = f"{rport}:{sink.spec}"
    t = tunnel("-R", spec, "--strip-proxy-header", "--listen", f"127.0.0.1:{lport}",
               "--to", f"127.0.0.1:{rport}", "--proxy-protocol", "v1")
    body = payload(9, 200_000)
    with connect_from(lport) as s:
        s.sendall(body)
        s.shutdown(socket.SHUT_WR)
        recv_until_eof(s)
    [rec] = sink.wait_done(1)
    assert rec["received"] == digest_of(body), "the target got the header or lost bytes"
    [c] = t.wait_conns(1, f"-R {spec}")
    assert re.search(rf"\] {re.escape(CLIENT)}:\d+ via remote:{rport} -> ", c["line"]), c["line"]
    assert c["inb"] == len(body), c["line"]
    t.relayd.stop()


def test_without_strip_the_header_reaches_the_target(tunnel, sink):
    rport = free_port()
    spec = f"{rport}:{sink.spec}"
    tunnel("-R", spec)
    hdr = b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n"
    with fwd(rport).connect() as s:
        s.sendall(hdr + b"rest")
        s.shutdown(socket.SHUT_WR)
        recv_until_eof(s)
    [rec] = sink.wait_done(1)
    assert rec["received"] == digest_of(hdr + b"rest")


def test_strip_proxy_header_refuses_a_bad_one(tunnel, sink):
    rport = free_port()
    spec = f"{rport}:{sink.spec}"
    t = tunnel("-R", spec, "--strip-proxy-header")
    with fwd(rport).connect() as s:
        s.sendall(b"hello, no header here\r\n")
        wait_closed(s, 5)
    t.relayd.wait_log(r"refused remote:\d+: bad PROXY header: no PROXY protocol signature")
    assert sink.records == []
    t.relayd.stop()


def test_strip_proxy_header_on_local_forward(tunnel, sink):
    lport = free_port()
    spec = f"{lport}:{sink.spec}"
    t = tunnel("-L", spec, "--strip-proxy-header")
    with fwd(lport).connect() as s:
        s.sendall(b"PROXY TCP4 203.0.113.5 127.0.0.1 6000 80\r\nclean bytes")
        s.shutdown(socket.SHUT_WR)
        recv_until_eof(s)
    [rec] = sink.wait_done(1)
    assert rec["received"] == digest_of(b"clean bytes")
    [c] = t.wait_conns(1, f"-L 127.0.0.1:{spec}")
    assert "] 203.0.113.5:6000 via 127.0.0.1:" in c["line"], c["line"]


# ------------------------------------------------------- headers sent

def test_v1_header_for_ipv6_client(relayd, sink):
    port = free_port()
    relayd("--listen", f"[::1]:{port}", "--to", sink.spec, "--proxy-protocol", "v1")
    with socket.create_connection(("::1", port), timeout=IO_TIMEOUT) as s:
        sport = s.getsockname()[1]
        s.sendall(b"data")
        s.shutdown(socket.SHUT_WR)
        recv_until_eof(s)
    [rec] = sink.wait_done(1)
    assert rec["received"] == digest_of(f"PROXY TCP6 ::1 ::1 {sport} {port}\r\n".encode()
                                        + b"data")


def test_v2_header_for_unix_client(relayd, sink, sockdir):
    path = str(sockdir / "in.sock")
    relayd("--listen", f"unix:{path}", "--to", sink.spec, "--proxy-protocol", "v2")
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(IO_TIMEOUT)
        s.connect(path)
        s.sendall(b"data")
        s.shutdown(socket.SHUT_WR)
        recv_until_eof(s)
    [rec] = sink.wait_done(1)
    # An unbound client has no path; the destination is the listener's.
    hdr = V2_SIG + b"\x21\x31\x00\xd8" + bytes(108) + path.encode().ljust(108, b"\0")
    assert rec["received"] == digest_of(hdr + b"data")


def test_dual_stack_client_header_is_tcp4(relayd, sink):
    port = free_port()
    relayd("--listen", str(port), "--to", sink.spec, "--proxy-protocol", "v1")
    with connect_from(port) as s:
        sport = s.getsockname()[1]
        s.sendall(b"x")
        s.shutdown(socket.SHUT_WR)
        recv_until_eof(s)
    [rec] = sink.wait_done(1)
    assert rec["received"] == digest_of(
        f"PROXY TCP4 {CLIENT} 127.0.0.1 {sport} {port}\r\nx".encode())
