//! The prediction log of an endpoint: `GET/PUT /api/v1/endpoints/{name}/log` (its sampling and
//! what it wrote), `GET .../predictions` (logged rows, as Parquet or JSON) and `GET .../windows`
//! (per-window, per-variant profiles merged over every process).

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_core::now_ms;

use crate::{ApiError, AppState};

/// Rows a JSON answer holds at most; Parquet answers hold up to [`MAX_PARQUET_ROWS`].
const MAX_JSON_ROWS: usize = 100_000;
const MAX_PARQUET_ROWS: usize = 5_000_000;
const DAY_MS: i64 = 24 * 3600 * 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetLog {
    sample: Option<f64>,
    max_per_second: Option<u64>,
    window_s: Option<u64>,
    features: Option<Vec<String>>,
}

fn log_view(e: &serve::Endpoint, stats: serve::LogStats, segments: &[serve::Segment]) -> Value {
    json!({
        "endpoint": e.name,
        "settings": e.log,
        "process": stats,
        "segments": segments.len(),
        "rows": segments.iter().map(|s| s.rows).sum::<i64>(),
        "bytes": segments.iter().map(|s| s.bytes).sum::<i64>(),
        "first_ms": segments.iter().map(|s| s.first_ms).min(),
        "last_ms": segments.iter().map(|s| s.last_ms).max(),
        "flush_ms": serve::predlog::FLUSH_MS,
        "max_buffered_rows": serve::predlog::MAX_BUFFERED_ROWS,
    })
}

#[utoipa::path(get, path = "/api/v1/endpoints/{name}/log", tag = "monitoring",
    params(("name" = String, Path)),
    responses((status = 200, description = "{settings, process: this process's counts, segments, rows, bytes, first_ms, last_ms} over the last 30 days"),
        (status = 404, description = "no such endpoint")))]
pub(crate) async fn get_log(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = s.serving.get(&name).await?;
    let segments = s.serving.log_segments(&name, now_ms() - 30 * DAY_MS, i64::MAX).await?;
    Ok(Json(log_view(&e, s.serving.log_stats(), &segments)))
}

#[utoipa::path(put, path = "/api/v1/endpoints/{name}/log", tag = "monitoring",
    params(("name" = String, Path)),
    request_body(content = String, content_type = "application/json",
        description = "{sample?: 0..1, max_per_second?, window_s?, features?: [names]}; absent fields are kept"),
    responses((status = 200, description = "the log as GET answers it"),
        (status = 400, description = "a bad setting, named; nothing changed"), (status = 404, description = "no such endpoint")))]
