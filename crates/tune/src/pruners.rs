//! The pruners, deciding from a trial's intermediate values (its logged metric steps) against
//! the other trials at the same step: percentile (median), asynchronous successive halving and
//! Hyperband, as Optuna 5 defines them (`docs/tpe-spec-notes.md` §10).

use crate::config::{Direction, PrunerConfig};
use crate::study::{Study, Trial, TrialState};

pub(crate) fn should_prune(study: &mut Study, number: u64) -> bool {
    match study.config.pruner.clone() {
        PrunerConfig::None => false,
        PrunerConfig::Percentile {
            percentile,
            n_startup_trials,
            n_warmup_steps,
            interval_steps,
            n_min_trials,
        } => percentile_prune(
            study,
            number,
            percentile,
            n_startup_trials,
            n_warmup_steps,
            interval_steps,
            n_min_trials,
        ),
        PrunerConfig::SuccessiveHalving {
            min_resource,
            reduction_factor,
            min_early_stopping_rate,
            bootstrap_count,
        } => {
            let min_resource = match min_resource.or(study.pruner_state.min_resource) {
                Some(m) => m,
                None => {
                    // Estimated once from the first complete trials: a hundredth of their length.
                    let Some(longest) = longest_complete(study) else { return false };
                    let m = (longest / 100).max(1);
                    study.pruner_state.min_resource = Some(m);
                    m
                }
            };
            let sha =
                Sha { min_resource, reduction_factor, min_early_stopping_rate, bootstrap_count };
            sha.prune(study, number, |_| true)
        }
        PrunerConfig::Hyperband {
            min_resource,
            max_resource,
            reduction_factor,
            bootstrap_count,
        } => {
            let max_resource = match max_resource.or(study.pruner_state.max_resource) {
                Some(m) => m,
                None => {
                    let Some(longest) = longest_complete(study) else { return false };
                    study.pruner_state.max_resource = Some(longest + 1);
                    longest + 1
                }
            };
            let brackets = hyperband_budgets(min_resource, max_resource, reduction_factor);
            let bracket_of = |n: u64| bracket(&study.config.name, n, &brackets);
            let mine = bracket_of(number);
            let sha = Sha {
                min_resource,
                reduction_factor,
                min_early_stopping_rate: mine as i64,
                bootstrap_count,
            };
            let name = study.config.name.clone();
            sha.prune(study, number, |n| bracket(&name, n, &brackets) == mine)
        }
    }
}

/// The last reported step of the longest complete trial.
fn longest_complete(study: &Study) -> Option<i64> {
    study
        .trials()
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter_map(Trial::last_step)
        .max()
}

/// numpy's `nanpercentile` with linear interpolation.
fn nan_percentile(values: &mut Vec<f64>, percentile: f64) -> f64 {
    values.retain(|v| !v.is_nan());
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let pos = (values.len() - 1) as f64 * percentile / 100.0;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
}

fn percentile_prune(
    study: &Study,
    number: u64,
    percentile: f64,
    n_startup_trials: usize,
    n_warmup_steps: i64,
    interval_steps: i64,
    n_min_trials: usize,
) -> bool {
    if study.n_complete() < n_startup_trials.max(1) {
        return false;
    }
    let trial = &study.trials()[number as usize];
    let Some(step) = trial.last_step() else { return false };
    if step < n_warmup_steps {
        return false;
    }
    // Decide once per interval: at the first report at or after the latest pruning point.
    let point = (step - n_warmup_steps) / interval_steps * interval_steps + n_warmup_steps;
    let previous =
        trial.intermediate.iter().rev().map(|&(s, _)| s).find(|&s| s != step).unwrap_or(-1);
    if previous >= point {
        return false;
    }
    let maximize = study.config.direction() == Direction::Maximize;
    let values = trial.intermediate.iter().map(|&(_, v)| v).filter(|v| !v.is_nan());
    let best =
        if maximize { values.fold(f64::NAN, f64::max) } else { values.fold(f64::NAN, f64::min) };
    if best.is_nan() {
        return true;
    }
    let mut at_step: Vec<f64> = study
        .trials()
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter_map(|t| t.intermediate_at(step))
        .collect();
    if at_step.len() < n_min_trials {
        return false;
    }
    let pct = if maximize { 100.0 - percentile } else { percentile };
    let p = nan_percentile(&mut at_step, pct);
    if maximize { best < p } else { best > p }
}

