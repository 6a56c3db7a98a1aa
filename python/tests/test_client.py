"""The Python client against a real server, on SQLite and PostgreSQL."""

import time

import pytest

from harness import Server
from slipway import Slipway, SlipwayError


def test_health_and_version(server):
    client = Slipway(server.url)
    assert client.health() == {"status": "ok"}
    assert client.ready() is True
    v = client.version()
    assert v["version"]
    assert v["metadata_store"] in ("sqlite", "postgres")
    assert v["auth_required"] is False


def test_jobs_round_trip(server):
    client = Slipway(server.url)
    job = client.submit_job("diagnostic.sleep", {"seconds": 0.1})
    assert job["status"] == "queued"
    deadline = time.time() + 20
    while client.job(job["id"])["status"] != "succeeded":
        assert time.time() < deadline, client.job(job["id"])
        time.sleep(0.05)
    assert [j["id"] for j in client.jobs(status="succeeded")] == [job["id"]]


def test_errors_carry_code_and_message(sqlite_server):
    client = Slipway(sqlite_server.url)
    with pytest.raises(SlipwayError) as e:
        client.job("no-such-job")
    assert e.value.status == 404
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(SlipwayError) as e:
        client.submit_job("not.a.kind")
    assert e.value.status == 400
    assert "diagnostic.sleep" in e.value.message


def test_token_is_sent():
    s = Server(token="s3cret")
    try:
        assert Slipway(s.url).health() == {"status": "ok"}
        with pytest.raises(SlipwayError) as e:
            Slipway(s.url).version()
        assert e.value.status == 401
        assert Slipway(s.url, token="s3cret").version()["auth_required"] is True
    finally:
        s.stop()


def test_url_from_environment(monkeypatch, sqlite_server):
    monkeypatch.delenv("SLIPWAY_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_server.url)
    assert Slipway().url == sqlite_server.url
    with pytest.raises(ValueError):
        Slipway("file:///etc/passwd")
