//! Tuning's SQL: studies and trials on both stores. A study is loaded (its trials with their
//! params, values and intermediate values) inside the write transaction of each operation, locked
//! on PostgreSQL (`FOR UPDATE` on the study row; SQLite's writer lock does the same), so that
//! every worker samples and prunes from the same history and trial numbers never repeat.
//!
//! A process keeps the studies it works on in memory ([`StudyCache`]) between operations. Each
//! transaction that changes a study raises the study row's `revision` and stamps the trial rows it
//! wrote with it; a load reads the row, and when the study in memory is at an older revision,
//! only the trial rows stamped after it. Only committed states are kept, so a study in memory at
//! revision R is exactly the store's at R.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};
use slipway_core::{Backend, Db, is_unique_violation};
use sqlx::any::AnyRow;
// Dynamic SQL here only splices constant column lists and `FOR UPDATE`.
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use crate::config::{Direction, PrunerConfig, SamplerConfig, StudyConfig};
use crate::error::{Error, Result};
use crate::space::Distribution;
use crate::study::{PrunerState, Study, Trial, TrialState};

/// A study's row, without its trials.
#[derive(Debug, Clone)]
pub(crate) struct StudyRow {
    pub(crate) study_id: String,
    pub(crate) name: String,
    pub(crate) experiment_id: String,
    pub(crate) parent_run_id: String,
    /// Each objective's metric in the trials' runs, in the order of `config.directions`.
    pub(crate) metrics: Vec<String>,
    pub(crate) config: StudyConfig,
    pub(crate) spec: Option<Value>,
    pub(crate) n_trials: Option<i64>,
    pub(crate) enqueued: Vec<BTreeMap<String, Value>>,
    pub(crate) created_ms: i64,
    pub(crate) updated_ms: i64,
}

/// What a trial's row holds besides what samplers see.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrialMeta {
    pub(crate) run_id: String,
    pub(crate) error: Option<String>,
    pub(crate) worker: Option<String>,
    pub(crate) lease_expires_ms: Option<i64>,
    pub(crate) started_ms: i64,
    pub(crate) finished_ms: Option<i64>,
}

const STUDY_COLUMNS: &str = "study_id, name, experiment_id, parent_run_id, direction, metric, objectives, config, \
     spec, n_trials, pruner_state, enqueued, created_ms, updated_ms, revision";

const TRIAL_COLUMNS: &str = "number, run_id, state, params, relative, fixed, value, objective_values, intermediate, \
     rungs, error, worker, lease_expires_ms, started_ms, finished_ms";

fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("{what}: {e}"))
}

fn parse_json(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e))
}

fn study_row(row: &AnyRow) -> Result<(StudyRow, PrunerState)> {
    let name: String = row.try_get("name")?;
    let config = parse_json(&row.try_get::<String, _>("config")?, "study config")?;
    let direction = Direction::parse(&row.try_get::<String, _>("direction")?, "direction")
        .map_err(|e| corrupt("study direction", e))?;
    let (metrics, directions) = objectives(row, direction)?;
    let sampler = SamplerConfig::from_stored(config.get("sampler"), directions.len())
        .map_err(|e| corrupt("sampler", e))?;
    let pruner = PrunerConfig::from_json(config.get("pruner"), "pruner")
        .map_err(|e| corrupt("pruner", e))?;
    let seed = config["seed"].as_u64().ok_or_else(|| corrupt("study seed", "missing"))?;
    let spec: Option<String> = row.try_get("spec")?;
    let pruner_state: PrunerState =
        serde_json::from_str(&row.try_get::<String, _>("pruner_state")?)
            .map_err(|e| corrupt("pruner state", e))?;
    let enqueued: Vec<BTreeMap<String, Value>> =
        serde_json::from_str(&row.try_get::<String, _>("enqueued")?)
            .map_err(|e| corrupt("enqueued", e))?;
    Ok((
        StudyRow {
            study_id: row.try_get("study_id")?,
            experiment_id: row.try_get("experiment_id")?,
            parent_run_id: row.try_get("parent_run_id")?,
            metrics,
            config: StudyConfig { name: name.clone(), directions, sampler, pruner, seed },
            name,
            spec: spec.map(|s| parse_json(&s, "study spec")).transpose()?,
            n_trials: row.try_get("n_trials")?,
            enqueued,
            created_ms: row.try_get("created_ms")?,
            updated_ms: row.try_get("updated_ms")?,
        },
        pruner_state,
    ))
}

