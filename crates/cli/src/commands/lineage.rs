//! `slipway lineage model NAME@REF`: where a model version came from — the run that trained it
//! and the dataset versions that run read — as a chain.

use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use serde_json::Value;

use crate::Global;
use crate::client::Client;
use crate::commands::runs::encode;
use crate::output::cell as text;
use crate::output::time;

#[derive(Debug, Subcommand)]
pub(crate) enum LineageCommand {
    /// A model version's chain: dataset versions → training run → model version
    #[command(after_help = "Examples:\n  \
        slipway lineage model falls@champion\n  \
        slipway lineage model falls@3 --json")]
    Model {
        /// NAME@VERSION, NAME@ALIAS or NAME@latest
        model: String,
    },
}

pub(crate) async fn run(cmd: LineageCommand, global: &Global) -> anyhow::Result<ExitCode> {
    let LineageCommand::Model { model } = cmd;
    let Some((name, reference)) = model.split_once('@') else {
        bail!("'{model}' names no version: give NAME@VERSION, NAME@ALIAS or NAME@latest");
    };
    let client = Client::new(global)?;
    let l: Value = client
        .get(&format!("/api/v1/models/{}/versions/{}/lineage", encode(name), encode(reference)))
        .await?;
    if global.json {
        crate::output::json(&l)?;
        return Ok(ExitCode::SUCCESS);
    }
    let v = &l["version"];
    let aliases: Vec<String> =
        v["aliases"].as_array().map(|a| a.iter().map(text).collect()).unwrap_or_default();
    let aliases =
        if aliases.is_empty() { String::new() } else { format!(" ({})", aliases.join(", ")) };
    println!("model    {}@{}{aliases}", text(&v["name"]), text(&v["version"]));
    println!(
        "         source {}, registered {}",
        text(&v["source"]),
        time(v["created_ms"].as_i64())
    );
    match l["run"].as_object() {
        Some(r) => {
            println!("  ↑ trained by");
            println!(
                "run      {} \"{}\" (experiment {}, {}, by {}, started {})",
                text(&r["run_id"]),
                text(&r["name"]),
                text(&r["experiment_id"]),
                text(&r["status"]),
                text(&r["user_id"]),
                time(r["start_time"].as_i64())
            );
        }
        None => {
            println!(
                "  (no training run is linked: register with --run RUN_ID or a runs:/ source)"
            );
            return Ok(ExitCode::SUCCESS);
        }
    }
    let datasets = l["datasets"].as_array().cloned().unwrap_or_default();
    if datasets.is_empty() {
        println!("  (the run logged no dataset inputs)");
        return Ok(ExitCode::SUCCESS);
    }
    println!("  ↑ read");
    for d in &datasets {
        let digest: String = text(&d["digest"]).chars().take(12).collect();
        let context = d["context"].as_str().map(|c| format!(" as {c}")).unwrap_or_default();
        match d["version"].as_i64() {
            Some(n) => println!("dataset  {}@{n}{context} (digest {digest})", text(&d["name"])),
            None => println!(
                "dataset  {}{context} (digest {digest}, {}; not a Slipway dataset version)",
                text(&d["name"]),
                text(&d["source_type"])
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}
