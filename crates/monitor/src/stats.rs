//! The two-sample statistics drift tests are built on, computed as SciPy and NumPy compute them
//! (so that results agree to rounding): the Kolmogorov–Smirnov test with its exact p-value, the
//! first Wasserstein distance, histograms on NumPy's bin edges, and the divergences between two
//! distributions.

use slipway_core::special::{chi2_sf, norm_sf};

/// The two-sided two-sample Kolmogorov–Smirnov test: the statistic D (the largest distance
/// between the two empirical CDFs) and its p-value. As SciPy's `ks_2samp(method="auto")`: exact
/// when neither sample has more than 10,000 values (Hodges' lattice paths, in Viehmann's
/// numerically stable form), else the asymptotic distribution of D.
pub fn ks_2samp(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_unstable_by(f64::total_cmp);
    b.sort_unstable_by(f64::total_cmp);
    ks_2samp_sorted(&a, &b)
}

/// [`ks_2samp`] on samples already sorted.
pub fn ks_2samp_sorted(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return (f64::NAN, f64::NAN);
    }
    // Both CDFs at every observed value: the largest gap either way.
    let (mut max_up, mut max_down) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for x in a.iter().chain(b) {
        let c1 = a.partition_point(|v| v <= x) as f64 / n1 as f64;
        let c2 = b.partition_point(|v| v <= x) as f64 / n2 as f64;
        let diff = c1 - c2;
        max_up = max_up.max(diff);
        max_down = max_down.max(-diff);
    }
    let max_down = max_down.clamp(0.0, 1.0);
    let d = if max_down > max_up { max_down } else { max_up };
    let g = gcd(n1 as u64, n2 as u64);
    if n1.max(n2) <= 10_000
        && let Some((d, p)) = exact_2samp(n1 as u64, n2 as u64, g, d)
    {
        return (d, p);
    }
    let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
    let en = (m * n / (m + n)).round_ties_even();
    (d, kolmogorov_smirnov_sf(d, en))
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The exact two-sided p-value of D for samples of `n1` and `n2`, D rounded onto the lattice of
/// their least common multiple first; `None` where the computation cannot be trusted.
fn exact_2samp(n1: u64, n2: u64, g: u64, d: f64) -> Option<(f64, f64)> {
    let lcm = (n1 / g) * n2;
    let h = (d * lcm as f64).round_ties_even() as u64;
    let d = h as f64 / lcm as f64;
    if h == 0 {
        return Some((d, 1.0));
    }
    let p = if n1 == n2 { outside_square(n1, h) } else { outside_inside_method(n1, n2, g, h) };
    (p.is_finite() && (0.0..=1.0).contains(&p)).then_some((d, p))
}

