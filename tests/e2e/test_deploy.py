"""Deployment files: `make install` and uninstall, the example config, the
LSB init script driven for real (start, status, reload, stop) against a
temporary config and pid file, the systemd units checked by systemd-analyze,
and the man pages rendered by man(1) and kept in step with --help."""

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (REPO, digest_of, free_port, kill_pid, payload, proc_stat,
                      recv_until_eof, run_relayd, sink_reply, sink_roundtrip, tcp4)

INIT_SCRIPT = REPO / "etc" / "init.d" / "relayd"
EXAMPLE_CONF = REPO / "etc" / "relayd.conf"
UNITS = REPO / "etc" / "systemd"
MAN_PAGES = [REPO / "doc" / "relayd.8", REPO / "doc" / "relayd.conf.5"]
BUILT = REPO / "relayd"         # what `make install` installs

# LSB init script exit codes (status action, then the others).
LSB_RUNNING, LSB_DEAD_PIDFILE, LSB_STOPPED = 0, 1, 3
LSB_NOT_CONFIGURED, LSB_NOT_RUNNING = 6, 7


def clean_env(**extra):
    """The environment without what an outer make passes down (its flags and
    jobserver would reach our make), plus extra."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "PREFIX",
                        "DESTDIR")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def make(*args):
    """make in the repository. -o relayd: install what is built, never
    rebuild it in the middle of a test run."""
    if not os.access(BUILT, os.X_OK):
        pytest.fail(f"{BUILT} is not built: run make", pytrace=False)
    p = subprocess.run(["make", "-s", "-C", str(REPO), "-o", "relayd", *map(str, args)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                       env=clean_env())
    assert p.returncode == 0, f"make {' '.join(map(str, args))}: exit {p.returncode}\n" \
                              f"{p.stdout}{p.stderr}"
    return p


def tree(root):
    """{relative path: octal mode} of every file under root."""
    return {str(p.relative_to(root)): oct(p.stat().st_mode & 0o7777)
            for p in sorted(Path(root).rglob("*")) if not p.is_dir()}


def unit_settings(path):
    """A unit file as {key: [values]} (sections ignored; keys repeat)."""
    out = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


# ---------------------------------------------------------------- make install

def test_install_puts_every_file_in_place(tmp_path):
    dest = tmp_path / "dest"
    make("install", f"DESTDIR={dest}", "PREFIX=/usr/local")
    assert tree(dest) == {
        "etc/init.d/relayd": "0o755",
        "etc/relayd/relayd.conf": "0o640",
        "usr/local/lib/systemd/system/relayd.service": "0o644",
        "usr/local/lib/systemd/system/relayd.socket": "0o644",
        "usr/local/sbin/relayd": "0o755",
        "usr/local/share/man/man5/relayd.conf.5": "0o644",
        "usr/local/share/man/man8/relayd.8": "0o644",
    }
    assert (dest / "usr/local/sbin/relayd").read_bytes() == BUILT.read_bytes()
    assert (dest / "etc/relayd/relayd.conf").read_text() == EXAMPLE_CONF.read_text()
    for page in MAN_PAGES:
        sect = page.suffix.lstrip(".")
        assert (dest / f"usr/local/share/man/man{sect}/{page.name}").read_text() == \
            page.read_text()
    service = unit_settings(dest / "usr/local/lib/systemd/system/relayd.service")
    assert service["ExecStart"] == ["/usr/local/sbin/relayd -c /etc/relayd/relayd.conf"]
    assert 'DAEMON:-/usr/local/sbin/relayd' in (dest / "etc/init.d/relayd").read_text()


def test_install_with_prefix_usr_names_that_binary(tmp_path):
    dest = tmp_path / "dest"
    make("install", f"DESTDIR={dest}", "PREFIX=/usr")
    files = tree(dest)
    assert files["usr/sbin/relayd"] == "0o755"
    assert files["lib/systemd/system/relayd.service"] == "0o644"
    assert files["usr/share/man/man8/relayd.8"] == "0o644"
    service = unit_settings(dest / "lib/systemd/system/relayd.service")
    assert service["ExecStart"] == ["/usr/sbin/relayd -c /etc/relayd/relayd.conf"]
    assert all(v.startswith("/usr/sbin/relayd ") for v in service["ExecReload"][:1]), service
    init = (dest / "etc/init.d/relayd").read_text()
    assert "/usr/local" not in init and "DAEMON:-/usr/sbin/relayd" in init


def test_install_keeps_an_existing_config_and_uninstall_too(tmp_path):
    dest = tmp_path / "dest"
    conf = dest / "etc/relayd/relayd.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("# mine\n")
    conf.chmod(0o600)
    make("install", f"DESTDIR={dest}", "PREFIX=/usr/local")
    assert conf.read_text() == "# mine\n" and oct(conf.stat().st_mode & 0o777) == "0o600"
    make("uninstall", f"DESTDIR={dest}", "PREFIX=/usr/local")
    assert tree(dest) == {"etc/relayd/relayd.conf": "0o600"}


def test_uninstall_removes_an_unchanged_example(tmp_path):
    dest = tmp_path / "dest"
    make("install", f"DESTDIR={dest}", "PREFIX=/usr/local")
    make("uninstall", f"DESTDIR={dest}", "PREFIX=/usr/local")
    assert tree(dest) == {}
    assert not (dest / "etc/relayd").exists()


# ---------------------------------------------------------------- example config

def copy_conf(text, tmp_path, name="relayd.conf"):
    # Mode 0640 as installed: the checkout's mode depends on the umask.
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o640)
    return path


def with_existing_user(text):
    """The example says user = relayd, which --check looks up: where that
    user does not exist (a test machine), use nobody instead."""
    import pwd
    try:
        pwd.getpwnam("relayd")
        return text
    except KeyError:
        assert re.search(r"^user = relayd$", text, re.M), "the example names no user"
        return re.sub(r"^user = relayd$", "user = nobody", text, flags=re.M)


def test_example_config_passes_check(tmp_path):
    text = EXAMPLE_CONF.read_text()
    if with_existing_user(text) != text:
        # As shipped, --check names the missing user, and nothing else.
        p = run_relayd("-c", copy_conf(text, tmp_path, "shipped.conf"), "--check")
        assert p.returncode == 67 and "relayd: no such user" in p.stderr, p
    p = run_relayd("-c", copy_conf(with_existing_user(text), tmp_path), "--check")
    assert (p.returncode, p.stdout) == (0, "configuration OK\n"), p
    # The user's chain: port 80 to 127.0.0.1:10080, in [relay web].
    web = re.search(r"^\[relay web\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    assert web, "no [relay web] section"
    assert re.search(r"^listen = 80$", web.group(1), re.M), web.group(1)
    assert re.search(r"^to = 127\.0\.0\.1:10080$", web.group(1), re.M), web.group(1)


def test_example_laptop_block_passes_check_once_uncommented(tmp_path):
    """The commented-out [tunnel laptop] is valid as the laptop's config:
    the relay section out, the tunnel in, its key files present."""
    key, known = tmp_path / "id_ed25519", tmp_path / "known_hosts"
    key.write_text("not read by --check\n")
    known.write_text("")
    out, section, seen = [], None, set()
    for line in EXAMPLE_CONF.read_text().splitlines():
        if line in ("[relay web]", "#[tunnel laptop]"):
            section = line
        if section == "[relay web]" and re.match(r"^(\[|[a-z-]+ = )", line):
            line = "#" + line
        m = re.match(r"^#(\[tunnel laptop\]|[a-z-]+ = .*)$", line)
        if m and section == "#[tunnel laptop]":
            line = m.group(1).replace("/etc/relayd/id_ed25519", str(key)) \
                             .replace("/etc/relayd/known_hosts", str(known))
            seen.add(line.split(" = ")[0])
        out.append(line)
    assert {"[tunnel laptop]", "ssh", "remote", "identity", "known-hosts",
            "keepalive"} <= seen, seen
    text = "\n".join(out) + "\n"
    assert "ssh = me@mopsled.com" in text and "remote = 10080:127.0.0.1:80" in text
    p = run_relayd("-c", copy_conf(with_existing_user(text), tmp_path, "laptop.conf"),
                   "--check")
    assert (p.returncode, p.stdout) == (0, "configuration OK\n"), (p, text)


# ---------------------------------------------------------------- init script

class SyslogSink:
    """A /dev/log of our own: a datagram socket in a directory that becomes
    /dev in a private mount namespace (with null, zero and the random
    devices bound in), so that the daemonized relayd's syslog lines reach
    the test and nothing of the machine's /dev changes."""

    LINE = re.compile(r"^<(?P<pri>\d+)>.*?relayd\[(?P<pid>\d+)\]: (?P<msg>.*)$", re.S)
    SCRIPT = ('set -e; d=$1; shift; for n in null zero full random urandom; do '
              ': > "$d/$n"; mount --bind "/dev/$n" "$d/$n"; done; '
              'mount --rbind "$d" /dev; exec "$@"')

    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(mode=0o755)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.dir / "log"))
        (self.dir / "log").chmod(0o666)     # relayd may reconnect as nobody
        self.sock.settimeout(0.1)
        self.messages = []                  # (severity, message)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(8192).decode(errors="replace").rstrip("\n")
            except socket.timeout:
                continue
            except OSError:
                return
            m = self.LINE.match(data)
            with self._lock:
                self.messages.append((int(m["pri"]) & 7, m["msg"]) if m else (-1, data))

    @property
    def prefix(self):
        return ["unshare", "--mount", "--propagation", "private",
                "sh", "-c", self.SCRIPT, "sh", str(self.dir)]

    def text(self):
        with self._lock:
            return "\n".join(f"<{sev}> {msg}" for sev, msg in self.messages)

    def wait(self, pattern, timeout=5):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if any(rx.search(msg) for _, msg in self.messages):
                    return
            time.sleep(0.02)
        pytest.fail(f"no /{pattern}/ in relayd's syslog after {timeout} s:\n{self.text()}",
                    pytrace=False)

    def worse_than_info(self):
        """Messages of severity warning or worse (err is what fatal uses)."""
        with self._lock:
            return [(sev, msg) for sev, msg in self.messages if sev <= 4]

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class InitScript:
    """etc/init.d/relayd run with DAEMON, CONF and PIDFILE in a temp dir
    (and no /etc/default/relayd of the machine)."""

    def __init__(self, workdir, conf, pidfile, daemon):
        self.env = clean_env(DAEMON=daemon, CONF=conf, PIDFILE=pidfile,
                             RELAYD_DEFAULTS=Path(workdir) / "no-defaults")
        self.pidfile = Path(pidfile)
        self.pids = set()

    def __call__(self, action, prefix=()):
        p = subprocess.run([*prefix, "/bin/sh", str(INIT_SCRIPT), action],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=45, env=self.env)
        self.note_pid()
        return p

    def note_pid(self):
        """Every pid the pid file ever named, to kill at the end."""
        try:
            self.pids.add(int(self.pidfile.read_text()))
        except (OSError, ValueError):
            pass

    def pid(self):
        self.note_pid()
        return int(self.pidfile.read_text())

    def kill_all(self):
        for pid in self.pids:
            if alive(pid):
                kill_pid(pid)


