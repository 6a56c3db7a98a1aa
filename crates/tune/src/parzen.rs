//! The Parzen estimator of TPE: a mixture with one product kernel per observation and a prior
//! kernel last, over a (possibly joint) search space, as Optuna 5 builds it (see
//! `docs/tpe-spec-notes.md` §4–5): truncated normal kernels in transformed space (ln for log
//! ranges, cells of one step for discrete ones) with the sorted-neighbour bandwidth and magic
//! clip, and smoothed categorical rows.
//!
//! The estimator is laid out by dimension with each kernel's constant folded into one base term
//! per component, so scoring a candidate against a few thousand components is one pass of
//! multiply-adds per dimension and one log-sum-exp.

use crate::rng::Rng;
use crate::space::Distribution;
use crate::truncnorm::{LN_SQRT_2PI, log_mass, ppf};

thread_local! {
    /// Buffers of dropped estimators, kept for the next ones. The sampler fits two mixtures of
    /// the whole history per trial; handing that memory back to the allocator each time made it
    /// return the pages to the system and fault them in again, a tenth of the sampler's time at a
    /// few thousand trials.
    static SPARE: std::cell::RefCell<Vec<Vec<f64>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty vector with room for `capacity`, from the spares when there is one.
pub(crate) fn spare(capacity: usize) -> Vec<f64> {
    let mut v = SPARE.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    v.clear();
    v.reserve(capacity);
    v
}

/// Keeps `v`'s memory for [`spare`] (up to 64 buffers per thread).
pub(crate) fn recycle(v: Vec<f64>) {
    if v.capacity() > 0 {
        SPARE.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < 64 {
                s.push(v);
            }
        });
    }
}

/// Optuna's default weights: ones for the newest 25 observations, a linear ramp from 1/n up to 1
/// for the older ones (in observation order, oldest first).
pub(crate) fn default_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp_len = n - 25;
    let start = 1.0 / n as f64;
    let mut weights: Vec<f64> = match ramp_len {
        0 => Vec::new(),
        1 => vec![start],
        m => (0..m).map(|i| start + (1.0 - start) * i as f64 / (m - 1) as f64).collect(),
    };
    weights.extend(std::iter::repeat_n(1.0, 25));
    weights
}

/// Optuna's γ(n) = min(⌈0.1 n⌉, 25): how many of n finished trials count as good.
pub(crate) fn default_gamma(n: usize) -> usize {
    n.div_ceil(10).min(25)
}

enum Dim {
    Numeric(Numeric),
    Categorical(Categorical),
}

struct Numeric {
    /// Bounds in transformed space (widened by half a step for discrete ranges).
    lo_t: f64,
    hi_t: f64,
    log: bool,
    /// Step in original space for discrete ranges (1 for ints).
    step: Option<f64>,
    low: f64,
    high: f64,
    mu: Vec<f64>,
    sigma: Vec<f64>,
    inv_sigma: Vec<f64>,
    /// 1/(σ√2): the continuous kernel's exponent is −((t − μ)·this)².
    half_inv_sigma: Vec<f64>,
}

struct Categorical {
    n_choices: usize,
    /// ln of each component's row, K × C.
    log_w: Vec<f64>,
    /// Cumulative rows for sampling, K × C.
    cdf: Vec<f64>,
}

/// A fitted mixture over a search space.
pub(crate) struct Parzen {
    /// Cumulative component weights, for choosing a component.
    pi_cdf: Vec<f64>,
    /// Per component: ln π minus every kernel's normalising constant.
    base: Vec<f64>,
    dims: Vec<Dim>,
}

impl Numeric {
    fn new(dist: &Distribution, obs: &[f64], clip: f64) -> Numeric {
        let (low, high, step, log) = match *dist {
            Distribution::Float { low, high, step, log } => (low, high, step, log),
            Distribution::Int { low, high, step, log } => {
                (low as f64, high as f64, Some(step as f64), log)
            }
            Distribution::Categorical { .. } => {
                unreachable!("categorical dimensions are not numeric")
            }
        };
        let (lo_t, hi_t) = match (step, log) {
            (Some(s), true) => ((low - s / 2.0).ln(), (high + s / 2.0).ln()),
            (Some(s), false) => (low - s / 2.0, high + s / 2.0),
            (None, true) => (low.ln(), high.ln()),
            (None, false) => (low, high),
        };
        let range = hi_t - lo_t;
        let n = obs.len();
        let mut mu: Vec<f64> = spare(n + 1);
        // Branch outside the loop: inside it, LLVM computes ln for every value and selects.
        if log {
            mu.extend(obs.iter().map(|&x| x.ln()));
        } else {
            mu.extend_from_slice(obs);
        }
        let mut sigma = if n >= 64 && clip == 1.0 {
            neighbour_sigmas_by_buckets(&mu, lo_t, hi_t)
        } else {
            neighbour_sigmas_by_sorting(&mu, lo_t, hi_t, clip)
        };
        sigma.push(range);
        mu.push((lo_t + hi_t) / 2.0);
        let mut inv_sigma = spare(sigma.len());
        inv_sigma.extend(sigma.iter().map(|s| 1.0 / s));
        let mut half_inv_sigma = spare(sigma.len());
        half_inv_sigma.extend(inv_sigma.iter().map(|i| i * std::f64::consts::FRAC_1_SQRT_2));
        Numeric { lo_t, hi_t, log, step, low, high, mu, sigma, inv_sigma, half_inv_sigma }
    }

