//! Endpoints: a name that serves a model version or an alias, with its batching knobs and its
//! [`Traffic`] (variants by weight, a shadow), kept in the metadata store so that every serving
//! replica sees the same ones; and [`Serving`], the live state of a process: loaded models shared
//! across requests, and a batcher per endpoint variant.
//!
//! An endpoint re-reads its row and re-resolves its variants at most once a second: moving an
//! alias or changing the split switches it without a restart, and requests in flight finish on
//! the version they started on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use registry::{ModelVersion, Registry};
use slipway_core::{Db, Migration, now_ms};
use sqlx::Row;
use tract_onnx::prelude::*;

use crate::runtime::{Model, Output, RunError};
use crate::traffic::Traffic;

/// The serving schema.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "endpoints",
        sqlite: include_str!("../migrations/0001_endpoints.sql"),
        postgres: include_str!("../migrations/0001_endpoints.sql"),
    },
    Migration {
        version: 2,
        name: "traffic",
        sqlite: include_str!("../migrations/0002_traffic.sql"),
        postgres: include_str!("../migrations/0002_traffic.sql"),
    },
    Migration {
        version: 3,
        name: "rollouts",
        sqlite: include_str!("../migrations/0003_rollouts.sql"),
        postgres: include_str!("../migrations/0003_rollouts.sql"),
    },
    Migration {
        version: 4,
        name: "variant_counts",
        sqlite: include_str!("../migrations/0004_variant_counts.sql"),
        postgres: include_str!("../migrations/0004_variant_counts.sql"),
    },
    Migration {
        version: 5,
        name: "feedback",
        sqlite: include_str!("../migrations/0005_feedback.sql"),
        postgres: include_str!("../migrations/0005_feedback.sql"),
    },
    Migration {
        version: 6,
        name: "outcomes",
        sqlite: include_str!("../migrations/0006_outcomes.sql"),
        postgres: include_str!("../migrations/0006_outcomes.sql"),
    },
    Migration {
        version: 7,
        name: "prediction_log",
        sqlite: include_str!("../migrations/0007_prediction_log.sql"),
        postgres: include_str!("../migrations/0007_prediction_log.sql"),
    },
];

/// Triton's dynamic batching knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Most rows run together.
    pub max_batch_size: usize,
    /// How long the first request of a batch waits for others, in µs (0: take what is queued).
    pub max_queue_delay_us: u64,
    /// Most requests waiting; beyond it requests are refused at once (503).
    pub max_queue_len: usize,
}

impl Default for Batching {
    fn default() -> Batching {
        Batching { max_batch_size: 64, max_queue_delay_us: 0, max_queue_len: 1024 }
    }
}

/// A named endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub name: String,
    pub model: String,
    /// The baseline (the first variant): a version number, `latest` or an alias.
    pub reference: String,
    pub batching: Batching,
    pub traffic: Traffic,
    /// Counts changes of the traffic: writers change it by compare-and-swap.
    pub revision: i64,
    pub created_ms: i64,
    /// What of its traffic is logged, and how.
    pub log: crate::predlog::LogSettings,
}

/// Errors of serving, each with its error code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Endpoint '{0}' not found")]
    NotFound(String),
    #[error("Endpoint '{0}' already exists")]
    Exists(String),
    #[error("Rollout '{0}' not found")]
    RolloutNotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// The queue is full: come back shortly.
    #[error("endpoint '{0}' is overloaded: its queue is full")]
    Overloaded(String),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error(transparent)]
    Core(#[from] slipway_core::Error),
}

