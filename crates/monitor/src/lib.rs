//! Monitoring: whether the data a model sees in production still looks like the data it learnt
//! from. [`drift`] compares two samples column by column with the tests Evidently chooses by
//! default (and computes them as SciPy does), [`stats`] holds the statistics; [`gauges`] keeps the
//! numbers a deployment pushes about itself; [`lineage`] finds a served model's training data.

pub mod alerts;
pub mod drift;
pub mod gauges;
pub mod lineage;
pub mod monitors;
pub mod stats;
pub mod table;
