"""Batch prediction on both stores: `slipway predict` over Parquet, CSV and a dataset version,
checked against onnxruntime row by row; bad input refused with one line and no output file; the
same work as a `predict` job whose predictions become a dataset version."""

import time

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from skl2onnx import to_onnx
from sklearn.ensemble import RandomForestClassifier

from slipway import Slipway, SlipwayError


def model_and_rows(n=20_000):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = ((X[:, 0] > 0.2).astype(int) + (X[:, 1] - X[:, 2] > 0).astype(int))  # three classes
    model = RandomForestClassifier(n_estimators=8, max_depth=5, random_state=0).fit(X[:2000], y[:2000])
    onx = to_onnx(model, X[:1], options={id(model): {"zipmap": False}}).SerializeToString()
    frame = pd.DataFrame(X.astype(np.float64), columns=["f0", "f1", "f2", "f3"])
    frame.insert(0, "clip_id", [f"clip-{i}" for i in range(n)])
    return onx, frame


def expected(onx, frame):
    session = ort.InferenceSession(onx, providers=["CPUExecutionProvider"])
    labels, probs = session.run(None, {"X": frame[["f0", "f1", "f2", "f3"]].to_numpy(np.float32)})
    return labels, probs


def check(out: pd.DataFrame, frame, labels, probs):
    assert list(out.columns) == ["clip_id", "label", "probabilities_0", "probabilities_1", "probabilities_2"]
    assert list(out["clip_id"]) == list(frame["clip_id"])
    assert (out["label"].to_numpy() == labels).all()
    got = out[["probabilities_0", "probabilities_1", "probabilities_2"]].to_numpy()
    np.testing.assert_allclose(got, probs, atol=1e-5)


def test_predict_files_and_a_dataset_version_like_onnxruntime(server, tmp_path):
    client = Slipway(server.url)
    onx, frame = model_and_rows()
    client.register_model("falls", model=onx, alias="champion")
    labels, probs = expected(onx, frame)

    parquet = tmp_path / "features.parquet"
    frame.to_parquet(parquet, row_group_size=3000)
    out = tmp_path / "p.parquet"
    done = server.cli("--json", "predict", "--model", "falls@champion", "--input", str(parquet),
                      "--output", str(out), "--keep", "clip_id")
    assert '"rows": 20000' in done.stdout.decode()
    check(pd.read_parquet(out), frame, labels, probs)

    csv = tmp_path / "features.csv"
    frame.to_csv(csv, index=False)
    out_csv = tmp_path / "from-csv.parquet"
    server.cli("predict", "--model", "falls@1", "--input", str(csv), "--output", str(out_csv),
               "--keep", "clip_id", "--columns", "f0,f1,f2,f3", "--threads", "1")
    check(pd.read_parquet(out_csv), frame, labels, probs)

    folder = tmp_path / "ds"
    folder.mkdir()
    frame.to_parquet(folder / "features.parquet", row_group_size=5000)
    client.add_dataset(folder / "features.parquet", name="fall-features")
    out_ds = tmp_path / "from-dataset.parquet"
    server.cli("predict", "--model", "falls@latest", "--input", "fall-features@1", "--output", str(out_ds),
               "--keep", "clip_id")
    check(pd.read_parquet(out_ds), frame, labels, probs)

    # A table in parts: read part after part, in path order.
    parts = tmp_path / "parts"
    parts.mkdir()
    frame.iloc[:12_000].to_parquet(parts / "a.parquet")
    frame.iloc[12_000:].to_parquet(parts / "b.parquet")
    client.add_dataset(parts, name="fall-parts", kind="table")
    out_parts = tmp_path / "from-parts.parquet"
    server.cli("predict", "--model", "falls@champion", "--input", "fall-parts@1", "--output", str(out_parts),
               "--keep", "clip_id")
    check(pd.read_parquet(out_parts), frame, labels, probs)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".slipway")] == []

    # Bad input: one line on stderr, a non-zero exit, and no output file.
    narrow = tmp_path / "narrow.parquet"
    frame[["clip_id", "f0", "f1"]].to_parquet(narrow)
    for args, says in [
        (["--model", "falls@champion", "--input", str(narrow)], "takes 4 features"),
        (["--model", "falls@champion", "--input", str(parquet), "--columns", "f0,f1,f2,nope"], "no column 'nope'"),
        (["--model", "falls@champion", "--input", str(parquet), "--keep", "clip_id", "--columns", "clip_id,f1,f2,f3"],
         "not a number"),
        (["--model", "falls@nope", "--input", str(parquet)], "alias"),
        (["--model", "falls@champion", "--input", "no-such-dataset@1"], "no-such-dataset"),
        (["--model", "falls@champion", "--input", str(tmp_path / "missing.parquet")], "neither a file"),
    ]:
        bad_out = tmp_path / "bad.parquet"
        done = server.cli("predict", *args, "--output", str(bad_out), check=False)
        err = done.stderr.decode().strip()
        assert done.returncode != 0 and len(err.splitlines()) == 1, (args, err)
        assert says in err, (args, err)
        assert not bad_out.exists(), args
    done = server.cli("predict", "--model", "falls@champion", "--input", str(parquet), "--output",
                      str(tmp_path / "p.csv"), check=False)
    assert done.returncode != 0 and ".parquet" in done.stderr.decode()


def test_predict_as_a_job_stores_a_dataset_version(server, tmp_path):
    client = Slipway(server.url)
    onx, frame = model_and_rows(5000)
    client.register_model("falls", model=onx, alias="champion")
    frame.to_parquet(tmp_path / "features.parquet")
    client.add_dataset(tmp_path / "features.parquet", name="fall-features")

    def finished(job):
        deadline = time.time() + 60
        while True:
            j = client.job(job["id"])
            if j["status"] in ("succeeded", "failed", "cancelled"):
                return j
            assert time.time() < deadline, j
            time.sleep(0.1)

    job = client.submit_job("predict", {"model": "falls@champion", "input": "fall-features@1",
                                        "output_dataset": "fall-predictions", "keep": ["clip_id"]})
    j = finished(job)
    assert j["status"] == "succeeded", j
    assert j["result"]["rows"] == 5000 and j["result"]["dataset"] == "fall-predictions"
    stored = client.dataset("fall-predictions").version(j["result"]["version"]).to_pandas()
    labels, probs = expected(onx, frame)
    check(stored, frame, labels, probs)

    done = client.predict_dataset("falls@champion", "fall-features@1", "fall-predictions", keep=["clip_id"])
    assert done["result"]["version"] == j["result"]["version"]  # the same content: no new version
    with pytest.raises(SlipwayError) as e:
        client.predict_dataset("falls@champion", "fall-features@9", "fall-predictions")
    assert "fall-features" in e.value.message

    # A job never reads a path on the worker's disk, and bad payloads fail with a reason.
    for payload, says in [
        ({"model": "falls@champion", "input": str(tmp_path / "features.parquet"), "output_dataset": "x"}, ""),
        ({"model": "falls@champion", "input": "fall-features@1"}, "output_dataset"),
        ({"model": "nope@1", "input": "fall-features@1", "output_dataset": "x"}, "nope"),
    ]:
        j = finished(client.submit_job("predict", payload, max_attempts=1))
        assert j["status"] == "failed" and says in (j["error"] or ""), j
    with pytest.raises(SlipwayError):
        client.dataset("x")
