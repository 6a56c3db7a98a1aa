"""The dataset pages for tables and profiled folders in headless Chromium, on the fall-detection
example: a table's schema, rows and profile; a folder's metadata profile and its pose-clip
preview; and a diff between two tables."""

import json
import os
import subprocess
import urllib.request

import pandas as pd
import pytest

from harness import slipway_bin, wait_until


NUMERIC_KINDS = "if"  # pandas dtype kinds the profile draws as histograms: integer, float


def generate_example(server, tmp_path):
    """`slipway example fall-detection generate`, then the clips (with their metadata) and the
    features table added as the datasets `falls` and `features`."""
    out = tmp_path / "example"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_") or k.startswith("SLIPWAY_TEST")}
    subprocess.run([slipway_bin(), "example", "fall-detection", "generate", str(out), "--clips", "40", "--seed", "1"],
                   check=True, capture_output=True, env=env)
    server.cli("data", "add", str(out / "clips"), "--dataset", "falls", "--meta", str(out / "clips.csv"))
    server.cli("data", "add", str(out / "features.parquet"), "--dataset", "features")
    return out


def api(server, path):
    with urllib.request.urlopen(server.url + path) as response:
        return json.load(response)


def cells(page, selector):
    return [c.strip() for c in page.locator(selector).all_text_contents()]


def test_table_version_shows_schema_rows_and_a_profile_card_per_column(page, sqlite_server, tmp_path):
    out = generate_example(sqlite_server, tmp_path)
    df = pd.read_parquet(out / "features.parquet")
    profile = {c["name"]: c for c in api(sqlite_server, "/api/v1/datasets/features/versions/1/profile?bins=20&top=10")["columns"]}

    page.goto(sqlite_server.url + "/#/data/features/1")
    page.wait_for_selector("table.schema tbody tr")
    assert cells(page, "table.schema tbody tr td:first-child") == list(df.columns)
    assert page.inner_text("table.schema tr[data-column=clip_id]").split() == ["clip_id", "string", "Utf8", "no"]
    assert page.inner_text("table.schema tr[data-column=frames]").split() == ["frames", "integer", "Int64", "no"]

    assert cells(page, "table.rows thead th")[1:] == list(df.columns)
    assert page.locator("table.rows tbody tr").count() == len(df) == 40
    assert page.inner_text("table.rows tbody tr:first-child td:first-of-type") == "clip-00000"
    assert cells(page, "table.rows tbody tr:nth-child(4) td")[:2] == [df.clip_id[3], df.activity[3]]
    frames_col = list(df.columns).index("frames") + 1
    frames_cell = page.locator(f"table.rows tbody tr:first-child td:nth-of-type({frames_col})")
    assert frames_cell.inner_text() == str(df.frames[0])
    assert frames_cell.evaluate("td => getComputedStyle(td).textAlign") == "right"
    assert page.locator("table.rows tbody tr:first-child td:nth-of-type(2)").evaluate("td => getComputedStyle(td).textAlign") == "left"
    assert "1–40 of 40" in page.inner_text(".rows-box p.pager")
    assert page.locator(".rows-box p.pager button").count() == 0

    cards = page.locator(".profile .profile-card")
    assert cards.count() == len(df.columns)
    numeric = [c for c in df.columns if df[c].dtype.kind in NUMERIC_KINDS]
    assert len(numeric) == 12
    assert page.locator(".profile-card svg.hist").count() == len(numeric)
    for name in numeric:
        card = page.locator(f".profile-card[data-column={name}]")
        assert card.locator("svg.hist rect.bar").count() == 20, name
        counts = [int(c) for c in card.locator("svg.hist g.bin").evaluate_all("gs => gs.map((g) => g.dataset.count)")]
        titled = [int(t.rsplit(": ", 1)[1]) for t in card.locator("svg.hist g.bin title").all_text_contents()]
        assert counts == titled == [b["count"] for b in profile[name]["histogram"]], name
        assert sum(counts) == len(df), name
        heights = [float(hh) for hh in card.locator("svg.hist rect.bar").evaluate_all("rs => rs.map((r) => r.getAttribute('height'))")]
        assert heights.index(max(heights)) == counts.index(max(counts)), name
        assert all((height == 0) == (count == 0) for height, count in zip(heights, counts)), name
        stats = dict(zip(cells(card, "dl.stats dt"), cells(card, "dl.stats dd")))
        assert stats["count"] == "40" and stats["nulls"] == "0"
        assert float(stats["min"]) == pytest.approx(df[name].min(), rel=1e-3), name
        assert float(stats["max"]) == pytest.approx(df[name].max(), rel=1e-3), name
        assert float(stats["mean"]) == pytest.approx(df[name].mean(), rel=1e-3), name
        assert stats["distinct"] == ("" if profile[name]["distinct_exact"] else "~") + str(profile[name]["distinct"])
        ticks = cells(card, "svg.hist text.tick")
        assert float(ticks[1]) == pytest.approx(df[name].min(), rel=1e-3) and float(ticks[2]) == pytest.approx(df[name].max(), rel=1e-3)
    assert any(not profile[n]["distinct_exact"] for n in numeric), "expected an approximate distinct count to check the ~"

    activity = page.locator(".profile-card[data-column=activity]")
    assert activity.locator("svg.hist").count() == 0
    shown = activity.locator("svg.topbars g.top").evaluate_all("gs => gs.map((g) => [g.dataset.value, Number(g.dataset.count)])")
    assert shown == [[k, v] for k, v in df.activity.value_counts().items()]
    assert shown[0] == ["walk", 15]
    assert "walk" in activity.inner_text() and "15" in activity.inner_text()
    assert dict(zip(cells(activity, "dl.stats dt"), cells(activity, "dl.stats dd"))) == {"count": "40", "nulls": "0", "distinct": "4"}
    assert "top 10 of 40 values" in page.inner_text(".profile-card[data-column=clip_id]")
    assert page.problems == []


