//! Monitors on endpoints: each closed window of an endpoint's prediction log is compared, column
//! by column with [`crate::drift`]'s tests (Evidently's defaults, SciPy's numbers), against a
//! reference:
//!
//! - **skew**: the model's training table — the dataset version its lineage names, or one named
//!   in the monitor — on the input columns;
//! - **drift**: an earlier window of the log (the one before, or a pinned one), on the inputs;
//! - **prediction drift**: the same, on the `prediction` column.
//!
//! A window is judged from its logged rows (read back from the Parquet segments), once it has
//! closed and the log has written it; its report is kept in `monitor_reports`, one row per
//! monitor and window, so the history of every column's statistic can be drawn.

use std::collections::BTreeMap;

use registry::Registry;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use slipway_core::{Db, Migration, now_ms};
use slipway_data::{Data, VersionRef};
use sqlx::Row;

use crate::drift::{DatasetDrift, Distribution, dataset_drift, distribution};
use crate::table::{Choices, TableColumn, pair_columns, read_batches};

/// Columns of the log that are not the model's inputs.
const LOG_COLUMNS: [&str; 8] =
    ["request_id", "at", "variant", "version", "row", "latency_ms", "prediction", "score"];
/// A window is judged this long after it closes: the log writes within 6 s.
pub const SETTLE_MS: i64 = 8_000;
/// Rows read from one window at most.
pub const MAX_WINDOW_ROWS: usize = 2_000_000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("Monitor '{0}' not found")]
    NotFound(String),
    #[error("Monitor '{0}' already exists")]
    Exists(String),
    #[error(transparent)]
    Serve(#[from] serve::Error),
    #[error(transparent)]
    Data(#[from] slipway_data::Error),
    #[error(transparent)]
    Core(#[from] slipway_core::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        Error::Core(e.into())
    }
}

impl Error {
    pub fn code(&self) -> slipway_core::ErrorCode {
        use slipway_core::ErrorCode as C;
        match self {
            Error::Invalid(_) => C::InvalidParameterValue,
            Error::NotFound(_) => C::ResourceDoesNotExist,
            Error::Exists(_) => C::ResourceAlreadyExists,
            Error::Serve(e) => e.code(),
            Error::Data(e) => e.code(),
            Error::Core(e) => e.code(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The monitors' schema (its own component, `monitors`, beside the gauges' `monitor`).
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "monitors",
    sqlite: include_str!("../migrations/monitors_0001.sql"),
    postgres: include_str!("../migrations/monitors_0001.sql"),
}];

/// What a monitor compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Skew,
    Drift,
    PredictionDrift,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Skew => "skew",
            Kind::Drift => "drift",
            Kind::PredictionDrift => "prediction_drift",
        }
    }
}

/// A monitor, as created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: String,
    pub endpoint: String,
    pub kind: Kind,
    /// Skew: the training table, `NAME@VERSION`; default: the one the serving version's lineage
    /// names.
    #[serde(default)]
    pub reference: Option<String>,
    /// Drift: the start (ms) of a pinned baseline window; default: the window before.
    #[serde(default)]
    pub baseline_window_ms: Option<i64>,
    /// Columns compared; default: every input (or `prediction`).
    #[serde(default)]
    pub columns: Vec<String>,
    /// Tests and thresholds by column, instead of the defaults.
    #[serde(default)]
    pub tests: BTreeMap<String, String>,
    #[serde(default)]
    pub thresholds: BTreeMap<String, f64>,
    /// The share of drifted columns at which the monitor fires (Evidently's 0.5).
    #[serde(default = "default_share")]
    pub share: f64,
    /// Windows with fewer rows are not judged.
    #[serde(default = "default_min_rows")]
    pub min_rows: u64,
}

fn default_share() -> f64 {
    0.5
}

fn default_min_rows() -> u64 {
    30
}

impl Spec {
    pub fn check(&self) -> Result<()> {
        let ok = !self.name.is_empty()
            && self.name.len() <= 128
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(Error::Invalid(format!(
                "Invalid monitor name '{}': use 1 to 128 letters, digits, '-', '_' or '.'",
                self.name
            )));
        }
        if !(self.share > 0.0 && self.share <= 1.0) {
            return Err(Error::Invalid(format!("share must be in (0, 1], got {}", self.share)));
        }
        if self.reference.is_some() && self.kind != Kind::Skew {
            return Err(Error::Invalid(
                "reference is for skew monitors: drift compares windows".into(),
            ));
        }
        if self.baseline_window_ms.is_some() && self.kind == Kind::Skew {
            return Err(Error::Invalid(
                "baseline_window_ms is for drift monitors: skew compares with the training table"
                    .into(),
            ));
        }
        if let Some(r) = &self.reference {
            VersionRef::parse(r).map_err(|e| Error::Invalid(format!("reference: {e}")))?;
        }
        for (c, t) in &self.tests {
            if crate::drift::Test::parse(t).is_none() {
                return Err(Error::Invalid(format!(
                    "column '{c}': no test named '{t}' (ks, chisquare, z, wasserstein, jensenshannon, psi, kl_div)"
                )));
            }
        }
        for (c, t) in &self.thresholds {
            if !t.is_finite() {
                return Err(Error::Invalid(format!(
                    "column '{c}': the threshold must be a number"
                )));
            }
        }
        Ok(())
    }
}

