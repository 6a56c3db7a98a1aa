"""Rollouts driven by the server on both stores: a healthy candidate goes through its steps on
its own and is promoted (old version gone, alias moved); a candidate that fails on 20% of inputs
is rolled back at its first gate, inside the step's time, while no request the baseline answered
fails; after `kill -9` the server finds the rollout on the same step with the same weights; two
servers on one store route alike, and only one of them drives; a candidate worse on ground truth
is rolled back by its accuracy gate."""

import json
import signal
import threading
import time
import urllib.error
import urllib.request

import numpy as np
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression

from harness import start_server, wait_for
from slipway import Slipway

DATA = np.random.default_rng(8).normal(size=(300, 4)).astype(np.float32)


def register(client, target_column, fixed_batch=False):
    model = LogisticRegression().fit(DATA, (DATA[:, target_column] > 0).astype(int))
    shape = [1, 4] if fixed_batch else [None, 4]
    onx = to_onnx(model, initial_types=[("X", FloatTensorType(shape))],
                  options={id(model): {"zipmap": False}}).SerializeToString()
    return client.register_model("falls", model=onx)["version"]


def post(url, rows, key=None):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["X-Slipway-Key"] = key
    req = urllib.request.Request(url + "/endpoints/falls/invocations", method="POST", headers=headers,
                                 data=json.dumps({"inputs": rows}).encode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("x-slipway-variant")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("x-slipway-variant")


class Traffic(threading.Thread):
    """Requests in a loop until stopped: every fifth one with two rows."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.stop, self.answers = url, threading.Event(), []

    def run(self):
        i = 0
        while not self.stop.is_set():
            rows = DATA[i % 200:i % 200 + (2 if i % 5 == 4 else 1)].tolist()
            self.answers.append(post(self.url, rows))
            i += 1




def test_a_healthy_candidate_is_promoted_on_its_own(server):
    client = Slipway(server.url)
    register(client, 0)
    register(client, 1)
    client._request("PUT", "/api/v1/models/falls/aliases/champion", {"version": 1})
    client.create_endpoint("falls", "falls@champion")
    r = client.start_rollout({"endpoint": "falls", "candidate": "v2", "steps": [1, 10, 50, 100], "step_seconds": 1,
                              "min_requests": 10, "promote_alias": "champion",
                              "gates": [{"metric": "error_rate", "threshold": 0.05},
                                        {"metric": "p99_latency", "threshold": 20}]})
    traffic = Traffic(server.url)
    traffic.start()
    try:
        done = wait_for("promotion", lambda: (x := client.rollout(r["id"]))["state"] != "running" and x)
    finally:
        traffic.stop.set()
        traffic.join()
    assert done["state"] == "promoted", done
    assert [(e["kind"], e["weight"]) for e in done["events"]] == [
        ("started", 1), ("advanced", 10), ("advanced", 50), ("completed", 100)]
    advanced = done["events"][1]
    assert advanced["reason"].startswith("gates passed after ") and advanced["figures"]["candidate"]["requests"] >= 10
    assert advanced["figures"]["candidate"]["error_rate"] == 0
    assert [(v["name"], v["weight"]) for v in client.endpoint("falls")["variants"]] == [("champion", 100)]
    assert client.model("falls")["model"]["aliases"] == {"champion": 2}
    assert all(status == 200 for status, _ in traffic.answers)


def test_a_failing_candidate_is_rolled_back_at_its_first_gate(server):
    client = Slipway(server.url)
    register(client, 0)
    # Exported with a fixed batch of one: the two-row requests (one in five) fail on it.
    register(client, 1, fixed_batch=True)
    client.create_endpoint("falls", "falls@1")
    r = client.start_rollout({"endpoint": "falls", "candidate": "v2", "steps": [30, 100], "step_seconds": 60,
                              "min_requests": 20, "gates": [{"metric": "error_rate", "threshold": 0.05}]})
    started = time.time()
    traffic = Traffic(server.url)
    traffic.start()
    try:
        done = wait_for("rollback", lambda: (x := client.rollout(r["id"]))["state"] != "running" and x)
    finally:
        traffic.stop.set()
        traffic.join()
    assert done["state"] == "rolled_back", done
    assert time.time() - started < 60, "rolled back within the step's time"
    last = done["events"][-1]
    assert last["kind"] == "rolled_back" and last["step"] == 0 and "error_rate gate failed" in last["reason"]
    assert last["figures"]["candidate"]["error_rate"] > 0.05 and last["figures"]["baseline"]["errors"] == 0
    assert [(v["name"], v["weight"]) for v in client.endpoint("falls")["variants"]] == [("v1", 100)]
    # Every request the baseline answered succeeded; only the candidate's two-row ones failed.
    assert all(status == 200 for status, variant in traffic.answers if variant == "v1")
    assert any(status == 400 for status, variant in traffic.answers if variant == "v2")


def test_a_candidate_worse_on_ground_truth_is_rolled_back_by_its_accuracy_gate(server):
    client = Slipway(server.url)
    register(client, 0)
    register(client, 1)  # learnt the wrong feature: about half its answers are wrong
    client.create_endpoint("falls", "falls@1")
    r = client.start_rollout({"endpoint": "falls", "candidate": "v2", "steps": [50, 100], "step_seconds": 1,
                              "min_requests": 30, "gates": [{"metric": "accuracy", "threshold": 0.05},
                                                            {"metric": "error_rate", "threshold": 0.05}]})
    deadline = time.time() + 60
    i = 0
    while time.time() < deadline:
        truth = {}
        for _ in range(40):
            row = DATA[i % 300]
            rid = f"r-{i}"
            headers = {"Content-Type": "application/json", "X-Request-Id": rid, "X-Slipway-Key": f"bed-{i}"}
            req = urllib.request.Request(server.url + "/endpoints/falls/invocations", method="POST",
                                         headers=headers, data=json.dumps({"inputs": [row.tolist()]}).encode())
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.status == 200
            truth[rid] = int(row[0] > 0)
            i += 1
        client.feedback("falls", truth)
        x = client.rollout(r["id"])
        if x["state"] != "running":
            break
        # Without ground truth the gate holds and says so; with it, it decides.
        time.sleep(0.5)
    done = client.rollout(r["id"])
    assert done["state"] == "rolled_back", done
    last = done["events"][-1]
    assert "accuracy gate failed" in last["reason"], last
    figures = last["figures"]
    assert figures["candidate"]["feedback_rows"] >= 30 and figures["baseline"]["accuracy"] > figures["candidate"]["accuracy"] + 0.05
    assert [(v["name"], v["weight"]) for v in client.endpoint("falls")["variants"]] == [("v1", 100)]




def test_kill_9_resumes_the_step_and_two_servers_route_alike_with_one_driver(server):
    client = Slipway(server.url)
    register(client, 0)
    register(client, 1)
    client.create_endpoint("falls", "falls@1")
    r = client.start_rollout({"endpoint": "falls", "candidate": "v2", "steps": [10, 100], "step_seconds": 3600,
                              "min_requests": 5})
    for i in range(20):
        assert post(server.url, DATA[i:i + 1].tolist())[0] == 200
    split = lambda c: [(v["name"], v["weight"], v.get("version")) for v in c.endpoint("falls")["variants"]]  # noqa: E731
    before = split(client)
    assert before == [("v1", 90, 1), ("v2", 10, 2)]
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()

    # The same stores, two new processes: the same step, the same weights, the same routing.
    procs = []
    try:
        proc, url = start_server(server.dir, server.db)
        procs.append(proc)
        proc2, url2 = start_server(server.dir, server.db)
        procs.append(proc2)
        one, two = Slipway(url), Slipway(url2)
        after = one.rollout(r["id"])
        assert (after["state"], after["step"], after["weight"]) == ("running", 0, 10)
        assert split(one) == before and split(two) == before
        keys = [f"bed-{i}" for i in range(200)]
        routed = [[post(u, DATA[:1].tolist(), key=k)[1] for k in keys] for u in (url, url2)]
        assert routed[0] == routed[1] and set(routed[0]) == {"v1", "v2"}

        # The killed server's lease runs out; then one process leads, and keeps leading.
        first = wait_for("a driver", lambda: one.rollout(r["id"])["driver"], timeout=20)
        seen = set()
        for _ in range(8):
            time.sleep(0.5)
            seen.add(two.rollout(r["id"])["driver"])
        assert seen == {first}, seen
        view = one.rollout(r["id"])
        assert view["reason"].startswith("holding: "), view["reason"]

        # The leader dies: the other takes over once the lease runs out.
        replicas = [json.load(urllib.request.urlopen(u + "/ready", timeout=10))["replica"] for u in (url, url2)]
        assert first in replicas, (first, replicas)
        leader = replicas.index(first)
        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait()
        survivor = [one, two][1 - leader]
        taken = wait_for("a new driver", lambda: (d := survivor.rollout(r["id"])["driver"]) not in (None, first) and d,
                         timeout=20)
        assert taken != first
        assert survivor.rollout(r["id"])["step"] == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=10)
