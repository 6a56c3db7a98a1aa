"""Overload: an endpoint that holds little sheds what it cannot hold with 503 and Retry-After at
once, answers what it accepts correctly, counts both, and serves normally as soon as load drops.
The load comes from `slipway loadtest`, closed and open loop, which is tested here too."""

import json
import os
import subprocess
import urllib.request

import numpy as np
import onnxruntime as ort
from skl2onnx import to_onnx
from sklearn.neural_network import MLPClassifier

from harness import slipway_bin
from slipway import Slipway


def loadtest(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    done = subprocess.run([slipway_bin(), "--json", "loadtest", *args], capture_output=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def test_a_full_endpoint_sheds_with_retry_after_and_recovers(server, tmp_path):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(500, 20)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    # Heavy enough (about 2M multiply-adds a row) that its runs go through the batcher: a model
    # that runs in microseconds is answered inline and never queues.
    mlp = MLPClassifier(hidden_layer_sizes=(1024, 1024, 1024), max_iter=2, random_state=0).fit(X, y)
    onx = to_onnx(mlp, X[:1], options={id(mlp): {"zipmap": False}}).SerializeToString()
    client = Slipway(server.url)
    client.register_model("mlp", model=onx, alias="prod")
    client.create_endpoint("mlp", "mlp@prod", max_batch_size=1, max_queue_len=1)
    url = f"{server.url}/endpoints/mlp/invocations"
    body = tmp_path / "row.json"
    body.write_text(json.dumps({"inputs": X[:1].tolist()}))

    flood = loadtest(url, "--body", str(body), "--concurrency", "64", "--duration", "2", "--warmup", "0.2")
    assert flood["mode"] == "closed" and flood["errors"] == 0 and flood["other_status"] == 0, flood
    assert flood["ok"] > 0 and flood["overloaded"] > 0, flood
    assert flood["overloaded_with_retry_after"] == flood["overloaded"], flood

    stats = client.endpoint("mlp")["stats"]
    assert stats["requests"]["overloaded"] >= flood["overloaded"]
    assert stats["requests"]["failed"] == 0 and stats["in_flight"] == 0 and stats["queue_depth"] == 0
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        metrics = r.read().decode()
    assert 'slipway_serve_requests_total{endpoint="mlp",model="mlp",version="1",variant="prod",role="serve",outcome="overloaded"}' in metrics
    assert 'slipway_serve_in_flight{endpoint="mlp",model="mlp",version="1",variant="prod",role="serve"} 0' in metrics

    # Load gone: answers at once, and right.
    calm = loadtest(url, "--body", str(body), "--concurrency", "1", "--duration", "1", "--warmup", "0")
    assert calm["ok"] > 0 and calm["overloaded"] == 0 and calm["errors"] == 0, calm
    got = client.predict("mlp", X[:5].tolist())
    want = ort.InferenceSession(onx, providers=["CPUExecutionProvider"]).run(None, {"X": X[:5]})[1]
    np.testing.assert_allclose([p["probabilities"] for p in got], want, atol=1e-5)

    # Open loop: requests on a schedule, latency from the scheduled time.
    paced = loadtest(url, "--body", str(body), "--concurrency", "8", "--duration", "1", "--rate", "200",
                     "--warmup", "0")
    assert paced["mode"] == "open" and paced["rate"] == 200 and paced["errors"] == 0, paced
    assert 150 <= paced["sent"] + paced["skipped"] <= 201, paced

    # The load generator refuses what it cannot measure, with one line.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    for args in [[f"{server.url}/endpoints/nope/invocations", "--body", str(body)],
                 [url, "--body", str(body), "--concurrency", "0"],
                 ["file:///etc/passwd", "--body", str(body)]]:
        done = subprocess.run([slipway_bin(), "loadtest", *args, "--duration", "0.2"], capture_output=True,
                              env=env, timeout=60)
        assert done.returncode != 0 and len(done.stderr.decode().strip().splitlines()) == 1, args
