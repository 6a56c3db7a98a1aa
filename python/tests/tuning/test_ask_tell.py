"""Tuning from Python, ask/tell, on both stores: studies and trials over the native HTTP API,
each trial a tracked run under the study's run; pruners on synthetic learning curves."""

import json
import math
import re
import threading
import time
import urllib.error
import urllib.request

import pytest

from slipway import Slipway, SlipwayError, TrialPruned


def quad(trial):
    x = trial.suggest_float("x", -10, 10)
    k = trial.suggest_int("k", -5, 5)
    c = trial.suggest_categorical("c", ["a", "b"])
    return (x - 3) ** 2 + (k - 1) ** 2 + (0 if c == "b" else 2)


def test_ask_tell_records_every_trial_as_a_child_run_and_finds_better_values(server):
    client = Slipway(server.url)
    study = client.study("quad", seed=3)
    study.optimize(quad, n_trials=40)
    trials = study.trials
    assert [t["number"] for t in trials] == list(range(40))
    assert all(t["state"] == "COMPLETE" for t in trials)
    values = [t["value"] for t in trials]
    assert study.best_value == min(values)
    assert study.best_value < min(values[:10]), "TPE's trials beat the 10 random start-up ones"
    assert set(study.best_params) == {"x", "k", "c"}
    # The best trial is a run under the study's run, with its params and objective.
    best = study.best_trial
    run = client.run(best["run_id"])
    assert run["tags"]["mlflow.parentRunId"] == study.info["parent_run_id"]
    assert run["tags"]["slipway.trial_state"] == "COMPLETE"
    assert run["params"]["c"] == best["params"]["c"]
    assert float(run["params"]["x"]) == best["params"]["x"]
    assert run["metrics"]["value"] == best["value"]
    assert study.info["sampler"]["good_clip"] == 0.25, "sharper than Optuna's by default"
    assert study.info["sampler"]["believer"] is True, "running trials are predicted by default"
    optuna_rule = client.study("quad-optuna", sampler={"type": "tpe", "good_clip": 1, "constant_liar": True})
    assert optuna_rule.info["sampler"]["good_clip"] == 1
    assert optuna_rule.info["sampler"]["believer"] is False, "the liar replaces the believer"
    # The same study again: loaded, not created, its trials kept.
    again = client.study("quad", sampler="random")
    assert again.info["study_id"] == study.info["study_id"]
    assert again.info["counts"]["COMPLETE"] == 40
    listed = client.studies()
    assert sorted(s["name"] for s in listed) == ["quad", "quad-optuna"]
    assert all(s["queued_jobs"] == 0 and "best" not in s for s in listed), listed


