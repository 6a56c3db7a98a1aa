"""Monitors on an endpoint, on both stores: skew against the training table, drift against the
window before and prediction drift, each judging a window of the prediction log with
Evidently's default tests (their numbers checked against SciPy's on the logged rows); the
background judge keeps a report per closed window; bad specs are refused with nothing stored."""

import json
import os
import subprocess
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression

from harness import slipway_bin
from slipway import Slipway, SlipwayError

NAMES = ["hip_y", "head_y", "speed", "aspect"]
WINDOW_S = 3


def post_rows(url, rows):
    for row in rows:
        req = urllib.request.Request(url + "/endpoints/falls/invocations", method="POST",
                                     headers={"Content-Type": "application/json"},
                                     data=json.dumps({"inputs": [row.tolist()]}).encode())
        urllib.request.urlopen(req, timeout=10).read()


def next_window():
    """Sleeps to just after a window boundary; returns that window's start (ms)."""
    now = time.time() * 1000
    start = (now // (WINDOW_S * 1000) + 1) * WINDOW_S * 1000
    time.sleep((start - now) / 1000 + 0.05)
    return int(start)


def settle(window_ms):
    """Until the window has closed and the log has written it (and the judge's settle time)."""
    time.sleep(max(0.0, (window_ms + WINDOW_S * 1000 + 8_500) / 1000 - time.time()))


def cli(server, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "MLFLOW_"))}
    return subprocess.run([slipway_bin(), "--server", server.url, *args], capture_output=True, env=env, timeout=60)


