"""The Tuning stage's pages in headless Chromium: the studies table, and a study's page with its
best trial (registered in one click), optimisation history, importance, a plot per parameter,
parallel coordinates and the trials table; for a multi-objective study, its Pareto front (plotted,
listed, any front trial's model registered in one click), a value column per objective, and the
other plots for the objective picked; and a study in progress refreshing its page in place, keeping
the user's picks, until it finishes or the user leaves."""

import json
import math
import random
import re
import urllib.error
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
    # Its counts, backlog and target (none: a study run from Python has no file's target).
    assert cells(page, "table.studies thead th")[3:9] == ["Complete", "Pruned", "Failed", "Running", "Queued", "Target"]
    assert cells(page, "table.studies tbody td")[3:9] == [
        str(len(complete)), str(sum(t["state"] == "PRUNED" for t in trials)), "0", "0", "0", "—"]
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


def facts_trials(page):
    return page.evaluate("document.querySelector('dl.facts dd') && document.querySelector('dl.facts dd').textContent")


def test_a_study_in_progress_refreshes_in_place_until_it_finishes(page, sqlite_server):
    # Asked and told over HTTP, as a worker would: two trials told, a third still running, of 5.
    call(sqlite_server, "POST", "/api/v1/studies", {"name": "live", "n_trials": 5})

    def ask():
        n = call(sqlite_server, "POST", "/api/v1/studies/live/trials", {})["number"]
        call(sqlite_server, "POST", f"/api/v1/studies/live/trials/{n}/suggest",
             {"name": "x", "distribution": {"type": "float", "low": 0, "high": 1}})
        return n

    def tell(n, value):
        call(sqlite_server, "POST", f"/api/v1/studies/live/trials/{n}/tell", {"value": value})

    tell(ask(), 0.5)
    tell(ask(), 0.7)
    third = ask()
    # Every request the page makes about the study, to see when it stops asking.
    asked = []
    page.on("request", lambda r: "/api/v1/studies/live" in r.url and asked.append(r.url))
    page.set_viewport_size({"width": 1100, "height": 420})  # short, so the page scrolls

    page.goto(sqlite_server.url + "/#/tune/live")
    page.wait_for_selector("table.trials")
    assert facts_trials(page) == "2 complete, 0 pruned, 0 failed, 1 running of 5"
    assert page.locator("table.trials tbody tr").count() == 3
    assert re.fullmatch(r"live · updated \d\d:\d\d:\d\d", page.inner_text(".live-status"))
    assert float(page.inner_text("[data-best]")) == 0.5
    # The user's state: a model name half typed (caret mid-word, focused), the page scrolled.
    page.evaluate("window.notReloaded = true")
    page.fill("form.register input[name=model]", "live-tuned")
    page.evaluate("document.querySelector('form.register input[name=model]').setSelectionRange(4, 4)")
    page.evaluate("window.scrollTo(0, 300)")
    scrolled = page.evaluate("window.scrollY")
    assert scrolled > 0

    # The running trial ends, another is asked and told, a fifth asked: the page catches up.
    tell(third, 0.9)
    tell(ask(), 0.2)
    fifth = ask()
    wait_until(page, "document.querySelector('dl.facts dd').textContent === '4 complete, 0 pruned, 0 failed, 1 running of 5'", timeout=15)
    assert page.locator("table.trials tbody tr").count() == 5
    assert page.inner_text(f"table.trials tr[data-trial='{fifth}'] .badge") == "running"
    assert page.locator("svg.history circle.trial").count() == 4
    assert float(page.inner_text("[data-best]")) == 0.2  # minimised: the new trial is the best
    assert page.evaluate("window.notReloaded") is True
    assert page.evaluate("""(() => { const i = document.querySelector('form.register input[name=model]');
        return [document.activeElement === i, i.value, i.selectionStart, window.scrollY]; })()""") == [True, "live-tuned", 4, scrolled]
    assert re.fullmatch(r"live · updated \d\d:\d\d:\d\d", page.inner_text(".live-status"))

    # Elsewhere, the study page asks nothing more.
    page.click("nav a[data-stage=tune]")
    page.wait_for_selector("table.studies")
    before = len(asked)
    page.wait_for_timeout(5500)
    assert asked[before:] == []

    # Back on it, the last trial ends: one refresh shows the study finished, then no more.
    page.click("table.studies a")
    page.wait_for_selector("table.trials")
    assert page.locator(".live-status").count() == 1
    tell(fifth, 0.1)
    wait_until(page, "document.querySelector('dl.facts dd').textContent === '5 complete, 0 pruned, 0 failed, 0 running of 5'", timeout=15)
    assert page.locator(".live-status").count() == 0
    assert page.locator("table.trials tbody tr").count() == 5
    before = len(asked)
    page.wait_for_timeout(5500)
    assert asked[before:] == []
    assert page.evaluate("window.notReloaded") is True
    assert page.problems == []


