"""Versioning a folder of many files: slipway data add vs dvc add (cold, unchanged, one change)

The same folder of --files generated files (about --total-gib GiB in all, sizes spread around
the mean, deterministic content) is versioned by

  * `slipway data add clips --dataset bench` (SQLite and a local blob folder, fresh each rep;
    its stat cache in a fresh folder), and
  * `dvc add clips` in a fresh `git init && dvc init` repository holding the folder (DVC's
    cache in .dvc/cache on the same disk; its default cache type, a copy on this file system).

Measured, reps interleaved (slipway, dvc, slipway, ...), medians:

  1. cold add: a fresh store/repo, no stat cache -> seconds, and peak RSS of the process tree
     (sampled every 20 ms);
  2. re-add of the unchanged folder (its stat cache / DVC's state db warm) -> seconds;
  3. one file changed, re-add -> seconds; slipway must upload exactly one blob and make one
     version whose diff names that file.

Before every cold add the machine is settled the same way for both tools: `sync` (the previous
rep's writes reach the disk), the page cache is dropped (as root: otherwise the kernel's reclaim
of earlier reps' pages lands on whoever writes next, which varied a cold add 2-4x here), and the
folder is read once, so both tools start from the page cache with memory to spare. For
reference, `cp -r` of the folder is timed the same way: the floor for any tool that copies the
bytes into a store of one file per blob.

    bench/run data [--quick] [--files N] [--total-gib G] [--reps N] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path

import psutil

import harness as h

FULL = {"files": 20_000, "total_gib": 2.0, "reps": 3}
QUICK = {"files": 2000, "total_gib": 0.2, "reps": 2}
SEED = 20261127


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run data", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    p.add_argument("--files", type=int)
    p.add_argument("--total-gib", type=float)
    p.add_argument("--reps", type=int)
    p.add_argument("--keep", action="store_true", help="keep the temp folder")
    p.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    args = p.parse_args()
    for k, v in (QUICK if args.quick else FULL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args


def generate(root: Path, files: int, total: int) -> int:
    """`files` files under 100 folders, sizes uniform in [0.5, 1.5] x mean, deterministic."""
    rng = random.Random(SEED)
    mean = total // files
    written = 0
    an_hour_ago = time.time() - 3600
    for i in range(files):
        path = root / f"cam{i % 100:02d}" / f"clip-{i:06d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        size = rng.randint(mean // 2, mean * 3 // 2)
        path.write_bytes(rng.randbytes(size))
        os.utime(path, (an_hour_ago, an_hour_ago))
        written += size
        if i % max(1, files // 20) == 0:
            print(".", end="", flush=True)
    return written


def settle(root: Path) -> bool:
    """sync, drop the page cache (root only) and read `root` back in. True if caches dropped."""
    os.sync()
    dropped = False
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        dropped = True
    except OSError:
        pass
    warm(root)
    return dropped


def warm(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                while f.read(1 << 20):
                    pass


class Peak:
    """Peak RSS of a process tree, sampled every 20 ms while it runs."""

    def __init__(self, pid: int):
        self.pid, self.peak, self.done = pid, 0, False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.done:
            self.peak = max(self.peak, h.tree_memory(self.pid).rss)
            time.sleep(0.02)

    def stop(self) -> int:
        self.done = True
        self.thread.join()
        return self.peak


def timed(argv: list, cwd: Path, env: dict) -> tuple[float, int, str]:
    """Runs argv to its end: (seconds, peak RSS bytes, stdout). Fails loudly on a non-zero exit."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(a) for a in argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    peak = Peak(proc.pid)
    out, err = proc.communicate()
    secs = time.perf_counter() - t0
    rss = peak.stop()
    if proc.returncode != 0:
        raise h.BenchError(f"{' '.join(map(str, argv))} exited {proc.returncode}:\n"
                           f"{out.decode()[-2000:]}\n{err.decode()[-2000:]}")
    return secs, rss, out.decode()


