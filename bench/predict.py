"""batch prediction of 1M rows: `slipway predict` vs mlflow.pyfunc.load_model(...).predict

The same scikit-learn LogisticRegression on 20 features (python/tests/serving/models.py's
logreg20): MLflow's sklearn flavour, loaded with `mlflow.pyfunc.load_model` and run on the
Parquet file read with pandas, predictions written back with pandas — as a user's script does;
and its ONNX export, registered in Slipway and run with `slipway predict` over the same file.
Each side is a fresh process, timed wall-clock from start to exit, with its peak RSS (from
wait4, in a small runner process), in interleaved repetitions; the medians and the ratio mlflow / slipway are printed
(> 1: Slipway is faster). The MLflow script's own predict call is timed too, for reference.

    bench/run predict [--rows 1000000] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import harness as h

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python" / "tests" / "serving"))

MLFLOW_SCRIPT = textwrap.dedent("""
    import sys, time, json
    import mlflow.pyfunc, pandas as pd
    t0 = time.perf_counter()
    model = mlflow.pyfunc.load_model(sys.argv[1])
    frame = pd.read_parquet(sys.argv[2])
    t = time.perf_counter()
    labels = model.predict(frame)
    predict_s = time.perf_counter() - t
    pd.DataFrame({"label": labels}).to_parquet(sys.argv[3])
    print(json.dumps({"predict_s": predict_s, "work_s": time.perf_counter() - t0, "rows": len(frame)}))
""")

# Runs a command and reports its wall time and peak RSS. It is started as a fresh, small process
# so that the peak RSS wait4 reports is the command's own: a child forked from this (large)
# benchmark process would carry its memory into ru_maxrss until exec.
RUNNER = textwrap.dedent("""
    import json, os, subprocess, sys, time
    started = time.perf_counter()
    p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    print(json.dumps({"seconds": time.perf_counter() - started, "maxrss_kib": usage.ru_maxrss,
                      "code": os.waitstatus_to_exitcode(status), "stdout": out.decode()}))
""")


def timed(argv) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in bytes, and stdout of a fresh process."""
    done = subprocess.run([sys.executable, "-c", RUNNER, *[str(a) for a in argv]], capture_output=True,
                          text=True, timeout=1800)
    if done.returncode != 0:
        raise h.BenchError(f"the runner failed: {done.stderr[-2000:]}")
    r = json.loads(done.stdout)
    if r["code"] != 0:
        raise h.BenchError(f"{argv[0]} failed ({r['code']}): {done.stderr[-2000:]}")
    return r["seconds"], r["maxrss_kib"] * 1024, r["stdout"]


def main() -> int:
    ap = argparse.ArgumentParser(prog="bench/run predict", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    h.install_cleanup()
    binary = h.slipway_bin()
    if h.is_debug_build(binary):
        print("warning: SLIPWAY_BIN is a debug build; figures are not representative", file=sys.stderr)
    import numpy as np
    import pandas as pd

    import models as exporter

    work = Path(tempfile.mkdtemp(prefix="slipway-bench-predict-"))
    exporter.main([str(work), "--slipway", str(binary)])
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.rows, 20)).astype(np.float32)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
    data = work / "rows.parquet"
    frame.to_parquet(data, row_group_size=64 * 1024)
    del frame, X

    # Register the ONNX export in a fresh data dir, then stop the server: predict runs alone.
    stores = work / "slipway"
    h.slipway_registered(binary, stores, work / "logreg20_nozipmap.onnx", work / "logs", "predict")

    script = work / "mlflow_predict.py"
    script.write_text(MLFLOW_SCRIPT)
    python = Path(sys.executable)
    runs = {"mlflow": [], "slipway": []}
    rss = {"mlflow": [], "slipway": []}
    predict_s, work_s = [], []
    for name, _ in h.interleave({"mlflow": args.reps, "slipway": args.reps}):
        if name == "mlflow":
            s, r, out = timed([python, script, work / "logreg20_mlflow", data, work / "mlflow-out.parquet"])
            report = json.loads(out.strip().splitlines()[-1])
            predict_s.append(report["predict_s"])
            work_s.append(report["work_s"])
        else:
            s, r, _ = timed([binary, "--json", "predict", "--model", "lr@prod", "--input", data,
                             "--output", work / "slipway-out.parquet", "--data-dir", stores])
        runs[name].append(s)
        rss[name].append(r)
    # Both answered the same labels.
    a = pd.read_parquet(work / "mlflow-out.parquet")["label"].to_numpy()
    b = pd.read_parquet(work / "slipway-out.parquet")["label"].to_numpy()
    agree = float((a == b).mean())

    med = {k: statistics.median(v) for k, v in runs.items()}
    mib = {k: max(v) / 2**20 for k, v in rss.items()}
    print(f"machine: {h.machine_info()}")
    print(f"batch prediction, {args.rows} rows x 20 features (Parquet, {data.stat().st_size / 2**20:.0f} MiB), "
          f"medians of {args.reps} interleaved runs, each a fresh process")
    print(f"{'':<24} {'mlflow pyfunc':>14} {'slipway predict':>16} {'ratio':>8}")
    print(f"{'wall time, s':<24} {med['mlflow']:>14.2f} {med['slipway']:>16.2f} {med['mlflow'] / med['slipway']:>7.1f}x")
    print(f"{'peak RSS, MiB':<24} {mib['mlflow']:>14.0f} {mib['slipway']:>16.0f}")
    print(f"{'rows/s':<24} {args.rows / med['mlflow']:>14.0f} {args.rows / med['slipway']:>16.0f}")
    work_med = statistics.median(work_s)
    print(f"without Python's imports (load_model, read_parquet, predict, to_parquet): mlflow {work_med:.2f} s, "
          f"{work_med / med['slipway']:.1f}x slipway's whole process; mlflow's predict call alone "
          f"{statistics.median(predict_s):.3f} s")
    print(f"labels agree on {agree:.4%} of {len(a)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
