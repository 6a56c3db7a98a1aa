"""The prediction log, on both stores: every answered request's inputs and outputs written as
Parquet segments in the blob store by a background writer, with per-window profiles merged over
processes; sampling by request id, a per-second cap, names from lineage or set by hand, bad
settings refused with nothing changed, and `kill -9` losing at most the unflushed buffer."""

import io
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression

from harness import slipway_bin, start_server, wait_for
from slipway import Slipway, SlipwayError

DATA = np.random.default_rng(5).normal(size=(400, 4)).astype(np.float32)
NAMES = ["hip_y", "head_y", "speed", "aspect"]
FLUSH_S = 5  # serve::predlog::FLUSH_MS


def register(client, name="falls"):
    model = LogisticRegression().fit(DATA, (DATA[:, 0] > 0).astype(int))
    onx = to_onnx(model, initial_types=[("X", FloatTensorType([None, 4]))],
                  options={id(model): {"zipmap": False}}).SerializeToString()
    return client.register_model(name, model=onx)["version"]


def post(url, rows, request_id=None, endpoint="falls"):
    headers = {"Content-Type": "application/json"}
    if request_id:
        headers["x-request-id"] = request_id
    req = urllib.request.Request(f"{url}/endpoints/{endpoint}/invocations", method="POST", headers=headers,
                                 data=json.dumps({"inputs": rows}).encode())
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.headers["x-request-id"], json.loads(r.read())




def cli(server, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "MLFLOW_"))}
    return subprocess.run([slipway_bin(), "--server", server.url, *args], capture_output=True, env=env, timeout=60)


