"""Canary rollouts on both stores, driven by hand: a rollout file takes a candidate through its
steps (the endpoint's split follows each step), completes at 100% with the old version gone and
the alias moved, records every transition with its reason; abort gives the baseline everything
back; pause and resume; bad rollout files are refused naming the field, with nothing changed.
From the CLI, the API and the Python client."""

import json
import os
import subprocess

import numpy as np
import onnxruntime as ort
import pytest
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from harness import slipway_bin
from slipway import Slipway, SlipwayError


def cli(server, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "MLFLOW_"))}
    return subprocess.run([slipway_bin(), "--server", server.url, *args], capture_output=True, env=env, timeout=60)


def versions(client, n=3):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    out = []
    for i in range(n):
        model = LogisticRegression().fit(X, (X[:, i] > 0).astype(int))
        onx = to_onnx(model, X[:1], options={id(model): {"zipmap": False}}).SerializeToString()
        client.register_model("falls", model=onx)
        out.append(onx)
    return X, out


def split(client):
    return [(v["name"], v["weight"]) for v in client.endpoint("falls")["variants"]]


def test_a_rollout_steps_to_full_traffic_moves_the_alias_and_retires_the_old_version(server, tmp_path):
    client = Slipway(server.url)
    X, onnx = versions(client, 2)
    client._request("PUT", "/api/v1/models/falls/aliases/champion", {"version": 1})
    client.create_endpoint("falls", "falls@champion")
    spec = tmp_path / "rollout.toml"
    spec.write_text('endpoint = "falls"\ncandidate = "v2"\nsteps = [1, 10, 50, 100]\n'
                    'promote_alias = "champion"\n[[gates]]\nmetric = "error_rate"\nthreshold = 0.01\n')

    done = cli(server, "rollout", "start", str(spec))
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert "running" in out and "[1%] → 10% → 50% → 100%" in out, out
    [r] = client.rollouts("falls")
    assert (r["state"], r["step"], r["weight"], r["baseline"]) == ("running", 0, 1, "champion")
    assert split(client) == [("champion", 99), ("v2", 1)]

    # Another rollout on the same endpoint waits for this one.
    with pytest.raises(SlipwayError) as e:
        client.start_rollout({"endpoint": "falls", "candidate": "v2"})
    assert e.value.status == 400 and "active rollout" in e.value.message

    for weight in (10, 50):
        r = client.promote_rollout(r["id"], reason="looks good")
        assert (r["state"], r["weight"]) == ("running", weight)
        assert split(client) == [("champion", 100 - weight), ("v2", weight)]

    done = cli(server, "rollout", "promote", r["id"])
    assert done.returncode == 0, done.stderr.decode()
    r = client.rollout(r["id"])
    assert (r["state"], r["weight"]) == ("promoted", 100)
    # The old version left the endpoint; the alias moved; the endpoint answers as version 2.
    assert split(client) == [("champion", 100)]
    assert client.model("falls")["model"]["aliases"] == {"champion": 2}
    want = ort.InferenceSession(onnx[1], providers=["CPUExecutionProvider"]).run(None, {"X": X[:5]})[1]
    got = client.predict("falls", X[:5].tolist())
    np.testing.assert_allclose([p["probabilities"] for p in got], want, atol=1e-5)

    # The timeline: every transition with its reason.
    kinds = [(e["kind"], e["weight"]) for e in r["events"]]
    assert kinds == [("started", 1), ("advanced", 10), ("advanced", 50), ("completed", 100)]
    assert r["events"][1]["reason"] == "looks good"
    assert "alias champion moved to version 2" in r["events"][-1]["reason"]
    done = cli(server, "rollout", "status", r["id"])
    assert done.returncode == 0 and "completed" in done.stdout.decode() and "looks good" in done.stdout.decode()

    # Over: nothing more happens to it.
    with pytest.raises(SlipwayError) as e:
        client.promote_rollout(r["id"])
    assert e.value.status == 400 and "promoted" in e.value.message


