//! `slipway monitor create|list|report|delete`: monitors that judge each window of an
//! endpoint's prediction log against the model's training table (skew) or an earlier window
//! (drift, prediction drift), with Evidently's default tests, on a server.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::Global;
use crate::client::Client;
use crate::commands::runs::encode;
use crate::output::cell as text;
use crate::output::{table, time};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Kind {
    /// Serving windows against the model's training table (its lineage's dataset version)
    Skew,
    /// Serving windows against the window before (or a pinned one), on the inputs
    Drift,
    /// The same on the model's predictions
    PredictionDrift,
}

#[derive(Debug, Subcommand)]
pub(crate) enum MonitorCommand {
    /// Watch an endpoint: each closed window of its prediction log is judged and kept
    #[command(after_help = "Examples:\n  \
        slipway monitor create falls-skew --endpoint falls --kind skew\n  \
        slipway monitor create falls-skew --endpoint falls --kind skew --reference fall-features@3\n  \
        slipway monitor create falls-drift --endpoint falls --kind drift --test speed=psi --threshold speed=0.2\n  \
        slipway monitor create falls-preds --endpoint falls --kind prediction-drift\n\n\
        Windows are the endpoint's log windows (slipway endpoints log falls --window 300).")]
    Create {
        name: String,
        #[arg(long)]
        endpoint: String,
        #[arg(long, value_enum)]
        kind: Kind,
        /// Skew: the training table, NAME@VERSION (default: from the model's lineage)
        #[arg(long)]
        reference: Option<String>,
        /// Drift: the start (ms since the epoch) of a pinned baseline window
        #[arg(long)]
        baseline_window_ms: Option<i64>,
        /// Columns to compare, comma-separated (default: every input, or the prediction)
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        /// COLUMN=TEST instead of the default (ks, chisquare, z, wasserstein, jensenshannon, psi, kl_div)
        #[arg(long = "test", value_name = "COLUMN=TEST")]
        tests: Vec<String>,
        /// COLUMN=THRESHOLD instead of the test's default
        #[arg(long = "threshold", value_name = "COLUMN=X")]
        thresholds: Vec<String>,
        /// The share of drifted columns at which a window drifts
        #[arg(long, default_value_t = 0.5)]
        share: f64,
        /// Windows with fewer logged rows are not judged
        #[arg(long, default_value_t = 30)]
        min_rows: u64,
    },
    /// Every monitor with its latest verdict
    List,
    /// A monitor's verdicts: the latest window per column, and the history
    #[command(after_help = "Examples:\n  \
        slipway monitor report falls-skew              # the newest judged window\n  \
        slipway monitor report falls-skew --now        # judge the latest closed window now\n  \
        slipway monitor report falls-skew --window-ms 1765000000000 --json")]
    Report {
        name: String,
        /// Judge the latest closed window now (or --window-ms) rather than show the kept one
        #[arg(long)]
        now: bool,
        /// The window's start (ms): judge that window
        #[arg(long)]
        window_ms: Option<i64>,
    },
    /// Delete a monitor and its reports
    Delete { name: String },
}

fn pair(s: &str, what: &str) -> anyhow::Result<(String, String)> {
    s.split_once('=')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .ok_or_else(|| anyhow!("--{what} '{s}' is not COLUMN=VALUE"))
}