def test_skew_drift_and_prediction_drift_judge_windows_of_the_log(server, tmp_path):
    rng = np.random.default_rng(21)
    train = pd.DataFrame(rng.normal(size=(500, 4)), columns=NAMES)
    train["label"] = (train["hip_y"] > 0).astype(int)
    train.to_parquet(tmp_path / "train.parquet")
    server.cli("data", "add", str(tmp_path / "train.parquet"), "--dataset", "falls-train")
    model = LogisticRegression().fit(train[NAMES].to_numpy(np.float32), train["label"])
    client = Slipway(server.url)
    client.register_model("falls", model=to_onnx(model, initial_types=[("X", FloatTensorType([None, 4]))],
                                                  options={id(model): {"zipmap": False}}).SerializeToString())
    client.create_endpoint("falls", "falls@1")
    client.set_prediction_log("falls", features=NAMES, window_s=WINDOW_S)

    # Bad specs: refused, named, nothing stored.
    for spec, status, word in [
        ({"kind": "sideways"}, 400, "kind"),
        ({"kind": "drift", "reference": "falls-train@1"}, 400, "reference is for skew"),
        ({"kind": "skew", "reference": "falls-train@9"}, 404, "falls-train"),
        ({"kind": "skew", "tests": {"hip_y": "t-test"}}, 400, "no test named"),
        ({"kind": "skew", "share": 0}, 400, "share"),
        ({"kind": "skew", "endpoint": "nope"}, 404, "nope"),
    ]:
        body = {"name": "bad", "endpoint": "falls", **spec}
        req = urllib.request.Request(server.url + "/api/v1/monitors", method="POST",
                                     headers={"Content-Type": "application/json"}, data=json.dumps(body).encode())
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        answer = json.loads(e.value.read())
        assert e.value.code == status and word in answer["message"], (spec, answer)
    assert client.monitors() == []

    done = cli(server, "monitor", "create", "falls-skew", "--endpoint", "falls", "--kind", "skew",
               "--reference", "falls-train@1")
    assert done.returncode == 0, done.stderr.decode()
    client.create_monitor("falls-drift", "falls", "drift")
    client.create_monitor("falls-preds", "falls", "prediction_drift")
    with pytest.raises(SlipwayError) as e:
        client.create_monitor("falls-drift", "falls", "drift")
    assert e.value.error_code == "RESOURCE_ALREADY_EXISTS"

    # Window A: the training distribution, a new seed. Window B: 4K cameras, coordinates x3.
    calm = rng.normal(size=(150, 4)).astype(np.float32)
    a = next_window()
    post_rows(server.url, calm)
    skewed = rng.normal(size=(150, 4)).astype(np.float32)
    skewed[:, :2] *= 3
    b = next_window()
    post_rows(server.url, skewed)
    settle(b)

    ra = client.evaluate_monitor("falls-skew", a)
    assert ra["window_ms"] == a and ra["current_rows"] == 150 and ra["reference"] == "falls-train@1"
    assert ra["reference_rows"] == 500 and ra["drift"] is False, ra
    assert [c["column"] for c in ra["columns"]] == NAMES
    rb = client.evaluate_monitor("falls-skew", b)
    assert rb["drift"] is True, rb
    drifted = {c["column"] for c in rb["columns"] if c["drift"]}
    assert {"hip_y", "head_y"} <= drifted and len(drifted) <= 3, rb

    # Evidently's choice for 500 reference rows of a float column is KS at 0.05, and the
    # statistic is SciPy's p-value on the logged rows.
    logged = client.predictions("falls", since_ms=b, until_ms=b + WINDOW_S * 1000 - 1)
    assert len(logged) == 150
    hip = next(c for c in rb["columns"] if c["column"] == "hip_y")
    assert (hip["test"], hip["statistic_name"], hip["threshold"]) == ("ks", "p_value", 0.05)
    want = stats.ks_2samp(train["hip_y"], logged["hip_y"].astype(float)).pvalue
    assert hip["statistic"] == pytest.approx(want, rel=1e-9)

    # Drift compares window B with window A; prediction drift, the predicted labels.
    rd = client.evaluate_monitor("falls-drift", b)
    assert rd["reference"] == f"window {a}" and rd["reference_rows"] == 150 and rd["drift"] is True
    rp = client.evaluate_monitor("falls-preds", b)
    assert [c["column"] for c in rp["columns"]] == ["prediction"] and rp["columns"][0]["kind"] == "categorical"

    # A window with no traffic cannot be judged: 400, and why.
    with pytest.raises(SlipwayError) as e:
        client.evaluate_monitor("falls-skew", a - 60_000)
    assert e.value.status == 400 and "logged rows" in e.value.message

    # The background judge keeps a report of the latest closed window without being asked.
    deadline = time.time() + 15
    while time.time() < deadline:
        reports = client.monitor_reports("falls-skew", since_ms=a)
        if {r["window_ms"] for r in reports} >= {a, b}:
            break
        time.sleep(0.5)
    assert [r["window_ms"] for r in client.monitor_reports("falls-skew", since_ms=a)] == [b, a]
    assert client.monitor("falls-skew")["latest"]["window_ms"] == b

    # Lists leave distributions out; one window with them has each column's two sides as shares
    # per bin: equal bins over the pooled range, as NumPy's histogram counts them.
    assert all("distributions" not in r for r in client.monitor_reports("falls-skew", since_ms=a))
    [one] = client.monitor_reports("falls-skew", window_ms=b, distributions=True)
    assert one["window_ms"] == b and set(one["distributions"]) == set(NAMES)
    d = one["distributions"]["hip_y"]
    assert len(d["bins"]) == len(d["reference"]) == len(d["current"]) == 24
    assert sum(d["reference"]) == pytest.approx(1) and sum(d["current"]) == pytest.approx(1)
    current = logged["hip_y"].astype(float).to_numpy()
    edges = np.linspace(min(train["hip_y"].min(), current.min()), max(train["hip_y"].max(), current.max()), 25)
    np.testing.assert_allclose(d["current"], np.histogram(current, edges)[0] / 150, atol=1.01 / 150)
    np.testing.assert_allclose(d["reference"], np.histogram(train["hip_y"], edges)[0] / 500, atol=1.01 / 500)

    done = cli(server, "monitor", "report", "falls-skew")
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert "DRIFT" in out and "hip_y" in out and "p_value" in out, out
    done = cli(server, "--json", "monitor", "list")
    listed = {m["name"]: m for m in json.loads(done.stdout)["monitors"]}
    assert set(listed) == {"falls-skew", "falls-drift", "falls-preds"}
    assert listed["falls-skew"]["latest"]["drift"] is True
    client.delete_monitor("falls-preds")
    assert [m["name"] for m in client.monitors()] == ["falls-drift", "falls-skew"]
    with pytest.raises(SlipwayError) as e:
        client.monitor("falls-preds")
    assert e.value.status == 404
