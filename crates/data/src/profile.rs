//! Column profiles: mergeable summaries of a table's columns (or of item metadata fields).
//!
//! A [`Profile`] is built in one pass and merged without the raw data, so per-shard, per-replica
//! or per-window profiles combine into the profile of the union. What merges how:
//!
//! - counts (rows, values, nulls, NaN, infinities), min and max: exactly;
//! - moments: the sum and the sum of squares are kept as **exact** sums ([`ExactSum`], Shewchuk's
//!   non-overlapping partials, squares split exactly with Dekker's product), so the mean and the
//!   standard deviation are the same bits however the rows were partitioned;
//! - quantiles and histograms: a [`QuantileSketch`] (DDSketch with relative accuracy
//!   [`QuantileSketch::ALPHA`]); merged sketches equal the sketch of the union, bin for bin, and
//!   every quantile is within `ALPHA` relative error of the exact order statistic;
//! - distinct counts: a [`Hll`] (HyperLogLog, 2^12 registers, ~1.6 % standard error), merged by
//!   register maximum (again equal to the union's);
//! - top values: [`FrequentItems`], exact while a column has at most 2 × [`FrequentItems::CAPACITY`]
//!   distinct values, then a Misra–Gries summary whose counts are low by at most `n / (CAPACITY+1)`.
//!
//! The monitoring stage compares serving windows against a model's training-data profile, so the
//! type is serializable (a blob in the store), versioned by [`Profile::FORMAT`], and exposes the
//! distribution views drift tests need (quantiles, histograms, value frequencies).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The type of a profiled column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    Integer,
    Float,
    Boolean,
    String,
    /// Days since the epoch.
    Date,
    /// A timestamp, in the column's own unit since the epoch.
    Timestamp,
    /// Anything else: counted, not summarised.
    Other,
}

impl DType {
    pub fn as_str(self) -> &'static str {
        match self {
            DType::Integer => "integer",
            DType::Float => "float",
            DType::Boolean => "boolean",
            DType::String => "string",
            DType::Date => "date",
            DType::Timestamp => "timestamp",
            DType::Other => "other",
        }
    }

    /// Columns with a numeric summary (moments, quantiles, histogram).
    pub fn is_numeric(self) -> bool {
        matches!(self, DType::Integer | DType::Float | DType::Date | DType::Timestamp)
    }

    /// Columns whose values are counted one by one (top values, exact distinct counts).
    pub fn counts_values(self) -> bool {
        !matches!(self, DType::Float)
    }
}

/// The profile of a table: its row count and one summary per column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub format: u32,
    pub rows: u64,
    pub columns: Vec<ColumnProfile>,
}

impl Profile {
    pub const FORMAT: u32 = 1;

    /// An empty profile of these columns.
    pub fn new(columns: &[(String, DType)]) -> Profile {
        Profile {
            format: Profile::FORMAT,
            rows: 0,
            columns: columns.iter().map(|(n, t)| ColumnProfile::new(n, *t)).collect(),
        }
    }

    pub fn column(&self, name: &str) -> Option<&ColumnProfile> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Counts `n` more rows; the caller pushes their values to the columns.
    pub fn add_rows(&mut self, n: u64) {
        self.rows += n;
    }

    /// Folds `other` in: the result is the profile of both tables' rows. Columns are matched by
    /// name; a column only one side has is null in the other side's rows. A column whose types
    /// differ is refused.
    pub fn merge(&mut self, other: &Profile) -> Result<()> {
        for theirs in &other.columns {
            if let Some(ours) = self.columns.iter().find(|c| c.name == theirs.name)
                && ours.dtype != theirs.dtype
            {
                return Err(Error::invalid(format!(
                    "cannot merge profiles: column '{}' is {} in one and {} in the other",
                    theirs.name,
                    ours.dtype.as_str(),
                    theirs.dtype.as_str()
                )));
            }
        }
        for ours in &mut self.columns {
            match other.columns.iter().find(|c| c.name == ours.name) {
                Some(theirs) => ours.merge(theirs),
                None => ours.nulls += other.rows,
            }
        }
        for theirs in &other.columns {
            if self.column(&theirs.name).is_none() {
                let mut column = theirs.clone();
                column.nulls += self.rows;
                self.columns.push(column);
            }
        }
        self.rows += other.rows;
        Ok(())
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Profile> {
        let p: Profile = serde_json::from_slice(bytes)
            .map_err(|e| Error::Corrupt(format!("a profile does not parse: {e}")))?;
        if p.format != Profile::FORMAT {
            return Err(Error::Corrupt(format!("profile format {} is not known", p.format)));
        }
        Ok(p)
    }
}

/// The summary of one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    pub dtype: DType,
    /// Values that are not null (NaN and infinities included).
    pub count: u64,
    pub nulls: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numeric: Option<Numeric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequent: Option<FrequentItems>,
    pub distinct: Hll,
}

