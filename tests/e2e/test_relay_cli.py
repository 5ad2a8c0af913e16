"""The command line: --help, --version, and every way to get it wrong, each
with its sysexits code and exactly one "relayd: " line naming the problem."""

import re
import socket

import pytest

from conftest import free_port, run_relayd, sink_roundtrip_when_up, tcp4

EX_USAGE, EX_NOUSER, EX_NOHOST, EX_UNAVAILABLE = 64, 67, 68, 69

TO = "127.0.0.1:9"      # a well-formed target where the target is not the point


def assert_one_error(proc, codes, needle):
    """proc exited by itself with one of codes, and said why in one line
    starting "relayd: " that matches the regex needle."""
    codes = codes if isinstance(codes, tuple) else (codes,)
    where = f"exit {proc.returncode}, stderr {proc.stderr!r}"
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}; {where}"
    assert proc.returncode in codes, f"wanted exit {codes}; {where}"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"wanted exactly one stderr line; {where}"
    assert lines[0].startswith("relayd: "), where
    assert re.search(needle, lines[0]), f"the line does not name /{needle}/; {where}"


def test_help():
    p = run_relayd("--help")
    assert p.returncode == 0, p
    assert "--listen" in p.stdout and "--to" in p.stdout, p.stdout


def test_verbose_and_quiet_accepted(relayd, sink):
    # Their effect on the log is not part of the contract; that they start
    # a working relay is.
    for flag in ("-v", "--verbose", "-q", "--quiet"):
        port = free_port()
        r = relayd(flag, "--listen", f"127.0.0.1:{port}", "--to", sink.spec, ready=False)
        # -q may silence "ready": wait for the port instead.
        sink_roundtrip_when_up(tcp4(port), r)
        r.stop()


def test_version():
    p = run_relayd("--version")
    assert p.returncode == 0, p
    # The second line: the libssh2 relayd was built with (and the one it
    # loads, when they differ), which decides what its tunnels can do.
    assert re.fullmatch(r"relayd \d+\.\d+\.\d+\nlibssh2 \d+\.\d+\.\d+"
                        r"( \(running \d+\.\d+\.\d+\))?\n", p.stdout), repr(p.stdout)


@pytest.mark.parametrize("args, needle", [
    pytest.param(["--listen", "0", "--to", TO], r"\b0\b", id="listen-port-0"),
    pytest.param(["--listen", "65536", "--to", TO], "65536", id="listen-port-65536"),
    pytest.param(["--listen", "127.0.0.1:70000", "--to", TO], "70000", id="listen-addr-port-70000"),
    pytest.param(["--listen", "8080", "--to", "127.0.0.1:0"], r"127\.0\.0\.1:0\b", id="to-port-0"),
    pytest.param(["--listen", "80"], "--to", id="missing-to"),
    pytest.param(["--to", TO], "--listen", id="missing-listen"),
    pytest.param(["--bogus", "--listen", "8080", "--to", TO], "--bogus", id="unknown-option"),
    pytest.param(["--listen", "8080", "--to", "nonsense"], "nonsense", id="to-without-port"),
    pytest.param(["--listen", "::1:80", "--to", TO], "::1:80", id="listen-unbracketed-ipv6"),
    pytest.param(["--listen", "8080", "--to", "::1:80"], "::1:80", id="to-unbracketed-ipv6"),
    pytest.param(["--listen", "8080", "--to", TO, "--connect-timeout", "abc"], "abc",
                 id="connect-timeout-not-a-number"),
    pytest.param(["--listen", "8080", "--to", TO, "--max-conns", "many"], "many",
                 id="max-conns-not-a-number"),
    pytest.param(["--listen", "8080", "--to", TO, "--fork", "--ssh", "h", "-R", "1:h:2"],
                 "--fork", id="fork-with-ssh"),
    pytest.param(["--ssh", "h"], "forward", id="ssh-without-forward"),
    pytest.param(["-R", "1:h:2"], "--ssh", id="forward-without-ssh"),
])
def test_usage_error(args, needle):
    assert_one_error(run_relayd(*args), EX_USAGE, needle)


def test_listen_octet_out_of_range():
    # 999.1.1.1 is not an IPv4 address; the contract lists it as a bad input
    # without saying whether it is unparsable (64) or an unresolvable host
    # name (68), so either code is accepted, the one-line rule is not relaxed.
    p = run_relayd("--listen", "999.1.1.1:80", "--to", TO)
    assert_one_error(p, (EX_USAGE, EX_NOHOST), r"999\.1\.1\.1")


@pytest.mark.root
def test_listen_host_unresolvable(private_names):
    p = run_relayd("--listen", "no-such-host.invalid:8080", "--to", TO,
                   prefix=private_names.prefix)
    assert_one_error(p, EX_NOHOST, r"no-such-host\.invalid")


def test_address_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        p = run_relayd("--listen", f"127.0.0.1:{port}", "--to", TO)
    assert_one_error(p, EX_UNAVAILABLE, rf"\b{port}\b")


@pytest.mark.root
def test_unknown_user():
    p = run_relayd("--listen", f"127.0.0.1:{free_port()}", "--to", TO,
                   "--user", "no-such-user-xyz")
    assert_one_error(p, EX_NOUSER, "no-such-user-xyz")
