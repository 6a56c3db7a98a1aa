//! `slipway endpoints create|list|show|delete`: named endpoints serving a model version or an
//! alias, on a server.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::Global;
use crate::client::Client;
use crate::commands::runs::encode;
use crate::output::cell as text;
use crate::output::{table, time};

#[derive(Debug, Subcommand)]
pub(crate) enum EndpointsCommand {
    /// Serve a model version or alias under a name (moving the alias later switches it, live)
    #[command(after_help = "Examples:\n  \
        slipway endpoints create falls falls@champion\n  \
        slipway endpoints create falls-v3 falls@3 --max-batch-size 64 --max-queue-delay-us 500\n\n\
        Then: POST /v2/models/falls/infer (Open Inference Protocol) or\n      \
        POST /endpoints/falls/invocations (MLflow's scoring format)")]
    Create {
        /// The endpoint's name
        name: String,
        /// NAME@VERSION or NAME@ALIAS
        model: String,
        /// Largest batch the dynamic batcher forms
        #[arg(long)]
        max_batch_size: Option<usize>,
        /// How long a request may wait for others to join its batch, µs
        #[arg(long)]
        max_queue_delay_us: Option<u64>,
        /// Requests waiting beyond this are answered 503 with Retry-After
        #[arg(long)]
        max_queue_len: Option<usize>,
    },
    /// List endpoints with their live version and request counts
    List,
    /// Show one endpoint: its model, signature, batching and live statistics
    Show { name: String },
    /// Delete an endpoint (its model version stays registered)
    Delete { name: String },
}

fn ms(v: &Value) -> String {
    v.as_f64().map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into())
}

pub(crate) async fn run(cmd: EndpointsCommand, global: &Global) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    match cmd {
        EndpointsCommand::Create {
            name,
            model,
            max_batch_size,
            max_queue_delay_us,
            max_queue_len,
        } => {
            let body = json!({
                "name": name,
                "model": model,
                "max_batch_size": max_batch_size,
                "max_queue_delay_us": max_queue_delay_us,
                "max_queue_len": max_queue_len,
            });
            let e: Value = client.post_json("/api/v1/endpoints", &body).await?;
            if global.json {
                crate::output::json(&e)?;
            } else {
                println!(
                    "endpoint {} serves {}@{} (version {}) at {}/v2/models/{}/infer",
                    text(&e["name"]),
                    text(&e["model"]),
                    text(&e["reference"]),
                    text(&e["version"]),
                    client.base(),
                    text(&e["name"]),
                );
            }
        }
        EndpointsCommand::List => {
            let list: Value = client.get("/api/v1/endpoints").await?;
            if global.json {
                crate::output::json(&list)?;
                return Ok(ExitCode::SUCCESS);
            }
            let endpoints = list["endpoints"].as_array().cloned().unwrap_or_default();
            if endpoints.is_empty() {
                println!(
                    "no endpoints (create one with: slipway endpoints create NAME MODEL@ALIAS)"
                );
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = endpoints
                .iter()
                .map(|e| {
                    let st = &e["stats"];
                    vec![
                        text(&e["name"]),
                        format!("{}@{}", text(&e["model"]), text(&e["reference"])),
                        text(&e["version"]),
                        text(&st["requests"]["ok"]),
                        text(&st["requests"]["bad_input"]),
                        text(&st["requests"]["overloaded"]),
                        ms(&st["latency_ms"]["p50"]),
                        ms(&st["latency_ms"]["p99"]),
                    ]
                })
                .collect();
            table(&["NAME", "MODEL", "VERSION", "OK", "BAD", "503", "P50 MS", "P99 MS"], &rows)?;
        }
        EndpointsCommand::Show { name } => {
            let e: Value = client.get(&format!("/api/v1/endpoints/{}", encode(&name))).await?;
            if global.json {
                crate::output::json(&e)?;
                return Ok(ExitCode::SUCCESS);
            }
            let st = &e["stats"];
            let specs = |key: &str| -> String {
                e[key]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .map(|t| match t["datatype"].as_str() {
                                Some(d) => format!("{}: {d} {}", text(&t["name"]), t["shape"]),
                                None => text(&t["name"]),
                            })
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_else(|| "-".into())
            };
            let fields = [
                ("endpoint", text(&e["name"])),
                ("model", format!("{}@{}", text(&e["model"]), text(&e["reference"]))),
                ("version", text(&e["version"])),
                ("created", time(e["created_ms"].as_i64())),
                ("inputs", specs("inputs")),
                ("outputs", specs("outputs")),
                (
                    "batching",
                    format!(
                        "max batch {}, max queue delay {} µs, max queue {}",
                        text(&e["max_batch_size"]),
                        text(&e["max_queue_delay_us"]),
                        text(&e["max_queue_len"])
                    ),
                ),
                (
                    "requests",
                    format!(
                        "ok {}, bad input {}, overloaded {}, failed {}",
                        text(&st["requests"]["ok"]),
                        text(&st["requests"]["bad_input"]),
                        text(&st["requests"]["overloaded"]),
                        text(&st["requests"]["failed"])
                    ),
                ),
                (
                    "latency",
                    format!(
                        "p50 {} ms, p90 {} ms, p99 {} ms",
                        ms(&st["latency_ms"]["p50"]),
                        ms(&st["latency_ms"]["p90"]),
                        ms(&st["latency_ms"]["p99"])
                    ),
                ),
                ("queue", text(&st["queue_depth"])),
                ("url", format!("{}/v2/models/{}/infer", client.base(), text(&e["name"]))),
            ];
            for (k, v) in fields {
                println!("{k:<10} {v}");
            }
        }
        EndpointsCommand::Delete { name } => {
            let _: Value = client.delete(&format!("/api/v1/endpoints/{}", encode(&name))).await?;
            if global.json {
                crate::output::json(&json!({ "deleted": name }))?;
            } else {
                println!("endpoint {name} deleted");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
