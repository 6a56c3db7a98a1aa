//! The error codes every Slipway API speaks, their HTTP statuses, and the foundation's errors.

use std::fmt;

/// One code per kind of failure. The wire name (`as_str`) follows MLflow's codes so that MLflow
/// clients understand Slipway's errors; `http_status` is the one table that maps codes to statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    InvalidParameterValue,
    MalformedRequest,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    EndpointNotFound,
    MethodNotAllowed,
    Unauthenticated,
    PermissionDenied,
    Conflict,
    PayloadTooLarge,
    TemporarilyUnavailable,
    InternalError,
}

impl ErrorCode {
    /// The code as it appears in JSON error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            ErrorCode::MalformedRequest => "MALFORMED_REQUEST",
            ErrorCode::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            ErrorCode::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            ErrorCode::EndpointNotFound => "ENDPOINT_NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status this code is answered with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest
            | ErrorCode::InvalidParameterValue
            | ErrorCode::MalformedRequest
            | ErrorCode::ResourceAlreadyExists => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::ResourceDoesNotExist | ErrorCode::EndpointNotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::InternalError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the foundation: store, blobs, paths and jobs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("invalid database URL {url:?}: {reason}")]
    InvalidDatabaseUrl { url: String, reason: String },
    #[error("invalid blob store location {location:?}: {reason}")]
    InvalidBlobLocation { location: String, reason: String },
    #[error("invalid blob digest {digest:?}: expected 64 hex digits")]
    InvalidDigest { digest: String },
    #[error("blob {digest} does not exist")]
    BlobNotFound { digest: String },
    #[error("blob {digest} is corrupt: its content hashes to {actual}")]
    BlobCorrupt { digest: String, actual: String },
    #[error("job {id} does not exist")]
    JobNotFound { id: String },
    #[error("job {id} is no longer held by this worker (its lease expired or it was cancelled)")]
    LeaseLost { id: String },
    #[error("migration {component} v{version} ({name}): {reason}")]
    Migration { component: String, version: u32, name: String, reason: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("the metadata store is busy, try again")]
    StoreBusy,
    #[error("cannot connect to the metadata store {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("metadata store: {0}")]
    Db(sqlx::Error),
    #[error("blob store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

impl Error {
    /// The error code (and so the HTTP status) of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidPath { .. }
            | Error::InvalidDigest { .. }
            | Error::InvalidArgument(_)
            | Error::InvalidDatabaseUrl { .. }
            | Error::InvalidBlobLocation { .. } => ErrorCode::InvalidParameterValue,
            Error::BlobNotFound { .. } | Error::JobNotFound { .. } => {
                ErrorCode::ResourceDoesNotExist
            }
            Error::LeaseLost { .. } => ErrorCode::Conflict,
            Error::StoreBusy | Error::Unreachable { .. } => ErrorCode::TemporarilyUnavailable,
            Error::Db(e) if is_busy(e) => ErrorCode::TemporarilyUnavailable,
            Error::BlobCorrupt { .. }
            | Error::Migration { .. }
            | Error::Db(_)
            | Error::ObjectStore(_)
            | Error::Io { .. } => ErrorCode::InternalError,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        if is_busy(&e) {
            return Error::StoreBusy;
        }
        // PostgreSQL's "invalid byte sequence for encoding UTF8: 0x00": a NUL in a text value
        // (the server refuses those up front; this is for every other way in).
        if let sqlx::Error::Database(db) = &e
            && db.code().as_deref() == Some("22021")
        {
            return Error::InvalidArgument(
                "a NUL character (\\u0000) cannot be stored in a name or value".into(),
            );
        }
        Error::Db(e)
    }
}

/// Pool exhaustion and lock time-outs are transient: callers are told to retry (503).
fn is_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => {
            let msg = db.message();
            msg.contains("database is locked") || msg.contains("database table is locked")
        }
        _ => false,
    }
}

/// True when a database error is a unique-constraint violation, on either backend.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_a_status_of_its_class() {
        let all = [
            ErrorCode::BadRequest,
            ErrorCode::InvalidParameterValue,
            ErrorCode::MalformedRequest,
            ErrorCode::ResourceAlreadyExists,
            ErrorCode::ResourceDoesNotExist,
            ErrorCode::EndpointNotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::Unauthenticated,
            ErrorCode::PermissionDenied,
            ErrorCode::Conflict,
            ErrorCode::PayloadTooLarge,
            ErrorCode::TemporarilyUnavailable,
            ErrorCode::InternalError,
        ];
        let table: Vec<String> =
            all.iter().map(|c| format!("{} {}", c.http_status(), c.as_str())).collect();
        expect_test::expect![[r#"
            400 BAD_REQUEST
            400 INVALID_PARAMETER_VALUE
            400 MALFORMED_REQUEST
            400 RESOURCE_ALREADY_EXISTS
            404 RESOURCE_DOES_NOT_EXIST
            404 ENDPOINT_NOT_FOUND
            405 METHOD_NOT_ALLOWED
            401 UNAUTHENTICATED
            403 PERMISSION_DENIED
            409 CONFLICT
            413 PAYLOAD_TOO_LARGE
            503 TEMPORARILY_UNAVAILABLE
            500 INTERNAL_ERROR"#]]
        .assert_eq(&table.join("\n"));
    }
}
