"""Shared helpers for Slipway's benchmarks (bench/NAME.py, run with `bench/run NAME`).

What lives here:
  * locating the slipway binary and the peer tools in bench/.venv,
  * starting servers in their own process groups and always killing the whole
    tree again (normal exit, exceptions, Ctrl-C, SIGTERM),
  * readiness polling over loopback HTTP,
  * memory of a process *and all its descendants*,
  * repetition statistics, the comparison table and the JSON result file.

Only loopback addresses are ever contacted.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import psutil

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
VENV_DIR = BENCH_DIR / ".venv"
RESULTS_DIR = BENCH_DIR / "results"
LOOPBACK = "127.0.0.1"


class BenchError(RuntimeError):
    """A benchmark cannot go on; the message says why (printed without a traceback)."""


# --------------------------------------------------------------------------- binaries


def slipway_bin() -> Path:
    """The slipway binary: $SLIPWAY_BIN, else target/release/slipway in the repo."""
    env = os.environ.get("SLIPWAY_BIN")
    if env:
        path = Path(env).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BenchError(f"SLIPWAY_BIN={env} is not an executable file")
        return path.resolve()
    path = REPO_ROOT / "target" / "release" / "slipway"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise BenchError(
            f"no slipway release binary at {path}\n"
            "  build it first:   cargo build --release -p slipway-cli\n"
            "  or point to one:  SLIPWAY_BIN=/path/to/slipway bench/run NAME"
        )
    return path


def is_debug_build(path: Path) -> bool:
    """True when the binary sits in a cargo `debug` profile folder."""
    return "debug" in path.parts


def venv_tool(name: str) -> Path:
    """A console script installed in bench/.venv (e.g. `mlflow`)."""
    path = Path(sys.prefix) / "bin" / name
    if not path.exists():
        path = VENV_DIR / "bin" / name
    if not path.exists():
        raise BenchError(f"{name} is not installed in {VENV_DIR}; run benchmarks through bench/run")
    return path


def command_output(argv: Sequence[str], timeout: float = 120) -> str:
    """stdout (or stderr, if stdout is empty) of a short command, stripped."""
    out = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    text = out.stdout.strip() or out.stderr.strip()
    if out.returncode != 0:
        raise BenchError(f"{' '.join(map(str, argv))} failed ({out.returncode}): {text}")
    return text


# --------------------------------------------------------------------------- machine


def machine_info() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load1, load5, load15 = os.getloadavg()
    return {
        "os": f"{platform.system()} {platform.release()}",
        "cpu_model": model,
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "loadavg_at_start": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------------- processes

_LIVE: list["Proc"] = []


def free_port() -> int:
    """A TCP port that is free on the loopback address right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _reap() -> None:
    """Collect exited children (we are a subreaper, so orphaned descendants are ours too)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _running(procs: Iterable[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def kill_tree(pid: int, grace: float = 3.0) -> None:
    """SIGTERM a process, its process group and every descendant; SIGKILL what is left."""
    procs = tree(pid)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)  # our children lead their own group (start_new_session)
        except (ProcessLookupError, PermissionError):
            pass
        for p in procs:
            try:
                p.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        deadline = time.monotonic() + wait
        while True:
            _reap()
            # re-read the tree: descendants may have been spawned or re-parented meanwhile
            procs = _running({p.pid: p for p in procs + tree(pid)}.values())
            if not procs or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if not procs:
            return


def _become_subreaper() -> None:
    """Linux: orphaned descendants of our servers re-parent to us, not to PID 1,
    so they stay visible in our own process tree and can always be killed and reaped."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):
            pass


@dataclass
class Proc:
    """A started process (its own session/process group) with stdout/stderr in files."""

    name: str
    popen: subprocess.Popen
    started: float  # time.perf_counter() just before spawning
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        kill_tree(self.pid)
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self in _LIVE:
            _LIVE.remove(self)

    def log_tail(self, lines: int = 20) -> str:
        parts = []
        for label, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                text = []
            if text:
                parts.append(f"--- {self.name} {label} (last {len(text)} lines) ---\n" + "\n".join(text))
        return "\n".join(parts) or f"({self.name} wrote nothing)"


