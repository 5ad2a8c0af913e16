"""The tunnels run in processes of their own: a keeper and the worker it
forks, both without any capability and under the sandbox, holding none of
the relay's listeners; a worker that dies is started again, and nothing is
left behind when relayd stops."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (RELAYD, SETPRIV_NOBODY, assert_dropped, children_of, forward_up_re,
                      free_port, fwd, proc_stat, proc_status, sink_roundtrip, tcp4)

pytestmark = pytest.mark.root

NOBODY = "65534"
NOTHING = {
    "CapInh": "0000000000000000",
    "CapPrm": "0000000000000000",
    "CapEff": "0000000000000000",
    "CapBnd": "0000000000000000",
    "CapAmb": "0000000000000000",
    "NoNewPrivs": "1",
    "Seccomp": "2",
}


def tunnel_pids(relayd_pid):
    """(keeper, worker): the relay process's one child and its one child."""
    keepers = [pid for pid, _ in children_of(relayd_pid)]
    assert len(keepers) == 1, f"children of the relay process: {keepers}"
    workers = [pid for pid, _ in children_of(keepers[0])]
    assert len(workers) == 1, f"children of the keeper: {workers}"
    return keepers[0], workers[0]


def started_tunnel_pids(relayd_pid, timeout=10):
    """tunnel_pids once the keeper has forked its first worker ("ready" is
    logged by the relay process, which may be before that)."""
    deadline = time.monotonic() + timeout
    while True:
        keepers = children_of(relayd_pid)
        if len(keepers) == 1 and len(children_of(keepers[0][0])) == 1:
            return tunnel_pids(relayd_pid)
        assert time.monotonic() < deadline, f"children: {keepers}"
        time.sleep(0.05)


