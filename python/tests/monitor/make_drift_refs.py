"""Generate drift_refs.json: reference answers from Evidently's DataDriftPreset.

Every expected number in the output is read back from an Evidently report run
(the ValueDrift metric per column, its "drift" test status, and the
DriftedColumnsCount metric with its share test). Nothing is recomputed here.

Set-up (scratch venv; Evidently 0.7.23 does not import with pandas 3):

    python3 -m venv /tmp/evvenv
    /tmp/evvenv/bin/pip install evidently==0.7.23 "pandas<3" scipy numpy
    /tmp/evvenv/bin/python python/tests/monitor/make_drift_refs.py

Encoding used in the JSON (also written into the file under "encoding"):
  * numeric columns: JSON numbers; NaN / +inf / -inf as the strings
    "nan", "inf", "-inf";
  * categorical string columns: JSON strings, a missing value is null;
  * int columns: JSON integers; bool columns: JSON true/false;
  * "dtype" is the pandas dtype the values were given to Evidently with
    (float64, int64, bool, object). Type inference depends on it.
  * a statistic that is NaN/inf is written as the same strings.
All random data is rounded to 6 decimals (via its decimal string) before it is
given to Evidently, so the JSON reproduces the inputs bit-for-bit.
"""

import json
import math
import os
import sys
import warnings
from typing import Any, Dict, List, Optional

# Evidently iterates categories in Python set order, which for strings depends on
# the hash seed; the order only changes floating-point summation (last-ulp
# differences), but pin it so the JSON is byte-for-byte reproducible.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

import numpy as np
import pandas as pd
import scipy

import evidently
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
from evidently.presets import DataDriftPreset

warnings.filterwarnings("ignore")

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "drift_refs.json")

# Evidently reports the display name of the test ("K-S p_value"); map it back to
# the registry name ("ks") using Evidently's own registry.
DISPLAY_TO_NAME = {}
for _name, _by_type in _registered_stat_tests.items():
    for _st in _by_type.values():
        DISPLAY_TO_NAME[_st.display_name] = _st.name

P_VALUE_TESTS = {"ks", "chisquare", "z"}


# ----------------------------------------------------------------- helpers
def r6(x):
    """Round to 6 decimals through the decimal string (exact JSON round trip)."""
    return float(f"{x:.6f}")


def floats(arr) -> List[float]:
    return [r6(v) if np.isfinite(v) else float(v) for v in np.asarray(arr, dtype=float)]


def enc_value(v, dtype: str):
    if dtype == "float64":
        v = float(v)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if dtype == "int64":
        return int(v)
    if dtype == "bool":
        return bool(v)
    # object (strings); missing -> null
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v