/// A monitor and its latest report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Monitor {
    #[serde(flatten)]
    pub spec: Spec,
    pub created_ms: i64,
    pub latest: Option<Report>,
}

/// The verdict on one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub monitor: String,
    pub window_ms: i64,
    pub window_s: i64,
    /// What the window was compared with: `fall-features@1`, or a window's start.
    pub reference: String,
    pub reference_rows: usize,
    pub current_rows: usize,
    pub drift: bool,
    pub drifted: usize,
    pub share: f64,
    pub share_threshold: f64,
    pub columns: Vec<crate::drift::ColumnDrift>,
    /// Columns left out, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Per column, the two sides' distributions (for drawing them overlaid); left out of lists.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub distributions: BTreeMap<String, crate::drift::Distribution>,
    pub created_ms: i64,
}

/// The monitors of a deployment; cheap to clone.
#[derive(Clone, Debug)]
pub struct Monitors {
    db: Db,
    serving: serve::Serving,
    registry: Registry,
    data: Data,
    /// The window each monitor's judge last tried, so one that cannot be judged is not read
    /// again every second.
    tried: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, i64>>>,
}

impl Monitors {
    pub async fn open(
        db: Db,
        serving: serve::Serving,
        registry: Registry,
        data: Data,
    ) -> Result<Monitors> {
        db.migrate("monitors", MIGRATIONS).await?;
        Ok(Monitors { db, serving, registry, data, tried: Default::default() })
    }

    pub async fn create(&self, spec: Spec) -> Result<Monitor> {
        spec.check()?;
        self.serving.get(&spec.endpoint).await?;
        if let Some(r) = &spec.reference {
            let r = VersionRef::parse(r).map_err(|e| Error::Invalid(format!("reference: {e}")))?;
            self.data.resolve(&r).await?;
        }
        let done = sqlx::query(
            "INSERT INTO monitor_monitors (name, endpoint, kind, spec, created_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&spec.name)
        .bind(&spec.endpoint)
        .bind(spec.kind.as_str())
        .bind(serde_json::to_string(&spec).unwrap_or_default())
        .bind(now_ms())
        .execute(self.db.pool())
        .await;
        match done {
            Err(e) if slipway_core::is_unique_violation(&e) => {
                return Err(Error::Exists(spec.name.clone()));
            }
            other => other?,
        };
        self.get(&spec.name).await
    }

    pub async fn get(&self, name: &str) -> Result<Monitor> {
        let row = sqlx::query("SELECT spec, created_ms FROM monitor_monitors WHERE name = $1")
            .bind(name)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| Error::NotFound(name.to_string()))?;
        let spec: Spec = serde_json::from_str(&row.try_get::<String, _>("spec")?)
            .map_err(|e| Error::Invalid(format!("monitor '{name}' is stored badly: {e}")))?;
        let latest = self.reports(name, i64::MIN, i64::MAX, 1).await?.pop();
        Ok(Monitor { spec, created_ms: row.try_get("created_ms")?, latest })
    }

