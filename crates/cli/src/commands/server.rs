//! `slipway server`: the API, the web UI and an in-process job worker.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use slipway_core::jobs::{Worker, WorkerOptions};
use tokio::sync::watch;

use crate::Global;
use crate::config::StoreArgs;

/// How often a server records its own CPU and memory as gauges.
const PROCESS_SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  slipway server\n  slipway server --port 0            pick a free port (printed on the first line)\n  SLIPWAY_AUTH_TOKEN=s3cret slipway server --host 0.0.0.0"
)]
pub(crate) struct ServerArgs {
    /// Address to listen on; beyond loopback an auth token is required [default: 127.0.0.1]
    #[arg(long, env = "SLIPWAY_HOST")]
    host: Option<String>,
    /// Port to listen on; 0 picks a free one [default: 5000]
    #[arg(long, env = "SLIPWAY_PORT")]
    port: Option<u16>,
    /// Require `Authorization: Bearer TOKEN` on every request
    #[arg(long, env = "SLIPWAY_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// Do not run a job worker inside the server
    #[arg(long)]
    no_worker: bool,
    /// NAME=COMMAND: a command alert rules may run (as a tracked run, via `sh -c`) when they
    /// fire, e.g. --action retrain='python retrain.py' (repeatable)
    #[arg(long = "action", value_name = "NAME=COMMAND")]
    actions: Vec<String>,
    #[command(flatten)]
    stores: StoreArgs,
}

