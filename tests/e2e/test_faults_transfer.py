"""Fault suite, transfers: multi-MiB streams both ways through a relay hop
and through the relay -> sshd -> tunnel -R chain, while every packet
between the namespaces is delayed, lost, reordered or duplicated (each
alone, then all together). The bytes must arrive intact (length and
SHA-256 at both ends); how long it took is only reported."""

import time

import pytest

from conftest import upload_while_reading
from netns import in_netns, ns_addr, start_tunnel

MiB = 1 << 20
NBYTES = 4 * MiB
RELAY_PORT = 8000
REMOTE_PORT = 10080

# One-way figures per pass through the router; a relay hop crosses it twice
# each way (client -> relay, relay -> server).
PROFILES = {
    "latency": dict(delay=10),
    "loss": dict(loss=0.02),
    "reordering": dict(reorder=0.10, reorder_by=4),
    "duplication": dict(dup=0.05),
    "all": dict(delay=5, jitter=2, loss=0.01, dup=0.02, reorder=0.05, reorder_by=4),
}


def transfer(net, host, port, seed):
    """Streams NBYTES up while reading the target's NBYTES down; returns
    (sent, received, seconds, milliseconds the TCP handshake took: one round
    trip through the router, the delay applied both ways)."""
    t0 = time.monotonic()
    with net.connect("client", host, port) as s:
        handshake_ms = (time.monotonic() - t0) * 1000
        sent, got = upload_while_reading(s, seed, NBYTES)
    return sent, got, time.monotonic() - t0, handshake_ms


def check(target, sent, got):
    [rec] = target.wait_done(1, timeout=30)
    assert rec["received"] == sent, f"target got {rec['received']}, client sent {sent}"
    assert got == rec["sent"], f"client got {got}, target sent {rec['sent']}"


@pytest.mark.parametrize("profile", PROFILES)
def test_hop_transfer_under_faults(net, ns_relayd, backends, figures, profile):
    with in_netns(net.ns["server"]):
        target = backends.pump(NBYTES, addr=ns_addr(net, "server"), seed=31)
    relay = net.addr["relay"]
    ns_relayd("relay", "--listen", f"{relay}:{RELAY_PORT}", "--to", target.spec)
    with net.impaired(profile, seed=7, **PROFILES[profile]):
        sent, got, secs, rtt = transfer(net, relay, RELAY_PORT, seed=32)
    check(target, sent, got)
    figures(f"hop, {profile}: {NBYTES // MiB} MiB each way in {secs:.1f} s, sha256 intact "
            f"(client's TCP handshake {rtt:.1f} ms)")


@pytest.mark.parametrize("profile", PROFILES)
def test_tunnel_chain_transfer_under_faults(net, ns_relayd, ns_sshd, backends, figures,
                                            profile):
    # The README's chain: client -> relayd on the relay host -> sshd's -R
    # port there -> the SSH session -> relayd --ssh on the server host ->
    # the service on the server host's loopback.
    with in_netns(net.ns["server"]):
        target = backends.pump(NBYTES, seed=41)
    sshd = ns_sshd("relay")
    start_tunnel(net, ns_relayd, sshd, f"{REMOTE_PORT}:{target.spec}")
    relay = net.addr["relay"]
    ns_relayd("relay", "--listen", f"{relay}:{RELAY_PORT}", "--to",
              f"127.0.0.1:{REMOTE_PORT}")
    with net.impaired(profile, seed=8, **PROFILES[profile]):
        sent, got, secs, rtt = transfer(net, relay, RELAY_PORT, seed=42)
    check(target, sent, got)
    figures(f"chain, {profile}: {NBYTES // MiB} MiB each way in {secs:.1f} s, sha256 intact "
            f"(client's TCP handshake {rtt:.1f} ms)")
