"""The registry through Slipway's own API, CLI and Python client on both stores: register from a
run's artifact and by upload, aliases, signatures, lineage to the run's dataset version, bad
input refused with nothing changed; endpoints from the CLI; `slipway serve` as a separate,
serving-only process on the same stores."""

import json
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

import mlflow
from harness import slipway_bin
from slipway import Slipway, SlipwayError


def cli(server, *args, check=True):
    """A client command against the server, as a user would type it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "MLFLOW_"))}
    done = subprocess.run([slipway_bin(), "--server", server.url, *args], capture_output=True, env=env)
    if check and done.returncode != 0:
        raise AssertionError(f"slipway {' '.join(args)} failed: {done.stderr.decode()}")
    return done


def trained(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, 4)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] - X[:, 3] > 0).astype(int)
    model = LogisticRegression(C=0.5 + seed).fit(X, y)
    return X, to_onnx(model, X[:1], options={id(model): {"zipmap": False}}).SerializeToString()


def ort_probs(onnx_bytes, X):
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return session.run(None, {"X": X})[1]


def test_register_alias_lineage_and_endpoints(server, monkeypatch, tmp_path):
    client = Slipway(server.url)
    X, v1_bytes = trained(1)
    _, v2_bytes = trained(2)

    # A dataset version, read by a run that logs the model file.
    data = tmp_path / "features"
    data.mkdir()
    pd.DataFrame(X, columns=list("abcd")).to_csv(data / "features.csv", index=False)
    client.add_dataset(data, name="fall-features", message="sample")
    dataset = client.dataset("fall-features").version(1)
    onnx_file = tmp_path / "logreg.onnx"
    onnx_file.write_bytes(v1_bytes)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    mlflow.set_tracking_uri(server.url)
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    with mlflow.start_run(run_name="train-logreg") as run:
        mlflow.log_input(dataset.mlflow_dataset(), context="training")
        mlflow.log_artifact(str(onnx_file))
    run_id = run.info.run_id

    v1 = client.register_model("fall", source=f"runs:/{run_id}/logreg.onnx", alias="prod")
    assert v1["version"] == 1 and v1["run_id"] == run_id and v1["aliases"] == ["prod"]
    assert v1["format"] == "onnx" and v1["servable"] is True
    inputs = v1["signature"]["inputs"]
    assert [i["name"] for i in inputs] == ["X"] and inputs[0]["elem_type"] == "float32"
    assert inputs[0]["shape"][1] == 4
    assert [o["name"] for o in v1["signature"]["outputs"]] == ["label", "probabilities"]

    v2 = client.register_model("fall", model=v2_bytes, run_id=run_id, description="C=2.5", alias="canary")
    assert v2["version"] == 2 and v2["source"].startswith("mlflow-artifacts:/registry-uploads/")
    assert v2["description"] == "C=2.5" and v2["aliases"] == ["canary"]

    detail = client.model("fall")
    assert detail["model"]["aliases"] == {"canary": 2, "prod": 1}
    assert detail["model"]["latest_version"] == 2
    assert [v["version"] for v in detail["versions"]] == [2, 1]
    assert [m["name"] for m in client.models(filter="name LIKE 'fa%'")] == ["fall"]
    assert client.models(filter="name = 'other'") == []
    assert client.model_version("fall", "canary")["version"] == 2

    lineage = client.lineage("fall", "prod")
    assert lineage["run"]["run_id"] == run_id and lineage["run"]["name"] == "train-logreg"
    assert [(d["name"], d["version"], d["context"]) for d in lineage["datasets"]] == [
        ("fall-features", 1, "training")]

    # Bad input: a clear 4xx and nothing registered.
    for source in ["file:///etc/passwd", "/etc/passwd", f"runs:/{run_id}/../../../etc", "http://169.254.169.254/x"]:
        with pytest.raises(SlipwayError) as e:
            client.register_model("fall", source=source)
        assert e.value.status == 400, source
    with pytest.raises(SlipwayError) as e:
        client.register_model("fall", model=b"not an onnx file")
    assert e.value.status == 400
    # A refused first version of a new model leaves no empty model behind.
    known = sorted(m["name"] for m in client.models())
    with pytest.raises(SlipwayError) as e:
        client.register_model("fresh", model=b"not an onnx file")
    assert e.value.status == 400
    with pytest.raises(SlipwayError) as e:
        client.register_model("fresh", source="file:///etc/passwd")
    assert e.value.status == 400
    assert sorted(m["name"] for m in client.models()) == known
    with pytest.raises(SlipwayError) as e:
        client.model("fresh")
    assert e.value.status == 404
    with pytest.raises(SlipwayError) as e:
        client._request("POST", "/api/v1/models/fall/versions?file_name=../evil.onnx", v1_bytes)
    assert e.value.status == 400 and "file name" in e.value.message
    with pytest.raises(SlipwayError) as e:
        client.set_alias("fall", "prod", 9)
    assert e.value.status == 404
    with pytest.raises(SlipwayError) as e:
        client.set_alias("fall", "latest", 1)
    assert e.value.status == 400
    with pytest.raises(SlipwayError) as e:
        client.lineage("nope", "1")
    assert e.value.status == 404
    assert [v["version"] for v in client.model("fall")["versions"]] == [2, 1]
    assert client.model("fall")["model"]["aliases"] == {"canary": 2, "prod": 1}

    # The CLI: list, show, lineage, endpoints, moving an alias.
    listed = json.loads(cli(server, "--json", "models", "list").stdout)
    assert [m["name"] for m in listed["models"]] == ["fall"]
    table = cli(server, "models", "list").stdout.decode()
    assert table.splitlines()[0].split() == ["NAME", "LATEST", "ALIASES", "UPDATED", "DESCRIPTION"]
    assert "canary→2" in table and "prod→1" in table
    shown = cli(server, "models", "show", "fall@canary").stdout.decode()
    assert "fall@2" in shown and "X: float32[" in shown
    chain = cli(server, "lineage", "model", "fall@prod").stdout.decode()
    assert f"run      {run_id}" in chain and "dataset  fall-features@1 as training" in chain

    made = json.loads(cli(server, "--json", "endpoints", "create", "fall-ep", "fall@prod",
                          "--max-batch-size", "16").stdout)
    assert made["version"] == 1 and made["max_batch_size"] == 16
    rows = X[:20]
    got = client.predict("fall-ep", pd.DataFrame(rows, columns=list("abcd")))
    np.testing.assert_allclose(np.stack(got["probabilities"].to_numpy()), ort_probs(v1_bytes, rows), atol=1e-5)
    listed = cli(server, "endpoints", "list").stdout.decode()
    header, line = listed.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "MODEL", "VERSION"]
    assert line.split()[:4] == ["fall-ep", "fall@prod", "1", "1"]
    stats = client.endpoint("fall-ep")["stats"]
    assert stats["requests"]["ok"] == 1 and stats["latency_ms"]["p50"] > 0
    with pytest.raises(SlipwayError) as e:
        client.predict("fall-ep", [[1.0, 2.0]])  # 2 values for a 4-feature model
    assert e.value.status == 400
    oip = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}
    with pytest.raises(SlipwayError) as e:
        client._request("POST", "/v2/models/fall-ep/infer", oip)
    assert e.value.status == 400 and "shape" in e.value.message
    stats = client.endpoint("fall-ep")["stats"]["requests"]
    assert (stats["ok"], stats["bad_input"], stats["failed"]) == (1, 2, 0)
    # Beside the all-numbers fast path, the general parser still reads a null as NaN and
    # explains a body with two formats.
    got = client._request("POST", "/endpoints/fall-ep/invocations", {"inputs": [[None, 0.5, 0.5, 0.5]]})
    assert len(got["predictions"]) == 1
    with pytest.raises(SlipwayError) as e:
        client._request("POST", "/endpoints/fall-ep/invocations",
                        {"inputs": [[1, 2, 3, 4]], "instances": [[1, 2, 3, 4]]})
    assert e.value.status == 400 and "exactly one" in e.value.message

    cli(server, "models", "alias", "fall", "prod", "2")
    deadline = time.time() + 10
    while client.endpoint("fall-ep").get("version") != 2:
        assert time.time() < deadline, "the endpoint never followed the alias"
        client.predict("fall-ep", rows[:1].tolist())
        time.sleep(0.1)
    got = client.predict("fall-ep", pd.DataFrame(rows, columns=list("abcd")))
    np.testing.assert_allclose(np.stack(got["probabilities"].to_numpy()), ort_probs(v2_bytes, rows), atol=1e-5)

    # The CLI registers a file too, and refuses bad usage with one line.
    cli_file = tmp_path / "v3.onnx"
    cli_file.write_bytes(v1_bytes)
    out = cli(server, "models", "register", "fall", str(cli_file), "--run", run_id, "--alias", "cli").stdout.decode()
    assert out.startswith("registered fall version 3 (fall@cli)")
    bad = cli(server, "models", "register", "fall", check=False)
    assert bad.returncode != 0 and len(bad.stderr.decode().strip().splitlines()) == 1
    bad = cli(server, "models", "show", "fall@nope", check=False)
    assert bad.returncode != 0 and "alias" in bad.stderr.decode().lower()
    assert [v["version"] for v in client.model("fall")["versions"]] == [3, 2, 1]

    cli(server, "models", "alias", "fall", "cli", "--delete")
    assert "cli" not in client.model("fall")["model"]["aliases"]
    cli(server, "models", "delete", "fall@3")
    assert [v["version"] for v in client.model("fall")["versions"]] == [2, 1]
    cli(server, "endpoints", "delete", "fall-ep")
    assert client.endpoints() == []


def test_serve_is_a_separate_serving_only_process(server, tmp_path):
    client = Slipway(server.url)
    X, onnx_bytes = trained(3)
    client.register_model("falls", model=onnx_bytes, alias="champion")
    client.create_endpoint("falls", "falls@champion")

    args = [slipway_bin(), "serve", "--port", "0", "--endpoint", "falls", "--data-dir", server.dir]
    if server.db:
        args += ["--db", server.db]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_") or k.startswith("SLIPWAY_TEST")}
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, env=env, cwd=server.dir)
    try:
        line = proc.stdout.readline().decode().strip()
        assert line.startswith("slipway listening on "), (tmp_path / "serve.log").read_text()
        url = line.removeprefix("slipway listening on ")
        replica = Slipway(url)
        rows = X[:10]
        got = replica.predict("falls", pd.DataFrame(rows, columns=list("abcd")))
        np.testing.assert_allclose(np.stack(got["probabilities"].to_numpy()), ort_probs(onnx_bytes, rows), atol=1e-5)
        # MLflow's scoring route answers the endpoint given with --endpoint.
        body = json.dumps({"inputs": rows.tolist()}).encode()
        request = urllib.request.Request(url + "/invocations", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert len(json.loads(r.read())["predictions"]) == 10
        with urllib.request.urlopen(url + "/v2/models/falls/ready", timeout=10) as r:
            assert r.status == 200
        # Serving only: the registry, the UI and writes are not there.
        for path in ["/api/v1/models", "/api/2.0/mlflow/registered-models/search", "/"]:
            with pytest.raises(SlipwayError) as e:
                replica._request("GET", path)
            assert e.value.status == 404, path
        with pytest.raises(SlipwayError) as e:
            replica.create_endpoint("other", "falls@champion")
        assert e.value.status in (404, 405)
        assert [e["name"] for e in replica.endpoints()] == ["falls"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()

    # An endpoint that does not exist is refused at start, with one line.
    done = subprocess.run([*args[:4], "--endpoint", "nope", *args[6:]], capture_output=True, env=env,
                          cwd=server.dir, timeout=30)
    assert done.returncode != 0 and "nope" in done.stderr.decode()
