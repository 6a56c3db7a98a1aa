"""The Models and Endpoints pages in headless Chromium, on state the real clients made: the
fall-detection example's features as the dataset `fall-features`, an MLflow run that read its
version 1 and logged an ONNX model, that model registered from the run (v1) and a second one
uploaded as a file (v2), the aliases `prod` and `canary`, and an endpoint answering predictions.
The endpoints page refreshes while it is shown, and only then."""

import json
import os
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Dataset, DatasetInput, InputTag  # noqa: E402

from harness import slipway_bin, wait_until  # noqa: E402
from slipway import Slipway  # noqa: E402


def serving_models() -> Path:
    folder = os.environ.get("SLIPWAY_SERVING_MODELS")
    if not folder:
        raise RuntimeError("these tests need SLIPWAY_SERVING_MODELS: a folder written by "
                           "`python python/tests/serving/models.py DIR` (scripts/test makes one)")
    return Path(folder)


@pytest.fixture
def registry(sqlite_server, tmp_path, monkeypatch):
    url = sqlite_server.url
    models = serving_models()
    ref = json.loads((models / "logreg_fall_nozipmap.ref.json").read_text())

    out = tmp_path / "example"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_") or k.startswith("SLIPWAY_TEST")}
    subprocess.run([slipway_bin(), "example", "fall-detection", "generate", str(out), "--clips", "40", "--seed", "1"],
                   check=True, capture_output=True, env=env)
    sqlite_server.cli("data", "add", str(out / "features.parquet"), "--dataset", "fall-features")
    s = Slipway(url)
    features = s.dataset("fall-features").version(1)

    # A training run that read fall-features@1 (as `slipway run --input` records it) and logged
    # the ONNX model as an artifact.
    c = MlflowClient(tracking_uri=url)
    exp = c.create_experiment("fall-detection")
    run_id = c.create_run(exp, run_name="logreg-fall").info.run_id
    source = json.dumps({"uri": "slipway://fall-features@1"})
    c.log_inputs(run_id, [DatasetInput(
        Dataset(name="fall-features", digest=features.manifest, source_type="slipway", source=source),
        tags=[InputTag("mlflow.data.context", "training")])])
    c.log_artifact(run_id, str(models / "logreg_fall_nozipmap.onnx"), artifact_path="model")
    c.set_terminated(run_id)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    mlflow.set_tracking_uri(url)
    # A bare .onnx artifact (no MLmodel): registered through Slipway's own client.
    mv = s.register_model("fall", source=f"runs:/{run_id}/model")
    assert mv["version"] == 1 and mv["run_id"] == run_id
    c.update_registered_model("fall", description="Falls from pose features, ward 3")
    c.set_registered_model_tag("fall", "team", "vision")
    # v2: the random forest's bytes, uploaded.
    v2 = s._request("POST", "/api/v1/models/fall/versions?file_name=rf.onnx",
                    (models / "rf_fall_nozipmap.onnx").read_bytes())
    assert v2["version"] == 2
    s._request("PUT", "/api/v1/models/fall/aliases/prod", {"version": 1})
    s._request("PUT", "/api/v1/models/fall/aliases/canary", {"version": 2})

    s.create_endpoint("fall-ep", "fall@prod")
    rows = ref["batch"]
    for i in range(3):
        assert len(s.predict("fall-ep", rows[4 * i:4 * i + 4])) == 4
    return {"url": url, "client": s, "run_id": run_id, "experiment_id": exp, "ref": ref, "rows": rows}


def cells(page, selector):
    return [c.strip() for c in page.locator(selector).all_text_contents()]


def detail_fact(page, name):
    """The value beside `name` in the selected version's facts."""
    return page.locator(".version-detail dl.facts").evaluate(
        "(dl, name) => { const dt = [...dl.querySelectorAll('dt')].find((d) => d.textContent === name);"
        " return dt ? dt.nextElementSibling.textContent.trim() : null; }", name)


