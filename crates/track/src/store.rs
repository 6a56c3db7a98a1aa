//! The SQL of tracking, for both stores. Nothing outside this module writes these tables.

use std::collections::HashMap;

use slipway_core::{Backend, Db, Sql, SqlValue, is_unique_violation};
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row};

use crate::error::{Error, Result};
use crate::points::{POINT_BYTES, Point, decode_into, encode_into};
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

pub(crate) const EXPERIMENT_COLUMNS: &str =
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
    let index: HashMap<String, usize> =
        experiments.iter().enumerate().map(|(i, e)| (e.experiment_id.clone(), i)).collect();
    for row in q.into_query(db).fetch_all(db.pool()).await? {
        let id = row.try_get::<i64, _>("experiment_id")?.to_string();
        if let Some(&i) = index.get(&id) {
            experiments[i]
                .tags
                .push(KeyValue { key: row.try_get("key")?, value: row.try_get("value")? });
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

/// The experiments a search query (`search::experiment_query` selecting
/// [`EXPERIMENT_COLUMNS`]) finds, in its order, with their tags.
pub(crate) async fn search_experiments(db: &Db, query: Sql) -> Result<Vec<Experiment>> {
    let rows = query.into_query(db).fetch_all(db.pool()).await?;
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
    // The row already carries the name, so the tags are written without syncing it back.
    insert_tags(db, &mut tx, &info.run_id, tags).await?;
    tx.commit().await?;
    Ok(())
}

async fn insert_tags(
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
    q.into_query(db).execute(&mut **tx).await?;
    Ok(())
}

/// Writes tags (replacing values of existing keys); `mlflow.runName` also renames the run.
async fn upsert_tags(
    db: &Db,
    tx: &mut sqlx::Transaction<'static, Any>,
    run_id: &str,
    tags: &[KeyValue],
) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    insert_tags(db, tx, run_id, tags).await?;
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
    if db.backend() == Backend::Postgres {
        // One writer per run at a time: chunk numbering and the param check read, then write.
        // (SQLite's BEGIN IMMEDIATE already serialises all writers.)
        sqlx::query("SELECT run_id FROM runs WHERE run_id = $1 FOR UPDATE")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?;
    }
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
        q.into_query(db).execute(&mut *tx).await?;
    }
    upsert_tags(db, &mut tx, run_id, tags).await?;
    if !metrics.is_empty() {
        append_points(db, &mut tx, run_id, metrics).await?;

        // The newest point per key in this batch, then kept only where it beats the stored one.
        let mut latest: HashMap<&str, &Metric> = HashMap::new();
        for m in metrics {
            let l = latest.entry(&m.key).or_insert(m);
            if ordering_key(m) > ordering_key(l) {
                *l = m;
            }
        }
        let mut latest: Vec<&Metric> = latest.into_values().collect();
        latest.sort_by(|a, b| a.key.cmp(&b.key));
        let mut q = Sql::new(
            "INSERT INTO latest_metrics (run_id, key, step, timestamp, value, is_nan, value_bits) VALUES ",
        );
        q.bind_rows(latest.iter().map(|m| metric_row(run_id, m)));
        q.push(
            " ON CONFLICT (run_id, key) DO UPDATE SET step = excluded.step, timestamp = excluded.timestamp, \
             value = excluded.value, is_nan = excluded.is_nan, value_bits = excluded.value_bits \
             WHERE excluded.step > latest_metrics.step \
             OR (excluded.step = latest_metrics.step AND excluded.timestamp > latest_metrics.timestamp) \
             OR (excluded.step = latest_metrics.step AND excluded.timestamp = latest_metrics.timestamp \
                 AND excluded.value > latest_metrics.value)",
        );
        q.into_query(db).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Chunks with fewer points than this take the next points of their key instead of a new chunk
/// being started, so that one-point `log_metric` calls do not leave one row per point.
const MERGE_BELOW: usize = 256;
/// Most points one chunk holds.
const MAX_CHUNK_POINTS: usize = 4096;

/// Appends metric points to their keys' chunks (see `migrations/*/0004_metric_chunks.sql`).
/// Must run inside a transaction that excludes other writers of the run.
async fn append_points(
    db: &Db,
    tx: &mut sqlx::Transaction<'static, Any>,
    run_id: &str,
    metrics: &[Metric],
) -> Result<()> {
    // The batch's points by key, keys in order of first appearance.
    let mut keys: Vec<&str> = Vec::new();
    let mut groups: HashMap<&str, Vec<Point>> = HashMap::new();
    for m in metrics {
        groups
            .entry(&m.key)
            .or_insert_with(|| {
                keys.push(&m.key);
                Vec::new()
            })
            .push(Point::of(m));
    }
    // Each key's last chunk, with its bytes only when small enough to take more.
    let mut q = Sql::new(format!(
        "SELECT c.key, c.seq, c.points, CASE WHEN c.points < {MERGE_BELOW} THEN c.data END AS data \
         FROM metric_chunks c WHERE c.run_id = "
    ));
    q.bind(run_id).push(" AND c.key IN (").bind_list(keys.iter().copied());
    q.push(
        ") AND c.seq = (SELECT MAX(d.seq) FROM metric_chunks d \
         WHERE d.run_id = c.run_id AND d.key = c.key)",
    );
    let mut last: HashMap<String, (i64, usize, Option<Vec<u8>>)> = HashMap::new();
    for row in q.into_query(db).fetch_all(&mut **tx).await? {
        let points: i64 = row.try_get("points")?;
        last.insert(
            row.try_get("key")?,
            (row.try_get("seq")?, points as usize, row.try_get("data")?),
        );
    }
    let mut new_chunks: Vec<[SqlValue; 5]> = Vec::new();
    for key in keys {
        let mut points = groups.remove(key).unwrap_or_default();
        let next_seq = match last.remove(key) {
            Some((seq, n, Some(mut data))) if n + points.len() <= MERGE_BELOW => {
                encode_into(&mut data, points.drain(..));
                sqlx::query(
                    "UPDATE metric_chunks SET points = $1, data = $2 \
                     WHERE run_id = $3 AND key = $4 AND seq = $5",
                )
                .bind((data.len() / POINT_BYTES) as i64)
                .bind(data)
                .bind(run_id)
                .bind(key)
                .bind(seq)
                .execute(&mut **tx)
                .await?;
                seq + 1
            }
            Some((seq, ..)) => seq + 1,
            None => 0,
        };
        for (i, part) in points.chunks(MAX_CHUNK_POINTS).enumerate() {
            let mut data = Vec::with_capacity(part.len() * POINT_BYTES);
            encode_into(&mut data, part.iter().copied());
            new_chunks.push([
                run_id.into(),
                key.into(),
                (next_seq + i as i64).into(),
                (part.len() as i64).into(),
                data.into(),
            ]);
        }
    }
    // At most 1000 rows a statement (PostgreSQL takes at most 65,535 bind values).
    let mut rows = new_chunks.into_iter().peekable();
    while rows.peek().is_some() {
        let mut q = Sql::new("INSERT INTO metric_chunks (run_id, key, seq, points, data) VALUES ");
        q.bind_rows(rows.by_ref().take(1000));
        q.into_query(db).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Moves points of the per-point `metrics` table (schema versions 1-3) into chunks, one run and
/// key at a time, each in its own transaction. A no-op on stores created since.
pub(crate) async fn move_legacy_metrics(db: &Db) -> Result<()> {
    // Keyset iteration (deleted rows are not rescanned); each (run, key) moves in one
    // transaction that locks the run like `log_batch` does and claims its rows with
    // DELETE … RETURNING, so two processes moving at once never both move the same points.
    let (mut after_run, mut after_key) = (String::new(), String::new());
    loop {
        let Some(row) = sqlx::query(
            "SELECT run_id, key FROM metrics WHERE run_id > $1 OR (run_id = $1 AND key > $2) \
             ORDER BY run_id, key LIMIT 1",
        )
        .bind(&after_run)
        .bind(&after_key)
        .fetch_optional(db.pool())
        .await?
        else {
            return Ok(());
        };
        let run_id: String = row.try_get("run_id")?;
        let key: String = row.try_get("key")?;
        let mut tx = db.begin_write().await?;
        if db.backend() == Backend::Postgres {
            sqlx::query("SELECT run_id FROM runs WHERE run_id = $1 FOR UPDATE")
                .bind(&run_id)
                .fetch_optional(&mut *tx)
                .await?;
        }
        let rows = sqlx::query(
            "DELETE FROM metrics WHERE run_id = $1 AND key = $2 \
             RETURNING key, value, is_nan, timestamp, step",
        )
        .bind(&run_id)
        .bind(&key)
        .fetch_all(&mut *tx)
        .await?;
        let mut metrics = rows.iter().map(metric_from_row).collect::<Result<Vec<_>>>()?;
        metrics.sort_by(|a, b| Point::of(a).history_cmp(&Point::of(b)));
        append_points(db, &mut tx, &run_id, &metrics).await?;
        tx.commit().await?;
        if !metrics.is_empty() {
            tracing::info!(run_id, key, points = metrics.len(), "moved metric history into chunks");
        }
        (after_run, after_key) = (run_id, key);
    }
}

fn metric_row(run_id: &str, m: &Metric) -> [SqlValue; 7] {
    let (value, is_nan) = stored(m.value);
    [
        run_id.into(),
        (&m.key).into(),
        m.step.into(),
        m.timestamp.into(),
        value.into(),
        is_nan.into(),
        (m.value.to_bits() as i64).into(),
    ]
}

/// Fills `latest_metrics.value_bits` of rows written before the column existed.
pub(crate) async fn fill_latest_value_bits(db: &Db) -> Result<()> {
    loop {
        let rows = sqlx::query(
            "SELECT run_id, key, value, is_nan FROM latest_metrics WHERE value_bits IS NULL LIMIT 1000",
        )
        .fetch_all(db.pool())
        .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = db.begin_write().await?;
        for row in &rows {
            let is_nan: i64 = row.try_get("is_nan")?;
            let value: f64 = if is_nan != 0 { f64::NAN } else { row.try_get("value")? };
            sqlx::query("UPDATE latest_metrics SET value_bits = $1 WHERE run_id = $2 AND key = $3")
                .bind(value.to_bits() as i64)
                .bind(row.try_get::<String, _>("run_id")?)
                .bind(row.try_get::<String, _>("key")?)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
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
        let [name, digest, context, source] = dataset_fields(kind, item);
        sqlx::query(
            "INSERT INTO run_inputs (run_id, position, kind, body, dataset_name, dataset_digest, \
             dataset_context, dataset_source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(run_id)
        .bind(next + i as i64)
        .bind(kind)
        .bind(item.to_string())
        .bind(name)
        .bind(digest)
        .bind(context)
        .bind(source)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A dataset input's name, digest and context (the input tag `mlflow.data.context`), as the
/// `datasets.*` filters see them; `None` for other inputs.
fn dataset_fields(kind: &str, item: &serde_json::Value) -> [Option<String>; 4] {
    if kind != "dataset" {
        return [None, None, None, None];
    }
    let text =
        |v: Option<&serde_json::Value>| Some(v.and_then(|v| v.as_str()).unwrap_or("").to_string());
    let context = item
        .get("tags")
        .and_then(|t| t.as_array())
        .and_then(|tags| {
            tags.iter()
                .find(|t| t.get("key").and_then(|k| k.as_str()) == Some("mlflow.data.context"))
        })
        .and_then(|t| t.get("value"));
    [
        text(item.pointer("/dataset/name")),
        text(item.pointer("/dataset/digest")),
        context.and_then(|c| c.as_str()).map(str::to_string),
        Some(slipway_source(item)),
    ]
}

/// The input's source URI if it names a Slipway version (`slipway://NAME@N`, or the Python
/// client's `<server>/api/v1/datasets/NAME/versions/N`, normalised to the former), else "". MLflow
/// keeps a dataset's source as a JSON document in a string (`{"uri": ...}` for most sources).
pub(crate) fn slipway_source(item: &serde_json::Value) -> String {
    let Some(source) = item.pointer("/dataset/source").and_then(|s| s.as_str()) else {
        return String::new();
    };
    let uri = match serde_json::from_str::<serde_json::Value>(source) {
        // `uri` for most sources, `url` for MLflow's HTTP source.
        Ok(doc) => {
            doc.get("uri").or_else(|| doc.get("url")).and_then(|u| u.as_str()).map(str::to_string)
        }
        Err(_) => Some(source.to_string()),
    };
    let Some(uri) = uri.filter(|u| u.len() <= 300) else { return String::new() };
    if uri.starts_with("slipway://") {
        return uri;
    }
    // The Python client's `mlflow_dataset()` names the version by its HTTP address,
    // `<server>/api/v1/datasets/NAME/versions/N`.
    let named = (uri.starts_with("http://") || uri.starts_with("https://"))
        .then(|| uri.split_once("/api/v1/datasets/"))
        .flatten()
        .and_then(|(_, rest)| rest.trim_end_matches('/').split_once("/versions/"))
        .filter(|(name, n)| {
            !name.is_empty()
                && !name.contains(['/', '%', '?', '#'])
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
        });
    match named {
        Some((name, n)) => format!("slipway://{name}@{n}"),
        None => String::new(),
    }
}

pub(crate) async fn runs_with_input(
    db: &Db,
    name: &str,
    digest: &str,
    source: &str,
    limit: i64,
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT r.run_id FROM runs r WHERE r.lifecycle_stage = 'active' AND EXISTS \
         (SELECT 1 FROM run_inputs d WHERE d.run_id = r.run_id AND d.kind = 'dataset' \
         AND ((d.dataset_digest = $1 AND d.dataset_name = $2) OR d.dataset_source = $3)) \
         ORDER BY r.start_time DESC, r.run_id LIMIT $4",
    )
    .bind(digest)
    .bind(name)
    .bind(source)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(|r| Ok(r.try_get::<String, _>("run_id")?)).collect()
}

/// Fills the dataset columns of inputs logged before they existed.
pub(crate) async fn fill_dataset_fields(db: &Db) -> Result<()> {
    loop {
        let rows = sqlx::query(
            "SELECT run_id, position, body FROM run_inputs \
             WHERE kind = 'dataset' AND (dataset_name IS NULL OR dataset_source IS NULL) LIMIT 1000",
        )
        .fetch_all(db.pool())
        .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = db.begin_write().await?;
        for row in &rows {
            let body: String = row.try_get("body")?;
            let item = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
            let [name, digest, context, source] = dataset_fields("dataset", &item);
            sqlx::query(
                "UPDATE run_inputs SET dataset_name = $1, dataset_digest = $2, dataset_context = $3, \
                 dataset_source = $4 WHERE run_id = $5 AND position = $6",
            )
            .bind(name)
            .bind(digest)
            .bind(context)
            .bind(source)
            .bind(row.try_get::<String, _>("run_id")?)
            .bind(row.try_get::<i64, _>("position")?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }
}

pub(crate) async fn metric_history(
    db: &Db,
    run_id: &str,
    key: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<Metric>> {
    let rows =
        sqlx::query("SELECT data FROM metric_chunks WHERE run_id = $1 AND key = $2 ORDER BY seq")
            .bind(run_id)
            .bind(key)
            .fetch_all(db.pool())
            .await?;
    let mut points = Vec::new();
    for row in &rows {
        let data: Vec<u8> = row.try_get("data")?;
        decode_into(&data, &mut points)?;
    }
    // Stable, so equal points keep their arrival order.
    points.sort_by(Point::history_cmp);
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let take = usize::try_from(limit).unwrap_or(0);
    Ok(points.into_iter().skip(start).take(take).map(|p| p.into_metric(key)).collect())
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

/// Loads whole runs, in the order of `ids` (unknown ids are skipped). One query: each run's
/// params, tags, latest metrics and inputs come back as JSON aggregates in its row, so a
/// 1000-run page is 1000 rows, not 25,000.
pub(crate) async fn load_runs(db: &Db, ids: &[String]) -> Result<Vec<Run>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let agg = |items: &str, from: &str| match db.backend() {
        Backend::Sqlite => format!("(SELECT json_group_array(json_array({items})) {from})"),
        Backend::Postgres => format!("(SELECT json_agg(json_build_array({items}))::text {from})"),
    };
    let body = match db.backend() {
        Backend::Sqlite => "json(body)",
        Backend::Postgres => "body::json",
    };
    let mut q = Sql::new(format!(
        "SELECT r.run_id, r.experiment_id, r.name, r.user_id, r.status, r.start_time, r.end_time, \
         r.lifecycle_stage, r.artifact_uri, {params} AS params, {tags} AS tags, \
         {metrics} AS metrics, {inputs} AS inputs FROM runs r WHERE r.run_id IN (",
        params = agg("key, value", "FROM params x WHERE x.run_id = r.run_id"),
        tags = agg("key, value", "FROM tags x WHERE x.run_id = r.run_id"),
        metrics = agg(
            "key, value_bits, timestamp, step, \
             CASE WHEN value_bits IS NULL THEN CAST(value AS TEXT) END, is_nan",
            "FROM latest_metrics x WHERE x.run_id = r.run_id"
        ),
        inputs =
            agg(&format!("position, kind, {body}"), "FROM run_inputs x WHERE x.run_id = r.run_id"),
    ));
    q.bind_list(ids.iter()).push(")");
    let mut runs: Vec<Run> = Vec::with_capacity(ids.len());
    for row in q.into_query(db).fetch_all(db.pool()).await? {
        let mut run = Run {
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
        };
        let column = |name: &str| -> Result<String> {
            Ok(row.try_get::<Option<String>, _>(name)?.unwrap_or_default())
        };
        run.params = key_values(&column("params")?)?;
        run.tags = key_values(&column("tags")?)?;
        // The exact bits, or (rows written without them, until the next open fills them) the
        // stored value as text — not as a JSON number, which cannot hold an infinity.
        type Latest = (String, Option<i64>, i64, i64, Option<String>, i64);
        let metrics: Vec<Latest> = aggregate(&column("metrics")?)?;
        run.metrics = metrics
            .into_iter()
            .map(|(key, bits, timestamp, step, value, is_nan)| Metric {
                key,
                value: match bits {
                    Some(bits) => f64::from_bits(bits as u64),
                    None if is_nan != 0 => f64::NAN,
                    None => value.and_then(|v| v.trim().parse().ok()).unwrap_or(0.0),
                },
                timestamp,
                step,
            })
            .collect();
        run.metrics.sort_by(|a, b| a.key.cmp(&b.key));
        let mut inputs: Vec<(i64, String, serde_json::Value)> = aggregate(&column("inputs")?)?;
        inputs.sort_by_key(|(position, ..)| *position);
        for (_, kind, value) in inputs {
            match kind.as_str() {
                "dataset" => run.inputs.push(value),
                "model_input" => run.model_inputs.push(value),
                _ => run.outputs.push(value),
            }
        }
        runs.push(run);
    }
    let order: HashMap<&str, usize> =
        ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    runs.sort_by_key(|r| order.get(r.info.run_id.as_str()).copied());
    Ok(runs)
}

/// A JSON aggregate column (`NULL` or `[]` when there are no items).
fn aggregate<T: serde::de::DeserializeOwned>(json: &str) -> Result<Vec<T>> {
    if json.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(json).map_err(|e| Error::Corrupt(format!("a run aggregate: {e}")))
}

fn key_values(json: &str) -> Result<Vec<KeyValue>> {
    let mut items: Vec<(String, String)> = aggregate(json)?;
    items.sort();
    Ok(items.into_iter().map(|(key, value)| KeyValue { key, value }).collect())
}

#[cfg(test)]
mod tests {
    use super::slipway_source;

    fn input(source: &str) -> serde_json::Value {
        serde_json::json!({"dataset": {"source": source}})
    }

    #[test]
    fn dataset_sources_that_name_a_slipway_version() {
        let uri = |u: &str| input(&serde_json::json!({ "uri": u }).to_string());
        assert_eq!(slipway_source(&uri("slipway://falls@3")), "slipway://falls@3");
        assert_eq!(slipway_source(&input("slipway://falls@3")), "slipway://falls@3");
        let url =
            serde_json::json!({"url": "https://slipway.test/api/v1/datasets/falls/versions/9"});
        assert_eq!(slipway_source(&input(&url.to_string())), "slipway://falls@9");
        assert_eq!(
            slipway_source(&uri("http://127.0.0.1:5000/api/v1/datasets/fall-features/versions/2")),
            "slipway://fall-features@2"
        );
        for other in [
            "http://127.0.0.1:5000/api/v1/datasets/falls/versions/latest",
            "http://127.0.0.1:5000/api/v1/datasets/a/b/versions/2",
            "s3://bucket/api/v1/datasets/falls/versions/2",
            "https://example.test/data.csv",
        ] {
            assert_eq!(slipway_source(&uri(other)), "", "{other}");
        }
    }
}
