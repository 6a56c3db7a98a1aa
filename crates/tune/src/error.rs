//! Errors of tuning, each naming what was wrong (the field of a study file, the trial, the
//! parameter).

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The request or study file is wrong; the message names the field.
    #[error("{0}")]
    Invalid(String),
    #[error("trial {number} does not exist")]
    TrialNotFound { number: u64 },
    #[error("trial {number} is {state} and can no longer change")]
    TrialFinished { number: u64, state: &'static str },
}

impl Error {
    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid(message.into())
    }
}
