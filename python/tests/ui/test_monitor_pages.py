"""The Monitoring stage's pages in headless Chromium: the gauges table with each series' latest
value and its last day as a sparkline, and its empty state."""

import time

from slipway import Slipway


def cells(page, selector):
    return [c.strip() for c in page.locator(selector).all_text_contents()]


def test_gauges_page_lists_series_with_sparklines(page, sqlite_server):
    page.goto(sqlite_server.url + "/#/gauges")
    page.wait_for_selector("main .empty")
    assert "No gauges yet" in page.inner_text("main .empty")

    client = Slipway(sqlite_server.url)
    now = int(time.time() * 1000)
    client.push_gauges([{"name": "camera_power_state", "labels": {"camera": "ward3-2"}, "value": v, "at_ms": now - 60_000 * (5 - i)}
                        for i, v in enumerate([1, 1, 0, 1, 0])])
    client.push_gauge("ward_bandwidth_mbps", 812.5, {"ward": "3"})
    page.goto(sqlite_server.url + "/#/endpoints")
    page.click("nav a[data-stage=gauges]")
    page.wait_for_selector("table.gauges")
    assert page.title().startswith("Gauges")
    assert cells(page, "table.gauges tbody td:first-child") == ["camera_power_state", "ward_bandwidth_mbps"]
    assert cells(page, "table.gauges td[data-col=value]") == ["0", "812.5"]
    # Five points draw a line; one point draws none.
    assert page.locator("tr[data-gauge=camera_power_state] svg.spark path").count() == 1
    assert page.locator("tr[data-gauge=ward_bandwidth_mbps] svg.spark path").count() == 0
    # The server's own memory, in a table of its own.
    assert "slipway_process_resident_memory_bytes" in cells(page, "table.own-gauges tbody td:first-child")
    assert page.problems == []


def test_endpoint_page_shows_its_prediction_log_per_window(page, sqlite_server):
    import json
    import urllib.request

    import numpy as np
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    client = Slipway(sqlite_server.url)
    X = np.random.default_rng(3).normal(size=(200, 3)).astype(np.float32)
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    client.register_model("falls", model=to_onnx(model, initial_types=[("X", FloatTensorType([None, 3]))],
                                                 options={id(model): {"zipmap": False}}).SerializeToString())
    client.create_endpoint("falls", "falls@1")
    client.set_prediction_log("falls", features=["hip_y", "speed", "aspect"], window_s=1)
    for i in range(40):
        req = urllib.request.Request(sqlite_server.url + "/endpoints/falls/invocations", method="POST",
                                     headers={"Content-Type": "application/json"},
                                     data=json.dumps({"inputs": X[i:i + 1].tolist()}).encode())
        urllib.request.urlopen(req, timeout=10).read()
        time.sleep(0.06)
    deadline = time.time() + 15
    while client.prediction_log("falls")["rows"] < 40 and time.time() < deadline:
        time.sleep(0.3)

    page.goto(sqlite_server.url + "/#/endpoints/falls")
    page.wait_for_selector("table.log-columns")
    assert "Logs 100% of requests" in page.inner_text("p.log-settings")
    assert "40 rows in" in page.inner_text("p.log-settings")
    assert cells(page, "table.log-columns tbody td:first-child") == ["hip_y", "speed", "aspect", "prediction", "score", "latency_ms"]
    # Requests spread over more than one window draw each column's mean as a line.
    assert page.locator("tr[data-column=speed] svg.spark path").count() == 1
    assert page.problems == []


