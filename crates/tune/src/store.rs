//! Tuning's SQL: studies and trials on both stores. A study is loaded whole (its trials with
//! their params, values and intermediate values) inside the write transaction of each operation,
//! locked on PostgreSQL (`FOR UPDATE` on the study row; SQLite's writer lock does the same), so
//! that every worker samples and prunes from the same history and trial numbers never repeat.

use std::collections::BTreeMap;

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
     spec, n_trials, pruner_state, enqueued, created_ms, updated_ms";

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
    let sampler = SamplerConfig::from_json(config.get("sampler"), "sampler")
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

/// A study loaded for one operation: the in-memory study, each trial's row data, and the lock.
pub(crate) struct Loaded {
    pub(crate) row: StudyRow,
    pub(crate) study: Study,
    pub(crate) meta: Vec<TrialMeta>,
    pub(crate) tx: Transaction<'static, Any>,
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

/// Loads a study and all its trials; with `lock`, in a write transaction that holds the study
/// until it commits (to change it), else in a read transaction.
pub(crate) async fn load(db: &Db, name: &str, lock: bool) -> Result<Loaded> {
    let mut tx = if lock { db.begin_write().await? } else { db.pool().begin().await? };
    let lock = match db.backend() {
        Backend::Postgres if lock => " FOR UPDATE",
        _ => "",
    };
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {STUDY_COLUMNS} FROM tune_studies WHERE name = $1{lock}"
    )))
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::StudyNotFound { name: name.to_string() })?;
    let (row, pruner_state) = study_row(&row)?;
    let mut study = Study::new(row.config.clone());
    study.pruner_state = pruner_state;
    let rows = sqlx::query(
        "SELECT number, run_id, state, params, relative, fixed, value, objective_values, intermediate, rungs, \
         error, worker, lease_expires_ms, started_ms, finished_ms FROM tune_trials WHERE study_id = $1 ORDER BY number",
    )
    .bind(&row.study_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut meta = Vec::with_capacity(rows.len());
    for r in rows {
        let number: i64 = r.try_get("number")?;
        let state = TrialState::parse(&r.try_get::<String, _>("state")?)
            .map_err(|e| corrupt("trial state", e))?;
        let params = read_params(&mut study, &r.try_get::<String, _>("params")?, number)?;
        let relative = match r.try_get::<Option<String>, _>("relative")? {
            None => None,
            Some(text) => Some(read_params(&mut study, &text, number)?),
        };
        let fixed: BTreeMap<String, Value> =
            serde_json::from_str(&r.try_get::<String, _>("fixed")?)
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
        study
            .push_trial(Trial {
                number: number as u64,
                state,
                params,
                relative,
                fixed,
                values: match r.try_get::<Option<String>, _>("objective_values")? {
                    Some(text) => {
                        serde_json::from_str(&text).map_err(|e| corrupt("trial values", e))?
                    }
                    None => r
                        .try_get::<Option<f64>, _>("value")?
                        .filter(|v| !v.is_nan())
                        .into_iter()
                        .collect(),
                },
                intermediate,
                rungs,
            })
            .map_err(|e| corrupt("trials", e))?;
        meta.push(TrialMeta {
            run_id: r.try_get("run_id")?,
            error: r.try_get("error")?,
            worker: r.try_get("worker")?,
            lease_expires_ms: r.try_get("lease_expires_ms")?,
            started_ms: r.try_get("started_ms")?,
            finished_ms: r.try_get("finished_ms")?,
        });
    }
    Ok(Loaded { row, study, meta, tx })
}

impl Loaded {
    /// Writes trial `number` (new or changed) back.
    pub(crate) async fn save_trial(&mut self, number: u64) -> Result<()> {
        let t = self.study.trial(number)?;
        let m = &self.meta[number as usize];
        let params = params_json(&self.study, &t.params).to_string();
        let relative = t.relative.as_ref().map(|r| params_json(&self.study, r).to_string());
        // NaN for none: a NULL float bound first would fix the prepared statement's parameter
        // type on PostgreSQL (and SQLite stores NaN as NULL); read back as none either way.
        let value = t.value().filter(|v| v.is_finite()).unwrap_or(f64::NAN);
        let values =
            (t.values.len() > 1).then(|| serde_json::to_string(&t.values).expect("serialises"));
        sqlx::query(
            "INSERT INTO tune_trials (study_id, number, run_id, state, params, relative, fixed, value, intermediate, \
             rungs, error, worker, lease_expires_ms, started_ms, finished_ms, objective_values) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (study_id, number) DO UPDATE SET state = excluded.state, params = excluded.params, \
             relative = excluded.relative, value = excluded.value, objective_values = excluded.objective_values, \
             intermediate = excluded.intermediate, \
             rungs = excluded.rungs, error = excluded.error, worker = excluded.worker, \
             lease_expires_ms = excluded.lease_expires_ms, finished_ms = excluded.finished_ms",
        )
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
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Writes the study row's changing parts (pruner state, enqueued sets, update time).
    pub(crate) async fn save_study(&mut self, now: i64) -> Result<()> {
        sqlx::query("UPDATE tune_studies SET pruner_state = $1, enqueued = $2, updated_ms = $3 WHERE study_id = $4")
            .bind(serde_json::to_string(&self.study.pruner_state).expect("serialises"))
            .bind(serde_json::to_string(&self.row.enqueued).expect("serialises"))
            .bind(now)
            .bind(&self.row.study_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub(crate) async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}
