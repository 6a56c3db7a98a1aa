//! `slipway jobs list|show|cancel`: the job queue of a server.

use std::process::ExitCode;

use clap::Subcommand;
use serde::{Deserialize, Serialize};

use crate::Global;
use crate::client::Client;
use crate::output::{table, time};

#[derive(Debug, Subcommand)]
pub(crate) enum JobsCommand {
    /// List jobs, newest first
    #[command(
        after_help = "Examples:\n  slipway jobs list\n  slipway jobs list --status failed --json"
    )]
    List {
        /// Only jobs in this status: queued, running, succeeded, failed, cancelled
        #[arg(long)]
        status: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one job and its history
    Show { id: String },
    /// Cancel a job (a running job stops when its worker next checks in)
    Cancel { id: String },
}

#[derive(Serialize, Deserialize)]
struct JobList {
    jobs: Vec<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
struct EventList {
    events: Vec<serde_json::Value>,
}

fn s(v: &serde_json::Value, key: &str) -> String {
    match v.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

fn ms(v: &serde_json::Value, key: &str) -> String {
    time(v.get(key).and_then(|t| t.as_i64()))
}

pub(crate) async fn run(cmd: JobsCommand, global: &Global) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    match cmd {
        JobsCommand::List { status, limit } => {
            let mut path = format!("/api/v1/jobs?limit={limit}");
            if let Some(status) = status {
                path.push_str(&format!("&status={status}"));
            }
            let list: JobList = client.get(&path).await?;
            if global.json {
                crate::output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .jobs
                    .iter()
                    .map(|j| {
                        vec![
                            s(j, "id"),
                            s(j, "kind"),
                            s(j, "status"),
                            format!("{}/{}", s(j, "attempts"), s(j, "max_attempts")),
                            s(j, "worker"),
                            ms(j, "created_at"),
                        ]
                    })
                    .collect();
                table(&["ID", "KIND", "STATUS", "ATTEMPTS", "WORKER", "CREATED (UTC)"], &rows)?;
            }
        }
        JobsCommand::Show { id } => {
            let job: serde_json::Value = client.get(&format!("/api/v1/jobs/{id}")).await?;
            let events: EventList = client.get(&format!("/api/v1/jobs/{id}/events")).await?;
            if global.json {
                crate::output::json(&serde_json::json!({ "job": job, "events": events.events }))?;
            } else {
                let facts = ["id", "kind", "status", "attempts", "max_attempts", "worker", "error"];
                let mut rows: Vec<Vec<String>> =
                    facts.iter().map(|k| vec![k.to_string(), s(&job, k)]).collect();
                for key in ["created_at", "started_at", "finished_at"] {
                    rows.push(vec![key.to_string(), ms(&job, key)]);
                }
                for key in ["payload", "progress", "result"] {
                    rows.push(vec![key.to_string(), s(&job, key)]);
                }
                table(&["FIELD", "VALUE"], &rows)?;
                println!();
                let rows: Vec<Vec<String>> = events
                    .events
                    .iter()
                    .map(|e| {
                        vec![
                            ms(e, "at"),
                            s(e, "event"),
                            s(e, "attempt"),
                            s(e, "worker"),
                            s(e, "detail"),
                        ]
                    })
                    .collect();
                table(&["AT (UTC)", "EVENT", "ATTEMPT", "WORKER", "DETAIL"], &rows)?;
            }
        }
        JobsCommand::Cancel { id } => {
            let job: serde_json::Value = client.post(&format!("/api/v1/jobs/{id}/cancel")).await?;
            if global.json {
                crate::output::json(&job)?;
            } else {
                let note = if job.get("status").and_then(|s| s.as_str()) == Some("running") {
                    " (cancel requested; the worker stops at its next check)"
                } else {
                    ""
                };
                println!("job {} {}{note}", s(&job, "id"), s(&job, "status"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
