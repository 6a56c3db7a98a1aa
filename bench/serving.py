"""serving: tree compute vs onnxruntime; `slipway serve` vs `mlflow models serve` over HTTP

Part `compute` exports the fall-detection example's RandomForest (20 trees, depth 6) and GradientBoosting
(binary and 4-class) classifiers with skl2onnx (python/tests/serving/models.py), then, in one
run, times per-call compute on the same rows at each batch size: onnxruntime's
`InferenceSession.run` with one intra-op thread, and `slipway models time` (the same model
loaded and optimised once in Slipway's runtime, timed inside the process, no request handling).
Prints medians and the ratio onnxruntime / Slipway (> 1: Slipway is faster).

Part `http` serves the same scikit-learn LogisticRegression on 20 features twice: `mlflow models
serve --env-manager local` (its sklearn flavour) and `slipway serve` (its ONNX export, registered
and put behind an endpoint), and drives both with the same load generator (`slipway loadtest`,
1-row requests to `/invocations`), interleaved, in both of MLflow's common request formats:
`{"inputs": ...}` (against the model saved with a tensor signature) and `dataframe_split`
(against the same model saved with a column signature, as a model trained on a DataFrame is).
It reports throughput at concurrency 16, latency at concurrency 1, and Slipway's own overhead
(its p50 latency at concurrency 1 minus the model's compute at batch 1, `slipway models time`).
Then an overload: a compute-bound model (a 2 x 2048 MLP, one row per run) behind an endpoint whose queue holds 64
requests, driven open loop at 10x the rate it sustained, for 30 s: counts of 503s (with
Retry-After), of successes and of errors, the server's peak RSS, and latency right after.
Part `shadow` measures what a shadow costs the variant that answers: endpoints on the same
model in one `slipway serve`, one plain, one mirroring every request to a second version, one
mirroring 10%; p50/p99 at concurrency 8 (closed loop: the cores are saturated), interleaved.
Part `log` measures what the prediction log costs: three endpoints on the same model in one
`slipway serve`, one logging every request (the default), two with the log off; short runs
rotate among them, open loop at --log-rate requests/s (5,000 by default), then closed loop at
c=8; the answer is the median of paired ratios per round, beside an A/A control (off vs off)
that shows the method's noise; then the rows the log wrote, read back.

    bench/run serving [--parts compute,http,overload,shadow,log] [--iters N] [--batches 1,256] [--models ...]
                      [--duration S] [--reps N] [--overload-seconds S]
                      [--log-rate R] [--log-runs N] [--log-seconds S] [--pin]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
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


def loadtest(binary: Path, url: str | list[str], body: Path, concurrency: int, seconds: float,
             rate: float | None = None, warmup: float = 1.0, prefix: list[str] = ()) -> dict:
    urls = [url] if isinstance(url, str) else url
    argv = [*prefix, str(binary), "--json", "loadtest", *urls, "--body", str(body), "--concurrency",
            str(concurrency), "--duration", str(seconds), "--warmup", str(warmup)]
    if rate is not None:
        argv += ["--rate", str(rate)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=seconds + 120)
    return json.loads(out.stdout)


def start_mlflow(model_dir: Path, logs: Path) -> str:
    port = h.free_port()
    mlflow_bin = h.venv_tool("mlflow")
    # `mlflow models serve` starts uvicorn from PATH: the venv's.
    env = dict(os.environ, PATH=f"{mlflow_bin.parent}:{os.environ.get('PATH', '')}")
    proc = h.spawn(f"mlflow-serve-{model_dir.name}", [mlflow_bin, "models", "serve", "-m", model_dir,
                                                      "--env-manager", "local", "--host", "127.0.0.1",
                                                      "--port", str(port)], logs, env=env)
    url = f"http://127.0.0.1:{port}"
    h.wait_for(proc, lambda: h.http_status(url + "/ping") == 200, timeout=120, what="answering /ping")
    return url


def start_slipway(binary: Path, work: Path, logs: Path, model: Path, tag: str,
                  extra: list[str]) -> tuple[str, h.Proc]:
    """Registers `model`, puts it behind endpoint `lr` (with `extra` batching flags), and starts
    `slipway serve` on the same stores (the server that registered it is stopped first)."""
    data = work / f"slipway-{tag}"
    h.slipway_registered(binary, data, model, logs, tag,
                         [["endpoints", "create", "lr", "lr@prod", *extra]])
    serve = h.spawn(f"slipway-serve-{tag}", [binary, "serve", "--port", "0", "--endpoint", "lr",
                                             "--data-dir", data], logs, cwd=data)
    m, _ = h.wait_for(serve, lambda: h.first_line_match(serve.stdout_path, r"listening on (\S+)"),
                      timeout=60, what="listening")
    return m.group(1), serve


def column_signature_model(work: Path) -> Path:
    """logreg20 saved again with a column-based signature (f0..f19 as doubles), the way MLflow
    users log a model trained on a DataFrame: its server then reads `dataframe_split`."""
    import pickle

    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    with open(work / "logreg20.pkl", "rb") as f:  # written by this run's exporter
        model = pickle.load(f)
    example = pd.DataFrame(np.zeros((2, 20)), columns=[f"f{i}" for i in range(20)])
    path = work / "logreg20_mlflow_columns"
    mlflow.sklearn.save_model(model, str(path), signature=infer_signature(example, model.predict(example)))
    return path


def heavy_mlp(work: Path) -> Path:
    """An MLP (2 x 2048 hidden units) on 20 features, exported with skl2onnx: a model whose
    compute, not HTTP, bounds what a server sustains — what an overload test needs."""
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 20)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    mlp = MLPClassifier(hidden_layer_sizes=(2048, 2048), max_iter=2, random_state=0).fit(X, y)
    path = work / "mlp_heavy.onnx"
    path.write_bytes(to_onnx(mlp, X[:1], options={id(mlp): {"zipmap": False}}).SerializeToString())
    return path


def http_part(binary: Path, work: Path, args) -> None:
    import warnings

    import numpy as np

    warnings.filterwarnings("ignore")
    logs = work / "logs"
    ref = json.loads((work / "logreg20.ref.json").read_text())
    row = [float(x) for x in np.asarray(ref["batch"][0], dtype=np.float32)]
    bodies = {
        "tensor": {"inputs": [row]},
        "dataframe": {"dataframe_split": {"columns": [f"f{i}" for i in range(20)], "data": [row]}},
    }
    body_files = {}
    for fmt, body in bodies.items():
        body_files[fmt] = work / f"row20-{fmt}.json"
        body_files[fmt].write_text(json.dumps(body))
    mlflow_urls = {"tensor": start_mlflow(work / "logreg20_mlflow", logs),
                   "dataframe": start_mlflow(column_signature_model(work), logs)}
    slip_url, serve = start_slipway(binary, work, logs, work / "logreg20_nozipmap.onnx", "lr", [])
    rows_file = work / "logreg20.rows.json"
    rows_file.write_text(json.dumps([row]))
    compute_us = statistics.median(
        slipway_median_us(binary, work / "logreg20_nozipmap.onnx", rows_file, 1, 5000) for _ in range(3))
    for fmt in bodies:
        body = body_files[fmt]
        targets = {"mlflow": mlflow_urls[fmt] + "/invocations", "slipway": slip_url + "/invocations"}
        for name, url in targets.items():  # both answer the same row before anything is timed
            loadtest(binary, url, body, 1, 0.5, warmup=0.2)
        results = {n: {"c16": [], "c1_p50": [], "c1_p99": []} for n in targets}
        for name, _ in h.interleave({n: args.reps for n in targets}):
            r16 = loadtest(binary, targets[name], body, 16, args.duration)
            r1 = loadtest(binary, targets[name], body, 1, args.duration)
            for r in (r16, r1):
                if r["errors"] or r["other_status"] or r["overloaded"]:
                    raise h.BenchError(f"{name}: failed requests under load: {r}")
            results[name]["c16"].append(r16["ok_per_s"])
            results[name]["c1_p50"].append(r1["latency_us"]["p50"])
            results[name]["c1_p99"].append(r1["latency_us"]["p99"])
        med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
        m, s = med["mlflow"], med["slipway"]
        print()
        print(f"HTTP, 1-row {fmt} requests ({json.dumps(bodies[fmt])[:40]}...) to /invocations, "
              f"{args.duration:.0f} s per run, medians of {args.reps} interleaved runs")
        print(f"{'':<28} {'mlflow serve':>14} {'slipway serve':>14} {'ratio':>9}")
        print(f"{'throughput c=16, req/s':<28} {m['c16']:>14.0f} {s['c16']:>14.0f} {s['c16'] / m['c16']:>8.1f}x")
        print(f"{'p50 latency c=1, µs':<28} {m['c1_p50']:>14.0f} {s['c1_p50']:>14.0f} {m['c1_p50'] / s['c1_p50']:>8.1f}x")
        print(f"{'p99 latency c=1, µs':<28} {m['c1_p99']:>14.0f} {s['c1_p99']:>14.0f} {m['c1_p99'] / s['c1_p99']:>8.1f}x")
        print(f"slipway overhead at p50: {s['c1_p50']:.0f} µs request - {compute_us:.1f} µs compute = "
              f"{s['c1_p50'] - compute_us:.0f} µs (the load generator's client and loopback included)")
    serve.stop()


def overload_part(binary: Path, work: Path, args) -> None:
    """10x what Slipway sustains with a compute-bound model, open loop, 64-request queue.

    The endpoint runs one row at a time (max batch 1), so what it sustains is set by the model's
    compute (a 16 MiB weight matrix read per request) and is low enough that the load generator,
    on the same two cores, can really offer ten times as much."""
    logs = work / "logs"
    ref = json.loads((work / "logreg20.ref.json").read_text())
    body = work / "row20-tensor.json"
    body.write_text(json.dumps({"inputs": [[float(x) for x in ref["batch"][0]]]}))
    mlp = heavy_mlp(work)
    over_url, over = start_slipway(binary, work, logs, mlp, "overload",
                                   ["--max-queue-len", "64", "--max-batch-size", "1"])
    target = over_url + "/invocations"
    base = loadtest(binary, target, body, 16, 5)
    rate = 10 * base["ok_per_s"]
    peak = {"rss": h.tree_memory(over.pid).rss}
    import threading

    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], h.tree_memory(over.pid).rss)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    rss_before = peak["rss"]
    sampler.start()
    o = loadtest(binary, target, body, 512, args.overload_seconds, rate=rate, warmup=0.5)
    stop.set()
    sampler.join()
    after = loadtest(binary, target, body, 1, 3, warmup=0)
    calm = loadtest(binary, target, body, 1, 3, warmup=0)
    offered = (o["sent"] + o["skipped"]) / o["seconds"]
    print()
    print(f"overload: a 2x2048 MLP endpoint (max batch 1, queue 64) sustains {base['ok_per_s']:.0f} req/s "
          f"at c=16 (p50 {base['latency_us']['p50']:.0f} µs); open loop at {rate:.0f} req/s (10x) for "
          f"{o['seconds']:.0f} s, up to 512 in flight")
    print(f"  offered {offered:.0f}/s, sent {o['sent'] / o['seconds']:.0f}/s: ok {o['ok']} ({o['ok_per_s']:.0f}/s, "
          f"p50 {o['latency_us']['p50']:.0f} µs, p99 {o['latency_us']['p99']:.0f} µs), "
          f"503 {o['overloaded']} ({o['overloaded_with_retry_after']} with Retry-After), "
          f"other {o['other_status']}, errors {o['errors']}, not sent (512 in flight) {o['skipped']}")
    print(f"  slipway serve RSS: {rss_before / 2**20:.0f} MiB before, peak {peak['rss'] / 2**20:.0f} MiB during")
    print(f"  right after, c=1: p50 {after['latency_us']['p50']:.0f} µs, p99 {after['latency_us']['p99']:.0f} µs, "
          f"{after['ok']} ok, {after['overloaded']} 503; 3 s later p50 {calm['latency_us']['p50']:.0f} µs")
    over.stop()


def shadow_part(binary: Path, work: Path, args) -> None:
    """The shadow's cost to the primary: one `slipway serve` with three endpoints on the same
    LogisticRegression, one mirroring every request to a second version and one mirroring 10%
    of them; p50 and p99 at concurrency 8, closed loop (each connection sends its next request
    when answered: the cores are saturated, so the shadow's own compute shows up as latency),
    interleaved runs."""
    logs = work / "logs"
    ref = json.loads((work / "logreg20.ref.json").read_text())
    body = work / "row20-tensor.json"
    body.write_text(json.dumps({"inputs": [[float(x) for x in ref["batch"][0]]]}))
    model = work / "logreg20_nozipmap.onnx"
    data = work / "slipway-shadow"
    h.slipway_registered(binary, data, model, logs, "shadow", [
        ["models", "register", "lr", model],
        ["endpoints", "create", "plain", "lr@prod"],
        ["endpoints", "create", "mirrored", "lr@prod"],
        ["endpoints", "shadow", "mirrored", "v2"],
        ["endpoints", "create", "sampled", "lr@prod"],
        ["endpoints", "shadow", "sampled", "v2", "--percent", "10"],
    ])
    serve = h.spawn("slipway-serve-shadow", [binary, "serve", "--port", "0", "--data-dir", data], logs, cwd=data)
    m, _ = h.wait_for(serve, lambda: h.first_line_match(serve.stdout_path, r"listening on (\S+)"),
                      timeout=60, what="listening")
    url = m.group(1)
    targets = {"no shadow": f"{url}/endpoints/plain/invocations",
               "shadow": f"{url}/endpoints/mirrored/invocations",
               "shadow 10%": f"{url}/endpoints/sampled/invocations"}
    for t in targets.values():
        loadtest(binary, t, body, 1, 0.5, warmup=0.2)

    def measure(names):
        results = {n: {"p50": [], "p99": [], "rps": []} for n in names}
        for name, _ in h.interleave({n: args.reps * 2 for n in names}):
            r = loadtest(binary, targets[name], body, 8, args.duration / 2)
            if r["errors"] or r["other_status"] or r["overloaded"]:
                raise h.BenchError(f"{name}: failed requests under load: {r}")
            results[name]["p50"].append(r["latency_us"]["p50"])
            results[name]["p99"].append(r["latency_us"]["p99"])
            results[name]["rps"].append(r["ok_per_s"])
        return {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}

    def table(title, med):
        base = med["no shadow"]
        others = [n for n in med if n != "no shadow"]
        print()
        print(title)
        print(f"{'':<24} {'no shadow':>12}" + "".join(f" {n:>12} {'added':>8}" for n in others))
        for key, label in [("p50", "p50 latency, µs"), ("p99", "p99 latency, µs"), ("rps", "throughput, req/s")]:
            row = f"{label:<24} {base[key]:>12.0f}"
            for n in others:
                row += f" {med[n][key]:>12.0f} {100 * (med[n][key] / base[key] - 1):>7.1f}%"
            print(row)

    saturated = measure(list(targets))
    with urllib.request.urlopen(f"{url}/api/v1/endpoints/mirrored", timeout=10) as resp:
        shadow = json.loads(resp.read())["shadow"]
    runs = f"{args.duration / 2:.0f} s per run, medians of {args.reps * 2} interleaved runs"
    table(f"shadow: 1-row requests, closed loop at c=8, {runs}", saturated)
    print(f"the full shadow compared {shadow.get('compared_rows')} rows, agreed on {shadow.get('agreed_rows')}, "
          f"dropped {shadow.get('dropped')}")
    serve.stop()


def log_part(binary: Path, work: Path, args) -> None:
    """The prediction log's cost: one `slipway serve` with three endpoints on the same
    LogisticRegression: `logged` (every request logged: inputs, outputs, scores, latency, id,
    time, written as Parquet every 5 s with per-window profiles), and `off-a`, `off-b` with the
    log off. Short runs rotate among the three (open loop at --log-rate, then closed loop at
    c=8); each round gives the ratios logged/off-a and off-b/off-a, and the medians of those
    paired ratios are the answer. off-b/off-a is an A/A control: the noise floor of the method.
    With --pin the server runs on core 1 and the load generator on core 0."""
    logs = work / "logs"
    ref = json.loads((work / "logreg20.ref.json").read_text())
    body = work / "row20-tensor.json"
    body.write_text(json.dumps({"inputs": [[float(x) for x in ref["batch"][0]]]}))
    model = work / "logreg20_nozipmap.onnx"
    data = work / "slipway-log"
    h.slipway_registered(binary, data, model, logs, "log", [
        ["endpoints", "create", "logged", "lr@prod"],
        ["endpoints", "create", "off-a", "lr@prod"],
        ["endpoints", "create", "off-b", "lr@prod"],
        ["endpoints", "log", "off-a", "--off"],
        ["endpoints", "log", "off-b", "--off"],
    ])
    pin_server = ["taskset", "-c", "1"] if args.pin else []
    serve = h.spawn("slipway-serve-log", [*pin_server, binary, "serve", "--port", "0", "--data-dir", data],
                    logs, cwd=data)
    m, _ = h.wait_for(serve, lambda: h.first_line_match(serve.stdout_path, r"listening on (\S+)"),
                      timeout=60, what="listening")
    url = m.group(1)
    names = ["off-a", "logged", "off-b"]
    targets = {n: f"{url}/endpoints/{n}/invocations" for n in names}
    prefix = ["taskset", "-c", "0"] if args.pin else []
    for t in targets.values():
        loadtest(binary, t, body, 1, 0.5, warmup=0.2, prefix=prefix)

    def measure(concurrency, rate):
        per = {n: {"p50": [], "p99": [], "rps": []} for n in names}
        for i in range(args.log_runs):
            # Rotate the order each round, so no endpoint always follows the same one.
            for name in names[i % 3:] + names[:i % 3]:
                r = loadtest(binary, targets[name], body, concurrency, args.log_seconds, rate=rate,
                             warmup=0.3, prefix=prefix)
                if r["errors"] or r["other_status"] or r["overloaded"]:
                    raise h.BenchError(f"{name}: failed requests under load: {r}")
                per[name]["p50"].append(r["latency_us"]["p50"])
                per[name]["p99"].append(r["latency_us"]["p99"])
                per[name]["rps"].append(r["ok_per_s"])
        return per

    def quartiles(v):
        q = statistics.quantiles(v, n=4)
        return q[0], statistics.median(v), q[2]

    def table(title, per):
        print()
        print(title)
        print(f"{'':<20} {'off-a':>8} {'off-b':>8} {'logged':>8}   "
              f"{'A/A: off-b vs off-a':>26}   {'logged vs off-a':>26}")
        for key, label in [("p50", "p50 latency, µs"), ("p99", "p99 latency, µs"), ("rps", "throughput, req/s")]:
            med = {n: statistics.median(per[n][key]) for n in names}
            cells = []
            for other in ["off-b", "logged"]:
                ratios = [100 * (o / a - 1) for o, a in zip(per[other][key], per["off-a"][key])]
                lo, mid, hi = quartiles(ratios)
                cells.append(f"{mid:+6.1f}% (IQR {lo:+5.1f}…{hi:+5.1f})")
            print(f"{label:<20} {med['off-a']:>8.0f} {med['off-b']:>8.0f} {med['logged']:>8.0f}   "
                  f"{cells[0]:>26}   {cells[1]:>26}")

    def measure_paired(rate):
        """One run sends to all three endpoints in turn, each at `rate`: the same moments, the
        same background work; per run, the ratios of the endpoints' own p50s."""
        per = {n: {"p50": [], "p99": [], "rps": []} for n in names}
        for _ in range(args.log_runs):
            r = loadtest(binary, [targets[n] for n in names], body, 48, args.log_seconds * 3,
                         rate=rate * len(names), warmup=0.3, prefix=prefix)
            if r["errors"] or r["other_status"] or r["overloaded"]:
                raise h.BenchError(f"failed requests under load: {r}")
            for n, u in zip(names, r["per_url"]):
                per[n]["p50"].append(u["latency_us"]["p50"])
                per[n]["p99"].append(u["latency_us"]["p99"])
                per[n]["rps"].append(u["ok"] / r["seconds"])
        return per

    runs = f"{args.log_runs} rounds of {args.log_seconds:g} s runs" + (", pinned" if args.pin else "")
    table(f"prediction log: 1-row requests, the three endpoints in turn within each run, each open loop "
          f"at {args.log_rate:.0f}/s (c=48), {args.log_runs} runs of {args.log_seconds * 3:g} s",
          measure_paired(args.log_rate))
    table(f"prediction log: 1-row requests, open loop at {args.log_rate:.0f}/s (c=32), {runs}",
          measure(32, args.log_rate))
    table(f"prediction log: 1-row requests, closed loop at c=8, {runs}", measure(8, None))
    time.sleep(6.5)  # the last segment
    with urllib.request.urlopen(f"{url}/api/v1/endpoints/logged/log", timeout=10) as resp:
        log = json.loads(resp.read())
    p = log["process"]
    print(f"the log wrote {log['rows']} rows in {log['segments']} segments ({log['bytes'] / 1e6:.1f} MB); "
          f"logged {p['logged']}, dropped {p['dropped']}, over the cap {p['capped']}")
    serve.stop()


def main() -> int:
    ap = argparse.ArgumentParser(prog="bench/run serving", description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="compute,http,overload,shadow")
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--models", default="rf_fall,rf_activity,gbc_fall,gbc_activity")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per HTTP run")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--overload-seconds", type=float, default=30.0)
    ap.add_argument("--log-rate", type=float, default=5000.0, help="requests/s of part log's open loop")
    ap.add_argument("--log-runs", type=int, default=15, help="rounds of part log (one run per endpoint)")
    ap.add_argument("--log-seconds", type=float, default=2.0, help="seconds per run of part log")
    ap.add_argument("--pin", action="store_true", help="part log: server on core 1, load generator on core 0")
    args = ap.parse_args()
    h.install_cleanup()
    binary = h.slipway_bin()
    if h.is_debug_build(binary):
        print("warning: SLIPWAY_BIN is a debug build; figures are not representative", file=sys.stderr)
    import models as exporter

    work = Path(tempfile.mkdtemp(prefix="slipway-bench-serving-"))
    exporter.main([str(work), "--slipway", str(binary)])
    print(f"machine: {h.machine_info()}")
    parts = args.parts.split(",")
    if "http" in parts:
        http_part(binary, work, args)
    if "overload" in parts:
        overload_part(binary, work, args)
    if "shadow" in parts:
        shadow_part(binary, work, args)
    if "log" in parts:
        log_part(binary, work, args)
    if "compute" not in parts:
        return 0
    print()
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
