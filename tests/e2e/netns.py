"""A private network for the fault suite, built from network namespaces and
veth pairs that the test creates and removes itself:

    client 10.77.1.2 --+
                       |   router: forwards between the three, and is
    relay  10.77.2.2 --+-- where faults are injected (impairer, nft drops)
                       |
    server 10.77.3.2 --+

Nothing touches the host's interfaces: every link is created inside a
namespace (ip -n), and namespace names carry this process's PID so that
parallel runs never meet. Processes run inside with `ip netns exec` (which
execs, so the PID is the program's); sockets of the test process itself are
made inside with setns() on the calling thread (in_netns), which is where a
socket belongs for the rest of its life.

Faults:
- impaired(...): delay, jitter, loss, duplication and reordering of every
  routed packet, by impair.py on a TUN device in the router. This kernel has
  no netem (and no modprobe to load it), so it is done in user space at
  packet level; netem_available() only reports whether tc netem exists.
- partition(a, b) / heal(): an nft table in the router drops everything
  between two hosts both ways, silently (no RST, no ICMP).
- cut(host): the same for one host against everyone.

Everything made is recorded as it is made and undone in reverse order by
close(), which never stops half way: processes by PID, nft tables, policy
rules, links, namespaces."""

import contextlib
import ctypes
import itertools
import json
import re
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CLONE_NEWNET = 0x40000000
HERE = Path(__file__).resolve().parent
IMPAIR = HERE / "impair.py"
PYTHON = sys.executable

HOSTS = {"client": "10.77.1.2", "relay": "10.77.2.2", "server": "10.77.3.2"}
ROUTER_SIDE = {"client": "10.77.1.1", "relay": "10.77.2.1", "server": "10.77.3.1"}
IMPAIR_TABLE = 100
IMPAIR_DEV = "imp0"
NFT_TABLE = "relayd_faults"

_libc = ctypes.CDLL(None, use_errno=True)
_seq = itertools.count(1)


def run(*cmd, check=True):
    """Runs a command; fails with its stderr when check and it fails."""
    done = subprocess.run([str(c) for c in cmd], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))}: exit {done.returncode}: "
                           f"{done.stderr.strip()}")
    return done


def _setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


@contextlib.contextmanager
def in_netns(name):
    """Runs the block with this thread in namespace name: sockets made in it
    stay there. The thread returns to its own namespace afterwards."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _setns(f"/run/netns/{name}")
        try:
            yield
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back home failed")
    finally:
        os.close(home)


def unavailable():
    """None if this process can create a network namespace with a veth pair
    in it, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in ("ip", "nft"):
        if run("sh", "-c", f"command -v {tool}", check=False).returncode != 0:
            return f"no {tool} command"
    name = f"rdf{os.getpid()}probe"
    try:
        done = run("ip", "netns", "add", name, check=False)
        if done.returncode != 0:
            return f"ip netns add failed: {done.stderr.strip()}"
        done = run("ip", "-n", name, "link", "add", "vp0", "type", "veth", "peer", "name", "vp1",
                   check=False)
        if done.returncode != 0:
            return f"veth pairs unavailable: {done.stderr.strip()}"
        if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
            return "no /dev/net/tun for the impairer"
        return None
    finally:
        run("ip", "netns", "del", name, check=False)


