//! The samplers: random, grid and TPE (Optuna 5's defaults, univariate or multivariate, with
//! constant liar). Each decides from the study's history alone; see `docs/tuning.md` for what
//! each costs per trial.

use serde_json::Value;

use crate::config::{SamplerConfig, TpeOptions};
use crate::parzen::{Parzen, default_gamma};
use crate::rng::Rng;
use crate::space::Distribution;
use crate::study::{Study, Trial, TrialState};

/// A parameter's random stream purpose: a hash of its name (FNV-1a), never 0 (the joint sample).
fn purpose_of(name: &str) -> u64 {
    crate::rng::fnv1a(name.as_bytes()) | 1
}

/// The joint sample for a trial's first suggestion: (key, internal value) for the keys every
/// finished trial shares. Empty unless the sampler is multivariate TPE past its start-up trials.
pub(crate) fn sample_relative(study: &Study, number: u64) -> Vec<(u32, f64)> {
    let SamplerConfig::Tpe(options) = study.sampler() else { return Vec::new() };
    if !options.multivariate || study.n_finished() < options.n_startup_trials {
        return Vec::new();
    }
    let space = study.joint_space();
    if space.is_empty() {
        return Vec::new();
    }
    let dims: Vec<Dim> = space.iter().map(|&id| Dim::exact(study, id)).collect();
    let mut rng = study.rng(number, 0);
    let values = tpe_sample(study, options, number, &dims, &mut rng);
    space.into_iter().zip(values).collect()
}

/// One parameter's value when the joint sample does not cover it.
pub(crate) fn sample_independent(
    study: &Study,
    number: u64,
    name: &str,
    dist: &Distribution,
) -> f64 {
    let mut rng = study.rng(number, purpose_of(name));
    match study.sampler() {
        SamplerConfig::Random => random_value(&mut rng, dist),
        SamplerConfig::Grid { values } => grid_value(study, number, name, dist, values, &mut rng),
        SamplerConfig::Tpe(options) => {
            if study.n_finished() < options.n_startup_trials {
                return random_value(&mut rng, dist);
            }
            let dim = Dim::named(study, name, dist);
            tpe_sample(study, options, number, &[dim], &mut rng)[0]
        }
    }
}

/// A uniform draw (Optuna's RandomSampler): uniform in transformed space, snapped to the grid.
pub(crate) fn random_value(rng: &mut Rng, dist: &Distribution) -> f64 {
    match *dist {
        Distribution::Float { low, high, step: None, log: false } => {
            rng.uniform(low, high).min(high.next_down()).max(low)
        }
        Distribution::Float { low, high, step: None, log: true } => {
            rng.uniform(low.ln(), high.ln()).exp().clamp(low, high.next_down().max(low))
        }
        Distribution::Float { low, high, step: Some(s), .. } => {
            let x = rng.uniform(low - s / 2.0, high + s / 2.0);
            (low + ((x - low) / s).round_ties_even() * s).clamp(low, high)
        }
        Distribution::Int { low, high, step, log: false } => {
            let (low, high, step) = (low as f64, high as f64, step as f64);
            let x = rng.uniform(low - step / 2.0, high + step / 2.0);
            (low + ((x - low) / step + 0.5).floor() * step).clamp(low, high)
        }
        Distribution::Int { low, high, log: true, .. } => {
            let (low, high) = (low as f64, high as f64);
            let x = rng.uniform((low - 0.5).ln(), (high + 0.5).ln());
            x.exp().round_ties_even().clamp(low, high)
        }
        Distribution::Categorical { ref choices } => rng.below(choices.len()) as f64,
    }
}

/// The grid sampler: trial n takes the n-th combination of a seeded shuffle of the grid; once
/// every combination has been started, a random one not yet finished.
fn grid_value(
    study: &Study,
    number: u64,
    name: &str,
    dist: &Distribution,
    values: &std::collections::BTreeMap<String, Vec<Value>>,
    rng: &mut Rng,
) -> f64 {
    let Some(list) = values.get(name) else {
        // Not in the grid: a uniform draw keeps the study going (the CLI refuses such files).
        return random_value(rng, dist);
    };
    let grid_id = grid_id(study, number, values);
    // Mixed-radix decode, names in sorted order (the BTreeMap's).
    let mut rest = grid_id;
    let mut index = 0;
    for (n, l) in values.iter().rev() {
        index = rest % l.len();
        rest /= l.len();
        if n == name {
            break;
        }
    }
    dist.to_internal(&list[index]).unwrap_or_else(|_| random_value(rng, dist))
}