pub(crate) async fn run(args: ServerArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    let settings = args.stores.resolve()?;
    let host = args.host.or(settings.file.host.clone()).unwrap_or_else(|| "127.0.0.1".into());
    let port = args.port.or(settings.file.port).unwrap_or(5000);
    let token = args.auth_token.or(settings.file.auth_token.clone()).filter(|t| !t.is_empty());
    let run_worker = !args.no_worker
        && std::env::var("SLIPWAY_WORKER").map(|v| v != "false" && v != "0").unwrap_or(true)
        && settings.file.worker.unwrap_or(true);
    server::check_bind(&host, token.as_deref())?;
    crate::init_logging(settings.file.log.as_deref());

    let mut actions = std::collections::BTreeMap::new();
    for a in &args.actions {
        let (name, command) = a
            .split_once('=')
            .filter(|(n, c)| !n.is_empty() && !c.trim().is_empty())
            .ok_or_else(|| anyhow::anyhow!("--action '{a}' is not NAME=COMMAND"))?;
        actions.insert(name.to_string(), command.to_string());
    }
    let mut stores = super::open_stores(&settings).await?;
    stores.alerts = stores.alerts.clone().with_actions(actions);
    let (listener, addr) = super::listen(&host, port).await?;
    tracing::info!(
        target: "server",
        %addr,
        metadata_store = stores.db.display_url(),
        blob_store = stores.blobs.location(),
        auth = token.is_some(),
        worker = run_worker,
        "serving"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let sweeper = {
        let blobs = stores.blobs.clone();
        tokio::spawn(async move {
            match blobs.sweep_tmp(std::time::Duration::from_secs(24 * 3600)).await {
                Ok(n) if n > 0 => tracing::info!(target: "server", n, "removed abandoned uploads"),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(target: "server", error = %e, "sweeping abandoned uploads")
                }
            }
        })
    };
    // Tuning trials this server's worker runs log to this server.
    let runner = std::sync::Arc::new(super::tune_trial::TrialRunner {
        tuning: stores.tuning.clone(),
        artifacts: track::Artifacts::new(stores.db.clone(), stores.blobs.clone()),
        api_url: loopback_url(addr),
        token: token.clone(),
    });
    let worker_task = run_worker.then(|| {
        let options =
            WorkerOptions { poll_interval: settings.poll_interval, ..WorkerOptions::default() };
        let worker = Worker::new(
            stores.queue.clone(),
            super::handlers(&stores, Some(runner.clone())),
            options,
        );
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            worker
                .run(async move {
                    let _ = stop.wait_for(|s| *s).await.map(|_| ());
                })
                .await
        })
    });

    // Variant counts to the store each second, and the rollouts this process leads.
    let background = tokio::spawn(::serve::run_background(
        stores.serving.clone(),
        true,
        std::time::Duration::from_secs(1),
        stop_rx.clone(),
    ));
    // Each second: monitors judge each window of their endpoint's log once it has closed and
    // been written; alert rules move their alerts on; due webhooks are sent. Every 15 s this
    // process's CPU and memory are kept as gauges of its own (for gauge alert rules).
    let judging = {
        let (monitors, alerts) = (stores.monitors.clone(), stores.alerts.clone());
        let (gauges, replica) = (stores.gauges.clone(), stores.serving.replica().to_string());
        let mut sampler = ::monitor::gauges::ProcessSampler::default();
        let mut sampled: Option<std::time::Instant> = None;
        // How an action's run reaches this server.
        let url = loopback_url(addr);
        let token = token.clone();
        tokio::spawn(async move {
            loop {
                if sampled.is_none_or(|t| t.elapsed() >= PROCESS_SAMPLE_EVERY) {
                    sampled = Some(std::time::Instant::now());
                    let points = sampler.sample(&replica);
                    if !points.is_empty()
                        && let Err(e) = gauges.record_own(&points).await
                    {
                        tracing::warn!(target: "monitor::gauges", error = %e, "recording process CPU and memory");
                    }
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if let Err(e) = monitors.tick().await {
                    tracing::warn!(target: "monitor", error = %e, "judging monitors");
                }
                if let Err(e) = alerts.tick().await {
                    tracing::warn!(target: "alerts", error = %e, "evaluating alert rules");
                }
                if let Err(e) = alerts.deliver_due().await {
                    tracing::warn!(target: "alerts", error = %e, "sending webhooks");
                }
                match alerts.claim_action().await {
                    Ok(Some((action, command))) => {
                        let (alerts, url, token) = (alerts.clone(), url.clone(), token.clone());
                        tokio::spawn(async move {
                            run_action(&alerts, &url, token.as_deref(), action, &command).await
                        });
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(target: "alerts", error = %e, "claiming an action"),
                }
            }
        })
    };
    // Clients may not submit tuning trials: those run a study file's command, which only
    // `slipway tune run` (with access to the stores) may set.
    let kinds = super::handlers(&stores, Some(runner))
        .kinds()
        .iter()
        .filter(|k| **k != ::tune::trial_jobs::KIND)
        .map(|k| k.to_string())
        .collect();
    let state = stores.app_state(token).with_job_kinds(kinds);
    let app = server::router(state);
    let shutdown = async move {
        super::shutdown_signal().await;
        tracing::info!(target: "server", "shutting down: finishing requests in flight");
        let _ = stop_tx.send(true);
    };
    server::serve(listener, app, shutdown).await.context("serving")?;
    judging.abort();
    // The round under way finishes; then what requests answered since the stop buffered is
    // written too.
    let _ = background.await;
    stores.serving.flush_at_exit().await;
    if let Some(task) = worker_task {
        let _ = task.await;
    }
    sweeper.abort();
    stores.db.close().await;
    tracing::info!(target: "server", "stopped");
    Ok(ExitCode::SUCCESS)
}

/// Runs an alert's action: its command as a tracked run (`slipway run`, experiment
/// `alert-actions`), with the alert's context in its environment; records the run and its exit.
/// How a process this server starts reaches it.
fn loopback_url(addr: std::net::SocketAddr) -> String {
    match addr {
        std::net::SocketAddr::V4(a) if a.ip().is_unspecified() => {
            format!("http://127.0.0.1:{}", a.port())
        }
        std::net::SocketAddr::V6(a) if a.ip().is_unspecified() => {
            format!("http://[::1]:{}", a.port())
        }
        a => format!("http://{a}"),
    }
}

async fn run_action(
    alerts: &::monitor::alerts::Alerts,
    url: &str,
    token: Option<&str>,
    action: ::monitor::alerts::ActionRun,
    command: &str,
) {
    let c = &action.context;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let drifted: Vec<String> = c["drifted"].as_array().into_iter().flatten().map(text).collect();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            let _ = alerts
                .finish_action(&action.id, None, None, &format!("cannot find this binary: {e}"))
                .await;
            return;
        }
    };
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(["--server", url, "run", "--experiment", "alert-actions", "--name"])
        .arg(format!("{}-{}", action.rule, action.action))
        .args(["--tag", &format!("slipway.alert={}", action.alert_id)])
        .args(["--tag", &format!("slipway.alert_rule={}", action.rule)])
        .args(["--", "sh", "-c", command])
        .env("SLIPWAY_ALERT_ID", &action.alert_id)
        .env("SLIPWAY_ALERT_RULE", &action.rule)
        .env("SLIPWAY_ALERT_CONTEXT", c.to_string())
        .env("SLIPWAY_ENDPOINT", text(&c["endpoint"]))
        .env("SLIPWAY_MODEL_VERSION", text(&c["model_version"]))
        .env("SLIPWAY_MONITOR", text(&c["monitor"]))
        .env("SLIPWAY_WINDOW_MS", text(&c["window_ms"]))
        .env("SLIPWAY_DRIFTED_FEATURES", drifted.join(","))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    match token {
        Some(t) => cmd.env("SLIPWAY_TOKEN", t),
        None => cmd.env_remove("SLIPWAY_TOKEN"),
    };
    let out = match cmd.output().await {
        Ok(o) => o,
        Err(e) => {
            let _ = alerts
                .finish_action(&action.id, None, None, &format!("cannot start the run: {e}"))
                .await;
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    // `slipway run` says "slipway: run NAME (RUN_ID) in experiment …".
    let run_id = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("slipway: run ")
                .and_then(|r| r.split_once(" ("))
                .and_then(|(_, r)| r.split_once(')'))
        })
        .map(|(id, _)| id.to_string());
    let code = out.status.code();
    let reason = if code == Some(0) {
        String::new()
    } else {
        stderr.lines().last().unwrap_or("the run failed").chars().take(500).collect()
    };
    tracing::info!(target: "alerts", rule = %action.rule, action = %action.action, ?code, run = ?run_id, "alert action ran");
    if let Err(e) = alerts.finish_action(&action.id, run_id.as_deref(), code, &reason).await {
        tracing::warn!(target: "alerts", error = %e, "recording an action's run");
    }
}
