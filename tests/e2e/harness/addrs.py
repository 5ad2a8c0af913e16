"""Loopback addresses: ephemeral ports, TCP and unix specs, and private
host names served by a DNS server of the harness's own."""
import random
import socket
import threading
from pathlib import Path

import pytest

from harness.procs import IO_TIMEOUT


class Addr:
    """A loopback stream address: family, sockaddr and its relayd spelling."""

    def __init__(self, family, sockaddr):
        self.family = family
        self.sockaddr = sockaddr if family == socket.AF_UNIX else tuple(sockaddr[:2])

    @property
    def port(self):
        return self.sockaddr[1]

    @property
    def spec(self):
        return fmt_addr(self.family, self.sockaddr)

    def connect(self, timeout=IO_TIMEOUT):
        s = socket.socket(self.family, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.sockaddr)
        except BaseException:
            s.close()
            raise
        return s

    def __repr__(self):
        return self.spec


def fmt_addr(family, sockaddr):
    """Address as relayd writes it: 1.2.3.4:80, [::1]:80, unix:/path."""
    if family == socket.AF_UNIX:
        return f"unix:{sockaddr}"
    if family == socket.AF_INET6:
        return f"[{sockaddr[0]}]:{sockaddr[1]}"
    return f"{sockaddr[0]}:{sockaddr[1]}"


def local_spec(sock):
    """The relayd spelling of a connected TCP socket's own address."""
    return fmt_addr(sock.family, sock.getsockname())


def tcp4(port=0):
    return Addr(socket.AF_INET, ("127.0.0.1", port))


def tcp6(port=0):
    return Addr(socket.AF_INET6, ("::1", port))


def unix(path):
    return Addr(socket.AF_UNIX, str(path))


def _bindable(family, host, port, kind=socket.SOCK_STREAM):
    with socket.socket(family, kind) as s:
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


_handed_out = set()


def free_port():
    """An ephemeral TCP port free right now on 127.0.0.1 and on ::1, and not
    handed out before in this run (so two calls never give the same port)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port not in _handed_out and _bindable(socket.AF_INET6, "::1", port):
                _handed_out.add(port)
                return port
    raise RuntimeError("no free port on both 127.0.0.1 and ::1")


class DnsServer:
    """A minimal DNS server on UDP addr:53 answering A and AAAA queries from
    self.names ({name: [address, ...]}, editable while running), NXDOMAIN
    for anything else, TTL 0 so nothing may be cached."""

    def __init__(self, address):
        self.names = {}
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 53))
        self.sock.settimeout(0.1)
        self.address = address
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stopping.is_set():
            try:
                query, peer = self.sock.recvfrom(4096)
                self.sock.sendto(self.answer(query), peer)
            except socket.timeout:
                continue
            except (OSError, ValueError, IndexError):
                continue

    def answer(self, query):
        # Header, then one question: labels, QTYPE, QCLASS. The question is
        # echoed byte for byte (resolvers may randomise the name's case).
        pos, labels = 12, []
        while query[pos]:
            labels.append(query[pos + 1:pos + 1 + query[pos]].decode().lower())
            pos += 1 + query[pos]
        qtype = int.from_bytes(query[pos + 1:pos + 3], "big")
        question = query[12:pos + 5]
        name = ".".join(labels)
        self.queries.append((name, qtype))
        known = self.names.get(name)
        family = {1: socket.AF_INET, 28: socket.AF_INET6}.get(qtype)
        records = [socket.inet_pton(family, a) for a in known or ()
                   if family and (":" in a) == (family == socket.AF_INET6)]
        flags = 0x8180 | (0 if known is not None else 3)     # QR RD RA, NXDOMAIN
        out = query[:2] + flags.to_bytes(2, "big") + b"\x00\x01" \
            + len(records).to_bytes(2, "big") + b"\x00\x00\x00\x00" + question
        for rdata in records:
            out += (b"\xc0\x0c" + qtype.to_bytes(2, "big") + b"\x00\x01"
                    + b"\x00\x00\x00\x00" + len(rdata).to_bytes(2, "big") + rdata)
        return out

    def stop(self):
        self._stopping.set()
        self._thread.join(2)
        self.sock.close()


class PrivateNames:
    """Name lookups under our control: relayd runs in its own mount namespace
    where /etc/hosts, /etc/resolv.conf and /etc/nsswitch.conf are our files,
    the name server being our DnsServer on a random 127.x.y.z. Name tests
    are then deterministic and never touch the machine's configuration or
    the network. write_hosts() edits the hosts file in place (same inode, so
    the bind mount shows the change); dns.names can change at any time."""

    def __init__(self, directory):
        d = Path(directory)
        self.hosts, self.resolv, self.nsswitch = d / "hosts", d / "resolv.conf", d / "nsswitch.conf"
        self.dns = self._start_dns()
        self.resolv.write_text(f"nameserver {self.dns.address}\noptions timeout:1 attempts:1\n")
        # Keep the machine's other databases (passwd for --user), replace hosts.
        lines = [ln for ln in Path("/etc/nsswitch.conf").read_text().splitlines()
                 if not ln.startswith("hosts:")]
        self.nsswitch.write_text("\n".join(lines + ["hosts: files dns", ""]))
        self.write_hosts([])
        for f in (self.hosts, self.resolv, self.nsswitch):
            f.chmod(0o644)

    @staticmethod
    def _start_dns():
        rng = random.Random()
        for _ in range(20):
            address = f"127.{rng.randrange(1, 255)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            try:
                return DnsServer(address)
            except OSError:
                continue
        pytest.skip("no loopback address with a free port 53")

    def write_hosts(self, entries):
        """entries: [(address, name), ...]"""
        with open(self.hosts, "w") as f:
            f.writelines(f"{a} {n}\n" for a, n in entries)

    @property
    def prefix(self):
        """Command prefix that runs the rest of the command line in the namespace."""
        script = ('mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf'
                  ' && mount --bind "$3" /etc/nsswitch.conf && shift 3 && exec "$@"')
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                "sh", str(self.hosts), str(self.resolv), str(self.nsswitch)]


def listening(addr):
    """True if something accepts connections on addr right now."""
    with socket.socket(addr.family, socket.SOCK_STREAM) as s:
        return s.connect_ex(addr.sockaddr) == 0
