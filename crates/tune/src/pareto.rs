//! Pareto dominance for multi-objective studies: the front, non-dominated sorting, hypervolume,
//! each point's exclusive share of it, and the greedy hypervolume subset selection that TPE uses
//! to break ties in the last front it takes. Points are loss vectors: smaller is better in every
//! coordinate.

/// A weight for points that add no hypervolume, so that no good trial is dropped entirely.
pub(crate) const EPS: f64 = 1e-12;

/// Whether `a` dominates `b`: no worse in every objective and better in one.
pub(crate) fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut better = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        better |= x < y;
    }
    better
}

/// The indices of the points no other point dominates, in input order. Equal points are all
/// kept.
pub(crate) fn front(points: &[Vec<f64>]) -> Vec<usize> {
    let all: Vec<usize> = (0..points.len()).collect();
    front_of(points, &all)
}

/// The non-dominated points among `among` (indices into `points`), in the order given.
fn front_of(points: &[Vec<f64>], among: &[usize]) -> Vec<usize> {
    // Lexicographic order: a point can only be dominated by one before it.
    let mut order = among.to_vec();
    order.sort_by(|&a, &b| lex(&points[a], &points[b]).then(a.cmp(&b)));
    let mut kept: Vec<usize> = Vec::new();
    for &i in &order {
        if !kept.iter().any(|&k| dominates(&points[k], &points[i])) {
            kept.push(i);
        }
    }
    kept.sort_by_key(|&i| among.iter().position(|&j| j == i));
    kept
}

fn lex(a: &[f64], b: &[f64]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = x.total_cmp(y);
        if o.is_ne() {
            return o;
        }
    }
    std::cmp::Ordering::Equal
}

/// Non-dominated sorting: each point's front (0 is the Pareto front), peeling fronts until at
/// least `needed` points are ranked; points left unranked get `usize::MAX`.
pub(crate) fn ranks(points: &[Vec<f64>], needed: usize) -> Vec<usize> {
    let mut rank = vec![usize::MAX; points.len()];
    let mut rest: Vec<usize> = (0..points.len()).collect();
    let mut ranked = 0;
    let mut r = 0;
    while ranked < needed && !rest.is_empty() {
        let layer = front_of(points, &rest);
        for &i in &layer {
            rank[i] = r;
        }
        ranked += layer.len();
        rest.retain(|&i| rank[i] == usize::MAX);
        r += 1;
    }
    rank
}

/// The reference point Optuna takes for a set of losses: each objective's worst value pushed
/// 10% further out (away from zero), and a small positive number where that is 0.
pub(crate) fn reference_point(points: &[&[f64]]) -> Vec<f64> {
    let m = points.first().map_or(0, |p| p.len());
    (0..m)
        .map(|j| {
            let worst = points.iter().map(|p| p[j]).fold(f64::NEG_INFINITY, f64::max);
            let r = (1.1 * worst).max(0.9 * worst);
            if r == 0.0 { EPS } else { r }
        })
        .collect()
}

/// The hypervolume the points dominate inside the box bounded by `reference` (points not
/// strictly better than the reference in every objective add nothing). Exact: a sweep in two
/// dimensions, slicing along the last objective above that (fine for the few dozen points TPE
/// asks about).
pub(crate) fn hypervolume(points: &[&[f64]], reference: &[f64]) -> f64 {
    let inside: Vec<&[f64]> =
        points.iter().copied().filter(|p| p.iter().zip(reference).all(|(x, r)| x < r)).collect();
    hv(inside, reference)
}

fn hv(mut points: Vec<&[f64]>, reference: &[f64]) -> f64 {
    let m = reference.len();
    if points.is_empty() {
        return 0.0;
    }
    match m {
        0 => 0.0,
        1 => reference[0] - points.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min),
        2 => {
            points.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
            let mut volume = 0.0;
            let mut ceiling = reference[1];
            for p in points {
                if p[1] < ceiling {
                    volume += (reference[0] - p[0]) * (ceiling - p[1]);
                    ceiling = p[1];
                }
            }
            volume
        }
        _ => {
            // Slices along the last objective: between consecutive values, the points at or
            // below the slice dominate an (m−1)-dimensional volume.
            points.sort_by(|a, b| a[m - 1].total_cmp(&b[m - 1]));
            let mut volume = 0.0;
            let mut layer: Vec<&[f64]> = Vec::with_capacity(points.len());
            for (i, p) in points.iter().enumerate() {
                layer.push(&p[..m - 1]);
                let top = points.get(i + 1).map_or(reference[m - 1], |q| q[m - 1]);
                let height = top - p[m - 1];
                if height > 0.0 {
                    let keep = front_slices(&layer);
                    volume += height * hv(keep, &reference[..m - 1]);
                }
            }
            volume
        }
    }
}