pub(crate) async fn run(cmd: MonitorCommand, global: &Global) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    match cmd {
        MonitorCommand::Create {
            name,
            endpoint,
            kind,
            reference,
            baseline_window_ms,
            columns,
            tests,
            thresholds,
            share,
            min_rows,
        } => {
            let tests: serde_json::Map<String, Value> = tests
                .iter()
                .map(|t| pair(t, "test").map(|(c, t)| (c, json!(t))))
                .collect::<anyhow::Result<_>>()?;
            let mut th = serde_json::Map::new();
            for t in &thresholds {
                let (c, x) = pair(t, "threshold")?;
                let x: f64 =
                    x.parse().map_err(|_| anyhow!("--threshold '{t}': '{x}' is not a number"))?;
                th.insert(c, json!(x));
            }
            let kind = match kind {
                Kind::Skew => "skew",
                Kind::Drift => "drift",
                Kind::PredictionDrift => "prediction_drift",
            };
            let mut body = json!({
                "name": name, "endpoint": endpoint, "kind": kind, "columns": columns,
                "tests": tests, "thresholds": th, "share": share, "min_rows": min_rows,
            });
            if let Some(r) = reference {
                body["reference"] = json!(r);
            }
            if let Some(b) = baseline_window_ms {
                body["baseline_window_ms"] = json!(b);
            }
            let m: Value = client.post_json("/api/v1/monitors", &body).await?;
            if global.json {
                crate::output::json(&m)?;
            } else {
                println!(
                    "monitor {} watches endpoint {} for {} (each closed window of its log)",
                    text(&m["name"]),
                    text(&m["endpoint"]),
                    kind.replace('_', " ")
                );
            }
        }
        MonitorCommand::List => {
            let list: Value = client.get("/api/v1/monitors").await?;
            if global.json {
                crate::output::json(&list)?;
                return Ok(ExitCode::SUCCESS);
            }
            let monitors = list["monitors"].as_array().cloned().unwrap_or_default();
            if monitors.is_empty() {
                println!("no monitors yet: slipway monitor create NAME --endpoint E --kind skew");
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = monitors
                .iter()
                .map(|m| {
                    let l = &m["latest"];
                    vec![
                        text(&m["name"]),
                        text(&m["endpoint"]),
                        text(&m["kind"]).replace('_', " "),
                        if l.is_null() { "—".into() } else { time(l["window_ms"].as_i64()) },
                        match l["drift"].as_bool() {
                            Some(true) => format!(
                                "DRIFT ({}/{})",
                                l["drifted"],
                                l["columns"].as_array().map_or(0, Vec::len)
                            ),
                            Some(false) => "ok".into(),
                            None => "—".into(),
                        },
                    ]
                })
                .collect();
            let _ = table(&["Monitor", "Endpoint", "Kind", "Latest window", "Verdict"], &rows);
        }
        MonitorCommand::Report { name, now, window_ms } => {
            let report: Value = if now || window_ms.is_some() {
                let q = window_ms.map(|w| format!("?window_ms={w}")).unwrap_or_default();
                client
                    .post_json(
                        &format!("/api/v1/monitors/{}/evaluate{q}", encode(&name)),
                        &json!({}),
                    )
                    .await?
            } else {
                let m: Value = client.get(&format!("/api/v1/monitors/{}", encode(&name))).await?;
                if m["latest"].is_null() {
                    bail!("monitor {name} has judged no window yet: try --now");
                }
                m["latest"].clone()
            };
            let history: Value =
                client.get(&format!("/api/v1/monitors/{}/reports", encode(&name))).await?;
            if global.json {
                crate::output::json(&json!({"report": report, "history": history["reports"]}))?;
                return Ok(ExitCode::SUCCESS);
            }
            print_report(&report, &history);
        }
        MonitorCommand::Delete { name } => {
            let _: Value = client.delete(&format!("/api/v1/monitors/{}", encode(&name))).await?;
            if global.json {
                crate::output::json(&json!({ "deleted": name }))?;
            } else {
                println!("monitor {name} deleted");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &Value, history: &Value) {
    let columns = r["columns"].as_array().cloned().unwrap_or_default();
    println!(
        "{}: window {} ({} s, {} rows) against {} ({} rows): {} of {} columns drifted — {}",
        text(&r["monitor"]),
        time(r["window_ms"].as_i64()),
        text(&r["window_s"]),
        text(&r["current_rows"]),
        text(&r["reference"]),
        text(&r["reference_rows"]),
        text(&r["drifted"]),
        columns.len(),
        if r["drift"] == json!(true) { "DRIFT" } else { "no drift" }
    );
    let rows: Vec<Vec<String>> = columns
        .iter()
        .map(|c| {
            vec![
                text(&c["column"]),
                text(&c["kind"]),
                text(&c["test"]),
                format!("{} {}", text(&c["statistic_name"]), fmt(&c["statistic"])),
                fmt(&c["threshold"]),
                if c["drift"] == json!(true) { "DRIFT".into() } else { "ok".into() },
            ]
        })
        .collect();
    let _ = table(&["Column", "Type", "Test", "Statistic", "Threshold", "Verdict"], &rows);
    let past: Vec<String> = history["reports"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .map(|h| if h["drift"] == json!(true) { "▇".to_string() } else { "▁".to_string() })
        .collect();
    if past.len() > 1 {
        println!("last {} windows (oldest first, ▇ = drift): {}", past.len(), past.concat());
    }
}

fn fmt(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e4) => format!("{x:.3e}"),
        Some(x) => format!("{x:.4}"),
        None => "—".into(),
    }
}