def spawn(name: str, argv: Sequence[str | os.PathLike], log_dir: Path, env: dict | None = None,
          cwd: Path | None = None) -> Proc:
    """Start argv in a new session (own process group), stdout/stderr to files in log_dir,
    with exactly `env` (default: ours); registered for cleanup."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out = open(log_dir / f"{name}.stdout", "wb")
    err = open(log_dir / f"{name}.stderr", "wb")
    full_env = dict(os.environ) if env is None else dict(env)
    started = time.perf_counter()
    try:
        popen = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=err, env=full_env, cwd=cwd, start_new_session=True)
    finally:
        out.close()
        err.close()
    proc = Proc(name, popen, started, log_dir / f"{name}.stdout", log_dir / f"{name}.stderr")
    _LIVE.append(proc)
    return proc


def stop_all() -> None:
    """Kill every process tree this run started, then any descendant of ours left over."""
    while _LIVE:
        _LIVE[-1].stop()
    me = os.getpid()
    for child in psutil.Process(me).children():
        kill_tree(child.pid)
    _reap()


def _on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def install_cleanup() -> None:
    """Kill started trees at exit and turn SIGTERM/SIGHUP into KeyboardInterrupt."""
    _become_subreaper()
    atexit.register(stop_all)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)


@dataclass
class TreeMemory:
    rss: int  # bytes, summed over the tree (shared pages counted once per process)
    pss: int | None  # bytes, summed proportional set size (shared pages split), Linux only
    processes: int


def tree_memory(pid: int) -> TreeMemory:
    """RSS (and PSS where readable) summed over a process and all its descendants."""
    rss, pss, pss_ok, n = 0, 0, True, 0
    for p in tree(pid):
        try:
            try:
                info = p.memory_full_info()
                rss += info.rss
                if hasattr(info, "pss"):
                    pss += info.pss
                else:
                    pss_ok = False
            except psutil.AccessDenied:
                rss += p.memory_info().rss
                pss_ok = False
            n += 1
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return TreeMemory(rss, pss if pss_ok else None, n)


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each live process of a tree, by pid."""
    out = {}
    for p in tree(pid):
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return out


def wait_idle(pid: int, max_cores: float = 0.1, window: float = 1.0, timeout: float = 60.0
              ) -> tuple[bool, float]:
    """Wait until a process tree uses less than `max_cores` CPUs over a `window`-second span
    (e.g. until a server's workers have finished starting, so their start-up does not compete
    with what is measured next). Returns (idle reached, CPUs used in the last window)."""
    deadline = time.monotonic() + timeout
    before = tree_cpu_seconds(pid)
    while True:
        time.sleep(window)
        after = tree_cpu_seconds(pid)
        used = sum(max(0.0, t - before.get(p, 0.0)) for p, t in after.items()) / window
        if used < max_cores or time.monotonic() > deadline:
            return used < max_cores, used
        before = after


def tree_commands(pid: int) -> list[str]:
    out = []
    for p in tree(pid):
        try:
            out.append(f"{p.pid} {' '.join(p.cmdline())[:160]}")
        except psutil.Error:
            pass
    return out


# --------------------------------------------------------------------------- readiness


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """Status of GET url (loopback only), or None when nothing answers."""
    host = urllib.parse.urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise BenchError(f"refusing to contact non-loopback host {host!r}")
    try:
        with _NO_PROXY.open(url, timeout=timeout) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
        return None


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_for(proc: Proc, check: Callable[[], object], timeout: float, interval: float = 0.01,
             what: str = "ready") -> tuple[object, float]:
    """Poll check() every `interval` s until it returns something truthy.

    Returns (value, seconds since proc was spawned). Raises BenchError if the process
    exits first or the timeout passes (with the tail of its logs).
    """
    deadline = time.perf_counter() + timeout
    while True:
        value = check()
        now = time.perf_counter()
        if value:
            return value, now - proc.started
        if not proc.alive():
            raise BenchError(f"{proc.name} exited with code {proc.popen.returncode} before it was "
                             f"{what}\n{proc.log_tail()}")
        if now > deadline:
            raise BenchError(f"{proc.name} was not {what} after {timeout:.0f} s\n{proc.log_tail()}")
        time.sleep(interval)


def slipway_registered(binary: Path, data: Path, model: Path, logs: Path, tag: str,
                       commands: Sequence[Sequence[str | os.PathLike]] = ()) -> None:
    """Registers `model` as `lr@prod` in the stores of data dir `data` (a `slipway server`
    started for it and stopped after), then runs each client command of `commands` on it."""
    data.mkdir(parents=True, exist_ok=True)
    server = spawn(f"slipway-server-{tag}", [binary, "server", "--port", "0", "--data-dir", data,
                                             "--no-worker"], logs, cwd=data)
    m, _ = wait_for(server, lambda: first_line_match(server.stdout_path, r"listening on (\S+)"),
                    timeout=60, what="listening")
    url = m.group(1)
    command_output([binary, "--server", url, "models", "register", "lr", model, "--alias", "prod"])
    for argv in commands:
        command_output([binary, "--server", url, *argv])
    server.stop()


