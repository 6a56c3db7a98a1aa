//! Hyperparameter tuning: studies, search spaces, samplers and pruners.
//!
//! A [`Study`] holds a configuration ([`StudyConfig`]: direction(s), [`SamplerConfig`],
//! [`PrunerConfig`], seed) and its trials; [`Study::ask`], [`Study::suggest`], [`Study::report`],
//! [`Study::should_prune`] and [`Study::tell`] are the trial life cycle. Samplers (random, grid,
//! TPE with Optuna 5's defaults) and pruners (percentile/median, successive halving, Hyperband)
//! decide from the history alone, and a trial's random stream comes from the study's seed and the
//! trial's number, so the same decisions come out on any replica or worker.
//!
//! [`Tuning`] keeps studies and trials in the metadata store (both backends), each trial a
//! tracked run under its study's parent run; [`StudySpec`] reads a study file; [`trial_jobs`] is
//! what the job queue holds of a study run from one.
//!
//! This crate knows nothing of HTTP, of wire formats, or of how an objective runs.

mod config;
mod error;
pub mod functions;
mod gp;
mod importance;
mod pareto;
mod parzen;
mod pruners;
mod rng;
mod samplers;
mod space;
mod spec;
mod store;
mod study;
pub mod trial_jobs;
mod truncnorm;
mod tuning;

pub use config::{
    Direction, PrunerConfig, SamplerConfig, StudyConfig, TpeOptions, objectives_from_json,
};
pub use error::{Error, Result};
pub use importance::{Importance, importance};
pub use rng::Rng;
pub use samplers::grid_size;
pub use space::Distribution;
pub use spec::{FileFormat, ParamSpec, StudySpec};
pub use study::{Key, PrunerState, Study, Trial, TrialState};
pub use tuning::{
    AskOptions, DeletedStudy, MIGRATIONS, NewStudy, STUDY_TAG, StudyInfo, TRIAL_STATE_TAG,
    TRIAL_TAG, TrialView, Tuning,
};
