//! The SQL of tracking, for both stores. Nothing outside this module writes these tables.

use slipway_core::{Db, Sql, SqlValue, is_unique_violation};
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row};

use crate::error::{Error, Result};
use crate::types::{Experiment, KeyValue, LifecycleStage, Metric, Run, RunInfo, RunStatus};

fn experiment_from_row(row: &AnyRow) -> Result<Experiment> {
    Ok(Experiment {
        experiment_id: row.try_get::<i64, _>("experiment_id")?.to_string(),
        name: row.try_get("name")?,
        artifact_location: row.try_get("artifact_location")?,
        lifecycle_stage: LifecycleStage::parse(&row.try_get::<String, _>("lifecycle_stage")?),
        creation_time: row.try_get("creation_time")?,
        last_update_time: row.try_get("last_update_time")?,
        tags: Vec::new(),
    })
}

const EXPERIMENT_COLUMNS: &str =
    "experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time";

pub(crate) async fn create_experiment(
    db: &Db,
    name: &str,
    artifact_location: Option<&str>,
    tags: &[KeyValue],
    now: i64,
) -> Result<String> {
    let exists = |e: sqlx::Error| {
        if is_unique_violation(&e) {
            Error::ExperimentExists { name: name.to_string() }
        } else {
            e.into()
        }
    };
    let mut tx = db.begin_write().await?;
    let id: i64 = sqlx::query(
        "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time) \
         VALUES ($1, '', 'active', $2, $2) RETURNING experiment_id",
    )
    .bind(name)
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .map_err(exists)?
    .try_get("experiment_id")?;
    let location =
        artifact_location.map(str::to_string).unwrap_or_else(|| format!("mlflow-artifacts:/{id}"));
    sqlx::query("UPDATE experiments SET artifact_location = $1 WHERE experiment_id = $2")
        .bind(&location)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    for tag in tags {
        sqlx::query(
            "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
        )
        .bind(id)
        .bind(&tag.key)
        .bind(&tag.value)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(id.to_string())
}

async fn with_experiment_tags(
    db: &Db,
    mut experiments: Vec<Experiment>,
) -> Result<Vec<Experiment>> {
    if experiments.is_empty() {
        return Ok(experiments);
    }
    let ids: Vec<i64> = experiments.iter().filter_map(|e| e.experiment_id.parse().ok()).collect();
    let mut q =
        Sql::new("SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN (");
    q.bind_list(ids).push(") ORDER BY key");
    for row in q.query(db).fetch_all(db.pool()).await? {
        let id = row.try_get::<i64, _>("experiment_id")?.to_string();
        if let Some(e) = experiments.iter_mut().find(|e| e.experiment_id == id) {
            e.tags.push(KeyValue { key: row.try_get("key")?, value: row.try_get("value")? });
        }
    }
    Ok(experiments)
}

pub(crate) async fn get_experiment(db: &Db, id: i64) -> Result<Option<Experiment>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE experiment_id = $1"
    )))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(with_experiment_tags(db, vec![experiment_from_row(&row)?]).await?.pop())
}

pub(crate) async fn get_experiment_by_name(db: &Db, name: &str) -> Result<Option<Experiment>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE name = $1"
    )))
    .bind(name)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(with_experiment_tags(db, vec![experiment_from_row(&row)?]).await?.pop())
}

pub(crate) async fn search_experiments(
    db: &Db,
    stages: &[&str],
    name: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Experiment>> {
    let mut q = Sql::new(format!(
        "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE lifecycle_stage IN ("
    ));
    q.bind_list(stages.iter().copied()).push(")");
    if let Some(name) = name {
        q.push(" AND name = ").bind(name);
    }
    q.push(" ORDER BY creation_time DESC, experiment_id DESC LIMIT ").bind(limit);
    q.push(" OFFSET ").bind(offset);
    let rows = q.query(db).fetch_all(db.pool()).await?;
    let experiments = rows.iter().map(experiment_from_row).collect::<Result<Vec<_>>>()?;
    with_experiment_tags(db, experiments).await
}

pub(crate) async fn rename_experiment(db: &Db, id: i64, new_name: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE experiments SET name = $1, last_update_time = $2 WHERE experiment_id = $3")
        .bind(new_name)
        .bind(now)
        .bind(id)
        .execute(db.pool())
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::ExperimentExists { name: new_name.to_string() }
            } else {
                e.into()
            }
        })?;
    Ok(())
}