struct Sha {
    min_resource: i64,
    reduction_factor: i64,
    min_early_stopping_rate: i64,
    bootstrap_count: usize,
}

impl Sha {
    /// Successive halving, asynchronous: at each rung the trial's latest value must be among the
    /// best 1/η of every value recorded at that rung so far (by trials for which `peer` holds).
    fn prune(&self, study: &mut Study, number: u64, peer: impl Fn(u64) -> bool) -> bool {
        let trial = &study.trials()[number as usize];
        let Some(step) = trial.last_step() else { return false };
        let value = trial.intermediate.last().map(|&(_, v)| v).unwrap_or(f64::NAN);
        let maximize = study.config.direction() == Direction::Maximize;
        let mut rung = trial.rungs.len();
        loop {
            let exponent = self.min_early_stopping_rate + rung as i64;
            let promote_step = self
                .reduction_factor
                .checked_pow(exponent as u32)
                .and_then(|p| p.checked_mul(self.min_resource))
                .unwrap_or(i64::MAX);
            if step < promote_step {
                return false;
            }
            if value.is_nan() {
                return true;
            }
            let mut competing: Vec<f64> = study
                .trials()
                .iter()
                .filter(|t| t.number != number && peer(t.number))
                .filter_map(|t| t.rungs.get(rung).copied())
                .collect();
            competing.push(value);
            study.trial_mut(number).rungs.push(value);
            if competing.len() <= self.bootstrap_count {
                return true;
            }
            let idx = (competing.len() / self.reduction_factor as usize).saturating_sub(1);
            competing.sort_by(f64::total_cmp);
            let promotable = if maximize {
                value >= competing[competing.len() - 1 - idx]
            } else {
                value <= competing[idx]
            };
            if !promotable {
                return true;
            }
            rung += 1;
        }
    }
}

/// Each Hyperband bracket's share of trials: ⌈n·η^s / (s+1)⌉ for s = n−1 … 0.
fn hyperband_budgets(min_resource: i64, max_resource: i64, reduction_factor: i64) -> Vec<u64> {
    let ratio = max_resource as f64 / min_resource as f64;
    let n = (ratio.ln() / (reduction_factor as f64).ln()).floor() as i64 + 1;
    let n = n.max(1);
    (0..n)
        .map(|b| {
            let s = n - 1 - b;
            (n as f64 * (reduction_factor as f64).powi(s as i32) / (s + 1) as f64).ceil() as u64
        })
        .collect()
}

/// A trial's bracket: CRC-32 of "{study}_{number}" modulo the total budget, as Optuna does.
fn bracket(study_name: &str, number: u64, budgets: &[u64]) -> usize {
    let total: u64 = budgets.iter().sum();
    let mut h = (crc32(format!("{study_name}_{number}").as_bytes()) as u64) % total.max(1);
    for (b, &budget) in budgets.iter().enumerate() {
        if h < budget {
            return b;
        }
        h -= budget;
    }
    budgets.len() - 1
}