/// A study row's objectives: its `objectives` list, or its one metric and direction.
fn objectives(row: &AnyRow, direction: Direction) -> Result<(Vec<String>, Vec<Direction>)> {
    let Some(text) = row.try_get::<Option<String>, _>("objectives")? else {
        return Ok((vec![row.try_get("metric")?], vec![direction]));
    };
    let list = parse_json(&text, "study objectives")?;
    let mut metrics = Vec::new();
    let mut directions = Vec::new();
    for o in list.as_array().into_iter().flatten() {
        let (Some(metric), Some(d)) = (o["metric"].as_str(), o["direction"].as_str()) else {
            return Err(corrupt("study objectives", o));
        };
        metrics.push(metric.to_string());
        directions
            .push(Direction::parse(d, "direction").map_err(|e| corrupt("study objectives", e))?);
    }
    if metrics.is_empty() {
        return Err(corrupt("study objectives", "empty"));
    }
    Ok((metrics, directions))
}

fn objectives_json(metrics: &[String], directions: &[Direction]) -> String {
    let list: Vec<Value> = metrics
        .iter()
        .zip(directions)
        .map(|(m, d)| json!({ "metric": m, "direction": d.as_str() }))
        .collect();
    Value::Array(list).to_string()
}

/// The stored form of a study's config.
pub(crate) fn config_json(config: &StudyConfig) -> Value {
    json!({ "sampler": config.sampler, "pruner": config.pruner, "seed": config.seed })
}

pub(crate) async fn insert_study(db: &Db, row: &StudyRow) -> Result<()> {
    let result = sqlx::query(
        "INSERT INTO tune_studies (study_id, name, experiment_id, parent_run_id, direction, metric, objectives, \
         config, spec, n_trials, pruner_state, enqueued, created_ms, updated_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '{}', $11, $12, $12)",
    )
    .bind(&row.study_id)
    .bind(&row.name)
    .bind(&row.experiment_id)
    .bind(&row.parent_run_id)
    .bind(row.config.direction().as_str())
    .bind(&row.metrics[0])
    .bind(objectives_json(&row.metrics, &row.config.directions))
    .bind(config_json(&row.config).to_string())
    .bind(row.spec.as_ref().map(Value::to_string))
    .bind(row.n_trials)
    .bind(serde_json::to_string(&row.enqueued).expect("serialises"))
    .bind(row.created_ms)
    .execute(db.pool())
    .await;
    match result {
        Err(e) if is_unique_violation(&e) => Err(Error::StudyExists { name: row.name.clone() }),
        other => {
            other?;
            Ok(())
        }
    }
}

pub(crate) async fn get_study_row(db: &Db, name: &str) -> Result<Option<StudyRow>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {STUDY_COLUMNS} FROM tune_studies WHERE name = $1"
    )))
    .bind(name)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| study_row(&r).map(|(s, _)| s)).transpose()
}

pub(crate) async fn list_study_rows(db: &Db) -> Result<Vec<StudyRow>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {STUDY_COLUMNS} FROM tune_studies ORDER BY created_ms DESC, name"
    )))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(|r| study_row(r).map(|(s, _)| s)).collect()
}

/// A trial's run id and its study's objective metrics, from one row.
pub(crate) async fn trial_run(db: &Db, name: &str, number: u64) -> Result<(String, Vec<String>)> {
    let row = sqlx::query(
        "SELECT t.run_id, s.metric, s.direction, s.objectives FROM tune_studies s LEFT JOIN tune_trials t \
         ON t.study_id = s.study_id AND t.number = $2 WHERE s.name = $1",
    )
    .bind(name)
    .bind(number as i64)
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(|| Error::StudyNotFound { name: name.to_string() })?;
    let run_id: Option<String> = row.try_get("run_id")?;
    let run_id = run_id.ok_or(Error::TrialNotFound { number })?;
    let direction = Direction::parse(&row.try_get::<String, _>("direction")?, "direction")
        .map_err(|e| corrupt("study direction", e))?;
    Ok((run_id, objectives(&row, direction)?.0))
}

/// Trial counts by state, per study id.
pub(crate) async fn counts(db: &Db) -> Result<BTreeMap<(String, String), i64>> {
    let rows = sqlx::query(
        "SELECT study_id, state, COUNT(*) AS n FROM tune_trials GROUP BY study_id, state",
    )
    .fetch_all(db.pool())
    .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        out.insert((r.try_get("study_id")?, r.try_get("state")?), r.try_get("n")?);
    }
    Ok(out)
}

