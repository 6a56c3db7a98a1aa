"""The Python client's tables: to_pandas, rows, profile and diff, checked against pandas' own
reading of the fall-detection example, on both stores."""

import subprocess

import numpy as np
import pandas as pd
import pytest

from harness import slipway_bin
from slipway import Slipway, SlipwayError


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """40 clips of the fall-detection example: clips/, clips.csv and features.parquet. (The
    generator touches no store, so it is not run through `server.cli`, which adds --data-dir.)"""
    out = tmp_path_factory.mktemp("fall-detection") / "example"
    argv = [slipway_bin(), "example", "fall-detection", "generate", str(out), "--clips", "40", "--seed", "1"]
    subprocess.run(argv, check=True, capture_output=True)
    return out


def features(server, example):
    """The example's features added as the table `features`, and pandas' reading of them."""
    server.cli("data", "add", str(example / "features.parquet"), "--dataset", "features")
    return Slipway(server.url).dataset("features"), pd.read_parquet(example / "features.parquet")


def test_table_version_to_pandas_equals_the_parquet(server, example):
    ds, df = features(server, example)
    assert ds.versions[0]["kind"] == "table"
    v = ds.version(1)
    assert (v.kind, v.items, v.has_profile) == ("table", 1, True)
    assert (v.table["format"], v.table["rows"]) == ("parquet", 40)
    assert [c["name"] for c in v.table["columns"]] == list(df.columns)
    dtypes = {c["name"]: c["dtype"] for c in v.table["columns"]}
    assert (dtypes["clip_id"], dtypes["frames"], dtypes["hip_drop_px"]) == ("string", "integer", "float")
    pd.testing.assert_frame_equal(v.to_pandas(), df)


def test_profile_matches_pandas(server, example):
    ds, df = features(server, example)
    profile = ds.version(1).profile()
    assert list(profile.index) == list(df.columns)
    assert profile.attrs["rows"] == 40
    for name in df.columns:
        column, figures = df[name], profile.loc[name]
        assert (figures["count"], figures["nulls"]) == (column.count(), column.isna().sum()), name
        if figures["distinct_exact"]:
            assert figures["distinct"] == column.nunique(), name
        else:
            assert figures["distinct"] == pytest.approx(column.nunique(), rel=0.05), name
        if not pd.api.types.is_numeric_dtype(column):
            assert np.isnan(figures["mean"]) and np.isnan(figures["p50"]), name
            continue
        assert (figures["min"], figures["max"]) == (column.min(), column.max()), name
        assert figures["mean"] == pytest.approx(column.mean(), rel=1e-12, abs=0), name
        assert figures["std"] == pytest.approx(column.std(), rel=1e-12, abs=0), name
        # The sketch's quantile is within 1 % of the order statistic at rank floor(q * (n - 1)):
        # pandas' "lower" interpolation. (Its default interpolates between the middle two of an
        # even count, and on 40 rows those can be more than 1 % apart.)
        for label, q in [("p0", 0), ("p1", 0.01), ("p5", 0.05), ("p25", 0.25), ("p50", 0.5),
                         ("p75", 0.75), ("p95", 0.95), ("p99", 0.99), ("p100", 1)]:
            exact = column.quantile(q, interpolation="lower")
            assert figures[label] == pytest.approx(exact, rel=0.01, abs=0), (name, label)
        assert sum(b["count"] for b in figures["histogram"]) == 40, name
    assert profile.loc["frames", "p50"] == pytest.approx(df.frames.median(), rel=0.02)

    by_count = lambda pairs: sorted(pairs, key=lambda p: (-p[1], p[0]))  # noqa: E731
    top = [(t["value"], t["count"]) for t in profile.loc["activity", "top"]]
    assert by_count(top) == by_count(df.activity.value_counts().items())
    assert profile.loc["activity", "top_error"] == 0

    few = ds.version(1).profile(bins=5, top=2)
    assert len(few.loc["hip_drop_px", "histogram"]) == 5
    assert [t["value"] for t in few.loc["activity", "top"]] == ["walk", "stand"]
    raw = ds.version(1).profile(raw=True)
    assert raw["rows"] == 40 and [c["name"] for c in raw["columns"]] == list(df.columns)
    with pytest.raises(SlipwayError) as e:
        ds.version(1).profile(bins=0)
    assert e.value.status == 400


def test_rows_pages_are_the_tables_text(server, example):
    ds, df = features(server, example)
    v = ds.version(1)
    page = v.rows(offset=38, limit=5)
    assert list(page.index) == [38, 39] and list(page.columns) == list(df.columns)
    assert list(page.clip_id) == ["clip-00038", "clip-00039"]
    every = v.rows(limit=1000)
    for name in df.columns:
        cells = every[name].tolist()
        if pd.api.types.is_float_dtype(df[name]):
            assert [float(c) for c in cells] == df[name].tolist(), name
        else:
            assert cells == df[name].astype(str).tolist(), name
    assert v.rows().shape == (40, 17)
    assert v.rows(offset=100).shape == (0, 17)
    with pytest.raises(SlipwayError) as e:
        v.rows(limit=1001)
    assert e.value.status == 400