def listening_inodes(port):
    """Socket inodes listening on TCP port (IPv4 and IPv6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    found.add(fields[9])
    return found


def socket_inodes(pid):
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


def test_tunnel_processes_have_nothing(tunnel, sink, low_port):
    rport = free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}", "--listen", f"127.0.0.1:{low_port}",
               "--to", sink.spec)
    sink_roundtrip(fwd(rport))
    relay = t.relayd.pid
    assert_dropped(proc_status(relay), int(NOBODY), int(NOBODY))
    assert proc_status(relay)["Seccomp"] == "2"
    for pid in tunnel_pids(relay):
        st = proc_status(pid)
        got = {k: st.get(k) for k in NOTHING}
        assert got == NOTHING, f"process {pid}: {got}"
        assert st["Uid"].split() == [NOBODY] * 4, f"Uid: {st['Uid']}"
    # The relay's listener is the relay process's alone.
    relay_listener = listening_inodes(low_port)
    assert relay_listener and relay_listener <= socket_inodes(relay)
    for pid in tunnel_pids(relay):
        assert not relay_listener & socket_inodes(pid), f"process {pid} holds it"
    sink_roundtrip(tcp4(low_port))


def test_killed_worker_is_started_again(tunnel, sink):
    rport, lport = free_port(), free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}", "-L", f"{lport}:{sink.spec}")
    sink_roundtrip(fwd(lport))
    keeper, worker = tunnel_pids(t.relayd.pid)
    os.kill(worker, signal.SIGKILL)
    t.relayd.wait_log(rf"^relayd: tunnel process {worker} killed by signal 9; "
                      r"starting it again in 1 s$")
    t.wait_up("R", f"{rport}:{sink.spec}", n=2)
    # The -L listener was bound once, before the first worker, and is the
    # keeper's: the new worker serves it as it was.
    sink_roundtrip(fwd(rport), seed=2)
    sink_roundtrip(fwd(lport), seed=3)
    again = tunnel_pids(t.relayd.pid)
    assert again[0] == keeper and again[1] != worker
    assert proc_status(again[1])["CapBnd"] == "0000000000000000"


def test_status_and_sigterm_reach_the_tunnels(tunnel, sink, tmp_path):
    control = tmp_path / "control"
    rport = free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}", "--control", control)
    sink_roundtrip(fwd(rport))
    out = subprocess.run([str(RELAYD), "--status", "--control", str(control)],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out
    assert f"-R {rport}:{sink.spec}" in out.stdout, out.stdout
    pids = tunnel_pids(t.relayd.pid)
    t.relayd.stop()
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"process {pid} left behind"


def wait_gone(pids, timeout=10):
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if os.path.exists(f"/proc/{p}")]):
        assert time.monotonic() < deadline, f"processes {left} left behind"
        time.sleep(0.05)


def test_relay_process_killed_leaves_no_tunnel_process(tunnel, sink):
    rport = free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}")
    pids = started_tunnel_pids(t.relayd.pid)
    t.relayd.expected_exit = True
    os.kill(t.relayd.pid, signal.SIGKILL)
    t.relayd.proc.wait()
    wait_gone(pids)


@pytest.fixture
def open_dir():
    """A directory nobody may read: a reload reads the config and the keys
    after the drop."""
    path = Path(tempfile.mkdtemp(prefix="relayd-tunproc-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def tunnel_section(name, sshd, remote, keydir):
    key = keydir / f"{name}.key"
    hosts = keydir / f"{name}.known_hosts"
    shutil.copy(sshd.keys["ed25519"], key)
    shutil.copy(sshd.write_known_hosts("good"), hosts)
    key.chmod(0o644)
    hosts.chmod(0o644)
    return (f"[tunnel {name}]\nssh = {sshd.dest()}\nremote = {remote}\n"
            f"identity = {key}\nknown-hosts = {hosts}\n")


def test_restarted_worker_keeps_what_a_reload_added(relayd, sshd, sink, open_dir):
    r1, r2 = free_port(), free_port()
    conf = open_dir / "relayd.conf"
    first = tunnel_section("a", sshd, f"{r1}:{sink.spec}", open_dir)
    conf.write_text(first)
    conf.chmod(0o644)
    r = relayd("-c", conf)
    r.wait_log(rf"forward -R {r1}:\S+ up on port {r1}$", timeout=15)
    conf.write_text(first + tunnel_section("b", sshd, f"{r2}:{sink.spec}", open_dir))
    os.kill(r.pid, signal.SIGHUP)
    r.wait_log(rf"forward -R {r2}:\S+ up on port {r2}$", timeout=15)
    _, worker = tunnel_pids(r.pid)
    os.kill(worker, signal.SIGKILL)
    r.wait_log(r"^relayd: tunnels restarted: reading .* again$", timeout=15)
    deadline = time.monotonic() + 15
    for port in (r2, r1):
        while len(re.findall(rf"forward -R {port}:\S+ up on port {port}$", r.log(),
                             re.M)) < 2:
            assert time.monotonic() < deadline, f"the forward to {port} did not come back"
            time.sleep(0.05)
    sink_roundtrip(fwd(r2))
    sink_roundtrip(fwd(r1), seed=2)
    r.stop()


def cpu_ticks(pid):
    st = proc_stat(pid)
    return int(st[11]) + int(st[12])


def test_gone_channel_costs_no_cpu(relayd, echo, tmp_path):
    """Once the tunnels' processes have stopped, their end of the channel
    reads as closed: a relay process still draining must stop watching it,
    not spin on it."""
    port = free_port()
    conf = tmp_path / "relayd.conf"
    conf.write_text(f"drain-timeout = 30\n[relay a]\nlisten = 127.0.0.1:{port}\n"
                    f"to = {echo.spec}\n")
    conf.chmod(0o600)
    r = relayd("-c", conf)
    pids = started_tunnel_pids(r.pid)
    with tcp4(port).connect() as c:
        c.sendall(b"x")
        assert c.recv(1) == b"x"
        os.kill(r.pid, signal.SIGTERM)
        r.wait_log(r"draining 1 connections")
        wait_gone(pids)
        before = cpu_ticks(r.pid)
        time.sleep(2)
        spent = cpu_ticks(r.pid) - before
        assert spent < 20, f"{spent} clock ticks in 2 s of an idle drain"
        c.sendall(b"y")
        assert c.recv(1) == b"y"
    r.expected_exit = True
    assert r.proc.wait(10) == 0, r.describe()


def test_worker_draining_without_relay_process_costs_no_cpu(tunnel, echo):
    """The relay process killed, the worker drains its forwards with the
    relay's end of the channel closed: it must stop watching it. Two event
    loops: the keeper gets its parent-death signal again for each relay
    thread it is handed on to as they die, and must stop the worker only
    once (a second SIGTERM would cut the drain short)."""
    lport = free_port()
    t = tunnel("-L", f"{lport}:{echo.spec}", "--drain-timeout", "30", "--workers", "2")
    pids = started_tunnel_pids(t.relayd.pid)
    with fwd(lport).connect() as c:
        c.sendall(b"x")
        assert c.recv(1) == b"x"
        t.relayd.expected_exit = True
        os.kill(t.relayd.pid, signal.SIGKILL)
        t.relayd.proc.wait()
        deadline = time.monotonic() + 10
        while proc_status(pids[0])["PPid"] == str(t.relayd.pid):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        before = cpu_ticks(pids[1])
        time.sleep(2)
        spent = cpu_ticks(pids[1]) - before
        assert spent < 20, f"{spent} clock ticks in 2 s of an idle drain"
        c.sendall(b"y")
        assert c.recv(1) == b"y"
    wait_gone(pids)


def test_reload_frees_the_port_of_a_dropped_local_forward(relayd, sshd, sink, open_dir):
    """A -L port bound at start is held by the keeper too (a restarted
    worker serves it): a reload that drops or changes that tunnel must let
    the port go, not leave a listener that nobody serves, and a changed
    tunnel must be able to bind it again."""
    lport, rport = free_port(), free_port()
    conf = open_dir / "relayd.conf"
    local = tunnel_section("a", sshd, f"{lport}:{sink.spec}", open_dir).replace(
        "remote = ", "local = ")
    remote = tunnel_section("b", sshd, f"{rport}:{sink.spec}", open_dir)
    conf.write_text(local + remote)
    conf.chmod(0o644)
    r = relayd("-c", conf)
    r.wait_log(forward_up_re("L", f"{lport}:{sink.spec}"), timeout=15)
    sink_roundtrip(fwd(lport))
    # Changed (a keepalive added): the new tunnel binds the same port.
    conf.write_text(local + "keepalive = 7\n" + remote)
    os.kill(r.pid, signal.SIGHUP)
    r.wait_log(r"reloaded: 0 relays, 2 tunnels \(1 unchanged\)$", timeout=15)
    assert "not started" not in r.log(), r.describe()
    deadline = time.monotonic() + 15
    while len(re.findall(forward_up_re("L", f"{lport}:{sink.spec}"), r.log())) < 2:
        assert time.monotonic() < deadline, r.describe()
        time.sleep(0.05)
    sink_roundtrip(fwd(lport), seed=2)
    # Dropped: nothing listens on the port any more.
    conf.write_text(remote)
    os.kill(r.pid, signal.SIGHUP)
    r.wait_log(r"reloaded: 0 relays, 1 tunnels \(1 unchanged\)$", timeout=15)
    assert not listening_inodes(lport), "a dropped -L port still listens"
    with pytest.raises(ConnectionRefusedError):
        fwd(lport).connect().close()
    sink_roundtrip(fwd(rport), seed=3)
    r.stop()


def test_worker_stopped_by_another_hand_is_a_failure(tunnel, sink):
    """A worker that ends cleanly although relayd was not asked to stop
    (someone sent it SIGTERM) stops relayd with EX_SOFTWARE, not 0: a
    service manager restarts on failure only."""
    rport = free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}")
    keeper, worker = started_tunnel_pids(t.relayd.pid)
    t.relayd.expected_exit = True
    os.kill(worker, signal.SIGTERM)
    assert t.relayd.proc.wait(10) == 70, t.relayd.describe()
    assert "the tunnels' process ended: stopping" in t.relayd.log()
    wait_gone([keeper, worker])


def test_no_process_of_the_user_reads_another(relayd, sink, open_dir):
    """The relay process and the tunnels' run as one user. Started without
    root (systemd's User=, where nothing made them undumpable), none of
    them may open another's memory: a process of that user, standing for
    whichever of them an exploited bug took over, cannot."""
    port = free_port()
    conf = open_dir / "relayd.conf"
    conf.write_text(f"[relay a]\nlisten = 127.0.0.1:{port}\nto = {sink.spec}\n")
    conf.chmod(0o644)
    r = relayd("-c", conf, as_nobody=True)
    keeper, worker = started_tunnel_pids(r.pid)
    for pid in (r.pid, keeper, worker):
        peek = subprocess.run(
            [*SETPRIV_NOBODY, "/usr/bin/python3", "-c",
             f"open('/proc/{pid}/mem', 'rb').close()"],
            capture_output=True, text=True, timeout=10)
        assert peek.returncode != 0 and "PermissionError" in peek.stderr, \
            f"process {pid}: {peek}"
    sink_roundtrip(tcp4(port))


def test_keeper_killed_takes_the_worker_and_stops_relayd(tunnel, sink):
    """The worker dies with its keeper (PDEATHSIG), and relayd, left
    without its tunnels, stops with EX_SOFTWARE."""
    rport = free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}")
    keeper, worker = started_tunnel_pids(t.relayd.pid)
    t.relayd.expected_exit = True
    os.kill(keeper, signal.SIGKILL)
    assert t.relayd.proc.wait(10) == 70, t.relayd.describe()
    assert f"tunnel keeper {keeper} killed by signal 9" in t.relayd.log()
    wait_gone([worker])
