"""Public-key authentication with the keys people have (ed25519, ecdsa,
passphrase-protected), and the distinct exit codes of each way it can go
wrong before the tunnel ever runs."""

import re

import pytest

from conftest import free_port, fwd, run_relayd, sink_roundtrip

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
