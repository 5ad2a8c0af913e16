"""The config file: relays and tunnels in named sections whose keys are the
long options, every error reported as FILE:LINE, --check, and the process
options (log level, drain, daemon with a pid file)."""

import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest

from conftest import (echo_roundtrip, free_port, fwd, recv_until_eof, run_relayd,
                      sink_roundtrip, sink_roundtrip_when_up, tcp4)

EX_CONFIG = 78


def write(tmp_path, text, name="relayd.conf", mode=0o600):
    path = Path(tmp_path) / name
    path.write_text(text)
    path.chmod(mode)
    return path


def test_two_relays_and_a_tunnel(tmp_path, relayd, sshd, backends):
    sink = backends.sink()
    echo = backends.echo()
    p1, p2, rport = free_port(), free_port(), free_port()
    conf = write(tmp_path, f"""\
# global part
log-level = info
drain-timeout = 2

[relay web]
listen = 127.0.0.1:{p1}
to = {sink.spec}

[relay echo]
listen = 127.0.0.1:{p2}   ; a comment after the value
to = {echo.spec}
connect-timeout = 5

[tunnel laptop]
ssh = {sshd.dest()}
remote = {rport}:{echo.spec}
identity = {sshd.keys["ed25519"]}
known-hosts = {sshd.write_known_hosts("good")}
keepalive = 5
""")
    r = relayd("-c", conf)
    r.wait_log(rf"forward -R {rport}:{re.escape(echo.spec)} up on port {rport}", timeout=15)
    sink_roundtrip(tcp4(p1))
    with tcp4(p2).connect() as s:
        echo_roundtrip(s)
    with fwd(rport).connect() as s:
        echo_roundtrip(s)
    r.stop()


def test_every_error_reported_with_its_line(tmp_path):
    conf = write(tmp_path, """\
user = nobody
listen = 80

[relay good]
listen = 127.0.0.1:18080
to = 127.0.0.1:9

[relay broken]
listen = 0
to = nonsense
bogus-key = 1
fork = maybe

[tunnel t1]
remote = not-a-forward
[wat]
a line without equals
[relay empty]
""")
    p = run_relayd("-c", conf)
    assert p.returncode == EX_CONFIG, p
    lines = p.stderr.splitlines()
    want = {
        2: r'"listen" belongs in the \[relay NAME\]',
        9: r"--listen 0: port 0 out of range",
        10: r"--to nonsense",
        11: r'unknown key "bogus-key"',
        12: r'fork: "maybe" is not yes or no',
        15: r"-R not-a-forward",
        16: r"bad section \[wat\]",
        17: r"syntax error",
        18: r"\[relay empty\]: missing to",
    }
    for line, pattern in want.items():
        hits = [l for l in lines if l.startswith(f"relayd: {conf}:{line}: ")]
        assert hits and re.search(pattern, hits[0]), \
            f"line {line}: wanted /{pattern}/ in {conf}:{line}; stderr:\n{p.stderr}"
    assert lines[-1] == f"relayd: {conf}: {len(lines) - 1} errors", p.stderr


def test_check_says_ok_and_binds_nothing(tmp_path):
    port = free_port()
    conf = write(tmp_path, f"[relay a]\nlisten = 127.0.0.1:{port}\nto = 127.0.0.1:9\n")
    p = run_relayd("-c", conf, "--check")
    assert (p.returncode, p.stdout) == (0, "configuration OK\n"), p
    p = run_relayd("--listen", f"127.0.0.1:{port}", "--to", "127.0.0.1:9", "--check")
    assert (p.returncode, p.stdout) == (0, "configuration OK\n"), p