/// The number of combinations in a grid.
pub fn grid_size(values: &std::collections::BTreeMap<String, Vec<Value>>) -> usize {
    values.values().map(Vec::len).fold(1usize, |acc, n| acc.saturating_mul(n))
}

fn grid_id(
    study: &Study,
    number: u64,
    values: &std::collections::BTreeMap<String, Vec<Value>>,
) -> usize {
    let size = grid_size(values).min(10_000_000);
    // The shuffled order: a seeded permutation of the indices, made once per study in memory.
    // (u32: the grid is capped at 10 million combinations; the same swaps as on any index type.)
    let order = study.grid_order(size, || {
        let mut order: Vec<u32> = (0..size as u32).collect();
        Rng::new(study.config.seed).shuffle(&mut order);
        order
    });
    if (number as usize) < size {
        return order[number as usize] as usize;
    }
    // Past the grid: any combination not yet finished (not complete, pruned or failed) and not
    // running in another trial; else any not finished; else any.
    let mut started = vec![false; size];
    let mut finished = vec![false; size];
    for t in study.trials().iter().filter(|t| t.number != number && (t.number as usize) < size) {
        let id = order[t.number as usize] as usize;
        started[id] = true;
        finished[id] = t.state != TrialState::Running;
    }
    let mut rng = study.rng(number, 1);
    let unstarted: Vec<usize> = (0..size).filter(|&i| !started[i]).collect();
    if !unstarted.is_empty() {
        return unstarted[rng.below(unstarted.len())];
    }
    let unfinished: Vec<usize> = (0..size).filter(|&i| !finished[i]).collect();
    if !unfinished.is_empty() {
        return unfinished[rng.below(unfinished.len())];
    }
    rng.below(size)
}

/// One dimension of a TPE sample: which key(s) of the history feed it.
struct Dim<'a> {
    dist: &'a Distribution,
    /// The key whose values are taken as they are.
    exact: Option<u32>,
    /// Other keys of the same name (the range changed): values converted, or the trial skipped.
    others: Vec<u32>,
}

impl<'a> Dim<'a> {
    fn exact(study: &'a Study, id: u32) -> Dim<'a> {
        Dim { dist: &study.key(id).dist, exact: Some(id), others: Vec::new() }
    }

    fn named(study: &'a Study, name: &str, dist: &'a Distribution) -> Dim<'a> {
        let ids = study.ids_named(name);
        let exact = ids.iter().copied().find(|&id| study.key(id).dist == *dist);
        let others = ids.iter().copied().filter(|&id| Some(id) != exact).collect();
        Dim { dist, exact, others }
    }

    /// The trial's value for this dimension, if it has one that fits.
    fn value(&self, study: &Study, trial: &Trial) -> Option<f64> {
        if let Some(exact) = self.exact
            && let Some(v) = study.column_value(exact, trial.number)
        {
            return Some(v);
        }
        self.converted(study, &trial.params)
    }

    /// The value from a key of the same name but another range, converted, or from `params`.
    fn converted(&self, study: &Study, params: &[(u32, f64)]) -> Option<f64> {
        if let Some(exact) = self.exact
            && let Some(&(_, v)) = params.iter().find(|&&(id, _)| id == exact)
        {
            return Some(v);
        }
        if self.others.is_empty() {
            return None;
        }
        let &(id, v) = params.iter().find(|(id, _)| self.others.contains(id))?;
        let external = study.key(id).dist.to_external(v);
        self.dist.to_internal(&external).ok()
    }
}

/// The sort key of a pruned trial among pruned trials: further is better, then a better last
/// value; none reported ranks last.
fn pruned_key(study: &Study, t: &Trial) -> (i64, f64) {
    match t.intermediate.last() {
        None => (1, 0.0),
        Some(&(step, v)) => (-step, if v.is_nan() { f64::INFINITY } else { study.loss(v) }),
    }
}