/// A study as the store held it at `revision` (committed).
struct Cached {
    study_id: String,
    revision: i64,
    study: Study,
    meta: Vec<TrialMeta>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// The studies a process keeps in memory between operations, by name. Each has a lock, held by
/// one operation at a time in this process (the store's lock orders the processes).
#[derive(Default)]
pub(crate) struct StudyCache {
    slots: std::sync::Mutex<HashMap<String, Slot>>,
}

/// Studies kept at most; past it, the ones no operation is using are let go.
const CACHED_STUDIES: usize = 64;

impl StudyCache {
    fn slot(&self, name: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.len() >= CACHED_STUDIES && !slots.contains_key(name) {
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        slots.entry(name.to_string()).or_default().clone()
    }
}

/// A study loaded for one operation: the in-memory study, each trial's row data, and the lock.
/// Committing puts the study back in its process's cache at the new revision; a read's is put
/// back when it is dropped, and a write's dropped uncommitted is let go.
pub(crate) struct Loaded {
    pub(crate) row: StudyRow,
    pub(crate) study: Study,
    pub(crate) meta: Vec<TrialMeta>,
    tx: Option<Transaction<'static, Any>>,
    slot: tokio::sync::OwnedMutexGuard<Option<Cached>>,
    /// The study's revision when loaded.
    revision: i64,
    /// Trials when loaded: a trial numbered past them is new, and inserted (never over another).
    loaded_trials: usize,
    write: bool,
    changed: bool,
}

fn params_json(study: &Study, params: &[(u32, f64)]) -> Value {
    Value::Array(
        params
            .iter()
            .map(|&(id, v)| {
                let key = study.key(id);
                json!([key.name, key.dist, v])
            })
            .collect(),
    )
}

fn read_params(study: &mut Study, text: &str, number: i64) -> Result<Vec<(u32, f64)>> {
    let value = parse_json(text, "trial params")?;
    let list =
        value.as_array().ok_or_else(|| corrupt("trial params", format!("trial {number}")))?;
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        let (Some(name), Some(dist), Some(v)) = (item[0].as_str(), item.get(1), item[2].as_f64())
        else {
            return Err(corrupt("trial params", format!("trial {number}: {item}")));
        };
        let dist = Distribution::from_json(dist, name).map_err(|e| corrupt("trial params", e))?;
        out.push((study.intern(name, &dist), v));
    }
    Ok(out)
}

fn intermediate_json(values: &[(i64, f64)]) -> String {
    let list: Vec<Value> = values
        .iter()
        .map(|&(s, v)| json!([s, if v.is_nan() { Value::Null } else { json!(v) }]))
        .collect();
    Value::Array(list).to_string()
}

/// Reads one trial row into `study`'s keys: the trial and its row data.
fn read_trial(study: &mut Study, r: &AnyRow) -> Result<(Trial, TrialMeta)> {
    let number: i64 = r.try_get("number")?;
    let state = TrialState::parse(&r.try_get::<String, _>("state")?)
        .map_err(|e| corrupt("trial state", e))?;
    let params = read_params(study, &r.try_get::<String, _>("params")?, number)?;
    let relative = match r.try_get::<Option<String>, _>("relative")? {
        None => None,
        Some(text) => Some(read_params(study, &text, number)?),
    };
    let fixed: BTreeMap<String, Value> = serde_json::from_str(&r.try_get::<String, _>("fixed")?)
        .map_err(|e| corrupt("trial fixed", e))?;
    let inter = parse_json(&r.try_get::<String, _>("intermediate")?, "intermediate values")?;
    let intermediate = inter
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|p| Some((p[0].as_i64()?, p[1].as_f64().unwrap_or(f64::NAN))))
                .collect()
        })
        .unwrap_or_default();
    let rungs: Vec<f64> = serde_json::from_str(&r.try_get::<String, _>("rungs")?)
        .map_err(|e| corrupt("trial rungs", e))?;
    let values = match r.try_get::<Option<String>, _>("objective_values")? {
        Some(text) => serde_json::from_str(&text).map_err(|e| corrupt("trial values", e))?,
        None => r.try_get::<Option<f64>, _>("value")?.filter(|v| !v.is_nan()).into_iter().collect(),
    };
    let trial = Trial {
        number: number as u64,
        state,
        params,
        relative,
        fixed,
        values,
        intermediate,
        rungs,
    };
    let meta = TrialMeta {
        run_id: r.try_get("run_id")?,
        error: r.try_get("error")?,
        worker: r.try_get("worker")?,
        lease_expires_ms: r.try_get("lease_expires_ms")?,
        started_ms: r.try_get("started_ms")?,
        finished_ms: r.try_get("finished_ms")?,
    };
    Ok((trial, meta))
}

