"""slipway drift vs Evidently's DataDriftPreset on 20 numeric + 5 categorical columns.

Both sides are Parquet files of N rows (default 1,000,000) with the same 25 columns; the
current side has shifts in some of them. Each tool runs as its own process on the same files:
`slipway drift REF CUR --json`, and a Python process that reads both files with pandas and runs
`Report([DataDriftPreset()]).run(...)` (Evidently 0.7.23, in its own venv bench/.venv-evidently,
because it needs pandas < 3). Wall time and peak RSS (the process's own ru_maxrss) per run; the
medians of the runs and the ratios. The per-column tests and verdicts of the two are compared too.

    bench/run drift [--rows N] [--reps N] [--evidently-reps N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import harness as h

BENCH_DIR = Path(__file__).resolve().parent
EV_VENV = BENCH_DIR / ".venv-evidently"
EV_REQS = BENCH_DIR / "requirements-evidently.txt"

NUMERIC = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]

EVIDENTLY_SCRIPT = r'''
import json, sys, time
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

ref_path, cur_path, numeric, categorical = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4].split(",")
t0 = time.perf_counter()
ref = pd.read_parquet(ref_path)
cur = pd.read_parquet(cur_path)
dd = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
snap = Report([DataDriftPreset()], include_tests=True).run(
    Dataset.from_pandas(cur, data_definition=dd), Dataset.from_pandas(ref, data_definition=dd))
d = snap.dict()
status = {}
for t in d["tests"]:
    status.setdefault(t["metric_config"]["metric_id"], []).append(str(t["status"]))
cols = {}
for m in d["metrics"]:
    cfg = m["config"]
    if cfg["type"] == "evidently:metric_v2:ValueDrift":
        cols[cfg["column"]] = {"method": cfg["method"], "value": m["value"],
                               "drift": status[m["id"]][0].endswith("FAIL")}
print(json.dumps({"seconds": time.perf_counter() - t0, "columns": cols}))
'''

DISPLAY = {"K-S p_value": "ks", "chi-square p_value": "chisquare", "Z-test p_value": "z",
           "Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance": "jensenshannon",
           "PSI": "psi", "Kullback-Leibler divergence": "kl_div"}


def evidently_python() -> Path:
    """bench/.venv-evidently's python, created and synced with requirements-evidently.txt."""
    stamp = EV_VENV / ".requirements"
    want = EV_REQS.read_text()
    py = EV_VENV / "bin" / "python"
    if not py.exists() or not stamp.exists() or stamp.read_text() != want:
        print("bench/drift: installing Evidently into bench/.venv-evidently (first time: minutes)", file=sys.stderr)
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(EV_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", str(EV_REQS)],
                       check=True)
        stamp.write_text(want)
    return py


