"""The `client` fixture of the MLflow compatibility tests: the real mlflow client pointed at a
real Slipway server (SQLite or PostgreSQL)."""

import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
# A 4xx must surface at once; a stray 5xx should fail the test quickly, not retry for minutes.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402


@pytest.fixture
def client(server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    mlflow.set_tracking_uri(server.url)
    # Each test has a fresh server: forget the experiment an earlier test set.
    mlflow.tracking.fluent._active_experiment_id = None
    yield MlflowClient(server.url)
    if mlflow.active_run():
        mlflow.end_run()