impl ColumnProfile {
    pub fn new(name: &str, dtype: DType) -> ColumnProfile {
        ColumnProfile {
            name: name.to_string(),
            dtype,
            count: 0,
            nulls: 0,
            numeric: dtype.is_numeric().then(Numeric::default),
            frequent: dtype.counts_values().then(FrequentItems::default),
            distinct: Hll::default(),
        }
    }

    pub fn push_null(&mut self) {
        self.nulls += 1;
    }

    /// A numeric value (of an integer, float, date or timestamp column). For integer, date and
    /// timestamp columns `key` is the value as text, for the top values.
    pub fn push_number(&mut self, x: f64, key: Option<&str>) {
        self.count += 1;
        if let Some(numeric) = &mut self.numeric {
            numeric.push(x);
        }
        match key {
            Some(key) => self.push_key(key),
            None if x.is_nan() => {}
            // -0.0 and 0.0 are one value.
            None => self.distinct.insert(mix64((x + 0.0).to_bits())),
        }
    }

    /// Many values of a float column at once (no keys): the same profile as pushing them one by
    /// one with [`push_number`](Self::push_number), with one sketch update per bucket.
    pub fn push_numbers(&mut self, xs: &[f64]) {
        self.count += xs.len() as u64;
        if let Some(numeric) = &mut self.numeric {
            numeric.push_many(xs);
        }
        for &x in xs {
            if !x.is_nan() {
                self.distinct.insert(mix64((x + 0.0).to_bits()));
            }
        }
    }

    /// A value counted as itself: a string, a boolean, or anything else in its text form.
    pub fn push_text(&mut self, value: &str) {
        self.count += 1;
        self.push_key(value);
    }

    fn push_key(&mut self, key: &str) {
        self.distinct.insert(hash_bytes(key.as_bytes()));
        if let Some(frequent) = &mut self.frequent {
            frequent.add(key, 1);
        }
    }

    fn merge(&mut self, other: &ColumnProfile) {
        self.count += other.count;
        self.nulls += other.nulls;
        if let (Some(a), Some(b)) = (&mut self.numeric, &other.numeric) {
            a.merge(b);
        }
        if let (Some(a), Some(b)) = (&mut self.frequent, &other.frequent) {
            a.merge(b);
        }
        self.distinct.merge(&other.distinct);
    }

    /// The number of distinct non-null values: exact while the top values are, else estimated.
    pub fn distinct_count(&self) -> u64 {
        match &self.frequent {
            Some(f) if f.exact => f.counts.len() as u64,
            _ => self.distinct.estimate().round() as u64,
        }
    }

    /// Whether [`distinct_count`](Self::distinct_count) is exact.
    pub fn distinct_is_exact(&self) -> bool {
        self.frequent.as_ref().is_some_and(|f| f.exact)
    }

    /// What people look at: the figures, [`Summary::QUANTILES`], a histogram of `bins` bins and
    /// the `top` most frequent values.
    pub fn summary(&self, bins: usize, top: usize) -> Summary {
        let n = self.numeric.as_ref();
        Summary {
            name: self.name.clone(),
            dtype: self.dtype,
            count: self.count,
            nulls: self.nulls,
            distinct: self.distinct_count(),
            distinct_exact: self.distinct_is_exact(),
            nan: n.map(|n| n.nan).unwrap_or(0),
            infinite: n.map(|n| n.infinite).unwrap_or(0),
            min: n.and_then(|n| n.min),
            max: n.and_then(|n| n.max),
            mean: n.and_then(Numeric::mean),
            std: n.and_then(Numeric::std),
            quantiles: n
                .map(|n| {
                    Summary::QUANTILES
                        .iter()
                        .filter_map(|&q| n.quantile(q).map(|v| (q, v)))
                        .collect()
                })
                .unwrap_or_default(),
            histogram: n.map(|n| n.histogram(bins)).unwrap_or_default(),
            top: self
                .frequent
                .as_ref()
                .map(|f| f.top(top).into_iter().map(|(v, c)| (v.to_string(), c)).collect())
                .unwrap_or_default(),
            top_error: self.frequent.as_ref().map(FrequentItems::error_bound).unwrap_or(0),
        }
    }
}

/// A column's profile as figures (see [`ColumnProfile::summary`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub name: String,
    pub dtype: DType,
    pub count: u64,
    pub nulls: u64,
    pub distinct: u64,
    pub distinct_exact: bool,
    pub nan: u64,
    pub infinite: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    /// (q, value), within [`QuantileSketch::ALPHA`] relative error.
    pub quantiles: Vec<(f64, f64)>,
    /// (lower edge, upper edge, count).
    pub histogram: Vec<(f64, f64, u64)>,
    /// (value, count), most frequent first.
    pub top: Vec<(String, u64)>,
    /// How far below the truth a top count may be (0: exact).
    pub top_error: u64,
}

