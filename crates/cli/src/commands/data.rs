//! `slipway data add|checkout|diff|sample|split|log|ls|show`: versioned datasets, on the stores directly (as
//! DVC works on its cache and remote): no server is needed, and with PostgreSQL and S3 every
//! machine that shares them sees the same datasets.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use slipway_core::{BlobStore, Db};
use slipway_data::derive::{self, SampleSize};
use slipway_data::ingest::{self, StatCache};
use slipway_data::{Data, Kind, Manifest, NewVersion, Version, VersionRef};

use crate::Global;
use crate::config::StoreArgs;
use crate::output::{table, time};
use crate::progress::{Bar, size};

#[derive(Debug, Subcommand)]
pub(crate) enum DataCommand {
    /// Version a folder (or a file): hash what changed, upload what the store lacks
    #[command(
        after_help = "Examples:\n  slipway data add clips/ --dataset falls -m \"first sample\"\n  \
                            slipway data add clips/ --dataset falls      # again: nothing re-hashed, no new version\n  \
                            slipway data add clips/ --dataset falls --meta clips.csv   # path,camera,room,subject\n  \
                            slipway --json data add clips/ --dataset falls"
    )]
    Add {
        /// Folder or file to add
        path: PathBuf,
        /// Dataset to add a version to (created if new)
        #[arg(long, short = 'd')]
        dataset: String,
        /// What this version is
        #[arg(long, short = 'm', default_value = "")]
        message: String,
        /// Describe the dataset (kept until changed)
        #[arg(long)]
        description: Option<String>,
        /// CSV of per-item metadata: a `path` column and any others (camera, room, subject, ...)
        #[arg(long, value_name = "CSV")]
        meta: Option<PathBuf>,
        /// Hash every file, ignoring (and not updating) the stat cache
        #[arg(long)]
        no_cache: bool,
        #[command(flatten)]
        stores: StoreArgs,
    },
    /// Write a version's files into a new or empty folder, each verified against its hash
    #[command(after_help = "Examples:\n  slipway data checkout falls@3 /tmp/falls-v3\n  \
                            slipway data checkout falls /tmp/falls-latest")]
    Checkout {
        /// NAME, NAME@N or NAME@latest
        version: String,
        /// Destination folder (created; must be empty if it exists)
        dest: PathBuf,
        #[command(flatten)]
        stores: StoreArgs,
    },
    /// What changed between two versions: items added, removed and changed
    #[command(
        after_help = "Examples:\n  slipway data diff falls@1 falls@2\n  slipway --json data diff falls@1 falls"
    )]
    Diff {
        from: String,
        to: String,
        #[command(flatten)]
        stores: StoreArgs,
    },
    /// Make a deterministic sample of a version as a new version (of NAME-sample, or --into)
    #[command(after_help = "Examples:\n  slipway data sample falls@3 --fraction 0.1 --seed 7\n  \
                            slipway data sample falls --n 500 --stratify-by activity --seed 7 --into falls-small")]
    Sample {
        /// NAME, NAME@N or NAME@latest
        version: String,
        /// Share of the items, in (0, 1]
        #[arg(long, conflicts_with = "n", required_unless_present = "n")]
        fraction: Option<f64>,
        /// Number of items
        #[arg(long)]
        n: Option<usize>,
        /// Keep each value of this item metadata field at its share (within one item)
        #[arg(long, value_name = "FIELD")]
        stratify_by: Option<String>,
        #[arg(long)]
        seed: u64,
        /// Dataset that receives the sample [default: NAME-sample]
        #[arg(long)]
        into: Option<String>,
        #[arg(long, short = 'm', default_value = "")]
        message: String,
        #[command(flatten)]
        stores: StoreArgs,
    },
    /// Split a version into train/val/test versions (of NAME-train, NAME-val, NAME-test)
    #[command(
        after_help = "Examples:\n  slipway data split falls@3 --train 0.8 --val 0.1 --test 0.1 --seed 7\n  \
                            slipway data split falls --train 0.9 --test 0.1 --stratify-by activity --seed 1"
    )]
    Split {
        version: String,
        #[arg(long, default_value_t = 0.0)]
        train: f64,
        #[arg(long, default_value_t = 0.0)]
        val: f64,
        #[arg(long, default_value_t = 0.0)]
        test: f64,
        /// Keep each value of this item metadata field at its share in every part
        #[arg(long, value_name = "FIELD")]
        stratify_by: Option<String>,
        #[arg(long)]
        seed: u64,
        /// Prefix of the receiving datasets [default: NAME]
        #[arg(long)]
        into: Option<String>,
        #[command(flatten)]
        stores: StoreArgs,
    },
    /// A dataset's versions, newest first
    #[command(after_help = "Examples:\n  slipway data log falls")]
    Log {
        name: String,
        #[command(flatten)]
        stores: StoreArgs,
    },
    /// Every dataset, with its latest version
    #[command(after_help = "Examples:\n  slipway data ls\n  slipway --json data ls")]
    Ls {
        #[command(flatten)]
        stores: StoreArgs,
    },
    /// One version: its facts, and with --items its files
    #[command(
        after_help = "Examples:\n  slipway data show falls@2\n  slipway data show falls --items"
    )]
    Show {
        version: String,
        /// List the items too
        #[arg(long)]
        items: bool,
        #[command(flatten)]
        stores: StoreArgs,
    },
}