def test_models_list_model_page_versions_and_lineage(page, registry):
    url, s, run_id, ref = registry["url"], registry["client"], registry["run_id"], registry["ref"]
    page.goto(url + "/#/models")
    page.wait_for_selector("table.models tbody tr")
    assert page.title() == "Models · Slipway"
    assert page.get_attribute("nav a[data-stage=models]", "class") == "active"
    row = page.locator("table.models tr[data-model=fall]")
    assert sorted(cells(row, ".badge.alias")) == ["canary → v2", "prod → v1"]
    assert row.locator("td:nth-child(2)").inner_text() == "v2"
    assert "Falls from pose features, ward 3" in row.inner_text()

    page.click("table.models tr[data-model=fall] td:first-child a")
    page.wait_for_selector(".version-detail [data-version]")
    assert page.inner_text("main h1") == "fall"
    assert "Falls from pose features, ward 3" in page.inner_text("p.lede")
    assert "team=vision" in page.inner_text("main > div > dl.facts")
    assert cells(page, "table.model-versions tbody td:first-child") == ["v2", "v1"]
    assert cells(page, "table.model-versions tr[data-version='1'] .badge.alias") == ["prod"]
    assert cells(page, "table.model-versions tr[data-version='2'] .badge.alias") == ["canary"]
    run_cell = page.locator("table.model-versions tr[data-version='1'] a[data-run]")
    assert run_id in run_cell.get_attribute("href")
    assert page.locator("table.model-versions tr[data-version='2'] a[data-run]").count() == 0

    # The newest version is shown first: uploaded, so no run and no dataset behind it.
    assert page.locator(".version-detail [data-version]").get_attribute("data-version") == "2"
    assert page.locator("table.model-versions tr.selected").get_attribute("data-version") == "2"
    assert "rf.onnx" in detail_fact(page, "Storage")
    assert page.locator(".lineage a[data-run]").count() == 0
    assert page.locator(".lineage a[data-dataset]").count() == 0
    assert "none recorded" in page.inner_text(".lineage")

    # Choosing v1 swaps the detail in place and rewrites the address.
    v1 = s._request("GET", "/api/v1/models/fall/versions/1")
    page.click("table.model-versions tr[data-version='1'] td:nth-child(3)")
    page.wait_for_selector(".version-detail [data-version='1']")
    assert page.evaluate("location.hash") == "#/models/fall?version=1"
    assert page.locator("table.model-versions tr.selected").get_attribute("data-version") == "1"
    assert detail_fact(page, "Digest") == v1["digest"]
    assert detail_fact(page, "Servable") == "yes"
    assert cells(page, "table.signature.inputs tbody td:first-child") == [ref["input"]["name"]]
    assert cells(page, "table.signature.inputs tbody td:nth-child(2)") == ["float32"]
    shape = cells(page, "table.signature.inputs tbody td:nth-child(3)")[0]
    dims = ref["input"]["shape"]  # onnxruntime's view: None for an open dim, a str for a named one
    assert shape.endswith(f", {dims[1]}]") and shape[1:-1].split(", ")[0] in {"?", str(dims[0])}
    assert page.locator("table.signature.outputs tbody tr").count() >= 1

    chain = [el.get_attribute("class") for el in page.locator(".lineage .node").all()]
    assert chain == ["node dataset", "node run", "node model"]
    dataset_link = page.locator(".lineage a[data-dataset]")
    assert "#/data/fall-features/1" in dataset_link.get_attribute("href")
    assert dataset_link.inner_text() == "fall-features v1"
    run_link = page.locator(".lineage a[data-run]")
    assert run_id in run_link.get_attribute("href") and run_link.inner_text() == "logreg-fall"

    # And back to v2 by its number.
    v2 = s._request("GET", "/api/v1/models/fall/versions/2")
    assert v2["digest"] != v1["digest"]
    page.click("table.model-versions tr[data-version='2'] a.pick")
    page.wait_for_selector(".version-detail [data-version='2']")
    assert page.evaluate("location.hash") == "#/models/fall?version=2"
    assert detail_fact(page, "Digest") == v2["digest"]
    assert page.inner_text(".version-detail h2").startswith("fall v2")
    assert cells(page, ".version-detail h2 .badge.alias") == ["canary"]

    # The lineage's links lead to the run and to the dataset version.
    page.goto(url + "/#/models/fall?version=1")
    page.wait_for_selector(".version-detail [data-version='1'] .lineage a[data-run]")
    page.click(".lineage a[data-run]")
    wait_until(page, "location.hash.includes('/runs/') && document.querySelector('main h1')?.innerText.startsWith('logreg-fall')")
    assert page.inner_text("main h1").startswith("logreg-fall")
    page.go_back()
    page.wait_for_selector(".lineage a[data-dataset]")
    page.click(".lineage a[data-dataset]")
    page.wait_for_selector("table.schema tbody tr")
    assert page.inner_text("main h1") == "fall-features v1"
    assert "logreg-fall" in page.inner_text("table.used-by")

    # The versions table's run link opens the run page by run id alone.
    page.goto(url + "/#/models/fall")
    page.wait_for_selector("table.model-versions a[data-run]")
    page.click("table.model-versions a[data-run]")
    wait_until(page, "location.hash.startsWith('#/runs/') && document.querySelector('main h1')?.innerText.startsWith('logreg-fall')")
    assert page.inner_text("main h1").startswith("logreg-fall")
    assert page.get_attribute("nav a[data-stage=experiments]", "class") == "active"
    assert page.problems == []


