"""One harness for the relayd end-to-end tests: relayd processes, loopback
addresses, stoppable in-process backends and byte-stream checks, so that each
test stays a few lines about one case."""

import contextlib
import hashlib
import itertools
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RELAYD = Path(os.environ.get("RELAYD", str(REPO / "relayd")))
SANITIZE = os.environ.get("RELAYD_SANITIZE") == "1"

TEST_TIMEOUT = 60       # seconds for one test body (SIGALRM, see below)
READY_TIMEOUT = 10      # seconds to wait for "relayd: ready"
IO_TIMEOUT = 30         # default timeout of every socket the harness makes
CHUNK = 65536
# Set (e.g. to --no-splice) to run the whole suite in another mode: given
# to every relayd the harness starts, run_relayd's included.
EXTRA_ARGS = os.environ.get("RELAYD_EXTRA_ARGS", "").split()
SPLICING = "--no-splice" not in EXTRA_ARGS
SETPRIV_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

# relayd: conn <ID> <client> -> <target> in=N out=N [spliced=N] [held=S.ss]
# time=S.mmm end=<reason>; spliced only for connections that took the
# splicing path, held for those that reached their target after a hold.
CONN_RE = re.compile(
    r"^relayd: conn (?P<id>\S+) (?P<client>.*?) -> (?P<target>\S+) "
    r"(?:route=(?P<route>\S+) )?in=(?P<inb>\d+) out=(?P<outb>\d+)(?: spliced=(?P<spliced>\d+))? "
    r"(?:held=(?P<held>\d+\.\d{2}) )?"
    r"time=(?P<time>\d+\.\d{3}) end=(?P<end>.+)$", re.M)


def assert_spliced(c, bulk=True):
    """Which path a TCP-to-TCP connection's bytes took. With splicing on, a
    direction is copied until one read fills relayd's 64 KiB buffer and
    spliced from then on: a bulk transfer (bulk=True) is mostly spliced, a
    small exchange may be copied whole; the line says spliced= either way.
    With --no-splice nothing is spliced and the line does not say so."""
    total = c["inb"] + c["outb"]
    if not SPLICING:
        assert "spliced=" not in c["line"] and c["spliced"] == 0, c["line"]
        return
    assert "spliced=" in c["line"] and c["spliced"] <= total, c["line"]
    if bulk:
        assert c["spliced"] > total // 2, c["line"]


# ---------------------------------------------------------------- pytest hooks

def pytest_runtest_setup(item):
    if item.get_closest_marker("root") and os.geteuid() != 0:
        pytest.skip("needs root")


class TestTimeout(Exception):
    """Raised in the main thread when a test body runs too long."""
    __test__ = False


