"""Independent re-implementation of docs/drift-spec-notes.md, checked against drift_refs.json.

It does not import Evidently. It uses numpy for sorting / histogram edges and
only these scipy primitives, which a Rust port must also provide:
  * scipy.special.chdtrc  (chi-squared survival function = regularised upper incomplete gamma)
  * scipy.special.ndtr    (standard normal CDF)
  * scipy.stats.kstwo.sf  (only for KS when max(n_ref, n_cur) > 10000)
Everything else (test choice, cleaning, binning, exact KS p-value, distances)
is written out here from the spec, so if this script agrees with the fixture,
the spec is complete enough to port.

    /tmp/evvenv/bin/python python/tests/monitor/drift_spec_reference.py
"""

import json
import math
import os
import sys

import numpy as np
from scipy import special
from scipy.stats import kstwo

HERE = os.path.dirname(os.path.abspath(__file__))
REL_TOL = 1e-9

DEFAULT_THRESHOLD = {"ks": 0.05, "chisquare": 0.05, "z": 0.05,
                     "wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.1, "kl_div": 0.1}


# ------------------------------------------------------------------ decoding / cleaning
def decode(values, dtype):
    if dtype == "float64":
        return [float(v) for v in values]  # "nan"/"inf"/"-inf" parse via float()
    return list(values)


def clean(values, dtype):
    if dtype == "float64":
        return [v for v in values if math.isfinite(v)]
    return [v for v in values if v is not None]


# ------------------------------------------------------------------ test choice
def default_test(ref, cur, col_type):
    n_unique = len(set(ref) | set(cur))
    small = len(ref) <= 1000
    if col_type == "num":
        if n_unique <= 5:
            if small:
                return "chisquare" if n_unique > 2 else "z"
            return "jensenshannon"
        return "ks" if small else "wasserstein"
    if col_type == "cat":
        if small:
            return "chisquare" if n_unique > 2 else "z"
        return "jensenshannon"
    raise ValueError(col_type)


# ------------------------------------------------------------------ KS
def ks_statistic(a, b):
    a = np.sort(np.asarray(a, dtype=float))
    b = np.sort(np.asarray(b, dtype=float))
    both = np.concatenate([a, b])
    fa = np.searchsorted(a, both, side="right") / len(a)
    fb = np.searchsorted(b, both, side="right") / len(b)
    diff = fa - fb
    return max(float(np.max(diff)), min(max(-float(np.min(diff)), 0.0), 1.0))


def _prob_outside_square(n, h):
    p = 0.0
    k = n // h
    while k >= 0:
        p1 = 1.0
        for j in range(h):
            p1 = (n - k * h - j) * p1 / (n + k * h + j + 1)
        p = p1 * (1.0 - p)
        k -= 1
    return 2 * p


def _outer_prob_inside(m, n, g, h):
    if m < n:
        m, n = n, m
    mg, ng = m // g, n // g
    minj, maxj = 0, min(int(math.ceil(h / mg)), n + 1)
    curlen = maxj - minj
    length = min(2 * maxj + 2, n + 1)
    a = [1.0] * length
    for j in range(minj, maxj):
        a[j] = 0.0
    for i in range(1, m + 1):
        lastminj, lastlen = minj, curlen
        minj = min(max(int(math.floor((ng * i - h) / mg)) + 1, 0), n)
        maxj = min(int(math.ceil((ng * i + h) / mg)), n + 1)
        if maxj <= minj:
            return 1.0
        val = 0.0 if minj == 0 else 1.0
        for jj in range(maxj - minj):
            j = jj + minj
            val = (a[jj + minj - lastminj] * i + val * j) / (i + j)
            a[jj] = val
        curlen = maxj - minj
        if lastlen > curlen:
            for t in range(maxj - minj, maxj - minj + (lastlen - curlen)):
                a[t] = 1.0
    return a[maxj - minj - 1]


def ks_pvalue(a, b):
    n1, n2 = len(a), len(b)
    d = ks_statistic(a, b)
    if max(n1, n2) <= 10000:
        g = math.gcd(n1, n2)
        lcm = (n1 // g) * n2
        h = int(np.round(d * lcm))
        if h == 0:
            return 1.0
        p = _prob_outside_square(n1, h) if n1 == n2 else _outer_prob_inside(n1, n2, g, h)
        if 0.0 <= p <= 1.0:
            return p
        # (scipy falls back to the asymptotic branch here; never hit by the fixtures)
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return float(min(max(kstwo.sf(d, np.round(en)), 0.0), 1.0))


# ------------------------------------------------------------------ other tests
def chisquare_p(ref, cur):
    keys = set(ref) | set(cur)
    rc = {k: 0 for k in keys}
    cc = {k: 0 for k in keys}
    for v in ref:
        rc[v] += 1
    for v in cur:
        cc[v] += 1
    scale = len(cur) / len(ref)
    stat = 0.0
    for k in keys:
        exp = rc[k] * scale
        stat += math.inf if exp == 0 else (cc[k] - exp) ** 2 / exp
    return float(special.chdtrc(len(keys) - 1, stat))


def z_p(ref, cur):
    if len(set(ref)) == 1 and len(set(cur)) == 1 and set(ref) == set(cur):
        return 1.0
    first = sorted(set(ref) | set(cur))[0]
    n1, n2 = len(ref), len(cur)
    p1 = sum(0 if v == first else 1 for v in ref) / n1
    p2 = sum(0 if v == first else 1 for v in cur) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return 2 * (1 - float(special.ndtr(abs(z))))


def wasserstein_normed(ref, cur):
    u = np.sort(np.asarray(ref, dtype=float))
    v = np.sort(np.asarray(cur, dtype=float))
    allv = np.sort(np.concatenate([u, v]))
    deltas = np.diff(allv)
    ucdf = np.searchsorted(u, allv[:-1], side="right") / len(u)
    vcdf = np.searchsorted(v, allv[:-1], side="right") / len(v)
    dist = float(np.sum(np.abs(ucdf - vcdf) * deltas))
    mean = sum(ref) / len(ref)
    std = math.sqrt(sum((x - mean) ** 2 for x in ref) / len(ref))  # population std (ddof=0)
    return dist / max(std, 0.001)


def sturges_edges(combined, is_int):
    lo, hi = float(min(combined)), float(max(combined))
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    ptp = hi - lo
    width = ptp / (math.log2(len(combined)) + 1.0)
    if is_int and width < 1:
        width = 1.0
    nbins = int(math.ceil(ptp / width)) if width else 1
    step = (hi - lo) / nbins
    edges = [i * step + lo for i in range(nbins)] + [hi]
    return edges


def hist_shares(values, edges):
    s = np.sort(np.asarray(values, dtype=float))
    idx = np.concatenate([np.searchsorted(s, edges[:-1], side="left"),
                          np.searchsorted(s, edges[-1:], side="right")])
    return np.diff(idx) / len(values)


def binned(ref, cur, col_type, is_int, fill_zeros):
    if col_type == "num" and len(set(ref)) > 20:
        edges = sturges_edges(list(ref) + list(cur), is_int)
        r = hist_shares(ref, edges)
        c = hist_shares(cur, edges)
    else:
        keys = list(set(ref) | set(cur))
        rc = {k: 0 for k in keys}
        cc = {k: 0 for k in keys}
        for v in ref:
            rc[v] += 1
        for v in cur:
            cc[v] += 1
        r = np.array([rc[k] / len(ref) for k in keys])
        c = np.array([cc[k] / len(cur) for k in keys])
    if fill_zeros:
        for arr in (r, c):
            smallest = arr[arr != 0].min()
            arr[arr == 0] = smallest / 1e6 if smallest <= 0.0001 else 0.0001
    return r, c


def rel_entr(x, y):
    if x > 0 and y > 0:
        return x * math.log(x / y)
    if x == 0 and y >= 0:
        return 0.0
    return math.inf


def jensenshannon(r, c):
    p = r / r.sum()
    q = c / c.sum()
    m = (p + q) / 2.0
    js = sum(rel_entr(a, b) for a, b in zip(p, m)) + sum(rel_entr(a, b) for a, b in zip(q, m))
    return math.sqrt(js / 2.0)


def psi(r, c):
    return float(np.sum((r - c) * np.log(r / c)))


def kl_div(r, c):
    p = r / r.sum()
    q = c / c.sum()
    return sum(rel_entr(a, b) for a, b in zip(p, q))


def run_test(name, ref, cur, col_type, is_int):
    if name == "ks":
        s = ks_pvalue(ref, cur)
        return s, s <= DEFAULT_THRESHOLD[name]
    if name == "chisquare":
        s = chisquare_p(ref, cur)
        return s, s < DEFAULT_THRESHOLD[name]
    if name == "z":
        s = z_p(ref, cur)
        return s, s < DEFAULT_THRESHOLD[name]
    if name == "wasserstein":
        s = wasserstein_normed(ref, cur)
    elif name == "jensenshannon":
        s = jensenshannon(*binned(ref, cur, col_type, is_int, fill_zeros=False))
    elif name == "psi":
        s = psi(*binned(ref, cur, col_type, is_int, fill_zeros=True))
    elif name == "kl_div":
        s = kl_div(*binned(ref, cur, col_type, is_int, fill_zeros=True))
    else:
        raise ValueError(name)
    return s, s >= DEFAULT_THRESHOLD[name]


def close(a, b):
    if isinstance(b, str) or isinstance(a, str):
        return str(a) == str(b)
    if a == b:
        return True
    return abs(a - b) <= REL_TOL * max(abs(a), abs(b))


def main():
    with open(os.path.join(HERE, "drift_refs.json")) as f:
        doc = json.load(f)
    failures = 0
    worst = 0.0
    for case in doc["cases"]:
        verdicts = []
        for col in case["columns"]:
            dtype = col["dtype"]
            ref = clean(decode(col["reference"], dtype), dtype)
            cur = clean(decode(col["current"], dtype), dtype)
            col_type = col["type_used"]
            test = col["method_forced"] or default_test(ref, cur, col_type)
            stat, drift = run_test(test, ref, cur, col_type, dtype == "int64")
            exp = col["expected"]
            ok = test == exp["stattest"] and close(stat, exp["statistic"]) and drift == exp["drift"]
            if ok and isinstance(exp["statistic"], float) and exp["statistic"] != 0:
                worst = max(worst, abs(stat - exp["statistic"]) / abs(exp["statistic"]))
            verdicts.append(drift)
            if not ok:
                failures += 1
                print(f"MISMATCH {case['name']}/{col['column']}: ours {test} {stat!r} {drift} "
                      f"vs {exp['stattest']} {exp['statistic']!r} {exp['drift']}")
        ds = case["dataset"]
        share = sum(verdicts) / len(verdicts)
        if "QUIRK" in case.get("notes", ""):
            continue  # dataset-level count intentionally differs (see notes)
        if sum(verdicts) != ds["drifted_count"] or (share >= ds["drift_share_threshold"]) != ds["dataset_drift"]:
            failures += 1
            print(f"DATASET MISMATCH {case['name']}: {sum(verdicts)} {share} vs {ds}")
    n = sum(len(c["columns"]) for c in doc["cases"])
    print(f"{n} columns in {len(doc['cases'])} cases checked, {failures} mismatches, "
          f"worst relative error {worst:.3g}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
