//! `slipway serve`: serving only — the endpoints' inference routes, health and metrics — for
//! replicas behind a load balancer. Stateless: endpoints and models come from the shared stores,
//! and an alias moved anywhere is picked up within a second.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::Global;
use crate::config::StoreArgs;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    slipway serve --port 8080                         every endpoint, at /v2/models/NAME/infer\n  \
    slipway serve --endpoint falls --port 8080        also answer /invocations with falls\n  \
    SLIPWAY_AUTH_TOKEN=s3cret slipway serve --host 0.0.0.0 --db postgres://u:p@db/slipway \\\n      \
    --artifacts s3://bucket/slipway                 a replica on the shared stores")]
pub(crate) struct ServeArgs {
    /// The endpoint `/invocations` answers (MLflow's scoring-server route)
    #[arg(long, value_name = "NAME")]
    endpoint: Option<String>,
    /// Address to listen on; beyond loopback an auth token is required [default: 127.0.0.1]
    #[arg(long, env = "SLIPWAY_HOST")]
    host: Option<String>,
    /// Port to listen on; 0 picks a free one [default: 5001]
    #[arg(long, env = "SLIPWAY_SERVE_PORT")]
    port: Option<u16>,
    /// Require `Authorization: Bearer TOKEN` on every request
    #[arg(long, env = "SLIPWAY_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    #[command(flatten)]
    stores: StoreArgs,
}

pub(crate) async fn run(args: ServeArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    let settings = args.stores.resolve()?;
    let host = args.host.or(settings.file.host.clone()).unwrap_or_else(|| "127.0.0.1".into());
    let port = args.port.unwrap_or(5001);
    let token = args.auth_token.or(settings.file.auth_token.clone()).filter(|t| !t.is_empty());
    server::check_bind(&host, token.as_deref())?;
    crate::init_logging(settings.file.log.as_deref());

    let stores = super::open_stores(&settings).await?;
    if let Some(name) = &args.endpoint {
        // Refuse at start an endpoint that does not exist or cannot load, not at the first call.
        stores.serving.live(name).await.map_err(|e| anyhow::anyhow!("endpoint {name}: {e}"))?;
    }
    let (listener, addr) = super::listen(&host, port).await?;
    tracing::info!(
        target: "serve",
        %addr,
        metadata_store = stores.db.display_url(),
        blob_store = stores.blobs.location(),
        auth = token.is_some(),
        endpoint = args.endpoint.as_deref().unwrap_or("-"),
        "serving endpoints"
    );
    // Variant counts to the store each second, for the rollouts a server drives.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let background = tokio::spawn(::serve::run_background(
        stores.serving.clone(),
        false,
        std::time::Duration::from_secs(1),
        stop_rx,
    ));
    let state = stores.app_state(token).with_default_endpoint(args.endpoint);
    let app = server::serving_router(state);
    let shutdown = async move {
        super::shutdown_signal().await;
        tracing::info!(target: "serve", "shutting down: finishing requests in flight");
    };
    server::serve(listener, app, shutdown).await.context("serving")?;
    // The round under way finishes, and what the prediction log holds is written.
    let _ = stop_tx.send(true);
    let _ = background.await;
    stores.db.close().await;
    Ok(ExitCode::SUCCESS)
}
