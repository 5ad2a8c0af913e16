"""relayd and the other processes a test starts: where the binary is, the
run's settings, a relayd that is started, waited for, read and stopped by
its PID, and what /proc says of a process."""
import itertools
import os
import re
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[3]
RELAYD = Path(os.environ.get("RELAYD", str(REPO / "relayd")))
SANITIZE = os.environ.get("RELAYD_SANITIZE") == "1"

TEST_TIMEOUT = 60       # seconds for one test body (SIGALRM, see conftest.py)
READY_TIMEOUT = 10      # seconds to wait for "relayd: ready"
IO_TIMEOUT = 30         # default timeout of every socket the harness makes
# Through a forward, a stream that makes no progress for this long is stuck
# (a lost wake-up that only the next keepalive would end), not slow.
STALL_TIMEOUT = 10 if SANITIZE else 5

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


def run_relayd(*args, as_nobody=False, binary=None, prefix=(), timeout=10):
    """Run relayd to completion (CLI checks); returns CompletedProcess."""
    cmd = [*prefix, *(SETPRIV_NOBODY if as_nobody else ()), str(binary or RELAYD), *map(str, args),
           *EXTRA_ARGS]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)
