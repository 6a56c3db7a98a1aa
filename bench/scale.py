"""Tracking at scale: search, paging and history latency at 100k runs and 100M metric points

Slipway only (MLflow's server needs hours for this corpus; `bench/run tracking` is the
comparison). One `slipway server` on SQLite in a fresh temp folder is filled over raw HTTP by
--writers concurrent clients:

  * --runs runs, each created with a name and one log-batch of 10 params and 10 metrics (the
    same data as bench/tracking's search corpus);
  * --points metric points, log-batch calls of 1000 points, spread over the first --history-runs
    runs (10 keys each, distinct steps).

Then, --reps times each (medians): the tracking benchmark's search (metric + param filter,
ordered by a metric, 1000 results) over all runs; the same search's page at offset --deep-page
x 1000 (page-token paging); an attribute-only search (`attributes.status = 'FINISHED'`, 1000
newest); a full metric history of one key (all pages); and GET runs/get. Also reported: fill
rates, store size on disk, and the server's RSS.

    bench/run scale [--quick] [--runs N] [--points N] [--writers N] [--reps N] [--keep]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import statistics
import threading
import time
from pathlib import Path

import harness as h
import tracking as tr

FULL = {"runs": 100_000, "points": 100_000_000, "history_runs": 1000, "reps": 5}
QUICK = {"runs": 3000, "points": 300_000, "history_runs": 30, "reps": 3}
KEYS_PER_RUN = 10
BATCH = 1000


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    p.add_argument("--runs", type=int)
    p.add_argument("--points", type=int, help="metric points in total")
    p.add_argument("--history-runs", type=int, help="runs the points are spread over")
    p.add_argument("--writers", type=int, default=4, help="concurrent HTTP clients filling")
    p.add_argument("--reps", type=int)
    p.add_argument("--deep-page", type=int, default=20, help="page number of the deep-page search")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server")
    p.add_argument("--keep", action="store_true", help="keep the temp folder (data and logs)")
    args = p.parse_args()
    for k, v in (QUICK if args.quick else FULL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args


class Client:
    """One requests session per thread; every non-200 answer stops the benchmark."""

    def __init__(self, url: str):
        import requests

        self.url = url
        self.local = threading.local()
        self.requests = requests

    def session(self):
        s = getattr(self.local, "s", None)
        if s is None:
            s = self.local.s = self.requests.Session()
            s.trust_env = False
        return s

    def call(self, method: str, path: str, **kw):
        resp = self.session().request(method, self.url + "/api/2.0/mlflow/" + path, timeout=600, **kw)
        body = resp.content
        if resp.status_code != 200:
            raise h.BenchError(f"{method} {path} -> {resp.status_code}: {body[:500]!r}")
        return json.loads(body)


def fill_runs(c: Client, exp: str, n: int, writers: int, base_ms: int) -> list[str]:
    def one(k: int) -> str:
        run = c.call("POST", "runs/create", json={"experiment_id": exp, "run_name": tr.run_name(k),
                                                  "start_time": base_ms + k})
        run_id = run["run"]["info"]["run_id"]
        params = [{"key": key, "value": v} for key, v in tr.run_params(k).items()]
        metrics = [{"key": key, "value": v, "timestamp": base_ms + k, "step": 0}
                   for key, v in tr.run_metrics(k).items()]
        c.call("POST", "runs/log-batch", json={"run_id": run_id, "params": params, "metrics": metrics})
        c.call("POST", "runs/update", json={"run_id": run_id, "status": "FINISHED",
                                            "end_time": base_ms + k + 1})
        return run_id

    return parallel(one, range(n), writers, "runs")


def fill_points(c: Client, run_ids: list[str], points: int, writers: int, base_ms: int) -> int:
    calls = points // BATCH
    per_run = max(1, calls // len(run_ids))

    def one(i: int) -> int:
        run_id = run_ids[i // per_run % len(run_ids)]
        j = i % per_run  # this run's j-th batch: 100 steps of each of 10 keys
        steps = BATCH // KEYS_PER_RUN
        body = json.dumps({"run_id": run_id, "metrics": [
            {"key": f"curve_{key}", "value": 1.0 / (1 + s), "timestamp": base_ms + s, "step": s}
            for s in range(j * steps, (j + 1) * steps) for key in range(KEYS_PER_RUN)]})
        c.call("POST", "runs/log-batch", data=body, headers={"Content-Type": "application/json"})
        return BATCH

    return sum(parallel(one, range(calls), writers, "points"))


def parallel(fn, items, writers: int, what: str) -> list:
    items = list(items)
    out = [None] * len(items)
    step = max(1, len(items) // 20)
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(writers) as pool:
        futures = {pool.submit(fn, x): i for i, x in enumerate(items)}
        for done, f in enumerate(cf.as_completed(futures), 1):
            out[futures[f]] = f.result()
            if done % step == 0:
                print(".", end="", flush=True)
    h.say(f" {len(items)} {what} calls in {time.perf_counter() - t0:.0f} s")
    return out


def timed(fn, reps: int) -> tuple[float, object]:
    fn()  # warm-up
    samples, result = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), result


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> int:
    args = parse_args()
    binary = h.slipway_bin()
    version = h.command_output([binary, "version"])
    machine = h.machine_info()
    h.say("benchmark: scale - tracking search, paging and history at scale (slipway only, SQLite)")
    h.say(f"  slipway: {version}  ({binary})"
          + ("  ** DEBUG BUILD **" if h.is_debug_build(binary) else ""))
    h.say(f"  corpus:  {args.runs} runs (10 params, 10 metrics each), {args.points} metric points "
          f"over {args.history_runs} runs, {args.writers} concurrent writers, raw HTTP")
    h.say(f"  machine: {machine['logical_cores']} cores, {machine['cpu_model'] or 'unknown CPU'}, "
          f"load avg {' '.join(map(str, machine['loadavg_at_start']))}")
    work = h.temp_dir("scale", keep=args.keep)
    proc = h.spawn("slipway", [binary, "server", "--port", "0", "--data-dir", work / "data"], work,
                   env={**os.environ, "RUST_LOG": "warn"}, cwd=work)
    match, _ = h.wait_for(proc, lambda: h.first_line_match(
        proc.stdout_path, r"^slipway listening on (http://\S+)"), args.timeout, what="listening")
    c = Client(match.group(1).rstrip("/"))
    base_ms = int(time.time() * 1000) - 10_000_000
    exp = c.call("POST", "experiments/create", json={"name": "scale"})["experiment_id"]

    h.begin_line("  filling runs ")
    t0 = time.perf_counter()
    run_ids = fill_runs(c, exp, args.runs, args.writers, base_ms)
    runs_s = time.perf_counter() - t0
    h.begin_line("  filling points ")
    t0 = time.perf_counter()
    points = fill_points(c, run_ids[: args.history_runs], args.points, args.writers, base_ms)
    points_s = time.perf_counter() - t0

    search = {"experiment_ids": [exp], "filter": tr.SEARCH_FILTER, "order_by": tr.SEARCH_ORDER,
              "max_results": 1000}
    matches, expected = tr.expected_search(args.runs)
    rows = []

    def first_page():
        return c.call("POST", "runs/search", json=search)

    med, page = timed(first_page, args.reps)
    names = [r["info"]["run_name"] for r in page.get("runs", [])]
    ok = names == expected
    rows.append(("search, metric + param filter, order by metric, 1000 of "
                 f"{matches} matches", med, "same runs as expected" if ok else "WRONG RESULT"))

    def deep_page() -> int:
        token, pages = None, 0
        while pages < args.deep_page:
            body = c.call("POST", "runs/search", json={**search, "filter": "",
                                                          **({"page_token": token} if token else {})})
            pages += 1
            token = body.get("next_page_token")
            if not token:
                break
        return pages

    t0 = time.perf_counter()
    pages = deep_page()
    walk_s = time.perf_counter() - t0
    rows.append((f"walk {pages} pages of 1000 (no filter, ordered by metrics.loss)", walk_s,
                 f"{walk_s / pages * 1000:.0f} ms a page"))

    def finished():
        return c.call("POST", "runs/search", json={"experiment_ids": [exp], "max_results": 1000,
                                                   "filter": "attributes.status = 'FINISHED'"})

    med, body = timed(finished, args.reps)
    rows.append(("search attributes.status = 'FINISHED', 1000 newest", med,
                 f"{len(body.get('runs', []))} runs"))

    history_run = run_ids[0]

    def history():
        n, token = 0, None
        while True:
            q = {"run_id": history_run, "metric_key": "curve_0", "max_results": 25000}
            if token:
                q["page_token"] = token
            body = c.call("GET", "metrics/get-history", params=q)
            n += len(body.get("metrics", []))
            token = body.get("next_page_token")
            if not token:
                return n

    med, n = timed(history, args.reps)
    rows.append((f"get-history of one key, all pages", med, f"{n} points"))
    med, _ = timed(lambda: c.call("GET", "runs/get", params={"run_id": run_ids[len(run_ids) // 2]}),
                   args.reps * 10)
    rows.append(("runs/get", med, ""))

    rss = h.tree_memory(proc.pid)
    size = dir_bytes(work / "data")
    h.say()
    h.say(h.table([[what, f"{secs * 1000:.1f} ms", note] for what, secs, note in rows],
                  ["measurement (median)", "latency", ""]))
    h.say(f"fill: {args.runs} runs in {runs_s:.0f} s ({args.runs / runs_s:.0f} runs/s, each 3 "
          f"requests); {points} points in {points_s:.0f} s ({points / points_s:,.0f} points/s)")
    h.say(f"store on disk: {size / 2**30:.2f} GiB ({size / max(points, 1):.1f} bytes per point "
          f"incl. runs); server RSS {h.mib(rss.rss):.0f} MiB")
    h.say(f"(load avg at end {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    if args.keep:
        h.say(f"temp data and logs kept in {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    h.run_main(main)