def first_line_match(path: Path, pattern: str) -> re.Match | None:
    """Search the file's complete lines for a regex; the match, or None yet."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        m = re.search(pattern, line)
        if m:
            return m
    return None


# --------------------------------------------------------------------------- statistics


def summary(samples: Sequence[float]) -> dict:
    vals = [float(v) for v in samples]
    if not vals:
        return {"n": 0, "median": None, "min": None, "max": None, "samples": []}
    return {"n": len(vals), "median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "samples": vals}


def interleave(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Round-robin order of (system, rep index), so slow drift of a shared machine hits all."""
    order, i = [], 0
    while any(i < c for c in counts.values()):
        for name, c in counts.items():
            if i < c:
                order.append((name, i))
        i += 1
    return order


# --------------------------------------------------------------------------- reporting


@dataclass
class Metric:
    key: str
    label: str
    unit: str  # "s", "ms", "MiB", "count", ...
    lower_is_better: bool | None = True  # None: neither direction is "better" (e.g. a count)
    better: str = "better"  # word for the winner in the ratio column: "faster", "smaller", ...
    scale: float = 1.0  # raw sample * scale = shown value
    raw_unit: str = ""  # unit of the raw samples in the JSON (defaults to `unit`)
    digits: int = 2
    # Optional goal: the base system (the first, slipway) must be at least `target` times better
    # than each other system, as a ratio of medians. Adds "target" and "met?" columns.
    target: float | None = None


def _fmt(v: float | None, digits: int) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        digits = min(digits, 0)
    elif abs(v) >= 10:
        digits = min(digits, 1)
    return f"{v:.{digits}f}"


def cell(s: dict, m: Metric) -> str:
    if not s or not s.get("n"):
        return "-"
    unit = f" {m.unit}" if m.unit else ""
    med = _fmt(s["median"] * m.scale, m.digits)
    if s["n"] == 1 or s["min"] == s["max"]:
        return f"{med}{unit}"
    return f"{med}{unit} ({_fmt(s['min'] * m.scale, m.digits)}-{_fmt(s['max'] * m.scale, m.digits)})"


def ratio_name(m: Metric, base_name: str, other_name: str) -> str:
    """How a ratio is written: other/base for lower-is-better metrics (times, sizes), base/other
    for higher-is-better ones (rates), so a value above 1 always means the base is better."""
    return f"{base_name}/{other_name}" if m.lower_is_better is False else f"{other_name}/{base_name}"


def ratio(base: dict, other: dict, m: Metric, base_name: str, other_name: str) -> tuple[float | None, str]:
    """Ratio of the medians, with the winner spelled out: "mlflow/slipway = 12.3x (slipway faster)"
    for times, "slipway/mlflow = 12.3x (slipway faster)" for rates (see ratio_name)."""
    if not base or not other or not base.get("n") or not other.get("n"):
        return None, "-"
    num, den = (base, other) if m.lower_is_better is False else (other, base)
    if not den["median"]:
        return None, "-"
    r = num["median"] / den["median"]
    digits = 0 if r >= 100 else 1 if r >= 1 else 2
    text = f"{ratio_name(m, base_name, other_name)} = {r:.{digits}f}x"
    if m.lower_is_better is None or r == 1:
        return r, text
    base_wins = r > 1
    return r, f"{text} ({base_name if base_wins else other_name} {m.better})"


def target_text(m: Metric) -> str:
    return "-" if m.target is None else f">= {m.target:g}x"


def target_met(r: float | None, m: Metric) -> bool | None:
    """Whether a ratio (as ratio() returns it) reaches the metric's target; None if unknown."""
    if m.target is None or r is None:
        return None
    return r >= m.target


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: " | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    sep = "-+-".join("-" * w for w in widths)
    return "\n".join([line(header), sep] + [line(r) for r in rows])


