//! Alerts: `POST/GET /api/v1/alerts/rules`, `DELETE /api/v1/alerts/rules/{name}`, and
//! `GET /api/v1/alerts` (the alerts, newest first, each with its webhook deliveries), and
//! `GET /api/v1/alerts/actions` (the commands firing alerts ran, or why they did not).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use monitor::alerts::Rule;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

#[utoipa::path(post, path = "/api/v1/alerts/rules", tag = "monitoring",
    request_body(content = String, content_type = "application/json",
        description = "{name, monitor?: NAME | gauge?: NAME with labels?, op?: > >= < <= == !=, threshold?, for_s?, webhook?: {url, secret?, allow_private?}}"),
    responses((status = 200, description = "the rule (a secret shown as \"(set)\")"),
        (status = 400, description = "a bad rule, or a webhook target refused (not http(s), or private without allow_private); nothing stored"),
        (status = 404, description = "no such monitor")))]
pub(crate) async fn create_rule(
    State(s): State<AppState>,
    body: Result<Json<Rule>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(rule) = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    Ok(Json(s.alerts.create_rule(rule).await?.shown()))
}

#[utoipa::path(get, path = "/api/v1/alerts/rules", tag = "monitoring",
    responses((status = 200, description = "{rules: [...]}")))]
pub(crate) async fn list_rules(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let rules: Vec<Value> = s.alerts.rules().await?.iter().map(Rule::shown).collect();
    Ok(Json(json!({ "rules": rules })))
}

#[utoipa::path(delete, path = "/api/v1/alerts/rules/{name}", tag = "monitoring", params(("name" = String, Path)),
    responses((status = 200, description = "{}"), (status = 404, description = "no such rule")))]
pub(crate) async fn delete_rule(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    s.alerts.delete_rule(&name).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertsQuery {
    state: Option<String>,
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/alerts", tag = "monitoring",
    params(("state" = Option<String>, Query, description = "pending, firing, resolved or cleared; default: all but cleared"),
        ("limit" = Option<i64>, Query, description = "default 200, at most 10,000")),
    responses((status = 200, description = "{alerts: [{id, rule, state, value, context (with link), started_ms, fired_ms, resolved_ms, deliveries}]}")))]
pub(crate) async fn list_alerts(
    State(s): State<AppState>,
    q: Result<Query<AlertsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    if let Some(st) = &q.state
        && !matches!(st.as_str(), "pending" | "firing" | "resolved" | "cleared")
    {
        return Err(ApiError::invalid(format!(
            "state '{st}': use pending, firing, resolved or cleared"
        )));
    }
    let limit = q.limit.unwrap_or(200);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit must be 1 to 10000"));
    }
    Ok(Json(json!({ "alerts": s.alerts.alerts(q.state.as_deref(), limit).await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionsQuery {
    state: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/alerts/actions", tag = "monitoring",
    params(("state" = Option<String>, Query, description = "queued, running, done, failed or skipped")),
    responses((status = 200, description = "{actions: [{id, rule, alert_id, action, state, reason, context, run_id, exit_code, created_ms, started_ms, finished_ms}]} newest first")))]
pub(crate) async fn list_actions(
    State(s): State<AppState>,
    q: Result<Query<ActionsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    if let Some(st) = &q.state
        && !matches!(st.as_str(), "queued" | "running" | "done" | "failed" | "skipped")
    {
        return Err(ApiError::invalid(format!(
            "state '{st}': use queued, running, done, failed or skipped"
        )));
    }
    Ok(Json(json!({ "actions": s.alerts.actions_list(q.state.as_deref(), 500).await? })))
}
