//! Column drift: whether a current sample of a column comes from the same distribution as a
//! reference sample, decided as Evidently's `DataDriftPreset` decides it by default (version
//! 0.7), with the statistics computed as SciPy computes them.
//!
//! Per column, after dropping missing values and ±inf from each side: with at most 1,000
//! reference values, a numerical column with more than 5 distinct values (over both sides) gets
//! the Kolmogorov–Smirnov test, 3–5 values (or a categorical column with more than 2) Pearson's
//! chi-squared goodness of fit against the reference's shares, and 2 values the two-proportion
//! z-test; with more than 1,000 reference values a numerical column with more than 5 distinct
//! values gets the Wasserstein distance normed by the reference's standard deviation, and
//! anything else the Jensen–Shannon distance. p-values drift below 0.05 (KS at or below),
//! distances at or above 0.1. The dataset drifts when at least half its columns do. A test and
//! a threshold can be chosen per column, among those Evidently allows for the column's type.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::stats;

/// How a column is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Numerical,
    Categorical,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Numerical => "num",
            Kind::Categorical => "cat",
        }
    }
}

/// A drift test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Test {
    #[serde(rename = "ks")]
    Ks,
    #[serde(rename = "chisquare")]
    ChiSquare,
    #[serde(rename = "z")]
    Z,
    #[serde(rename = "wasserstein")]
    Wasserstein,
    #[serde(rename = "jensenshannon")]
    JensenShannon,
    #[serde(rename = "psi")]
    Psi,
    #[serde(rename = "kl_div")]
    KlDiv,
}

impl Test {
    pub const ALL: [Test; 7] = [
        Test::Ks,
        Test::ChiSquare,
        Test::Z,
        Test::Wasserstein,
        Test::JensenShannon,
        Test::Psi,
        Test::KlDiv,
    ];

    /// Evidently's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Test::Ks => "ks",
            Test::ChiSquare => "chisquare",
            Test::Z => "z",
            Test::Wasserstein => "wasserstein",
            Test::JensenShannon => "jensenshannon",
            Test::Psi => "psi",
            Test::KlDiv => "kl_div",
        }
    }

    pub fn parse(name: &str) -> Option<Test> {
        Test::ALL.into_iter().find(|t| t.name() == name)
    }

    /// What its statistic is.
    pub fn statistic_name(self) -> &'static str {
        match self {
            Test::Ks | Test::ChiSquare | Test::Z => "p_value",
            Test::Wasserstein | Test::JensenShannon => "distance",
            Test::Psi => "psi",
            Test::KlDiv => "divergence",
        }
    }

    pub fn default_threshold(self) -> f64 {
        match self {
            Test::Ks | Test::ChiSquare | Test::Z => 0.05,
            _ => 0.1,
        }
    }

    /// Whether `statistic` means drift at `threshold`: KS at or below, the other p-values
    /// below, distances at or above.
    pub fn drifts(self, statistic: f64, threshold: f64) -> bool {
        match self {
            Test::Ks => statistic <= threshold,
            Test::ChiSquare | Test::Z => statistic < threshold,
            _ => statistic >= threshold,
        }
    }

    /// Whether it may be chosen for a column of `kind`.
    pub fn applies_to(self, kind: Kind) -> bool {
        match self {
            Test::Ks | Test::Wasserstein => kind == Kind::Numerical,
            Test::ChiSquare | Test::Z => kind == Kind::Categorical,
            Test::JensenShannon | Test::Psi | Test::KlDiv => true,
        }
    }
}

/// One side of a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Numbers (booleans as 0 and 1); NaN is missing.
    Numbers(Vec<f64>),
    /// Labels as codes into their dictionary; [`MISSING`] is missing.
    Labels { dictionary: Vec<String>, codes: Vec<u32> },
}

/// The code of a missing label.
pub const MISSING: u32 = u32::MAX;

/// Builds [`Values::Labels`] a label at a time: each new label gets the next code.
#[derive(Debug, Default)]
pub struct LabelCoder {
    index: HashMap<String, u32>,
    dictionary: Vec<String>,
    codes: Vec<u32>,
}

impl LabelCoder {
    /// Adds a label, or a missing one.
    pub fn push(&mut self, label: Option<&str>) {
        let code = match label {
            None => MISSING,
            Some(s) => match self.index.get(s) {
                Some(c) => *c,
                None => {
                    let c = self.dictionary.len() as u32;
                    self.dictionary.push(s.to_string());
                    self.index.insert(s.to_string(), c);
                    c
                }
            },
        };
        self.codes.push(code);
    }

