"""`slipway drift REF CUR` end to end: the reference vectors Evidently and SciPy produced
(drift_refs.json, made by make_drift_refs.py), written to Parquet and CSV files and read back by
the CLI, give the same test, statistic (1e-9 relative) and verdict per column, with column types
inferred from the files where Evidently inferred them; bad input is refused in one line."""

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import slipway_bin

REFS = json.loads((Path(__file__).parent / "drift_refs.json").read_text())


def decode(dtype, values):
    if dtype == "float64":
        return pd.Series([float(v) if not isinstance(v, str) else float(v) for v in values], dtype="float64")
    if dtype == "int64":
        return pd.Series(values, dtype="int64")
    if dtype == "bool":
        return pd.Series(values, dtype="bool")
    return pd.Series(values, dtype="object")


def drift(*args):
    return subprocess.run([slipway_bin(), *map(str, args)], capture_output=True, timeout=120)


def frames(case):
    ref, cur = {}, {}
    for c in case["columns"]:
        ref[c["column"]] = decode(c["dtype"], c["reference"])
        cur[c["column"]] = decode(c["dtype"], c["current"])
    return ref, cur


def flags(case):
    out = []
    for c in case["columns"]:
        if c["type_given"] == "num":
            out += ["--num", c["column"]]
        elif c["type_given"] == "cat":
            out += ["--cat", c["column"]]
        if c["method_forced"]:
            out += ["--test", f"{c['column']}={c['method_forced']}"]
    return out


def same(got, want):
    if isinstance(want, str):
        want = float(want)
    if math.isnan(want):
        return got is None or math.isnan(got)
    if want == 0 or math.isinf(want):
        return got == want
    return abs(got - want) <= 1e-9 * abs(want)


CASES = REFS["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_the_cli_matches_evidently_through_parquet(case, tmp_path):
    ref, cur = frames(case)
    # Each side in its own file; a column per case column (sides differ in length).
    pd.DataFrame(ref).to_parquet(tmp_path / "ref.parquet")
    pd.DataFrame(cur).to_parquet(tmp_path / "cur.parquet")
    done = drift("--json", "drift", tmp_path / "ref.parquet", tmp_path / "cur.parquet", *flags(case))
    assert done.returncode == 0, done.stderr.decode()
    out = json.loads(done.stdout)
    by = {c["column"]: c for c in out["columns"]}
    for c in case["columns"]:
        want = c["expected"]
        got = by[c["column"]]
        assert got["test"] == want["stattest"], (c["column"], got, want)
        assert same(got["statistic"], want["statistic"]), (c["column"], got["statistic"], want["statistic"])
        assert got["drift"] == want["drift"] and got["threshold"] == want["threshold"], (got, want)
        assert got["kind"] == ("numerical" if c["type_used"] == "num" else "categorical")
    if "QUIRK" not in case.get("notes", ""):
        assert out["drifted"] == case["dataset"]["drifted_count"]
        assert out["drift"] == case["dataset"]["dataset_drift"]


def test_csv_html_overrides_and_bad_input(tmp_path):
    rng = np.random.default_rng(3)
    n = 3000
    ref = pd.DataFrame({"hip_y": rng.normal(0.5, 0.1, n), "ward": rng.choice(["a", "b", "c"], n),
                        "note": [f"clip-{i}" for i in range(n)]})
    cur = pd.DataFrame({"hip_y": rng.normal(1.5, 0.3, n), "ward": rng.choice(["a", "b", "c"], n),
                        "note": [f"clip-{i}" for i in range(n)]})
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_csv(tmp_path / "cur.csv", index=False)
    done = drift("drift", tmp_path / "ref.csv", tmp_path / "cur.csv", "--html", tmp_path / "r.html")
    text = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["COLUMN", "TYPE", "TEST"]
    assert any(l.startswith("hip_y") and "wasserstein" in l and "DRIFT" in l for l in lines), text
    assert any(l.startswith("ward") and "jensenshannon" in l and " ok " in l for l in lines), text
    assert "skipped note: free text" in text and "1 of 2 columns drifted" in text, text
    html = (tmp_path / "r.html").read_text()
    assert html.count("<svg") == 2 and "hip_y" in html and "<script" not in html

    # A test and a threshold per column; a text column compared when declared categorical.
    done = drift("--json", "drift", tmp_path / "ref.csv", tmp_path / "cur.csv", "--test", "hip_y=psi",
                 "--threshold", "ward=0.001", "--cat", "note", "--columns", "hip_y,ward,note")
    out = json.loads(done.stdout)
    by = {c["column"]: c for c in out["columns"]}
    assert by["hip_y"]["test"] == "psi" and by["ward"]["threshold"] == 0.001, by
    assert by["note"]["kind"] == "categorical" and out["skipped"] == []

    for args, says in [(["--test", "ward=ks"], "does not apply to categorical"),
                       (["--test", "hip_y=magic"], "no test named 'magic'"),
                       (["--threshold", "hip_y=high"], "not a number"),
                       (["--columns", "nope"], "no column 'nope'"),
                       (["--share", "0"], "--share"),
                       (["--num", "ward"], "cannot be compared as numerical")]:
        done = drift("drift", tmp_path / "ref.csv", tmp_path / "cur.csv", *args)
        err = done.stderr.decode().strip()
        assert done.returncode != 0 and len(err.splitlines()) == 1 and says in err, (args, err)
    done = drift("drift", tmp_path / "ref.csv", tmp_path / "missing.csv")
    assert done.returncode != 0 and "missing.csv" in done.stderr.decode()


def test_dataset_versions_are_read_from_the_stores(tmp_path):
    rng = np.random.default_rng(9)
    data_dir = tmp_path / "stores"
    env_args = ["--data-dir", data_dir]
    ref = pd.DataFrame({"hip_y": rng.normal(0.5, 0.1, 500), "ward": rng.choice(["a", "b"], 500)})
    cur = pd.DataFrame({"hip_y": rng.normal(0.9, 0.1, 400), "ward": rng.choice(["a", "b"], 400)})
    ref.to_parquet(tmp_path / "v1.parquet")
    cur.to_parquet(tmp_path / "v2.parquet")
    for f in ["v1.parquet", "v2.parquet"]:
        done = drift("data", "add", "--dataset", "fall-features", tmp_path / f, *env_args)
        assert done.returncode == 0, done.stderr.decode()
    done = drift("--json", "drift", "fall-features@1", "fall-features@2", *env_args)
    assert done.returncode == 0, done.stderr.decode()
    from_versions = json.loads(done.stdout)
    done = drift("--json", "drift", tmp_path / "v1.parquet", tmp_path / "v2.parquet")
    from_files = json.loads(done.stdout)
    assert from_versions["columns"] == from_files["columns"]
    by = {c["column"]: c for c in from_versions["columns"]}
    assert by["hip_y"]["test"] == "ks" and by["hip_y"]["drift"] and by["ward"]["test"] == "z"
    done = drift("drift", "fall-features@7", "fall-features@2", *env_args)
    assert done.returncode != 0 and len(done.stderr.decode().strip().splitlines()) == 1, done.stderr
