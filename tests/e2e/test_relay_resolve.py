"""Host names: a listen name binds every address it resolves to; a target
name is resolved at each connection and every address is tried in turn.
relayd runs with our own /etc/hosts and name server (see PrivateNames)."""

import pytest

from conftest import free_port, sink_roundtrip, tcp4, tcp6

pytestmark = pytest.mark.root

BOTH = ["127.0.0.1", "::1"]


def test_listen_name_binds_every_address(relayd, private_names, sink):
    private_names.write_hosts([(a, "localhost") for a in BOTH])
    port = free_port()
    r = relayd("--listen", f"localhost:{port}", "--to", sink.spec,
               prefix=private_names.prefix)
    sink_roundtrip(tcp4(port), seed=1)
    sink_roundtrip(tcp6(port), seed=2)
    # One line per listener.
    r.wait_log(rf"^relayd: listening on 127\.0\.0\.1:{port}$", timeout=0)
    r.wait_log(rf"^relayd: listening on \[::1\]:{port}$", timeout=0)


def _publish(names, source, name, addresses):
    if source == "hosts":
        names.write_hosts([(a, name) for a in addresses])
    else:
        names.dns.names[name] = list(addresses)


# The name has two addresses and only one of them listens. Whatever order
# the resolver gives them in, one of the two cases makes relayd go past a
# refused address to the next.
@pytest.mark.parametrize("listening", [tcp6, tcp4], ids=["only-ipv6", "only-ipv4"])
@pytest.mark.parametrize("source, name", [("hosts", "localhost"), ("dns", "relay-target")])
def test_target_name_tries_every_address(relayd, private_names, backends,
                                         source, name, listening):
    tport = free_port()
    _publish(private_names, source, name, BOTH)
    target = backends.sink(listening(tport))
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", f"{name}:{tport}",
               prefix=private_names.prefix)
    for seed in range(3):
        me = sink_roundtrip(tcp4(port), seed=seed)
        assert r.wait_conn(me)["end"] == "eof"
    assert len(target.wait_done(3)) == 3


@pytest.mark.parametrize("source", ["hosts", "dns"])
def test_target_name_resolved_at_each_connection(relayd, private_names, backends, source):
    tport = free_port()
    v4 = backends.sink(tcp4(tport))
    v6 = backends.sink(tcp6(tport))
    _publish(private_names, source, "relay-target", ["127.0.0.1"])
    port = free_port()
    relayd("--listen", f"127.0.0.1:{port}", "--to", f"relay-target:{tport}",
           prefix=private_names.prefix)
    sink_roundtrip(tcp4(port), seed=1)
    assert (len(v4.wait_done(1)), len(v6.records)) == (1, 0)
    _publish(private_names, source, "relay-target", ["::1"])
    sink_roundtrip(tcp4(port), seed=2)
    assert len(v4.records) == 1, "the second connection went to the old address"
    assert len(v6.wait_done(1)) == 1