    pub fn finish(self) -> Values {
        Values::Labels { dictionary: self.dictionary, codes: self.codes }
    }
}

impl Values {
    /// The side without missing values and infinities; numbers sorted.
    fn clean(&self) -> Clean<'_> {
        match self {
            Values::Numbers(v) => {
                let mut n: Vec<f64> = v
                    .iter()
                    .filter(|x| x.is_finite())
                    .map(|x| if *x == 0.0 { 0.0 } else { *x })
                    .collect();
                n.sort_unstable_by(f64::total_cmp);
                Clean::Numbers(n)
            }
            Values::Labels { dictionary, codes } => Clean::Labels {
                dictionary,
                codes: codes.iter().copied().filter(|c| *c != MISSING).collect(),
            },
        }
    }

    /// Labels from strings, `None` missing.
    pub fn labels<S: AsRef<str>>(values: &[Option<S>]) -> Values {
        let mut coder = LabelCoder::default();
        for v in values {
            coder.push(v.as_ref().map(AsRef::as_ref));
        }
        coder.finish()
    }

    pub fn len(&self) -> usize {
        match self {
            Values::Numbers(v) => v.len(),
            Values::Labels { codes, .. } => codes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A side, cleaned. Distinct values keep their natural order (numbers numerically, labels by
/// code point).
#[derive(Debug, Clone)]
enum Clean<'a> {
    Numbers(Vec<f64>),
    Labels { dictionary: &'a [String], codes: Vec<u32> },
}

/// A distinct value, ordered within its kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Key {
    Number(OrdF64),
    Label(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct OrdF64(f64);

impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl std::hash::Hash for OrdF64 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}

impl Clean<'_> {
    fn len(&self) -> usize {
        match self {
            Clean::Numbers(v) => v.len(),
            Clean::Labels { codes, .. } => codes.len(),
        }
    }

    /// Counts per distinct value, in order.
    fn counts(&self) -> BTreeMap<Key, u64> {
        let mut out = BTreeMap::new();
        match self {
            Clean::Numbers(v) => {
                // Sorted: runs of equal values.
                let mut i = 0;
                while i < v.len() {
                    let mut j = i + 1;
                    while j < v.len() && v[j] == v[i] {
                        j += 1;
                    }
                    out.insert(Key::Number(OrdF64(v[i])), (j - i) as u64);
                    i = j;
                }
            }
            Clean::Labels { dictionary, codes } => {
                let mut by = vec![0u64; dictionary.len()];
                for c in codes {
                    by[*c as usize] += 1;
                }
                for (label, n) in dictionary.iter().zip(by) {
                    if n > 0 {
                        *out.entry(Key::Label(label.clone())).or_insert(0) += n;
                    }
                }
            }
        }
        out
    }

    fn numbers(&self) -> Option<&[f64]> {
        match self {
            Clean::Numbers(v) => Some(v),
            Clean::Labels { .. } => None,
        }
    }
}

/// One column to compare.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    /// Whether the numbers are integers (NumPy bins integer columns at least 1 wide).
    pub integer: bool,
    pub reference: Values,
    pub current: Values,
    /// A test chosen by name instead of the default.
    pub test: Option<Test>,
    /// A threshold instead of the test's default.
    pub threshold: Option<f64>,
}

/// The verdict on one column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnDrift {
    pub column: String,
    pub kind: Kind,
    pub test: Test,
    /// `p_value`, `distance`, `psi` or `divergence`.
    pub statistic_name: &'static str,
    pub statistic: f64,
    pub threshold: f64,
    pub drift: bool,
    pub reference_rows: usize,
    pub current_rows: usize,
    /// Rows dropped as missing or infinite, per side.
    pub reference_dropped: usize,
    pub current_dropped: usize,
}

impl ColumnDrift {
    /// A verdict back from its JSON (a non-finite statistic was written as null: NaN).
    pub fn from_json(v: &serde_json::Value) -> Option<ColumnDrift> {
        let test = Test::parse(v["test"].as_str()?)?;
        let kind = match v["kind"].as_str()? {
            "numerical" => Kind::Numerical,
            "categorical" => Kind::Categorical,
            _ => return None,
        };
        Some(ColumnDrift {
            column: v["column"].as_str()?.to_string(),
            kind,
            test,
            statistic_name: test.statistic_name(),
            statistic: v["statistic"].as_f64().unwrap_or(f64::NAN),
            threshold: v["threshold"].as_f64()?,
            drift: v["drift"].as_bool()?,
            reference_rows: v["reference_rows"].as_u64()? as usize,
            current_rows: v["current_rows"].as_u64()? as usize,
            reference_dropped: v["reference_dropped"].as_u64()? as usize,
            current_dropped: v["current_dropped"].as_u64()? as usize,
        })
    }
}