def test_answers_are_logged_with_named_inputs_and_profiled_per_window(server):
    client = Slipway(server.url)
    register(client)
    client.create_endpoint("falls", "falls@1")
    log = client.set_prediction_log("falls", features=NAMES, window_s=2)
    assert log["settings"] == {"sample": 1.0, "max_per_second": 10000, "window_s": 2, "features": NAMES}
    assert client.endpoint("falls")["log"]["window_s"] == 2

    sent, started = {}, time.time()
    for i in range(60):
        rows = DATA[i * 2:i * 2 + (2 if i % 3 == 0 else 1)]
        status, rid, answer = post(server.url, rows.tolist(), request_id=f"req-{i}")
        assert status == 200 and rid == f"req-{i}"
        sent[rid] = (rows, answer["predictions"])
    total = sum(len(r) for r, _ in sent.values())
    wait_for("the segment", lambda: client.prediction_log("falls")["rows"] == total, timeout=FLUSH_S + 10)

    frame = client.predictions("falls", since_ms=int(started * 1000) - 1000)
    assert list(frame.columns) == ["request_id", "at", "variant", "version", "row", "latency_ms",
                                   *NAMES, "prediction", "score"]
    assert len(frame) == total and set(frame["request_id"]) == set(sent)
    assert (frame["variant"] == "v1").all() and (frame["version"] == 1).all()
    assert (frame["latency_ms"] > 0).all()
    assert str(frame["at"].dtype).startswith("datetime64") and frame["at"].dt.tz is not None
    for rid, group in frame.groupby("request_id"):
        rows, said = sent[rid]
        group = group.sort_values("row")
        np.testing.assert_array_equal(group[NAMES].to_numpy(), rows)
        assert group["prediction"].tolist() == [str(p["label"]) for p in said]
        assert group["score"].between(0, 1).all()

    # The windows' profiles hold every row once, and their means are the rows' means.
    windows = client.prediction_windows("falls", since_ms=int(started * 1000) - 5000)
    assert sum(w["rows"] for w in windows) == total
    assert all(w["variant"] == "v1" and w["versions"] == [1] and w["window_s"] == 2 for w in windows)
    biggest = max(windows, key=lambda w: w["rows"])
    at_ms = (frame["at"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    in_window = frame[at_ms // 2000 * 2000 == biggest["window_ms"]]
    assert len(in_window) == biggest["rows"]
    column = {c["name"]: c for c in biggest["columns"]}
    assert set(column) == {*NAMES, "prediction", "score", "latency_ms"}
    assert column["speed"]["mean"] == pytest.approx(in_window["speed"].astype(float).mean(), rel=1e-9)
    assert column["prediction"]["count"] == len(in_window)

    # The same rows as JSON, through the CLI, and a Parquet file written by it.
    done = cli(server, "endpoints", "predictions", "falls", "--limit", "5")
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert "hip_y" in out and "prediction" in out and "more rows" in out
    path = os.path.join(server.dir, "log.parquet")
    done = cli(server, "endpoints", "predictions", "falls", "--out", path)
    assert done.returncode == 0, done.stderr.decode()
    assert pq.read_table(path).num_rows == total
    done = cli(server, "--json", "endpoints", "log", "falls")
    assert json.loads(done.stdout)["rows"] == total

    # The server's metrics count what the log did.
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        metrics = r.read().decode()
    assert f'slipway_prediction_log_rows_total{{fate="written"}} {total}' in metrics


def test_a_sample_keeps_the_same_request_ids_and_the_cap_bounds_each_second(server):
    client = Slipway(server.url)
    register(client)
    client.create_endpoint("falls", "falls@1")
    done = cli(server, "endpoints", "log", "falls", "--sample", "0.3")
    assert done.returncode == 0, done.stderr.decode()
    assert "logs 30% of requests" in done.stdout.decode()
    time.sleep(1.2)  # the endpoint re-reads its settings within a second
    ids = [f"patient-{i}" for i in range(300)]
    for rid in ids:
        post(server.url, DATA[:1].tolist(), request_id=rid)
    for rid in ids:  # again: the same ids are in the sample
        post(server.url, DATA[:1].tolist(), request_id=rid)
    wait_for("the segment", lambda: client.prediction_log("falls")["rows"] > 0, timeout=FLUSH_S + 10)
    time.sleep(1)
    frame = client.predictions("falls")
    counts = frame["request_id"].value_counts()
    assert 0.2 <= len(counts) / len(ids) <= 0.4, len(counts)
    assert (counts == 2).all()

    # A cap of 5 rows a second: a burst of 40 requests in well under two seconds logs at most 10.
    client.set_prediction_log("falls", sample=1.0, max_per_second=5)
    time.sleep(1.2)
    before = client.prediction_log("falls")["process"]
    started = time.time()
    for i in range(40):
        post(server.url, DATA[:1].tolist(), request_id=f"burst-{i}")
    seconds = time.time() - started
    after = wait_for("the burst written", lambda: (p := client.prediction_log("falls")["process"])["buffered"] == 0
                     and p, timeout=FLUSH_S + 10)
    logged = after["logged"] - before["logged"]
    assert 1 <= logged <= 5 * (int(seconds) + 2), (logged, seconds)
    assert after["capped"] - before["capped"] == 40 - logged


def test_bad_settings_are_refused_and_change_nothing(server):
    client = Slipway(server.url)
    register(client)
    client.create_endpoint("falls", "falls@1")
    before = client.prediction_log("falls")["settings"]
    for body, word in [({"sample": 1.5}, "sample"), ({"window_s": 0}, "window"),
                       ({"features": ["a", "a"]}, "repeated"), ({"features": ["score"]}, "reserved"),
                       ({"sampel": 1}, "unknown field")]:
        req = urllib.request.Request(f"{server.url}/api/v1/endpoints/falls/log", method="PUT",
                                     headers={"Content-Type": "application/json"}, data=json.dumps(body).encode())
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        answer = json.loads(e.value.read())
        assert e.value.code == 400 and answer["error_code"] == "INVALID_PARAMETER_VALUE", answer
        assert word in answer["message"], answer
    assert client.prediction_log("falls")["settings"] == before
    with pytest.raises(SlipwayError) as e:
        client.prediction_log("nope")
    assert e.value.status == 404
    with pytest.raises(SlipwayError) as e:
        client.predictions("falls", since_ms=10, until_ms=5)
    assert e.value.status == 400
    done = cli(server, "endpoints", "log", "falls", "--sample", "2")
    assert done.returncode != 0
    err = done.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "between 0 and 1" in err, err




def test_kill_9_loses_at_most_the_unflushed_buffer_and_no_segment_is_corrupt(server):
    client = Slipway(server.url)
    register(client)
    client.create_endpoint("falls", "falls@1")
    client.set_prediction_log("falls", features=NAMES)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    proc, url = start_server(server.dir, server.db)
    answered = []  # (request id, when answered)
    stop = threading.Event()

    def traffic():
        i = 0
        while not stop.is_set():
            try:
                _, rid, _ = post(url, DATA[i % 300:i % 300 + 1].tolist(), request_id=f"k-{i}")
                answered.append((rid, time.time()))
            except OSError:
                return
            i += 1

    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    try:
        time.sleep(12)
        proc.send_signal(signal.SIGKILL)
        killed = time.time()
        proc.wait()
    finally:
        stop.set()
        t.join(timeout=10)
    # A new process on the same stores reads every segment whole.
    proc, url = start_server(server.dir, server.db)
    try:
        other = Slipway(url)
        frame = other.predictions("falls", since_ms=0)
        logged = set(frame["request_id"])
        assert logged, "something was written before the kill"
        assert logged <= {rid for rid, _ in answered}
        # Everything answered more than the flush interval and a tick (and slack) before the kill is there.
        old = {rid for rid, at in answered if at < killed - FLUSH_S - 3}
        assert old and old <= logged, len(old - logged)
        assert frame[NAMES].notna().all().all()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def test_inputs_are_named_after_the_training_table_found_through_lineage(sqlite_server, tmp_path):
    """A model trained on fall-features@1 (as its run's input says) logs its 12 inputs under the
    table's numeric columns, the target-free ones, in order."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient
    from mlflow.entities import Dataset, DatasetInput, InputTag

    models = os.environ["SLIPWAY_SERVING_MODELS"]
    out = tmp_path / "example"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_") or k.startswith("SLIPWAY_TEST")}
    subprocess.run([slipway_bin(), "example", "fall-detection", "generate", str(out), "--clips", "30", "--seed", "1"],
                   check=True, capture_output=True, env=env)
    sqlite_server.cli("data", "add", str(out / "features.parquet"), "--dataset", "fall-features")
    table = pd.read_parquet(out / "features.parquet")
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    assert len(numeric) == 12

    s = Slipway(sqlite_server.url)
    c = MlflowClient(tracking_uri=sqlite_server.url)
    run_id = c.create_run(c.create_experiment("falls")).info.run_id
    c.log_inputs(run_id, [DatasetInput(
        Dataset(name="fall-features", digest=s.dataset("fall-features").version(1).manifest, source_type="slipway",
                source=json.dumps({"uri": "slipway://fall-features@1"})),
        tags=[InputTag("mlflow.data.context", "training")])])
    c.log_artifact(run_id, os.path.join(models, "logreg_fall_nozipmap.onnx"), artifact_path="model")
    s.register_model("fall", source=f"runs:/{run_id}/model")
    s.create_endpoint("fall-ep", "fall@1")
    rows = table[numeric].to_numpy(dtype=np.float32)[:10]
    for i in range(10):
        post(sqlite_server.url, rows[i:i + 1].tolist(), request_id=f"r{i}", endpoint="fall-ep")
    wait_for("the segment", lambda: s.prediction_log("fall-ep")["rows"] == 10, timeout=FLUSH_S + 10)
    frame = s.predictions("fall-ep")
    assert list(frame.columns)[6:-2] == numeric
    ordered = frame.assign(i=frame["request_id"].str[1:].astype(int)).sort_values("i")
    np.testing.assert_array_equal(ordered[numeric].to_numpy(), rows)


def test_performance_per_window_and_variant_from_ground_truth(server):
    """Ground truth for logged answers gives per-window metrics equal to scikit-learn's."""
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    client = Slipway(server.url)
    register(client)
    client.create_endpoint("falls", "falls@1")
    client.set_prediction_log("falls", features=NAMES, window_s=2)
    time.sleep(1.2)
    rng = np.random.default_rng(9)
    said, truth, scores = {}, {}, {}
    for i in range(80):
        if i == 40:  # the second half in the next window
            time.sleep(2.1)
        _, rid, answer = post(server.url, DATA[i:i + 1].tolist(), request_id=f"p-{i}")
        said[rid] = answer["predictions"][0]["label"]
        scores[rid] = answer["predictions"][0]["probabilities"][1]
        truth[rid] = int(said[rid]) if rng.random() < 0.8 else 1 - int(said[rid])
    assert client.feedback("falls", truth) == {"scored": 80, "unknown": []}
    wait_for("the log", lambda: client.prediction_log("falls")["rows"] == 80, timeout=FLUSH_S + 10)
    frame = client.performance("falls")
    assert frame["feedback_rows"].sum() == 80 and (frame["variant"] == "v1").all() and len(frame) >= 2
    # Each request's window, as the log saw it answered.
    logged = client.predictions("falls")
    at_ms = (logged["at"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    window_of = dict(zip(logged["request_id"], at_ms // 2000 * 2000))
    checked = 0
    for _, w in frame.iterrows():
        ids = [r for r in said if window_of[r] == w["window_ms"]]
        y, p = [truth[r] for r in ids], [int(said[r]) for r in ids]
        assert len(ids) == w["feedback_rows"], (w["window_ms"], len(ids))
        assert w["accuracy"] == pytest.approx(accuracy_score(y, p), rel=1e-12)
        assert w["precision"] == pytest.approx(precision_score(y, p, zero_division=0), rel=1e-12)
        assert w["recall"] == pytest.approx(recall_score(y, p, zero_division=0), rel=1e-12)
        assert w["f1"] == pytest.approx(f1_score(y, p, zero_division=0), rel=1e-12)
        if len(set(y)) == 2:
            assert w["roc_auc"] == pytest.approx(roc_auc_score(y, [scores[r] for r in ids]), rel=1e-6)
        checked += 1
    assert checked == len(frame) >= 2
    done = cli(server, "endpoints", "performance", "falls")
    assert done.returncode == 0 and "Accuracy" in done.stdout.decode(), done.stderr.decode()
