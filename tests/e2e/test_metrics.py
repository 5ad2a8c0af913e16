"""--metrics (Prometheus text format, /healthz) and --status --json: the
families after known traffic, read back through a real Prometheus and
checked by promtool; /healthz following a forward; the JSON agreeing with
/metrics; hostile scrapers bounded while relaying goes on."""
import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import (IO_TIMEOUT, free_port, fwd, kill_pid, run_relayd, sink_roundtrip,
                      tcp4)
from test_tls import pki  # noqa: F401 (a fixture)

CLIENT = "127.0.0.77"           # the refused one: --deny
N, B = 5, 20_000


def http(port, path="/metrics", method="GET", timeout=IO_TIMEOUT):
    """(status, body) of one request to relayd's metrics listener."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


SAMPLE_RE = re.compile(r"^([a-z_]+)(\{(.*)\})? (\S+)$")
LABEL_RE = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, frozenset(labels.items())): value} and {family: type}."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
        elif line and not line.startswith("#"):
            m = SAMPLE_RE.match(line)
            assert m, f"not a sample line: {line!r}"
            labels = dict(LABEL_RE.findall(m.group(3) or ""))
            samples[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return samples, types


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def metrics_config(tmp_path, sink, mport, control=None, extra=""):
    conf = tmp_path / "relayd.conf"
    rport = free_port()
    conf.write_text(f"metrics = {mport}\n"
                    + (f"control = {control}\n" if control else "")
                    + f"\n[relay web]\nlisten = 127.0.0.1:{rport}\nto = {sink.spec}\n"
                    f"deny = {CLIENT}/32\n{extra}")
    conf.chmod(0o600)
    return conf, rport


def known_traffic(rport):
    for i in range(N):
        sink_roundtrip(tcp4(rport), seed=i, nbytes=B)
    s = socket.create_connection(("127.0.0.1", rport), timeout=IO_TIMEOUT,
                                 source_address=(CLIENT, 0))
    s.settimeout(IO_TIMEOUT)
    assert s.recv(1) == b""     # refused: closed before anything is read
    s.close()


def wait_for(fn, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout} s", pytrace=False)
        time.sleep(0.1)


class Prometheus:
    """A private Prometheus on 127.0.0.1: its own config and storage under the
    test's tmp dir, scraping every second; stopped by its PID."""

    def __init__(self, tmp_path, target):
        self.port = free_port()
        self.dir = tmp_path / "prometheus"
        self.dir.mkdir()
        (self.dir / "prometheus.yml").write_text(f"""\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: relayd
    static_configs:
      - targets: ['{target}']
""")
        self.log = self.dir / "log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["prometheus", f"--config.file={self.dir / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.dir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)

    def query(self, q):
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?"
               + urllib.parse.urlencode({"query": q}))
        try:
            with urllib.request.urlopen(url, timeout=IO_TIMEOUT) as resp:
                doc = json.load(resp)
        except (urllib.error.URLError, ConnectionError):
            return None
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    def stop(self):
        if self.proc.poll() is None:
            kill_pid(self.proc.pid)
        self.proc.wait()