/// Why a column cannot be compared.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// Nothing left on a side after dropping missing values.
    Empty { column: String, side: &'static str },
    /// A test chosen for a type it does not apply to.
    WrongType { column: String, test: Test, kind: Kind },
    /// A threshold that is not a number.
    BadThreshold { column: String, threshold: f64 },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Empty { column, side } => {
                write!(f, "column '{column}': no {side} values left after dropping missing ones")
            }
            Refused::WrongType { column, test, kind } => write!(
                f,
                "column '{column}': the {} test does not apply to {} columns",
                test.name(),
                match kind {
                    Kind::Numerical => "numerical",
                    Kind::Categorical => "categorical",
                }
            ),
            Refused::BadThreshold { column, threshold } => {
                write!(f, "column '{column}': the threshold {threshold} is not a finite number")
            }
        }
    }
}

impl std::error::Error for Refused {}

/// The test Evidently chooses by default for a column of `kind` with `reference_rows` values
/// and `distinct` distinct values over both sides (all after cleaning).
pub fn default_test(kind: Kind, reference_rows: usize, distinct: usize) -> Test {
    let small = reference_rows <= 1000;
    match (kind, small) {
        (Kind::Numerical, true) if distinct > 5 => Test::Ks,
        (Kind::Numerical, false) if distinct > 5 => Test::Wasserstein,
        (_, true) if distinct > 2 => Test::ChiSquare,
        (_, true) => Test::Z,
        (_, false) => Test::JensenShannon,
    }
}

/// Compares one column.
pub fn column_drift(c: &Column) -> Result<ColumnDrift, Refused> {
    let (r, k) = (c.reference.clean(), c.current.clean());
    for (side, clean) in [("reference", &r), ("current", &k)] {
        if clean.len() == 0 {
            return Err(Refused::Empty { column: c.name.clone(), side });
        }
    }
    // Distinct values over both sides (and of the reference alone): sorted numbers are counted
    // by a merge; labels by their counts, which every label test needs anyway.
    let (distinct, ref_distinct, label_counts) = match (&r, &k) {
        (Clean::Numbers(a), Clean::Numbers(b)) => {
            (stats::distinct_sorted(&stats::merge_sorted(a, b)), stats::distinct_sorted(a), None)
        }
        _ => {
            let (rc, kc) = (r.counts(), k.counts());
            let distinct = union_keys(&rc, &kc).len();
            (distinct, rc.len(), Some((rc, kc)))
        }
    };
    let counts = || label_counts.clone().unwrap_or_else(|| (r.counts(), k.counts()));
    let test = match c.test {
        Some(t) if !t.applies_to(c.kind) => {
            return Err(Refused::WrongType { column: c.name.clone(), test: t, kind: c.kind });
        }
        Some(t) => t,
        None => default_test(c.kind, r.len(), distinct),
    };
    let threshold = c.threshold.unwrap_or(test.default_threshold());
    if !threshold.is_finite() {
        return Err(Refused::BadThreshold { column: c.name.clone(), threshold });
    }
    let (nr, nk) = (r.len() as f64, k.len() as f64);
    let statistic = match test {
        Test::Ks => {
            let (a, b) = (r.numbers().unwrap_or(&[]), k.numbers().unwrap_or(&[]));
            stats::ks_2samp_sorted(a, b).1.clamp(0.0, 1.0)
        }
        Test::Wasserstein => {
            let (a, b) = (r.numbers().unwrap_or(&[]), k.numbers().unwrap_or(&[]));
            stats::wasserstein_sorted(a, b) / stats::std_population(a).max(0.001)
        }
        Test::ChiSquare => {
            let (rc, kc) = counts();
            let keys: Vec<&Key> = union_keys(&rc, &kc);
            let observed: Vec<f64> =
                keys.iter().map(|key| kc.get(key).copied().unwrap_or(0) as f64).collect();
            let expected: Vec<f64> =
                keys.iter().map(|key| rc.get(key).copied().unwrap_or(0) as f64 * nk / nr).collect();
            stats::chisquare(&observed, &expected).1
        }
        Test::Z => {
            let (rc, kc) = counts();
            z_test(&rc, &kc, nr, nk)
        }
        Test::JensenShannon | Test::Psi | Test::KlDiv => {
            let (mut rs, mut ks) = shares(c, &r, &k, ref_distinct, &counts);
            match test {
                Test::JensenShannon => stats::jensen_shannon(&rs, &ks),
                Test::Psi => {
                    stats::fill_zeroes(&mut rs);
                    stats::fill_zeroes(&mut ks);
                    stats::psi(&rs, &ks)
                }
                _ => {
                    stats::fill_zeroes(&mut rs);
                    stats::fill_zeroes(&mut ks);
                    stats::kl_divergence(&rs, &ks)
                }
            }
        }
    };
    Ok(ColumnDrift {
        column: c.name.clone(),
        kind: c.kind,
        test,
        statistic_name: test.statistic_name(),
        statistic,
        threshold,
        drift: test.drifts(statistic, threshold),
        reference_rows: r.len(),
        current_rows: k.len(),
        reference_dropped: c.reference.len() - r.len(),
        current_dropped: c.current.len() - k.len(),
    })
}

