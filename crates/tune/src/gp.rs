//! A small exact Gaussian process, for TPE's kriging believer: fitted to the complete trials, it
//! predicts how the running ones will end. Inputs are scaled to [0, 1] (a categorical one is its
//! choice index, compared only for equality); targets are standardised scores. The kernel is
//! Matérn 5/2 with one length per dimension (ARD); lengths and noise maximise the marginal
//! likelihood by a search over a grid (an isotropic grid, then each dimension's length scaled in
//! turn), and the signal variance is profiled out. Cost: a search ([`Kernel::search`]) is one
//! Cholesky factorisation of n×n per grid point (about 140 for 10 dimensions), a fit
//! ([`Gp::fit`]) one; the sampler fits at most 128 points and searches once per stretch of the
//! history.

/// The isotropic lengths tried first, as multiples of √dims.
const LENGTHS: [f64; 9] = [0.05, 0.1, 0.15, 0.2, 0.3, 0.45, 0.7, 1.0, 1.5];
/// The noise variances tried (the signal's is 1).
const NOISES: [f64; 4] = [1e-6, 1e-3, 1e-2, 1e-1];
/// Factors on one dimension's inverse squared length, tried in turn (0: the dimension ignored).
const FACTORS: [f64; 5] = [0.0, 0.0625, 0.25, 4.0, 16.0];

/// A kernel's hyperparameters: per dimension 1 / length², and the noise variance.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Kernel {
    inv_length2: Vec<f64>,
    noise: f64,
}

pub(crate) struct Gp {
    points: Vec<Vec<f64>>,
    categorical: Vec<bool>,
    /// Per dimension, 1 / length².
    inv_length2: Vec<f64>,
    mean: f64,
    /// K⁻¹ (y − mean).
    alpha: Vec<f64>,
}

fn matern52(d2: f64) -> f64 {
    let r = (5.0 * d2).sqrt();
    (1.0 + r + r * r / 3.0) * (-r).exp()
}

fn diff2(a: f64, b: f64, categorical: bool) -> f64 {
    if categorical { f64::from(u8::from(a != b)) } else { (a - b) * (a - b) }
}

/// Factors the symmetric positive definite n×n matrix `a` (row-major) as L Lᵀ, L in its lower
/// triangle (only the lower triangle is read); None when it is not positive definite.
fn cholesky(a: &mut [f64], n: usize) -> Option<()> {
    for j in 0..n {
        let d = a[j * n + j] - (0..j).map(|k| a[j * n + k] * a[j * n + k]).sum::<f64>();
        if !(d > 0.0 && d.is_finite()) {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let s = a[i * n + j] - (0..j).map(|k| a[i * n + k] * a[j * n + k]).sum::<f64>();
            a[i * n + j] = s / d;
        }
    }
    Some(())
}

/// Solves L Lᵀ x = b in place, given L from [`cholesky`].
fn solve(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let s = b[i] - l[i * n..i * n + i].iter().zip(&b[..i]).map(|(x, y)| x * y).sum::<f64>();
        b[i] = s / l[i * n + i];
    }
    for i in (0..n).rev() {
        let s = b[i] - (i + 1..n).map(|k| l[k * n + i] * b[k]).sum::<f64>();
        b[i] = s / l[i * n + i];
    }
}

/// One kernel's fit: its log marginal likelihood (signal variance profiled out) and K⁻¹y.
struct Fit {
    log_likelihood: f64,
    alpha: Vec<f64>,
}

/// Each pair's squared difference per dimension (lower triangle, row-major n×n).
fn pair_diffs(points: &[Vec<f64>], categorical: &[bool]) -> Vec<Vec<f64>> {
    let n = points.len();
    (0..categorical.len())
        .map(|k| {
            let mut m = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..i {
                    m[i * n + j] = diff2(points[i][k], points[j][k], categorical[k]);
                }
            }
            m
        })
        .collect()
}

