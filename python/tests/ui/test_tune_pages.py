"""The Tuning stage's pages in headless Chromium: the studies table, and a study's page with its
best trial (registered in one click), optimisation history, importance, a plot per parameter,
parallel coordinates and the trials table."""

import math

import numpy as np
from mlflow.tracking import MlflowClient
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression

from slipway import Slipway, TrialPruned


def cells(page, selector):
    return [c.strip() for c in page.locator(selector).all_text_contents()]


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
    X = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(to_onnx(model, initial_types=[("X", FloatTensorType([None, 3]))],
                                  options={id(model): {"zipmap": False}}).SerializeToString())
    MlflowClient(tracking_uri=sqlite_server.url).log_artifact(best["run_id"], str(onnx_path), artifact_path="model")

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
