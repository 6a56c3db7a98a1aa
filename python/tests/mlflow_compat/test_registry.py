"""The unmodified `mlflow` client's model registry calls against a real Slipway server, on SQLite
and PostgreSQL: registration from log_model and register_model, aliases, tags, stages, search,
download URIs, loading `models:/name@alias`, and the refusal of every advisory-style source."""

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import mlflow
from mlflow.exceptions import MlflowException


# Given, so that the client does not spend seconds inferring them.
PIP = ["scikit-learn"]


def _fit():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return LogisticRegression().fit(X, y), X


def _post(url, path, body, method="POST"):
    req = urllib.request.Request(
        f"{url}/api/2.0/mlflow/{path}",
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_log_model_registers_and_loads_by_alias(client):
    model, X = _fit()
    mlflow.set_experiment("falls")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=PIP, registered_model_name="falls")
    assert str(info.registered_model_version) == "1"
    mv = client.get_model_version("falls", "1")
    assert mv.status == "READY" and mv.current_stage == "None"
    assert mv.run_id == run.info.run_id
    assert mv.source.startswith("models:/")

    client.set_registered_model_alias("falls", "champion", "1")
    by_alias = client.get_model_version_by_alias("falls", "champion")
    assert by_alias.version == "1" and by_alias.aliases == ["champion"]
    uri = client.get_model_version_download_uri("falls", "1")
    assert uri.startswith("mlflow-artifacts:/") and "/models/" in uri

    loaded = mlflow.pyfunc.load_model("models:/falls@champion")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    loaded = mlflow.sklearn.load_model("models:/falls/1")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))

    # A second version; moving the alias switches what models:/falls@champion loads.
    with mlflow.start_run():
        mlflow.sklearn.log_model(model, name="model", pip_requirements=PIP, registered_model_name="falls")
    client.set_registered_model_alias("falls", "champion", "2")
    assert client.get_model_version_by_alias("falls", "champion").version == "2"
    rm = client.get_registered_model("falls")
    assert rm.aliases == {"champion": "2"}
    assert [v.version for v in rm.latest_versions] == ["2"]

    client.delete_registered_model_alias("falls", "champion")
    with pytest.raises(MlflowException) as e:
        client.get_model_version_by_alias("falls", "champion")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"


def test_register_model_from_a_run(client):
    model, X = _fit()
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="model", pip_requirements=PIP)
    mv = mlflow.register_model(f"runs:/{run.info.run_id}/model", "gait")
    assert mv.version == "1" and mv.run_id == run.info.run_id
    # Registering into an existing model adds a version.
    mv2 = mlflow.register_model(f"runs:/{run.info.run_id}/model", "gait")
    assert mv2.version == "2"
    loaded = mlflow.pyfunc.load_model("models:/gait/2")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_tags_descriptions_stages_rename_and_delete(client):
    model, _ = _fit()
    client.create_registered_model("m", tags={"team": "vision"}, description="first")
    with pytest.raises(MlflowException) as e:
        client.create_registered_model("m")
    assert e.value.error_code == "RESOURCE_ALREADY_EXISTS"
    with mlflow.start_run():
        for _ in range(3):
            mlflow.sklearn.log_model(model, name="model", pip_requirements=PIP, registered_model_name="m")

    client.set_registered_model_tag("m", "owner", "ana")
    client.delete_registered_model_tag("m", "team")
    client.update_registered_model("m", description="second")
    rm = client.get_registered_model("m")
    assert rm.tags == {"owner": "ana"} and rm.description == "second"

    client.set_model_version_tag("m", "1", "validated", "yes")
    client.update_model_version("m", "1", description="baseline")
    mv = client.get_model_version("m", "1")
    assert mv.tags == {"validated": "yes"} and mv.description == "baseline"
    client.delete_model_version_tag("m", "1", "validated")
    assert client.get_model_version("m", "1").tags == {}

    client.transition_model_version_stage("m", "1", "Production")
    client.transition_model_version_stage("m", "2", "staging")
    latest = client.get_latest_versions("m")
    assert sorted((v.version, v.current_stage) for v in latest) == [
        ("1", "Production"),
        ("2", "Staging"),
        ("3", "None"),
    ]
    client.transition_model_version_stage("m", "3", "Production", archive_existing_versions=True)
    assert client.get_model_version("m", "1").current_stage == "Archived"
    assert [v.version for v in client.get_latest_versions("m", stages=["Production"])] == ["3"]

    client.rename_registered_model("m", "m2")
    assert client.get_model_version("m2", "3").current_stage == "Production"
    with pytest.raises(MlflowException) as e:
        client.get_registered_model("m")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    client.delete_model_version("m2", "3")
    with pytest.raises(MlflowException):
        client.get_model_version("m2", "3")
    client.delete_registered_model("m2")
    client.create_registered_model("m2")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=PIP, registered_model_name="m2")
    assert str(info.registered_model_version) == "1", "a re-created model starts at 1"


