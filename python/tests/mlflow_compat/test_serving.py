"""Serving end to end against a real Slipway server: a scikit-learn model exported with skl2onnx
and logged with `mlflow.onnx.log_model`, served by a named endpoint over the Open Inference
Protocol v2 and MLflow's /invocations, checked against onnxruntime; the endpoint follows its
alias; bad inputs get 400 saying what was expected; every answer has a request id."""

import json
import time
import urllib.error
import urllib.request

import numpy as np
import onnxruntime as ort
import pytest
from skl2onnx import to_onnx
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import mlflow


def _call(url, path, body=None, method=None, content_type="application/json", headers=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(f"{url}{path}", data=data, method=method or ("POST" if data else "GET"))
    req.add_header("Content-Type", content_type)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, dict(r.headers), json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"{}")


def _data():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    y = np.where(X[:, 0] + 0.5 * X[:, 1] > 0, "fall", np.where(X[:, 2] > 0, "walk", "sit"))
    return X, y


def _register(model, X, name):
    onx = to_onnx(model, X[:1], options={id(model): {"zipmap": False}})
    with mlflow.start_run():
        mlflow.onnx.log_model(onx, name="model", registered_model_name=name)
    return ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])


def test_endpoint_serves_oip_and_invocations_like_onnxruntime(client, server):
    X, y = _data()
    rf = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(X, y)
    sess = _register(rf, X, "falls")
    client.set_registered_model_alias("falls", "champion", "1")
    status, _, body = _call(server.url, "/api/v1/endpoints", {"name": "ward", "model": "falls@champion"})
    assert status == 200, body
    assert body["version"] == 1 and body["inputs"][0]["shape"] == [-1, 6]

    batch = X[:32]
    want_labels, want_probs = sess.run(None, {"X": batch})
    req = {"id": "r-1", "inputs": [{"name": "X", "shape": list(batch.shape), "datatype": "FP32",
                                   "data": batch.flatten().tolist()}]}
    status, headers, body = _call(server.url, "/v2/models/ward/infer", req)
    assert status == 200, body
    assert body["id"] == "r-1" and body["model_version"] == "1"
    assert headers.get("x-request-id")
    outs = {o["name"]: o for o in body["outputs"]}
    assert outs["label"]["data"] == list(want_labels)
    np.testing.assert_allclose(np.array(outs["probabilities"]["data"]).reshape(32, -1), want_probs, atol=1e-5)

    for payload in [
        {"dataframe_split": {"columns": [f"f{i}" for i in range(6)], "data": batch.tolist()}},
        {"dataframe_records": [{f"f{i}": float(v) for i, v in enumerate(row)} for row in batch]},
        {"instances": batch.tolist()},
        {"inputs": batch.tolist()},
    ]:
        status, _, body = _call(server.url, "/endpoints/ward/invocations", payload)
        assert status == 200, (list(payload), body)
        assert [p["label"] for p in body["predictions"]] == list(want_labels)
        np.testing.assert_allclose([p["probabilities"] for p in body["predictions"]], want_probs, atol=1e-5)
    csv = "\n".join([",".join(f"f{i}" for i in range(6))] + [",".join(repr(float(v)) for v in row) for row in batch])
    status, _, body = _call(server.url, "/invocations", csv.encode(), content_type="text/csv")
    assert status == 200, body
    assert [p["label"] for p in body["predictions"]] == list(want_labels)

    status, _, meta = _call(server.url, "/v2/models/ward")
    assert status == 200 and meta["inputs"][0] == {"name": "X", "datatype": "FP32", "shape": [-1, 6]}
    assert _call(server.url, "/v2/models/ward/ready")[0] == 200
    assert _call(server.url, "/v2/health/live")[0] == 200
    assert _call(server.url, "/v2")[2]["name"] == "slipway"

    # Wrong name, type, shape: 400, saying what was expected.
    bad = [
        ({"inputs": [{"name": "Y", "shape": [1, 6], "datatype": "FP32", "data": [0] * 6}]}, "'X'"),
        ({"inputs": [{"name": "X", "shape": [1, 6], "datatype": "INT64", "data": [0] * 6}]}, "FP32"),
        ({"inputs": [{"name": "X", "shape": [1, 5], "datatype": "FP32", "data": [0] * 5}]}, "float32[N, 6]"),
        ({"inputs": [{"name": "X", "shape": [2, 6], "datatype": "FP32", "data": [0] * 6}]}, "12 expected"),
    ]
    for req, expected in bad:
        status, headers, body = _call(server.url, "/v2/models/ward/infer", req)
        assert status == 400 and expected in body["message"], body
        assert body["error_code"] == "INVALID_PARAMETER_VALUE" and headers.get("x-request-id")
    status, _, body = _call(server.url, "/endpoints/ward/invocations", {"instances": [[1, 2, 3]]})
    assert status == 400 and "float32[N, 6]" in body["message"]
    assert _call(server.url, "/v2/models/nope/infer", bad[0][0])[0] == 404


