//! `/runs/…` and `/metrics/get-history`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;
use slipway_core::ErrorCode;
use track::{KeyValue, Metric, NewRun, RunSearch, RunStatus, ViewType};

use super::experiments::key_values;
use super::wire::LogBatch;
use super::{Args, empty, page, value_f64, value_i64, views};
use crate::{ApiError, AppState};

type Body = Result<Json<Value>, JsonRejection>;

pub(crate) async fn create(State(s): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let args = Args::from_body(body)?;
    let experiment_id =
        args.opt_str("experiment_id")?.filter(|e| !e.is_empty()).ok_or_else(|| {
            ApiError::new(
                slipway_core::ErrorCode::BadRequest,
                "Missing value for required parameter 'experiment_id'.",
            )
        })?;
    let run = s
        .tracking
        .create_run(NewRun {
            experiment_id,
            user_id: args.opt_str("user_id")?.unwrap_or_default(),
            run_name: args.opt_str("run_name")?,
            start_time: args.opt_i64("start_time")?.filter(|t| *t > 0),
            tags: key_values(&args, "tags")?,
        })
        .await?;
    Ok(views::wrapped("run", views::run(&run)))
}

pub(crate) async fn get(
    State(s): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let args = Args::from_query(q);
    let run = s.tracking.get_run(&args.run_id()?).await?;
    Ok(views::wrapped("run", views::run(&run)))
}

pub(crate) async fn update(State(s): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let args = Args::from_body(body)?;
    let status = match args.opt_str("status")? {
        None => None,
        Some(v) => Some(
            RunStatus::parse(&v)
                .ok_or_else(|| ApiError::invalid(format!("Invalid run status '{v}'")))?,
        ),
    };
    let name = args.opt_str("run_name")?;
    let info = s
        .tracking
        .update_run(&args.run_id()?, status, args.opt_i64("end_time")?, name.as_deref())
        .await?;
    Ok(views::wrapped("run_info", views::run_info(&info)))
}

pub(crate) async fn delete(State(s): State<AppState>, body: Body) -> Result<Json<Value>, ApiError> {
    s.tracking.delete_run(&Args::from_body(body)?.run_id()?).await?;
    Ok(empty())
}

pub(crate) async fn restore(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    s.tracking.restore_run(&Args::from_body(body)?.run_id()?).await?;
    Ok(empty())
}

fn param_value(args: &Args) -> Result<String, ApiError> {
    Ok(args.opt_str("value")?.unwrap_or_default())
}

pub(crate) async fn log_param(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    let param = KeyValue { key: args.str("key")?, value: param_value(&args)? };
    s.tracking.log_batch(&args.run_id()?, &[], &[param], &[]).await?;
    Ok(empty())
}

pub(crate) async fn set_tag(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    let tag = KeyValue { key: args.str("key")?, value: param_value(&args)? };
    s.tracking.log_batch(&args.run_id()?, &[], &[], &[tag]).await?;
    Ok(empty())
}

pub(crate) async fn delete_tag(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    s.tracking.delete_tag(&args.run_id()?, &args.str("key")?).await?;
    Ok(empty())
}

fn metric_from(value: &Value) -> Result<Metric, ApiError> {
    let key = value.get("key").and_then(Value::as_str).unwrap_or_default();
    if key.is_empty() {
        return Err(ApiError::invalid("Missing value for required parameter 'key'."));
    }
    Ok(Metric {
        key: key.to_string(),
        value: value_f64(value.get("value"), "value")?,
        timestamp: value_i64(value.get("timestamp"), "timestamp")?
            .unwrap_or_else(slipway_core::now_ms),
        step: value_i64(value.get("step"), "step")?.unwrap_or(0),
    })
}

pub(crate) async fn log_metric(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    let mut fields = serde_json::Map::new();
    for name in ["key", "value", "timestamp", "step"] {
        if let Some(v) = args.get(name) {
            fields.insert(name.into(), v.clone());
        }
    }
    let metric = metric_from(&Value::Object(fields))?;
    s.tracking.log_batch(&args.run_id()?, &[metric], &[], &[]).await?;
    Ok(empty())
}

/// The ingest path, parsed without a JSON tree (see `wire`).
pub(crate) async fn log_batch(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
    let batch = LogBatch::parse(&headers, &body)?;
    s.tracking.log_batch(&batch.run_id, &batch.metrics, &batch.params, &batch.tags).await?;
    Ok(empty())
}

pub(crate) async fn log_inputs(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    let run_id = args.run_id()?;
    s.tracking.log_io(&run_id, "dataset", &args.opt_list("datasets")?).await?;
    s.tracking.log_io(&run_id, "model_input", &args.opt_list("models")?).await?;
    Ok(empty())
}

pub(crate) async fn log_outputs(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    s.tracking.log_io(&args.run_id()?, "model_output", &args.opt_list("models")?).await?;
    Ok(empty())
}

pub(crate) async fn search(State(s): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let args = Args::from_body(body)?;
    let view = match args.opt_str("run_view_type")? {
        None => ViewType::ActiveOnly,
        Some(v) => ViewType::parse(&v)
            .ok_or_else(|| ApiError::invalid(format!("Invalid run_view_type '{v}'")))?,
    };
    let search = RunSearch {
        experiment_ids: args.strings("experiment_ids")?,
        filter: args.opt_str("filter")?.unwrap_or_default(),
        view,
        max_results: args.opt_i64("max_results")?,
        order_by: args.strings("order_by")?,
        page_token: args.opt_str("page_token")?,
    };
    let found = s.tracking.search_runs(&search).await?;
    Ok(page("runs", &found, views::run))
}

pub(crate) async fn metric_history(
    State(s): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let args = Args::from_query(q);
    let history = s
        .tracking
        .metric_history(
            &args.run_id()?,
            &args.str("metric_key")?,
            args.opt_i64("max_results")?,
            args.opt_str("page_token")?.as_deref(),
        )
        .await?;
    Ok(page("metrics", &history, views::metric))
}