def test_bad_requests_are_refused_with_the_field_named_and_change_nothing(server):
    client = Slipway(server.url)
    study = client.study("bad", seed=1)
    trial = study.ask()
    with pytest.raises(SlipwayError) as e:
        trial.suggest_float("lr", 1.0, 0.1)
    assert e.value.status == 400 and "distribution.low" in e.value.message
    with pytest.raises(SlipwayError) as e:
        trial.suggest_float("lr", 0.0, 1.0, log=True)
    assert e.value.status == 400 and "log" in e.value.message
    trial.suggest_float("lr", 0.1, 1.0)
    with pytest.raises(SlipwayError) as e:
        trial.suggest_float("lr", 0.1, 2.0)
    assert e.value.status == 400 and "already suggested" in e.value.message
    study.tell(trial, 1.5)
    with pytest.raises(SlipwayError) as e:
        study.tell(trial, 0.5)
    assert e.value.status == 409
    with pytest.raises(SlipwayError) as e:
        client.study("bad2", sampler="anneal")
    assert e.value.status == 400 and "sampler.type" in e.value.message
    with pytest.raises(SlipwayError) as e:
        client.study("bad3", sampler={"type": "tpe", "good_clip": 0})
    assert e.value.status == 400 and "sampler.good_clip" in e.value.message
    with pytest.raises(SlipwayError) as e:
        client.study("bad4", sampler={"type": "tpe", "constant_liar": True, "believer": True})
    assert e.value.status == 400 and "sampler.believer" in e.value.message
    with pytest.raises(SlipwayError) as e:
        client.get_study("nope")
    assert e.value.status == 404
    # An enqueued value outside the range its parameter was suggested with: refused at once,
    # not left to fail the trial that would take it; one inside is taken by the next trial.
    with pytest.raises(SlipwayError) as e:
        study.enqueue_trial({"lr": 5.0})
    assert e.value.status == 400 and e.value.message == "lr: 5.0 lies outside float [0.1, 1]"
    study.enqueue_trial({"lr": 0.5})
    nxt = study.ask()
    assert nxt.suggest_float("lr", 0.1, 1.0) == 0.5
    study.tell(nxt, 0.25)
    # The trials of one state; a state or a query field that is not one is refused.
    running = study.ask()
    listed = client._request("GET", "/api/v1/studies/bad/trials?state=running")["trials"]
    assert [t["number"] for t in listed] == [running.number]
    listed = client._request("GET", "/api/v1/studies/bad/trials?state=COMPLETE")["trials"]
    assert [t["value"] for t in listed] == [1.5, 0.25]
    for query, says in [("state=DONE", "state: unknown trial state \"DONE\" (expected RUNNING, COMPLETE, PRUNED or FAIL)"),
                        ("stat=FAIL", "unknown field `stat`")]:
        with pytest.raises(SlipwayError) as e:
            client._request("GET", f"/api/v1/studies/bad/trials?{query}")
        assert e.value.status == 400 and says in e.value.message, e.value.message
    study.tell(running, 0.5)
    # A command never comes over HTTP (it would run on the workers), in the fields or a file,
    # nor a trial job.
    space = {"x": {"type": "float", "low": 0, "high": 1}}
    for body, field in [({"name": "cmd", "command": "touch /tmp/pwned"}, "command"),
                        ({"spec": {"name": "cmd", "command": "touch /tmp/pwned", "params": space}}, "spec.command")]:
        with pytest.raises(SlipwayError) as e:
            client._request("POST", "/api/v1/studies", body)
        assert e.value.status == 400 and e.value.message.startswith(f"{field}: a study's command is set with"), e.value.message
    with pytest.raises(SlipwayError) as e:
        client._request("POST", "/api/v1/jobs", {"kind": "tune.trial", "payload": {"study": "bad"}})
    assert e.value.status == 400 and "unknown job kind" in e.value.message
    assert [s["name"] for s in client.studies()] == ["bad"], "the refused study was not created"
    assert study.trials[0]["value"] == 1.5


def curve(quality: float, step: int) -> float:
    """A learning curve: starts at 2 and decays toward 1 - quality (hopeless: toward 1.5)."""
    final = 1.5 if quality < 0.5 else 1.0 - quality
    return final + (2.0 - final) * math.exp(-step / 3.0)


@pytest.mark.parametrize("pruner", [
    {"type": "median", "n_startup_trials": 5, "n_warmup_steps": 1},
    {"type": "asha", "min_resource": 1, "reduction_factor": 3},
    {"type": "hyperband", "min_resource": 1, "max_resource": 20, "reduction_factor": 3},
])
def test_pruners_stop_hopeless_trials_early_and_never_the_best(server, pruner):
    client = Slipway(server.url)
    study = client.study(f"curves-{pruner['type']}", sampler="random", pruner=pruner, seed=11)
    steps, halfway = 20, 10
    stopped_at = {}

    def objective(trial):
        q = trial.suggest_float("quality", 0.0, 1.0)
        for step in range(steps):
            trial.report(curve(q, step), step)
            if trial.should_prune():
                stopped_at[trial.number] = step
                raise TrialPruned()
        return curve(q, steps - 1)

    study.optimize(objective, n_trials=40)
    trials = study.trials
    quality = {t["number"]: t["params"]["quality"] for t in trials}
    hopeless = [n for n, q in quality.items() if q < 0.5]
    assert len(hopeless) >= 10, "random sampling gives about half hopeless configurations"
    early = [n for n in hopeless if n in stopped_at and stopped_at[n] < halfway]
    assert len(early) >= 0.5 * len(hopeless), f"{len(early)} of {len(hopeless)} hopeless trials stopped early"
    eventual_best = max(quality, key=quality.get)
    assert trials[eventual_best]["state"] == "COMPLETE", f"trial {eventual_best} is the best configuration"
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    assert all(t["value"] == t["intermediate"][-1][1] for t in pruned), "a pruned trial keeps its last value"
    assert all(len(t["intermediate"]) == stopped_at[t["number"]] + 1 for t in pruned)


