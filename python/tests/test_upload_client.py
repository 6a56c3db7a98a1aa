"""Versioning through the server (no store credentials): Slipway.add_dataset uploads only what
the blob store lacks, then commits; samples and splits through the API; bad uploads change
nothing. On both metadata stores."""

import json
import subprocess
import urllib.request

import pandas as pd
import pytest

import slipway.client as client_module
from harness import slipway_bin
from slipway import Slipway, SlipwayError


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    out = tmp_path_factory.mktemp("example") / "falls"
    subprocess.run([slipway_bin(), "example", "fall-detection", "generate", str(out), "--clips", "30",
                    "--seed", "4"], check=True, capture_output=True)
    return out


def post_blob(url, data: bytes) -> dict:
    req = urllib.request.Request(url + "/api/v1/blobs", data=data, method="POST",
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def test_add_a_folder_with_metadata_through_the_api(server, example, monkeypatch):
    s = Slipway(server.url)
    sent = []
    real = s._request

    def counting(method, path, body=None):
        if path == "/api/v1/blobs":
            sent.append(path)
        return real(method, path, body)

    monkeypatch.setattr(s, "_request", counting)
    made = s.add_dataset(example / "clips", "falls", message="ward 3", meta=example / "clips.csv")
    assert made["created"] and made["version"]["items"] == 30
    assert len(sent) == 30, "a new store lacks every clip"
    v = s.dataset("falls").version(1)
    assert v.message == "ward 3" and v.has_profile
    assert v.read("clip-00003.json") == (example / "clips" / "clip-00003.json").read_bytes()
    clips = pd.read_csv(example / "clips.csv")
    profile = v.profile()
    assert profile.loc["activity", "count"] == 30
    assert dict((t["value"], t["count"]) for t in profile.loc["activity", "top"]) == \
        clips.activity.value_counts().to_dict()

    # Again: nothing uploaded (the client hashes with blake3 and asks), no new version.
    sent.clear()
    again = s.add_dataset(example / "clips", "falls", meta=example / "clips.csv")
    assert (again["created"], again["version"]["version"], len(sent)) == (False, 1, 0)

    # Without blake3 every file goes up; the server hashes and dedups: still no new version.
    monkeypatch.setattr(client_module, "_blake3_digests", lambda files: None)
    assert s.add_dataset(example / "clips", "falls", meta=example / "clips.csv")["created"] is False
    assert len(sent) == 30

    # The same content under another name is a version of its own; checked out, it is equal.
    s.add_dataset(example / "clips", "falls-copy")
    assert s.dataset("falls-copy").version(1).manifest != v.manifest, "no metadata: other content"


def test_add_a_table_and_derive_through_the_api(server, example):
    s = Slipway(server.url)
    made = s.add_dataset(example / "features.parquet", "features")
    assert made["version"]["kind"] == "table"
    v = s.dataset("features").version(1)
    original = pd.read_parquet(example / "features.parquet")
    pd.testing.assert_frame_equal(v.to_pandas(), original)
    assert v.table["rows"] == 30 and v.profile().loc["hip_drop_px", "count"] == 30

    half = v.sample(fraction=0.5, seed=2, stratify_by="activity")
    assert half.dataset == "features-sample" and half.kind == "table"
    rows = half.to_pandas()
    assert len(rows) == 15
    assert set(rows.clip_id) <= set(original.clip_id)
    assert v.sample(fraction=0.5, seed=2, stratify_by="activity").version == half.version, "deterministic"

    parts = v.split(train=0.8, test=0.2, seed=5)
    assert sorted(parts) == ["test", "train"]
    ids = list(parts["train"].to_pandas().clip_id) + list(parts["test"].to_pandas().clip_id)
    assert sorted(ids) == sorted(original.clip_id)

    with pytest.raises(SlipwayError) as e:
        v.sample(fraction=0.5, seed=1, stratify_by="nope")
    assert e.value.status == 400 and "nope" in str(e.value)
    with pytest.raises(SlipwayError) as e:
        v.split(train=0.5, test=0.2, seed=1)
    assert e.value.status == 400


def test_bad_uploads_change_nothing(server, tmp_path):
    s = Slipway(server.url)
    stored = post_blob(server.url, b"frame 1")
    assert stored["size"] == 7 and not stored["existed"]
    assert post_blob(server.url, b"frame 1")["existed"]
    missing = s._request("POST", "/api/v1/blobs/missing", {"digests": [stored["digest"], "ab" * 32]})
    assert missing["missing"] == ["ab" * 32]

    def create(body):
        return s._request("POST", "/api/v1/datasets/poses/versions", body)

    item = {"path": "a.bin", "size": 7, "hash": stored["digest"]}
    cases = [
        ({"items": [item, {"path": "b.bin", "size": 3, "hash": "ab" * 32}]}, "no content"),
        ({"items": [{**item, "size": 8}]}, "no content"),
        ({"items": [{**item, "path": "../etc/passwd"}]}, "not allowed"),
        ({"items": [{**item, "hash": "xyz"}]}, "invalid hash"),
        ({"items": [item, item]}, "twice"),
        ({"items": [item], "kind": "album"}, "files or table"),
        ({"items": [item], "kind": "table"}, "not a table file"),
    ]
    for body, needle in cases:
        with pytest.raises(SlipwayError) as e:
            create(body)
        assert e.value.status == 400 and needle in str(e.value), (body, str(e.value))
    # A CSV that does not parse is refused as a table, naming the file.
    bad = post_blob(server.url, b"a,b\n1,2\n3\n")
    with pytest.raises(SlipwayError) as e:
        create({"kind": "table", "items": [{"path": "t.csv", "size": 10, "hash": bad["digest"]}]})
    assert e.value.status == 400 and "t.csv" in str(e.value) and "line 3" in str(e.value)
    with pytest.raises(SlipwayError) as e:
        s.dataset("poses")
    assert e.value.status == 404, "nothing was made"
    for body in [{"digests": ["nothex"]}, {"digests": "x"}, {}]:
        with pytest.raises(SlipwayError) as e:
            s._request("POST", "/api/v1/blobs/missing", body)
        assert e.value.status in (400, 422) and e.value.error_code
    assert create({"items": [item], "message": "ok"})["created"] is True
    with pytest.raises(ValueError):
        s.add_dataset(tmp_path / "nowhere", "x")
