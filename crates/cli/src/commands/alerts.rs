//! `slipway alerts list|rules|actions|create|delete`: alert rules on monitors and custom gauges,
//! the alerts they raised, their webhooks and the actions (retraining) they ran, on a server.

use std::process::ExitCode;

use anyhow::anyhow;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::Global;
use crate::client::Client;
use crate::commands::runs::encode;
use crate::output::cell as text;
use crate::output::{table, time};

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum AlertsCommand {
    /// The alerts, newest first: state, value, when, what raised them, webhook deliveries
    #[command(after_help = "Examples:\n  \
        slipway alerts list\n  \
        slipway alerts list --state firing --json")]
    List {
        /// pending, firing, resolved or cleared (default: all but cleared)
        #[arg(long)]
        state: Option<String>,
    },
    /// Every alert rule
    Rules,
    /// The commands firing alerts ran (tracked runs), or why they were skipped
    Actions,
    /// Create a rule on a monitor's verdict or on a gauge
    #[command(after_help = "Examples:\n  \
        slipway alerts create skew-4k --monitor falls-skew --webhook https://hooks.example.org/slipway --secret s3cret\n  \
        slipway alerts create camera-off --gauge camera_power_state --label camera=ward3-2 --op '<' --threshold 1 --for-seconds 60\n  \
        slipway alerts create drift-half --monitor falls-drift --op '>=' --threshold 0.5\n  \
        slipway alerts create errors --endpoint falls --metric error_rate --op '>' --threshold 0.01 --over-seconds 60\n  \
        slipway alerts create accuracy --endpoint falls --metric accuracy --op '<' --threshold 0.9 --over-seconds 3600\n  \
        slipway alerts create skew-2 --monitor falls-skew --windows 2   # two windows in a row\n  \
        slipway alerts create retrain --monitor falls-drift --windows 3 --action retrain --cooldown-seconds 86400\n\n\
        Webhooks are JSON POSTs with Idempotency-Key and, with --secret,\n\
        X-Slipway-Signature: t=<unix s>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">.\n\
        Private and loopback targets are refused unless --allow-private.")]
    Create {
        name: String,
        /// Fire on this monitor's verdict (or, with --op/--threshold, its share of drifted columns)
        #[arg(long, conflicts_with = "gauge")]
        monitor: Option<String>,
        /// Fire on this custom gauge (any series whose labels include --label)
        #[arg(long)]
        gauge: Option<String>,
        /// Fire on this endpoint's --metric over the last --over-seconds
        #[arg(long, conflicts_with_all = ["monitor", "gauge"])]
        endpoint: Option<String>,
        /// error_rate, p99_latency_ms, requests_per_s; or from ground truth accuracy, precision,
        /// recall, f1, roc_auc, mae, rmse
        #[arg(long, requires = "endpoint")]
        metric: Option<String>,
        #[arg(long, default_value_t = 300, requires = "endpoint")]
        over_seconds: u64,
        /// The label precision, recall, F1 and ROC AUC are about
        #[arg(long, requires = "endpoint")]
        positive: Option<String>,
        /// KEY=VALUE a gauge series must have (repeatable)
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// >, >=, <, <=, == or !=
        #[arg(long)]
        op: Option<String>,
        #[arg(long, allow_hyphen_values = true)]
        threshold: Option<f64>,
        /// How long the condition must hold before the alert fires
        #[arg(long, default_value_t = 0)]
        for_seconds: u64,
        /// Monitor rules: consecutive judged windows that must meet the condition
        #[arg(long, default_value_t = 1)]
        windows: u32,
        /// POST each firing and resolution here
        #[arg(long)]
        webhook: Option<String>,
        /// Sign webhook bodies with this secret
        #[arg(long, requires = "webhook")]
        secret: Option<String>,
        /// Allow a loopback or private webhook target
        #[arg(long, requires = "webhook")]
        allow_private: bool,
        /// Run this server-configured action (slipway server --action NAME=COMMAND) on firing
        #[arg(long)]
        action: Option<String>,
        /// No new action run within this many seconds of the last
        #[arg(long, default_value_t = 3600, requires = "action")]
        cooldown_seconds: u64,
        /// At most this many action runs in any 24 hours
        #[arg(long, default_value_t = 3, requires = "action")]
        max_per_day: u32,
    },
    /// Delete a rule (its past alerts stay)
    Delete { name: String },
}