impl Summary {
    pub const QUANTILES: [f64; 9] = [0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0];
}

/// Moments, extremes and the distribution of a numeric column's finite values.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Numeric {
    /// Finite values.
    pub finite: u64,
    pub nan: u64,
    pub infinite: u64,
    /// Of the finite values; `None` until there is one.
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub sum: ExactSum,
    pub sum_squares: ExactSum,
    pub sketch: QuantileSketch,
}

impl Numeric {
    fn push(&mut self, x: f64) {
        if x.is_nan() {
            self.nan += 1;
            return;
        }
        if x.is_infinite() {
            self.infinite += 1;
            return;
        }
        self.finite += 1;
        self.min = Some(self.min.map_or(x, |m| m.min(x)));
        self.max = Some(self.max.map_or(x, |m| m.max(x)));
        self.sum.add(x);
        self.sum_squares.add_square(x);
        self.sketch.insert(x);
    }

    fn push_many(&mut self, xs: &[f64]) {
        let mut finite = Vec::with_capacity(xs.len());
        for &x in xs {
            if x.is_nan() {
                self.nan += 1;
            } else if x.is_infinite() {
                self.infinite += 1;
            } else {
                self.min = Some(self.min.map_or(x, |m| m.min(x)));
                self.max = Some(self.max.map_or(x, |m| m.max(x)));
                self.sum.add(x);
                self.sum_squares.add_square(x);
                finite.push(x);
            }
        }
        self.finite += finite.len() as u64;
        self.sketch.insert_many(&finite);
    }

    fn merge(&mut self, other: &Numeric) {
        self.finite += other.finite;
        self.nan += other.nan;
        self.infinite += other.infinite;
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.sum.merge(&other.sum);
        self.sum_squares.merge(&other.sum_squares);
        self.sketch.merge(&other.sketch);
    }

    /// The mean of the finite values, correctly rounded from their exact sum.
    pub fn mean(&self) -> Option<f64> {
        (self.finite > 0).then(|| self.sum.value() / self.finite as f64)
    }

    /// The sample standard deviation (n − 1) of the finite values, from the exact sums:
    /// `sqrt((n·Σx² − (Σx)²) / (n·(n − 1)))` with the numerator computed exactly.
    pub fn std(&self) -> Option<f64> {
        if self.finite < 2 || self.sum.inexact || self.sum_squares.inexact {
            return None;
        }
        let n = self.finite as f64;
        let mut numerator = ExactSum::default();
        for &s in &self.sum_squares.partials {
            let (p, e) = two_product(n, s);
            numerator.add(p);
            numerator.add(e);
        }
        for &a in &self.sum.partials {
            for &b in &self.sum.partials {
                let (p, e) = two_product(a, b);
                numerator.add(-p);
                numerator.add(-e);
            }
        }
        let variance = numerator.value().max(0.0) / (n * (n - 1.0));
        Some(variance.sqrt())
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) of the finite values, within [`QuantileSketch::ALPHA`]
    /// relative error of the exact order statistic at rank ⌊q·(n − 1)⌋; 0 and 1 are exact.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let (min, max) = (self.min?, self.max?);
        if q <= 0.0 {
            return Some(min);
        }
        if q >= 1.0 {
            return Some(max);
        }
        self.sketch.quantile(q).map(|v| v.clamp(min, max))
    }

    /// `bins` equal-width bins from min to max, as (lower edge, upper edge, count); each sketch
    /// bucket counts in the bin of its representative value.
    pub fn histogram(&self, bins: usize) -> Vec<(f64, f64, u64)> {
        let (Some(min), Some(max)) = (self.min, self.max) else { return Vec::new() };
        let bins = bins.max(1);
        if max <= min {
            return vec![(min, max, self.finite)];
        }
        let width = (max - min) / bins as f64;
        let mut out: Vec<(f64, f64, u64)> = (0..bins)
            .map(|i| {
                (
                    min + width * i as f64,
                    if i + 1 == bins { max } else { min + width * (i + 1) as f64 },
                    0,
                )
            })
            .collect();
        for (value, count) in self.sketch.buckets() {
            let v = value.clamp(min, max);
            let i = (((v - min) / width) as usize).min(bins - 1);
            out[i].2 += count;
        }
        out
    }
}

/// An exact sum of finite doubles: Shewchuk's non-overlapping partials (as Python's
/// `math.fsum`), so adding in any order, or merging partial sums, represents the same exact
/// value, and [`value`](Self::value) rounds it correctly.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ExactSum {
    pub partials: Vec<f64>,
    /// Set if a value was too large to add exactly (|x| > 1e150 for squares, or an overflow).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inexact: bool,
}

