"""The unmodified `mlflow` client (pinned in requirements-test.txt) against a real Slipway
server, on SQLite and PostgreSQL: every tracking call of the wire spec's client column."""

import math

import pytest

import mlflow
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException


def test_default_experiment_and_experiment_lifecycle(client):
    default = client.get_experiment("0")
    assert default.name == "Default"
    exp_id = client.create_experiment("falls", tags={"team": "ward-7"})
    exp = client.get_experiment(exp_id)
    assert exp.name == "falls" and exp.lifecycle_stage == "active"
    assert exp.tags["team"] == "ward-7"
    assert exp.artifact_location == f"mlflow-artifacts:/{exp_id}"
    assert client.get_experiment_by_name("falls").experiment_id == exp_id
    assert client.get_experiment_by_name("nope") is None

    with pytest.raises(MlflowException) as e:
        client.create_experiment("falls")
    assert e.value.error_code == "RESOURCE_ALREADY_EXISTS"

    client.rename_experiment(exp_id, "falls-v2")
    client.set_experiment_tag(exp_id, "stage", "pilot")
    exp = client.get_experiment(exp_id)
    assert exp.name == "falls-v2" and exp.tags["stage"] == "pilot"
    client.delete_experiment_tag(exp_id, "stage")
    assert "stage" not in client.get_experiment(exp_id).tags

    names = {e.name for e in client.search_experiments()}
    assert {"Default", "falls-v2"} <= names
    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    assert "falls-v2" not in {e.name for e in client.search_experiments()}
    assert "falls-v2" in {e.name for e in client.search_experiments(view_type=ViewType.DELETED_ONLY)}
    with pytest.raises(MlflowException) as e:
        client.create_experiment("falls-v2")
    assert e.value.error_code == "RESOURCE_ALREADY_EXISTS"
    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"

    with pytest.raises(MlflowException) as e:
        client.get_experiment("424242")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_fluent_run_logs_everything(client):
    mlflow.set_experiment("fluent")
    with mlflow.start_run(run_name="baseline") as run:
        mlflow.log_param("lr", "0.01")
        mlflow.log_params({"depth": 4, "optimizer": "adam"})
        mlflow.log_metric("loss", 0.9, step=0)
        mlflow.log_metric("loss", 0.5, step=1)
        mlflow.log_metrics({"acc": 0.8, "f1": 0.7}, step=1)
        mlflow.log_metric("weird", float("nan"))
        mlflow.log_metric("big", float("inf"))
        mlflow.log_metric("small", float("-inf"))
        mlflow.set_tag("owner", "ward-7")
        mlflow.set_tags({"camera": "4k"})
        run_id = run.info.run_id

    r = client.get_run(run_id)
    assert r.info.status == "FINISHED" and r.info.end_time is not None
    assert r.info.run_name == "baseline"
    assert r.data.params == {"lr": "0.01", "depth": "4", "optimizer": "adam"}
    assert r.data.metrics["loss"] == 0.5
    assert r.data.metrics["acc"] == 0.8
    assert math.isnan(r.data.metrics["weird"])
    assert r.data.metrics["big"] == math.inf
    assert r.data.metrics["small"] == -math.inf
    assert r.data.tags["owner"] == "ward-7"
    assert r.data.tags["mlflow.runName"] == "baseline"
    assert "mlflow.user" in r.data.tags and "mlflow.source.name" in r.data.tags
    assert r.info.artifact_uri.startswith("mlflow-artifacts:/")

    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.9), (1, 0.5)]


def test_params_are_immutable_and_names_checked(client):
    exp = client.create_experiment("immutable")
    run = client.create_run(exp)
    client.log_param(run.info.run_id, "lr", "0.01")
    client.log_param(run.info.run_id, "lr", "0.01")  # the same value again is fine
    with pytest.raises(MlflowException) as e:
        client.log_param(run.info.run_id, "lr", "0.5")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "Changing param values is not allowed" in e.value.message
    with pytest.raises(MlflowException) as e:
        client.log_metric(run.info.run_id, "bad!key", 1.0)
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    assert client.get_run(run.info.run_id).data.params == {"lr": "0.01"}


def test_latest_metric_is_the_greatest_step(client):
    exp = client.create_experiment("latest")
    run_id = client.create_run(exp).info.run_id
    client.log_metric(run_id, "m", 1.0, step=5)
    client.log_metric(run_id, "m", 9.0, step=3)
    assert client.get_run(run_id).data.metrics["m"] == 1.0