def test_a_multi_objective_study_in_progress_keeps_the_picks_across_refreshes(page, sqlite_server):
    metrics = ["latency", "accuracy", "size"]
    call(sqlite_server, "POST", "/api/v1/studies", {"name": "mo-live", "directions": ["minimize", "maximize", "minimize"],
                                                    "metrics": metrics, "seed": 3})

    def ask():
        n = call(sqlite_server, "POST", "/api/v1/studies/mo-live/trials", {})["number"]
        x = call(sqlite_server, "POST", f"/api/v1/studies/mo-live/trials/{n}/suggest",
                 {"name": "x", "distribution": {"type": "float", "low": 0, "high": 1}})["value"]
        return n, x

    def tell(n, x):
        call(sqlite_server, "POST", f"/api/v1/studies/mo-live/trials/{n}/tell", {"values": [x, x * x, 1 - x]})

    for _ in range(4):
        tell(*ask())
    running = ask()  # no target: live while a trial runs
    page.goto(sqlite_server.url + "/#/tune/mo-live")
    page.wait_for_selector("svg.pareto")
    assert page.locator("svg.pareto circle.trial").count() == 4
    page.evaluate("window.notReloaded = true")
    page.select_option("select[name=objective]", "2")
    wait_until(page, "document.querySelector('.objective-plots').dataset.objective === '2'")
    page.select_option("select[name=x]", "2")
    page.fill("section.pareto form.register input[name=model]", "mo-live-tuned")
    # While a register request is in flight (held here), the page does not refresh.
    held = []
    page.route("**/api/v1/models/**", lambda route: held.append(route))
    chosen = page.locator("table.pareto-front tbody tr").first.get_attribute("data-trial")
    page.click(f"table.pareto-front tr[data-trial='{chosen}'] button.register-trial")
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1

    tell(*running)
    page.wait_for_timeout(6000)
    assert page.locator("svg.pareto circle.trial").count() == 4
    held[0].fulfill(json={"name": "mo-live-tuned", "version": 1})
    wait_until(page, "document.querySelectorAll('svg.pareto circle.trial').length === 5", timeout=15)
    assert page.inner_text("section.pareto .register-result") == f"mo-live-tuned v1 registered from trial {chosen}"
    assert page.locator(".live-status").count() == 0  # nothing running, no target: finished
    assert page.evaluate("window.notReloaded") is True
    assert page.input_value("select[name=objective]") == "2"
    assert page.evaluate("document.querySelector('.objective-plots').dataset.objective") == "2"
    assert cells(page, "svg.parallel text.tick")[-1] == "size"
    assert page.input_value("select[name=x]") == "2" and page.input_value("select[name=y]") == "1"
    assert cells(page, "svg.pareto text.axis-label") == ["size (minimize)", "accuracy (maximize)"]
    assert page.input_value("section.pareto form.register input[name=model]") == "mo-live-tuned"
    assert page.locator("table.trials tbody tr").count() == 5
    assert page.problems == []


def test_deleting_a_study_from_its_page_keeps_its_runs_unless_asked_and_leaves_for_the_list(page, sqlite_server):
    client = Slipway(sqlite_server.url)
    studies = {}
    for name in ("falls-old", "falls-new"):
        studies[name] = client.study(name, seed=1)
        studies[name].optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=3)
    runs = {name: [t["run_id"] for t in s.trials] + [s.info["parent_run_id"]] for name, s in studies.items()}

    page.goto(sqlite_server.url + "/#/tune/falls-old")
    page.wait_for_selector("table.trials")
    assert page.locator("form.delete-study-panel").is_hidden()
    page.click("button.delete-study")
    assert page.locator("form.delete-study-panel").is_visible()
    assert page.inner_text("form.delete-study-panel p").startswith("Delete study falls-old and its 3 trials?")
    assert page.is_checked("form.delete-study-panel input[name=runs]") is False
    # Cancel deletes nothing.
    page.click("button.cancel-delete")
    assert page.locator("form.delete-study-panel").is_hidden()
    assert call(sqlite_server, "GET", "/api/v1/studies/falls-old")["name"] == "falls-old"

    # Deleted without its runs: the list, without it, says so.
    page.click("button.delete-study")
    page.click("button.confirm-delete")
    page.wait_for_selector("p.notice")
    assert page.evaluate("location.hash") == "#/tune"
    experiment = studies["falls-old"].info["experiment_id"]
    assert page.inner_text("p.notice") == f"Deleted study falls-old and its 3 trials; its runs stay in experiment {experiment}."
    assert cells(page, "table.studies tbody td:first-child") == ["falls-new"]
    with pytest.raises(urllib.error.HTTPError) as e:
        call(sqlite_server, "GET", "/api/v1/studies/falls-old")
    assert e.value.code == 404 and json.load(e.value)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert [client.run(r)["lifecycle_stage"] for r in runs["falls-old"]] == ["active"] * 4

    # The other with its runs: soft-deleted; no study left.
    page.click("table.studies a")
    page.wait_for_selector("table.trials")
    page.click("button.delete-study")
    page.check("form.delete-study-panel input[name=runs]")
    page.click("button.confirm-delete")
    page.wait_for_selector("p.notice")
    assert page.inner_text("p.notice") == "Deleted study falls-new and its 3 trials; 4 runs deleted (restorable)."
    assert "No studies yet" in page.inner_text("main .empty")
    assert client.studies() == []
    assert [client.run(r)["lifecycle_stage"] for r in runs["falls-new"]] == ["deleted"] * 4
    # The notice is said once.
    page.reload()
    page.wait_for_selector("main .empty")
    assert page.locator("p.notice").count() == 0
    assert page.problems == []