impl ExactSum {
    pub fn add(&mut self, mut x: f64) {
        if !x.is_finite() {
            self.inexact = true;
            return;
        }
        let mut kept = 0;
        for j in 0..self.partials.len() {
            let mut y = self.partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        if !x.is_finite() {
            self.inexact = true;
            return;
        }
        self.partials.truncate(kept);
        self.partials.push(x);
    }

    /// Adds x², exactly (as the two doubles of Dekker's product).
    pub fn add_square(&mut self, x: f64) {
        if x.abs() > 1e150 {
            self.inexact = true;
            return;
        }
        let (p, e) = two_product(x, x);
        self.add(p);
        self.add(e);
    }

    pub fn merge(&mut self, other: &ExactSum) {
        self.inexact |= other.inexact;
        for &p in &other.partials {
            self.add(p);
        }
    }

    /// The exact sum, correctly rounded to a double.
    pub fn value(&self) -> f64 {
        let p = &self.partials;
        let mut n = p.len();
        if n == 0 {
            return 0.0;
        }
        n -= 1;
        let mut hi = p[n];
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = p[n];
            hi = x + y;
            let yr = hi - x;
            lo = y - yr;
            if lo != 0.0 {
                break;
            }
        }
        // Round half-even correctly when the rest has the same sign as the rounding error.
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            let yr = x - hi;
            if y == yr {
                hi = x;
            }
        }
        hi
    }
}

/// a·b as p + e exactly (Dekker), for |a·b| well below overflow.
fn two_product(a: f64, b: f64) -> (f64, f64) {
    fn split(a: f64) -> (f64, f64) {
        let c = 134_217_729.0 * a; // 2^27 + 1
        let hi = c - (c - a);
        (hi, a - hi)
    }
    let p = a * b;
    let (ah, al) = split(a);
    let (bh, bl) = split(b);
    let e = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
    (p, e)
}

/// DDSketch: values in logarithmic buckets of relative width `2·ALPHA`, one store for positive
/// and one for negative values, at most [`MAX_BINS`](Self::MAX_BINS) buckets each (the
/// smallest magnitudes fold into the next bucket beyond that). Its state depends only on the
/// multiset of inserted values, so merging sketches gives the sketch of the union.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QuantileSketch {
    /// Bucket index → count, for positive values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub positive: BTreeMap<i32, u64>,
    /// Bucket index (of |x|) → count, for negative values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub negative: BTreeMap<i32, u64>,
    pub zeros: u64,
}

impl QuantileSketch {
    /// The relative accuracy of every quantile.
    pub const ALPHA: f64 = 0.01;
    pub const MAX_BINS: usize = 2048;
    const GAMMA: f64 = (1.0 + Self::ALPHA) / (1.0 - Self::ALPHA);

    fn key(magnitude: f64) -> i32 {
        (magnitude.ln() / Self::GAMMA.ln()).ceil() as i32
    }

    /// The value a bucket stands for: within ALPHA of every value in it.
    fn value_of(key: i32) -> f64 {
        2.0 * Self::GAMMA.powi(key) / (Self::GAMMA + 1.0)
    }

    pub fn count(&self) -> u64 {
        self.zeros + self.positive.values().sum::<u64>() + self.negative.values().sum::<u64>()
    }

    pub fn insert(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if x == 0.0 {
            self.zeros += 1;
        } else if x > 0.0 {
            add_bin(&mut self.positive, Self::key(x), 1);
        } else {
            add_bin(&mut self.negative, Self::key(-x), 1);
        }
    }

    /// Inserts many values: the same sketch as inserting them one by one, with one bin update
    /// per distinct bucket rather than per value.
    pub fn insert_many(&mut self, xs: &[f64]) {
        let (mut positive, mut negative) = (Vec::new(), Vec::new());
        for &x in xs {
            if !x.is_finite() {
                continue;
            }
            if x == 0.0 {
                self.zeros += 1;
            } else if x > 0.0 {
                positive.push(Self::key(x));
            } else {
                negative.push(Self::key(-x));
            }
        }
        for (keys, store) in [(positive, &mut self.positive), (negative, &mut self.negative)] {
            let mut keys = keys;
            keys.sort_unstable();
            for run in keys.chunk_by(|a, b| a == b) {
                add_bin(store, run[0], run.len() as u64);
            }
        }
    }

    pub fn merge(&mut self, other: &QuantileSketch) {
        self.zeros += other.zeros;
        for (&k, &c) in &other.positive {
            add_bin(&mut self.positive, k, c);
        }
        for (&k, &c) in &other.negative {
            add_bin(&mut self.negative, k, c);
        }
    }

    /// Buckets in increasing value order, as (representative value, count).
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let negative = self.negative.iter().rev().map(|(&k, &c)| (-Self::value_of(k), c));
        let zeros = (self.zeros > 0).then_some((0.0, self.zeros));
        let positive = self.positive.iter().map(|(&k, &c)| (Self::value_of(k), c));
        negative.chain(zeros).chain(positive)
    }

    /// The value at rank ⌊q·(n − 1)⌋, within ALPHA relative error.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = (q * (n - 1) as f64).floor() as u64;
        let mut seen = 0;
        for (value, count) in self.buckets() {
            seen += count;
            if seen > rank {
                return Some(value);
            }
        }
        None
    }
}

