"""Bytes go through untouched, both ways, whatever the volume, the number of
connections, the half-closes and the address families on either side."""

import re
import socket

import pytest

from conftest import (Background, assert_spliced, sink_roundtrips_at_once, local_spec, payload, digest_of, free_port,
                      recv_all, recv_until_eof, send_stream, sink_reply,
                      sink_roundtrip, tcp4, tcp6, unix)

MiB = 1 << 20


def test_64mib_each_way_at_once(relayd, backends):
    target = backends.pump(64 * MiB, seed=11)
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", target.spec)
    with tcp4(port).connect() as s:
        me = local_spec(s)

        def upload():
            sent = send_stream(s, 12, 64 * MiB)
            s.shutdown(socket.SHUT_WR)
            return sent
        uploader = Background(upload)
        got = recv_all(s)
        sent = uploader.result()
    [rec] = target.wait_done(1)
    assert rec.get("received") == sent, "client -> target stream differs"
    assert got == rec.get("sent"), "target -> client stream differs"
    c = r.wait_conn(me)
    assert (c["inb"], c["outb"], c["end"]) == (64 * MiB, 64 * MiB, "eof"), c["line"]
    assert_spliced(c)


def test_200_concurrent_connections(relayd, sink):
    n = 200
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", sink.spec)
    socks = [tcp4(port).connect() for _ in range(n)]     # all open at once
    try:
        sent = sink_roundtrips_at_once(socks, 1000)     # distinct per connection
    finally:
        for s in socks:
            s.close()
    received = [rec["received"] for rec in sink.wait_done(n)]
    assert sorted(received) == sorted(sent)
    conns = r.wait_conns(n)
    assert [c["end"] for c in conns] == ["eof"] * n


def test_half_close_from_client(relayd, sink):
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", sink.spec)
    data = payload(3, 12345)
    with tcp4(port).connect() as s:
        me = local_spec(s)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        # The sink answers only after it has seen EOF, then closes.
        answer = recv_until_eof(s)
    assert answer == sink_reply(digest_of(data))
    c = r.wait_conn(me)
    assert c["target"] == sink.spec, c["line"]
    assert (c["inb"], c["outb"], c["end"]) == (len(data), len(answer), "eof"), c["line"]
    assert_spliced(c, bulk=False)


def test_half_close_from_target(relayd, backends):
    # The target sends 1000 bytes and shuts down its side first; the client
    # sees that EOF and can still send, and the target gets all of it.
    target = backends.pump(1000, seed=4)
    port = free_port()
    r = relayd("--listen", f"127.0.0.1:{port}", "--to", target.spec)
    with tcp4(port).connect() as s:
        me = local_spec(s)
        got = recv_all(s)
        sent = send_stream(s, 5, 300_000)
        s.shutdown(socket.SHUT_WR)
        assert s.recv(1) == b""
    [rec] = target.wait_done(1)
    assert got == rec["sent"]
    assert rec["received"] == sent
    c = r.wait_conn(me)
    assert (c["inb"], c["outb"], c["end"]) == (300_000, 1000, "eof"), c["line"]
    assert_spliced(c, bulk=False)


FAMILIES = {"ipv4": tcp4, "ipv6": tcp6, "unix": None}


def _endpoint(kind, sockdir, name, port):
    return unix(sockdir / f"{name}.sock") if kind == "unix" else FAMILIES[kind](port)


@pytest.mark.parametrize("target_kind", FAMILIES)
@pytest.mark.parametrize("listen_kind", FAMILIES)
def test_families(relayd, backends, sockdir, listen_kind, target_kind):
    target = backends.sink(_endpoint(target_kind, sockdir, "target", 0))
    listen = _endpoint(listen_kind, sockdir, "relay", free_port())
    r = relayd("--listen", listen.spec, "--to", target.spec)
    r.wait_log(rf"^relayd: listening on {re.escape(listen.spec)}$", timeout=0)
    me = sink_roundtrip(listen, seed=6, nbytes=300_000)
    [c] = r.wait_conns(1)
    if me:
        assert c["client"] == me, c["line"]
    assert (c["target"], c["inb"], c["end"]) == (target.spec, 300_000, "eof"), c["line"]
    # Only TCP to TCP is spliced; unix sockets are copied.
    tcp_only = "unix" not in (listen_kind, target_kind)
    if tcp_only:
        assert_spliced(c, bulk=False)
    else:
        assert "spliced=" not in c["line"], c["line"]


def test_port_alone_listens_dual_stack(relayd, sink):
    port = free_port()
    r = relayd("--listen", str(port), "--to", sink.spec)
    sink_roundtrip(tcp4(port), seed=7)
    sink_roundtrip(tcp6(port), seed=8)
    assert len(sink.wait_done(2)) == 2
    r.wait_log(rf"^relayd: listening on \*:{port}$", timeout=0)


def test_several_listeners(relayd, sink, sockdir):
    listens = [tcp4(free_port()), tcp6(free_port()), unix(sockdir / "relay.sock")]
    args = [a for l in listens for a in ("--listen", l.spec)]
    r = relayd(*args, "--to", sink.spec)
    for i, l in enumerate(listens):
        r.wait_log(rf"^relayd: listening on {re.escape(l.spec)}$", timeout=0)
        sink_roundtrip(l, seed=i)
    assert len(sink.wait_done(3)) == 3
