//! What the API's routes (native and MLflow) put every request and refusal through: a NUL
//! character is refused before any handler sees it (PostgreSQL cannot store one in text, SQLite
//! would, so both stores refuse it alike), and a refusal axum makes itself (a path segment that
//! is not a number, a body that cannot be read) is answered as the API's JSON error, not text.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use slipway_core::ErrorCode;

use crate::ApiError;

/// Why a request was refused: it holds a NUL character.
const NUL_REFUSED: &str = "a NUL character (\\u0000 or %00) cannot be stored in a name or value";

/// Refuses a URL holding `%00` at once, and a JSON body holding the escape `\u0000` (a raw NUL
/// is not JSON) as its handler reads it: the body is scanned as it streams, so each route's own
/// size limit still holds.
pub(crate) async fn refuse_nul(req: Request, next: Next) -> Response {
    let url = req.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or_default();
    if url.contains("%00") {
        return ApiError::invalid(format!("the URL: {NUL_REFUSED}")).into_response();
    }
    // An artifact is a file, not a name or value, whatever its type: a client sends a `.json`
    // one as application/json, and it may hold any text.
    if !is_json(req.headers()) || req.uri().path().contains("/mlflow-artifacts/") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let mut scan = NulScan::default();
    let found = Arc::new(AtomicBool::new(false));
    let seen = found.clone();
    let body = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(axum::BoxError::from)?;
        if scan.feed(&chunk) {
            seen.store(true, Ordering::Relaxed);
            return Err(axum::BoxError::from(NUL_REFUSED));
        }
        Ok(chunk)
    });
    let response = next.run(Request::from_parts(parts, Body::from_stream(body))).await;
    if found.load(Ordering::Relaxed) {
        // The handler failed to read its body: say why, in the API's words.
        return ApiError::invalid(format!("the request body: {NUL_REFUSED}")).into_response();
    }
    response
}

/// A body typed as JSON (others are files or tables, not names and values).
fn is_json(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.starts_with("application/json") || ct.contains("+json")
    })
}

/// Finds the JSON escape `\u0000` across chunks: a backslash escapes the next byte unless it was
/// itself escaped, so `\\u0000` (a backslash, then the text `u0000`) is not one.
#[derive(Default)]
struct NulScan {
    /// The next byte is escaped (an odd run of backslashes precedes it).
    escaped: bool,
    /// Bytes of `u0000` matched after an escaping backslash (0 when not matching).
    matched: u8,
}

impl NulScan {
    /// Feeds the next bytes; true once `\u0000` was seen.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            if self.matched > 0 {
                if b == b'0' {
                    self.matched += 1;
                    if self.matched == 5 {
                        return true;
                    }
                    continue;
                }
                // Another \uXXXX: its digits escape nothing.
                self.matched = 0;
            }
            if self.escaped {
                self.escaped = false;
                if b == b'u' {
                    self.matched = 1;
                }
            } else if b == b'\\' {
                self.escaped = true;
            }
        }
        false
    }
}

/// Answers a refusal in text (axum's own: a path segment that is not a number, a body that
/// cannot be read) as the API's JSON error, with the same status.
pub(crate) async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10).await.unwrap_or_else(|_| Bytes::new());
    let message = String::from_utf8_lossy(&text).trim().to_string();
    let message = if message.is_empty() {
        status.canonical_reason().unwrap_or("refused").to_string()
    } else {
        message
    };
    let code = match status {
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
        StatusCode::FORBIDDEN => ErrorCode::PermissionDenied,
        StatusCode::NOT_FOUND => ErrorCode::ResourceDoesNotExist,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::CONFLICT => ErrorCode::Conflict,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::TemporarilyUnavailable,
        s if s.is_server_error() => ErrorCode::InternalError,
        _ => ErrorCode::BadRequest,
    };
    let mut out = ApiError::new(code, message).into_response();
    *out.status_mut() = status;
    // The refusal's other headers, every value of each (Vary, Set-Cookie), unless the JSON
    // error set its own (Retry-After, WWW-Authenticate).
    let own: Vec<header::HeaderName> = out.headers().keys().cloned().collect();
    for (name, value) in &parts.headers {
        if !own.contains(name) && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name, value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finds(chunks: &[&str]) -> bool {
        let mut scan = NulScan::default();
        chunks.iter().any(|c| scan.feed(c.as_bytes()))
    }

    #[test]
    fn a_nul_escape_is_found_across_chunks_and_an_escaped_backslash_is_not_one() {
        assert!(finds(&[r#"{"name": "x\u0000y"}"#]));
        assert!(finds(&[r#"{"name": "x\u00"#, r#"00y"}"#]));
        assert!(finds(&[r#"{"name": "x\"#, r#"u0000"}"#]));
        assert!(finds(&[r#"{"name": "\\\u0000"}"#]), "an escaped backslash, then the escape");
        assert!(!finds(&[r#"{"name": "x\\u0000y"}"#]), "a backslash, then text");
        assert!(!finds(&[r#"{"name": "x\\"#, r#"u0000y"}"#]));
        assert!(!finds(&[r#"{"name": "\u0001\u00e9 u0000 \n0000"}"#]));
        assert!(!finds(&[r#"{"name": "\u1000\u0100\u0010"}"#]));
    }
}
