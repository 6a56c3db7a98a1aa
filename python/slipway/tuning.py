"""Hyperparameter tuning: studies and trials on a Slipway server, ask/tell style.

    >>> study = client.study("falls-mlp", direction="maximize", metric="f1", pruner="median")
    >>> trial = study.ask()
    >>> lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    >>> for epoch in range(20):
    ...     trial.report(evaluate(), step=epoch)
    ...     if trial.should_prune():
    ...         raise slipway.TrialPruned()
    >>> study.tell(trial, f1)

or `study.optimize(objective, n_trials=100)` (as Optuna's: `timeout`, `n_jobs` trials at once
in threads, `catch`, `callbacks`, `show_progress_bar`). Every trial is a tracked run (a child of
the study's run): its params, intermediate values and objective are on it.

Several objectives, as in Optuna: give `directions` and `metrics`, return (or tell) one value
per objective, and read the Pareto front (the complete trials no other beats on every
objective) from `best_trials`; such a study has no pruner and no single best trial.

    >>> study = client.study("falls-tradeoff", directions=["minimize", "maximize"],
    ...                      metrics=["latency_ms", "f1"])
    >>> def objective(trial):
    ...     width = trial.suggest_int("width", 16, 512, log=True)
    ...     return measure_latency(width), evaluate_f1(width)
    >>> study.optimize(objective, n_trials=50)
    >>> [t["values"] for t in study.best_trials]
    >>> study.importance(objective=1)             # the parameters that matter for f1

Inside an objective command run by `slipway tune run study.toml`, `current_trial()` gives the
trial the command is running (its params, `report`, `should_prune`, `prune`).
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any, Callable, Optional, Sequence, Union

from .client import SlipwayError, _q

#: The exit status by which an objective command tells `slipway tune` that it pruned itself.
PRUNED_EXIT_CODE = 75


class TrialPruned(Exception):
    """Raise from an objective to end its trial as PRUNED (as optuna.TrialPruned)."""


#: An objective's value: a number, or one per objective (a list or tuple) in a multi-objective study.
ObjectiveValue = Union[float, Sequence[float]]


def _number(value) -> Any:
    return "NaN" if isinstance(value, float) and math.isnan(value) else value


def _values(value: ObjectiveValue) -> Optional[list]:
    """The floats of a sequence of values; None for a single number (or a string of one)."""
    if isinstance(value, (numbers.Real, str, bytes)):
        return None
    try:
        items = list(value)
    except TypeError:  # not iterable (as a numpy 0-d array): a single number
        return None
    return [float(v) for v in items]


def _objective_values(value, n_objectives: int) -> tuple:
    """What an objective returned as (values, None), or (None, why the trial fails): Optuna's
    rules, a number or a value per objective, none of them None or NaN."""
    if value is None:
        return None, "the objective returned None"
    try:
        values = _values(value)
        if values is None:
            values = [float(value)]
    except (TypeError, ValueError):
        return None, f"the objective returned {value!r}, not a number or a sequence of numbers"
    if len(values) != n_objectives:
        return None, (f"the objective returned {len(values)} value{'' if len(values) == 1 else 's'} "
                      f"({value!r}), the study has {n_objectives} objective{'' if n_objectives == 1 else 's'}")
    if any(math.isnan(v) for v in values):
        return None, f"the objective returned {value!r}"
    return values, None


class Trial:
    """One trial of a study: `number`, `run_id` (its tracked run) and `params` drawn so far."""

    def __init__(self, study: "Study", info: dict):
        self.study = study
        self.number = info["number"]
        self.run_id = info["run_id"]
        self.params = dict(info.get("params") or {})
        self.info = info

    def __repr__(self) -> str:
        return f"Trial({self.study.name!r}, number={self.number}, params={self.params})"

    def _body(self, body: dict) -> dict:
        """`body` with the trial's run, so that the server refuses (404) to act on another trial
        of the same number (its study deleted and made again)."""
        return {**body, "run_id": self.run_id} if self.run_id else body

    def _path(self, action: str) -> str:
        return f"/api/v1/studies/{_q(self.study.name)}/trials/{self.number}/{action}"

    def _suggest(self, name: str, distribution: dict):
        value = self.study.client._request("POST", self._path("suggest"),
                                           self._body({"name": name, "distribution": distribution}))["value"]
        self.params[name] = value
        return value

    def suggest_float(self, name: str, low: float, high: float, *, step: Optional[float] = None, log: bool = False) -> float:
        d = {"type": "float", "low": low, "high": high, "log": log}
        if step is not None:
            d["step"] = step
        return float(self._suggest(name, d))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return int(self._suggest(name, {"type": "int", "low": low, "high": high, "step": step, "log": log}))

    def suggest_categorical(self, name: str, choices):
        return self._suggest(name, {"type": "categorical", "choices": list(choices)})

    def report(self, value: float, step: int) -> None:
        """An intermediate value of the objective at `step` (a metric step of the trial's run).
        A multi-objective study takes none (pruning needs a single objective): the server
        refuses it, raised as a SlipwayError (HTTP 400) — log each objective's metric in the
        trial's run yourself instead."""
        self.study.client._request("POST", self._path("report"), self._body({"step": int(step), "value": _number(float(value))}))

    def should_prune(self) -> bool:
        """Whether the study's pruner stops this trial at its latest step (never, in a
        multi-objective study: it has no pruner, as in Optuna)."""
        return bool(self.study.client._request("POST", self._path("should_prune"), self._body({}))["prune"])

    def heartbeat(self, lease_ms: int = 60_000) -> bool:
        """Renews the trial's lease; False when it has ended or its study was deleted (stop
        working on it)."""
        try:
            answer = self.study.client._request("POST", self._path("heartbeat"), self._body({"lease_ms": lease_ms}))
        except SlipwayError as e:
            if e.status == 404:
                return False
            raise
        return bool(answer["running"])

    def prune(self) -> None:
        """In an objective command: end this process as a pruned trial."""
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(PRUNED_EXIT_CODE)


class Study:
    """A study on the server: `name`, its objectives (`directions` and `metrics`, one per
    objective; `direction` and `metric` are the first's), and its trials."""

    def __init__(self, client, info: dict):
        self.client = client
        self.name = info["name"]
        self.info = info
        self._optimizing = 0  # optimize calls under way (study.stop() is for them)
        self._stop_requested = False

    def __repr__(self) -> str:
        if self.is_multi_objective:
            return f"Study({self.name!r}, directions={self.directions!r}, metrics={self.metrics!r})"
        return f"Study({self.name!r}, direction={self.info['direction']!r}, metric={self.info['metric']!r})"

    @property
    def direction(self) -> str:
        """The (first) objective's direction: "minimize" or "maximize"."""
        return self.info["direction"]

    @property
    def metric(self) -> str:
        """The (first) objective's metric name in the trials' runs."""
        return self.info["metric"]

    @property
    def directions(self) -> list:
        """Each objective's direction, in order."""
        return list(self.info.get("directions") or [self.info["direction"]])

    @property
    def metrics(self) -> list:
        """Each objective's metric name in the trials' runs, in the order of `directions`."""
        return list(self.info.get("metrics") or [self.info["metric"]])

    @property
    def is_multi_objective(self) -> bool:
        """Whether the study has several objectives."""
        return len(self.metrics) > 1

    def refresh(self) -> "Study":
        """Reads the study again from the server: counts, best trial(s), `queued_jobs`."""
        self.info = self.client._request("GET", f"/api/v1/studies/{_q(self.name)}")
        return self

    def queued_jobs(self) -> int:
        """How many of the study's trial jobs wait for a worker, as of now (a study run from a
        file with `slipway tune run`; 0 for one driven by ask/tell)."""
        return int(self.refresh().info.get("queued_jobs", 0))

    def ask(self, fixed: Optional[dict] = None, lease_ms: Optional[int] = None) -> Trial:
        """A new trial (and its run). `fixed` params take these values when suggested."""
        body: dict = {"fixed": fixed or {}}
        if lease_ms is not None:
            body["lease_ms"] = lease_ms
        return Trial(self, self.client._request("POST", f"/api/v1/studies/{_q(self.name)}/trials", body))

    def tell(self, trial, values: Optional[ObjectiveValue] = None, state: str = "COMPLETE",
             error: Optional[str] = None, *, value: Optional[float] = None) -> dict:
        """Ends a trial (a Trial or its number) and returns it: COMPLETE with its value, PRUNED,
        or FAIL. `values` is the objective's value, or in a multi-objective study a sequence of
        one per objective (`study.tell(trial, [latency, f1])`, as in Optuna); a NaN fails the
        trial, a wrong count is refused (SlipwayError, HTTP 400) and the trial goes on running.
        COMPLETE without values takes each objective metric's latest value in the trial's run.
        A multi-objective study's trials cannot be PRUNED. (`value=` is the older name of
        `values`.)"""
        number = trial.number if isinstance(trial, Trial) else int(trial)
        if value is not None:
            if values is not None:
                raise TypeError("tell() takes values or value, not both")
            values = value
        body: dict = {"state": state}
        if values is not None:
            many = _values(values)
            if many is None:
                body["value"] = _number(float(values))
            else:
                body["values"] = [_number(v) for v in many]
        if error is not None:
            body["error"] = error
        if isinstance(trial, Trial):
            body = trial._body(body)
        return self.client._request("POST", f"/api/v1/studies/{_q(self.name)}/trials/{number}/tell", body)

    def delete(self, runs: bool = False, force: bool = False) -> dict:
        """Deletes this study on the server (see `Slipway.delete_study`)."""
        return self.client.delete_study(self.name, runs=runs, force=force)

    def enqueue_trial(self, params: dict) -> None:
        """A coming trial takes these values. Raises `SlipwayError` (400) for a value that no range
        its parameter was declared or suggested with holds."""
        self.client._request("POST", f"/api/v1/studies/{_q(self.name)}/enqueue", {"params": params})

    def optimize(self, objective: Callable[[Trial], ObjectiveValue], n_trials: Optional[int] = None,
                 timeout: Optional[float] = None, n_jobs: int = 1,
                 catch: Union[type, Iterable[type]] = (),
                 callbacks: Optional[Iterable[Callable[["Study", dict], None]]] = None,
                 show_progress_bar: bool = False) -> None:
        """Runs `objective` on new trials, as Optuna's `Study.optimize`: its return value
        completes a trial (a number, or a tuple or list of one per objective in a multi-objective
        study), TrialPruned prunes it, an exception in `catch` fails it and the study goes on. A
        return value that is None, NaN, not a number or of the wrong count fails the trial and
        the study goes on. Any other exception fails its trial, starts no more, and is raised
        once the trials still running have finished.

        `n_trials` trials in all, or with None no limit; `timeout` (seconds): no trial starts
        once that long has passed since the call (running ones finish). With both None it runs
        until interrupted (Ctrl+C) or `study.stop()`. `n_jobs` trials at once, each in a thread
        of this process (-1: one per CPU); each is asked while the others run, as the study's
        workers are. Each callback is called as `callback(study, trial)` after each trial is
        told, with the trial as the server returned it (the dict of `tell`: number, state,
        value(s), params, run_id, error, …) — not for a trial whose exception stops the
        study — in the thread that ran the trial, one callback at a time. `show_progress_bar`
        keeps a line on stderr: the trials done, the time when there is a timeout, and the
        study's best value (its front's size with several objectives)."""
        if n_jobs == -1:
            n_jobs = os.cpu_count() or 1
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
            raise ValueError(f"n_jobs must be a positive integer or -1 (one per CPU), got {n_jobs!r}")
        if n_trials is not None and n_trials < 0:
            raise ValueError(f"n_trials must be 0 or more, or None for no limit, got {n_trials!r}")
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be 0 or more seconds, or None for no limit, got {timeout!r}")
        catch = tuple(catch) if isinstance(catch, Iterable) else (catch,)
        callbacks = list(callbacks or ())
        n_objectives = len(self.metrics)
        started = time.monotonic()
        lock = threading.Lock()  # callbacks and the progress line, one trial at a time
        self._stop_requested = False
        self._optimizing += 1
        progress = None
        try:
            progress = _Progress(self, n_trials, timeout, started) if show_progress_bar else None

            def may_start() -> bool:
                if self._stop_requested:
                    return False
                return timeout is None or time.monotonic() - started < timeout

            def run_one() -> None:
                told = self._run_trial(objective, catch, n_objectives)
                if callbacks or progress is not None:
                    with lock:
                        for callback in callbacks:
                            callback(self, told)
                        if progress is not None:
                            progress.trial_done()

            count = itertools.count() if n_trials is None else range(n_trials)
            if n_jobs == 1:
                for _ in count:
                    if not may_start():
                        break
                    run_one()
                return
            with ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix=f"slipway-study-{self.name}") as pool:
                running: set = set()
                for _ in count:
                    if len(running) >= n_jobs:
                        done, running = wait(running, return_when=FIRST_COMPLETED)
                        for future in done:
                            future.result()  # a trial's exception: raised once the running ones end
                    if not may_start():
                        break
                    running.add(pool.submit(run_one))
                for future in wait(running)[0]:
                    future.result()
        finally:
            self._optimizing -= 1
            if progress is not None:
                progress.close()

    def _run_trial(self, objective: Callable[[Trial], ObjectiveValue], catch: tuple, n_objectives: int) -> dict:
        """Asks a trial, runs `objective` on it and tells how it ended; returns the told trial.
        An exception not in `catch` fails the trial and is raised."""
        trial = self.ask()
        try:
            value = objective(trial)
        except TrialPruned:
            return self.tell(trial, state="PRUNED")
        except catch as e:  # noqa: B030 (a tuple of exception types)
            return self.tell(trial, state="FAIL", error="".join(traceback.format_exception_only(type(e), e)).strip())
        except BaseException as e:
            self.tell(trial, state="FAIL", error="".join(traceback.format_exception_only(type(e), e)).strip())
            raise
        values, why = _objective_values(value, n_objectives)
        if values is None:
            return self.tell(trial, state="FAIL", error=why)
        return self.tell(trial, values if n_objectives > 1 else values[0])

    def stop(self) -> None:
        """From an objective or a callback: `optimize` starts no more trials and returns once
        the running ones have finished (as Optuna's `Study.stop`)."""
        if not self._optimizing:
            raise RuntimeError("study.stop() stops study.optimize: call it from an objective or a callback")
        self._stop_requested = True

    @property
    def trials(self) -> list:
        """Every trial as a dict: number, state, params, value, intermediate, run_id, error, …"""
        return self.client._request("GET", f"/api/v1/studies/{_q(self.name)}/trials")["trials"]

    def trials_dataframe(self):
        """The trials as a pandas DataFrame: number, state, value, run_id, params_* columns; in a
        multi-objective study a values_<metric> column per objective instead of value (as
        Optuna's values_<name> columns)."""
        import pandas as pd

        metrics = self.metrics if self.is_multi_objective else None
        rows = []
        for t in self.trials:
            row = {"number": t["number"], "state": t["state"]}
            if metrics is None:
                row["value"] = t["value"]
            else:
                values = t.get("values") or []
                for i, m in enumerate(metrics):
                    row[f"values_{m}"] = values[i] if i < len(values) else None
            row["run_id"] = t["run_id"]
            for k, v in t["params"].items():
                row[f"params_{k}"] = v
            rows.append(row)
        return pd.DataFrame(rows)

    def importance(self, objective: int = 0) -> dict:
        """Each parameter's importance for objective number `objective` (from 0, the first),
        {param: share} most important first (the method: ε² of the objective's ranks over bins
        of the parameter, see the API's `method`). An objective the study does not have is
        refused (SlipwayError, HTTP 400)."""
        got = self.client._request("GET", f"/api/v1/studies/{_q(self.name)}/importance?objective={int(objective)}")
        return {i["param"]: i["importance"] for i in got["importances"]}

    @property
    def best_trials(self) -> list:
        """The Pareto front: the complete trials no other complete trial beats on every
        objective (no worse on each, better on one), as dicts, by number; with one objective,
        the best trial alone. Empty before a trial completes."""
        info = self.refresh().info
        if "best_trials" in info:
            return info["best_trials"]
        return [info["best"]] if info.get("best") else []

    @property
    def best_trial(self) -> dict:
        """The best complete trial (a dict). A multi-objective study has none: RuntimeError,
        as in Optuna (its best trials are `best_trials`)."""
        info = self.refresh().info
        if self.is_multi_objective:
            raise RuntimeError(f"study {self.name!r} has {len(self.metrics)} objectives: a multi-objective "
                               "study has no single best trial; use study.best_trials (the Pareto front)")
        best = info.get("best")
        if best is None:
            raise ValueError(f"study {self.name!r} has no complete trial yet")
        return best

    @property
    def best_value(self) -> float:
        """The best trial's value (RuntimeError in a multi-objective study, see `best_trial`)."""
        return self.best_trial["value"]

    @property
    def best_params(self) -> dict:
        """The best trial's params (RuntimeError in a multi-objective study, see `best_trial`)."""
        return self.best_trial["params"]