/// TPE over `dims`: split the history into good (below) and bad (above), fit a Parzen
/// estimator to each, draw candidates from the good one and keep the one with the best ratio.
fn tpe_sample(
    study: &Study,
    options: &TpeOptions,
    number: u64,
    dims: &[Dim],
    rng: &mut Rng,
) -> Vec<f64> {
    if study.config.is_multi_objective() {
        // Optuna 5's γ for several objectives: a tenth of the trials, uncapped (a front keeps
        // growing, and the good set must cover it).
        return tpe_sample_multi(
            study,
            options,
            number,
            dims,
            rng,
            study.n_finished().div_ceil(10),
        );
    }
    let trials = study.trials();
    let n_below = default_gamma(study.n_finished());
    let mut complete: Vec<(f64, u64)> = Vec::with_capacity(study.n_complete());
    let mut pruned: Vec<&Trial> = Vec::new();
    let mut running: Vec<&Trial> = Vec::new();
    for t in trials {
        match t.state {
            TrialState::Complete => {
                complete.push((study.loss(t.value().unwrap_or(f64::NAN)), t.number))
            }
            TrialState::Pruned => pruned.push(t),
            TrialState::Running if options.constant_liar && t.number != number => running.push(t),
            _ => {}
        }
    }
    if options.believer && !options.constant_liar {
        believe(study, number, dims, &mut complete);
    }
    // The n_below best complete trials (ties to the earlier trial), then the furthest pruned.
    let by_loss = |a: &(f64, u64), b: &(f64, u64)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    let take = n_below.min(complete.len());
    if take > 0 && take < complete.len() {
        complete.select_nth_unstable_by(take - 1, by_loss);
    }
    let mut below: Vec<u64> = complete[..take].iter().map(|&(_, n)| n).collect();
    let mut above: Vec<u64> = complete[take..].iter().map(|&(_, n)| n).collect();
    let quota = n_below - take;
    if quota > 0 {
        pruned.sort_by(|a, b| {
            let (ka, kb) = (pruned_key(study, a), pruned_key(study, b));
            ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then(a.number.cmp(&b.number))
        });
    }
    let quota = quota.min(pruned.len());
    below.extend(pruned[..quota].iter().map(|t| t.number));
    above.extend(pruned[quota..].iter().map(|t| t.number));
    above.extend(running.iter().map(|t| t.number));
    below.sort_unstable();
    above.sort_unstable();

    tpe_choose(study, options, dims, rng, &below, None, &above)
}

/// The most complete trials the believer's Gaussian process is fitted to: the best half of them
/// and the newest rest (its cost grows with the cube of their number).
const BELIEVER_POINTS: usize = 128;

/// The most complete trials its kernel is searched on (chosen alike): a search fits the process
/// some hundred times.
const BELIEVER_SEARCH_POINTS: usize = 64;

/// How many complete trials the believer's kernel is searched on, for `n` complete: the start of
/// the stretch of the history `n` falls in (every 5 trials up to 50, then every tenth more), so
/// that the search runs once per stretch.
fn stretch_start(n: usize) -> usize {
    if n < 50 {
        return (n / 5 * 5).max(n.min(2));
    }
    let mut start = 50.0f64;
    while (start * 1.1).floor() as usize <= n {
        start *= 1.1;
    }
    start.floor() as usize
}

/// Normal scores of `scores`' ranks (ties to the earlier), in their order.
fn rank_scores(scores: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    let n = scores.len() as f64;
    let mut out = vec![0.0; scores.len()];
    for (rank, i) in order.into_iter().enumerate() {
        out[i] = crate::truncnorm::ndtri((rank as f64 + 0.5) / n);
    }
    out
}