impl Error {
    pub fn code(&self) -> slipway_core::ErrorCode {
        use slipway_core::ErrorCode as C;
        match self {
            Error::NotFound(_) | Error::RolloutNotFound(_) => C::ResourceDoesNotExist,
            Error::Exists(_) => C::ResourceAlreadyExists,
            Error::Invalid(_) | Error::Run(RunError::BadInput(_)) => C::InvalidParameterValue,
            Error::Overloaded(_) => C::TemporarilyUnavailable,
            Error::Run(RunError::Failed(_)) => C::InternalError,
            Error::Registry(e) => e.code(),
            Error::Core(e) => e.code(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        Error::Core(e.into())
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Per endpoint and version counts, read by the metrics page.
#[derive(Debug, Default)]
pub struct Stats {
    pub ok: AtomicU64,
    pub bad_input: AtomicU64,
    pub overloaded: AtomicU64,
    pub failed: AtomicU64,
    pub queue_depth: AtomicUsize,
    /// Requests inside `Live::predict`: queued, being batched, or answered but not yet resumed
    /// (a busy machine's backlog shows here before it shows in the queue).
    pub in_flight: AtomicUsize,
    /// Request latency histogram: counts per bucket of `LATENCY_BUCKETS_S`, then the sum in µs.
    pub latency: Histogram,
    /// Rows per batch run.
    pub batch_rows: Histogram,
    /// A shadow's rows compared with the answering variant's, and those whose first output
    /// (the label) agreed.
    pub shadow_rows: AtomicU64,
    pub shadow_agreed: AtomicU64,
    /// Copies a shadow let go because `SHADOW_QUEUE` copies were already in progress.
    pub shadow_dropped: AtomicU64,
    /// A moving average of one model run's time, in ns: whether a lone request may run inline.
    pub run_ns: AtomicU64,
}

/// A lone request whose model runs faster than this runs on the request's own thread.
const INLINE_RUN_NS: u64 = 20_000;

impl Stats {
    /// The sum of several variants' counts and histograms (an endpoint's totals).
    pub fn merged<'a>(all: impl IntoIterator<Item = &'a Stats>) -> Stats {
        let out = Stats::default();
        let add = |to: &AtomicU64, from: &AtomicU64| {
            to.fetch_add(from.load(Ordering::Relaxed), Ordering::Relaxed);
        };
        let add_usize = |to: &AtomicUsize, from: &AtomicUsize| {
            to.fetch_add(from.load(Ordering::Relaxed), Ordering::Relaxed);
        };
        let add_histogram = |to: &Histogram, from: &Histogram| {
            for (t, f) in to.counts.iter().zip(&from.counts) {
                add(t, f);
            }
            add(&to.count, &from.count);
            add(&to.sum_micro, &from.sum_micro);
        };
        for s in all {
            for (to, from) in [
                (&out.ok, &s.ok),
                (&out.bad_input, &s.bad_input),
                (&out.overloaded, &s.overloaded),
                (&out.failed, &s.failed),
                (&out.shadow_rows, &s.shadow_rows),
                (&out.shadow_agreed, &s.shadow_agreed),
            ] {
                add(to, from);
            }
            add_usize(&out.queue_depth, &s.queue_depth);
            add_usize(&out.in_flight, &s.in_flight);
            add_histogram(&out.latency, &s.latency);
            add_histogram(&out.batch_rows, &s.batch_rows);
        }
        out
    }

    /// Counts a request's outcome and its latency since `started`.
    fn count(&self, result: &Result<Vec<Output>, RunError>, started: Instant) {
        let counter = match result {
            Ok(_) => &self.ok,
            Err(RunError::BadInput(_)) => &self.bad_input,
            Err(RunError::Failed(_)) => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.latency.observe(LATENCY_BUCKETS_S, started.elapsed().as_secs_f64());
    }

    /// Folds one run's time into `run_ns` (races between threads only blur the average).
    fn observe_run(&self, took: Duration) {
        let ns = took.as_nanos().min(u128::from(u64::MAX / 2)) as u64;
        let old = self.run_ns.load(Ordering::Relaxed);
        let new = if old == 0 { ns } else { old - old / 8 + ns / 8 };
        self.run_ns.store(new.max(1), Ordering::Relaxed);
    }
}

/// Upper bounds of the latency buckets, seconds.
pub const LATENCY_BUCKETS_S: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];
/// Upper bounds of the batch-size buckets, rows.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// A fixed-bucket histogram with atomic counts.
#[derive(Debug, Default)]
pub struct Histogram {
    pub counts: [AtomicU64; 13],
    pub count: AtomicU64,
    /// The sum, in millionths of the unit.
    pub sum_micro: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, bounds: &[f64], v: f64) {
        let i = bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len());
        self.counts[i.min(12)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micro.fetch_add((v * 1e6) as u64, Ordering::Relaxed);
    }

    /// The `q` quantile (0..=1) estimated as Prometheus's `histogram_quantile` does: linear
    /// within the bucket it falls in, the lowest bucket starting at 0 and the overflow bucket
    /// answering the highest bound. `None` before any observation.
    pub fn quantile(&self, bounds: &[f64], q: f64) -> Option<f64> {
        let counts: Vec<u64> =
            self.counts.iter().take(bounds.len() + 1).map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &c) in counts.iter().enumerate() {
            if c > 0 && (below + c) as f64 >= rank {
                let Some(&upper) = bounds.get(i) else { return bounds.last().copied() };
                let lower = if i == 0 { 0.0 } else { bounds[i - 1] };
                let within = ((rank - below as f64) / c as f64).clamp(0.0, 1.0);
                return Some(lower + (upper - lower) * within);
            }
            below += c;
        }
        bounds.last().copied()
    }

    /// The mean observation, `None` before any.
    pub fn mean(&self) -> Option<f64> {
        let n = self.count.load(Ordering::Relaxed);
        (n > 0).then(|| self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6 / n as f64)
    }
}

struct Job {
    input: Tensor,
    rows: usize,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Output>, RunError>>,
}

/// One variant of an endpoint as this process serves it now: the version, its model and its
/// batcher.
pub struct Live {
    /// The endpoint's name.
    pub endpoint: String,
    /// The variant's name (`v3`, or an alias).
    pub variant: String,
    pub batching: Batching,
    pub version: ModelVersion,
    pub model: Arc<Model>,
    pub stats: Arc<Stats>,
    queue: SyncSender<Job>,
    /// Whether this variant is a shadow (it answers nobody; it is handed copies).
    is_shadow: bool,
    /// The counts as last written to the store.
    pub(crate) flushed: Mutex<crate::driver::Snapshot>,
}

/// An endpoint as this process serves it now: its row, and a [`Live`] per variant and shadow.
#[derive(Debug)]
pub struct Served {
    pub endpoint: Endpoint,
    /// In the order of `endpoint.traffic.variants`.
    pub variants: Vec<Arc<Live>>,
    pub shadow: Option<Arc<Live>>,
    checked: Mutex<Instant>,
    /// The prediction log's per-second cap.
    pub(crate) log_gate: crate::predlog::LogGate,
    /// The log's input names set by hand, and none, shared by every logged request.
    pub(crate) log_features: Arc<Vec<String>>,
    pub(crate) no_features: Arc<Vec<String>>,
}

impl Served {
    /// The variant that answers a request with this routing key (or none: random by weight).
    pub fn route(&self, key: Option<&[u8]>) -> &Arc<Live> {
        &self.variants[self.endpoint.traffic.route(key)]
    }

