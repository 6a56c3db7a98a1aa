"""Traffic between an endpoint's variants, on both stores: a split by weight (shares measured
with `slipway loadtest`, which counts answers by their x-slipway-variant header), sticky routing
keys that move as little as a weight change must, a replica (`slipway serve`) on the same store
routing every key the same way, a shadow that never changes an answer and whose failures reach
nobody, and bad splits refused with nothing changed. From the API, the CLI and the Python client."""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import onnxruntime as ort
import pytest
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from harness import slipway_bin
from slipway import Slipway, SlipwayError


def onnx_of(model, X):
    return to_onnx(model, X[:1], options={id(model): {"zipmap": False}}).SerializeToString()


def two_versions(client, name="falls"):
    """Versions 1 and 2 of `name`: logistic regressions that disagree on many rows."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    v1 = onnx_of(LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), X)
    v2 = onnx_of(LogisticRegression().fit(X, (X[:, 1] > 0).astype(int)), X)
    client.register_model(name, model=v1)
    client.register_model(name, model=v2)
    return X, v1, v2


def call(url, path, body, key=None):
    """POSTs JSON; returns (status, headers, body)."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-Slipway-Key"] = key
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read())


def cli(server, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "MLFLOW_"))}
    return subprocess.run([slipway_bin(), "--server", server.url, *args], capture_output=True, env=env, timeout=60)


def variants_of(url, keys, row):
    return [call(url, "/endpoints/falls/invocations", {"inputs": [row]}, key=k)[1]["x-slipway-variant"] for k in keys]


