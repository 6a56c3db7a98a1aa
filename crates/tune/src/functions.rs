//! Standard test functions for trying a sampler without an objective of one's own (`slipway
//! tune try`) and for the benchmarks: Branin, Hartmann-6, Rosenbrock-10, a mixed space with a
//! log range, an int and a categorical, and the 6-D sphere (a zero-cost objective for measuring
//! a sampler's own cost). All are minimised; each knows its minimum. Two have several objectives
//! (ZDT1 and DTLZ2), measured by the hypervolume of the front a run finds.

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;

use crate::space::Distribution;
use crate::study::{Study, TrialState};
use crate::{Result, StudyConfig};

/// A test function: its search space (in suggestion order) and its value at internal values.
pub struct Function {
    pub name: &'static str,
    pub about: &'static str,
    pub minimum: f64,
    pub space: Vec<(String, Distribution)>,
    eval: fn(&[f64]) -> f64,
}

impl Function {
    pub fn eval(&self, x: &[f64]) -> f64 {
        (self.eval)(x)
    }
}

/// The names [`function`] knows.
pub const NAMES: &[&str] = &["branin", "hartmann6", "rosenbrock10", "mixed", "sphere6"];

fn floats(prefix: &str, n: usize, low: f64, high: f64) -> Vec<(String, Distribution)> {
    (0..n)
        .map(|i| {
            (format!("{prefix}{i}"), Distribution::Float { low, high, step: None, log: false })
        })
        .collect()
}

pub fn function(name: &str) -> Option<Function> {
    Some(match name {
        "branin" => Function {
            name: "branin",
            about: "Branin, x1 in [-5, 10], x2 in [0, 15]",
            minimum: 0.397_887_357_729_738,
            space: vec![
                (
                    "x1".into(),
                    Distribution::Float { low: -5.0, high: 10.0, step: None, log: false },
                ),
                ("x2".into(), Distribution::Float { low: 0.0, high: 15.0, step: None, log: false }),
            ],
            eval: |x| {
                let (b, c, t) = (5.1 / (4.0 * PI * PI), 5.0 / PI, 1.0 / (8.0 * PI));
                (x[1] - b * x[0] * x[0] + c * x[0] - 6.0).powi(2)
                    + 10.0 * (1.0 - t) * x[0].cos()
                    + 10.0
            },
        },
        "hartmann6" => Function {
            name: "hartmann6",
            about: "Hartmann-6 on [0, 1]^6",
            minimum: -3.322_368_011_415_515,
            space: floats("x", 6, 0.0, 1.0),
            eval: hartmann6,
        },
        "rosenbrock10" => Function {
            name: "rosenbrock10",
            about: "Rosenbrock in 10 dimensions on [-5, 10]^10",
            minimum: 0.0,
            space: floats("x", 10, -5.0, 10.0),
            eval: |x| {
                x.windows(2)
                    .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
                    .sum()
            },
        },
        "mixed" => Function {
            name: "mixed",
            about: "x in [-5, 5], lr in [1e-4, 1] log, k int in [1, 20], c in {a, b, c, d}",
            minimum: 0.0,
            space: vec![
                ("x".into(), Distribution::Float { low: -5.0, high: 5.0, step: None, log: false }),
                ("lr".into(), Distribution::Float { low: 1e-4, high: 1.0, step: None, log: true }),
                ("k".into(), Distribution::Int { low: 1, high: 20, step: 1, log: false }),
                (
                    "c".into(),
                    Distribution::Categorical {
                        choices: vec![json!("a"), json!("b"), json!("c"), json!("d")],
                    },
                ),
            ],
            eval: |v| {
                let (x, lr, k, c) = (v[0], v[1], v[2], v[3] as usize);
                let offset = [0.5, 0.0, 1.0, 2.0][c];
                let coupling = if c == 3 { 0.5 * (x - 1.5).abs() } else { 0.0 };
                (x - 1.5).powi(2)
                    + (lr.log10() + 2.5).powi(2)
                    + 0.1 * (k - 7.0).powi(2)
                    + offset
                    + coupling
            },
        },
        "sphere6" => Function {
            name: "sphere6",
            about: "sum of squares on [-5, 5]^6 (costs nothing: for measuring a sampler)",
            minimum: 0.0,
            space: floats("x", 6, -5.0, 5.0),
            eval: |x| x.iter().map(|v| v * v).sum(),
        },
        _ => return None,
    })
}