/// The non-dominated slices (dominated ones add nothing and only cost time).
fn front_slices<'a>(layer: &[&'a [f64]]) -> Vec<&'a [f64]> {
    let mut kept: Vec<&[f64]> = Vec::with_capacity(layer.len());
    for &p in layer {
        if kept.iter().any(|k| dominates(k, p) || *k == p) {
            continue;
        }
        kept.retain(|k| !dominates(p, k));
        kept.push(p);
    }
    kept
}

/// Each point's exclusive contribution: the hypervolume lost without it.
pub(crate) fn contributions(points: &[&[f64]], reference: &[f64]) -> Vec<f64> {
    let total = hypervolume(points, reference);
    (0..points.len())
        .map(|i| {
            let others: Vec<&[f64]> =
                points.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, p)| *p).collect();
            (total - hypervolume(&others, reference)).max(0.0)
        })
        .collect()
}

/// Greedy hypervolume subset selection: `k` of the points (indices, in the order chosen), each
/// the one that adds the most hypervolume to those already chosen; ties to the earlier point.
/// Lazy: a point's gain only shrinks as others are chosen (hypervolume is submodular), so a
/// stale gain bounds the fresh one and only the leader's is recomputed.
pub(crate) fn select_by_hypervolume(points: &[&[f64]], k: usize, reference: &[f64]) -> Vec<usize> {
    let k = k.min(points.len());
    let mut chosen: Vec<usize> = Vec::with_capacity(k);
    let mut chosen_points: Vec<&[f64]> = Vec::with_capacity(k + 1);
    let mut volume = 0.0;
    // (gain bound, index, chosen count when the bound was computed)
    let mut bounds: Vec<(f64, usize, usize)> =
        (0..points.len()).map(|i| (f64::INFINITY, i, usize::MAX)).collect();
    while chosen.len() < k {
        // The leader: the largest bound, the earlier point among equals.
        let at = (0..bounds.len())
            .max_by(|&a, &b| {
                bounds[a].0.total_cmp(&bounds[b].0).then(bounds[b].1.cmp(&bounds[a].1))
            })
            .expect("a point left to choose");
        let (_, i, fresh_at) = bounds[at];
        if fresh_at == chosen.len() {
            bounds.swap_remove(at);
            chosen.push(i);
            chosen_points.push(points[i]);
            volume = hypervolume(&chosen_points, reference);
            continue;
        }
        chosen_points.push(points[i]);
        let gain = hypervolume(&chosen_points, reference) - volume;
        chosen_points.pop();
        bounds[at] = (gain, i, chosen.len());
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn refs(points: &[Vec<f64>]) -> Vec<&[f64]> {
        points.iter().map(Vec::as_slice).collect()
    }

    /// Monte Carlo estimate of the dominated volume, for checking the exact one.
    fn sampled_hv(points: &[Vec<f64>], reference: &[f64], n: usize) -> f64 {
        let mut rng = Rng::new(11);
        let m = reference.len();
        let mut hits = 0;
        for _ in 0..n {
            let x: Vec<f64> = (0..m).map(|j| rng.uniform(0.0, reference[j])).collect();
            if points.iter().any(|p| p.iter().zip(&x).all(|(a, b)| a <= b)) {
                hits += 1;
            }
        }
        hits as f64 / n as f64 * reference.iter().product::<f64>()
    }

    #[test]
    fn dominance_needs_one_strictly_better_objective() {
        assert!(dominates(&[1.0, 2.0], &[1.0, 3.0]));
        assert!(!dominates(&[1.0, 2.0], &[1.0, 2.0]));
        assert!(!dominates(&[1.0, 4.0], &[2.0, 3.0]));
    }

    #[test]
    fn the_front_keeps_the_non_dominated_points_in_order_with_equal_ones() {
        let points = vec![
            vec![3.0, 1.0],
            vec![2.0, 2.0],
            vec![2.5, 2.5],
            vec![1.0, 3.0],
            vec![2.0, 2.0],
            vec![4.0, 4.0],
        ];
        assert_eq!(front(&points), vec![0, 1, 3, 4]);
        assert_eq!(ranks(&points, 6), vec![0, 0, 1, 0, 0, 2]);
        // Peeling stops once enough points are ranked.
        assert_eq!(ranks(&points, 2), vec![0, 0, usize::MAX, 0, 0, usize::MAX]);
    }

    #[test]
    fn hypervolume_is_exact_in_two_dimensions_and_agrees_with_sampling_above() {
        // Two boxes of 2×1 and 1×2 overlapping in a 1×1 square: 3.
        let points = vec![vec![1.0, 2.0], vec![2.0, 1.0]];
        assert_eq!(hypervolume(&refs(&points), &[3.0, 3.0]), 3.0);
        // A point outside the reference box adds nothing.
        let outside = vec![vec![1.0, 2.0], vec![2.0, 1.0], vec![0.5, 3.5]];
        assert_eq!(hypervolume(&refs(&outside), &[3.0, 3.0]), 3.0);
        let mut rng = Rng::new(5);
        for m in [3, 4] {
            let points: Vec<Vec<f64>> =
                (0..12).map(|_| (0..m).map(|_| rng.uniform(0.1, 0.9)).collect()).collect();
            let reference = vec![1.0; m];
            let exact = hypervolume(&refs(&points), &reference);
            let sampled = sampled_hv(&points, &reference, 200_000);
            assert!((exact - sampled).abs() < 0.01, "{m} objectives: {exact} against {sampled}");
        }
    }

    #[test]
    fn contributions_are_each_points_exclusive_volume() {
        let points = vec![vec![1.0, 2.0], vec![2.0, 1.0], vec![2.5, 2.5]];
        // Each of the first two alone covers one unit the other does not; the third is
        // dominated and adds nothing.
        assert_eq!(contributions(&refs(&points), &[3.0, 3.0]), vec![1.0, 1.0, 0.0]);
    }

    /// The eager greedy: every gain recomputed at every step.
    fn eager(points: &[&[f64]], k: usize, reference: &[f64]) -> Vec<usize> {
        let mut chosen: Vec<usize> = Vec::new();
        while chosen.len() < k.min(points.len()) {
            let mut best: Option<(usize, f64)> = None;
            for i in (0..points.len()).filter(|i| !chosen.contains(i)) {
                let mut with: Vec<&[f64]> = chosen.iter().map(|&c| points[c]).collect();
                let before = hypervolume(&with, reference);
                with.push(points[i]);
                let gain = hypervolume(&with, reference) - before;
                if best.is_none_or(|(_, g)| gain > g) {
                    best = Some((i, gain));
                }
            }
            chosen.push(best.unwrap().0);
        }
        chosen
    }

    #[test]
    fn lazy_greedy_selection_chooses_as_the_eager_one_does() {
        let mut rng = Rng::new(9);
        for (m, n, k) in [(2, 30, 10), (3, 40, 12), (3, 8, 8), (4, 20, 5)] {
            // Points near a front (the sphere's octant), so that gains are close and change.
            let points: Vec<Vec<f64>> = (0..n)
                .map(|_| {
                    let v: Vec<f64> = (0..m).map(|_| rng.uniform(0.05, 1.0)).collect();
                    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                    v.iter().map(|x| x / norm * rng.uniform(1.0, 1.1)).collect()
                })
                .collect();
            let reference = vec![1.2; m];
            let lazy = select_by_hypervolume(&refs(&points), k, &reference);
            let gains = |sel: &[usize]| {
                let chosen: Vec<&[f64]> = sel.iter().map(|&i| points[i].as_slice()).collect();
                hypervolume(&chosen, &reference)
            };
            let eager = eager(&refs(&points), k, &reference);
            assert_eq!(
                lazy,
                eager,
                "{m} objectives, {n} points, k {k}: volumes {} {}",
                gains(&lazy),
                gains(&eager)
            );
        }
    }

    #[test]
    fn greedy_selection_picks_the_biggest_gains_first() {
        let points = vec![vec![0.5, 2.5], vec![1.0, 1.0], vec![2.5, 0.5], vec![1.1, 1.1]];
        let reference = [3.0, 3.0];
        // (1,1) alone covers 4; then the corners each add 0.5·1.5 = 0.75 (the earlier first).
        assert_eq!(select_by_hypervolume(&refs(&points), 3, &reference), vec![1, 0, 2]);
    }

    #[test]
    fn the_reference_point_lies_beyond_the_worst_point_whatever_its_sign() {
        let points = vec![vec![-2.0, 0.0, 4.0], vec![-1.0, 0.0, 2.0]];
        assert_eq!(reference_point(&refs(&points)), vec![-0.9, EPS, 4.4]);
    }
}
