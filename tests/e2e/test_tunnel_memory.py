"""The tunnels' worker has a memory budget: a peer that floods before the key
exchange is dropped after a few KiB, a channel whose other side stops
reading holds at most its receive window, and new channels are refused
while the channels hold more than the budget. Memory is read from /proc
(the worker's VmHWM, its peak), never from relayd's own counters."""

import contextlib
import itertools
import os
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import (SANITIZE, Backend, children_of, free_port, fwd,
                      proc_status, recv_all, send_stream, sink_reply)

KiB = 1 << 10
MiB = 1 << 20
# What SECURITY.md promises (tunnel/tunnel_int.h, tunnel/budget.h).
KEX_MAX = 64 * KiB
BUDGET = 64 * MiB
OPEN_WINDOW = 256 * KiB
ACCEPT_WINDOW = 2 * MiB             # libssh2's, fixed, for -R channels
READ = 64 * KiB                     # one pump read, and one pump buffer
# A channel holds its window, one read beyond it, and a pump buffer.
PER_REMOTE = ACCEPT_WINDOW + 2 * READ
PER_LOCAL = OPEN_WINDOW + 2 * READ
# libssh2's per-packet bookkeeping, malloc's rounding and heap
# fragmentation, the threads' stacks the test's traffic wakes; ASan's
# redzones and shadow memory cost more.
SLACK = (48 if SANITIZE else 8) * MiB


