"""The Python client's tracking methods: runs as a DataFrame, over the native API."""

import math

import mlflow
from mlflow import MlflowClient

from slipway import Slipway, SlipwayError
import pytest


def test_runs_as_a_dataframe(server):
    mlflow.set_tracking_uri(server.url)
    client = MlflowClient(server.url)
    exp = client.create_experiment("frames")
    for i, model in enumerate(["gbt", "mlp", "gbt"]):
        run = client.create_run(exp, run_name=f"r{i}")
        client.log_param(run.info.run_id, "model", model)
        client.log_metric(run.info.run_id, "f1", 0.5 + i / 10)
        client.log_metric(run.info.run_id, "odd", float("nan") if i == 1 else float(i))
        client.set_terminated(run.info.run_id)

    s = Slipway(server.url)
    df = s.runs("frames", "params.model = 'gbt'", order_by="metrics.f1 DESC")
    assert list(df["name"]) == ["r2", "r0"]
    assert list(df["metrics.f1"]) == [0.7, 0.5]
    assert set(df["params.model"]) == {"gbt"}
    assert str(df["start_time"].dtype).startswith("datetime64")
    everything = s.runs(exp)
    assert len(everything) == 3 and math.isnan(everything.set_index("name").loc["r1", "metrics.odd"])
    assert len(s.runs("frames", max_results=2)) == 2
    assert s.runs("frames", "metrics.f1 > 5").empty
    history = s.metric_history(everything["run_id"].iloc[0], "f1")
    assert len(history) == 1 and set(history[0]) == {"step", "timestamp", "value"}
    assert {e["name"] for e in s.experiments()} >= {"frames", "Default"}
    assert [e["name"] for e in s.experiments(filter="name LIKE 'fr%'")] == ["frames"]
    with pytest.raises(SlipwayError) as e:
        s.experiments(filter="params.x = '1'")
    assert e.value.status == 400
    with pytest.raises(SlipwayError) as e:
        s.runs("frames", "metrics.f1 >>> 1")
    assert e.value.status == 400
    with pytest.raises(SlipwayError) as e:
        s.runs("no-such-experiment")
    assert e.value.status == 404