def main() -> int:
    args = parse_args()
    binary = h.slipway_bin()
    dvc = h.venv_tool("dvc")
    git = shutil.which("git")
    if not git:
        raise h.BenchError("git is needed for dvc's repository")
    versions = {"slipway": h.command_output([binary, "version"]),
                "dvc": h.command_output([dvc, "--version"])}
    machine = h.machine_info()
    h.say("benchmark: data - versioning a folder of many files: slipway data add vs dvc add")
    h.say(f"  slipway: {versions['slipway']}  ({binary})"
          + ("  ** DEBUG BUILD: not representative **" if h.is_debug_build(binary) else ""))
    h.say(f"  dvc:     {versions['dvc']}  ({dvc})")
    h.say(f"  data:    {args.files} files, ~{args.total_gib} GiB, in 100 folders (seed {SEED})")
    h.say(f"  machine: {machine['logical_cores']} cores, {machine['cpu_model'] or 'unknown CPU'}, "
          f"{machine['memory_gib']} GiB, load avg {' '.join(map(str, machine['loadavg_at_start']))}")
    work = h.temp_dir("data", keep=args.keep)
    repo = work / "repo"
    clips = repo / "clips"
    h.begin_line("  generating ")
    total = generate(clips, args.files, int(args.total_gib * 2**30))
    h.say(f" {total / 2**30:.2f} GiB")
    warm(clips)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "DVC_"))}
    env["DVC_NO_ANALYTICS"] = "1"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "bench"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "bench@localhost"

    metrics = [
        h.Metric("cold_s", "1. cold add (fresh store, no cache)", "s", True, "faster", target=5),
        h.Metric("cold_rss", "   peak RSS of the cold add", "MiB", True, "smaller",
                 scale=1 / 2**20, raw_unit="bytes", digits=0),
        h.Metric("again_s", "2. re-add, nothing changed", "s", True, "faster"),
        h.Metric("one_s", "3. one file changed, re-add", "s", True, "faster"),
    ]
    report = h.Report("data", ["slipway", "dvc"], metrics)
    problems: list[str] = []
    changed = clips / "cam07" / "clip-000007.bin"
    original = changed.read_bytes()

    def restore() -> None:
        """Puts the changed file back as it was, modified an hour ago (a file written seconds
        before an add is re-hashed by design: the stat cache's racy-write rule)."""
        changed.write_bytes(original)
        an_hour_ago = time.time() - 3600
        os.utime(changed, (an_hour_ago, an_hour_ago))

    dropped = []
    copies = []

    def copy_rep(rep: int) -> None:
        dropped.append(settle(clips))
        t0 = time.perf_counter()
        subprocess.run(["cp", "-r", str(clips), str(work / f"cp-{rep}")], check=True)
        copies.append(time.perf_counter() - t0)

    def slipway_rep(rep: int) -> None:
        d = work / f"slipway-{rep}"
        senv = {**env, "SLIPWAY_CACHE_DIR": str(d / "cache")}
        base = [binary, "--json", "data", "add", "clips", "--dataset", "bench",
                "--data-dir", d / "store"]
        dropped.append(settle(clips))
        secs, rss, out = timed(base, repo, senv)
        report.add("slipway", "cold_s", secs)
        report.add("slipway", "cold_rss", rss)
        first = json.loads(out)
        if first["version"]["items"] != args.files or first["hashed"] != args.files:
            problems.append(f"slipway cold add: {first}")
        secs, _, out = timed(base, repo, senv)
        report.add("slipway", "again_s", secs)
        again = json.loads(out)
        if again["created"] or again["hashed"] != 0:
            problems.append(f"slipway re-add made a version or re-hashed: {again}")
        changed.write_bytes(original[::-1])
        try:
            secs, _, out = timed(base, repo, senv)
        finally:
            restore()
        report.add("slipway", "one_s", secs)
        one = json.loads(out)
        if one["uploaded"] != 1 or one["version"]["version"] != 2:
            problems.append(f"slipway one-change add: {one}")
        _, _, out = timed([binary, "--json", "data", "diff", "bench@1", "bench@2",
                           "--data-dir", d / "store"], repo, senv)
        diff = json.loads(out)["diff"]
        names = [c[1]["path"] for c in diff["changed"]] + [a["path"] for a in diff["added"]]
        if names != ["cam07/clip-000007.bin"] or diff["removed"]:
            problems.append(f"slipway diff after one change: {names}")
        # Stores are removed only at the end: mass deletions make the next tens of seconds of
        # file creation on ext4 slow (its recently-deleted inode checks), which would tax
        # whichever tool ran next.

    def dvc_rep(rep: int) -> None:
        # The previous repository's metadata and cache move aside (not deleted; see above).
        for name in (".git", ".dvc", ".dvcignore", "clips.dvc", ".gitignore"):
            p = repo / name
            if p.exists():
                p.rename(work / f"dvc-old-{rep}-{name.lstrip('.')}")
        subprocess.run([git, "init", "-q"], cwd=repo, env=env, check=True)
        subprocess.run([dvc, "init", "-q"], cwd=repo, env=env, check=True)
        dropped.append(settle(clips))
        secs, rss, _ = timed([dvc, "add", "-q", "clips"], repo, env)
        report.add("dvc", "cold_s", secs)
        report.add("dvc", "cold_rss", rss)
        secs, _, _ = timed([dvc, "add", "-q", "clips"], repo, env)
        report.add("dvc", "again_s", secs)
        changed.write_bytes(original[::-1])
        try:
            secs, _, _ = timed([dvc, "add", "-q", "clips"], repo, env)
        finally:
            restore()
        report.add("dvc", "one_s", secs)

    h.begin_line(f"  {args.reps} reps, interleaved: ")
    for rep in range(args.reps):
        slipway_rep(rep)
        print("s", end="", flush=True)
        dvc_rep(rep)
        print("d", end="", flush=True)
        copy_rep(rep)
        print("c", end="", flush=True)
    h.say(" done")
    h.say()
    h.say(report.render())
    copies.sort()
    h.say(f"(for reference, cp -r of the folder: median {copies[len(copies) // 2]:.2f} s "
          f"({copies[0]:.2f}-{copies[-1]:.2f}); page cache dropped before each cold add: "
          f"{'yes' if all(dropped) else 'NO (not root): numbers are noisier'})")
    h.say("(slipway: 2 x cores files in flight; set SLIPWAY_DATA_JOBS to change that)")
    h.say(f"(load avg at end {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    if problems:
        h.say("VERIFICATION FAILED:")
        for p in problems:
            h.say(f"  {p}")
    report.meta = {"versions": versions, "files": args.files, "bytes": total, "reps": args.reps,
                   "cp_r_seconds": copies, "caches_dropped": all(dropped),
                   "machine": machine, "problems": problems,
                   "method": "cold = fresh store/repo and cache; before each: sync, drop caches, read the folder"}
    if not args.no_json:
        h.say(f"results: {report.write_json().relative_to(h.REPO_ROOT)}")
    return 1 if problems else 0


if __name__ == "__main__":
    h.run_main(main)