@pytest.fixture(autouse=True)
def flat_rss(monkeypatch):
    """VmHWM is measured: an ASan build must reuse freed memory at once
    (its quarantine would grow RSS by design); LeakSanitizer still checks
    at exit."""
    if SANITIZE:
        monkeypatch.setenv("ASAN_OPTIONS", ":".join(filter(None, [
            os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=0"])))


def worker_pid(relayd_pid, timeout=10):
    """The tunnels' worker: the one child of the relay process's one child."""
    deadline = time.monotonic() + timeout
    while True:
        keepers = children_of(relayd_pid)
        if len(keepers) == 1:
            workers = children_of(keepers[0][0])
            if len(workers) == 1:
                return workers[0][0]
        assert time.monotonic() < deadline, f"no tunnel worker: {keepers}"
        time.sleep(0.05)


def hwm(pid):
    kib, unit = proc_status(pid)["VmHWM"].split()
    return int(kib) * KiB


def rss(pid):
    kib, unit = proc_status(pid)["VmRSS"].split()
    return int(kib) * KiB


def wait_still(value, quiet=1.0, timeout=30):
    """Waits until value() stops changing for quiet seconds; returns it."""
    deadline = time.monotonic() + timeout
    last, since = value(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = value()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    raise AssertionError(f"still changing after {timeout} s: {last}")


# ------------------------------------------------------ before the key exchange

def ssh_packet(payload):
    """An unencrypted SSH binary packet (RFC 4253 6), block size 8."""
    pad = 8 - (5 + len(payload)) % 8
    pad += 8 if pad < 4 else 0
    return struct.pack(">IB", 1 + len(payload) + pad, pad) + payload + b"\0" * pad


class FloodServer:
    """A fake SSH server. Its first connection gets a valid banner, a few
    packets of an unknown type (200) and a close: the worker's one-time
    costs of a session are then behind it. The second, once `go` is set,
    gets the banner and then `total` bytes of such packets, with
    `size`-byte payloads. Later connections are closed at once."""

    def __init__(self, total, size):
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.total, self.size = total, size
        self.accepted, self.go, self.done = (threading.Event() for _ in range(3))
        self.sent = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                return self.lsock.accept()[0]
            except OSError:
                continue
        return None

    def _run(self):
        chunk = ssh_packet(bytes([200]) + bytes(self.size - 1)) * \
            max(1, 65536 // (self.size + 16))
        banner = b"SSH-2.0-OpenSSH_9.2p1 Flood\r\n"
        for n in itertools.count():
            if (conn := self._accept()) is None:
                return
            with conn:
                if n == 0:
                    with contextlib.suppress(OSError):
                        conn.sendall(banner + chunk[:4096])
                        time.sleep(0.2)
                    continue
                if n > 1:
                    continue
                self.accepted.set()
                self.go.wait(30)
                try:
                    conn.sendall(banner)
                    while self.sent < self.total and not self.stopping:
                        conn.sendall(chunk)
                        self.sent += len(chunk)
                except OSError:
                    pass
                self.done.set()

    def stop(self):
        self.stopping = True
        self.go.set()
        self.thread.join(5)
        self.lsock.close()


@pytest.fixture
def keyfiles(tmp_path):
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                   check=True)
    known = tmp_path / "known_hosts"
    known.write_text("")
    return key, known


@pytest.mark.parametrize("size", [1, 32000], ids=["tiny-packets", "big-packets"])
def test_flood_before_key_exchange_is_dropped(relayd, keyfiles, figures, size):
    """Packets of an unknown type before the key exchange are kept by
    libssh2 (unproved: anyone on the path can send them); past 64 KiB the
    session is dropped with a line that says why, having cost the worker a
    few hundred KiB, not the 64 MiB sent."""
    key, known = keyfiles
    server = FloodServer(64 * MiB, size)
    try:
        r = relayd("--ssh", f"root@127.0.0.1:{server.port}", "-L",
                   f"{free_port()}:127.0.0.1:9", "--identity", key,
                   "--known-hosts", known)
        worker = worker_pid(r.pid)
        assert server.accepted.wait(10), "relayd never connected again"
        time.sleep(0.3)
        before, rss_before = hwm(worker), rss(worker)
        server.go.set()
        r.wait_log(r"^relayd: tunnel \S+: handshake failed: the server sent more than "
                   r"64 KiB before the key exchange ended$", timeout=30)
        assert server.done.wait(30), "the flood was never cut off"
        grown = hwm(worker) - before
        figures(f"pre-kex flood, {size}-byte packets: {server.sent >> 10} KiB sent "
                f"before the drop; worker VmHWM +{grown >> 10} KiB, "
                f"VmRSS +{(rss(worker) - rss_before) >> 10} KiB")
        assert server.sent < 64 * MiB, "relayd read the whole flood"
        assert grown < (16 if SANITIZE else 2) * MiB, f"VmHWM grew {grown >> 10} KiB"
        assert r.alive()
    finally:
        server.stop()


# ------------------------------------------------------------------- channels

class GatedSink(Backend):
    """A SinkBackend that reads nothing until `gate` is set."""

    gate = None

    def handle(self, conn, record):
        self.gate.wait(60)
        record["received"] = recv_all(conn)
        conn.sendall(sink_reply(record["received"]))
        conn.shutdown(socket.SHUT_WR)


def gated_sink(backends):
    """A GatedSink whose connections take little into their kernel buffers,
    so that what it does not read stays upstream, in relayd if anywhere."""
    b = backends._make(GatedSink, None)
    b.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    b.gate = threading.Event()
    return b


class Uploader:
    """Sends nbytes of seeded data through addr in a thread; result() is
    (length, sha256) of what was sent and the reply, or the error."""

    def __init__(self, addr, seed, nbytes):
        self.sock = addr.connect(timeout=60)
        self.sent = 0
        self.result = None
        self.thread = threading.Thread(target=self._run, args=(seed, nbytes),
                                       daemon=True)
        self.thread.start()

    def _run(self, seed, nbytes):
        def progress(n):
            self.sent = n
        try:
            digest = send_stream(self.sock, seed, nbytes, progress)
            self.sock.shutdown(socket.SHUT_WR)
            self.result = (digest, self.sock.recv(200))
        except OSError as e:
            self.result = e

    def close(self):
        self.sock.close()
        self.thread.join(5)


def test_stalled_remote_channel_holds_one_window_and_loses_nothing(
        tunnel, backends, figures):
    """A -R target that stops reading: the server may fill libssh2's fixed
    2 MiB window of the channel and no more; once the target reads again,
    every byte arrives."""
    target = gated_sink(backends)
    rport = free_port()
    t = tunnel("-R", f"{rport}:{target.spec}")
    worker = worker_pid(t.relayd.pid)
    before = hwm(worker)
    up = Uploader(fwd(rport), 5, 32 * MiB)
    try:
        wait_still(lambda: up.sent)
        grown = hwm(worker) - before
        figures(f"one stalled -R channel: client {up.sent >> 10} KiB ahead; "
                f"worker VmHWM +{grown >> 10} KiB")
        assert grown < PER_REMOTE + SLACK, f"VmHWM grew {grown >> 10} KiB"
        target.gate.set()
        [rec] = target.wait_done(1, timeout=30)
        up.thread.join(30)
        digest, reply = up.result
        assert rec["received"] == digest, "bytes lost or changed"
        assert reply == sink_reply(digest)
    finally:
        target.gate.set()
        up.close()


@pytest.mark.time_limit(120)
def test_remote_channels_into_a_target_that_never_reads(tunnel, backends, figures):
    """100 -R connections, one every 20 ms, each uploading 16 MiB into a
    target that does not read: the first fill their windows until libssh2
    holds the 64 MiB budget, the next are refused with a log line (those
    admitted meanwhile may still fill theirs), and the admitted ones
    deliver every byte once the target reads."""
    n = 100
    target = gated_sink(backends)
    rport = free_port()
    t = tunnel("-R", f"{rport}:{target.spec}")
    worker = worker_pid(t.relayd.pid)
    before = hwm(worker)
    ups = []
    try:
        for i in range(n):
            ups.append(Uploader(fwd(rport), 100 + i, 16 * MiB))
            time.sleep(0.02)
        wait_still(lambda: sum(u.sent for u in ups), quiet=2)
        grown = hwm(worker) - before
        t.wait(r"memory budget spent \(libssh2 holds \d+ KiB of 65536\): "
               r"refusing new channels$")
        target.gate.set()
        for u in ups:
            u.thread.join(30)
        ok = [u for u in ups if isinstance(u.result, tuple) and u.result[1]]
        got = {r["received"] for r in target.wait_done(len(target.records), timeout=30)}
        figures(f"100 -R channels into a target that never reads: worker VmHWM "
                f"+{grown >> 20} MiB; {len(ok)} admitted, {n - len(ok)} refused")
        # Channels admitted before the budget was spent may each still fill
        # their window, and a refused -R channel, granted its window by
        # libssh2 before relayd sees it, may fill it until its close is
        # done: the budget bounds how many are admitted.
        assert 0 < len(ok) < n
        # A sanitized build fills windows more slowly: more get in first.
        assert len(ok) * PER_REMOTE < BUDGET + (64 if SANITIZE else 32) * PER_REMOTE
        # ASan's allocator keeps per-size-class caches it never returns.
        bound = (BUDGET + len(ok) * PER_REMOTE) * (2 if SANITIZE else 1) + SLACK
        assert grown < bound, f"VmHWM grew {grown >> 20} MiB"
        for u in ok:
            assert u.result[0] in got and u.result[1] == sink_reply(u.result[0])
        # Drained, the budget admits channels again.
        again = Uploader(fwd(rport), 1, 1000)
        again.thread.join(10)
        again.close()
        assert isinstance(again.result, tuple) and again.result[1] == \
            sink_reply(again.result[0]), again.result
        t.wait(r"memory back under budget \(\d+ KiB\); \d+ new channels were refused$")
    finally:
        target.gate.set()
        for u in ups:
            u.close()


class Reader:
    """A client of addr that reads nothing until `gate` is set, then all."""

    def __init__(self, addr, gate):
        self.sock = addr.connect(timeout=60)
        self.sock.shutdown(socket.SHUT_WR)
        self.result = None
        self.thread = threading.Thread(target=self._run, args=(gate,), daemon=True)
        self.thread.start()

    def _run(self, gate):
        gate.wait(60)
        try:
            self.result = recv_all(self.sock)
        except OSError as e:
            self.result = e


@pytest.mark.time_limit(120)
def test_local_clients_that_never_read(tunnel, backends, figures):
    """100 -L clients that do not read what the server's target sends: each
    channel holds the 256 KiB window relayd grants, not libssh2's 2 MiB,
    and every byte arrives once they read."""
    n = 100
    target = backends.pump(8 * MiB, seed=9)
    lport = free_port()
    t = tunnel("-L", f"{lport}:{target.spec}")
    worker = worker_pid(t.relayd.pid)
    before = hwm(worker)
    gate = threading.Event()
    readers = [Reader(fwd(lport), gate) for _ in range(n)]
    try:
        wait_still(lambda: sum(r.get("sent_so_far", 0) for r in target.records), quiet=2)
        grown = hwm(worker) - before
        figures(f"100 -L clients that never read: worker VmHWM +{grown >> 20} MiB")
        assert grown < n * PER_LOCAL + SLACK, f"VmHWM grew {grown >> 20} MiB"
        gate.set()
        recs = target.wait_done(n, timeout=60)
        for r in readers:
            r.thread.join(30)
        assert sorted(r.result for r in readers) == sorted(rec["sent"] for rec in recs)
        assert not t.lines(r"memory budget spent")
    finally:
        gate.set()
        for r in readers:
            r.sock.close()
