"""UDP relays: a flow per client address through the one event loop, each
client getting exactly its own replies, datagram boundaries kept, flows
ending after --udp-timeout, at most --max-conns of them, a refusing target
survived, low ports bound before the privilege drop and after a reload."""

import contextlib
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import IO_TIMEOUT, Background, assert_dropped, run_relayd

EX_USAGE, EX_CONFIG = 64, 78
NOBODY = 65534
MAX_DGRAM = 65507       # the largest UDP payload over IPv4

# relayd: udp flow ID CLIENT -> TARGET datagrams in=N out=N bytes in=N out=N
#         refused=N time=S end=REASON
FLOW_RE = re.compile(
    r"^relayd: udp flow (?P<id>\d+) (?P<client>\S+) -> (?P<target>\S+) "
    r"datagrams in=(?P<din>\d+) out=(?P<dout>\d+) bytes in=(?P<bin>\d+) "
    r"out=(?P<bout>\d+) refused=(?P<refused>\d+) time=\d+\.\d{3} end=(?P<end>\S+)$",
    re.M)


# ---------------------------------------------------------------- helpers

def udp_port(*hosts):
    """A UDP port free right now on every one of hosts."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if all(_udp_bindable(h, port) for h in hosts):
            return port
    raise RuntimeError("no free UDP port")


def _udp_bindable(host, port):
    from conftest import _bindable
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return _bindable(family, host, port, socket.SOCK_DGRAM)


def spec(host, port):
    return f"udp:[{host}]:{port}" if ":" in host else f"udp:{host}:{port}"


class UdpEcho:
    """A UDP echo server on host:port in a thread of its own: each datagram
    goes back to its sender as it came. Records every sender address."""

    def __init__(self, host="127.0.0.1", port=0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((host, port))
        self.sock.settimeout(0.1)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.peers = set()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def spec(self):
        return spec(self.host, self.port)

    def _serve(self):
        while not self._stopping.is_set():
            try:
                data, peer = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.peers.add(peer[:2])
            with contextlib.suppress(OSError):
                self.sock.sendto(data, peer)

    def stop(self):
        self._stopping.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def udp_echo():
    """Factory: udp_echo(host="127.0.0.1", port=0); every one is stopped at
    teardown, by the test's own hand."""
    made = []

    def make(*args, **kw):
        e = UdpEcho(*args, **kw)
        made.append(e)
        return e
    yield make
    for e in made:
        e.stop()


