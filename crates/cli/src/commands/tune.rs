//! `slipway tune`: hyperparameter tuning. `try` runs a sampler on a standard test function in
//! this process, to see how it searches and what it costs per trial.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::Subcommand;

use crate::Global;
use crate::commands::profile::SPARK;
use crate::output::table;
use crate::progress::Bar;

#[derive(Debug, Subcommand)]
pub(crate) enum TuneCommand {
    /// Minimise a standard test function with a sampler, in this process (no server): how it
    /// searches and what it costs per trial
    #[command(after_help = "Examples:\n  \
        slipway tune try branin --trials 200 --seed 1\n  \
        slipway tune try mixed --sampler random\n  \
        slipway tune try sphere6 --trials 5000 --json     # the sampler's own cost per trial\n\n\
        Functions: branin (2-D), hartmann6 (6-D), rosenbrock10 (10-D), mixed (a float, a log\n\
        float, an int and a categorical), sphere6 (6-D, costs nothing).\n\
        Samplers: tpe (Optuna 5's defaults: multivariate, 10 random start-up trials, 24\n\
        candidates), tpe-univariate, random.")]
    Try {
        /// branin, hartmann6, rosenbrock10, mixed or sphere6
        function: String,
        #[arg(long, default_value_t = 200)]
        trials: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// tpe, tpe-univariate or random
        #[arg(long, default_value = "tpe")]
        sampler: String,
    },
}

pub(crate) async fn run(cmd: TuneCommand, global: &Global) -> anyhow::Result<ExitCode> {
    match cmd {
        TuneCommand::Try { function, trials, seed, sampler } => {
            try_function(&function, trials, seed, &sampler, global).await
        }
    }
}

async fn try_function(
    name: &str,
    trials: usize,
    seed: u64,
    sampler: &str,
    global: &Global,
) -> anyhow::Result<ExitCode> {
    let function = tune::functions::function(name).ok_or_else(|| {
        anyhow!("unknown function '{name}' (expected one of {})", tune::functions::NAMES.join(", "))
    })?;
    if trials == 0 {
        bail!("--trials must be at least 1");
    }
    let sampler = match sampler {
        "tpe" => tune::SamplerConfig::Tpe(tune::TpeOptions::default()),
        "tpe-univariate" => {
            tune::SamplerConfig::Tpe(tune::TpeOptions { multivariate: false, ..Default::default() })
        }
        "random" => tune::SamplerConfig::Random,
        other => bail!("unknown sampler '{other}' (expected tpe, tpe-univariate or random)"),
    };
    let config = tune::StudyConfig {
        name: format!("try-{name}"),
        direction: tune::Direction::Minimize,
        sampler,
        pruner: tune::PrunerConfig::None,
        seed,
    };
    let bar = Bar::rows("trials", trials as u64, !global.json);
    let progress = bar.counter();
    let result = tokio::task::spawn_blocking(move || {
        tune::functions::run(config, &function, trials, |done| progress(done as u64))
    })
    .await??;
    bar.finish();
    if global.json {
        crate::output::json(&result)?;
        return Ok(ExitCode::SUCCESS);
    }
    let minimum = tune::functions::function(name).map_or(f64::NAN, |f| f.minimum);
    let params: Vec<String> = result.best_params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    table(
        &["function", "trials", "best", "minimum", "gap", "best trial", "ms/trial"],
        &[vec![
            result.function.clone(),
            result.trials.to_string(),
            format!("{:.6}", result.best_value),
            format!("{minimum:.6}"),
            format!("{:.3e}", result.best_value - minimum),
            result.best_trial.to_string(),
            format!("{:.3}", result.seconds * 1e3 / result.trials as f64),
        ]],
    )?;
    println!("best params  {}", params.join("  "));
    println!("best so far  {}", curve(&result.history, minimum));
    Ok(ExitCode::SUCCESS)
}

/// The best-so-far curve as a sparkline of log-distance to the minimum.
fn curve(history: &[f64], minimum: f64) -> String {
    let gaps: Vec<f64> = history.iter().map(|v| (v - minimum).max(1e-12).log10()).collect();
    let (lo, hi) =
        gaps.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    let step = gaps.len().div_ceil(60).max(1);
    gaps.chunks(step)
        .map(|c| {
            let v = *c.last().expect("chunks are not empty");
            let i = if hi > lo { ((v - lo) / (hi - lo) * 7.0).round() as usize } else { 0 };
            SPARK[i.min(7)]
        })
        .collect()
}
