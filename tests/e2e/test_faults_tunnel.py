"""Fault suite, the tunnel against a failing network and server: a silent
partition between relayd --ssh and sshd, and sshd killed and restarted
over and over. Both run the README's chain: client -> relayd on the relay
host -> sshd's -R port -> SSH session -> relayd --ssh on the server host ->
a sink on the server host's loopback."""

import time

import pytest

from conftest import SANITIZE, children_of
from netns import fd_count, in_netns, rss_kib, sink_roundtrip_from, start_tunnel

RELAY_PORT = 8000
REMOTE_PORT = 10080

# relayd's dead-peer logic (tunnel/tunnel.c keepalive_tick): a timer fires
# every --keepalive seconds; each tick with no byte from the server since
# the last one counts a miss and sends a probe (a channel open the server
# must answer); the tick that finds --keepalive-count misses declares the
# session lost. The first probe the partition swallows leaves within one
# keepalive of the cut, so the loss is logged at most (count + 1) x
# keepalive after it: with keepalive 1, inside the keepalive x
# count + 2 s.
KEEPALIVE, COUNT = 1, 3
DETECT_WITHIN = KEEPALIVE * COUNT + 2
RECOVER_WITHIN = 10
# The server's side of a partition: the session it still holds keeps the -R
# port bound, and a reconnected tunnel is refused that port until sshd lets
# the old session go. Only sshd can notice that its client is gone, so the
# server is configured as the README advises for -R tunnels.
SSHD_NOTICES_DEAD_CLIENTS = ("ClientAliveInterval 1", "ClientAliveCountMax 3")


def chain(net, ns_relayd, ns_sshd, backends, *tunnel_args, sshd_extra=(), **tunnel_kw):
    """Sink on the server host, sshd and the relay hop on the relay host,
    the tunnel between them. Returns (tunnel, sshd, spec)."""
    with in_netns(net.ns["server"]):
        target = backends.sink()
    sshd = ns_sshd("relay", extra=sshd_extra)
    spec = f"{REMOTE_PORT}:{target.spec}"
    t = start_tunnel(net, ns_relayd, sshd, spec, *tunnel_args, **tunnel_kw)
    ns_relayd("relay", "--listen", f"{net.addr['relay']}:{RELAY_PORT}", "--to",
              f"127.0.0.1:{REMOTE_PORT}")
    return t, sshd, spec


def through_chain(net, seed, nbytes=1 << 20):
    return sink_roundtrip_from(net, "client", net.addr["relay"], RELAY_PORT, seed, nbytes)


def test_silent_partition_detected_and_recovered(net, ns_relayd, ns_sshd, backends, figures):
    t, sshd, spec = chain(net, ns_relayd, ns_sshd, backends, "--keepalive", KEEPALIVE,
                          "--keepalive-count", COUNT, sshd_extra=SSHD_NOTICES_DEAD_CLIENTS)
    through_chain(net, seed=1)
    net.partition("relay", "server")
    cut = time.monotonic()
    t.wait(rf"lost: no answer to {COUNT} keepalives$", timeout=DETECT_WITHIN + 30)
    detected = time.monotonic() - cut
    # Stay cut through a whole connect attempt into the void: it must end
    # as "cannot connect" (retried within a second, with fresh SYNs), not
    # as a refusal that backs off further with every attempt.
    t.wait(r"connecting$", n=2, timeout=10)
    failed = t.wait(r"(cannot connect|lost|refused): .*$", n=2, timeout=60).group(0)
    assert failed.endswith("cannot connect: connect timeout"), failed
    time.sleep(3)               # into the next attempt: its SYN retries find the healed link
    dropped = net.dropped_packets()
    net.heal()
    healed = time.monotonic()
    t.wait_up("R", spec, n=2, timeout=RECOVER_WITHIN + 30)
    recovered = time.monotonic() - healed
    through_chain(net, seed=2)
    figures(f"partition: lost logged {detected:.2f} s after the cut (bound {DETECT_WITHIN} s "
            f"= keepalive {KEEPALIVE} x count {COUNT} + 2); cut for "
            f"{healed - cut:.1f} s ({dropped} packets dropped); forward up again "
            f"{recovered:.2f} s after healing (bound {RECOVER_WITHIN} s); sha256 transfer "
            f"through the chain after healing ok")
    assert detected <= DETECT_WITHIN, f"dead server noticed after {detected:.2f} s"
    assert recovered <= RECOVER_WITHIN, f"forward back {recovered:.2f} s after healing"


# A session that logged in and brought its forward up counts as a success
# however short it lived (tunnel.c lost_reason), so the 20 cycles stay on
# the reconnect-soon path without waiting between them.
RESTARTS = 20
# VmRSS may grow this much from after the first cycle to after the last. An
# ASan build's RSS also holds its allocator's and stack depot's own growth
# (about 60 KiB a cycle here, none of it in the plain build), so it gets
# more room; there LeakSanitizer, run when relayd exits at the end, is the
# leak check.
RSS_TOLERANCE_KIB = 3072 if SANITIZE else 512


def tunnel_worker(relayd_pid):
    """The process that runs the tunnels: the relay process's child (the
    keeper) has it as its one child."""
    [(keeper, _)] = children_of(relayd_pid)
    [(worker, _)] = children_of(keeper)
    return worker


@pytest.mark.time_limit(600)
def test_sshd_killed_and_restarted_20_times(net, ns_relayd, ns_sshd, backends, figures):
    t, sshd, spec = chain(net, ns_relayd, ns_sshd, backends, flat_rss=True)
    relayd = t.relayd
    baseline = None
    for cycle in range(1, RESTARTS + 1):
        through_chain(net, seed=cycle, nbytes=256 << 10)
        sshd.kill()
        sshd.start()
        t.wait_up("R", spec, n=cycle + 1, timeout=30)
        if cycle == 1:
            through_chain(net, seed=100)
            t.wait_conns(2)
            worker = tunnel_worker(relayd.pid)
            baseline = (fd_count(worker), rss_kib(worker))
    through_chain(net, seed=200)
    t.wait_conns(RESTARTS + 2)
    assert tunnel_worker(relayd.pid) == worker, "the tunnel process was restarted"
    fds, rss = fd_count(worker), rss_kib(worker)
    figures(f"sshd killed and restarted {RESTARTS} times: the tunnel process's fds "
            f"{baseline[0]} after cycle 1, {fds} after cycle {RESTARTS}; VmRSS {baseline[1]} "
            f"KiB -> {rss} KiB (tolerance {RSS_TOLERANCE_KIB} KiB); forward serves (sha256 ok)")
    assert fds == baseline[0], f"fds {baseline[0]} after the first restart, {fds} after the last"
    assert rss - baseline[1] <= RSS_TOLERANCE_KIB, f"VmRSS grew {rss - baseline[1]} KiB"
    relayd.stop(within=10)      # under ASan, LeakSanitizer runs at exit