    /// ln of each component's mass over the whole range (0 when both bounds are beyond 8.5σ,
    /// as for most kernels of a long history, without calling into the error function).
    #[inline]
    fn log_norm(&self, k: usize) -> f64 {
        let a = (self.lo_t - self.mu[k]) * self.inv_sigma[k];
        let b = (self.hi_t - self.mu[k]) * self.inv_sigma[k];
        if a < -8.5 && b > 8.5 { 0.0 } else { log_mass(a, b) }
    }

    fn transform(&self, x: f64) -> f64 {
        if self.log { x.ln() } else { x }
    }

    /// A value of component k, in original space, on the grid where there is one.
    fn sample(&self, k: usize, q: f64) -> f64 {
        let (mu, sigma) = (self.mu[k], self.sigma[k]);
        let a = (self.lo_t - mu) / sigma;
        let b = (self.hi_t - mu) / sigma;
        let t = mu + sigma * ppf(q, a, b);
        let x = if self.log { t.exp() } else { t };
        match self.step {
            Some(s) => {
                (self.low + ((x - self.low) / s).round_ties_even() * s).clamp(self.low, self.high)
            }
            None => x.clamp(self.low, self.high),
        }
    }
}

impl Categorical {
    fn new(n_choices: usize, obs: &[f64], prior_weight: f64) -> Categorical {
        let n = obs.len();
        let k_total = n + 1;
        let mut rows = Vec::with_capacity(k_total * n_choices);
        if n == 0 {
            rows.extend(std::iter::repeat_n(1.0 / n_choices as f64, n_choices));
        } else {
            let smoothing = prior_weight / k_total as f64;
            for &o in obs {
                let total = 1.0 + smoothing * n_choices as f64;
                for c in 0..n_choices {
                    let w = smoothing + if c == o as usize { 1.0 } else { 0.0 };
                    rows.push(w / total);
                }
            }
            rows.extend(std::iter::repeat_n(1.0 / n_choices as f64, n_choices));
        }
        let log_w = rows.iter().map(|w| w.ln()).collect();
        let mut cdf = rows;
        for row in cdf.chunks_mut(n_choices) {
            let mut acc = 0.0;
            for w in row.iter_mut() {
                acc += *w;
                *w = acc;
            }
            row[n_choices - 1] = 1.0;
        }
        Categorical { n_choices, log_w, cdf }
    }
}

impl Drop for Parzen {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.pi_cdf));
        recycle(std::mem::take(&mut self.base));
        for dim in &mut self.dims {
            match dim {
                Dim::Numeric(num) => {
                    for v in
                        [&mut num.mu, &mut num.sigma, &mut num.inv_sigma, &mut num.half_inv_sigma]
                    {
                        recycle(std::mem::take(v));
                    }
                }
                Dim::Categorical(cat) => {
                    recycle(std::mem::take(&mut cat.log_w));
                    recycle(std::mem::take(&mut cat.cdf));
                }
            }
        }
    }
}

impl Parzen {
    /// Fits the mixture to `columns` (one column of internal values per dimension of `space`,
    /// every column the same length, in observation order). `clip` scales the magic clip's
    /// floor on the kernels' widths (1 for Optuna's).
    #[cfg(test)]
    pub(crate) fn new(
        space: &[&Distribution],
        columns: &[Vec<f64>],
        prior_weight: f64,
        clip: f64,
    ) -> Parzen {
        Parzen::weighted(space, columns, None, prior_weight, clip)
    }

