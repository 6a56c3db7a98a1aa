//! Serving: ONNX models run with tract and Slipway's own ONNX-ML operators (`ops`, `tree`),
//! loaded from the registry's pinned bytes, optimised once and shared across requests.
//!
//! [`Model`] is a loaded model; [`Check`] is the registry's [`registry::ModelCheck`], so a
//! model that cannot be served is refused at registration with the operator's name.
//!
//! [`batch`] streams a table through a model for batch prediction.
//!
//! This crate knows nothing of HTTP or wire formats, and never writes registry tables.

pub mod batch;
mod endpoints;
mod ops;
mod runtime;
pub mod tree;

pub use endpoints::{
    BATCH_BUCKETS, Batching, Endpoint, Error, Histogram, LATENCY_BUCKETS_S, Live, MIGRATIONS,
    Serving, Stats,
};
pub use ops::Labels;
pub use runtime::{ElemType, InputSpec, Model, Output, RunError};
pub use tract_onnx::prelude::{Datum, DatumType, TValue, Tensor, tvec};

/// The registry's check: a model is servable when it loads.
#[derive(Debug, Default)]
pub struct Check;

impl registry::ModelCheck for Check {
    fn check(&self, onnx: &[u8]) -> Result<(), String> {
        Model::load(onnx).map(|_| ())
    }
}
