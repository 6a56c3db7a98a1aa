//! MLflow's REST API (`/api/2.0/mlflow/…`, also under `/ajax-api/2.0/mlflow/…`), so that the
//! unmodified `mlflow` client works against Slipway. Wire quirks live here and only here: int64
//! as JSON numbers (strings accepted), empty fields left out, `run_uuid` beside `run_id`, NaN and
//! infinities as strings, errors as `{"error_code", "message"}` with 4xx for bad input.

mod artifacts;
mod experiments;
mod models;
mod registry;
mod runs;
mod views;
mod wire;

pub(crate) use artifacts::content_type;
pub(crate) use views::number;
use views::page;

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::routing::{delete, get, patch, post};
use serde_json::{Map, Value};
use slipway_core::ErrorCode;

use crate::{ApiError, AppState};

pub(crate) fn router() -> Router<AppState> {
    let api = Router::new()
        .route("/experiments/create", post(experiments::create))
        .route("/experiments/get", get(experiments::get))
        .route("/experiments/get-by-name", get(experiments::get_by_name))
        .route("/experiments/search", get(experiments::search_get).post(experiments::search_post))
        .route("/experiments/list", get(experiments::search_get))
        .route("/experiments/update", post(experiments::update))
        .route("/experiments/delete", post(experiments::delete))
        .route("/experiments/restore", post(experiments::restore))
        .route("/experiments/set-experiment-tag", post(experiments::set_tag))
        .route("/experiments/delete-experiment-tag", post(experiments::delete_tag))
        .route("/runs/create", post(runs::create))
        .route("/runs/get", get(runs::get))
        .route("/runs/update", post(runs::update))
        .route("/runs/delete", post(runs::delete))
        .route("/runs/restore", post(runs::restore))
        .route("/runs/log-parameter", post(runs::log_param))
        .route("/runs/log-metric", post(runs::log_metric))
        .route("/runs/log-batch", post(runs::log_batch))
        .route("/runs/set-tag", post(runs::set_tag))
        .route("/runs/delete-tag", post(runs::delete_tag))
        .route("/runs/log-inputs", post(runs::log_inputs))
        .route("/runs/outputs", post(runs::log_outputs))
        .route("/runs/search", post(runs::search))
        .route("/metrics/get-history", get(runs::metric_history))
        .route("/logged-models", post(models::create))
        .route("/logged-models/search", post(models::search))
        .route("/logged-models/{model_id}", get(models::get).patch(models::finalize))
        .route("/logged-models/{model_id}/tags", patch(models::set_tags))
        .route("/logged-models/{model_id}/tags/{key}", delete(models::delete_tag))
        .route("/registered-models/create", post(registry::create_model))
        .route("/registered-models/get", get(registry::get_model))
        .route(
            "/registered-models/search",
            get(registry::search_models).post(registry::search_models),
        )
        .route("/registered-models/rename", post(registry::rename_model))
        .route("/registered-models/update", patch(registry::update_model))
        .route("/registered-models/delete", delete(registry::delete_model))
        .route("/registered-models/set-tag", post(registry::set_model_tag))
        .route("/registered-models/delete-tag", delete(registry::delete_model_tag))
        .route(
            "/registered-models/get-latest-versions",
            post(registry::latest_versions).get(registry::latest_versions),
        )
        .route(
            "/registered-models/alias",
            post(registry::set_alias).get(registry::get_alias).delete(registry::delete_alias),
        )
        .route("/model-versions/create", post(registry::create_version))
        .route("/model-versions/get", get(registry::get_version))
        .route("/model-versions/get-download-uri", get(registry::download_uri))
        .route(
            "/model-versions/search",
            get(registry::search_versions).post(registry::search_versions),
        )
        .route("/model-versions/update", patch(registry::update_version))
        .route("/model-versions/transition-stage", post(registry::transition_stage))
        .route("/model-versions/set-tag", post(registry::set_version_tag))
        .route("/model-versions/delete-tag", delete(registry::delete_version_tag))
        .route("/model-versions/delete", delete(registry::delete_version));
    let artifacts = Router::new().route("/artifacts", get(artifacts::list)).route(
        "/artifacts/{*path}",
        get(artifacts::get).put(artifacts::put).delete(artifacts::delete),
    );
    Router::new()
        .nest("/api/2.0/mlflow-artifacts", artifacts.clone())
        .nest("/ajax-api/2.0/mlflow-artifacts", artifacts)
        .nest("/api/2.0/mlflow", api.clone())
        .nest("/ajax-api/2.0/mlflow", api)
        .route("/api/3.0/mlflow/server-info", get(server_info))
        .route("/version", get(|| async { crate::VERSION }))
}

