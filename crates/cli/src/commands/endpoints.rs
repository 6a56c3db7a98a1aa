//! `slipway endpoints create|list|show|split|shadow|abtest|log|predictions|delete`: named
//! endpoints serving a model version or an alias (or several, by weight, with a shadow), on a
//! server, and the log of what they were asked and answered.

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
    /// Show or change what an endpoint logs for monitoring: the share of requests (by request
    /// id), a cap on rows per second per process, the window of its profiles, and the names of
    /// its inputs (by default its training table's columns, found through lineage)
    #[command(after_help = "Examples:\n  \
        slipway endpoints log falls\n  \
        slipway endpoints log falls --sample 0.1 --max-per-second 2000\n  \
        slipway endpoints log falls --window 60 --features hip_y,head_y,speed,aspect\n  \
        slipway endpoints log falls --off\n\n\
        Logged rows are written as Parquet segments every 5 s (or 50,000 rows); a process killed\n\
        with -9 loses at most those 5 s.")]
    Log {
        name: String,
        /// The share of requests logged, 0 to 1 (default 1: all)
        #[arg(long, conflicts_with = "off")]
        sample: Option<f64>,
        /// Rows logged per second by each process at most (default 10000)
        #[arg(long)]
        max_per_second: Option<u64>,
        /// The window of the log's profiles, in seconds (default 300)
        #[arg(long)]
        window: Option<u64>,
        /// Names of the inputs, comma-separated, in the model's order
        #[arg(long, value_delimiter = ',')]
        features: Option<Vec<String>>,
        /// Log nothing (same as --sample 0)
        #[arg(long)]
        off: bool,
    },
    /// Logged predictions of an endpoint: inputs, outputs, variant, latency, request id, time
    #[command(after_help = "Examples:\n  \
        slipway endpoints predictions falls                      # the last hour, newest 20 rows\n  \
        slipway endpoints predictions falls --since-hours 24 --out day.parquet\n  \
        slipway endpoints predictions falls --limit 1000 --json")]
    Predictions {
        name: String,
        /// Look back this many hours (default 1)
        #[arg(long, default_value_t = 1.0)]
        since_hours: f64,
        /// Rows of one model version only
        #[arg(long)]
        version: Option<i64>,
        /// Most rows (default: 20 printed; every row with --out)
        #[arg(long)]
        limit: Option<usize>,
        /// Write the rows to this Parquet file
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Outcome metrics per window and variant from ground truth (POST .../feedback): accuracy,
    /// precision, recall, F1, ROC AUC, MAE, RMSE
    #[command(after_help = "Examples:\n  \
        slipway endpoints performance falls\n  \
        slipway endpoints performance falls --window 3600 --positive fall --since-hours 72")]
    Performance {
        name: String,
        /// Look back this many hours (default 24)
        #[arg(long, default_value_t = 24.0)]
        since_hours: f64,
        /// Window length in seconds (default: the endpoint's log window)
        #[arg(long)]
        window: Option<u64>,
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
        EndpointsCommand::Log { name, sample, max_per_second, window, features, off } => {
            let path = format!("/api/v1/endpoints/{}/log", encode(&name));
            let sample = if off { Some(0.0) } else { sample };
            let changes = sample.is_some()
                || max_per_second.is_some()
                || window.is_some()
                || features.is_some();
            let log: Value = if changes {
                let body = json!({
                    "sample": sample, "max_per_second": max_per_second,
                    "window_s": window, "features": features,
                });
                let body = Value::Object(
                    body.as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                );
                client.put_json(&path, &body).await?
            } else {
                client.get(&path).await?
            };
            if global.json {
                crate::output::json(&log)?;
            } else {
                print_log(&name, &log);
            }
        }
        EndpointsCommand::Predictions { name, since_hours, version, limit, out } => {
            if !(since_hours > 0.0 && since_hours.is_finite()) {
                anyhow::bail!("--since-hours must be a positive number of hours");
            }
            let since = slipway_core::now_ms() - (since_hours * 3_600_000.0) as i64;
            let mut path =
                format!("/api/v1/endpoints/{}/predictions?since_ms={since}", encode(&name));
            if let Some(v) = version {
                path.push_str(&format!("&version={v}"));
            }
            if let Some(out) = out {
                if let Some(n) = limit {
                    path.push_str(&format!("&limit={n}"));
                }
                let bytes = client.get_bytes(&path).await?;
                std::fs::write(&out, &bytes)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
                if global.json {
                    crate::output::json(&json!({"out": out, "bytes": bytes.len()}))?;
                } else {
                    println!("wrote {} ({} bytes of Parquet)", out.display(), bytes.len());
                }
                return Ok(ExitCode::SUCCESS);
            }
            path.push_str(&format!("&format=json&limit={}", limit.unwrap_or(20)));
            let rows: Value = client.get(&path).await?;
            if global.json {
                crate::output::json(&rows)?;
            } else {
                print_rows(&rows);
            }
        }
        EndpointsCommand::Performance { name, since_hours, window, positive } => {
            if !(since_hours > 0.0 && since_hours.is_finite()) {
                anyhow::bail!("--since-hours must be a positive number of hours");
            }
            let since = slipway_core::now_ms() - (since_hours * 3_600_000.0) as i64;
            let mut path = format!(
                "/api/v1/endpoints/{}/performance?since_ms={since}&positive={}",
                encode(&name),
                encode(&positive)
            );
            if let Some(w) = window {
                path.push_str(&format!("&window_s={w}"));
            }
            let r: Value = client.get(&path).await?;
            if global.json {
                crate::output::json(&r)?;
                return Ok(ExitCode::SUCCESS);
            }
            let windows = r["windows"].as_array().cloned().unwrap_or_default();
            if windows.is_empty() {
                println!(
                    "no ground truth for {name}'s answers in that time (POST /api/v1/endpoints/{name}/feedback)"
                );
                return Ok(ExitCode::SUCCESS);
            }
            let f = |v: &Value| v.as_f64().map_or("—".to_string(), |x| format!("{x:.4}"));
            let rows: Vec<Vec<String>> = windows
                .iter()
                .map(|w| {
                    vec![
                        time(w["window_ms"].as_i64()),
                        text(&w["variant"]),
                        text(&w["feedback_rows"]),
                        f(&w["accuracy"]),
                        f(&w["precision"]),
                        f(&w["recall"]),
                        f(&w["f1"]),
                        f(&w["roc_auc"]),
                        f(&w["mae"]),
                        f(&w["rmse"]),
                    ]
                })
                .collect();
            let _ = table(
                &[
                    "Window",
                    "Variant",
                    "Rows",
                    "Accuracy",
                    "Precision",
                    "Recall",
                    "F1",
                    "ROC AUC",
                    "MAE",
                    "RMSE",
                ],
                &rows,
            );
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

fn print_log(name: &str, log: &Value) {
    let st = &log["settings"];
    let sample = st["sample"].as_f64().unwrap_or(0.0);
    if sample == 0.0 {
        println!("endpoint {name}: logging off");
    } else {
        println!(
            "endpoint {name}: logs {}% of requests, at most {} rows/s per process, profiles per {} s",
            sample * 100.0,
            text(&st["max_per_second"]),
            text(&st["window_s"]),
        );
    }
    let features: Vec<String> = st["features"].as_array().into_iter().flatten().map(text).collect();
    if !features.is_empty() {
        println!("inputs named {}", features.join(", "));
    }
    println!(
        "{} rows in {} segments ({} bytes) over the last 30 days{}",
        text(&log["rows"]),
        text(&log["segments"]),
        text(&log["bytes"]),
        match log["last_ms"].as_i64() {
            Some(ms) => format!(", newest {}", time(Some(ms))),
            None => String::new(),
        }
    );
    let p = &log["process"];
    println!(
        "this process: {} logged, {} written, {} buffered, {} over the cap, {} dropped (buffer full)",
        text(&p["logged"]),
        text(&p["written"]),
        text(&p["buffered"]),
        text(&p["capped"]),
        text(&p["dropped"]),
    );
}

fn print_rows(rows: &Value) {
    let list = rows["rows"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no logged predictions in that time");
        return;
    }
    let mut headers: Vec<String> = Vec::new();
    for r in &list {
        for k in r.as_object().into_iter().flat_map(|o| o.keys()) {
            if !headers.contains(k) && k != "request_id" && k != "row" {
                headers.push(k.clone());
            }
        }
    }
    let body: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            headers
                .iter()
                .map(|h| match (h.as_str(), &r[h]) {
                    ("at", v) => time(v.as_i64()),
                    (_, Value::Number(n)) if n.is_f64() => {
                        format!("{:.4}", n.as_f64().unwrap_or(f64::NAN))
                    }
                    (_, v) => text(v),
                })
                .collect()
        })
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let _ = table(&headers, &body);
    if rows["truncated"] == json!(true) {
        println!("(more rows: --limit N, or --out FILE for all of them)");
    }
}
