//! Monitors on endpoints: `POST/GET /api/v1/monitors`, `GET/DELETE /api/v1/monitors/{name}`,
//! `GET /api/v1/monitors/{name}/reports` (the history, newest first) and
//! `POST /api/v1/monitors/{name}/evaluate` (judge a window now).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use monitor::monitors::{Error, Spec};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::Core(e) => e.into(),
            Error::Serve(e) => e.into(),
            other => ApiError::new(other.code(), other.to_string()),
        }
    }
}

#[utoipa::path(post, path = "/api/v1/monitors", tag = "monitoring",
    request_body(content = String, content_type = "application/json",
        description = "{name, endpoint, kind: skew|drift|prediction_drift, reference?: NAME@VERSION (skew), baseline_window_ms? (drift), columns?, tests?: {col: test}, thresholds?: {col: x}, share? (0.5), min_rows? (30)}"),
    responses((status = 200, description = "the monitor"), (status = 400, description = "a bad spec, named; nothing stored"),
        (status = 404, description = "no such endpoint or reference"), (status = 409, description = "the name is taken")))]
pub(crate) async fn create_monitor(
    State(s): State<AppState>,
    body: Result<Json<Spec>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(spec) = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    Ok(Json(json!(s.monitors.create(spec).await?)))
}

#[utoipa::path(get, path = "/api/v1/monitors", tag = "monitoring",
    responses((status = 200, description = "{monitors: [monitor with its latest report]}")))]
pub(crate) async fn list_monitors(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "monitors": s.monitors.list().await? })))
}

#[utoipa::path(get, path = "/api/v1/monitors/{name}", tag = "monitoring", params(("name" = String, Path)),
    responses((status = 200, description = "the monitor with its latest report"), (status = 404, description = "no such monitor")))]
pub(crate) async fn get_monitor(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(s.monitors.get(&name).await?)))
}

#[utoipa::path(delete, path = "/api/v1/monitors/{name}", tag = "monitoring", params(("name" = String, Path)),
    responses((status = 200, description = "{}"), (status = 404, description = "no such monitor"),
        (status = 409, description = "alert rules watch the monitor: delete them first")))]
pub(crate) async fn delete_monitor(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    s.monitors.get(&name).await?;
    // A rule on a deleted monitor would never fire again, silently.
    let watching: Vec<String> = s
        .alerts
        .rules()
        .await?
        .into_iter()
        .filter(|r| r.monitor.as_deref() == Some(name.as_str()))
        .map(|r| r.name)
        .collect();
    if !watching.is_empty() {
        return Err(ApiError::new(
            slipway_core::ErrorCode::Conflict,
            format!(
                "monitor '{name}' is watched by alert rule(s) {}: delete them first",
                watching.join(", ")
            ),
        ));
    }
    s.monitors.delete(&name).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportsQuery {
    since_ms: Option<i64>,
    window_ms: Option<i64>,
    limit: Option<i64>,
    distributions: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/monitors/{name}/reports", tag = "monitoring",
    params(("name" = String, Path), ("since_ms" = Option<i64>, Query, description = "windows starting at or after; default: the last 24 hours"),
        ("window_ms" = Option<i64>, Query, description = "only the window starting at this time"),
        ("limit" = Option<i64>, Query, description = "most reports (default 500, at most 10,000)"),
        ("distributions" = Option<bool>, Query, description = "with each column's reference and current distributions (shares per bin)")),
    responses((status = 200, description = "{reports: [...]} newest first: per window the verdict and every column's test, statistic and threshold (and, asked for, distributions)"),
        (status = 404, description = "no such monitor")))]
pub(crate) async fn monitor_reports(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<ReportsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(500);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit must be 1 to 10000"));
    }
    s.monitors.get(&name).await?;
    let (since, until) = match q.window_ms {
        Some(w) => (w, w),
        None => (q.since_ms.unwrap_or_else(|| slipway_core::now_ms() - 24 * 3600 * 1000), i64::MAX),
    };
    let mut reports = s.monitors.reports(&name, since, until, limit).await?;
    if !q.distributions.unwrap_or(false) {
        for r in &mut reports {
            r.distributions.clear();
        }
    }
    Ok(Json(json!({ "reports": reports })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EvaluateQuery {
    window_ms: Option<i64>,
}

#[utoipa::path(post, path = "/api/v1/monitors/{name}/evaluate", tag = "monitoring",
    params(("name" = String, Path), ("window_ms" = Option<i64>, Query, description = "the window's start; default: the latest closed window")),
    responses((status = 200, description = "the report (kept)"), (status = 400, description = "the window cannot be judged (too few rows, no reference), and why"),
        (status = 404, description = "no such monitor")))]
pub(crate) async fn evaluate_monitor(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<EvaluateQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    Ok(Json(json!(s.monitors.evaluate(&name, q.window_ms).await?)))
}
