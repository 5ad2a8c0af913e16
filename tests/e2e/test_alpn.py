"""ALPN on tls: listeners: by default only http/1.1 is agreed to, so a
client that speaks h2 only is told so (the handshake fails with
no_application_protocol) instead of being let on with a protocol relayd's
target never agreed to; --alpn lists what may be selected, the first the
client offers, in relayd's order. Checked with openssl s_client -alpn and
curl --http2 / --http1.1 (the target needs not speak h2: what is asserted
is what the handshake selected)."""

import re
import subprocess

import pytest

from conftest import free_port, run_relayd
from test_tls import pki, tls_relay      # noqa: F401 (pki is a fixture)

EX_USAGE = 64


def s_client(port, ca, alpn):
    """(exit code, output) of one s_client handshake offering alpn."""
    done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                           "-servername", "one.test", "-CAfile", str(ca), "-alpn", alpn],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=20)
    return done.returncode, done.stdout + done.stderr


def selected(port, ca, alpn):
    code, out = s_client(port, ca, alpn)
    m = re.search(r"^ALPN protocol: (\S+)", out, re.M)
    assert code == 0 and m, out
    return m.group(1)


def curl_alpn(port, ca, *how):
    """What curl says the server accepted (curl's -v line)."""
    done = subprocess.run(["curl", "-v", "--max-time", "10", "--cacert", str(ca),
                           "--resolve", f"one.test:{port}:127.0.0.1", *how,
                           f"https://one.test:{port}/"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=20)
    m = re.search(r"ALPN[:,] server (?:accepted( to use)?|did not agree)[^\n]*", done.stderr)
    assert m, done.stderr
    return m.group(0)


def test_default_is_http11_only(relayd, pki, sink):
    r, port = tls_relay(relayd, pki, sink.spec)
    assert selected(port, pki.ca, "h2,http/1.1") == "http/1.1"
    assert selected(port, pki.ca, "http/1.1") == "http/1.1"
    code, out = s_client(port, pki.ca, "h2")
    assert code != 0 and "no application protocol" in out, out
    assert "http/1.1" in curl_alpn(port, pki.ca, "--http2")
    assert "http/1.1" in curl_alpn(port, pki.ca, "--http1.1")


def test_alpn_list_in_our_order(relayd, pki, sink):
    r, port = tls_relay(relayd, pki, sink.spec, "--alpn", "h2,http/1.1")
    assert selected(port, pki.ca, "http/1.1,h2") == "h2"
    assert selected(port, pki.ca, "http/1.1") == "http/1.1"
    code, out = s_client(port, pki.ca, "spdy/3")
    assert code != 0 and "no application protocol" in out, out
    assert "h2" in curl_alpn(port, pki.ca, "--http2")
    assert "http/1.1" in curl_alpn(port, pki.ca, "--http1.1")


def test_client_without_alpn_is_served(relayd, pki, sink):
    r, port = tls_relay(relayd, pki, sink.spec, "--alpn", "h2")
    done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                           "-servername", "one.test", "-CAfile", str(pki.ca)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=20)
    assert done.returncode == 0 and "No ALPN negotiated" in done.stdout, done.stdout


def test_config_key(relayd, pki, sink, sockdir):
    port = free_port()
    conf = sockdir / "relayd.conf"
    conf.write_text(f"[relay web]\nlisten = tls:127.0.0.1:{port}\ncert = {pki.two[0]}\n"
                    f"key = {pki.two[1]}\nalpn = h2\nto = {sink.spec}\n")
    conf.chmod(0o644)
    relayd("-c", conf)
    assert selected(port, pki.ca, "http/1.1,h2") == "h2"


@pytest.mark.parametrize("args, needle", [
    (["--listen", "8443", "--to", "127.0.0.1:9", "--alpn", "h2"],
     r"--alpn needs a tls: listener"),
    (["--listen", "tls:8443", "--cert", "c", "--key", "k", "--to", "127.0.0.1:9",
      "--alpn", "h2,,http/1.1"], r"--alpn: \"h2,,http/1.1\" is not a list"),
    (["--listen", "tls:8443", "--cert", "c", "--key", "k", "--to", "127.0.0.1:9",
      "--alpn", "h 2"], r"is not a list of protocol names"),
], ids=["no-tls-listener", "empty-name", "space"])
def test_usage_errors(args, needle):
    done = run_relayd(*args)
    assert done.returncode == EX_USAGE and re.search(needle, done.stderr), done