async fn open(stores: &StoreArgs) -> anyhow::Result<Data> {
    let settings = stores.resolve()?;
    let db = Db::connect(&settings.db_url, &settings.db).await.with_context(|| {
        format!("opening the metadata store {}", slipway_core::redact_url(&settings.db_url))
    })?;
    let blobs = BlobStore::open(&settings.artifacts, settings.blobs.clone())
        .with_context(|| format!("opening the blob store {}", settings.artifacts))?;
    Data::open(db, blobs).await.context("preparing the data schema")
}

/// Where stat caches live: `SLIPWAY_CACHE_DIR`, else `$XDG_CACHE_HOME/slipway`, else
/// `~/.cache/slipway`; then `stat/`.
fn cache_dir() -> PathBuf {
    let base = std::env::var_os("SLIPWAY_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("slipway")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/slipway")))
        .unwrap_or_else(|| PathBuf::from(".slipway/cache"));
    base.join("stat")
}

/// Files in flight at once: `SLIPWAY_DATA_JOBS`, else twice the cores.
fn concurrency() -> usize {
    std::env::var("SLIPWAY_DATA_JOBS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) * 2)
}

fn author() -> String {
    std::env::var("SLIPWAY_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

async fn resolve(data: &Data, r: &str) -> anyhow::Result<Version> {
    Ok(data.resolve(&VersionRef::parse(r)?).await?)
}

pub(crate) async fn run(cmd: DataCommand, global: &Global) -> anyhow::Result<ExitCode> {
    match cmd {
        DataCommand::Add { path, dataset, message, description, meta, no_cache, stores } => {
            slipway_data::check_name(&dataset)?;
            let meta = meta.map(|m| ingest::read_meta(&m)).transpose()?;
            let data = open(&stores).await?;
            let what = Add { path: &path, dataset: &dataset, message, description, meta, no_cache };
            add(&data, what, global).await
        }
        DataCommand::Checkout { version, dest, stores } => {
            let data = open(&stores).await?;
            let v = resolve(&data, &version).await?;
            let manifest = data.manifest(&v).await?;
            let started = Instant::now();
            let bar = Bar::new(
                "checking out",
                manifest.items.len() as u64,
                manifest.bytes(),
                !global.json,
            );
            let done = slipway_data::checkout::checkout(
                data.blobs(),
                &manifest,
                &dest,
                &bar,
                concurrency(),
            )
            .await;
            bar.finish();
            let done = done?;
            if global.json {
                crate::output::json(&json!({
                    "version": v, "dest": dest, "files": done.files, "bytes": done.bytes,
                    "seconds": started.elapsed().as_secs_f64(),
                }))?;
            } else {
                println!(
                    "checked out {}: {} files, {} into {} in {:.1} s (every file verified)",
                    v.label(),
                    done.files,
                    size(done.bytes),
                    dest.display(),
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Diff { from, to, stores } => {
            let data = open(&stores).await?;
            let (a, b) = (resolve(&data, &from).await?, resolve(&data, &to).await?);
            let diff = data.diff(&a, &b).await?;
            if global.json {
                crate::output::json(&json!({"from": a, "to": b, "diff": diff}))?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows: Vec<Vec<String>> = Vec::new();
            for i in &diff.added {
                rows.push(vec!["+".into(), i.path.clone(), size(i.size)]);
            }
            for i in &diff.removed {
                rows.push(vec!["-".into(), i.path.clone(), size(i.size)]);
            }
            for (x, y) in &diff.changed {
                rows.push(vec![
                    "~".into(),
                    y.path.clone(),
                    format!("{} -> {}", size(x.size), size(y.size)),
                ]);
            }
            rows.sort_by(|p, q| p[1].cmp(&q[1]));
            if !rows.is_empty() {
                table(&["", "PATH", "SIZE"], &rows)?;
            }
            println!(
                "{} -> {}: {} added, {} removed, {} changed, {} unchanged",
                a.label(),
                b.label(),
                diff.added.len(),
                diff.removed.len(),
                diff.changed.len(),
                diff.unchanged
            );
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Sample { version, fraction, n, stratify_by, seed, into, message, stores } => {
            let data = open(&stores).await?;
            let v = resolve(&data, &version).await?;
            let items = data.manifest(&v).await?.items;
            let size = match (fraction, n) {
                (Some(f), _) => SampleSize::Fraction(f),
                (None, Some(n)) => SampleSize::Count(n),
                (None, None) => anyhow::bail!("give --fraction or --n"),
            };
            let picked = derive::sample(&items, size, stratify_by.as_deref(), seed)?;
            let how = match size {
                SampleSize::Fraction(f) => format!("fraction {f}"),
                SampleSize::Count(n) => format!("{n} items"),
            };
            let strat =
                stratify_by.as_deref().map(|f| format!(", stratified by {f}")).unwrap_or_default();
            let target = into.unwrap_or_else(|| format!("{}-sample", v.dataset));
            let source = format!("sample of {}: {how}, seed {seed}{strat}", v.label());
            let commit = derived(&data, &target, v.kind, picked, &v, source, message).await?;
            report_derived(global, &[commit])?;
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Split { version, train, val, test, stratify_by, seed, into, stores } => {
            let parts: Vec<(String, f64)> = [("train", train), ("val", val), ("test", test)]
                .into_iter()
                .filter(|(_, f)| *f > 0.0)
                .map(|(n, f)| (n.to_string(), f))
                .collect();
            if parts.is_empty() {
                anyhow::bail!("give the parts' shares, e.g. --train 0.8 --val 0.1 --test 0.1");
            }
            let data = open(&stores).await?;
            let v = resolve(&data, &version).await?;
            let items = data.manifest(&v).await?.items;
            let split = derive::split(&items, &parts, stratify_by.as_deref(), seed)?;
            let prefix = into.unwrap_or_else(|| v.dataset.clone());
            let strat =
                stratify_by.as_deref().map(|f| format!(", stratified by {f}")).unwrap_or_default();
            let shares: Vec<String> = parts.iter().map(|(n, f)| format!("{n} {f}")).collect();
            let mut commits = Vec::new();
            for (part, picked) in split {
                let source = format!(
                    "{part} part of {}: {}, seed {seed}{strat}",
                    v.label(),
                    shares.join(" / ")
                );
                let target = format!("{prefix}-{part}");
                commits.push(
                    derived(&data, &target, v.kind, picked, &v, source, String::new()).await?,
                );
            }
            report_derived(global, &commits)?;
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Log { name, stores } => {
            let data = open(&stores).await?;
            let versions = data.log(&name).await?;
            if global.json {
                crate::output::json(&versions)?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = versions
                .iter()
                .map(|v| {
                    vec![
                        v.label(),
                        time(Some(v.created_at)),
                        v.items.to_string(),
                        size(v.bytes as u64),
                        v.author.clone(),
                        v.message.clone(),
                    ]
                })
                .collect();
            table(&["VERSION", "CREATED (UTC)", "ITEMS", "SIZE", "AUTHOR", "MESSAGE"], &rows)?;
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Ls { stores } => {
            let data = open(&stores).await?;
            let datasets = data.datasets().await?;
            if global.json {
                crate::output::json(&datasets)?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = datasets
                .iter()
                .map(|d| {
                    vec![
                        d.name.clone(),
                        d.latest.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                        time(Some(d.created_at)),
                        d.description.clone(),
                    ]
                })
                .collect();
            table(&["NAME", "LATEST", "CREATED (UTC)", "DESCRIPTION"], &rows)?;
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Show { version, items, stores } => {
            let data = open(&stores).await?;
            let v = resolve(&data, &version).await?;
            let manifest = if items { Some(data.manifest(&v).await?) } else { None };
            if global.json {
                crate::output::json(&json!({"version": v, "items": manifest.map(|m| m.items)}))?;
                return Ok(ExitCode::SUCCESS);
            }
            let facts = [
                ("version", v.label()),
                ("kind", v.kind.as_str().to_string()),
                ("items", format!("{} ({})", v.items, size(v.bytes as u64))),
                ("created", time(Some(v.created_at))),
                ("author", v.author.clone()),
                ("message", v.message.clone()),
                ("source", v.source.clone()),
                (
                    "parent",
                    v.parent.map(|p| format!("{}@{p}", v.dataset)).unwrap_or_else(|| "-".into()),
                ),
                ("manifest", v.manifest.clone()),
            ];
            let rows: Vec<Vec<String>> =
                facts.iter().map(|(k, val)| vec![k.to_string(), val.clone()]).collect();
            table(&["FIELD", "VALUE"], &rows)?;
            if let Some(m) = manifest {
                println!();
                let rows: Vec<Vec<String>> = m
                    .items
                    .iter()
                    .map(|i| vec![i.path.clone(), size(i.size), i.hash[..12].to_string()])
                    .collect();
                table(&["PATH", "SIZE", "BLAKE3"], &rows)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What `data add` was asked to do.
struct Add<'a> {
    path: &'a Path,
    dataset: &'a str,
    message: String,
    description: Option<String>,
    meta: Option<HashMap<String, BTreeMap<String, String>>>,
    no_cache: bool,
}

/// Commits `items` (taken from `from`) as the next version of `target`.
async fn derived(
    data: &Data,
    target: &str,
    kind: Kind,
    items: Vec<slipway_data::Item>,
    from: &Version,
    source: String,
    message: String,
) -> anyhow::Result<slipway_data::Commit> {
    slipway_data::check_name(target)?;
    let manifest = Manifest::new(kind, items)?;
    let new = NewVersion {
        message: if message.is_empty() { source.clone() } else { message },
        author: author(),
        source,
        description: None,
        derived_from: Some(from.label()),
    };
    Ok(data.commit(target, &manifest, new).await?)
}

fn report_derived(global: &Global, commits: &[slipway_data::Commit]) -> anyhow::Result<()> {
    if global.json {
        let out: Vec<_> =
            commits.iter().map(|c| json!({"version": c.version, "created": c.created})).collect();
        return crate::output::json(&out);
    }
    let rows: Vec<Vec<String>> = commits
        .iter()
        .map(|c| {
            vec![
                c.version.label(),
                c.version.items.to_string(),
                size(c.version.bytes as u64),
                if c.created { "new".into() } else { "unchanged".into() },
                c.version.source.clone(),
            ]
        })
        .collect();
    table(&["VERSION", "ITEMS", "SIZE", "", "FROM"], &rows)?;
    Ok(())
}

async fn add(data: &Data, what: Add<'_>, global: &Global) -> anyhow::Result<ExitCode> {
    let Add { path, dataset, message, description, mut meta, no_cache } = what;
    let started = Instant::now();
    let (files, mut problems) = ingest::scan(path)?;
    let latest = match data.resolve(&VersionRef { name: dataset.into(), version: None }).await {
        Ok(v) => Some(v),
        Err(
            slipway_data::Error::DatasetNotFound { .. }
            | slipway_data::Error::VersionNotFound { .. },
        ) => None,
        Err(e) => return Err(e.into()),
    };
    let known: HashSet<String> = match &latest {
        Some(v) => data.manifest(v).await?.items.into_iter().map(|i| i.hash).collect(),
        None => HashSet::new(),
    };
    let mut cache =
        if no_cache { StatCache::disabled() } else { StatCache::open(&cache_dir(), path) };
    let total: u64 = files.iter().map(|f| f.stat.size).sum();
    let bar = Bar::new("adding", files.len() as u64, total, !global.json);
    let ingested =
        ingest::ingest(&files, data.blobs(), &mut cache, &known, &bar, concurrency()).await;
    bar.finish();
    if let Err(e) = cache.save(&files) {
        tracing::warn!("could not save the stat cache: {e}");
    }
    problems.extend(ingested.problems.iter().cloned());
    let mut items = ingested.items;
    if let Some(meta) = meta.as_mut() {
        for item in &mut items {
            if let Some(m) = meta.remove(&item.path) {
                item.meta = m;
            }
        }
        let mut unknown: Vec<&String> = meta.keys().collect();
        unknown.sort();
        for path in unknown {
            problems.push(ingest::Problem {
                path: path.clone(),
                message: "listed in the metadata file but not in the folder".into(),
            });
        }
    }
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("error: {}: {}", p.path, p.message);
        }
        eprintln!(
            "error: {} problem(s) in {}; no version was made (the other files' content is stored, \
             so adding again after a fix is quick)",
            problems.len(),
            path.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    if files.is_empty() {
        anyhow::bail!("nothing to add: {} holds no files", path.display());
    }
    let manifest = Manifest::new(Kind::Files, items)?;
    let source = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let commit = data
        .commit(
            dataset,
            &manifest,
            NewVersion {
                message,
                author: author(),
                source: source.display().to_string(),
                description,
                derived_from: None,
            },
        )
        .await?;
    let secs = started.elapsed().as_secs_f64();
    if global.json {
        crate::output::json(&json!({
            "version": commit.version,
            "created": commit.created,
            "files": files.len(),
            "bytes": total,
            "hashed": ingested.hashed,
            "hashed_bytes": ingested.hashed_bytes,
            "uploaded": ingested.uploaded,
            "uploaded_bytes": ingested.uploaded_bytes,
            "seconds": secs,
        }))?;
    } else if commit.created {
        println!(
            "{}: {} files, {} (hashed {}, {} from the stat cache; uploaded {} blob{}, {}) in {secs:.1} s",
            commit.version.label(),
            files.len(),
            size(total),
            ingested.hashed,
            files.len() - ingested.hashed,
            ingested.uploaded,
            if ingested.uploaded == 1 { "" } else { "s" },
            size(ingested.uploaded_bytes)
        );
    } else {
        println!(
            "no change: {} already holds these {} files ({}); checked in {secs:.1} s",
            commit.version.label(),
            files.len(),
            size(total)
        );
    }
    Ok(ExitCode::SUCCESS)
}