def test_endpoints_page_refreshes_while_shown_and_only_then(page, registry):
    url, s, rows = registry["url"], registry["client"], registry["rows"]
    polls = []
    page.on("request", lambda r: r.url.endswith("/api/v1/endpoints") and polls.append(r.url))

    page.goto(url + "/#/serving")
    page.click("nav a[data-stage=endpoints]")
    row = "table.endpoints tr[data-endpoint='fall-ep']"
    page.wait_for_selector(row)
    assert page.title() == "Endpoints · Slipway"
    assert "active" in page.get_attribute("nav a[data-stage=endpoints]", "class").split()
    model = page.locator(f"{row} a[data-model]")
    assert model.inner_text() == "fall@prod" and model.get_attribute("href") == "#/models/fall"
    assert page.inner_text(f"{row} td[data-col=version]") == "v1"
    col = lambda c: page.inner_text(f"{row} td[data-col={c}]")  # noqa: E731
    assert col("ok") == "3"
    assert [col(c) for c in ["bad_input", "overloaded", "failed"]] == ["0", "0", "0"]
    assert float(col("p50")) > 0 and float(col("p99")) >= float(col("p50"))
    assert col("max_batch") == str(s.endpoints()[0]["max_batch_size"])

    # New traffic shows up on the next refresh, with a request rate from the difference.
    for i in range(10):
        s.predict("fall-ep", rows[i:i + 2])
    cell = f"document.querySelector(\"{row} td[data-col=%s]\").textContent"
    wait_until(page, f"{cell % 'ok'} === '13' && parseFloat({cell % 'rate'}) > 0", timeout=6)

    seen = len(polls)
    page.wait_for_timeout(4500)
    assert len(polls) >= seen + 2, polls  # still refreshing every 2 s

    page.click("nav a[data-stage=models]")
    page.wait_for_selector("table.models tbody tr")
    left = len(polls)
    page.wait_for_timeout(5000)
    assert len(polls) == left, polls  # not after leaving
    assert page.problems == []


