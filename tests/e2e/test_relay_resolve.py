"""Host names: a listen name binds every address it resolves to; a target
name is resolved at each connection and every address is tried in turn.
relayd runs in a mount namespace with our own /etc/hosts (see PrivateHosts)."""

import pytest

from conftest import free_port, sink_roundtrip, tcp4, tcp6

pytestmark = pytest.mark.root

BOTH = [("127.0.0.1", "localhost"), ("::1", "localhost")]


def test_listen_name_binds_every_address(relayd, private_hosts, sink):
    private_hosts.write(BOTH)
    port = free_port()
    r = relayd("--listen", f"localhost:{port}", "--to", sink.spec,
               prefix=private_hosts.prefix)
    r.wait_log(rf"^relayd: listening on 127\.0\.0\.1:{port}$", timeout=0)
    r.wait_log(rf"^relayd: listening on \[::1\]:{port}$", timeout=0)
    sink_roundtrip(tcp4(port), seed=1)
    sink_roundtrip(tcp6(port), seed=2)


# Only one of the two addresses of "localhost" listens. Whatever order the
# resolver returns them in, one of these two cases makes relayd skip a
# refused address and go on to the next.
@pytest.mark.parametrize("listening", [tcp6, tcp4], ids=["only-ipv6", "only-ipv4"])
def test_target_name_tries_every_address(relayd, private_hosts, backends, listening):
    private_hosts.write(BOTH)
    tport = free_port()
    target = backends.sink(listening(tport))
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", f"localhost:{tport}",
               prefix=private_hosts.prefix)
    for seed in range(3):
        me = sink_roundtrip(tcp4(port), seed=seed)
        assert r.wait_conn(me)["end"] == "eof"
    assert len(target.wait_done(3)) == 3


def test_target_name_resolved_at_each_connection(relayd, private_hosts, backends):
    tport = free_port()
    v4 = backends.sink(tcp4(tport))
    v6 = backends.sink(tcp6(tport))
    private_hosts.write([("127.0.0.1", "relay-target")])
    port = free_port()
    relayd("--listen", f"127.0.0.1:{port}", "--to", f"relay-target:{tport}",
           prefix=private_hosts.prefix)
    sink_roundtrip(tcp4(port), seed=1)
    assert (len(v4.wait_done(1)), len(v6.records)) == (1, 0)
    private_hosts.write([("::1", "relay-target")])
    sink_roundtrip(tcp4(port), seed=2)
    assert (len(v4.records), len(v6.wait_done(1))) == (1, 1)
