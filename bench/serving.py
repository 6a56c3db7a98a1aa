"""tree-ensemble compute: Slipway's runtime vs onnxruntime (single-threaded), batch 1 and 256

Exports the fall-detection example's RandomForest (20 trees, depth 6) and GradientBoosting
(binary and 4-class) classifiers with skl2onnx (python/tests/serving/models.py), then, in one
run, times per-call compute on the same rows at each batch size: onnxruntime's
`InferenceSession.run` with one intra-op thread, and `slipway models time` (the same model
loaded and optimised once in Slipway's runtime, timed inside the process, no request handling).
Prints medians and the ratio onnxruntime / Slipway (> 1: Slipway is faster).

    bench/run serving [--iters N] [--batches 1,256] [--models rf_fall,gbc_fall,gbc_activity]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness as h

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python" / "tests" / "serving"))


def ort_median_us(path: Path, rows, batch: int, iters: int) -> float:
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.array([rows[i % len(rows)] for i in range(batch)], dtype=np.float32)
    for _ in range(max(1, iters // 10)):
        sess.run(None, {name: x})
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - t) * 1e6)
    return statistics.median(times)


def slipway_median_us(binary: Path, path: Path, rows_file: Path, batch: int, iters: int) -> float:
    out = subprocess.run(
        [str(binary), "--json", "models", "time", str(path), "--rows", str(rows_file),
         "--batch", str(batch), "--iters", str(iters)],
        check=True, capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout)["median_us"]


def main() -> int:
    ap = argparse.ArgumentParser(prog="bench/run serving", description=__doc__.split("\n\n")[0])
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--models", default="rf_fall,rf_activity,gbc_fall,gbc_activity")
    args = ap.parse_args()
    binary = h.slipway_bin()
    if h.is_debug_build(binary):
        print("warning: SLIPWAY_BIN is a debug build; figures are not representative", file=sys.stderr)
    import models as exporter

    work = Path(tempfile.mkdtemp(prefix="slipway-bench-serving-"))
    exporter.main([str(work), "--slipway", str(binary)])
    print(f"machine: {h.machine_info()}")
    print(f"{'model':<14} {'batch':>5} {'onnxruntime µs':>15} {'slipway µs':>11} {'ratio':>7}")
    for name in args.models.split(","):
        ref = json.loads((work / f"{name}_nozipmap.ref.json").read_text())
        rows = ref["batch"]
        rows_file = work / f"{name}.rows.json"
        rows_file.write_text(json.dumps(rows))
        model = work / f"{name}_nozipmap.onnx"
        for batch in [int(b) for b in args.batches.split(",")]:
            ort_us, slip_us = [], []
            for _ in range(3):  # interleaved repetitions; medians of medians
                ort_us.append(ort_median_us(model, rows, batch, args.iters))
                slip_us.append(slipway_median_us(binary, model, rows_file, batch, args.iters))
            o, s = statistics.median(ort_us), statistics.median(slip_us)
            print(f"{name:<14} {batch:>5} {o:>15.1f} {s:>11.1f} {o / s:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