pub(crate) async fn run(cmd: AlertsCommand, global: &Global) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    match cmd {
        AlertsCommand::List { state } => {
            let path = match &state {
                Some(s) => format!("/api/v1/alerts?state={}", encode(s)),
                None => "/api/v1/alerts".to_string(),
            };
            let list: Value = client.get(&path).await?;
            if global.json {
                crate::output::json(&list)?;
                return Ok(ExitCode::SUCCESS);
            }
            let alerts = list["alerts"].as_array().cloned().unwrap_or_default();
            if alerts.is_empty() {
                println!("no alerts");
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = alerts
                .iter()
                .map(|a| {
                    let c = &a["context"];
                    let what = if c["monitor"].is_string() {
                        let drifted: Vec<String> =
                            c["drifted"].as_array().into_iter().flatten().map(text).collect();
                        format!(
                            "{} window {}: {}",
                            text(&c["monitor"]),
                            time(c["window_ms"].as_i64()),
                            drifted.join(", ")
                        )
                    } else if c["endpoint"].is_string() {
                        format!(
                            "{} {} over {} s",
                            text(&c["endpoint"]),
                            text(&c["metric"]),
                            text(&c["over_s"])
                        )
                    } else {
                        let labels: Vec<String> = c["labels"]
                            .as_object()
                            .into_iter()
                            .flatten()
                            .map(|(k, v)| format!("{k}={}", text(v)))
                            .collect();
                        format!("{}{{{}}}", text(&c["gauge"]), labels.join(","))
                    };
                    let hooks: Vec<String> = a["deliveries"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|d| {
                            let how = if d["delivered_ms"].is_i64() {
                                "sent".to_string()
                            } else if d["given_up"] == json!(true) {
                                "given up".to_string()
                            } else {
                                format!("retrying ({} tries)", text(&d["attempts"]))
                            };
                            format!("{} {how}", text(&d["event"]))
                        })
                        .collect();
                    vec![
                        text(&a["rule"]),
                        text(&a["state"]),
                        format!("{:.4}", a["value"].as_f64().unwrap_or(f64::NAN)),
                        time(a["fired_ms"].as_i64().or(a["started_ms"].as_i64())),
                        time(a["resolved_ms"].as_i64()),
                        what,
                        hooks.join("; "),
                    ]
                })
                .collect();
            let _ =
                table(&["Rule", "State", "Value", "Fired", "Resolved", "What", "Webhook"], &rows);
        }
        AlertsCommand::Rules => {
            let list: Value = client.get("/api/v1/alerts/rules").await?;
            if global.json {
                crate::output::json(&list)?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    let on = if r["monitor"].is_string() {
                        format!("monitor {}", text(&r["monitor"]))
                    } else if r["endpoint"].is_string() {
                        format!("endpoint {} {}", text(&r["endpoint"]), text(&r["metric"]))
                    } else {
                        format!("gauge {}", text(&r["gauge"]))
                    };
                    let cond = match (r["op"].as_str(), r["threshold"].as_f64()) {
                        (Some(op), Some(t)) => format!("{op} {t}"),
                        _ => "drift".to_string(),
                    };
                    vec![
                        text(&r["name"]),
                        on,
                        cond,
                        format!("{} s", text(&r["for_s"])),
                        text(&r["webhook"]["url"]),
                    ]
                })
                .collect();
            let _ = table(&["Rule", "On", "Condition", "For", "Webhook"], &rows);
        }
        AlertsCommand::Create {
            name,
            monitor,
            gauge,
            endpoint,
            metric,
            over_seconds,
            positive,
            labels,
            op,
            threshold,
            for_seconds,
            windows,
            webhook,
            secret,
            allow_private,
            action,
            cooldown_seconds,
            max_per_day,
        } => {
            let mut body = json!({"name": name, "for_s": for_seconds, "windows": windows});
            if let Some(m) = monitor {
                body["monitor"] = json!(m);
            }
            if let Some(g) = gauge {
                body["gauge"] = json!(g);
            }
            if let Some(e) = endpoint {
                body["endpoint"] = json!(e);
                body["metric"] = json!(metric);
                body["over_s"] = json!(over_seconds);
                if let Some(p) = positive {
                    body["positive"] = json!(p);
                }
            }
            if !labels.is_empty() {
                let mut m = serde_json::Map::new();
                for l in &labels {
                    let (k, v) = l
                        .split_once('=')
                        .ok_or_else(|| anyhow!("--label '{l}' is not KEY=VALUE"))?;
                    m.insert(k.to_string(), json!(v));
                }
                body["labels"] = Value::Object(m);
            }
            if let Some(op) = op {
                body["op"] = json!(op);
            }
            if let Some(t) = threshold {
                body["threshold"] = json!(t);
            }
            if let Some(url) = webhook {
                body["webhook"] =
                    json!({"url": url, "secret": secret, "allow_private": allow_private});
            }
            if let Some(a) = action {
                body["action"] =
                    json!({"name": a, "cooldown_s": cooldown_seconds, "max_per_day": max_per_day});
            }
            let rule: Value = client.post_json("/api/v1/alerts/rules", &body).await?;
            if global.json {
                crate::output::json(&rule)?;
            } else {
                println!("alert rule {} created", text(&rule["name"]));
            }
        }
        AlertsCommand::Actions => {
            let list: Value = client.get("/api/v1/alerts/actions").await?;
            if global.json {
                crate::output::json(&list)?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list["actions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    vec![
                        text(&a["rule"]),
                        text(&a["action"]),
                        text(&a["state"]),
                        time(a["created_ms"].as_i64()),
                        text(&a["run_id"]),
                        text(&a["exit_code"]),
                        text(&a["reason"]),
                    ]
                })
                .collect();
            let _ = table(&["Rule", "Action", "State", "Queued", "Run", "Exit", "Why"], &rows);
        }
        AlertsCommand::Delete { name } => {
            let _: Value =
                client.delete(&format!("/api/v1/alerts/rules/{}", encode(&name))).await?;
            if global.json {
                crate::output::json(&json!({ "deleted": name }))?;
            } else {
                println!("alert rule {name} deleted");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