fn add_bin(store: &mut BTreeMap<i32, u64>, key: i32, count: u64) {
    *store.entry(key).or_insert(0) += count;
    while store.len() > QuantileSketch::MAX_BINS {
        // Fold the smallest magnitude into the next one.
        let (_, lowest) = store.pop_first().unwrap_or((0, 0));
        if let Some(mut next) = store.first_entry() {
            *next.get_mut() += lowest;
        }
    }
}

/// Value counts: exact while there are at most 2 × [`CAPACITY`](Self::CAPACITY) distinct values,
/// then a Misra–Gries summary (merged as Agarwal et al.'s mergeable summaries) in which a
/// value's count is low by at most `total / (CAPACITY + 1)` and every value more frequent than
/// that is present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrequentItems {
    pub counts: BTreeMap<String, u64>,
    /// Values counted, including those no longer in `counts`.
    pub total: u64,
    /// True while `counts` holds every value with its exact count.
    pub exact: bool,
}

impl Default for FrequentItems {
    fn default() -> FrequentItems {
        FrequentItems { counts: BTreeMap::new(), total: 0, exact: true }
    }
}

impl FrequentItems {
    pub const CAPACITY: usize = 1000;

    fn add(&mut self, key: &str, n: u64) {
        self.total += n;
        match self.counts.get_mut(key) {
            Some(c) => *c += n,
            None => {
                self.counts.insert(key.to_string(), n);
                self.reduce();
            }
        }
    }

    fn merge(&mut self, other: &FrequentItems) {
        self.exact &= other.exact;
        self.total += other.total;
        for (k, &c) in &other.counts {
            *self.counts.entry(k.clone()).or_insert(0) += c;
        }
        self.reduce();
    }

    /// Beyond twice the capacity: subtract the (CAPACITY+1)-th largest count from all and drop
    /// what is left at zero or below. Each reduction removes at least CAPACITY+1 times what it
    /// takes from any one value, so no count falls more than `total / (CAPACITY+1)` below the
    /// truth; reducing only at twice the capacity keeps the cost per value logarithmic.
    fn reduce(&mut self) {
        if self.counts.len() <= 2 * Self::CAPACITY {
            return;
        }
        let mut counts: Vec<u64> = self.counts.values().copied().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let cut = counts[Self::CAPACITY];
        self.counts.retain(|_, c| {
            *c = c.saturating_sub(cut);
            *c > 0
        });
        self.exact = false;
    }

    /// The `n` most frequent values, most frequent first (ties by value).
    pub fn top(&self, n: usize) -> Vec<(&str, u64)> {
        let mut all: Vec<(&str, u64)> = self.counts.iter().map(|(k, &c)| (k.as_str(), c)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        all.truncate(n);
        all
    }

    /// How much any count may be below the true count (0 while exact).
    pub fn error_bound(&self) -> u64 {
        if self.exact { 0 } else { self.total / (Self::CAPACITY as u64 + 1) }
    }
}

/// HyperLogLog with 2^[`P`](Self::P) one-byte registers over 64-bit hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct Hll {
    registers: Vec<u8>,
}

impl Default for Hll {
    fn default() -> Hll {
        Hll { registers: vec![0; 1 << Self::P] }
    }
}

impl Hll {
    pub const P: u32 = 12;

    pub fn insert(&mut self, hash: u64) {
        let index = (hash >> (64 - Self::P)) as usize;
        let rest = hash << Self::P;
        let rank = (rest.leading_zeros().min(64 - Self::P) + 1) as u8;
        if rank > self.registers[index] {
            self.registers[index] = rank;
        }
    }

    pub fn merge(&mut self, other: &Hll) {
        for (a, b) in self.registers.iter_mut().zip(&other.registers) {
            *a = (*a).max(*b);
        }
    }

    /// The estimated number of distinct hashes (linear counting while registers are empty).
    pub fn estimate(&self) -> f64 {
        let m = self.registers.len() as f64;
        let sum: f64 = self.registers.iter().map(|&r| 2f64.powi(-(r as i32))).sum();
        let raw = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw }
    }
}

// Serialized sparsely: "index:rank" pairs of the non-empty registers, hex-packed.
impl Serialize for Hll {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut out = String::new();
        for (i, &r) in self.registers.iter().enumerate() {
            if r > 0 {
                out.push_str(&format!("{:03x}{:02x}", i, r));
            }
        }
        s.serialize_str(&out)
    }
}

