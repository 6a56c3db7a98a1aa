"""The Python client's serving calls: create_endpoint, endpoints and predict, against a real
server, checked against onnxruntime on the same rows."""

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from skl2onnx import to_onnx
from sklearn.ensemble import GradientBoostingClassifier

import mlflow
from slipway import Slipway, SlipwayError


def test_predict_a_dataframe_like_onnxruntime(server, monkeypatch):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    y = (X[:, 0] - X[:, 3] > 0).astype(int)
    model = GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0).fit(X, y)
    onx = to_onnx(model, X[:1], options={id(model): {"zipmap": False}})
    # Forget the experiment earlier tests (on other servers) set.
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    mlflow.set_tracking_uri(server.url)
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    with mlflow.start_run():
        mlflow.onnx.log_model(onx, name="model", registered_model_name="gb")
    client = Slipway(server.url)
    endpoint = client.create_endpoint("gb", "gb@latest", max_batch_size=32)
    assert endpoint["version"] == 1 and endpoint["max_batch_size"] == 32
    assert [e["name"] for e in client.endpoints()] == ["gb"]

    frame = pd.DataFrame(X[:50], columns=["a", "b", "c", "d"], index=range(100, 150))
    got = client.predict("gb", frame)
    labels, probs = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"X": X[:50]})
    assert list(got.index) == list(frame.index)
    assert list(got["label"]) == list(labels)
    np.testing.assert_allclose(np.stack(got["probabilities"].to_numpy()), probs, atol=1e-5)
    assert len(client.predict("gb", X[:3].tolist())) == 3

    with pytest.raises(SlipwayError) as e:
        client.predict("gb", [[1.0, 2.0]])
    assert e.value.status == 400 and "float32[N, 4]" in str(e.value)
    with pytest.raises(SlipwayError) as e:
        client.predict("nope", [[1.0, 2.0, 3.0, 4.0]])
    assert e.value.status == 404
