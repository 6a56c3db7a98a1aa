"""MLflow tracking API through the real mlflow client: ingest, runs, search_runs, metric history

The same Python workload, driven through `mlflow.MlflowClient` (mlflow 3.17.2, in this process,
the same code for both servers), against `slipway server` and `mlflow server`, both on SQLite in
a fresh temp folder:

  1. metric ingest: one run, --batches calls of `log_batch` with 1000 metrics each (one key,
     distinct steps and timestamps) -> metrics/s;
  2. runs: --runs runs, each `create_run` + one `log_batch` with 10 params and 10 metrics +
     `set_terminated` -> runs/s;
  3. `search_runs` over those runs with a param filter and a metric filter, ordered by a metric,
     max_results=1000 -> latency of the client call, and of the same raw HTTP POST;
  4. `get_metric_history` of --history-points points (the ingest of 1 is their first part)
     -> latency of the client call, and of the raw HTTP GETs of all its pages.

Servers: 1+4 share one fresh server per tool, 2+3 another. The latency measurements (3, 4) are
repeated --reps times after one warm-up, interleaved slipway/mlflow with both servers up.

    bench/run tracking [--quick] [--runs N] [--mlflow-runs N] [--batches N] [--reps N] ...
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import harness as h
import startup  # mlflow_argv: the exact mlflow server flags of the startup benchmark

# Set for the servers and for this process (the client). MLFLOW_* variables of the caller are
# dropped first so they cannot change what is measured.
TELEMETRY_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
# The client only: a failed request fails at once instead of being retried with backoff (a retry
# would hide the failure and pollute the timing).
CLIENT_ENV = {**TELEMETRY_ENV, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}

METRICS_PER_CALL = 1000  # log_batch's maximum, and the batch size
HISTORY_PAGE = 25000  # what MlflowClient.get_metric_history asks per page (mlflow's default)
SEARCH_MAX_RESULTS = 1000
HISTORY_KEY = "loss"

PARAM_KEYS = ["optimizer", "learning_rate", "batch_size", "epochs", "layers", "dropout", "seed",
              "model", "dataset", "weight_decay"]
METRIC_KEYS = ["loss", "accuracy", "f1", "precision", "recall", "auc", "val_loss",
               "val_accuracy", "train_seconds", "epoch_seconds"]
# Half the runs use adam; accuracy is spread uniformly over [0, 1), so about 40% of the runs
# match (2000 of 5000); loss is distinct for every run, so the order is unique and the expected
# answer can be computed here and compared with each server's.
SEARCH_FILTER = "params.optimizer = 'adam' and metrics.accuracy > 0.2"
SEARCH_ORDER = ["metrics.loss ASC"]

FULL = {"batches": 100, "history_points": 100_000, "runs": 5000, "mlflow_runs": 500, "reps": 10}
QUICK = {"batches": 5, "history_points": 5000, "runs": 200, "mlflow_runs": 40, "reps": 3}
CHUNKS = 10  # throughput workloads are timed in this many chunks; each chunk's rate is a sample
MLFLOW_DEFAULT_WORKERS = 4  # mlflow server's default --workers (uvicorn)
# Before a server is used it must be settled: for mlflow, every uvicorn worker has logged
# "Application startup complete."; then, for both, the process tree uses < IDLE_CORES CPUs over
# a second (mlflow's workers and job runner take seconds of CPU to start, which would otherwise
# compete with the first timed requests).
IDLE_CORES = 0.15
IDLE_TIMEOUT = 60.0


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="bench/run tracking",
        description="MLflow tracking workloads through the real mlflow client (MlflowClient): "
                    "metric ingest, run logging, search_runs and get_metric_history, slipway "
                    "server vs mlflow server, both on SQLite, on this machine, in one run.")
    ap.add_argument("--batches", type=int,
                    help=f"log_batch calls of {METRICS_PER_CALL} metrics for the ingest rate "
                         f"(default {FULL['batches']}, quick {QUICK['batches']})")
    ap.add_argument("--mlflow-batches", type=int,
                    help="the same for mlflow (default: --batches; mlflow needs history-points/1000 "
                         "calls for the history anyway, so timing them costs nothing extra)")
    ap.add_argument("--history-points", type=int,
                    help=f"points in the metric whose history is read, a multiple of "
                         f"{METRICS_PER_CALL} (default {FULL['history_points']}, quick "
                         f"{QUICK['history_points']})")
    ap.add_argument("--runs", type=int,
                    help=f"runs slipway logs (timed), and the size of the search corpus for both "
                         f"(default {FULL['runs']}, quick {QUICK['runs']})")
    ap.add_argument("--mlflow-runs", type=int,
                    help=f"runs mlflow logs through its server (timed); the rest of the search "
                         f"corpus is written untimed through mlflow's own SQLAlchemy store "
                         f"(default {FULL['mlflow_runs']}, quick {QUICK['mlflow_runs']})")
    ap.add_argument("--reps", type=int,
                    help=f"timed repetitions of search_runs and get_metric_history, after one "
                         f"warm-up (default {FULL['reps']}, quick {QUICK['reps']})")
    ap.add_argument("--quick", action="store_true",
                    help="small sizes for a smoke test: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    ap.add_argument("--only", choices=["slipway", "mlflow"], help="run one server only")
    ap.add_argument("--mlflow-workers", type=int,
                    help=f"pass --workers N to mlflow server (default: mlflow's own default, "
                         f"{MLFLOW_DEFAULT_WORKERS})")
    ap.add_argument("--timeout", type=float, default=300,
                    help="seconds a server may take to become ready (default 300)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (data and logs)")
    ap.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    args = ap.parse_args()
    defaults = QUICK if args.quick else FULL
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.mlflow_batches is None:
        args.mlflow_batches = args.batches
    for name in ("batches", "mlflow_batches", "history_points", "runs", "mlflow_runs", "reps"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.history_points % METRICS_PER_CALL:
        ap.error(f"--history-points must be a multiple of {METRICS_PER_CALL}")
    args.mlflow_runs = min(args.mlflow_runs, args.runs)
    args.systems = [s for s in ("slipway", "mlflow") if args.only in (None, s)]
    return args


def client_environment() -> None:
    """This process is the client: no MLFLOW_* settings of the caller, telemetry off."""
    for k in [k for k in os.environ if k.startswith("MLFLOW_")]:
        del os.environ[k]
    os.environ.update(CLIENT_ENV)


def server_env() -> dict:
    env = h.clean_env(["SLIPWAY_", "MLFLOW_"])
    env.update(TELEMETRY_ENV)
    return env


# ------------------------------------------------------------------------ HTTP traffic log


@dataclass
class HttpLog:
    """Counts every HTTP request the client sends (per label) and keeps every 4xx/5xx or failed
    request with its body and the response, so that a failure can be reported exactly."""

    label: tuple = ("-", "-")
    counts: collections.Counter = field(default_factory=collections.Counter)
    errors: list = field(default_factory=list)
    # Seconds spent inside the transport (request sent, server at work, response read) of all
    # requests so far: the server's share of a client call, measured on the client's own calls.
    in_http: float = 0.0

    def install(self) -> None:
        import requests.adapters

        original = requests.adapters.HTTPAdapter.send
        log = self

        def send(adapter, request, *a, **kw):
            t0 = time.perf_counter()
            try:
                resp = original(adapter, request, *a, **kw)
                if not kw.get("stream"):
                    resp.content  # read the body inside the timing (requests caches it)
                log.in_http += time.perf_counter() - t0
            except Exception as e:
                log.errors.append({"label": list(log.label), "method": request.method,
                                   "url": request.url, "body": _text(request.body),
                                   "status": None, "response": repr(e)})
                raise
            log.counts[log.label] += 1
            if resp.status_code >= 400:
                text = "(streamed response)" if kw.get("stream") else resp.text
                log.errors.append({"label": list(log.label), "method": request.method,
                                   "url": request.url, "body": _text(request.body),
                                   "status": resp.status_code, "response": text[:4000]})
            return resp

        requests.adapters.HTTPAdapter.send = send

    @contextlib.contextmanager
    def as_(self, system: str, workload: str):
        before = self.label
        self.label = (system, workload)
        try:
            yield
        finally:
            self.label = before

    def render_errors(self, errors: list | None = None) -> str:
        out = []
        for e in errors if errors is not None else self.errors:
            out.append(f"  [{e['label'][0]} / {e['label'][1]}] {e['method']} {e['url']}")
            if e["body"]:
                out.append(f"    request body: {e['body'][:2000]}")
            out.append(f"    -> {e['status'] if e['status'] is not None else 'no response'}: "
                       f"{e['response'][:2000]}")
        return "\n".join(out)


def _text(body) -> str:
    if body is None:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    return str(body)[:4000]


HTTP = HttpLog()


# ------------------------------------------------------------------------ servers


@dataclass
class Server:
    system: str
    proc: h.Proc
    url: str
    dir: Path
    started_s: float
    client: object = None  # MlflowClient
    session: object = None  # requests.Session for the raw HTTP measurements
    settled_s: float = 0.0  # from spawn until settled (workers up, tree idle)
    idle: bool = True  # the tree went idle within IDLE_TIMEOUT
    idle_cores: float = 0.0  # CPUs the tree used in the last second before measuring

    def stop(self) -> None:
        self.proc.stop()


def start_server(system: str, args, binary: Path | None, mlflow: Path | None, d: Path) -> Server:
    import requests
    from mlflow import MlflowClient

    d.mkdir(parents=True)
    if system == "slipway":
        proc = h.spawn("slipway", [binary, "server", "--port", "0", "--data-dir", d / "data"], d,
                       env=server_env(), cwd=d)
        match, _ = h.wait_for(proc, lambda: h.first_line_match(
            proc.stdout_path, r"^slipway listening on (http://\S+)"), args.timeout, what="listening")
        url = match.group(1).rstrip("/")
    else:
        port = h.free_port()
        url = f"http://{h.LOOPBACK}:{port}"
        proc = h.spawn("mlflow", startup.mlflow_argv(mlflow, d, port, args.mlflow_workers), d,
                       env=server_env(), cwd=d)
    _, ready = h.wait_for(proc, lambda: h.http_status(url + "/health") == 200, args.timeout,
                          what="answering GET /health with 200")
    if system == "mlflow":
        workers = args.mlflow_workers or MLFLOW_DEFAULT_WORKERS
        h.wait_for(proc, lambda: _log_text(proc.stderr_path).count("Application startup complete.")
                   >= workers, args.timeout, interval=0.2,
                   what=f"up with all {workers} uvicorn workers started")
    idle, cores = h.wait_idle(proc.pid, IDLE_CORES, timeout=IDLE_TIMEOUT)
    session = requests.Session()
    session.trust_env = False  # never a proxy: loopback only
    return Server(system, proc, url, d, ready, MlflowClient(tracking_uri=url), session,
                  time.perf_counter() - proc.started, idle, cores)


def _log_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def start_record(srv: Server, phase: str) -> dict:
    return {"system": srv.system, "phase": phase, "ready_s": srv.started_s,
            "settled_s": srv.settled_s, "idle": srv.idle, "idle_cores": srv.idle_cores}


def settled_text(srv: Server) -> str:
    text = f"ready in {srv.started_s:.1f} s, settled at {srv.settled_s:.1f} s"
    if not srv.idle:
        text += (f" (** still using {srv.idle_cores:.2f} CPUs after {IDLE_TIMEOUT:.0f} s; "
                 f"machine busy? **)")
    return text


@contextlib.contextmanager
def guarded(srv: Server, workload: str):
    """Label the client's requests; turn any failure into a BenchError that shows the failed
    HTTP requests (request and response) and the server's log tail."""
    seen = len(HTTP.errors)
    try:
        with HTTP.as_(srv.system, workload):
            yield
    except h.BenchError:
        raise
    except Exception as e:
        failed = HTTP.errors[seen:]
        detail = ("\nfailed HTTP requests:\n" + HTTP.render_errors(failed)) if failed else ""
        alive = "" if srv.proc.alive() else f" ({srv.system} exited with code {srv.proc.popen.returncode})"
        hint = ""
        if srv.system == "mlflow" and re.search(r"Child process \[\d+\] died",
                                                _log_text(srv.proc.stderr_path)):
            hint = ("\nhint: uvicorn killed an mlflow worker (its supervisor kills a worker that "
                    "does not answer a health ping within 5 s, e.g. on an overloaded machine); "
                    "run on an idle machine")
        raise h.BenchError(f"{srv.system}: {workload} failed{alive}: {type(e).__name__}: {e}"
                           f"{detail}\n{srv.proc.log_tail()}{hint}") from e
    if len(HTTP.errors) > seen:
        raise h.BenchError(f"{srv.system}: {workload}: the server answered with errors:\n"
                           + HTTP.render_errors(HTTP.errors[seen:]))


