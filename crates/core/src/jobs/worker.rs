//! The worker loop: claims jobs, runs their handlers with heartbeats, and records the outcome.
//!
//! The same loop runs inside `slipway server` and as `slipway worker` on other hosts. Tests
//! drive it one job at a time with [`Worker::step`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::watch;
use tracing::Instrument;

use super::{Job, Lease, Queue};
use crate::error::{Error, Result};

/// How a handler's attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// Worth another attempt (a flaky network, a busy store).
    Retry(String),
    /// Will fail again: the job is failed at once.
    Fatal(String),
    /// The handler saw the cancel flag and stopped.
    Cancelled,
}

impl From<Error> for JobError {
    fn from(e: Error) -> JobError {
        match e.code() {
            crate::ErrorCode::TemporarilyUnavailable | crate::ErrorCode::InternalError => {
                JobError::Retry(e.to_string())
            }
            _ => JobError::Fatal(e.to_string()),
        }
    }
}

type HandlerFn =
    Arc<dyn Fn(JobContext) -> BoxFuture<'static, Result<Value, JobError>> + Send + Sync>;

/// The job kinds a worker can run, each with its handler.
#[derive(Clone, Default)]
pub struct Handlers {
    map: HashMap<String, HandlerFn>,
}

impl Handlers {
    pub fn new() -> Handlers {
        Handlers::default()
    }

    /// Runs jobs of `kind` with `handler`.
    pub fn register<F, Fut>(&mut self, kind: &str, handler: F) -> &mut Handlers
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, JobError>> + Send + 'static,
    {
        self.map.insert(kind.to_string(), Arc::new(move |ctx| Box::pin(handler(ctx))));
        self
    }

    pub fn kinds(&self) -> Vec<&str> {
        let mut kinds: Vec<&str> = self.map.keys().map(String::as_str).collect();
        kinds.sort();
        kinds
    }
}

/// What a handler sees of its job.
#[derive(Clone)]
pub struct JobContext {
    lease: Lease,
    queue: Queue,
    cancel: watch::Receiver<bool>,
}

impl JobContext {
    pub fn job(&self) -> &Job {
        &self.lease.job
    }

    pub fn payload(&self) -> &Value {
        &self.lease.job.payload
    }

    /// Which attempt this is, from 1.
    pub fn attempt(&self) -> i64 {
        self.lease.job.attempts
    }

    pub fn worker_id(&self) -> &str {
        &self.lease.worker
    }

    /// Reports a named progress step, e.g. `ctx.progress("scoring", 300, Some(1000))`.
    pub async fn progress(&self, step: &str, done: u64, total: Option<u64>) -> Result<()> {
        let progress = serde_json::json!({ "step": step, "done": done, "total": total });
        self.queue.progress(&self.lease, &progress).await
    }

    /// True once cancellation was asked for (checked at each heartbeat).
    pub fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Resolves when cancellation is asked for.
    pub async fn cancelled(&self) {
        until_true(&mut self.cancel.clone()).await
    }
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Names this worker in leases and job history.
    pub id: String,
    /// How often an idle worker looks for work it was not woken for (jobs enqueued by other
    /// processes, retries coming due).
    pub poll_interval: Duration,
}

