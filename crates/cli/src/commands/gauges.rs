//! `slipway gauges push|list|show`: custom gauges a deployment pushes about itself (a camera's
//! power state, a ward's bandwidth), kept as time series on a server and exposed on `/metrics`.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::Global;
use crate::client::Client;
use crate::commands::runs::encode;
use crate::output::{sparkline, table, time};

#[derive(Debug, Subcommand)]
pub(crate) enum GaugesCommand {
    /// Push a value of a gauge
    #[command(after_help = "Examples:\n  \
        slipway gauges push camera_power_state 1 --label camera=ward3-2\n  \
        slipway gauges push ward_bandwidth_mbps 812.5 --label ward=3")]
    Push {
        name: String,
        value: f64,
        /// KEY=VALUE (repeatable)
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
    /// Every gauge series with its latest value
    List,
    /// A gauge's series over time, with a sparkline each
    #[command(after_help = "Examples:\n  \
        slipway gauges show camera_power_state --since-hours 6")]
    Show {
        name: String,
        /// Look back this many hours
        #[arg(long, default_value_t = 24.0)]
        since_hours: f64,
    },
}

fn labels_text(labels: &Value) -> String {
    labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

pub(crate) async fn run(cmd: GaugesCommand, global: &Global) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    match cmd {
        GaugesCommand::Push { name, value, labels } => {
            let mut map = serde_json::Map::new();
            for l in &labels {
                let (k, v) = l
                    .split_once('=')
                    .filter(|(k, _)| !k.is_empty())
                    .ok_or_else(|| anyhow!("--label '{l}' is not KEY=VALUE"))?;
                map.insert(k.to_string(), json!(v));
            }
            if !value.is_finite() {
                bail!("the value must be a finite number");
            }
            let r: Value = client
                .post_json("/api/v1/gauges", &json!({"name": name, "labels": map, "value": value}))
                .await?;
            if global.json {
                crate::output::json(&r)?;
            } else {
                println!("pushed {name}{{{}}} = {value}", labels.join(","));
            }
        }
        GaugesCommand::List => {
            let r: Value = client.get("/api/v1/gauges").await?;
            if global.json {
                crate::output::json(&r)?;
                return Ok(ExitCode::SUCCESS);
            }
            let list = r["gauges"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!(
                    "no gauges yet (push one with: slipway gauges push NAME VALUE --label KEY=VALUE)"
                );
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|g| {
                    vec![
                        g["name"].as_str().unwrap_or_default().to_string(),
                        labels_text(&g["labels"]),
                        g["value"].to_string(),
                        time(g["at_ms"].as_i64()),
                        g["points"].to_string(),
                    ]
                })
                .collect();
            table(&["GAUGE", "LABELS", "VALUE", "AT", "POINTS"], &rows)?;
        }
        GaugesCommand::Show { name, since_hours } => {
            if !(since_hours > 0.0 && since_hours.is_finite()) {
                bail!("--since-hours must be a positive number of hours");
            }
            let since = slipway_core::now_ms() - (since_hours * 3_600_000.0) as i64;
            let r: Value =
                client.get(&format!("/api/v1/gauges/{}?since_ms={since}", encode(&name))).await?;
            if global.json {
                crate::output::json(&r)?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = r["series"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    let values: Vec<f64> = s["points"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p[1].as_f64())
                        .collect();
                    let (lo, hi) =
                        values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                            (a.min(*v), b.max(*v))
                        });
                    vec![
                        labels_text(&s["labels"]),
                        values.len().to_string(),
                        if values.is_empty() { "-".into() } else { format!("{lo}") },
                        if values.is_empty() { "-".into() } else { format!("{hi}") },
                        values.last().map_or("-".into(), |v| v.to_string()),
                        sparkline(&values),
                    ]
                })
                .collect();
            println!("{name}, the last {since_hours} hours");
            table(&["LABELS", "POINTS", "MIN", "MAX", "LATEST", "OVER TIME"], &rows)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