def netem_available(ns):
    """True if tc knows the netem qdisc here (it is then only reported: the
    impairer is used either way, so that every run injects the same faults
    and counts them)."""
    done = run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root",
               "netem", "delay", "1ms", check=False)
    if done.returncode == 0:
        run("ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "lo", "root", check=False)
    return done.returncode == 0


class Net:
    """The three hosts and the router, built by the constructor."""

    def __init__(self):
        tag = f"rdf{os.getpid()}n{next(_seq)}"
        self.ns = {role: f"{tag}-{role}" for role in ("client", "relay", "server", "router")}
        self.addr = dict(HOSTS)
        self._undo = []         # (description, callable), undone in reverse
        self._procs = []        # Popen objects started in the namespaces
        self.figures = []       # what the faults did, for the test's report
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ building

    def _later(self, what, fn):
        self._undo.append((what, fn))

    def _ns_add(self, ns):
        run("ip", "netns", "add", ns)
        self._later(f"netns {ns}", lambda: run("ip", "netns", "del", ns, check=False))
        run("ip", "-n", ns, "link", "set", "lo", "up")

    def sysctl(self, role, *settings):
        run("ip", "netns", "exec", self.ns[role], "sysctl", "-q", "-w", *settings)

    def _build(self):
        router = self.ns["router"]
        for ns in self.ns.values():
            self._ns_add(ns)
        self.sysctl("router", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0")
        for role in HOSTS:
            ns, dev = self.ns[role], f"to-{role}"
            run("ip", "-n", router, "link", "add", dev, "type", "veth", "peer", "name", "eth0",
                "netns", ns)
            self._later(f"veth {dev}", lambda d=dev: run("ip", "-n", router, "link", "del", d,
                                                         check=False))
            run("ip", "-n", router, "addr", "add", f"{ROUTER_SIDE[role]}/24", "dev", dev)
            run("ip", "-n", router, "link", "set", dev, "up")
            run("ip", "-n", ns, "addr", "add", f"{HOSTS[role]}/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            run("ip", "-n", ns, "route", "add", "default", "via", ROUTER_SIDE[role])
        # Many short connections: TIME_WAIT ports may be reused (timestamps
        # keep that safe) and the whole port range is there.
        for role in HOSTS:
            self.sysctl(role, "net.ipv4.tcp_tw_reuse=1",
                        "net.ipv4.ip_local_port_range=1024 65000")

    def add_address(self, role, address):
        """Another address on role's link (same /24)."""
        run("ip", "-n", self.ns[role], "addr", "add", f"{address}/24", "dev", "eth0")
        self._later(f"address {address}", lambda: run("ip", "-n", self.ns[role], "addr", "del",
                                                      f"{address}/24", "dev", "eth0",
                                                      check=False))

    # ------------------------------------------------------------ processes

    def prefix(self, role):
        """Command prefix that runs a program in role's namespace."""
        return ["ip", "netns", "exec", self.ns[role]]

    def popen(self, role, cmd, **kw):
        """A process in role's namespace, stopped by PID at close()."""
        p = subprocess.Popen([*self.prefix(role), *map(str, cmd)], start_new_session=True, **kw)
        self._procs.append(p)
        return p

    def socket_in(self, role, family=socket.AF_INET, kind=socket.SOCK_STREAM):
        with in_netns(self.ns[role]):
            return socket.socket(family, kind)

    def connect(self, role, host, port, timeout=30):
        """A TCP connection made from role to (host, port)."""
        s = self.socket_in(role)
        s.settimeout(timeout)
        try:
            s.connect((host, port))
        except BaseException:
            s.close()
            raise
        return s

    # ------------------------------------------------------------ impairment

    @contextlib.contextmanager
    def impaired(self, name, delay=0.0, jitter=0.0, loss=0.0, dup=0.0, reorder=0.0,
                 reorder_by=5.0, seed=1):
        """Every packet routed between hosts goes through impair.py with
        these settings for the duration of the block. Yields a dict that
        holds the impairer's counters once the block is left."""
        router = self.ns["router"]
        args = [PYTHON, IMPAIR, IMPAIR_DEV, "--delay", delay, "--jitter", jitter,
                "--loss", loss, "--dup", dup, "--reorder", reorder, "--reorder-by",
                reorder_by, "--seed", seed]
        p = self.popen("router", args, stdout=subprocess.PIPE, text=True)
        result = {"profile": name, "settings": dict(delay_ms=delay, jitter_ms=jitter,
                                                    loss=loss, dup=dup, reorder=reorder,
                                                    reorder_by_ms=reorder_by, seed=seed)}
        rules = []
        try:
            line = p.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"impairer did not start (said {line!r}, exit {p.poll()})")
            run("ip", "-n", router, "link", "set", IMPAIR_DEV, "up")
            run("ip", "-n", router, "route", "add", "default", "dev", IMPAIR_DEV,
                "table", IMPAIR_TABLE)
            for role in HOSTS:
                rule = ["iif", f"to-{role}", "table", IMPAIR_TABLE, "pref", 100]
                run("ip", "-n", router, "rule", "add", *rule)
                rules.append(rule)
            yield result
        finally:
            for rule in rules:
                run("ip", "-n", router, "rule", "del", *rule, check=False)
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                out, _ = p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
            self._procs.remove(p)
            with contextlib.suppress(ValueError, IndexError):
                result["counters"] = json.loads(out.strip().splitlines()[-1])
            self.figures.append(result)

    # ------------------------------------------------------------ drops

    def _nft(self, script):
        done = subprocess.run([*self.prefix("router"), "nft", "-f", "-"], input=script,
                              capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"nft: {done.stderr.strip()}\n{script}")

    def _drop(self, matches):
        """Replaces the drop table's rules with one drop per match."""
        self.heal()
        rules = "".join(f"        {m} counter drop\n" for m in matches)
        self._nft(f"table ip {NFT_TABLE} {{\n    chain forward {{\n"
                  f"        type filter hook forward priority -10; policy accept;\n"
                  f"{rules}    }}\n}}\n")
        self._later(f"nft table {NFT_TABLE}", self.heal)

    def partition(self, a, b):
        """Silently drops every packet between hosts a and b, both ways."""
        x, y = self.addr[a], self.addr[b]
        self._drop([f"ip saddr {x} ip daddr {y}", f"ip saddr {y} ip daddr {x}"])

    def cut(self, host):
        """Silently drops every packet to and from host."""
        x = self.addr[host]
        self._drop([f"ip saddr {x}", f"ip daddr {x}"])

    def heal(self):
        run("ip", "netns", "exec", self.ns["router"], "nft", "delete", "table", "ip",
            NFT_TABLE, check=False)

    def dropped_packets(self):
        """Packets the drop rules have dropped so far (their nft counters)."""
        done = run("ip", "netns", "exec", self.ns["router"], "nft", "list", "table", "ip",
                   NFT_TABLE, check=False)
        return sum(int(w) for w in re.findall(r"counter packets (\d+)", done.stdout))

    # ------------------------------------------------------------ teardown

    def close(self):
        """Stops every process by PID, then undoes everything in reverse."""
        for p in self._procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                p.wait(10)
        self._procs = []
        errors = []
        for what, fn in reversed(self._undo):
            try:
                fn()
            except Exception as e:         # keep undoing the rest
                errors.append(f"{what}: {e}")
        self._undo = []
        left = [ns for ns in self.ns.values() if Path(f"/run/netns/{ns}").exists()]
        if left or errors:
            raise RuntimeError(f"teardown left {left}, errors {errors}")


# ---------------------------------------------------------------- /proc views

TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1",
              5: "FIN_WAIT2", 6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT",
              9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}


def _hex_addr(text):
    ip, port = text.split(":")
    if len(ip) == 8:
        raw = bytes.fromhex(ip)[::-1]
        return f"{socket.inet_ntop(socket.AF_INET, raw)}:{int(port, 16)}"
    raw = b"".join(bytes.fromhex(ip[i:i + 8])[::-1] for i in range(0, 32, 8))
    return f"[{socket.inet_ntop(socket.AF_INET6, raw)}]:{int(port, 16)}"


def tcp_sockets(pid):
    """Every TCP socket of pid's network namespace, from /proc/PID/net/tcp and
    tcp6: dicts with local, remote, state and inode (0 for sockets no
    process holds: TIME_WAIT, orphans)."""
    out = []
    for name in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{name}") as f:
            next(f)
            for line in f:
                w = line.split()
                out.append({"local": _hex_addr(w[1]), "remote": _hex_addr(w[2]),
                            "state": TCP_STATES.get(int(w[3], 16), w[3]),
                            "inode": int(w[9])})
    return out


def socket_inodes(pid):
    """Inodes of the sockets pid holds open."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def fd_count(pid):
    """Descriptors of pid but pipes: the splice pool keeps up to 16 spare
    pipes per event loop (bounded, checked in test_relay_splice.py), and
    whether a finished connection's pipe went back to it is timing."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:"):
                count += 1
        except OSError:
            pass
    return count


def rss_kib(pid):
    """VmRSS of pid in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def wait_for(pred, timeout, interval=0.05):
    """pred()'s first true value within timeout, else its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# ---------------------------------------------------------------- fixtures
# conftest.py loads this module as a plugin, so these are everyone's fixtures.

import pytest                                               # noqa: E402

from conftest import (SANITIZE, Addr, Tunnel, free_port, recv_until_eof, send_stream,  # noqa: E402
                      sink_reply)
from sshd import Sshd                                       # noqa: E402

_netem = []


def pytest_collection_modifyitems(config, items):
    """Where namespaces cannot be made, every test that needs the net is
    skipped before it starts, for one reason, said once per file."""
    needing = [item for item in items if "net" in getattr(item, "fixturenames", ())]
    why = unavailable() if needing else None
    if why:
        mark = pytest.mark.skip(reason=f"fault suite skipped: cannot create network "
                                       f"namespaces ({why})")
        for item in needing:
            item.add_marker(mark)


@pytest.fixture
def net(figures):
    """A fresh Net for the test, closed (everything it made removed) after
    it, even on failure; the impairer's counters go to the figures."""
    n = Net()
    try:
        if not _netem:
            _netem.append(netem_available(n.ns["router"]))
            figures(f"tc netem {'exists' if _netem[0] else 'is absent'}; faults are injected "
                    f"by impair.py on a TUN device either way")
        yield n
    finally:
        for f in n.figures:
            figures(describe_impairment(f))
        n.close()


@pytest.fixture
def ns_relayd(net, relayd):
    """Factory: ns_relayd(role, *args, flat_rss=False, **kw) is the conftest
    relayd factory with relayd run inside role's namespace. Torn down before
    the net. flat_rss: its VmRSS is measured, so an ASan build is told to
    reuse freed memory at once (its quarantine would otherwise grow RSS by
    design); LeakSanitizer still checks at exit."""
    def start(role, *args, flat_rss=False, **kw):
        prefix = net.prefix(role)
        if flat_rss and SANITIZE:
            options = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                             "quarantine_size_mb=0"]))
            prefix += ["env", f"ASAN_OPTIONS={options}"]
        return relayd(*args, prefix=prefix, **kw)
    return start