@dataclass
class Report:
    """Collects samples per system and metric; prints the table and writes the JSON."""

    name: str
    systems: list[str]  # first one is the base of every ratio (slipway)
    metrics: list[Metric]
    samples: dict = field(default_factory=dict)  # system -> metric key -> [values]
    meta: dict = field(default_factory=dict)

    def add(self, system: str, key: str, value: float) -> None:
        self.samples.setdefault(system, {}).setdefault(key, []).append(value)

    def summaries(self) -> dict:
        return {s: {m.key: summary(self.samples.get(s, {}).get(m.key, [])) for m in self.metrics}
                for s in self.systems}

    def render(self) -> str:
        sums = self.summaries()
        base = self.systems[0]
        others = self.systems[1:]
        targets = any(m.target is not None for m in self.metrics)
        header = ["metric: median (min-max)"] + self.systems + ["ratio of medians" for _ in others]
        if targets:
            header += ["target"] + ["met?" if len(others) == 1 else f"met? ({o})" for o in others]
        rows = []
        for m in self.metrics:
            row = [m.label] + [cell(sums[s][m.key], m) for s in self.systems]
            met = []
            for other in others:
                r, text = ratio(sums[base][m.key], sums[other][m.key], m, base, other)
                row.append(text)
                ok = target_met(r, m)
                met.append("-" if ok is None else "yes" if ok else "NO")
            if targets:
                row += [target_text(m)] + met
            rows.append(row)
        reps = ", ".join(f"{s} n={max((len(v) for v in self.samples.get(s, {}).values()), default=0)}"
                         for s in self.systems)
        return table(rows, header) + f"\n(repetitions: {reps})"

    def write_json(self) -> Path:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = RESULTS_DIR / f"{self.name}-{stamp}.json"
        n = 1
        while path.exists():
            n += 1
            path = RESULTS_DIR / f"{self.name}-{stamp}-{n}.json"
        sums = self.summaries()
        base = self.systems[0]
        ratios = {}
        for m in self.metrics:
            for other in self.systems[1:]:
                r, text = ratio(sums[base][m.key], sums[other][m.key], m, base, other)
                entry = {"value": r, "text": text}
                if m.target is not None:
                    entry.update(target=m.target, met=target_met(r, m))
                ratios.setdefault(m.key, {})[ratio_name(m, base, other)] = entry
        doc = {
            "benchmark": self.name,
            "timestamp": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            **self.meta,
            "metrics": {m.key: {"label": m.label, "raw_unit": m.raw_unit or m.unit,
                                "shown_unit": m.unit, "shown_scale": m.scale,
                                "lower_is_better": m.lower_is_better,
                                **({"target": m.target} if m.target is not None else {})}
                        for m in self.metrics},
            "results": sums,
            "ratios": ratios,
        }
        path.write_text(json.dumps(doc, indent=2) + "\n")
        return path


# --------------------------------------------------------------------------- entry


_TEMP: list[Path] = []


def temp_dir(name: str, keep: bool = False) -> Path:
    """A fresh temp folder for one benchmark run; removed after every server is stopped
    (on any exit path) unless keep."""
    path = Path(tempfile.mkdtemp(prefix=f"slipway-bench-{name}-"))
    if not keep:
        _TEMP.append(path)
    return path


def run_main(main: Callable[[], int | None]) -> None:
    """Run a benchmark's main(): cleanup on every exit path, clear errors, exit code."""
    install_cleanup()
    code = 0
    try:
        code = main() or 0
    except KeyboardInterrupt:
        if _LINE_OPEN:
            say()
        print("interrupted; stopping servers", file=sys.stderr)
        code = 130
    except BenchError as e:
        if _LINE_OPEN:
            say()  # end the half-written progress line
        print(f"error: {e}", file=sys.stderr)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        stop_all()
        while _TEMP:
            remove_dir(_TEMP.pop())
    sys.exit(code)


def remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def mib(n: int | None) -> float | None:
    return None if n is None else n / 2**20


_LINE_OPEN = False


def say(msg: str = "") -> None:
    """Print a line (finishing one begun with begin_line)."""
    global _LINE_OPEN
    print(msg, flush=True)
    _LINE_OPEN = False


def begin_line(msg: str) -> None:
    """Print the start of a progress line; say() finishes it."""
    global _LINE_OPEN
    print(msg, end="", flush=True)
    _LINE_OPEN = True


def clean_env(drop_prefixes: Sequence[str]) -> dict:
    """os.environ without variables starting with any prefix (so a user's SLIPWAY_* or
    MLFLOW_* settings cannot change what a benchmark measures)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(tuple(drop_prefixes))}
