"""Stoppable in-process backends a relay connects to: echo, sink (what it
received, as length and SHA-256), a pump that sends as it reads, HTTP."""
import contextlib
import functools
import os
import socket
import subprocess
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

from harness.addrs import Addr, tcp4
from harness.procs import IO_TIMEOUT, STALL_TIMEOUT
from harness.streams import (CHUNK, digest_of, payload, recv_all, recv_exact, send_stream,
                             sink_reply)


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


def curl_digest(url, *options, timeout=30):
    """(length, sha256) of what curl fetched from url; fails on any error."""
    done = subprocess.run(["curl", "--silent", "--show-error", "--fail",
                           "--max-time", str(timeout), "--speed-limit", "1024",
                           "--speed-time", str(STALL_TIMEOUT), *options, "--output", "-", url],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout + 5)
    assert done.returncode == 0, f"curl {' '.join(options)} {url}: exit {done.returncode}, " \
                                 f"{done.stderr.decode(errors='replace').strip()}"
    return digest_of(done.stdout)