def alive(pid):
    """Running, and not a zombie waiting to be reaped."""
    try:
        return proc_stat(pid)[0] != "Z"
    except (OSError, ValueError):
        return False


def processes_with(path):
    """Pids of live processes whose command line mentions path."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(path).encode() in cmd and alive(int(entry)):
            found.append(int(entry))
    return found


def relay_conf(*relays):
    return "drain-timeout = 2\n" + "".join(
        f"[relay {name}]\nlisten = 127.0.0.1:{port}\nto = {to}\n" for name, port, to in relays)


@pytest.fixture
def init_env(sockdir, relayd_bin):
    """(InitScript, SyslogSink, conf path) in a directory the user relayd
    drops to (nobody) can read, as reloading needs. Kills what it started."""
    if not shutil.which("start-stop-daemon"):
        pytest.skip("no start-stop-daemon (Debian's dpkg provides it)")
    conf = sockdir / "relayd.conf"
    # The pid file's directory does not exist yet: start makes it, as for
    # /run/relayd after a reboot.
    script = InitScript(sockdir, conf, sockdir / "run" / "relayd.pid", relayd_bin)
    log = SyslogSink(sockdir / "dev")
    yield script, log, conf
    script.kill_all()
    log.close()


def write_conf(conf, text):
    conf.write_text(text)
    conf.chmod(0o644)


@pytest.mark.root
def test_init_script_start_status_reload_stop(init_env, backends):
    script, log, conf = init_env
    sink = backends.sink()
    port, port2 = free_port(), free_port()
    write_conf(conf, relay_conf(("web", port, sink.spec)))

    p = script("status")
    assert p.returncode == LSB_STOPPED and "not running" in p.stdout, p

    p = script("start", prefix=log.prefix)
    assert p.returncode == 0, p
    pid = script.pid()
    assert alive(pid) and proc_stat(pid)[0] in "RS", proc_stat(pid)
    assert os.path.samefile(f"/proc/{pid}/exe", script.env["DAEMON"])
    log.wait(r"^ready$")
    sink_roundtrip(tcp4(port))

    p = script("status")
    assert p.returncode == LSB_RUNNING and f"running (pid {pid})" in p.stdout, p
    p = script("start")
    assert p.returncode == 0 and script.pid() == pid, "a second start must change nothing"

    # Reload while a transfer is half done: it finishes, the new relay
    # serves, the old one still does, and nothing worse than info is logged.
    data = payload(3, 400_000)
    with tcp4(port).connect() as s:
        s.sendall(data[:200_000])
        write_conf(conf, relay_conf(("web", port, sink.spec), ("two", port2, sink.spec)))
        p = script("reload")
        assert p.returncode == 0, p
        log.wait(r"^reloaded: 2 relays, 0 tunnels \(1 unchanged\)$")
        s.sendall(data[200_000:])
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == sink_reply(digest_of(data)), "transfer cut by the reload"
    sink_roundtrip(tcp4(port2))
    sink_roundtrip(tcp4(port))
    assert script.pid() == pid and alive(pid)
    assert log.worse_than_info() == [], log.text()

    # A broken file: reload refuses it before signalling, relayd serves on.
    write_conf(conf, relay_conf(("web", port, sink.spec)) + "oops\n")
    p = script("reload")
    assert p.returncode == LSB_NOT_CONFIGURED and f"{conf}:5: syntax error" in p.stderr, p
    sink_roundtrip(tcp4(port2))
    assert log.worse_than_info() == [], log.text()

    p = script("stop")
    assert p.returncode == 0, p
    assert not alive(pid), f"relayd {pid} still running after stop"
    assert processes_with(conf) == [], "a relayd of this config is left"
    assert not script.pidfile.exists(), "stop leaves the pid file"
    with pytest.raises(ConnectionRefusedError):
        tcp4(port).connect()
    p = script("status")
    assert p.returncode == LSB_STOPPED, p
    p = script("stop")
    assert p.returncode == 0, "stopping a stopped relayd is not an error (LSB)"
    p = script("reload")
    assert p.returncode == LSB_NOT_RUNNING, p


@pytest.mark.root
def test_init_script_refuses_to_start_a_broken_config(init_env):
    script, log, conf = init_env
    write_conf(conf, "[relay web]\nlisten = 127.0.0.1:1\n")
    p = script("start")
    assert p.returncode == LSB_NOT_CONFIGURED, p
    assert f"{conf}:1: [relay web]: missing to" in p.stderr, p
    assert not script.pidfile.exists() and processes_with(conf) == []


@pytest.mark.root
def test_init_script_restart_gives_a_new_process(init_env, sink):
    script, log, conf = init_env
    port = free_port()
    write_conf(conf, relay_conf(("web", port, sink.spec)))
    assert script("start", prefix=log.prefix).returncode == 0
    old = script.pid()
    p = script("restart", prefix=log.prefix)
    assert p.returncode == 0, p
    new = script.pid()
    assert new != old and not alive(old) and alive(new)
    sink_roundtrip(tcp4(port))
    assert script("stop").returncode == 0
    assert not alive(new)


def test_init_script_environment_beats_the_defaults_file(tmp_path):
    """PIDFILE from /etc/default/relayd (here a temp file) is used unless the
    environment sets it; a pid file naming no process is status 1."""
    if not shutil.which("start-stop-daemon"):
        pytest.skip("no start-stop-daemon (Debian's dpkg provides it)")
    defaults = tmp_path / "default"
    from_file, from_env = tmp_path / "file.pid", tmp_path / "env.pid"
    defaults.write_text(f"PIDFILE={from_file}\n")
    dead = subprocess.Popen(["true"])
    dead.wait()
    for f in (from_file, from_env):
        f.write_text(f"{dead.pid}\n")
    env = clean_env(RELAYD_DEFAULTS=defaults, DAEMON=str(BUILT))
    env.pop("PIDFILE", None)
    for extra, want in (({}, from_file), ({"PIDFILE": str(from_env)}, from_env)):
        p = subprocess.run(["/bin/sh", str(INIT_SCRIPT), "status"], capture_output=True,
                           text=True, timeout=10, env={**env, **extra})
        assert p.returncode == LSB_DEAD_PIDFILE and str(want) in p.stdout + p.stderr, p


def test_init_script_is_posix_sh_with_an_lsb_header():
    text = INIT_SCRIPT.read_text()
    assert text.startswith("#!/bin/sh\n")
    header = re.search(r"^### BEGIN INIT INFO\n(.*?)^### END INIT INFO$", text, re.M | re.S)
    assert header, "no LSB header"
    for field in ("Provides", "Required-Start", "Required-Stop", "Default-Start",
                  "Default-Stop", "Short-Description"):
        assert re.search(rf"^# {field}:\s+\S", header.group(1), re.M), field
    for action in ("start", "stop", "restart", "reload", "force-reload", "status"):
        assert re.search(rf"^\s*(\S+\|)*{re.escape(action)}(\|\S+)*\)$", text, re.M), action
    assert os.access(INIT_SCRIPT, os.X_OK)
    if shutil.which("dash"):
        p = subprocess.run(["dash", "-n", str(INIT_SCRIPT)], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    if shutil.which("shellcheck"):
        p = subprocess.run(["shellcheck", "-s", "sh", str(INIT_SCRIPT)], capture_output=True,
                           text=True)
        assert p.returncode == 0, p.stdout


def test_init_script_stop_waits_longer_than_the_drain():
    """The default stop schedule outlasts the default drain timeout (10 s)."""
    m = re.search(r"STOP_RETRY:-TERM/(\d+)/KILL/\d+", INIT_SCRIPT.read_text())
    assert m and int(m.group(1)) > 10


# ---------------------------------------------------------------- systemd units

def test_units_pass_systemd_analyze_verify(tmp_path):
    """The installed units, ExecStart pointing at the built relayd (verify
    wants the binary to exist); Documentation= resolved against the
    installed man pages when man is there."""
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("no systemd-analyze (apt-get install systemd)")
    dest = tmp_path / "dest"
    make("install", f"DESTDIR={dest}", "PREFIX=/usr/local")
    units = tmp_path / "units"
    units.mkdir()
    for name in ("relayd.service", "relayd.socket"):
        text = (dest / "usr/local/lib/systemd/system" / name).read_text()
        (units / name).write_text(text.replace("/usr/local/sbin/relayd", str(BUILT)))
    args = [analyze, "verify"]
    env = clean_env(SYSTEMD_LOG_LEVEL="notice")
    if shutil.which("man"):
        env["MANPATH"] = str(dest / "usr/local/share/man")
    else:
        args.insert(1, "--man=no")
    p = subprocess.run([*args, str(units / "relayd.service"), str(units / "relayd.socket")],
                       capture_output=True, text=True, timeout=60, env=env)
    assert (p.returncode, p.stdout + p.stderr) == (0, ""), p


def test_service_unit_is_notify_hardened_and_outlasts_the_drain():
    s = unit_settings(UNITS / "relayd.service")
    want = {
        "Type": ["notify"], "User": ["relayd"], "Group": ["relayd"],
        "AmbientCapabilities": ["CAP_NET_BIND_SERVICE"],
        "CapabilityBoundingSet": ["CAP_NET_BIND_SERVICE"],
        "NoNewPrivileges": ["yes"], "ProtectSystem": ["strict"], "ProtectHome": ["yes"],
        "PrivateTmp": ["yes"], "PrivateDevices": ["yes"], "ProtectKernelTunables": ["yes"],
        "ProtectKernelModules": ["yes"], "ProtectKernelLogs": ["yes"],
        "ProtectControlGroups": ["yes"],
        "RestrictAddressFamilies": ["AF_INET AF_INET6 AF_UNIX"],
        "RestrictNamespaces": ["yes"], "LockPersonality": ["yes"],
        "MemoryDenyWriteExecute": ["yes"], "SystemCallArchitectures": ["native"],
        "Restart": ["on-failure"], "WatchdogSec": ["30"], "KillMode": ["mixed"],
        "ExecStart": ["/usr/local/sbin/relayd -c /etc/relayd/relayd.conf"],
    }
    assert {k: s.get(k) for k in want} == want
    assert s["ExecReload"][-1] == "/bin/kill -HUP $MAINPID", s["ExecReload"]
    assert int(s["TimeoutStopSec"][0]) > 10, "TimeoutStopSec must exceed the drain timeout"
    assert "DynamicUser" not in s
    sock = unit_settings(UNITS / "relayd.socket")
    assert (sock["ListenStream"], sock["FileDescriptorName"], sock["Service"]) == \
        (["80"], ["web"], ["relayd.service"])
    # The socket's name is a relay of the example config.
    assert re.search(r"^\[relay web\]$", EXAMPLE_CONF.read_text(), re.M)


# ---------------------------------------------------------------- man pages

def man_render(page, *opts):
    if not shutil.which("man"):
        pytest.skip("no man (apt-get install man-db groff-base)")
    p = subprocess.run(["man", *opts, "-l", str(page)], capture_output=True, text=True,
                       timeout=30, env=clean_env(MANWIDTH=80, LC_ALL="C.UTF-8"))
    return p


@pytest.mark.parametrize("page", MAN_PAGES, ids=lambda p: p.name)
def test_man_page_renders_without_warnings(page):
    p = man_render(page, "--warnings")
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    p = man_render(page)
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    text = p.stdout
    for head in ("NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"):
        assert re.search(rf"^{head}$", text, re.M), f"no {head} in {page.name}"
    assert max(map(len, text.splitlines())) <= 80, "a line wider than MANWIDTH"


def roff_text(page):
    """A page's source with escapes for dashes, fonts and no-break removed."""
    text = page.read_text()
    return re.sub(r"\\f[BIRP]|\\%|\\&", "", text.replace("\\-", "-"))