/// The share of lattice paths from (0, 0) to (n, n) that touch |x − y| ≥ h: twice an
/// alternating sum of binomial ratios, evaluated inside out so that nothing cancels.
fn outside_square(n: u64, h: u64) -> f64 {
    let mut p = 0.0;
    let mut k = (n / h) as i64;
    while k >= 0 {
        let ku = k as u64;
        let mut term = 1.0;
        for j in 0..h {
            // Once a factor reaches zero (an empty binomial) the term stays zero.
            let num = n as f64 - (ku * h + j) as f64;
            term = num * term / (n + ku * h + j + 1) as f64;
        }
        p = term * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// The share of lattice paths from (0, 0) to (m, n) that leave the band |x/m − y/n| < h/lcm,
/// computed column by column as one minus the share that stays inside, each column scaled as it
/// goes (Viehmann, arXiv:2102.08037).
fn outside_inside_method(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (mg, ng) = ((m / g) as i64, (n / g) as i64);
    let (n, h) = (n as i64, h as i64);
    let mut minj: i64 = 0;
    let mut maxj: i64 = (h as f64 / mg as f64).ceil().min((n + 1) as f64) as i64;
    let mut curlen = maxj - minj;
    let len = (2 * maxj + 2).min(n + 1) as usize;
    let mut col = vec![1.0f64; len];
    for v in col.iter_mut().take(maxj as usize) {
        *v = 0.0;
    }
    for i in 1..=(m as i64) {
        let (lastminj, lastlen) = (minj, curlen);
        minj = ((((ng * i - h) as f64) / mg as f64).floor() as i64 + 1).max(0).min(n);
        maxj = (((ng * i + h) as f64 / mg as f64).ceil() as i64).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        for jj in 0..(maxj - minj) {
            let j = jj + minj;
            let prev = col[(jj + minj - lastminj) as usize];
            val = (prev * i as f64 + val * j as f64) / (i + j) as f64;
            col[jj as usize] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let from = (maxj - minj) as usize;
            let to = (from + (lastlen - curlen) as usize).min(col.len());
            for v in &mut col[from..to] {
                *v = 1.0;
            }
        }
    }
    col[(maxj - minj - 1) as usize]
}

/// P(D_n ≥ d) for the one-sample two-sided statistic with `n` values (SciPy's `kstwo.sf`), used
/// where the exact two-sample computation does not reach. SciPy picks its method by region
/// (Simard and L'Ecuyer); so does this, and every method it picks computes the same quantity:
/// Ruben and Gambino's closed forms at the ends, twice the one-sided Smirnov tail where that is
/// what SciPy reports, the exact distribution (Durbin's matrix) where SciPy computes it exactly,
/// and Pelz and Good's expansion where SciPy uses that approximation.
fn kolmogorov_smirnov_sf(d: f64, n: f64) -> f64 {
    let x = d;
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let nu = n as u64;
    let t = n * x;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        let cdf = if nu <= 140 {
            (1..=nu).fold(1.0, |p, i| p * (i as f64 * (1.0 / n) * (2.0 * t - 1.0)))
        } else {
            (log_factorial_over_power(n) + n * (2.0 * t - 1.0).ln()).exp()
        };
        return (1.0 - cdf).clamp(0.0, 1.0);
    }
    if t >= n - 1.0 {
        return (2.0 * (1.0 - x).powf(n)).clamp(0.0, 1.0);
    }
    if x >= 0.5 {
        return (2.0 * smirnov(nu, x)).clamp(0.0, 1.0);
    }
    let nx2 = t * x;
    if nu <= 140 {
        if nx2 <= 4.0 {
            return (1.0 - durbin_cdf(nu, x)).clamp(0.0, 1.0);
        }
        return (2.0 * smirnov(nu, x)).clamp(0.0, 1.0);
    }
    if nx2 >= 370.0 {
        return 0.0;
    }
    if nx2 >= 2.2 {
        return (2.0 * smirnov(nu, x)).clamp(0.0, 1.0);
    }
    let cdf = if nx2 >= 18.0 {
        1.0
    } else if nu <= 100_000 && n * x.powf(1.5) <= 1.4 {
        durbin_cdf(nu, x)
    } else {
        pelz_good_cdf(n, x)
    };
    (1.0 - cdf).clamp(0.0, 1.0)
}

/// ln(n! / nⁿ) by Stirling's series, with n ln n taken out first (as SciPy does).
fn log_factorial_over_power(n: f64) -> f64 {
    const STIRLING: [f64; 8] = [
        -2.955_065_359_477_124_2e-2,
        6.410_256_410_256_41e-3,
        -1.917_526_917_526_917_6e-3,
        8.417_508_417_508_417e-4,
        -5.952_380_952_380_953e-4,
        7.936_507_936_507_937e-4,
        -2.777_777_777_777_778e-3,
        8.333_333_333_333_333e-2,
    ];
    let rn = 1.0 / n;
    let x = rn / n;
    let poly = STIRLING.iter().fold(0.0, |acc, c| acc * x + c);
    n.ln() / 2.0 - n + (2.0 * std::f64::consts::PI).ln() / 2.0 + rn * poly
}

/// The one-sided Smirnov tail P(D⁺_n ≥ x), exactly (Birnbaum and Tingey's sum of positive
/// terms, in logarithms; n·x split exactly so that 1 − x − j/n does not cancel).
fn smirnov(n: u64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    // n·x = whole + alpha, exactly (the product's rounding error recovered by a fused multiply).
    let hi = nf * x;
    let lo = nf.mul_add(x, -hi);
    let mut whole = hi.floor();
    let mut alpha = (hi - whole) + lo;
    if alpha < 0.0 {
        whole -= 1.0;
        alpha += 1.0;
    } else if alpha >= 1.0 {
        whole += 1.0;
        alpha -= 1.0;
    }
    let whole = whole as i64;
    // j runs while 1 − x − j/n > 0, i.e. j < n − n·x.
    let last = n as i64 - whole - if alpha > 0.0 { 1 } else { 0 };
    let ln_x = x.ln();
    let mut ln_binom = 0.0f64;
    let mut sum = 0.0;
    for j in 0..=last.max(-1) {
        let jf = j as f64;
        if j > 0 {
            ln_binom += ((nf - jf + 1.0) / jf).ln();
        }
        // 1 − x − j/n = (n − j − whole − alpha)/n; x + j/n = (n·x + j)/n.
        let below = ((n as i64 - j - whole) as f64 - alpha) / nf;
        if below <= 0.0 {
            break;
        }
        let above = x + jf / nf;
        let term = ln_binom + (nf - jf) * below.ln() + (jf - 1.0) * above.ln() + ln_x;
        sum += term.exp();
    }
    sum.clamp(0.0, 1.0)
}

/// P(D_n ≤ d) exactly: Durbin's matrix, as Marsaglia, Tsang and Wang compute it (the k-th
/// diagonal entry of Hⁿ, scaled as it grows, times n!/nⁿ).
fn durbin_cdf(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let nd = nf * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    let mut hm = vec![0.0f64; m * m];
    let mut v: Vec<f64> = (1..=m).map(|i| 1.0 - h.powi(i as i32)).collect();
    let mut w = vec![0.0f64; m];
    let mut fac = 1.0f64;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] *= fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;
    for i in 1..m {
        for r in (i - 1)..m {
            hm[r * m + i] = w[r - (i - 1)];
        }
    }
    for r in 0..m {
        hm[r * m] = v[r];
    }
    for c in 0..m {
        hm[(m - 1) * m + c] = v[m - 1 - c];
    }
    const E128: i32 = 128;
    let ep128 = 2f64.powi(E128);
    let em128 = 2f64.powi(-E128);
    let mut power = identity(m);
    let (mut expnt, mut h_expnt) = (0i32, 0i32);
    let mut nn = n;
    while nn > 0 {
        if nn % 2 == 1 {
            power = matmul(&power, &hm, m);
            expnt += h_expnt;
        }
        hm = matmul(&hm, &hm, m);
        h_expnt *= 2;
        if hm[(k - 1) * m + (k - 1)].abs() > ep128 {
            for x in hm.iter_mut() {
                *x /= ep128;
            }
            h_expnt += E128;
        }
        nn /= 2;
    }
    let mut p = power[(k - 1) * m + (k - 1)];
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < em128 {
            p *= ep128;
            expnt -= E128;
        }
    }
    if expnt != 0 {
        p *= 2f64.powi(expnt);
    }
    p.clamp(0.0, 1.0)
}

