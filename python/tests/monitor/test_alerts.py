"""Alert rules on both stores: a gauge rule that holds for its duration fires once, resolves
when its condition clears, and reaches a real webhook receiver signed (HMAC-SHA256) with an
idempotency key; a receiver down for a minute gets the alert once it is back, exactly once;
private, link-local and non-HTTP targets are refused unless allowed, with nothing stored."""

import hashlib
import hmac
import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness import slipway_bin, start_server, wait_for
from slipway import Slipway, SlipwayError


class Receiver:
    """A webhook receiver on a loopback port that can go down and come back on the same port."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.got = []  # (headers, body)
        self.server = None

    def start(self):
        got = self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got.append((self.headers, body))  # case-insensitive lookups
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]




def cli(server, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "MLFLOW_"))}
    return subprocess.run([slipway_bin(), "--server", server.url, *args], capture_output=True, env=env, timeout=60)


def check_signature(headers, body, secret):
    t, v1 = (part.split("=", 1)[1] for part in headers["X-Slipway-Signature"].split(","))
    want = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(v1, want)
    assert abs(int(t) - time.time()) < 120


def test_a_gauge_rule_fires_once_after_its_duration_and_resolves_with_signed_webhooks(server):
    client = Slipway(server.url)
    receiver = Receiver().start()
    try:
        client.push_gauge("camera_power_state", 1, {"camera": "ward3-2"})
        rule = client.create_alert_rule("camera-off", gauge="camera_power_state", labels={"camera": "ward3-2"},
                                        op="<", threshold=1, for_s=3, webhook=receiver.url, secret="s3cret",
                                        allow_private=True)
        assert rule["webhook"]["secret"] == "(set)"
        time.sleep(2)
        assert client.alerts() == []

        client.push_gauge("camera_power_state", 0, {"camera": "ward3-2"})
        went_off = time.time()
        pending = wait_for("pending", lambda: client.alerts("pending"))
        assert pending[0]["rule"] == "camera-off" and pending[0]["value"] == 0
        firing = wait_for("firing", lambda: client.alerts("firing"), timeout=15)[0]
        assert firing["fired_ms"] / 1000 - went_off >= 3 - 1.5  # held for its duration (a tick of slack)
        assert firing["context"]["labels"] == {"camera": "ward3-2"} and firing["context"]["link"] == "/#/gauges"
        wait_for("the firing webhook", lambda: receiver.got, timeout=15)
        time.sleep(3)  # still holding: it fired once
        assert len(receiver.got) == 1
        headers, body = receiver.got[0]
        event = json.loads(body)
        assert event["event"] == "firing" and event["alert"]["id"] == firing["id"]
        assert headers["Idempotency-Key"] == event["id"] == f"{firing['id']}:firing"
        assert event["rule"]["name"] == "camera-off" and event["rule"]["webhook"]["secret"] == "(set)"
        check_signature(headers, body, "s3cret")

        client.push_gauge("camera_power_state", 1, {"camera": "ward3-2"})
        resolved = wait_for("resolved", lambda: client.alerts("resolved"), timeout=15)[0]
        assert resolved["id"] == firing["id"] and resolved["resolved_ms"] >= resolved["fired_ms"]
        wait_for("the resolved webhook", lambda: len(receiver.got) == 2, timeout=15)
        headers, body = receiver.got[1]
        assert json.loads(body)["event"] == "resolved" and headers["Idempotency-Key"] == f"{firing['id']}:resolved"
        check_signature(headers, body, "s3cret")
        assert [d["event"] for d in resolved["deliveries"]] == ["firing", "resolved"]

        done = cli(server, "alerts", "list")
        assert done.returncode == 0, done.stderr.decode()
        out = done.stdout.decode()
        assert "camera-off" in out and "resolved" in out and "firing sent" in out, out
        done = cli(server, "alerts", "rules")
        assert "gauge camera_power_state" in done.stdout.decode() and "< 1" in done.stdout.decode()
    finally:
        receiver.stop()


def test_bad_rules_and_private_targets_are_refused_with_nothing_stored(server):
    client = Slipway(server.url)
    for kwargs, word in [
        ({"gauge": "g", "op": "<", "threshold": 1, "webhook": "http://127.0.0.1:9/hook"}, "private or local"),
        ({"gauge": "g", "op": "<", "threshold": 1, "webhook": "http://169.254.169.254/latest/meta-data"},
         "private or local"),
        ({"gauge": "g", "op": "<", "threshold": 1, "webhook": "http://[::1]:9/hook"}, "private or local"),
        ({"gauge": "g", "op": "<", "threshold": 1, "webhook": "file:///etc/passwd"}, "only http and https"),
        ({"gauge": "g", "op": "<", "threshold": 1, "webhook": "ftp://example.org/x"}, "only http and https"),
        ({"gauge": "g"}, "needs op and threshold"),
        ({"gauge": "g", "monitor": "m"}, "one monitor, one gauge or one endpoint"),
        ({"gauge": "g", "op": "~", "threshold": 1}, "unknown variant"),
    ]:
        with pytest.raises(SlipwayError) as e:
            client.create_alert_rule("bad", **kwargs)
        assert e.value.status == 400 and word in e.value.message, (kwargs, e.value.message)
    with pytest.raises(SlipwayError) as e:
        client.create_alert_rule("bad", monitor="no-such-monitor")
    assert e.value.status == 404
    assert client.alert_rules() == []
    done = cli(server, "alerts", "create", "bad", "--gauge", "g", "--op", "<", "--threshold", "1",
               "--webhook", "http://10.0.0.1/hook")
    assert done.returncode != 0
    err = done.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "private or local" in err, err


def test_a_receiver_down_for_a_minute_gets_the_alert_once_it_is_back_exactly_once(server):
    client = Slipway(server.url)
    receiver = Receiver()  # not listening yet: connections are refused
    client.push_gauge("ward_bandwidth_mbps", 900, {"ward": "3"})
    client.create_alert_rule("bandwidth-low", gauge="ward_bandwidth_mbps", op="<", threshold=100,
                             webhook=receiver.url, allow_private=True)
    client.push_gauge("ward_bandwidth_mbps", 20, {"ward": "3"})
    firing = wait_for("firing", lambda: client.alerts("firing"), timeout=15)[0]
    time.sleep(60)
    delivery = client.alerts("firing")[0]["deliveries"][0]
    assert delivery["delivered_ms"] is None and delivery["attempts"] >= 3 and delivery["last_error"], delivery
    receiver.start()
    try:
        wait_for("the delivery", lambda: receiver.got, timeout=30)
        time.sleep(5)
        assert len(receiver.got) == 1
        headers, body = receiver.got[0]
        assert headers["Idempotency-Key"] == f"{firing['id']}:firing" and json.loads(body)["event"] == "firing"
        delivery = client.alerts("firing")[0]["deliveries"][0]
        assert delivery["delivered_ms"] is not None and delivery["last_error"] is None
    finally:
        receiver.stop()




def test_a_firing_alert_runs_its_action_as_a_tracked_run_within_its_cooldown(server, tmp_path):
    import signal

    out = tmp_path / "retrain.env"
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=30)
    proc, url = start_server(server.dir, server.db, "--action", f"retrain=env | grep ^SLIPWAY_ > {out}; echo trained")
    try:
        client = Slipway(url)
        with pytest.raises(SlipwayError) as e:
            client.create_alert_rule("bad", gauge="g", op="<", threshold=1, action="deploy")
        assert e.value.status == 400 and "no action named 'deploy'" in e.value.message and "retrain" in e.value.message
        client.push_gauge("ward_bandwidth_mbps", 900, {"ward": "3"})
        client.create_alert_rule("bandwidth-low", gauge="ward_bandwidth_mbps", op="<", threshold=100,
                                 action="retrain", cooldown_s=3600, max_per_day=3)
        client.push_gauge("ward_bandwidth_mbps", 20, {"ward": "3"})
        first = wait_for("the action's run", lambda: client.alert_actions("done"), timeout=60)[0]
        alert = client.alerts("firing")[0]
        assert first["alert_id"] == alert["id"] and first["exit_code"] == 0 and first["run_id"]
        env = dict(line.split("=", 1) for line in out.read_text().splitlines())
        assert env["SLIPWAY_ALERT_ID"] == alert["id"] and env["SLIPWAY_ALERT_RULE"] == "bandwidth-low"
        assert json.loads(env["SLIPWAY_ALERT_CONTEXT"])["labels"] == {"ward": "3"}
        run = client.run(first["run_id"])
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]} if "data" in run else run["tags"]
        assert tags["slipway.alert"] == alert["id"] and tags["slipway.exit_code"] == "0"

        # Resolved, then firing again within the cooldown: the second run is skipped, and why.
        client.push_gauge("ward_bandwidth_mbps", 900, {"ward": "3"})
        wait_for("resolved", lambda: client.alerts("resolved"), timeout=15)
        client.push_gauge("ward_bandwidth_mbps", 10, {"ward": "3"})
        skipped = wait_for("the skipped action", lambda: client.alert_actions("skipped"), timeout=15)[0]
        assert skipped["alert_id"] != alert["id"] and skipped["reason"].startswith("cooldown"), skipped
        time.sleep(2)
        assert len(client.alert_actions("done")) == 1
        done = cli_at(url, "alerts", "actions")
        assert "retrain" in done.stdout.decode() and "skipped" in done.stdout.decode()
        # Deleting the rule ends its firing alert.
        assert len(client.alerts("firing")) == 1
        client.delete_alert_rule("bandwidth-low")
        assert client.alerts("firing") == [] and client.alert_rules() == []
        assert len(client.alerts("resolved")) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def cli_at(url, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "MLFLOW_"))}
    return subprocess.run([slipway_bin(), "--server", url, *args], capture_output=True, env=env, timeout=60)


def test_endpoint_rules_fire_on_error_rate_and_on_accuracy_from_ground_truth(server):
    import urllib.error
    import urllib.request

    import numpy as np
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    client = Slipway(server.url)
    X = np.random.default_rng(2).normal(size=(200, 4)).astype(np.float32)
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    client.register_model("falls", model=to_onnx(model, initial_types=[("X", FloatTensorType([None, 4]))],
                                                 options={id(model): {"zipmap": False}}).SerializeToString())
    client.create_endpoint("falls", "falls@1")
    for kwargs, status, word in [({"endpoint": "falls", "metric": "nope", "op": ">", "threshold": 1}, 400, "metric"),
                                 ({"endpoint": "falls", "metric": "error_rate"}, 400, "op and threshold"),
                                 ({"endpoint": "gone", "metric": "error_rate", "op": ">", "threshold": 1}, 404, "gone")]:
        with pytest.raises(SlipwayError) as e:
            client.create_alert_rule("bad", **kwargs)
        assert e.value.status == status and word in e.value.message, e.value.message
    client.create_alert_rule("errors", endpoint="falls", metric="error_rate", op=">", threshold=0.2, over_s=60)
    client.create_alert_rule("accuracy", endpoint="falls", metric="accuracy", op="<", threshold=0.9, over_s=60)

    def post(rows, rid):
        req = urllib.request.Request(server.url + "/endpoints/falls/invocations", method="POST",
                                     headers={"Content-Type": "application/json", "x-request-id": rid},
                                     data=json.dumps({"inputs": rows}).encode())
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())["predictions"][0]["label"]
        except urllib.error.HTTPError as e:
            assert e.code == 400
            return None

    said = {f"ok-{i}": post(X[i:i + 1].tolist(), f"ok-{i}") for i in range(20)}
    time.sleep(3)
    assert client.alerts() == []
    for i in range(20):  # three values for four inputs: refused, counted as errors
        assert post([X[i, :3].tolist()], f"bad-{i}") is None
    errors = wait_for("the error-rate alert", lambda: client.alerts("firing"), timeout=15)
    assert [a["rule"] for a in errors] == ["errors"] and errors[0]["value"] == pytest.approx(0.5)
    assert errors[0]["context"]["metric"] == "error_rate" and errors[0]["context"]["link"] == "/#/endpoints/falls"
    # Ground truth that contradicts every answer: accuracy 0.
    client.feedback("falls", {rid: 1 - label for rid, label in said.items()})
    accuracy = wait_for("the accuracy alert",
                        lambda: [a for a in client.alerts("firing") if a["rule"] == "accuracy"], timeout=15)
    assert accuracy[0]["value"] == 0
    done = cli(server, "alerts", "rules")
    assert "endpoint falls error_rate" in done.stdout.decode()


def test_the_server_keeps_its_own_cpu_and_memory_as_gauges_that_rules_can_watch(server):
    """Process CPU and memory are series of the server's own (labelled with its replica id), so a
    gauge rule watches them like any pushed gauge; a client may not push under those names."""
    client = Slipway(server.url)
    with urllib.request.urlopen(f"{server.url}/ready", timeout=10) as r:
        replica = json.loads(r.read())["replica"]

    def own(name):
        return [g for g in client.gauges() if g["name"] == name]

    memory = wait_for("the memory gauge", lambda: own("slipway_process_resident_memory_bytes"), timeout=10)
    assert memory[0]["labels"] == {"replica": replica}
    with open(f"/proc/{server.proc.pid}/status") as f:
        rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    assert 0.5 < memory[0]["value"] / (rss_kb * 1024) < 2, (memory, rss_kb)

    client.create_alert_rule("memory-high", gauge="slipway_process_resident_memory_bytes",
                             labels={"replica": replica}, op=">", threshold=1_000_000)
    firing = wait_for("firing", lambda: client.alerts("firing"), timeout=15)[0]
    assert firing["rule"] == "memory-high" and firing["value"] > 1_000_000
    assert firing["context"]["labels"] == {"replica": replica}

    # CPU from the second sample on (15 s apart): cores busy, between 0 and the machine's count.
    cpu = wait_for("the CPU gauge", lambda: own("slipway_process_cpu_cores"), timeout=30)
    assert 0 <= cpu[0]["value"] <= os.cpu_count() + 0.5, cpu

    with pytest.raises(SlipwayError, match="Slipway's own"):
        client.push_gauge("slipway_process_cpu_cores", 0.5, {"replica": replica})