/// Fits centred targets `y` with a kernel over `diffs`, in `k` (n×n scratch).
fn fit_kernel(diffs: &[Vec<f64>], y: &[f64], kernel: &Kernel, k: &mut [f64]) -> Option<Fit> {
    let n = y.len();
    for i in 0..n {
        for j in 0..i {
            let d2: f64 =
                diffs.iter().zip(&kernel.inv_length2).map(|(m, w)| m[i * n + j] * w).sum();
            k[i * n + j] = matern52(d2);
        }
        k[i * n + i] = 1.0 + kernel.noise;
    }
    cholesky(k, n)?;
    let mut alpha = y.to_vec();
    solve(k, n, &mut alpha);
    let scale = y.iter().zip(&alpha).map(|(a, b)| a * b).sum::<f64>() / n as f64;
    let log_det = 2.0 * (0..n).map(|i| k[i * n + i].ln()).sum::<f64>();
    let log_likelihood = -0.5 * n as f64 * scale.max(1e-300).ln() - 0.5 * log_det;
    log_likelihood.is_finite().then_some(Fit { log_likelihood, alpha })
}

fn centred(targets: &[f64]) -> (f64, Vec<f64>) {
    let mean = targets.iter().sum::<f64>() / targets.len().max(1) as f64;
    (mean, targets.iter().map(|t| t - mean).collect())
}

impl Kernel {
    /// The kernel that best explains `targets` at `points` (greatest marginal likelihood over
    /// the grid). None with fewer than two points or when no kernel can be factored.
    pub(crate) fn search(
        points: &[Vec<f64>],
        targets: &[f64],
        categorical: &[bool],
    ) -> Option<Kernel> {
        let n = points.len();
        let dims = categorical.len();
        if n < 2 || dims == 0 || targets.len() != n {
            return None;
        }
        let (_, y) = centred(targets);
        let diffs = pair_diffs(points, categorical);
        let mut k = vec![0.0; n * n];
        let mut best: Option<(f64, Kernel)> = None;
        let mut consider = |kernel: Kernel, best: &mut Option<(f64, Kernel)>| {
            if let Some(f) = fit_kernel(&diffs, &y, &kernel, &mut k)
                && best.as_ref().is_none_or(|b| f.log_likelihood > b.0)
            {
                *best = Some((f.log_likelihood, kernel));
            }
        };
        for length in LENGTHS {
            let length = length * (dims as f64).sqrt();
            for noise in NOISES {
                consider(
                    Kernel { inv_length2: vec![1.0 / (length * length); dims], noise },
                    &mut best,
                );
            }
        }
        best.as_ref()?;
        // Each dimension's length in turn (twice over up to 10 dimensions, once up to 32).
        let sweeps = if dims <= 10 {
            2
        } else if dims <= 32 {
            1
        } else {
            0
        };
        for _ in 0..sweeps {
            for d in 0..dims {
                let base = best.as_ref().map(|b| b.1.clone()).expect("a kernel");
                for factor in FACTORS {
                    let mut kernel = base.clone();
                    kernel.inv_length2[d] *= factor;
                    consider(kernel, &mut best);
                }
            }
        }
        best.map(|b| b.1)
    }
}

impl Gp {
    /// Fits `targets` at `points` (each a vector of one value per dimension) with `kernel`. None
    /// with fewer than two points or when the kernel cannot be factored.
    pub(crate) fn fit(
        points: &[Vec<f64>],
        targets: &[f64],
        categorical: &[bool],
        kernel: &Kernel,
    ) -> Option<Gp> {
        let n = points.len();
        if n < 2 || targets.len() != n || kernel.inv_length2.len() != categorical.len() {
            return None;
        }
        let (mean, y) = centred(targets);
        let mut k = vec![0.0; n * n];
        let fit = fit_kernel(&pair_diffs(points, categorical), &y, kernel, &mut k)?;
        Some(Gp {
            points: points.to_vec(),
            categorical: categorical.to_vec(),
            inv_length2: kernel.inv_length2.clone(),
            mean,
            alpha: fit.alpha,
        })
    }

