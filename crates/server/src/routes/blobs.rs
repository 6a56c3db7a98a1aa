//! `/api/v1/blobs`: content-addressed uploads for clients without blob-store credentials (the
//! Python client's `add_dataset`). A client asks which digests the store lacks, uploads those,
//! then names them in a version (`POST /api/v1/datasets/{name}/versions`).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use slipway_core::Digest;
use utoipa::ToSchema;

use crate::{ApiError, AppState};

/// At most this many digests per `missing` question.
const MAX_ASK: usize = 10_000;

#[derive(Deserialize, ToSchema)]
pub(crate) struct MissingRequest {
    /// BLAKE3 digests, 64 hex characters each (at most 10,000).
    digests: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MissingView {
    /// The asked digests the store does not hold, in the order asked.
    missing: Vec<String>,
}

/// Which of these contents the blob store lacks.
#[utoipa::path(post, path = "/api/v1/blobs/missing", tag = "data", request_body = MissingRequest,
    responses((status = 200, body = MissingView)))]
pub(crate) async fn missing(
    State(s): State<AppState>,
    body: Result<Json<MissingRequest>, JsonRejection>,
) -> Result<Json<MissingView>, ApiError> {
    let digests = body?.0.digests;
    if digests.len() > MAX_ASK {
        return Err(ApiError::invalid(format!("ask about at most {MAX_ASK} digests at a time")));
    }
    let parsed: Vec<Digest> =
        digests.iter().map(|d| d.parse::<Digest>()).collect::<Result<_, _>>()?;
    let blobs = s.blobs.clone();
    let missing: Vec<String> = futures::stream::iter(parsed)
        .map(|d| {
            let blobs = blobs.clone();
            async move {
                Ok::<_, slipway_core::Error>(blobs.size(&d).await?.is_none().then(|| d.to_hex()))
            }
        })
        .buffered(32)
        .try_filter_map(|m| async move { Ok(m) })
        .try_collect()
        .await?;
    Ok(Json(MissingView { missing }))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct BlobView {
    /// The content's BLAKE3 digest.
    digest: String,
    size: u64,
    /// True when the store held it already.
    existed: bool,
}

/// Stores the request body (streamed, any size) under its BLAKE3 digest.
#[utoipa::path(post, path = "/api/v1/blobs", tag = "data",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = BlobView)))]
pub(crate) async fn put(
    State(s): State<AppState>,
    body: Body,
) -> Result<(StatusCode, Json<BlobView>), ApiError> {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let put = s.blobs.put_stream(stream).await?;
    let status = if put.existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((
        status,
        Json(BlobView { digest: put.digest.to_hex(), size: put.size, existed: put.existed }),
    ))
}