    pub async fn list(&self) -> Result<Vec<Monitor>> {
        let names: Vec<String> = sqlx::query("SELECT name FROM monitor_monitors ORDER BY name")
            .fetch_all(self.db.pool())
            .await?
            .iter()
            .map(|r| r.try_get("name"))
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            out.push(self.get(&n).await?);
        }
        Ok(out)
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        let mut tx = self.db.begin_write().await?;
        let done = sqlx::query("DELETE FROM monitor_monitors WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(name.to_string()));
        }
        sqlx::query("DELETE FROM monitor_reports WHERE monitor = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Reports of `name` from windows starting in [since_ms, until_ms], newest first, at most
    /// `limit`.
    pub async fn reports(
        &self,
        name: &str,
        since_ms: i64,
        until_ms: i64,
        limit: i64,
    ) -> Result<Vec<Report>> {
        let rows = sqlx::query(
            "SELECT report FROM monitor_reports WHERE monitor = $1 AND window_ms >= $2 \
             AND window_ms <= $3 ORDER BY window_ms DESC LIMIT $4",
        )
        .bind(name)
        .bind(since_ms)
        .bind(until_ms)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get("report")?;
                report_from_json(&text).ok_or_else(|| {
                    Error::Invalid(format!("a stored report of '{name}' does not read"))
                })
            })
            .collect()
    }

    /// The serving stage the monitors read.
    pub fn serving(&self) -> &serve::Serving {
        &self.serving
    }

    /// The model version an endpoint serves now (`name@version`), if it resolves.
    pub async fn served_version(&self, endpoint: &str) -> Option<String> {
        let e = self.serving.get(endpoint).await.ok()?;
        Some(self.registry.resolve(&e.model, &e.reference).await.ok()?.label())
    }

    /// The window length of an endpoint's log, in ms.
    async fn window_ms(&self, endpoint: &str) -> Result<i64> {
        Ok(self.serving.get(endpoint).await?.log.window_s as i64 * 1000)
    }

    /// The latest window of `name`'s endpoint that has closed and been written.
    pub async fn latest_closed_window(&self, name: &str) -> Result<i64> {
        let m = self.get(name).await?;
        let w = self.window_ms(&m.spec.endpoint).await?;
        let now = now_ms() - SETTLE_MS;
        Ok(now - now.rem_euclid(w) - w)
    }

    /// Judges the window of `name` that starts at `window_ms` (the latest closed one by
    /// default), keeps the report, and returns it.
    pub async fn evaluate(&self, name: &str, window_ms: Option<i64>) -> Result<Report> {
        let m = self.get(name).await?;
        let spec = &m.spec;
        let w = self.window_ms(&spec.endpoint).await?;
        let window_ms = match window_ms {
            Some(ms) => ms - ms.rem_euclid(w),
            None => self.latest_closed_window(name).await?,
        };
        let current = self.window_rows(&spec.endpoint, window_ms, w).await?;
        let current_rows = rows_of(&current.0);
        if (current_rows as u64) < spec.min_rows.max(1) {
            return Err(Error::Invalid(format!(
                "the window at {window_ms} holds {current_rows} logged rows; the monitor needs {}",
                spec.min_rows.max(1)
            )));
        }
        let (reference, label) = match spec.kind {
            Kind::Skew => self.training_table(spec).await?,
            Kind::Drift | Kind::PredictionDrift => {
                let at = spec.baseline_window_ms.map_or(window_ms - w, |b| b - b.rem_euclid(w));
                (self.window_rows(&spec.endpoint, at, w).await?.0, format!("window {at}"))
            }
        };
        let reference_rows = rows_of(&reference);
        if reference_rows == 0 {
            return Err(Error::Invalid(format!("the reference ({label}) holds no rows")));
        }
        let inputs: Vec<String> = current
            .0
            .iter()
            .map(|c| c.name.clone())
            .filter(|n| !LOG_COLUMNS.contains(&n.as_str()))
            .collect();
        let columns = if !spec.columns.is_empty() {
            spec.columns.clone()
        } else if spec.kind == Kind::PredictionDrift {
            vec!["prediction".to_string()]
        } else {
            inputs
        };
        let choices = Choices {
            columns,
            numerical: Vec::new(),
            categorical: Vec::new(),
            tests: spec.tests.iter().map(|(c, t)| (c.clone(), t.clone())).collect(),
            thresholds: spec.thresholds.iter().map(|(c, t)| (c.clone(), *t)).collect(),
        };
        let share = spec.share;
        type Judged = (DatasetDrift, Vec<(String, String)>, BTreeMap<String, Distribution>);
        let (drift, skipped, distributions): Judged =
            slipway_core::background::run(move || -> Result<_, String> {
                let (paired, skipped) = pair_columns(reference, current.0, &choices)?;
                let drift = dataset_drift(&paired, share).map_err(|e| format!("{e:?}"))?;
                let distributions =
                    paired.iter().map(|c| (c.name.clone(), distribution(c))).collect();
                Ok((drift, skipped, distributions))
            })
            .await
            .map_err(|e| Error::Invalid(format!("judging a window: {e}")))?
            .map_err(Error::Invalid)?;
        let report = Report {
            monitor: spec.name.clone(),
            window_ms,
            window_s: w / 1000,
            reference: label,
            reference_rows,
            current_rows,
            drift: drift.drift,
            drifted: drift.drifted,
            share: drift.share,
            share_threshold: drift.share_threshold,
            columns: drift.columns,
            skipped,
            distributions,
            created_ms: now_ms(),
        };
        let text = serde_json::to_string(&report).unwrap_or_default();
        sqlx::query(
            "INSERT INTO monitor_reports (monitor, window_ms, drift, share, report, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (monitor, window_ms) DO UPDATE SET \
             drift = excluded.drift, share = excluded.share, report = excluded.report, \
             created_ms = excluded.created_ms",
        )
        .bind(&spec.name)
        .bind(window_ms)
        .bind(i64::from(report.drift))
        .bind(report.share)
        .bind(text)
        .bind(report.created_ms)
        .execute(self.db.pool())
        .await?;
        Ok(report)
    }

    /// Judges, for every monitor, the latest closed window if it has no report yet. Windows
    /// too thin to judge are left. Returns the reports made.
    pub async fn tick(&self) -> Result<Vec<Report>> {
        let mut made = Vec::new();
        for m in self.list().await? {
            let Ok(window) = self.latest_closed_window(&m.spec.name).await else { continue };
            if m.latest.as_ref().is_some_and(|r| r.window_ms >= window) {
                continue;
            }
            let tried = self.tried.lock().expect("tried lock").insert(m.spec.name.clone(), window);
            if tried == Some(window) {
                continue;
            }
            match self.evaluate(&m.spec.name, Some(window)).await {
                Ok(r) => made.push(r),
                Err(Error::Invalid(reason)) => {
                    tracing::debug!(target: "monitor", monitor = %m.spec.name, %reason, "window not judged");
                }
                Err(e) => {
                    tracing::warn!(target: "monitor", monitor = %m.spec.name, error = %e, "judging a window")
                }
            }
        }
        Ok(made)
    }

    /// The logged rows of a window, as columns.
    async fn window_rows(
        &self,
        endpoint: &str,
        window_ms: i64,
        w: i64,
    ) -> Result<(Vec<TableColumn>, Vec<String>)> {
        let rows = self
            .serving
            .read_log(endpoint, window_ms, window_ms + w - 1, None, MAX_WINDOW_ROWS)
            .await?;
        if rows.batches.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let label = format!("the window at {window_ms}");
        slipway_core::background::run(move || {
            let schema = rows.batches[0].schema();
            read_batches(&schema, rows.batches.into_iter().map(Ok), &label)
        })
        .await
        .map_err(|e| Error::Invalid(format!("reading a window: {e}")))?
        .map_err(Error::Invalid)
    }

    /// The training table of a skew monitor, and its name.
    async fn training_table(&self, spec: &Spec) -> Result<(Vec<TableColumn>, String)> {
        let version = match &spec.reference {
            Some(r) => {
                let r =
                    VersionRef::parse(r).map_err(|e| Error::Invalid(format!("reference: {e}")))?;
                self.data.resolve(&r).await?
            }
            None => {
                let e = self.serving.get(&spec.endpoint).await?;
                let mv = self
                    .registry
                    .resolve(&e.model, &e.reference)
                    .await
                    .map_err(|e| Error::Invalid(e.to_string()))?;
                crate::lineage::training_dataset(&self.registry, &self.data, mv).await.ok_or_else(|| {
                    Error::Invalid(format!(
                        "endpoint '{}': its model's lineage names no dataset version; give the monitor a reference",
                        spec.endpoint
                    ))
                })?
            }
        };
        let label = version.label();
        let (_, parts) = self.data.table_batches(&version).await?;
        let Some(first) = parts.first() else {
            return Err(Error::Invalid(format!("{label} has no table parts")));
        };
        let schema = first.schema();
        let shown = label.clone();
        let columns = slipway_core::background::run(move || {
            read_batches(&schema, parts.into_iter().flatten(), &shown)
        })
        .await
        .map_err(|e| Error::Invalid(format!("reading {label}: {e}")))?
        .map_err(Error::Invalid)?;
        Ok((columns.0, label))
    }
}

