//! Serving: ONNX models run with tract and Slipway's own ONNX-ML operators (`ops`, `tree`),
//! loaded from the registry's pinned bytes, optimised once and shared across requests.
//!
//! [`Model`] is a loaded model; [`Check`] is the registry's [`registry::ModelCheck`], so a
//! model that cannot be served is refused at registration with the operator's name.
//!
//! [`Serving`] keeps endpoints: each a [`Traffic`] of variants (model versions or aliases with
//! weights, routed by [`split`]'s buckets, sticky by routing key) and an optional shadow.
//!
//! [`batch`] streams a table through a model for batch prediction.
//!
//! This crate knows nothing of HTTP or wire formats, and never writes registry tables.

pub mod abtest;
pub mod batch;
mod driver;
mod endpoints;
mod feedback;
mod ops;
pub mod outcomes;
pub mod predlog;
mod rollout;
mod runtime;
pub mod split;
mod traffic;
pub mod tree;

pub use driver::{StepCounts, Verdict, judge, run_background};
pub use endpoints::{
    BATCH_BUCKETS, Batching, Endpoint, Error, Histogram, LATENCY_BUCKETS_S, Live, MIGRATIONS,
    Served, Serving, Stats,
};
pub use feedback::{Scored, truth_text};
pub use ops::Labels;
pub use predlog::{FeatureNamer, LogSettings, LogStats, Segment, WindowProfile};
pub use rollout::{
    Action, Format as RolloutFormat, GATE_METRICS, Gate, Rollout, RolloutEvent, RolloutSpec,
    RolloutState, rollout_format,
};
pub use runtime::{ElemType, InputSpec, Model, Output, RunError};
pub use tract_onnx::prelude::{Datum, DatumType, TValue, Tensor, tvec};
pub use traffic::{DEFAULT_KEY_HEADER, Traffic, Variant, variant_name};

/// The registry's check: a model is servable when it loads.
#[derive(Debug, Default)]
pub struct Check;

impl registry::ModelCheck for Check {
    fn check(&self, onnx: &[u8]) -> Result<(), String> {
        Model::load(onnx).map(|_| ())
    }
}
