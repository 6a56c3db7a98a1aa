"""Artifacts through the unmodified mlflow client: the artifact proxy backed by Slipway's blob
store, path tricks refused, and `log_model` of a scikit-learn model."""

import json
import os

import pytest
import requests

import mlflow
from mlflow.exceptions import MlflowException


def test_log_and_download_artifacts(client, tmp_path):
    mlflow.set_experiment("artifacts")
    report = tmp_path / "report.txt"
    report.write_text("falls detected: 3\n")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "plots" / "empty.bin").write_bytes(b"")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(report))
        mlflow.log_artifacts(str(tmp_path / "plots"), artifact_path="plots")
        mlflow.log_dict({"threshold": 0.7}, "config/params.json")
        mlflow.log_text("hello", "notes/hello.txt")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        mlflow.log_figure(fig, "figures/line.png")
        mlflow.log_table({"a": [1, 2], "b": ["x", "y"]}, "tables/t.json")
    run_id = run.info.run_id

    top = {f.path: f for f in client.list_artifacts(run_id)}
    assert set(top) >= {"report.txt", "plots", "config", "notes", "figures", "tables"}
    assert top["plots"].is_dir and not top["report.txt"].is_dir
    assert top["report.txt"].file_size == len("falls detected: 3\n")
    assert {f.path for f in client.list_artifacts(run_id, "plots")} == {"plots/a.csv", "plots/empty.bin"}

    dst = client.download_artifacts(run_id, "report.txt", str(tmp_path / "dl"))
    assert open(dst).read() == "falls detected: 3\n"
    whole = mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path / "all"))
    assert open(os.path.join(whole, "plots", "a.csv")).read() == "x,y\n1,2\n"
    assert os.path.getsize(os.path.join(whole, "plots", "empty.bin")) == 0
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config/params.json") == {"threshold": 0.7}
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/notes/hello.txt") == "hello"
    png = open(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="figures/line.png", dst_path=str(tmp_path / "f")), "rb").read()
    assert png.startswith(b"\x89PNG")


PATH_TRICKS = [
    "../escape.txt",
    "a/../../escape.txt",
    "..%2fescape.txt",
    "%2e%2e/escape.txt",
    "%252e%252e/escape.txt",
    "..\\escape.txt",
    "a\\..\\..\\escape.txt",
    "a%23/../../escape.txt",  # '#', encoded: a raw one never reaches a server (it ends the URL)
    "a;/../../escape.txt",
    "a%3B/../../escape.txt",
    "x;type=a",
]


def raw(base_url, method, path, body=b""):
    """Sends `path` byte for byte (requests and urllib would normalise `..` away)."""
    import http.client
    import urllib.parse

    u = urllib.parse.urlparse(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request(method, path, body=body)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, json.loads(data or b"null")


def test_path_tricks_through_the_proxy_are_refused(client):
    exp = client.create_experiment("tricks")
    run = client.create_run(exp)
    base = f"/api/2.0/mlflow-artifacts/artifacts/{exp}/{run.info.run_id}/artifacts"
    for trick in PATH_TRICKS + ["/etc/escape.txt", "/x"]:
        for method in ["PUT", "GET", "DELETE"]:
            status, body = raw(client.tracking_uri, method, f"{base}/{trick}", b"pwned" if method == "PUT" else b"")
            assert status == 400, (method, trick, status, body)
            assert body["error_code"] == "INVALID_PARAMETER_VALUE", (method, trick)
    # Whole paths that name another scheme or the file system's root.
    for whole in ["//etc/passwd", "file:escape.txt", "file:///etc/passwd", "C:/escape.txt"]:
        status, body = raw(client.tracking_uri, "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{whole}", b"pwned")
        assert status == 400, (whole, body)
    for path in ["../", "/etc", f"{exp}/../..", "..%2f", "a%5c..%5c.."]:
        r = requests.get(f"{client.tracking_uri}/api/2.0/mlflow-artifacts/artifacts", params={"path": path}, timeout=10)
        assert r.status_code == 400, (path, r.status_code, r.text)
    # Nothing was stored anywhere: not in the run, not in the experiment, not at the root.
    assert client.list_artifacts(run.info.run_id) == []
    status, body = raw(client.tracking_uri, "GET", f"/api/2.0/mlflow-artifacts/artifacts?path={exp}")
    assert (status, body) == (200, {}), body


def test_path_tricks_through_log_artifact_are_refused(client, tmp_path):
    exp = client.create_experiment("tricks-client")
    run_id = client.create_run(exp).info.run_id
    f = tmp_path / "x.txt"
    f.write_text("pwned")
    # ('#' is not here: the client leaves it unquoted, so it ends the URL and never reaches the
    # server; the proxy test sends it encoded.)
    for trick in ["..", "../..", "a/../..", "a\\..\\..", "%2e%2e", "%2E%2E/x", "a;b/../..", "a;b", "/abs"]:
        # Either the client refuses it itself, or it reaches the server and gets a 400.
        with pytest.raises((MlflowException, requests.HTTPError)) as e:
            client.log_artifact(run_id, str(f), artifact_path=trick)
        text = str(e.value)
        refused_by_client = text.startswith("Invalid artifact path")
        assert refused_by_client or "400" in text or "INVALID_PARAMETER_VALUE" in text, (trick, text)
    assert client.list_artifacts(run_id) == []


def test_missing_artifacts_are_404(client):
    r = requests.get(f"{client.tracking_uri}/api/2.0/mlflow-artifacts/artifacts/0/nope/artifacts/x.txt", timeout=10)
    assert r.status_code == 404
    assert r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_sklearn_log_model_and_load(client):
    from sklearn.linear_model import LogisticRegression
    import numpy as np

    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.9, 0.1], [0.1, 0.8]])
    y = np.array([0, 1, 1, 0])
    model = LogisticRegression().fit(X, y)
    mlflow.set_experiment("models")
    with mlflow.start_run() as run:
        mlflow.log_metric("acc", 1.0)
        info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2])
    assert info.model_id.startswith("m-")
    logged = client.get_logged_model(info.model_id)
    assert logged.status == "READY" or str(logged.status).endswith("READY")
    assert logged.source_run_id == run.info.run_id
    loaded = mlflow.pyfunc.load_model(f"models:/{info.model_id}")
    assert list(loaded.predict(X)) == list(model.predict(X))
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