def test_endpoints_page_draws_the_split_and_the_shadow(page, registry):
    url, s, rows = registry["url"], registry["client"], registry["rows"]
    s.split_endpoint("fall-ep", {"prod": 75, "canary": 25})
    s.shadow_endpoint("fall-ep", "v2")
    for i in range(4):
        s.predict("fall-ep", rows[i:i + 1], key=f"bed-{i}")
    page.goto(url + "/#/endpoints")
    row = "table.endpoints tr[data-endpoint='fall-ep']"
    page.wait_for_selector(f"{row} .split-bar")
    segments = page.locator(f"{row} .split-seg")
    assert [segments.nth(i).get_attribute("data-variant") for i in range(segments.count())] == ["prod", "canary"]
    widths = page.locator(f"{row} .split-seg").evaluate_all("(l) => l.map((e) => e.getBoundingClientRect().width)")
    assert abs(widths[0] / (widths[0] + widths[1]) - 0.75) < 0.02, widths
    assert page.inner_text(f"{row} .split-legend") == "prod 75% · canary 25%"
    # The endpoint's counts are its variants' together: 3 requests before the split, 4 after.
    assert page.inner_text(f"{row} td[data-col=ok]") == "7"
    wait_until(page, f"document.querySelector(\"{row} .split-shadow\").textContent.includes('of 4 rows')", timeout=6)
    assert page.inner_text(f"{row} .split-shadow").startswith("shadow v2 · agrees ")
    page.screenshot(path=str(Path(os.environ.get("SLIPWAY_SCREENSHOTS", "/tmp")) / "endpoints-split.png"))
    assert page.problems == []


def test_endpoint_page_shows_the_rollout_timeline_and_the_abtest(page, registry):
    url, s, rows = registry["url"], registry["client"], registry["rows"]
    r = s.start_rollout({"endpoint": "fall-ep", "candidate": "canary", "steps": [10, 50, 100], "step_seconds": 3600})
    s.promote_rollout(r["id"], reason="dashboards fine")
    truth = {}
    for i in range(12):
        s.predict("fall-ep", rows[i:i + 1], key=f"bed-{i}", request_id=f"ui-{i}")
        # The logistic regression's own labels as the truth: prod scores 100% on what it answers.
        truth[f"ui-{i}"] = registry["ref"]["outputs"][0]["values"][i]
    assert s.feedback("fall-ep", truth)["scored"] == 12
    page.goto(url + "/#/endpoints")
    page.click("a[data-endpoint-link='fall-ep']")
    page.wait_for_selector(".rollout")
    assert page.title() == "fall-ep · Slipway"
    assert page.get_attribute(".rollout", "data-state") == "running"
    assert cells(page, "ol.steps li") == ["10%", "50%", "100%"]
    assert cells(page, "ol.steps li.current") == ["50%"]
    assert cells(page, "table.timeline td:nth-child(2)") == ["started", "advanced"]
    assert "dashboards fine" in page.inner_text("table.timeline tr[data-kind=advanced]")
    assert cells(page, "table.abtest tbody td:first-child") == ["prod", "canary"]
    accuracy = cells(page, "table.abtest td[data-col=accuracy]")
    assert accuracy[0] == "100.00%" and all(a.endswith("%") or a == "—" for a in accuracy), accuracy
    # The other outcome metrics of the same rows: prod's are perfect where defined.
    headers = cells(page, "table.abtest th")
    assert headers[:6] == ["Variant", "Weight", "Requests", "Error rate", "p99 ms", "Truth rows"], headers
    assert {"Precision", "Recall", "F1", "MAE"} <= set(headers), headers
    assert cells(page, "table.abtest td[data-col=mae]")[0] == "0.0000"
    assert "sample ratio" in page.inner_text("p.srm")
    page.screenshot(path=str(Path(os.environ.get("SLIPWAY_SCREENSHOTS", "/tmp")) / "endpoint-page.png"), full_page=True)
    assert page.problems == []


def test_empty_states(page, sqlite_server):
    page.goto(sqlite_server.url + "/#/models")
    page.wait_for_selector("main .empty")
    assert "No models registered yet" in page.inner_text("main .empty")
    assert "mlflow.register_model" in page.inner_text("main .empty")
    page.click("nav a[data-stage=endpoints]")
    page.wait_for_selector("main h1:has-text('Endpoints')")
    page.wait_for_selector("main .empty")
    assert "No endpoints yet" in page.inner_text("main .empty")
    assert page.problems == []