@contextlib.contextmanager
def client(host, port, timeout=IO_TIMEOUT):
    """A UDP socket connected to host:port: it only accepts datagrams
    from that address, so a reply from any other source is lost."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        yield s
    finally:
        s.close()


def exchange(s, data):
    s.send(data)
    got = s.recv(65536)
    assert got == data, f"sent {len(data)} bytes, got back {len(got)} different ones"


def flows(r):
    return [m.groupdict() for m in FLOW_RE.finditer(r.log())]


def wait_flows(r, n, timeout=10):
    deadline = time.monotonic() + timeout
    while len(found := flows(r)) < n:
        assert time.monotonic() < deadline, f"{len(found)} flow lines, wanted {n}:\n{r.log()}"
        time.sleep(0.02)
    return found


def status(control):
    p = run_relayd("--status", "--control", control)
    assert p.returncode == 0, p
    return p.stdout


def wait_status(control, pattern, timeout=10):
    deadline = time.monotonic() + timeout
    while not re.search(pattern, text := status(control), re.M):
        assert time.monotonic() < deadline, f"no /{pattern}/ in status:\n{text}"
        time.sleep(0.02)
    return text


# ---------------------------------------------------------------- relaying

def test_many_clients_each_get_their_own_replies(relayd, udp_echo):
    """50 clients at once, 40 datagrams each of sizes from 1 byte to 9000:
    each client's replies have the length and SHA-256 of what it sent, and
    the target sees one source address per client."""
    echo = udp_echo()
    port = udp_port("127.0.0.1")
    r = relayd("--listen", spec("127.0.0.1", port), "--to", echo.spec)

    def one(i):
        rng = random.Random(i)
        sent, got = hashlib.sha256(), hashlib.sha256()
        with client("127.0.0.1", port) as s:
            for k in range(40):
                data = rng.randbytes(rng.choice((1, 17, 512, 1400, 9000)))
                s.send(data)
                sent.update(data)
                got.update(s.recv(65536))
        return sent.hexdigest(), got.hexdigest()

    workers = [Background(one, i) for i in range(50)]
    for i, w in enumerate(workers):
        sent, got = w.result()
        assert sent == got, f"client {i}: replies differ from what it sent"
    assert len(echo.peers) == 50, f"{len(echo.peers)} flows seen by the target"
    r.stop()
    lines = wait_flows(r, 50)
    assert {f["end"] for f in lines} == {"shutdown"}
    assert all(f["din"] == f["dout"] == "40" and f["bin"] == f["bout"] for f in lines)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_datagram_boundaries_and_sizes(relayd, udp_echo, host):
    """Datagrams of 0, 1 and the largest size pass whole; several sent at
    once come back as as many datagrams, not merged."""
    echo = udp_echo(host)
    port = udp_port(host)
    r = relayd("--listen", spec(host, port), "--to", echo.spec)
    with client(host, port) as s:
        for n in (1, MAX_DGRAM, 0, 1, MAX_DGRAM):
            exchange(s, random.Random(n).randbytes(n))
        for n in (3, 1, 2):
            s.send(bytes([n]) * n)
        assert [s.recv(65536) for _ in range(3)] == [b"\3" * 3, b"\1", b"\2" * 2]
    r.stop()


def test_dual_stack_listener_and_reply_source(relayd, udp_echo):
    """udp:PORT takes IPv4 and IPv6 clients on one socket, and answers each
    from the address it wrote to (127.0.0.2 here), which a connected client
    socket insists on."""
    echo = udp_echo()
    port = udp_port("0.0.0.0", "::")
    r = relayd("--listen", f"udp:{port}", "--to", echo.spec)
    r.wait_log(rf"^relayd: listening on udp:\*:{port}$", timeout=0)
    for host in ("127.0.0.1", "127.0.0.2", "::1"):
        with client(host, port) as s:
            exchange(s, host.encode())
    r.stop()


def test_ipv6_target(relayd, udp_echo):
    echo = udp_echo("::1")
    port = udp_port("::1")
    r = relayd("--listen", spec("::1", port), "--to", echo.spec)
    with client("::1", port) as s:
        exchange(s, b"over six")
    r.stop()
    f, = wait_flows(r, 1)
    assert f["target"] == f"udp:[::1]:{echo.port}" and f["client"].startswith("[::1]:")


def test_target_by_name(relayd, udp_echo):
    """A host name is looked up off the loop before the first datagram is
    read; the flow then shows the address it got (localhost may be either
    loopback address first, so an echo answers on both)."""
    target = udp_port("127.0.0.1", "::1")
    udp_echo("127.0.0.1", target)
    udp_echo("::1", target)
    port = udp_port("127.0.0.1")
    r = relayd("--listen", spec("127.0.0.1", port), "--to", f"udp:localhost:{target}")
    with client("127.0.0.1", port) as s:
        exchange(s, b"by name")
    r.stop()
    f, = wait_flows(r, 1)
    assert f["target"] in (f"udp:127.0.0.1:{target}", f"udp:[::1]:{target}")


# ---------------------------------------------------------------- flows

def test_flow_expires_and_a_new_datagram_opens_another(relayd, udp_echo):
    echo = udp_echo()
    port = udp_port("127.0.0.1")
    r = relayd("--listen", spec("127.0.0.1", port), "--to", echo.spec, "--udp-timeout", "1")
    with client("127.0.0.1", port) as s:
        me = f"127.0.0.1:{s.getsockname()[1]}"
        exchange(s, b"12345")
        exchange(s, b"678")
        first, = wait_flows(r, 1, timeout=10)
        assert (first["client"], first["target"], first["end"]) == (me, echo.spec, "idle")
        assert (first["din"], first["dout"], first["bin"], first["bout"]) == ("2", "2", "8", "8")
        exchange(s, b"again")
        second = wait_flows(r, 2, timeout=10)[1]
    assert second["client"] == me and int(second["id"]) > int(first["id"])
    assert (second["din"], second["bin"], second["end"]) == ("1", "5", "idle")
    assert len(echo.peers) == 2, "the second flow should have a socket of its own"
    r.stop()


def test_flow_limit_drops_new_clients_and_keeps_old_flows(tmp_path, relayd, udp_echo):
    echo = udp_echo()
    port = udp_port("127.0.0.1")
    control = tmp_path / "control.sock"
    r = relayd("--listen", spec("127.0.0.1", port), "--to", echo.spec, "--max-conns", "2",
               "--control", control)
    with client("127.0.0.1", port) as a, client("127.0.0.1", port) as b, \
            client("127.0.0.1", port) as c:
        exchange(a, b"a")
        exchange(b, b"b")
        for _ in range(3):
            c.send(b"c")
        wait_status(control, rf"^relay -: listening on udp:127\.0\.0\.1:{port}; "
                    r"flows 2 open, 2 total, 3 datagrams dropped, in=2 out=2$")
        exchange(a, b"still here")
        exchange(b, b"me too")
    r.wait_log(r"flows open \(max-conns\); dropping datagrams of new clients", timeout=0)
    assert len(echo.peers) == 2
    r.stop()


def test_refusing_target_does_not_end_the_flow(tmp_path, relayd, udp_echo):
    """Nothing listens on the target port: the ICMP errors that come back
    neither stop relayd nor end the flow, and once a server appears there
    the same client's next datagram is answered."""
    target = udp_port("127.0.0.1")
    port = udp_port("127.0.0.1")
    control = tmp_path / "control.sock"
    r = relayd("--listen", spec("127.0.0.1", port), "--to", spec("127.0.0.1", target),
               "--control", control)
    with client("127.0.0.1", port) as s:
        for i in range(5):
            s.send(b"anyone?")
            wait_status(control, rf"in={7 * (i + 1)} ")
        assert r.alive()
        udp_echo(port=target)
        exchange(s, b"now")
    wait_status(control, r"flows 1 open, 1 total")
    r.stop()
    f, = wait_flows(r, 1)
    assert (f["din"], f["dout"], f["end"]) == ("6", "1", "shutdown")
    assert int(f["refused"]) >= 1, f