def help_options():
    """(long option, short option or None) for each line of --help."""
    p = run_relayd("--help")
    assert p.returncode == 0, p
    found = re.findall(r"^\s+(?:-(\w), )?--([a-z][a-z-]*)", p.stdout, re.M)
    assert len(found) > 20, p.stdout
    return [(long, short or None) for short, long in found]


def tagged_lines(page):
    """The first line of each .TP entry of a page, dashes and fonts plain."""
    lines = roff_text(page).splitlines()
    return [b for a, b in zip(lines, lines[1:]) if a == ".TP"]


def test_relayd_8_describes_every_option_of_help():
    tags = tagged_lines(MAN_PAGES[0])
    missing = []
    for long, short in help_options():
        lead = rf'-{short} ", " ' if short else ""
        if not any(re.match(rf"^\.B[IR]? {lead}--{long}(?![\w-])", t) for t in tags):
            missing.append(f"-{short}, --{long}" if short else f"--{long}")
    assert missing == [], f"relayd.8 has no entry for {missing}"


def test_relayd_conf_5_describes_every_config_key():
    tags = tagged_lines(MAN_PAGES[1])
    not_keys = {"config", "check", "status", "json", "help", "version"}
    missing = [long for long, _ in help_options() if long not in not_keys
               and not any(re.match(rf"^\.BI? {long}( |$)", t) for t in tags)]
    assert missing == [], f"relayd.conf.5 does not describe keys {missing}"
