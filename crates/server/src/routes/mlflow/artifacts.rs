//! The artifact proxy, `/api/2.0/mlflow-artifacts/artifacts/…`: uploads, downloads, listings
//! and deletes, backed by the blob store. Every path goes through `SafePath`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde_json::{Value, json};

use super::empty;
use crate::{ApiError, AppState};

pub(crate) async fn put(
    State(s): State<AppState>,
    Path(path): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    s.artifacts.put(&path, stream).await?;
    Ok(empty())
}

pub(crate) async fn get(
    State(s): State<AppState>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let Some(file) = s.artifacts.file(&path).await? else {
        return Err(track::Error::ArtifactNotFound { path }.into());
    };
    let reader = s.artifacts.open(&file).await?;
    let name = file.path.file_name().to_string();
    let mut response = Body::from_stream(reader).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&name)));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", file.digest)) {
        headers.insert(header::ETAG, etag);
    }
    let disposition = format!("attachment; filename=\"{}\"", name.replace(['"', '\\'], "_"));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(response)
}

pub(crate) async fn list(
    State(s): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let dir = q.iter().find(|(k, _)| k == "path").map(|(_, v)| v.as_str()).unwrap_or("");
    let entries = s.artifacts.list(dir).await?;
    if entries.is_empty() {
        return Ok(empty());
    }
    let files: Vec<Value> = entries
        .iter()
        .map(|e| match e.size {
            Some(size) if !e.is_dir => json!({"path": e.path, "is_dir": false, "file_size": size}),
            _ => json!({"path": e.path, "is_dir": true}),
        })
        .collect();
    Ok(Json(json!({ "files": files })))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Path(path): Path<String>,
) -> Result<Json<Value>, ApiError> {
    s.artifacts.delete(&path).await?;
    Ok(empty())
}

/// The content type a download is served with, by extension. Anything that a browser could run
/// (HTML, SVG, JS) is served as text or bytes, never as itself.
pub(crate) fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" | "md" | "yaml" | "yml" | "py" | "toml" | "html" | "htm" | "svg" | "js" => {
            "text/plain; charset=utf-8"
        }
        "json" => "application/json",
        "csv" => "text/csv; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "parquet" => "application/vnd.apache.parquet",
        _ if name == "MLmodel" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
