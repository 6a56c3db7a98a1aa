"""The fall-detection scenario end to end, on both stores, through a served model: trained on
720p adult clips (the training table found through lineage); 20 windows of the same
distribution with a new seed raise no alert; switching the traffic to 4K cameras is flagged as
skew on the pixel features within one window and an alert fires to a webhook; a ward with 30%
children is flagged as drift against the window before."""

import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import pandas as pd
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression

from harness import slipway_bin
from slipway import Slipway, SlipwayError

WINDOW_S = 3
ROWS = 150  # per window, in requests of 10 rows
PIXELS = ["hip_height_start_px", "hip_height_end_px", "hip_drop_px", "peak_down_velocity_px_s",
          "mean_speed_px_s", "body_height_px"]


def generate(out, clips, seed, camera="720p", subjects="adult"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_") or k.startswith("SLIPWAY_TEST")}
    subprocess.run([slipway_bin(), "example", "fall-detection", "generate", str(out), "--clips", str(clips),
                    "--seed", str(seed), "--camera", camera, "--subjects", subjects],
                   check=True, capture_output=True, env=env)
    return pd.read_parquet(out / "features.parquet")


def post_window(url, rows):
    for i in range(0, len(rows), 10):
        req = urllib.request.Request(url + "/endpoints/falls/invocations", method="POST",
                                     headers={"Content-Type": "application/json"},
                                     data=json.dumps({"inputs": rows[i:i + 10].tolist()}).encode())
        urllib.request.urlopen(req, timeout=10).read()


def at_next_window():
    now = time.time() * 1000
    start = (now // (WINDOW_S * 1000) + 1) * WINDOW_S * 1000
    time.sleep((start - now) / 1000 + 0.05)
    return int(start)


def test_fall_detection_skew_drift_and_no_false_alarm(server, tmp_path):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient
    from mlflow.entities import Dataset, DatasetInput, InputTag

    train = generate(tmp_path / "train", 400, seed=1)
    numeric = [c for c in train.columns if pd.api.types.is_numeric_dtype(train[c])]
    server.cli("data", "add", str(tmp_path / "train" / "features.parquet"), "--dataset", "fall-features")
    s = Slipway(server.url)

    # A training run that read fall-features@1, its model logged and registered from the run.
    X = train[numeric].to_numpy(np.float32)
    model = LogisticRegression(max_iter=2000).fit(X, (train["activity"] == "fall").astype(int))
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(to_onnx(model, initial_types=[("X", FloatTensorType([None, len(numeric)]))],
                                  options={id(model): {"zipmap": False}}).SerializeToString())
    c = MlflowClient(tracking_uri=server.url)
    run_id = c.create_run(c.create_experiment("falls")).info.run_id
    c.log_inputs(run_id, [DatasetInput(
        Dataset(name="fall-features", digest=s.dataset("fall-features").version(1).manifest, source_type="slipway",
                source=json.dumps({"uri": "slipway://fall-features@1"})),
        tags=[InputTag("mlflow.data.context", "training")])])
    c.log_artifact(run_id, str(onnx_path), artifact_path="model")
    s.register_model("falls", source=f"runs:/{run_id}/model")
    s.create_endpoint("falls", "falls@1")
    s.set_prediction_log("falls", window_s=WINDOW_S)

    # Skew against the training table its lineage names; drift of the pixel features against the
    # window before; an alert on each, the skew one to a webhook receiver.
    s.create_monitor("falls-skew", "falls", "skew")
    s.create_monitor("falls-drift", "falls", "drift", columns=PIXELS)
    got = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        # Two windows in a row: one window's chance verdict (the pixel features move together)
        # does not page anyone.
        s.create_alert_rule("skew", monitor="falls-skew", windows=2,
                            webhook=f"http://127.0.0.1:{hook.server_port}/", allow_private=True)
        s.create_alert_rule("drift", monitor="falls-drift", windows=2)

        calm = generate(tmp_path / "calm", 1000, seed=2)[numeric].to_numpy(np.float32)
        uhd = generate(tmp_path / "uhd", 400, seed=3, camera="4k")[numeric].to_numpy(np.float32)
        kids = generate(tmp_path / "kids", 200, seed=4, subjects="child")[numeric].to_numpy(np.float32)
        rng = np.random.default_rng(5)

        # 20 windows of the training distribution, a new seed; then the cameras go 4K for two
        # windows; then a calm window; then a ward with 30% children.
        calm_windows = []
        for _ in range(20):
            calm_windows.append(at_next_window())
            post_window(server.url, calm[rng.choice(len(calm), ROWS, replace=False)])
        uhd_windows = []
        for _ in range(2):
            uhd_windows.append(at_next_window())
            post_window(server.url, uhd[rng.choice(len(uhd), ROWS, replace=False)])
        calm_again = at_next_window()
        post_window(server.url, calm[rng.choice(len(calm), ROWS, replace=False)])
        mix_window = at_next_window()
        mix = np.concatenate([calm[rng.choice(len(calm), ROWS - 45, replace=False)],
                              kids[rng.choice(len(kids), 45, replace=False)]])
        post_window(server.url, mix[rng.permutation(len(mix))])
        time.sleep(max(0.0, (mix_window + WINDOW_S * 1000 + 10_000) / 1000 - time.time()))

        # No alert from the 20 calm windows, all judged (by the server, unasked) against the
        # training table its lineage names.
        reports = {r["window_ms"]: r for r in s.monitor_reports("falls-skew", since_ms=calm_windows[0])}
        judged = [reports[w] for w in calm_windows if w in reports]
        assert len(judged) >= 18, sorted(reports)
        assert all(r["reference"] == "fall-features@1" and r["current_rows"] == ROWS for r in judged)
        alerts = s.alerts()
        assert all(a["started_ms"] > calm_windows[-1] + WINDOW_S * 1000 for a in alerts), alerts

        # 4K: skew on every pixel feature within its first window; the alert fires once, on the
        # second, to the webhook; and resolves when the cameras' pixels look as trained again.
        first = reports.get(uhd_windows[0]) or s.evaluate_monitor("falls-skew", uhd_windows[0])
        assert first["drift"] is True
        assert set(PIXELS) <= {c["column"] for c in first["columns"] if c["drift"]}, first
        skew = [a for a in alerts if a["rule"] == "skew"]
        assert len(skew) == 1 and skew[0]["fired_ms"] is not None, skew
        assert skew[0]["context"]["window_ms"] == uhd_windows[1] and skew[0]["context"]["link"] == "/#/monitors/falls-skew"
        assert set(PIXELS) <= set(skew[0]["context"]["drifted"])
        deadline = time.time() + 20
        while len([e for e in got if e["event"] == "firing"]) < 1 and time.time() < deadline:
            time.sleep(0.25)
        firing = [e for e in got if e["event"] == "firing"]
        assert len(firing) == 1 and firing[0]["alert"]["id"] == skew[0]["id"]

        # 30% children: drift of the pixel features against the calm window before.
        mix_report = s.evaluate_monitor("falls-drift", mix_window)
        assert mix_report["reference"] == f"window {calm_again}" and mix_report["drift"] is True, mix_report

        # A monitor an alert rule watches is not deleted from under it.
        with pytest.raises(SlipwayError) as e:
            s.delete_monitor("falls-drift")
        assert e.value.status == 409 and "alert rule(s) drift" in e.value.message
        assert "falls-drift" in [m["name"] for m in s.monitors()]
        s.delete_alert_rule("drift")
        s.delete_monitor("falls-drift")
    finally:
        hook.shutdown()
        hook.server_close()
