//! A/B statistics for an endpoint's variants: a sample-ratio-mismatch check on how traffic was
//! actually shared, and the comparison of a variant's outcome rate (e.g. accuracy from ground
//! truth) with the baseline's.
//!
//! The comparison reports the effect (difference of rates), a 95% interval and two p-values: the
//! classic two-proportion z-test, valid only if the sample size was fixed in advance, and an
//! always-valid p-value from a mixture sequential probability ratio test (mSPRT, normal mixture
//! over the effect with scale `TAU`), which stays valid however often the results are looked at
//! — the way dashboards are read during a rollout. Decisions should use the latter.

use slipway_core::special::{erfc, gamma_q};

/// The mixture's scale: the size of effect the test is tuned to find (five points of accuracy).
pub const TAU: f64 = 0.05;

/// One side of a comparison: `successes` of `n`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub successes: u64,
    pub n: u64,
}

impl Rate {
    pub fn value(&self) -> Option<f64> {
        (self.n > 0).then(|| self.successes as f64 / self.n as f64)
    }
}

/// Variant `b` against baseline `a`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// `b − a`.
    pub effect: f64,
    /// 95% interval of the effect (normal approximation).
    pub interval: (f64, f64),
    /// Two-sided two-proportion z-test.
    pub p_value: f64,
    /// Always valid under continuous monitoring (mSPRT).
    pub always_valid_p: f64,
}

/// Compares two rates; `None` until each side has at least one observation of each kind
/// between them (a variance of zero says nothing).
pub fn compare(a: Rate, b: Rate) -> Option<Comparison> {
    let (pa, pb) = (a.value()?, b.value()?);
    let (na, nb) = (a.n as f64, b.n as f64);
    let effect = pb - pa;
    let var = pa * (1.0 - pa) / na + pb * (1.0 - pb) / nb;
    // The pooled rate for the test's null of no difference.
    let pooled = (a.successes + b.successes) as f64 / (na + nb);
    let var0 = pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb);
    if var0 <= 0.0 {
        return None;
    }
    let half = 1.959_963_984_540_054 * var.sqrt();
    let z = effect / var0.sqrt();
    let p_value = erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0);
    // mSPRT with a N(0, τ²) mixture over the effect: Λ = sqrt(V/(V+τ²)) exp(τ² θ² / (2V(V+τ²))).
    let t2 = TAU * TAU;
    let v = var.max(var0);
    let log_lambda = 0.5 * (v / (v + t2)).ln() + t2 * effect * effect / (2.0 * v * (v + t2));
    let always_valid_p = (-log_lambda).exp().min(1.0);
    Some(Comparison { effect, interval: (effect - half, effect + half), p_value, always_valid_p })
}

/// Sample ratio mismatch: the chi-squared goodness-of-fit p-value of `observed` counts against
/// shares `weights` (percent). A small value (below 0.001) means the split is not what it says:
/// a bug in routing or in logging, and the A/B figures are not to be trusted.
pub fn sample_ratio_p(observed: &[u64], weights: &[f64]) -> Option<f64> {
    let total: u64 = observed.iter().sum();
    let wsum: f64 = weights.iter().sum();
    let live: Vec<(f64, f64)> = observed
        .iter()
        .zip(weights)
        .filter(|(_, w)| **w > 0.0)
        .map(|(o, w)| (*o as f64, total as f64 * w / wsum))
        .collect();
    if total == 0 || live.len() < 2 {
        return None;
    }
    let chi2: f64 = live.iter().map(|(o, e)| (o - e) * (o - e) / e).sum();
    Some(gamma_q((live.len() - 1) as f64 / 2.0, chi2 / 2.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn a_real_difference_is_found_and_no_difference_is_not() {
        // 90% vs 85% on 2000 each: z ≈ 4.78 (scipy.stats: p ≈ 1.7e-6).
        let c =
            compare(Rate { successes: 1800, n: 2000 }, Rate { successes: 1700, n: 2000 }).unwrap();
        assert!(close(c.effect, -0.05, 1e-12));
        assert!(c.interval.0 < -0.05 && c.interval.1 > -0.05 && c.interval.1 < 0.0, "{c:?}");
        assert!(c.p_value < 1e-5 && c.always_valid_p < 0.01, "{c:?}");
        // The always-valid p-value is more careful than the fixed-sample one.
        assert!(c.always_valid_p > c.p_value);
        let same =
            compare(Rate { successes: 900, n: 1000 }, Rate { successes: 901, n: 1000 }).unwrap();
        assert!(same.p_value > 0.9 && same.always_valid_p == 1.0, "{same:?}");
        assert!(compare(Rate { successes: 0, n: 0 }, Rate { successes: 1, n: 2 }).is_none());
        assert!(compare(Rate { successes: 5, n: 5 }, Rate { successes: 7, n: 7 }).is_none());
    }

    #[test]
    fn a_split_that_is_not_what_it_says_is_flagged() {
        // 90/10 observed as 9040/960 of 10,000: chi² = 1.78 (p ≈ 0.18); 8800/1200: p tiny.
        let fine = sample_ratio_p(&[9040, 960], &[90.0, 10.0]).unwrap();
        assert!(close(fine, 0.182_422_439_451_731_92, 1e-9), "{fine}");
        assert!(sample_ratio_p(&[8800, 1200], &[90.0, 10.0]).unwrap() < 1e-9);
        // A variant at weight 0 is left out; one live variant has nothing to check.
        assert!(sample_ratio_p(&[500, 500, 0], &[50.0, 50.0, 0.0]).unwrap() > 0.99);
        assert_eq!(sample_ratio_p(&[100, 0], &[100.0, 0.0]), None);
    }
}
