//! `slipway version`: this binary's version, and the server's when one is named.

use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use crate::Global;
use crate::client::Client;

#[derive(Serialize, Deserialize)]
struct ServerVersion {
    version: String,
    metadata_store: String,
    blob_store: String,
    auth_required: bool,
}

#[derive(Serialize)]
struct Versions {
    client: &'static str,
    server: Option<ServerVersion>,
}

pub(crate) async fn run(global: &Global) -> anyhow::Result<ExitCode> {
    let server = if global.server_named() {
        let client = Client::new(global)?;
        Some(client.get::<ServerVersion>("/api/v1/version").await?)
    } else {
        None
    };
    let versions = Versions { client: env!("CARGO_PKG_VERSION"), server };
    if global.json {
        crate::output::json(&versions)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("slipway {}", versions.client);
    if let Some(s) = versions.server {
        println!(
            "server {} at {} ({} metadata, blobs in {})",
            s.version,
            global.server_url(),
            s.metadata_store,
            s.blob_store
        );
    }
    Ok(ExitCode::SUCCESS)
}
