//! One configuration: `slipway.toml` < `SLIPWAY_*` environment < command-line flags, turned into
//! plain options for the library crates (which never see clap or TOML).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;
use slipway_core::jobs::QueueOptions;
use slipway_core::{BlobStoreOptions, DbOptions, S3Options};

/// Everything `slipway.toml` may say. `slipway.toml.example` documents each key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) db: Option<String>,
    pub(crate) artifacts: Option<String>,
    pub(crate) auth_token: Option<String>,
    pub(crate) log: Option<String>,
    pub(crate) worker: Option<bool>,
    #[serde(default)]
    pub(crate) db_pool: DbPoolConfig,
    #[serde(default)]
    pub(crate) s3: S3Config,
    #[serde(default)]
    pub(crate) blobs: BlobConfig,
    #[serde(default)]
    pub(crate) jobs: JobsConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DbPoolConfig {
    pub(crate) max_connections: Option<u32>,
    pub(crate) acquire_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct S3Config {
    pub(crate) endpoint: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) access_key_id: Option<String>,
    pub(crate) secret_access_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BlobConfig {
    pub(crate) chunk_size_mib: Option<usize>,
    pub(crate) concurrency: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobsConfig {
    pub(crate) lease_secs: Option<u64>,
    pub(crate) poll_ms: Option<u64>,
    pub(crate) backoff_base_secs: Option<u64>,
}

/// Where the stores are: the flags shared by `server`, `worker` and `doctor`.
#[derive(Debug, Clone, Args)]
pub(crate) struct StoreArgs {
    /// Configuration file [default: ./slipway.toml when it exists]
    #[arg(long, env = "SLIPWAY_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Folder for the embedded defaults (SQLite file, blobs) [default: ./.slipway]
    #[arg(long, env = "SLIPWAY_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Metadata store: sqlite:PATH or postgres://user:pass@host/db [default: sqlite:DATA_DIR/slipway.db]
    #[arg(long, env = "SLIPWAY_DB", value_name = "URL")]
    pub(crate) db: Option<String>,
    /// Blob store: a folder or s3://bucket/prefix [default: DATA_DIR/blobs]
    #[arg(long, env = "SLIPWAY_ARTIFACTS", value_name = "LOCATION")]
    pub(crate) artifacts: Option<String>,
    /// S3-compatible endpoint, e.g. http://127.0.0.1:9000 (credentials from AWS_* variables)
    #[arg(long, env = "SLIPWAY_S3_ENDPOINT", value_name = "URL")]
    pub(crate) s3_endpoint: Option<String>,
}

/// The resolved settings of a process that opens the stores.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) file: FileConfig,
    pub(crate) db_url: String,
    pub(crate) artifacts: String,
    pub(crate) db: DbOptions,
    pub(crate) blobs: BlobStoreOptions,
    pub(crate) queue: QueueOptions,
    pub(crate) poll_interval: Duration,
}

/// The `--server` flag given on the command line, if any (set once, in `main`).
pub(crate) static SERVER_FLAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();

impl StoreArgs {
    /// The settings of a command that works on the stores directly. Refuses a `--server` given
    /// on the command line: silently reading the local stores instead would mislead.
    pub(crate) fn resolve(&self) -> anyhow::Result<Settings> {
        if let Some(server) = SERVER_FLAG.get() {
            anyhow::bail!(
                "--server {server}: this command works on the stores directly (--db, --data-dir, \
                 --artifacts or slipway.toml), not through a server"
            );
        }
        self.resolve_beside_a_server()
    }

    /// The settings, with or without `--server` (`doctor` checks both).
    pub(crate) fn resolve_beside_a_server(&self) -> anyhow::Result<Settings> {
        let file = load_file(self.config.as_deref())?;
        let data_dir = self
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(".slipway"));
        let db_url = self
            .db
            .clone()
            .or_else(|| file.db.clone())
            .unwrap_or_else(|| format!("sqlite:{}", data_dir.join("slipway.db").display()));
        let artifacts = self
            .artifacts
            .clone()
            .or_else(|| file.artifacts.clone())
            .unwrap_or_else(|| data_dir.join("blobs").display().to_string());
        let mut db = DbOptions::default();
        if let Some(n) = file.db_pool.max_connections {
            db.max_connections = n.max(1);
        }
        if let Some(s) = file.db_pool.acquire_timeout_secs {
            db.acquire_timeout = Duration::from_secs(s);
        }
        let s3 = S3Options {
            endpoint: self.s3_endpoint.clone().or_else(|| file.s3.endpoint.clone()),
            region: file.s3.region.clone(),
            access_key_id: file.s3.access_key_id.clone(),
            secret_access_key: file.s3.secret_access_key.clone(),
        };
        let mut blobs = BlobStoreOptions { s3, ..BlobStoreOptions::default() };
        if let Some(mib) = file.blobs.chunk_size_mib {
            blobs.chunk_size = mib.max(1) << 20;
        }
        if let Some(n) = file.blobs.concurrency {
            blobs.concurrency = n.max(1);
        }
        let mut queue = QueueOptions::default();
        if let Some(s) = file.jobs.lease_secs {
            queue.lease = Duration::from_secs(s.max(1));
        }
        if let Some(s) = file.jobs.backoff_base_secs {
            queue.backoff_base = Duration::from_secs(s);
        }
        let poll_interval = Duration::from_millis(file.jobs.poll_ms.unwrap_or(500).max(10));
        Ok(Settings { file, db_url, artifacts, db, blobs, queue, poll_interval })
    }
}

/// Reads the configuration file: the one named, or `./slipway.toml` if present.
pub(crate) fn load_file(path: Option<&Path>) -> anyhow::Result<FileConfig> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("slipway.toml"), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(FileConfig::default());
        }
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    };
    parse_file(&text).with_context(|| format!("in {}", path.display()))
}

pub(crate) fn parse_file(text: &str) -> anyhow::Result<FileConfig> {
    toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim().replace('\n', " ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_and_sets_every_key() {
        let text = include_str!("../../../slipway.toml.example");
        // Every documented key is present, commented out; uncommenting them must parse.
        let uncommented: String = text
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.contains(" = ") || r.starts_with('['))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let cfg = parse_file(&uncommented).expect("slipway.toml.example parses");
        assert_eq!(cfg.port, Some(5000));
        assert_eq!(cfg.host.as_deref(), Some("127.0.0.1"));
        assert!(cfg.db.is_some() && cfg.artifacts.is_some() && cfg.data_dir.is_some());
        assert!(cfg.s3.endpoint.is_some() && cfg.s3.region.is_some());
        assert!(cfg.blobs.chunk_size_mib.is_some() && cfg.jobs.lease_secs.is_some());
        assert!(cfg.db_pool.max_connections.is_some() && cfg.worker.is_some());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = parse_file("prot = 5000").unwrap_err().to_string();
        assert!(err.contains("unknown field `prot`"), "{err}");
    }

    #[test]
    fn flags_beat_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("slipway.toml");
        std::fs::write(&file, "db = \"sqlite:from-file.db\"\nartifacts = \"from-file\"\n").unwrap();
        let args = StoreArgs {
            config: Some(file),
            data_dir: None,
            db: Some("sqlite:from-flag.db".into()),
            artifacts: None,
            s3_endpoint: None,
        };
        let s = args.resolve().unwrap();
        assert_eq!(s.db_url, "sqlite:from-flag.db");
        assert_eq!(s.artifacts, "from-file");
    }
}
