//! The truncated normal distribution in the forms TPE needs: log Φ accurate far into the tails,
//! the log of the mass between two points, the log-density, and the inverse CDF for sampling
//! (solving log Φ(x) = y by Newton's method, as SciPy and Optuna do).

use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// ln √(2π).
pub(crate) const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Φ(x), the standard normal CDF.
fn ndtr(x: f64) -> f64 {
    0.5 * libm::erfc(-x * FRAC_1_SQRT_2)
}

/// ln Φ(x), accurate for every x.
pub(crate) fn log_ndtr(x: f64) -> f64 {
    if x > 6.0 {
        // Φ(x) = 1 − Φ(−x), and ln(1 − ε) = −ε to double precision here.
        return -ndtr(-x);
    }
    if x > -20.0 {
        return ndtr(x).ln();
    }
    // The asymptotic series ln(φ(x)/−x) + ln(1 − 1/x² + 3/x⁴ − 15/x⁶ + …).
    let x2 = x * x;
    let log_lhs = -0.5 * x2 - (-x).ln() - LN_SQRT_2PI;
    let (mut sum, mut term, mut k) = (1.0f64, 1.0f64, 1.0f64);
    loop {
        term *= -(2.0 * k - 1.0) / x2;
        let next = sum + term;
        if next == sum || k > 50.0 {
            break;
        }
        sum = next;
        k += 1.0;
    }
    log_lhs + sum.ln()
}

/// ln(Φ(b) − Φ(a)) for a ≤ b, without cancellation in either tail.
pub(crate) fn log_mass(a: f64, b: f64) -> f64 {
    if b <= 0.0 {
        let (la, lb) = (log_ndtr(a), log_ndtr(b));
        lb + (-(la - lb).exp()).ln_1p()
    } else if a > 0.0 {
        log_mass(-b, -a)
    } else {
        // a ≤ 0 < b: ln(1 − Φ(a) − Φ(−b)). A tail beyond 8.5σ is below 1e-17, nothing next to
        // 1, and skipping its erfc is what keeps fitting thousands of kernels cheap.
        let left = if a < -8.5 { 0.0 } else { ndtr(a) };
        let right = if b > 8.5 { 0.0 } else { ndtr(-b) };
        if left == 0.0 && right == 0.0 {
            return 0.0;
        }
        (-left - right).ln_1p()
    }
}

/// ln φ(x).
fn log_pdf_std(x: f64) -> f64 {
    -0.5 * x * x - LN_SQRT_2PI
}

fn log_add_exp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// Solves ln Φ(x) = y for x (y ≤ 0).
fn ndtri_exp(y: f64) -> f64 {
    if y > -1e-2 {
        // Near the top: solve for the upper tail instead, ln Φ(−x) = ln(1 − e^y).
        let z = (-y.exp_m1()).ln();
        return -ndtri_exp_newton(z);
    }
    ndtri_exp_newton(y)
}

fn ndtri_exp_newton(y: f64) -> f64 {
    if y == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    let mut x = if y < -5.0 {
        -(-2.0 * (y + LN_SQRT_2PI)).sqrt()
    } else {
        // The logistic approximation of Φ.
        -(3.0f64.sqrt() / PI) * (-y).exp_m1().ln()
    };
    for _ in 0..100 {
        let dx = (log_ndtr(x) - y) * (log_ndtr(x) - log_pdf_std(x)).exp();
        x -= dx;
        if dx.abs() < 1e-8 * x.abs() {
            break;
        }
    }
    x
}

/// Φ⁻¹(p) for p ∈ (0, 1).
pub(crate) fn ndtri(p: f64) -> f64 {
    if p <= 0.5 { ndtri_lower(p) } else { -ndtri_lower(1.0 - p) }
}

