"""What the tunnel negotiates, and that -v says it truthfully: each line is
checked against sshd's own account of the same key exchange (LogLevel
DEBUG3). The methods depend on the libssh2 relayd was built with: 1.10
has AES-CTR with plain HMACs; from 1.11.1 relayd offers AES-GCM and
encrypt-then-MAC too, and libssh2 strict key exchange; the patched 1.11.1
(make LIBSSH2=patched) offers AES-CTR before AES-GCM."""

import re

import pytest

from conftest import (free_port, fwd, libssh2_at_least, libssh2_patched, libssh2_version,
                      sink_roundtrip, upload_while_reading)

MiB = 1 << 20

DEBUG = ["LogLevel DEBUG3"]

# relayd -v: "kex K, host key H, cipher C, mac M, compression Z"
METHODS_RE = (r"kex (?P<kex>\S+), host key (?P<hostkey>\S+), cipher (?P<cipher>\S+), "
              r"mac (?P<mac>\S+|\(implicit\)), compression (?P<comp>\S+)$")


def sshd_kex(server):
    """sshd's view of the exchange: algorithm, host key algorithm, and the
    client->server cipher and MAC ("<implicit>" for an AEAD cipher)."""
    log = server.log()
    found = {
        "kex": re.search(r"kex: algorithm: (\S+)", log),
        "hostkey": re.search(r"kex: host key algorithm: (\S+)", log),
        "cs": re.search(r"kex: client->server cipher: (\S+) MAC: (\S+)", log),
    }
    assert all(found.values()), f"sshd did not log the exchange: {found}"
    return {"kex": found["kex"].group(1), "hostkey": found["hostkey"].group(1),
            "cipher": found["cs"].group(1), "mac": found["cs"].group(2)}


def methods_line(t, sink):
    rport = free_port()
    t = t("-v", "-R", f"{rport}:{sink.spec}")
    sink_roundtrip(fwd(rport))
    said = t.lines(METHODS_RE)
    assert len(said) == 1, "no single line naming the negotiated methods"
    return said[0]


def assert_same_as_sshd(said, server):
    seen = sshd_kex(server)
    assert said["kex"] == seen["kex"]
    assert said["hostkey"] == seen["hostkey"]
    assert said["cipher"] == seen["cipher"]
    assert said["mac"] == ("(implicit)" if seen["mac"] == "<implicit>" else seen["mac"])


def test_verbose_names_methods(tunnel, make_sshd, sink):
    """With sshd's defaults: AES-GCM, whose MAC is built in (so no MAC name
    is made up), from libssh2 1.11.1; aes128-ctr with hmac-sha2-256 before;
    aes128-ctr with the EtM MAC with the patched 1.11.1."""
    server = make_sshd(config=DEBUG)
    said = methods_line(lambda *a, **kw: tunnel(*a, server=server, **kw), sink)
    assert_same_as_sshd(said, server)
    assert said["kex"] == "curve25519-sha256"
    if libssh2_patched():
        assert (said["cipher"], said["mac"]) == ("aes128-ctr",
                                                 "hmac-sha2-256-etm@openssh.com")
    elif libssh2_at_least(1, 11, 1):
        assert (said["cipher"], said["mac"]) == ("aes128-gcm@openssh.com", "(implicit)")
    else:
        assert (said["cipher"], said["mac"]) == ("aes128-ctr", "hmac-sha2-256")


def test_etm_mac_preferred(tunnel, make_sshd, sink):
    """A server that allows only AES-CTR: from libssh2 1.11.1 relayd picks
    the encrypt-then-MAC form of hmac-sha2-256; 1.10 has only the plain one."""
    server = make_sshd(config=DEBUG + ["Ciphers aes128-ctr,aes256-ctr"])
    said = methods_line(lambda *a, **kw: tunnel(*a, server=server, **kw), sink)
    assert_same_as_sshd(said, server)
    assert said["cipher"] == "aes128-ctr"
    want = "hmac-sha2-256-etm@openssh.com" if libssh2_at_least(1, 11, 1) else "hmac-sha2-256"
    assert said["mac"] == want


def test_strict_kex(tunnel, make_sshd, sink):
    """Strict key exchange (against the Terrapin prefix truncation) comes
    with libssh2 1.11.1, which adds its marker to our own kex list; before
    that, sshd must see no such marker from relayd."""
    server = make_sshd(config=DEBUG)
    methods_line(lambda *a, **kw: tunnel(*a, server=server, **kw), sink)
    strict = "will use strict KEX ordering" in server.log()
    version = ".".join(map(str, libssh2_version()))
    assert strict == libssh2_at_least(1, 11, 1), \
        f"strict kex {'on' if strict else 'off'} with libssh2 {version}"


OFFERED = ["aes128-ctr", "aes192-ctr", "aes256-ctr"]
OFFERED_1_11_1 = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]


@pytest.mark.parametrize("cipher", OFFERED + OFFERED_1_11_1)
def test_each_cipher_carries_bytes_both_ways(tunnel, make_sshd, backends, cipher):
    """Each cipher relayd offers, alone on the server, moves 8 MiB each way
    intact: with the patched libssh2 the CTR ciphers go a run of blocks per
    call and AES-GCM still a block per call, both directions."""
    if cipher in OFFERED_1_11_1 and not libssh2_at_least(1, 11, 1):
        pytest.skip(f"libssh2 {'.'.join(map(str, libssh2_version()))} has no {cipher}")
    server = make_sshd(config=DEBUG + [f"Ciphers {cipher}"])
    target = backends.pump(8 * MiB, seed=31)
    rport = free_port()
    t = tunnel("-v", "-R", f"{rport}:{target.spec}", server=server)
    with fwd(rport).connect() as s:
        sent, got = upload_while_reading(s, 32, 8 * MiB)
    [rec] = target.wait_done(1)
    assert rec.get("received") == sent, "server side -> backend stream differs"
    assert got == rec.get("sent"), "backend -> server side stream differs"
    [said] = t.lines(METHODS_RE)
    assert said["cipher"] == cipher
