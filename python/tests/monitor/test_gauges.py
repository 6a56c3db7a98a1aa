"""Custom gauges on both stores: pushed through the API, the CLI and the Python client, kept as
time series, their latest values on /metrics in Prometheus' format; bad points are refused whole."""

import json
import os
import subprocess
import time
import urllib.request

import pytest

from harness import slipway_bin
from slipway import Slipway, SlipwayError


def cli(server, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "MLFLOW_"))}
    return subprocess.run([slipway_bin(), "--server", server.url, *args], capture_output=True, env=env, timeout=60)


def scrape(server):
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        return r.read().decode()


def test_gauges_are_kept_as_series_and_scraped(server):
    client = Slipway(server.url)
    now = int(time.time() * 1000)
    client.push_gauges([{"name": "camera_power_state", "labels": {"camera": "ward3-2"}, "value": 1, "at_ms": now - 3000},
                        {"name": "camera_power_state", "labels": {"camera": "ward3-2"}, "value": 0, "at_ms": now - 2000},
                        {"name": "camera_power_state", "labels": {"camera": "ward3-1"}, "value": 1, "at_ms": now - 2000}])
    # A point sent late joins the history without replacing the latest value.
    client.push_gauge("camera_power_state", 5, {"camera": "ward3-2"}, at_ms=now - 10_000)
    done = cli(server, "gauges", "push", "ward_bandwidth_mbps", "812.5", "--label", "ward=3")
    assert done.returncode == 0 and "pushed ward_bandwidth_mbps{ward=3} = 812.5" in done.stdout.decode(), done.stderr

    series = {(g["name"], json.dumps(g["labels"], sort_keys=True)): g for g in client.gauges()}
    cam2 = series[("camera_power_state", '{"camera": "ward3-2"}')]
    assert cam2["value"] == 0 and cam2["at_ms"] == now - 2000 and cam2["points"] == 3, cam2
    assert series[("ward_bandwidth_mbps", '{"ward": "3"}')]["value"] == 812.5

    history = {s["labels"]["camera"]: s["points"] for s in client.gauge("camera_power_state", since_ms=now - 60_000)}
    assert history["ward3-2"] == [[now - 10_000, 5], [now - 3000, 1], [now - 2000, 0]], history
    assert history["ward3-1"] == [[now - 2000, 1]]

    metrics = scrape(server)
    assert "# TYPE camera_power_state gauge\n" in metrics
    assert 'camera_power_state{camera="ward3-2"} 0\n' in metrics and 'camera_power_state{camera="ward3-1"} 1\n' in metrics
    assert 'ward_bandwidth_mbps{ward="3"} 812.5\n' in metrics

    out = cli(server, "gauges", "list").stdout.decode()
    assert out.splitlines()[0].split() == ["GAUGE", "LABELS", "VALUE", "AT", "POINTS"], out
    assert any(l.startswith("camera_power_state") and "camera=ward3-2" in l for l in out.splitlines()), out
    out = cli(server, "gauges", "show", "camera_power_state").stdout.decode()
    assert "camera=ward3-2" in out and "OVER TIME" in out, out


def pushed(client):
    """The gauges clients pushed (not the server's own `slipway_` series)."""
    return [g for g in client.gauges() if not g["name"].startswith("slipway_")]


def test_bad_points_are_refused_and_change_nothing(server):
    client = Slipway(server.url)
    client.push_gauge("ok_gauge", 1)
    for point, says in [({"name": "bad-name", "value": 1}, "not a metric name"),
                        ({"name": "slipway_requests", "value": 1}, "Slipway's own"),
                        ({"name": "g", "labels": {"bad label": "x"}, "value": 1}, "not a label name"),
                        ({"name": "g", "value": "high"}, "value"),
                        ({"name": "g", "value": 1, "at_ms": int(time.time() * 1e6)}, "ahead of the server's clock")]:
        with pytest.raises(SlipwayError) as e:
            client.push_gauges([{"name": "ok_gauge", "value": 2}, point])
        assert e.value.status == 400 and says in e.value.message, (point, e.value.message)
    # Nothing of a refused push was stored: ok_gauge still has its one point.
    [g] = pushed(client)
    assert g["name"] == "ok_gauge" and g["value"] == 1 and g["points"] == 1
    with pytest.raises(SlipwayError) as e:
        client.gauge("never_pushed")
    assert e.value.status == 404
    done = cli(server, "gauges", "push", "g", "1", "--label", "novalue")
    assert done.returncode != 0 and len(done.stderr.decode().strip().splitlines()) == 1


def test_series_are_capped_at_ten_thousand(sqlite_server):
    client = Slipway(sqlite_server.url)
    client.push_gauges([{"name": "bed_occupied", "labels": {"bed": str(i)}, "value": 1} for i in range(10_000)])
    with pytest.raises(SlipwayError) as e:
        client.push_gauge("bed_occupied", 1, {"bed": "new"})
    assert e.value.status == 400 and "at most 10000 gauge series" in e.value.message
    # Existing series still take points.
    assert client.push_gauge("bed_occupied", 0, {"bed": "7"})["pushed"] == 1
    assert len(pushed(client)) == 10_000
    # The server's own series neither count toward the cap nor are held back by it.
    assert any(g["name"] == "slipway_process_resident_memory_bytes" for g in client.gauges())
