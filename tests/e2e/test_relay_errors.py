"""A target that cannot be reached costs the client its connection, promptly,
and one summary line saying why; the daemon carries on."""

import socket
import time

import pytest

from conftest import free_port, local_spec, sink_roundtrip, tcp4, wait_closed


def test_target_refused(relayd):
    dead = free_port()                  # nothing listens there
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", f"127.0.0.1:{dead}")
    with tcp4(port).connect() as s:
        me = local_spec(s)
        wait_closed(s, 1.0)
    c = r.wait_conn(me)
    assert c["target"] == f"127.0.0.1:{dead}", c["line"]
    assert c["end"] == "connect failed: Connection refused", c["line"]
    assert (c["inb"], c["outb"]) == (0, 0), c["line"]
    assert r.alive()


def test_unix_target_missing(relayd, sockdir):
    path = sockdir / "nobody-home.sock"
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", f"unix:{path}")
    with tcp4(port).connect() as s:
        me = local_spec(s)
        wait_closed(s, 1.0)
    c = r.wait_conn(me)
    assert c["end"] == "connect failed: No such file or directory", c["line"]


def test_refused_then_served(relayd, backends):
    # The same target address refuses, then comes up: the daemon serves it.
    port, tport = free_port(), free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", f"127.0.0.1:{tport}")
    with tcp4(port).connect() as s:
        wait_closed(s, 1.0)
    backends.sink(tcp4(tport))
    me = sink_roundtrip(tcp4(port))
    assert r.wait_conn(me)["end"] == "eof"


@pytest.fixture
def blackhole():
    """A loopback address whose SYNs go unanswered: a listener with backlog 0
    that never accepts, its queue filled first. Skips if the kernel answers."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    addr = lsock.getsockname()
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(addr)
        fillers.append(s)
    time.sleep(0.1)
    with socket.socket() as probe:
        probe.settimeout(0.3)
        try:
            probe.connect(addr)
            answered = True
        except socket.timeout:
            answered = False
    if answered:
        pytest.skip("cannot make a loopback blackhole here")
    yield tcp4(addr[1])
    for s in fillers:
        s.close()
    lsock.close()


def test_connect_timeout(relayd, blackhole):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", blackhole.spec,
               "--connect-timeout", "1")
    with tcp4(port).connect() as s:
        me = local_spec(s)
        took = wait_closed(s, 4)
    assert 0.9 <= took < 3, f"closed after {took:.3f} s with --connect-timeout 1"
    c = r.wait_conn(me)
    assert c["end"] == "connect timeout", c["line"]
    assert c["time"] >= 0.9, c["line"]


@pytest.mark.root
def test_target_name_unresolvable(relayd, private_names):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", "no-such-host.invalid:80",
               prefix=private_names.prefix)
    with tcp4(port).connect() as s:
        me = local_spec(s)
        wait_closed(s, 1.0)
    c = r.wait_conn(me)
    assert c["end"].startswith("resolve failed: "), c["line"]
    assert r.alive()