def test_search_registered_models_and_versions(client):
    model, _ = _fit()
    for name, team in [("falls-a", "vision"), ("falls-b", "gait"), ("other", "vision")]:
        client.create_registered_model(name, tags={"team": team})
    names = [m.name for m in client.search_registered_models()]
    assert names == ["falls-a", "falls-b", "other"]
    found = client.search_registered_models(filter_string="name LIKE 'falls%'", order_by=["name DESC"])
    assert [m.name for m in found] == ["falls-b", "falls-a"]
    found = client.search_registered_models(filter_string="tags.team = 'vision'")
    assert [m.name for m in found] == ["falls-a", "other"]
    page = client.search_registered_models(max_results=2)
    assert [m.name for m in page] == ["falls-a", "falls-b"] and page.token
    rest = client.search_registered_models(max_results=2, page_token=page.token)
    assert [m.name for m in rest] == ["other"] and not rest.token

    with mlflow.start_run() as run:
        for name in ["falls-a", "falls-a", "falls-b"]:
            mlflow.sklearn.log_model(model, name="model", pip_requirements=PIP, registered_model_name=name)
    versions = client.search_model_versions("name = 'falls-a'", order_by=["version_number DESC"])
    assert [v.version for v in versions] == ["2", "1"]
    versions = client.search_model_versions(f"run_id = '{run.info.run_id}'")
    assert sorted((v.name, v.version) for v in versions) == [
        ("falls-a", "1"),
        ("falls-a", "2"),
        ("falls-b", "1"),
    ]
    with pytest.raises(MlflowException) as e:
        client.search_model_versions("metrics.acc > 1")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"


ADVISORY_SOURCES = [
    "/etc/passwd",  # a server path (CVE-2023-1177)
    "file:///etc/passwd",  # CVE-2023-1177
    "file:/etc/passwd",  # CVE-2024-3573
    "FILE:///etc/passwd",
    "file://localhost/etc/passwd",
    "mlflow-artifacts:/../../../../etc",  # CVE-2023-2780
    "mlflow-artifacts:/0/%2e%2e/%2e%2e/etc",  # CVE-2024-1593
    "mlflow-artifacts:/0/%252e%252e/etc",
    "mlflow-artifacts://host/#/../../etc",  # CVE-2024-2928
    "mlflow-artifacts:/0#/../../etc",  # CVE-2024-3848
    "mlflow-artifacts:/0?p=/../../etc",  # CVE-2024-1594
    "mlflow-artifacts:/0;/../../etc",
    "mlflow-artifacts:/0\\..\\..\\etc",  # CVE-2024-1560
    "http://127.0.0.1:1/../../etc",  # CVE-2024-1483
    "https://example.invalid/#/../../etc",  # CVE-2024-1558
    "s3://bucket/../model",
    "runs:/0123abcd/../../../../etc",  # CVE-2023-6977
    "models:/../../etc",
    "./model",
    "~/model",
    "",
]


def test_advisory_sources_are_refused(client, server):
    client.create_registered_model("victim")
    for source in ADVISORY_SOURCES:
        status, body = _post(server.url, "model-versions/create", {"name": "victim", "source": source})
        assert status == 400, (source, status, body)
        assert body["error_code"] == "INVALID_PARAMETER_VALUE", (source, body)
    # With a real run id beside them, too.
    with mlflow.start_run() as run:
        pass
    for source in ["file:///etc/passwd", "/etc/passwd", f"runs:/{run.info.run_id}/../../etc"]:
        status, body = _post(
            server.url, "model-versions/create", {"name": "victim", "source": source, "run_id": run.info.run_id}
        )
        assert status == 400, (source, status, body)
    with pytest.raises(MlflowException) as e:
        client.create_model_version("victim", "file:///etc/passwd", run_id=run.info.run_id)
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    assert client.search_model_versions("name = 'victim'") == []
    assert client.get_registered_model("victim").latest_versions == []


def test_onnx_models_register_and_unservable_ones_are_refused(client):
    """`mlflow.onnx.log_model` works as MLflow users write it; a model Slipway cannot run is
    refused at registration with the operator's name, not at the first request."""
    from skl2onnx import to_onnx
    from sklearn.svm import SVC

    model, X = _fit()
    X = X.astype(np.float32)
    with mlflow.start_run():
        info = mlflow.onnx.log_model(to_onnx(model, X[:1]), name="model", registered_model_name="onnx-lr")
    assert str(info.registered_model_version) == "1"
    loaded = mlflow.pyfunc.load_model("models:/onnx-lr/1")
    assert len(loaded.predict(X)["output_label"]) == len(X)

    svc = SVC().fit(X, (X[:, 0] > 0).astype(int))
    with mlflow.start_run():
        with pytest.raises(MlflowException) as e:
            mlflow.onnx.log_model(to_onnx(svc, X[:1]), name="model", registered_model_name="onnx-svc")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "SVMClassifier" in e.value.message
    assert client.search_model_versions("name = 'onnx-svc'") == []