def enc_stat(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def series(values, dtype: str) -> pd.Series:
    if dtype == "float64":
        return pd.Series(np.asarray(values, dtype=float), dtype="float64")
    if dtype == "int64":
        return pd.Series(np.asarray(values, dtype=np.int64), dtype="int64")
    if dtype == "bool":
        return pd.Series(np.asarray(values, dtype=bool), dtype="bool")
    return pd.Series(list(values), dtype="object")


def col(name, dtype, reference, current, type_given=None, method=None):
    return {
        "column": name,
        "dtype": dtype,
        "type_given": type_given,
        "method": method,
        "reference": list(reference),
        "current": list(current),
    }


# ----------------------------------------------------------------- runner
def run_case(name: str, description: str, columns: List[Dict[str, Any]], notes: Optional[str] = None):
    ref_df = pd.DataFrame({c["column"]: series(c["reference"], c["dtype"]) for c in columns})
    cur_df = pd.DataFrame({c["column"]: series(c["current"], c["dtype"]) for c in columns})

    given = [c["type_given"] for c in columns]
    if any(g is not None for g in given):
        if any(g is None for g in given):
            raise ValueError(f"{name}: give types for all columns or for none")
        dd = DataDefinition(
            numerical_columns=[c["column"] for c in columns if c["type_given"] == "num"],
            categorical_columns=[c["column"] for c in columns if c["type_given"] == "cat"],
        )
        cur_in = Dataset.from_pandas(cur_df, data_definition=dd)
        ref_in = Dataset.from_pandas(ref_df, data_definition=dd)
    else:
        cur_in = Dataset.from_pandas(cur_df)
        ref_in = Dataset.from_pandas(ref_df)

    # type Evidently actually used: the current dataset's data definition
    used_types = {c["column"]: cur_in.data_definition.get_column_type(c["column"]).value for c in columns}

    per_column_method = {c["column"]: c["method"] for c in columns if c["method"]}
    preset = DataDriftPreset(per_column_method=per_column_method or None)
    snap = Report([preset], include_tests=True).run(cur_in, ref_in)
    d = snap.dict()

    tests_by_metric: Dict[str, List[dict]] = {}
    for t in d["tests"]:
        tests_by_metric.setdefault(t["metric_config"]["metric_id"], []).append(t)

    value_drift = {}
    dataset = None
    for m in d["metrics"]:
        cfg = m["config"]
        status = [t["status"] for t in tests_by_metric.get(m["id"], [])]
        if cfg["type"] == "evidently:metric_v2:ValueDrift":
            assert len(status) == 1, (name, status)
            display = cfg["method"]
            value_drift[cfg["column"]] = {
                "stattest": DISPLAY_TO_NAME.get(display, display),
                "stattest_display": display,
                "statistic": enc_stat(m["value"]),
                "threshold": cfg["threshold"],
                "drift": str(status[0]).endswith("FAIL"),
            }
        elif cfg["type"] == "evidently:metric_v2:DriftedColumnsCount":
            assert len(status) == 1, (name, status)
            dataset = {
                "number_of_columns": None,  # filled below
                "drifted_count": int(m["value"]["count"]),
                "drifted_share": m["value"]["share"],
                "drift_share_threshold": cfg.get("drift_share", 0.5),
                "dataset_drift": str(status[0]).endswith("FAIL"),
            }

    out_cols = []
    for c in columns:
        e = value_drift[c["column"]]
        e["score_kind"] = "p_value" if e["stattest"] in P_VALUE_TESTS else "distance"
        out_cols.append(
            {
                "column": c["column"],
                "dtype": c["dtype"],
                "type_given": c["type_given"],
                "type_used": used_types[c["column"]],
                "method_forced": c["method"],
                "reference": [enc_value(v, c["dtype"]) for v in c["reference"]],
                "current": [enc_value(v, c["dtype"]) for v in c["current"]],
                "expected": e,
            }
        )
    dataset["number_of_columns"] = len(columns)
    case = {"name": name, "description": description, "columns": out_cols, "dataset": dataset}
    if notes:
        case["notes"] = notes
    return case


# ----------------------------------------------------------------- cases
def build_cases():
    cases = []

    def add(name, description, columns, notes=None):
        cases.append(run_case(name, description, columns, notes))

    def rng(seed):
        return np.random.default_rng(seed)

    # ---------------- numeric, default test selection
    g = rng(1)
    add("num_ks_drift", "numeric, 200 vs 150 rows, shifted mean -> KS (unequal n)",
        [col("x", "float64", floats(g.normal(0, 1, 200)), floats(g.normal(0.6, 1, 150)), "num")])
    g = rng(2)
    add("num_ks_equal_n", "numeric, 300 vs 300 rows -> KS exact, equal sample sizes",
        [col("x", "float64", floats(g.normal(0, 1, 300)), floats(g.normal(0.15, 1, 300)), "num")])
    g = rng(3)
    add("num_ks_no_drift", "numeric, same distribution, 400 vs 333 rows -> KS, no drift",
        [col("x", "float64", floats(g.normal(5, 2, 400)), floats(g.normal(5, 2, 333)), "num")])
    g = rng(4)
    add("num_ref1000_ks", "numeric, reference exactly 1000 rows -> KS (<= 1000 rule)",
        [col("x", "float64", floats(g.normal(0, 1, 1000)), floats(g.normal(0.1, 1, 700)), "num")])
    g = rng(5)
    add("num_ref1001_wasserstein", "numeric, reference 1001 rows -> Wasserstein (normed)",
        [col("x", "float64", floats(g.normal(0, 1, 1001)), floats(g.normal(0.3, 1, 700)), "num")])
    g = rng(6)
    add("num_wasserstein_no_drift", "numeric, 1500 vs 900 rows, same distribution -> Wasserstein, no drift",
        [col("x", "float64", floats(g.normal(10, 3, 1500)), floats(g.normal(10, 3, 900)), "num")])
    g = rng(7)
    ref = floats(g.normal(0, 1, 1001))
    ref[17] = float("nan")
    add("num_ref1001_one_nan_ks",
        "numeric, reference 1001 rows of which one NaN -> 1000 after cleaning -> KS",
        [col("x", "float64", ref, floats(g.normal(0.1, 1, 600)), "num")])
    g = rng(8)
    ref = floats(g.normal(0, 1, 300))
    cur = floats(g.normal(0.2, 1.3, 250))
    for i, v in [(3, "nan"), (50, "inf"), (51, "-inf"), (200, "nan")]:
        ref[i] = float(v)
    for i, v in [(0, "inf"), (10, "nan"), (11, "nan"), (99, "-inf")]:
        cur[i] = float(v)
    add("num_nan_inf_ks", "numeric with NaN, +inf, -inf on both sides (dropped) -> KS",
        [col("x", "float64", ref, cur, "num")])
    g = rng(9)
    ref = floats(g.normal(0, 1, 1200))
    cur = floats(g.normal(0.05, 1, 800))
    ref[5] = float("nan")
    ref[6] = float("inf")
    cur[7] = float("-inf")
    add("num_nan_inf_wasserstein",
        "numeric >1000; reference has NaN and +inf, current has -inf only -> Wasserstein on cleaned data",
        [col("x", "float64", ref, cur, "num")],
        notes="QUIRK: per-column ValueDrift and the dataset-level DriftedColumnsCount disagree. "
        "The legacy dataset path cleans each side only if that side's column contains NaN; current "
        "has -inf but no NaN, so it keeps the -inf, the distance becomes inf and the column counts as drifted.")
    g = rng(10)
    ref = floats(g.normal(0, 1, 1100))
    ref[0] = float("inf")
    ref[1] = float("-inf")
    add("num_inf_without_nan_quirk",
        "numeric, reference has +/-inf but no NaN -> ValueDrift drops inf (Wasserstein), "
        "DriftedColumnsCount does not",
        [col("x", "float64", ref, floats(g.normal(0.12, 1, 400)), "num")],
        notes="QUIRK: per-column ValueDrift and the dataset-level DriftedColumnsCount disagree. "
        "The legacy dataset path only cleans a column that contains NaN, so the infs stay in, "
        "np.std is nan, the score is nan and the column counts as not drifted.")
    g = rng(11)
    add("num_3_unique_chisquare", "float column with 3 distinct values (<=1000 rows) -> chi-square",
        [col("x", "float64", g.choice([1.0, 2.0, 3.5], 300, p=[0.5, 0.3, 0.2]).tolist(),
             g.choice([1.0, 2.0, 3.5], 200, p=[0.35, 0.35, 0.3]).tolist(), "num")])
    g = rng(12)
    add("num_5_unique_chisquare", "float column, exactly 5 distinct values in union -> chi-square",
        [col("x", "float64", g.choice([0.0, 1.0, 2.0, 3.0, 4.0], 250).tolist(),
             g.choice([0.0, 1.0, 2.0, 3.0], 200).tolist(), "num")])
    g = rng(13)
    add("num_6_unique_ks", "float column, 6 distinct values in union -> KS",
        [col("x", "float64", g.choice([0.0, 1.0, 2.0, 3.0, 4.0], 250).tolist(),
             g.choice([0.0, 1.0, 2.0, 3.0, 5.0], 200).tolist(), "num")])
    g = rng(14)
    add("num_2_unique_z", "float 0.0/1.0 column (<=1000 rows) -> Z-test",
        [col("x", "float64", g.choice([0.0, 1.0], 400, p=[0.7, 0.3]).tolist(),
             g.choice([0.0, 1.0], 300, p=[0.6, 0.4]).tolist(), "num")])
    g = rng(15)
    add("num_4_unique_large_js", "float column, 4 distinct values, 1500 reference rows -> Jensen-Shannon",
        [col("x", "float64", g.choice([1.0, 2.0, 3.0, 4.0], 1500, p=[0.4, 0.3, 0.2, 0.1]).tolist(),
             g.choice([1.0, 2.0, 3.0, 4.0], 700, p=[0.25, 0.25, 0.25, 0.25]).tolist(), "num")])
    g = rng(16)
    add("num_6_unique_large_wasserstein", "float column, 6 distinct values, 1500 reference rows -> Wasserstein",
        [col("x", "float64", g.choice([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 1500).tolist(),
             g.choice([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 700).tolist(), "num")])
    g = rng(17)
    add("num_n5_ks", "numeric, 5 vs 5 rows, 10 distinct values -> KS",
        [col("x", "float64", floats(g.normal(0, 1, 5)), floats(g.normal(3, 1, 5)), "num")])
    add("num_n5_chisquare", "numeric, 5 vs 5 rows, union has only 5 distinct values -> chi-square",
        [col("x", "float64", [1.5, 2.5, 3.5, 4.5, 5.5], [1.5, 1.5, 2.5, 5.5, 5.5], "num")])
    add("num_n5_z", "numeric, 5 vs 5 rows, 2 distinct values -> Z-test",
        [col("x", "float64", [1.0, 1.0, 1.0, 2.0, 2.0], [2.0, 2.0, 2.0, 2.0, 1.0], "num")])
    g = rng(18)
    x = floats(g.normal(0, 1, 400))
    add("num_identical_ks", "numeric, identical reference and current -> KS p=1",
        [col("x", "float64", x, x, "num")])
    g = rng(19)
    x = floats(g.normal(0, 1, 1500))
    add("num_identical_wasserstein", "numeric, identical reference and current, 1500 rows -> Wasserstein 0",
        [col("x", "float64", x, x, "num")])
    add("num_constant_same_z", "numeric constant 3.0 on both sides -> Z-test short-cut p=1",
        [col("x", "float64", [3.0] * 50, [3.0] * 40, "num")])
    add("num_constant_diff_z", "numeric constant 3.0 vs constant 4.0 (<=1000) -> Z-test",
        [col("x", "float64", [3.0] * 50, [4.0] * 40, "num")])
    add("num_constant_diff_large_js", "numeric constant 1.0 (1500 rows) vs constant 2.0 -> JS = sqrt(ln 2)",
        [col("x", "float64", [1.0] * 1500, [2.0] * 300, "num")])
    g = rng(20)
    add("num_constant_ref_wasserstein_floor",
        "reference constant (std 0, 1200 rows), current varied -> Wasserstein normed by floor 0.001",
        [col("x", "float64", [5.0] * 1200, floats(g.normal(5, 0.0005, 100)), "num")])
    g = rng(21)
    add("num_ks_asymp_drift", "KS with current of 10001 rows -> scipy switches to asymptotic p-value (drift)",
        [col("x", "float64", floats(g.normal(0, 1, 500)), floats(g.normal(0.3, 1, 10001)), "num")])
    g = rng(22)
    add("num_ks_asymp_no_drift", "KS with current of 10001 rows, same distribution -> asymptotic p-value",
        [col("x", "float64", floats(g.normal(0, 1, 500)), floats(g.normal(0.0, 1, 10001)), "num")])
    g = rng(29)
    add("num_ks_asymp_small_ref_a",
        "KS, 100 reference vs 10001 current rows, same distribution: asymptotic branch with n_eff = 99 (<= 140)",
        [col("x", "float64", floats(g.normal(0, 1, 100)), floats(g.normal(0, 1, 10001)), "num")])
    g = rng(31)
    add("num_ks_asymp_small_ref_b",
        "KS, 100 reference vs 10001 current rows, shifted: asymptotic branch with n_eff = 99 (<= 140)",
        [col("x", "float64", floats(g.normal(0, 1, 100)), floats(g.normal(0.25, 1, 10001)), "num")])
    g = rng(28)
    r = floats(g.normal(0, 1, 1000))
    add("num_ks_asymp_tiny_d",
        "KS, current = reference repeated 10x plus 150 fresh values (10150 rows): asymptotic branch with tiny D",
        [col("x", "float64", r, r * 10 + floats(g.normal(0, 1, 150)), "num")])
    g = rng(23)
    add("num_ks_ties", "numeric with many ties (rounded to 1 decimal), 600 vs 450 -> KS",
        [col("x", "float64", [round(v, 1) for v in g.normal(0, 1, 600)],
             [round(v, 1) for v in g.normal(0.1, 1, 450)], "num")])
    g = rng(24)
    add("int_inferred_num_ks", "int64 column, >10 distinct values in current, type inferred -> numerical, KS",
        [col("x", "int64", g.integers(0, 100, 300).tolist(), g.integers(10, 110, 200).tolist(), None)])
    g = rng(25)
    r, c_ = g.integers(0, 7, 300).tolist(), g.integers(0, 7, 200).tolist()
    add("int_7_unique_inferred_cat", "int64 column, 7 distinct values, type inferred -> categorical, chi-square",
        [col("x", "int64", r, c_, None)])
    add("int_7_unique_given_num", "same data as int_7_unique_inferred_cat but declared numerical -> KS",
        [col("x", "int64", r, c_, "num")])
    g = rng(26)
    add("int_type_from_current_only",
        "int64: reference has ~50 distinct values, current only 8 -> inferred categorical from current",
        [col("x", "int64", g.integers(0, 50, 300).tolist(), g.integers(0, 8, 200).tolist(), None)])
    g = rng(27)
    add("float_inferred_num", "float64 column, type inferred -> numerical, KS",
        [col("x", "float64", floats(g.uniform(0, 1, 120)), floats(g.uniform(0.1, 1.1, 80)), None)])

    # ---------------- categorical, default test selection
    g = rng(30)
    add("cat_binary_str_z", "categorical strings with 2 values (<=1000) -> Z-test",
        [col("c", "object", g.choice(["no", "yes"], 500, p=[0.8, 0.2]).tolist(),
             g.choice(["no", "yes"], 300, p=[0.7, 0.3]).tolist(), "cat")])
    g = rng(31)
    add("cat_binary_bool_inferred_z", "bool dtype column, type inferred -> categorical, Z-test",
        [col("b", "bool", (g.random(400) < 0.3).tolist(), (g.random(350) < 0.42).tolist(), None)])
    g = rng(32)
    add("cat_binary_int01_inferred_z", "int64 0/1 column, type inferred -> categorical, Z-test",
        [col("b", "int64", (g.random(400) < 0.5).astype(int).tolist(),
             (g.random(350) < 0.47).astype(int).tolist(), None)])
    g = rng(33)
    add("num_binary_int01_given_num_z", "int64 0/1 column declared numerical -> Z-test (numeric <=5 values)",
        [col("b", "int64", (g.random(400) < 0.5).astype(int).tolist(),
             (g.random(350) < 0.6).astype(int).tolist(), "num")])
    g = rng(34)
    add("cat_binary_bool_large_js", "bool column, 1500 reference rows -> Jensen-Shannon",
        [col("b", "bool", (g.random(1500) < 0.3).tolist(), (g.random(600) < 0.4).tolist(), None)])
    g = rng(35)
    add("cat_3_chisquare", "categorical with 3 values -> chi-square",
        [col("c", "object", g.choice(["a", "b", "c"], 400, p=[0.5, 0.3, 0.2]).tolist(),
             g.choice(["a", "b", "c"], 300, p=[0.4, 0.3, 0.3]).tolist(), "cat")])
    g = rng(36)
    add("cat_5_same_source_chisquare",
        "categorical with 5 values, both samples from the same uniform source -> chi-square; "
        "still flags drift because the test treats reference shares as exact",
        [col("c", "object", g.choice(list("vwxyz"), 600).tolist(), g.choice(list("vwxyz"), 500).tolist(), "cat")])
    g = rng(37)
    cats = [f"k{i:02d}" for i in range(25)]
    add("cat_25_chisquare", "categorical with 25 values (<=1000 rows) -> chi-square",
        [col("c", "object", g.choice(cats, 900).tolist(), g.choice(cats, 800).tolist(), "cat")])
    g = rng(38)
    p = np.linspace(1, 3, 25)
    p = p / p.sum()
    add("cat_25_large_js", "categorical with 25 values, 2000 reference rows -> Jensen-Shannon (per-category)",
        [col("c", "object", g.choice(cats, 2000).tolist(), g.choice(cats, 1000, p=p).tolist(), "cat")])
    g = rng(39)
    add("cat_unseen_in_reference_chisquare",
        "current has category 'd' that reference never had -> chi-square expected 0 -> p=0",
        [col("c", "object", g.choice(["a", "b", "c"], 300).tolist(),
             g.choice(["a", "b", "c"], 200).tolist() + ["d"], "cat")])
    g = rng(40)
    add("cat_vanished_from_current_chisquare", "reference category 'c' absent from current -> chi-square",
        [col("c", "object", g.choice(["a", "b", "c"], 300, p=[0.45, 0.45, 0.1]).tolist(),
             g.choice(["a", "b"], 200).tolist(), "cat")])
    g = rng(41)
    add("cat_unseen_in_reference_large_js", "category unseen in reference, 1200 reference rows -> Jensen-Shannon",
        [col("c", "object", g.choice(["a", "b", "c"], 1200).tolist(),
             g.choice(["a", "b", "c", "new"], 500, p=[0.3, 0.3, 0.3, 0.1]).tolist(), "cat")])
    g = rng(42)
    add("cat_vanished_from_current_large_js", "reference category vanished in current, 1200 rows -> Jensen-Shannon",
        [col("c", "object", g.choice(["a", "b", "c"], 1200).tolist(), g.choice(["a", "b"], 500).tolist(), "cat")])
    g = rng(43)
    x = g.choice(["p", "q", "r", "s"], 300).tolist()
    add("cat_identical_chisquare", "categorical, identical reference and current -> chi-square p=1",
        [col("c", "object", x, x, "cat")])
    add("cat_constant_same_z", "categorical constant 'a' both sides -> Z-test short-cut p=1",
        [col("c", "object", ["a"] * 30, ["a"] * 20, "cat")])
    add("cat_constant_diff_z", "categorical constant 'a' vs constant 'b' -> Z-test",
        [col("c", "object", ["a"] * 30, ["b"] * 20, "cat")])
    add("cat_one_side_two_values_z", "reference has 'a','b'; current only 'b' -> Z-test",
        [col("c", "object", ["a"] * 12 + ["b"] * 8, ["b"] * 10, "cat")])
    g = rng(44)
    r = g.choice(["a", "b", "c"], 300).tolist()
    cc = g.choice(["a", "b", "c"], 200, p=[0.5, 0.25, 0.25]).tolist()
    for i in (0, 5, 77):
        r[i] = None
    for i in (3, 4):
        cc[i] = None
    add("cat_missing_values_chisquare", "categorical with missing values (null) on both sides -> dropped, chi-square",
        [col("c", "object", r, cc, "cat")])
    add("cat_n5_chisquare", "categorical, 5 vs 5 rows, 3 values, declared cat -> chi-square",
        [col("c", "object", ["a", "b", "c", "a", "b"], ["a", "b", "c", "c", "c"], "cat")])
    add("cat_n5_z", "categorical, 5 vs 5 rows, 2 values, declared cat -> Z-test",
        [col("c", "object", ["a", "a", "a", "b", "b"], ["b", "b", "b", "b", "a"], "cat")])
    g = rng(45)
    add("cat_str_inferred", "object strings with few distinct values, type inferred -> categorical, chi-square",
        [col("c", "object", g.choice(["red", "green", "blue"], 200).tolist(),
             g.choice(["red", "green", "blue"], 150, p=[0.2, 0.4, 0.4]).tolist(), None)])
    g = rng(46)
    add("cat_ref1000_chisquare", "categorical, reference exactly 1000 rows -> chi-square",
        [col("c", "object", g.choice(["a", "b", "c", "d"], 1000).tolist(),
             g.choice(["a", "b", "c", "d"], 400, p=[0.3, 0.3, 0.2, 0.2]).tolist(), "cat")])
    g = rng(47)
    add("cat_ref1001_js", "categorical, reference 1001 rows -> Jensen-Shannon",
        [col("c", "object", g.choice(["a", "b", "c", "d"], 1001).tolist(),
             g.choice(["a", "b", "c", "d"], 400, p=[0.3, 0.3, 0.2, 0.2]).tolist(), "cat")])
    g = rng(48)
    add("cat_int_codes_given_cat_chisquare", "int64 codes 0..11 declared categorical -> chi-square",
        [col("c", "int64", g.integers(0, 12, 500).tolist(), g.integers(0, 12, 400).tolist(), "cat")])

    # ---------------- forced stattests (per_column_method), default thresholds
    g = rng(60)
    add("forced_ks", "KS forced on a numeric column with 1500 reference rows",
        [col("x", "float64", floats(g.normal(0, 1, 1500)), floats(g.normal(0.08, 1, 800)), "num", "ks")])
    g = rng(61)
    add("forced_wasserstein_small", "Wasserstein forced on a small numeric column",
        [col("x", "float64", floats(g.normal(0, 2, 200)), floats(g.normal(0.5, 2, 120)), "num", "wasserstein")])
    g = rng(62)
    add("forced_chisquare_large", "chi-square forced on categorical with 1500 reference rows",
        [col("c", "object", g.choice(list("abcde"), 1500).tolist(), g.choice(list("abcde"), 700).tolist(),
             "cat", "chisquare")])
    g = rng(63)
    add("forced_z_three_categories",
        "Z-test forced on 3 categories: smallest sorted category vs the rest",
        [col("c", "object", g.choice(["a", "b", "c"], 400, p=[0.2, 0.4, 0.4]).tolist(),
             g.choice(["a", "b", "c"], 300, p=[0.3, 0.2, 0.5]).tolist(), "cat", "z")])
    g = rng(64)
    add("forced_jensenshannon_num_hist", "JS forced on numeric with >20 distinct reference values -> Sturges histogram",
        [col("x", "float64", floats(g.normal(0, 1, 500)), floats(g.normal(0.3, 1.2, 400)), "num", "jensenshannon")])
    g = rng(65)
    add("forced_jensenshannon_cat_small", "JS forced on small categorical with unseen category",
        [col("c", "object", g.choice(["a", "b", "c"], 100).tolist(), g.choice(["a", "b", "c", "d"], 80).tolist(),
             "cat", "jensenshannon")])
    g = rng(66)
    add("forced_psi_num_hist", "PSI forced on numeric (>20 distinct reference values) -> Sturges histogram",
        [col("x", "float64", floats(g.normal(0, 1, 700)), floats(g.normal(0.25, 1, 500)), "num", "psi")])
    g = rng(67)
    add("forced_psi_num_hist_empty_bins", "PSI forced, numeric with outliers -> empty histogram bins get 0.0001",
        [col("x", "float64", floats(np.concatenate([g.normal(0, 1, 300), [15.0]])),
             floats(np.concatenate([g.normal(0.2, 1, 200), [-12.0]])), "num", "psi")])
    g = rng(68)
    add("forced_psi_num_few_unique", "PSI forced on numeric with <=20 distinct reference values -> per-value bins",
        [col("x", "float64", g.integers(0, 15, 400).astype(float).tolist(),
             g.integers(0, 18, 300).astype(float).tolist(), "num", "psi")])
    g = rng(69)
    add("forced_psi_cat_unseen", "PSI forced on categorical with unseen and vanished categories (zero filling)",
        [col("c", "object", g.choice(["a", "b", "c"], 300).tolist(), g.choice(["a", "b", "d"], 200).tolist(),
             "cat", "psi")])
    g = rng(70)
    big = ["a"] * 6000 + ["b"] * 3999 + ["rare"]
    g.shuffle(big)
    add("forced_psi_cat_tiny_share",
        "PSI forced: reference share of 'rare' is 1e-4 (<= 0.0001) so zeros are filled with min/1e6",
        [col("c", "object", big, g.choice(["a", "b", "new"], 500, p=[0.5, 0.45, 0.05]).tolist(), "cat", "psi")])
    g = rng(71)
    add("forced_kl_div_num_hist", "KL divergence forced on numeric (>20 distinct) -> Sturges histogram",
        [col("x", "float64", floats(g.normal(0, 1, 600)), floats(g.normal(0.2, 1.1, 600)), "num", "kl_div")])
    g = rng(72)
    add("forced_kl_div_cat_unseen", "KL divergence forced on categorical with unseen category (zero filling)",
        [col("c", "object", g.choice(["a", "b", "c"], 300).tolist(), g.choice(["a", "b", "c", "d"], 200).tolist(),
             "cat", "kl_div")])
    g = rng(73)
    # combined size 1024 -> log2(n)+1 = 11 exactly, but with range 11.001857 the
    # float division range/(range/11) gives 11.000000000000002, so numpy makes 12 bins.
    hi = 11.001857
    r = [0.0] + floats(g.uniform(0.5, 10.5, 599))
    c_ = [hi] + floats(g.uniform(1.0, 11.0, 423))
    add("forced_psi_sturges_rounding",
        "PSI forced, combined size 1024 with range 11.001857: Sturges bin count rounds up to 12, not 11",
        [col("x", "float64", r, c_, "num", "psi")])
    g = rng(74)
    add("forced_jensenshannon_int_hist", "JS forced on int64 numeric with wide range -> Sturges on integers",
        [col("x", "int64", g.integers(0, 1000, 400).tolist(), g.integers(100, 1100, 300).tolist(), "num",
             "jensenshannon")])
    g = rng(75)
    add("forced_psi_int_hist",
        "PSI forced on int64 numeric with 30 distinct values, 3000 rows -> Sturges histogram on integers",
        [col("x", "int64", g.integers(0, 30, 2000).tolist(), g.integers(0, 30, 1000).tolist(), "num", "psi")])

    # ---------------- dataset level (multi-column)
    g = rng(90)
    n_r, n_c = 400, 300
    add("dataset_half_drifted",
        "4 columns, 2 drifted -> share 0.5 -> dataset drift (share >= 0.5)",
        [
            col("num_shift", "float64", floats(g.normal(0, 1, n_r)), floats(g.normal(1.0, 1, n_c)), "num"),
            col("num_same", "float64", floats(g.normal(0, 1, n_r)), floats(g.normal(0, 1, n_c)), "num"),
            col("cat_shift", "object", g.choice(["a", "b", "c"], n_r, p=[0.6, 0.3, 0.1]).tolist(),
                g.choice(["a", "b", "c"], n_c, p=[0.2, 0.3, 0.5]).tolist(), "cat"),
            col("cat_same", "object", g.choice(["a", "b"], n_r).tolist(), g.choice(["a", "b"], n_c).tolist(), "cat"),
        ])
    g = rng(91)
    add("dataset_below_share",
        "5 columns (inferred types: float, int, bool, str), 2 drifted -> share 0.4 -> no dataset drift",
        [
            col("f1", "float64", floats(g.normal(0, 1, n_r)), floats(g.normal(0.8, 1, n_c)), None),
            col("f2", "float64", floats(g.normal(0, 1, n_r)), floats(g.normal(0, 1, n_c)), None),
            col("i1", "int64", [0, 1, 2, 3] * (n_r // 4), [3, 2, 1, 0] * (n_c // 4), None),
            col("b1", "bool", (g.random(n_r) < 0.5).tolist(), (g.random(n_c) < 0.5).tolist(), None),
            col("s1", "object", g.choice(["x", "y", "z"], n_r).tolist(),
                g.choice(["x", "y", "z"], n_c, p=[0.7, 0.2, 0.1]).tolist(), None),
        ])
    g = rng(92)
    add("dataset_large_mixed",
        "3 columns with 1500 reference rows (Wasserstein, JS, JS); 2 of 3 drifted",
        [
            col("n", "float64", floats(g.normal(0, 1, 1500)), floats(g.normal(0.5, 1, 600)), "num"),
            col("c", "object", g.choice(list("abcd"), 1500).tolist(),
                g.choice(list("abcd"), 600, p=[0.1, 0.2, 0.3, 0.4]).tolist(), "cat"),
            col("b", "object", g.choice(["t", "f"], 1500).tolist(), g.choice(["t", "f"], 600).tolist(), "cat"),
        ])
    return cases


def main():
    cases = build_cases()
    doc = {
        "generator": "python/tests/monitor/make_drift_refs.py",
        "source": "Evidently Report([DataDriftPreset(per_column_method=...)], include_tests=True); "
        "per column: ValueDrift value/method/threshold and its 'drift' test (FAIL = drift); "
        "dataset: DriftedColumnsCount count/share and its share test (FAIL = dataset drift)",
        "versions": {
            "evidently": evidently.__version__,
            "scipy": scipy.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "python": sys.version.split()[0],
        },
        "encoding": {
            "float64": "JSON numbers; NaN, +inf, -inf as strings 'nan', 'inf', '-inf'",
            "object": "JSON strings; missing value as null",
            "int64": "JSON integers",
            "bool": "JSON true/false",
            "statistic": "JSON number, or 'nan'/'inf'/'-inf'",
            "type_given": "'num' / 'cat' passed to Evidently via DataDefinition, null = Evidently inferred it",
            "type_used": "column type Evidently used (from the current dataset's data definition)",
            "method_forced": "stattest name forced via per_column_method, null = Evidently's default choice",
        },
        "cases": cases,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")

    print(f"wrote {OUT} ({os.path.getsize(OUT) / 1e6:.2f} MB, {len(cases)} cases)")
    print(f"evidently {evidently.__version__}  scipy {scipy.__version__}  numpy {np.__version__}  pandas {pd.__version__}")
    hdr = f"{'case':40} {'column':10} {'type':5} {'test':14} {'statistic':>24} {'thr':>5} {'drift':>5}"
    print(hdr)
    print("-" * len(hdr))
    for c in cases:
        for cc in c["columns"]:
            e = cc["expected"]
            st = e["statistic"]
            st = f"{st:.12g}" if isinstance(st, float) else str(st)
            print(f"{c['name']:40} {cc['column']:10} {cc['type_used']:5} {e['stattest']:14} {st:>24} "
                  f"{e['threshold']:>5} {str(e['drift']):>5}")
        ds = c["dataset"]
        if ds["number_of_columns"] > 1 or "QUIRK" in c.get("notes", ""):
            print(f"{'  -> dataset':40} drifted {ds['drifted_count']}/{ds['number_of_columns']} "
                  f"share={ds['drifted_share']:.4g} dataset_drift={ds['dataset_drift']}")


if __name__ == "__main__":
    main()