def _on_alarm(signum, frame):
    raise TestTimeout("test body ran out of time (TEST_TIMEOUT or its time_limit mark)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    # No timeout plugin: an interval timer interrupts whatever the main
    # thread is blocked in; fixtures then kill the processes as usual.
    # @pytest.mark.time_limit(SEC) gives a long test more than TEST_TIMEOUT.
    limit = item.get_closest_marker("time_limit")
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit.args[0] if limit else TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # relayd logs are kept in files and shown only when something failed.
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for r in getattr(item, "relayds", ()):
            report.sections.append((f"relayd {r.name} ({report.when})", r.describe()))


_FIGURES = []


@pytest.fixture
def figures(request):
    """figures(line): a measured figure, shown in a "figures" section at the
    end of the run (passing tests' output is otherwise hidden)."""
    def add(line):
        _FIGURES.append(f"{request.node.name}: {line}")
    return add


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        terminalreporter.section("figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)


# ---------------------------------------------------------------- byte streams

class Digest:
    """Length and SHA-256 of a byte stream, fed piece by piece."""

    def __init__(self):
        self.n = 0
        self._h = hashlib.sha256()

    def update(self, data):
        self.n += len(data)
        self._h.update(data)

    def result(self):
        return (self.n, self._h.hexdigest())


def digest_of(data):
    d = Digest()
    d.update(data)
    return d.result()


def payload(seed, nbytes):
    """nbytes of deterministic pseudo-random data, distinct per seed."""
    return random.Random(seed).randbytes(nbytes)


def send_stream(sock, seed, nbytes, progress=None):
    """Send nbytes of seeded pseudo-random data; return (length, sha256)."""
    rng = random.Random(seed)
    d = Digest()
    while d.n < nbytes:
        block = rng.randbytes(min(CHUNK, nbytes - d.n))
        sock.sendall(block)
        d.update(block)
        if progress:
            progress(d.n)
    return d.result()


def recv_all(sock, bufsize=CHUNK):
    """Read until EOF; return (length, sha256)."""
    d = Digest()
    while True:
        data = sock.recv(bufsize)
        if not data:
            return d.result()
        d.update(data)


def recv_until_eof(sock):
    buf = bytearray()
    while data := sock.recv(CHUNK):
        buf += data
    return bytes(buf)


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            raise AssertionError(f"EOF after {len(buf)} of {n} bytes")
        buf += data
    return bytes(buf)


def sink_reply(result):
    """What SinkBackend answers for a received (length, sha256)."""
    return f"{result[0]} {result[1]}\n".encode()


def wait_closed(sock, timeout):
    """Seconds until the peer closed the connection (EOF or reset), draining
    anything still arriving; fails if it is still open after timeout."""
    t0 = time.monotonic()
    while (left := t0 + timeout - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(CHUNK):
                break
        except ConnectionResetError:
            break
        except socket.timeout:
            continue
    else:
        raise AssertionError(f"connection still open after {timeout} s")
    return time.monotonic() - t0


# ---------------------------------------------------------------- addresses

class Addr:
    """A loopback stream address: family, sockaddr and its relayd spelling."""

    def __init__(self, family, sockaddr):
        self.family = family
        self.sockaddr = sockaddr if family == socket.AF_UNIX else tuple(sockaddr[:2])

    @property
    def port(self):
        return self.sockaddr[1]

    @property
    def spec(self):
        return fmt_addr(self.family, self.sockaddr)

    def connect(self, timeout=IO_TIMEOUT):
        s = socket.socket(self.family, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.sockaddr)
        except BaseException:
            s.close()
            raise
        return s

    def __repr__(self):
        return self.spec


def fmt_addr(family, sockaddr):
    """Address as relayd writes it: 1.2.3.4:80, [::1]:80, unix:/path."""
    if family == socket.AF_UNIX:
        return f"unix:{sockaddr}"
    if family == socket.AF_INET6:
        return f"[{sockaddr[0]}]:{sockaddr[1]}"
    return f"{sockaddr[0]}:{sockaddr[1]}"


def local_spec(sock):
    """The relayd spelling of a connected TCP socket's own address."""
    return fmt_addr(sock.family, sock.getsockname())


def tcp4(port=0):
    return Addr(socket.AF_INET, ("127.0.0.1", port))


def tcp6(port=0):
    return Addr(socket.AF_INET6, ("::1", port))


def unix(path):
    return Addr(socket.AF_UNIX, str(path))


def _bindable(family, host, port, kind=socket.SOCK_STREAM):
    with socket.socket(family, kind) as s:
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


_handed_out = set()


def free_port():
    """An ephemeral TCP port free right now on 127.0.0.1 and on ::1, and not
    handed out before in this run (so two calls never give the same port)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port not in _handed_out and _bindable(socket.AF_INET6, "::1", port):
                _handed_out.add(port)
                return port
    raise RuntimeError("no free port on both 127.0.0.1 and ::1")


@pytest.fixture
def low_port():
    """A port in 600..1000 free on every address (needs root to probe)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(600, 1000)
        if _bindable(socket.AF_INET, "0.0.0.0", port) and _bindable(socket.AF_INET6, "::", port):
            return port
    pytest.skip("no free port in 600..1000")


@pytest.fixture
def sockdir():
    """A short private directory that the nobody user can traverse: for unix
    sockets (sun_path is short) and binaries run as another user."""
    d = Path(tempfile.mkdtemp(prefix="relayd-e2e-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- backends

class Backend:
    """A stream server on one address; each connection runs self.handle(conn,
    record) in its own thread. record is a dict the handler fills; all of them
    are in self.records, in accept order. stop() ends everything."""

    def __init__(self, addr, backlog=128):
        self.lsock = socket.socket(addr.family, socket.SOCK_STREAM)
        if addr.family != socket.AF_UNIX:
            self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if addr.family == socket.AF_INET6:
            self.lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.lsock.bind(addr.sockaddr)
        if addr.family == socket.AF_UNIX:
            os.chmod(addr.sockaddr, 0o666)     # relayd connects as nobody
        self.lsock.listen(backlog)
        self.addr = Addr(addr.family, self.lsock.getsockname())
        self.records = []
        self._lock = threading.Lock()
        self._conns = set()
        self._threads = []
        self._stopping = threading.Event()
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    @property
    def spec(self):
        return self.addr.spec

    def _accept_loop(self):
        self.lsock.settimeout(0.1)
        while not self._stopping.is_set():
            try:
                conn, peer = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(IO_TIMEOUT)
            record = {"peer": peer, "done": False}
            t = threading.Thread(target=self._serve, args=(conn, record), daemon=True)
            with self._lock:
                self.records.append(record)
                self._conns.add(conn)
                self._threads.append(t)
            t.start()

    def _serve(self, conn, record):
        try:
            self.handle(conn, record)
        except (OSError, AssertionError) as e:
            record["error"] = e
        finally:
            with self._lock:
                self._conns.discard(conn)
                conn.close()
            record["done"] = True

    def handle(self, conn, record):
        raise NotImplementedError

    def wait_done(self, n, timeout=10, clean=True):
        """The first n connection records once all n handlers finished;
        with clean, fails if a handler hit an error (reset, timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                recs = list(self.records)
            if len(recs) >= n and all(r["done"] for r in recs[:n]):
                errors = [(i, r["error"]) for i, r in enumerate(recs[:n]) if "error" in r]
                assert not (clean and errors), f"{self.spec}: handler errors {errors}"
                return recs[:n]
            time.sleep(0.01)
        raise AssertionError(f"{self.spec}: {len(self.records)} connections, "
                             f"wanted {n} finished within {timeout} s")

    def stop(self):
        self._stopping.set()
        self._acceptor.join(2)
        self.lsock.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
        for t in threads:
            t.join(2)
        if self.addr.family == socket.AF_UNIX:
            with contextlib.suppress(OSError):
                os.unlink(self.addr.sockaddr)


class EchoBackend(Backend):
    """Echoes everything; on EOF shuts down its write side."""

    def handle(self, conn, record):
        n = 0
        while data := conn.recv(CHUNK):
            conn.sendall(data)
            n += len(data)
        record["received"] = n
        conn.shutdown(socket.SHUT_WR)


class SinkBackend(Backend):
    """Reads to EOF, records (length, sha256) as "received", then answers
    sink_reply() of it: the answer can only come after the EOF."""

    def handle(self, conn, record):
        record["received"] = recv_all(conn)
        conn.sendall(sink_reply(record["received"]))
        conn.shutdown(socket.SHUT_WR)


class HeaderSink(SinkBackend):
    """Records the first line (a PROXY v1 header) as "header", then acts as
    a SinkBackend for the rest."""

    def handle(self, conn, record):
        line = bytearray()
        while not line.endswith(b"\r\n"):
            line += recv_exact(conn, 1)
        record["header"] = bytes(line)
        super().handle(conn, record)


class PumpBackend(Backend):
    """Sends nbytes of seeded data while reading to EOF, both at full speed.
    Records "sent" and "received" (length, sha256); "sent_so_far" grows while
    sending, for backpressure checks; "send_error" if the peer went away."""

    def __init__(self, addr, nbytes, seed=7, **kw):
        self.nbytes = nbytes
        self.seed = seed
        super().__init__(addr, **kw)

    def handle(self, conn, record):
        record["sent_so_far"] = 0

        def progress(n):
            record["sent_so_far"] = n

        def sender():
            try:
                record["sent"] = send_stream(conn, self.seed, self.nbytes, progress)
                conn.shutdown(socket.SHUT_WR)
            except OSError as e:
                record["send_error"] = e

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        try:
            record["received"] = recv_all(conn)
        finally:
            t.join(IO_TIMEOUT)


class Backends:
    """Factory for backends, all stopped at teardown. addr defaults to
    127.0.0.1 on an ephemeral port."""

    def __init__(self):
        self.made = []

    def _make(self, cls, addr, *args, **kw):
        b = cls(addr or tcp4(), *args, **kw)
        self.made.append(b)
        return b

    def echo(self, addr=None, **kw):
        return self._make(EchoBackend, addr, **kw)

    def sink(self, addr=None, **kw):
        return self._make(SinkBackend, addr, **kw)

    def pump(self, nbytes, addr=None, **kw):
        return self._make(PumpBackend, addr, nbytes, **kw)

    def stop_all(self):
        for b in self.made:
            b.stop()


@pytest.fixture
def backends():
    pool = Backends()
    yield pool
    pool.stop_all()


@pytest.fixture
def echo(backends):
    return backends.echo()


@pytest.fixture
def sink(backends):
    return backends.sink()


def sink_roundtrip(addr, seed=1, nbytes=100_000):
    """Send a payload through addr to a SinkBackend and check its answer.
    Returns the client's own address as relayd would log it."""
    with addr.connect() as s:
        me = local_spec(s) if addr.family != socket.AF_UNIX else None
        sent = send_stream(s, seed, nbytes)
        s.shutdown(socket.SHUT_WR)
        answer = recv_until_eof(s)
    assert answer == sink_reply(sent), f"sent {sent}, sink answered {answer!r}"
    return me


def echo_roundtrip(sock, seed=1, nbytes=4096):
    """One request/answer exchange with an EchoBackend, connection kept open."""
    data = payload(seed, nbytes)
    sock.sendall(data)
    assert recv_exact(sock, len(data)) == data


def upload_while_reading(sock, seed, nbytes):
    """Sends nbytes (then half-closes) while reading to EOF; returns
    (sent, received), each as (length, sha256)."""
    def send():
        sent = send_stream(sock, seed, nbytes)
        sock.shutdown(socket.SHUT_WR)
        return sent
    sender = Background(send)
    got = recv_all(sock)
    return sender.result(), got


def echo_stream(sock, seed, nbytes):
    """Stream nbytes to an EchoBackend while reading the echo, half-close,
    read to EOF; asserts the echo's length and SHA-256 match what was sent."""
    sent, got = upload_while_reading(sock, seed, nbytes)
    assert got == sent, f"sent {sent}, echo returned {got}"


def sink_roundtrip_when_up(addr, relay, timeout=10):
    """sink_roundtrip(addr) once relay listens, for runs where its log
    (quiet, syslog) cannot say when it is ready."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return sink_roundtrip(addr)
        except ConnectionRefusedError:
            assert relay.alive() and time.monotonic() < deadline, \
                f"relayd {relay.name} never listened on {addr}"
            time.sleep(0.05)


def sink_roundtrips_at_once(socks, seed):
    """Every socket in socks (all open already, each to a SinkBackend)
    sends a payload of its own at the same time and checks the sink's
    answer; returns what each sent as (length, sha256)."""
    def one(i):
        s = socks[i]
        sent = send_stream(s, seed + i, 20_000 + 1013 * i)
        s.shutdown(socket.SHUT_WR)
        return sent, recv_until_eof(s)
    workers = [Background(one, i) for i in range(len(socks))]
    sent = []
    for i, w in enumerate(workers):
        mine, answer = w.result()
        assert answer == sink_reply(mine), f"connection {i}: sent {mine}, got {answer!r}"
        sent.append(mine)
    return sent


class Background:
    """fn(*args) in a daemon thread; result() joins it and returns its value
    or re-raises its exception in the caller."""

    def __init__(self, fn, *args):
        self._value = self._error = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self._thread.start()

    def _run(self, fn, args):
        try:
            self._value = fn(*args)
        except BaseException as e:      # handed to the caller by result()
            self._error = e

    def result(self, timeout=IO_TIMEOUT):
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"background task still running after {timeout} s")
        if self._error:
            raise self._error
        return self._value


# ---------------------------------------------------------------- /proc

def proc_status(pid):
    """/proc/PID/status as a dict of stripped strings."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def proc_stat(pid):
    """Fields of /proc/PID/stat after the command name: [0] is the state,
    [1] the ppid, [11]/[12] utime/stime in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2:].split()


def children_of(pid):
    """[(child pid, state letter)] of processes whose parent is pid."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = proc_stat(entry)
        except (OSError, ValueError):
            continue
        if int(st[1]) == pid:
            kids.append((int(entry), st[0]))
    return kids


def vmhwm(pid):
    """Peak resident set size of pid, in bytes."""
    kib, unit = proc_status(pid)["VmHWM"].split()
    assert unit == "kB"
    return int(kib) * 1024


# What a relayd process must look like after dropping root (or starting
# unprivileged with a file capability): only CAP_NET_BIND_SERVICE, nothing
# inheritable or ambient, no way back up.
DROPPED_CAPS = {
    "CapInh": "0000000000000000",
    "CapPrm": "0000000000000400",
    "CapEff": "0000000000000400",
    "CapBnd": "0000000000000400",
    "CapAmb": "0000000000000000",
    "NoNewPrivs": "1",
}


def assert_dropped(status, uid, gid):
    """status: proc_status() of a relayd process that dropped root to uid:gid."""
    got = {k: status.get(k) for k in DROPPED_CAPS}
    assert got == DROPPED_CAPS, f"capabilities after the drop: {got}"
    assert status["Uid"].split() == [str(uid)] * 4, f"Uid: {status['Uid']}"
    assert status["Gid"].split() == [str(gid)] * 4, f"Gid: {status['Gid']}"
    assert set(status["Groups"].split()) <= {str(gid)}, f"Groups: {status['Groups']}"


def kill_pid(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------- relayd

class Relayd:
    """One relayd process: stderr kept in a file under the test's tmp dir."""

    _seq = itertools.count(1)

    def __init__(self, workdir, args, *, as_nobody=False, nofile=None,
                 binary=None, prefix=()):
        self.name = f"#{next(self._seq)}"
        stem = self.name.lstrip("#")
        self.logpath = Path(workdir) / f"relayd-{stem}.stderr"
        self.outpath = Path(workdir) / f"relayd-{stem}.stdout"
        self.cmd = [*prefix, *(SETPRIV_NOBODY if as_nobody else ()),
                    str(binary or RELAYD), *map(str, args), *EXTRA_ARGS]
        self.nofile = nofile
        self.proc = None
        self.expected_exit = False

    def start(self):
        nofile = self.nofile

        def limits():
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        with open(self.logpath, "wb") as err, open(self.outpath, "wb") as out:
            self.proc = subprocess.Popen(
                self.cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                preexec_fn=limits if nofile else None, start_new_session=True)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        return self.logpath.read_text(errors="replace")

    def describe(self, head=40, tail=120):
        """Command, exit status and output, long logs cut in the middle (the
        whole log stays in the test's tmp dir)."""
        rc = self.proc.poll() if self.proc else "not started"
        lines = self.log().splitlines() if self.logpath.exists() else []
        if len(lines) > head + tail:
            cut = len(lines) - head - tail
            lines = lines[:head] + [f"[... {cut} lines, see {self.logpath} ...]"] + lines[-tail:]
        out = self.outpath.read_text(errors="replace") if self.outpath.exists() else ""
        return (f"command: {' '.join(self.cmd)}\nexit status: {rc}\n--- stderr ---\n"
                + "".join(f"{ln}\n" for ln in lines)
                + (f"--- stdout ---\n{out}" if out else ""))

    def wait_log(self, pattern, timeout=5):
        """The first match of pattern (multiline regex) in the log; fails with
        the log if it does not show up in time."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            exited = self.proc.poll() is not None
            m = rx.search(self.log())
            if m:
                return m
            if exited:
                pytest.fail(f"relayd {self.name} exited before logging /{pattern}/",
                            pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"no /{pattern}/ in relayd {self.name} log after {timeout} s",
                            pytrace=False)
            time.sleep(0.02)

    def wait_ready(self, timeout=READY_TIMEOUT):
        self.wait_log(r"^relayd: ready$", timeout)
        return self

    def conns(self):
        """Every per-connection summary line so far, parsed."""
        out = []
        for m in CONN_RE.finditer(self.log()):
            c = m.groupdict()
            c["inb"], c["outb"], c["time"] = int(c["inb"]), int(c["outb"]), float(c["time"])
            c["spliced"] = int(c["spliced"] or 0)
            c["line"] = m.group(0)
            out.append(c)
        return out

    def wait_conn(self, client=None, timeout=5):
        """The summary line of the connection from client (relayd spelling),
        or the first one if client is None."""
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.conns() if client is None or c["client"] == client]
            if found:
                assert len(found) == 1, f"several summary lines for {client}: {found}"
                return found[0]
            if time.monotonic() > deadline:
                pytest.fail(f"relayd {self.name}: no conn line for client {client} after "
                            f"{timeout} s", pytrace=False)
            time.sleep(0.02)

    def wait_conns(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        while len(found := self.conns()) < n:
            if time.monotonic() > deadline:
                pytest.fail(f"relayd {self.name}: {len(found)} conn lines, wanted {n}, after "
                            f"{timeout} s", pytrace=False)
            time.sleep(0.02)
        return found

    def status(self, pid=None):
        return proc_status(pid or self.pid)

    def cpu_seconds(self):
        st = proc_stat(self.pid)
        return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")

    def children(self):
        """The --fork children: every child but the tunnels' keeper."""
        keeper = re.search(r"^relayd: tunnel keeper (\d+) running", self.log(), re.M)
        skip = int(keeper.group(1)) if keeper else None
        return [pid for pid, _ in children_of(self.pid) if pid != skip]

    def alive(self):
        return self.proc.poll() is None

    def wait_exit(self, timeout=10):
        """Exit status of a relayd expected to exit by itself."""
        self.expected_exit = True
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"relayd {self.name} still running after {timeout} s", pytrace=False)

    def stop(self, sig=signal.SIGTERM, within=2.0):
        """Send sig; relayd must exit 0 within `within` s. Returns seconds taken."""
        assert self.alive(), f"relayd {self.name} died before stop"
        self.expected_exit = True
        t0 = time.monotonic()
        os.kill(self.pid, sig)
        try:
            rc = self.proc.wait(within)
        except subprocess.TimeoutExpired:
            pytest.fail(f"relayd {self.name} still running {within} s after {sig.name}",
                        pytrace=False)
        elapsed = time.monotonic() - t0
        assert rc == 0, f"relayd {self.name} exited {rc} after {sig.name}"
        return elapsed

    def kill(self):
        """Kill this relayd and its children, by PID only."""
        if self.proc is None:
            return
        if self.alive():
            for pid in self.children():
                kill_pid(pid)
            kill_pid(self.pid)
        self.proc.wait()


@pytest.fixture(scope="session")
def relayd_bin():
    if not os.access(RELAYD, os.X_OK):
        pytest.fail(f"{RELAYD} is not built: run make (or set RELAYD=)", pytrace=False)
    return RELAYD


@pytest.fixture
def relayd(request, tmp_path, relayd_bin):
    """Factory: relayd(*args, ready=True, as_nobody=False, nofile=None,
    binary=None, prefix=()) starts relayd and by default waits for ready.
    Teardown kills every relayd it started, and fails the test if one of
    them exited without the test expecting it (a crash, a signal)."""
    started = []
    request.node.relayds = started

    def start(*args, ready=True, **kw):
        r = Relayd(tmp_path, args, **kw)
        started.append(r)
        r.start()
        if ready:
            r.wait_ready()
        return r

    yield start
    unexpected = [f"relayd {r.name} exited with {r.proc.returncode} during the test"
                  for r in started
                  if r.proc and r.proc.poll() is not None and not r.expected_exit]
    for r in started:
        r.kill()
    if unexpected:
        pytest.fail("\n".join(unexpected), pytrace=False)


def run_relayd(*args, as_nobody=False, binary=None, prefix=(), timeout=10):
    """Run relayd to completion (CLI checks); returns CompletedProcess."""
    cmd = [*prefix, *(SETPRIV_NOBODY if as_nobody else ()), str(binary or RELAYD), *map(str, args),
           *EXTRA_ARGS]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


# ---------------------------------------------------------------- host names

class DnsServer:
    """A minimal DNS server on UDP addr:53 answering A and AAAA queries from
    self.names ({name: [address, ...]}, editable while running), NXDOMAIN
    for anything else, TTL 0 so nothing may be cached."""

    def __init__(self, address):
        self.names = {}
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 53))
        self.sock.settimeout(0.1)
        self.address = address
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stopping.is_set():
            try:
                query, peer = self.sock.recvfrom(4096)
                self.sock.sendto(self.answer(query), peer)
            except socket.timeout:
                continue
            except (OSError, ValueError, IndexError):
                continue

    def answer(self, query):
        # Header, then one question: labels, QTYPE, QCLASS. The question is
        # echoed byte for byte (resolvers may randomise the name's case).
        pos, labels = 12, []
        while query[pos]:
            labels.append(query[pos + 1:pos + 1 + query[pos]].decode().lower())
            pos += 1 + query[pos]
        qtype = int.from_bytes(query[pos + 1:pos + 3], "big")
        question = query[12:pos + 5]
        name = ".".join(labels)
        self.queries.append((name, qtype))
        known = self.names.get(name)
        family = {1: socket.AF_INET, 28: socket.AF_INET6}.get(qtype)
        records = [socket.inet_pton(family, a) for a in known or ()
                   if family and (":" in a) == (family == socket.AF_INET6)]
        flags = 0x8180 | (0 if known is not None else 3)     # QR RD RA, NXDOMAIN
        out = query[:2] + flags.to_bytes(2, "big") + b"\x00\x01" \
            + len(records).to_bytes(2, "big") + b"\x00\x00\x00\x00" + question
        for rdata in records:
            out += (b"\xc0\x0c" + qtype.to_bytes(2, "big") + b"\x00\x01"
                    + b"\x00\x00\x00\x00" + len(rdata).to_bytes(2, "big") + rdata)
        return out

    def stop(self):
        self._stopping.set()
        self._thread.join(2)
        self.sock.close()


class PrivateNames:
    """Name lookups under our control: relayd runs in its own mount namespace
    where /etc/hosts, /etc/resolv.conf and /etc/nsswitch.conf are our files,
    the name server being our DnsServer on a random 127.x.y.z. Name tests
    are then deterministic and never touch the machine's configuration or
    the network. write_hosts() edits the hosts file in place (same inode, so
    the bind mount shows the change); dns.names can change at any time."""

    def __init__(self, directory):
        d = Path(directory)
        self.hosts, self.resolv, self.nsswitch = d / "hosts", d / "resolv.conf", d / "nsswitch.conf"
        self.dns = self._start_dns()
        self.resolv.write_text(f"nameserver {self.dns.address}\noptions timeout:1 attempts:1\n")
        # Keep the machine's other databases (passwd for --user), replace hosts.
        lines = [ln for ln in Path("/etc/nsswitch.conf").read_text().splitlines()
                 if not ln.startswith("hosts:")]
        self.nsswitch.write_text("\n".join(lines + ["hosts: files dns", ""]))
        self.write_hosts([])
        for f in (self.hosts, self.resolv, self.nsswitch):
            f.chmod(0o644)

    @staticmethod
    def _start_dns():
        rng = random.Random()
        for _ in range(20):
            address = f"127.{rng.randrange(1, 255)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            try:
                return DnsServer(address)
            except OSError:
                continue
        pytest.skip("no loopback address with a free port 53")

    def write_hosts(self, entries):
        """entries: [(address, name), ...]"""
        with open(self.hosts, "w") as f:
            f.writelines(f"{a} {n}\n" for a, n in entries)

    @property
    def prefix(self):
        """Command prefix that runs the rest of the command line in the namespace."""
        script = ('mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf'
                  ' && mount --bind "$3" /etc/nsswitch.conf && shift 3 && exec "$@"')
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                "sh", str(self.hosts), str(self.resolv), str(self.nsswitch)]


@pytest.fixture
def private_names(sockdir):
    names = PrivateNames(sockdir)
    yield names
    names.dns.stop()


# ---------------------------------------------------------------- ssh tunnels
# A private sshd (sshd.py) and relayd --ssh to it. The import sits here, not
# at the top, because sshd.py uses the /proc helpers above.

import functools                                            # noqa: E402
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer   # noqa: E402

from sshd import Sshd, ensure_privsep_dir, PRIVSEP_DIR     # noqa: E402

# The fault suite's fixtures (network namespaces, see netns.py).
pytest_plugins = ["netns"]

TUNNEL_UP_TIMEOUT = 10      # seconds from start (or a reconnection) to "forward ... up"
# Through a forward, a stream that makes no progress for this long is stuck
# (a lost wake-up that only the next keepalive would end), not slow.
STALL_TIMEOUT = 10 if SANITIZE else 5

# relayd: conn <ID> [-R 10080:127.0.0.1:80] ... in=N out=N time=S.mmm end=<reason>
TUNNEL_CONN_RE = re.compile(
    r"^relayd: conn (?P<id>\S+) \[(?P<forward>-[RLD] [^\]]+)\].*? "
    r"in=(?P<inb>\d+) out=(?P<outb>\d+) (?:held=(?P<held>\d+\.\d{2}) )?"
    r"time=(?P<time>\d+\.\d{3}) end=(?P<end>.+)$", re.M)

_FORWARD_OPTS = {"-R": "R", "--remote": "R", "-L": "L", "--local": "L",
                 "-D": "D", "--dynamic": "D"}


def forward_up_re(kind, spec):
    """The tunnel's "forward ... up" line for -KIND SPEC. -L and -D without a
    bind address are logged with the default one, 127.0.0.1; -R says the
    port the server listens on (the allocated one for port 0)."""
    if kind == "R":
        return rf"forward -R {re.escape(spec)} up on port (?P<port>\d+)\b"
    return rf"forward -{kind} (?:127\.0\.0\.1:)?{re.escape(spec)} up\b"


class ForwardAddr(Addr):
    """A forward's loopback end: its sockets fail on a stalled stream."""

    def connect(self, timeout=STALL_TIMEOUT):
        return super().connect(timeout)


def fwd(port):
    """127.0.0.1:port, the listening end of a forward."""
    return ForwardAddr(socket.AF_INET, ("127.0.0.1", port))


class Tunnel:
    """A relayd started with --ssh DEST, and the lines its tunnel logs, all
    of which start "relayd: tunnel DEST: "."""

    def __init__(self, relayd, dest):
        self.relayd = relayd
        self.dest = dest
        self.prefix = rf"^relayd: tunnel {re.escape(dest)}: "

    def lines(self, pattern):
        """Every match so far of pattern after the tunnel's prefix."""
        return list(re.finditer(self.prefix + pattern, self.relayd.log(), re.M))

    def wait(self, pattern, n=1, timeout=TUNNEL_UP_TIMEOUT):
        """The n-th match of pattern, once there; fails if relayd exits or
        time runs out first."""
        deadline = time.monotonic() + timeout
        while True:
            exited = not self.relayd.alive()
            found = self.lines(pattern)
            if len(found) >= n:
                return found[n - 1]
            if exited:
                pytest.fail(f"relayd {self.relayd.name} exited before tunnel line #{n} "
                            f"/{pattern}/", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"relayd {self.relayd.name}: {len(found)} tunnel lines "
                            f"/{pattern}/ after {timeout} s, wanted {n}", pytrace=False)
            time.sleep(0.02)

    def wait_up(self, kind, spec, n=1, timeout=TUNNEL_UP_TIMEOUT):
        """Waits for the n-th "forward -KIND SPEC up"; returns the port for -R."""
        m = self.wait(forward_up_re(kind, spec), n, timeout)
        return int(m.group("port")) if kind == "R" else None

    def conns(self, forward=None):
        """Summary lines of connections carried by the tunnel's forwards
        (forward: "-R SPEC" to keep one forward's), parsed."""
        out = []
        for m in TUNNEL_CONN_RE.finditer(self.relayd.log()):
            c = m.groupdict()
            if forward is None or c["forward"] == forward:
                c["inb"], c["outb"] = int(c["inb"]), int(c["outb"])
                c["line"] = m.group(0)
                out.append(c)
        return out

    def wait_conns(self, n, forward=None, timeout=5):
        deadline = time.monotonic() + timeout
        while len(found := self.conns(forward)) < n:
            if time.monotonic() > deadline:
                pytest.fail(f"relayd {self.relayd.name}: {len(found)} conn lines for "
                            f"{forward or 'the tunnel'}, wanted {n}, after {timeout} s",
                            pytrace=False)
            time.sleep(0.02)
        return found


@functools.cache
def libssh2_version():
    """The libssh2 relayd was built with, (1, 10, 0) say, from the second
    line of relayd --version: it decides which keys and methods a tunnel
    can use, and so what the tunnel tests expect."""
    out = run_relayd("--version").stdout
    m = re.search(r"^libssh2 (\d+)\.(\d+)\.(\d+)", out, re.M)
    assert m, f"relayd --version names no libssh2: {out!r}"
    return tuple(map(int, m.groups()))


def libssh2_at_least(*version):
    return libssh2_version() >= version


def libssh2_patched():
    """Whether relayd links the libssh2 of `make LIBSSH2=patched`, which
    prefers AES-CTR to AES-GCM (relayd --version says so)."""
    return ", patched: cipher runs" in run_relayd("--version").stdout


class _SshdLogs:
    """Adds each sshd's log to the report of a failed test, as relayd's are."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.failed:
            for d in getattr(item, "sshds", ()):
                report.sections.append((f"sshd {d.name} ({report.when})", d.describe()))


def pytest_configure(config):
    config.pluginmanager.register(_SshdLogs(), "relayd-e2e-sshd-logs")


@pytest.fixture(scope="session")
def privsep_dir():
    """/run/sshd, made if missing and then left in place: another test run
    (or the machine's sshd) may have started using it meanwhile."""
    ensure_privsep_dir()
    return PRIVSEP_DIR


@pytest.fixture
def make_sshd(request, tmp_path, privsep_dir):
    """Factory: make_sshd(ipv6=False, **Sshd options) starts a private sshd
    on a free port (127.0.0.1, and ::1 with ipv6). Teardown kills each one and what it
    forked, by PID; their logs are shown if the test failed."""
    if not os.access("/usr/sbin/sshd", os.X_OK):
        pytest.skip("no /usr/sbin/sshd (apt-get install openssh-server)")
    made = []
    request.node.sshds = made

    def start(ipv6=False, **kw):
        d = Sshd(tmp_path / f"sshd-{len(made) + 1}", free_port(), ipv6=ipv6, **kw)
        made.append(d)
        return d.start()

    yield start
    for d in made:
        d.kill()


@pytest.fixture
def sshd(make_sshd):
    return make_sshd()


@pytest.fixture
def tunnel(relayd, sshd):
    """Factory: tunnel(*args, identity=None, known_hosts=None, server=None,
    host="127.0.0.1", up=True, ready=True, **relayd_kw) starts relayd --ssh
    root@HOST:PORT of server (default: the sshd fixture) with args (forwards,
    options, a --listen/--to relay), a key the server accepts and a
    known_hosts file that knows its host key, unless given others. With up it
    waits until every forward in args logged "up". Returns a Tunnel."""
    def start(*args, identity=None, known_hosts=None, server=None, host="127.0.0.1",
              up=True, ready=True, **kw):
        server = server or sshd
        dest = server.dest(host)
        identity = identity or server.keys["ed25519"]
        known_hosts = known_hosts or server.write_known_hosts("good", host)
        r = relayd("--ssh", dest, *args, "--identity", identity,
                   "--known-hosts", known_hosts, ready=ready, **kw)
        t = Tunnel(r, dest)
        if up:
            args = list(map(str, args))
            for opt, spec in zip(args, args[1:]):
                if opt in _FORWARD_OPTS:
                    t.wait_up(_FORWARD_OPTS[opt], spec)
        return t

    return start


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class HttpBackend:
    """Python's http.server on 127.0.0.1 serving one generated file, /blob."""

    def __init__(self, directory, nbytes, seed):
        directory.mkdir(parents=True, exist_ok=True)
        data = payload(seed, nbytes)
        (directory / "blob").write_bytes(data)
        self.digest = digest_of(data)
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.spec = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(2)


@pytest.fixture
def http_backend(tmp_path):
    """An HttpBackend with a 4 MiB file."""
    b = HttpBackend(tmp_path / "www", 4 << 20, seed=77)
    yield b
    b.stop()


def listening(addr):
    """True if something accepts connections on addr right now."""
    with socket.socket(addr.family, socket.SOCK_STREAM) as s:
        return s.connect_ex(addr.sockaddr) == 0


def curl_digest(url, *options, timeout=30):
    """(length, sha256) of what curl fetched from url; fails on any error."""
    done = subprocess.run(["curl", "--silent", "--show-error", "--fail",
                           "--max-time", str(timeout), "--speed-limit", "1024",
                           "--speed-time", str(STALL_TIMEOUT), *options, "--output", "-", url],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout + 5)
    assert done.returncode == 0, f"curl {' '.join(options)} {url}: exit {done.returncode}, " \
                                 f"{done.stderr.decode(errors='replace').strip()}"
    return digest_of(done.stdout)
