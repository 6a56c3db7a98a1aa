//! `slipway runs list|show|compare|delete`.

use std::collections::BTreeSet;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

use crate::Global;
use crate::client::Client;
use crate::output::{table, time};

#[derive(Debug, Subcommand)]
pub(crate) enum RunsCommand {
    /// List runs, with MLflow's filter grammar
    #[command(
        after_help = "Examples:\n  slipway runs list --experiment fall-detection\n  slipway runs list --filter \"metrics.f1 > 0.8 and params.model = 'gbt'\" --order-by \"metrics.f1 DESC\"\n  slipway runs list --columns params.lr,metrics.f1 --json"
    )]
    List {
        /// Experiment names or ids, comma-separated [default: all]
        #[arg(long, short)]
        experiment: Option<String>,
        #[arg(long, short, default_value = "")]
        filter: String,
        /// e.g. "metrics.f1 DESC" (repeatable)
        #[arg(long = "order-by")]
        order_by: Vec<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Extra columns, e.g. params.lr,metrics.f1,tags.owner
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
    },
    /// Show one run: its info, params, metrics and tags
    Show { run_id: String },
    /// Compare runs side by side: params and metrics that differ come first
    #[command(after_help = "Examples:\n  slipway runs compare 0199ab… 0199ac…")]
    Compare {
        #[arg(required = true, num_args = 2..)]
        run_ids: Vec<String>,
    },
    /// Delete a run (soft: it can be restored)
    Delete { run_id: String },
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn duration(run: &Value) -> String {
    match (run["start_time"].as_i64(), run["end_time"].as_i64()) {
        (Some(a), Some(b)) if b >= a => {
            let secs = (b - a) as f64 / 1000.0;
            if secs < 60.0 { format!("{secs:.1}s") } else { format!("{:.1}min", secs / 60.0) }
        }
        _ => "-".into(),
    }
}

fn column(run: &Value, col: &str) -> String {
    let (section, key) = col.split_once('.').unwrap_or(("", col));
    let section = match section {
        "params" | "param" => "params",
        "metrics" | "metric" => "metrics",
        "tags" | "tag" => "tags",
        _ => return s(&run[col]),
    };
    s(&run[section][key])
}

pub(crate) async fn run(cmd: RunsCommand, global: &Global) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    match cmd {
        RunsCommand::List { experiment, filter, order_by, limit, columns } => {
            let mut query = vec![("max_results", limit.to_string()), ("filter", filter)];
            if let Some(e) = experiment {
                query.push(("experiment", e));
            }
            if !order_by.is_empty() {
                query.push(("order_by", order_by.join(",")));
            }
            let qs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
            let list: Value = client.get(&format!("/api/v1/runs?{}", qs.join("&"))).await?;
            if global.json {
                crate::output::json(&list)?;
                return Ok(ExitCode::SUCCESS);
            }
            let runs = list["runs"].as_array().map(|a| a.as_slice()).unwrap_or_default();
            let mut headers = vec!["RUN ID", "NAME", "STATUS", "STARTED (UTC)", "DURATION"];
            let extra: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
            headers.extend(extra.iter().map(String::as_str));
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|r| {
                    let mut row = vec![
                        s(&r["run_id"]),
                        s(&r["name"]),
                        s(&r["status"]),
                        time(r["start_time"].as_i64()),
                        duration(r),
                    ];
                    row.extend(columns.iter().map(|c| column(r, c)));
                    row
                })
                .collect();
            table(&headers, &rows)?;
        }
        RunsCommand::Show { run_id } => {
            let r: Value = client.get(&format!("/api/v1/runs/{}", encode(&run_id))).await?;
            if global.json {
                crate::output::json(&r)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows: Vec<Vec<String>> =
                ["run_id", "name", "experiment_id", "status", "user_id", "artifact_uri"]
                    .iter()
                    .map(|k| vec![k.to_string(), s(&r[*k])])
                    .collect();
            rows.push(vec!["started".into(), time(r["start_time"].as_i64())]);
            rows.push(vec!["ended".into(), time(r["end_time"].as_i64())]);
            rows.push(vec!["duration".into(), duration(&r)]);
            for section in ["params", "metrics", "tags"] {
                if let Some(map) = r[section].as_object() {
                    for (k, v) in map {
                        rows.push(vec![format!("{section}.{k}"), s(v)]);
                    }
                }
            }
            table(&["FIELD", "VALUE"], &rows)?;
        }
        RunsCommand::Compare { run_ids } => {
            let mut runs = Vec::new();
            for id in &run_ids {
                runs.push(client.get::<Value>(&format!("/api/v1/runs/{}", encode(id))).await?);
            }
            if global.json {
                crate::output::json(&runs)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut keys: Vec<(bool, String)> = Vec::new();
            for section in ["params", "metrics"] {
                let names: BTreeSet<String> = runs
                    .iter()
                    .filter_map(|r| r[section].as_object())
                    .flat_map(|m| m.keys().cloned())
                    .collect();
                for name in names {
                    let col = format!("{section}.{name}");
                    let values: BTreeSet<String> = runs.iter().map(|r| column(r, &col)).collect();
                    keys.push((values.len() == 1, col));
                }
            }
            keys.sort_by_key(|(same, _)| *same);
            let mut headers: Vec<String> = vec!["KEY".into()];
            headers.extend(runs.iter().map(|r| s(&r["name"])));
            let mut rows: Vec<Vec<String>> = Vec::new();
            rows.push(
                std::iter::once("run_id".to_string())
                    .chain(runs.iter().map(|r| s(&r["run_id"])))
                    .collect(),
            );
            rows.push(
                std::iter::once("status".to_string())
                    .chain(runs.iter().map(|r| s(&r["status"])))
                    .collect(),
            );
            for (same, key) in &keys {
                let mark = if *same { " " } else { "*" };
                rows.push(
                    std::iter::once(format!("{mark}{key}"))
                        .chain(runs.iter().map(|r| column(r, key)))
                        .collect(),
                );
            }
            let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
            table(&header_refs, &rows)?;
            println!("\n* differs between the runs");
        }
        RunsCommand::Delete { run_id } => {
            let r: Value = client.delete(&format!("/api/v1/runs/{}", encode(&run_id))).await?;
            if global.json {
                crate::output::json(&r)?;
            } else {
                println!("run {} deleted", s(&r["run_id"]));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a query value or path segment.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