# ------------------------------------------------------------------------ the data


def frac(k: int, a: int, m: int) -> float:
    """A deterministic value in [0, 1), distinct for k < m (m prime, a not a multiple of m)."""
    return ((k * a + 7) % m) / m


def run_name(k: int) -> str:
    return f"run-{k:05d}"


def run_params(k: int) -> dict[str, str]:
    return {
        "optimizer": "adam" if k % 2 == 0 else "sgd",
        "learning_rate": ["0.1", "0.03", "0.01", "0.003", "0.001"][k % 5],
        "batch_size": str(2 ** (4 + k % 5)),
        "epochs": str(10 + k % 20),
        "layers": str(1 + k % 8),
        "dropout": f"{(k % 6) / 10:g}",
        "seed": str(k),
        "model": ["mlp", "cnn", "rnn", "transformer"][k % 4],
        "dataset": f"ds-{k % 10}",
        "weight_decay": ["0", "1e-5", "1e-4"][k % 3],
    }


def run_metrics(k: int) -> dict[str, float]:
    values = {"loss": frac(k, 7919, 100003), "accuracy": frac(k, 104729, 99991)}
    for i, key in enumerate(METRIC_KEYS[2:]):
        values[key] = frac(k, 31 + 17 * i, 10007)
    return values


def expected_search(n_runs: int) -> tuple[int, list[str]]:
    """How many runs match SEARCH_FILTER, and the names of the first page, in order."""
    matching = [k for k in range(n_runs)
                if run_params(k)["optimizer"] == "adam" and run_metrics(k)["accuracy"] > 0.2]
    matching.sort(key=lambda k: run_metrics(k)["loss"])
    return len(matching), [run_name(k) for k in matching[:SEARCH_MAX_RESULTS]]