    /// The baseline variant.
    pub fn baseline(&self) -> &Arc<Live> {
        &self.variants[0]
    }

    /// Every variant and the shadow.
    pub fn lives(&self) -> impl Iterator<Item = &Arc<Live>> {
        self.variants.iter().chain(&self.shadow)
    }
}

/// Decrements a counter when dropped.
struct Held<'a>(&'a AtomicUsize);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("endpoint", &self.endpoint)
            .field("variant", &self.variant)
            .field("version", &self.version.version)
            .finish()
    }
}

impl Live {
    fn start(
        endpoint: &Endpoint,
        variant: &str,
        version: ModelVersion,
        model: Arc<Model>,
        shadow: bool,
    ) -> Arc<Live> {
        let b = endpoint.batching;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(b.max_queue_len.max(1));
        let stats = Arc::new(Stats::default());
        let rx = Arc::new(Mutex::new(rx));
        // A shadow answers nobody: its copies run in tasks of their own (`mirror`), no batchers.
        let workers =
            if shadow { 0 } else { std::thread::available_parallelism().map_or(2, |n| n.get()) };
        for i in 0..workers {
            let (rx, model, stats) = (rx.clone(), model.clone(), stats.clone());
            std::thread::Builder::new()
                .name(format!("serve-{}-{variant}-{i}", endpoint.name))
                .spawn(move || batch_loop(&rx, &model, &stats, b))
                .expect("spawning a serving thread");
        }
        Arc::new(Live {
            endpoint: endpoint.name.clone(),
            variant: variant.to_string(),
            batching: b,
            version,
            model,
            stats,
            queue: tx,
            is_shadow: shadow,
            flushed: Mutex::new([0; 16]),
        })
    }

    /// Queues `input` (rows × features) and waits for its outputs. A full queue is refused at
    /// once. (Shedding on `in_flight` as well was measured and rejected: on a CPU-bound machine
    /// it refuses requests already parsed and answered, and goodput fell from 10.7k to 3.9k/s.)
    ///
    /// A request that would wait for nothing runs inline instead: when the endpoint does not
    /// delay batches, nothing is queued, and the model's runs take under `INLINE_RUN_NS`, the
    /// two thread hops to a batcher and back would cost more than the run itself.
    pub async fn predict(&self, input: Tensor) -> Result<Vec<Output>> {
        let started = Instant::now();
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let _held = Held(&self.stats.in_flight);
        let rows = input.shape().first().copied().unwrap_or(1);
        if self.batching.max_queue_delay_us == 0
            && self.stats.queue_depth.load(Ordering::Relaxed) == 0
            && self.stats.run_ns.load(Ordering::Relaxed) < INLINE_RUN_NS
            && rows <= self.batching.max_batch_size
        {
            self.stats.batch_rows.observe(BATCH_BUCKETS, rows as f64);
            let result = timed_run(&self.model, &self.stats, input);
            return self.finish(started, result);
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.queue.try_send(Job { input, rows, reply }) {
            self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
            return Err(match e {
                TrySendError::Full(_) => {
                    self.stats.overloaded.fetch_add(1, Ordering::Relaxed);
                    Error::Overloaded(self.endpoint.clone())
                }
                // Every batching thread is gone: a fault of the server, not a busy one.
                TrySendError::Disconnected(_) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    Error::Run(RunError::Failed("the endpoint's batching threads stopped".into()))
                }
            });
        }
        let result =
            rx.await.unwrap_or_else(|_| Err(RunError::Failed("the batcher stopped".into())));
        self.finish(started, result)
    }

