//! Slipway's foundation: what every lifecycle stage builds on.
//!
//! - [`Db`]: one handle over the metadata store, SQLite (embedded default) or PostgreSQL, chosen
//!   by URL, with versioned [`Migration`]s that each stage owns.
//! - [`BlobStore`]: content-addressed (BLAKE3) blobs on a local folder or S3-compatible storage,
//!   streamed, atomic, deduplicated and verified on read.
//! - [`SafePath`]: a user-supplied relative path that can never escape its root.
//! - [`jobs`]: the durable job queue (leases, heartbeats, retries, cancel) and the worker loop
//!   that runs all long work.
//! - [`background`]: CPU work at a lower priority than the request path.
//! - [`ErrorCode`]: the one table of error codes and their HTTP statuses.
//!
//! This crate knows no lifecycle stage, no HTTP and no command line.

pub mod background;
mod blob;
mod db;
mod error;
mod ids;
pub mod jobs;
pub mod outbound;
mod pack;
mod safe_path;
pub mod special;
mod sql;
#[cfg(feature = "testing")]
pub mod testing;

pub use blob::{BlobReader, BlobStore, BlobStoreOptions, Bulk, Digest, PutOutcome, S3Options};
pub use db::{Backend, Db, DbOptions, Migration, redact_url};
pub use error::{Error, ErrorCode, Result, is_unique_violation};
pub use ids::{new_id, now_ms};
pub use safe_path::{SafePath, SafeRoot};
pub use sql::{Sql, SqlValue};

/// Installs the process-wide TLS crypto provider (ring) that outbound HTTPS (S3) uses.
///
/// Idempotent; the binary calls it at start, and the blob store calls it before it connects.
pub fn init_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
