//! The prediction log: what each endpoint was asked and what it answered, for monitoring.
//!
//! On the request path a logged request costs a sampling decision (the request id's hash against
//! the endpoint's share, then a per-second cap per process), a copy of its input rows, and a push
//! onto a buffer under a mutex held for the push alone. Nothing on that path waits for a store.
//!
//! Each second the background task ([`crate::run_background`]) checks the buffer; once it holds
//! [`SEGMENT_ROWS`] rows or its oldest row is [`FLUSH_MS`] old, the buffer is taken whole and
//! written as one Parquet segment per endpoint and model version — a content-addressed blob,
//! written whole before its row in `serve_log_segments` is inserted, so a segment is either
//! absent or complete. The same rows are folded into per-window, per-variant [`Profile`]s
//! (the data stage's mergeable type), each process upserting its own row per window, so that
//! replicas and windows merge without re-reading raw rows.
//!
//! **What `kill -9` loses**: the buffer — the rows logged in the last [`FLUSH_MS`] plus one
//! background tick (1 s), so at most 6 s of logged traffic, and never more than
//! [`MAX_BUFFERED_ROWS`] rows. Rows beyond that bound are dropped at once and counted
//! (`slipway_prediction_log_rows_total{fate="dropped"}`), never queued without bound. A clean
//! stop (SIGTERM, Ctrl-C) writes the buffer before the process ends.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::builder::{Float32Builder, Float64Builder, StringBuilder};
use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::Serialize;
use slipway_core::{Digest, now_ms};
use slipway_data::profile::{DType, Profile};
use sqlx::Row;
use tract_onnx::prelude::*;

use crate::endpoints::{Error, Live, Result, Serving};
use crate::runtime::Output;

/// Rows logged per second by one process and endpoint at most, unless set otherwise.
pub const DEFAULT_MAX_PER_SECOND: u64 = 10_000;
/// The window a profile summarises, unless set otherwise: 5 minutes.
pub const DEFAULT_WINDOW_S: u64 = 300;
/// Rows buffered at most; beyond it rows are dropped (and counted) until the next write.
pub const MAX_BUFFERED_ROWS: usize = 200_000;
/// The buffer is written once it holds this many rows...
pub const SEGMENT_ROWS: usize = 50_000;
/// ...or once its oldest row is this old (ms): the most `kill -9` can lose.
pub const FLUSH_MS: i64 = 5_000;
/// Log segments and window profiles are kept this long (ms): 30 days.
pub const KEEP_MS: i64 = 30 * 24 * 3600 * 1000;
/// Mixed into a request id's hash for the log's sample, so that who is logged does not follow
/// who is routed where.
const LOG_SALT: u64 = 0x1065_a3b1_e0c0_ffee;

/// How an endpoint logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogSettings {
    /// The share of requests logged, 0 (off) to 1 (all).
    pub sample: f64,
    /// Rows logged per second by each process at most.
    pub max_per_second: u64,
    /// The window of the log's profiles, in seconds.
    pub window_s: u64,
    /// The names of the input columns; empty: from the training dataset (lineage), else `f0`…
    pub features: Vec<String>,
}

impl Default for LogSettings {
    fn default() -> LogSettings {
        LogSettings {
            sample: 1.0,
            max_per_second: DEFAULT_MAX_PER_SECOND,
            window_s: DEFAULT_WINDOW_S,
            features: Vec::new(),
        }
    }
}

