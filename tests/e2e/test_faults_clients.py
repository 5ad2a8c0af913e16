"""Fault suite, clients that misbehave: killed mid-transfer, cut off
without a word, a hundred thousand of them one after the other, and a
flood from a denied source. relayd runs in the relay namespace, clients in
the client namespace, targets in the server namespace; what relayd holds
is read from /proc (its fds, its VmRSS, and the TCP sockets of its
namespace)."""

import re
import signal
import subprocess
import time

import pytest

from conftest import echo_stream
from netns import (PYTHON, fd_count, in_netns, ns_addr, rss_kib, socket_inodes,
                   tcp_sockets, wait_for)

RELAY_PORT = 8000
ECHO_PORT = 9000
CLOSE_WITHIN = 10           # s for relayd to let go of a dead client's connection
IDLE_TIMEOUT = 3            # --idle-timeout for the cut-off client
MiB = 1 << 20

# A client that streams both ways until it is killed.
STREAMER = """
import socket, sys, threading
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
block = bytes(range(256)) * 256
threading.Thread(target=lambda: [s.sendall(block) for _ in iter(int, 1)], daemon=True).start()
while s.recv(1 << 16):
    pass
"""


def relay_sockets(relayd, port):
    """relayd's namespace's TCP sockets on the relay port (accepted client
    connections and their remains), each marked with whether relayd holds it."""
    mine = socket_inodes(relayd.pid)
    return [dict(s, held=s["inode"] in mine) for s in tcp_sockets(relayd.pid)
            if s["local"].endswith(f":{port}") and s["state"] != "LISTEN"]


def settled(relayd, baseline_fds, port):
    """True once relayd is back to its idle fds and holds no connection on
    port, and nothing on port is in CLOSE_WAIT."""
    socks = relay_sockets(relayd, port)
    return (fd_count(relayd.pid) == baseline_fds
            and not any(s["held"] or s["state"] == "CLOSE_WAIT" for s in socks))


def start_hop(net, ns_relayd, backends, *args):
    """A pump target (sends without end while reading) in the server
    namespace, relayd in front of it. Returns (relayd, target)."""
    with in_netns(net.ns["server"]):
        target = backends.pump(1 << 40, addr=ns_addr(net, "server"), seed=5)
    r = ns_relayd("relay", "--listen", f"{net.addr['relay']}:{RELAY_PORT}", "--to",
                  target.spec, *args)
    return r, target


def wait_streaming(target, nbytes=4 * MiB):
    assert wait_for(lambda: target.records and target.records[0].get("sent_so_far", 0) > nbytes,
                    timeout=30), "the transfer never got going"


def test_client_killed_mid_transfer(net, ns_relayd, backends, figures):
    r, target = start_hop(net, ns_relayd, backends)
    idle_fds = fd_count(r.pid)
    client = net.popen("client", [PYTHON, "-c", STREAMER, net.addr["relay"], RELAY_PORT])
    wait_streaming(target)
    states = sorted({s["state"] for s in relay_sockets(r, RELAY_PORT)})
    client.send_signal(signal.SIGKILL)
    client.wait()
    killed = time.monotonic()
    ok = wait_for(lambda: settled(r, idle_fds, RELAY_PORT), timeout=CLOSE_WITHIN)
    took = time.monotonic() - killed
    left = relay_sockets(r, RELAY_PORT)
    [c] = r.wait_conns(1)
    figures(f"client SIGKILLed mid-transfer ({c['inb'] // MiB} MiB in, {c['outb'] // MiB} MiB "
            f"out): relayd closed it after {took:.2f} s, end={c['end']}; relay-side sockets "
            f"before {states}, after {[s['state'] for s in left]}")
    assert ok, f"after {CLOSE_WITHIN} s: relayd fds {fd_count(r.pid)} (idle {idle_fds}), " \
               f"sockets {left}"


def test_client_cut_off_mid_transfer(net, ns_relayd, backends, figures):
    # A client that vanishes silently (no FIN, no RST) leaves relayd nothing
    # to read and a send queue that never drains; only --idle-timeout ends
    # the connection (without it relayd keeps it until the kernel gives up
    # retransmitting, tcp_retries2, about 15 minutes).
    r, target = start_hop(net, ns_relayd, backends, "--idle-timeout", IDLE_TIMEOUT)
    idle_fds = fd_count(r.pid)
    client = net.popen("client", [PYTHON, "-c", STREAMER, net.addr["relay"], RELAY_PORT])
    wait_streaming(target)
    net.cut("client")
    cut = time.monotonic()
    ok = wait_for(lambda: settled(r, idle_fds, RELAY_PORT), timeout=IDLE_TIMEOUT + CLOSE_WITHIN)
    took = time.monotonic() - cut
    left = relay_sockets(r, RELAY_PORT)
    [c] = r.wait_conns(1)
    figures(f"client cut off mid-transfer, --idle-timeout {IDLE_TIMEOUT}: relayd closed it "
            f"after {took:.2f} s, end={c['end']}; left in the relay namespace: "
            f"{[s['state'] for s in left]} (kernel orphans, no process holds them)")
    assert ok, f"after {IDLE_TIMEOUT + CLOSE_WITHIN} s: relayd fds {fd_count(r.pid)} " \
               f"(idle {idle_fds}), sockets {left}"
    assert c["end"] == "idle timeout", c["line"]
    client.kill()