def test_abort_pause_and_resume(server):
    client = Slipway(server.url)
    versions(client, 3)
    client.create_endpoint("falls", "falls@1")
    client.shadow_endpoint("falls", "v3")
    r = client.start_rollout("# a YAML rollout file\nendpoint: falls\ncandidate: '2'\nsteps: [5, 100]\n")
    assert split(client) == [("v1", 95), ("v2", 5)] and r["spec"]["steps"] == [5, 100]

    r = client.pause_rollout(r["id"], reason="night")
    assert r["state"] == "paused"
    with pytest.raises(SlipwayError) as e:
        client.pause_rollout(r["id"])
    assert e.value.status == 400 and "paused" in e.value.message
    assert client.resume_rollout(r["id"])["state"] == "running"

    done = cli(server, "rollout", "abort", r["id"], "--reason", "wrong features")
    assert done.returncode == 0, done.stderr.decode()
    r = client.rollout(r["id"])
    assert (r["state"], r["weight"], r["reason"]) == ("aborted", 0, "wrong features")
    assert split(client) == [("v1", 100)]
    # The shadow the endpoint had stays.
    assert client.endpoint("falls")["shadow"]["name"] == "v3"
    assert [e["kind"] for e in r["events"]] == ["started", "paused", "resumed", "aborted"]

    # Aborted, the endpoint can take another rollout.
    again = client.start_rollout({"endpoint": "falls", "candidate": "v3", "steps": [50, 100]})
    assert again["state"] == "running" and split(client) == [("v1", 50), ("v3", 50)]
    listed = cli(server, "rollout", "status", "--endpoint", "falls")
    assert listed.returncode == 0 and listed.stdout.decode().count("falls") == 2


def test_bad_rollout_files_are_refused_naming_the_field(server, tmp_path):
    client = Slipway(server.url)
    versions(client, 2)
    client.create_endpoint("falls", "falls@1")
    before = client.endpoint("falls")
    base = 'endpoint = "falls"\ncandidate = "v2"\n'
    cases = [
        ('endpoint = "nope"\ncandidate = "v2"\n', "endpoint: no endpoint named 'nope'"),
        ('endpoint = "falls"\ncandidate = "v9"\n', "candidate:"),
        ('endpoint = "falls"\ncandidate = "v1"\n', "candidate: version 1 already serves"),
        (base + "steps = [1, 10, 5, 100]\n", "steps[2]: 5 does not increase"),
        (base + "steps = [1, 50]\n", "the last step must be 100"),
        (base + "[[gates]]\nmetric = \"latnecy\"\nthreshold = 1\n", "gates[0].metric: unknown metric 'latnecy'"),
        (base + "stepz = [1, 100]\n", "stepz"),
        ("endpoint = [\n", "rollout file"),
    ]
    # The same mistakes in YAML files.
    yaml_base = "endpoint: falls\ncandidate: v2\n"
    yaml_cases = [
        ("endpoint: nope\ncandidate: v2\n", "endpoint: no endpoint named 'nope'"),
        (yaml_base + "steps: [1, 10, 5, 100]\n", "steps[2]: 5 does not increase"),
        (yaml_base + "gates:\n  - metric: latnecy\n    threshold: 1\n", "gates[0].metric: unknown metric 'latnecy'"),
        (yaml_base + "stepz: [1, 100]\n", "stepz"),
        ("endpoint: [falls\n", "rollout file"),
    ]
    files = [(f"bad{i}.toml", *c) for i, c in enumerate(cases)] + [(f"bad{i}.yaml", *c) for i, c in enumerate(yaml_cases)]
    for name, text, says in files:
        path = tmp_path / name
        path.write_text(text)
        done = cli(server, "rollout", "start", str(path))
        err = done.stderr.decode().strip()
        assert done.returncode != 0 and len(err.splitlines()) == 1 and says in err, (text, err)
        with pytest.raises(SlipwayError) as e:
            client.start_rollout(text)
        assert e.value.status == 400 and says in e.value.message, (text, e.value.message)
    # JSON with a wrong type names the field too.
    with pytest.raises(SlipwayError) as e:
        client.start_rollout({"endpoint": "falls", "candidate": "v2", "steps": "fast"})
    assert e.value.status == 400 and "steps: invalid type" in e.value.message, e.value.message
    assert client.rollouts() == []
    after = client.endpoint("falls")
    assert after["variants"] == before["variants"] and after["revision"] == before["revision"]
    done = cli(server, "rollout", "promote", "nope")
    assert done.returncode != 0 and "nope" in done.stderr.decode()
