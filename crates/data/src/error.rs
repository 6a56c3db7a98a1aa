//! Errors of the data stage, each with its error code.

use slipway_core::ErrorCode;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no dataset named '{name}'")]
    DatasetNotFound { name: String },
    #[error("dataset '{name}' has no version {version}")]
    VersionNotFound { name: String, version: String },
    #[error("dataset '{name}' already exists")]
    DatasetExists { name: String },
    #[error("{0}")]
    Invalid(String),
    /// Items whose content is not in the blob store: the version is refused.
    #[error("{count} item(s) have no content in the blob store, e.g. '{example}'")]
    MissingContent { count: usize, example: String },
    /// Stored data that cannot be read back: a bug or a damaged store.
    #[error("corrupt dataset data: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Core(#[from] slipway_core::Error),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::DatasetNotFound { .. } | Error::VersionNotFound { .. } => {
                ErrorCode::ResourceDoesNotExist
            }
            Error::DatasetExists { .. } => ErrorCode::ResourceAlreadyExists,
            Error::Invalid(_) | Error::MissingContent { .. } => ErrorCode::InvalidParameterValue,
            Error::Corrupt(_) => ErrorCode::InternalError,
            Error::Core(e) => e.code(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid(message.into())
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        Error::Core(e.into())
    }
}
