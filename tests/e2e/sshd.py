"""A private OpenSSH server for the tunnel tests: the machine's own sshd
binary run in the foreground on 127.0.0.1 (and ::1 on request) at a free
port, with its own host key, config, authorized keys and log in a private
directory. It can drop its sessions, freeze, stop and come back on the same
port, which is what the tunnel's reconnection is tested against. Processes
are only ever signalled by PID: the listener, which we started, and the
session processes it forked, found in /proc."""

import signal
import subprocess
import time
from pathlib import Path

from harness.procs import children_of, kill_pid, proc_stat

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")     # sshd refuses to start without it
START_TIMEOUT = 5
PASSPHRASE = "correct horse battery staple"

# Options newer sshds know and that we want when they do: each is kept only
# if `sshd -t` accepts it (9.2 has no PerSourcePenalties, 9.8 penalises the
# tests' quick reconnects without "no").
OPTIONAL = ("PerSourcePenalties no",)
_accepted_optional = None


def keygen(path, kind="ed25519", passphrase=""):
    """A new key pair at path and path.pub; returns path."""
    path = Path(path)
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", path.name,
                    "-f", str(path)], check=True, capture_output=True)
    return path


def fingerprint(pub):
    """The SHA256:... fingerprint of a public key file, as ssh-keygen -l shows it."""
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub)],
                         check=True, capture_output=True, text=True).stdout
    return next(w for w in out.split() if w.startswith("SHA256:"))


def public_key(pub):
    """'TYPE BASE64' of a public key file, without its comment."""
    kind, blob = Path(pub).read_text().split()[:2]
    return f"{kind} {blob}"


def descendants(pid):
    """PIDs of every process under pid (children first, then theirs)."""
    found, todo = [], [pid]
    while todo:
        kids = [k for k, _ in children_of(todo.pop())]
        found += kids
        todo += kids
    return found


def gone(pid):
    """True once pid has exited: no longer in /proc, or a zombie (its
    descriptors, and so its TCP connections, are closed)."""
    try:
        return proc_stat(pid)[0] in ("Z", "X")
    except (OSError, ValueError):
        return True


def wait_gone(pids, timeout=5):
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if not gone(p)]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


def ensure_privsep_dir():
    """Creates /run/sshd (0755) if missing; returns True if it did."""
    try:
        PRIVSEP_DIR.mkdir(mode=0o755)
    except FileExistsError:
        return False
    PRIVSEP_DIR.chmod(0o755)
    return True


