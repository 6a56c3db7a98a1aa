//! One error type for every handler: a code from `slipway_core`'s table, its HTTP status, and a
//! JSON body `{"error_code": …, "message": …}`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use slipway_core::ErrorCode;

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: without_type_names(message.into()) }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidParameterValue, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::ResourceDoesNotExist, message)
    }
}

/// serde's "expected struct CreateStudy with 13 elements" names a Rust type the client never
/// sees: it says "expected a JSON object" instead.
fn without_type_names(message: String) -> String {
    const MARK: &str = "expected struct ";
    let Some(at) = message.find(MARK) else { return message };
    let rest = &message[at + MARK.len()..];
    let name_len = rest.find(|c: char| !c.is_alphanumeric() && c != '_').unwrap_or(rest.len());
    let mut rest = &rest[name_len..];
    if let Some(after) = rest.strip_prefix(" with ") {
        // " with 13 elements" (or "1 element").
        let digits = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
        if digits > 0 {
            let tail = &after[digits..];
            if let Some(t) =
                tail.strip_prefix(" elements").or_else(|| tail.strip_prefix(" element"))
            {
                rest = t;
            }
        }
    }
    format!("{}expected a JSON object{rest}", &message[..at])
}

impl From<slipway_core::Error> for ApiError {
    fn from(e: slipway_core::Error) -> ApiError {
        let code = e.code();
        if code.http_status() >= 500 {
            tracing::error!(target: "server::error", error = %e, "request failed");
        }
        ApiError { code, message: e.to_string() }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        let code = match r {
            JsonRejection::MissingJsonContentType(_) => ErrorCode::BadRequest,
            JsonRejection::BytesRejection(_) => ErrorCode::BadRequest,
            _ => ErrorCode::MalformedRequest,
        };
        ApiError::new(code, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::invalid(r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::invalid(r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({ "error_code": self.code.as_str(), "message": self.message });
        let mut response = (status, axum::Json(body)).into_response();
        if self.code == ErrorCode::TemporarilyUnavailable {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.code == ErrorCode::Unauthenticated {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"slipway\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::without_type_names;

    #[test]
    fn a_rust_type_name_is_not_shown_to_clients() {
        assert_eq!(
            without_type_names(
                "Failed to deserialize the JSON body into the target type: invalid type: sequence, \
                 expected struct CreateStudy with 13 elements at line 1 column 0"
                    .into()
            ),
            "Failed to deserialize the JSON body into the target type: invalid type: sequence, \
             expected a JSON object at line 1 column 0"
        );
        assert_eq!(
            without_type_names("invalid type: string \"x\", expected struct Ask".into()),
            "invalid type: string \"x\", expected a JSON object"
        );
        assert_eq!(without_type_names("name: missing".into()), "name: missing");
    }
}
