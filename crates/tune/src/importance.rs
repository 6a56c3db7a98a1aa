//! Parameter importance: how much of the objective's variation each parameter explains alone.
//!
//! The method: rank the complete trials' objective values; for each parameter, group the trials
//! that have it into bins (each choice of a categorical; up to ten quantile bins of a numeric one,
//! on a log scale for log ranges) and take ε², the share of the ranks' variance between bins with
//! the bias of chance removed (one-way ANOVA's epsilon squared). That is a first-order variance
//! decomposition, like fANOVA's main effects, without fitting a forest; ranks make it blind to
//! the objective's scale. Importances are normalised to sum to 1.

use serde::Serialize;

use crate::space::Distribution;
use crate::study::{Study, TrialState};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Importance {
    pub param: String,
    /// Share of the total (sums to 1 over the parameters, or all 0).
    pub importance: f64,
    /// ε² itself, before normalising.
    pub epsilon_squared: f64,
    /// Complete trials that had the parameter.
    pub trials: usize,
}

/// Ranks (1-based, ties averaged).
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut out = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = rank;
        }
        i = j + 1;
    }
    out
}

/// ε² of `y` grouped by `groups`.
fn epsilon_squared(y: &[f64], groups: &[usize], k: usize) -> f64 {
    let n = y.len();
    if n < 3 || k < 2 || n <= k {
        return 0.0;
    }
    let mean = y.iter().sum::<f64>() / n as f64;
    let (mut sums, mut counts) = (vec![0.0; k], vec![0usize; k]);
    for (&v, &g) in y.iter().zip(groups) {
        sums[g] += v;
        counts[g] += 1;
    }
    let sst: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    if sst == 0.0 {
        return 0.0;
    }
    let ssb: f64 = (0..k)
        .filter(|&g| counts[g] > 0)
        .map(|g| counts[g] as f64 * (sums[g] / counts[g] as f64 - mean).powi(2))
        .sum();
    let used = counts.iter().filter(|&&c| c > 0).count();
    if used < 2 {
        return 0.0;
    }
    let msw = (sst - ssb) / (n - used) as f64;
    ((ssb - (used - 1) as f64 * msw) / sst).max(0.0)
}

/// Each parameter's importance for objective `objective` (0 for a single-objective study) over
/// the study's complete trials, most important first.
pub fn importance(study: &Study, objective: usize) -> Vec<Importance> {
    let complete: Vec<_> =
        study.trials().iter().filter(|t| t.state == TrialState::Complete).collect();
    let mut names: Vec<String> = Vec::new();
    for t in &complete {
        for &(id, _) in &t.params {
            let name = &study.key(id).name;
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    let mut out: Vec<Importance> = names
        .into_iter()
        .map(|name| {
            // (internal value on the kernel's scale, objective) for the trials that have it; a
            // categorical's value is its choice, compared as the user sees it.
            let mut xs: Vec<f64> = Vec::new();
            let mut labels: Vec<String> = Vec::new();
            let mut ys: Vec<f64> = Vec::new();
            let mut categorical = false;
            for t in &complete {
                let Some(&(id, v)) = t.params.iter().find(|&&(id, _)| study.key(id).name == name)
                else {
                    continue;
                };
                let dist = &study.key(id).dist;
                match dist {
                    Distribution::Categorical { .. } => {
                        categorical = true;
                        labels.push(dist.to_external(v).to_string());
                    }
                    Distribution::Float { log: true, .. } | Distribution::Int { log: true, .. } => {
                        xs.push(v.ln())
                    }
                    _ => xs.push(v),
                }
                ys.push(t.values.get(objective).copied().unwrap_or(f64::NAN));
            }
            let y = ranks(&ys);
            let (groups, k): (Vec<usize>, usize) = if categorical {
                let mut seen: Vec<&String> = Vec::new();
                let g = labels
                    .iter()
                    .map(|l| match seen.iter().position(|s| *s == l) {
                        Some(i) => i,
                        None => {
                            seen.push(l);
                            seen.len() - 1
                        }
                    })
                    .collect();
                (g, seen.len())
            } else {
                // Quantile bins by rank of x: up to ten, at least five trials each.
                let k = (xs.len() / 5).clamp(2, 10);
                let xr = ranks(&xs);
                let n = xs.len() as f64;
                (
                    (xr.iter()
                        .map(|r| (((r - 1.0) / n) * k as f64).floor() as usize)
                        .map(|g| g.min(k - 1)))
                    .collect(),
                    k,
                )
            };
            Importance {
                param: name,
                importance: 0.0,
                epsilon_squared: epsilon_squared(&y, &groups, k),
                trials: ys.len(),
            }
        })
        .collect();
    let total: f64 = out.iter().map(|i| i.epsilon_squared).sum();
    if total > 0.0 {
        for i in &mut out {
            i.importance = i.epsilon_squared / total;
        }
    }
    out.sort_by(|a, b| b.importance.total_cmp(&a.importance).then(a.param.cmp(&b.param)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Direction, PrunerConfig, SamplerConfig, StudyConfig};
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn the_parameter_that_drives_the_objective_is_the_important_one() {
        let mut s = Study::new(StudyConfig {
            name: "imp".into(),
            directions: vec![Direction::Minimize],
            sampler: SamplerConfig::Random,
            pruner: PrunerConfig::None,
            seed: 4,
        });
        let x = Distribution::float(-1.0, 1.0, None, false).unwrap();
        let noise = Distribution::float(1e-3, 1.0, None, true).unwrap();
        let c = Distribution::categorical(vec![json!("a"), json!("b"), json!("c")]).unwrap();
        for _ in 0..200 {
            let n = s.ask(BTreeMap::new());
            let vx = s.suggest_internal(n, "x", &x).unwrap();
            s.suggest_internal(n, "noise", &noise).unwrap();
            let vc = s.suggest_internal(n, "c", &c).unwrap();
            s.tell(n, TrialState::Complete, &[vx * vx * 10.0 + vc]).unwrap();
        }
        let imp = importance(&s, 0);
        let names: Vec<&str> = imp.iter().map(|i| i.param.as_str()).collect();
        assert_eq!(names, ["x", "c", "noise"], "{imp:?}");
        assert!(imp[0].importance > 0.6 && imp[2].importance < 0.05, "{imp:?}");
        let sum: f64 = imp.iter().map(|i| i.importance).sum();
        assert!((sum - 1.0).abs() < 1e-12);
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }
}