/// Φ⁻¹(p) for p ∈ (0, 0.5]: Acklam's rational approximation refined by one Halley step on
/// erfc, good to a few ulp.
fn ndtri_lower(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] =
        [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    let x = if p < 0.02425 {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    let e = ndtr(x) - p;
    let u = e * (2.0 * PI).sqrt() * (0.5 * x * x).exp();
    if !u.is_finite() {
        return x;
    }
    x - u / (1.0 + 0.5 * x * u)
}

/// The inverse CDF of the standard normal truncated to [a, b], at q ∈ [0, 1).
pub(crate) fn ppf(q: f64, a: f64, b: f64) -> f64 {
    if a == b {
        return a;
    }
    if q <= 0.0 {
        return a;
    }
    if q >= 1.0 {
        return b;
    }
    if a <= 0.0 && b >= 0.0 {
        // The usual case for TPE's kernels (each mean lies in its range): work in whichever
        // tail the answer lies, where Φ keeps its digits. A bound beyond 37σ has Φ of 0 or 1
        // to the last digit, which is right: q never comes within 1e-300 of it. (The log-space
        // Newton below costs ten times as much, and a sampler that has closed in on a region
        // has most of its kernels that far from the range's ends.)
        let (lower_a, lower_b) = (ndtr(a), ndtr(b));
        let p = lower_a + q * (lower_b - lower_a);
        let z = if p <= 0.5 {
            ndtri_lower(p)
        } else {
            let (upper_a, upper_b) = (ndtr(-a), ndtr(-b));
            -ndtri_lower(upper_b + (1.0 - q) * (upper_a - upper_b))
        };
        return z.clamp(a, b);
    }
    ppf_in_log_space(q, a, b)
}

/// The same in log space, for ranges wholly in one tail (Optuna's formula everywhere).
fn ppf_in_log_space(q: f64, a: f64, b: f64) -> f64 {
    let z = if a < 0.0 {
        ndtri_exp(log_add_exp(log_ndtr(a), q.ln() + log_mass(a, b)))
    } else {
        -ndtri_exp(log_add_exp(log_ndtr(-b), (1.0 - q).ln() + log_mass(a, b)))
    };
    z.clamp(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, tol: f64) {
        assert!((got - want).abs() <= tol * want.abs().max(1.0), "got {got}, want {want}");
    }

    #[test]
    fn ppf_with_a_bound_far_in_a_tail_agrees_with_the_log_space_formula() {
        for (a, b) in [(-50.0, 40.0), (-100.0, 3.0), (-2.0, 60.0), (-38.0, 0.5), (-1e6, 1e6)] {
            for q in [1e-12, 1e-6, 0.01, 0.3, 0.5, 0.77, 0.999, 1.0 - 1e-9] {
                close(ppf(q, a, b), ppf_in_log_space(q, a, b), 1e-9);
            }
        }
    }

    #[test]
    fn truncated_normal_helpers_match_optunas_reference_vectors() {
        // docs/tpe-spec-notes.md §14, from optuna 5.0.0's _truncnorm.
        let pairs = [(-1.0, 1.0), (-30.0, -29.0), (0.5, 3.0), (-2.0, 40.0)];
        let mass = [-0.3817151463021, -424.7874199097, -1.180296510633, -0.02301290932896];
        let ppf_03 = [-0.349219932457, -29.041437578502, 0.784473214289, -0.479124326402];
        for (i, &(a, b)) in pairs.iter().enumerate() {
            close(log_mass(a, b), mass[i], 1e-11);
            close(ppf(0.3, a, b), ppf_03[i], 1e-8);
        }
        // logpdf(0.7; a=-1, b=1) = −z²/2 − ln√2π − ln mass.
        close(log_pdf_std(0.7) - log_mass(-1.0, 1.0), -0.782223386903, 1e-11);
    }

    #[test]
    fn log_ndtr_is_continuous_across_its_branches_and_ppf_inverts_the_cdf() {
        for x in [-20.0f64, 6.0] {
            close(log_ndtr(x - 1e-9), log_ndtr(x + 1e-9), 1e-7);
        }
        close(log_ndtr(-40.0), -804.608_442_013_754_3, 1e-12);
        for &(a, b) in &[(-3.0, 2.0), (-0.1, 0.1), (-50.0, 0.0), (0.0, 60.0)] {
            for q in [0.01, 0.25, 0.5, 0.9, 0.999] {
                let z = ppf(q, a, b);
                assert!((a..=b).contains(&z));
                // The mass below z is q of the whole.
                let got = (log_mass(a, z) - log_mass(a, b)).exp();
                close(got, q, 1e-7);
            }
        }
    }
}