def test_monitors_page_lists_verdicts_and_a_monitor_shows_columns_over_windows(page, sqlite_server, tmp_path):
    import json
    import urllib.request

    import numpy as np
    import pandas as pd
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    names = ["hip_y", "speed"]
    rng = np.random.default_rng(4)
    train = pd.DataFrame(rng.normal(size=(300, 2)), columns=names)
    train.to_parquet(tmp_path / "train.parquet")
    sqlite_server.cli("data", "add", str(tmp_path / "train.parquet"), "--dataset", "train")
    client = Slipway(sqlite_server.url)
    model = LogisticRegression().fit(train.to_numpy(np.float32), (train["hip_y"] > 0).astype(int))
    client.register_model("falls", model=to_onnx(model, initial_types=[("X", FloatTensorType([None, 2]))],
                                                 options={id(model): {"zipmap": False}}).SerializeToString())
    client.create_endpoint("falls", "falls@1")
    client.set_prediction_log("falls", features=names, window_s=2)
    client.create_monitor("falls-skew", "falls", "skew", reference="train@1")
    page.goto(sqlite_server.url + "/#/monitors")
    page.wait_for_selector("table.monitors")
    assert cells(page, "table.monitors td[data-col=verdict]") == ["not judged yet"]

    # One window of skewed traffic (hip_y x3), judged.
    now = time.time()
    start = (now // 2 + 1) * 2
    time.sleep(start - now + 0.05)
    rows = rng.normal(size=(80, 2)).astype(np.float32)
    rows[:, 0] *= 3
    for r in rows:
        req = urllib.request.Request(sqlite_server.url + "/endpoints/falls/invocations", method="POST",
                                     headers={"Content-Type": "application/json"},
                                     data=json.dumps({"inputs": [r.tolist()]}).encode())
        urllib.request.urlopen(req, timeout=10).read()
    time.sleep(max(0.0, start + 2 + 8.5 - time.time()))
    report = client.evaluate_monitor("falls-skew", int(start * 1000))
    assert report["drift"] is True, report

    page.reload()
    page.wait_for_selector("table.monitors td.alert[data-col=verdict]")
    assert cells(page, "table.monitors td[data-col=verdict]") == ["DRIFT"]
    page.click("table.monitors a >> text=falls-skew")
    page.wait_for_selector("table.drift-grid")
    assert cells(page, "table.monitor-latest tbody td:first-child") == names
    hip = next(c for c in report["columns"] if c["column"] == "hip_y")
    assert hip["drift"] is True
    assert page.locator("table.drift-grid tr[data-column=hip_y] td.alert").count() == 1

    # The window's distributions overlaid: per column, a bar per bin for the reference and one
    # for the window, the window's tallest where its largest share is.
    page.wait_for_selector("figure.overlay[data-column=hip_y] svg.overlay-chart rect.cur")
    assert page.locator("figure.overlay").count() == 2
    assert page.locator("figure.overlay.drifted[data-column=hip_y]").count() == 1
    [full] = client.monitor_reports("falls-skew", window_ms=int(start * 1000), distributions=True)
    d = full["distributions"]["hip_y"]
    bars = page.locator("figure.overlay[data-column=hip_y] rect.cur")
    assert page.locator("figure.overlay[data-column=hip_y] rect.ref").count() == bars.count() == len(d["bins"]) == 24
    heights = [float(bars.nth(i).get_attribute("height")) for i in range(bars.count())]
    tallest = {i for i, x in enumerate(heights) if x == max(heights)}  # (heights are rounded)
    assert d["current"].index(max(d["current"])) in tallest
    # A click on a window's time shows that window's distributions.
    page.locator("table.drift-grid thead th.pick").last.click()
    page.wait_for_selector(".overlays h2 >> text=Distributions, window")
    assert page.locator("figure.overlay").count() == 2
    assert page.problems == []


def test_alerts_page_lists_alerts_and_rules(page, sqlite_server):
    client = Slipway(sqlite_server.url)
    page.goto(sqlite_server.url + "/#/alerts")
    page.wait_for_selector("main .empty")
    client.push_gauge("camera_power_state", 0, {"camera": "ward3-2"})
    client.create_alert_rule("camera-off", gauge="camera_power_state", labels={"camera": "ward3-2"}, op="<", threshold=1)
    deadline = time.time() + 15
    while not client.alerts("firing") and time.time() < deadline:
        time.sleep(0.3)
    page.reload()
    page.wait_for_selector("table.alerts")
    assert cells(page, "table.alerts td[data-col=state]") == ["firing"]
    assert "camera_power_state{camera=ward3-2}" in page.inner_text("table.alerts")
    assert cells(page, "table.alert-rules tbody td:first-child") == ["camera-off"]
    assert page.problems == []
