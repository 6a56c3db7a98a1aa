//! `slipway endpoints create|list|show|split|shadow|delete`: named endpoints serving a model
//! version or an alias (or several, by weight, with a shadow), on a server.

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
    /// Split traffic between versions or aliases by weight (percent, summing to 100; the first
    /// is the baseline). Requests with the same routing key (header X-Slipway-Key) keep their
    /// variant while the weights stay; a change moves as few keys as it can
    #[command(after_help = "Examples:\n  \
        slipway endpoints split falls v1=90 v2=10\n  \
        slipway endpoints split falls champion=99 challenger=1\n  \
        slipway endpoints split falls v2=100          # everything to version 2\n\n\
        Each answer names its variant in the x-slipway-variant header.")]
    Split {
        name: String,
        /// VARIANT=PERCENT pairs: a version (v3 or 3), latest or an alias
        #[arg(required = true)]
        weights: Vec<String>,
    },
    /// Mirror requests to a shadow variant: its answers are compared, never returned, and its
    /// failures never reach a caller
    #[command(after_help = "Examples:\n  \
        slipway endpoints shadow falls v3\n  \
        slipway endpoints shadow falls v3 --percent 10\n  \
        slipway endpoints shadow falls --off")]
    Shadow {
        name: String,
        /// A version (v3 or 3), latest or an alias
        #[arg(required_unless_present = "off", conflicts_with = "off")]
        variant: Option<String>,
        /// The share of requests mirrored (a routing key is always in it or never)
        #[arg(long, default_value_t = 100.0, conflicts_with = "off")]
        percent: f64,
        /// Stop shadowing
        #[arg(long)]
        off: bool,
    },
    /// Compare the variants of a split endpoint: requests, errors, p99, and from ground truth
    /// accuracy, precision, recall, F1, ROC AUC, MAE, RMSE, each against the baseline (effect,
    /// 95% interval and p-values for rates), and the split's sample-ratio check
    #[command(after_help = "Examples:\n  \
        slipway endpoints abtest falls\n  \
        slipway endpoints abtest falls --positive fall\n  \
        slipway endpoints abtest falls --since-hours 2 --json")]
    Abtest {
        name: String,
        /// Look back this many hours (default 24)
        #[arg(long, default_value_t = 24.0)]
        since_hours: f64,
        /// The label precision, recall, F1 and ROC AUC are about
        #[arg(long, default_value = "1")]
        positive: String,
    },
    /// Delete an endpoint (its model version stays registered)
    Delete { name: String },
}

/// `v1=90` as (`v1`, 90.0).
fn weight(pair: &str) -> anyhow::Result<(String, f64)> {
    let (variant, w) = pair
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("'{pair}' is not VARIANT=PERCENT (e.g. v2=10)"))?;
    let w: f64 = w
        .trim_end_matches('%')
        .parse()
        .map_err(|_| anyhow::anyhow!("'{w}' is not a percentage"))?;
    Ok((variant.to_string(), w))
}