pub(crate) async fn set_log(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<SetLog>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    let e = s.serving.get(&name).await?;
    let mut settings = e.log.clone();
    if let Some(v) = body.sample {
        settings.sample = v;
    }
    if let Some(v) = body.max_per_second {
        settings.max_per_second = v;
    }
    if let Some(v) = body.window_s {
        settings.window_s = v;
    }
    if let Some(v) = body.features {
        settings.features = v;
    }
    let e = s.serving.set_log(&name, &settings).await?;
    let segments = s.serving.log_segments(&name, now_ms() - 30 * DAY_MS, i64::MAX).await?;
    Ok(Json(log_view(&e, s.serving.log_stats(), &segments)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RowsQuery {
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    version: Option<i64>,
    limit: Option<usize>,
    /// `parquet` (default) or `json`.
    format: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/endpoints/{name}/predictions", tag = "monitoring",
    params(("name" = String, Path),
        ("since_ms" = Option<i64>, Query, description = "default: the last hour"),
        ("until_ms" = Option<i64>, Query, description = "default: now"),
        ("version" = Option<i64>, Query, description = "one model version's rows only"),
        ("limit" = Option<usize>, Query, description = "most rows (JSON: 1,000 by default, at most 100,000)"),
        ("format" = Option<String>, Query, description = "parquet (default) or json")),
    responses((status = 200, description = "Parquet (request_id, at, variant, version, row, latency_ms, the inputs, prediction, score), or {rows, truncated}"),
        (status = 400, description = "a bad query"), (status = 404, description = "no such endpoint")))]
pub(crate) async fn log_rows(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<RowsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    s.serving.get(&name).await?;
    let until = q.until_ms.unwrap_or_else(now_ms);
    let since = q.since_ms.unwrap_or(until - 3600 * 1000);
    if since > until {
        return Err(ApiError::invalid("since_ms is after until_ms"));
    }
    let json = match q.format.as_deref() {
        None | Some("parquet") => false,
        Some("json") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!("format '{other}': use parquet or json")));
        }
    };
    let (default, most) =
        if json { (1_000, MAX_JSON_ROWS) } else { (MAX_PARQUET_ROWS, MAX_PARQUET_ROWS) };
    let limit = q.limit.unwrap_or(default);
    if limit == 0 || limit > most {
        return Err(ApiError::invalid(format!("limit must be 1 to {most}")));
    }
    let rows = s.serving.read_log(&name, since, until, q.version, limit).await?;
    if json {
        return Ok(
            Json(json!({"rows": rows.to_json(), "truncated": rows.truncated})).into_response()
        );
    }
    let bytes = tokio::task::spawn_blocking(move || rows.to_parquet().map(|b| (b, rows.truncated)))
        .await
        .map_err(|e| ApiError::new(slipway_core::ErrorCode::InternalError, e.to_string()))??;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/vnd.apache.parquet".to_string()),
            (header::HeaderName::from_static("x-slipway-truncated"), bytes.1.to_string()),
        ],
        Body::from(bytes.0),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowsQuery {
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    variant: Option<String>,
    /// Histogram bins per numeric column (default 20, at most 100).
    bins: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/endpoints/{name}/windows", tag = "monitoring",
    params(("name" = String, Path),
        ("since_ms" = Option<i64>, Query, description = "windows starting at or after; default: the last 24 hours"),
        ("until_ms" = Option<i64>, Query),
        ("variant" = Option<String>, Query, description = "one variant's windows only"),
        ("bins" = Option<usize>, Query, description = "histogram bins (default 20)")),
    responses((status = 200, description = "{windows: [{window_ms, window_s, variant, versions, rows, columns: [summary]}]}"),
        (status = 404, description = "no such endpoint")))]
pub(crate) async fn log_windows(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<WindowsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    s.serving.get(&name).await?;
    let until = q.until_ms.unwrap_or(i64::MAX);
    let since = q.since_ms.unwrap_or_else(|| now_ms() - DAY_MS);
    let bins = q.bins.unwrap_or(20);
    if !(1..=100).contains(&bins) {
        return Err(ApiError::invalid("bins must be 1 to 100"));
    }
    let windows = s.serving.window_profiles(&name, since, until).await?;
    let out: Vec<Value> = windows
        .iter()
        .filter(|w| q.variant.as_ref().is_none_or(|v| *v == w.variant))
        .map(|w| {
            let columns: Vec<_> = w.profile.columns.iter().map(|c| c.summary(bins, 10)).collect();
            json!({
                "window_ms": w.window_ms,
                "window_s": w.window_s,
                "variant": w.variant,
                "versions": w.versions,
                "rows": w.rows,
                "columns": columns,
            })
        })
        .collect();
    Ok(Json(json!({ "windows": out })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PerformanceQuery {
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    window_s: Option<i64>,
    positive: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/endpoints/{name}/performance", tag = "monitoring",
    params(("name" = String, Path),
        ("since_ms" = Option<i64>, Query, description = "answers from; default: the last 24 hours"),
        ("until_ms" = Option<i64>, Query),
        ("window_s" = Option<i64>, Query, description = "default: the endpoint's log window"),
        ("positive" = Option<String>, Query, description = "the label precision, recall, F1 and ROC AUC are about (default \"1\")")),
    responses((status = 200, description = "{windows: [{window_ms, window_s, variant, feedback_rows, accuracy, precision, recall, f1, roc_auc, mae, rmse}]} from ground truth sent with POST .../feedback"),
        (status = 404, description = "no such endpoint")))]
pub(crate) async fn performance(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<PerformanceQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    let e = s.serving.get(&name).await?;
    let window_s = q.window_s.unwrap_or(e.log.window_s as i64);
    if !(1..=86_400).contains(&window_s) {
        return Err(ApiError::invalid("window_s must be 1 to 86400"));
    }
    let until = q.until_ms.unwrap_or(i64::MAX);
    let since = q.since_ms.unwrap_or_else(|| now_ms() - DAY_MS);
    let positive = q.positive.unwrap_or_else(|| "1".to_string());
    let windows = s.serving.performance(&name, since, until, window_s * 1000, &positive).await?;
    Ok(Json(json!({ "windows": windows })))
}