def test_log_batch_and_limits(client):
    exp = client.create_experiment("batch")
    run_id = client.create_run(exp).info.run_id
    metrics = [Metric("x", float(i), 1000 + i, i) for i in range(1000)]
    client.log_batch(run_id, metrics=metrics, params=[Param("p", "1")], tags=[RunTag("t", "v")])
    history = client.get_metric_history(run_id, "x")
    assert len(history) == 1000 and history[-1].value == 999.0
    # The client splits big batches itself; the server's own limit, sent raw:
    import requests

    body = {"run_id": run_id, "metrics": [{"key": "y", "value": 1.0, "timestamp": 1, "step": i} for i in range(1001)]}
    r = requests.post(client.tracking_uri + "/api/2.0/mlflow/runs/log-batch", json=body, timeout=30)
    assert r.status_code == 400
    assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "at most 1000 metrics. Got 1001 metrics" in r.json()["message"]
    assert "y" not in client.get_run(run_id).data.metrics


def test_nested_runs_and_status(client):
    mlflow.set_experiment("nested")
    with mlflow.start_run(run_name="parent") as parent:
        with mlflow.start_run(run_name="child", nested=True) as child:
            pass
    c = client.get_run(child.info.run_id)
    assert c.data.tags["mlflow.parentRunId"] == parent.info.run_id
    exp = client.get_experiment_by_name("nested").experiment_id
    run = client.create_run(exp)
    client.set_terminated(run.info.run_id, status="FAILED")
    assert client.get_run(run.info.run_id).info.status == "FAILED"
    client.update_run(run.info.run_id, name="renamed")
    r = client.get_run(run.info.run_id)
    assert r.info.run_name == "renamed" and r.data.tags["mlflow.runName"] == "renamed"


def test_delete_restore_and_tags(client):
    exp = client.create_experiment("deletes")
    run_id = client.create_run(exp, tags={"a": "1"}).info.run_id
    client.delete_tag(run_id, "a")
    assert "a" not in client.get_run(run_id).data.tags
    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    with pytest.raises(MlflowException) as e:
        client.log_param(run_id, "p", "1")
    assert "must be in the 'active' state" in e.value.message
    assert client.search_runs([exp]) == []
    assert len(client.search_runs([exp], run_view_type=ViewType.DELETED_ONLY)) == 1
    client.restore_run(run_id)
    assert len(client.search_runs([exp])) == 1
    with pytest.raises(MlflowException) as e:
        client.get_run("0" * 32)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_search_runs_grammar(client):
    exp = client.create_experiment("search")
    ids = {}
    for name, lr, acc, opt in [("a", "0.01", 0.9, "adam"), ("b", "0.1", 0.7, "sgd"), ("c", "0.01", 0.8, "adagrad")]:
        run = client.create_run(exp, run_name=name, tags={"owner": "me" if name != "c" else "you"})
        client.log_param(run.info.run_id, "lr", lr)
        client.log_param(run.info.run_id, "optimizer", opt)
        client.log_metric(run.info.run_id, "acc", acc)
        ids[name] = run.info.run_id
    client.set_terminated(ids["a"])

    def names(filter_string="", order_by=None, **kw):
        return [r.info.run_name for r in client.search_runs([exp], filter_string, order_by=order_by, **kw)]

    assert names("metrics.acc > 0.75 and params.lr = '0.01'", ["metrics.acc DESC"]) == ["a", "c"]
    assert names("params.optimizer LIKE 'ad%'", ["metrics.acc ASC"]) == ["c", "a"]
    assert names("tags.owner = 'me'", ["attributes.run_name"]) == ["a", "b"]
    assert names("attributes.status = 'FINISHED'") == ["a"]
    assert names(f"attributes.run_id IN ('{ids['b']}', '{ids['c']}')", ["run_name DESC"]) == ["c", "b"]
    assert names("tags.mlflow.runName ILIKE 'A'") == ["a"]
    assert names("params.lr != '0.1'", ["metrics.acc DESC"]) == ["a", "c"]
    assert names("tags.nothing IS NULL", ["metrics.acc DESC"]) == ["a", "c", "b"]
    assert names("attributes.start_time > 0", ["params.optimizer ASC"]) == ["c", "a", "b"]
    assert names("", ["metrics.missing DESC", "run_name ASC"]) == ["a", "b", "c"]
    page1 = client.search_runs([exp], max_results=2, order_by=["run_name"])
    assert [r.info.run_name for r in page1] == ["a", "b"] and page1.token
    page2 = client.search_runs([exp], max_results=2, order_by=["run_name"], page_token=page1.token)
    assert [r.info.run_name for r in page2] == ["c"] and not page2.token

    for bad in ["metrics.acc >>> 1", "params.lr > '1'", "attributes.status IN ('A')", "foo.bar = 'x'"]:
        with pytest.raises(MlflowException) as e:
            client.search_runs([exp], bad)
        assert e.value.error_code == "INVALID_PARAMETER_VALUE", bad
    with pytest.raises(MlflowException) as e:
        client.search_runs([exp], order_by=["metrics.acc", "metrics.acc DESC"])
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"


