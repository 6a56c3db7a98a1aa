//! `slipway models …`: local work on model files. `models time` measures what one call of an
//! ONNX model costs in Slipway's runtime (its compute, without any request handling).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;

use crate::Global;

#[derive(Debug, Subcommand)]
pub(crate) enum ModelsCommand {
    /// Time calls of an ONNX model in Slipway's runtime: load and optimise it once, then run
    /// batches of the given rows and report the median, p10 and p90 per call
    #[command(after_help = "Examples:\n  \
        slipway models time rf.onnx --rows rows.json --batch 1 --iters 2000\n  \
        slipway models time rf.onnx --rows rows.json --batch 256 --json")]
    Time {
        /// The ONNX file
        model: PathBuf,
        /// A JSON list of rows (lists of numbers) to feed, cycled as needed
        #[arg(long)]
        rows: PathBuf,
        /// Rows per call
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Calls to time (after 10% as many warm-up calls)
        #[arg(long, default_value_t = 1000)]
        iters: usize,
    },
}

pub(crate) async fn run(cmd: ModelsCommand, global: &Global) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelsCommand::Time { model, rows, batch, iters } => {
            time(&model, &rows, batch, iters, global)
        }
    }
}

fn time(
    model: &PathBuf,
    rows: &PathBuf,
    batch: usize,
    iters: usize,
    global: &Global,
) -> anyhow::Result<ExitCode> {
    if batch == 0 || iters == 0 {
        bail!("--batch and --iters must be at least 1");
    }
    let bytes = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    let loaded =
        serve::Model::load(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", model.display()))?;
    let text = std::fs::read(rows).with_context(|| format!("reading {}", rows.display()))?;
    let rows: Vec<Vec<f32>> = serde_json::from_slice(&text)
        .with_context(|| format!("{}: expected a JSON list of rows of numbers", rows.display()))?;
    let width = rows.first().map(Vec::len).unwrap_or(0);
    if width == 0 || rows.iter().any(|r| r.len() != width) {
        bail!("the rows must all have the same, non-zero length");
    }
    let flat: Vec<f32> = rows.iter().cycle().take(batch).flatten().copied().collect();
    let input = serve::Tensor::from_shape(&[batch, width], &flat)?;
    let warmup = (iters / 10).max(1);
    let mut times = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        let started = Instant::now();
        loaded.run_one(input.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
        if i >= warmup {
            times.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    times.sort_by(f64::total_cmp);
    let pick = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    let (p10, p50, p90) = (pick(0.1), pick(0.5), pick(0.9));
    if global.json {
        println!(
            "{}",
            json!({"batch": batch, "iters": iters, "p10_us": p10, "median_us": p50, "p90_us": p90})
        );
    } else {
        println!(
            "batch {batch}: median {p50:.1} µs per call (p10 {p10:.1}, p90 {p90:.1}) over {iters} calls"
        );
    }
    Ok(ExitCode::SUCCESS)
}