fn union_keys<'a>(a: &'a BTreeMap<Key, u64>, b: &'a BTreeMap<Key, u64>) -> Vec<&'a Key> {
    let mut keys: Vec<&Key> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The two-proportion z-test with the smallest value as "0" and every other as "1"; the
/// p-value as 2 (1 − Φ(|z|)), as Evidently computes it.
fn z_test(rc: &BTreeMap<Key, u64>, kc: &BTreeMap<Key, u64>, nr: f64, nk: f64) -> f64 {
    if rc.len() == 1 && kc.len() == 1 && rc.keys().next() == kc.keys().next() {
        return 1.0;
    }
    let first = union_keys(rc, kc)[0].clone();
    let ones = |c: &BTreeMap<Key, u64>, n: f64| n - c.get(&first).copied().unwrap_or(0) as f64;
    let (p1, p2) = (ones(rc, nr) / nr, ones(kc, nk) / nk);
    let pooled = (p1 * nr + p2 * nk) / (nr + nk);
    let z = (p1 - p2) / (pooled * (1.0 - pooled) * (1.0 / nr + 1.0 / nk)).sqrt();
    2.0 * (1.0 - ndtr(z.abs()))
}

/// Φ(x) as Cephes computes it: ½ + ½ erf(x/√2) near zero, else from erfc.
fn ndtr(a: f64) -> f64 {
    let x = a * std::f64::consts::FRAC_1_SQRT_2;
    let z = x.abs();
    if z < std::f64::consts::FRAC_1_SQRT_2 {
        return 0.5 + 0.5 * slipway_core::special::erf(x);
    }
    let y = 0.5 * slipway_core::special::erfc(z);
    if x > 0.0 { 1.0 - y } else { y }
}

/// The shares JS, PSI and KL compare: a histogram on the pooled Sturges edges for a numerical
/// column whose reference has more than 20 distinct values, else one share per distinct value.
fn shares(
    c: &Column,
    r: &Clean<'_>,
    k: &Clean<'_>,
    ref_distinct: usize,
    counts: &dyn Fn() -> (BTreeMap<Key, u64>, BTreeMap<Key, u64>),
) -> (Vec<f64>, Vec<f64>) {
    let (nr, nk) = (r.len() as f64, k.len() as f64);
    if c.kind == Kind::Numerical
        && ref_distinct > 20
        && let (Some(a), Some(b)) = (r.numbers(), k.numbers())
    {
        let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
        let edges = stats::sturges_edges(&pooled, c.integer);
        let rs = stats::histogram(a, &edges).iter().map(|n| *n as f64 / nr).collect();
        let ks = stats::histogram(b, &edges).iter().map(|n| *n as f64 / nk).collect();
        return (rs, ks);
    }
    let (rc, kc) = counts();
    let (rc, kc) = (&rc, &kc);
    let keys = union_keys(rc, kc);
    let of = |c: &BTreeMap<Key, u64>, n: f64| -> Vec<f64> {
        keys.iter().map(|key| c.get(key).copied().unwrap_or(0) as f64 / n).collect()
    };
    (of(rc, nr), of(kc, nk))
}

/// The verdict on a table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetDrift {
    pub columns: Vec<ColumnDrift>,
    pub drifted: usize,
    pub share: f64,
    /// The share of drifted columns at which the dataset drifts (0.5).
    pub share_threshold: f64,
    pub drift: bool,
}

