"""Slipway's TPE sampler vs Optuna 5's TPESampler and rustuna: search quality and cost per trial.

Two parts, in one run (`--parts quality,overhead`, default both):

  quality   branin, hartmann6, rosenbrock10 and mixed, each minimised for `--trials` trials
            (default 200) with `--seeds` seeds (default 10: 0..9) by each tool, the runs
            interleaved by seed (slipway, optuna, rustuna, next seed, ...). Slipway runs
            `slipway tune try FUNCTION --trials N --seed S --json`; Optuna runs
            `optuna.create_study(sampler=TPESampler(seed=S))` (5.0's defaults: multivariate,
            constant liar) and rustuna `rustuna.create_study(sampler=rustuna.samplers.TPESampler(
            seed=S))`, both in this process, on the same functions written in Python with the same
            parameter names, ranges and suggestion order. Median, q25 and q75 of the best values
            per tool; verdict: Slipway's median <= Optuna's. Each Slipway best is re-evaluated
            with the Python function (a check that both sides minimise the same function).
  overhead  a zero-cost objective (sphere6: x0..x5 in [-5, 5], sum of squares) at `--sizes`
            trials (default 1000,5000), seed 0, `--repeats` times (default 1; the median is
            shown). Slipway: the "seconds" of `slipway tune try sphere6 --json` (sampling in its
            own process, process start excluded) / N; Optuna and rustuna: `study.optimize(obj,
            n_trials=N)` timed in this process / N. Acceptance: Slipway below rustuna and at
            least 30x below Optuna, per trial.

  parallel  (on request) Slipway's TPE with `--workers` trials in flight (each sampled while the
            others still run, as with that many workers; a study's defaults: the kriging believer
            with one objective) against the same seeds run one trial at a time; medians,
            quartiles, a rank-sum test, and the trial at which the sequential runs' median
            reaches the parallel median (so the wall-time speed-up, for trials of equal length). `--multi` adds ZDT1 and DTLZ2 (the defaults for
            several objectives: constant liar), by the hypervolume of the front. With optuna in --tools,
            Optuna's TPESampler the same two ways (ask/tell with `--workers` trials asked ahead,
            told oldest first; 5.0's constant liar) as a control: how much any model-based
            sampler loses when it must decide before the newest results are in.

  service   (on request) a study shared over the network: `--service-trials` define-by-run
            trials through `slipway server` (SQLite) and Slipway's Python client against Optuna
            with RDBStorage on SQLite; per-trial wall time at marks, and the ratio.

  multi     (on request) several objectives: ZDT1 (6 variables, 2 objectives) and DTLZ2 (6
            variables, 3 objectives), `--trials` trials x `--seeds` seeds, all minimised; the
            hypervolume of each run's Pareto front against a fixed reference point (larger is
            better; the true front's is the most any run can reach). Slipway's multi-objective
            TPE (`slipway tune try zdt1 --json`) against Optuna's TPESampler and its default for
            several objectives, NSGAIISampler, both seeded, in this process. Slipway's default for
            several objectives is univariate TPE, as Optuna 5's; it also runs multivariate
            (`--sampler tpe-multivariate`). Each Slipway front is
            checked: its values re-evaluated with the Python function at its params, and its
            hypervolume recomputed here.

    bench/run tuning [--parts quality,overhead,parallel,multi,service] [--seed-start N] [--workers 4] [--multi] [--trials N] [--seeds N] [--sizes 1000,5000]
                     [--repeats N] [--functions ...] [--tools slipway,optuna,rustuna] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings
from importlib.metadata import version as pkg_version
from pathlib import Path

import numpy as np

import harness as h

FUNCTIONS = ["branin", "hartmann6", "rosenbrock10", "mixed"]
TOOLS = ["slipway", "optuna", "rustuna"]
OVERHEAD_TARGET = 30.0  # optuna/slipway per trial must be at least this
SLIPWAY_TIMEOUT = 7200.0


# --------------------------------------------------------------------------- the functions
# The same spaces as crates/tune/src/functions.rs: names, ranges and suggestion order.

BRANIN_B, BRANIN_C, BRANIN_T = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)

H6_ALPHA = [1.0, 1.2, 3.0, 3.2]
H6_A = [[10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14]]
H6_P = [[1e-4 * v for v in row] for row in
        [[1312, 1696, 5569, 124, 8283, 5886],
         [2329, 4135, 8307, 3736, 1004, 9991],
         [2348, 1451, 3522, 2883, 3047, 6650],
         [4047, 8828, 8732, 5743, 1091, 381]]]

MIXED_OFFSET = {"a": 0.5, "b": 0.0, "c": 1.0, "d": 2.0}


def branin(t) -> float:
    x1 = t.suggest_float("x1", -5.0, 10.0)
    x2 = t.suggest_float("x2", 0.0, 15.0)
    return ((x2 - BRANIN_B * x1 * x1 + BRANIN_C * x1 - 6) ** 2
            + 10 * (1 - BRANIN_T) * math.cos(x1) + 10)


def hartmann6(t) -> float:
    x = [t.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)]
    return -sum(H6_ALPHA[i] * math.exp(-sum(H6_A[i][j] * (x[j] - H6_P[i][j]) ** 2 for j in range(6)))
                for i in range(4))


def rosenbrock10(t) -> float:
    x = [t.suggest_float(f"x{i}", -5.0, 10.0) for i in range(10)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(9))


def mixed(t) -> float:
    x = t.suggest_float("x", -5.0, 5.0)
    lr = t.suggest_float("lr", 1e-4, 1.0, log=True)
    k = t.suggest_int("k", 1, 20)
    c = t.suggest_categorical("c", ["a", "b", "c", "d"])
    return ((x - 1.5) ** 2 + (math.log10(lr) + 2.5) ** 2 + 0.1 * (k - 7) ** 2
            + MIXED_OFFSET[c] + (0.5 * abs(x - 1.5) if c == "d" else 0.0))


def sphere6(t) -> float:
    return sum(t.suggest_float(f"x{i}", -5.0, 5.0) ** 2 for i in range(6))


def zdt1(t) -> tuple[float, float]:
    x = [t.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)]
    g = 1 + 9 * sum(x[1:]) / 5
    return x[0], g * (1 - math.sqrt(x[0] / g))


def dtlz2(t) -> tuple[float, float, float]:
    x = [t.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)]
    g = sum((v - 0.5) ** 2 for v in x[2:])
    a, b = x[0] * math.pi / 2, x[1] * math.pi / 2
    return ((1 + g) * math.cos(a) * math.cos(b), (1 + g) * math.cos(a) * math.sin(b), (1 + g) * math.sin(a))


MULTI = {"zdt1": zdt1, "dtlz2": dtlz2}
MULTI_REFERENCE = {"zdt1": [1.1, 11.0], "dtlz2": [1.1, 1.1, 1.1]}
MULTI_BEST = {"zdt1": 1.1 * 11.0 - 1 / 3, "dtlz2": 1.1 ** 3 - math.pi / 6}


def hypervolume(points: list, reference: list) -> float:
    """The volume the points dominate inside the reference box (exact: a sweep in 2-D, slices above)."""
    pts = [p for p in points if all(x < r for x, r in zip(p, reference))]
    m = len(reference)
    if not pts:
        return 0.0
    if m == 1:
        return reference[0] - min(p[0] for p in pts)
    if m == 2:
        volume, ceiling = 0.0, reference[1]
        for p in sorted(pts):
            if p[1] < ceiling:
                volume += (reference[0] - p[0]) * (ceiling - p[1])
                ceiling = p[1]
        return volume
    pts.sort(key=lambda p: p[-1])
    volume = 0.0
    for i, p in enumerate(pts):
        top = pts[i + 1][-1] if i + 1 < len(pts) else reference[-1]
        if top > p[-1]:
            volume += (top - p[-1]) * hypervolume([q[:-1] for q in pts[: i + 1]], reference[:-1])
    return volume


OBJECTIVES = {"branin": branin, "hartmann6": hartmann6, "rosenbrock10": rosenbrock10,
              "mixed": mixed, "sphere6": sphere6}
MINIMA = {"branin": 0.397887357729738, "hartmann6": -3.322368011415515, "rosenbrock10": 0.0,
          "mixed": 0.0, "sphere6": 0.0}
MINIMISERS = {  # where the Python functions must reach MINIMA (checked at start)
    "branin": [{"x1": -math.pi, "x2": 12.275}, {"x1": math.pi, "x2": 2.275}, {"x1": 9.42478, "x2": 2.475}],
    "hartmann6": [dict(zip([f"x{i}" for i in range(6)],
                           [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]))],
    "rosenbrock10": [{f"x{i}": 1.0 for i in range(10)}],
    "mixed": [{"x": 1.5, "lr": 10 ** -2.5, "k": 7, "c": "b"}],
    "sphere6": [{f"x{i}": 0.0 for i in range(6)}],
}


class Fixed:
    """A trial with given parameters (to evaluate a function at a point, e.g. Slipway's best)."""

    def __init__(self, params: dict):
        self.params = params

    def _get(self, name, low=None, high=None):
        if name not in self.params:
            raise h.BenchError(f"parameter {name!r} missing from {self.params}")
        v = self.params[name]
        if low is not None and not (low <= v <= high):
            raise h.BenchError(f"parameter {name}={v} outside [{low}, {high}]")
        return v

    def suggest_float(self, name, low, high, step=None, log=False):
        return float(self._get(name, low, high))

    def suggest_int(self, name, low, high, step=1, log=False):
        v = self._get(name, low, high)
        if float(v) != int(v):
            raise h.BenchError(f"parameter {name}={v} is not an integer")
        return int(v)

    def suggest_categorical(self, name, choices):
        v = self._get(name)
        if v not in choices:
            raise h.BenchError(f"parameter {name}={v!r} not one of {choices}")
        return v


def check_functions() -> None:
    for name, points in MINIMISERS.items():
        for p in points:
            v = OBJECTIVES[name](Fixed(p))
            if abs(v - MINIMA[name]) > 1e-5:
                raise h.BenchError(f"bench/tuning.py's {name} is {v} at {p}, not its minimum {MINIMA[name]}")


# --------------------------------------------------------------------------- the tools


def slipway_binary() -> Path:
    """$SLIPWAY_BIN, else $CARGO_TARGET_DIR/release/slipway when that is set and exists, else
    target/release/slipway in the repository (harness.slipway_bin)."""
    target = os.environ.get("CARGO_TARGET_DIR")
    if not os.environ.get("SLIPWAY_BIN") and target:
        path = Path(target).expanduser() / "release" / "slipway"
        if path.is_file() and os.access(path, os.X_OK):
            return path.resolve()
    return h.slipway_bin()


def slipway_try(binary: Path, function: str, trials: int, seed: int, *extra: str) -> tuple[dict, float]:
    """`slipway tune try FUNCTION --json` with `extra` options: its JSON and its wall time."""
    argv = [str(binary), "tune", "try", function, "--trials", str(trials), "--seed", str(seed), *extra, "--json"]
    started = time.perf_counter()
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=SLIPWAY_TIMEOUT,
                             env=h.clean_env(["SLIPWAY_"]))
    except subprocess.TimeoutExpired:
        raise h.BenchError(f"{' '.join(argv)} took more than {SLIPWAY_TIMEOUT:.0f} s") from None
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise h.BenchError(f"{' '.join(argv)} failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    try:
        return json.loads(out.stdout), wall
    except json.JSONDecodeError:
        raise h.BenchError(f"{' '.join(argv)} printed no JSON object: {out.stdout[:500]!r}") from None


def run_slipway(binary: Path, function: str, trials: int, seed: int) -> dict:
    doc, wall = slipway_try(binary, function, trials, seed)
    return {"best": float(doc["best_value"]), "seconds": float(doc["seconds"]), "wall": wall,
            "history": doc.get("history"), "best_params": doc.get("best_params"),
            "best_trial": doc.get("best_trial"), "function": doc.get("function"),
            "trials": doc.get("trials"), "seed": doc.get("seed")}


def best_so_far(values: list) -> list[float]:
    out, best = [], math.inf
    for v in values:
        if v is not None:
            best = min(best, v)
        out.append(best)
    return out


def run_optuna(function: str, trials: int, seed: int, progress: bool = False) -> dict:
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    callbacks = []
    if progress:
        step = max(trials // 10, 1)
        t0 = time.perf_counter()

        def report(_study, trial):
            if (trial.number + 1) % step == 0:
                print(f"    optuna: {trial.number + 1}/{trials} trials, {time.perf_counter() - t0:.0f} s",
                      file=sys.stderr, flush=True)
        callbacks.append(report)
    started = time.perf_counter()
    study.optimize(OBJECTIVES[function], n_trials=trials, callbacks=callbacks)
    seconds = time.perf_counter() - started
    return {"best": float(study.best_value), "seconds": seconds,
            "history": best_so_far([t.value for t in study.trials])}


def run_rustuna(function: str, trials: int, seed: int) -> dict:
    import rustuna

    study = rustuna.create_study(sampler=rustuna.samplers.TPESampler(seed=seed))
    started = time.perf_counter()
    study.optimize(OBJECTIVES[function], n_trials=trials)
    seconds = time.perf_counter() - started
    return {"best": float(study.best_trial.value), "seconds": seconds,
            "history": best_so_far([t.value for t in study.trials])}


def run_tool(tool: str, binary: Path | None, function: str, trials: int, seed: int,
             progress: bool = False) -> dict:
    if tool == "slipway":
        return run_slipway(binary, function, trials, seed)
    if tool == "optuna":
        return run_optuna(function, trials, seed, progress)
    return run_rustuna(function, trials, seed)


def check_slipway(function: str, trials: int, seed: int, r: dict) -> list[str]:
    """Slipway's answer describes the run asked for, and its best is the Python function's value
    at its best parameters (the two sides minimise the same function)."""
    problems = []
    where = f"slipway {function} seed {seed}"
    if r["function"] != function or r["trials"] != trials or r["seed"] != seed:
        problems.append(f"{where}: answered for {r['function']} trials={r['trials']} seed={r['seed']}")
    hist = r["history"] or []
    if len(hist) != trials or (hist and hist[-1] != r["best"]):
        problems.append(f"{where}: history of {len(hist)} values ending {hist[-1:]} vs best {r['best']}")
    try:
        v = OBJECTIVES[function](Fixed(r["best_params"] or {}))
    except h.BenchError as e:
        problems.append(f"{where}: best_params {r['best_params']}: {e}")
    else:
        if not abs(v - r["best"]) <= 1e-9 * max(1.0, abs(v)):
            problems.append(f"{where}: best_value {r['best']!r} but the Python {function} at "
                            f"{r['best_params']} is {v!r}")
    return problems


# --------------------------------------------------------------------------- output


def fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if v == 0:
        return "0"
    return f"{v:.4g}" if 1e-3 <= abs(v) < 1e5 else f"{v:.3e}"


def quartiles(vals: list[float]) -> tuple[float, float, float]:
    return (float(np.percentile(vals, 25)), statistics.median(vals), float(np.percentile(vals, 75)))


def ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1e3:.3f}" if v < 0.01 else f"{v * 1e3:.2f}" if v < 1 else f"{v * 1e3:.1f}"


def ratio_text(num: float | None, den: float | None, num_name: str, den_name: str) -> tuple[float | None, str]:
    if not num or not den:
        return None, "-"
    r = num / den
    digits = 0 if r >= 100 else 1 if r >= 1 else 2
    winner = den_name if r > 1 else num_name
    return r, f"{num_name}/{den_name} = {r:.{digits}f}x ({winner} faster)"


def progress(msg: str, end: str = "\n") -> None:
    print(msg, end=end, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- parts


def quality_part(args, tools: list[str], binary: Path | None) -> tuple[dict, list[str]]:
    results: dict = {f: {t: [] for t in tools} for f in args.functions}
    problems: list[str] = []
    print()
    print(f"quality: best value after {args.trials} trials, seeds {args.seed_start}..{args.seed_start + args.seeds - 1}, all minimised; "
          f"runs interleaved by seed ({', '.join(tools)})")
    for function in args.functions:
        t0 = time.perf_counter()
        progress(f"  {function:<13} ", end="")
        for seed in range(args.seed_start, args.seed_start + args.seeds):
            for tool in tools:
                r = run_tool(tool, binary, function, args.trials, seed)
                if tool == "slipway":
                    problems += check_slipway(function, args.trials, seed, r)
                    r = {k: r[k] for k in ("best", "seconds", "wall", "history", "best_params")}
                r["seed"] = seed
                results[function][tool].append(r)
            progress(".", end="")
        progress(f" {time.perf_counter() - t0:.0f} s")

    aa: dict = {}
    if args.aa and "optuna" in tools:
        for function in args.functions:
            progress(f"  A/A control: optuna {function}, seeds +1000 ", end="")
            aa[function] = []
            for seed in range(args.seed_start + 1000, args.seed_start + 1000 + args.seeds):
                aa[function].append(run_optuna(function, args.trials, seed)["best"])
                progress(".", end="")
            progress("")
    header = ["function", "minimum"] + [f"{t}: median [q25, q75]" for t in tools]
    if aa:
        header.append("optuna, seeds +1000 (A/A)")
    if "slipway" in tools and "optuna" in tools:
        header += ["slipway median <= optuna median", "p(slipway worse)"]
    if aa:
        header += ["A/A: median <= optuna's", "p(A/A worse)"]
    rows, verdicts, p_worse = [], {}, {}
    for function in args.functions:
        row = [function, fmt(MINIMA[function])]
        med = {}
        for tool in tools:
            q25, m, q75 = quartiles([r["best"] for r in results[function][tool]])
            med[tool] = m
            row.append(f"{fmt(m)} [{fmt(q25)}, {fmt(q75)}]")
        if aa:
            q25, m, q75 = quartiles(aa[function])
            row.append(f"{fmt(m)} [{fmt(q25)}, {fmt(q75)}]")
        if "slipway" in tools and "optuna" in tools:
            verdicts[function] = med["slipway"] <= med["optuna"]
            row.append("yes" if verdicts[function] else "NO")
            p_worse[function] = worse_p([r["best"] for r in results[function]["slipway"]],
                                        [r["best"] for r in results[function]["optuna"]])
            row.append(f"{p_worse[function]:.2f}")
        if aa:
            opt = [r["best"] for r in results[function]["optuna"]]
            row.append("yes" if statistics.median(aa[function]) <= med["optuna"] else "NO")
            row.append(f"{worse_p(aa[function], opt):.2f}")
        rows.append(row)
    print(h.table(rows, header))

    # time per trial: all seeds of a function together
    header = ["function"]
    if "slipway" in tools:
        header += ["slipway ms/trial (in-process)", "slipway ms/trial (wall, with process start)"]
    header += [f"{t} ms/trial" for t in tools if t != "slipway"]
    rows = []
    totals = {t: [0.0, 0.0] for t in tools + ["slipway_wall"]}
    n = args.trials * args.seeds
    for function in args.functions:
        row = [function]
        for tool in tools:
            s = sum(r["seconds"] for r in results[function][tool])
            totals[tool][0] += s
            totals[tool][1] += n
            cols = [ms(s / n)]
            if tool == "slipway":
                w = sum(r["wall"] for r in results[function][tool])
                totals["slipway_wall"][0] += w
                totals["slipway_wall"][1] += n
                cols.append(ms(w / n))
            row += cols
        rows.append(row)
    total_row = ["all"]
    for tool in tools:
        total_row.append(ms(totals[tool][0] / totals[tool][1]))
        if tool == "slipway":
            total_row.append(ms(totals["slipway_wall"][0] / totals["slipway_wall"][1]))
    rows.append(total_row)
    print()
    print(h.table(rows, header))
    print("(time per trial of each tool's own loop: optuna and rustuna call the Python function, "
          "slipway its Rust one; slipway's wall time adds a process start per seed)")
    if verdicts:
        yes = sum(verdicts.values())
        print(f"slipway median <= optuna median on {yes} of {len(verdicts)} functions")
        print("(p(slipway worse): one-sided Mann-Whitney U test that slipway's best values tend to be "
              "larger than optuna's; small p would mean slipway is worse, not noise)")
    summary = {
        f: {t: {"best": [r["best"] for r in results[f][t]],
                "q25_median_q75": quartiles([r["best"] for r in results[f][t]]),
                "seconds": [r["seconds"] for r in results[f][t]],
                **({"wall_seconds": [r["wall"] for r in results[f][t]],
                    "best_params": [r["best_params"] for r in results[f][t]]} if t == "slipway" else {}),
                "history": [r["history"] for r in results[f][t]]}
            for t in tools}
        for f in args.functions}
    for f, v in verdicts.items():
        summary[f]["slipway_median_le_optuna_median"] = v
        summary[f]["p_slipway_worse"] = p_worse[f]
    for f, v in aa.items():
        summary[f]["optuna_aa_seeds_plus_1000"] = v
    return summary, problems


def run_optuna_multi(function: str, trials: int, seed: int, sampler: str) -> dict:
    import optuna

    m = len(MULTI_REFERENCE[function])
    make = optuna.samplers.TPESampler if sampler == "tpe" else optuna.samplers.NSGAIISampler
    study = optuna.create_study(directions=["minimize"] * m, sampler=make(seed=seed))
    started = time.perf_counter()
    study.optimize(MULTI[function], n_trials=trials)
    seconds = time.perf_counter() - started
    front = [list(t.values) for t in study.best_trials]
    return {"hv": hypervolume(front, MULTI_REFERENCE[function]), "seconds": seconds, "front": len(front)}


def run_slipway_multi(binary: Path, function: str, trials: int, seed: int,
                      sampler: str = "tpe", *extra: str) -> tuple[dict, list[str]]:
    doc, _ = slipway_try(binary, function, trials, seed, "--sampler", sampler, *extra)
    problems, where = [], f"slipway {function} seed {seed}"
    values = []
    for t in doc["front"]:
        want = MULTI[function](Fixed(t["params"]))
        if any(abs(a - b) > 1e-9 * max(1.0, abs(b)) for a, b in zip(t["values"], want)):
            problems.append(f"{where}: trial {t['number']} values {t['values']} but the Python {function} gives {want}")
        values.append(t["values"])
    hv = hypervolume(values, MULTI_REFERENCE[function])
    if abs(hv - doc["hypervolume"]) > 1e-9 * max(1.0, hv):
        problems.append(f"{where}: hypervolume {doc['hypervolume']} but recomputed here {hv}")
    if doc["trials"] != trials or doc["seed"] != seed:
        problems.append(f"{where}: answered for trials={doc['trials']} seed={doc['seed']}")
    return {"hv": float(doc["hypervolume"]), "seconds": float(doc["seconds"]), "front": len(values)}, problems


def multi_part(args, tools: list[str], binary: Path | None) -> tuple[dict, list[str]]:
    runners = []
    if "slipway" in tools and binary:
        runners += ["slipway tpe", "slipway tpe-multivariate"]
    if "optuna" in tools:
        runners += ["optuna tpe", "optuna nsga2"]
    print()
    print(f"multi: hypervolume of the Pareto front after {args.trials} trials (larger is better), seeds "
          f"{args.seed_start}..{args.seed_start + args.seeds - 1}; {', '.join(runners)}; runs interleaved by seed")
    problems: list[str] = []
    results: dict = {f: {r: [] for r in runners} for f in MULTI}
    for function in MULTI:
        progress(f"  {function:<13} ", end="")
        for seed in range(args.seed_start, args.seed_start + args.seeds):
            for r in runners:
                if r.startswith("slipway"):
                    out, p = run_slipway_multi(binary, function, args.trials, seed, r.split()[1])
                    problems += p
                else:
                    out = run_optuna_multi(function, args.trials, seed, r.split()[1])
                results[function][r].append(out)
            progress(".", end="")
        progress("")
    header = ["function", "best possible"] + [f"{r}: median [q25, q75]" for r in runners]
    peers = [r for r in runners if not r.startswith("slipway")]
    if "slipway tpe" in runners:
        header += [f"slipway >= {r}, p(slipway worse)" for r in peers]
    header += [f"{r} ms/trial" for r in runners]
    rows, summary = [], {}
    for function in MULTI:
        row = [function, fmt(MULTI_BEST[function])]
        med = {}
        for r in runners:
            q25, m, q75 = quartiles([x["hv"] for x in results[function][r]])
            med[r] = m
            row.append(f"{fmt(m)} [{fmt(q25)}, {fmt(q75)}]")
        summary[function] = {r: {"hypervolume": [x["hv"] for x in results[function][r]],
                                 "seconds": [x["seconds"] for x in results[function][r]],
                                 "front_size": [x["front"] for x in results[function][r]]} for r in runners}
        if "slipway tpe" in runners:
            from scipy.stats import mannwhitneyu
            for r in peers:
                mine = [x["hv"] for x in results[function]["slipway tpe"]]
                theirs = [x["hv"] for x in results[function][r]]
                p = float(mannwhitneyu(mine, theirs, alternative="less").pvalue)
                row.append(f"{'yes' if med['slipway tpe'] >= med[r] else 'NO'}, {p:.2f}")
                summary[function][f"p_slipway_worse_than_{r.replace(' ', '_')}"] = p
        for r in runners:
            n = args.trials * args.seeds
            row.append(ms(sum(x["seconds"] for x in results[function][r]) / n))
        rows.append(row)
    print(h.table(rows, header))
    print("(hypervolume against ZDT1's reference (1.1, 11) and DTLZ2's (1.1, 1.1, 1.1); p: one-sided Mann-Whitney "
          "U test that slipway's hypervolumes tend to be smaller; ms/trial: each tool's own loop, optuna's "
          "calling the Python function)")
    return summary, problems


def trials_to_reach(curves: list[list[float]], target: float) -> int | None:
    """The first trial count at which the median over `curves` (best-so-far values, one list
    per seed) is at most `target`; None if it never is."""
    longest = max((len(c) for c in curves), default=0)
    for t in range(1, longest + 1):
        at = sorted(c[min(t, len(c)) - 1] for c in curves if c)
        if at and statistics.median(at) <= target:
            return t
    return None


def worse_p(slipway: list[float], optuna: list[float]) -> float:
    """The one-sided Mann-Whitney U test's p-value for 'slipway's values tend to be larger'."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(slipway, optuna, alternative="greater").pvalue)


def run_slipway_parallel(binary: Path, function: str, trials: int, seed: int, workers: int) -> dict:
    return slipway_try(binary, function, trials, seed, "--parallel", str(workers))[0]


def run_optuna_parallel(function: str, trials: int, seed: int, workers: int) -> float:
    """Optuna's TPE as `workers` workers would drive it: ask ahead, tell the oldest first."""
    import collections

    import optuna

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    running: collections.deque = collections.deque()
    asked = 0
    for _ in range(trials):
        while asked < trials and len(running) < workers:
            trial = study.ask()
            running.append((trial, OBJECTIVES[function](trial)))
            asked += 1
        trial, value = running.popleft()
        study.tell(trial, value)
    return float(study.best_value)


def parallel_part(args, binary: Path, tools: list[str]) -> tuple[dict, list[str]]:
    """Slipway's TPE sampling each trial while workers-1 others still run, against
    the same seeds sequentially."""
    print()
    print(f"parallel: slipway's TPE with {args.workers} trials in flight (each sampled while the others "
          f"run) vs one at a time; {args.trials} trials, seeds {args.seed_start}.."
          f"{args.seed_start + args.seeds - 1}")
    control = "optuna" in tools
    rows, summary = [], {}
    for function in args.functions:
        progress(f"  {function:<13} ", end="")
        seq, par, oseq, opar, curves = [], [], [], [], []
        for seed in range(args.seed_start, args.seed_start + args.seeds):
            one = run_slipway(binary, function, args.trials, seed)
            seq.append(one["best"])
            curves.append(best_so_far(one["history"] or []))
            par.append(float(run_slipway_parallel(binary, function, args.trials, seed, args.workers)["best_value"]))
            if control:
                oseq.append(run_optuna(function, args.trials, seed)["best"])
                opar.append(run_optuna_parallel(function, args.trials, seed, args.workers))
            progress(".", end="")
        progress("")
        qs, qp = quartiles(seq), quartiles(par)
        p = worse_p(par, seq)
        reached = trials_to_reach(curves, qp[1])
        row = [function, f"{fmt(qs[1])} [{fmt(qs[0])}, {fmt(qs[2])}]", f"{fmt(qp[1])} [{fmt(qp[0])}, {fmt(qp[2])}]",
               "yes" if qp[1] <= qs[1] else "NO", f"{p:.2f}",
               str(reached) if reached else f"> {args.trials}",
               f"{args.workers * reached / args.trials:.1f}x" if reached else f">= {args.workers:.1f}x"]
        summary[function] = {"sequential": seq, "parallel": par, "p_parallel_worse": p,
                             "sequential_trials_to_parallel_median": reached}
        if control:
            qos, qop = quartiles(oseq), quartiles(opar)
            row += [f"{fmt(qos[1])} [{fmt(qos[0])}, {fmt(qos[2])}]", f"{fmt(qop[1])} [{fmt(qop[0])}, {fmt(qop[2])}]",
                    "yes" if qop[1] <= qos[1] else "NO", f"{worse_p(opar, oseq):.2f}",
                    "yes" if qp[1] <= qop[1] else "NO"]
            summary[function].update({"optuna_sequential": oseq, "optuna_parallel": opar})
        rows.append(row)
    header = ["function", "slipway sequential: median [q25, q75]", f"slipway, {args.workers} in flight",
              "parallel median <= sequential", "p(parallel worse)", "one at a time reaches it at trial",
              "wall-time speed-up"]
    if control:
        header += ["optuna sequential", f"optuna, {args.workers} in flight", "optuna: parallel <= sequential",
                   "p(optuna parallel worse)", f"slipway <= optuna, {args.workers} in flight"]
    print(h.table(rows, header))
    print(f"(one at a time reaches it: the first trial at which the sequential runs' median best-so-far is at "
          f"least as good as the {args.workers}-in-flight median; wall-time speed-up: {args.workers} x that / "
          f"{args.trials}, the parallel study's time against the sequential one's to the same median, for "
          f"trials of equal length)")
    problems: list[str] = []
    if args.multi:
        summary["multi"], problems = parallel_multi(args, binary)
    return summary, problems


def parallel_multi(args, binary: Path) -> tuple[dict, list[str]]:
    """The same for several objectives: the hypervolume of the front found (larger is better),
    with a study's defaults for several objectives (univariate TPE, constant liar)."""
    print(f"several objectives: hypervolume of the front (larger is better), {args.trials} trials")
    rows, summary, problems = [], {}, []
    for function in MULTI:
        progress(f"  {function:<13} ", end="")
        seq, par = [], []
        for seed in range(args.seed_start, args.seed_start + args.seeds):
            for extra, into in (((), seq), (("--parallel", str(args.workers)), par)):
                out, p = run_slipway_multi(binary, function, args.trials, seed, "tpe", *extra)
                problems += p
                into.append(out["hv"])
            progress(".", end="")
        progress("")
        qs, qp = quartiles(seq), quartiles(par)
        from scipy.stats import mannwhitneyu
        p = float(mannwhitneyu(par, seq, alternative="less").pvalue)
        rows.append([function, f"{fmt(qs[1])} [{fmt(qs[0])}, {fmt(qs[2])}]", f"{fmt(qp[1])} [{fmt(qp[0])}, {fmt(qp[2])}]",
                     "yes" if qp[1] >= qs[1] else "NO", f"{p:.2f}"])
        summary[function] = {"sequential": seq, "parallel": par, "p_parallel_worse": p}
    print(h.table(rows, ["function", "slipway sequential: median [q25, q75]", f"slipway, {args.workers} in flight",
                         "parallel median >= sequential", "p(parallel worse)"]))
    return summary, problems


def service_trials(study_ask, tell, trials: int, marks: list[int], name: str) -> dict:
    """Runs `trials` define-by-run trials (ask, six suggest_float, tell the sphere) and returns
    each trial's wall time in seconds, and the median over the 50 trials up to each mark."""
    times = []
    for n in range(trials):
        started = time.perf_counter()
        trial = study_ask()
        xs = [trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)]
        tell(trial, sum((x - 0.3) ** 2 for x in xs))
        times.append(time.perf_counter() - started)
        if (n + 1) % 100 == 0:
            progress(f"\r  {name:<34} {n + 1}/{trials}", end="")
    progress("")
    return {"seconds": times, "at": {m: statistics.median(times[max(0, m - 50):m]) for m in marks if m <= trials}}


def service_part(args, binary: Path) -> tuple[dict, list[str]]:
    """A study shared over the network, as parallel workers use it: Slipway's server (SQLite, its
    embedded default) through its Python client against Optuna with its RDB storage on SQLite
    (the setup Optuna documents for distributed optimisation), one client, define-by-run."""
    import optuna

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
    from slipway.client import Slipway

    trials = args.service_trials
    marks = [m for m in (100, 250, 500, 1000, 2000, 5000) if m <= trials] or [trials]
    print()
    print(f"service: a shared study, {trials} define-by-run trials (ask, 6 x suggest_float, tell), one "
          f"client; per-trial wall time, median of the 50 trials up to each mark; TPE (multivariate), seed 0")
    out = {}
    d = h.temp_dir("tuning-service")
    proc = h.spawn("slipway", [binary, "server", "--port", "0", "--data-dir", d / "data"], d,
                   env=h.clean_env(["SLIPWAY_"]), cwd=d)
    match, _ = h.wait_for(proc, lambda: h.first_line_match(
        proc.stdout_path, r"^slipway listening on (http://\S+)"), 60, what="listening")
    client = Slipway(match.group(1).rstrip("/"))
    study = client.study("service", direction="minimize", seed=0)
    out["slipway"] = service_trials(study.ask, study.tell, trials, marks, "slipway server (sqlite)")
    proc.stop()
    storage = optuna.storages.RDBStorage(f"sqlite:///{d / 'optuna.db'}")
    ostudy = optuna.create_study(storage=storage, study_name="service",
                                 sampler=optuna.samplers.TPESampler(seed=0))
    out["optuna"] = service_trials(ostudy.ask, ostudy.tell, trials, marks, "optuna RDBStorage (sqlite)")
    rows = []
    for m in marks:
        a, b = out["slipway"]["at"][m], out["optuna"]["at"][m]
        rows.append([str(m), ms(a), ms(b), f"{b / a:.1f}x"])
    print(h.table(rows, ["trials", "slipway server: ms/trial", "optuna RDB storage: ms/trial", "optuna / slipway"]))
    return out, []


def overhead_part(args, tools: list[str], binary: Path | None) -> tuple[dict, list[str]]:
    problems: list[str] = []
    per_trial: dict = {n: {t: [] for t in tools} for n in args.sizes}
    print()
    print(f"overhead: sphere6 (6-D, costs nothing), multivariate TPE, seed 0, {args.repeats} repeat(s) "
          f"per size, interleaved")
    for n in args.sizes:
        for rep in range(args.repeats):
            for tool in tools:
                progress(f"  {tool:<8} {n} trials (repeat {rep + 1}/{args.repeats}) ...")
                r = run_tool(tool, binary, "sphere6", n, 0, progress=(tool == "optuna"))
                if tool == "slipway":
                    problems += check_slipway("sphere6", n, 0, r)
                per_trial[n][tool].append(r["seconds"] / n)
                progress(f"  {tool:<8} {n} trials: {r['seconds']:.2f} s, {ms(r['seconds'] / n)} ms/trial, "
                         f"best {fmt(r['best'])}")
    header = ["trials"] + [f"{t} ms/trial" for t in tools]
    peers = [t for t in tools if t != "slipway"]
    if "slipway" in tools:
        header += [f"{p}/slipway" for p in peers]
        if "optuna" in tools or "rustuna" in tools:
            header.append("acceptance")
    rows, accept = [], {}
    for n in args.sizes:
        med = {t: statistics.median(per_trial[n][t]) for t in tools}
        row = [str(n)]
        for t in tools:
            v = per_trial[n][t]
            row.append(ms(med[t]) + (f" ({ms(min(v))}-{ms(max(v))})" if len(v) > 1 else ""))
        if "slipway" in tools:
            ratios = {}
            for p in peers:
                ratios[p], text = ratio_text(med[p], med["slipway"], p, "slipway")
                row.append(text)
            checks = []
            if "rustuna" in ratios:
                checks.append(("below rustuna", ratios["rustuna"] > 1))
            if "optuna" in ratios:
                checks.append((f">= {OVERHEAD_TARGET:g}x below optuna", ratios["optuna"] >= OVERHEAD_TARGET))
            if checks:
                accept[n] = {name: ok for name, ok in checks}
                row.append(", ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in checks))
        rows.append(row)
    print(h.table(rows, header))
    print("(slipway: the run's own \"seconds\" from --json, process start excluded; optuna, rustuna: "
          "study.optimize timed in this process; median of the repeats, min-max in brackets)")
    if accept:
        met = all(all(v.values()) for v in accept.values())
        print(f"acceptance (slipway below rustuna and >= {OVERHEAD_TARGET:g}x below optuna per trial, "
              f"at every size): {'met' if met else 'NOT met'}")
    summary = {str(n): {"seconds_per_trial": per_trial[n],
                        "median_seconds_per_trial": {t: statistics.median(per_trial[n][t]) for t in tools},
                        **({"acceptance": accept[n]} if n in accept else {})}
               for n in args.sizes}
    return summary, problems


# --------------------------------------------------------------------------- main


def parse_args():
    ap = argparse.ArgumentParser(prog="bench/run tuning", description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="quality,overhead",
                    help="quality, overhead, parallel, multi, service (default quality,overhead)")
    ap.add_argument("--trials", type=int, help="quality: trials per run (default 200)")
    ap.add_argument("--seeds", type=int, help="quality, parallel: N seeds per function and tool (default 10)")
    ap.add_argument("--seed-start", type=int, default=0, help="quality, parallel: the first seed (default 0)")
    ap.add_argument("--workers", type=int, default=4, help="parallel: workers Slipway plays (default 4)")
    ap.add_argument("--multi", action="store_true",
                    help="parallel: also ZDT1 and DTLZ2 (several objectives), sequential against in flight")
    ap.add_argument("--service-trials", type=int, default=1000,
                    help="service: trials in the shared study (default 1000)")
    ap.add_argument("--aa", action="store_true",
                    help="quality: also run Optuna on other seeds (+1000) as an A/A control: how often "
                         "Optuna's median over these seeds beats its own over others")
    ap.add_argument("--functions", default=",".join(FUNCTIONS),
                    help=f"quality: functions to run (default {','.join(FUNCTIONS)})")
    ap.add_argument("--sizes", help="overhead: trial counts (default 1000,5000)")
    ap.add_argument("--repeats", type=int, default=1, help="overhead: runs per tool and size (default 1)")
    ap.add_argument("--tools", default=",".join(TOOLS),
                    help="tools to compare (default slipway,optuna,rustuna; rustuna is for information)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 3 seeds, 60 trials, overhead at 300 trials (explicit options win)")
    ap.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    args = ap.parse_args()
    args.trials = args.trials or (60 if args.quick else 200)
    args.seeds = args.seeds or (3 if args.quick else 10)
    args.sizes = [int(s) for s in (args.sizes or ("300" if args.quick else "1000,5000")).split(",")]
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    args.functions = [f.strip() for f in args.functions.split(",") if f.strip()]
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for p in args.parts:
        if p not in ("quality", "overhead", "parallel", "multi", "service"):
            ap.error(f"unknown part {p!r} (quality, overhead, parallel, multi, service)")
    for f in args.functions:
        if f not in FUNCTIONS:
            ap.error(f"unknown function {f!r} ({', '.join(FUNCTIONS)})")
    if not args.tools or any(t not in TOOLS for t in args.tools):
        ap.error(f"--tools: some of {', '.join(TOOLS)}")
    args.tools = [t for t in TOOLS if t in args.tools]
    if args.trials < 1 or args.seeds < 1 or args.repeats < 1 or min(args.sizes) < 1:
        ap.error("--trials, --seeds, --repeats and --sizes must be at least 1")
    return args


def write_json(doc: dict) -> Path:
    h.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = h.RESULTS_DIR / f"tuning-{stamp}.json"
    n = 1
    while path.exists():
        n += 1
        path = h.RESULTS_DIR / f"tuning-{stamp}-{n}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def main() -> int:
    args = parse_args()
    warnings.filterwarnings("ignore")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    check_functions()
    binary = None
    versions = {"optuna": optuna.__version__, "rustuna": pkg_version("rustuna")}
    if "slipway" in args.tools:
        binary = slipway_binary()
        try:
            h.command_output([binary, "tune", "try", "--help"])
        except h.BenchError:
            raise h.BenchError(f"{binary} has no `tune try` command: build a newer one "
                               "(cargo build --release -p slipway-cli) or point SLIPWAY_BIN at one") from None
        versions["slipway"] = h.command_output([binary, "version"])
    machine = h.machine_info()
    print("benchmark: tuning - Slipway's TPE vs Optuna's TPESampler and rustuna")
    if binary:
        print(f"  slipway: {versions['slipway']}  ({binary})"
              + ("  ** DEBUG BUILD: not representative **" if h.is_debug_build(binary) else ""))
    print(f"  optuna:  {versions['optuna']} (TPESampler(seed=S), 5.0 defaults: multivariate, constant liar)")
    print(f"  rustuna: {versions['rustuna']} (rustuna.samplers.TPESampler(seed=S))")
    print(f"  machine: {machine['logical_cores']} cores, {machine['cpu_model'] or 'unknown CPU'}, "
          f"{machine['memory_gib']} GiB, load avg {' '.join(map(str, machine['loadavg_at_start']))}")

    doc = {"benchmark": "tuning",
           "timestamp": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
           "versions": versions, "binary": str(binary) if binary else None,
           "options": {"parts": args.parts, "trials": args.trials, "seeds": args.seeds, "seed_start": args.seed_start,
                       "workers": args.workers, "aa": args.aa,
                       "functions": args.functions, "sizes": args.sizes, "repeats": args.repeats,
                       "tools": args.tools, "quick": args.quick},
           "minima": MINIMA}
    problems: list[str] = []
    if "quality" in args.parts:
        doc["quality"], p = quality_part(args, args.tools, binary)
        problems += p
    if "overhead" in args.parts:
        doc["overhead"], p = overhead_part(args, args.tools, binary)
        problems += p
    if "parallel" in args.parts and binary:
        doc["parallel"], p = parallel_part(args, binary, args.tools)
        problems += p
    if "multi" in args.parts:
        doc["multi"], p = multi_part(args, args.tools, binary)
        problems += p
    if "service" in args.parts and binary:
        doc["service"], p = service_part(args, binary)
        problems += p
    load_end = [round(x, 2) for x in os.getloadavg()]
    doc["machine"] = {**machine, "loadavg_at_end": load_end}
    doc["problems"] = problems
    print(f"(load avg at end {' '.join(f'{x:.2f}' for x in load_end)})")
    if problems:
        print("VERIFICATION FAILED:")
        for p in problems:
            print(f"  {p}")
    if not args.no_json:
        print(f"results: {write_json(doc).relative_to(h.REPO_ROOT)}")
    return 1 if problems else 0


if __name__ == "__main__":
    h.run_main(main)
