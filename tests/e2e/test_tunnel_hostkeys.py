"""The server's host key is checked against known_hosts before anything
else: unknown or changed, the tunnel refuses at first start (exit 77) and
opens nothing; --accept-new-host-key records an unknown key, never a
changed one."""

import subprocess

from conftest import free_port, fwd, libssh2_at_least, listening, sink_roundtrip, tcp4

EX_NOPERM = 77


def assert_refused_before_auth(t, sshd, rport, *words):
    """relayd exited 77 with a line naming the fingerprint and words, having
    opened no forward and not even authenticated."""
    assert t.relayd.wait_exit(10) == EX_NOPERM
    log = t.relayd.log()
    said = [ln for ln in log.splitlines()
            if "host key" in ln and sshd.fingerprint in ln and all(w in ln for w in words)]
    assert said, f"no line with 'host key', {words} and {sshd.fingerprint}"
    assert not t.lines(r"forward .* up\b"), "a forward came up"
    assert not listening(tcp4(rport)), f"something listens on the remote port {rport}"
    assert "Accepted publickey" not in sshd.log(), "relayd authenticated to an unchecked host"


def test_unknown_host_key_refused(tunnel, sshd, sink):
    rport = free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}", known_hosts=sshd.write_known_hosts("empty"),
               up=False, ready=False)
    assert_refused_before_auth(t, sshd, rport, "unknown")


def test_changed_host_key_refused(tunnel, sshd, sink):
    rport = free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}", known_hosts=sshd.write_known_hosts("wrong"),
               up=False, ready=False)
    assert_refused_before_auth(t, sshd, rport, "CHANGED")


def test_changed_host_key_refused_despite_accept_new(tunnel, sshd, sink):
    rport = free_port()
    known = sshd.write_known_hosts("wrong")
    t = tunnel("-R", f"{rport}:{sink.spec}", "--accept-new-host-key", known_hosts=known,
               up=False, ready=False)
    assert_refused_before_auth(t, sshd, rport, "CHANGED")
    assert known.read_text() == sshd.wrong_known_hosts_line(), "known_hosts was rewritten"


def test_accept_new_host_key_records_it(tunnel, sshd, sink):
    known = sshd.write_known_hosts("empty")
    rport = free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}", "--accept-new-host-key", known_hosts=known)
    sink_roundtrip(fwd(rport))
    # OpenSSH finds the recorded line, hashed or not, with this server's key.
    found = subprocess.run(["ssh-keygen", "-F", sshd.host_pattern(), "-f", str(known)],
                           capture_output=True, text=True)
    key = sshd.known_hosts_line().split(None, 1)[1].strip()
    assert found.returncode == 0 and key in found.stdout, \
        f"known_hosts after --accept-new-host-key: {known.read_text()!r}"
    t.relayd.stop()
    # And the file is now enough on its own.
    rport2 = free_port()
    tunnel("-R", f"{rport2}:{sink.spec}", known_hosts=known)
    sink_roundtrip(fwd(rport2))


def test_hashed_known_hosts_line(tunnel, sshd, sink):
    """A line hashed by ssh-keygen -H is found like a plain one."""
    known = sshd.write_known_hosts("good")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True,
                   capture_output=True)
    assert known.read_text().startswith("|1|"), known.read_text()
    rport = free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}", known_hosts=known)
    sink_roundtrip(fwd(rport))
    assert "malformed" not in t.relayd.log(), "a well-formed hashed line was dropped"


def test_malformed_hashed_line_ignored(tunnel, sshd, sink):
    """A hashed line libssh2 would leak on is named and skipped once, at
    start; the good line after it still lets the tunnel up."""
    known = sshd.dir / "known_hosts.malformed"
    key = sshd.known_hosts_line().split(None, 1)[1]
    known.write_text(f"|1|xx|yy {key}" + sshd.known_hosts_line())
    rport = free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}", known_hosts=known)
    sink_roundtrip(fwd(rport))
    assert f"relayd: {known}:1: malformed hashed host name, line ignored" in t.relayd.log()


def test_rsa_host_key(tunnel, make_sshd, sink):
    """A server whose only host key is RSA shows it, from OpenSSH 8.8 on, with
    SHA-2 signatures alone. libssh2 1.11 checks those (rsa-sha2-512 first);
    1.10 knows only ssh-rsa, so the handshake finds no host key algorithm in
    common, and relayd says why and keeps retrying as after any failed
    handshake."""
    server = make_sshd(host_key_type="rsa")
    rport = free_port()
    if libssh2_at_least(1, 11):
        t = tunnel("-v", "-R", f"{rport}:{sink.spec}", server=server)
        sink_roundtrip(fwd(rport))
        assert t.lines(r"kex \S+, host key rsa-sha2-512, "), "host key not checked as rsa-sha2-512"
        return
    t = tunnel("-R", f"{rport}:{sink.spec}", server=server, up=False, ready=False)
    t.wait(r"handshake failed: .*; the only key known for the host is RSA, which libssh2 "
           r"1\.10\.\d+ checks only as ssh-rsa \(SHA-1\), no longer offered by OpenSSH 8\.8 "
           r"and later: add the server's ed25519 or ecdsa key to known hosts$")
    t.wait(r"next attempt in ")
    assert t.relayd.alive(), "relayd gave up instead of retrying"
    assert "Accepted publickey" not in server.log()