fn identity(m: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * m];
    for i in 0..m {
        out[i * m + i] = 1.0;
    }
    out
}

fn matmul(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * m];
    for i in 0..m {
        for l in 0..m {
            let x = a[i * m + l];
            if x == 0.0 {
                continue;
            }
            for j in 0..m {
                out[i * m + j] += x * b[l * m + j];
            }
        }
    }
    out
}

/// Pelz and Good's expansion of P(D_n ≤ x): Li-Chien and Korolyuk's terms in 1/√n, each as a
/// theta-function series suited to small z = x√n.
fn pelz_good_cdf(n: f64, x: f64) -> f64 {
    use std::f64::consts::PI;
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let z = n.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z * z * z, z.powi(4), z.powi(6));
    let (pi2, pi4, pi6) = (PI * PI, PI.powi(4), PI.powi(6));
    let qlog = -pi2 / 8.0 / z2;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();
    let (k1a, k1b) = (-z2, pi2 / 4.0);
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);
    let mut k = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for kk in (1..=maxk).rev() {
        let mm = (2 * kk - 1) as f64;
        let (m2, m4, m6) = (mm * mm, mm.powi(4), mm.powi(6));
        let qpower = q.powf(8.0 * kk as f64);
        let coeffs =
            [1.0, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4, k3a + k3b * m2 + k3c * m4 + k3d * m6];
        for (v, c) in k.iter_mut().zip(coeffs) {
            *v = *v * qpower + c;
        }
    }
    let sqrt2pi = (2.0 * PI).sqrt();
    let divisors = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (v, dv) in k.iter_mut().zip(divisors) {
        *v = *v * q * sqrt2pi / dv;
    }
    let q2 = (-pi2 / 2.0 / z2).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let (mut k2extra, mut k3extra) = (0.0, 0.0);
    for kk in (1..=maxk).rev() {
        let kf = kk as f64;
        let ksq = kf * kf;
        let qp = q2.powf(ksq);
        k2extra += ksq * qp;
        let kspi = PI * kf;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ksq * qp;
    }
    k[2] += k2extra * pi2 * sqrt2pi / (-36.0 * z3);
    k[3] += k3extra * pi2 * sqrt2pi / (216.0 * z6);
    for (i, v) in k.iter_mut().enumerate() {
        *v /= n.powf(i as f64 / 2.0);
    }
    k.iter().sum()
}

