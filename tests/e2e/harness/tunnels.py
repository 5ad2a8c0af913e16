"""relayd --ssh against the private sshd (sshd.py): its forwards, the
lines it logs about them, and the libssh2 it was built with."""
import functools
import re
import socket
import time

import pytest

from harness.addrs import Addr
from harness.procs import STALL_TIMEOUT, run_relayd


TUNNEL_UP_TIMEOUT = 10      # seconds from start (or a reconnection) to "forward ... up"
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