fn hartmann6(x: &[f64]) -> f64 {
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [1312.0, 1696.0, 5569.0, 124.0, 8283.0, 5886.0],
        [2329.0, 4135.0, 8307.0, 3736.0, 1004.0, 9991.0],
        [2348.0, 1451.0, 3522.0, 2883.0, 3047.0, 6650.0],
        [4047.0, 8828.0, 8732.0, 5743.0, 1091.0, 381.0],
    ];
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..6).map(|j| A[i][j] * (x[j] - P[i][j] * 1e-4).powi(2)).sum();
            ALPHA[i] * (-inner).exp()
        })
        .sum::<f64>()
}

/// What [`run`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct LocalRun {
    pub function: String,
    pub trials: usize,
    pub seed: u64,
    pub best_value: f64,
    pub best_trial: u64,
    pub best_params: BTreeMap<String, serde_json::Value>,
    /// Best value so far after each trial.
    pub history: Vec<f64>,
    /// Wall time of the whole run (sampling and bookkeeping; the function costs nothing).
    pub seconds: f64,
}

/// Minimises `function` for `trials` trials in this process, calling `progress` after each.
/// With `in_flight` > 1 it plays that many parallel workers (see [`play`]).
pub fn run(
    config: StudyConfig,
    function: &Function,
    trials: usize,
    in_flight: usize,
    mut progress: impl FnMut(usize),
) -> Result<LocalRun> {
    let seed = config.seed;
    let mut study = Study::new(config);
    let mut history = Vec::with_capacity(trials);
    let mut best = f64::INFINITY;
    let started = Instant::now();
    play(
        &mut study,
        &function.space,
        |x| vec![function.eval(x)],
        trials,
        in_flight,
        |values| {
            best = best.min(values[0]);
            history.push(best);
            progress(history.len());
        },
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let best_trial = study.best_trial().expect("at least one trial");
    Ok(LocalRun {
        function: function.name.to_string(),
        trials,
        seed,
        best_value: best_trial.value().unwrap_or(f64::NAN),
        best_trial: best_trial.number,
        best_params: study.params_of(best_trial),
        history,
        seconds,
    })
}

/// Runs `trials` trials of `study` over `space`, each valued by `eval` and told complete,
/// `in_flight` at once: trials are asked ahead and told oldest first, so each is sampled while
/// the others are still running (as constant liar sees them). `told` sees each trial's values.
fn play(
    study: &mut Study,
    space: &[(String, Distribution)],
    eval: impl Fn(&[f64]) -> Vec<f64>,
    trials: usize,
    in_flight: usize,
    mut told: impl FnMut(&[f64]),
) -> Result<()> {
    let mut running: std::collections::VecDeque<(u64, Vec<f64>)> =
        std::collections::VecDeque::new();
    let mut asked = 0;
    for _ in 0..trials {
        while asked < trials && running.len() < in_flight.max(1) {
            let number = study.ask(BTreeMap::new());
            let mut x = Vec::with_capacity(space.len());
            for (name, dist) in space {
                x.push(study.suggest_internal(number, name, dist)?);
            }
            running.push_back((number, eval(&x)));
            asked += 1;
        }
        let (number, values) = running.pop_front().expect("a trial is running");
        study.tell(number, TrialState::Complete, &values)?;
        told(&values);
    }
    Ok(())
}

/// A test function with several objectives, all minimised, and the reference point its
/// hypervolume is measured against.
pub struct MultiFunction {
    pub name: &'static str,
    pub about: &'static str,
    pub space: Vec<(String, Distribution)>,
    pub reference: Vec<f64>,
    /// The hypervolume of the true Pareto front against `reference`: the most any run can reach.
    pub best_hypervolume: f64,
    eval: fn(&[f64]) -> Vec<f64>,
}

impl MultiFunction {
    pub fn eval(&self, x: &[f64]) -> Vec<f64> {
        (self.eval)(x)
    }
}

/// The names [`multi_function`] knows.
pub const MULTI_NAMES: &[&str] = &["zdt1", "dtlz2"];

pub fn multi_function(name: &str) -> Option<MultiFunction> {
    Some(match name {
        // f2 = 1 - sqrt(f1) on the front: 1.1 · 11 less the 1/3 below it.
        "zdt1" => MultiFunction {
            name: "zdt1",
            about: "ZDT1, 6 variables in [0, 1], 2 objectives; reference point (1.1, 11)",
            space: floats("x", 6, 0.0, 1.0),
            reference: vec![1.1, 11.0],
            best_hypervolume: 1.1 * 11.0 - 1.0 / 3.0,
            eval: |x| {
                let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / (x.len() - 1) as f64;
                vec![x[0], g * (1.0 - (x[0] / g).sqrt())]
            },
        },
        // The front is the unit sphere's positive octant: 1.1³ less the octant's volume π/6.
        "dtlz2" => MultiFunction {
            name: "dtlz2",
            about: "DTLZ2, 6 variables in [0, 1], 3 objectives; reference point (1.1, 1.1, 1.1)",
            space: floats("x", 6, 0.0, 1.0),
            reference: vec![1.1; 3],
            best_hypervolume: 1.1f64.powi(3) - PI / 6.0,
            eval: |x| {
                let g: f64 = x[2..].iter().map(|v| (v - 0.5).powi(2)).sum();
                let (a, b) = (x[0] * PI / 2.0, x[1] * PI / 2.0);
                vec![
                    (1.0 + g) * a.cos() * b.cos(),
                    (1.0 + g) * a.cos() * b.sin(),
                    (1.0 + g) * a.sin(),
                ]
            },
        },
        _ => return None,
    })
}

/// A trial of a run's Pareto front.
#[derive(Debug, Clone, Serialize)]
pub struct FrontTrial {
    pub number: u64,
    pub values: Vec<f64>,
    pub params: BTreeMap<String, serde_json::Value>,
}

/// What [`run_multi`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct MultiRun {
    pub function: String,
    pub trials: usize,
    pub seed: u64,
    /// The front's hypervolume against the function's reference point.
    pub hypervolume: f64,
    pub best_hypervolume: f64,
    pub reference: Vec<f64>,
    pub front: Vec<FrontTrial>,
    pub seconds: f64,
}