impl LogSettings {
    pub fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.sample) {
            return Err(Error::Invalid(format!(
                "the log's sample must be between 0 and 1, got {}",
                self.sample
            )));
        }
        if !(1..=86_400).contains(&self.window_s) {
            return Err(Error::Invalid(format!(
                "the log's window must be 1 to 86400 seconds, got {}",
                self.window_s
            )));
        }
        if self.max_per_second > 1_000_000 {
            return Err(Error::Invalid("the log's max_per_second is at most 1000000".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.features {
            if f.is_empty() || f.len() > 128 || !seen.insert(f) || RESERVED.contains(&f.as_str()) {
                return Err(Error::Invalid(format!(
                    "feature name '{f}' is empty, longer than 128, repeated, or reserved ({})",
                    RESERVED.join(", ")
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn window_ms(&self) -> i64 {
        self.window_s as i64 * 1000
    }
}

/// Columns every segment has besides the inputs.
pub const RESERVED: [&str; 8] =
    ["request_id", "at", "variant", "version", "row", "latency_ms", "prediction", "score"];

/// The per-second cap of one endpoint in one process.
#[derive(Debug, Default)]
pub(crate) struct LogGate {
    second: AtomicI64,
    count: AtomicU64,
}

impl LogGate {
    /// Whether a request of `rows` rows is logged: in the sample by its id's hash, and within
    /// this second's cap.
    pub(crate) fn admit(
        &self,
        s: &LogSettings,
        request_id: &str,
        rows: usize,
        now_ms: i64,
    ) -> Admit {
        if s.sample <= 0.0 {
            return Admit::Off;
        }
        if s.sample < 1.0 {
            let bucket = crate::split::bucket_of(request_id.as_bytes(), LOG_SALT);
            if (bucket as f64) >= s.sample * crate::split::BUCKETS as f64 {
                return Admit::Off;
            }
        }
        let second = now_ms.div_euclid(1000);
        if self.second.load(Ordering::Relaxed) != second
            && self.second.swap(second, Ordering::Relaxed) != second
        {
            self.count.store(0, Ordering::Relaxed);
        }
        let before = self.count.fetch_add(rows as u64, Ordering::Relaxed);
        if before + rows as u64 <= s.max_per_second { Admit::Yes } else { Admit::Capped }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    Yes,
    Off,
    Capped,
}

/// What a model answered, per row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Said {
    Labels(Vec<String>),
    Values(Vec<f64>),
}

/// One logged request.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) endpoint: Arc<str>,
    pub(crate) variant: String,
    pub(crate) version: i64,
    pub(crate) model: String,
    pub(crate) request_id: String,
    pub(crate) at_ms: i64,
    pub(crate) latency_ms: f64,
    pub(crate) window_ms: i64,
    pub(crate) features: Arc<Vec<String>>,
    pub(crate) rows: usize,
    pub(crate) width: usize,
    /// rows × width, row-major.
    pub(crate) inputs: Vec<f32>,
    pub(crate) said: Said,
    /// A two-class model's score for its second class, per row; else empty.
    pub(crate) scores: Vec<f64>,
}

/// Profiles being filled, by (endpoint, variant, window start): (version, window ms, profile).
type Filling = HashMap<(String, String, i64), (i64, i64, Profile)>;
/// A profile to upsert: its key, version, window (ms), rows and its encoding.
type Touched = ((String, String, i64), i64, i64, u64, String);
/// Input names by (model, version).
type Names = HashMap<(String, i64), Arc<Vec<String>>>;

#[derive(Debug, Default)]
struct Pending {
    entries: Vec<Entry>,
    rows: usize,
    oldest_ms: i64,
}

/// The log of one process: the buffer, what it did, and the profiles of the windows it fills.
#[derive(Debug, Default)]
pub(crate) struct PredLog {
    pending: Mutex<Pending>,
    /// Rows logged (admitted to the buffer), dropped (buffer full), capped (over the cap).
    pub(crate) logged: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) capped: AtomicU64,
    /// Rows and segments written.
    pub(crate) written: AtomicU64,
    pub(crate) segments: AtomicU64,
    /// Profiles this process is filling, by (endpoint, variant, window start).
    profiles: tokio::sync::Mutex<Filling>,
    /// Input names by (model, version), once resolved.
    names: Mutex<Names>,
}

impl PredLog {
    pub(crate) fn push(&self, e: Entry) {
        let mut p = self.pending.lock().expect("log lock");
        if p.rows + e.rows > MAX_BUFFERED_ROWS {
            drop(p);
            self.dropped.fetch_add(e.rows as u64, Ordering::Relaxed);
            return;
        }
        if p.entries.is_empty() {
            p.oldest_ms = e.at_ms;
        }
        p.rows += e.rows;
        self.logged.fetch_add(e.rows as u64, Ordering::Relaxed);
        p.entries.push(e);
    }

    /// Names resolved for this model version, if any yet.
    pub(crate) fn names(&self, model: &str, version: i64) -> Option<Arc<Vec<String>>> {
        self.names.lock().expect("names lock").get(&(model.to_string(), version)).cloned()
    }
}

/// Resolves the input names of a model version (from its training dataset): set by the server,
/// which knows lineage and datasets.
pub type FeatureNamer = Arc<
    dyn Fn(
            registry::ModelVersion,
            usize,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Vec<String>>> + Send>>
        + Send
        + Sync,
>;

/// A [`FeatureNamer`], shown by name only.
#[derive(Clone)]
pub(crate) struct Namer(pub(crate) FeatureNamer);

impl std::fmt::Debug for Namer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FeatureNamer")
    }
}

/// The input rows of a request, as `f32`, and the width of a row.
fn input_values(t: &Tensor) -> Option<(Vec<f32>, usize)> {
    let rows = t.shape().first().copied().unwrap_or(1).max(1);
    let width = t.len() / rows;
    let owned;
    let t = if t.datum_type() == f32::datum_type() {
        t
    } else {
        owned = t.cast_to::<f32>().ok()?.into_owned();
        &owned
    };
    let plain = t.try_as_plain_ram().ok()?;
    Some((plain.as_slice::<f32>().ok()?.to_vec(), width))
}

/// What a model said, per row: a numeric first output as numbers (a regressor's), else labels.
fn said_of(outputs: &[Output]) -> Said {
    match outputs.first() {
        Some(Output::Tensor(t))
            if t.datum_type() == f32::datum_type() || t.datum_type() == f64::datum_type() =>
        {
            let rows = t.shape().first().copied().unwrap_or(1).max(1);
            let width = (t.len() / rows).max(1);
            let values: Vec<f64> = match t.cast_to::<f64>() {
                Ok(c) => c
                    .try_as_plain_ram()
                    .ok()
                    .and_then(|p| p.as_slice::<f64>().ok().map(|s| s.to_vec()))
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            Said::Values((0..rows).filter_map(|r| values.get(r * width).copied()).collect())
        }
        Some(first) => Said::Labels(crate::feedback::labels_of(first)),
        None => Said::Labels(Vec::new()),
    }
}

/// A logged segment, as the store lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub id: String,
    pub endpoint: String,
    pub version: i64,
    pub replica: String,
    pub first_ms: i64,
    pub last_ms: i64,
    pub rows: i64,
    pub requests: i64,
    pub digest: String,
    pub bytes: i64,
}

/// A window's profile for one variant, merged over every process.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowProfile {
    pub window_ms: i64,
    pub window_s: i64,
    pub variant: String,
    pub versions: Vec<i64>,
    pub rows: u64,
    pub profile: Profile,
}

/// What the log did since the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LogStats {
    pub logged: u64,
    pub written: u64,
    pub segments: u64,
    pub dropped: u64,
    pub capped: u64,
    pub buffered: u64,
}

impl Serving {
    /// Sets the resolver of input names from lineage.
    pub fn with_feature_namer(mut self, namer: FeatureNamer) -> Serving {
        self.namer = Some(Namer(namer));
        self
    }

    /// Logs a request `live` answered at `at_ms`, when its endpoint's sampling admits it;
    /// whether it did.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn log_request(
        &self,
        served: &crate::Served,
        live: &Live,
        request_id: &str,
        input: &Tensor,
        outputs: &[Output],
        latency: Duration,
        at_ms: i64,
    ) -> bool {
        let settings = &served.endpoint.log;
        let rows = input.shape().first().copied().unwrap_or(1).max(1);
        match served.log_gate.admit(settings, request_id, rows, at_ms) {
            Admit::Yes => {}
            Admit::Off => return false,
            Admit::Capped => {
                self.log.capped.fetch_add(rows as u64, Ordering::Relaxed);
                return false;
            }
        }
        let Some((inputs, width)) = input_values(input) else { return false };
        // Names set by hand; else the writer names the rows (from lineage), off this path.
        let features = if served.log_features.len() == width {
            served.log_features.clone()
        } else {
            served.no_features.clone()
        };
        self.log.push(Entry {
            endpoint: Arc::from(live.endpoint.as_str()),
            variant: live.variant.clone(),
            version: live.version.version,
            model: live.version.name.clone(),
            request_id: request_id.to_string(),
            at_ms,
            latency_ms: latency.as_secs_f64() * 1000.0,
            window_ms: settings.window_ms(),
            features,
            rows,
            width,
            inputs,
            said: said_of(outputs),
            scores: crate::feedback::scores_of(outputs),
        });
        true
    }

    /// What the log did since this process started.
    pub fn log_stats(&self) -> LogStats {
        let l = &self.log;
        LogStats {
            logged: l.logged.load(Ordering::Relaxed),
            written: l.written.load(Ordering::Relaxed),
            segments: l.segments.load(Ordering::Relaxed),
            dropped: l.dropped.load(Ordering::Relaxed),
            capped: l.capped.load(Ordering::Relaxed),
            buffered: l.pending.lock().expect("log lock").rows as u64,
        }
    }

    /// Writes the buffer when it is due (or at once with `force`): one segment per endpoint and
    /// version, and the profiles of the windows its rows fall in. Returns the rows written.
    /// A write that fails puts its rows back (as room allows) for the next try.
    pub async fn flush_log(&self, force: bool) -> Result<usize> {
        let taken = {
            let mut p = self.log.pending.lock().expect("log lock");
            let due = p.rows >= SEGMENT_ROWS || now_ms() - p.oldest_ms >= FLUSH_MS;
            if p.entries.is_empty() || !(force || due) {
                return Ok(0);
            }
            std::mem::take(&mut *p)
        };
        // Serialised: one writer of this process's profiles at a time.
        let mut profiles = self.log.profiles.lock().await;
        let mut groups: BTreeMap<(Arc<str>, i64), Vec<Entry>> = BTreeMap::new();
        for e in taken.entries {
            groups.entry((e.endpoint.clone(), e.version)).or_default().push(e);
        }
        let mut written = 0;
        let mut failed: Option<Error> = None;
        let mut done: Vec<Entry> = Vec::new();
        for ((endpoint, version), mut entries) in groups {
            if failed.is_some() {
                self.requeue(entries);
                continue;
            }
            self.name_entries(&mut entries).await;
            match self.write_segment(&endpoint, version, entries).await {
                Ok((rows, entries)) => {
                    written += rows;
                    done.extend(entries);
                }
                Err((e, entries)) => {
                    failed = Some(e);
                    self.requeue(entries);
                }
            }
        }
        // Folding and encoding profiles is CPU work: off the runtime's threads and below the
        // request path's priority, as encoding is.
        let filling = std::mem::take(&mut *profiles);
        let (filling, touched) = slipway_core::background::run(move || {
            let mut filling = filling;
            let touched = fold_profiles(&mut filling, &done);
            let encoded: Vec<Touched> = touched
                .into_iter()
                .filter_map(|key| {
                    let (version, window_ms, p) = filling.get(&key)?;
                    let text = String::from_utf8_lossy(&p.encode()).into_owned();
                    Some((key, *version, *window_ms, p.rows, text))
                })
                .collect();
            (filling, encoded)
        })
        .await
        .map_err(|e| Error::Invalid(format!("profiling the log: {e}")))?;
        *profiles = filling;
        self.save_profiles(&mut profiles, touched).await?;
        match failed {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }

    fn requeue(&self, entries: Vec<Entry>) {
        for e in entries {
            self.log.push(e);
        }
    }

    /// Names the inputs of entries logged before their version's names were known.
    async fn name_entries(&self, entries: &mut [Entry]) {
        let Some(first) = entries.iter().find(|e| e.features.is_empty()) else { return };
        let (model, version, width) = (first.model.clone(), first.version, first.width);
        let known = self.log.names(&model, version);
        let names = match known {
            Some(n) => n,
            None => {
                let resolved = match (&self.namer, self.registry.get_version(&model, version).await)
                {
                    (Some(namer), Ok(v)) => (namer.0)(v, width).await,
                    _ => None,
                };
                let resolved = resolved.filter(|n| {
                    n.len() == width && n.iter().all(|f| !RESERVED.contains(&f.as_str()))
                });
                // Only names that resolved are kept: a lookup that failed is tried again.
                match resolved {
                    Some(names) => {
                        let names = Arc::new(names);
                        let mut known = self.log.names.lock().expect("names lock");
                        known.insert((model, version), names.clone());
                        names
                    }
                    None => Arc::new((0..width).map(|i| format!("f{i}")).collect()),
                }
            }
        };
        for e in entries.iter_mut().filter(|e| e.features.is_empty()) {
            e.features = names.clone();
        }
    }

    /// Writes `entries` as one segment; gives them back, written or not.
    async fn write_segment(
        &self,
        endpoint: &str,
        version: i64,
        entries: Vec<Entry>,
    ) -> Result<(usize, Vec<Entry>), (Error, Vec<Entry>)> {
        let (encoded, entries) = match slipway_core::background::run(move || {
            (encode_segment(&entries), entries)
        })
        .await
        {
            Ok(x) => x,
            Err(e) => {
                return Err((Error::Invalid(format!("writing a log segment: {e}")), Vec::new()));
            }
        };
        match encoded {
            Ok(Some((bytes, rows))) => {
                match self.store_segment(endpoint, version, &entries, bytes, rows).await {
                    Ok(()) => Ok((rows, entries)),
                    Err(e) => Err((e, entries)),
                }
            }
            Ok(None) => Ok((0, entries)),
            Err(e) => Err((e, entries)),
        }
    }

    async fn store_segment(
        &self,
        endpoint: &str,
        version: i64,
        entries: &[Entry],
        bytes: Vec<u8>,
        rows: usize,
    ) -> Result<()> {
        let size = bytes.len() as i64;
        let put = self.registry.blobs().put_bytes(bytes.into()).await?;
        let first_ms = entries.iter().map(|e| e.at_ms).min().unwrap_or(0);
        let last_ms = entries.iter().map(|e| e.at_ms).max().unwrap_or(0);
        sqlx::query(
            "INSERT INTO serve_log_segments (id, endpoint, version, replica, first_ms, last_ms, \
             rows, requests, digest, bytes, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(slipway_core::new_id())
        .bind(endpoint)
        .bind(version)
        .bind(&self.replica)
        .bind(first_ms)
        .bind(last_ms)
        .bind(rows as i64)
        .bind(entries.len() as i64)
        .bind(put.digest.to_hex())
        .bind(size)
        .bind(now_ms())
        .execute(self.db.pool())
        .await?;
        self.log.written.fetch_add(rows as u64, Ordering::Relaxed);
        self.log.segments.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Upserts this process's row of every window it touched; forgets windows that closed
    /// more than a window ago.
    async fn save_profiles(&self, profiles: &mut Filling, touched: Vec<Touched>) -> Result<()> {
        let now = now_ms();
        for ((endpoint, variant, window), version, window_ms, rows, text) in touched {
            sqlx::query(
                "INSERT INTO serve_log_profiles (endpoint, variant, window_ms, replica, version, \
                 window_s, rows, profile, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (endpoint, variant, window_ms, replica) DO UPDATE SET \
                 version = excluded.version, rows = excluded.rows, profile = excluded.profile, \
                 updated_ms = excluded.updated_ms",
            )
            .bind(endpoint)
            .bind(variant)
            .bind(window)
            .bind(&self.replica)
            .bind(version)
            .bind(window_ms / 1000)
            .bind(rows as i64)
            .bind(text)
            .bind(now)
            .execute(self.db.pool())
            .await?;
        }
        profiles.retain(|(_, _, window), (_, window_ms, _)| *window + 2 * *window_ms > now);
        Ok(())
    }

    /// Segments of `endpoint` with rows in [since_ms, until_ms], oldest first.
    pub async fn log_segments(
        &self,
        endpoint: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<Segment>> {
        let rows = sqlx::query(
            "SELECT id, endpoint, version, replica, first_ms, last_ms, rows, requests, digest, \
             bytes FROM serve_log_segments WHERE endpoint = $1 AND last_ms >= $2 AND first_ms <= $3 \
             ORDER BY first_ms, id",
        )
        .bind(endpoint)
        .bind(since_ms)
        .bind(until_ms)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Segment {
                    id: r.try_get("id")?,
                    endpoint: r.try_get("endpoint")?,
                    version: r.try_get("version")?,
                    replica: r.try_get("replica")?,
                    first_ms: r.try_get("first_ms")?,
                    last_ms: r.try_get("last_ms")?,
                    rows: r.try_get("rows")?,
                    requests: r.try_get("requests")?,
                    digest: r.try_get("digest")?,
                    bytes: r.try_get("bytes")?,
                })
            })
            .collect()
    }

    /// A segment's Parquet bytes.
    pub async fn segment_bytes(&self, segment: &Segment) -> Result<bytes::Bytes> {
        let digest = segment
            .digest
            .parse::<Digest>()
            .map_err(|_| Error::Invalid(format!("segment {} has a bad digest", segment.id)))?;
        Ok(self.registry.blobs().read(&digest).await?)
    }

    /// The profiles of `endpoint`'s windows that start in [since_ms, until_ms], per variant,
    /// merged over every process; oldest first.
    pub async fn window_profiles(
        &self,
        endpoint: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<WindowProfile>> {
        let rows = sqlx::query(
            "SELECT variant, window_ms, version, window_s, profile FROM serve_log_profiles \
             WHERE endpoint = $1 AND window_ms >= $2 AND window_ms <= $3 \
             ORDER BY window_ms, variant, replica",
        )
        .bind(endpoint)
        .bind(since_ms)
        .bind(until_ms)
        .fetch_all(self.db.pool())
        .await?;
        let mut out: Vec<WindowProfile> = Vec::new();
        for r in &rows {
            let variant: String = r.try_get("variant")?;
            let window_ms: i64 = r.try_get("window_ms")?;
            let version: i64 = r.try_get("version")?;
            let text: String = r.try_get("profile")?;
            let profile = Profile::decode(text.as_bytes())
                .map_err(|e| Error::Invalid(format!("a stored window profile: {e}")))?;
            match out.last_mut().filter(|w| w.window_ms == window_ms && w.variant == variant) {
                Some(w) => {
                    // Versions of one variant in one window share their inputs; a mismatch is
                    // kept apart rather than refused.
                    if w.profile.merge(&profile).is_ok() {
                        w.rows = w.profile.rows;
                        if !w.versions.contains(&version) {
                            w.versions.push(version);
                        }
                    }
                }
                None => out.push(WindowProfile {
                    window_ms,
                    window_s: r.try_get("window_s")?,
                    variant,
                    versions: vec![version],
                    rows: profile.rows,
                    profile,
                }),
            }
        }
        Ok(out)
    }

    /// Removes log segments (rows and blobs) and profiles older than `before_ms`.
    pub(crate) async fn prune_log(&self, before_ms: i64) -> Result<()> {
        let old = sqlx::query("SELECT digest FROM serve_log_segments WHERE last_ms < $1")
            .bind(before_ms)
            .fetch_all(self.db.pool())
            .await?;
        sqlx::query("DELETE FROM serve_log_segments WHERE last_ms < $1")
            .bind(before_ms)
            .execute(self.db.pool())
            .await?;
        for r in &old {
            let hex: String = r.try_get("digest")?;
            if let Ok(d) = hex.parse::<Digest>() {
                // Content-addressed: another segment may hold the same bytes.
                let shared = sqlx::query("SELECT 1 FROM serve_log_segments WHERE digest = $1")
                    .bind(&hex)
                    .fetch_optional(self.db.pool())
                    .await?;
                if shared.is_none() {
                    self.registry.blobs().delete(&d).await?;
                }
            }
        }
        sqlx::query("DELETE FROM serve_log_profiles WHERE window_ms < $1")
            .bind(before_ms)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }
}

/// Rows of the log, read back from its segments.
#[derive(Debug, Clone, Default)]
pub struct LogRows {
    /// One schema: the union of the segments' columns, in the order first seen.
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    /// Whether `limit` cut rows off.
    pub truncated: bool,
}

impl LogRows {
    /// The rows as one Parquet file.
    pub fn to_parquet(&self) -> Result<Vec<u8>> {
        let fail =
            |e: parquet::errors::ParquetError| Error::Invalid(format!("writing Parquet: {e}"));
        let schema = match self.batches.first() {
            Some(b) => b.schema(),
            None => Arc::new(Schema::new(Vec::<Field>::new())),
        };
        let mut out = Cursor::new(Vec::new());
        let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
        let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props)).map_err(fail)?;
        for b in &self.batches {
            writer.write(b).map_err(fail)?;
        }
        writer.close().map_err(fail)?;
        Ok(out.into_inner())
    }

    /// The rows as JSON objects (`at` in ms since the epoch; a NaN or null as null).
    pub fn to_json(&self) -> Vec<serde_json::Value> {
        use arrow_array::Array;
        use arrow_array::cast::AsArray;
        use arrow_array::types::{
            Float32Type, Float64Type, Int32Type, Int64Type, TimestampMillisecondType,
        };
        use serde_json::{Value, json};
        let mut out = Vec::with_capacity(self.rows);
        for b in &self.batches {
            let schema = b.schema();
            for r in 0..b.num_rows() {
                let mut m = serde_json::Map::new();
                for (f, c) in schema.fields().iter().zip(b.columns()) {
                    let v = if c.is_null(r) {
                        Value::Null
                    } else {
                        match c.data_type() {
                            DataType::Utf8 => json!(c.as_string::<i32>().value(r)),
                            DataType::Int64 => json!(c.as_primitive::<Int64Type>().value(r)),
                            DataType::Int32 => json!(c.as_primitive::<Int32Type>().value(r)),
                            DataType::Float32 => json!(c.as_primitive::<Float32Type>().value(r)),
                            DataType::Float64 => json!(c.as_primitive::<Float64Type>().value(r)),
                            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                                json!(c.as_primitive::<TimestampMillisecondType>().value(r))
                            }
                            _ => Value::Null,
                        }
                    };
                    m.insert(f.name().clone(), v);
                }
                out.push(Value::Object(m));
            }
        }
        out
    }
}

