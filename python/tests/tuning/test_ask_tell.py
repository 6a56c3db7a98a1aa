"""Tuning from Python, ask/tell, on both stores: studies and trials over the native HTTP API,
each trial a tracked run under the study's run; pruners on synthetic learning curves."""

import math

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
    optuna_rule = client.study("quad-optuna", sampler={"type": "tpe", "good_clip": 1})
    assert optuna_rule.info["sampler"]["good_clip"] == 1
    # The same study again: loaded, not created, its trials kept.
    again = client.study("quad", sampler="random")
    assert again.info["study_id"] == study.info["study_id"]
    assert again.info["counts"]["COMPLETE"] == 40
    assert sorted(s["name"] for s in client.studies()) == ["quad", "quad-optuna"]


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
        client.get_study("nope")
    assert e.value.status == 404
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
