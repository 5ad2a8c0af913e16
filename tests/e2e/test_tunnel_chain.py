"""The chain the tunnel exists for: a privileged port here, relayed to the
server's end of a -R forward, which comes back through sshd to a web server
here. In one relayd (--listen/--to and --ssh together) or in two."""

import pytest

from conftest import curl_digest, free_port

pytestmark = pytest.mark.root


def test_chain_in_one_process(tunnel, http_backend, low_port):
    rport = free_port()
    spec = f"{rport}:{http_backend.spec}"
    t = tunnel("--listen", f"127.0.0.1:{low_port}", "--to", f"127.0.0.1:{rport}", "-R", spec)
    assert curl_digest(f"http://127.0.0.1:{low_port}/blob") == http_backend.digest
    assert len(t.wait_conns(1, f"-R {spec}")) == 1
    t.relayd.stop()


def test_chain_in_two_processes(tunnel, relayd, http_backend, low_port):
    rport = free_port()
    t = tunnel("-R", f"{rport}:{http_backend.spec}")
    r = relayd("--listen", f"127.0.0.1:{low_port}", "--to", f"127.0.0.1:{rport}")
    assert curl_digest(f"http://127.0.0.1:{low_port}/blob") == http_backend.digest
    assert r.wait_conn()["end"] == "eof"
    t.relayd.stop()