SHORT_CONNS = 100_000
WARMUP_CONNS = 2_000
FLOOD_THREADS = 8
RSS_TOLERANCE_KIB = 1024


def flood(net, shortconn, count, threads=FLOOD_THREADS, size=64):
    cmd = [shortconn, "client", net.addr["relay"], RELAY_PORT, count, threads, size]
    done = subprocess.run([*net.prefix("client"), *map(str, cmd)], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, f"shortconn: {done.stdout.strip()} {done.stderr.strip()}"
    return done.stdout.strip()


@pytest.mark.time_limit(900)
def test_100k_short_connections(net, ns_relayd, shortconn, figures):
    echo = net.popen("server", [shortconn, "echo", net.addr["server"], ECHO_PORT, 16],
                     stdout=subprocess.PIPE, text=True)
    assert echo.stdout.readline().startswith("ready"), "shortconn echo did not start"
    r = ns_relayd("relay", "--listen", f"{net.addr['relay']}:{RELAY_PORT}", "--to",
                  f"{net.addr['server']}:{ECHO_PORT}", "--quiet", ready=False, flat_rss=True)
    assert wait_for(lambda: any(s["state"] == "LISTEN" for s in tcp_sockets(r.pid)
                                if s["local"].endswith(f":{RELAY_PORT}")), timeout=10)
    flood(net, shortconn, WARMUP_CONNS)
    assert wait_for(lambda: settled(r, fd_count(r.pid), RELAY_PORT), timeout=CLOSE_WITHIN)
    fds0, rss0 = fd_count(r.pid), rss_kib(r.pid)
    t0 = time.monotonic()
    out = flood(net, shortconn, SHORT_CONNS)
    secs = time.monotonic() - t0
    assert wait_for(lambda: settled(r, fds0, RELAY_PORT), timeout=CLOSE_WITHIN), \
        f"relayd fds {fd_count(r.pid)} (idle {fds0}), sockets {relay_sockets(r, RELAY_PORT)}"
    fds, rss = fd_count(r.pid), rss_kib(r.pid)
    figures(f"{SHORT_CONNS} short connections ({FLOOD_THREADS} threads, 64 B echoed each) in "
            f"{secs:.1f} s ({SHORT_CONNS / secs:.0f}/s), shortconn: {out}; relayd fds {fds0} -> "
            f"{fds}, VmRSS {rss0} -> {rss} KiB (tolerance {RSS_TOLERANCE_KIB} KiB)")
    assert fds == fds0
    assert rss - rss0 <= RSS_TOLERANCE_KIB, f"VmRSS grew {rss - rss0} KiB"
    r.stop(within=10)           # under ASan, LeakSanitizer runs at exit


def passive_opens(pid):
    """TCP connections accepted so far in pid's namespace (/proc/PID/net/snmp)."""
    with open(f"/proc/{pid}/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("PassiveOpens")])


DENIED = "10.77.1.3"
ALLOWED_ROUNDS = 20
FLOOD_CONNS = 20_000


@pytest.mark.time_limit(300)
def test_denied_flood_never_starves_an_allowed_client(net, ns_relayd, backends, shortconn,
                                                      figures):
    net.add_address("client", DENIED)
    with in_netns(net.ns["server"]):
        target = backends.echo(addr=ns_addr(net, "server"))
    relay = net.addr["relay"]
    r = ns_relayd("relay", "--listen", f"{relay}:{RELAY_PORT}", "--to", target.spec,
                  "--deny", f"{DENIED}/32")
    flood = net.popen("client", [shortconn, "client", relay, RELAY_PORT, 10 ** 9,
                                 FLOOD_THREADS, 64, DENIED],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: passive_opens(r.pid) > 1000, timeout=30), "no flood"
        opened = passive_opens(r.pid)
        t0 = time.monotonic()
        rounds = 0
        # Served all along: every round trip of the allowed client works
        # while the flood goes on, until FLOOD_CONNS denied ones went by.
        while rounds < ALLOWED_ROUNDS or passive_opens(r.pid) - opened < FLOOD_CONNS:
            with net.connect("client", relay, RELAY_PORT) as s:
                echo_stream(s, seed=rounds, nbytes=64 << 10)
            rounds += 1
        secs = time.monotonic() - t0
        during = passive_opens(r.pid) - opened - rounds
    finally:
        flood.kill()
        flood.wait()
    peers = {rec["peer"][0] for rec in target.records}
    r.wait_log(rf"^relayd: refused {re.escape(DENIED)}:\d+: denied by --deny "
               rf"{re.escape(DENIED)}/32$", timeout=0)
    figures(f"denied flood from {DENIED}: {during} connections accepted and denied in "
            f"{secs:.1f} s, meanwhile {rounds} allowed 64 KiB echo round trips, all sha256 ok")
    assert len(target.records) == rounds, f"{len(target.records)} reached the target"
    assert peers == {relay}