def make_tables(work: Path, rows: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(7)

    def side(shifted: bool) -> pa.Table:
        cols = {}
        for i, name in enumerate(NUMERIC):
            # Every fourth column drifts in the current side: a shift of half a deviation.
            shift = 0.5 if shifted and i % 4 == 0 else 0.0
            if i % 3 == 2:
                cols[name] = rng.gamma(2.0 + i * 0.1, 1.0, rows) + shift
            else:
                cols[name] = rng.normal(i * 0.1 + shift, 1.0 + i * 0.05, rows)
        for i, name in enumerate(CATEGORICAL):
            levels = np.array([f"{name}_level_{k}" for k in range(3 + i)])
            p = np.linspace(1.0, 2.0, len(levels))
            if shifted and i % 2 == 0:
                p = p[::-1]
            cols[name] = levels[rng.choice(len(levels), rows, p=p / p.sum())]
        return pa.table(cols)

    ref, cur = work / "reference.parquet", work / "current.parquet"
    pq.write_table(side(False), ref)
    pq.write_table(side(True), cur)
    return ref, cur


def run_with_rusage(argv: list[str], timeout: float) -> tuple[float, int, str]:
    """Runs argv as a child and reads its own peak RSS from wait4."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        deadline = started + timeout
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                break
            if time.perf_counter() > deadline:
                os.kill(pid, 9)
                os.wait4(pid, 0)
                raise h.BenchError(f"{argv[0]} took more than {timeout:.0f} s")
            time.sleep(0.02)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise h.BenchError(f"{argv[0]} failed: {err.read().decode()[-2000:]}")
        return wall, usage.ru_maxrss * 1024, out.read().decode()


def main() -> int:
    ap = argparse.ArgumentParser(prog="bench/run drift", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3, help="slipway runs")
    ap.add_argument("--evidently-reps", type=int, default=1, help="Evidently runs (minutes each)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    binary = h.slipway_bin()
    ev_python = evidently_python()
    work = h.temp_dir("drift", keep=args.keep)
    print("machine:", h.machine_info())
    ref, cur = make_tables(work, args.rows)
    print(f"tables: {args.rows:,} rows x {len(NUMERIC)} numeric + {len(CATEGORICAL)} categorical per side, "
          f"{ref.stat().st_size / 2**20:.0f} + {cur.stat().st_size / 2**20:.0f} MiB Parquet")
    script = work / "evidently_drift.py"
    script.write_text(EVIDENTLY_SCRIPT)

    slip = {"s": [], "rss": []}
    ev = {"s": [], "rss": []}
    slip_out = ev_out = None
    runs = [("slipway", i) for i in range(args.reps)] + [("evidently", i) for i in range(args.evidently_reps)]
    for who, _ in runs:
        if who == "slipway":
            argv = [str(binary), "--json", "drift", str(ref), str(cur),
                    "--num", ",".join(NUMERIC), "--cat", ",".join(CATEGORICAL)]
            wall, rss, out = run_with_rusage(argv, timeout=1800)
            slip["s"].append(wall)
            slip["rss"].append(rss)
            slip_out = json.loads(out)
        else:
            argv = [str(ev_python), str(script), str(ref), str(cur), ",".join(NUMERIC), ",".join(CATEGORICAL)]
            wall, rss, out = run_with_rusage(argv, timeout=3600)
            ev["s"].append(wall)
            ev["rss"].append(rss)
            ev_out = json.loads(out.strip().splitlines()[-1])
        print(f"  {who:<10} {wall:8.2f} s   peak RSS {rss / 2**20:7.0f} MiB", flush=True)

    # The same tests and verdicts, column by column.
    agree, differ = 0, []
    for c in slip_out["columns"]:
        e = ev_out["columns"][c["column"]]
        same = DISPLAY.get(e["method"]) == c["test"] and e["drift"] == c["drift"]
        close = abs(c["statistic"] - e["value"]) <= 1e-9 * max(abs(e["value"]), 1e-300) or c["statistic"] == e["value"]
        if same and close:
            agree += 1
        else:
            differ.append((c["column"], c["test"], c["statistic"], c["drift"], e))
    s_med, e_med = statistics.median(slip["s"]), statistics.median(ev["s"])
    s_rss, e_rss = statistics.median(slip["rss"]), statistics.median(ev["rss"])
    print()
    print(f"drift: {args.rows:,} rows per side, 25 columns; medians of {args.reps} slipway and "
          f"{args.evidently_reps} Evidently run(s)")
    print(f"{'':<22} {'slipway':>12} {'evidently':>12} {'ratio':>10}")
    print(f"{'wall time, s':<22} {s_med:>12.2f} {e_med:>12.2f} {e_med / s_med:>9.1f}x faster")
    print(f"{'peak RSS, MiB':<22} {s_rss / 2**20:>12.0f} {e_rss / 2**20:>12.0f} {s_rss / e_rss:>9.2f} of it")
    print(f"columns with the same test, verdict and statistic (1e-9): {agree} of {len(slip_out['columns'])}")
    for d in differ:
        print("  differs:", d)
    print(f"slipway: {slip_out['drifted']} drifted, table drift {slip_out['drift']}")
    print(f"targets: >= 20x faster: {'met' if e_med / s_med >= 20 else 'NOT met'}; "
          f"<= 1/3 of the peak RSS: {'met' if s_rss <= e_rss / 3 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    h.run_main(main)
