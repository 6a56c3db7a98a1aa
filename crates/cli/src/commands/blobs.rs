//! `slipway blobs put|get|stat`: the content-addressed blob store, directly (an operator's tool:
//! check S3 settings, fetch a blob by digest, seed a store).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use futures::StreamExt;
use slipway_core::{BlobStore, Digest};

use crate::Global;
use crate::config::StoreArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum BlobsCommand {
    /// Store a file (or standard input, `-`) and print its BLAKE3 digest
    #[command(
        after_help = "Examples:\n  slipway blobs put model.onnx\n  tar c data/ | slipway blobs put -"
    )]
    Put {
        /// File to store, or - for standard input
        path: String,
        #[command(flatten)]
        stores: StoreArgs,
    },
    /// Write a blob to a file (or standard output), verifying its digest
    Get {
        digest: String,
        /// Where to write [default: standard output]
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
        #[command(flatten)]
        stores: StoreArgs,
    },
    /// Say whether a blob is stored, and its size
    Stat {
        digest: String,
        #[command(flatten)]
        stores: StoreArgs,
    },
}

fn open(stores: &StoreArgs) -> anyhow::Result<BlobStore> {
    let settings = stores.resolve()?;
    BlobStore::open(&settings.artifacts, settings.blobs.clone())
        .with_context(|| format!("opening the blob store {}", settings.artifacts))
}

pub(crate) async fn run(cmd: BlobsCommand, global: &Global) -> anyhow::Result<ExitCode> {
    match cmd {
        BlobsCommand::Put { path, stores } => {
            let store = open(&stores)?;
            let outcome = if path == "-" {
                let stdin = tokio::io::stdin();
                let stream = futures::stream::unfold(stdin, |mut stdin| async move {
                    use tokio::io::AsyncReadExt;
                    let mut buf = vec![0u8; 1 << 20];
                    match stdin.read(&mut buf).await {
                        Ok(0) => None,
                        Ok(n) => {
                            buf.truncate(n);
                            Some((Ok(buf.into()), stdin))
                        }
                        Err(e) => Some((Err(e), stdin)),
                    }
                });
                store.put_stream(stream).await?
            } else {
                store.put_file(std::path::Path::new(&path)).await?
            };
            if global.json {
                crate::output::json(&serde_json::json!({
                    "digest": outcome.digest.to_hex(),
                    "size": outcome.size,
                    "existed": outcome.existed,
                }))?;
            } else {
                let note = if outcome.existed { " (already stored)" } else { "" };
                println!("{}  {} bytes{note}", outcome.digest, outcome.size);
            }
        }
        BlobsCommand::Get { digest, output, stores } => {
            let digest: Digest = digest.parse()?;
            let store = open(&stores)?;
            let mut reader = store.get(&digest).await?;
            let mut sink: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            while let Some(chunk) = reader.next().await {
                sink.write_all(&chunk?)?;
            }
            sink.flush()?;
        }
        BlobsCommand::Stat { digest, stores } => {
            let digest: Digest = digest.parse()?;
            let size = open(&stores)?.size(&digest).await?;
            if global.json {
                crate::output::json(
                    &serde_json::json!({ "digest": digest.to_hex(), "size": size }),
                )?;
            } else {
                match size {
                    Some(n) => println!("{digest}  {n} bytes"),
                    None => anyhow::bail!("blob {digest} is not stored"),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
