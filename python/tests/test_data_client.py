"""The Python client's datasets: list, versions, files, diff and checkout, on both stores
(tables are in test_tables_client.py)."""

import os
import time

import pytest

from slipway import Slipway, SlipwayError


def write(root, rel, data: bytes):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))


def test_datasets_versions_files_and_checkout(server, tmp_path):
    clips = tmp_path / "clips"
    for i in range(12):
        write(clips, f"cam{i % 3}/clip-{i:02d}.json", f'{{"clip": {i}}}'.encode())
    write(clips, "binary.bin", bytes(range(256)) * 10)
    server.cli("data", "add", str(clips), "--dataset", "falls", "-m", "first")
    write(clips, "cam1/clip-04.json", b'{"clip": "fall"}')
    (clips / "cam2" / "clip-05.json").unlink()
    server.cli("data", "add", str(clips), "--dataset", "falls", "-m", "second")

    s = Slipway(server.url)
    assert [d["name"] for d in s.datasets()] == ["falls"]
    ds = s.dataset("falls")
    assert ds.latest == 2 and [v["version"] for v in ds.versions] == [2, 1]
    v1 = ds.version(1)
    assert (v1.version, v1.items, v1.message) == (1, 13, "first")
    assert (v1.kind, v1.table, v1.has_profile) == ("files", None, False)
    assert [f["path"] for f in v1.files("cam1/")] == ["cam1/clip-01.json", "cam1/clip-04.json",
                                                        "cam1/clip-07.json", "cam1/clip-10.json"]
    assert v1.read("cam1/clip-04.json") == b'{"clip": 4}'
    assert ds.version().read("cam1/clip-04.json") == b'{"clip": "fall"}'
    diff = ds.diff(1, 2)
    assert [c["after"]["path"] for c in diff["changed"]] == ["cam1/clip-04.json"]
    assert [r["path"] for r in diff["removed"]] == ["cam2/clip-05.json"]
    assert diff["unchanged"] == 11

    out = tmp_path / "out"
    assert v1.checkout(out) == 13
    for i in range(12):
        assert (out / f"cam{i % 3}/clip-{i:02d}.json").read_bytes() == f'{{"clip": {i}}}'.encode()
    assert (out / "binary.bin").read_bytes() == bytes(range(256)) * 10
    with pytest.raises(ValueError):
        v1.checkout(out)

    # Lineage through the mlflow client: log_input of the version's mlflow dataset.
    import mlflow

    mlflow.set_tracking_uri(server.url)
    mlflow.set_experiment("lineage")
    with mlflow.start_run(run_name="reads-v1") as run:
        mlflow.log_input(v1.mlflow_dataset(), context="training")
    used = v1.runs()
    assert [r["run_id"] for r in used] == [run.info.run_id]
    assert used[0]["inputs"][0]["name"] == "falls" and used[0]["inputs"][0]["context"] == "training"
    assert ds.version(2).runs() == []

    with pytest.raises(SlipwayError) as e:
        s.dataset("nope")
    assert e.value.status == 404
    with pytest.raises(SlipwayError) as e:
        ds.version(9)
    assert e.value.status == 404
    with pytest.raises(SlipwayError) as e:
        v1.read("cam1/missing.json")
    assert e.value.status == 404

    # A folder is not a table; without item metadata it has no profile either.
    with pytest.raises(ValueError, match="not a table"):
        v1.to_pandas()
    with pytest.raises(SlipwayError) as e:
        v1.rows()
    assert e.value.status == 400
    with pytest.raises(SlipwayError) as e:
        v1.profile()
    assert e.value.status == 404
    assert diff["table"] is None