    /// [`Parzen::new`] with the observations' weights given (one per observation) instead of
    /// Optuna's default ramp: a multi-objective study weighs its good trials by their share of
    /// the hypervolume.
    pub(crate) fn weighted(
        space: &[&Distribution],
        columns: &[Vec<f64>],
        weights: Option<&[f64]>,
        prior_weight: f64,
        clip: f64,
    ) -> Parzen {
        let n = columns.first().map_or(0, Vec::len);
        let mut pi: Vec<f64> = if n == 0 {
            vec![1.0]
        } else {
            let mut w = match weights {
                Some(w) => {
                    debug_assert_eq!(w.len(), n);
                    w.to_vec()
                }
                None => default_weights(n),
            };
            w.push(prior_weight);
            w
        };
        let total: f64 = pi.iter().sum();
        let mut acc = 0.0;
        let mut pi_cdf = spare(pi.len());
        for w in &mut pi {
            *w /= total;
            acc += *w;
            pi_cdf.push(acc);
        }
        *pi_cdf.last_mut().expect("at least the prior") = 1.0;
        let mut base = spare(pi.len());
        base.resize(pi.len(), 0.0);
        // π over the continuous kernels' σ, multiplied per component and taken to ln once.
        let mut sigma_product = pi;
        let mut continuous = 0;
        let dims: Vec<Dim> = space
            .iter()
            .zip(columns)
            .map(|(dist, column)| match dist {
                Distribution::Categorical { choices } => {
                    Dim::Categorical(Categorical::new(choices.len(), column, prior_weight))
                }
                _ => {
                    let numeric = Numeric::new(dist, column, clip);
                    for (k, b) in base.iter_mut().enumerate() {
                        *b -= numeric.log_norm(k);
                    }
                    if numeric.step.is_none() {
                        continuous += 1;
                        for (p, &inv) in sigma_product.iter_mut().zip(&numeric.inv_sigma) {
                            *p *= inv;
                        }
                        // Fold a product into the base before it can overflow or underflow
                        // (rare: one pass to find out, so that the multiplying vectorises).
                        if sigma_product.iter().any(|p| !(1e-150..=1e150).contains(p)) {
                            for (b, p) in base.iter_mut().zip(&mut sigma_product) {
                                if !(1e-150..=1e150).contains(p) {
                                    *b += p.ln();
                                    *p = 1.0;
                                }
                            }
                        }
                    }
                    Dim::Numeric(numeric)
                }
            })
            .collect();
        let constants = continuous as f64 * LN_SQRT_2PI;
        for (b, &p) in base.iter_mut().zip(&sigma_product) {
            *b += fast_ln(p) - constants;
        }
        Parzen { pi_cdf, base, dims }
    }

    /// `size` points drawn from the mixture, each a vector of internal values by dimension.
    pub(crate) fn sample(&self, rng: &mut Rng, size: usize) -> Vec<Vec<f64>> {
        let components: Vec<usize> = (0..size)
            .map(|_| {
                let u = rng.f64();
                self.pi_cdf.partition_point(|&c| c <= u).min(self.pi_cdf.len() - 1)
            })
            .collect();
        let mut points = vec![Vec::with_capacity(self.dims.len()); size];
        for dim in &self.dims {
            for (point, &k) in points.iter_mut().zip(&components) {
                let u = rng.f64();
                let x = match dim {
                    Dim::Numeric(num) => num.sample(k, u),
                    Dim::Categorical(cat) => {
                        let row = &cat.cdf[k * cat.n_choices..(k + 1) * cat.n_choices];
                        row.partition_point(|&c| c < u).min(cat.n_choices - 1) as f64
                    }
                };
                point.push(x);
            }
        }
        points
    }

    /// The index of the point with the largest `l[i] − ln g(point i)`, this mixture being g: the
    /// first of equals, 0 when none scores above −∞. The same choice as scoring every point with
    /// [`Parzen::log_pdf`], without finishing the hopeless ones: points go best `l` first, g's
    /// components newest first (the ones nearest where the sampler is looking), and a point stops
    /// as soon as the part of g summed so far already puts it below the best score found — the
    /// rest of g can only push it lower.
    pub(crate) fn best_ratio(&self, l: &[f64], points: &[Vec<f64>]) -> usize {
        const BLOCK: usize = 256;
        let k_total = self.base.len();
        let mut order: Vec<usize> = (0..points.len()).collect();
        order.sort_by(|&a, &b| l[b].total_cmp(&l[a]).then(a.cmp(&b)));
        let mut best: Option<(f64, usize)> = None;
        let mut acc = [0.0f64; BLOCK];
        for &p in &order {
            let (point, bound) = (&points[p], best.map_or(f64::NEG_INFINITY, |b| b.0));
            let mut lse = LogSumExp::default();
            let (mut outside, mut hopeless) = (false, false);
            let mut end = k_total;
            while end > 0 {
                let start = end.saturating_sub(BLOCK);
                let acc = &mut acc[..end - start];
                acc.copy_from_slice(&self.base[start..end]);
                if !self.accumulate(point, start, acc) {
                    outside = true;
                    break;
                }
                lse.add(acc);
                // Once g has any mass, what is summed so far bounds ln g from below.
                if l[p] - lse.value() < bound {
                    hopeless = true;
                    break;
                }
                end = start;
            }
            if hopeless {
                continue;
            }
            let g = if outside { f64::NEG_INFINITY } else { lse.value() };
            let score = l[p] - g;
            let better = match best {
                None => score > f64::NEG_INFINITY,
                Some((b, i)) => score > b || (score == b && p < i),
            };
            if better {
                best = Some((score, p));
            }
        }
        best.map_or(0, |b| b.1)
    }

