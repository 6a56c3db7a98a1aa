//! Logged models: a model a run logged (`mlflow.sklearn.log_model`), its params, tags and
//! status. The model registry builds on these.

use slipway_core::{Sql, new_id, now_ms};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Error, Result};
use crate::types::KeyValue;
use crate::{Page, Tracking};

/// A logged model.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedModel {
    pub model_id: String,
    pub experiment_id: String,
    pub name: String,
    pub source_run_id: Option<String>,
    pub model_type: Option<String>,
    /// `LOGGED_MODEL_PENDING`, `LOGGED_MODEL_READY` or `LOGGED_MODEL_UPLOAD_FAILED`.
    pub status: String,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
    pub creation_timestamp_ms: i64,
    pub last_updated_timestamp_ms: i64,
    pub artifact_uri: String,
}

/// A logged model to create.
#[derive(Debug, Clone, Default)]
pub struct NewLoggedModel {
    pub experiment_id: String,
    pub name: String,
    pub source_run_id: Option<String>,
    pub model_type: Option<String>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
}

const STATUSES: &[&str] =
    &["LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"];

fn to_json(items: &[KeyValue]) -> String {
    serde_json::Value::Array(items.iter().map(|kv| serde_json::json!([kv.key, kv.value])).collect())
        .to_string()
}

fn from_json(text: &str) -> Vec<KeyValue> {
    let parsed: Vec<(String, String)> = serde_json::from_str(text).unwrap_or_default();
    parsed.into_iter().map(|(key, value)| KeyValue { key, value }).collect()
}

fn model_from_row(row: &AnyRow) -> Result<LoggedModel> {
    let model_id: String = row.try_get("model_id")?;
    let experiment_id = row.try_get::<i64, _>("experiment_id")?.to_string();
    Ok(LoggedModel {
        artifact_uri: format!("mlflow-artifacts:/{experiment_id}/models/{model_id}/artifacts"),
        model_id,
        experiment_id,
        name: row.try_get("name")?,
        source_run_id: row.try_get("source_run_id")?,
        model_type: row.try_get("model_type")?,
        status: row.try_get("status")?,
        params: from_json(&row.try_get::<String, _>("params")?),
        tags: from_json(&row.try_get::<String, _>("tags")?),
        creation_timestamp_ms: row.try_get("creation_timestamp_ms")?,
        last_updated_timestamp_ms: row.try_get("last_updated_timestamp_ms")?,
    })
}

const COLUMNS: &str = "model_id, experiment_id, name, source_run_id, model_type, status, params, tags, \
    creation_timestamp_ms, last_updated_timestamp_ms";

impl Tracking {
    pub async fn create_logged_model(&self, new: NewLoggedModel) -> Result<LoggedModel> {
        let exp = self.get_experiment(&new.experiment_id).await?;
        if let Some(run_id) = &new.source_run_id {
            self.get_run(run_id).await?;
        }
        let name = if new.name.is_empty() { "model".to_string() } else { new.name };
        let model_id = format!("m-{}", new_id());
        let now = now_ms();
        sqlx::query(
            "INSERT INTO logged_models (model_id, experiment_id, name, source_run_id, model_type, status, \
             params, tags, creation_timestamp_ms, last_updated_timestamp_ms) \
             VALUES ($1, $2, $3, $4, $5, 'LOGGED_MODEL_PENDING', $6, $7, $8, $8)",
        )
        .bind(&model_id)
        .bind(exp.experiment_id.parse::<i64>().unwrap_or(0))
        .bind(&name)
        .bind(&new.source_run_id)
        .bind(&new.model_type)
        .bind(to_json(&new.params))
        .bind(to_json(&new.tags))
        .bind(now)
        .execute(self.db.pool())
        .await?;
        self.get_logged_model(&model_id).await
    }

    pub async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM logged_models WHERE model_id = $1"
        )))
        .bind(model_id)
        .fetch_optional(self.db.pool())
        .await?;
        match row {
            Some(row) => model_from_row(&row),
            None => Err(Error::LoggedModelNotFound { model_id: model_id.to_string() }),
        }
    }

    pub async fn set_logged_model_status(
        &self,
        model_id: &str,
        status: &str,
    ) -> Result<LoggedModel> {
        if !STATUSES.contains(&status) {
            return Err(Error::invalid(format!("Invalid logged model status '{status}'")));
        }
        self.get_logged_model(model_id).await?;
        sqlx::query("UPDATE logged_models SET status = $1, last_updated_timestamp_ms = $2 WHERE model_id = $3")
            .bind(status)
            .bind(now_ms())
            .bind(model_id)
            .execute(self.db.pool())
            .await?;
        self.get_logged_model(model_id).await
    }

    /// Sets tags (`value: None` deletes the key).
    pub async fn set_logged_model_tags(
        &self,
        model_id: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<()> {
        let mut tx = self.db.begin_write().await?;
        let row = sqlx::query("SELECT tags FROM logged_models WHERE model_id = $1")
            .bind(model_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::LoggedModelNotFound { model_id: model_id.to_string() })?;
        let mut tags = from_json(&row.try_get::<String, _>("tags")?);
        for (key, value) in changes {
            tags.retain(|t| &t.key != key);
            if let Some(v) = value {
                tags.push(KeyValue { key: key.clone(), value: v.clone() });
            }
        }
        sqlx::query("UPDATE logged_models SET tags = $1, last_updated_timestamp_ms = $2 WHERE model_id = $3")
            .bind(to_json(&tags))
            .bind(now_ms())
            .bind(model_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Logged models of some experiments, newest first, optionally only those with `name`.
    pub async fn search_logged_models(
        &self,
        experiment_ids: &[String],
        name: Option<&str>,
        max_results: i64,
    ) -> Result<Page<LoggedModel>> {
        let ids: Vec<i64> = experiment_ids.iter().filter_map(|id| id.parse().ok()).collect();
        let mut q =
            Sql::new(format!("SELECT {COLUMNS} FROM logged_models WHERE experiment_id IN ("));
        q.bind_list(ids).push(")");
        if let Some(name) = name {
            q.push(" AND name = ").bind(name);
        }
        q.push(" ORDER BY creation_timestamp_ms DESC, model_id LIMIT ")
            .bind(max_results.clamp(1, 10_000));
        let rows = q.query(&self.db).fetch_all(self.db.pool()).await?;
        let items = rows.iter().map(model_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page { items, next_page_token: None })
    }
}
