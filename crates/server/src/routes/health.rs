//! Liveness (`/health`) and readiness (`/ready`: the metadata and blob stores answer).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok` while the process serves requests.
    status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready` or `unavailable`.
    status: &'static str,
    /// `ok`, or what went wrong, for `metadata_store` and `blob_store`.
    checks: Checks,
    /// This process's id: a rollout's `driver` names the process leading it.
    replica: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Checks {
    metadata_store: String,
    blob_store: String,
}

/// The process is up.
#[utoipa::path(get, path = "/health", tag = "system", responses((status = 200, body = Health)))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The process can serve: both stores answer. 503 (with `Retry-After`) otherwise.
#[utoipa::path(get, path = "/ready", tag = "system", responses(
    (status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let (db, blobs) = tokio::join!(state.db.ping(), state.blobs.check());
    let show = |r: slipway_core::Result<()>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    let ok = db.is_ok() && blobs.is_ok();
    let body = Readiness {
        status: if ok { "ready" } else { "unavailable" },
        checks: Checks { metadata_store: show(db), blob_store: show(blobs) },
        replica: state.serving.replica().to_string(),
    };
    if ok {
        return Json(body).into_response();
    }
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