def run_payloads(n: int, base_ms: int) -> list:
    """(params, metrics) entity lists for runs 0..n-1, built before any clock starts."""
    from mlflow.entities import Metric, Param

    out = []
    for k in range(n):
        params = [Param(key, value) for key, value in run_params(k).items()]
        metrics = [Metric(key, value, base_ms + k, 0) for key, value in run_metrics(k).items()]
        out.append((params, metrics))
    return out


def ingest_payloads(n_calls: int, history_calls: int, base_ms: int) -> list:
    """log_batch metric lists: call i has 1000 points with steps/timestamps i*1000 .. i*1000+999.
    The first `history_calls` calls are the HISTORY_KEY metric; later ones (when more calls
    than the history needs are timed) go to further keys of the same shape."""
    from mlflow.entities import Metric

    out = []
    for i in range(n_calls):
        key = HISTORY_KEY if i < history_calls else f"{HISTORY_KEY}_{i // history_calls}"
        out.append([Metric(key, 1.0 / (1.0 + 0.001 * s), base_ms + s, s)
                    for s in range(i * METRICS_PER_CALL, (i + 1) * METRICS_PER_CALL)])
    return out


def log_run(client, experiment_id: str, k: int, payload) -> None:
    """One run as a typical script logs it (the workload of measurement 2)."""
    params, metrics = payload
    run_id = client.create_run(experiment_id, run_name=run_name(k)).info.run_id
    client.log_batch(run_id, metrics=metrics, params=params)
    client.set_terminated(run_id)