/// CRC-32 (IEEE, as zlib's).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (!(crc & 1)).wrapping_add(1));
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SamplerConfig, StudyConfig};
    use std::collections::BTreeMap;

    fn study(pruner: PrunerConfig, direction: Direction) -> Study {
        Study::new(StudyConfig {
            name: "s".into(),
            directions: vec![direction],
            sampler: SamplerConfig::Random,
            pruner,
            seed: 1,
        })
    }

    fn complete(s: &mut Study, curve: &[f64]) {
        let n = s.ask(BTreeMap::new());
        for (step, &v) in curve.iter().enumerate() {
            s.report(n, step as i64, v).unwrap();
        }
        s.tell(n, TrialState::Complete, curve.last().copied().as_slice()).unwrap();
    }

    #[test]
    fn crc32_and_hyperband_budgets_match_zlib_and_optuna() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // Min 1, max 81, η 3: five brackets with budgets ⌈5·3^s/(s+1)⌉ for s = 4…0.
        assert_eq!(hyperband_budgets(1, 81, 3), vec![81, 34, 15, 8, 5]);
        assert_eq!(hyperband_budgets(1, 100, 3), vec![81, 34, 15, 8, 5]);
        assert_eq!(hyperband_budgets(1, 2, 3), vec![1]);
    }

    #[test]
    fn the_median_pruner_stops_a_trial_worse_than_the_median_at_its_step() {
        let mut s = study(
            PrunerConfig::from_json(Some(&"median".into()), "p").unwrap(),
            Direction::Minimize,
        );
        for k in 0..5 {
            complete(&mut s, &[10.0 + k as f64, 5.0 + k as f64, 1.0 + k as f64]);
        }
        let n = s.ask(BTreeMap::new());
        s.report(n, 0, 11.0).unwrap();
        assert!(!s.should_prune(n).unwrap(), "11 is not worse than the median 12");
        s.report(n, 1, 9.0).unwrap();
        assert!(s.should_prune(n).unwrap(), "best 9 is worse than the median 7 at step 1");
        // Four complete trials are below the five start-up trials: nothing is pruned.
        let mut few = study(
            PrunerConfig::from_json(Some(&"median".into()), "p").unwrap(),
            Direction::Minimize,
        );
        for _ in 0..4 {
            complete(&mut few, &[1.0, 1.0]);
        }
        let n = few.ask(BTreeMap::new());
        few.report(n, 1, 100.0).unwrap();
        assert!(!few.should_prune(n).unwrap());
        // Maximising: the comparison turns around.
        let mut max = study(
            PrunerConfig::from_json(Some(&"median".into()), "p").unwrap(),
            Direction::Maximize,
        );
        for k in 0..5 {
            complete(&mut max, &[k as f64]);
        }
        let n = max.ask(BTreeMap::new());
        max.report(n, 0, 1.5).unwrap();
        assert!(max.should_prune(n).unwrap());
    }

    #[test]
    fn successive_halving_promotes_the_best_quarter_at_each_rung() {
        let pruner = serde_json::json!({"type": "asha", "min_resource": 1, "reduction_factor": 2});
        let mut s =
            study(PrunerConfig::from_json(Some(&pruner), "p").unwrap(), Direction::Minimize);
        // Rungs at steps 1, 2, 4, 8. The first trial is alone and promoted everywhere.
        let a = s.ask(BTreeMap::new());
        for step in 0..=8 {
            s.report(a, step, 1.0).unwrap();
            assert!(!s.should_prune(a).unwrap());
        }
        assert_eq!(s.trial(a).unwrap().rungs, vec![1.0, 1.0, 1.0, 1.0]);
        // A worse trial: 2 of 2 at rung 0 → idx 0, must be ≤ 1.0; 2.0 is pruned at step 1.
        let b = s.ask(BTreeMap::new());
        s.report(b, 0, 2.0).unwrap();
        assert!(!s.should_prune(b).unwrap(), "step 0 is before the first rung");
        s.report(b, 1, 2.0).unwrap();
        assert!(s.should_prune(b).unwrap());
        // A better one goes on.
        let c = s.ask(BTreeMap::new());
        s.report(c, 1, 0.5).unwrap();
        assert!(!s.should_prune(c).unwrap());
    }
}