/// Study `study_id`'s trials stamped after revision `after` (all of them for none), by number.
async fn trial_rows(
    tx: &mut Transaction<'static, Any>,
    study_id: &str,
    after: Option<i64>,
) -> Result<Vec<AnyRow>> {
    let since = if after.is_some() { " AND revision > $2" } else { "" };
    let sql = format!(
        "SELECT {TRIAL_COLUMNS} FROM tune_trials WHERE study_id = $1{since} ORDER BY number"
    );
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(study_id);
    if let Some(after) = after {
        query = query.bind(after);
    }
    Ok(query.fetch_all(&mut **tx).await?)
}

/// The study `cached` brought up to date with the trial rows changed after it; none when they
/// do not fit it (then the study is read whole).
async fn catch_up(
    tx: &mut Transaction<'static, Any>,
    cached: Cached,
) -> Result<Option<(Study, Vec<TrialMeta>)>> {
    let Cached { study_id, revision, mut study, mut meta } = cached;
    for r in trial_rows(tx, &study_id, Some(revision)).await? {
        let (trial, m) = read_trial(&mut study, &r)?;
        let number = trial.number as usize;
        if number > meta.len() || study.put_trial(trial).is_err() {
            return Ok(None);
        }
        if number == meta.len() {
            meta.push(m);
        } else {
            meta[number] = m;
        }
    }
    Ok(Some((study, meta)))
}

/// Loads a study and all its trials; with `write`, in a write transaction that holds the study
/// until it commits (to change it), else in a read transaction. The study comes from this
/// process's `cache` when it holds it, with what changed since read from the store.
pub(crate) async fn load(db: &Db, cache: &StudyCache, name: &str, write: bool) -> Result<Loaded> {
    let mut slot = cache.slot(name).lock_owned().await;
    // A read on PostgreSQL sees one snapshot for the study row and its trials, as SQLite's does.
    let mut tx = match (write, db.backend()) {
        (true, _) => db.begin_write().await?,
        (false, Backend::Postgres) => {
            db.pool().begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?
        }
        (false, Backend::Sqlite) => db.pool().begin().await?,
    };
    let lock = match db.backend() {
        Backend::Postgres if write => " FOR UPDATE",
        _ => "",
    };
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {STUDY_COLUMNS} FROM tune_studies WHERE name = $1{lock}"
    )))
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::StudyNotFound { name: name.to_string() })?;
    let revision: i64 = row.try_get("revision")?;
    let (row, pruner_state) = study_row(&row)?;
    // A study in memory at this revision or an older one of the same study (a name can be
    // reused); a newer one (never committed here) cannot be.
    let cached = slot.take().filter(|c| c.study_id == row.study_id && c.revision <= revision);
    let caught_up = match cached {
        Some(cached) => catch_up(&mut tx, cached).await?,
        None => None,
    };
    let (mut study, meta) = match caught_up {
        Some(got) => got,
        None => {
            let mut study = Study::new(row.config.clone());
            let rows = trial_rows(&mut tx, &row.study_id, None).await?;
            let mut meta = Vec::with_capacity(rows.len());
            for r in rows {
                let (trial, m) = read_trial(&mut study, &r)?;
                study.push_trial(trial).map_err(|e| corrupt("trials", e))?;
                meta.push(m);
            }
            (study, meta)
        }
    };
    study.pruner_state = pruner_state;
    let loaded_trials = meta.len();
    Ok(Loaded {
        row,
        study,
        meta,
        tx: Some(tx),
        slot,
        revision,
        loaded_trials,
        write,
        changed: false,
    })
}