def test_deleting_a_study_in_progress_asks_again_to_force_and_its_page_stops_refreshing(page, sqlite_server):
    client = Slipway(sqlite_server.url)
    study = client.study("busy", seed=1)
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=2)
    running = study.ask()
    asked = []
    page.on("request", lambda r: "/api/v1/studies/busy" in r.url and asked.append((r.method, r.url)))

    page.goto(sqlite_server.url + "/#/tune/busy")
    page.wait_for_selector("table.trials")
    assert page.locator(".live-status").count() == 1, "refreshing while a trial runs"
    page.click("button.delete-study")
    page.click("button.confirm-delete")
    # Refused while a trial runs: the server's message, and a second, forcing choice.
    page.wait_for_selector("form.delete-study-panel .delete-result.error")
    assert page.inner_text("form.delete-study-panel .delete-result").startswith("study 'busy' has 1 running trial")
    assert page.inner_text("button.confirm-delete") == "Delete anyway"
    assert [t["state"] for t in study.trials] == ["COMPLETE", "COMPLETE", "RUNNING"]
    page.click("button.confirm-delete")
    page.wait_for_selector("p.notice")
    assert page.inner_text("p.notice").startswith("Deleted study busy and its 3 trials (1 running, failed); its runs stay")
    assert page.locator("main .empty").count() == 1
    assert client.run(running.run_id)["lifecycle_stage"] == "active"
    assert client.run(running.run_id)["tags"]["slipway.trial_state"] == "FAIL"
    # The page asked nothing more about the study after deleting it, and flashed no error.
    deletes = [i for i, (method, _) in enumerate(asked) if method == "DELETE"]
    assert len(deletes) == 2 and "force=false" in asked[deletes[0]][1] and "force=true" in asked[deletes[1]][1]
    page.wait_for_timeout(5500)
    assert asked[deletes[1] + 1:] == []
    assert page.locator(".live-status").count() == 0
    # The refused request is the only problem the browser reports.
    assert len(page.problems) == 1 and "409" in page.problems[0], page.problems


def test_a_study_run_from_a_file_shows_its_trials_queued_for_a_worker(page, sqlite_server, tmp_path):
    # Five trials queued by `slipway tune run --workers 0`; the server's own worker takes them one
    # or two at a time (each sleeps), so the rest wait in the queue.
    study = tmp_path / "study.toml"
    study.write_text('name = "queued"\ntrials = 5\ncommand = "sleep 60"\n'
                     '[params]\nx = { type = "float", low = 0, high = 1 }\n')
    sqlite_server.cli("tune", "run", str(study), "--workers", "0")
    try:
        page.goto(sqlite_server.url + "/#/tune/queued")
        page.wait_for_selector("dl.facts")
        # Running and queued add up to the five (the page refreshes while the study is in progress).
        wait_until(page, r"""(() => {
            const m = document.querySelector('dl.facts dd').textContent
                .match(/^0 complete, 0 pruned, 0 failed, (\d) running of 5; (\d) queued for a worker$/);
            return !!m && +m[1] >= 1 && +m[1] + +m[2] === 5;
        })()""", timeout=30)
    finally:
        done = call(sqlite_server, "DELETE", "/api/v1/studies/queued?force=true")
        assert done["jobs_cancelled"] == 5, done