/// Runs `function` for `trials` trials in this process (as [`run`] does, `in_flight` at once)
/// and measures the hypervolume of the front found.
pub fn run_multi(
    mut config: StudyConfig,
    function: &MultiFunction,
    trials: usize,
    in_flight: usize,
    mut progress: impl FnMut(usize),
) -> Result<MultiRun> {
    let seed = config.seed;
    config.directions = vec![crate::Direction::Minimize; function.reference.len()];
    let mut study = Study::new(config);
    let started = Instant::now();
    let mut done = 0;
    play(
        &mut study,
        &function.space,
        |x| function.eval(x),
        trials,
        in_flight,
        |_| {
            done += 1;
            progress(done);
        },
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let front: Vec<FrontTrial> = study
        .best_trials()
        .into_iter()
        .map(|t| FrontTrial {
            number: t.number,
            values: t.values.clone(),
            params: study.params_of(t),
        })
        .collect();
    let points: Vec<&[f64]> = front.iter().map(|t| t.values.as_slice()).collect();
    Ok(MultiRun {
        function: function.name.to_string(),
        trials,
        seed,
        hypervolume: crate::pareto::hypervolume(&points, &function.reference),
        best_hypervolume: function.best_hypervolume,
        reference: function.reference.clone(),
        front,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpe(seed: u64, options: crate::TpeOptions) -> StudyConfig {
        StudyConfig {
            name: "t".into(),
            directions: vec![crate::Direction::Minimize],
            sampler: crate::SamplerConfig::Tpe(options),
            pruner: crate::PrunerConfig::None,
            seed,
        }
    }

    #[test]
    fn a_run_as_parallel_workers_tells_every_trial_and_still_searches() {
        let config = |seed| tpe(seed, crate::TpeOptions::default());
        let f = function("branin").unwrap();
        let parallel = run(config(1), &f, 80, 4, |_| {}).unwrap();
        let sequential = run(config(1), &f, 80, 1, |_| {}).unwrap();
        assert_eq!(parallel.history.len(), 80);
        assert_ne!(parallel.history, sequential.history, "trials sampled while others run differ");
        // Random search's median best over 80 trials is about 0.5 above the minimum.
        assert!(parallel.best_value - f.minimum < 0.1, "{}", parallel.best_value);
    }

    #[test]
    fn sharper_good_kernels_close_in_on_the_minimum_better_than_optunas_floor() {
        // good_clip's reason to be: the same seeds, the default against Optuna's rule (1).
        let median_gap = |name: &str, good_clip: f64| {
            let f = function(name).unwrap();
            let mut gaps: Vec<f64> = (0..9)
                .map(|seed| {
                    let options = crate::TpeOptions { good_clip, ..crate::TpeOptions::default() };
                    run(tpe(seed, options), &f, 150, 1, |_| {}).unwrap().best_value - f.minimum
                })
                .collect();
            gaps.sort_by(f64::total_cmp);
            gaps[4]
        };
        for name in ["branin", "mixed"] {
            let (sharp, optuna) = (median_gap(name, 0.25), median_gap(name, 1.0));
            assert!(sharp < optuna / 2.0, "{name}: good_clip 0.25 {sharp}, 1 {optuna}");
        }
    }

    #[test]
    fn each_function_takes_its_known_minimum_where_it_should() {
        let branin = function("branin").unwrap();
        for x in [[-PI, 12.275], [PI, 2.275], [9.424_78, 2.475]] {
            assert!((branin.eval(&x) - branin.minimum).abs() < 1e-5, "{x:?}");
        }
        let h = function("hartmann6").unwrap();
        let at = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573];
        assert!((h.eval(&at) - h.minimum).abs() < 1e-5, "{}", h.eval(&at));
        assert_eq!(function("rosenbrock10").unwrap().eval(&[1.0; 10]), 0.0);
        let mixed = function("mixed").unwrap();
        assert!(mixed.eval(&[1.5, 10f64.powf(-2.5), 7.0, 1.0]).abs() < 1e-12);
        assert!((mixed.eval(&[2.5, 10f64.powf(-2.5), 7.0, 3.0]) - 3.5).abs() < 1e-12);
        for name in NAMES {
            let f = function(name).unwrap();
            for (field, dist) in &f.space {
                assert_eq!(
                    &Distribution::from_json(&serde_json::to_value(dist).unwrap(), field).unwrap(),
                    dist
                );
            }
        }
    }

    #[test]
    fn the_multi_objective_functions_reach_their_fronts_and_tpe_closes_in() {
        let zdt1 = multi_function("zdt1").unwrap();
        // On the front (x1.. = 0): f2 = 1 - sqrt(f1).
        let v = zdt1.eval(&[0.25, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert!((v[0] - 0.25).abs() < 1e-12 && (v[1] - 0.5).abs() < 1e-12, "{v:?}");
        let dtlz2 = multi_function("dtlz2").unwrap();
        let v = dtlz2.eval(&[0.3, 0.7, 0.5, 0.5, 0.5, 0.5]);
        assert!((v.iter().map(|f| f * f).sum::<f64>() - 1.0).abs() < 1e-12, "{v:?}");
        for f in [&zdt1, &dtlz2] {
            let config = |sampler| StudyConfig {
                name: "t".into(),
                directions: vec![crate::Direction::Minimize],
                sampler,
                pruner: crate::PrunerConfig::None,
                seed: 4,
            };
            let tpe = crate::SamplerConfig::Tpe(crate::TpeOptions::default());
            let r = run_multi(config(tpe), f, 100, 1, |_| {}).unwrap();
            let random =
                run_multi(config(crate::SamplerConfig::Random), f, 100, 1, |_| {}).unwrap();
            assert!(r.hypervolume <= f.best_hypervolume, "{} {}", f.name, r.hypervolume);
            assert!(r.hypervolume > random.hypervolume, "{}: {r:?} vs {random:?}", f.name);
            assert_eq!(r.front.len(), {
                let points: Vec<Vec<f64>> = r.front.iter().map(|t| t.values.clone()).collect();
                crate::pareto::front(&points).len()
            });
        }
    }
}