fn rows_of(columns: &[TableColumn]) -> usize {
    columns.first().map_or(0, |c| c.values.len())
}

/// A stored report back (its JSON as written).
fn report_from_json(text: &str) -> Option<Report> {
    let v: Value = serde_json::from_str(text).ok()?;
    let columns: Vec<crate::drift::ColumnDrift> =
        v["columns"].as_array()?.iter().filter_map(crate::drift::ColumnDrift::from_json).collect();
    Some(Report {
        monitor: v["monitor"].as_str()?.to_string(),
        window_ms: v["window_ms"].as_i64()?,
        window_s: v["window_s"].as_i64()?,
        reference: v["reference"].as_str()?.to_string(),
        reference_rows: v["reference_rows"].as_u64()? as usize,
        current_rows: v["current_rows"].as_u64()? as usize,
        drift: v["drift"].as_bool()?,
        drifted: v["drifted"].as_u64()? as usize,
        share: v["share"].as_f64()?,
        share_threshold: v["share_threshold"].as_f64()?,
        columns,
        skipped: serde_json::from_value(v["skipped"].clone()).unwrap_or_default(),
        distributions: serde_json::from_value(v["distributions"].clone()).unwrap_or_default(),
        created_ms: v["created_ms"].as_i64()?,
    })
}
