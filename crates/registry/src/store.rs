//! The registry's SQL: registered models, versions, tags and aliases on both stores.

use std::collections::HashMap;

use slipway_core::{Db, Sql, SqlValue, is_unique_violation, now_ms};
use sqlx::Row;
use sqlx::any::AnyRow;
use track::filter::{self, Clause, Entity, Op, Value};
use track::{KeyValue, Page};

use crate::error::{Error, Result};
use crate::onnx::Signature;
use crate::types::{ModelFormat, ModelVersion, NewVersion, RegisteredModel, Search, Stage};

/// A source, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) storage: String,
    pub(crate) run_id: Option<String>,
    pub(crate) model_id: Option<String>,
}

const DEFAULT_MAX_RESULTS: i64 = 100;
const MAX_RESULTS: i64 = 10_000;

fn not_found(name: &str) -> Error {
    Error::ModelNotFound { name: name.to_string() }
}

fn version_not_found(name: &str, version: i64) -> Error {
    Error::VersionNotFound { name: name.to_string(), version: version.to_string() }
}

pub(crate) async fn create_model(
    db: &Db,
    name: &str,
    description: &str,
    tags: &[KeyValue],
) -> Result<()> {
    let mut tx = db.begin_write().await?;
    let now = now_ms();
    let inserted = sqlx::query(
        "INSERT INTO registered_models (name, description, creation_ms, updated_ms, next_version) \
         VALUES ($1, $2, $3, $3, 1)",
    )
    .bind(name)
    .bind(description)
    .bind(now)
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            return Err(Error::ModelExists { name: name.to_string() });
        }
        other => other?,
    };
    for t in tags {
        sqlx::query("INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(&t.key)
            .bind(&t.value)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn get_model(db: &Db, name: &str) -> Result<RegisteredModel> {
    let mut models = load_models(db, &[name.to_string()]).await?;
    models.pop().ok_or_else(|| not_found(name))
}

/// Loads models by name, in the order given; missing names are left out.
async fn load_models(db: &Db, names: &[String]) -> Result<Vec<RegisteredModel>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = Sql::new(
        "SELECT name, description, creation_ms, updated_ms FROM registered_models WHERE name IN (",
    );
    q.bind_list(names.iter().map(String::as_str)).push(")");
    let rows = q.query(db).fetch_all(db.pool()).await?;
    let mut by_name: HashMap<String, RegisteredModel> = HashMap::new();
    for row in rows {
        let name: String = row.try_get("name")?;
        by_name.insert(
            name.clone(),
            RegisteredModel {
                name,
                description: row.try_get("description")?,
                creation_timestamp: row.try_get("creation_ms")?,
                last_updated_timestamp: row.try_get("updated_ms")?,
                tags: Vec::new(),
                aliases: Vec::new(),
                latest_versions: Vec::new(),
            },
        );
    }
    let mut q = Sql::new("SELECT name, key, value FROM registered_model_tags WHERE name IN (");
    q.bind_list(names.iter().map(String::as_str)).push(") ORDER BY name, key");
    for row in q.query(db).fetch_all(db.pool()).await? {
        let name: String = row.try_get("name")?;
        if let Some(m) = by_name.get_mut(&name) {
            m.tags.push(KeyValue { key: row.try_get("key")?, value: row.try_get("value")? });
        }
    }
    let mut q = Sql::new("SELECT name, alias, version FROM model_aliases WHERE name IN (");
    q.bind_list(names.iter().map(String::as_str)).push(") ORDER BY name, alias");
    for row in q.query(db).fetch_all(db.pool()).await? {
        let name: String = row.try_get("name")?;
        if let Some(m) = by_name.get_mut(&name) {
            m.aliases.push((row.try_get("alias")?, row.try_get("version")?));
        }
    }
    // The newest version of each stage.
    let mut q = Sql::new("SELECT v.name, v.version FROM model_versions v WHERE v.name IN (");
    q.bind_list(names.iter().map(String::as_str)).push(
        ") AND v.version = (SELECT MAX(w.version) FROM model_versions w \
         WHERE w.name = v.name AND w.stage = v.stage)",
    );
    let mut latest: Vec<(String, i64)> = Vec::new();
    for row in q.query(db).fetch_all(db.pool()).await? {
        latest.push((row.try_get("name")?, row.try_get("version")?));
    }
    for v in load_versions(db, &latest, false).await? {
        if let Some(m) = by_name.get_mut(&v.name) {
            m.latest_versions.push(v);
        }
    }
    for m in by_name.values_mut() {
        m.latest_versions.sort_by_key(|v| v.version);
    }
    Ok(names.iter().filter_map(|n| by_name.remove(n)).collect())
}

async fn model_exists(tx: &mut sqlx::AnyConnection, name: &str) -> Result<bool> {
    Ok(sqlx::query("SELECT 1 FROM registered_models WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .is_some())
}

pub(crate) async fn rename_model(db: &Db, name: &str, new_name: &str) -> Result<()> {
    let mut tx = db.begin_write().await?;
    if !model_exists(&mut tx, name).await? {
        return Err(not_found(name));
    }
    if name == new_name {
        return Ok(());
    }
    if model_exists(&mut tx, new_name).await? {
        return Err(Error::ModelExists { name: new_name.to_string() });
    }
    for table in [
        "registered_models",
        "registered_model_tags",
        "model_versions",
        "model_version_tags",
        "model_aliases",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE {table} SET name = $1 WHERE name = $2")))
            .bind(new_name)
            .bind(name)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("UPDATE registered_models SET updated_ms = $1 WHERE name = $2")
        .bind(now_ms())
        .bind(new_name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn update_model(db: &Db, name: &str, description: &str) -> Result<()> {
    let done = sqlx::query(
        "UPDATE registered_models SET description = $1, updated_ms = $2 WHERE name = $3",
    )
    .bind(description)
    .bind(now_ms())
    .bind(name)
    .execute(db.pool())
    .await?;
    if done.rows_affected() == 0 {
        return Err(not_found(name));
    }
    Ok(())
}

pub(crate) async fn delete_model(db: &Db, name: &str) -> Result<()> {
    let mut tx = db.begin_write().await?;
    if !model_exists(&mut tx, name).await? {
        return Err(not_found(name));
    }
    for table in [
        "registered_model_tags",
        "model_version_tags",
        "model_aliases",
        "model_versions",
        "registered_models",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE name = $1")))
            .bind(name)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn set_model_tag(
    db: &Db,
    name: &str,
    key: &str,
    value: Option<&str>,
) -> Result<()> {
    let mut tx = db.begin_write().await?;
    if !model_exists(&mut tx, name).await? {
        return Err(not_found(name));
    }
    match value {
        Some(v) => {
            sqlx::query(
                "INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
            )
            .bind(name)
            .bind(key)
            .bind(v)
            .execute(&mut *tx)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM registered_model_tags WHERE name = $1 AND key = $2")
                .bind(name)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
    }
    sqlx::query("UPDATE registered_models SET updated_ms = $1 WHERE name = $2")
        .bind(now_ms())
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn set_alias(db: &Db, name: &str, alias: &str, version: i64) -> Result<()> {
    // One statement: readers see the old target or the new one, never neither.
    sqlx::query(
        "INSERT INTO model_aliases (name, alias, version) VALUES ($1, $2, $3) \
         ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
    )
    .bind(name)
    .bind(alias)
    .bind(version)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub(crate) async fn delete_alias(db: &Db, name: &str, alias: &str) -> Result<()> {
    let mut tx = db.begin_write().await?;
    if !model_exists(&mut tx, name).await? {
        return Err(not_found(name));
    }
    sqlx::query("DELETE FROM model_aliases WHERE name = $1 AND alias = $2")
        .bind(name)
        .bind(alias)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn alias_version(db: &Db, name: &str, alias: &str) -> Result<Option<i64>> {
    let row = sqlx::query("SELECT version FROM model_aliases WHERE name = $1 AND alias = $2")
        .bind(name)
        .bind(alias)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(|r| r.try_get("version")).transpose()?)
}

pub(crate) async fn max_version(db: &Db, name: &str) -> Result<Option<i64>> {
    let row = sqlx::query("SELECT MAX(version) AS v FROM model_versions WHERE name = $1")
        .bind(name)
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get::<Option<i64>, _>("v")?)
}

pub(crate) async fn create_version(
    db: &Db,
    new: &NewVersion,
    resolved: &Resolved,
    tags: &[KeyValue],
    format: &ModelFormat,
    signature: Option<&Signature>,
    flavors: &[String],
) -> Result<i64> {
    let mut tx = db.begin_write().await?;
    let now = now_ms();
    if new.create_model {
        // Made with its first version, or not at all.
        sqlx::query(
            "INSERT INTO registered_models (name, description, creation_ms, updated_ms, \
             next_version) VALUES ($1, '', $2, $2, 1) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&new.name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    // Taking the number and bumping the counter in one statement serialises concurrent
    // registrations of one model on both stores.
    let row = sqlx::query(
        "UPDATE registered_models SET next_version = next_version + 1, updated_ms = $1 \
         WHERE name = $2 RETURNING next_version",
    )
    .bind(now)
    .bind(&new.name)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| not_found(&new.name))?;
    let version = row.try_get::<i64, _>("next_version")? - 1;
    let (model_file, model_digest) = match format {
        ModelFormat::Onnx { path, digest } => (Some(path.as_str()), Some(digest.as_str())),
        ModelFormat::Other => (None, None),
    };
    let signature = signature.map(|s| serde_json::to_string(s).expect("signatures serialise"));
    sqlx::query(
        "INSERT INTO model_versions (name, version, creation_ms, updated_ms, description, source, \
         run_id, model_id, stage, storage, flavors, model_file, model_digest, signature) \
         VALUES ($1, $2, $3, $3, $4, $5, $6, $7, 'None', $8, $9, $10, $11, $12)",
    )
    .bind(&new.name)
    .bind(version)
    .bind(now)
    .bind(&new.description)
    .bind(&new.source)
    .bind(&resolved.run_id)
    .bind(&resolved.model_id)
    .bind(&resolved.storage)
    .bind(serde_json::to_string(flavors).expect("strings serialise"))
    .bind(model_file)
    .bind(model_digest)
    .bind(signature)
    .execute(&mut *tx)
    .await?;
    for t in tags {
        sqlx::query(
            "INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4)",
        )
        .bind(&new.name)
        .bind(version)
        .bind(&t.key)
        .bind(&t.value)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(version)
}

const VERSION_COLUMNS: &str = "name, version, creation_ms, updated_ms, description, source, run_id, \
    model_id, stage, storage, flavors, model_file, model_digest, signature";

fn version_from_row(row: &AnyRow) -> Result<ModelVersion> {
    let stage: String = row.try_get("stage")?;
    let flavors: String = row.try_get("flavors")?;
    let signature: Option<String> = row.try_get("signature")?;
    let format = match (
        row.try_get::<Option<String>, _>("model_file")?,
        row.try_get::<Option<String>, _>("model_digest")?,
    ) {
        (Some(path), Some(digest)) => ModelFormat::Onnx { path, digest },
        _ => ModelFormat::Other,
    };
    Ok(ModelVersion {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        creation_timestamp: row.try_get("creation_ms")?,
        last_updated_timestamp: row.try_get("updated_ms")?,
        description: row.try_get("description")?,
        source: row.try_get("source")?,
        run_id: row.try_get("run_id")?,
        model_id: row.try_get("model_id")?,
        stage: Stage::parse(&stage)
            .ok_or_else(|| Error::Corrupt(format!("unknown stage '{stage}'")))?,
        tags: Vec::new(),
        aliases: Vec::new(),
        storage: row.try_get("storage")?,
        flavors: serde_json::from_str(&flavors)
            .map_err(|e| Error::Corrupt(format!("flavors: {e}")))?,
        format,
        signature: signature
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| Error::Corrupt(format!("signature: {e}")))?,
    })
}

/// Loads versions by (name, version), in the order given, with tags and (`with_aliases`)
/// aliases.
async fn load_versions(
    db: &Db,
    keys: &[(String, i64)],
    with_aliases: bool,
) -> Result<Vec<ModelVersion>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut names: Vec<&str> = keys.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let versions: Vec<i64> = keys.iter().map(|(_, v)| *v).collect();
    let mut q = Sql::new(format!("SELECT {VERSION_COLUMNS} FROM model_versions WHERE name IN ("));
    q.bind_list(names.iter().copied()).push(") AND version IN (");
    q.bind_list(versions.iter().copied()).push(")");
    let mut by_key: HashMap<(String, i64), ModelVersion> = HashMap::new();
    for row in q.query(db).fetch_all(db.pool()).await? {
        let v = version_from_row(&row)?;
        by_key.insert((v.name.clone(), v.version), v);
    }
    let mut q =
        Sql::new("SELECT name, version, key, value FROM model_version_tags WHERE name IN (");
    q.bind_list(names.iter().copied()).push(") ORDER BY key");
    for row in q.query(db).fetch_all(db.pool()).await? {
        let key = (row.try_get::<String, _>("name")?, row.try_get::<i64, _>("version")?);
        if let Some(v) = by_key.get_mut(&key) {
            v.tags.push(KeyValue { key: row.try_get("key")?, value: row.try_get("value")? });
        }
    }
    if with_aliases {
        let mut q = Sql::new("SELECT name, alias, version FROM model_aliases WHERE name IN (");
        q.bind_list(names.iter().copied()).push(") ORDER BY alias");
        for row in q.query(db).fetch_all(db.pool()).await? {
            let key = (row.try_get::<String, _>("name")?, row.try_get::<i64, _>("version")?);
            if let Some(v) = by_key.get_mut(&key) {
                v.aliases.push(row.try_get("alias")?);
            }
        }
    }
    Ok(keys.iter().filter_map(|k| by_key.remove(k)).collect())
}

/// Every version of `name`, newest first.
pub(crate) async fn versions(db: &Db, name: &str) -> Result<Vec<ModelVersion>> {
    let rows =
        sqlx::query("SELECT version FROM model_versions WHERE name = $1 ORDER BY version DESC")
            .bind(name)
            .fetch_all(db.pool())
            .await?;
    let mut keys = Vec::with_capacity(rows.len());
    for r in &rows {
        keys.push((name.to_string(), r.try_get::<i64, _>("version")?));
    }
    load_versions(db, &keys, true).await
}

pub(crate) async fn get_version(db: &Db, name: &str, version: i64) -> Result<ModelVersion> {
    let mut found = load_versions(db, &[(name.to_string(), version)], true).await?;
    match found.pop() {
        Some(v) => Ok(v),
        None => {
            let exists = sqlx::query("SELECT 1 FROM registered_models WHERE name = $1")
                .bind(name)
                .fetch_optional(db.pool())
                .await?
                .is_some();
            Err(if exists { version_not_found(name, version) } else { not_found(name) })
        }
    }
}

/// Runs `UPDATE model_versions SET <set> WHERE name AND version` with `set`'s own binds
/// numbered from `$1`, then touches the model.
async fn touch_version(
    db: &Db,
    name: &str,
    version: i64,
    set: &str,
    binds: Vec<SqlValue>,
) -> Result<()> {
    let mut tx = db.begin_write().await?;
    let mut q = Sql::default();
    let mut text = set.to_string();
    for (i, b) in binds.into_iter().enumerate() {
        let p = q.placeholder(b);
        text = text.replace(&format!("{{{i}}}"), &p);
    }
    let now = q.placeholder(now_ms());
    let n = q.placeholder(name);
    let v = q.placeholder(version);
    q.push(format!(
        "UPDATE model_versions SET {text}, updated_ms = {now} WHERE name = {n} AND version = {v}"
    ));
    let done = q.query(db).execute(&mut *tx).await?;
    if done.rows_affected() == 0 {
        drop(tx);
        return get_version(db, name, version).await.map(|_| ());
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn update_version(
    db: &Db,
    name: &str,
    version: i64,
    description: &str,
) -> Result<()> {
    touch_version(db, name, version, "description = {0}", vec![description.into()]).await
}

pub(crate) async fn transition_stage(
    db: &Db,
    name: &str,
    version: i64,
    stage: Stage,
    archive_existing: bool,
) -> Result<()> {
    get_version(db, name, version).await?;
    let mut tx = db.begin_write().await?;
    let now = now_ms();
    if archive_existing && matches!(stage, Stage::Staging | Stage::Production) {
        sqlx::query(
            "UPDATE model_versions SET stage = 'Archived', updated_ms = $1 \
             WHERE name = $2 AND stage = $3 AND version != $4",
        )
        .bind(now)
        .bind(name)
        .bind(stage.as_str())
        .bind(version)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE model_versions SET stage = $1, updated_ms = $2 WHERE name = $3 AND version = $4",
    )
    .bind(stage.as_str())
    .bind(now)
    .bind(name)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn set_version_tag(
    db: &Db,
    name: &str,
    version: i64,
    key: &str,
    value: Option<&str>,
) -> Result<()> {
    get_version(db, name, version).await?;
    match value {
        Some(v) => {
            sqlx::query(
                "INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
            )
            .bind(name)
            .bind(version)
            .bind(key)
            .bind(v)
            .execute(db.pool())
            .await?;
        }
        None => {
            sqlx::query(
                "DELETE FROM model_version_tags WHERE name = $1 AND version = $2 AND key = $3",
            )
            .bind(name)
            .bind(version)
            .bind(key)
            .execute(db.pool())
            .await?;
        }
    }
    Ok(())
}

pub(crate) async fn delete_version(db: &Db, name: &str, version: i64) -> Result<()> {
    get_version(db, name, version).await?;
    let mut tx = db.begin_write().await?;
    for table in ["model_version_tags", "model_aliases", "model_versions"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE name = $1 AND version = $2"
        )))
        .bind(name)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("UPDATE registered_models SET updated_ms = $1 WHERE name = $2")
        .bind(now_ms())
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

fn limits(search: &Search) -> Result<(i64, i64)> {
    let limit = search.max_results.unwrap_or(DEFAULT_MAX_RESULTS);
    if !(1..=MAX_RESULTS).contains(&limit) {
        return Err(Error::invalid(format!(
            "Invalid value {limit} for parameter 'max_results' supplied. It must be between 1 and {MAX_RESULTS}"
        )));
    }
    let offset = match search.page_token.as_deref().filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => t
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| Error::invalid(format!("Invalid page token '{t}'")))?,
    };
    Ok((limit, offset))
}

/// The `WHERE` conditions of a registry filter over `alias.` columns; tag clauses look in
/// `tag_table` joined on `keys`.
fn conditions(
    sql: &mut Sql,
    clauses: &[Clause],
    alias: &str,
    tag_table: &str,
    keys: &[&str],
) -> Vec<String> {
    let mut out = Vec::new();
    for c in clauses {
        let cond = match (&c.entity, &c.value) {
            (Entity::Tag(key), Value::Str(s)) => {
                let k = sql.placeholder(key.as_str());
                let join: Vec<String> =
                    keys.iter().map(|c| format!("t.{c} = {alias}.{c}")).collect();
                let exists = format!(
                    "SELECT 1 FROM {tag_table} t WHERE {} AND t.key = {k}",
                    join.join(" AND ")
                );
                let v = sql.placeholder(s.as_str());
                // `tags.k != 'v'` holds for models without the tag too: the client's own
                // filter hiding prompts relies on it.
                if c.op == Op::Ne {
                    format!("NOT EXISTS ({exists} AND t.value = {v})")
                } else {
                    format!("EXISTS ({exists} AND {})", filter::string_cond("t.value", c.op, &v))
                }
            }
            (Entity::Attribute(col), Value::Num(n)) => {
                let v = sql.placeholder(*n);
                format!("{alias}.{col} {} {v}", filter::sql_op(c.op))
            }
            (Entity::Attribute(col), Value::Str(s)) => {
                let v = sql.placeholder(s.as_str());
                filter::string_cond(&format!("{alias}.{col}"), c.op, &v)
            }
            (Entity::Attribute(col), Value::List(items)) => {
                filter::in_list(sql, &format!("{alias}.{col}"), c.op, items)
            }
            _ => continue,
        };
        out.push(cond);
    }
    out
}

/// `order_by` entries as `column direction`, checked against `allowed` (name → column).
fn order(
    entries: &[String],
    allowed: &[(&str, &'static str)],
) -> Result<Vec<(&'static str, bool)>> {
    let mut out: Vec<(&'static str, bool)> = Vec::new();
    for entry in entries {
        let mut parts = entry.split_whitespace();
        let key = parts.next().unwrap_or_default();
        let key = key
            .strip_prefix("attribute.")
            .or_else(|| key.strip_prefix("attributes."))
            .unwrap_or(key);
        let ascending = match parts.next().map(str::to_ascii_uppercase).as_deref() {
            None | Some("ASC") => true,
            Some("DESC") => false,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "Invalid order_by clause '{entry}': unknown direction '{other}'"
                )));
            }
        };
        let Some((_, col)) = allowed.iter().find(|(k, _)| *k == key) else {
            let names: Vec<&str> = allowed.iter().map(|(k, _)| *k).collect();
            return Err(Error::invalid(format!(
                "Invalid order_by clause '{entry}'. Only {} are supported",
                names.join(", ")
            )));
        };
        if out.iter().any(|(c, _)| c == col) {
            return Err(Error::invalid(format!("`order_by` contains duplicate fields: {entry}")));
        }
        out.push((col, ascending));
    }
    Ok(out)
}

fn page<T>(mut items: Vec<T>, limit: i64, offset: i64) -> Page<T> {
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    Page { items, next_page_token: more.then(|| (offset + limit).to_string()) }
}

pub(crate) async fn search_models(db: &Db, search: &Search) -> Result<Page<RegisteredModel>> {
    let (limit, offset) = limits(search)?;
    let clauses = filter::registered_models(&search.filter)?;
    let order = order(
        &search.order_by,
        &[
            ("name", "name"),
            ("creation_timestamp", "creation_ms"),
            ("last_updated_timestamp", "updated_ms"),
            ("timestamp", "updated_ms"),
        ],
    )?;
    let mut sql = Sql::default();
    let mut wheres = conditions(&mut sql, &clauses, "m", "registered_model_tags", &["name"]);
    if wheres.is_empty() {
        wheres.push("1 = 1".into());
    }
    let mut order_sql: Vec<String> = order
        .iter()
        .map(|(c, asc)| format!("m.{c} {}", if *asc { "ASC" } else { "DESC" }))
        .collect();
    if !order.iter().any(|(c, _)| *c == "name") {
        order_sql.push("m.name ASC".into());
    }
    let l = sql.placeholder(limit + 1);
    let o = sql.placeholder(offset);
    sql.push(format!(
        "SELECT m.name FROM registered_models m WHERE {} ORDER BY {} LIMIT {l} OFFSET {o}",
        wheres.join(" AND "),
        order_sql.join(", ")
    ));
    let rows = sql.query(db).fetch_all(db.pool()).await?;
    let names = rows.iter().map(|r| r.try_get("name")).collect::<Result<Vec<String>, _>>()?;
    Ok(page(load_models(db, &names).await?, limit, offset))
}

pub(crate) async fn search_versions(db: &Db, search: &Search) -> Result<Page<ModelVersion>> {
    let (limit, offset) = limits(search)?;
    let clauses = filter::model_versions(&search.filter)?;
    let order = order(
        &search.order_by,
        &[
            ("name", "name"),
            ("version_number", "version"),
            ("creation_timestamp", "creation_ms"),
            ("last_updated_timestamp", "updated_ms"),
            ("timestamp", "updated_ms"),
        ],
    )?;
    let mut sql = Sql::default();
    let mut wheres =
        conditions(&mut sql, &clauses, "v", "model_version_tags", &["name", "version"]);
    if wheres.is_empty() {
        wheres.push("1 = 1".into());
    }
    let mut order_sql: Vec<String> = order
        .iter()
        .map(|(c, asc)| format!("v.{c} {}", if *asc { "ASC" } else { "DESC" }))
        .collect();
    // MLflow's default: most recently updated first, then by name and newest version.
    if order.is_empty() {
        order_sql.push("v.updated_ms DESC".into());
    }
    order_sql.push("v.name ASC".into());
    order_sql.push("v.version DESC".into());
    let l = sql.placeholder(limit + 1);
    let o = sql.placeholder(offset);
    sql.push(format!(
        "SELECT v.name, v.version FROM model_versions v WHERE {} ORDER BY {} LIMIT {l} OFFSET {o}",
        wheres.join(" AND "),
        order_sql.join(", ")
    ));
    let rows = sql.query(db).fetch_all(db.pool()).await?;
    let mut keys = Vec::with_capacity(rows.len());
    for r in &rows {
        keys.push((r.try_get::<String, _>("name")?, r.try_get::<i64, _>("version")?));
    }
    Ok(page(load_versions(db, &keys, true).await?, limit, offset))
}
