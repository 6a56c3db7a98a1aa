//! Errors of tuning, each naming what was wrong (the field of a study file, the trial, the
//! parameter) and carrying its error code.

use slipway_core::ErrorCode;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request or study file is wrong; the message names the field.
    #[error("{0}")]
    Invalid(String),
    #[error("study '{name}' does not exist")]
    StudyNotFound { name: String },
    #[error("study '{name}' already exists")]
    StudyExists { name: String },
    #[error("trial {number} does not exist")]
    TrialNotFound { number: u64 },
    #[error(
        "trial {number} is not the trial of run {run_id} (was the study deleted and made again?)"
    )]
    TrialOfOtherRun { number: u64, run_id: String },
    #[error("trial {number} is {state} and can no longer change")]
    TrialFinished { number: u64, state: &'static str },
    #[error(
        "study '{name}' has {running} running trial{}: stop its workers (or let their leases run out), or delete it with force (CLI --force, HTTP force=true)",
        if *running == 1 { "" } else { "s" }
    )]
    StudyBusy { name: String, running: usize },
    /// Stored data that cannot be read back: a bug or a damaged store, never the client's fault.
    #[error("corrupt tuning data: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Track(#[from] track::Error),
    #[error(transparent)]
    Core(#[from] slipway_core::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        Error::Core(e.into())
    }
}

impl Error {
    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid(message.into())
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Invalid(_) => ErrorCode::InvalidParameterValue,
            Error::StudyNotFound { .. }
            | Error::TrialNotFound { .. }
            | Error::TrialOfOtherRun { .. } => ErrorCode::ResourceDoesNotExist,
            Error::StudyExists { .. } => ErrorCode::ResourceAlreadyExists,
            Error::TrialFinished { .. } | Error::StudyBusy { .. } => ErrorCode::Conflict,
            Error::Corrupt(_) => ErrorCode::InternalError,
            Error::Track(e) => e.code(),
            Error::Core(e) => e.code(),
        }
    }
}
