//! What the server is: its version and its OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

#[derive(Serialize, ToSchema)]
pub(crate) struct VersionView {
    /// Slipway's version.
    version: &'static str,
    /// `sqlite` or `postgres`.
    metadata_store: &'static str,
    /// Where blobs are kept: a folder or `s3://bucket/prefix`.
    blob_store: String,
    /// True when the server requires a bearer token.
    auth_required: bool,
}

/// The server's version and how it is set up.
#[utoipa::path(get, path = "/api/v1/version", tag = "system", responses((status = 200, body = VersionView)))]
pub(crate) async fn version(State(state): State<AppState>) -> Json<VersionView> {
    Json(VersionView {
        version: crate::VERSION,
        metadata_store: state.db.backend().as_str(),
        blob_store: state.blobs.location().to_string(),
        auth_required: state.auth_token.is_some(),
    })
}

/// The OpenAPI 3.1 document of the native API.
pub(crate) async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::document())
}
