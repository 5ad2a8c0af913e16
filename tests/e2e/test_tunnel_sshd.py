"""The sshd fixture itself, checked with OpenSSH's own client: if these fail,
the other tunnel tests say nothing about relayd."""

import subprocess

from conftest import free_port, sink_roundtrip_when_up, tcp4


def ssh_client(sshd, known_hosts, *args):
    return ["ssh", "-F", "/dev/null", "-N", "-p", str(sshd.port),
            "-i", str(sshd.keys["ed25519"]), "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "ExitOnForwardFailure=yes", *args, "root@127.0.0.1"]


def roundtrip_when_up(addr):
    """A round trip through an ssh -R forward, once it is up."""
    return sink_roundtrip_when_up(addr, timeout=5, errors=(OSError, AssertionError))


def test_openssh_client_forwards_then_loses_its_session(sshd, sink):
    rport = free_port()
    ssh = subprocess.Popen(ssh_client(sshd, sshd.write_known_hosts("good"),
                                      "-R", f"{rport}:{sink.spec}"),
                           stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        roundtrip_when_up(tcp4(rport))
        assert sshd.kill_session_processes(), "no session process under the listener"
        assert ssh.wait(5) == 255
        assert sshd.running(), "the listener died with its sessions"
    finally:
        ssh.kill()
        ssh.wait()


def test_openssh_client_refuses_the_wrong_host_key(sshd):
    known = sshd.write_known_hosts("wrong")
    done = subprocess.run(ssh_client(sshd, known, "-o", "ConnectTimeout=5"),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    assert done.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in done.stderr, done.stderr
    assert sshd.fingerprint in done.stderr, done.stderr


def test_openssh_client_times_out_on_a_paused_sshd(sshd, sink):
    rport = free_port()
    ssh = subprocess.Popen(ssh_client(sshd, sshd.write_known_hosts("good"),
                                      "-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=2",
                                      "-R", f"{rport}:{sink.spec}"),
                           stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        roundtrip_when_up(tcp4(rport))
        frozen = sshd.pause()
        assert len(frozen) >= 2, f"paused only {frozen}: no session process"
        assert ssh.wait(10) == 255
        assert "Timeout, server" in ssh.stderr.read()
    finally:
        sshd.resume()
        ssh.kill()
        ssh.wait()


def test_restart_keeps_port_and_host_key(sshd, sink):
    sshd.restart()
    rport = free_port()
    ssh = subprocess.Popen(ssh_client(sshd, sshd.write_known_hosts("good"),
                                      "-R", f"{rport}:{sink.spec}"),
                           stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        roundtrip_when_up(tcp4(rport))
    finally:
        ssh.kill()
        ssh.wait()