/// What the client asks before artifact transfers: no multipart, no presigned URLs.
async fn server_info() -> Json<Value> {
    Json(serde_json::json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "trace_archival_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
        "presigned_upload_run_id_supported": false,
        "presigned_upload_model_id_supported": false,
        "features_enabled": {},
    }))
}

/// A request's arguments: a JSON body (POST) or the query string (GET).
pub(crate) struct Args(Map<String, Value>);

impl Args {
    pub(crate) fn from_body(body: Result<Json<Value>, JsonRejection>) -> Result<Args, ApiError> {
        match body?.0 {
            Value::Object(map) => Ok(Args(map)),
            _ => Err(ApiError::new(
                ErrorCode::MalformedRequest,
                "the request body must be a JSON object",
            )),
        }
    }

    pub(crate) fn from_query(query: Vec<(String, String)>) -> Args {
        let mut map = Map::new();
        for (k, v) in query {
            match map.get_mut(&k) {
                Some(Value::Array(items)) => items.push(Value::String(v)),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, Value::String(v)]);
                }
                None => {
                    map.insert(k, Value::String(v));
                }
            }
        }
        Args(map)
    }

    fn missing(name: &str) -> ApiError {
        ApiError::invalid(format!("Missing value for required parameter '{name}'."))
    }

    /// An optional string; numbers are accepted and shown as decimals.
    pub(crate) fn opt_str(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(ApiError::invalid(format!(
                "Invalid value for parameter '{name}': expected a string"
            ))),
        }
    }

    pub(crate) fn str(&self, name: &str) -> Result<String, ApiError> {
        self.opt_str(name)?.filter(|s| !s.is_empty()).ok_or_else(|| Args::missing(name))
    }

    /// `run_id`, or the legacy `run_uuid`.
    pub(crate) fn run_id(&self) -> Result<String, ApiError> {
        match self.opt_str("run_id")?.filter(|s| !s.is_empty()) {
            Some(id) => Ok(id),
            None => self
                .opt_str("run_uuid")?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Args::missing("run_id")),
        }
    }

    /// An int64 sent as a JSON number or a decimal string.
    pub(crate) fn opt_i64(&self, name: &str) -> Result<Option<i64>, ApiError> {
        value_i64(self.0.get(name), name)
    }

    pub(crate) fn opt_list(&self, name: &str) -> Result<Vec<Value>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items.clone()),
            Some(single @ Value::String(_)) => Ok(vec![single.clone()]),
            Some(_) => Err(ApiError::invalid(format!(
                "Invalid value for parameter '{name}': expected a list"
            ))),
        }
    }

    pub(crate) fn strings(&self, name: &str) -> Result<Vec<String>, ApiError> {
        self.opt_list(name)?
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(ApiError::invalid(format!(
                    "Invalid value for parameter '{name}': expected strings"
                ))),
            })
            .collect()
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
}

pub(crate) fn value_i64(value: Option<&Value>, name: &str) -> Result<Option<i64>, ApiError> {
    let bad =
        || ApiError::invalid(format!("Invalid value for parameter '{name}': expected an integer"));
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .map(Some)
            .ok_or_else(bad),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.parse::<i64>().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

/// A metric value: a JSON number, or the strings "NaN", "Infinity" and "-Infinity".
pub(crate) fn value_f64(value: Option<&Value>, name: &str) -> Result<f64, ApiError> {
    let bad =
        || ApiError::invalid(format!("Invalid value for parameter '{name}': expected a number"));
    match value {
        Some(Value::Number(n)) => n.as_f64().ok_or_else(bad),
        Some(Value::String(s)) => match s.as_str() {
            "NaN" | "nan" => Ok(f64::NAN),
            "Infinity" | "inf" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            other => other.parse::<f64>().map_err(|_| bad()),
        },
        None | Some(Value::Null) => {
            Err(ApiError::invalid(format!("Missing value for required parameter '{name}'.")))
        }
        Some(_) => Err(bad()),
    }
}

impl From<track::Error> for ApiError {
    fn from(e: track::Error) -> ApiError {
        match e {
            track::Error::Core(core) => core.into(),
            other => ApiError::new(other.code(), other.to_string()),
        }
    }
}

/// `{}`: MLflow's answer when there is nothing to say.
pub(crate) fn empty() -> Json<Value> {
    Json(Value::Object(Map::new()))
}
