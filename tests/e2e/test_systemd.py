"""systemd: readiness (READY=1 only once every listener is bound and every
tunnel's forwards are up) through NOTIFY_SOCKET, and socket activation, the
passed socket being handed to the [relay NAME] its FileDescriptorName
names."""

import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import pytest

from conftest import free_port, run_relayd, served_once_activated, sink_roundtrip, tcp4


@pytest.fixture
def notify_socket():
    """A datagram socket like systemd's, reachable by the user relayd drops
    to. Yields (path, recv) where recv(timeout) returns one message."""
    d = Path(tempfile.mkdtemp(prefix="relayd-notify-"))
    d.chmod(0o755)
    path = d / "notify"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    path.chmod(0o777)

    def recv(timeout):
        s.settimeout(timeout)
        return s.recv(4096).decode()
    yield path, recv
    s.close()
    shutil.rmtree(d, ignore_errors=True)


def write_conf(text):
    d = Path(tempfile.mkdtemp(prefix="relayd-conf-"))
    d.chmod(0o755)
    p = d / "relayd.conf"
    p.write_text(text)
    p.chmod(0o644)
    return p


def test_ready_sent_once_relays_listen(relayd, sink, notify_socket):
    path, recv = notify_socket
    port = free_port()
    relayd("--listen", f"127.0.0.1:{port}", "--to", sink.spec,
           prefix=("env", f"NOTIFY_SOCKET={path}"))
    msg = recv(5)
    assert msg.startswith("READY=1\n") and "STATUS=serving: 1 relays, 0 tunnels" in msg, msg
    sink_roundtrip(tcp4(port))


def test_ready_waits_for_the_tunnels_forwards(tunnel, sink, notify_socket):
    """READY=1 only after the -R forward is confirmed by the server."""
    path, recv = notify_socket
    rport = free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}", up=False,
               prefix=("env", f"NOTIFY_SOCKET={path}"))
    msg = recv(15)
    assert msg.startswith("READY=1\n"), msg
    assert t.relayd.log().count(f"forward -R {rport}:") == 1, \
        "READY=1 came before the forward was up:\n" + t.relayd.log()
    sink_roundtrip(tcp4(rport))


def test_sigterm_says_stopping(relayd, sink, notify_socket):
    path, recv = notify_socket
    r = relayd("--listen", f"127.0.0.1:{free_port()}", "--to", sink.spec,
               prefix=("env", f"NOTIFY_SOCKET={path}"))
    assert recv(5).startswith("READY=1")
    r.stop()
    assert recv(5) == "STOPPING=1"


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate is not installed")
def test_socket_activation_hands_the_named_socket_to_its_relay(relayd, sink):
    """The relay named like the socket serves on the socket systemd bound
    and does not bind its own listen line."""
    port, own = free_port(), free_port()
    conf = write_conf(f"[relay web]\nlisten = 127.0.0.1:{own}\nto = {sink.spec}\n")
    r = relayd("-c", conf, ready=False,
               prefix=("systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--fdname=web"))
    # systemd-socket-activate starts relayd when the first client comes.
    served_once_activated(port)
    r.wait_ready()
    with pytest.raises(ConnectionRefusedError):
        sink_roundtrip(tcp4(own))
    sink_roundtrip(tcp4(port))
    r.stop()
    shutil.rmtree(conf.parent, ignore_errors=True)


def activated(relayd, conf, port):
    """relayd -c conf started by systemd-socket-activate on 127.0.0.1:port
    with FileDescriptorName=web, once the first client came and was served."""
    r = relayd("-c", conf, ready=False,
               prefix=("systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--fdname=web"))
    served_once_activated(port)
    return r.wait_ready()


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate is not installed")
def test_a_section_whose_socket_systemd_passes_needs_no_listen_line(relayd, sink):
    """[relay web] without listen takes its socket from systemd, and keeps
    it across a reload that changes the section."""
    port = free_port()
    conf = write_conf(f"[relay web]\nto = {sink.spec}\n")
    r = activated(relayd, conf, port)
    conf.write_text(f"[relay web]\nto = {sink.spec}\nidle-timeout = 30\n")
    os.kill(r.pid, signal.SIGHUP)
    r.wait_log(r"reloaded: 1 relays, 0 tunnels \(0 unchanged\)")
    sink_roundtrip(tcp4(port))
    assert "takes it" not in r.log(), r.log()
    r.stop()
    shutil.rmtree(conf.parent, ignore_errors=True)


def test_a_section_without_listen_or_socket_is_refused_at_start(sink):
    conf = write_conf(f"[relay web]\nto = {sink.spec}\n")
    assert run_relayd("-c", conf, "--check").returncode == 0
    done = run_relayd("-c", conf)
    assert done.returncode == 78, done.stderr
    assert "no listen line, and systemd passed no socket named web" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    shutil.rmtree(conf.parent, ignore_errors=True)


def test_watchdog_pinged_twice_per_interval(relayd, sink, notify_socket):
    """With WatchdogSec (WATCHDOG_USEC), WATCHDOG=1 comes from the event
    loop at least twice per interval."""
    path, recv = notify_socket
    relayd("--listen", f"127.0.0.1:{free_port()}", "--to", sink.spec,
           prefix=("env", f"NOTIFY_SOCKET={path}", "WATCHDOG_USEC=400000"))
    assert recv(5).startswith("READY=1")
    t0 = time.monotonic()
    pings = [recv(2) for _ in range(4)]
    assert pings == ["WATCHDOG=1"] * 4, pings
    assert time.monotonic() - t0 < 1.5, "fewer than two pings per 0.4 s interval"