# ------------------------------------------------------------------------ measuring


def timed_chunks(items: Sequence, fn: Callable,
                 chunks: int = CHUNKS) -> list[tuple[int, float, float]]:
    """Calls fn(index, item) for each item; times them in `chunks` consecutive chunks.
    Returns [(items in chunk, seconds, of which seconds inside HTTP requests)]. The client's own
    stdout (MlflowClient.set_terminated prints a "View run ... at: URL" line) is discarded; a
    dot per chunk shows progress."""
    size = max(1, math.ceil(len(items) / chunks))
    out = []
    with open(os.devnull, "w") as devnull:
        for start in range(0, len(items), size):
            part = range(start, min(start + size, len(items)))
            with contextlib.redirect_stdout(devnull):
                t0, h0 = time.perf_counter(), HTTP.in_http
                for i in part:
                    fn(i, items[i])
                out.append((len(part), time.perf_counter() - t0, HTTP.in_http - h0))
            print(".", end="", flush=True)
    return out


def raw_history(srv: Server, run_id: str) -> tuple[float, int, int]:
    """The client's page requests, sent with plain requests: (seconds spent in the requests,
    including reading each body but not parsing it, points, pages)."""
    spent, points, pages, token = 0.0, 0, 0, None
    while True:
        params = {"run_uuid": run_id, "run_id": run_id, "metric_key": HISTORY_KEY,
                  "max_results": HISTORY_PAGE}
        if token:
            params["page_token"] = token
        t0 = time.perf_counter()
        resp = srv.session.get(srv.url + "/api/2.0/mlflow/metrics/get-history", params=params,
                               timeout=600)
        body = resp.content
        spent += time.perf_counter() - t0
        if resp.status_code != 200:
            raise h.BenchError(f"{srv.system}: GET {resp.url} -> {resp.status_code}: {body[:2000]!r}")
        doc = json.loads(body)
        points += len(doc.get("metrics", []))
        pages += 1
        token = doc.get("next_page_token")
        if not token:
            return spent, points, pages


def raw_search(srv: Server, experiment_id: str) -> tuple[float, list[str]]:
    """The client's search request, sent with plain requests: (seconds incl. reading the body,
    run names in order)."""
    body = {"experiment_ids": [experiment_id], "run_view_type": "ACTIVE_ONLY",
            "filter": SEARCH_FILTER, "max_results": SEARCH_MAX_RESULTS, "order_by": SEARCH_ORDER}
    t0 = time.perf_counter()
    resp = srv.session.post(srv.url + "/api/2.0/mlflow/runs/search", json=body, timeout=600)
    content = resp.content
    spent = time.perf_counter() - t0
    if resp.status_code != 200:
        raise h.BenchError(f"{srv.system}: POST {resp.url} {json.dumps(body)} -> "
                           f"{resp.status_code}: {content[:2000]!r}")
    return spent, [r["info"].get("run_name") for r in json.loads(content).get("runs", [])]


def first_difference(a: list, b: list) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"position {i}: {x!r} vs expected {y!r}"
    return f"lengths {len(a)} vs expected {len(b)}"


