//! `slipway rollout start|status|promote|abort|pause|resume`: canary rollouts of an endpoint's
//! candidate version, on a server.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::Global;
use crate::client::Client;
use crate::commands::runs::encode;
use crate::output::cell as text;
use crate::output::{table, time};

#[derive(Debug, Subcommand)]
pub(crate) enum RolloutCommand {
    /// Start a rollout from its file (TOML or YAML): the candidate gets the first step's share
    #[command(after_help = "Examples:\n  \
        slipway rollout start rollout.toml\n  \
        slipway rollout start rollout.yaml     # the same fields in YAML\n\n\
        A rollout file:\n  \
        endpoint = \"ward-7\"\n  \
        candidate = \"v2\"              # a version, latest or an alias\n  \
        steps = [1, 10, 50, 100]        # percent of traffic; the default\n  \
        step_seconds = 300              # the least time a step is held\n  \
        min_requests = 100              # the least candidate requests a step sees\n  \
        promote_alias = \"champion\"      # moved to the candidate at 100%\n  \
        [[gates]]\n  \
        metric = \"error_rate\"           # may rise by at most 0.01\n  \
        threshold = 0.01\n  \
        [[gates]]\n  \
        metric = \"p99_latency\"          # may grow by at most 1.5x\n  \
        threshold = 1.5")]
    Start {
        /// The rollout file
        file: PathBuf,
    },
    /// Rollouts (of one endpoint), or one rollout's timeline
    #[command(after_help = "Examples:\n  \
        slipway rollout status\n  \
        slipway rollout status --endpoint ward-7\n  \
        slipway rollout status 0193f3c2a1b4...")]
    Status {
        /// A rollout id: its steps and every transition with its reason
        id: Option<String>,
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Go to the next step now (from the step before 100%: complete the rollout)
    Promote {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Give the baseline everything back and end the rollout
    Abort {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Hold the rollout at its step
    Pause {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Let a paused rollout go on
    Resume {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// A percentage without a needless `.0`.
fn pct(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 => format!("{x:.0}%"),
        Some(x) => format!("{x}%"),
        None => "-".into(),
    }
}

/// `1% → 10% → [50%] → 100%`: the steps with the current one marked.
fn steps_line(r: &Value) -> String {
    let step = r["step"].as_u64().unwrap_or(0) as usize;
    let active = matches!(r["state"].as_str(), Some("running" | "paused"));
    r["steps"]
        .as_array()
        .map(|l| {
            l.iter()
                .enumerate()
                .map(|(i, s)| {
                    let p = pct(s);
                    if i == step && active { format!("[{p}]") } else { p }
                })
                .collect::<Vec<_>>()
                .join(" → ")
        })
        .unwrap_or_default()
}

fn summary(r: &Value) -> String {
    format!(
        "rollout {} of {}: {} ({} from {}, candidate at {}) — {}",
        text(&r["id"]),
        text(&r["endpoint"]),
        text(&r["state"]),
        text(&r["candidate"]),
        text(&r["baseline"]),
        pct(&r["weight"]),
        text(&r["reason"]),
    )
}

pub(crate) async fn run(cmd: RolloutCommand, global: &Global) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let r: Value = match cmd {
        RolloutCommand::Start { file } => {
            let body = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let name = file.file_name().and_then(|n| n.to_str());
            let content_type = match ::serve::rollout_format(&body, name) {
                ::serve::RolloutFormat::Yaml => "application/yaml",
                ::serve::RolloutFormat::Toml => "application/toml",
            };
            client.post_text("/api/v1/rollouts", content_type, body).await?
        }
        RolloutCommand::Status { id: None, endpoint } => {
            let path = match &endpoint {
                Some(e) => format!("/api/v1/rollouts?endpoint={}", encode(e)),
                None => "/api/v1/rollouts".to_string(),
            };
            let list: Value = client.get(&path).await?;
            if global.json {
                crate::output::json(&list)?;
                return Ok(ExitCode::SUCCESS);
            }
            let rollouts = list["rollouts"].as_array().cloned().unwrap_or_default();
            if rollouts.is_empty() {
                println!("no rollouts (start one with: slipway rollout start rollout.toml)");
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = rollouts
                .iter()
                .map(|r| {
                    vec![
                        text(&r["id"]),
                        text(&r["endpoint"]),
                        format!("{} → {}", text(&r["baseline"]), text(&r["candidate"])),
                        text(&r["state"]),
                        steps_line(r),
                        time(r["updated_ms"].as_i64()),
                    ]
                })
                .collect();
            table(&["ID", "ENDPOINT", "BASELINE → CANDIDATE", "STATE", "STEPS", "UPDATED"], &rows)?;
            return Ok(ExitCode::SUCCESS);
        }
        RolloutCommand::Status { id: Some(id), .. } => {
            let r: Value = client.get(&format!("/api/v1/rollouts/{}", encode(&id))).await?;
            if global.json {
                crate::output::json(&r)?;
                return Ok(ExitCode::SUCCESS);
            }
            println!("{}", summary(&r));
            println!("steps: {}", steps_line(&r));
            let rows: Vec<Vec<String>> = r["events"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .map(|e| {
                            vec![
                                time(e["at_ms"].as_i64()),
                                text(&e["kind"]),
                                pct(&e["weight"]),
                                text(&e["reason"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            table(&["AT", "EVENT", "CANDIDATE", "REASON"], &rows)?;
            return Ok(ExitCode::SUCCESS);
        }
        RolloutCommand::Promote { id, reason } => act(&client, &id, "promote", reason).await?,
        RolloutCommand::Abort { id, reason } => act(&client, &id, "abort", reason).await?,
        RolloutCommand::Pause { id, reason } => act(&client, &id, "pause", reason).await?,
        RolloutCommand::Resume { id, reason } => act(&client, &id, "resume", reason).await?,
    };
    if global.json {
        crate::output::json(&r)?;
    } else {
        println!("{}", summary(&r));
        println!("steps: {}", steps_line(&r));
    }
    Ok(ExitCode::SUCCESS)
}

async fn act(client: &Client, id: &str, action: &str, reason: String) -> anyhow::Result<Value> {
    let path = format!("/api/v1/rollouts/{}/{action}", encode(id));
    client.post_json(&path, &json!({ "reason": reason })).await
}