    /// ln of the mixture's density (mass, for discrete dimensions) at each point.
    pub(crate) fn log_pdf(&self, points: &[Vec<f64>]) -> Vec<f64> {
        // Components in blocks that stay in L1 while every point is scored against them, with a
        // running log-sum-exp per point.
        const BLOCK: usize = 256;
        let k_total = self.base.len();
        let mut lse = vec![LogSumExp::default(); points.len()];
        let mut outside = vec![false; points.len()];
        let mut acc = [0.0f64; BLOCK];
        for start in (0..k_total).step_by(BLOCK) {
            let end = (start + BLOCK).min(k_total);
            let acc = &mut acc[..end - start];
            for (p, point) in points.iter().enumerate() {
                if outside[p] {
                    continue;
                }
                acc.copy_from_slice(&self.base[start..end]);
                if !self.accumulate(point, start, acc) {
                    outside[p] = true;
                    continue;
                }
                lse[p].add(acc);
            }
        }
        lse.iter()
            .zip(&outside)
            .map(|(lse, &outside)| if outside { f64::NEG_INFINITY } else { lse.value() })
            .collect()
    }

    /// Adds each kernel's log-density at `point` for components `start..start + acc.len()`;
    /// false when the point lies outside the space.
    fn accumulate(&self, point: &[f64], start: usize, acc: &mut [f64]) -> bool {
        let end = start + acc.len();
        for (dim, &x) in self.dims.iter().zip(point) {
            match dim {
                Dim::Numeric(num) => match num.step {
                    None => {
                        let t = num.transform(x);
                        if !(t >= num.lo_t && t <= num.hi_t) {
                            return false;
                        }
                        let (mu, half_inv) = (&num.mu[start..end], &num.half_inv_sigma[start..end]);
                        for ((a, &mu), &h) in acc.iter_mut().zip(mu).zip(half_inv) {
                            let z = (t - mu) * h;
                            *a -= z * z;
                        }
                    }
                    Some(step) => {
                        let (lo, hi) = if num.log {
                            ((x - step / 2.0).ln(), (x + step / 2.0).ln())
                        } else {
                            (x - step / 2.0, x + step / 2.0)
                        };
                        if !(lo >= num.lo_t - 1e-9 && hi <= num.hi_t + 1e-9) {
                            return false;
                        }
                        let (mu, inv) = (&num.mu[start..end], &num.inv_sigma[start..end]);
                        for ((a, &mu), &inv) in acc.iter_mut().zip(mu).zip(inv) {
                            *a += log_mass((lo - mu) * inv, (hi - mu) * inv);
                        }
                    }
                },
                Dim::Categorical(cat) => {
                    let c = x as usize;
                    if c >= cat.n_choices {
                        return false;
                    }
                    for (a, k) in acc.iter_mut().zip(start..end) {
                        *a += cat.log_w[k * cat.n_choices + c];
                    }
                }
            }
        }
        true
    }
}

/// A log-sum-exp taken block by block: the largest term so far and the sum of e^(v − largest).
#[derive(Clone, Copy)]
struct LogSumExp {
    max: f64,
    sum: f64,
}

impl Default for LogSumExp {
    fn default() -> LogSumExp {
        LogSumExp { max: f64::NEG_INFINITY, sum: 0.0 }
    }
}

impl LogSumExp {
    fn add(&mut self, values: &[f64]) {
        let block_max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if block_max == f64::NEG_INFINITY {
            return;
        }
        if block_max > self.max {
            self.sum *= (self.max - block_max).exp();
            self.max = block_max;
        }
        self.sum += sum_exp(values, self.max);
    }

    /// ln Σ e^v so far; −∞ before any finite term.
    fn value(&self) -> f64 {
        if self.max == f64::NEG_INFINITY { f64::NEG_INFINITY } else { self.max + self.sum.ln() }
    }
}

/// Σ e^(v − m) over `values` (each ≤ m), terms below e^−40 counted as 0: they add less than
/// 1e-17 of the largest each. Four at a time, branch-free inside a group so that the compiler
/// vectorises it, and a group wholly below the cut-off is skipped. A sampler that has closed in
/// on a region keeps about half its bad trials within reach of each candidate; an exploring one,
/// a tenth; both are cheap this way.
#[inline]
fn sum_exp(values: &[f64], m: f64) -> f64 {
    let floor = m - 40.0;
    let mut lanes = [0.0f64; 4];
    let mut groups = values.chunks_exact(4);
    for group in &mut groups {
        if group.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v)) > floor {
            for (lane, &v) in lanes.iter_mut().zip(group) {
                *lane += exp_above_minus_40(v - m);
            }
        }
    }
    let tail: f64 = groups.remainder().iter().map(|&v| exp_above_minus_40(v - m)).sum();
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

/// ln x: for a positive normal x (the components' products, within [1e-150, 1e150] unless a
/// prior weight is absurdly small) without a libm call, so that a loop over components
/// vectorises; anything else by std.
#[inline(always)]
fn fast_ln(x: f64) -> f64 {
    if x.is_normal() && x > 0.0 { ln_normal(x) } else { x.ln() }
}