impl Serving {
    /// Logged rows of `endpoint` (of one model version, if given) in [since_ms, until_ms],
    /// oldest first, at most `limit`.
    pub async fn read_log(
        &self,
        endpoint: &str,
        since_ms: i64,
        until_ms: i64,
        version: Option<i64>,
        limit: usize,
    ) -> Result<LogRows> {
        let segments: Vec<Segment> = self
            .log_segments(endpoint, since_ms, until_ms)
            .await?
            .into_iter()
            .filter(|s| version.is_none_or(|v| v == s.version))
            .collect();
        // Rows come in segment order up to `limit`: segments past the ones that surely hold
        // `limit` rows in range are not read.
        let mut parts = Vec::with_capacity(segments.len());
        let mut sure = 0usize;
        for s in &segments {
            if sure >= limit {
                break;
            }
            parts.push(self.segment_bytes(s).await?);
            if s.first_ms >= since_ms && s.last_ms <= until_ms {
                sure += s.rows.max(0) as usize;
            }
        }
        let left_unread = parts.len() < segments.len();
        let mut rows =
            slipway_core::background::run(move || read_parts(parts, since_ms, until_ms, limit))
                .await
                .map_err(|e| Error::Invalid(format!("reading the log: {e}")))??;
        rows.truncated |= left_unread;
        Ok(rows)
    }
}