def test_rows_page_fifty_at_a_time_in_place(page, sqlite_server, tmp_path):
    table = tmp_path / "scores.csv"
    pd.DataFrame({"id": range(120), "name": [f"n{i}" for i in range(120)],
                  "score": [None if i == 55 else i / 4 for i in range(120)]}).to_csv(table, index=False)
    sqlite_server.cli("data", "add", str(table), "--dataset", "scores")

    page.goto(sqlite_server.url + "/#/data/scores/1")
    page.wait_for_selector("table.rows tbody tr")
    page.locator(".profile").evaluate("p => { p.dataset.mark = 'kept'; }")
    pager = ".rows-box p.pager"
    assert "1–50 of 120" in page.inner_text(pager)
    assert page.locator(f"{pager} button").all_inner_texts() == ["Next"]
    assert page.locator("table.rows tbody tr").count() == 50
    assert cells(page, "table.rows tbody tr:first-child td") == ["0", "n0", "0.0"]

    page.click(f"{pager} >> text=Next")
    wait_until(page, "document.querySelector('.rows-box p.pager').textContent.includes('51–100 of 120')")
    assert page.locator("table.rows tbody tr").count() == 50
    assert cells(page, "table.rows tbody tr:first-child td") == ["50", "n50", "12.5"]
    assert page.inner_text("table.rows tbody tr:first-child th") == "51"
    null = page.locator("table.rows tbody tr:nth-child(6) td:nth-of-type(3)")
    assert null.inner_text() == "null" and "null" in null.get_attribute("class")
    assert page.locator(f"{pager} button").all_inner_texts() == ["Previous", "Next"]

    page.click(f"{pager} >> text=Next")
    wait_until(page, "document.querySelector('.rows-box p.pager').textContent.includes('101–120 of 120')")
    assert page.locator("table.rows tbody tr").count() == 20
    assert page.locator(f"{pager} button").all_inner_texts() == ["Previous"]
    page.click(f"{pager} >> text=Previous")
    wait_until(page, "document.querySelector('.rows-box p.pager').textContent.includes('51–100 of 120')")
    assert page.get_attribute(".profile", "data-mark") == "kept"
    score = page.locator(".profile-card[data-column=score]")
    assert dict(zip(cells(score, "dl.stats dt"), cells(score, "dl.stats dd")))["nulls"] == "1"
    assert page.problems == []