def test_diff_of_an_edited_csv_version(server, example, tmp_path):
    ds, df = features(server, example)
    edited = df.copy()
    edited.loc[edited.clip_id == "clip-00005", "hip_drop_px"] += 1.0
    edited.to_csv(tmp_path / "features.csv", index=False)
    server.cli("data", "add", str(tmp_path / "features.csv"), "--dataset", "features", "-m", "one edit")
    v2 = Slipway(server.url).dataset("features").version(2)
    assert (v2.kind, v2.table["format"], v2.table["rows"]) == ("table", "csv", 40)
    pd.testing.assert_frame_equal(v2.to_pandas(), edited)

    diff = ds.diff(1, 2)
    assert [i["path"] for i in diff["added"]] == ["features.csv"]
    assert [i["path"] for i in diff["removed"]] == ["features.parquet"]
    table = diff["table"]
    assert (table["columns_added"], table["columns_removed"], table["columns_changed"]) == ([], [], [])
    assert table["compared_on"] == list(df.columns)
    assert (table["rows_before"], table["rows_after"]) == (40, 40)
    assert (table["rows_added"], table["rows_removed"], table["rows_unchanged"]) == (1, 1, 39)
    hip_drop = table["compared_on"].index("hip_drop_px")
    [added], [removed] = table["added_examples"], table["removed_examples"]
    assert added[0] == removed[0] == "clip-00005"
    assert float(removed[hip_drop]) == df.hip_drop_px[5]
    assert float(added[hip_drop]) == edited.hip_drop_px[5] == df.hip_drop_px[5] + 1.0


def test_samples_and_splits_are_tables_of_the_original_rows(server, example):
    ds, df = features(server, example)
    server.cli("data", "sample", "features", "--fraction", "0.5", "--seed", "3", "--stratify-by", "activity")
    server.cli("data", "split", "features", "--train", "0.8", "--test", "0.2", "--seed", "1")
    s = Slipway(server.url)

    sample = s.dataset("features-sample").version()
    assert (sample.kind, sample.derived_from, sample.table["rows"]) == ("table", "features@1", 20)
    rows = sample.to_pandas()
    assert len(rows) == 20
    full, half = df.activity.value_counts(), rows.activity.value_counts()
    assert all(abs(half[a] - full[a] / 2) <= 0.5 for a in full.index), half.to_dict()
    originals = df.set_index("clip_id").loc[rows.clip_id].reset_index()
    pd.testing.assert_frame_equal(rows, originals[df.columns])

    train, test = s.dataset("features-train").version(), s.dataset("features-test").version()
    assert (train.table["rows"], test.table["rows"]) == (32, 8)
    parts = [train.to_pandas(), test.to_pandas()]
    assert [len(p) for p in parts] == [32, 8]
    clip_ids = [c for p in parts for c in p.clip_id]
    assert sorted(clip_ids) == sorted(df.clip_id)  # every clip exactly once
    union = pd.concat(parts).sort_values("clip_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(union, df.sort_values("clip_id").reset_index(drop=True))


def test_a_table_in_parts_with_nulls(server, example, tmp_path):
    df = pd.read_parquet(example / "features.parquet")
    holey = df.copy()
    holey.loc[[3, 17, 30], "hip_drop_px"] = np.nan
    holey.loc[[4, 25], "room"] = None
    parts = tmp_path / "parts"
    parts.mkdir()
    holey.iloc[25:].to_csv(parts / "part-1.csv", index=False)
    holey.iloc[:25].to_csv(parts / "part-0.csv", index=False)
    server.cli("data", "add", str(parts), "--dataset", "holey", "--kind", "table")

    v = Slipway(server.url).dataset("holey").version()
    assert (v.kind, v.items, v.table["format"], v.table["rows"]) == ("table", 2, "csv", 40)
    pd.testing.assert_frame_equal(v.to_pandas(), holey)
    profile = v.profile()
    assert profile["nulls"].to_dict() == holey.isna().sum().to_dict()
    assert profile["count"].to_dict() == holey.count().to_dict()
    assert profile.loc["hip_drop_px", "mean"] == pytest.approx(holey.hip_drop_px.mean(), rel=1e-12, abs=0)
    page = v.rows(limit=1000)
    assert page.loc[3, "hip_drop_px"] is None and page.loc[4, "room"] is None
    assert page.loc[25, "room"] is None and page.loc[25, "clip_id"] == "clip-00025"


def test_a_folder_is_not_a_table_but_its_item_metadata_has_a_profile(server, example):
    server.cli("data", "add", str(example / "clips"), "--dataset", "falls", "--meta", str(example / "clips.csv"))
    v = Slipway(server.url).dataset("falls").version()
    assert (v.kind, v.table, v.items, v.has_profile) == ("files", None, 40, True)
    with pytest.raises(ValueError, match="not a table"):
        v.to_pandas()
    with pytest.raises(SlipwayError) as e:
        v.rows()
    assert e.value.status == 400

    meta = pd.read_csv(example / "clips.csv")
    profile = v.profile()
    assert sorted(profile.index) == sorted(set(meta.columns) - {"path"})
    assert (profile["count"] == 40).all() and (profile["nulls"] == 0).all()
    top = {t["value"]: t["count"] for t in profile.loc["room", "top"]}
    assert top == meta.room.value_counts().to_dict()
