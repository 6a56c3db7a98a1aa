//! `/logged-models…`: the models runs log (MLflow 3), so that `mlflow.<flavor>.log_model` works.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use serde_json::{Map, Value, json};
use track::{KeyValue, LoggedModel, NewLoggedModel};

use super::experiments::key_values;
use super::{Args, empty};
use crate::{ApiError, AppState};

type Body = Result<Json<Value>, JsonRejection>;

fn pairs(items: &[KeyValue]) -> Value {
    Value::Array(items.iter().map(|kv| json!({"key": kv.key, "value": kv.value})).collect())
}

fn view(m: &LoggedModel) -> Value {
    let mut info = json!({
        "model_id": m.model_id,
        "experiment_id": m.experiment_id,
        "name": m.name,
        "creation_timestamp_ms": m.creation_timestamp_ms,
        "last_updated_timestamp_ms": m.last_updated_timestamp_ms,
        "artifact_uri": m.artifact_uri,
        "status": m.status,
    });
    if let Some(t) = &m.model_type {
        info["model_type"] = json!(t);
    }
    if let Some(r) = &m.source_run_id {
        info["source_run_id"] = json!(r);
    }
    if !m.tags.is_empty() {
        info["tags"] = pairs(&m.tags);
    }
    let mut data = Map::new();
    if !m.params.is_empty() {
        data.insert("params".into(), pairs(&m.params));
    }
    json!({ "info": info, "data": data })
}

pub(crate) async fn create(State(s): State<AppState>, body: Body) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    let model = s
        .tracking
        .create_logged_model(NewLoggedModel {
            experiment_id: args.str("experiment_id")?,
            name: args.opt_str("name")?.unwrap_or_default(),
            source_run_id: args.opt_str("source_run_id")?.filter(|r| !r.is_empty()),
            model_type: args.opt_str("model_type")?.filter(|t| !t.is_empty()),
            params: key_values(&args, "params")?,
            tags: key_values(&args, "tags")?,
        })
        .await?;
    Ok(Json(json!({ "model": view(&model) })))
}

pub(crate) async fn get(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let model = s.tracking.get_logged_model(&model_id).await?;
    Ok(Json(json!({ "model": view(&model) })))
}

pub(crate) async fn finalize(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    let model = s.tracking.set_logged_model_status(&model_id, &args.str("status")?).await?;
    Ok(Json(json!({ "model": view(&model) })))
}

pub(crate) async fn set_tags(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    let changes: Vec<(String, Option<String>)> =
        key_values(&args, "tags")?.into_iter().map(|kv| (kv.key, Some(kv.value))).collect();
    s.tracking.set_logged_model_tags(&model_id, &changes).await?;
    Ok(empty())
}

pub(crate) async fn delete_tag(
    State(s): State<AppState>,
    Path((model_id, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    s.tracking.set_logged_model_tags(&model_id, &[(key, None)]).await?;
    Ok(empty())
}

pub(crate) async fn search(State(s): State<AppState>, body: Body) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    let filter = args.opt_str("filter")?.unwrap_or_default();
    let name = name_filter(&filter)?;
    let max_results = args.opt_i64("max_results")?.unwrap_or(100);
    let page = s
        .tracking
        .search_logged_models(&args.strings("experiment_ids")?, name.as_deref(), max_results)
        .await?;
    if page.items.is_empty() {
        return Ok(empty());
    }
    Ok(Json(json!({ "models": page.items.iter().map(view).collect::<Vec<_>>() })))
}

/// `name = '…'` (what the client sends when it looks a model up by path), or nothing.
fn name_filter(filter: &str) -> Result<Option<String>, ApiError> {
    let f = filter.trim();
    if f.is_empty() {
        return Ok(None);
    }
    let value = f
        .strip_prefix("name")
        .map(str::trim_start)
        .and_then(|r| r.strip_prefix('='))
        .map(str::trim)
        .and_then(|r| r.strip_prefix('\''))
        .and_then(|r| r.strip_suffix('\''));
    match value {
        Some(v) if !v.contains('\'') => Ok(Some(v.to_string())),
        _ => Err(ApiError::invalid(format!(
            "Invalid logged model filter '{filter}': only name = '...' is supported so far"
        ))),
    }
}