# ------------------------------------------------------------------------ main


def metrics_for(args) -> list[h.Metric]:
    hp = f"{args.history_points // 1000}k" if args.history_points >= 1000 else str(args.history_points)
    return [
        h.Metric("ingest_rate", f"1. metric ingest, log_batch of {METRICS_PER_CALL} metrics",
                 "metrics/s", False, "faster", digits=0, target=50),
        h.Metric("ingest_http_rate", "   ingest: the same calls' time in HTTP (server incl. "
                 "transfer)", "metrics/s", False, "faster", digits=0, target=50),
        h.Metric("runs_rate", "2. runs: create + log_batch(10 params, 10 metrics) + terminate",
                 "runs/s", False, "faster", digits=1, target=20),
        h.Metric("runs_http_rate", "   runs: the same calls' time in HTTP (server incl. transfer)",
                 "runs/s", False, "faster", digits=1, target=20),
        h.Metric("search_client_s", f"3. search_runs, max_results={SEARCH_MAX_RESULTS}: client call",
                 "ms", True, "faster", scale=1000, raw_unit="s", digits=1, target=20),
        h.Metric("search_http_s", "   search_runs: raw HTTP POST (server time incl. transfer)",
                 "ms", True, "faster", scale=1000, raw_unit="s", digits=1, target=20),
        h.Metric("history_client_s", f"4. get_metric_history, {hp} points: client call",
                 "ms", True, "faster", scale=1000, raw_unit="s", digits=1, target=10),
        h.Metric("history_http_s", "   get_metric_history: raw HTTP GETs, all pages (server time "
                 "incl. transfer)", "ms", True, "faster", scale=1000, raw_unit="s", digits=1,
                 target=10),
    ]


