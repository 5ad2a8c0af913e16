"""One harness for the relayd end-to-end tests: relayd processes, loopback
addresses, stoppable in-process backends and byte-stream checks, so that each
test stays a few lines about one case. The harness itself is the package
harness/ (one module a job); this file holds pytest's hooks and fixtures and
re-exports every harness name, so that tests import them from conftest."""
import os
import random
import shutil
import signal
import socket
import tempfile
from pathlib import Path

import pytest

from harness.procs import (assert_dropped, assert_spliced, Background, children_of, CONN_RE,
                           DROPPED_CAPS, EXTRA_ARGS, IO_TIMEOUT, kill_pid, proc_stat,
                           proc_status, READY_TIMEOUT, RELAYD, Relayd, REPO, run_relayd,
                           SANITIZE, SETPRIV_NOBODY, SPLICING, STALL_TIMEOUT, TEST_TIMEOUT, vmhwm)  # noqa: F401
from harness.addrs import (Addr, _bindable, DnsServer, fmt_addr, free_port, _handed_out,
                           listening, local_spec, PrivateNames, tcp4, tcp6, unix)  # noqa: F401
from harness.streams import (CHUNK, CLIENT, connect_from, Digest, digest_of, echo_roundtrip,
                             echo_stream, payload, recv_all, recv_exact, recv_until_eof,
                             send_stream, served_once_activated, sink_reply, sink_roundtrip,
                             sink_roundtrip_when_up, sink_roundtrips_at_once, trickle,
                             upload_while_reading, wait_closed)  # noqa: F401
from harness.backends import (Backend, Backends, curl_digest, EchoBackend, HeaderSink,
                              HttpBackend, PumpBackend, _QuietHandler, SinkBackend)  # noqa: F401
from harness.tunnels import (_FORWARD_OPTS, forward_up_re, ForwardAddr, fwd, libssh2_at_least, libssh2_patched,
                             libssh2_version, _SshdLogs, Tunnel, TUNNEL_CONN_RE,
                             TUNNEL_UP_TIMEOUT)  # noqa: F401
from sshd import Sshd, ensure_privsep_dir, PRIVSEP_DIR


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


@pytest.fixture
def private_names(sockdir):
    names = PrivateNames(sockdir)
    yield names
    names.dns.stop()


# The fault suite's fixtures (network namespaces, see netns.py).
pytest_plugins = ["netns"]


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


@pytest.fixture
def http_backend(tmp_path):
    """An HttpBackend with a 4 MiB file."""
    b = HttpBackend(tmp_path / "www", 4 << 20, seed=77)
    yield b
    b.stop()
