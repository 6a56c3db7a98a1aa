//! Custom gauges: `POST /api/v1/gauges` to push points, `GET /api/v1/gauges` for every series'
//! latest value, `GET /api/v1/gauges/{name}` for a series' history.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use monitor::gauges::{Error, Point};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SentPoint {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    value: f64,
    at_ms: Option<i64>,
}

fn api_error(e: Error) -> ApiError {
    match e {
        Error::Invalid(m) => ApiError::invalid(m),
        Error::Db(e) => slipway_core::Error::from(e).into(),
        Error::Core(e) => e.into(),
    }
}

#[utoipa::path(post, path = "/api/v1/gauges", tag = "monitoring",
    request_body(content = String, content_type = "application/json",
        description = "{name, labels?: {k: v}, value, at_ms?} or {points: [...]} (at most 10,000)"),
    responses((status = 200, description = "{pushed: n}"), (status = 400, description = "a bad point, named; nothing stored")))]
pub(crate) async fn push(
    State(s): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    // One point, or {"points": [...]}; a bad one is named by its place.
    let (list, many) = match body {
        Value::Object(mut m) if m.contains_key("points") && m.len() == 1 => {
            match m.remove("points") {
                Some(Value::Array(a)) => (a, true),
                _ => return Err(ApiError::invalid("points must be a list")),
            }
        }
        other => (vec![other], false),
    };
    let mut sent = Vec::with_capacity(list.len());
    for (i, v) in list.into_iter().enumerate() {
        let at = if many { format!("points[{i}].") } else { String::new() };
        if !v["value"].is_number() {
            return Err(ApiError::invalid(format!("{at}value must be a number")));
        }
        if !v["name"].is_string() {
            return Err(ApiError::invalid(format!("{at}name must be a string")));
        }
        let p: SentPoint = serde_json::from_value(v).map_err(|e| {
            ApiError::invalid(if many { format!("points[{i}]: {e}") } else { e.to_string() })
        })?;
        sent.push(p);
    }
    let points: Vec<Point> = sent
        .into_iter()
        .map(|p| Point { name: p.name, labels: p.labels, value: p.value, at_ms: p.at_ms })
        .collect();
    let n = s.gauges.push(&points).await.map_err(api_error)?;
    Ok(Json(json!({ "pushed": n })))
}

#[utoipa::path(get, path = "/api/v1/gauges", tag = "monitoring",
    responses((status = 200, description = "{gauges: [{name, labels, value, at_ms, points}]}")))]
pub(crate) async fn list(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let series = s.gauges.series().await.map_err(api_error)?;
    Ok(Json(json!({ "gauges": series })))
}

#[derive(Deserialize)]
pub(crate) struct HistoryQuery {
    /// Since when, ms since the epoch (default: the last 24 hours).
    since_ms: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/gauges/{name}", tag = "monitoring",
    params(("name" = String, Path), ("since_ms" = Option<i64>, Query, description = "default: the last 24 hours")),
    responses((status = 200, description = "{name, series: [{labels, points: [[at_ms, value]]}]}"),
              (status = 404, description = "no such gauge")))]
pub(crate) async fn history(
    State(s): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query?.0;
    let since = q.since_ms.unwrap_or_else(|| slipway_core::now_ms() - 24 * 3600 * 1000);
    let series = s.gauges.series().await.map_err(api_error)?;
    if !series.iter().any(|x| x.name == name) {
        return Err(ApiError::not_found(format!("no gauge named '{name}'")));
    }
    let history = s.gauges.history(&name, since).await.map_err(api_error)?;
    let out: Vec<Value> =
        history.iter().map(|h| json!({"labels": h.labels, "points": h.points})).collect();
    Ok(Json(json!({ "name": name, "series": out })))
}
