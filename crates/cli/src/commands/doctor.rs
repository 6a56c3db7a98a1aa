//! `slipway doctor`: checks the configuration and both stores, and says what it found.

use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use crate::Global;
use crate::config::StoreArgs;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  slipway doctor\n  slipway doctor --db postgres://slipway:pw@127.0.0.1/slipway --artifacts s3://ml/slipway --json"
)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    stores: StoreArgs,
}

#[derive(Serialize)]
struct Check {
    check: &'static str,
    ok: bool,
    detail: String,
    ms: u128,
}

/// The fixed content `doctor` writes and reads back (deduplicated after the first run).
const PROBE: &[u8] = b"slipway doctor probe\n";

pub(crate) async fn run(args: DoctorArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let mut checks = Vec::new();
    let settings = match args.stores.resolve_beside_a_server() {
        Ok(s) => {
            // Which file was read, if any (the same rule as `load_file`'s).
            let detail = match &args.stores.config {
                Some(p) => format!("read {}", p.display()),
                None if std::path::Path::new("slipway.toml").exists() => "read slipway.toml".into(),
                None => "no file: defaults, environment and flags".into(),
            };
            checks.push(Check { check: "configuration", ok: true, detail, ms: 0 });
            s
        }
        Err(e) => {
            checks.push(Check {
                check: "configuration",
                ok: false,
                detail: format!("{e:#}"),
                ms: 0,
            });
            return report(checks, global);
        }
    };

    let started = Instant::now();
    let db = slipway_core::Db::connect(&settings.db_url, &settings.db).await;
    let db = match db {
        Ok(db) => {
            let ping = db.ping().await;
            checks.push(Check {
                check: "metadata store",
                ok: ping.is_ok(),
                detail: match ping {
                    Ok(()) => format!("{} ({})", db.display_url(), db.backend().as_str()),
                    Err(e) => format!("{}: {e}", db.display_url()),
                },
                ms: started.elapsed().as_millis(),
            });
            Some(db)
        }
        Err(e) => {
            checks.push(Check {
                check: "metadata store",
                ok: false,
                detail: e.to_string(),
                ms: started.elapsed().as_millis(),
            });
            None
        }
    };
    if let Some(db) = &db {
        let started = Instant::now();
        let migrated = slipway_core::jobs::Queue::open(db.clone(), settings.queue.clone()).await;
        checks.push(Check {
            check: "schema",
            ok: migrated.is_ok(),
            detail: match migrated {
                Ok(_) => "up to date".into(),
                Err(e) => e.to_string(),
            },
            ms: started.elapsed().as_millis(),
        });
    }

    let started = Instant::now();
    let blob_check = async {
        let store = slipway_core::BlobStore::open(&settings.artifacts, settings.blobs.clone())?;
        let put = store.put_bytes(PROBE.to_vec().into()).await?;
        let back = store.read(&put.digest).await?;
        if back.as_ref() != PROBE {
            return Err(slipway_core::Error::InvalidArgument("read back different bytes".into()));
        }
        Ok::<_, slipway_core::Error>(format!("{} (write, read and verify ok)", store.location()))
    };
    let blobs = blob_check.await;
    checks.push(Check {
        check: "blob store",
        ok: blobs.is_ok(),
        detail: match blobs {
            Ok(d) => d,
            Err(e) => format!("{}: {e}", settings.artifacts),
        },
        ms: started.elapsed().as_millis(),
    });

    if global.server_named() {
        let started = Instant::now();
        let client = crate::client::Client::new(global)?;
        let ready = client.get::<serde_json::Value>("/ready").await;
        checks.push(Check {
            check: "server",
            ok: ready.is_ok(),
            detail: match ready {
                Ok(_) => format!("{} is ready", client.base()),
                Err(e) => format!("{}: {e:#}", client.base()),
            },
            ms: started.elapsed().as_millis(),
        });
    }
    if let Some(db) = db {
        db.close().await;
    }
    report(checks, global)
}

fn report(checks: Vec<Check>, global: &Global) -> anyhow::Result<ExitCode> {
    let ok = checks.iter().all(|c| c.ok);
    if global.json {
        crate::output::json(&serde_json::json!({ "ok": ok, "checks": checks }))?;
    } else {
        let rows: Vec<Vec<String>> = checks
            .iter()
            .map(|c| {
                vec![
                    c.check.to_string(),
                    if c.ok { "ok".into() } else { "FAILED".into() },
                    format!("{} ms", c.ms),
                    c.detail.clone(),
                ]
            })
            .collect();
        crate::output::table(&["CHECK", "STATUS", "TIME", "DETAIL"], &rows)?;
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
