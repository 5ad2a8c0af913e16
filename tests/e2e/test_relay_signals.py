"""Signals: SIGTERM and SIGINT end relayd cleanly and promptly even with live
connections; SIGPIPE from a vanished client never kills it."""

import os
import re
import signal
import socket
import struct

import pytest

from conftest import (echo_roundtrip, free_port, local_spec, recv_all, recv_exact,
                      tcp4, unix, wait_closed)

MiB = 1 << 20


@pytest.mark.parametrize("sig, drain", [(signal.SIGTERM, "0"), (signal.SIGTERM, "1"),
                                        (signal.SIGINT, "10")],
                         ids=["SIGTERM-no-drain", "SIGTERM-drain-1s", "SIGINT"])
def test_signal_with_live_connection(relayd, echo, sig, drain):
    """SIGINT ends at once; SIGTERM waits for live connections at most
    --drain-timeout seconds, then closes them."""
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", echo.spec, "--drain-timeout", drain)
    with tcp4(port).connect() as s:
        me = local_spec(s)
        echo_roundtrip(s)
        r.stop(sig, within=2.5)
        wait_closed(s, 1.0)
    assert r.wait_conn(me)["end"] == "shutdown"


def test_sigterm_drain_lets_a_transfer_finish(relayd, echo):
    """A connection in the middle of its work when SIGTERM arrives keeps
    being served (new ones are not accepted) and relayd exits 0 once it
    ends, before the drain timeout."""
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", echo.spec, "--drain-timeout", "20")
    with tcp4(port).connect() as s:
        me = local_spec(s)
        echo_roundtrip(s)
        os.kill(r.pid, signal.SIGTERM)
        r.wait_log(r"draining 1 connections", timeout=5)
        with pytest.raises(OSError):
            with tcp4(port).connect(timeout=1) as late:
                late.sendall(b"x")
                assert late.recv(1) == b"", "a new connection was served while draining"
        echo_roundtrip(s)            # still served
        s.shutdown(socket.SHUT_WR)
        recv_all(s)
    r.expected_exit = True
    assert r.wait_exit(5) == 0, "relayd did not exit 0 once the last connection ended"
    assert r.wait_conn(me)["end"] == "eof"


def test_sighup_keeps_serving(relayd, echo):
    """A hangup (a closed terminal, a reflexive reload) is not a reason to
    die: the relay logs it and carries on."""
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", echo.spec)
    os.kill(r.pid, signal.SIGHUP)
    r.wait_log(r"SIGHUP", timeout=5)
    assert r.alive()
    with tcp4(port).connect() as s:
        echo_roundtrip(s)
    r.stop(signal.SIGTERM, within=2.0)


def test_signal_when_idle(relayd, echo):
    r = relayd("--listen", f"127.0.0.1:{free_port()}", "--to", echo.spec)
    r.stop(signal.SIGTERM, within=2.0)


# Over TCP the client's RST makes relayd's next send fail (ECONNRESET, then
# EPIPE); over a unix socket a send to a closed peer is EPIPE at once. Either
# raises SIGPIPE unless relayd ignores it or sends with MSG_NOSIGNAL.
@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_client_gone_while_target_writes(relayd, backends, sockdir, family):
    target = backends.pump(64 * MiB, seed=31)
    listen = tcp4(free_port()) if family == "tcp" else unix(sockdir / "relay.sock")
    r = relayd("--listen", listen.spec, "--to", target.spec)
    for i in range(5):
        s = listen.connect()
        s.sendall(b"x" * 1000)
        recv_exact(s, 65536)        # the target's data is flowing through relayd
        if family == "tcp":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()                   # gone while relayd still has data for it
        end = r.wait_conns(i + 1)[i]["end"]
        assert re.fullmatch(r"client (reset|error: .+)", end), f"connection {i}: end={end}"
        assert r.alive(), f"relayd died after client {i} went away"
    with listen.connect() as s:
        s.shutdown(socket.SHUT_WR)
        got = recv_all(s)
    rec = target.wait_done(6, clean=False)[-1]
    assert got == rec["sent"]
