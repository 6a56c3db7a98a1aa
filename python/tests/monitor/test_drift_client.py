"""`client.drift(ref_df, cur_df)` against a real server: Evidently's reference vectors give the
same tests, statistics (1e-9 relative) and verdicts through the HTTP API, as a DataFrame; bad
requests are refused with a 400 naming the column."""

import numpy as np
import pandas as pd
import pytest

from slipway import Slipway, SlipwayError
from test_drift_cli import CASES, frames, same


def test_the_client_matches_evidently(sqlite_server):
    client = Slipway(sqlite_server.url)
    checked = 0
    for case in CASES:
        ref, cur = frames(case)
        types = {c["column"]: c["type_given"] for c in case["columns"] if c["type_given"]}
        tests = {c["column"]: c["method_forced"] for c in case["columns"] if c["method_forced"]}
        out = client.drift(pd.DataFrame(ref), pd.DataFrame(cur), types=types, tests=tests)
        by = out.set_index("column")
        for c in case["columns"]:
            want, got = c["expected"], by.loc[c["column"]]
            assert got["test"] == want["stattest"], (case["name"], got, want)
            assert same(float(got["statistic"]), want["statistic"]), (case["name"], got["statistic"], want)
            assert bool(got["drift"]) == want["drift"], case["name"]
            checked += 1
        if "QUIRK" not in case.get("notes", ""):
            assert out.attrs["drift"] == case["dataset"]["dataset_drift"], case["name"]
    assert checked > 70


def test_bad_requests_are_refused_naming_the_column(sqlite_server):
    client = Slipway(sqlite_server.url)
    ref = pd.DataFrame({"x": np.arange(50.0), "c": ["a", "b"] * 25})
    cur = pd.DataFrame({"x": np.arange(50.0) + 5, "c": ["a", "b"] * 25})
    for kwargs, says in [({"tests": {"c": "ks"}}, "does not apply to categorical"),
                         ({"types": {"x": "text"}}, "give num or cat"),
                         ({"types": {"c": "num"}}, "cannot be compared as numerical"),
                         ({"columns": ["nope"]}, "no column 'nope'"),
                         ({"share": 2}, "share")]:
        with pytest.raises(SlipwayError) as e:
            client.drift(ref, cur, **kwargs)
        assert e.value.status == 400 and says in e.value.message, (kwargs, e.value.message)
    with pytest.raises(SlipwayError) as e:
        client._request("POST", "/api/v1/drift", {"reference": [{"name": "x", "dtype": "float", "values": ["a"]}],
                                                  "current": []})
    assert e.value.status == 400 and "reference column 'x': dtype float but the values are text" in e.value.message
    with pytest.raises(SlipwayError) as e:
        client._request("POST", "/api/v1/drift", {"reference": [{"name": "x", "dtype": "float", "values": [1, "a"]}],
                                                  "current": []})
    assert e.value.status == 400 and "value 1 is not of the same kind" in e.value.message, e.value.message
    out = client.drift(ref, cur)
    assert list(out["column"]) == ["x", "c"] and out.attrs["skipped"] == []
    # pandas' nullable dtypes, with pd.NA, are sent as missing values.
    ref2 = pd.DataFrame({"n": pd.array(list(range(40)) + [None] * 10, dtype="Int64"),
                         "b": pd.array([True, False] * 20 + [None] * 10, dtype="boolean")})
    cur2 = pd.DataFrame({"n": pd.array(list(range(10, 50)) + [None] * 10, dtype="Int64"),
                         "b": pd.array([True] * 40 + [None] * 10, dtype="boolean")})
    out = client.drift(ref2, cur2, types={"n": "num"}).set_index("column")
    assert out.loc["n", "reference_rows"] == 40 and out.loc["n", "test"] == "ks"
    assert out.loc["b", "test"] == "z" and bool(out.loc["b", "drift"])
