"""The experiment-tracking pages in headless Chromium: experiments, the runs table with search,
sort and paging, a run's page with metrics, params, tags and the artifact browser, and the
compare page's charts."""

import json
import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

from mlflow import MlflowClient  # noqa: E402

from harness import wait_until  # noqa: E402


@pytest.fixture
def tracked(sqlite_server, tmp_path):
    c = MlflowClient(sqlite_server.url)
    exp = c.create_experiment("fall-detection")
    ids = {}
    for name, model, f1 in [("gbt-a", "gbt", 0.81), ("mlp-b", "mlp", 0.74), ("gbt-c", "gbt", 0.88)]:
        run = c.create_run(exp, run_name=name)
        rid = run.info.run_id
        c.log_param(rid, "model", model)
        for step in range(5):
            c.log_metric(rid, "f1", f1 - 0.1 + step * 0.025, step=step)
            c.log_metric(rid, "loss", 1.0 / (step + 1), step=step)
        c.set_terminated(rid)
        ids[name] = rid
    (tmp_path / "config.json").write_text(json.dumps({"threshold": 0.7}))
    (tmp_path / "scores.csv").write_text("clip,score\nc1,0.9\nc2,0.1\n")
    (tmp_path / "notes.txt").write_text("camera 4 upgraded")
    png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
    (tmp_path / "pixel.png").write_bytes(png)
    for f in ["config.json", "scores.csv", "notes.txt", "pixel.png"]:
        c.log_artifact(ids["gbt-a"], str(tmp_path / f), artifact_path="eval" if f == "scores.csv" else None)
    return sqlite_server.url, exp, ids


def test_experiments_runs_search_and_compare(page, tracked):
    url, exp, ids = tracked
    page.goto(url + "/#/experiments")
    page.click("text=fall-detection")
    page.wait_for_selector("table.runs tbody tr")
    assert page.locator("table.runs tbody tr").count() == 3
    header = page.inner_text("table.runs thead")
    assert "metrics.f1" in header and "params.model" in header

    page.fill("input[name=filter]", "params.model = 'gbt'")
    page.click("form.search button")
    wait_until(page, "document.querySelectorAll('table.runs tbody tr').length === 2")
    page.click("th:has-text('metrics.f1')")
    wait_until(page, "location.hash.includes('order_by')")
    page.wait_for_selector("th:has-text('metrics.f1 ▾')")
    first = page.inner_text("table.runs tbody tr:first-child")
    assert "gbt-c" in first

    page.fill("input[name=filter]", "metrics.f1 >>> 1")
    page.click("form.search button")
    page.wait_for_selector(".error")
    assert "Invalid filter" in page.inner_text(".error") or "expected a value" in page.inner_text(".error")

    page.goto(url + f"/#/experiments/{exp}")
    page.wait_for_selector("table.runs tbody tr")
    page.check("input[aria-label='select gbt-a']")
    page.check("input[aria-label='select mlp-b']")
    page.click("button:has-text('Compare')")
    page.wait_for_selector("svg.chart path.series")
    assert page.locator("svg.chart").count() == 2  # f1 and loss
    assert page.locator("svg.chart path.series").count() == 4  # two runs each
    assert "model" in page.inner_text("tr.differs")
    page.click("text=time")
    page.wait_for_selector("svg.chart path.series")
    assert [p for p in page.problems if "400" not in p] == []


def test_run_page_and_artifact_previews(page, tracked):
    url, exp, ids = tracked
    page.goto(url + f"/#/experiments/{exp}/runs/{ids['gbt-a']}")
    page.wait_for_selector("table.metrics svg.spark path")
    assert page.inner_text("main h1").startswith("gbt-a")
    assert page.title() == "gbt-a · Slipway"
    assert "model" in page.inner_text("main") and "gbt" in page.inner_text("main")
    page.click("a[data-artifact='config.json']")
    page.wait_for_selector(".preview pre")
    assert '"threshold": 0.7' in page.inner_text(".preview pre")
    page.click("text=📁 eval/")
    page.click("a[data-artifact='eval/scores.csv']")
    page.wait_for_selector(".preview table.csv")
    assert "c1" in page.inner_text(".preview table.csv")
    page.click("a[data-artifact='pixel.png']")
    page.wait_for_selector(".preview img.artifact-image")
    loaded = page.evaluate("document.querySelector('.preview img').naturalWidth")
    assert loaded == 1
    page.click("a[data-artifact='notes.txt']")
    wait_until(page, "document.querySelector('.preview pre') && document.querySelector('.preview pre').textContent.includes('camera 4')")
    assert page.problems == []
