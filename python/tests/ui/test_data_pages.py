"""The dataset pages in headless Chromium: datasets, a dataset's versions, a version's items
with a preview, and a diff."""

import os
import subprocess
import time

from harness import slipway_bin, wait_until


def test_datasets_versions_items_and_diff(page, sqlite_server, tmp_path):
    clips = tmp_path / "clips"
    an_hour_ago = time.time() - 3600
    for i in range(5):
        path = clips / f"ward{i % 2}" / f"clip-{i}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'{{"clip": {i}, "activity": "walk"}}')
        os.utime(path, (an_hour_ago, an_hour_ago))
    meta = tmp_path / "clips.csv"
    meta.write_text("path,camera\n" + "".join(f"ward{i % 2}/clip-{i}.json,cam-{i % 2}\n" for i in range(5)))
    sqlite_server.cli("data", "add", str(clips), "--dataset", "falls", "-m", "first sample",
                      "--description", "pose clips from ward 3", "--meta", str(meta))
    (clips / "ward1" / "clip-3.json").write_text('{"clip": 3, "activity": "fall"}')
    sqlite_server.cli("data", "add", str(clips), "--dataset", "falls", "-m", "relabelled", "--meta", str(meta))

    page.goto(sqlite_server.url + "/#/data")
    page.wait_for_selector("table.datasets tbody tr")
    row = page.inner_text("table.datasets tbody tr")
    assert "falls" in row and "v2" in row and "pose clips from ward 3" in row
    page.click("table.datasets >> text=falls")
    page.wait_for_selector("table.versions tbody tr")
    assert page.locator("table.versions tbody tr").count() == 2
    assert "relabelled" in page.inner_text("table.versions tbody tr:first-child")

    page.click("text=diff v1")
    page.wait_for_selector("table.diff tbody tr")
    assert page.inner_text("table.diff tbody").split() == ["changed", "ward1/clip-3.json", "31", "B", "→", "31", "B"]
    assert "0 added, 0 removed, 1 changed, 4 unchanged" in page.inner_text("p.lede")

    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_") or k.startswith("SLIPWAY_TEST")}
    subprocess.run([slipway_bin(), "--server", sqlite_server.url, "run", "--input", "falls@2",
                    "--name", "pose-gbt", "--", "true"], check=True, capture_output=True, env=env)

    page.goto(sqlite_server.url + "/#/data/falls/2")
    page.wait_for_selector("table.items tbody tr")
    assert "pose-gbt" in page.inner_text("table.used-by")
    page.click("table.used-by >> text=pose-gbt")
    page.wait_for_selector("table.inputs")
    page.click("table.inputs >> text=falls@2")
    page.wait_for_selector("table.items tbody tr")
    assert "falls v2" in page.inner_text("main h1")
    assert page.locator("table.items tbody tr").count() == 5
    assert "camera=cam-1" in page.inner_text("table.items tbody")
    page.fill("input[name=prefix]", "ward1/")
    page.click("form.search button")
    wait_until(page, "document.querySelectorAll('table.items tbody tr').length === 2")
    page.click("[data-item='ward1/clip-3.json']")
    page.wait_for_selector(".preview pre")
    assert '"activity": "fall"' in page.inner_text(".preview pre")
    assert page.problems == []