/// Deletes or restores an experiment together with its runs.
pub(crate) async fn set_experiment_stage(
    db: &Db,
    id: i64,
    stage: LifecycleStage,
    now: i64,
) -> Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE experiments SET lifecycle_stage = $1, last_update_time = $2 WHERE experiment_id = $3")
        .bind(stage.as_str())
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let deleted_time = (stage == LifecycleStage::Deleted).then_some(now);
    sqlx::query("UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE experiment_id = $3")
        .bind(stage.as_str())
        .bind(deleted_time)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn set_experiment_tag(db: &Db, id: i64, key: &str, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) \
         ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
    )
    .bind(id)
    .bind(key)
    .bind(value)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub(crate) async fn delete_experiment_tag(db: &Db, id: i64, key: &str) -> Result<()> {
    sqlx::query("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
        .bind(id)
        .bind(key)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub(crate) async fn create_run(db: &Db, info: &RunInfo, tags: &[KeyValue]) -> Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO runs (run_id, experiment_id, name, user_id, status, start_time, end_time, \
         lifecycle_stage, artifact_uri) VALUES ($1, $2, $3, $4, $5, $6, NULL, 'active', $7)",
    )
    .bind(&info.run_id)
    .bind(info.experiment_id.parse::<i64>().unwrap_or(0))
    .bind(&info.run_name)
    .bind(&info.user_id)
    .bind(info.status.as_str())
    .bind(info.start_time)
    .bind(&info.artifact_uri)
    .execute(&mut *tx)
    .await?;
    upsert_tags(db, &mut tx, &info.run_id, tags).await?;
    tx.commit().await?;
    Ok(())
}