    /// Hands a shadow a copy of an answered request, without waiting: a task of its own runs
    /// it, compares its first output with `answered` row by row, and counts its own failures.
    /// Beyond `SHADOW_QUEUE` copies in progress, a copy is let go (counted in `shadow_dropped`).
    pub fn mirror(&self, input: Tensor, answered: Vec<Output>) {
        if !self.is_shadow {
            return;
        }
        // Copies waiting beyond the bound are let go: a shadow never piles up work.
        if self.stats.queue_depth.fetch_add(1, Ordering::Relaxed) >= SHADOW_QUEUE {
            self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
            self.stats.shadow_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let (model, stats) = (self.model.clone(), self.stats.clone());
        tokio::spawn(async move {
            shadow_run(input, &answered, &model, &stats);
            stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// Counts a request's outcome and latency.
    fn finish(
        &self,
        started: Instant,
        result: Result<Vec<Output>, RunError>,
    ) -> Result<Vec<Output>> {
        self.stats.count(&result, started);
        Ok(result?)
    }
}

/// Copies a shadow has in progress at most.
const SHADOW_QUEUE: usize = 1024;

/// Runs a shadow's copy of a request, counts it, and compares its first output with the
/// answer given.
fn shadow_run(input: Tensor, answered: &[Output], model: &Model, stats: &Stats) {
    let started = Instant::now();
    let result = timed_run(model, stats, input);
    stats.count(&result, started);
    let Ok(outputs) = result else { return };
    if let (Some(mine), Some(theirs)) = (outputs.first(), answered.first()) {
        let (rows, agreed) = agreement(mine, theirs);
        stats.shadow_rows.fetch_add(rows, Ordering::Relaxed);
        stats.shadow_agreed.fetch_add(agreed, Ordering::Relaxed);
    }
}

/// Rows compared and rows equal between two outputs: labels exactly, numbers within 1e-6
/// (relative to the larger); outputs that do not line up count as disagreeing.
fn agreement(a: &Output, b: &Output) -> (u64, u64) {
    let tensor = |o: &Output| match o {
        Output::Tensor(t) => t.clone(),
        Output::ZipMap { probabilities, .. } => probabilities.clone(),
    };
    let (a, b) = (tensor(a), tensor(b));
    let rows = b.shape().first().copied().unwrap_or(1).max(1);
    if a.shape() != b.shape() || a.datum_type() != b.datum_type() {
        return (rows as u64, 0);
    }
    let width = b.len() / rows;
    let (Ok(pa), Ok(pb)) = (a.try_as_plain_ram(), b.try_as_plain_ram()) else {
        return (rows as u64, 0);
    };
    let equal_rows = |same: &dyn Fn(usize) -> bool| {
        (0..rows).filter(|r| (r * width..(r + 1) * width).all(same)).count() as u64
    };
    // Dispatch on the type: a failed `as_slice` builds an error with a backtrace.
    let dt = a.datum_type();
    let agreed = if dt == f32::datum_type() {
        match (pa.as_slice::<f32>(), pb.as_slice::<f32>()) {
            (Ok(x), Ok(y)) => equal_rows(&|i| {
                let (u, v) = (x[i], y[i]);
                (u - v).abs() <= 1e-6 * u.abs().max(v.abs()).max(1.0)
            }),
            _ => 0,
        }
    } else if dt == i64::datum_type() {
        match (pa.as_slice::<i64>(), pb.as_slice::<i64>()) {
            (Ok(x), Ok(y)) => equal_rows(&|i| x[i] == y[i]),
            _ => 0,
        }
    } else if dt == String::datum_type() {
        match (pa.as_slice::<String>(), pb.as_slice::<String>()) {
            (Ok(x), Ok(y)) => equal_rows(&|i| x[i] == y[i]),
            _ => 0,
        }
    } else {
        0
    };
    (rows as u64, agreed)
}

/// One batching thread: takes the first waiting job, gathers more up to the batch size (waiting
/// up to the delay), runs them as one batch and answers each with its rows.
fn batch_loop(rx: &Mutex<Receiver<Job>>, model: &Model, stats: &Stats, b: Batching) {
    loop {
        let mut jobs = Vec::new();
        {
            let Ok(rx) = rx.lock() else { return };
            let Ok(first) = rx.recv() else { return };
            let mut rows = first.rows;
            jobs.push(first);
            let deadline = Instant::now() + Duration::from_micros(b.max_queue_delay_us);
            while rows < b.max_batch_size {
                let next = if b.max_queue_delay_us == 0 {
                    rx.try_recv().ok()
                } else {
                    let left = deadline.saturating_duration_since(Instant::now());
                    rx.recv_timeout(left).ok()
                };
                let Some(job) = next else { break };
                rows += job.rows;
                jobs.push(job);
            }
        }
        stats.queue_depth.fetch_sub(jobs.len(), Ordering::Relaxed);
        run_batch(model, stats, jobs);
    }
}

/// Runs the model on one input and folds the time into `run_ns`.
fn timed_run(model: &Model, stats: &Stats, input: Tensor) -> Result<Vec<Output>, RunError> {
    let started = Instant::now();
    let result = model.run(tvec![input.into()]);
    stats.observe_run(started.elapsed());
    result
}

fn run_batch(model: &Model, stats: &Stats, jobs: Vec<Job>) {
    let rows: usize = jobs.iter().map(|j| j.rows).sum();
    stats.batch_rows.observe(BATCH_BUCKETS, rows as f64);
    if jobs.len() == 1 {
        let job = jobs.into_iter().next().expect("one job");
        let _ = job.reply.send(timed_run(model, stats, job.input));
        return;
    }
    // Jobs whose inputs do not stack (a wrong shape), or for a model with a fixed batch size,
    // are answered alone.
    let fixed_batch =
        model.inputs.first().is_some_and(|i| i.shape.first().is_some_and(|d| d.is_some()));
    let same = !fixed_batch
        && jobs.iter().all(|j| {
            j.input.shape()[1..] == jobs[0].input.shape()[1..]
                && j.input.datum_type() == jobs[0].input.datum_type()
        });
    if !same {
        for job in jobs {
            let _ = job.reply.send(timed_run(model, stats, job.input));
        }
        return;
    }
    let inputs: Vec<&Tensor> = jobs.iter().map(|j| &j.input).collect();
    let stacked = match Tensor::stack_tensors(0, &inputs) {
        Ok(t) => t,
        Err(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(RunError::Failed(format!("{e:#}"))));
            }
            return;
        }
    };
    match timed_run(model, stats, stacked) {
        Ok(outputs) => {
            let mut start = 0;
            for job in jobs {
                let end = start + job.rows;
                let part = outputs.iter().map(|o| slice(o, start, end)).collect();
                let _ = job.reply.send(part);
                start = end;
            }
        }
        Err(e) => {
            let msg = e.to_string();
            let bad = matches!(e, RunError::BadInput(_));
            for job in jobs {
                let err = if bad {
                    RunError::BadInput(msg.clone())
                } else {
                    RunError::Failed(msg.clone())
                };
                let _ = job.reply.send(Err(err));
            }
        }
    }
}

fn slice(o: &Output, start: usize, end: usize) -> Result<Output, RunError> {
    let cut = |t: &Arc<Tensor>| {
        t.slice(0, start, end).map(Arc::new).map_err(|e| RunError::Failed(format!("{e:#}")))
    };
    Ok(match o {
        Output::Tensor(t) => Output::Tensor(cut(t)?),
        Output::ZipMap { labels, probabilities } => {
            Output::ZipMap { labels: labels.clone(), probabilities: cut(probabilities)? }
        }
    })
}

/// Endpoints and the models they serve in this process; cheap to clone.
#[derive(Clone, Debug)]
pub struct Serving {
    pub(crate) db: Db,
    pub(crate) registry: Registry,
    live: Arc<RwLock<HashMap<String, Arc<Served>>>>,
    /// Models by registered digest, shared by endpoints serving the same version.
    models: Arc<Mutex<HashMap<String, Arc<Model>>>>,
    refresh: Duration,
    /// This process, as the store's counts and rollout leases know it.
    pub(crate) replica: String,
    /// Answers of endpoints in an experiment, until the next flush.
    pub(crate) pending: Arc<Mutex<Vec<crate::feedback::Remembered>>>,
    /// When old counts and predictions were last removed, ms.
    pub(crate) pruned_ms: Arc<std::sync::atomic::AtomicI64>,
    /// The prediction log of this process.
    pub(crate) log: Arc<crate::predlog::PredLog>,
    /// Names the inputs of a model version from its lineage.
    pub(crate) namer: Option<crate::predlog::Namer>,
}

impl Serving {
    pub async fn open(db: Db, registry: Registry) -> Result<Serving> {
        db.migrate("serve", MIGRATIONS).await?;
        Ok(Serving {
            db,
            registry,
            live: Default::default(),
            models: Default::default(),
            refresh: Duration::from_secs(1),
            replica: slipway_core::new_id(),
            pending: Default::default(),
            pruned_ms: Default::default(),
            log: Default::default(),
            namer: None,
        })
    }

    /// This process's id, as rollout leases (a rollout's `driver`) and the store's counts name it.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    pub async fn create(
        &self,
        name: &str,
        model: &str,
        reference: &str,
        batching: Batching,
    ) -> Result<Endpoint> {
        check_name(name)?;
        if batching.max_batch_size == 0 || batching.max_queue_len == 0 {
            return Err(Error::Invalid(
                "max_batch_size and max_queue_len must be at least 1".into(),
            ));
        }
        // The reference must resolve, and to a model Slipway can serve.
        self.check_servable(model, reference).await?;
        let traffic = Traffic::single(reference, crate::split::new_seed());
        let inserted = sqlx::query(
            "INSERT INTO serve_endpoints (name, model, reference, max_batch_size, max_queue_delay_us, \
             max_queue_len, created_ms, traffic, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0)",
        )
        .bind(name)
        .bind(model)
        .bind(reference)
        .bind(batching.max_batch_size as i64)
        .bind(batching.max_queue_delay_us as i64)
        .bind(batching.max_queue_len as i64)
        .bind(now_ms())
        .bind(traffic.store())
        .execute(self.db.pool())
        .await;
        match inserted {
            Err(e) if slipway_core::is_unique_violation(&e) => {
                return Err(Error::Exists(name.into()));
            }
            other => other?,
        };
        self.get(name).await
    }

    /// Fails unless `reference` resolves to a version of `model` that Slipway can serve.
    async fn check_servable(&self, model: &str, reference: &str) -> Result<ModelVersion> {
        let version = self.registry.resolve(model, reference).await?;
        self.registry.model_bytes(&version).await?;
        Ok(version)
    }

    /// Changes an endpoint's traffic with `change`, after checking that every variant and the
    /// shadow resolve to servable versions. Concurrent changes are serialised by the revision:
    /// a change that lost the race is computed again on the new traffic.
    pub async fn set_traffic(
        &self,
        name: &str,
        change: impl Fn(&Traffic) -> Result<Traffic, String>,
    ) -> Result<Endpoint> {
        for _ in 0..8 {
            let e = self.get(name).await?;
            let traffic = change(&e.traffic).map_err(Error::Invalid)?;
            for v in traffic.variants.iter().chain(&traffic.shadow) {
                self.check_servable(&e.model, &v.reference).await?;
            }
            let done = sqlx::query(
                "UPDATE serve_endpoints SET traffic = $1, reference = $2, revision = revision + 1 \
                 WHERE name = $3 AND revision = $4",
            )
            .bind(traffic.store())
            .bind(&traffic.variants[0].reference)
            .bind(name)
            .bind(e.revision)
            .execute(self.db.pool())
            .await?;
            if done.rows_affected() == 1 {
                // This process serves the change on its next request (variants that stay keep
                // their batchers and counts); other processes within their refresh.
                if let Some(served) = self.live.read().expect("live lock").get(name) {
                    let mut checked = served.checked.lock().expect("checked lock");
                    *checked = checked.checked_sub(self.refresh).unwrap_or(*checked);
                }
                return self.get(name).await;
            }
        }
        Err(Error::Invalid(format!("endpoint '{name}' is changing too often: try again")))
    }

    /// Changes how an endpoint logs its traffic; every process follows within its refresh.
    pub async fn set_log(
        &self,
        name: &str,
        settings: &crate::predlog::LogSettings,
    ) -> Result<Endpoint> {
        settings.check()?;
        let done = sqlx::query(
            "UPDATE serve_endpoints SET log_sample = $1, log_max_per_s = $2, log_window_s = $3, \
             log_features = $4 WHERE name = $5",
        )
        .bind(settings.sample)
        .bind(settings.max_per_second as i64)
        .bind(settings.window_s as i64)
        .bind(serde_json::to_string(&settings.features).unwrap_or_else(|_| "[]".into()))
        .bind(name)
        .execute(self.db.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(name.to_string()));
        }
        if let Some(served) = self.live.read().expect("live lock").get(name) {
            let mut checked = served.checked.lock().expect("checked lock");
            *checked = checked.checked_sub(self.refresh).unwrap_or(*checked);
        }
        self.get(name).await
    }