def test_loadtest_with_several_urls_takes_turns_and_reports_each(server, tmp_path):
    """`slipway loadtest A B`: requests alternate between the URLs, open loop and closed, and the
    report gives each URL its own count and latency (the bench's paired comparison); a URL that
    does not answer 2xx is refused before any load."""
    client = Slipway(server.url)
    X, _, _ = two_versions(client)
    client.create_endpoint("one", "falls@1")
    client.create_endpoint("two", "falls@2")
    body = tmp_path / "row.json"
    body.write_text(json.dumps({"inputs": [X[0].tolist()]}))
    urls = [f"{server.url}/endpoints/one/invocations", f"{server.url}/endpoints/two/invocations"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    for mode in (["--rate", "400"], ["--concurrency", "3"]):
        run = subprocess.run([slipway_bin(), "--json", "loadtest", *urls, "--body", str(body), *mode,
                              "--duration", "1.5", "--warmup", "0.2"], capture_output=True, env=env, timeout=120)
        assert run.returncode == 0, run.stderr.decode()
        load = json.loads(run.stdout)
        per = load["per_url"]
        assert [u["url"] for u in per] == urls, load
        oks = [u["ok"] for u in per]
        assert sum(oks) == load["ok"] and min(oks) > 100, load
        # Turns: within a few requests of half each (the last turns of each client may differ).
        # A turn ends ok, in an error or status, or skipped (open loop, every connection busy):
        # on a loaded machine the skips fall unevenly, so the oks alone need not balance.
        turns = [u["ok"] + u["errors"] + u["other_status"] + u["overloaded"] + u["skipped"] for u in per]
        assert abs(turns[0] - turns[1]) <= 8, load
        assert all(u["latency_us"]["p50"] > 0 for u in per), load
    stats = {e: client.endpoint(e)["stats"]["requests"]["ok"] for e in ("one", "two")}
    assert min(stats.values()) > 200, stats
    bad = subprocess.run([slipway_bin(), "loadtest", urls[0], f"{server.url}/endpoints/none/invocations",
                          "--body", str(body), "--duration", "1"], capture_output=True, env=env, timeout=60)
    assert bad.returncode != 0 and b"/endpoints/none/invocations answered 404" in bad.stderr, bad.stderr
    assert client.endpoint("one")["stats"]["requests"]["ok"] <= stats["one"] + 1


def test_split_shares_sticky_keys_and_a_replica_route_alike(server, tmp_path):
    client = Slipway(server.url)
    X, v1, v2 = two_versions(client)
    client.create_endpoint("falls", "falls@1")
    row = X[0].tolist()

    # The CLI splits 90/10; the answer shows the split.
    done = cli(server, "endpoints", "split", "falls", "v1=90", "v2=10")
    assert done.returncode == 0, done.stderr.decode()
    assert "v1 90% (version 1), v2 10% (version 2)" in done.stdout.decode()
    e = client.endpoint("falls")
    assert [(v["name"], v["weight"], v.get("version")) for v in e["variants"]] == [("v1", 90, 1), ("v2", 10, 2)]

    # Shares by weight, measured with the load generator over keyless requests.
    body = tmp_path / "row.json"
    body.write_text(json.dumps({"inputs": [row]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    run = subprocess.run([slipway_bin(), "--json", "loadtest", f"{server.url}/endpoints/falls/invocations",
                          "--body", str(body), "--concurrency", "8", "--duration", "3", "--warmup", "0.2"],
                         capture_output=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr.decode()
    load = json.loads(run.stdout)
    assert load["errors"] == 0 and set(load["variants"]) == {"v1", "v2"}, load
    total = sum(load["variants"].values())
    assert total == load["ok"] and total > 2000, load
    # Four standard deviations of a binomial share (the 100k-request, one-point check of the
    # routing itself is a Rust test: serve's traffic::tests).
    assert abs(load["variants"]["v2"] / total - 0.10) <= 4 * (0.09 / total) ** 0.5, load
    e = client.endpoint("falls")
    by_variant = {v["name"]: v["stats"]["requests"]["ok"] for v in e["variants"]}
    assert by_variant["v2"] >= load["variants"]["v2"] and by_variant["v1"] >= load["variants"]["v1"]
    assert e["stats"]["requests"]["ok"] == sum(by_variant.values())

    # Every answer names its variant, and each variant answers as its own model does.
    status, headers, answer = call(server.url, "/v2/models/falls/infer",
                                   {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": row}]},
                                   key="bed-7")
    assert status == 200 and headers["x-slipway-variant"] in ("v1", "v2")
    assert answer["model_version"] == headers["x-slipway-variant"][1:]
    want = {"v1": v1, "v2": v2}[headers["x-slipway-variant"]]
    probs = ort.InferenceSession(want, providers=["CPUExecutionProvider"]).run(None, {"X": X[:1]})[1]
    np.testing.assert_allclose(answer["outputs"][1]["data"], probs.flatten(), atol=1e-5)

    # Sticky: the same key, the same variant, every time.
    keys = [f"patient-{i}" for i in range(1500)]
    first = variants_of(server.url, keys, row)
    assert variants_of(server.url, keys[:300], row) == first[:300]
    assert 0.05 <= first.count("v2") / len(keys) <= 0.15

    # A replica on the same store routes every key the same way.
    args = [slipway_bin(), "serve", "--port", "0", "--data-dir", server.dir] + (["--db", server.db] if server.db else [])
    env_serve = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    replica = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env_serve, cwd=server.dir)
    try:
        line = replica.stdout.readline().decode().strip()
        assert line.startswith("slipway listening on "), line
        assert variants_of(line.removeprefix("slipway listening on "), keys[:300], row) == first[:300]
    finally:
        replica.terminate()
        replica.wait(timeout=10)

    # The routing key can come in another header.
    client.set_routing_key_header("falls", "X-Patient")
    headers = lambda k: {"Content-Type": "application/json", "X-Patient": k}  # noqa: E731
    moved_header = []
    for k in keys[:100]:
        req = urllib.request.Request(server.url + "/endpoints/falls/invocations", method="POST", headers=headers(k),
                                     data=json.dumps({"inputs": [row]}).encode())
        with urllib.request.urlopen(req, timeout=10) as r:
            moved_header.append(r.headers["x-slipway-variant"])
    assert moved_header == first[:100]
    with pytest.raises(SlipwayError) as e:
        client.set_routing_key_header("falls", "bad header")
    assert e.value.status == 400 and "key_header" in e.value.message
    client.set_routing_key_header("falls", "X-Slipway-Key")

    # Ten points of weight move about ten percent of the keys, and only towards v2.
    client.split_endpoint("falls", {"v1": 80, "v2": 20})
    after = variants_of(server.url, keys, row)
    moved = [(a, b) for a, b in zip(first, after) if a != b]
    assert all(a == "v1" and b == "v2" for a, b in moved), moved[:5]
    assert 0.07 <= len(moved) / len(keys) <= 0.13, len(moved)


def test_bad_splits_are_refused_and_change_nothing(server):
    client = Slipway(server.url)
    two_versions(client)
    client.create_endpoint("falls", "falls@1")
    client.split_endpoint("falls", {"v1": 70, "v2": 30})
    before = client.endpoint("falls")
    for weights, says in [({"v1": 90, "v2": 20}, "sum to 110"),
                          ({"v1": 50, "v9": 50}, "9"),
                          ({"v1": 150, "v2": -50}, "-50"),
                          ({"v1": 50, "1": 50}, "twice"),
                          ({"../etc": 100}, "'../etc'")]:
        with pytest.raises(SlipwayError) as e:
            client.split_endpoint("falls", weights)
        assert e.value.status in (400, 404) and says in e.value.message, (weights, e.value.message)
    with pytest.raises(SlipwayError) as e:
        client.shadow_endpoint("falls", "v7")
    assert e.value.status in (400, 404)
    after = client.endpoint("falls")
    assert after["variants"] == before["variants"] and after["revision"] == before["revision"]
    assert after["shadow"] is None

    # The CLI says what is wrong in one line and exits non-zero.
    for args in [["v1=90", "v2=20"], ["v1"], ["v1=abc"]]:
        done = cli(server, "endpoints", "split", "falls", *args)
        assert done.returncode != 0 and len(done.stderr.decode().strip().splitlines()) == 1, (args, done.stderr)
    done = cli(server, "endpoints", "split", "nope", "v1=100")
    assert done.returncode != 0 and "nope" in done.stderr.decode()


def test_a_shadow_never_changes_an_answer_and_its_failures_reach_nobody(server):
    client = Slipway(server.url)
    X, v1, v2 = two_versions(client)
    # Version 3 takes 3 features: every mirrored request fails on it.
    broken = onnx_of(LogisticRegression().fit(X[:, :3], (X[:, 0] > 0).astype(int)), X[:, :3])
    client.register_model("falls", model=broken)
    client.create_endpoint("falls", "falls@1")
    want = ort.InferenceSession(v1, providers=["CPUExecutionProvider"]).run(None, {"X": X[:50]})[1]

    def answers():
        got = []
        for i in range(50):
            status, headers, body = call(server.url, "/endpoints/falls/invocations", {"inputs": [X[i].tolist()]})
            assert status == 200 and headers["x-slipway-variant"] == "v1", body
            got.append(body["predictions"][0]["probabilities"])
        return np.array(got)

    done = cli(server, "endpoints", "shadow", "falls", "v2")
    assert done.returncode == 0 and "shadow v2" in done.stdout.decode(), done.stderr.decode()
    np.testing.assert_allclose(answers(), want, atol=1e-5)
    # The shadow's answers are compared in the background: v2 disagrees with v1 on some rows.
    deadline = time.time() + 10
    while time.time() < deadline:
        shadow = client.endpoint("falls")["shadow"]
        if shadow.get("compared_rows") == 50:
            break
        time.sleep(0.1)
    assert shadow["name"] == "v2" and shadow["version"] == 2 and shadow["compared_rows"] == 50, shadow
    labels1 = want.argmax(1)
    labels2 = ort.InferenceSession(v2, providers=["CPUExecutionProvider"]).run(None, {"X": X[:50]})[0]
    assert shadow["agreed_rows"] == int((labels1 == labels2).sum()), shadow

    # A shadow that fails on every request: callers see only the primary's answers.
    client.shadow_endpoint("falls", "v3")
    np.testing.assert_allclose(answers(), want, atol=1e-5)
    deadline = time.time() + 10
    while time.time() < deadline:
        e = client.endpoint("falls")
        if e["shadow"]["stats"]["requests"]["bad_input"] == 50:
            break
        time.sleep(0.1)
    assert e["shadow"]["stats"]["requests"]["bad_input"] == 50 and e["shadow"]["stats"]["requests"]["ok"] == 0, e
    assert e["stats"]["requests"]["failed"] == 0 and e["stats"]["requests"]["bad_input"] == 0
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        metrics = r.read().decode()
    assert 'variant="v3",role="shadow",outcome="bad_input"} 50' in metrics

    client.shadow_endpoint("falls", None)
    assert client.endpoint("falls")["shadow"] is None


def test_a_sampled_shadow_sees_its_share_and_a_key_is_always_in_or_out(server):
    client = Slipway(server.url)
    X, _, _ = two_versions(client)
    client.create_endpoint("falls", "falls@1")
    for body, says in [({"shadow": "v2", "shadow_percent": 0}, "percent"),
                       ({"shadow": "v2", "shadow_percent": 101}, "percent"),
                       ({"shadow_percent": 10}, "shadow_percent")]:
        with pytest.raises(SlipwayError) as e:
            client._request("PUT", "/api/v1/endpoints/falls/traffic", body)
        assert e.value.status == 400 and says in e.value.message, (body, e.value.message)
    assert client.endpoint("falls")["shadow"] is None
    done = cli(server, "endpoints", "shadow", "falls", "v2", "--percent", "30")
    assert done.returncode == 0 and "shadow v2 on 30% of requests" in done.stdout.decode(), done.stdout
    assert client.endpoint("falls")["shadow"]["percent"] == 30

    def compared(expect=None):
        deadline = time.time() + 10
        while True:
            n = client.endpoint("falls")["shadow"].get("compared_rows", 0)
            if n == expect or time.time() > deadline:
                return n
            time.sleep(0.1)

    keys = [f"bed-{i}" for i in range(400)]
    for k in keys:
        status, _, body = call(server.url, "/endpoints/falls/invocations", {"inputs": [X[0].tolist()]}, key=k)
        assert status == 200, body
    time.sleep(0.5)
    first = compared()
    assert 80 <= first <= 160, first  # 30% of 400 keys, give or take four deviations
    # The same keys again: exactly the same ones are mirrored.
    for k in keys:
        call(server.url, "/endpoints/falls/invocations", {"inputs": [X[0].tolist()]}, key=k)
    assert compared(2 * first) == 2 * first


def test_ground_truth_scores_each_variant_and_the_abtest_compares_them(server):
    client = Slipway(server.url)
    X, v1, v2 = two_versions(client)  # v1 learnt X0 > 0, v2 learnt X1 > 0
    client.create_endpoint("falls", "falls@1")
    client.split_endpoint("falls", {"v1": 50, "v2": 50})
    truth, seen, rows_of = {}, {"v1": 0, "v2": 0}, {"v1": [], "v2": []}
    for i in range(300):
        row = X[i % len(X)]
        status, headers, _ = call(server.url, "/endpoints/falls/invocations", {"inputs": [row.tolist()]}, key=f"k{i}")
        assert status == 200
        seen[headers["x-slipway-variant"]] += 1
        rows_of[headers["x-slipway-variant"]].append(i % len(X))
        truth[headers["x-request-id"]] = int(row[0] > 0)
    # The client's own request id works too.
    got = client.predict("falls", [X[0].tolist()], key="k0", request_id="mine-1")
    assert len(got) == 1
    rows_of["v1" if 0 in rows_of["v1"][:1] else "v2"].append(0)  # key k0 sticks to request 0's variant
    truth["mine-1"] = int(X[0][0] > 0)
    truth["never-sent"] = 1
    answer = client.feedback("falls", truth)
    assert answer == {"scored": 301, "unknown": ["never-sent"]}, answer

    report = client.abtest("falls")
    by = {v["name"]: v for v in report["variants"]}
    assert by["v1"]["feedback_rows"] + by["v2"]["feedback_rows"] == 301
    assert by["v1"]["requests"] + by["v2"]["requests"] >= 301
    assert by["v1"]["accuracy"] > 0.95 and by["v2"]["accuracy"] < 0.8, by
    [comparison] = report["comparisons"]
    accuracy = next(m for m in comparison["metrics"] if m["metric"] == "accuracy")
    assert comparison["variant"] == "v2" and comparison["against"] == "v1"
    assert accuracy["effect"] == pytest.approx(by["v2"]["accuracy"] - by["v1"]["accuracy"])
    assert accuracy["interval"][0] < accuracy["effect"] < accuracy["interval"][1] < 0
    assert accuracy["p_value"] < 1e-6 and accuracy["always_valid_p"] < 0.01
    assert report["sample_ratio"]["mismatch"] is False
    # Every outcome metric agrees with scikit-learn's on the same rows (scores: probabilities[:, 1]).
    for name, onnx in [("v1", v1), ("v2", v2)]:
        Xv = X[rows_of[name]]
        labels, probs = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"]).run(None, {"X": Xv})
        y = (Xv[:, 0] > 0).astype(int)
        v = by[name]
        assert v["feedback_rows"] == len(y)
        assert v["precision"] == pytest.approx(precision_score(y, labels), abs=1e-9), (name, v)
        assert v["recall"] == pytest.approx(recall_score(y, labels), abs=1e-9), (name, v)
        assert v["f1"] == pytest.approx(f1_score(y, labels), abs=1e-9), (name, v)
        assert v["roc_auc"] == pytest.approx(roc_auc_score(y, probs[:, 1]), abs=2e-3), (name, v)
    names = [m["metric"] for m in comparison["metrics"]]
    # (No errors on either side: an error rate of 0 against 0 is not compared.) Labels 0 and 1
    # are numbers too, so MAE is one minus the accuracy.
    assert names == ["accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse"], names
    assert by["v2"]["mae"] == pytest.approx(1 - by["v2"]["accuracy"], abs=1e-12)
    # Another positive label turns precision and recall around.
    flipped = {v["name"]: v for v in client.abtest("falls", positive="0")["variants"]}
    assert flipped["v2"]["precision"] != by["v2"]["precision"] and flipped["v2"]["accuracy"] == by["v2"]["accuracy"]

    done = cli(server, "endpoints", "abtest", "falls")
    out = done.stdout.decode()
    assert done.returncode == 0 and "v2 vs v1, accuracy: effect -0." in out and "sample ratio ok" in out, out

    # Bad ground truth is refused, naming the request.
    for body in [{"request_id": "mine-1", "label": {"a": 1}},
                 {"request_id": "mine-1", "label": 1, "labels": [1]},
                 {"request_id": "mine-1", "labels": [1, 0]},
                 {"items": "nope"}]:
        status, _, err = call(server.url, "/api/v1/endpoints/falls/feedback", body)
        assert status == 400 and err["error_code"] == "INVALID_PARAMETER_VALUE", (body, err)
    # Nothing changed: the scores are those of the first call.
    assert sum(v["feedback_rows"] for v in client.abtest("falls")["variants"]) == 301
    status, _, err = call(server.url, "/api/v1/endpoints/nope/feedback", {"request_id": "x", "label": 1})
    assert status == 404
