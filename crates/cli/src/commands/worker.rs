//! `slipway worker`: runs jobs from the shared queue, on this host or any other.

use std::process::ExitCode;

use clap::Args;
use slipway_core::jobs::{Worker, WorkerOptions};

use crate::Global;
use crate::config::StoreArgs;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  slipway worker --db postgres://slipway:pw@db.internal/slipway --artifacts s3://ml/slipway\n  slipway worker --once               run one due job, then exit"
)]
pub(crate) struct WorkerArgs {
    /// Name of this worker in job history [default: HOST:PID:RANDOM]
    #[arg(long, env = "SLIPWAY_WORKER_ID")]
    id: Option<String>,
    /// Run at most one due job, then exit
    #[arg(long)]
    once: bool,
    /// Jobs to run at once (e.g. tuning trials)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    #[command(flatten)]
    stores: StoreArgs,
}

pub(crate) async fn run(args: WorkerArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let settings = args.stores.resolve()?;
    crate::init_logging(settings.file.log.as_deref());
    let stores = super::open_stores(&settings).await?;
    let mut options =
        WorkerOptions { poll_interval: settings.poll_interval, ..WorkerOptions::default() };
    if let Some(id) = args.id {
        options.id = id;
    }
    let runner = super::trial_api(&stores).await?;
    let handlers = super::handlers(&stores, Some(runner.clone()));
    let kinds: Vec<String> = handlers.kinds().iter().map(|k| k.to_string()).collect();
    let worker = Worker::new(stores.queue.clone(), handlers, options.clone());
    if !global.json {
        println!("slipway worker {} running job kinds: {}", worker.id(), kinds.join(", "));
    }
    if args.once {
        let job = worker.step().await?;
        if global.json {
            crate::output::json(&job)?;
        } else {
            match job {
                Some(job) => println!("job {} {}", job.id, job.status.as_str()),
                None => println!("no job was due"),
            }
        }
    } else if args.concurrency == 1 {
        worker.run(super::shutdown_signal()).await;
        stopped(&runner, &[worker.id().to_string()]).await;
    } else {
        // Several loops on the same queue, each with an id of its own.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        let mut ids = Vec::new();
        for i in 0..args.concurrency {
            let mut options = options.clone();
            options.id = format!("{}-{i}", worker.id());
            ids.push(options.id.clone());
            let w = Worker::new(
                stores.queue.clone(),
                super::handlers(&stores, Some(runner.clone())),
                options,
            );
            let mut stop = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                w.run(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
            }));
        }
        super::shutdown_signal().await;
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        stopped(&runner, &ids).await;
    }
    stores.db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// After a shutdown: the tuning trials these workers were running end FAIL at once.
async fn stopped(runner: &super::tune_trial::TrialRunner, ids: &[String]) {
    let why = "interrupted: its `slipway worker` was stopped (it runs again on another worker)";
    if let Err(e) = super::tune_trial::fail_interrupted(&runner.tuning, None, ids, why).await {
        tracing::warn!(target: "tune", error = %e, "cannot fail the interrupted trials; their leases will");
    }
}
