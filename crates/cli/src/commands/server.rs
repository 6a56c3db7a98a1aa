//! `slipway server`: the API, the web UI and an in-process job worker.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use slipway_core::jobs::{Worker, WorkerOptions};
use tokio::sync::watch;

use crate::Global;
use crate::config::StoreArgs;

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

    let stores = super::open_stores(&settings).await?;
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
    let worker_task = run_worker.then(|| {
        let options =
            WorkerOptions { poll_interval: settings.poll_interval, ..WorkerOptions::default() };
        let worker = Worker::new(stores.queue.clone(), super::handlers(&stores), options);
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
    ));
    // Each second: monitors judge each window of their endpoint's log once it has closed and
    // been written; alert rules move their alerts on; due webhooks are sent.
    let judging = {
        let (monitors, alerts) = (stores.monitors.clone(), stores.alerts.clone());
        tokio::spawn(async move {
            loop {
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
            }
        })
    };
    let kinds = super::handlers(&stores).kinds().iter().map(|k| k.to_string()).collect();
    let state = stores.app_state(token).with_job_kinds(kinds);
    let app = server::router(state);
    let shutdown = async move {
        super::shutdown_signal().await;
        tracing::info!(target: "server", "shutting down: finishing requests in flight");
        let _ = stop_tx.send(true);
    };
    server::serve(listener, app, shutdown).await.context("serving")?;
    background.abort();
    judging.abort();
    // What the prediction log holds is written before the process ends.
    if let Err(e) = stores.serving.flush_log(true).await {
        tracing::warn!(target: "serve::log", error = %e, "writing the prediction log at exit");
    }
    if let Some(task) = worker_task {
        let _ = task.await;
    }
    sweeper.abort();
    stores.db.close().await;
    tracing::info!(target: "server", "stopped");
    Ok(ExitCode::SUCCESS)
}
