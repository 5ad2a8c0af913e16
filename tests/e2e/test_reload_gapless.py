"""A reload that changes a relay refuses no client: many short connections
run while relayd is reloaded 40 times, and every one of them is accepted
and its exchange comes back whole, on one loop or several, over TCP or a
unix socket whose path stays the same."""

import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import digest_of, free_port, payload, recv_all, recv_exact, tcp4, unix

RELOADS = 40
CLIENTS = 6             # load threads
EXCHANGE = 2048         # bytes each client sends and reads back


def write_conf(path, text):
    path.write_text(text)
    path.chmod(0o644)       # read again after the drop to nobody


def relay_conf(listen, to, idle, workers=1):
    return (f"workers = {workers}\n\n[relay web]\nlisten = {listen}\nto = {to}\n"
            f"idle-timeout = {idle}\n")


class Load:
    """CLIENTS threads, each making short connections one after another
    until stop(): connect, send a payload of its own, half-close, read the
    echo to EOF and compare length and SHA-256. Every outcome is counted."""

    def __init__(self, addr):
        self.addr = addr
        self.counts = {"ok": 0, "refused": 0, "reset": 0, "other": 0}
        self.errors = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(CLIENTS)]
        for t in self._threads:
            t.start()

    def _one(self, seed):
        data = payload(seed, EXCHANGE)
        with self.addr.connect(timeout=10) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            got = recv_all(s)
        if got != digest_of(data):
            raise AssertionError(f"sent {digest_of(data)}, echo returned {got}")

    def _run(self, i):
        seed = i << 32
        while not self._stop.is_set():
            seed += 1
            try:
                self._one(seed)
                what = "ok"
            except ConnectionRefusedError as e:
                what, err = "refused", e
            except (ConnectionResetError, BrokenPipeError) as e:
                what, err = "reset", e
            except (OSError, AssertionError) as e:
                what, err = "other", e
            with self._lock:
                self.counts[what] += 1
                if what != "ok" and len(self.errors) < 5:
                    self.errors.append(repr(err))

    def done(self):
        return self.counts["ok"]

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(15)
        assert not any(t.is_alive() for t in self._threads), "a client hung"
        return dict(self.counts)


def wait_reloads(r, n, timeout=10):
    """Until relayd has logged its n-th "reloaded:" line."""
    deadline = time.monotonic() + timeout
    # The tunnels' process logs a "reloaded: 0 relays" line of its own.
    while len(re.findall(r"^relayd: reloaded: [1-9]", r.log(), re.M)) < n:
        assert r.alive(), "relayd died"
        assert time.monotonic() < deadline, f"reload {n} not done after {timeout} s"
        time.sleep(0.01)


def reload_under_load(r, conf, addr, texts, figures):
    """Starts the load, rewrites conf with each of texts and reloads after
    each (once the one before is done); returns the load's counts and its
    first errors."""
    load = Load(addr)
    try:
        deadline = time.monotonic() + 5
        while load.done() < 50:
            assert time.monotonic() < deadline, f"no load through relayd: {load.counts}"
            time.sleep(0.01)
        for n, text in enumerate(texts, 1):
            write_conf(conf, text)
            os.kill(r.pid, signal.SIGHUP)
            wait_reloads(r, n)
            time.sleep(0.02)
        before = load.done()
        deadline = time.monotonic() + 5
        while load.done() < before + 20 and time.monotonic() < deadline:
            time.sleep(0.01)        # served after the last reload too
    finally:
        counts = load.stop()
    # Every reload replaced the relay: none was left as it was.
    replaced = r"^relayd: reloaded: 1 relays, 0 tunnels \(0 unchanged\)$"
    assert len(re.findall(replaced, r.log(), re.M)) == len(texts)
    figures(f"{counts} over {len(texts)} reloads; first errors {load.errors}")
    return counts, load.errors


def assert_clean(counts, errors):
    bad = {k: v for k, v in counts.items() if k != "ok" and v}
    assert not bad, f"clients failed across the reloads: {counts}; first: {errors}"
    assert counts["ok"] > RELOADS, counts


def start(relayd, conf, text):
    write_conf(conf, text)
    return relayd("-c", conf)


@pytest.mark.time_limit(90)
@pytest.mark.parametrize("workers", [1, 2])
def test_reloads_changing_idle_timeout_refuse_no_client(sockdir, relayd, backends, workers,
                                                         figures):
    echo = backends.echo(backlog=1024)
    conf, listen = sockdir / "relayd.conf", f"127.0.0.1:{free_port()}"
    r = start(relayd, conf, relay_conf(listen, echo.spec, 300, workers))
    texts = [relay_conf(listen, echo.spec, 301 + n, workers) for n in range(RELOADS)]
    assert_clean(*reload_under_load(r, conf, tcp4(int(listen.split(":")[1])), texts,
                                    figures))
    r.stop()


