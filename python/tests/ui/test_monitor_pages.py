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
    assert page.problems == []