def test_pandas_search_runs(client):
    mlflow.set_experiment("pandas")
    for i in range(3):
        with mlflow.start_run():
            mlflow.log_metric("score", i)
    df = mlflow.search_runs(experiment_names=["pandas"], order_by=["metrics.score DESC"])
    assert list(df["metrics.score"]) == [2.0, 1.0, 0.0]


def test_dataset_inputs(client):
    import pandas as pd

    mlflow.set_experiment("inputs")
    with mlflow.start_run() as run:
        dataset = mlflow.data.from_pandas(pd.DataFrame({"x": [1, 2]}), name="poses-v1")
        mlflow.log_input(dataset, context="training")
    r = client.get_run(run.info.run_id)
    assert [d.dataset.name for d in r.inputs.dataset_inputs] == ["poses-v1"]
    assert r.inputs.dataset_inputs[0].tags[0].value == "training"

    with mlflow.start_run(run_name="eval-only"):
        eval_set = mlflow.data.from_pandas(pd.DataFrame({"x": [3]}), name="poses-eval")
        mlflow.log_input(eval_set, context="evaluation")
    exp = client.get_experiment_by_name("inputs").experiment_id

    def names(filter_string):
        return sorted(r.info.run_id for r in client.search_runs([exp], filter_string))

    assert names("datasets.name = 'poses-v1'") == [run.info.run_id]
    assert names("datasets.context = 'training'") == [run.info.run_id]
    assert len(names("datasets.name LIKE 'poses-%'")) == 2
    assert names(f"datasets.digest IN ('{dataset.digest}')") == [run.info.run_id]
    with pytest.raises(MlflowException) as e:
        client.search_runs([exp], "datasets.rows > 3")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"


def test_log_input_with_a_slipway_source_links_the_version(client, server, tmp_path):
    # A dataset logged by hand with the mlflow client: its digest is its own, but its source
    # names a Slipway version, so the version lists the run (and a lookalike does not count).
    import json
    import urllib.request

    from mlflow.entities import Dataset, DatasetInput, InputTag

    table = tmp_path / "features.csv"
    table.write_text("clip_id,activity\nc1,fall\nc2,walk\n")
    server.cli("data", "add", str(table), "--dataset", "features")
    mlflow.set_experiment("lineage-by-source")
    with mlflow.start_run() as run:
        pass
    with mlflow.start_run() as other:
        pass
    def log(run_id, uri):
        source = json.dumps({"uri": uri})
        ds = Dataset(name="my-features", digest="0123abcd", source_type="http", source=source)
        client.log_inputs(run_id, [DatasetInput(ds, tags=[InputTag("mlflow.data.context", "training")])])
    log(run.info.run_id, "slipway://features@1")
    log(other.info.run_id, "slipway://features@10")
    with urllib.request.urlopen(server.url + "/api/v1/datasets/features/versions/1/runs") as r:
        runs = json.load(r)["runs"]
    assert [r["run_id"] for r in runs] == [run.info.run_id]


def test_search_experiments_grammar(client):
    vision = client.create_experiment("se-falls", tags={"team": "vision"})
    client.create_experiment("se-gait", tags={"team": "vision"})
    client.create_experiment("se-billing", tags={"team": "ops"})
    found = client.search_experiments(filter_string="name LIKE 'se-%' AND tags.team = 'vision'",
                                      order_by=["name DESC"])
    assert [e.name for e in found] == ["se-gait", "se-falls"]
    assert [e.experiment_id for e in client.search_experiments(
        filter_string=f"attributes.experiment_id = '{vision}'")] == [vision]
    paged = client.search_experiments(filter_string="name ILIKE 'SE-%'", max_results=2,
                                      order_by=["name"])
    assert [e.name for e in paged] == ["se-billing", "se-falls"] and paged.token
    rest = client.search_experiments(filter_string="name ILIKE 'SE-%'", max_results=2,
                                     order_by=["name"], page_token=paged.token)
    assert [e.name for e in rest] == ["se-gait"] and not rest.token
    with pytest.raises(MlflowException) as e:
        client.search_experiments(filter_string="metrics.acc > 1")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
