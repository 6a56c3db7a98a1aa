//! Errors of the model registry, each with its error code. Messages follow MLflow's wording
//! where its clients or tests match on them.

use slipway_core::ErrorCode;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Registered Model with name={name} not found")]
    ModelNotFound { name: String },
    #[error("Registered Model (name={name}) already exists.")]
    ModelExists { name: String },
    #[error("Model Version (name={name}, version={version}) not found")]
    VersionNotFound { name: String, version: String },
    #[error("Registered model alias {alias} not found.")]
    AliasNotFound { name: String, alias: String },
    /// A `source` that does not name artifacts Slipway stores.
    #[error(
        "Invalid model version source: '{uri}'. {reason}. A source must name artifacts Slipway \
         stores: models:/<model_id>, runs:/<run_id>/<path> or mlflow-artifacts:/<path>"
    )]
    InvalidSource { uri: String, reason: String },
    /// An ONNX model Slipway cannot load or run, refused at registration.
    #[error("model {name} cannot be served: {reason}")]
    Unservable { name: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    /// Stored data that cannot be read back: a bug or a damaged store, never the client's fault.
    #[error("corrupt registry data: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Track(#[from] track::Error),
    #[error(transparent)]
    Core(#[from] slipway_core::Error),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::ModelNotFound { .. } | Error::VersionNotFound { .. } => {
                ErrorCode::ResourceDoesNotExist
            }
            Error::ModelExists { .. } => ErrorCode::ResourceAlreadyExists,
            // MLflow answers an unknown alias with 400, not 404.
            Error::AliasNotFound { .. }
            | Error::InvalidSource { .. }
            | Error::Unservable { .. }
            | Error::Invalid(_) => ErrorCode::InvalidParameterValue,
            Error::Corrupt(_) => ErrorCode::InternalError,
            Error::Track(e) => e.code(),
            Error::Core(e) => e.code(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid(message.into())
    }

    pub(crate) fn source(source: &str, reason: impl Into<String>) -> Error {
        Error::InvalidSource { uri: source.to_string(), reason: reason.into() }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        Error::Core(e.into())
    }
}
