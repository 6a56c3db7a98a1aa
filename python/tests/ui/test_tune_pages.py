"""The Tuning stage's pages in headless Chromium: the studies table, and a study's page with its
best trial (registered in one click), optimisation history, importance, a plot per parameter,
parallel coordinates and the trials table; for a multi-objective study, its Pareto front (plotted,
listed, any front trial's model registered in one click), a value column per objective, and the
other plots for the objective picked."""

import json
import math
import random
import urllib.request

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression

from harness import wait_until
from slipway import Slipway, TrialPruned


def cells(page, selector):
    return [c.strip() for c in page.locator(selector).all_text_contents()]


def call(server, method, path, body=None):
    """The native API over plain HTTP, as a client in any language would call it."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def onnx_model(tmp_path):
    X = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    path = tmp_path / "model.onnx"
    path.write_bytes(to_onnx(model, initial_types=[("X", FloatTensorType([None, 3]))],
                             options={id(model): {"zipmap": False}}).SerializeToString())
    return path


def test_study_pages_plot_the_search_and_register_the_best_model(page, sqlite_server, tmp_path):
    page.goto(sqlite_server.url + "/#/tune")
    page.wait_for_selector("main .empty")
    assert "No studies yet" in page.inner_text("main .empty")

    client = Slipway(sqlite_server.url)
    study = client.study("falls-mlp", direction="maximize", metric="f1", seed=2)

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        layers = trial.suggest_int("layers", 1, 4)
        opt = trial.suggest_categorical("optimizer", ["adam", "sgd"])
        if layers == 4 and opt == "sgd":
            raise TrialPruned()
        return 0.9 - (math.log10(lr) + 2.5) ** 2 * 0.05 - 0.01 * layers

    study.optimize(objective, n_trials=30)
    trials = study.trials
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    best = study.best_trial
    # The best trial's model, logged to its run as training code would.
    MlflowClient(tracking_uri=sqlite_server.url).log_artifact(best["run_id"], str(onnx_model(tmp_path)), artifact_path="model")

    page.goto(sqlite_server.url + "/#/")
    page.click("nav a[data-stage=tune]")
    page.wait_for_selector("table.studies")
    assert cells(page, "table.studies tbody td:first-child") == ["falls-mlp"]
    page.click("table.studies a")
    page.wait_for_selector("svg.history")
    assert page.title().startswith("falls-mlp")
    assert float(page.inner_text("[data-best]")) == round(best["value"], 4)
    # One dot per complete trial; the best-so-far line ends at the best value.
    assert page.locator("svg.history circle.trial").count() == len(complete)
    assert page.locator("svg.history path.best").count() == 1
    # Importance: every parameter, lr (which drives the objective) first.
    assert cells(page, "table.importance td:first-child")[0] == "lr"
    assert sorted(cells(page, "table.importance td:first-child")) == ["layers", "lr", "optimizer"]
    # A plot per parameter and a line per complete trial across the parallel axes.
    assert sorted(page.locator("svg.scatter").evaluate_all("els => els.map(e => e.dataset.param)")) == ["layers", "lr", "optimizer"]
    assert page.locator("svg.scatter[data-param=lr] circle.trial").count() == len(complete)
    assert page.locator("svg.parallel polyline.trial").count() == len(complete)
    assert page.locator("table.trials tbody tr").count() == len(trials)
    pruned = [t["number"] for t in trials if t["state"] == "PRUNED"]
    for n in pruned:
        assert page.inner_text(f"table.trials tr[data-trial='{n}'] .badge") == "pruned"
    # One click registers the best trial's model.
    page.fill("form.register input[name=model]", "falls-tuned")
    page.click("form.register button")
    page.wait_for_selector("form.register .register-result a")
    assert "falls-tuned v1" in page.inner_text("form.register .register-result")
    assert client.model_version("falls-tuned", 1)["run_id"] == best["run_id"]
    assert page.problems == []


def test_a_multi_objective_study_shows_its_pareto_front_and_plots_each_objective(page, sqlite_server, tmp_path):
    # Asked and told over HTTP: latency to minimise, accuracy to maximise, both growing with x,
    # so the front is a trade-off (with noise, not every trial is on it).
    call(sqlite_server, "POST", "/api/v1/studies", {"name": "mo", "directions": ["minimize", "maximize"],
                                                    "metrics": ["latency", "accuracy"], "sampler": "tpe", "seed": 5})
    rng = random.Random(7)
    for _ in range(20):
        n = call(sqlite_server, "POST", "/api/v1/studies/mo/trials", {})["number"]
        x = call(sqlite_server, "POST", f"/api/v1/studies/mo/trials/{n}/suggest",
                 {"name": "x", "distribution": {"type": "float", "low": 0, "high": 1}})["value"]
        call(sqlite_server, "POST", f"/api/v1/studies/mo/trials/{n}/suggest",
             {"name": "optimizer", "distribution": {"type": "categorical", "choices": ["adam", "sgd"]}})
        call(sqlite_server, "POST", f"/api/v1/studies/mo/trials/{n}/tell",
             {"values": [x + 0.3 * rng.random(), math.sqrt(x) - 0.3 * rng.random()]})
    running = call(sqlite_server, "POST", "/api/v1/studies/mo/trials", {})["number"]  # asked, never told
    study = call(sqlite_server, "GET", "/api/v1/studies/mo")
    trials = call(sqlite_server, "GET", "/api/v1/studies/mo/trials")["trials"]
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    front = [t["number"] for t in study["best_trials"]]
    assert study["best"] is None and 2 <= len(front) < len(complete) == 20

    page.goto(sqlite_server.url + "/#/tune")
    page.wait_for_selector("table.studies")
    assert cells(page, "table.studies tr[data-study=mo] td")[1:3] == ["minimize, maximize", "latency, accuracy"]
    page.click("table.studies a")
    page.wait_for_selector("svg.pareto")
    assert "minimize latency · maximize accuracy" in page.inner_text("main .lede")
    assert page.locator("section.best, [data-best]").count() == 0
    # The front plot: every complete trial, the front's highlighted and joined, axes named.
    assert page.locator("svg.pareto circle.trial").count() == len(complete)
    assert page.locator("svg.pareto circle.front").count() == len(front)
    assert sorted(int(n) for n in page.locator("svg.pareto circle.front").evaluate_all("els => els.map(e => e.dataset.trial)")) == front
    assert page.locator("svg.pareto path.front").count() == 1
    labels = cells(page, "svg.pareto text.axis-label")
    assert labels == ["latency (minimize)", "accuracy (maximize)"]
    # The front's table: exactly the front's trials, a column per objective with their values.
    assert [int(n) for n in cells(page, "table.pareto-front tbody td:first-child")] == front
    assert cells(page, "table.pareto-front thead th")[1:3] == ["latency", "accuracy"]
    by_number = {t["number"]: t for t in study["best_trials"]}
    for n in front:
        for i, metric in enumerate(["latency", "accuracy"]):
            shown = page.inner_text(f"table.pareto-front tr[data-trial='{n}'] td[data-metric={metric}]")
            assert float(shown) == pytest.approx(by_number[n]["values"][i], abs=1e-4)
    # The trials table: a value column per objective, named by its metric.
    assert cells(page, "table.trials thead th") == ["Trial", "State", "latency", "accuracy", "Steps", "Seconds", "Params", "Run", "Error"]
    assert page.locator("table.trials tbody tr").count() == len(trials) == 21
    assert cells(page, f"table.trials tr[data-trial='{running}'] td[data-metric]") == ["—", "—"]
    # The other plots are for one objective at a time: latency first, then accuracy.
    assert page.locator("svg.history circle.trial").count() == len(complete)
    assert cells(page, "svg.parallel text.tick")[-1] == "latency"
    assert sorted(cells(page, "table.importance td:first-child")) == ["optimizer", "x"]
    page.select_option("select[name=objective]", "1")
    wait_until(page, "document.querySelector('.objective-plots').dataset.objective === '1'")
    assert cells(page, "svg.parallel text.tick")[-1] == "accuracy"
    assert page.locator("svg.history circle.trial").count() == len(complete)
    importance = call(sqlite_server, "GET", "/api/v1/studies/mo/importance?objective=1")
    assert cells(page, "table.importance td:first-child") == [i["param"] for i in importance["importances"]]
    assert page.locator("svg.scatter[data-param=x]").get_attribute("aria-label") == "x against accuracy"
    # Any front trial's model registers in one click.
    chosen = study["best_trials"][-1]
    MlflowClient(tracking_uri=sqlite_server.url).log_artifact(chosen["run_id"], str(onnx_model(tmp_path)), artifact_path="model")
    page.fill("section.pareto form.register input[name=model]", "mo-tuned")
    page.click(f"table.pareto-front tr[data-trial='{chosen['number']}'] button.register-trial")
    page.wait_for_selector("section.pareto .register-result a")
    assert page.inner_text("section.pareto .register-result") == f"mo-tuned v1 registered from trial {chosen['number']}"
    assert call(sqlite_server, "GET", "/api/v1/models/mo-tuned/versions/1")["run_id"] == chosen["run_id"]
    assert page.problems == []