/// The first Wasserstein distance between two samples, as SciPy's `wasserstein_distance`: the
/// area between their empirical CDFs.
pub fn wasserstein(u: &[f64], v: &[f64]) -> f64 {
    let (mut u, mut v) = (u.to_vec(), v.to_vec());
    u.sort_unstable_by(f64::total_cmp);
    v.sort_unstable_by(f64::total_cmp);
    wasserstein_sorted(&u, &v)
}

/// [`wasserstein`] on samples already sorted: one merge of the two.
pub fn wasserstein_sorted(u: &[f64], v: &[f64]) -> f64 {
    let all = merge_sorted(u, v);
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut iu, mut iv) = (0usize, 0usize);
    let mut total = 0.0;
    for w in all.windows(2) {
        // The CDFs just right of w[0]: values ≤ w[0].
        while iu < u.len() && u[iu] <= w[0] {
            iu += 1;
        }
        while iv < v.len() && v[iv] <= w[0] {
            iv += 1;
        }
        total += (iu as f64 / nu - iv as f64 / nv).abs() * (w[1] - w[0]);
    }
    total
}

/// Two sorted slices as one sorted vector.
pub fn merge_sorted(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].total_cmp(&b[j]).is_le() {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Distinct values of a sorted slice.
pub fn distinct_sorted(a: &[f64]) -> usize {
    a.iter().enumerate().filter(|(i, x)| *i == 0 || a[i - 1] != **x).count()
}

/// NumPy's population standard deviation (ddof 0): the mean first, then the mean square
/// deviation.
pub fn std_population(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mean = pairwise_sum(x) / n;
    let dev: Vec<f64> = x.iter().map(|v| (v - mean) * (v - mean)).collect();
    (pairwise_sum(&dev) / n).sqrt()
}

/// NumPy's summation: pairwise over blocks of 128, each block unrolled by eight, so that sums
/// round as NumPy's do.
pub fn pairwise_sum(x: &[f64]) -> f64 {
    let n = x.len();
    if n < 8 {
        return x.iter().fold(0.0, |acc, v| acc + v);
    }
    if n <= 128 {
        let mut r = [x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]];
        let mut i = 8;
        while i + 8 <= n {
            for k in 0..8 {
                r[k] += x[i + k];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for v in &x[i..] {
            res += v;
        }
        return res;
    }
    let mut half = n / 2;
    half -= half % 8;
    pairwise_sum(&x[..half]) + pairwise_sum(&x[half..])
}

/// NumPy's `histogram_bin_edges(x, bins="sturges")`: as many equal bins over [min, max] as
/// ⌈ptp / (ptp / (log₂ n + 1))⌉, as NumPy computes it (which can round up by one), bins of an
/// integer column at least 1 wide.
pub fn sturges_edges(x: &[f64], integer: bool) -> Vec<f64> {
    let (lo, hi) = min_max(x);
    let (lo, hi) = if lo == hi { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
    let mut width = (hi - lo) / ((x.len() as f64).log2() + 1.0);
    if integer && width < 1.0 {
        width = 1.0;
    }
    let bins = if width > 0.0 { ((hi - lo) / width).ceil() as usize } else { 1 };
    linspace(lo, hi, bins + 1)
}

/// NumPy's `histogram_bin_edges(x, bins=n)`.
pub fn equal_edges(x: &[f64], bins: usize) -> Vec<f64> {
    let (lo, hi) = min_max(x);
    let (lo, hi) = if lo == hi { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
    linspace(lo, hi, bins + 1)
}

fn min_max(x: &[f64]) -> (f64, f64) {
    x.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
}

/// NumPy's `linspace(start, stop, num)`: `i · step + start`, the last exactly `stop`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(last) = v.last_mut() {
        *last = stop;
    }
    v
}

/// NumPy's `histogram(x, edges)` counts: [eᵢ, eᵢ₊₁) with the last bin closed; values outside
/// the edges are not counted.
pub fn histogram(x: &[f64], edges: &[f64]) -> Vec<u64> {
    let mut sorted = x.to_vec();
    sorted.sort_by(f64::total_cmp);
    let below = |e: f64| sorted.partition_point(|v| *v < e) as u64;
    let mut cum: Vec<u64> = edges[..edges.len() - 1].iter().map(|e| below(*e)).collect();
    let last = *edges.last().expect("at least two edges");
    cum.push(sorted.partition_point(|v| *v <= last) as u64);
    cum.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Replaces zero shares as Evidently does before a divergence: with 0.0001, or with a
/// millionth of the smallest non-zero share when that is at most 0.0001.
pub fn fill_zeroes(shares: &mut [f64]) {
    let smallest = shares.iter().copied().filter(|s| *s != 0.0).fold(f64::INFINITY, f64::min);
    let fill = if smallest <= 0.0001 { smallest / 1e6 } else { 0.0001 };
    for s in shares.iter_mut().filter(|s| **s == 0.0) {
        *s = fill;
    }
}

/// SciPy's `jensenshannon(p, q)` (natural log): each normalised to sum to 1, then
/// √(½ (KL(p‖m) + KL(q‖m))) with m their mean.
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq) = (pairwise_sum(p), pairwise_sum(q));
    let p: Vec<f64> = p.iter().map(|v| v / sp).collect();
    let q: Vec<f64> = q.iter().map(|v| v / sq).collect();
    let m: Vec<f64> = p.iter().zip(&q).map(|(a, b)| (a + b) / 2.0).collect();
    let left: Vec<f64> = p.iter().zip(&m).map(|(a, b)| rel_entr(*a, *b)).collect();
    let right: Vec<f64> = q.iter().zip(&m).map(|(a, b)| rel_entr(*a, *b)).collect();
    let js = pairwise_sum(&left) + pairwise_sum(&right);
    (js / 2.0).sqrt()
}

/// SciPy's `rel_entr(x, y)`: x ln(x/y), 0 at x = 0.
fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// SciPy's `entropy(p, q)`: the Kullback–Leibler divergence of q from p (natural log), each
/// normalised to sum to 1.
pub fn kl_divergence(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq) = (pairwise_sum(p), pairwise_sum(q));
    let terms: Vec<f64> = p.iter().zip(q).map(|(a, b)| rel_entr(a / sp, b / sq)).collect();
    pairwise_sum(&terms)
}

