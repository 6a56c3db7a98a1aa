"""Hyperparameter tuning: studies and trials on a Slipway server, ask/tell style.

    >>> study = client.study("falls-mlp", direction="maximize", metric="f1", pruner="median")
    >>> trial = study.ask()
    >>> lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    >>> for epoch in range(20):
    ...     trial.report(evaluate(), step=epoch)
    ...     if trial.should_prune():
    ...         raise slipway.TrialPruned()
    >>> study.tell(trial, f1)

or `study.optimize(objective, n_trials=100)`. Every trial is a tracked run (a child of the
study's run): its params, intermediate values and objective are on it.

Inside an objective command run by `slipway tune run study.toml`, `current_trial()` gives the
trial the command is running (its params, `report`, `should_prune`, `prune`).
"""

from __future__ import annotations

import json
import math
import os
import sys
import traceback
from typing import Any, Callable, Optional

from .client import _q

#: The exit status by which an objective command tells `slipway tune` that it pruned itself.
PRUNED_EXIT_CODE = 75


class TrialPruned(Exception):
    """Raise from an objective to end its trial as PRUNED (as optuna.TrialPruned)."""


def _number(value) -> Any:
    return "NaN" if isinstance(value, float) and math.isnan(value) else value


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

    def _path(self, action: str) -> str:
        return f"/api/v1/studies/{_q(self.study.name)}/trials/{self.number}/{action}"

    def _suggest(self, name: str, distribution: dict):
        value = self.study.client._request("POST", self._path("suggest"), {"name": name, "distribution": distribution})["value"]
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
        """An intermediate value of the objective at `step` (a metric step of the trial's run)."""
        self.study.client._request("POST", self._path("report"), {"step": int(step), "value": _number(float(value))})

    def should_prune(self) -> bool:
        """Whether the study's pruner stops this trial at its latest step."""
        return bool(self.study.client._request("POST", self._path("should_prune"), {})["prune"])

    def heartbeat(self, lease_ms: int = 60_000) -> bool:
        """Renews the trial's lease; False when it has ended (stop working on it)."""
        return bool(self.study.client._request("POST", self._path("heartbeat"), {"lease_ms": lease_ms})["running"])

    def prune(self) -> None:
        """In an objective command: end this process as a pruned trial."""
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(PRUNED_EXIT_CODE)


class Study:
    """A study on the server: `name`, `direction`, `metric`, and its trials."""

    def __init__(self, client, info: dict):
        self.client = client
        self.name = info["name"]
        self.info = info

    def __repr__(self) -> str:
        return f"Study({self.name!r}, direction={self.info['direction']!r}, metric={self.info['metric']!r})"

    @property
    def direction(self) -> str:
        return self.info["direction"]

    @property
    def metric(self) -> str:
        return self.info["metric"]

    def refresh(self) -> "Study":
        self.info = self.client._request("GET", f"/api/v1/studies/{_q(self.name)}")
        return self

    def ask(self, fixed: Optional[dict] = None, lease_ms: Optional[int] = None) -> Trial:
        """A new trial (and its run). `fixed` params take these values when suggested."""
        body: dict = {"fixed": fixed or {}}
        if lease_ms is not None:
            body["lease_ms"] = lease_ms
        return Trial(self, self.client._request("POST", f"/api/v1/studies/{_q(self.name)}/trials", body))

    def tell(self, trial, value: Optional[float] = None, state: str = "COMPLETE", error: Optional[str] = None) -> dict:
        """Ends a trial (a Trial or its number): COMPLETE with its value, PRUNED, or FAIL."""
        number = trial.number if isinstance(trial, Trial) else int(trial)
        body: dict = {"state": state}
        if value is not None:
            body["value"] = _number(float(value))
        if error is not None:
            body["error"] = error
        return self.client._request("POST", f"/api/v1/studies/{_q(self.name)}/trials/{number}/tell", body)

    def enqueue_trial(self, params: dict) -> None:
        """A coming trial takes these values."""
        self.client._request("POST", f"/api/v1/studies/{_q(self.name)}/enqueue", {"params": params})

    def optimize(self, objective: Callable[[Trial], float], n_trials: int, catch: tuple = ()) -> None:
        """Runs `objective` for `n_trials` trials: its return value completes a trial,
        TrialPruned prunes it, an exception in `catch` fails it and the study goes on (others
        fail it and are raised)."""
        for _ in range(n_trials):
            trial = self.ask()
            try:
                value = objective(trial)
            except TrialPruned:
                self.tell(trial, state="PRUNED")
                continue
            except catch as e:  # noqa: B030 (a tuple of exception types)
                self.tell(trial, state="FAIL", error="".join(traceback.format_exception_only(type(e), e)).strip())
                continue
            except BaseException as e:
                self.tell(trial, state="FAIL", error="".join(traceback.format_exception_only(type(e), e)).strip())
                raise
            if value is None or (isinstance(value, float) and math.isnan(value)):
                self.tell(trial, state="FAIL", error=f"the objective returned {value!r}")
            else:
                self.tell(trial, float(value))

    @property
    def trials(self) -> list:
        """Every trial as a dict: number, state, params, value, intermediate, run_id, error, …"""
        return self.client._request("GET", f"/api/v1/studies/{_q(self.name)}/trials")["trials"]

    def trials_dataframe(self):
        """The trials as a pandas DataFrame: number, state, value, params_* columns, run_id."""
        import pandas as pd

        rows = []
        for t in self.trials:
            row = {"number": t["number"], "state": t["state"], "value": t["value"], "run_id": t["run_id"]}
            for k, v in t["params"].items():
                row[f"params_{k}"] = v
            rows.append(row)
        return pd.DataFrame(rows)

    def importance(self) -> dict:
        """Each parameter's importance, {param: share} most important first (the method: ε² of
        the objective's ranks over bins of the parameter, see the API's `method`)."""
        got = self.client._request("GET", f"/api/v1/studies/{_q(self.name)}/importance")
        return {i["param"]: i["importance"] for i in got["importances"]}

    @property
    def best_trial(self) -> dict:
        best = self.refresh().info.get("best")
        if best is None:
            raise ValueError(f"study {self.name!r} has no complete trial yet")
        return best

    @property
    def best_value(self) -> float:
        return self.best_trial["value"]

    @property
    def best_params(self) -> dict:
        return self.best_trial["params"]


def current_trial(client=None) -> Trial:
    """The trial this process runs, inside an objective command started by `slipway tune`:
    read from SLIPWAY_STUDY, SLIPWAY_TRIAL_NUMBER and the params file SLIPWAY_TRIAL_PARAMS."""
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
    study = Study(client, {"name": name, "direction": "", "metric": os.environ.get("SLIPWAY_METRIC", "value")})
    return Trial(study, info)