class NsSshd(Sshd):
    """An Sshd with extra sshd_config lines (first: sshd keeps the first
    value it reads for a keyword)."""

    def __init__(self, *args, extra=(), **kw):
        self.extra = list(extra)
        super().__init__(*args, **kw)

    def _config_lines(self):
        return self.extra + super()._config_lines()


@pytest.fixture
def ns_sshd(request, net, tmp_path, privsep_dir):
    """Factory: ns_sshd(role="relay", extra=()) starts a private sshd
    listening on role's address, extra being more sshd_config lines. Killed
    by PID at teardown, logs shown on failure."""
    if not os.access("/usr/sbin/sshd", os.X_OK):
        pytest.skip("no /usr/sbin/sshd (apt-get install openssh-server)")
    made = []
    request.node.sshds = made

    def start(role="relay", extra=()):
        d = NsSshd(tmp_path / f"sshd-{len(made) + 1}", free_port(), address=net.addr[role],
                   prefix=net.prefix(role), extra=extra)
        made.append(d)
        return d.start()

    yield start
    for d in made:
        d.kill()


@pytest.fixture(scope="session")
def shortconn(tmp_path_factory):
    """The shortconn tool (shortconn.c), built for this run."""
    out = tmp_path_factory.mktemp("shortconn") / "shortconn"
    run("cc", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o", out, HERE / "shortconn.c")
    return out


def describe_impairment(f):
    """One line: what the impairer was asked to do and what it did."""
    asked = ", ".join(f"{k} {v:g}" for k, v in f["settings"].items()
                      if v and k not in ("seed", "reorder_by_ms") or
                      (k == "reorder_by_ms" and f["settings"]["reorder"]))
    c = f.get("counters")
    did = ("no counters (impairer died)" if c is None else
           f"{c['packets']} packets, {c['dropped']} dropped, {c['duplicated']} duplicated, "
           f"{c['held_back']} held back, {c['out_of_order']} delivered out of order")
    return f"impairer [{f['profile']}] {asked} (seed {f['settings']['seed']}): {did}"


def ns_addr(net, role, port=0):
    """Addr of role's address, for the conftest backends."""
    return Addr(socket.AF_INET, (net.addr[role], port))


def start_tunnel(net, ns_relayd, sshd, spec, *extra, **kw):
    """relayd --ssh -R spec from the server namespace to sshd in the relay
    namespace; returns the Tunnel once the forward is up."""
    host = net.addr["relay"]
    dest = sshd.dest(host)
    r = ns_relayd("server", "--ssh", dest, "-R", spec, "--identity", sshd.keys["ed25519"],
                  "--known-hosts", sshd.write_known_hosts("good", host), *extra, **kw)
    t = Tunnel(r, dest)
    t.wait_up("R", spec)
    return t


def sink_roundtrip_from(net, role, host, port, seed=1, nbytes=1 << 20, timeout=30):
    """Sends nbytes from role to a SinkBackend behind (host, port) and checks
    its answer (length and SHA-256 of what it received)."""
    with net.connect(role, host, port, timeout) as s:
        sent = send_stream(s, seed, nbytes)
        s.shutdown(socket.SHUT_WR)
        answer = recv_until_eof(s)
    assert answer == sink_reply(sent), f"sent {sent}, sink answered {answer!r}"
    return sent