impl Loaded {
    /// Writes trial `number` (new or changed) back.
    pub(crate) async fn save_trial(&mut self, number: u64) -> Result<()> {
        debug_assert!(self.write, "a read cannot save");
        let t = self.study.trial(number)?;
        let m = &self.meta[number as usize];
        let params = params_json(&self.study, &t.params).to_string();
        let relative = t.relative.as_ref().map(|r| params_json(&self.study, r).to_string());
        // NaN for none: a NULL float bound first would fix the prepared statement's parameter
        // type on PostgreSQL (and SQLite stores NaN as NULL); read back as none either way.
        let value = t.value().filter(|v| v.is_finite()).unwrap_or(f64::NAN);
        let values =
            (t.values.len() > 1).then(|| serde_json::to_string(&t.values).expect("serialises"));
        // A new trial is inserted: should its number be taken (a study in memory that missed a
        // change), the store refuses it rather than write over another trial.
        let upsert = if (number as usize) < self.loaded_trials {
            " ON CONFLICT (study_id, number) DO UPDATE SET state = excluded.state, params = excluded.params, \
             relative = excluded.relative, value = excluded.value, objective_values = excluded.objective_values, \
             intermediate = excluded.intermediate, \
             rungs = excluded.rungs, error = excluded.error, worker = excluded.worker, \
             lease_expires_ms = excluded.lease_expires_ms, finished_ms = excluded.finished_ms, \
             revision = excluded.revision"
        } else {
            ""
        };
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO tune_trials (study_id, number, run_id, state, params, relative, fixed, value, intermediate, \
             rungs, error, worker, lease_expires_ms, started_ms, finished_ms, objective_values, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17){upsert}",
        )))
        .bind(&self.row.study_id)
        .bind(number as i64)
        .bind(&m.run_id)
        .bind(t.state.as_str())
        .bind(params)
        .bind(relative)
        .bind(serde_json::to_string(&t.fixed).expect("serialises"))
        .bind(value)
        .bind(intermediate_json(&t.intermediate))
        .bind(serde_json::to_string(&t.rungs).expect("serialises"))
        .bind(&m.error)
        .bind(&m.worker)
        .bind(m.lease_expires_ms)
        .bind(m.started_ms)
        .bind(m.finished_ms)
        .bind(values)
        .bind(self.revision + 1)
        .execute(&mut **self.tx.as_mut().expect("a loaded study has its transaction"))
        .await?;
        self.changed = true;
        Ok(())
    }

    /// Writes the study row's changing parts (pruner state, enqueued sets, update time).
    pub(crate) async fn save_study(&mut self, now: i64) -> Result<()> {
        debug_assert!(self.write, "a read cannot save");
        sqlx::query("UPDATE tune_studies SET pruner_state = $1, enqueued = $2, updated_ms = $3 WHERE study_id = $4")
            .bind(serde_json::to_string(&self.study.pruner_state).expect("serialises"))
            .bind(serde_json::to_string(&self.row.enqueued).expect("serialises"))
            .bind(now)
            .bind(&self.row.study_id)
            .execute(&mut **self.tx.as_mut().expect("a loaded study has its transaction"))
            .await?;
        self.changed = true;
        Ok(())
    }

    /// Saves the study's target of trials, in its row and in its study file's `trials`.
    pub(crate) async fn save_target(&mut self, n_trials: i64, now: i64) -> Result<()> {
        debug_assert!(self.write, "a read cannot save");
        if let Some(Value::Object(spec)) = self.row.spec.as_mut() {
            spec.insert("trials".into(), Value::from(n_trials));
        }
        self.row.n_trials = Some(n_trials);
        let spec = self.row.spec.as_ref().map(|s| s.to_string());
        sqlx::query(
            "UPDATE tune_studies SET n_trials = $1, spec = $2, updated_ms = $3 WHERE study_id = $4",
        )
        .bind(n_trials)
        .bind(spec)
        .bind(now)
        .bind(&self.row.study_id)
        .execute(&mut **self.tx.as_mut().expect("a loaded study has its transaction"))
        .await?;
        self.changed = true;
        Ok(())
    }

    /// Commits what was saved (raising the study's revision if anything was) and keeps the
    /// study in memory at that revision.
    pub(crate) async fn commit(mut self) -> Result<()> {
        let mut tx = self.tx.take().expect("a loaded study has its transaction");
        let mut revision = self.revision;
        if self.changed {
            revision += 1;
            let updated = sqlx::query(
                "UPDATE tune_studies SET revision = $1 WHERE study_id = $2 AND revision = $3",
            )
            .bind(revision)
            .bind(&self.row.study_id)
            .bind(self.revision)
            .execute(&mut *tx)
            .await?;
            // Never under the study's lock; should it happen, nothing is written or kept.
            if updated.rows_affected() != 1 {
                return Err(corrupt("study revision", "changed under the study's lock"));
            }
        }
        tx.commit().await?;
        self.keep(revision);
        Ok(())
    }

    /// Deletes the study and its trials, and commits; nothing is kept in memory.
    pub(crate) async fn delete(mut self) -> Result<()> {
        let mut tx = self.tx.take().expect("a loaded study has its transaction");
        for table in ["tune_trials", "tune_studies"] {
            sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE study_id = $1")))
                .bind(&self.row.study_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Puts the study back in its process's cache as the store's state at `revision`.
    fn keep(&mut self, revision: i64) {
        let study = std::mem::replace(&mut self.study, Study::new(self.row.config.clone()));
        *self.slot = Some(Cached {
            study_id: self.row.study_id.clone(),
            revision,
            study,
            meta: std::mem::take(&mut self.meta),
        });
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        // A read never changes the study; a write that did not commit may have.
        if self.tx.is_some() && !self.write && !self.changed {
            self.keep(self.revision);
        }
    }
}