def trade_off(trial):
    """Cost against accuracy: a bigger x costs more and is more accurate; y = 0.5 is the most
    accurate but a smaller y costs less."""
    x = trial.suggest_float("x", 0.0, 1.0)
    y = trial.suggest_float("y", 0.0, 1.0)
    return x + 0.2 * y, math.sqrt(x) * (1 - (y - 0.5) ** 2)


def dominates(a, b):
    """Whether values `a` beat `b` in a (minimize, maximize) study: no worse on both, better on one."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])


def test_a_multi_objective_study_keeps_a_value_per_objective_and_its_pareto_front(server):
    client = Slipway(server.url)
    study = client.study("trade-off", directions=["minimize", "maximize"], metrics=["cost", "accuracy"], seed=5)
    assert study.directions == ["minimize", "maximize"] and study.metrics == ["cost", "accuracy"]
    assert study.direction == "minimize" and study.metric == "cost", "the first objective's"
    assert study.is_multi_objective and "directions=['minimize', 'maximize']" in repr(study)
    assert study.best_trials == []
    study.optimize(trade_off, n_trials=30)
    trials = study.trials
    assert len(trials) == 30 and all(t["state"] == "COMPLETE" for t in trials)
    for t in trials:
        x, y = t["params"]["x"], t["params"]["y"]
        assert t["values"] == pytest.approx([x + 0.2 * y, math.sqrt(x) * (1 - (y - 0.5) ** 2)])
        assert len(t["values"]) == 2 and t["value"] == t["values"][0]
    # The best trials are exactly the complete trials no other one dominates, by number.
    front = [t["number"] for t in trials if not any(dominates(o["values"], t["values"]) for o in trials)]
    best = study.best_trials
    assert [t["number"] for t in best] == front
    assert len(front) >= 2, "a trade-off has more than one best trial"
    assert all(len(t["values"]) == 2 for t in best)
    # Each objective is a metric of the trial's run.
    run = client.run(best[0]["run_id"])
    assert run["metrics"]["cost"] == best[0]["values"][0] and run["metrics"]["accuracy"] == best[0]["values"][1]
    # No single best trial, as in Optuna.
    for attribute in ("best_trial", "best_value", "best_params"):
        with pytest.raises(RuntimeError, match="best_trials"):
            getattr(study, attribute)
    # Importance per objective; an objective the study lacks is refused.
    assert set(study.importance(objective=1)) == {"x", "y"}
    assert set(study.importance()) == {"x", "y"}
    with pytest.raises(SlipwayError) as e:
        study.importance(objective=5)
    assert e.value.status == 400 and "objective" in e.value.message
    # A column per objective.
    df = study.trials_dataframe()
    assert list(df.columns[:5]) == ["number", "state", "values_cost", "values_accuracy", "run_id"]
    assert "value" not in df.columns
    assert sorted(c for c in df.columns if c.startswith("params_")) == ["params_x", "params_y"]
    assert df["values_accuracy"].tolist() == [t["values"][1] for t in trials]
    # Loaded again: the same objectives.
    again = client.get_study("trade-off")
    assert again.directions == ["minimize", "maximize"] and again.metrics == ["cost", "accuracy"]


def test_a_multi_objective_study_refuses_a_wrong_count_of_values_and_pruning_and_changes_nothing(server):
    client = Slipway(server.url)
    study = client.study("mo", directions=["minimize", "maximize"], metrics=["cost", "accuracy"])
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    for values in ([1.0], 1.0, [1.0, 2.0, 3.0]):
        with pytest.raises(SlipwayError) as e:
            study.tell(trial, values)
        assert e.value.status == 400 and "values: the study has 2 objectives" in e.value.message
    with pytest.raises(SlipwayError) as e:
        study.tell(trial, state="PRUNED")
    assert e.value.status == 400 and "pruned" in e.value.message
    with pytest.raises(SlipwayError) as e:
        trial.report(0.5, step=0)
    assert e.value.status == 400 and "step" in e.value.message
    assert trial.should_prune() is False, "a multi-objective study never prunes"
    [t] = study.trials
    assert t["state"] == "RUNNING" and t["values"] == [] and t["value"] is None and t["intermediate"] == []
    assert study.info["counts"]["COMPLETE"] == 0 and study.refresh().info["counts"]["RUNNING"] == 1
    # Told right, as a tuple: complete, and the front.
    told = study.tell(trial, (0.25, 0.75))
    assert told["state"] == "COMPLETE" and told["values"] == [0.25, 0.75]
    assert [t["number"] for t in study.best_trials] == [0]
    # A NaN in any objective fails the trial, as in Optuna.
    nan = study.ask()
    assert study.tell(nan, [0.1, float("nan")])["state"] == "FAIL"
    # An objective returning the wrong count, None or a NaN fails its trial; the study goes on.
    returns = iter([(1.0,), None, (0.5, float("nan")), [0.5, 0.9]])
    study.optimize(lambda trial: next(returns), n_trials=4)
    states = [t["state"] for t in study.trials]
    assert states == ["COMPLETE", "FAIL", "FAIL", "FAIL", "FAIL", "COMPLETE"]
    assert "1 value" in study.trials[2]["error"]
    assert [t["number"] for t in study.best_trials] == [0, 5], "neither dominates the other"


def test_objectives_are_checked_when_a_study_is_created_and_nothing_is_created(server):
    client = Slipway(server.url)
    with pytest.raises(SlipwayError) as e:
        client.study("both", direction="minimize", directions=["minimize", "maximize"], metrics=["a", "b"])
    assert e.value.status == 400 and "directions" in e.value.message
    with pytest.raises(SlipwayError) as e:
        client.study("pruned", directions=["minimize", "maximize"], metrics=["a", "b"], pruner="median")
    assert e.value.status == 400 and "pruner" in e.value.message
    with pytest.raises(SlipwayError) as e:
        client.study("unnamed", directions=["minimize", "maximize"])
    assert e.value.status == 400 and "metrics" in e.value.message
    assert client.studies() == []
    # Metrics alone: every objective minimized.
    assert client.study("costs", metrics=["a", "b"]).directions == ["minimize", "minimize"]
    # One objective, as before: a value, a best trial, and a front of it alone.
    single = client.study("single", direction="maximize", metric="f1", seed=2)
    assert single.directions == ["maximize"] and single.metrics == ["f1"] and not single.is_multi_objective
    single.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=6)
    told = single.tell(single.ask(fixed={"x": 2.0}), [2.0])
    assert told["values"] == [2.0] and told["value"] == 2.0, "one value as a list of one"
    assert single.best_value == 2.0 and single.best_trials == [single.best_trial]
    assert list(single.trials_dataframe().columns[:4]) == ["number", "state", "value", "run_id"]


def test_optimize_with_n_jobs_runs_trials_at_once_in_threads_and_exactly_n_trials(server):
    study = Slipway(server.url).study("threads", seed=4)
    lock = threading.Lock()
    running, most, threads = 0, 0, set()

    def objective(trial):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.add(threading.get_ident())
        try:
            x = trial.suggest_float("x", -1.0, 1.0)
            time.sleep(0.1)
            return x * x
        finally:
            with lock:
                running -= 1

    study.optimize(objective, n_trials=12, n_jobs=3)
    trials = study.trials
    assert sorted(t["number"] for t in trials) == list(range(12)), "12 trials, no more, no fewer"
    assert all(t["state"] == "COMPLETE" and t["value"] == t["params"]["x"] ** 2 for t in trials)
    assert 2 <= most <= 3, f"{most} trials ran at once"
    assert len(threads) >= 2 and threading.get_ident() not in threads
    # -1: one at a time per CPU; still exactly n_trials.
    study.optimize(objective, n_trials=5, n_jobs=-1)
    assert sorted(t["number"] for t in study.trials) == list(range(17))


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_optimize_with_a_timeout_starts_no_trial_after_it_and_leaves_none_running(server, n_jobs):
    study = Slipway(server.url).study(f"timeout-{n_jobs}")

    def objective(trial):
        time.sleep(0.3)
        return trial.suggest_float("x", 0.0, 1.0)

    began = time.monotonic()
    study.optimize(objective, n_trials=None, timeout=1.0, n_jobs=n_jobs)
    took = time.monotonic() - began
    trials = study.trials
    # A trial starts at 0, 0.3, 0.6 or 0.9 s (and a bit later) in each thread, none from 1 s on.
    assert 2 * n_jobs <= len(trials) <= 4 * n_jobs, f"{len(trials)} trials"
    assert all(t["state"] == "COMPLETE" for t in trials), "the running trials finished"
    assert 1.0 <= took < 2.5
    # n_trials and a timeout: whichever comes first.
    study.optimize(objective, n_trials=2, timeout=30.0, n_jobs=n_jobs)
    assert len(study.trials) == len(trials) + 2


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_an_uncaught_exception_fails_its_trial_and_is_raised_once_the_running_trials_end(server, n_jobs):
    study = Slipway(server.url).study(f"boom-{n_jobs}")

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        if trial.number == 3:
            raise ZeroDivisionError("boom")
        time.sleep(0.2)
        return x

    called = []
    with pytest.raises(ZeroDivisionError, match="boom"):
        study.optimize(objective, n_trials=20, n_jobs=n_jobs, catch=(KeyError,),
                       callbacks=[lambda s, t: called.append(t["number"])])
    trials = study.trials
    # Sequentially trials 0-3; in two threads the one running beside trial 3 too (2 or 4).
    assert len(trials) == 4 if n_jobs == 1 else 4 <= len(trials) <= 5
    failed = trials[3]
    assert failed["state"] == "FAIL" and failed["error"] == "ZeroDivisionError: boom"
    assert all(t["state"] == "COMPLETE" for t in trials if t["number"] != 3), "none left running"
    assert sorted(called) == [t["number"] for t in trials if t["number"] != 3], "no callback for the raising trial"


def test_callbacks_get_each_told_trial_one_at_a_time_and_can_stop_the_study(server):
    client = Slipway(server.url)
    study = client.study("callbacks", seed=6)

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        if trial.number % 3 == 1:
            raise TrialPruned()
        if trial.number % 3 == 2:
            raise KeyError("caught")
        time.sleep(0.02)
        return x

    seen, numbers = [], []
    inside, overlapped = 0, False

    def record(s, trial):
        nonlocal inside, overlapped
        assert s is study
        inside += 1
        overlapped = overlapped or inside > 1
        time.sleep(0.01)
        seen.append((trial["number"], trial["state"], trial["value"], trial["params"], trial["error"]))
        inside -= 1

    study.optimize(objective, n_trials=9, n_jobs=3, catch=[KeyError],
                   callbacks=[record, lambda s, trial: numbers.append(trial["number"])])
    trials = study.trials
    assert sorted(seen, key=lambda t: t[0]) == [(t["number"], t["state"], t["value"], t["params"], t["error"]) for t in trials]
    assert [t["state"] for t in trials] == ["COMPLETE", "PRUNED", "FAIL"] * 3
    assert trials[2]["error"] == "KeyError: 'caught'"
    assert sorted(numbers) == list(range(9)) and not overlapped, "each callback once per trial, one at a time"

    # study.stop() from a callback, with neither n_trials nor a timeout: no trial starts after it.
    endless = client.study("endless")

    def stop_at_4(s, trial):
        if trial["number"] == 4:
            s.stop()

    def until_stopped(trial):
        if trial.number >= 20:
            raise AssertionError("study.stop() did not stop optimize")
        return trial.suggest_float("x", 0.0, 1.0)

    endless.optimize(until_stopped, callbacks=[stop_at_4])
    assert [t["number"] for t in endless.trials] == list(range(5))
    with pytest.raises(RuntimeError, match="optimize"):
        endless.stop()
    endless.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=2)
    assert len(endless.trials) == 7, "a new optimize forgets the last one's stop"


def test_show_progress_bar_keeps_a_line_of_trials_and_best_on_stderr(server, capsys):
    client = Slipway(server.url)
    study = client.study("progress")
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=5, n_jobs=2, show_progress_bar=True)
    err = capsys.readouterr().err
    lines = err.split("\r")
    assert lines[0] == "" and lines[1] == "trials 0/5" and len(lines) == 7, "a line at the start and after each trial"
    assert lines[-1].endswith("\n") and err.count("\n") == 1
    assert lines[-1].rstrip() == f"trials 5/5 best {study.best_value:.6g}"
    # Several objectives: the front's size; a timeout: the time.
    mo = client.study("progress-mo", directions=["minimize", "maximize"], metrics=["a", "b"])
    mo.optimize(trade_off, n_trials=4, show_progress_bar=True)
    assert capsys.readouterr().err.split("\r")[-1].rstrip() == f"trials 4/4 front {len(mo.best_trials)}"
    study.optimize(lambda trial: time.sleep(0.05) or trial.suggest_float("x", 0.0, 1.0), timeout=0.2, show_progress_bar=True)
    last = capsys.readouterr().err.split("\r")[-1].rstrip()
    assert re.fullmatch(r"trials [1-5] \d+\.\d/0\.2s best [0-9.e-]+", last), last


def test_bad_arguments_to_optimize_are_refused_before_any_trial(server):
    study = Slipway(server.url).study("arguments")

    def objective(trial):
        return trial.suggest_float("x", 0.0, 1.0)

    for bad in ({"n_jobs": 0}, {"n_jobs": -2}, {"n_jobs": 1.5}, {"n_trials": -1}, {"timeout": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            study.optimize(objective, **{"n_trials": 3, **bad})
    study.optimize(objective, n_trials=0, n_jobs=2)
    assert study.trials == [] and study.refresh().info["counts"]["RUNNING"] == 0


def test_deleting_a_study_refuses_while_trials_run_unless_forced_and_keeps_its_runs_unless_asked(server):
    client = Slipway(server.url)
    study = client.study("doomed", seed=7)
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=2)
    running = study.ask()
    first = study.info
    runs = [t["run_id"] for t in study.trials] + [first["parent_run_id"]]
    assert len(set(runs)) == 4

    # A trial running: refused, nothing deleted.
    with pytest.raises(SlipwayError) as e:
        client.delete_study("doomed")
    assert e.value.status == 409 and e.value.error_code == "CONFLICT"
    assert "1 running trial" in e.value.message and "force" in e.value.message
    assert [t["state"] for t in study.trials] == ["COMPLETE", "COMPLETE", "RUNNING"]

    # Forced: the study goes, the running trial fails, every run stays (active).
    assert client.delete_study("doomed", force=True) == {"name": "doomed", "study_id": first["study_id"], "trials": 3,
                                                          "running": 1, "runs_deleted": 0, "jobs_cancelled": 0}
    with pytest.raises(SlipwayError) as e:
        client.get_study("doomed")
    assert e.value.status == 404 and e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.studies() == []
    kept = {r: client.run(r) for r in runs}
    assert all(run["lifecycle_stage"] == "active" for run in kept.values())
    assert kept[running.run_id]["tags"]["slipway.trial_state"] == "FAIL"
    assert kept[running.run_id]["status"] == "FAILED"
    assert kept[first["parent_run_id"]]["status"] == "FINISHED", "the study's own run ends with it"
    assert running.heartbeat() is False, "the forced study's workers learn it is gone"

    # The name again: a new, empty study.
    again = client.study("doomed", seed=7)
    assert again.info["study_id"] != first["study_id"] and again.info["parent_run_id"] != first["parent_run_id"]
    assert again.trials == [] and all(n == 0 for n in again.info["counts"].values())
    again.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=2)
    new_runs = [t["run_id"] for t in again.trials] + [again.info["parent_run_id"]]

    # With its runs: each trial's and the study's run soft-deleted (MLflow's lifecycle stage).
    assert again.delete(runs=True) == {"name": "doomed", "study_id": again.info["study_id"], "trials": 2,
                                       "running": 0, "runs_deleted": 3, "jobs_cancelled": 0}
    assert [client.run(r)["lifecycle_stage"] for r in new_runs] == ["deleted"] * 3
    assert [client.run(r)["lifecycle_stage"] for r in runs] == ["active"] * 4, "the first study's runs untouched"

    # Gone: deleting it again (or any missing study) is a 404.
    for name in ("doomed", "never-was"):
        with pytest.raises(SlipwayError) as e:
            client.delete_study(name)
        assert e.value.status == 404 and e.value.error_code == "RESOURCE_DOES_NOT_EXIST" and name in e.value.message


def test_deleting_a_study_with_an_unknown_query_field_is_refused_and_deletes_nothing(server):
    client = Slipway(server.url)
    study = client.study("kept", seed=1)
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=2)
    for query in ("bogus=1", "force=yes", "runs=maybe"):
        request = urllib.request.Request(f"{server.url}/api/v1/studies/kept?{query}", method="DELETE")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request, timeout=10)
        assert e.value.code == 400, query
        body = json.loads(e.value.read())
        assert set(body) == {"error_code", "message"} and body["error_code"] == "INVALID_PARAMETER_VALUE"
        assert query.split("=")[0] in body["message"], body
    assert [s["name"] for s in client.studies()] == ["kept"]
    assert [t["state"] for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert all(client.run(t["run_id"])["lifecycle_stage"] == "active" for t in study.trials)


def test_a_trial_of_a_study_deleted_and_made_again_is_not_reached_by_its_old_clients(server):
    client = Slipway(server.url)
    study = client.study("again", seed=3)
    old = study.ask()
    old.suggest_float("x", 0.0, 1.0)
    client.delete_study("again", force=True)
    new_study = client.study("again", seed=3)
    new = new_study.ask()
    assert new.number == old.number == 0 and new.run_id != old.run_id
    # The old client's trial 0 is not the new study's trial 0: each call is refused, nothing changes.
    for call in (lambda: old.suggest_float("y", 0.0, 1.0), lambda: old.report(1.0, 0),
                 old.should_prune, lambda: study.tell(old, 0.5)):
        with pytest.raises(SlipwayError) as e:
            call()
        assert e.value.status == 404 and old.run_id in e.value.message, e.value.message
    assert old.heartbeat() is False
    (trial,) = new_study.trials
    assert trial["state"] == "RUNNING" and trial["params"] == {} and trial["intermediate"] == []
    # Over plain HTTP, should_prune takes the guard in an optional body: an empty POST asks
    # without it (whatever its content type), a body that does not parse is a 400.
    url = f"{server.url}/api/v1/studies/again/trials/0/should_prune"
    for headers in ({}, {"Content-Type": "application/json"}, {"Content-Type": "application/x-www-form-urlencoded"}):
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST", headers=headers),
                                    timeout=10) as r:
            assert json.loads(r.read()) == {"prune": False}, headers
    for body in (b'{"run_id": 5}', b'{"bogus": 1}', b"{"):
        request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request, timeout=10)
        assert e.value.code == 400, body
        assert set(json.loads(e.value.read())) == {"error_code", "message"}
    # So does ask: a bare POST asks with no options; a bad body is a 400 and asks nothing.
    asks = f"{server.url}/api/v1/studies/again/trials"
    with urllib.request.urlopen(urllib.request.Request(asks, data=b"", method="POST"), timeout=10) as r:
        bare = json.loads(r.read())
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(asks, data=b'{"lease": 5}', method="POST",
                                                      headers={"Content-Type": "application/json"}), timeout=10)
    assert e.value.code == 400 and "unknown field `lease`" in json.loads(e.value.read())["message"]
    assert [t["number"] for t in new_study.trials] == [0, bare["number"]] == [0, 1]
    # The new client goes on as usual.
    assert new.should_prune() is False
    assert new_study.tell(new, 0.25)["state"] == "COMPLETE"