class Sshd:
    """One sshd listener, started by start(). Client keys that it accepts are
    in self.keys ("ed25519", "ecdsa", "passphrase" (with PASSPHRASE, also in
    self.passphrase_file)), and any that authorize() adds; self.stranger is
    a key it does not know. Its one host key is host_key_type (ed25519 or
    rsa); config lines come first in its sshd_config, so they win."""

    def __init__(self, workdir, port, ipv6=False, address="127.0.0.1", prefix=(),
                 host_key_type="ed25519", config=()):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.ipv6 = ipv6
        self.address = address          # IPv4 to listen on
        self.prefix = list(prefix)      # e.g. ip netns exec NS: runs it there
        self.name = f"{address}:{port}"
        self.host_key = keygen(self.dir / f"host_{host_key_type}", host_key_type)
        self.extra_config = list(config)
        self.keys = {
            "ed25519": keygen(self.dir / "id_ed25519"),
            "ecdsa": keygen(self.dir / "id_ecdsa", "ecdsa"),
            "passphrase": keygen(self.dir / "id_ed25519_pass", passphrase=PASSPHRASE),
        }
        self.stranger = keygen(self.dir / "id_stranger")
        self.passphrase_file = self.dir / "passphrase"
        self.passphrase_file.write_text(PASSPHRASE)
        self.passphrase_file.chmod(0o600)
        self.authorized_keys = self.dir / "authorized_keys"
        self.authorized_keys.write_text(
            "".join(Path(f"{k}.pub").read_text() for k in self.keys.values()))
        self.logpath = self.dir / "sshd.log"
        self.config = self.dir / "sshd_config"
        self.proc = None
        self._log_offset = 0
        self._paused = []
        self._wrong_key = None

    # ------------------------------------------------------------ config

    def _config_lines(self):
        listen = [f"ListenAddress {self.address}"] + (["ListenAddress ::1"] if self.ipv6 else [])
        # The extra lines first: for most keywords sshd keeps the first value.
        return [
            *self.extra_config,
            f"Port {self.port}", *listen,
            f"HostKey {self.host_key}",
            f"PidFile {self.dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "PermitRootLogin yes",
            "AllowTcpForwarding yes",
            "GatewayPorts no",
            "LogLevel VERBOSE",
            "ClientAliveInterval 0",
        ]

    def _check(self, lines):
        self.config.write_text("".join(f"{ln}\n" for ln in lines))
        return subprocess.run([*self.prefix, SSHD, "-t", "-f", str(self.config)],
                              capture_output=True, text=True)

    def write_config(self):
        """sshd_config with every optional line this sshd accepts; fails with
        sshd's complaint if it refuses the base config."""
        global _accepted_optional
        base = self._config_lines()
        if _accepted_optional is None:
            _accepted_optional = [opt for opt in OPTIONAL
                                  if self._check(base + [opt]).returncode == 0]
        done = self._check(base + _accepted_optional)
        if done.returncode != 0:
            raise RuntimeError(f"sshd -t refuses {self.config}: {done.stderr.strip()}")

    def authorize(self, kind):
        """A new client key of kind (rsa, say) that this sshd accepts, made
        on demand (RSA keys are slow to make); returns its path."""
        if kind not in self.keys:
            self.keys[kind] = keygen(self.dir / f"id_{kind}", kind)
            with open(self.authorized_keys, "a") as f:
                f.write(Path(f"{self.keys[kind]}.pub").read_text())
        return self.keys[kind]

    # ------------------------------------------------------------ life

    def start(self):
        """Starts the listener and waits until it listens on every address."""
        assert self.proc is None or self.proc.poll() is not None, "sshd already running"
        if not self.config.exists():
            self.write_config()
        self._log_offset = self.logpath.stat().st_size if self.logpath.exists() else 0
        with open(self.logpath, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.prefix, SSHD, "-D", "-e", "-f", str(self.config)], stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, start_new_session=True)
        wanted = [f"Server listening on {self.address} port {self.port}."]
        if self.ipv6:
            wanted.append(f"Server listening on ::1 port {self.port}.")
        deadline = time.monotonic() + START_TIMEOUT
        while not all(w in self.log(since_start=True) for w in wanted):
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited {self.proc.returncode}:\n{self.log(True)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd not listening after {START_TIMEOUT} s:\n"
                                   f"{self.log(True)}")
            time.sleep(0.01)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def session_pids(self):
        """The per-connection processes under the listener."""
        return descendants(self.pid) if self.running() else []

    def kill_session_processes(self, sig=signal.SIGKILL):
        """Kills the per-connection sshd processes, not the listener: every
        tunnel to this sshd loses its TCP connection at once. Returns their
        PIDs once they are gone."""
        pids = self.session_pids()
        for pid in pids:
            kill_pid(pid, sig)
        left = wait_gone(pids)
        assert not left, f"sshd session processes {left} survived {sig.name}"
        return pids

    def pause(self):
        """SIGSTOP to the listener and its sessions: connections stay open but
        nothing answers, as with a peer that vanished without a FIN."""
        self._paused = [self.pid] + self.session_pids()
        for pid in self._paused:
            kill_pid(pid, signal.SIGSTOP)
        return self._paused

    def resume(self):
        for pid in self._paused + self.session_pids():
            kill_pid(pid, signal.SIGCONT)
        self._paused = []

    def stop(self, timeout=5):
        """SIGTERM to the listener, then to the sessions it leaves behind (a
        listener's SIGTERM does not end them), and waits for all of them."""
        if not self.running():
            return
        self.resume()
        sessions = self.session_pids()
        kill_pid(self.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_pid(self.pid)
            self.proc.wait()
        for pid in sessions:
            kill_pid(pid, signal.SIGTERM)
        for pid in wait_gone(sessions, timeout):
            kill_pid(pid)

    def restart(self):
        """stop() then start() on the same port with the same host key."""
        self.stop()
        return self.start()

    def kill(self):
        """Teardown: SIGKILL to the listener and everything under it, by PID."""
        if not self.running():
            return
        pids = self.session_pids()
        for pid in [self.pid] + pids:
            kill_pid(pid, signal.SIGCONT)
            kill_pid(pid)
        self.proc.wait()
        wait_gone(pids)

    # ------------------------------------------------------------ clients

    def dest(self, host="127.0.0.1", user="root"):
        """The --ssh destination: root@127.0.0.1:PORT, root@[::1]:PORT."""
        return f"{user}@[{host}]:{self.port}" if ":" in host else f"{user}@{host}:{self.port}"

    def host_pattern(self, host="127.0.0.1"):
        return f"[{host}]:{self.port}"

    def known_hosts_line(self, host="127.0.0.1"):
        return f"{self.host_pattern(host)} {public_key(f'{self.host_key}.pub')}\n"

    def wrong_known_hosts_line(self, host="127.0.0.1"):
        """A line for this host and port with another ed25519 key."""
        if self._wrong_key is None:
            self._wrong_key = keygen(self.dir / "host_impostor")
        return f"{self.host_pattern(host)} {public_key(f'{self._wrong_key}.pub')}\n"

    def write_known_hosts(self, kind="good", host="127.0.0.1", path=None):
        """A known_hosts file: "good" (this sshd's key), "wrong" (another key
        for the same [host]:port) or "empty". Returns its path."""
        text = {"good": lambda: self.known_hosts_line(host),
                "wrong": lambda: self.wrong_known_hosts_line(host),
                "empty": lambda: ""}[kind]()
        path = Path(path or self.dir / f"known_hosts.{kind}")
        path.write_text(text)
        return path

    @property
    def fingerprint(self):
        return fingerprint(f"{self.host_key}.pub")

    # ------------------------------------------------------------ logs

    def log(self, since_start=False):
        if not self.logpath.exists():
            return ""
        with open(self.logpath, "rb") as f:
            if since_start:
                f.seek(self._log_offset)
            return f.read().decode(errors="replace")

    def describe(self, tail=80):
        lines = self.log().splitlines()
        cut = [f"[... {len(lines) - tail} lines, see {self.logpath} ...]"] \
            if len(lines) > tail else []
        status = self.proc.poll() if self.proc else "not started"
        return (f"sshd -D -e -f {self.config}\nlistener exit status: {status}\n--- log ---\n"
                + "".join(f"{ln}\n" for ln in cut + lines[-tail:]))
