//! Errors of experiment tracking, each with its error code. Messages follow MLflow's wording
//! where its clients or tests match on them.

use slipway_core::ErrorCode;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("No Experiment with id={id} exists")]
    ExperimentNotFound { id: String },
    #[error("Could not find experiment with name '{name}'")]
    ExperimentNameNotFound { name: String },
    #[error("Experiment(name={name}) already exists. Error: experiment names must be unique")]
    ExperimentExists { name: String },
    #[error("Run '{run_id}' not found")]
    RunNotFound { run_id: String },
    #[error("The run {run_id} must be in the 'active' state. Current state is deleted.")]
    RunNotActive { run_id: String },
    #[error("The experiment {id} must be in the 'active' state. Current state is deleted.")]
    ExperimentNotActive { id: String },
    #[error(
        "Changing param values is not allowed. Param with key='{key}' was already logged with \
         value='{old}' for run ID='{run_id}'. Attempted logging new value '{new}'."
    )]
    ParamChanged { run_id: String, key: String, old: String, new: String },
    #[error("Logged model with ID '{model_id}' not found")]
    LoggedModelNotFound { model_id: String },
    #[error("No such artifact: '{path}'")]
    ArtifactNotFound { path: String },
    #[error("{0}")]
    Invalid(String),
    /// Stored data that cannot be read back: a bug or a damaged store, never the client's fault.
    #[error("corrupt tracking data: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Core(#[from] slipway_core::Error),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::ExperimentNotFound { .. }
            | Error::ExperimentNameNotFound { .. }
            | Error::RunNotFound { .. }
            | Error::ArtifactNotFound { .. }
            | Error::LoggedModelNotFound { .. } => ErrorCode::ResourceDoesNotExist,
            Error::ExperimentExists { .. } => ErrorCode::ResourceAlreadyExists,
            Error::RunNotActive { .. }
            | Error::ExperimentNotActive { .. }
            | Error::ParamChanged { .. }
            | Error::Invalid(_) => ErrorCode::InvalidParameterValue,
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