def test_check_finds_duplicate_listeners_and_missing_keys(tmp_path):
    conf = write(tmp_path, "[relay a]\nlisten = 127.0.0.1:1234\nto = 127.0.0.1:9\n"
                           "[relay b]\nlisten = 127.0.0.1:1234\nto = 127.0.0.1:9\n")
    p = run_relayd("-c", conf, "--check")
    assert p.returncode == EX_CONFIG and "127.0.0.1:1234 is given twice" in p.stderr, p
    conf = write(tmp_path, "[tunnel t]\nssh = h\nremote = 1:h:2\n"
                           f"identity = {tmp_path}/no-such-key\n", name="t.conf")
    p = run_relayd("-c", conf, "--check")
    assert p.returncode == 66 and "no-such-key" in p.stderr, p


@pytest.mark.root
def test_group_writable_config_refused_as_root(tmp_path):
    conf = write(tmp_path, "[relay a]\nlisten = 127.0.0.1:1234\nto = 127.0.0.1:9\n",
                 mode=0o664)
    p = run_relayd("-c", conf, "--check")
    assert p.returncode == EX_CONFIG and "group or others" in p.stderr, p


def test_file_and_command_line_relays_do_not_mix(tmp_path):
    conf = write(tmp_path, "[relay a]\nlisten = 127.0.0.1:1234\nto = 127.0.0.1:9\n")
    p = run_relayd("-c", conf, "--listen", "1235", "--to", "127.0.0.1:9")
    assert p.returncode == 64 and "not both" in p.stderr, p


def test_missing_config_file(tmp_path):
    p = run_relayd("-c", tmp_path / "nope.conf")
    assert p.returncode == EX_CONFIG and "nope.conf" in p.stderr, p


def test_log_level_warning_hides_connection_lines(tmp_path, relayd, sink):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", sink.spec, "--log-level", "warning",
               ready=False)
    sink_roundtrip_when_up(tcp4(port), r)
    r.stop()
    assert " conn " not in r.log(), r.log()