impl<'de> Deserialize<'de> for Hll {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Hll, D::Error> {
        let text = String::deserialize(d)?;
        let bad = || serde::de::Error::custom("a distinct-count sketch does not parse");
        if text.len() % 5 != 0 || !text.is_ascii() {
            return Err(bad());
        }
        let mut hll = Hll::default();
        for chunk in text.as_bytes().chunks(5) {
            let chunk = std::str::from_utf8(chunk).map_err(|_| bad())?;
            let index = usize::from_str_radix(&chunk[..3], 16).map_err(|_| bad())?;
            let rank = u8::from_str_radix(&chunk[3..], 16).map_err(|_| bad())?;
            *hll.registers.get_mut(index).ok_or_else(bad)? = rank;
        }
        Ok(hll)
    }
}

/// The profile of a folder's item metadata: one column per field (items without it are null),
/// typed integer, float or boolean when every value parses as one, else string. `None` when no
/// item has metadata.
pub fn of_metadata(items: &[crate::types::Item]) -> Option<Profile> {
    let mut fields: BTreeMap<&str, DType> = BTreeMap::new();
    for item in items {
        for (k, v) in &item.meta {
            let t = infer(v);
            let merged = match fields.get(k.as_str()) {
                None => t,
                Some(&old) if old == t => t,
                Some(DType::Integer) | Some(DType::Float)
                    if matches!(t, DType::Integer | DType::Float) =>
                {
                    DType::Float
                }
                Some(_) => DType::String,
            };
            fields.insert(k, merged);
        }
    }
    if fields.is_empty() {
        return None;
    }
    let columns: Vec<(String, DType)> = fields.iter().map(|(k, t)| (k.to_string(), *t)).collect();
    let mut profile = Profile::new(&columns);
    profile.add_rows(items.len() as u64);
    for item in items {
        for column in &mut profile.columns {
            match item.meta.get(&column.name) {
                None => column.push_null(),
                Some(v) => match column.dtype {
                    DType::Integer | DType::Float => {
                        let x = v.trim().parse::<f64>().unwrap_or(f64::NAN);
                        let key = (column.dtype == DType::Integer).then_some(v.trim());
                        column.push_number(x, key);
                    }
                    DType::Boolean => column.push_text(&v.trim().to_ascii_lowercase()),
                    _ => column.push_text(v),
                },
            }
        }
    }
    Some(profile)
}

fn infer(v: &str) -> DType {
    let v = v.trim();
    if v.parse::<i64>().is_ok() {
        DType::Integer
    } else if v.parse::<f64>().is_ok() {
        DType::Float
    } else if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") {
        DType::Boolean
    } else {
        DType::String
    }
}