def main() -> int:
    args = parse_args()
    client_environment()
    import logging

    import mlflow

    for name in ("alembic", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    HTTP.install()

    binary = h.slipway_bin() if "slipway" in args.systems else None
    mlflow_bin = h.venv_tool("mlflow") if "mlflow" in args.systems else None
    versions = {"mlflow_client": mlflow.__version__}
    if binary:
        versions["slipway"] = h.command_output([binary, "version"])
    if mlflow_bin:
        versions["mlflow"] = h.command_output([mlflow_bin, "--version"])
    machine = h.machine_info()
    debug = bool(binary) and h.is_debug_build(binary)
    batches = {"slipway": args.batches, "mlflow": args.mlflow_batches}
    timed_runs = {"slipway": args.runs, "mlflow": args.mlflow_runs}
    history_calls = args.history_points // METRICS_PER_CALL

    h.say("benchmark: tracking - the MLflow tracking API through the real mlflow client "
          "(SQLite, loopback)")
    if binary:
        h.say(f"  slipway: {versions['slipway']}  ({binary})"
              + ("  ** DEBUG BUILD: not representative, use a release build **" if debug else ""))
        h.say(f"           {binary.name} server --port 0 --data-dir <fresh tmp>/data")
    if mlflow_bin:
        workers = (f"--workers {args.mlflow_workers}" if args.mlflow_workers
                   else f"default workers ({MLFLOW_DEFAULT_WORKERS})")
        h.say(f"  mlflow:  {versions['mlflow']}  ({mlflow_bin}; {workers})")
        h.say("           mlflow server --backend-store-uri sqlite:///<fresh tmp>/mlflow.db "
              "--artifacts-destination <fresh tmp>/artifacts")
    h.say(f"  client:  mlflow {mlflow.__version__} MlflowClient(tracking_uri=<server URL>) in this "
          f"process, one client, sequential, the same code for both; env "
          + " ".join(f"{k}={v}" for k, v in CLIENT_ENV.items()) + " (servers: telemetry ones)")
    h.say(f"  machine: {machine['logical_cores']} logical cores ({machine['physical_cores']} "
          f"physical), {machine['cpu_model'] or 'unknown CPU'}, {machine['memory_gib']} GiB, "
          f"load avg {' '.join(map(str, machine['loadavg_at_start']))}")
    for s in args.systems:
        fill = args.runs - timed_runs[s]
        h.say(f"  {s + ':':<8} ingest {batches[s]} x log_batch({METRICS_PER_CALL}) timed; "
              f"{timed_runs[s]} runs timed" + (f" + {fill} more written untimed through mlflow's "
                                               f"SQLAlchemy store (search corpus {args.runs})"
                                               if fill else " (= the search corpus)"))
    h.say(f"  method:  throughput timed in {CHUNKS} chunks, a sample per chunk; search_runs and "
          f"get_metric_history ({args.history_points} points): {args.reps} reps after 1 warm-up, "
          f"interleaved; medians")
    h.say()

    base_ms = int(time.time() * 1000) - 10_000_000  # all timestamps in the past, distinct
    report = h.Report("tracking", ["slipway", "mlflow"], metrics_for(args))
    work = h.temp_dir("tracking", keep=args.keep)
    problems: list[str] = []
    overall: dict = {}
    ops = collections.Counter()  # (system, workload) -> client operations
    starts: list[dict] = []

    # ------------------------------------------------ phase A: ingest (1) + metric history (4)
    h.say("[A] metric ingest and history: one fresh server per tool")
    servers: dict[str, Server] = {}
    run_ids: dict[str, str] = {}
    try:
        payload = ingest_payloads(max(max(batches[s] for s in args.systems), history_calls),
                                  history_calls, base_ms)
        for system in args.systems:
            h.begin_line(f"  {system:<7} starting ... ")
            srv = servers[system] = start_server(system, args, binary, mlflow_bin,
                                                 work / f"{system}-A")
            starts.append(start_record(srv, "A"))
            h.begin_line(f"{settled_text(srv)}; ingest ")
            with guarded(srv, "setup"):
                exp = srv.client.create_experiment("bench-ingest")
                run_ids[system] = srv.client.create_run(exp, run_name="ingest").info.run_id
            run_id = run_ids[system]
            n = batches[system]
            with guarded(srv, "ingest"):
                chunks = timed_chunks(payload[:n], lambda i, m: srv.client.log_batch(run_id, metrics=m))
            ops[(system, "ingest")] += n
            for count, secs, http_secs in chunks:
                report.add(system, "ingest_rate", count * METRICS_PER_CALL / secs)
                report.add(system, "ingest_http_rate", count * METRICS_PER_CALL / http_secs)
            total = sum(s for _, s, _ in chunks)
            overall.setdefault(system, {})["ingest"] = {
                "calls": n, "metrics": n * METRICS_PER_CALL, "seconds": total,
                "metrics_per_s": n * METRICS_PER_CALL / total}
            msg = f" {n * METRICS_PER_CALL} metrics in {total:.1f} s = {n * METRICS_PER_CALL / total:.0f}/s"
            if n < history_calls:
                with guarded(srv, "history fill"), open(os.devnull, "w") as devnull, \
                        contextlib.redirect_stdout(devnull):
                    for i in range(n, history_calls):
                        srv.client.log_batch(run_id, metrics=payload[i])
                msg += f"; +{history_calls - n} calls untimed for the history"
            h.say(msg)
        del payload

        h.begin_line(f"  get_metric_history ({args.history_points} points), 1 warm-up + "
                     f"{args.reps} reps: ")
        for rep in range(args.reps + 1):
            for system, srv in servers.items():
                with guarded(srv, "history"):
                    t0 = time.perf_counter()
                    hist = srv.client.get_metric_history(run_ids[system], HISTORY_KEY)
                    client_s = time.perf_counter() - t0
                ops[(system, "history")] += 1
                with guarded(srv, "history raw"):
                    raw_s, raw_points, pages = raw_history(srv, run_ids[system])
                if rep == 0:
                    steps = [m.step for m in hist]
                    if len(hist) != args.history_points or sorted(steps) != list(range(args.history_points)):
                        problems.append(f"{system}: get_metric_history returned {len(hist)} points "
                                        f"(steps {min(steps, default=None)}..{max(steps, default=None)}), "
                                        f"expected {args.history_points} (steps 0..{args.history_points - 1})")
                    if raw_points != args.history_points:
                        problems.append(f"{system}: raw get-history pages held {raw_points} points, "
                                        f"expected {args.history_points}")
                    overall.setdefault(system, {})["history_pages"] = pages
                    continue
                report.add(system, "history_client_s", client_s)
                report.add(system, "history_http_s", raw_s)
            print(".", end="", flush=True)
        h.say(" done")
    finally:
        for srv in servers.values():
            srv.stop()
        if not args.keep:
            for system in servers:
                h.remove_dir(work / f"{system}-A")

    # ------------------------------------------------ phase B: runs (2) + search_runs (3)
    h.say("[B] runs and search_runs: one fresh server per tool")
    servers = {}
    experiments: dict[str, str] = {}
    try:
        payload = run_payloads(args.runs, base_ms)
        for system in args.systems:
            h.begin_line(f"  {system:<7} starting ... ")
            srv = servers[system] = start_server(system, args, binary, mlflow_bin,
                                                 work / f"{system}-B")
            starts.append(start_record(srv, "B"))
            h.begin_line(f"{settled_text(srv)}; runs ")
            with guarded(srv, "setup"):
                exp = experiments[system] = srv.client.create_experiment("bench-runs")
            n = timed_runs[system]
            with guarded(srv, "runs"):
                chunks = timed_chunks(payload[:n], lambda k, p: log_run(srv.client, exp, k, p))
            ops[(system, "runs")] += n
            for count, secs, http_secs in chunks:
                report.add(system, "runs_rate", count / secs)
                report.add(system, "runs_http_rate", count / http_secs)
            total = sum(s for _, s, _ in chunks)
            overall.setdefault(system, {})["runs"] = {"runs": n, "seconds": total,
                                                      "runs_per_s": n / total}
            msg = f" {n} runs in {total:.1f} s = {n / total:.1f}/s"
            if n < args.runs:
                # The rest of the search corpus, untimed, through mlflow's own store on the same
                # SQLite file (the code the server runs, without HTTP): the same MlflowClient
                # calls, pointed at sqlite:///.../mlflow.db.
                from mlflow import MlflowClient

                h.say(msg)
                h.begin_line(f"  {system:<7} writing runs {n}..{args.runs - 1} untimed through "
                             f"MlflowClient(sqlite:///.../mlflow.db) ")
                store_client = MlflowClient(tracking_uri=f"sqlite:///{srv.dir / 'mlflow.db'}")
                t0 = time.perf_counter()
                with guarded(srv, "search corpus fill"):
                    timed_chunks(payload[n:], lambda i, p: log_run(store_client, exp, n + i, p))
                msg = f" {time.perf_counter() - t0:.0f} s"
            h.say(msg)
        del payload

        matches, expected = expected_search(args.runs)
        if matches < SEARCH_MAX_RESULTS:
            h.say(f"  note: only {matches} of {args.runs} runs match the filter, fewer than "
                  f"max_results={SEARCH_MAX_RESULTS} (--runs 2510 or more fills it)")
        h.begin_line(f"  search_runs ({matches} of {args.runs} runs match), 1 warm-up + "
                     f"{args.reps} reps: ")
        returned: dict[str, int] = {}
        for rep in range(args.reps + 1):
            for system, srv in servers.items():
                with guarded(srv, "search"):
                    t0 = time.perf_counter()
                    runs = srv.client.search_runs([experiments[system]], SEARCH_FILTER,
                                                  max_results=SEARCH_MAX_RESULTS,
                                                  order_by=SEARCH_ORDER)
                    client_s = time.perf_counter() - t0
                ops[(system, "search")] += 1
                with guarded(srv, "search raw"):
                    raw_s, raw_names = raw_search(srv, experiments[system])
                if rep == 0:
                    names = [r.info.run_name for r in runs]
                    returned[system] = len(names)
                    if names != expected:
                        problems.append(f"{system}: search_runs returned {len(names)} runs, expected "
                                        f"{len(expected)}; first difference at "
                                        f"{first_difference(names, expected)}")
                    if raw_names != expected:
                        problems.append(f"{system}: raw runs/search returned {len(raw_names)} runs; "
                                        f"first difference at {first_difference(raw_names, expected)}")
                    r0 = runs[0] if runs else None
                    if r0 is not None and (len(r0.data.params) != 10 or len(r0.data.metrics) != 10):
                        problems.append(f"{system}: a searched run has {len(r0.data.params)} params "
                                        f"and {len(r0.data.metrics)} metrics, expected 10 and 10")
                    continue
                report.add(system, "search_client_s", client_s)
                report.add(system, "search_http_s", raw_s)
            print(".", end="", flush=True)
        h.say(" done")
        h.say("  returned: " + ", ".join(f"{s} {n} runs" for s, n in returned.items())
              + f" (expected {len(expected)}, same names in the same order: "
              + ("yes" if not any("search" in p for p in problems) else "NO") + ")")
    finally:
        for srv in servers.values():
            srv.stop()
        if not args.keep:
            for system in servers:
                h.remove_dir(work / f"{system}-B")

    # ------------------------------------------------ report
    load_end = [round(x, 2) for x in os.getloadavg()]
    per_op = {}
    for (system, workload), n in ops.items():
        reqs = HTTP.counts[(system, workload)]
        per_op.setdefault(system, {})[workload] = {"operations": n, "http_requests": reqs,
                                                   "requests_per_operation": reqs / n if n else None}
    h.say()
    h.say(report.render())
    h.say(f"(load avg at end {' '.join(map(str, load_end))})")
    for system in args.systems:
        o = overall.get(system, {})
        parts = []
        if "ingest" in o:
            parts.append(f"ingest overall {o['ingest']['metrics_per_s']:.0f} metrics/s "
                         f"({o['ingest']['calls']} calls, {o['ingest']['seconds']:.1f} s)")
        if "runs" in o:
            parts.append(f"runs overall {o['runs']['runs_per_s']:.1f} runs/s "
                         f"({o['runs']['runs']} runs, {o['runs']['seconds']:.1f} s)")
        reqs = per_op.get(system, {})
        rq = ", ".join(f"{w} {v['requests_per_operation']:g}" for w, v in reqs.items()
                       if v["requests_per_operation"] is not None)
        h.say(f"{system}: " + "; ".join(parts) + f"; HTTP requests per client operation: {rq}")
    h.say("(set_terminated in the mlflow client GETs the run to print its URL, then updates it: "
          "a run is 4 requests)")
    # What the client itself spends (client call minus the raw HTTP time, medians): a floor under
    # slipway's client-call latency that no server can remove, so it caps those ratios.
    sums = report.summaries()
    client_floor = {}
    for name, c_key, r_key in (("search_runs", "search_client_s", "search_http_s"),
                               ("get_metric_history", "history_client_s", "history_http_s")):
        parts = []
        for system in args.systems:
            c, r = sums[system][c_key]["median"], sums[system][r_key]["median"]
            if c is None or r is None:
                continue
            client_floor.setdefault(name, {})[system] = c - r
            parts.append(f"{system} {(c - r) * 1000:.0f} ms")
        if parts:
            cap = ""
            if len(client_floor[name]) == 2 and client_floor[name]["slipway"] > 0:
                cap = (f"; so even a 0 ms slipway server gives mlflow/slipway <= "
                       f"{sums['mlflow'][c_key]['median'] / client_floor[name]['slipway']:.1f}x "
                       f"on the client-call row")
            h.say(f"client-side time of {name} (client call - raw HTTP, medians): "
                  + ", ".join(parts) + cap)
    if debug:
        h.say("NOTE: slipway was a debug build; its numbers are not representative.")
    if args.keep:
        h.say(f"temp data and logs kept in {work}")
    if problems:
        h.say()
        h.say("VERIFICATION FAILED:")
        for p in problems:
            h.say(f"  {p}")

    report.meta = {
        "systems_run": args.systems,
        "versions": versions,
        "slipway_bin": str(binary) if binary else None,
        "slipway_debug_build": debug,
        "commands": {
            "slipway": "slipway server --port 0 --data-dir <fresh tmp>/data",
            "mlflow": " ".join(map(str, startup.mlflow_argv(Path("mlflow"), Path("<fresh tmp>"),
                                                             "<free port>", args.mlflow_workers))),
        },
        "client": {"library": f"mlflow {mlflow.__version__} MlflowClient, in-process, one client, "
                              f"sequential", "env": CLIENT_ENV},
        "server_env": TELEMETRY_ENV,
        "sizes": {
            "metrics_per_call": METRICS_PER_CALL,
            "ingest_calls": {s: batches[s] for s in args.systems},
            "history_points": args.history_points,
            "history_page": HISTORY_PAGE,
            "timed_runs": {s: timed_runs[s] for s in args.systems},
            "search_corpus_runs": args.runs,
            "search": {"filter": SEARCH_FILTER, "order_by": SEARCH_ORDER,
                       "max_results": SEARCH_MAX_RESULTS, "matching_runs": matches,
                       "returned": returned},
            "reps": args.reps,
        },
        "method": {
            "servers": "phase A (ingest, history) and phase B (runs, search) each on a fresh "
                       "server per tool; in each phase both servers stay up for the interleaved "
                       "latency repetitions",
            "ingest": f"log_batch calls of {METRICS_PER_CALL} metrics (one key, distinct steps "
                      f"and timestamps) into one run; Metric objects built before timing; "
                      f"{CHUNKS} chunks, sample = metrics/s of a chunk",
            "runs": "per run: create_run(run_name) + log_batch(10 params, 10 metrics) + "
                    f"set_terminated; {CHUNKS} chunks, sample = runs/s of a chunk",
            "in_http": "the *_http_rate rows divide the same work by the time the same client "
                       "calls spent inside requests' transport adapter (request sent, server "
                       "at work, response body read), measured around HTTPAdapter.send",
            "search_corpus": "mlflow: runs beyond --mlflow-runs written untimed with the same "
                             "MlflowClient calls pointed at the server's SQLite file",
            "search": "client.search_runs(filter, order_by, max_results) wall time; raw = one "
                      "requests POST with the client's JSON body, until the body is read",
            "history": "client.get_metric_history wall time (pages of 25000); raw = the same "
                       "GET pages with requests, summed time until each body is read",
            "settle": "before use: mlflow until all uvicorn workers logged startup complete; both "
                      f"until the process tree uses < {IDLE_CORES} CPUs over 1 s (at most "
                      f"{IDLE_TIMEOUT:.0f} s)",
            "aggregate": "median (min, max); 1 warm-up not recorded",
        },
        "mlflow_workers": args.mlflow_workers or f"default ({MLFLOW_DEFAULT_WORKERS})",
        "server_starts": starts,
        "overall": overall,
        "http_requests": per_op,
        "client_side_seconds": client_floor,
        "verification_problems": problems,
        "machine": {**machine, "loadavg_at_end": load_end},
    }
    if not args.no_json:
        h.say(f"results: {report.write_json().relative_to(h.REPO_ROOT)}")
    return 1 if problems else 0


if __name__ == "__main__":
    h.run_main(main)