impl Default for WorkerOptions {
    fn default() -> WorkerOptions {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        WorkerOptions {
            id: format!("{host}:{}:{}", std::process::id(), &crate::new_id()[24..]),
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// Claims and runs jobs.
#[derive(Clone)]
pub struct Worker {
    queue: Queue,
    handlers: Arc<Handlers>,
    options: WorkerOptions,
}

impl Worker {
    pub fn new(queue: Queue, handlers: Handlers, options: WorkerOptions) -> Worker {
        Worker { queue, handlers: Arc::new(handlers), options }
    }

    pub fn id(&self) -> &str {
        &self.options.id
    }

    /// Claims one due job and runs it to its end. Returns the job as it ended, or `None` when
    /// nothing was due.
    pub async fn step(&self) -> Result<Option<Job>> {
        let (_tx, rx) = watch::channel(false);
        self.step_until(rx).await
    }

    async fn step_until(&self, shutdown: watch::Receiver<bool>) -> Result<Option<Job>> {
        let kinds = self.handlers.kinds();
        let Some(lease) = self.queue.claim(&self.options.id, &kinds).await? else {
            return Ok(None);
        };
        let span = tracing::info_span!(
            target: "core::jobs",
            "job",
            id = %lease.job.id,
            kind = %lease.job.kind,
            attempt = lease.job.attempts
        );
        self.run_leased(lease, shutdown).instrument(span).await
    }

    /// Runs the handler of a claimed job with heartbeats, and records how it ended.
    async fn run_leased(
        &self,
        lease: Lease,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Option<Job>> {
        tracing::info!(target: "core::jobs", "started");
        let handler = self.handlers.map[&lease.job.kind].clone();
        let (cancel_tx, cancel_rx) = watch::channel(lease.job.cancel_requested);
        let ctx = JobContext { lease: lease.clone(), queue: self.queue.clone(), cancel: cancel_rx };
        let mut run = tokio::spawn(handler(ctx).in_current_span());
        let beat = (self.queue.options().lease / 3).max(Duration::from_millis(10));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);

        let outcome = loop {
            tokio::select! {
                joined = &mut run => {
                    break match joined {
                        Ok(outcome) => outcome,
                        Err(e) => Err(JobError::Retry(format!("the handler panicked: {e}"))),
                    };
                }
                _ = ticker.tick() => match self.queue.heartbeat(&lease).await {
                    Ok(cancel) => { if cancel { let _ = cancel_tx.send(true); } }
                    Err(Error::LeaseLost { .. }) => {
                        run.abort();
                        tracing::warn!(target: "core::jobs", "lease lost; dropping the attempt");
                        return self.queue.get(&lease.job.id).await.map(Some);
                    }
                    Err(e) => tracing::warn!(target: "core::jobs", error = %e, "heartbeat failed"),
                },
                _ = until_true(&mut shutdown) => {
                    run.abort();
                    tracing::info!(target: "core::jobs", "shutting down; releasing the job");
                    self.queue.release(&lease).await?;
                    return self.queue.get(&lease.job.id).await.map(Some);
                }
            }
        };

        let result = match outcome {
            Ok(value) => self.queue.complete(&lease, &value).await,
            Err(JobError::Cancelled) => self.queue.acknowledge_cancel(&lease).await,
            Err(JobError::Retry(msg)) => self.queue.fail(&lease, &msg, true).await,
            Err(JobError::Fatal(msg)) => self.queue.fail(&lease, &msg, false).await,
        };
        match result {
            Ok(job) => {
                tracing::info!(target: "core::jobs", status = job.status.as_str(), "ended");
                Ok(Some(job))
            }
            Err(Error::LeaseLost { .. }) => {
                tracing::warn!(target: "core::jobs", "lease lost before the outcome was recorded");
                self.queue.get(&lease.job.id).await.map(Some)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs jobs until `shutdown` resolves. A job in progress at shutdown is released for
    /// another worker. Store errors are logged and retried after a pause.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopper = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        let worker = async {
            let mut stop = stop_rx.clone();
            loop {
                if *stop.borrow() {
                    return;
                }
                match self.step_until(stop_rx.clone()).await {
                    Ok(Some(_)) => continue,
                    Ok(None) => {}
                    Err(e) => tracing::warn!(target: "core::jobs", error = %e, "claiming failed"),
                }
                tokio::select! {
                    _ = self.queue.wait_for_work() => {}
                    _ = tokio::time::sleep(self.options.poll_interval) => {}
                    _ = until_true(&mut stop) => return,
                }
            }
        };
        tokio::pin!(worker);
        tokio::pin!(stopper);
        let mut stopped = false;
        loop {
            tokio::select! {
                _ = &mut worker => return,
                _ = &mut stopper, if !stopped => stopped = true,
            }
        }
    }
}

/// Resolves once the flag is true (or its sender is gone), holding no borrow of it.
pub(crate) async fn until_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await.map(|_| ());
}