/// SplitMix64's finalizer: a bijective 64-bit mix.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable 64-bit hash of bytes (not cryptographic; fixed forever, since profiles are stored).
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = 0x243f_6a88_85a3_08d3u64 ^ bytes.len() as u64;
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = mix64(h ^ u64::from_le_bytes(word)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    }
    mix64(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushing_many_numbers_equals_pushing_them_one_by_one() {
        // Wide magnitudes (past MAX_BINS buckets, so bins fold), both signs, zeros, -0.0, NaN, ±inf.
        let mut xs: Vec<f64> = (0..20_000)
            .map(|i| {
                let m = ((i * 7919) % 1200) as f64 - 600.0;
                let sign = if i % 3 == 0 { -1.0 } else { 1.0 };
                sign * 10f64.powf(m / 2.0) * (1.0 + (i % 13) as f64 / 13.0)
            })
            .collect();
        xs.extend([0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.5, 1.5]);
        let mut one = ColumnProfile::new("x", DType::Float);
        for &x in &xs {
            one.push_number(x, None);
        }
        let mut many = ColumnProfile::new("x", DType::Float);
        let (a, b) = xs.split_at(7_000);
        many.push_numbers(a);
        many.push_numbers(b);
        assert!(one.numeric.as_ref().unwrap().sketch.positive.len() >= QuantileSketch::MAX_BINS);
        assert_eq!(one, many);
    }

    /// A deterministic stream of awkward doubles: wide magnitudes, both signs, repeats.
    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|i| {
                state = mix64(state.wrapping_add(0x9e37_79b9_7f4a_7c15));
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                match i % 5 {
                    0 => 1e6 + u, // large mean, small spread: cancellation-prone
                    1 => -u * 1e-3,
                    2 => (u * 10.0).floor(),
                    3 => 0.1,
                    _ => u * 1e9,
                }
            })
            .collect()
    }

    fn numeric_of(xs: &[f64]) -> Numeric {
        let mut n = Numeric::default();
        for &x in xs {
            n.push(x);
        }
        n
    }

    #[test]
    fn exact_sums_round_correctly_in_any_order() {
        let mut s = ExactSum::default();
        for x in [1e100, 1.0, -1e100, 1e-100] {
            s.add(x);
        }
        assert_eq!(s.value(), 1.0 + 1e-100);
        let mut t = ExactSum::default();
        for _ in 0..10 {
            t.add(0.1);
        }
        assert_eq!(t.value(), 1.0, "fsum of ten 0.1s");
        let xs = values(10_000, 1);
        let mut forward = ExactSum::default();
        xs.iter().for_each(|&x| forward.add(x));
        let mut backward = ExactSum::default();
        xs.iter().rev().for_each(|&x| backward.add(x));
        assert_eq!(forward.value().to_bits(), backward.value().to_bits());
    }

    /// Stored profiles must decode to the same bits, or merged moments drift by ulps (this
    /// needs serde_json's correctly rounded float parsing).
    #[test]
    fn exact_sums_survive_json_bit_for_bit() {
        for seed in 0..20 {
            let n = numeric_of(&values(3001, seed));
            let back: Numeric = serde_json::from_slice(&serde_json::to_vec(&n).unwrap()).unwrap();
            let bits = |s: &ExactSum| s.partials.iter().map(|p| p.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&back.sum_squares), bits(&n.sum_squares), "seed {seed}");
            assert_eq!(bits(&back.sum), bits(&n.sum), "seed {seed}");
        }
    }

    #[test]
    fn two_product_is_exact() {
        for x in [0.1, 1.0 / 3.0, 1e6 + 0.5, -7.25e-3, 123456789.123] {
            let (p, e) = two_product(x, x);
            let mut s = ExactSum::default();
            s.add(p);
            s.add(e);
            // (p + e) must equal x*x exactly: compare against x*x computed in higher precision
            // through the identity p = fl(x*x) and |e| <= ulp(p)/2.
            assert_eq!(p, x * x);
            assert!(e.abs() <= p.abs() * f64::EPSILON);
            assert_eq!(s.value(), p + e);
        }
    }

    #[test]
    fn merged_moments_equal_the_whole_bit_for_bit() {
        let xs = values(20_001, 7);
        let whole = numeric_of(&xs);
        for cut in [1, 777, 10_000, 20_000] {
            let mut a = numeric_of(&xs[..cut]);
            let b = numeric_of(&xs[cut..]);
            a.merge(&b);
            assert_eq!(a.finite, whole.finite);
            assert_eq!(a.min, whole.min);
            assert_eq!(a.max, whole.max);
            assert_eq!(a.mean().unwrap().to_bits(), whole.mean().unwrap().to_bits());
            assert_eq!(a.std().unwrap().to_bits(), whole.std().unwrap().to_bits());
            assert_eq!(a.sketch, whole.sketch, "the sketch of the union");
        }
    }

    #[test]
    fn moments_match_a_two_pass_computation() {
        let xs: Vec<f64> = (0..1000).map(|i| 1e9 + (i % 7) as f64 * 0.25).collect();
        let n = numeric_of(&xs);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
        assert!((n.mean().unwrap() - mean).abs() < 1e-6);
        assert!((n.std().unwrap() - var.sqrt()).abs() / var.sqrt() < 1e-12, "no cancellation");
        assert_eq!(numeric_of(&[5.0]).std(), None);
        assert_eq!(numeric_of(&[2.0, 2.0]).std(), Some(0.0));
    }

    #[test]
    fn quantiles_are_within_the_stated_relative_error() {
        let mut xs = values(50_000, 3);
        let n = numeric_of(&xs);
        xs.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0] {
            let exact = xs[(q * (xs.len() - 1) as f64).floor() as usize];
            let estimate = n.quantile(q).unwrap();
            assert!(
                (estimate - exact).abs() <= QuantileSketch::ALPHA * exact.abs() + 1e-300,
                "q={q}: {estimate} vs {exact}"
            );
        }
        assert_eq!(n.quantile(0.0), n.min);
        assert_eq!(n.quantile(1.0), n.max);
    }

    #[test]
    fn sketch_folds_beyond_max_bins_deterministically() {
        let xs: Vec<f64> = (0..6000).map(|i| 1.05f64.powi(i - 3000)).collect();
        let whole = numeric_of(&xs);
        assert!(whole.sketch.positive.len() <= QuantileSketch::MAX_BINS);
        let mut a = numeric_of(&xs[3000..]);
        a.merge(&numeric_of(&xs[..3000]));
        assert_eq!(a.sketch, whole.sketch);
        assert_eq!(a.sketch.count(), 6000);
    }

    #[test]
    fn histograms_count_every_value() {
        let xs: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        let h = numeric_of(&xs).histogram(10);
        assert_eq!(h.len(), 10);
        assert_eq!(h.iter().map(|b| b.2).sum::<u64>(), 1000);
        assert_eq!((h[0].0, h[9].1), (0.0, 999.0));
        for (_, _, c) in &h {
            assert!((80..=120).contains(c), "{h:?}");
        }
        assert_eq!(numeric_of(&[3.0, 3.0]).histogram(10), [(3.0, 3.0, 2)]);
    }

    #[test]
    fn frequent_items_exact_then_bounded() {
        let mut f = FrequentItems::default();
        for i in 0..500u64 {
            f.add(&format!("v{}", i % 10), 1);
        }
        assert!(f.exact);
        assert_eq!(f.top(2), [("v0", 50), ("v1", 50)]);
        // A heavy value among many rare ones survives with a bounded error (and 200,000
        // distinct values cost little: reductions are batched).
        let mut g = FrequentItems::default();
        for i in 0..200_000u64 {
            let key = if i % 4 == 0 { "heavy".to_string() } else { format!("r{i}") };
            g.add(&key, 1);
        }
        assert!(!g.exact);
        let (top, count) = g.top(1)[0];
        assert_eq!(top, "heavy");
        assert!(
            count <= 50_000 && count + g.error_bound() >= 50_000,
            "{count} ± {}",
            g.error_bound()
        );
        assert!(g.counts.len() <= 2 * FrequentItems::CAPACITY);
        // Merging two exact halves equals the whole.
        let mut a = FrequentItems::default();
        let mut b = FrequentItems::default();
        let mut whole = FrequentItems::default();
        for i in 0..300u64 {
            let key = format!("k{}", i % 17);
            if i < 100 {
                a.add(&key, 1)
            } else {
                b.add(&key, 1)
            }
            whole.add(&key, 1);
        }
        a.merge(&b);
        assert_eq!(a, whole);
    }

    #[test]
    fn hll_estimates_and_merges() {
        let mut a = Hll::default();
        let mut b = Hll::default();
        let mut whole = Hll::default();
        for i in 0..100_000u64 {
            let h = hash_bytes(format!("value-{i}").as_bytes());
            if i % 2 == 0 {
                a.insert(h)
            } else {
                b.insert(h)
            }
            whole.insert(h);
        }
        a.merge(&b);
        assert_eq!(a, whole);
        let e = whole.estimate();
        assert!((e - 100_000.0).abs() / 100_000.0 < 0.05, "{e}");
        let mut small = Hll::default();
        for i in 0..100u64 {
            small.insert(mix64(i));
        }
        assert!((small.estimate() - 100.0).abs() < 3.0, "{}", small.estimate());
        let json = serde_json::to_string(&whole).unwrap();
        assert_eq!(serde_json::from_str::<Hll>(&json).unwrap(), whole);
        assert!(serde_json::from_str::<Hll>("\"zz\"").is_err());
    }

    #[test]
    fn metadata_fields_are_typed_and_profiled() {
        let item = |meta: &[(&str, &str)]| crate::types::Item {
            path: "p".into(),
            size: 1,
            hash: "0".repeat(64),
            meta: meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        let items = [
            item(&[("camera", "ward3-1"), ("age", "71"), ("height", "1.6")]),
            item(&[("camera", "ward3-2"), ("age", "8"), ("height", "1")]),
            item(&[("camera", "ward3-1")]),
        ];
        let p = of_metadata(&items).unwrap();
        let t = |n: &str| p.column(n).unwrap().dtype;
        assert_eq!(
            (t("camera"), t("age"), t("height")),
            (DType::String, DType::Integer, DType::Float)
        );
        assert_eq!(p.rows, 3);
        assert_eq!(p.column("age").unwrap().nulls, 1);
        assert_eq!(p.column("age").unwrap().numeric.as_ref().unwrap().mean(), Some(39.5));
        assert_eq!(p.column("camera").unwrap().frequent.as_ref().unwrap().top(1), [("ward3-1", 2)]);
        assert_eq!(of_metadata(&[item(&[])]), None);
    }

    #[test]
    fn profiles_merge_columns_by_name() {
        let mut a = Profile::new(&[("x".into(), DType::Float), ("c".into(), DType::String)]);
        a.add_rows(2);
        a.columns[0].push_number(1.0, None);
        a.columns[0].push_number(f64::NAN, None);
        a.columns[1].push_text("red");
        a.columns[1].push_null();
        let mut b = Profile::new(&[("x".into(), DType::Float), ("y".into(), DType::Integer)]);
        b.add_rows(1);
        b.columns[0].push_number(3.0, None);
        b.columns[1].push_number(7.0, Some("7"));
        a.merge(&b).unwrap();
        assert_eq!(a.rows, 3);
        let x = a.column("x").unwrap();
        assert_eq!((x.count, x.nulls, x.numeric.as_ref().unwrap().nan), (3, 0, 1));
        assert_eq!(x.numeric.as_ref().unwrap().mean(), Some(2.0));
        assert_eq!(a.column("c").unwrap().nulls, 2, "absent in b's row");
        assert_eq!(a.column("y").unwrap().nulls, 2, "absent in a's rows");
        assert_eq!(Profile::decode(&a.encode()).unwrap(), a);
        let c = Profile::new(&[("x".into(), DType::String)]);
        assert!(a.merge(&c).unwrap_err().to_string().contains("column 'x'"));
    }
}
