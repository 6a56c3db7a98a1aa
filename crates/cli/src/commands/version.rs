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
    // This client's version is said even when the server cannot be asked (or named).
    let mut error = None;
    let mut client = None;
    let mut server = None;
    if global.server_named() {
        match Client::new(global) {
            Ok(c) => {
                match c.get::<ServerVersion>("/api/v1/version").await {
                    Ok(s) => server = Some(s),
                    Err(e) => error = Some(e),
                }
                client = Some(c);
            }
            Err(e) => error = Some(e),
        }
    }
    let versions = Versions { client: env!("CARGO_PKG_VERSION"), server };
    if global.json {
        crate::output::json(&versions)?;
    } else {
        println!("slipway {}", versions.client);
        if let (Some(s), Some(c)) = (&versions.server, &client) {
            println!(
                "server {} at {} ({} metadata, blobs in {})",
                s.version,
                c.base(),
                s.metadata_store,
                s.blob_store
            );
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(ExitCode::SUCCESS),
    }
}
