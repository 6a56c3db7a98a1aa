//! One module per command.

pub(crate) mod alerts;
pub(crate) mod blobs;
pub(crate) mod data;
pub(crate) mod doctor;
pub(crate) mod drift;
pub(crate) mod drift_html;
pub(crate) mod endpoints;
pub(crate) mod example;
pub(crate) mod experiments;
pub(crate) mod gauges;
pub(crate) mod jobs;
pub(crate) mod lineage;
pub(crate) mod loadtest;
pub(crate) mod models;
pub(crate) mod monitor;
pub(crate) mod predict;
pub(crate) mod profile;
pub(crate) mod rollout;
pub(crate) mod run;
pub(crate) mod runs;
pub(crate) mod serve;
pub(crate) mod server;
pub(crate) mod tune;
pub(crate) mod tune_trial;
pub(crate) mod version;
pub(crate) mod worker;

use anyhow::Context;
use slipway_core::jobs::{Handlers, Queue};
use slipway_core::{BlobStore, Db};

use crate::config::Settings;

/// The stores a server or worker works on.
pub(crate) struct Stores {
    pub(crate) db: Db,
    pub(crate) blobs: BlobStore,
    pub(crate) queue: Queue,
    pub(crate) tracking: track::Tracking,
    pub(crate) data: slipway_data::Data,
    pub(crate) registry: registry::Registry,
    pub(crate) serving: ::serve::Serving,
    pub(crate) gauges: ::monitor::gauges::Gauges,
    pub(crate) monitors: ::monitor::monitors::Monitors,
    pub(crate) alerts: ::monitor::alerts::Alerts,
    pub(crate) tuning: ::tune::Tuning,
}

impl Stores {
    /// The HTTP state over these stores (handles are cheap clones).
    pub(crate) fn app_state(&self, auth_token: Option<String>) -> ::server::AppState {
        ::server::AppState::new(
            self.db.clone(),
            self.blobs.clone(),
            self.queue.clone(),
            ::server::Stages {
                tracking: self.tracking.clone(),
                data: self.data.clone(),
                registry: self.registry.clone(),
                serving: self.serving.clone(),
                gauges: self.gauges.clone(),
                monitors: self.monitors.clone(),
                alerts: self.alerts.clone(),
                tuning: self.tuning.clone(),
            },
            auth_token,
        )
    }
}

/// Binds `host:port` and prints `slipway listening on http://ADDR` as the first line of stdout,
/// so that `--port 0` is usable by scripts and tests.
pub(crate) async fn listen(
    host: &str,
    port: u16,
) -> anyhow::Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
    use std::io::Write;
    let bind_host = host.trim_start_matches('[').trim_end_matches(']');
    let listener = tokio::net::TcpListener::bind((bind_host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))?;
    let addr = listener.local_addr()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "slipway listening on http://{addr}")?;
    out.flush()?;
    Ok((listener, addr))
}

/// Opens the metadata store (bringing every schema up to date) and the blob store.
pub(crate) async fn open_stores(settings: &Settings) -> anyhow::Result<Stores> {
    let db = Db::connect(&settings.db_url, &settings.db).await.with_context(|| {
        format!("opening the metadata store {}", slipway_core::redact_url(&settings.db_url))
    })?;
    let queue = Queue::open(db.clone(), settings.queue.clone())
        .await
        .context("preparing the metadata store")?;
    let tracking =
        track::Tracking::open(db.clone()).await.context("preparing the tracking schema")?;
    let blobs = BlobStore::open(&settings.artifacts, settings.blobs.clone())
        .with_context(|| format!("opening the blob store {}", settings.artifacts))?;
    let data = slipway_data::Data::open(db.clone(), blobs.clone())
        .await
        .context("preparing the data schema")?;
    // The serving runtime decides at registration whether an ONNX model can be served.
    let registry = registry::Registry::open(db.clone(), blobs.clone(), tracking.clone())
        .await
        .context("preparing the registry schema")?
        .with_check(std::sync::Arc::new(::serve::Check));
    // The prediction log names a model's inputs after its training table's columns.
    let namer: ::serve::FeatureNamer = {
        let (registry, data) = (registry.clone(), data.clone());
        std::sync::Arc::new(move |version, width| {
            let (registry, data) = (registry.clone(), data.clone());
            Box::pin(async move {
                ::monitor::lineage::model_input_names(&registry, &data, version, width).await
            })
        })
    };
    let serving = ::serve::Serving::open(db.clone(), registry.clone())
        .await
        .context("preparing the serving schema")?
        .with_feature_namer(namer);
    let gauges = ::monitor::gauges::Gauges::open(db.clone())
        .await
        .context("preparing the monitoring schema")?;
    let monitors = ::monitor::monitors::Monitors::open(
        db.clone(),
        serving.clone(),
        registry.clone(),
        data.clone(),
    )
    .await
    .context("preparing the monitors' schema")?;
    let alerts = ::monitor::alerts::Alerts::open(db.clone(), monitors.clone(), gauges.clone())
        .await
        .context("preparing the alerts' schema")?;
    let tuning = ::tune::Tuning::open(db.clone(), tracking.clone())
        .await
        .context("preparing the tuning schema")?;
    Ok(Stores {
        db,
        blobs,
        queue,
        tracking,
        data,
        registry,
        serving,
        gauges,
        monitors,
        alerts,
        tuning,
    })
}

/// The job kinds this binary can run, on `stores`; tuning trials where `trials` says which API
/// their objectives log to.
pub(crate) fn handlers(
    stores: &Stores,
    trials: Option<std::sync::Arc<tune_trial::TrialRunner>>,
) -> Handlers {
    let mut handlers = Handlers::new();
    slipway_core::jobs::register_diagnostics(&mut handlers);
    let stages = std::sync::Arc::new(predict::Stages {
        registry: stores.registry.clone(),
        data: stores.data.clone(),
    });
    handlers.register("predict", move |ctx| predict::job(stages.clone(), ctx));
    if let Some(runner) = trials {
        handlers
            .register(::tune::trial_jobs::KIND, move |ctx| tune_trial::job(runner.clone(), ctx));
    }
    handlers
}

/// Serves the API on these stores on a loopback port, with a token of its own, for the
/// objectives a worker runs to log to (they reach it as `MLFLOW_TRACKING_URI`).
pub(crate) async fn trial_api(
    stores: &Stores,
) -> anyhow::Result<std::sync::Arc<tune_trial::TrialRunner>> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("opening a loopback port for the trials' API")?;
    let addr = listener.local_addr()?;
    let token = slipway_core::new_id();
    let app = ::server::router(stores.app_state(Some(token.clone())));
    tokio::spawn(async move {
        if let Err(e) = ::server::serve(listener, app, std::future::pending()).await {
            tracing::warn!(target: "tune::trial", error = %e, "the trials' API stopped");
        }
    });
    Ok(std::sync::Arc::new(tune_trial::TrialRunner {
        tuning: stores.tuning.clone(),
        artifacts: track::Artifacts::new(stores.db.clone(), stores.blobs.clone()),
        api_url: format!("http://{addr}"),
        token: Some(token),
    }))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