def test_moving_the_alias_switches_the_endpoint(client, server):
    X, y = _data()
    _register(LogisticRegression(max_iter=500).fit(X, y), X, "m")
    sess2 = _register(RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y), X, "m")
    client.set_registered_model_alias("m", "champion", "1")
    assert _call(server.url, "/api/v1/endpoints", {"name": "e", "model": "m@champion"})[0] == 200
    req = {"inputs": [{"name": "X", "shape": [4, 6], "datatype": "FP32", "data": X[:4].flatten().tolist()}]}
    assert _call(server.url, "/v2/models/e/infer", req)[2]["model_version"] == "1"
    client.set_registered_model_alias("m", "champion", "2")
    deadline = time.time() + 10
    while True:
        status, _, body = _call(server.url, "/v2/models/e/infer", req)
        assert status == 200, body
        if body["model_version"] == "2" or time.time() > deadline:
            break
        time.sleep(0.1)
    assert body["model_version"] == "2", "the endpoint follows its alias without a restart"
    probs = np.array(body["outputs"][1]["data"]).reshape(4, -1)
    np.testing.assert_allclose(probs, sess2.run(None, {"X": X[:4]})[1], atol=1e-5)

    status, _, body = _call(server.url, "/api/v1/endpoints", {"name": "e", "model": "m@champion"})
    assert status == 400 and body["error_code"] == "RESOURCE_ALREADY_EXISTS"
    status, _, body = _call(server.url, "/api/v1/endpoints", {"name": "x", "model": "m@nope"})
    assert status == 400, body
    assert [e["name"] for e in _call(server.url, "/api/v1/endpoints")[2]["endpoints"]] == ["e"]
    assert _call(server.url, "/api/v1/endpoints/e", method="DELETE")[0] == 200
    assert _call(server.url, "/v2/models/e/infer", req)[0] == 404


def test_serving_metrics_follow_prometheus_conventions(client, server):
    X, y = _data()
    _register(LogisticRegression(max_iter=500).fit(X, y), X, "lr")
    assert _call(server.url, "/api/v1/endpoints", {"name": "m1", "model": "lr@1"})[0] == 200
    req = {"inputs": [{"name": "X", "shape": [2, 6], "datatype": "FP32", "data": X[:2].flatten().tolist()}]}
    for _ in range(3):
        assert _call(server.url, "/v2/models/m1/infer", req)[0] == 200
    bad = {"inputs": [{"name": "X", "shape": [1, 5], "datatype": "FP32", "data": [0] * 5}]}
    assert _call(server.url, "/v2/models/m1/infer", bad)[0] == 400
    with urllib.request.urlopen(f"{server.url}/metrics") as r:
        text = r.read().decode()
    labels = 'endpoint="m1",model="lr",version="1",variant="v1",role="serve"'
    assert f'slipway_serve_requests_total{{{labels},outcome="ok"}} 3' in text
    assert f"slipway_serve_request_duration_seconds_count{{{labels}}} 3" in text
    assert f"slipway_serve_batch_size_count{{{labels}}} 3" in text
    assert f"slipway_serve_queue_depth{{{labels}}} 0" in text
    assert "# TYPE slipway_serve_request_duration_seconds histogram" in text


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(client, server):
    """An endpoint that waits for a batch (max_queue_delay_us > 0) stacks concurrent requests
    into one model run and splits the answer back: every caller gets exactly its rows."""
    from concurrent.futures import ThreadPoolExecutor

    X, y = _data()
    sess = _register(LogisticRegression(max_iter=500).fit(X, y), X, "stacked")
    endpoint = {"name": "stacked", "model": "stacked@1", "max_batch_size": 64, "max_queue_delay_us": 20000}
    assert _call(server.url, "/api/v1/endpoints", endpoint)[0] == 200

    def ask(i):
        rows = X[i * 3:i * 3 + 1 + i % 3]  # 1 to 3 rows, different for every caller
        req = {"inputs": [{"name": "X", "shape": list(rows.shape), "datatype": "FP32",
                           "data": rows.flatten().tolist()}]}
        status, _, body = _call(server.url, "/v2/models/stacked/infer", req)
        assert status == 200, body
        return rows, np.array(body["outputs"][1]["data"]).reshape(len(rows), -1)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, range(48)))
    for rows, probs in answers:
        np.testing.assert_allclose(probs, sess.run(None, {"X": rows})[1], atol=1e-5)
    with urllib.request.urlopen(f"{server.url}/metrics") as r:
        text = r.read().decode()
    labels = 'endpoint="stacked",model="stacked",version="1",variant="v1",role="serve"'
    runs = int(next(l.split()[-1] for l in text.splitlines()
                    if l.startswith(f"slipway_serve_batch_size_count{{{labels}}}")))
    rows_run = float(next(l.split()[-1] for l in text.splitlines()
                          if l.startswith(f"slipway_serve_batch_size_sum{{{labels}}}")))
    assert rows_run == sum(len(r) for r, _ in answers)
    assert runs < 48, f"{runs} model runs for 48 concurrent requests: nothing was batched"
