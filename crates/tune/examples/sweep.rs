//! Sampler quality over many seeds, in-process: `cargo run --release -p slipway-tune --example
//! sweep -- FROM TO TRIALS IN_FLIGHT [FUNCTIONS] [GOOD_CLIP] [PENDING]`. Prints median [q25, q75] of
//! the best value per function over seeds FROM..TO (and over seeds 0–9 when they are included),
//! the mean log10 of the gap to the minimum, and for Hartmann-6 the share of runs stuck above −3.2
//! (a local minimum); for a function with several objectives (zdt1, dtlz2), the hypervolume of
//! the front found (larger is better). PENDING is how TPE treats running trials: believer (predicted
//! by a Gaussian process: the default with one objective), liar (counted as bad: the default
//! with several) or out (left out). Two threads. This is how `good_clip`'s, `constant_liar`'s and
//! `believer`'s defaults were chosen: see docs/tuning.md.
use slipway_tune::functions::{MULTI_NAMES, NAMES, function, multi_function, run, run_multi};
use slipway_tune::{Direction, PrunerConfig, SamplerConfig, StudyConfig, TpeOptions};

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    if i + 1 < v.len() { v[i] * (1.0 - frac) + v[i + 1] * frac } else { v[i] }
}

/// Argument `i` parsed, `default` when absent; a bad one ends the program with one line.
fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str, default: T) -> T {
    match args.get(i) {
        None => default,
        Some(a) => a.parse().unwrap_or_else(|_| {
            eprintln!("error: {name}: cannot read '{a}' (usage: sweep FROM TO TRIALS IN_FLIGHT [FUNCTIONS] [GOOD_CLIP] [PENDING])");
            std::process::exit(2)
        }),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let from: u64 = arg(&args, 1, "FROM", 0);
    let to: u64 = arg(&args, 2, "TO", 100);
    let trials: usize = arg(&args, 3, "TRIALS", 200);
    let in_flight: usize = arg(&args, 4, "IN_FLIGHT", 1);
    let names: String = arg(&args, 5, "FUNCTIONS", "branin,hartmann6,rosenbrock10,mixed".into());
    let good_clip: f64 = arg(&args, 6, "GOOD_CLIP", TpeOptions::default().good_clip);
    let pending: Option<String> = args.get(7).cloned();
    let (constant_liar, believer) = match pending.as_deref() {
        None => (None, None),
        Some("believer") => (Some(false), Some(true)),
        Some("liar") => (Some(true), Some(false)),
        Some("out") => (Some(false), Some(false)),
        Some(_) => (Some(true), Some(true)),
    };
    // A study's defaults for one or several objectives, with GOOD_CLIP and PENDING when given.
    let options_for = |n_objectives: usize| {
        let d = TpeOptions::for_objectives(n_objectives);
        TpeOptions {
            good_clip,
            constant_liar: constant_liar.unwrap_or(d.constant_liar),
            believer: believer.unwrap_or(d.believer) && n_objectives == 1,
            ..d
        }
    };
    if from >= to
        || trials == 0
        || !(good_clip > 0.0 && good_clip <= 1.0)
        || constant_liar == Some(true) && believer == Some(true)
    {
        eprintln!(
            "error: need FROM < TO, TRIALS >= 1, GOOD_CLIP in (0, 1] and PENDING believer, liar or out"
        );
        std::process::exit(2);
    }
    let seeds: Vec<u64> = (from..to).collect();
    for name in names.split(',') {
        if multi_function(name).is_some() {
            multi(name, &seeds, trials, in_flight, &options_for(2));
            continue;
        }
        let Some(f) = function(name) else {
            eprintln!(
                "error: unknown function '{name}' (expected one of {}, {})",
                NAMES.join(", "),
                MULTI_NAMES.join(", ")
            );
            std::process::exit(2)
        };
        let results = per_seed(&seeds, &options_for(1), |config| {
            run(config, &f, trials, in_flight, |_| {}).unwrap().best_value
        });
        let first10: Vec<f64> =
            seeds.iter().zip(&results).filter(|(s, _)| **s < 10).map(|(_, v)| *v).collect();
        let mean_log: f64 = results.iter().map(|v| (v - f.minimum + 1e-12).log10()).sum::<f64>()
            / results.len() as f64;
        let stuck = if name == "hartmann6" {
            format!(
                " stuck {:.0}%",
                100.0 * results.iter().filter(|&&v| v > -3.2).count() as f64 / results.len() as f64
            )
        } else {
            String::new()
        };
        print!(
            "{name:13} med {:.5} [{:.5}, {:.5}] meanlog10gap {:.3}{stuck}",
            quantile(&results, 0.5),
            quantile(&results, 0.25),
            quantile(&results, 0.75),
            mean_log
        );
        if first10.len() == 10 {
            print!("  | seeds0-9 med {:.5}", quantile(&first10, 0.5));
        }
        println!();
    }
}

/// The median [q25, q75] hypervolume of the fronts found over `seeds` with `options`.
fn multi(name: &str, seeds: &[u64], trials: usize, in_flight: usize, options: &TpeOptions) {
    let f = multi_function(name).expect("a known function");
    let results = per_seed(seeds, options, |config| {
        run_multi(config, &f, trials, in_flight, |_| {}).unwrap().hypervolume
    });
    println!(
        "{name:13} hypervolume med {:.5} [{:.5}, {:.5}] of {:.5}",
        quantile(&results, 0.5),
        quantile(&results, 0.25),
        quantile(&results, 0.75),
        f.best_hypervolume
    );
}

/// `one(study config)` for each seed, on two threads; the results in seed order.
fn per_seed(
    seeds: &[u64],
    options: &TpeOptions,
    one: impl Fn(StudyConfig) -> f64 + Sync,
) -> Vec<f64> {
    std::thread::scope(|s| {
        let chunks: Vec<_> = seeds
            .chunks(seeds.len().div_ceil(2))
            .map(|chunk| {
                let one = &one;
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|&seed| {
                            one(StudyConfig {
                                name: "sweep".into(),
                                directions: vec![Direction::Minimize],
                                sampler: SamplerConfig::Tpe(options.clone()),
                                pruner: PrunerConfig::None,
                                seed,
                            })
                        })
                        .collect::<Vec<f64>>()
                })
            })
            .collect();
        chunks.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}
