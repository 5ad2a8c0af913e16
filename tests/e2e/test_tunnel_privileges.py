"""A tunnel started as root reads its key and known_hosts, then runs as
nobody like the relay, with at most CAP_NET_BIND_SERVICE, while its
forwards keep working."""

import pytest

from conftest import free_port, fwd, sink_roundtrip

pytestmark = pytest.mark.root

NOBODY = "65534"


def test_tunnel_runs_as_nobody(tunnel, sink):
    rport = free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}")
    sink_roundtrip(fwd(rport))
    st = t.relayd.status()
    assert st["Uid"].split() == [NOBODY] * 4, f"Uid: {st['Uid']}"
    assert st["Gid"].split() == [NOBODY] * 4, f"Gid: {st['Gid']}"
    assert st["CapEff"] in ("0000000000000400", "0000000000000000"), f"CapEff: {st['CapEff']}"
    assert (st["CapInh"], st["CapAmb"]) == ("0000000000000000",) * 2, st
    sink_roundtrip(fwd(rport), seed=2)