def test_folder_profile_and_pose_clip_animation(page, sqlite_server, tmp_path):
    out = generate_example(sqlite_server, tmp_path)
    meta = pd.read_csv(out / "clips.csv")
    clip = json.loads((out / "clips" / "clip-00003.json").read_text())
    n = len(clip["frames"])

    page.goto(sqlite_server.url + "/#/data/falls/1")
    page.wait_for_selector(".profile .profile-card")
    assert sorted(page.locator(".profile-card").evaluate_all("cs => cs.map((c) => c.dataset.column)")) == \
        sorted(c for c in meta.columns if c != "path")
    room = page.locator(".profile-card[data-column=room] svg.topbars g.top")
    assert room.evaluate_all("gs => gs.map((g) => [g.dataset.value, Number(g.dataset.count)])") == \
        [[k, v] for k, v in meta.room.value_counts().items()]

    page.click("[data-item='clip-00003.json']")
    page.wait_for_selector(".preview svg.clip")
    svg = ".preview svg.clip"
    assert page.get_attribute(svg, "viewBox") == f"0 0 {clip['width']} {clip['height']}"
    assert page.locator(f"{svg} circle.joint").count() == 17
    assert page.locator(f"{svg} line.limb").count() == 16
    caption = page.inner_text(".preview .clip-caption")
    row = meta[meta.clip_id == "clip-00003"].iloc[0]
    for field in ("activity", "subject", "camera", "room"):
        assert row[field] in caption, field
    assert f"{n} at {clip['fps']} fps" in caption

    button, slider = ".preview button.play", ".preview input[name=frame]"
    assert page.inner_text(button) == "Pause"
    assert page.get_attribute(slider, "max") == str(n - 1)
    wait_until(page, "Number(document.querySelector('.preview input[name=frame]').value) >= 3")
    page.click(button)
    assert page.inner_text(button) == "Play"
    paused_at = page.input_value(slider)
    page.wait_for_timeout(400)
    assert page.input_value(slider) == paused_at

    page.focus(slider)
    page.keyboard.press("Home")
    for f in (0, 1, 2, 3, 4, 5):
        assert page.input_value(slider) == str(f)
        assert page.inner_text(".preview .frame-no") == f"frame {f + 1} / {n}"
        points = page.locator(f"{svg} circle.joint").evaluate_all(
            "cs => cs.map((c) => [Number(c.getAttribute('cx')), Number(c.getAttribute('cy')), c.classList.contains('low')])")
        assert points == [[x, y, conf < 0.5] for x, y, conf in clip["frames"][f]]
        opacities = page.locator(f"{svg} circle.joint").evaluate_all("cs => cs.map((c) => Number(getComputedStyle(c).opacity))")
        assert [o < 1 for o in opacities] == [low for _, _, low in points]
        page.keyboard.press("ArrowRight")
    assert any(conf < 0.5 for frame in clip["frames"][:6] for _, _, conf in frame), "the first frames should have faint points"

    page.click(button)
    start = int(page.input_value(slider))
    wait_until(page, f"Number(document.querySelector('.preview input[name=frame]').value) !== {start}")

    # Leaving the page stops the timer: the old player's button is back to Play and its slider stays.
    detached, detached_button = page.query_selector(slider), page.query_selector(button)
    page.click("main .lede >> text=← versions")
    page.wait_for_selector("table.versions")
    stopped = detached.input_value()
    page.wait_for_timeout(400)
    assert detached.input_value() == stopped
    assert detached_button.text_content() == "Play"
    assert page.problems == []