/// At most `cap` of `points` (score, number, input): the best half by score, then the highest
/// numbers.
fn capped(mut points: Vec<(f64, u64, Vec<f64>)>, cap: usize) -> Vec<(f64, u64, Vec<f64>)> {
    if points.len() <= cap {
        return points;
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut rest = points.split_off(cap / 2);
    rest.sort_by_key(|&(_, num, _)| std::cmp::Reverse(num));
    rest.truncate(cap - points.len());
    points.extend(rest);
    points
}

/// Kriging believer: a Gaussian process fitted to the complete trials predicts each running trial
/// (but `number`), which then joins `complete` with its prediction, to be split into good and bad
/// as if it had ended. Scores are normal scores of the ranks: `complete`'s losses are replaced by
/// theirs (the order kept), so one outlier cannot flatten the fit. The good set's size stays
/// γ(finished trials): a running trial predicted good takes the place of a complete one.
fn believe(study: &Study, number: u64, dims: &[Dim], complete: &mut Vec<(f64, u64)>) {
    let trials = study.trials();
    // A trial's inputs, from its own params; a running trial's also from the joint sample it has
    // not used yet.
    let unit = |t: &Trial| -> Option<Vec<f64>> {
        dims.iter()
            .map(|d| {
                let joint = || {
                    let relative = t.relative.as_deref().filter(|_| t.state == TrialState::Running);
                    relative.and_then(|rel| d.converted(study, rel))
                };
                d.value(study, t).or_else(joint).map(|v| d.dist.to_unit(v))
            })
            .collect()
    };
    let running: Vec<(u64, Vec<f64>)> = trials
        .iter()
        .filter(|t| t.state == TrialState::Running && t.number != number)
        .filter_map(|t| unit(t).map(|x| (t.number, x)))
        .collect();
    if running.is_empty() || complete.len() < 2 {
        return;
    }
    let n = complete.len() as f64;
    complete.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (rank, c) in complete.iter_mut().enumerate() {
        c.0 = crate::truncnorm::ndtri((rank as f64 + 0.5) / n);
    }
    let mut usable: Vec<(f64, u64, Vec<f64>)> = complete
        .iter()
        .filter_map(|&(z, num)| unit(&trials[num as usize]).map(|x| (z, num, x)))
        .collect();
    let categorical: Vec<bool> =
        dims.iter().map(|d| matches!(d.dist, Distribution::Categorical { .. })).collect();
    // The kernel is searched for on a part of the history the history itself fixes — the first
    // complete trials by number, as many as the stretch's start — so that every process with
    // the same history finds the same kernel; it is kept in memory while that part stays the
    // same (one search per stretch; a fit with it costs one factorisation).
    usable.sort_by_key(|&(_, num, _)| num);
    let base = capped(usable[..stretch_start(usable.len())].to_vec(), BELIEVER_SEARCH_POINTS);
    let mut base_numbers: Vec<u64> = base.iter().map(|&(_, num, _)| num).collect();
    base_numbers.sort_unstable();
    let mut key: Vec<u32> = Vec::new();
    for d in dims {
        key.push(d.exact.unwrap_or(u32::MAX));
        key.push(d.others.len() as u32);
        key.extend(&d.others);
    }
    let kernel = study.believer_kernel(key, base_numbers, || {
        let scores: Vec<f64> = base.iter().map(|&(z, _, _)| z).collect();
        let points: Vec<Vec<f64>> = base.iter().map(|(_, _, x)| x.clone()).collect();
        crate::gp::Kernel::search(&points, &rank_scores(&scores), &categorical)
    });
    let Some(kernel) = kernel.as_ref() else { return };
    let (targets, points): (Vec<f64>, Vec<Vec<f64>>) =
        capped(usable, BELIEVER_POINTS).into_iter().map(|(z, _, x)| (z, x)).unzip();
    let Some(gp) = crate::gp::Gp::fit(&points, &targets, &categorical, kernel) else { return };
    complete.extend(running.iter().map(|(num, x)| (gp.predict(x), *num)));
}

/// Multi-objective TPE's split, as Optuna's: whole fronts of the complete trials (by
/// non-dominated sorting) while they fit in the good set, the rest of it chosen from the next
/// front by greedy hypervolume subset selection. The good trials are weighted by the hypervolume
/// each alone adds (Optuna 3's MOTPE; Optuna 5 weighs them alike, and over the benchmark's seeds
/// the two are indistinguishable). Running trials (constant liar) count as bad; trials are never
/// pruned.
fn tpe_sample_multi(
    study: &Study,
    options: &TpeOptions,
    number: u64,
    dims: &[Dim],
    rng: &mut Rng,
    n_below: usize,
) -> Vec<f64> {
    let split = study.multi_split(n_below, || split_multi(study, n_below));
    let mut above: Vec<u64> = split.above.clone();
    if options.constant_liar {
        above.extend(
            study
                .trials()
                .iter()
                .filter(|t| t.state == TrialState::Running && t.number != number)
                .map(|t| t.number),
        );
        above.sort_unstable();
    }
    tpe_choose(study, options, dims, rng, &split.below, Some(&split.weights), &above)
}

/// The complete trials split into good (with their weights) and bad, for several objectives.
#[derive(Debug)]
pub(crate) struct MultiSplit {
    below: Vec<u64>,
    weights: Vec<f64>,
    above: Vec<u64>,
}

fn split_multi(study: &Study, n_below: usize) -> MultiSplit {
    use crate::pareto;
    let complete: Vec<u64> = study
        .trials()
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .map(|t| t.number)
        .collect();
    let losses: Vec<Vec<f64>> =
        complete.iter().map(|&n| study.losses(&study.trials()[n as usize])).collect();
    let rank = pareto::ranks(&losses, n_below);
    let mut below_idx: Vec<usize> = Vec::with_capacity(n_below);
    for r in 0.. {
        let layer: Vec<usize> = (0..complete.len()).filter(|&i| rank[i] == r).collect();
        if layer.is_empty() || below_idx.len() >= n_below {
            break;
        }
        if below_idx.len() + layer.len() <= n_below {
            below_idx.extend(layer);
            continue;
        }
        let points: Vec<&[f64]> = layer.iter().map(|&i| losses[i].as_slice()).collect();
        let reference = pareto::reference_point(&points);
        let chosen = pareto::select_by_hypervolume(&points, n_below - below_idx.len(), &reference);
        below_idx.extend(chosen.into_iter().map(|j| layer[j]));
        break;
    }
    below_idx.sort_unstable();
    let weights: Vec<f64> = if below_idx.len() <= 1 {
        vec![1.0; below_idx.len()]
    } else {
        let points: Vec<&[f64]> = below_idx.iter().map(|&i| losses[i].as_slice()).collect();
        let reference = pareto::reference_point(&points);
        let shares = pareto::contributions(&points, &reference);
        let top = shares.iter().copied().fold(0.0, f64::max).max(pareto::EPS);
        shares.iter().map(|c| (c / top).max(pareto::EPS)).collect()
    };
    let mut is_below = vec![false; complete.len()];
    for &i in &below_idx {
        is_below[i] = true;
    }
    let above = (0..complete.len()).filter(|&i| !is_below[i]).map(|i| complete[i]).collect();
    let below = below_idx.iter().map(|&i| complete[i]).collect();
    MultiSplit { below, weights, above }
}

/// Fits the good and bad estimators (`below` optionally weighted, one weight per trial) and
/// returns the candidate from the good one with the best ratio.
fn tpe_choose(
    study: &Study,
    options: &TpeOptions,
    dims: &[Dim],
    rng: &mut Rng,
    below: &[u64],
    below_weights: Option<&[f64]>,
    above: &[u64],
) -> Vec<f64> {
    let trials = study.trials();
    // Each trial's values in `dims`, as columns, and the weights of the trials kept (a trial
    // without a value for every dimension is left out).
    let columns = |numbers: &[u64], weights: Option<&[f64]>| -> (Vec<Vec<f64>>, Vec<f64>) {
        let mut kept_weights = Vec::new();
        let mut columns: Vec<Vec<f64>> =
            (0..dims.len()).map(|_| crate::parzen::spare(numbers.len())).collect();
        let mut row = Vec::with_capacity(dims.len());
        // The study's own columns for dimensions that take their key's values as they are.
        let exact: Option<Vec<&[f64]>> = dims
            .iter()
            .map(|d| d.exact.filter(|_| d.others.is_empty()).map(|id| study.column(id)))
            .collect();
        for (at, &n) in numbers.iter().enumerate() {
            if let Some(exact) = &exact {
                let i = n as usize;
                if exact.iter().all(|c| c.get(i).is_some_and(|v| !v.is_nan())) {
                    for (column, c) in columns.iter_mut().zip(exact) {
                        column.push(c[i]);
                    }
                    if let Some(w) = weights {
                        kept_weights.push(w[at]);
                    }
                    continue;
                }
            }
            let t = &trials[n as usize];
            row.clear();
            for dim in dims {
                let v = dim.value(study, t).or_else(|| {
                    // A running trial also lies with the joint sample it has not used yet.
                    t.relative.as_deref().and_then(|rel| dim.converted(study, rel))
                });
                match v {
                    Some(v) => row.push(v),
                    None => break,
                }
            }
            if row.len() == dims.len() {
                for (column, &v) in columns.iter_mut().zip(&row) {
                    column.push(v);
                }
                if let Some(w) = weights {
                    kept_weights.push(w[at]);
                }
            }
        }
        (columns, kept_weights)
    };
    let space: Vec<&Distribution> = dims.iter().map(|d| d.dist).collect();
    let fit = |numbers: &[u64], weights: Option<&[f64]>, clip: f64| {
        let (columns, kept_weights) = columns(numbers, weights);
        let weights = weights.map(|_| kept_weights.as_slice());
        let parzen = Parzen::weighted(&space, &columns, weights, options.prior_weight, clip);
        columns.into_iter().for_each(crate::parzen::recycle);
        parzen
    };
    let good = fit(below, below_weights, options.good_clip);
    let bad = fit(above, None, 1.0);
    let candidates = good.sample(rng, options.n_ei_candidates);
    let best = bad.best_ratio(&good.log_pdf(&candidates), &candidates);
    candidates.into_iter().nth(best).expect("at least one candidate")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Direction, PrunerConfig, StudyConfig};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn study(sampler: SamplerConfig, seed: u64) -> Study {
        Study::new(StudyConfig {
            name: "s".into(),
            directions: vec![Direction::Minimize],
            sampler,
            pruner: PrunerConfig::None,
            seed,
        })
    }

    #[test]
    fn random_draws_cover_each_distribution_uniformly_on_its_grid() {
        let mut rng = Rng::new(3);
        let cases = [
            Distribution::float(-1.0, 1.0, None, false).unwrap(),
            Distribution::float(1e-4, 1.0, None, true).unwrap(),
            Distribution::float(0.0, 1.0, Some(0.25), false).unwrap(),
            Distribution::int(1, 6, 1, false).unwrap(),
            Distribution::int(1, 1000, 1, true).unwrap(),
            Distribution::categorical(vec![json!(1), json!("b"), json!(true)]).unwrap(),
        ];
        for dist in &cases {
            let xs: Vec<f64> = (0..6000).map(|_| random_value(&mut rng, dist)).collect();
            assert!(xs.iter().all(|&x| dist.contains(x)), "{dist:?}");
            if let Some(values) = dist.grid_values(10) {
                let expected = 1.0 / values.len() as f64;
                for v in values {
                    let share = xs.iter().filter(|&&x| x == v).count() as f64 / 6000.0;
                    assert!((share - expected).abs() < 0.25 * expected, "{dist:?} {v} {share}");
                }
            }
        }
        // ln-uniform: a tenth of the draws per decade of [1e-4, 1].
        let log = &cases[1];
        let below =
            (0..8000).filter(|_| random_value(&mut rng, log) < 1e-3).count() as f64 / 8000.0;
        assert!((below - 0.25).abs() < 0.03, "{below}");
    }

    #[test]
    fn a_grid_study_visits_every_combination_once_in_a_seeded_order() {
        let values = BTreeMap::from([
            ("a".to_string(), vec![json!(1), json!(2), json!(3)]),
            ("b".to_string(), vec![json!("x"), json!("y")]),
        ]);
        let a = Distribution::int(1, 3, 1, false).unwrap();
        let b = Distribution::categorical(vec![json!("x"), json!("y")]).unwrap();
        let run = |seed| {
            let mut s = study(SamplerConfig::Grid { values: values.clone() }, seed);
            let mut seen = Vec::new();
            for _ in 0..6 {
                let n = s.ask(BTreeMap::new());
                let pa = s.suggest(n, "a", &a).unwrap();
                let pb = s.suggest(n, "b", &b).unwrap();
                s.tell(n, TrialState::Complete, &[1.0]).unwrap();
                seen.push(format!("{pa}{pb}"));
            }
            seen
        };
        let first = run(1);
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, ["1\"x\"", "1\"y\"", "2\"x\"", "2\"y\"", "3\"x\"", "3\"y\""]);
        assert_eq!(first, run(1));
        assert_ne!(first, run(2));
    }

    /// Runs TPE on a function of a few dimensions and returns the best value.
    fn minimise(seed: u64, options: TpeOptions, trials: usize) -> f64 {
        let mut s = study(SamplerConfig::Tpe(options), seed);
        let x = Distribution::float(-10.0, 10.0, None, false).unwrap();
        let k = Distribution::int(-10, 10, 1, false).unwrap();
        let c = Distribution::categorical(vec![json!("a"), json!("b"), json!("c")]).unwrap();
        for _ in 0..trials {
            let n = s.ask(BTreeMap::new());
            let vx = s.suggest_internal(n, "x", &x).unwrap();
            let vk = s.suggest_internal(n, "k", &k).unwrap();
            let vc = s.suggest_internal(n, "c", &c).unwrap();
            let f = (vx - 2.0).powi(2) + (vk + 5.0).powi(2) + if vc == 1.0 { 0.0 } else { 3.0 };
            s.tell(n, TrialState::Complete, &[f]).unwrap();
        }
        s.best_trial().unwrap().value().unwrap()
    }

    /// (value, number) of the study's complete trials, as `believe` takes them.
    fn complete_of(s: &Study) -> Vec<(f64, u64)> {
        s.trials()
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .map(|t| (t.value().unwrap(), t.number))
            .collect()
    }

    #[test]
    fn the_believer_counts_a_running_trial_good_or_bad_by_where_it_lies() {
        // 40 complete trials of a bowl over a float and a log float, placed at random.
        let mut s = study(SamplerConfig::Random, 4);
        let x = Distribution::float(-10.0, 10.0, None, false).unwrap();
        let y = Distribution::float(1e-3, 1e3, None, true).unwrap();
        let bowl = |vx: f64, vy: f64| (vx - 2.0).powi(2) + 10.0 * (vy.log10() - 1.0).powi(2);
        let place = |s: &mut Study, fixed: BTreeMap<String, Value>| {
            let n = s.ask(fixed);
            let vx = s.suggest_internal(n, "x", &x).unwrap();
            let vy = s.suggest_internal(n, "y", &y).unwrap();
            (n, bowl(vx, vy))
        };
        for _ in 0..40 {
            let (n, value) = place(&mut s, BTreeMap::new());
            s.tell(n, TrialState::Complete, &[value]).unwrap();
        }
        // Running: one at the bowl's bottom, one at a far corner, and the trial asking.
        let at =
            |vx: f64, vy: f64| BTreeMap::from([("x".into(), json!(vx)), ("y".into(), json!(vy))]);
        let (bottom, _) = place(&mut s, at(2.0, 10.0));
        let (corner, _) = place(&mut s, at(-9.5, 0.002));
        let asking = s.ask(BTreeMap::new());
        let dims = [Dim::named(&s, "x", &x), Dim::named(&s, "y", &y)];
        let mut complete = complete_of(&s);
        let by_value: Vec<u64> = {
            let mut c = complete.clone();
            c.sort_by(|a, b| a.0.total_cmp(&b.0));
            c.into_iter().map(|(_, n)| n).collect()
        };
        believe(&s, asking, &dims, &mut complete);
        assert_eq!(complete.len(), 42, "the asking trial is left out");
        complete.sort_by(|a, b| a.0.total_cmp(&b.0));
        let order: Vec<u64> = complete.iter().map(|&(_, n)| n).collect();
        let rank = |n: u64| order.iter().position(|&m| m == n).unwrap();
        // The complete trials keep their order; the bottom is among the good (γ(40) = 4), the
        // corner among the worst tenth.
        let kept: Vec<u64> =
            order.iter().copied().filter(|&n| n != bottom && n != corner).collect();
        assert_eq!(kept, by_value);
        assert!(rank(bottom) < default_gamma(40), "bottom ranks {}", rank(bottom));
        assert!(rank(corner) >= 38, "corner ranks {}", rank(corner));
    }

    #[test]
    fn a_process_that_kept_the_study_believes_what_a_fresh_one_does() {
        // Four trials in flight; after each tell, the believer's predictions from the study as
        // kept (its kernels searched at earlier asks) equal those of a fresh copy (none kept).
        let mut s = study(SamplerConfig::Tpe(TpeOptions::default()), 6);
        let x = Distribution::float(-5.0, 5.0, None, false).unwrap();
        let y = Distribution::float(1e-3, 1.0, None, true).unwrap();
        let c = Distribution::categorical(vec![json!("a"), json!("b"), json!("c")]).unwrap();
        let mut running = std::collections::VecDeque::new();
        let mut checked = 0;
        for _ in 0..70 {
            while running.len() < 4 {
                let n = s.ask(BTreeMap::new());
                let vx = s.suggest_internal(n, "x", &x).unwrap();
                let vy = s.suggest_internal(n, "y", &y).unwrap();
                let vc = s.suggest_internal(n, "c", &c).unwrap();
                running.push_back((n, (vx - 1.0).powi(2) + (vy.log10() + 2.0).powi(2) + vc));
            }
            let (n, value) = running.pop_front().unwrap();
            s.tell(n, TrialState::Complete, &[value]).unwrap();
            let believed = |st: &Study| {
                let dims =
                    [Dim::named(st, "x", &x), Dim::named(st, "y", &y), Dim::named(st, "c", &c)];
                let mut complete = complete_of(st);
                believe(st, u64::MAX, &dims, &mut complete);
                complete
            };
            let kept = believed(&s);
            assert_eq!(kept, believed(&s.clone()), "after trial {n}");
            checked += usize::from(kept.len() > s.n_complete());
        }
        assert!(checked > 40, "{checked}");
    }

    #[test]
    fn the_believer_changes_nothing_when_no_other_trial_runs() {
        let with = TpeOptions::default();
        assert!(with.believer);
        let without = TpeOptions { believer: false, ..with.clone() };
        for seed in 0..3 {
            assert_eq!(minimise(seed, with.clone(), 40), minimise(seed, without.clone(), 40));
        }
    }

    #[test]
    fn tpe_beats_random_search_and_is_reproducible_from_its_seed() {
        let tpe: Vec<f64> = (0..8).map(|seed| minimise(seed, TpeOptions::default(), 80)).collect();
        let univariate = TpeOptions { multivariate: false, ..TpeOptions::default() };
        let uni: Vec<f64> = (0..8).map(|seed| minimise(seed, univariate.clone(), 80)).collect();
        let random = TpeOptions { n_startup_trials: 1000, ..TpeOptions::default() };
        let rnd: Vec<f64> = (0..8).map(|seed| minimise(seed, random.clone(), 80)).collect();
        let median = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            (v[3] + v[4]) / 2.0
        };
        assert!(median(&tpe) < median(&rnd) / 2.0, "tpe {tpe:?} random {rnd:?}");
        assert!(median(&uni) < median(&rnd), "univariate {uni:?} random {rnd:?}");
        assert_eq!(minimise(5, TpeOptions::default(), 80), tpe[5]);
    }

    /// Runs a sampler on ZDT1 (two objectives, four dimensions) and returns the hypervolume of
    /// the front it found, reference point (1.1, 11).
    fn zdt1_hypervolume(seed: u64, options: TpeOptions, trials: usize) -> f64 {
        let mut s = study(SamplerConfig::Tpe(options), seed);
        s.config.directions = vec![Direction::Minimize; 2];
        let x = Distribution::float(0.0, 1.0, None, false).unwrap();
        for _ in 0..trials {
            let n = s.ask(BTreeMap::new());
            let xs: Vec<f64> =
                (0..4).map(|i| s.suggest_internal(n, &format!("x{i}"), &x).unwrap()).collect();
            let g = 1.0 + 9.0 * xs[1..].iter().sum::<f64>() / 3.0;
            let f2 = g * (1.0 - (xs[0] / g).sqrt());
            s.tell(n, TrialState::Complete, &[xs[0], f2]).unwrap();
        }
        let front: Vec<Vec<f64>> = s.best_trials().iter().map(|t| t.values.clone()).collect();
        let points: Vec<&[f64]> = front.iter().map(Vec::as_slice).collect();
        crate::pareto::hypervolume(&points, &[1.1, 11.0])
    }

    #[test]
    fn multi_objective_tpe_finds_a_better_front_than_random_search() {
        let median = |f: &dyn Fn(u64) -> f64| {
            let mut v: Vec<f64> = (0..9).map(f).collect();
            v.sort_by(f64::total_cmp);
            v[4]
        };
        let tpe = median(&|seed| zdt1_hypervolume(seed, TpeOptions::default(), 80));
        let random = TpeOptions { n_startup_trials: 1000, ..TpeOptions::default() };
        let rnd = median(&|seed| zdt1_hypervolume(seed, random.clone(), 80));
        assert!(tpe > rnd, "hypervolume: tpe {tpe} random {rnd}");
        assert_eq!(zdt1_hypervolume(3, TpeOptions::default(), 40), {
            zdt1_hypervolume(3, TpeOptions::default(), 40)
        });
    }
}