def test_daemon_writes_pidfile_and_stops_on_sigterm(tmp_path, sink):
    port = free_port()
    pidfile = tmp_path / "relayd.pid"
    p = run_relayd("--listen", f"127.0.0.1:{port}", "--to", sink.spec, "--daemon",
                   "--pidfile", pidfile, "--user", "nobody" if os.geteuid() == 0 else
                   os.environ.get("USER", "root"))
    assert p.returncode == 0, p
    deadline = time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline, "no pid file"
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    try:
        sink_roundtrip(tcp4(port))
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}").exists() and \
                Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
            assert time.monotonic() < deadline, "daemon still running after SIGTERM"
            time.sleep(0.05)
    finally:
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def open_dir():
    """A directory the user relayd drops to (nobody) may read: pytest's own
    temp dirs are root's alone, and a reload reads the file after the
    drop."""
    import shutil
    import tempfile
    path = Path(tempfile.mkdtemp(prefix="relayd-conf-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def relay_section(name, listen, to):
    return f"[relay {name}]\nlisten = {listen}\nto = {to}\n"


@pytest.mark.root
def test_sighup_adds_low_port_removes_another_keeps_transfer(open_dir, relayd, backends,
                                                             low_port):
    """After the privilege drop, a reload binds a new relay on a port below
    1024 (with the kept CAP_NET_BIND_SERVICE), stops a removed one, and a
    long transfer on the unchanged relay finishes byte for byte."""
    from conftest import Background, send_stream, sink_reply
    sink = backends.sink()
    keep, gone, low = free_port(), free_port(), low_port
    # Readable by the user relayd becomes (nobody), or it could not reload.
    conf = write(open_dir, relay_section("keep", f"127.0.0.1:{keep}", sink.spec) +
                 relay_section("gone", f"127.0.0.1:{gone}", sink.spec), mode=0o644)
    r = relayd("-c", conf)
    assert r.status()["Uid"].split()[0] != "0"
    with tcp4(keep).connect() as s:
        def upload():
            sent = send_stream(s, 5, 48 << 20)
            s.shutdown(socket.SHUT_WR)
            return sent
        up = Background(upload)
        time.sleep(0.2)
        conf.write_text(relay_section("keep", f"127.0.0.1:{keep}", sink.spec) +
                        relay_section("low", f"127.0.0.1:{low}", sink.spec))
        os.kill(r.pid, signal.SIGHUP)
        r.wait_log(r"reloaded: 2 relays, 0 tunnels \(1 unchanged\)", timeout=10)
        sent = up.result()
        assert recv_until_eof(s) == sink_reply(sent), "the transfer did not survive the reload"
    sink_roundtrip(tcp4(low))
    with pytest.raises(ConnectionRefusedError):
        sink_roundtrip(tcp4(gone))
    r.stop()


def test_sighup_with_broken_config_changes_nothing(open_dir, relayd, sink):
    port = free_port()
    conf = write(open_dir, relay_section("a", f"127.0.0.1:{port}", sink.spec), mode=0o644)
    r = relayd("-c", conf)
    conf.write_text(relay_section("a", f"127.0.0.1:{port}", sink.spec) + "oops\n")
    os.kill(r.pid, signal.SIGHUP)
    r.wait_log(r"reload rejected: the running configuration stays", timeout=5)
    r.wait_log(rf"{re.escape(str(conf))}:4: syntax error", timeout=0)
    sink_roundtrip(tcp4(port))
    r.stop()


def test_sigusr1_logs_status(tmp_path, relayd, sink):
    port = free_port()
    conf = write(tmp_path, relay_section("web", f"127.0.0.1:{port}", sink.spec))
    r = relayd("-c", conf)
    sink_roundtrip(tcp4(port), nbytes=1000)
    os.kill(r.pid, signal.SIGUSR1)
    r.wait_log(rf"status: relay web: listening on 127\.0\.0\.1:{port}; 0 active, 1 total, "
               r"0 rejected, in=1000 out=\d+", timeout=5)
    r.stop()


def test_status_over_the_control_socket(tmp_path, relayd, sshd, sink):
    """relayd --status prints each relay and tunnel, with connection counts
    and the port the server picked for -R 0."""
    port = free_port()
    control = tmp_path / "control.sock"
    conf = write(tmp_path, f"""\
control = {control}

[relay web]
listen = 127.0.0.1:{port}
to = {sink.spec}

[tunnel laptop]
ssh = {sshd.dest()}
remote = 0:{sink.spec}
identity = {sshd.keys["ed25519"]}
known-hosts = {sshd.write_known_hosts("good")}
""")
    r = relayd("-c", conf)
    r.wait_log(rf"forward -R 0:{re.escape(sink.spec)} up on port (\d+)", timeout=15)
    rport = int(re.search(r"up on port (\d+)", r.log()).group(1))
    sink_roundtrip(tcp4(port), nbytes=2000)
    p = run_relayd("--status", "--control", control)
    assert p.returncode == 0, p
    assert re.search(rf"^relay web: listening on 127\.0\.0\.1:{port}; 0 active, 1 total, "
                     r"0 rejected, in=2000 out=\d+ spliced=\d+$", p.stdout, re.M), p.stdout
    assert re.search(r"^tunnel laptop root@127\.0\.0\.1:\d+: up, 0 reconnects, \d+ packets "
                     r"sent in \d+ writes$", p.stdout, re.M), p.stdout
    assert re.search(rf"^tunnel laptop forward -R 0:{re.escape(sink.spec)}: up on port "
                     rf"{rport}; 0 active", p.stdout, re.M), p.stdout
    r.stop()


def test_status_without_a_running_relayd(tmp_path):
    p = run_relayd("--status", "--control", tmp_path / "nobody-here.sock")
    assert p.returncode == 69 and "cannot reach relayd" in p.stderr, p


def test_check_finds_an_unknown_user(tmp_path):
    conf = write(tmp_path, "user = no-such-user-xyz\n"
                           "[relay a]\nlisten = 127.0.0.1:1234\nto = 127.0.0.1:9\n")
    p = run_relayd("-c", conf, "--check")
    assert p.returncode == 67 and "no-such-user-xyz" in p.stderr, p