@pytest.mark.time_limit(90)
@pytest.mark.parametrize("workers", [1, 2])
def test_reloads_changing_the_target_refuse_no_client(sockdir, relayd, backends, workers,
                                                       figures):
    echoes = [backends.echo(backlog=1024), backends.echo(backlog=1024)]
    conf, port = sockdir / "relayd.conf", free_port()
    listen = f"127.0.0.1:{port}"
    r = start(relayd, conf, relay_conf(listen, echoes[0].spec, 300, workers))
    texts = [relay_conf(listen, echoes[(n + 1) % 2].spec, 300, workers)
             for n in range(RELOADS)]
    assert_clean(*reload_under_load(r, conf, tcp4(port), texts, figures))
    # Both targets served: the changed relays really took over.
    assert all(len(e.records) > 0 for e in echoes)
    r.stop()


@pytest.mark.time_limit(90)
@pytest.mark.parametrize("workers", [1, 2])
def test_reloads_keep_a_unix_socket_whose_path_stays(sockdir, relayd, backends, workers,
                                                      figures):
    """The path cannot be bound twice: the new relay takes the old one's
    socket, so the file is never missing and no client is refused (here
    relayd, once nobody, could not even bind the path again)."""
    echo = backends.echo(backlog=1024)
    conf, path = sockdir / "relayd.conf", sockdir / "web.sock"
    r = start(relayd, conf, relay_conf(f"unix:{path}", echo.spec, 300, workers))
    inode = path.stat().st_ino
    texts = [relay_conf(f"unix:{path}", echo.spec, 301 + n, workers) for n in range(RELOADS)]
    assert_clean(*reload_under_load(r, conf, unix(path), texts, figures))
    assert path.stat().st_ino == inode, "the socket file was made again"
    r.stop()


def test_reload_moving_a_unix_socket_removes_the_old_path(sockdir, relayd, echo):
    """A new path is bound and the old file is removed: clients of the old
    path are refused from then on, as the documentation says."""
    socks = sockdir / "socks"       # where the user relayd drops to may bind
    socks.mkdir()
    if os.geteuid() == 0:
        os.chown(socks, 65534, 65534)
    conf, old, new = sockdir / "relayd.conf", socks / "old.sock", socks / "new.sock"
    r = start(relayd, conf, relay_conf(f"unix:{old}", echo.spec, 300))
    write_conf(conf, relay_conf(f"unix:{new}", echo.spec, 300))
    os.kill(r.pid, signal.SIGHUP)
    wait_reloads(r, 1)
    assert not old.exists(), "the old socket file is still there"
    with pytest.raises(FileNotFoundError):
        unix(old).connect()
    with unix(new).connect() as s:
        s.sendall(b"ping")
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == digest_of(b"ping")
    r.stop()


def echo_each(addr, n, wrap=None):
    """n connections open at once (so that every loop's socket gets some),
    each echoing a payload of its own; wrap makes them TLS."""
    socks = []
    try:
        for i in range(n):
            s = addr.connect(timeout=5)
            socks.append(wrap(s) if wrap else s)
        for i, s in enumerate(socks):
            data = payload(1000 + i, EXCHANGE)
            s.sendall(data)
            assert recv_exact(s, len(data)) == data, f"connection {i}"
    finally:
        for s in socks:
            s.close()


def test_reload_between_one_loop_and_two_keeps_every_socket(sockdir, relayd, echo):
    """A TLS relay runs in one loop, a plain one in every loop: going from
    one to the other on the same address, the relay that runs in one loop
    watches every socket the loops had (none is left with clients queued
    on it), and the loops that come back watch them too."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", "k.pem", "-out", "c.pem",
                    "-days", "1", "-subj", "/CN=relayd test"], cwd=sockdir, check=True,
                   capture_output=True)
    for f in ("k.pem", "c.pem"):
        (sockdir / f).chmod(0o644)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    port, conf = free_port(), sockdir / "relayd.conf"
    plain = relay_conf(f"127.0.0.1:{port}", echo.spec, 300, workers=2)
    tls = (relay_conf(f"tls:127.0.0.1:{port}", echo.spec, 300, workers=2) +
           f"cert = {sockdir}/c.pem\nkey = {sockdir}/k.pem\n")
    r = start(relayd, conf, plain)
    for n, (text, wrap) in enumerate([(tls, ctx.wrap_socket), (plain, None),
                                      (tls, ctx.wrap_socket)], 1):
        write_conf(conf, text)
        os.kill(r.pid, signal.SIGHUP)
        wait_reloads(r, n)
        echo_each(tcp4(port), 24, wrap)
    assert "cannot listen" not in r.log()
    r.stop()


def test_reload_from_any_address_to_one_of_them(sockdir, relayd, echo):
    """*:P parked would keep 127.0.0.1:P from binding: what the new
    configuration no longer listens on closes before anything binds."""
    port, conf = free_port(), sockdir / "relayd.conf"
    r = start(relayd, conf, relay_conf(f"*:{port}", echo.spec, 300))
    write_conf(conf, relay_conf(f"127.0.0.1:{port}", echo.spec, 300))
    os.kill(r.pid, signal.SIGHUP)
    wait_reloads(r, 1)
    r.wait_log(rf"^relayd: listening on 127\.0\.0\.1:{port}$", timeout=0)
    echo_each(tcp4(port), 4)
    r.stop()