/// Compares every column; the dataset drifts when at least `share_threshold` of them do.
pub fn dataset_drift(columns: &[Column], share_threshold: f64) -> Result<DatasetDrift, Refused> {
    // Columns are independent: one thread per core takes every n-th.
    let threads =
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(columns.len().max(1));
    let mut slots: Vec<Option<Result<ColumnDrift, Refused>>> = vec![None; columns.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..columns.len())
                        .step_by(threads)
                        .map(|i| (i, column_drift(&columns[i])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (i, r) in h.join().expect("a drift thread panicked") {
                slots[i] = Some(r);
            }
        }
    });
    let results = slots.into_iter().flatten().collect::<Result<Vec<_>, _>>()?;
    let drifted = results.iter().filter(|r| r.drift).count();
    let share = if results.is_empty() { 0.0 } else { drifted as f64 / results.len() as f64 };
    Ok(DatasetDrift {
        drift: !results.is_empty() && share >= share_threshold,
        columns: results,
        drifted,
        share,
        share_threshold,
    })
}

/// A column's two sides as shares per bin, for drawing them overlaid: equal bins over the pooled
/// range of a numerical column, the most frequent values (over both sides) of a categorical one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// Bin labels: `low–high`, or the values.
    pub bins: Vec<String>,
    /// Each side's share of its rows per bin.
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
}

/// Bins drawn per numerical column.
const DISTRIBUTION_BINS: usize = 24;
/// Values drawn per categorical column at most.
pub const MAX_DISTRIBUTION_VALUES: usize = 30;

/// The [`Distribution`] of a column's two sides.
pub fn distribution(c: &Column) -> Distribution {
    let empty = || Distribution { bins: Vec::new(), reference: Vec::new(), current: Vec::new() };
    match (&c.reference, &c.current, c.kind) {
        (Values::Numbers(a), Values::Numbers(b), Kind::Numerical) => {
            let a: Vec<f64> = a.iter().copied().filter(|x| x.is_finite()).collect();
            let b: Vec<f64> = b.iter().copied().filter(|x| x.is_finite()).collect();
            let pooled: Vec<f64> = a.iter().chain(&b).copied().collect();
            if pooled.is_empty() {
                return empty();
            }
            let edges = stats::equal_edges(&pooled, DISTRIBUTION_BINS);
            let share = |x: &[f64]| -> Vec<f64> {
                let n = x.len().max(1) as f64;
                stats::histogram(x, &edges).iter().map(|c| *c as f64 / n).collect()
            };
            Distribution {
                bins: edges.windows(2).map(|w| format!("{:.4}–{:.4}", w[0], w[1])).collect(),
                reference: share(&a),
                current: share(&b),
            }
        }
        (r, k, _) => {
            let (rc, kc) = (value_counts(r), value_counts(k));
            let (nr, nk) =
                (rc.values().sum::<u64>().max(1) as f64, kc.values().sum::<u64>().max(1) as f64);
            let mut keys: Vec<&String> = rc.keys().chain(kc.keys()).collect();
            keys.sort();
            keys.dedup();
            let total = |k: &String| {
                rc.get(k).copied().unwrap_or(0) as f64 / nr
                    + kc.get(k).copied().unwrap_or(0) as f64 / nk
            };
            keys.sort_by(|x, y| total(y).total_cmp(&total(x)));
            keys.truncate(MAX_DISTRIBUTION_VALUES);
            Distribution {
                reference: keys
                    .iter()
                    .map(|k| rc.get(*k).copied().unwrap_or(0) as f64 / nr)
                    .collect(),
                current: keys
                    .iter()
                    .map(|k| kc.get(*k).copied().unwrap_or(0) as f64 / nk)
                    .collect(),
                bins: keys.into_iter().cloned().collect(),
            }
        }
    }
}

/// How often each value occurs (missing ones left out).
fn value_counts(v: &Values) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    match v {
        Values::Numbers(x) => {
            for v in x.iter().filter(|v| v.is_finite()) {
                *out.entry(format!("{v}")).or_insert(0) += 1;
            }
        }
        Values::Labels { dictionary, codes } => {
            let mut by = vec![0u64; dictionary.len()];
            for c in codes.iter().filter(|c| **c != MISSING) {
                by[*c as usize] += 1;
            }
            for (label, n) in dictionary.iter().zip(by).filter(|(_, n)| *n > 0) {
                out.insert(label.clone(), n);
            }
        }
    }
    out
}