    /// The posterior mean at `x`.
    pub(crate) fn predict(&self, x: &[f64]) -> f64 {
        self.mean
            + self
                .points
                .iter()
                .zip(&self.alpha)
                .map(|(p, a)| {
                    let d2: f64 = (0..x.len())
                        .map(|k| diff2(p[k], x[k], self.categorical[k]) * self.inv_length2[k])
                        .sum();
                    a * matern52(d2)
                })
                .sum::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn cholesky_solves_a_known_system() {
        // A = [[4, 2, 0], [2, 5, 1], [0, 1, 3]], b = A·[1, −2, 3].
        let mut a = vec![4.0, 2.0, 0.0, 2.0, 5.0, 1.0, 0.0, 1.0, 3.0];
        cholesky(&mut a, 3).unwrap();
        let mut b = vec![0.0, -5.0, 7.0];
        solve(&a, 3, &mut b);
        for (x, want) in b.iter().zip([1.0, -2.0, 3.0]) {
            assert!((x - want).abs() < 1e-12, "{b:?}");
        }
        let mut singular = vec![1.0, 1.0, 1.0, 1.0];
        assert!(cholesky(&mut singular, 2).is_none());
    }

    /// Points in [0, 1]^3 valued by a smooth function of the first two coordinates; the third is
    /// noise the fit should learn to ignore.
    fn sample(rng: &mut Rng, n: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
        let f = |x: &[f64]| (3.0 * x[0]).sin() + (x[1] - 0.3).powi(2) * 4.0;
        let points: Vec<Vec<f64>> =
            (0..n).map(|_| (0..3).map(|_| rng.uniform(0.0, 1.0)).collect()).collect();
        let values = points.iter().map(|p| f(p)).collect();
        (points, values)
    }

    #[test]
    fn it_predicts_a_smooth_function_far_better_than_its_mean_and_ignores_a_useless_input() {
        let mut rng = Rng::new(5);
        let (points, values) = sample(&mut rng, 60);
        let kernel = Kernel::search(&points, &values, &[false; 3]).unwrap();
        let gp = Gp::fit(&points, &values, &[false; 3], &kernel).unwrap();
        let (test, truth) = sample(&mut rng, 200);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let sse: f64 = test.iter().zip(&truth).map(|(x, t)| (gp.predict(x) - t).powi(2)).sum();
        let sst: f64 = truth.iter().map(|t| (t - mean).powi(2)).sum();
        assert!(sse < 0.02 * sst, "R² {}", 1.0 - sse / sst);
        // The third input's length is the longest (its inverse the smallest).
        let inv = &gp.inv_length2;
        assert!(inv[2] < inv[0].min(inv[1]) / 4.0, "{inv:?}");
    }

    #[test]
    fn a_categorical_input_is_compared_for_equality() {
        // value = 2 for choice 0, −1 for choice 2, 0.5 for choice 1, plus a small slope in x.
        let mut rng = Rng::new(8);
        let offset = [2.0, 0.5, -1.0];
        let mut points = Vec::new();
        let mut values = Vec::new();
        for i in 0..30 {
            let c = (i % 3) as f64;
            let x = rng.uniform(0.0, 1.0);
            points.push(vec![x, c]);
            values.push(offset[i % 3] + 0.3 * x);
        }
        let kernel = Kernel::search(&points, &values, &[false, true]).unwrap();
        let gp = Gp::fit(&points, &values, &[false, true], &kernel).unwrap();
        for (c, want) in offset.iter().enumerate() {
            let got = gp.predict(&[0.5, c as f64]);
            assert!((got - (want + 0.15)).abs() < 0.1, "choice {c}: {got}");
        }
    }

    #[test]
    fn too_few_points_give_no_fit() {
        assert!(Kernel::search(&[vec![0.5]], &[1.0], &[false]).is_none());
        assert!(Kernel::search(&[], &[], &[false]).is_none());
        let kernel = Kernel { inv_length2: vec![1.0], noise: 1e-3 };
        assert!(Gp::fit(&[vec![0.5]], &[1.0], &[false], &kernel).is_none());
        assert!(
            Gp::fit(&[vec![0.5, 1.0], vec![0.1, 0.0]], &[1.0, 2.0], &[false, true], &kernel)
                .is_none()
        );
    }
}
