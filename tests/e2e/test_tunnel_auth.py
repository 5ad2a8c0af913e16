"""Public-key authentication with the keys people have (ed25519, ecdsa,
passphrase-protected), and the distinct exit codes of each way it can go
wrong before the tunnel ever runs."""

import re

import pytest

from conftest import free_port, fwd, libssh2_at_least, run_relayd, sink_roundtrip

EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_NOPERM = 64, 65, 66, 77


def test_key_not_authorized(tunnel, sshd, sink):
    rport = free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}", identity=sshd.stranger, up=False, ready=False)
    assert t.relayd.wait_exit(10) == EX_NOPERM
    said = [ln for ln in t.relayd.log().splitlines() if "root" in ln and "refused" in ln]
    assert said, "no line naming the user and 'refused'"
    assert not t.lines(r"forward .* up\b")


def test_ecdsa_key(tunnel, sshd, sink):
    rport = free_port()
    tunnel("-R", f"{rport}:{sink.spec}", identity=sshd.keys["ecdsa"])
    sink_roundtrip(fwd(rport))
    assert re.search(r"Accepted publickey for root .* ECDSA ", sshd.log())


def test_passphrase_protected_key(tunnel, sshd, sink):
    rport = free_port()
    tunnel("-R", f"{rport}:{sink.spec}", "--identity-passphrase-file", sshd.passphrase_file,
           identity=sshd.keys["passphrase"])
    sink_roundtrip(fwd(rport))


def test_wrong_passphrase(tunnel, sshd, sink, tmp_path):
    wrong = tmp_path / "wrong-passphrase"
    wrong.write_text("not the passphrase")
    wrong.chmod(0o600)
    t = tunnel("-R", f"{free_port()}:{sink.spec}", "--identity-passphrase-file", wrong,
               identity=sshd.keys["passphrase"], up=False, ready=False)
    assert t.relayd.wait_exit(10) == EX_DATAERR


def test_identity_file_missing(tunnel, sink, tmp_path):
    t = tunnel("-R", f"{free_port()}:{sink.spec}", identity=tmp_path / "no-such-key",
               up=False, ready=False)
    assert t.relayd.wait_exit(10) == EX_NOINPUT


@pytest.mark.parametrize("spec", ["10080:127.0.0.1", "99999:127.0.0.1:80", "x:127.0.0.1:80"])
def test_malformed_remote_spec(sshd, spec):
    p = run_relayd("--ssh", sshd.dest(), "-R", spec, "--identity", sshd.keys["ed25519"],
                   "--known-hosts", sshd.write_known_hosts("good"))
    assert p.returncode == EX_USAGE, f"exit {p.returncode}, stderr {p.stderr!r}"
    assert any(spec in ln for ln in p.stderr.splitlines()), p.stderr
    assert "Connection from" not in sshd.log(), "relayd connected despite the bad spec"


def test_rsa_key(tunnel, sshd, sink):
    """OpenSSH 8.8 and later take RSA signatures only with SHA-2 (rsa-sha2-*).
    libssh2 1.11 makes them, asked for through server-sig-algs; 1.10 signs
    with ssh-rsa (SHA-1) alone, so the server refuses the key, and the one
    line saying so names the key as RSA and what to use instead."""
    rsa = sshd.authorize("rsa")
    rport = free_port()
    if libssh2_at_least(1, 11):
        tunnel("-R", f"{rport}:{sink.spec}", identity=rsa)
        sink_roundtrip(fwd(rport))
        assert re.search(r"Accepted publickey for root .* RSA ", sshd.log())
        return
    t = tunnel("-R", f"{rport}:{sink.spec}", identity=rsa, up=False, ready=False)
    assert t.relayd.wait_exit(10) == EX_NOPERM
    said = t.lines(rf"server refused every key of user root; key {re.escape(str(rsa))} is "
                   r"RSA, which libssh2 1\.10\.\d+ signs only with ssh-rsa \(SHA-1\), refused "
                   r"by default since OpenSSH 8\.8 \(the server is OpenSSH_[\w.]+\): use an "
                   r"ed25519 or ecdsa key$")
    assert len(said) == 1, "no single line saying why the RSA key was refused"
    assert "Accepted publickey" not in sshd.log()
