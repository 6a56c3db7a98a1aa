//! `slipway example fall-detection generate`: the running example's synthetic pose clips.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;
use slipway_data::example::{self, ACTIVITIES, Camera, Options, Subjects};

use crate::Global;
use crate::output::table;
use crate::progress::size;

#[derive(Debug, Subcommand)]
pub(crate) enum ExampleCommand {
    /// The fall-detection example: pose clips of patients who walk, stand, sit or fall
    #[command(name = "fall-detection", subcommand)]
    FallDetection(FallCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum FallCommand {
    /// Write synthetic clips (17 keypoints × frames, in camera pixels), clips.csv and
    /// features.parquet into a new or empty folder; deterministic for a seed
    #[command(after_help = "Examples:\n  \
        slipway example fall-detection generate falls/ --clips 500 --seed 1\n  \
        slipway data add falls/clips --dataset falls --meta falls/clips.csv\n  \
        slipway data add falls/features.parquet --dataset fall-features\n  \
        slipway example fall-detection generate falls-4k/ --seed 1 --camera 4k        # skew: pixels ×3\n  \
        slipway example fall-detection generate ward-kids/ --seed 2 --subjects mixed  # drift: children")]
    Generate {
        /// Folder to write into (created; must be empty if it exists)
        out: PathBuf,
        #[arg(long, default_value_t = 200)]
        clips: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "720p", value_parser = ["720p", "4k"])]
        camera: String,
        #[arg(long, default_value = "adult", value_parser = ["adult", "child", "mixed"])]
        subjects: String,
    },
}

pub(crate) async fn run(cmd: ExampleCommand, global: &Global) -> anyhow::Result<ExitCode> {
    let ExampleCommand::FallDetection(FallCommand::Generate { out, clips, seed, camera, subjects }) =
        cmd;
    let opts = Options {
        clips,
        seed,
        camera: Camera::parse(&camera)?,
        subjects: Subjects::parse(&subjects)?,
    };
    let generated = tokio::task::spawn_blocking(move || example::generate(&out, &opts)).await??;
    if global.json {
        let per: serde_json::Map<String, serde_json::Value> = ACTIVITIES
            .iter()
            .zip(generated.per_activity)
            .map(|(a, n)| (a.to_string(), json!(n)))
            .collect();
        crate::output::json(&json!({
            "root": generated.root, "clips": generated.clips, "bytes": generated.bytes,
            "per_activity": per,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let root = generated.root.display();
    println!(
        "{} clips, {} in {root}: clips/, clips.csv, features.parquet",
        generated.clips,
        size(generated.bytes)
    );
    let rows: Vec<Vec<String>> = ACTIVITIES
        .iter()
        .zip(generated.per_activity)
        .map(|(a, n)| vec![a.to_string(), n.to_string()])
        .collect();
    table(&["ACTIVITY", "CLIPS"], &rows)?;
    println!("next: slipway data add {root}/clips --dataset falls --meta {root}/clips.csv");
    Ok(ExitCode::SUCCESS)
}