async fn upsert_tags(
    db: &Db,
    tx: &mut sqlx::Transaction<'static, Any>,
    run_id: &str,
    tags: &[KeyValue],
) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let mut q = Sql::new("INSERT INTO tags (run_id, key, value) VALUES ");
    q.bind_rows(tags.iter().map(|t| [SqlValue::from(run_id), (&t.key).into(), (&t.value).into()]));
    q.push(" ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value");
    q.query(db).execute(&mut **tx).await?;
    if let Some(name) = tags.iter().rev().find(|t| t.key == "mlflow.runName") {
        sqlx::query("UPDATE runs SET name = $1 WHERE run_id = $2")
            .bind(&name.value)
            .bind(run_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(crate) async fn update_run(
    db: &Db,
    run_id: &str,
    status: Option<RunStatus>,
    end_time: Option<i64>,
    name: Option<&str>,
) -> Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE runs SET status = COALESCE($1, status), end_time = COALESCE($2, end_time), \
         name = COALESCE($3, name) WHERE run_id = $4",
    )
    .bind(status.map(|s| s.as_str()))
    .bind(end_time)
    .bind(name)
    .bind(run_id)
    .execute(&mut *tx)
    .await?;
    if let Some(name) = name {
        upsert_tags(
            db,
            &mut tx,
            run_id,
            &[KeyValue { key: "mlflow.runName".into(), value: name.into() }],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn run_stage(db: &Db, run_id: &str) -> Result<Option<LifecycleStage>> {
    let row = sqlx::query("SELECT lifecycle_stage FROM runs WHERE run_id = $1")
        .bind(run_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(match row {
        Some(row) => Some(LifecycleStage::parse(&row.try_get::<String, _>("lifecycle_stage")?)),
        None => None,
    })
}

pub(crate) async fn set_run_stage(
    db: &Db,
    run_id: &str,
    stage: LifecycleStage,
    deleted_time: Option<i64>,
) -> Result<()> {
    sqlx::query("UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE run_id = $3")
        .bind(stage.as_str())
        .bind(deleted_time)
        .bind(run_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The value a metric point is stored with: NaN becomes 0 with the flag set.
fn stored(value: f64) -> (f64, i64) {
    if value.is_nan() { (0.0, 1) } else { (value, 0) }
}

pub(crate) async fn log_batch(
    db: &Db,
    run_id: &str,
    metrics: &[Metric],
    params: &[KeyValue],
    tags: &[KeyValue],
) -> Result<()> {
    let mut tx = db.begin_write().await?;
    if !params.is_empty() {
        let mut q = Sql::new("SELECT key, value FROM params WHERE run_id = ");
        q.bind(run_id).push(" AND key IN (").bind_list(params.iter().map(|p| &p.key)).push(")");
        let existing = q.query(db).fetch_all(&mut *tx).await?;
        for row in &existing {
            let key: String = row.try_get("key")?;
            let old: String = row.try_get("value")?;
            if let Some(p) = params.iter().find(|p| p.key == key && p.value != old) {
                return Err(Error::ParamChanged {
                    run_id: run_id.to_string(),
                    key,
                    old,
                    new: p.value.clone(),
                });
            }
        }
        let mut q = Sql::new("INSERT INTO params (run_id, key, value) VALUES ");
        q.bind_rows(
            params.iter().map(|p| [SqlValue::from(run_id), (&p.key).into(), (&p.value).into()]),
        );
        q.push(" ON CONFLICT (run_id, key) DO NOTHING");
        q.query(db).execute(&mut *tx).await?;
    }
    upsert_tags(db, &mut tx, run_id, tags).await?;
    if !metrics.is_empty() {
        let mut q =
            Sql::new("INSERT INTO metrics (run_id, key, step, timestamp, value, is_nan) VALUES ");
        q.bind_rows(metrics.iter().map(|m| metric_row(run_id, m)));
        q.query(db).execute(&mut *tx).await?;

        // The newest point per key in this batch, then kept only where it beats the stored one.
        let mut latest: Vec<&Metric> = Vec::new();
        for m in metrics {
            match latest.iter_mut().find(|l| l.key == m.key) {
                Some(l) => {
                    if ordering_key(m) > ordering_key(l) {
                        *l = m;
                    }
                }
                None => latest.push(m),
            }
        }
        let mut q = Sql::new(
            "INSERT INTO latest_metrics (run_id, key, step, timestamp, value, is_nan) VALUES ",
        );
        q.bind_rows(latest.iter().map(|m| metric_row(run_id, m)));
        q.push(
            " ON CONFLICT (run_id, key) DO UPDATE SET step = excluded.step, timestamp = excluded.timestamp, \
             value = excluded.value, is_nan = excluded.is_nan \
             WHERE excluded.step > latest_metrics.step \
             OR (excluded.step = latest_metrics.step AND excluded.timestamp > latest_metrics.timestamp) \
             OR (excluded.step = latest_metrics.step AND excluded.timestamp = latest_metrics.timestamp \
                 AND excluded.value > latest_metrics.value)",
        );
        q.query(db).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn metric_row(run_id: &str, m: &Metric) -> [SqlValue; 6] {
    let (value, is_nan) = stored(m.value);
    [run_id.into(), (&m.key).into(), m.step.into(), m.timestamp.into(), value.into(), is_nan.into()]
}

/// MLflow's order for "latest": step, then timestamp, then value (NaN lowest).
fn ordering_key(m: &Metric) -> (i64, i64, f64) {
    (m.step, m.timestamp, if m.value.is_nan() { f64::NEG_INFINITY } else { m.value })
}

pub(crate) async fn delete_tag(db: &Db, run_id: &str, key: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM tags WHERE run_id = $1 AND key = $2")
        .bind(run_id)
        .bind(key)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn log_io(
    db: &Db,
    run_id: &str,
    kind: &str,
    items: &[serde_json::Value],
) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin_write().await?;
    let next: i64 = sqlx::query(
        "SELECT COALESCE(MAX(position), -1) + 1 AS next FROM run_inputs WHERE run_id = $1",
    )
    .bind(run_id)
    .fetch_one(&mut *tx)
    .await?
    .try_get("next")?;
    for (i, item) in items.iter().enumerate() {
        sqlx::query(
            "INSERT INTO run_inputs (run_id, position, kind, body) VALUES ($1, $2, $3, $4)",
        )
        .bind(run_id)
        .bind(next + i as i64)
        .bind(kind)
        .bind(item.to_string())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn metric_history(
    db: &Db,
    run_id: &str,
    key: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<Metric>> {
    let rows = sqlx::query(
        "SELECT key, value, is_nan, timestamp, step FROM metrics WHERE run_id = $1 AND key = $2 \
         ORDER BY timestamp, step, value LIMIT $3 OFFSET $4",
    )
    .bind(run_id)
    .bind(key)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(metric_from_row).collect()
}

fn metric_from_row(row: &AnyRow) -> Result<Metric> {
    let is_nan: i64 = row.try_get("is_nan")?;
    Ok(Metric {
        key: row.try_get("key")?,
        value: if is_nan != 0 { f64::NAN } else { row.try_get("value")? },
        timestamp: row.try_get("timestamp")?,
        step: row.try_get("step")?,
    })
}

pub(crate) async fn run_ids(db: &Db, query: &Sql) -> Result<Vec<String>> {
    let rows = query.query(db).fetch_all(db.pool()).await?;
    rows.iter().map(|r| Ok(r.try_get::<String, _>("run_id")?)).collect()
}

/// Loads whole runs, in the order of `ids` (unknown ids are skipped).
pub(crate) async fn load_runs(db: &Db, ids: &[String]) -> Result<Vec<Run>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let in_list = |q: &mut Sql| {
        q.bind_list(ids.iter()).push(")");
    };
    let mut q = Sql::new(
        "SELECT run_id, experiment_id, name, user_id, status, start_time, end_time, lifecycle_stage, \
         artifact_uri FROM runs WHERE run_id IN (",
    );
    in_list(&mut q);
    let mut runs: Vec<Run> = Vec::with_capacity(ids.len());
    for row in q.query(db).fetch_all(db.pool()).await? {
        runs.push(Run {
            info: RunInfo {
                run_id: row.try_get("run_id")?,
                experiment_id: row.try_get::<i64, _>("experiment_id")?.to_string(),
                run_name: row.try_get("name")?,
                user_id: row.try_get("user_id")?,
                status: RunStatus::parse(&row.try_get::<String, _>("status")?)
                    .unwrap_or(RunStatus::Running),
                start_time: row.try_get("start_time")?,
                end_time: row.try_get("end_time")?,
                artifact_uri: row.try_get("artifact_uri")?,
                lifecycle_stage: LifecycleStage::parse(
                    &row.try_get::<String, _>("lifecycle_stage")?,
                ),
            },
            metrics: Vec::new(),
            params: Vec::new(),
            tags: Vec::new(),
            inputs: Vec::new(),
            model_inputs: Vec::new(),
            outputs: Vec::new(),
        });
    }
    let positions: std::collections::HashMap<String, usize> =
        runs.iter().enumerate().map(|(i, r)| (r.info.run_id.clone(), i)).collect();
    let index = |_: &Vec<Run>, id: &str| positions.get(id).copied();

    for (table, is_param) in [("params", true), ("tags", false)] {
        let mut q = Sql::new(format!("SELECT run_id, key, value FROM {table} WHERE run_id IN ("));
        in_list(&mut q);
        q.push(" ORDER BY key");
        for row in q.query(db).fetch_all(db.pool()).await? {
            let id: String = row.try_get("run_id")?;
            if let Some(i) = index(&runs, &id) {
                let kv = KeyValue { key: row.try_get("key")?, value: row.try_get("value")? };
                if is_param { runs[i].params.push(kv) } else { runs[i].tags.push(kv) }
            }
        }
    }
    let mut q = Sql::new(
        "SELECT run_id, key, value, is_nan, timestamp, step FROM latest_metrics WHERE run_id IN (",
    );
    in_list(&mut q);
    q.push(" ORDER BY key");
    for row in q.query(db).fetch_all(db.pool()).await? {
        let id: String = row.try_get("run_id")?;
        if let Some(i) = index(&runs, &id) {
            runs[i].metrics.push(metric_from_row(&row)?);
        }
    }
    let mut q = Sql::new("SELECT run_id, kind, body FROM run_inputs WHERE run_id IN (");
    in_list(&mut q);
    q.push(" ORDER BY position");
    for row in q.query(db).fetch_all(db.pool()).await? {
        let id: String = row.try_get("run_id")?;
        let kind: String = row.try_get("kind")?;
        let body: String = row.try_get("body")?;
        let value = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
        if let Some(i) = index(&runs, &id) {
            match kind.as_str() {
                "dataset" => runs[i].inputs.push(value),
                "model_input" => runs[i].model_inputs.push(value),
                _ => runs[i].outputs.push(value),
            }
        }
    }
    let order: std::collections::HashMap<&str, usize> =
        ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    runs.sort_by_key(|r| order.get(r.info.run_id.as_str()).copied());
    Ok(runs)
}
