//! `/api/v1/rollouts`: canary rollouts of an endpoint's candidate version. A rollout is started
//! from its file (TOML, as a team keeps it in git) or the same fields as JSON; its state and
//! timeline are read back; `promote`, `abort`, `pause` and `resume` act on it by hand.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use serde::Deserialize;
use serde_json::{Value, json};
use serve::{Action, Rollout, RolloutSpec};

use crate::{ApiError, AppState};

fn rollout_view(r: &Rollout) -> Value {
    let events: Vec<Value> = r
        .events
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq, "at_ms": e.at_ms, "kind": e.kind, "step": e.step,
                "weight": e.weight, "reason": e.reason, "figures": e.figures,
            })
        })
        .collect();
    json!({
        "id": r.id,
        "endpoint": r.spec.endpoint,
        "candidate": r.spec.candidate,
        "baseline": r.baseline,
        "state": r.state.as_str(),
        "step": r.step,
        "steps": r.spec.steps,
        "weight": r.weight(),
        "step_started_ms": r.step_started_ms,
        "reason": r.reason,
        "created_ms": r.created_ms,
        "updated_ms": r.updated_ms,
        "driver": r.driver,
        "spec": serde_json::to_value(&r.spec).unwrap_or(Value::Null),
        "events": events,
    })
}

/// `POST /api/v1/rollouts`: a rollout file (`application/toml`, `application/yaml`, or
/// `text/plain` told apart by its text) or JSON.
#[utoipa::path(post, path = "/api/v1/rollouts", tag = "serving",
    request_body(content = String, content_type = "application/toml",
        description = "a rollout file (TOML, YAML as application/yaml, either as text/plain) or its fields as JSON"),
    responses((status = 200, description = "the rollout, at its first step"),
              (status = 400, description = "a bad file, naming the field; nothing changed")))]
pub(crate) async fn start_rollout(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let spec = if content_type.starts_with("application/json") {
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("the body is not JSON: {e}")))?;
        RolloutSpec::from_json(value)?
    } else if content_type.starts_with("application/toml")
        || content_type.contains("yaml")
        || content_type.starts_with("text/")
    {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::invalid("the rollout file is not UTF-8 text"))?;
        if content_type.starts_with("application/toml") {
            RolloutSpec::from_toml(text)?
        } else if content_type.contains("yaml") {
            RolloutSpec::from_yaml(text)?
        } else {
            RolloutSpec::from_file_text(text, None)?
        }
    } else {
        return Err(ApiError::invalid(
            "send the rollout file as application/toml or application/yaml, or its fields as \
             application/json",
        ));
    };
    let r = s.serving.start_rollout(spec).await?;
    Ok(Json(rollout_view(&r)))
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    endpoint: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/rollouts", tag = "serving",
    params(("endpoint" = Option<String>, Query)),
    responses((status = 200, description = "{rollouts: [...]}, newest first")))]
pub(crate) async fn list_rollouts(
    State(s): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query?.0;
    let list = s.serving.rollouts(q.endpoint.as_deref().filter(|e| !e.is_empty())).await?;
    let views: Vec<Value> = list.iter().map(rollout_view).collect();
    Ok(Json(json!({ "rollouts": views })))
}

#[utoipa::path(get, path = "/api/v1/rollouts/{id}", tag = "serving", params(("id" = String, Path)),
    responses((status = 200, description = "the rollout with its events"), (status = 404, description = "no such rollout")))]
pub(crate) async fn get_rollout(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(rollout_view(&s.serving.rollout(&id).await?)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActBody {
    #[serde(default)]
    reason: String,
}

/// `POST /api/v1/rollouts/{id}/{action}` with an optional `{"reason": "..."}`.
#[utoipa::path(post, path = "/api/v1/rollouts/{id}/{action}", tag = "serving",
    params(("id" = String, Path), ("action" = String, Path, description = "promote, abort, pause or resume")),
    request_body(content = String, content_type = "application/json", description = "optional {reason}"),
    responses((status = 200, description = "the rollout after the action"),
              (status = 400, description = "the action does not apply")))]
pub(crate) async fn act(
    State(s): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let action = Action::parse(&action)?;
    let req: ActBody = if body.is_empty() {
        ActBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("expected {{\"reason\": \"...\"}}: {e}")))?
    };
    let r = s.serving.act_on_rollout(&id, action, &req.reason).await?;
    Ok(Json(rollout_view(&r)))
}