class _Progress:
    """`optimize`'s line on stderr, "trials 12/100 best 0.1234": written again over itself
    (after a carriage return) after each trial, ended by a newline."""

    def __init__(self, study: Study, n_trials: Optional[int], timeout: Optional[float], started: float):
        self.study, self.n_trials, self.timeout, self.started = study, n_trials, timeout, started
        self.done = 0
        self.width = 0
        self.show()

    def trial_done(self) -> None:
        self.done += 1
        self.show()

    def show(self) -> None:
        line = f"trials {self.done}" + ("" if self.n_trials is None else f"/{self.n_trials}")
        if self.timeout is not None:
            line += f" {time.monotonic() - self.started:.1f}/{self.timeout:g}s"
        info = self.study.refresh().info
        if self.study.is_multi_objective:
            line += f" front {len(info.get('best_trials') or [])}"
        elif info.get("best") is not None:
            line += f" best {info['best']['value']:.6g}"
        sys.stderr.write("\r" + line.ljust(self.width))
        sys.stderr.flush()
        self.width = len(line)

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


def current_trial(client=None) -> Trial:
    """The trial this process runs, inside an objective command started by `slipway tune`:
    read from SLIPWAY_STUDY, SLIPWAY_TRIAL_NUMBER and the params file SLIPWAY_TRIAL_PARAMS (its
    `study.metrics`, the metrics to log, from SLIPWAY_METRICS)."""
    from .client import Slipway

    try:
        name = os.environ["SLIPWAY_STUDY"]
        number = int(os.environ["SLIPWAY_TRIAL_NUMBER"])
    except KeyError as e:
        raise RuntimeError(f"not inside a trial started by `slipway tune` ({e.args[0]} is not set)") from None
    client = client or Slipway()
    params = {}
    path = os.environ.get("SLIPWAY_TRIAL_PARAMS")
    if path:
        with open(path) as f:
            params = json.load(f)
    info = {"number": number, "run_id": os.environ.get("MLFLOW_RUN_ID", ""), "params": params}
    metric = os.environ.get("SLIPWAY_METRIC", "value")
    metrics = [m for m in os.environ.get("SLIPWAY_METRICS", "").split(",") if m] or [metric]
    study = Study(client, {"name": name, "direction": "", "metric": metric, "metrics": metrics})
    return Trial(study, info)