def test_status_counts_flows(tmp_path, relayd, udp_echo):
    echo = udp_echo()
    port = udp_port("127.0.0.1")
    control = tmp_path / "control.sock"
    r = relayd("--listen", spec("127.0.0.1", port), "--to", echo.spec, "--control", control)
    for i in range(3):
        with client("127.0.0.1", port) as s:
            exchange(s, b"x" * 10)
    assert re.search(rf"^relay -: listening on udp:127\.0\.0\.1:{port}; flows 3 open, 3 total, "
                     r"0 datagrams dropped, in=30 out=30$", status(control), re.M)
    r.stop()


# ---------------------------------------------------------------- reload

def relay_section(name, listen, to, extra=""):
    return f"[relay {name}]\nlisten = {listen}\nto = {to}\n{extra}"


@pytest.fixture
def open_dir():
    """A config directory that nobody (relayd after the drop) can read to
    reload: pytest's own temp dirs are root's alone."""
    path = Path(tempfile.mkdtemp(prefix="relayd-udp-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_sighup_keeps_an_unchanged_relay_and_its_flows(open_dir, relayd, udp_echo):
    echo = udp_echo()
    keep, gone, new = (udp_port("127.0.0.1") for _ in range(3))
    conf = open_dir / "relayd.conf"
    conf.write_text(relay_section("keep", spec("127.0.0.1", keep), echo.spec) +
                    relay_section("gone", spec("127.0.0.1", gone), echo.spec))
    conf.chmod(0o644)
    r = relayd("-c", conf)
    with client("127.0.0.1", keep) as k, client("127.0.0.1", gone, timeout=0.5) as g:
        exchange(k, b"before")
        exchange(g, b"before")
        conf.write_text(relay_section("keep", spec("127.0.0.1", keep), echo.spec) +
                        relay_section("new", spec("127.0.0.1", new), echo.spec))
        os.kill(r.pid, signal.SIGHUP)
        r.wait_log(r"reloaded: 2 relays, 0 tunnels \(1 unchanged\)", timeout=10)
        gone_flow, = wait_flows(r, 1)
        assert (gone_flow["target"], gone_flow["end"]) == (echo.spec, "reload")
        exchange(k, b"after")
        with client("127.0.0.1", new) as n:
            exchange(n, b"new")
        deadline = time.monotonic() + 5      # the removed relay closes after the reload
        while not _udp_bindable("127.0.0.1", gone):
            assert time.monotonic() < deadline, "the removed relay's port is still bound"
            time.sleep(0.05)
    r.stop()
    lines = wait_flows(r, 3)
    kept = [f for f in lines if f["end"] == "shutdown" and f["din"] == "2"]
    assert len(kept) == 1, f"the kept flow should have carried both datagrams: {lines}"


@pytest.fixture
def udp_low_port():
    """A port in 600..1000 free for UDP on every address (root only)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(600, 1000)
        if _udp_bindable("0.0.0.0", port) and _udp_bindable("::", port):
            return port
    pytest.skip("no free UDP port in 600..1000")


@pytest.mark.root
def test_low_port_as_root_then_dropped(relayd, udp_echo, udp_low_port):
    echo = udp_echo()
    r = relayd("--listen", f"udp:{udp_low_port}", "--to", echo.spec)
    assert_dropped(r.status(), NOBODY, NOBODY)
    with client("127.0.0.1", udp_low_port) as s:
        exchange(s, b"low")
    with client("::1", udp_low_port) as s:
        exchange(s, b"low six")
    assert_dropped(r.status(), NOBODY, NOBODY)
    r.stop()


@pytest.mark.root
def test_reload_binds_a_low_udp_port_after_the_drop(open_dir, relayd, udp_echo, udp_low_port):
    echo = udp_echo()
    first = udp_port("127.0.0.1")
    conf = open_dir / "relayd.conf"
    conf.write_text(relay_section("a", spec("127.0.0.1", first), echo.spec))
    conf.chmod(0o644)
    r = relayd("-c", conf)
    assert_dropped(r.status(), NOBODY, NOBODY)
    conf.write_text(relay_section("a", spec("127.0.0.1", first), echo.spec) +
                    relay_section("low", spec("127.0.0.1", udp_low_port), echo.spec))
    os.kill(r.pid, signal.SIGHUP)
    r.wait_log(r"reloaded: 2 relays, 0 tunnels \(1 unchanged\)", timeout=10)
    with client("127.0.0.1", udp_low_port) as s:
        exchange(s, b"low after reload")
    r.stop()


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("args, words", [
    (["--listen", "udp:unix:/tmp/x", "--to", "udp:127.0.0.1:53"], "not a unix socket"),
    (["--listen", "udp:0", "--to", "udp:127.0.0.1:53"], "out of range"),
    (["--listen", "udp:5353", "--to", "udp:53"], "expected HOST:PORT"),
    (["--listen", "udp:::1:53", "--to", "udp:127.0.0.1:53"], "brackets"),
    (["--listen", "udp:5353", "--to", "127.0.0.1:53"], "UDP goes only to UDP"),
    (["--listen", "5353", "--to", "udp:127.0.0.1:53"], "UDP goes only to UDP"),
    (["--listen", "udp:5353", "--to", "udp:127.0.0.1:53", "--fork"],
     "--fork does not apply to UDP relays"),
    (["--listen", "udp:5353", "--to", "udp:127.0.0.1:53", "--deny", "10.0.0.0/8"],
     "apply to TCP relays, not to UDP ones"),
    (["--listen", "udp:5353", "--to", "udp:127.0.0.1:53", "--proxy-protocol", "v2"],
     "apply to TCP relays, not to UDP ones"),
    (["--listen", "udp:5353", "--to", "udp:127.0.0.1:53", "--udp-timeout", "0"],
     "--udp-timeout: must be at least 1"),
])
def test_bad_command_lines_exit_64_with_one_line(args, words):
    p = run_relayd(*args)
    lines = p.stderr.splitlines()
    assert p.returncode == EX_USAGE and len(lines) == 1 and words in lines[0], p


def test_mixed_relay_in_a_config_file_exits_78(tmp_path):
    conf = tmp_path / "relayd.conf"
    conf.write_text(relay_section("dns", "udp:5353", "127.0.0.1:53"))
    conf.chmod(0o600)
    p = run_relayd("-c", conf)
    assert p.returncode == EX_CONFIG, p
    assert re.search(r"relayd\.conf:1: \[relay dns\]: listen udp:\*:5353 and to "
                     r"127\.0\.0\.1:53: UDP goes only to UDP", p.stderr), p.stderr


# ---------------------------------------------------------------- --fork

def udp_socket_inode(port):
    """The inode of the IPv4 UDP socket bound to port, from /proc/net/udp."""
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            return fields[9]
    raise AssertionError(f"no UDP socket on port {port}")


def socket_inodes(pid):
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
            if m:
                out.add(m.group(1))
    return out


def test_fork_child_of_a_tcp_relay_holds_no_udp_socket(tmp_path, relayd, udp_echo, sink):
    """A TCP relay with --fork next to a UDP relay: the process serving a
    TCP connection gives up the UDP socket and flows, which stay the
    parent's alone."""
    from conftest import free_port, tcp4
    echo = udp_echo()
    tport, uport = free_port(), udp_port("127.0.0.1")
    conf = tmp_path / "relayd.conf"
    conf.write_text(relay_section("web", f"127.0.0.1:{tport}", sink.spec, "fork = yes\n") +
                    relay_section("dns", spec("127.0.0.1", uport), echo.spec))
    conf.chmod(0o600)
    r = relayd("-c", conf)
    with client("127.0.0.1", uport) as u, tcp4(tport).connect():
        exchange(u, b"before the fork")
        deadline = time.monotonic() + 10
        while not (kids := r.children()):
            assert time.monotonic() < deadline, "no child serving the TCP connection"
            time.sleep(0.02)
        inode = udp_socket_inode(uport)
        assert inode in socket_inodes(r.pid)
        # The child closes what it inherited right after the fork: give a
        # loaded machine time to schedule it.
        held = time.monotonic() + 5
        while inode in socket_inodes(kids[0]):
            assert time.monotonic() < held, "the child kept the UDP socket"
            time.sleep(0.02)
        exchange(u, b"after the fork")
    while r.children():     # reaped: the drain then has nothing to wait for
        assert time.monotonic() < deadline + 10, "the child never exited"
        time.sleep(0.02)
    r.stop()