@pytest.fixture
def prometheus(tmp_path):
    if shutil.which("prometheus") is None:
        pytest.skip("no prometheus (apt-get install prometheus)")
    started = []

    def start(target):
        p = Prometheus(tmp_path, target)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def promtool_clean(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0 and p.stdout + p.stderr == "", p


def test_readme_scrape_config_and_alert_rule(tmp_path):
    """The README's example prometheus.yml and alert rule are what
    promtool accepts."""
    if shutil.which("promtool") is None:
        pytest.skip("no promtool (apt-get install prometheus)")
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    blocks = dict(re.findall(r"```yaml\n# (\S+)\n(.*?)```", readme, re.S))
    assert {"prometheus.yml", "relayd-rules.yml"} <= set(blocks), sorted(blocks)
    for name, text in blocks.items():
        (tmp_path / name).write_text(text)
    p = subprocess.run(["promtool", "check", "rules", tmp_path / "relayd-rules.yml"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "SUCCESS: 1 rules found" in p.stdout, p
    p = subprocess.run(["promtool", "check", "config", tmp_path / "prometheus.yml"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p


def test_families_after_known_traffic(tmp_path, relayd, sink, prometheus):
    """N connections of B bytes and one refused client: relayd's own text
    has the values, promtool finds no problem, and a real Prometheus that
    scraped it answers queries with the same values."""
    mport = free_port()
    conf, rport = metrics_config(tmp_path, sink, mport)
    r = relayd("-c", conf)
    r.wait_log(rf"^relayd: metrics on http://127\.0\.0\.1:{mport}/metrics$")
    known_traffic(rport)
    r.wait_conns(N)
    status, text = http(mport)
    assert status == 200
    samples, types = parse(text)
    assert value(samples, "relayd_relay_connections_total", relay="web") == N
    assert value(samples, "relayd_relay_connections_active", relay="web") == 0
    assert value(samples, "relayd_relay_bytes_total", relay="web", direction="in") == N * B
    assert value(samples, "relayd_relay_refused_total", relay="web", reason="acl") == 1
    assert value(samples, "relayd_relay_refused_total", relay="web", reason="rate") == 0
    assert value(samples, "relayd_relay_listening", relay="web") == 1
    assert value(samples, "relayd_relay_connection_duration_seconds_count", relay="web") == N
    assert value(samples, "relayd_healthy") == 1
    assert value(samples, "process_open_fds") > 3
    assert value(samples, "process_resident_memory_bytes") > 1 << 20
    assert value(samples, "process_start_time_seconds") <= time.time()
    assert types["relayd_relay_connection_duration_seconds"] == "histogram"
    for name in {n for n, _ in samples}:
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert family in types or name in types, f"{name} has no # TYPE"
    promtool_clean(text)

    prom = prometheus(f"127.0.0.1:{mport}")

    def scraped(q):
        res = prom.query(q)
        return res[0]["value"][1] if res else None

    wait_for(lambda: scraped('up{job="relayd"}') == "1", timeout=30, what="scrape")
    assert scraped('relayd_relay_connections_total{relay="web"}') == str(N)
    assert scraped('relayd_relay_bytes_total{relay="web",direction="in"}') == str(N * B)
    assert scraped('relayd_relay_refused_total{relay="web",reason="acl"}') == "1"
    assert scraped('sum(relayd_relay_connection_duration_seconds_bucket'
                   '{relay="web",le="+Inf"})') == str(N)
    r.stop()


def closed_at_once(port):
    """Connects to a relay whose target is not there: relayd closes it
    without a byte (or resets it)."""
    with tcp4(port).connect() as s:
        s.settimeout(IO_TIMEOUT)
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass


CONNECT_REASONS = ("refused", "unreachable", "timeout", "dns", "tls", "other")


def test_connect_time_and_failures_by_reason(tmp_path, relayd, sink, prometheus):
    """N connections reach their target: the connect histogram counts N. K
    clients of a relay whose target refuses are connect failures "refused";
    a client held by --connect-retry until it gave up is refused as
    "held-expired", not a connect failure. Prometheus and --status --json
    say the same."""
    mport, gport, hport = free_port(), free_port(), free_port()
    control = tmp_path / "control.sock"
    k = 3
    conf, rport = metrics_config(tmp_path, sink, mport, control, extra=f"""
[relay gone]
listen = 127.0.0.1:{gport}
to = 127.0.0.1:{free_port()}

[relay held]
listen = 127.0.0.1:{hport}
to = 127.0.0.1:{free_port()}
connect-retry = 1
""")
    r = relayd("-c", conf)
    r.wait_log(rf"^relayd: metrics on http://127\.0\.0\.1:{mport}/metrics$")
    for i in range(N):
        sink_roundtrip(tcp4(rport), seed=i, nbytes=B)
    for _ in range(k):
        closed_at_once(gport)
    held_since = time.monotonic()
    closed_at_once(hport)
    assert time.monotonic() - held_since >= 0.9, "not held for --connect-retry 1"
    r.wait_conns(N + k + 1)
    r.wait_log(r"connect retry expired$")

    samples, _ = parse(http(mport)[1])
    hist = "relayd_relay_connect_duration_seconds"
    assert value(samples, hist + "_count", relay="web") == N
    assert value(samples, hist + "_bucket", relay="web", le="+Inf") == N
    assert 0 < value(samples, hist + "_sum", relay="web") < N * 1.0
    assert value(samples, hist + "_count", relay="gone") == 0
    assert value(samples, hist + "_count", relay="held") == 0
    failures = {(relay, why): value(samples, "relayd_relay_connect_failures_total",
                                    relay=relay, reason=why)
                for relay in ("web", "gone", "held") for why in CONNECT_REASONS}
    assert failures == {key: (k if key == ("gone", "refused") else 0) for key in failures}
    refused = "relayd_relay_refused_total"
    assert value(samples, refused, relay="held", reason="held-expired") == 1
    assert value(samples, refused, relay="gone", reason="held-expired") == 0
    assert value(samples, refused, relay="web", reason="held-expired") == 0
    assert value(samples, "relayd_relay_connections_total", relay="held") == 1

    doc = json.loads(run_relayd("--status", "--json", "--control", control).stdout)
    relays = {x["name"]: x for x in doc["relays"]}
    for name in ("web", "gone", "held"):
        by_reason = relays[name]["connect_failures_by_reason"]
        assert set(by_reason) == set(CONNECT_REASONS)
        assert by_reason == {why: failures[(name, why)] for why in CONNECT_REASONS}
        assert relays[name]["connect_failures"] == sum(by_reason.values())
        assert relays[name]["refused"]["held_expired"] == value(
            samples, refused, relay=name, reason="held-expired")

    prom = prometheus(f"127.0.0.1:{mport}")

    def scraped(q):
        res = prom.query(q)
        return res[0]["value"][1] if res else None

    wait_for(lambda: scraped('up{job="relayd"}') == "1", timeout=30, what="scrape")
    assert scraped(f'{hist}_count{{relay="web"}}') == str(N)
    assert scraped(f'histogram_quantile(0.5, {hist}_bucket{{relay="web"}}) < 1') is not None
    assert scraped('relayd_relay_connect_failures_total{relay="gone",reason="refused"}') \
        == str(k)
    assert scraped('sum(relayd_relay_connect_failures_total{relay="held"})') == "0"
    assert scraped('relayd_relay_refused_total{relay="held",reason="held-expired"}') == "1"
    r.stop()


def test_http_answers(tmp_path, relayd, sink):
    """HEAD has no body, other methods 405, other paths 404, a bad head 400;
    a bare port listens on 127.0.0.1 only."""
    mport = free_port()
    conf, _ = metrics_config(tmp_path, sink, mport)
    relayd("-c", conf)
    assert http(mport, method="HEAD") == (200, "")
    assert http(mport, method="POST")[0] == 405
    assert http(mport, "/nothing")[0] == 404
    assert http(mport, "/healthz") == (200, "ok\n")
    with socket.create_connection(("127.0.0.1", mport), timeout=IO_TIMEOUT) as s:
        s.sendall(b"GET metrics HTTP/1.1\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 ")
    with pytest.raises(OSError):
        socket.create_connection((CLIENT, mport), timeout=1).close()


def test_healthz_follows_the_forward(tmp_path, tunnel, sshd, sink):
    """/healthz is 503 with the forward's name while sshd is down, 200 when
    the forward is up again; relayd_forward_up says the same."""
    mport, rport = free_port(), free_port()
    spec = f"{rport}:{sink.spec}"
    t = tunnel("-R", spec, "--metrics", mport)
    assert http(mport, "/healthz") == (200, "ok\n")
    samples, _ = parse(http(mport)[1])
    assert value(samples, "relayd_forward_up", tunnel="-", forward=f"-R {spec}") == 1
    assert value(samples, "relayd_tunnel_state", tunnel="-", state="up") == 1
    assert value(samples, "relayd_tunnel_last_connected_timestamp_seconds", tunnel="-") > 0
    sshd.stop()
    status, body = wait_for(lambda: (lambda a: a if a[0] == 503 else None)(
        http(mport, "/healthz")), what="503")
    assert body.startswith(f"tunnel - forward -R {spec}: down"), body
    samples, _ = parse(http(mport)[1])
    assert value(samples, "relayd_forward_up", tunnel="-", forward=f"-R {spec}") == 0
    assert value(samples, "relayd_healthy") == 0
    sshd.start()
    wait_for(lambda: http(mport, "/healthz") == (200, "ok\n"), timeout=30, what="200")
    samples, _ = parse(http(mport)[1])
    assert reconnects(samples, "-") >= 1
    t.relayd.stop()


CAUSES = ("keepalive", "network change", "resume", "probe", "server closed", "refused",
          "error")


def reconnects(samples, tunnel, cause=None):
    """relayd_tunnel_reconnects_total of tunnel for cause, or all causes."""
    return sum(value(samples, "relayd_tunnel_reconnects_total", tunnel=tunnel, cause=c)
               for c in CAUSES if cause in (None, c))


def tunnel_json(control):
    p = run_relayd("--status", "--json", "--control", control)
    assert p.returncode == 0, p
    [doc] = json.loads(p.stdout)["tunnels"]
    return doc


def test_reconnect_causes_and_keepalives(tmp_path, tunnel, sshd, sink, prometheus):
    """--keepalive 1: probes are counted as sent while the session is up; an
    sshd restart is a reconnect for "server closed"; a frozen sshd leaves
    keepalives missed and a reconnect for "keepalive", the last loss in
    --status --json. Prometheus reads the same."""
    mport, rport = free_port(), free_port()
    control = tmp_path / "control.sock"
    spec = f"{rport}:{sink.spec}"
    t = tunnel("-R", spec, "--keepalive", "1", "--keepalive-count", "2",
               "--metrics", mport, "--control", control)
    prom = prometheus(f"127.0.0.1:{mport}")
    sent = "relayd_tunnel_keepalives_sent_total"
    missed = "relayd_tunnel_keepalives_missed_total"
    wait_for(lambda: value(parse(http(mport)[1])[0], sent, tunnel="-") >= 2, what="keepalives")
    doc = tunnel_json(control)
    assert doc["last_loss"] is None and doc["reconnects"] == 0
    assert doc["reconnects_by_cause"] == {c: 0 for c in CAUSES}

    sshd.restart()
    t.wait_up("R", spec, n=2)
    sink_roundtrip(fwd(rport))
    samples, _ = parse(http(mport)[1])
    assert {c: reconnects(samples, "-", c) for c in CAUSES} == {
        c: int(c == "server closed") for c in CAUSES}
    doc = tunnel_json(control)
    assert doc["last_loss"]["cause"] == "server closed", doc
    assert doc["last_loss"]["why"] == "server closed the connection"
    assert time.time() - 30 < doc["last_loss"]["at"] <= time.time()

    missed_before = value(samples, missed, tunnel="-")
    sshd.pause()
    t.wait(r"lost: no answer to 2 keepalives$", timeout=15)
    sshd.resume()
    t.wait_up("R", spec, n=3, timeout=20)
    sink_roundtrip(fwd(rport))
    before = parse(http(mport)[1])[0]
    doc = tunnel_json(control)
    after = parse(http(mport)[1])[0]
    assert value(before, missed, tunnel="-") >= missed_before + 2
    assert reconnects(before, "-", "keepalive") >= 1
    assert reconnects(before, "-", "server closed") == 1
    assert doc["last_loss"]["cause"] == "keepalive", doc
    assert doc["last_loss"]["why"] == "no answer to 2 keepalives"
    assert doc["reconnects_by_cause"] == {c: reconnects(before, "-", c) for c in CAUSES}
    assert doc["reconnects"] == reconnects(before, "-") == sum(
        doc["reconnects_by_cause"].values())
    for key, name in (("keepalives_sent", sent), ("keepalives_missed", missed)):
        assert value(before, name, tunnel="-") <= doc[key] <= value(after, name, tunnel="-")
    promtool_clean(http(mport)[1])

    def scraped(q):
        res = prom.query(q)
        return res[0]["value"][1] if res else None

    wait_for(lambda: scraped('relayd_tunnel_reconnects_total{cause="keepalive"}') not in
             (None, "0"), timeout=30, what="scrape of the keepalive loss")
    assert scraped('relayd_tunnel_reconnects_total{tunnel="-",cause="server closed"}') == "1"
    assert float(scraped(f'{sent}{{tunnel="-"}}')) >= 2
    assert float(scraped(f'{missed}{{tunnel="-"}}')) >= 2
    t.relayd.stop()


RELAY_KEYS = {"name": str, "addresses": list, "listening": bool, "udp": bool,
              "connections_active": int, "connections_total": int, "bytes_in": int,
              "bytes_out": int, "bytes_spliced": int, "connect_failures": int,
              "connect_failures_by_reason": dict, "refused": dict}
REFUSED_KEYS = {"acl", "per_ip", "rate", "handshake", "proxy", "tls", "max_conns",
                "held_expired"}
TUNNEL_KEYS = {"name": str, "server": str, "state": str, "reconnects": int,
               "reconnects_by_cause": dict, "keepalives_sent": int,
               "keepalives_missed": int, "extra_sessions": int, "probe": type(None),
               "last_loss": type(None),
               "packets_sent": int, "writes": int, "last_connected": int, "forwards": list}
FORWARD_KEYS = {"name": str, "up": bool, "port": int, "connections_active": int,
                "connections_total": int, "bytes_in": int, "bytes_out": int}


def check_keys(obj, keys):
    assert set(obj) == set(keys), sorted(set(obj) ^ set(keys))
    for k, kind in keys.items():
        assert isinstance(obj[k], kind), (k, obj[k])


def test_status_json_agrees_with_metrics(tmp_path, relayd, sshd, sink):
    mport, fport = free_port(), free_port()
    control = tmp_path / "control.sock"
    conf, rport = metrics_config(tmp_path, sink, mport, control, extra=f"""
[tunnel laptop]
ssh = {sshd.dest()}
remote = {fport}:{sink.spec}
identity = {sshd.keys["ed25519"]}
known-hosts = {sshd.write_known_hosts("good")}
""")
    r = relayd("-c", conf)
    r.wait_log(r"forward -R \d+:\S+ up on port", timeout=15)
    known_traffic(rport)
    sink_roundtrip(tcp4(fport), nbytes=3000)
    r.wait_conns(N + 1)
    p = run_relayd("--status", "--json", "--control", control)
    assert p.returncode == 0, p
    doc = json.loads(p.stdout)
    samples, _ = parse(http(mport)[1])
    assert set(doc) == {"version", "pid", "start_time", "healthy", "reason", "relays",
                        "tunnels"}
    assert doc["healthy"] is True and doc["reason"] is None and doc["pid"] == r.pid
    [web] = doc["relays"]
    check_keys(web, RELAY_KEYS)
    assert set(web["refused"]) == REFUSED_KEYS
    assert web["name"] == "web" and web["addresses"] == [f"127.0.0.1:{rport}"]
    assert web["connections_total"] == N == value(
        samples, "relayd_relay_connections_total", relay="web")
    assert web["bytes_in"] == N * B == value(
        samples, "relayd_relay_bytes_total", relay="web", direction="in")
    assert web["bytes_out"] == value(samples, "relayd_relay_bytes_total", relay="web",
                                     direction="out")
    assert web["refused"]["acl"] == 1 == value(samples, "relayd_relay_refused_total",
                                               relay="web", reason="acl")
    [laptop] = doc["tunnels"]
    check_keys(laptop, TUNNEL_KEYS)
    assert laptop["state"] == "up"
    assert laptop["reconnects"] == reconnects(samples, "laptop") == 0
    assert laptop["reconnects_by_cause"] == {c: 0 for c in CAUSES}
    assert laptop["extra_sessions"] == 0 == value(
        samples, "relayd_tunnel_extra_sessions", tunnel="laptop")
    assert laptop["last_connected"] == value(
        samples, "relayd_tunnel_last_connected_timestamp_seconds", tunnel="laptop")
    [fwd] = laptop["forwards"]
    check_keys(fwd, FORWARD_KEYS)
    assert fwd["name"] == f"-R {fport}:{sink.spec}" and fwd["up"] and fwd["port"] == fport
    assert fwd["connections_total"] == 1 == value(
        samples, "relayd_forward_connections_total", tunnel="laptop", forward=fwd["name"])
    assert fwd["bytes_in"] == 3000
    text = run_relayd("--status", "--control", control)
    assert text.returncode == 0 and "relay web: listening" in text.stdout, text
    assert run_relayd("--json").returncode == 64
    r.stop()


def test_hostile_scrapers_are_bounded(tmp_path, relayd, sink):
    """1,000 connections that say nothing, slow heads and heads over 4 KiB:
    a transfer through the relay meanwhile is intact, relayd holds at most
    16 of them, and closes them within the head's 5 s."""
    mport = free_port()
    conf, rport = metrics_config(tmp_path, sink, mport)
    r = relayd("-c", conf)
    base = value(parse(http(mport)[1])[0], "process_open_fds")
    socks, stop = [], threading.Event()
    huge_closed = []

    def slow_head():
        with socket.create_connection(("127.0.0.1", mport), timeout=10) as s:
            for ch in b"GET /metrics HTTP/1.1\r\nX: ":
                if stop.is_set():
                    return
                try:
                    s.sendall(bytes([ch]))
                except OSError:
                    return
                time.sleep(0.2)

    def huge_head():
        with socket.create_connection(("127.0.0.1", mport), timeout=10) as s:
            try:
                s.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 8192)
                huge_closed.append(s.recv(100) == b"")
            except OSError:
                huge_closed.append(True)

    threads = [threading.Thread(target=slow_head) for _ in range(4)]
    threads += [threading.Thread(target=huge_head) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(1000):
            try:
                socks.append(socket.create_connection(("127.0.0.1", mport), timeout=2))
            except OSError:
                pass
        sink_roundtrip(tcp4(rport), seed=9, nbytes=5_000_000)
        fds = len(list(Path(f"/proc/{r.pid}/fd").iterdir()))
        assert fds <= base + 16 + 4, f"{fds} descriptors open, {base} before"
    finally:
        stop.set()
        for t in threads:
            t.join(15)
        for s in socks:
            s.close()
    assert huge_closed == [True] * 4
    # Once the head's time is up, everything is answered again.
    time.sleep(5.5)
    assert http(mport, "/healthz") == (200, "ok\n")
    assert r.alive()
    r.stop()


def test_refusals_tell_proxy_and_tls_apart(tmp_path, relayd, sink, pki):
    """A client without its PROXY header and one whose TLS handshake fails
    are refused for different reasons."""
    mport, pport, tport = free_port(), free_port(), free_port()
    relayd("--listen", f"127.0.0.1:{pport}", "--to", sink.spec, "--accept-proxy",
           "--handshake-timeout", 1, "--metrics", mport)
    with tcp4(pport).connect() as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")     # no PROXY header
        s.recv(1)
    samples, _ = parse(http(mport)[1])
    assert value(samples, "relayd_relay_refused_total", relay="-", reason="proxy") == 1
    assert value(samples, "relayd_relay_refused_total", relay="-", reason="tls") == 0
    mport2 = free_port()
    relayd("--listen", f"tls:127.0.0.1:{tport}", "--cert", pki.two[0], "--key", pki.two[1],
           "--to", sink.spec, "--metrics", mport2)
    with tcp4(tport).connect() as s:
        s.sendall(b"\x16\x03\x01\x00\x05hello")  # not a ClientHello
        s.recv(1)
    samples, _ = parse(http(mport2)[1])
    assert value(samples, "relayd_relay_refused_total", relay="-", reason="tls") == 1
    assert value(samples, "relayd_relay_refused_total", relay="-", reason="handshake") == 0