/// ln x for a positive normal x, branch-free: x = m·2^e with m in [√½, √2), ln m =
/// 2·atanh((m − 1)/(m + 1)) by its series to s^21 (|s| ≤ 0.172: the next term is below 1e-17).
/// Relative error about 1e-16.
#[inline(always)]
fn ln_normal(x: f64) -> f64 {
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    let bits = x.to_bits();
    let mantissa = f64::from_bits((bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000);
    // The biased exponent as a float without an int-to-float conversion: 2^52 + e, less 2^52.
    let biased = f64::from_bits(0x4330_0000_0000_0000 | (bits >> 52)) - TWO_52;
    let high = if mantissa > std::f64::consts::SQRT_2 { 1.0 } else { 0.0 };
    let m = mantissa * (1.0 - 0.5 * high);
    let e = biased - 1023.0 + high;
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    // 1/3 + s²/5 + … + s^18/21, by Horner.
    let mut p = 1.0 / 21.0;
    for k in (3..=19).rev().step_by(2) {
        p = p * s2 + 1.0 / f64::from(k);
    }
    let ln_m = 2.0 * s + 2.0 * s * s2 * p;
    e * LN2_HI + (ln_m + e * LN2_LO)
}

/// e^x for x ≤ 0, and 0 below −40; branch-free so that a loop over components vectorises.
/// Cody–Waite reduction by ln 2 and a degree-13 Taylor polynomial on |r| ≤ ln2/2: relative error
/// about 1e-16.
#[inline(always)]
fn exp_above_minus_40(x: f64) -> f64 {
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // t = 1.5·2^52 + n rounds x/ln2 to the nearest integer n, with n in t's low bits: no libm
    // `round` (a call on baseline x86-64) and no float-to-int conversion, so it vectorises.
    const SHIFT: f64 = 6_755_399_441_055_744.0;
    let keep = if x > -40.0 { 1.0 } else { 0.0 };
    let x = x.max(-40.0);
    let t = x * std::f64::consts::LOG2_E + SHIFT;
    let n = t - SHIFT;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 6_227_020_800.0;
    for c in [
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    // 2^n for n in [-58, 0]: t's low 12 bits are n (mod 4096); n + 1023 is the exponent field.
    let two_n = f64::from_bits(t.to_bits().wrapping_add(1023) << 52);
    p * two_n * keep
}

/// The sorted-neighbour bandwidth with the magic clip (Optuna 5, endpoints off): each kernel's σ
/// is the larger of the gaps to its neighbours in sorted order (the outermost ones look only
/// inward; a single one at the range's ends), clipped to [clip · R / min(100, n + 2), R]. Ties
/// sort by index. This is the definition, by sorting.
fn neighbour_sigmas_by_sorting(mu: &[f64], lo: f64, hi: f64, clip: f64) -> Vec<f64> {
    let (n, range) = (mu.len(), hi - lo);
    let min_sigma = clip * range / (n as f64 + 2.0).min(100.0);
    let mut sigma = spare(n + 1);
    sigma.resize(n, range);
    if n == 0 {
        return sigma;
    }
    let order = sort_positions(mu, lo, range);
    let at = |j: usize| mu[order[j] as usize];
    for j in 0..n {
        let left = at(j) - if j == 0 { lo } else { at(j - 1) };
        let right = if j + 1 == n { hi } else { at(j + 1) } - at(j);
        let s = if n >= 2 && j == 0 {
            // Endpoints off: the outermost kernels look only inward.
            right
        } else if n >= 2 && j + 1 == n {
            left
        } else {
            left.max(right)
        };
        sigma[order[j] as usize] = s.clamp(min_sigma, range);
    }
    sigma
}

/// The same bandwidths without sorting, in linear time. Cut the range into buckets as wide as
/// the clip's minimum. A gap to a neighbour in the same bucket is below the minimum and clips to
/// it; only a bucket's first value (in sorted order, ties by index) has its left neighbour in an
/// earlier bucket — that bucket's largest value — and only its last value has its right neighbour
/// in a later one. So each kernel needs its bucket's extremes and the nearest non-empty buckets'.
fn neighbour_sigmas_by_buckets(mu: &[f64], lo: f64, hi: f64) -> Vec<f64> {
    let (n, range) = (mu.len(), hi - lo);
    let n_buckets = (n as f64 + 2.0).min(100.0) as usize;
    let min_sigma = range / n_buckets as f64;
    // A multiplication, not a division (a fifth of this function's time): a value within an ulp
    // of a bucket's edge may land in the next bucket, which moves no gap by more than an ulp.
    let per_range = n_buckets as f64 / range;
    let bucket_of = |x: f64| (((x - lo) * per_range) as usize).min(n_buckets - 1);
    // Per bucket: (smallest value, its first index), (largest value, its last index).
    let mut first: Vec<(f64, usize)> = vec![(f64::INFINITY, usize::MAX); n_buckets];
    let mut last: Vec<(f64, usize)> = vec![(f64::NEG_INFINITY, 0); n_buckets];
    let mut buckets = Vec::with_capacity(n);
    for (i, &x) in mu.iter().enumerate() {
        let b = bucket_of(x);
        buckets.push(b as u8);
        // Indices rise, so among equal values the first seen is the first index and the last
        // seen the last.
        if x < first[b].0 {
            first[b] = (x, i);
        }
        if x >= last[b].0 {
            last[b] = (x, i);
        }
    }
    // The largest value of the nearest non-empty bucket before each, and the smallest after.
    let mut before = vec![lo; n_buckets];
    let mut seen = lo;
    for b in 0..n_buckets {
        before[b] = seen;
        if first[b].1 != usize::MAX {
            seen = last[b].0;
        }
    }
    let mut after = vec![hi; n_buckets];
    let mut seen = hi;
    for b in (0..n_buckets).rev() {
        after[b] = seen;
        if first[b].1 != usize::MAX {
            seen = first[b].0;
        }
    }
    let lowest = first.iter().find(|f| f.1 != usize::MAX).map_or(usize::MAX, |f| f.1);
    let highest = last
        .iter()
        .rev()
        .find(|l| l.1 != 0 || l.0 != f64::NEG_INFINITY)
        .map_or(usize::MAX, |l| l.1);
    let mut sigma = spare(n + 1);
    sigma.extend(mu.iter().zip(&buckets).enumerate().map(|(i, (&x, &b))| {
        let b = b as usize;
        // Gaps inside a bucket are below the minimum: 0 stands for them.
        let left = if first[b].1 == i { x - before[b] } else { 0.0 };
        let right = if last[b].1 == i { after[b] - x } else { 0.0 };
        let s = if n >= 2 && i == lowest {
            right
        } else if n >= 2 && i == highest {
            left
        } else {
            left.max(right)
        };
        s.clamp(min_sigma, range)
    }));
    sigma
}

/// The indices of `values` in ascending order, by position in [lo, lo + range] to 2^-32 of the
/// range: values closer than that may swap places, which matters nowhere since the gaps between
/// them are clipped up to range/100 anyway. A radix sort (four byte-wide passes) for more than a
/// few dozen values: the history's kernels are sorted at every sample.
fn sort_positions(values: &[f64], lo: f64, range: f64) -> Vec<u32> {
    let scale = 4_294_967_295.0 / range.max(f64::MIN_POSITIVE);
    let mut keys: Vec<u64> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| ((((v - lo) * scale).clamp(0.0, 4_294_967_295.0) as u64) << 32) | i as u64)
        .collect();
    if keys.len() < 64 {
        keys.sort_unstable();
    } else {
        let mut scratch = vec![0u64; keys.len()];
        for shift in [32, 40, 48, 56] {
            let mut counts = [0usize; 257];
            for &k in &keys {
                counts[((k >> shift) & 0xFF) as usize + 1] += 1;
            }
            for b in 0..256 {
                counts[b + 1] += counts[b];
            }
            for &k in &keys {
                let slot = &mut counts[((k >> shift) & 0xFF) as usize];
                scratch[*slot] = k;
                *slot += 1;
            }
            std::mem::swap(&mut keys, &mut scratch);
        }
    }
    keys.into_iter().map(|k| k as u32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn close_all(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-9 * w.abs().max(1.0), "got {got:?}, want {want:?}");
        }
    }

    fn check(dist: Distribution, obs: &[f64], points: &[f64], want: &[f64]) {
        let pe = Parzen::new(&[&dist], &[obs.to_vec()], 1.0, 1.0);
        let pts: Vec<Vec<f64>> = points.iter().map(|&x| vec![x]).collect();
        close_all(&pe.log_pdf(&pts), want);
    }

    #[test]
    fn gamma_and_weights_are_optunas() {
        let gammas: Vec<usize> =
            [0, 1, 9, 10, 11, 100, 250, 1000].iter().map(|&n| default_gamma(n)).collect();
        assert_eq!(gammas, [0, 1, 1, 1, 2, 10, 25, 25]);
        assert_eq!(default_weights(25), vec![1.0; 25]);
        assert_eq!(default_weights(26)[0], 1.0 / 26.0);
        let w27 = default_weights(27);
        assert_eq!((w27.len(), w27[0], w27[1], w27[26]), (27, 1.0 / 27.0, 1.0, 1.0));
    }

    #[test]
    fn the_best_ratio_is_the_argmax_of_scoring_every_candidate() {
        // Histories of several sizes (one block and several), clustered and spread, with ties.
        let x = Distribution::float(-5.0, 5.0, None, false).unwrap();
        let k = Distribution::int(0, 9, 1, false).unwrap();
        let mut rng = Rng::new(7);
        for (n, spread) in [(5, 5.0), (300, 0.3), (900, 5.0), (2000, 0.05)] {
            let xs: Vec<f64> = (0..n).map(|_| rng.uniform(-spread, spread)).collect();
            let ks: Vec<f64> = (0..n).map(|_| rng.below(10) as f64).collect();
            let bad = Parzen::new(&[&x, &k], &[xs, ks], 1.0, 1.0);
            let good = Parzen::new(&[&x, &k], &[vec![0.1, 0.2], vec![3.0, 3.0]], 1.0, 0.25);
            for round in 0..20 {
                let mut points = good.sample(&mut rng, 24);
                if round % 2 == 0 {
                    points[5] = points[17].clone(); // a tie: the first wins
                }
                let l = good.log_pdf(&points);
                let g = bad.log_pdf(&points);
                let mut want = 0;
                for i in 0..points.len() {
                    if l[i] - g[i] > l[want] - g[want] {
                        want = i;
                    }
                }
                assert_eq!(bad.best_ratio(&l, &points), want, "n {n} round {round}");
            }
        }
    }

    #[test]
    fn the_branch_free_ln_matches_std_across_the_range_it_serves() {
        let mut rng = Rng::new(3);
        for _ in 0..20_000 {
            let x = 10f64.powf(rng.uniform(-150.0, 150.0));
            let (got, want) = (ln_normal(x), x.ln());
            assert!((got - want).abs() <= 4e-16 * want.abs().max(1.0), "{x}: {got} vs {want}");
        }
        for x in [1.0, std::f64::consts::SQRT_2, 2.0, 0.5, 1e-150, 1e150, 1.0 + f64::EPSILON] {
            assert!((ln_normal(x) - x.ln()).abs() <= 4e-16 * x.ln().abs().max(1.0), "{x}");
        }
        // Outside the normal positives, std's answer.
        for x in [1e-310, 0.0, f64::INFINITY] {
            assert_eq!(fast_ln(x), x.ln(), "{x}");
        }
    }

    #[test]
    fn good_clip_scales_only_the_floor_of_the_kernels_widths() {
        let f = Distribution::float(0.0, 10.0, None, false).unwrap();
        // Four close values: Optuna's floor, 10 / 6, lifts every gap; a quarter of it lifts
        // the gaps below 10 / 24 (0.1 and 0.4). The prior's width stays the range.
        let obs = [4.0, 4.1, 4.5, 5.0];
        let optuna = Numeric::new(&f, &obs, 1.0).sigma;
        close_all(&optuna, &[10.0 / 6.0, 10.0 / 6.0, 10.0 / 6.0, 10.0 / 6.0, 10.0]);
        let sharp = Numeric::new(&f, &obs, 0.25).sigma;
        close_all(&sharp, &[10.0 / 24.0, 10.0 / 24.0, 0.5, 0.5, 10.0]);
        // Gaps above both floors are the same either way.
        let wide = [1.0, 5.0, 9.0];
        close_all(&Numeric::new(&f, &wide, 0.25).sigma, &Numeric::new(&f, &wide, 1.0).sigma);
    }

    #[test]
    #[allow(clippy::approx_constant)] // Optuna's printed figures, kept as printed.
    fn kernels_and_densities_match_optunas_reference_vectors() {
        // docs/tpe-spec-notes.md §14 (optuna 5.0.0, prior weight 1, magic clip, endpoints off).
        let f = |low, high| Distribution::float(low, high, None, false).unwrap();
        let pe = Numeric::new(&f(0.0, 10.0), &[1.0, 2.0, 5.0], 1.0);
        close_all(&pe.sigma, &[2.0, 3.0, 3.0, 10.0]);
        close_all(&pe.mu, &[1.0, 2.0, 5.0, 5.0]);
        check(
            f(0.0, 10.0),
            &[1.0, 2.0, 5.0],
            &[0.0, 1.5, 5.0, 9.99],
            &[-2.028045403774, -1.850882587117, -2.305801410988, -3.39606233159],
        );
        close_all(&Numeric::new(&f(0.0, 10.0), &[7.0], 1.0).sigma, &[7.0, 10.0]);
        check(f(0.0, 10.0), &[7.0], &[7.0], &[-2.232688929522]);
        check(f(0.0, 10.0), &[], &[5.0], &[-2.261607292503]);
        let log = Distribution::float(1e-3, 1.0, None, true).unwrap();
        close_all(
            &Numeric::new(&log, &[0.01, 0.1, 0.5], 1.0).sigma,
            &[2.302585092994, 2.302585092994, 1.609437912434, 6.907755278982],
        );
        check(log, &[0.01, 0.1, 0.5], &[0.01, 0.3], &[-2.063270653444, -1.665219251809]);
        let int = Distribution::int(0, 10, 1, false).unwrap();
        close_all(&Numeric::new(&int, &[1.0, 2.0, 5.0], 1.0).sigma, &[2.2, 3.0, 3.0, 11.0]);
        check(
            int,
            &[1.0, 2.0, 5.0],
            &[0.0, 2.0, 10.0],
            &[-2.13992562775, -1.966151310857, -3.456263417211],
        );
        let int2 = Distribution::int(0, 10, 2, false).unwrap();
        check(
            int2,
            &[2.0, 4.0, 8.0],
            &[0.0, 4.0, 10.0],
            &[-1.901179763576, -1.580848931782, -2.147327627783],
        );
        let int_log = Distribution::int(1, 100, 1, true).unwrap();
        close_all(
            &Numeric::new(&int_log, &[1.0, 10.0, 50.0], 1.0).mu,
            &[0.0, 2.302585092994, 3.912023005428, 1.95850527347],
        );
        check(
            int_log,
            &[1.0, 10.0, 50.0],
            &[1.0, 10.0, 100.0],
            &[-1.772778234234, -3.873535067394, -6.357869888647],
        );
        let stepped = Distribution::float(0.0, 2.0, Some(0.5), false).unwrap();
        check(
            stepped,
            &[0.5, 1.5],
            &[0.0, 1.0, 2.0],
            &[-1.753098755678, -1.477832878664, -1.753098755678],
        );
        let cat = Distribution::categorical(vec![json!("a"), json!("b"), json!("c")]).unwrap();
        check(
            cat.clone(),
            &[0.0, 0.0, 2.0],
            &[0.0, 1.0, 2.0],
            &[-0.741937344729, -1.658228076604, -1.098612288668],
        );
        let x = f(0.0, 10.0);
        let joint = Parzen::new(&[&x, &cat], &[vec![1.0, 2.0, 5.0], vec![0.0, 0.0, 2.0]], 1.0, 1.0);
        close_all(
            &joint.log_pdf(&[vec![1.0, 0.0], vec![5.0, 2.0]]),
            &[-2.387130510179, -3.213742841314],
        );
    }

    #[test]
    fn bandwidths_by_buckets_equal_bandwidths_by_sorting() {
        let mut rng = Rng::new(8);
        for n in [64, 65, 99, 100, 150, 1000, 3000] {
            for spread in [1.0, 0.05] {
                // Clustered values, ties (as int parameters have), and the range's ends.
                let mut mu: Vec<f64> = (0..n)
                    .map(|i| match i % 7 {
                        0 => (rng.uniform(0.0, 20.0)).round(),
                        1 => 0.0,
                        _ => 10.0 + rng.uniform(-10.0, 10.0) * spread,
                    })
                    .collect();
                mu[n / 2] = 20.0;
                let (a, b) = (
                    neighbour_sigmas_by_sorting(&mu, 0.0, 20.0, 1.0),
                    neighbour_sigmas_by_buckets(&mu, 0.0, 20.0),
                );
                for i in 0..n {
                    assert!(
                        (a[i] - b[i]).abs() <= 1e-12 * a[i],
                        "n = {n}, spread {spread}, kernel {i} at {}: {} vs {}",
                        mu[i],
                        a[i],
                        b[i]
                    );
                }
            }
        }
    }

    #[test]
    fn the_fast_exp_agrees_with_std_to_a_few_ulp() {
        for i in 0..40_000 {
            let x = -(i as f64) / 1000.0;
            let (got, want) = (exp_above_minus_40(x), x.exp());
            assert!(((got - want) / want).abs() < 1e-15, "{x}: {got} vs {want}");
        }
        assert_eq!(exp_above_minus_40(-40.5), 0.0);
    }

    #[test]
    fn positions_sort_like_a_float_sort_above_and_below_the_radix_threshold() {
        let mut rng = Rng::new(9);
        for n in [5, 63, 64, 1000] {
            let values: Vec<f64> = (0..n).map(|_| rng.uniform(-3.0, 7.0)).collect();
            let order = sort_positions(&values, -3.0, 10.0);
            let mut want: Vec<u32> = (0..n as u32).collect();
            want.sort_by(|&a, &b| values[a as usize].total_cmp(&values[b as usize]));
            assert_eq!(order, want, "n = {n}");
        }
    }

    #[test]
    fn samples_stay_in_range_on_the_grid_and_follow_the_density() {
        let mut rng = Rng::new(1);
        let int_log = Distribution::int(1, 100, 1, true).unwrap();
        let stepped = Distribution::float(0.0, 2.0, Some(0.5), false).unwrap();
        let cat = Distribution::categorical(vec![json!("a"), json!("b"), json!("c")]).unwrap();
        let pe = Parzen::new(
            &[&int_log, &stepped, &cat],
            &[vec![3.0, 4.0, 5.0], vec![0.5, 0.5, 1.0], vec![2.0, 2.0, 2.0]],
            1.0,
            1.0,
        );
        let points = pe.sample(&mut rng, 4000);
        assert!(
            points
                .iter()
                .all(|p| int_log.contains(p[0]) && stepped.contains(p[1]) && cat.contains(p[2]))
        );
        // Three of four components put 5/7 on choice 2 and the prior 1/3: a share of about 0.62.
        let share = points.iter().filter(|p| p[2] == 2.0).count() as f64 / points.len() as f64;
        assert!((share - (0.75 * 5.0 / 7.0 + 0.25 / 3.0)).abs() < 0.03, "{share}");
        // The first dimension's marginal is the 1-D mixture's mass.
        let near = points.iter().filter(|p| (3.0..=5.0).contains(&p[0])).count() as f64 / 4000.0;
        let one = Parzen::new(&[&int_log], &[vec![3.0, 4.0, 5.0]], 1.0, 1.0);
        let want: f64 =
            one.log_pdf(&[vec![3.0], vec![4.0], vec![5.0]]).iter().map(|l| l.exp()).sum();
        assert!((near - want).abs() < 0.025, "{near} vs {want}");
    }
}
