//! Integration tests of `slipway_core` on real stores: SQLite and PostgreSQL, a local folder and
//! an S3-compatible server. See `slipway_core::testing` for what each backend needs.

mod blobs;
mod db;
mod jobs;
mod paths;