/// Decodes segments, keeps rows in the time range, and brings them to one schema.
fn read_parts(
    parts: Vec<bytes::Bytes>,
    since_ms: i64,
    until_ms: i64,
    limit: usize,
) -> Result<LogRows> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampMillisecondType;
    let fail = |e: String| Error::Invalid(format!("reading a log segment: {e}"));
    let mut batches = Vec::new();
    let mut fields: Vec<Field> = Vec::new();
    let mut rows = 0usize;
    let mut truncated = false;
    'parts: for bytes in parts {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|e| fail(e.to_string()))?
            .build()
            .map_err(|e| fail(e.to_string()))?;
        for batch in reader {
            let batch = batch.map_err(|e| fail(e.to_string()))?;
            let Some(at) = batch.column_by_name("at") else { continue };
            let at = at.as_primitive::<TimestampMillisecondType>();
            let keep: arrow_array::BooleanArray =
                (0..at.len()).map(|i| Some((since_ms..=until_ms).contains(&at.value(i)))).collect();
            let mut batch = arrow_select::filter::filter_record_batch(&batch, &keep)
                .map_err(|e| fail(e.to_string()))?;
            if batch.num_rows() == 0 {
                continue;
            }
            if rows + batch.num_rows() > limit {
                batch = batch.slice(0, limit - rows);
                truncated = true;
            }
            for f in batch.schema().fields() {
                match fields.iter().find(|g| g.name() == f.name()) {
                    Some(g) if g.data_type() != f.data_type() => {
                        return Err(Error::Invalid(format!(
                            "column '{}' is {} in one segment and {} in another: ask for one version",
                            f.name(),
                            g.data_type(),
                            f.data_type()
                        )));
                    }
                    Some(_) => {}
                    None => fields.push(f.as_ref().clone().with_nullable(true)),
                }
            }
            rows += batch.num_rows();
            batches.push(batch);
            if truncated {
                break 'parts;
            }
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let batches = batches
        .into_iter()
        .map(|b| {
            let columns: Vec<ArrayRef> = schema
                .fields()
                .iter()
                .map(|f| {
                    b.column_by_name(f.name())
                        .cloned()
                        .unwrap_or_else(|| arrow_array::new_null_array(f.data_type(), b.num_rows()))
                })
                .collect();
            RecordBatch::try_new(schema.clone(), columns).map_err(|e| fail(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LogRows { batches, rows, truncated })
}

/// Folds entries into the profiles of their (endpoint, variant, window).
fn fold_profiles(
    profiles: &mut Filling,
    entries: &[Entry],
) -> std::collections::HashSet<(String, String, i64)> {
    // Entries by profile, then each column's values pushed at once (one sketch update per
    // bucket rather than per value).
    let mut groups: HashMap<(String, String, i64), Vec<&Entry>> = HashMap::new();
    for e in entries {
        let window = e.at_ms - e.at_ms.rem_euclid(e.window_ms.max(1000));
        groups.entry((e.endpoint.to_string(), e.variant.clone(), window)).or_default().push(e);
    }
    let mut touched = std::collections::HashSet::new();
    for (key, group) in groups {
        let last = group[group.len() - 1];
        let (version, _, p) = profiles.entry(key.clone()).or_insert_with(|| {
            let mut cols: Vec<(String, DType)> =
                last.features.iter().map(|f| (f.clone(), DType::Float)).collect();
            let said = match last.said {
                Said::Labels(_) => DType::String,
                Said::Values(_) => DType::Float,
            };
            cols.push(("prediction".into(), said));
            cols.push(("score".into(), DType::Float));
            cols.push(("latency_ms".into(), DType::Float));
            (last.version, last.window_ms, Profile::new(&cols))
        });
        *version = last.version;
        touched.insert(key);
        let width = p.columns.len() - 3;
        let group: Vec<&Entry> =
            group.into_iter().filter(|e| e.width == width && e.features.len() == width).collect();
        let rows: usize = group.iter().map(|e| e.rows).sum();
        p.add_rows(rows as u64);
        let mut values = Vec::with_capacity(rows);
        for c in 0..width {
            values.clear();
            for e in &group {
                values.extend((0..e.rows).map(|r| f64::from(e.inputs[r * width + c])));
            }
            p.columns[c].push_numbers(&values);
        }
        let [pred, score, latency] = &mut p.columns[width..] else { unreachable!() };
        values.clear();
        for e in &group {
            for r in 0..e.rows {
                match &e.said {
                    Said::Labels(l) => match l.get(r) {
                        Some(v) => pred.push_text(v),
                        None => pred.push_null(),
                    },
                    Said::Values(v) => match v.get(r) {
                        Some(x) => values.push(*x),
                        None => pred.push_null(),
                    },
                }
            }
        }
        pred.push_numbers(&values);
        values.clear();
        for e in &group {
            values.extend(e.scores.iter().take(e.rows));
            for _ in e.scores.len()..e.rows {
                score.push_null();
            }
        }
        score.push_numbers(&values);
        values.clear();
        for e in &group {
            values.extend(std::iter::repeat_n(e.latency_ms, e.rows));
        }
        latency.push_numbers(&values);
    }
    touched
}

/// A segment's Parquet bytes and row count: entries of one endpoint and version (one width).
fn encode_segment(entries: &[Entry]) -> Result<Option<(Vec<u8>, usize)>> {
    let Some(first) = entries.first() else { return Ok(None) };
    let features = first.features.clone();
    let width = first.width;
    let entries: Vec<&Entry> = entries.iter().filter(|e| e.width == width).collect();
    let rows: usize = entries.iter().map(|e| e.rows).sum();
    let numeric = matches!(first.said, Said::Values(_));
    let mut ids = StringBuilder::with_capacity(rows, rows * 36);
    let mut at = Vec::with_capacity(rows);
    let mut variants = StringBuilder::with_capacity(rows, rows * 4);
    let mut versions = Vec::with_capacity(rows);
    let mut row = Vec::with_capacity(rows);
    let mut latency = Float64Builder::with_capacity(rows);
    let mut inputs: Vec<Float32Builder> =
        (0..width).map(|_| Float32Builder::with_capacity(rows)).collect();
    let mut labels = StringBuilder::with_capacity(rows, rows * 2);
    let mut values = Float64Builder::with_capacity(rows);
    let mut scores = Float64Builder::with_capacity(rows);
    for e in &entries {
        for r in 0..e.rows {
            ids.append_value(&e.request_id);
            at.push(e.at_ms);
            variants.append_value(&e.variant);
            versions.push(e.version);
            row.push(r as i32);
            latency.append_value(e.latency_ms);
            for (c, b) in inputs.iter_mut().enumerate() {
                b.append_value(e.inputs[r * width + c]);
            }
            match &e.said {
                Said::Labels(l) if !numeric => labels.append_option(l.get(r)),
                Said::Values(v) if numeric => values.append_option(v.get(r).copied()),
                _ if numeric => values.append_null(),
                _ => labels.append_null(),
            }
            scores.append_option(e.scores.get(r).copied());
        }
    }
    let mut fields = vec![
        Field::new("request_id", DataType::Utf8, false),
        Field::new("at", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new("variant", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("row", DataType::Int32, false),
        Field::new("latency_ms", DataType::Float64, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()) as ArrayRef,
        Arc::new(TimestampMillisecondArray::from(at).with_timezone("UTC")),
        Arc::new(variants.finish()),
        Arc::new(Int64Array::from(versions)),
        Arc::new(Int32Array::from(row)),
        Arc::new(latency.finish()),
    ];
    for (name, mut b) in features.iter().zip(inputs) {
        fields.push(Field::new(name, DataType::Float32, false));
        columns.push(Arc::new(b.finish()));
    }
    if numeric {
        fields.push(Field::new("prediction", DataType::Float64, true));
        columns.push(Arc::new(values.finish()));
    } else {
        fields.push(Field::new("prediction", DataType::Utf8, true));
        columns.push(Arc::new(labels.finish()) as ArrayRef);
    }
    fields.push(Field::new("score", DataType::Float64, true));
    columns.push(Arc::new(scores.finish()));
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::Invalid(format!("building a log segment: {e}")))?;
    // Dictionaries only where values repeat (variant, a classifier's labels): inputs, ids and
    // times rarely do, and trying costs most of a segment's encoding time.
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled("variant".into(), true)
        .set_column_dictionary_enabled("prediction".into(), true)
        .build();
    let mut out = Cursor::new(Vec::with_capacity(rows * (width * 4 + 64) / 2));
    let fail =
        |e: parquet::errors::ParquetError| Error::Invalid(format!("writing a log segment: {e}"));
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props)).map_err(fail)?;
    writer.write(&batch).map_err(fail)?;
    writer.close().map_err(fail)?;
    Ok(Some((out.into_inner(), rows)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StringArray;

    #[test]
    fn the_gate_samples_by_request_id_and_caps_each_second() {
        let gate = LogGate::default();
        let half = LogSettings { sample: 0.3, max_per_second: 1_000_000, ..LogSettings::default() };
        let ids: Vec<String> = (0..10_000).map(|i| format!("req-{i}")).collect();
        let taken: Vec<bool> =
            ids.iter().map(|id| gate.admit(&half, id, 1, 1_000) == Admit::Yes).collect();
        let share = taken.iter().filter(|t| **t).count() as f64 / ids.len() as f64;
        assert!((share - 0.3).abs() < 0.02, "{share}");
        // The same ids are in or out again.
        let again: Vec<bool> =
            ids.iter().map(|id| gate.admit(&half, id, 1, 1_000) == Admit::Yes).collect();
        assert_eq!(taken, again);

        let capped = LogSettings { max_per_second: 10, ..LogSettings::default() };
        let gate = LogGate::default();
        let first: Vec<Admit> =
            (0..6).map(|i| gate.admit(&capped, &i.to_string(), 2, 5_000)).collect();
        assert_eq!(first.iter().filter(|a| **a == Admit::Yes).count(), 5);
        assert_eq!(first[5], Admit::Capped);
        // A new second, a new allowance.
        assert_eq!(gate.admit(&capped, "x", 2, 6_000), Admit::Yes);
        let off = LogSettings { sample: 0.0, ..LogSettings::default() };
        assert_eq!(gate.admit(&off, "x", 1, 6_000), Admit::Off);
    }

    #[test]
    fn settings_are_checked() {
        assert!(LogSettings::default().check().is_ok());
        for bad in [
            LogSettings { sample: 1.5, ..LogSettings::default() },
            LogSettings { sample: -0.1, ..LogSettings::default() },
            LogSettings { window_s: 0, ..LogSettings::default() },
            LogSettings { features: vec!["a".into(), "a".into()], ..LogSettings::default() },
            LogSettings { features: vec!["score".into()], ..LogSettings::default() },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    fn entry(at_ms: i64, variant: &str, inputs: Vec<f32>, said: Said) -> Entry {
        let width = 2;
        let rows = inputs.len() / width;
        Entry {
            endpoint: Arc::from("falls"),
            variant: variant.into(),
            version: 1,
            model: "falls".into(),
            request_id: format!("r{at_ms}"),
            at_ms,
            latency_ms: 1.5,
            window_ms: 60_000,
            features: Arc::new(vec!["x".into(), "y".into()]),
            rows,
            width,
            inputs,
            said,
            scores: vec![0.25; rows],
        }
    }

    #[test]
    fn segments_round_trip_and_profiles_fold_by_window_and_variant() {
        let entries = vec![
            entry(
                1_000,
                "v1",
                vec![1.0, 2.0, 3.0, 4.0],
                Said::Labels(vec!["0".into(), "1".into()]),
            ),
            entry(61_000, "v1", vec![5.0, 6.0], Said::Labels(vec!["1".into()])),
            entry(2_000, "v2", vec![7.0, 8.0], Said::Labels(vec!["0".into()])),
        ];
        let (bytes, rows) = encode_segment(&entries).unwrap().unwrap();
        assert_eq!(rows, 4);
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(bytes),
        )
        .unwrap()
        .build()
        .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let b = &batches[0];
        let names: Vec<&str> = b.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "request_id",
                "at",
                "variant",
                "version",
                "row",
                "latency_ms",
                "x",
                "y",
                "prediction",
                "score"
            ]
        );
        let y = b.column(7).as_any().downcast_ref::<arrow_array::Float32Array>().unwrap();
        assert_eq!(y.values().to_vec(), vec![2.0, 4.0, 6.0, 8.0]);
        let said = b.column(8).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(said.iter().flatten().collect::<Vec<_>>(), ["0", "1", "1", "0"]);

        let mut profiles = HashMap::new();
        fold_profiles(&mut profiles, &entries);
        assert_eq!(profiles.len(), 3);
        let (_, _, first) = &profiles[&("falls".to_string(), "v1".to_string(), 0)];
        assert_eq!(first.rows, 2);
        let x = first.column("x").unwrap().numeric.as_ref().unwrap();
        assert_eq!((x.min, x.max, x.mean()), (Some(1.0), Some(3.0), Some(2.0)));
        assert_eq!(first.column("prediction").unwrap().distinct_count(), 2);
        assert!(profiles.contains_key(&("falls".to_string(), "v1".to_string(), 60_000)));
    }
}