/// The population stability index: Σ (cᵢ − rᵢ) ln(cᵢ / rᵢ).
pub fn psi(reference: &[f64], current: &[f64]) -> f64 {
    let terms: Vec<f64> =
        reference.iter().zip(current).map(|(r, c)| (c - r) * (c / r).ln()).collect();
    terms.iter().fold(0.0, |acc, t| acc + t)
}

/// Pearson's chi-squared goodness of fit of `observed` against `expected` counts (SciPy's
/// `chisquare`): the statistic and its p-value with k − 1 degrees of freedom.
pub fn chisquare(observed: &[f64], expected: &[f64]) -> (f64, f64) {
    let terms: Vec<f64> =
        observed.iter().zip(expected).map(|(o, e)| (o - e) * (o - e) / e).collect();
    let stat = pairwise_sum(&terms);
    // A category the expectation gives no share makes the statistic infinite: p = 0.
    let p = if stat == f64::INFINITY { 0.0 } else { chi2_sf(stat, (observed.len() - 1) as f64) };
    (stat, p)
}

/// The two-proportion z-test's two-sided p-value for `x1` of `n1` against `x2` of `n2`, with the
/// pooled proportion.
pub fn two_proportion_z(x1: f64, n1: f64, x2: f64, n2: f64) -> f64 {
    let (p1, p2) = (x1 / n1, x2 / n2);
    let p = (x1 + x2) / (n1 + n2);
    let se = (p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 {
        return 1.0;
    }
    let z = (p1 - p2) / se;
    2.0 * norm_sf(z.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_edges_and_counts() {
        let x = [0.0, 1.0, 2.0, 3.0, 4.0, 10.0];
        // log2(6) + 1 = 3.58…: four bins over [0, 10].
        assert_eq!(sturges_edges(&x, false), vec![0.0, 2.5, 5.0, 7.5, 10.0]);
        assert_eq!(histogram(&x, &[0.0, 2.5, 5.0, 7.5, 10.0]), vec![3, 2, 0, 1]);
        // The last bin is closed; values outside are left out.
        assert_eq!(histogram(&[-1.0, 0.0, 1.0, 2.0], &[0.0, 1.0, 2.0]), vec![1, 2]);
        assert_eq!(equal_edges(&[3.0, 3.0], 2), vec![2.5, 3.0, 3.5]);
    }

    #[test]
    fn pairwise_sums_add_up() {
        let x: Vec<f64> = (0..1000).map(|i| i as f64 * 0.1).collect();
        assert!((pairwise_sum(&x) - 49_950.0).abs() < 1e-9);
        assert_eq!(pairwise_sum(&[1.0, 2.0]), 3.0);
    }

    #[test]
    fn ks_exact_agrees_with_brute_force_path_counts() {
        // Small samples: the exact p-value is the share of all interleavings of the pooled
        // ranks whose D is at least the observed one.
        let a = [0.1, 0.4, 0.7, 1.3];
        let b = [0.2, 0.5, 0.9, 1.1, 1.5, 1.6];
        let (d, p) = ks_2samp(&a, &b);
        let pooled: Vec<f64> = a.iter().chain(&b).copied().collect();
        let (mut hits, mut total) = (0u32, 0u32);
        for mask in 0u32..(1 << 10) {
            if mask.count_ones() != 4 {
                continue;
            }
            let x: Vec<f64> = (0..10).filter(|i| mask >> i & 1 == 1).map(|i| pooled[i]).collect();
            let y: Vec<f64> = (0..10).filter(|i| mask >> i & 1 == 0).map(|i| pooled[i]).collect();
            let (dd, _) = ks_2samp(&x, &y);
            total += 1;
            hits += u32::from(dd >= d - 1e-12);
        }
        assert!((p - hits as f64 / total as f64).abs() < 1e-12, "{p} vs {hits}/{total}");
        // scipy.stats.ks_2samp on the same samples.
        assert!(
            (d - 0.416_666_666_666_666_7).abs() < 1e-15
                && (p - 0.695_238_095_238_095_2).abs() < 1e-12
        );
        // Equal sizes go through the square's formula.
        let (d2, p2) = ks_2samp(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
        assert_eq!(d2, 1.0);
        assert!((p2 - 0.1).abs() < 1e-12, "{p2}");
    }

    #[test]
    fn the_asymptotic_ks_tail_matches_scipy_in_every_region() {
        // scipy.stats.kstwo.sf(d, n): Ruben-Gambino ends, the exact distribution for n <= 140
        // (SciPy's Durbin and Pomeranz regions), twice the Smirnov tail, Durbin for larger n,
        // and Pelz-Good beyond n = 100,000.
        let want = [
            (50.0, 0.015, 1.0),
            (50.0, 0.05, 0.999_023_809_846_188_3),
            (50.0, 0.15, 0.190_263_665_182_480_72),
            (50.0, 0.3, 0.000_173_532_602_027_187_38),
            (50.0, 0.6, 9.634_070_456_142_374e-18),
            (50.0, 0.985, 1.275_243_000_428_155_7e-91),
            (100.0, 0.2, 0.000_555_192_732_798_877_5),
            (120.0, 0.35, 1.203_916_828_656_033_8e-13),
            (476.0, 0.02, 0.989_280_591_714_691_6),
            (476.0, 0.05, 0.178_865_270_319_312_1),
            (476.0, 0.1, 0.000_134_962_428_280_577_7),
            (909.0, 0.01, 0.999_983_426_484_786_8),
            (909.0, 0.06, 0.002_752_251_043_351_542),
            (909.0, 0.3, 4.750_434_184_769_033e-73),
            (200_000.0, 0.002, 0.399_950_853_690_380_97),
            (200_000.0, 0.004, 0.003_314_212_822_560_255),
        ];
        for (n, d, p) in want {
            let got = kolmogorov_smirnov_sf(d, n);
            assert!((got - p).abs() <= 1e-9 * p, "n {n}, d {d}: {got} vs {p}");
        }
    }

    #[test]
    fn divergences_of_known_distributions() {
        assert_eq!(jensen_shannon(&[0.5, 0.5], &[0.5, 0.5]), 0.0);
        // Disjoint supports: √ln 2.
        assert!((jensen_shannon(&[1.0, 0.0], &[0.0, 1.0]) - 2f64.ln().sqrt()).abs() < 1e-15);
        // scipy.stats.entropy, the PSI sum and scipy.stats.chisquare on the same numbers.
        assert!(
            (kl_divergence(&[0.5, 0.5], &[0.25, 0.75]) - 0.143_841_036_225_890_45).abs() < 1e-15
        );
        assert!((psi(&[0.5, 0.5], &[0.25, 0.75]) - 0.274_653_072_167_027_4).abs() < 1e-14);
        let (stat, p) = chisquare(&[10.0, 20.0], &[15.0, 15.0]);
        assert!(
            (stat - 10.0 / 3.0).abs() < 1e-14 && (p - 0.067_889_154_861_828_93).abs() < 1e-12,
            "{p}"
        );
        assert!((wasserstein(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]) - 5.0).abs() < 1e-15);
        let mut shares = [0.5, 0.0, 0.5];
        fill_zeroes(&mut shares);
        assert_eq!(shares, [0.5, 0.0001, 0.5]);
    }
}