    pub async fn get(&self, name: &str) -> Result<Endpoint> {
        let row = sqlx::query(
            "SELECT name, model, reference, max_batch_size, max_queue_delay_us, max_queue_len, \
             created_ms, traffic, revision, log_sample, log_max_per_s, log_window_s, log_features \
             FROM serve_endpoints WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| Error::NotFound(name.to_string()))?;
        endpoint_from_row(&row)
    }

    pub async fn list(&self) -> Result<Vec<Endpoint>> {
        let rows = sqlx::query(
            "SELECT name, model, reference, max_batch_size, max_queue_delay_us, max_queue_len, \
             created_ms, traffic, revision, log_sample, log_max_per_s, log_window_s, log_features \
             FROM serve_endpoints ORDER BY name",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM serve_endpoints WHERE name = $1")
            .bind(name)
            .execute(self.db.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(name.to_string()));
        }
        self.live.write().expect("live lock").remove(name);
        Ok(())
    }

    /// The endpoint as served now, loading or switching models when its row changed or a
    /// variant's alias moved.
    pub async fn served(&self, name: &str) -> Result<Arc<Served>> {
        let current = self.live.read().expect("live lock").get(name).cloned();
        if let Some(served) = &current {
            let mut checked = served.checked.lock().expect("checked lock");
            if checked.elapsed() < self.refresh {
                return Ok(served.clone());
            }
            *checked = Instant::now();
        }
        let endpoint = match self.get(name).await {
            Ok(e) => e,
            Err(Error::NotFound(n)) => {
                self.live.write().expect("live lock").remove(name);
                return Err(Error::NotFound(n));
            }
            Err(e) => return current.ok_or(e),
        };
        let traffic = &endpoint.traffic;
        let mut versions = Vec::with_capacity(traffic.variants.len());
        for v in traffic.variants.iter().chain(&traffic.shadow) {
            match self.registry.resolve(&endpoint.model, &v.reference).await {
                Ok(version) => versions.push(version),
                // A store hiccup keeps serving what was served.
                Err(e) => return current.ok_or(e.into()),
            }
        }
        let unchanged = current.as_ref().is_some_and(|c| {
            c.endpoint == endpoint
                && c.lives().zip(&versions).all(|(l, v)| l.version.version == v.version)
        });
        if let (true, Some(c)) = (unchanged, &current) {
            return Ok(c.clone());
        }
        // A variant whose version and batching are unchanged keeps its batcher and counts.
        let mut lives = Vec::with_capacity(versions.len());
        let names = traffic.variants.iter().chain(&traffic.shadow).map(|v| v.name.as_str());
        for (variant, version) in names.zip(versions) {
            // The last one, past the variants, is the shadow.
            let shadow = lives.len() >= traffic.variants.len();
            let kept = current.as_ref().and_then(|c| {
                c.lives()
                    .find(|l| {
                        l.variant == variant
                            && l.version.version == version.version
                            && l.batching == endpoint.batching
                            && l.is_shadow == shadow
                    })
                    .cloned()
            });
            let live = match kept {
                Some(l) => l,
                None => {
                    let model = self.model(&version).await?;
                    Live::start(&endpoint, variant, version, model, shadow)
                }
            };
            lives.push(live);
        }
        let shadow = if traffic.shadow.is_some() { lives.pop() } else { None };
        let served = Arc::new(Served {
            variants: lives,
            shadow,
            checked: Mutex::new(Instant::now()),
            log_gate: Default::default(),
            log_features: Arc::new(endpoint.log.features.clone()),
            no_features: Default::default(),
            endpoint,
        });
        let versions: Vec<String> =
            served.lives().map(|l| format!("{}=v{}", l.variant, l.version.version)).collect();
        tracing::info!(target: "serve::route", endpoint = name, variants = %versions.join(","), "serving");
        self.live.write().expect("live lock").insert(name.to_string(), served.clone());
        Ok(served)
    }

    /// Runs `input` on `live`, a variant of `served`. When `mirror` (the endpoint has a shadow
    /// and the request is in its sample), a copy runs on it once the answer is known (the caller never waits for it nor sees it fail);
    /// when it runs an experiment or logs the request, the answer is remembered under
    /// `request_id` for its ground truth.
    pub async fn predict(
        &self,
        served: &Served,
        live: &Live,
        input: Tensor,
        request_id: &str,
        mirror: bool,
    ) -> Result<Vec<Output>> {
        let copy = served.shadow.as_ref().filter(|_| mirror).map(|_| input.clone());
        let logged = (served.endpoint.log.sample > 0.0).then(|| input.clone());
        let started = Instant::now();
        let outputs = live.predict(input).await?;
        let answered_ms = now_ms();
        let in_log = logged.is_some_and(|input| {
            let latency = started.elapsed();
            self.log_request(served, live, request_id, &input, &outputs, latency, answered_ms)
        });
        // Remembered for ground truth: the A/B report's rows, and the log's per-window
        // performance.
        if (in_log || served.endpoint.traffic.in_experiment())
            && let Some(first) = outputs.first()
        {
            self.remember(crate::feedback::Remembered {
                request_id: request_id.to_string(),
                endpoint: live.endpoint.clone(),
                variant: live.variant.clone(),
                version: live.version.version,
                labels: crate::feedback::labels_of(first),
                scores: crate::feedback::scores_of(&outputs),
                at_ms: answered_ms,
            });
        }
        if let (Some(shadow), Some(copy)) = (&served.shadow, copy) {
            shadow.mirror(copy, outputs.clone());
        }
        Ok(outputs)
    }

    /// The baseline variant of an endpoint as served now.
    pub async fn live(&self, name: &str) -> Result<Arc<Live>> {
        Ok(self.served(name).await?.baseline().clone())
    }

    /// Everything served now (for metrics), by endpoint name.
    pub fn snapshot(&self) -> Vec<Arc<Served>> {
        let mut all: Vec<Arc<Served>> =
            self.live.read().expect("live lock").values().cloned().collect();
        all.sort_by(|a, b| a.endpoint.name.cmp(&b.endpoint.name));
        all
    }

    /// Loads (once per digest) and optimises a version's model.
    pub async fn model(&self, version: &ModelVersion) -> Result<Arc<Model>> {
        let key = match &version.format {
            registry::ModelFormat::Onnx { digest, .. } => digest.clone(),
            registry::ModelFormat::Other => String::new(),
        };
        if let Some(m) = self.models.lock().expect("models lock").get(&key) {
            return Ok(m.clone());
        }
        let bytes = self.registry.model_bytes(version).await?;
        let model = Model::load(&bytes)
            .map_err(|reason| registry::Error::Unservable { name: version.label(), reason })?;
        let model = Arc::new(model);
        self.models.lock().expect("models lock").insert(key, model.clone());
        Ok(model)
    }
}

fn endpoint_from_row(row: &sqlx::any::AnyRow) -> Result<Endpoint> {
    let reference: String = row.try_get("reference")?;
    let traffic =
        Traffic::load(&row.try_get::<String, _>("traffic")?, &reference).map_err(|e| {
            Error::Invalid(format!(
                "endpoint '{}': {e}",
                row.try_get::<String, _>("name").unwrap_or_default()
            ))
        })?;
    Ok(Endpoint {
        name: row.try_get("name")?,
        model: row.try_get("model")?,
        reference,
        traffic,
        revision: row.try_get("revision")?,
        batching: Batching {
            max_batch_size: row.try_get::<i64, _>("max_batch_size")? as usize,
            max_queue_delay_us: row.try_get::<i64, _>("max_queue_delay_us")? as u64,
            max_queue_len: row.try_get::<i64, _>("max_queue_len")? as usize,
        },
        created_ms: row.try_get("created_ms")?,
        log: crate::predlog::LogSettings {
            sample: row.try_get("log_sample")?,
            max_per_second: row.try_get::<i64, _>("log_max_per_s")?.max(0) as u64,
            window_s: row.try_get::<i64, _>("log_window_s")?.max(1) as u64,
            features: serde_json::from_str(&row.try_get::<String, _>("log_features")?)
                .unwrap_or_default(),
        },
    })
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(Error::Invalid(format!(
            "Invalid endpoint name '{name}': use 1 to 128 letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_interpolate_within_buckets() {
        let h = Histogram::default();
        let bounds = [1.0, 2.0, 4.0];
        assert_eq!(h.quantile(&bounds, 0.5), None);
        assert_eq!(h.mean(), None);
        // Ten observations in (1, 2], ten in (2, 4].
        for _ in 0..10 {
            h.observe(&bounds, 1.5);
            h.observe(&bounds, 3.0);
        }
        assert_eq!(h.quantile(&bounds, 0.25), Some(1.5));
        assert_eq!(h.quantile(&bounds, 0.5), Some(2.0));
        assert_eq!(h.quantile(&bounds, 0.75), Some(3.0));
        assert_eq!(h.quantile(&bounds, 1.0), Some(4.0));
        assert_eq!(h.mean(), Some(2.25));
        // Beyond the highest bound the answer is that bound.
        h.observe(&bounds, 100.0);
        for _ in 0..30 {
            h.observe(&bounds, 100.0);
        }
        assert_eq!(h.quantile(&bounds, 0.99), Some(4.0));
    }
}
