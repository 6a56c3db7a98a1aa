//! Slipway's HTTP server: every wire format lives here and nowhere else.
//!
//! [`router`] builds the axum application over an [`AppState`] (the metadata store, the blob
//! store, the job queue). Every route passes through one auth layer (`auth`), one metrics and
//! tracing layer (`metrics`), and answers errors as JSON `{"error_code", "message"}` through
//! [`ApiError`]. Handlers are thin: extract, parse, call one stage function, map to a view.
//!
//! This crate knows HTTP, JSON shapes, Prometheus text and the web UI's assets; it holds no
//! domain logic and writes no SQL.

mod auth;
mod error;
mod input;
mod metrics;
mod openapi;
mod routes;
mod ui;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use slipway_core::jobs::Queue;
use slipway_core::{BlobStore, Db};
use tokio::net::TcpListener;

pub use error::ApiError;
pub use metrics::Metrics;

/// The lifecycle stages a server serves.
pub struct Stages {
    pub tracking: track::Tracking,
    pub data: slipway_data::Data,
    pub registry: registry::Registry,
    pub serving: serve::Serving,
    pub gauges: monitor::gauges::Gauges,
    pub monitors: monitor::monitors::Monitors,
    pub alerts: monitor::alerts::Alerts,
    pub tuning: tune::Tuning,
}

/// Everything handlers share; cheap to clone (one reference count: axum clones the state for
/// every request and every layer, so it must not copy the stores' handles each time).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub db: Db,
    pub blobs: BlobStore,
    pub queue: Queue,
    pub tracking: track::Tracking,
    pub artifacts: track::Artifacts,
    pub data: slipway_data::Data,
    pub registry: registry::Registry,
    pub serving: serve::Serving,
    pub gauges: monitor::gauges::Gauges,
    pub monitors: monitor::monitors::Monitors,
    pub alerts: monitor::alerts::Alerts,
    pub tuning: tune::Tuning,
    /// The endpoint `/invocations` serves (`slipway serve --endpoint`).
    pub(crate) default_endpoint: Option<Arc<str>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) auth_token: Option<Arc<str>>,
    pub(crate) started_at: SystemTime,
    /// Job kinds clients may submit through `POST /api/v1/jobs`.
    pub(crate) job_kinds: Arc<Vec<String>>,
}

impl AppState {
    /// `auth_token`: when set, every request but `/health` and the UI's static shell must carry
    /// `Authorization: Bearer <token>`.
    pub fn new(
        db: Db,
        blobs: BlobStore,
        queue: Queue,
        stages: Stages,
        auth_token: Option<String>,
    ) -> AppState {
        let Stages { tracking, data, registry, serving, gauges, monitors, alerts, tuning } = stages;
        AppState(Arc::new(Shared {
            data,
            registry,
            serving,
            gauges,
            monitors,
            alerts,
            tuning,
            default_endpoint: None,
            artifacts: track::Artifacts::new(db.clone(), blobs.clone()),
            db,
            blobs,
            queue,
            tracking,
            metrics: Arc::new(Metrics::default()),
            auth_token: auth_token.filter(|t| !t.is_empty()).map(Arc::from),
            started_at: SystemTime::now(),
            job_kinds: Arc::new(Vec::new()),
        }))
    }

    /// The shared part, to change while this is its only handle (while the state is built).
    fn shared_mut(&mut self) -> &mut Shared {
        Arc::get_mut(&mut self.0).expect("the state is configured before it is shared")
    }

    /// Serves `endpoint` at `/invocations`.
    pub fn with_default_endpoint(mut self, endpoint: Option<String>) -> AppState {
        self.shared_mut().default_endpoint = endpoint.map(Arc::from);
        self
    }

    /// Lets clients submit jobs of these kinds (those this binary's workers run).
    pub fn with_job_kinds(mut self, kinds: Vec<String>) -> AppState {
        self.shared_mut().job_kinds = Arc::new(kinds);
        self
    }
}

/// Slipway's version, as the server reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The whole application.
pub fn router(state: AppState) -> Router {
    routes::router(state)
}

/// Serving only (`slipway serve`): health, metrics, endpoints (read-only) and inference.
pub fn serving_router(state: AppState) -> Router {
    routes::serving_router(state)
}

/// The OpenAPI document of the native API, as served at `/api/openapi.json`.
pub fn openapi_json() -> String {
    openapi::document()
}

/// Why a listen address was refused.
#[derive(Debug)]
pub struct RefusedBind(pub String);

impl std::error::Error for RefusedBind {}

impl std::fmt::Display for RefusedBind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Refuses to listen beyond loopback without an auth token.
pub fn check_bind(host: &str, auth_token: Option<&str>) -> Result<(), RefusedBind> {
    let has_token = auth_token.is_some_and(|t| !t.is_empty());
    if has_token || is_loopback(host) {
        return Ok(());
    }
    Err(RefusedBind(format!(
        "refusing to listen on {host} without authentication: set --auth-token (or \
         SLIPWAY_AUTH_TOKEN), or listen on 127.0.0.1"
    )))
}

fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let trimmed = host.trim_start_matches('[').trim_end_matches(']');
    trimmed.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_binds_without_a_token() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"] {
            assert!(check_bind(host, None).is_ok(), "{host}");
        }
        for host in ["0.0.0.0", "::", "192.168.1.4", "example.internal"] {
            let err = check_bind(host, None).unwrap_err();
            assert!(err.0.contains("without authentication"), "{host}: {err}");
            assert!(check_bind(host, Some("")).is_err(), "{host} with an empty token");
            assert!(check_bind(host, Some("s3cret")).is_ok(), "{host} with a token");
        }
    }
}
