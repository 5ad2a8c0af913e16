"""Privileges: started as root relayd binds, then runs as --user with only
CAP_NET_BIND_SERVICE and no way back; unprivileged it needs a file capability
for a low port, and says how to get one when it has none."""

import pwd
import shutil
import subprocess

import pytest

from conftest import assert_dropped, run_relayd, sink_roundtrip, tcp4, RELAYD

pytestmark = pytest.mark.root

EX_NOPERM = 77
NOBODY = 65534


def test_root_drops_to_nobody(relayd, sink, low_port):
    r = relayd("--listen", f"127.0.0.1:{low_port}", "--to", sink.spec)
    assert_dropped(r.status(), NOBODY, NOBODY)
    sink_roundtrip(tcp4(low_port))
    assert_dropped(r.status(), NOBODY, NOBODY)


def test_user_option(relayd, sink, low_port):
    try:
        pw = pwd.getpwnam("daemon")
    except KeyError:
        pytest.skip("no user 'daemon' on this machine")
    r = relayd("--listen", f"127.0.0.1:{low_port}", "--to", sink.spec, "--user", "daemon")
    assert_dropped(r.status(), pw.pw_uid, pw.pw_gid)
    sink_roundtrip(tcp4(low_port))


def test_unprivileged_low_port_exits_77(low_port):
    p = run_relayd("--listen", f"127.0.0.1:{low_port}", "--to", "127.0.0.1:9",
                   as_nobody=True)
    where = f"exit {p.returncode}, stderr {p.stderr!r}"
    assert p.returncode == EX_NOPERM, where
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("relayd: "), where
    for hint in ("sudo", "setcap", "systemd"):
        assert hint in lines[0], f"no '{hint}' hint; {where}"


@pytest.fixture
def capable_copy(sockdir):
    """A copy of relayd that nobody may run, with cap_net_bind_service+ep."""
    copy = sockdir / "relayd"
    shutil.copy(RELAYD, copy)
    copy.chmod(0o755)
    done = subprocess.run(["setcap", "cap_net_bind_service+ep", str(copy)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"setcap failed here: {done.stderr.strip()}")
    return copy


def test_unprivileged_with_file_capability(relayd, sink, low_port, capable_copy):
    r = relayd("--listen", f"127.0.0.1:{low_port}", "--to", sink.spec,
               as_nobody=True, binary=capable_copy)
    st = r.status()
    # The bounding set cannot be reduced without root, so only these.
    assert (st["CapEff"], st["NoNewPrivs"]) == ("0000000000000400", "1"), st
    assert st["Uid"].split() == [str(NOBODY)] * 4, st["Uid"]
    sink_roundtrip(tcp4(low_port))
