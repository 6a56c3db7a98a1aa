//! `slipway experiments list|create`.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::Global;
use crate::client::Client;
use crate::output::{table, time};

#[derive(Debug, Subcommand)]
pub(crate) enum ExperimentsCommand {
    /// List experiments, newest first
    #[command(
        after_help = "Examples:\n  slipway experiments list\n  slipway experiments list --view all --json"
    )]
    List {
        /// active, deleted or all
        #[arg(long, default_value = "active")]
        view: String,
    },
    /// Create an experiment
    #[command(
        after_help = "Examples:\n  slipway experiments create fall-detection --tag team=ward-7"
    )]
    Create {
        name: String,
        /// KEY=VALUE tags (repeatable)
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
}

pub(crate) async fn run(cmd: ExperimentsCommand, global: &Global) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    match cmd {
        ExperimentsCommand::List { view } => {
            let list: Value = client.get(&format!("/api/v1/experiments?view={view}")).await?;
            if global.json {
                crate::output::json(&list)?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list["experiments"]
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    vec![
                        e["experiment_id"].as_str().unwrap_or("-").to_string(),
                        e["name"].as_str().unwrap_or("-").to_string(),
                        e["lifecycle_stage"].as_str().unwrap_or("-").to_string(),
                        time(e["creation_time"].as_i64()),
                    ]
                })
                .collect();
            table(&["ID", "NAME", "STAGE", "CREATED (UTC)"], &rows)?;
        }
        ExperimentsCommand::Create { name, tags } => {
            let mut map = serde_json::Map::new();
            for tag in tags {
                let Some((k, v)) = tag.split_once('=') else {
                    anyhow::bail!("tags are KEY=VALUE, got {tag:?}");
                };
                map.insert(k.to_string(), json!(v));
            }
            let e: Value = client
                .post_json("/api/v1/experiments", &json!({"name": name, "tags": map}))
                .await?;
            if global.json {
                crate::output::json(&e)?;
            } else {
                println!("experiment {} {}", e["experiment_id"].as_str().unwrap_or("?"), name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