def test_json_that_is_not_a_clip_keeps_the_text_preview(page, sqlite_server, tmp_path):
    folder = tmp_path / "misc"
    folder.mkdir()
    (folder / "labels.json").write_text('{"frames": 3, "keypoints": "none"}')
    sqlite_server.cli("data", "add", str(folder), "--dataset", "misc")
    page.goto(sqlite_server.url + "/#/data/misc/1")
    page.wait_for_selector("table.items tbody tr")
    assert page.locator(".profile").count() == 0
    page.click("[data-item='labels.json']")
    page.wait_for_selector(".preview pre")
    assert '"keypoints": "none"' in page.inner_text(".preview pre")
    assert page.locator(".preview svg.clip").count() == 0
    assert page.problems == []


def test_table_diff_shows_row_counts_examples_and_schema_changes(page, sqlite_server, tmp_path):
    out = generate_example(sqlite_server, tmp_path)
    v1 = pd.read_parquet(out / "features.parquet")
    assert v1.activity[3] == "walk"
    v2 = v1.copy()
    v2.loc[3, "activity"] = "fall"
    v2.loc[len(v2)] = v2.iloc[0]
    v2.loc[len(v2) - 1, "clip_id"] = "clip-00040"
    second = tmp_path / "v2" / "features.csv"
    second.parent.mkdir()
    v2.to_csv(second, index=False)
    sqlite_server.cli("data", "add", str(second), "--dataset", "features", "-m", "relabel clip 3, add clip 40")

    page.goto(sqlite_server.url + "/#/data/features/diff?from=1&to=2")
    page.wait_for_selector("p.row-counts")
    assert page.inner_text("p.row-counts") == "rows: 40 → 41: 2 added, 1 removed, 39 unchanged, compared on 17 columns"
    assert "Same columns, same types." in page.inner_text("main")
    assert cells(page, "table.examples thead th")[1:] == list(v1.columns)
    removed = page.locator("table.examples tbody tr.removed")
    added = page.locator("table.examples tbody tr.added")
    assert removed.count() == 1 and added.count() == 2
    assert cells(removed, "td")[:3] == ["−", "clip-00003", "walk"]
    assert sorted(tuple(r.split("\t")[:3]) for r in added.all_inner_texts()) == [("+", "clip-00003", "fall"), ("+", "clip-00040", "walk")]
    colour = "tr => getComputedStyle(tr.querySelector('td')).backgroundColor"
    assert removed.first.evaluate(colour) != added.first.evaluate(colour)
    assert "features.parquet" in page.inner_text("table.diff") and "features.csv" in page.inner_text("table.diff")

    v3 = v2.drop(columns=["subject"]).assign(is_fall=(v2.activity == "fall").astype(int), frames=v2.frames + 0.5)
    third = tmp_path / "v3" / "features.csv"
    third.parent.mkdir()
    v3.to_csv(third, index=False)
    sqlite_server.cli("data", "add", str(third), "--dataset", "features", "-m", "reshape")
    page.goto(sqlite_server.url + "/#/data/features/diff?from=2&to=3")
    page.wait_for_selector("table.schema-diff tbody tr")
    assert [r.split("\t") for r in page.locator("table.schema-diff tbody tr").all_inner_texts()] == [
        ["added", "is_fall", "integer (Int64)"],
        ["removed", "subject", "string (Utf8)"],
        ["type changed", "frames", "integer (Int64) → float (Float64)"],
    ]
    assert page.inner_text("p.row-counts") == "rows: 41 → 41: 41 added, 41 removed, 0 unchanged, compared on 16 columns"
    assert page.locator("table.examples tbody tr.added").count() == 10
    assert "Showing the first 10 removed and 10 added rows." in page.inner_text("main")
    assert page.problems == []