/// The variants as `v1 90% (version 1), v2 10% (version 2)`, and the shadow.
fn traffic_line(e: &Value) -> String {
    let variants: Vec<String> = e["variants"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|v| {
                    let pct = v["weight"].as_f64().unwrap_or(0.0);
                    match v["version"].as_i64() {
                        Some(n) => format!("{} {pct}% (version {n})", text(&v["name"])),
                        None => format!("{} {pct}%", text(&v["name"])),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let mut line = variants.join(", ");
    if let Some(shadow) = e["shadow"]["name"].as_str() {
        line += &format!("; shadow {shadow}");
        if let Some(pct) = e["shadow"]["percent"].as_f64().filter(|p| *p < 100.0) {
            line += &format!(" on {pct}% of requests");
        }
    }
    line
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
                ("traffic", traffic_line(&e)),
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
        EndpointsCommand::Split { name, weights } => {
            // Pairs, not an object: the order says which variant is the baseline.
            let split = weights.iter().map(|p| weight(p)).collect::<anyhow::Result<Vec<_>>>()?;
            let path = format!("/api/v1/endpoints/{}/traffic", encode(&name));
            let e: Value = client.put_json(&path, &json!({ "split": split })).await?;
            if global.json {
                crate::output::json(&e)?;
            } else {
                println!("endpoint {name}: {}", traffic_line(&e));
            }
        }
        EndpointsCommand::Shadow { name, variant, off, percent } => {
            let path = format!("/api/v1/endpoints/{}/traffic", encode(&name));
            let body = if off {
                json!({ "shadow": null })
            } else {
                json!({ "shadow": variant, "shadow_percent": percent })
            };
            let e: Value = client.put_json(&path, &body).await?;
            if global.json {
                crate::output::json(&e)?;
            } else {
                println!("endpoint {name}: {}", traffic_line(&e));
            }
        }
        EndpointsCommand::Abtest { name, since_hours, positive } => {
            if !(since_hours > 0.0 && since_hours.is_finite()) {
                anyhow::bail!("--since-hours must be a positive number of hours");
            }
            let since = slipway_core::now_ms() - (since_hours * 3_600_000.0) as i64;
            let path = format!(
                "/api/v1/endpoints/{}/abtest?since_ms={since}&positive={}",
                encode(&name),
                encode(&positive)
            );
            let r: Value = client.get(&path).await?;
            if global.json {
                crate::output::json(&r)?;
                return Ok(ExitCode::SUCCESS);
            }
            let pct =
                |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{:.2}%", x * 100.0));
            let variants: Vec<&Value> = r["variants"].as_array().into_iter().flatten().collect();
            let number = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.4}"));
            // Outcome columns that some variant has a figure for.
            let outcome_cols: Vec<(&str, &str, bool)> = [
                ("accuracy", "ACCURACY", true),
                ("precision", "PRECISION", true),
                ("recall", "RECALL", true),
                ("f1", "F1", false),
                ("roc_auc", "ROC AUC", false),
                ("mae", "MAE", false),
                ("rmse", "RMSE", false),
            ]
            .into_iter()
            .filter(|(k, _, _)| variants.iter().any(|v| v[*k].is_number()))
            .collect();
            let rows: Vec<Vec<String>> = variants
                .iter()
                .map(|v| {
                    let mut row = vec![
                        text(&v["name"]),
                        v["weight"].as_f64().map_or("-".into(), |w| format!("{w}%")),
                        text(&v["requests"]),
                        pct(&v["error_rate"]),
                        ms(&v["p99_ms"]),
                        text(&v["feedback_rows"]),
                    ];
                    for (k, _, is_pct) in &outcome_cols {
                        row.push(if *is_pct { pct(&v[*k]) } else { number(&v[*k]) });
                    }
                    row
                })
                .collect();
            let mut headers =
                vec!["VARIANT", "WEIGHT", "REQUESTS", "ERRORS", "P99 MS", "TRUTH ROWS"];
            headers.extend(outcome_cols.iter().map(|(_, h, _)| *h));
            table(&headers, &rows)?;
            for c in r["comparisons"].as_array().into_iter().flatten() {
                for m in c["metrics"].as_array().into_iter().flatten() {
                    let num =
                        |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:+.4}"));
                    if m["interval"].is_null() {
                        println!(
                            "{} vs {}, {}: difference {}",
                            text(&c["variant"]),
                            text(&c["against"]),
                            text(&m["metric"]),
                            num(&m["effect"]),
                        );
                        continue;
                    }
                    println!(
                        "{} vs {}, {}: effect {} (95% {} to {}), p = {}, always-valid p = {}",
                        text(&c["variant"]),
                        text(&c["against"]),
                        text(&m["metric"]),
                        num(&m["effect"]),
                        num(&m["interval"][0]),
                        num(&m["interval"][1]),
                        m["p_value"].as_f64().map_or("-".into(), |p| format!("{p:.4}")),
                        m["always_valid_p"].as_f64().map_or("-".into(), |p| format!("{p:.4}")),
                    );
                }
            }
            match r["sample_ratio"]["p_value"].as_f64() {
                Some(p) if p < 0.001 => println!(
                    "sample ratio MISMATCH (p = {p:.2e}): traffic is not split as the weights say; do not trust these figures"
                ),
                Some(p) => println!("sample ratio ok (p = {p:.3})"),
                None => println!("sample ratio: not enough traffic to check"),
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
