"""server start-to-ready time and idle memory: slipway server vs mlflow server (SQLite)

Each repetition starts one server on a fresh, empty temp data folder (so it includes
creating the SQLite database), measures the wall time from spawning the process to
the first `GET /health` that answers 200 (polled every 10 ms over loopback), waits
--idle seconds, then samples the memory of the whole process tree (the server and
all its descendants) --samples times, 0.5 s apart, and keeps the largest sample.
Repetitions of the two servers are interleaved so drift on a shared machine hits both.

    bench/run startup [--reps N] [--slipway-reps N] [--mlflow-reps N] [--idle S] ...
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import harness as h

SAMPLE_GAP = 0.5  # seconds between memory samples


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="bench/run startup",
        description="Server start-to-ready time and idle memory: slipway server vs mlflow "
                    "server, both on SQLite, on this machine, in one run.")
    ap.add_argument("--reps", type=int, help="repetitions for both servers (overrides the two below)")
    ap.add_argument("--slipway-reps", type=int, default=5, help="repetitions of slipway (default 5)")
    ap.add_argument("--mlflow-reps", type=int, default=3, help="repetitions of mlflow (default 3)")
    ap.add_argument("--idle", type=float, default=3.0,
                    help="seconds to stay idle after ready before sampling memory (default 3)")
    ap.add_argument("--samples", type=int, default=3,
                    help=f"memory samples, {SAMPLE_GAP} s apart, after the idle wait; "
                         "the largest is kept (default 3)")
    ap.add_argument("--timeout", type=float, default=300,
                    help="seconds a server may take to become ready (default 300)")
    ap.add_argument("--mlflow-workers", type=int,
                    help="pass --workers N to mlflow server (default: mlflow's own default, 4)")
    ap.add_argument("--only", choices=["slipway", "mlflow"], help="run one server only")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (data and logs)")
    ap.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    args = ap.parse_args()
    if args.reps is not None:
        args.slipway_reps = args.mlflow_reps = args.reps
    if args.only == "slipway":
        args.mlflow_reps = 0
    elif args.only == "mlflow":
        args.slipway_reps = 0
    if args.slipway_reps < 0 or args.mlflow_reps < 0 or args.samples < 1:
        ap.error("repetitions must be >= 0 and --samples >= 1")
    return args


# ------------------------------------------------------------------------ the two servers


def start_slipway(binary: Path, rep_dir: Path, timeout: float) -> tuple[h.Proc, float, str]:
    data = rep_dir / "data"  # does not exist yet: slipway creates it and its SQLite db
    proc = h.spawn("slipway", [binary, "server", "--port", "0", "--data-dir", data], rep_dir,
                   env=h.clean_env(["SLIPWAY_"]), cwd=rep_dir)
    # the first stdout line is "slipway listening on http://127.0.0.1:PORT"
    match, _ = h.wait_for(proc, lambda: h.first_line_match(
        proc.stdout_path, r"^slipway listening on (http://\S+)"), timeout, what="listening")
    url = match.group(1).rstrip("/")
    _, ready = h.wait_for(proc, lambda: h.http_status(url + "/health") == 200, timeout,
                          what="answering GET /health with 200")
    return proc, ready, url


def mlflow_argv(mlflow: Path, rep_dir: Path, port: int | str, workers: int | None) -> list:
    argv = [mlflow, "server", "--host", h.LOOPBACK, "--port", str(port),
            "--backend-store-uri", f"sqlite:///{rep_dir / 'mlflow.db'}",
            # mlflow's default is --serve-artifacts (artifacts proxied by the server, as
            # slipway does); point its destination into the temp folder, not ./mlartifacts
            "--artifacts-destination", str(rep_dir / "artifacts")]
    if workers is not None:
        argv += ["--workers", str(workers)]
    return argv


def start_mlflow(mlflow: Path, rep_dir: Path, timeout: float, workers: int | None
                 ) -> tuple[h.Proc, float, str]:
    port = h.free_port()
    url = f"http://{h.LOOPBACK}:{port}"
    proc = h.spawn("mlflow", mlflow_argv(mlflow, rep_dir, port, workers), rep_dir,
                   env=h.clean_env(["MLFLOW_"]), cwd=rep_dir)
    _, ready = h.wait_for(proc, lambda: h.http_status(url + "/health") == 200, timeout,
                          what="answering GET /health with 200")
    return proc, ready, url


# ------------------------------------------------------------------------ main


METRICS = [
    h.Metric("ready_s", "start to ready (first 200 on /health)", "s", True, "faster",
             digits=3),
    h.Metric("rss_bytes", "idle RSS, sum over process tree", "MiB", True, "smaller",
             scale=1 / 2**20, raw_unit="bytes", digits=1),
    h.Metric("pss_bytes", "idle PSS, sum over process tree", "MiB", True, "smaller",
             scale=1 / 2**20, raw_unit="bytes", digits=1),
    h.Metric("processes", "processes in tree (idle)", "", None, digits=0, raw_unit="count"),
]


def main() -> int:
    args = parse_args()
    binary = h.slipway_bin() if args.slipway_reps else None
    mlflow = h.venv_tool("mlflow") if args.mlflow_reps else None

    versions = {}
    if binary:
        versions["slipway"] = h.command_output([binary, "version"])
    if mlflow:
        versions["mlflow"] = h.command_output([mlflow, "--version"])
    machine = h.machine_info()
    debug = bool(binary) and h.is_debug_build(binary)

    h.say("benchmark: startup - server start-to-ready time and idle memory (SQLite, loopback)")
    if binary:
        h.say(f"  slipway: {versions['slipway']}  ({binary})"
              + ("  ** DEBUG BUILD: not representative, use a release build **" if debug else ""))
        h.say(f"           {binary.name} server --port 0 --data-dir <fresh tmp>")
    if mlflow:
        workers = f"--workers {args.mlflow_workers}" if args.mlflow_workers else "default workers (4)"
        h.say(f"  mlflow:  {versions['mlflow']}  ({mlflow}; {workers})")
        h.say("           mlflow server --backend-store-uri sqlite:///<fresh tmp>/mlflow.db "
              "--artifacts-destination <fresh tmp>/artifacts")
    h.say(f"  machine: {machine['logical_cores']} logical cores ({machine['physical_cores']} "
          f"physical), {machine['cpu_model'] or 'unknown CPU'}, {machine['memory_gib']} GiB, "
          f"load avg {' '.join(map(str, machine['loadavg_at_start']))}")
    h.say(f"  method:  ready = spawn -> first 200 on GET /health (10 ms polls); memory = max of "
          f"{args.samples} samples {SAMPLE_GAP} s apart after {args.idle:g} s idle; reps "
          f"slipway {args.slipway_reps}, mlflow {args.mlflow_reps}, interleaved; medians")
    h.say()

    systems = [s for s, n in (("slipway", args.slipway_reps), ("mlflow", args.mlflow_reps)) if n]
    report = h.Report("startup", ["slipway", "mlflow"], METRICS)
    work = h.temp_dir("startup", keep=args.keep)
    trees: dict[str, list[str]] = {}
    order = h.interleave({"slipway": args.slipway_reps, "mlflow": args.mlflow_reps})
    for system, i in order:
        rep_dir = work / f"{system}-{i + 1}"
        rep_dir.mkdir()
        total = args.slipway_reps if system == "slipway" else args.mlflow_reps
        h.begin_line(f"  {system:<7} rep {i + 1}/{total}: ")
        if system == "slipway":
            proc, ready, _ = start_slipway(binary, rep_dir, args.timeout)
        else:
            proc, ready, _ = start_mlflow(mlflow, rep_dir, args.timeout, args.mlflow_workers)
        try:
            time.sleep(args.idle)
            samples = []
            for k in range(args.samples):
                if k:
                    time.sleep(SAMPLE_GAP)
                if not proc.alive():
                    raise h.BenchError(f"{system} exited while idle\n{proc.log_tail()}")
                samples.append(h.tree_memory(proc.pid))
            mem = max(samples, key=lambda m: m.rss)
            if system not in trees:
                trees[system] = h.tree_commands(proc.pid)
        finally:
            proc.stop()
        report.add(system, "ready_s", ready)
        report.add(system, "rss_bytes", mem.rss)
        if mem.pss is not None:
            report.add(system, "pss_bytes", mem.pss)
        report.add(system, "processes", mem.processes)
        pss = f", PSS {h.mib(mem.pss):.1f} MiB" if mem.pss is not None else ""
        h.say(f"ready {ready:.3f} s, RSS {h.mib(mem.rss):.1f} MiB{pss}, "
              f"{mem.processes} process(es)")
        if not args.keep:
            h.remove_dir(rep_dir)

    load_end = [round(x, 2) for x in os.getloadavg()]
    h.say()
    h.say(report.render())
    h.say(f"(RSS counts pages shared between processes once per process; PSS splits them. "
          f"load avg at end {' '.join(map(str, load_end))})")
    for system, cmds in trees.items():
        h.say(f"{system} process tree at idle:")
        for c in cmds:
            h.say(f"  {c}")
    if debug:
        h.say("NOTE: slipway was a debug build; its numbers are not representative.")
    if args.keep:
        h.say(f"temp data and logs kept in {work}")

    report.meta = {
        "systems_run": systems,
        "versions": versions,
        "slipway_bin": str(binary) if binary else None,
        "slipway_debug_build": debug,
        "mlflow_workers": args.mlflow_workers or "default (4)",
        "commands": {
            "slipway": "slipway server --port 0 --data-dir <fresh tmp>/data",
            "mlflow": " ".join(map(str, mlflow_argv(Path("mlflow"), Path("<fresh tmp>"), "<free port>",
                                                     args.mlflow_workers))),
        },
        "method": {
            "ready": "wall time from spawn to first HTTP 200 on GET /health, polled every 10 ms",
            "memory": f"max (by RSS) of {args.samples} samples {SAMPLE_GAP} s apart, after "
                      f"{args.idle:g} s idle past ready; summed over the process and all descendants",
            "order": "repetitions interleaved slipway/mlflow",
            "aggregate": "median (min, max)",
        },
        "machine": {**machine, "loadavg_at_end": load_end},
        "process_trees": trees,
    }
    if not args.no_json:
        h.say(f"results: {report.write_json().relative_to(h.REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    h.run_main(main)
