//! `slipway data add|checkout|diff|sample|split|log|ls|show`: versioned datasets, on the stores directly (as
//! DVC works on its cache and remote): no server is needed, and with PostgreSQL and S3 every
//! machine that shares them sees the same datasets.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use slipway_core::{BlobStore, Db};
use slipway_data::add::AddRequest;
use slipway_data::derive::{Derivation, SampleSize};
use slipway_data::ingest::{self, StatCache};
use slipway_data::{Data, Kind, Version, VersionRef};

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
                            slipway data add features.parquet --dataset fall-features   # a table: schema, rows, profile\n  \
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
        /// `table` or `files` [default: a .csv/.parquet file is a table, a folder is files; a
        /// folder added as a table is the parts of one table]
        #[arg(long, value_parser = ["files", "table"])]
        kind: Option<String>,
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
    /// A version's profile: per column type, counts, nulls, distinct values, moments, quantiles,
    /// top values and a histogram (of a table's columns, or of a folder's item metadata)
    #[command(after_help = "Examples:\n  slipway data profile fall-features@1\n  \
                            slipway data profile fall-features --column hip_drop_px\n  \
                            slipway --json data profile falls@2")]
    Profile {
        version: String,
        /// Only this column, with its histogram drawn wider
        #[arg(long)]
        column: Option<String>,
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
        DataCommand::Add { path, dataset, message, description, meta, no_cache, kind, stores } => {
            slipway_data::check_name(&dataset)?;
            let meta = meta.map(|m| ingest::read_meta(&m)).transpose()?;
            let kind = match kind.as_deref() {
                Some("table") => Some(Kind::Table),
                Some(_) => Some(Kind::Files),
                None => None,
            };
            let data = open(&stores).await?;
            let req = AddRequest {
                path,
                dataset,
                message,
                description,
                author: author(),
                meta,
                kind,
                concurrency: concurrency(),
            };
            add(&data, req, no_cache, global).await
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
            if let Some(t) = &diff.table {
                print_table_diff(t)?;
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
            let size = match (fraction, n) {
                (Some(f), _) => SampleSize::Fraction(f),
                (None, Some(n)) => SampleSize::Count(n),
                (None, None) => anyhow::bail!("give --fraction or --n"),
            };
            let target = into.unwrap_or_else(|| format!("{}-sample", v.dataset));
            let how = Derivation { stratify_by, seed, author: author(), message };
            let commit = data.sample(&v, size, &how, &target).await?;
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
            let prefix = into.unwrap_or_else(|| v.dataset.clone());
            let how = Derivation { stratify_by, seed, author: author(), message: String::new() };
            let commits = data.split(&v, &parts, &how, &prefix).await?;
            report_derived(global, &commits)?;
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Profile { version, column, stores } => {
            let data = open(&stores).await?;
            let v = resolve(&data, &version).await?;
            let Some(profile) = data.profile(&v).await? else {
                anyhow::bail!(
                    "{} has no profile: it is a folder without item metadata (add one with --meta)",
                    v.label()
                );
            };
            crate::commands::profile::print(&v, &profile, column.as_deref(), global)?;
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
            let full = data.manifest(&v).await?;
            let manifest = if items { Some(full.clone()) } else { None };
            if global.json {
                crate::output::json(&json!({
                    "version": v, "table": full.table, "items": manifest.map(|m| m.items),
                }))?;
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
            if let Some(t) = &full.table {
                println!();
                let rows: Vec<Vec<String>> = t
                    .columns
                    .iter()
                    .map(|c| {
                        vec![
                            c.name.clone(),
                            c.arrow.clone(),
                            if c.nullable { "yes".into() } else { "no".into() },
                        ]
                    })
                    .collect();
                println!("a {} table of {} rows:", t.format.as_str(), t.rows);
                table(&["COLUMN", "TYPE", "NULLABLE"], &rows)?;
            }
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

fn print_table_diff(t: &slipway_data::table::TableDiff) -> anyhow::Result<()> {
    println!();
    let mut schema: Vec<Vec<String>> = Vec::new();
    for c in &t.columns_added {
        schema.push(vec!["+".into(), c.name.clone(), c.arrow.clone()]);
    }
    for c in &t.columns_removed {
        schema.push(vec!["-".into(), c.name.clone(), c.arrow.clone()]);
    }
    for (a, b) in &t.columns_changed {
        schema.push(vec!["~".into(), b.name.clone(), format!("{} -> {}", a.arrow, b.arrow)]);
    }
    if schema.is_empty() {
        println!("schema: unchanged ({} columns)", t.compared_on.len());
    } else {
        table(&["", "COLUMN", "TYPE"], &schema)?;
    }
    println!(
        "rows: {} -> {}: {} added, {} removed, {} unchanged (compared on {} columns)",
        t.rows_before,
        t.rows_after,
        t.rows_added,
        t.rows_removed,
        t.rows_unchanged,
        t.compared_on.len()
    );
    let cell = |c: &Option<String>| c.clone().unwrap_or_else(|| "∅".into());
    let mut examples: Vec<Vec<String>> = Vec::new();
    for r in &t.removed_examples {
        examples.push(std::iter::once("-".to_string()).chain(r.iter().map(cell)).collect());
    }
    for r in &t.added_examples {
        examples.push(std::iter::once("+".to_string()).chain(r.iter().map(cell)).collect());
    }
    if !examples.is_empty() {
        println!();
        let mut headers: Vec<&str> = vec![""];
        headers.extend(t.compared_on.iter().map(String::as_str));
        table(&headers, &examples)?;
    }
    Ok(())
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

async fn add(
    data: &Data,
    req: AddRequest,
    no_cache: bool,
    global: &Global,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let shown = req.path.display().to_string();
    let mut cache =
        if no_cache { StatCache::disabled() } else { StatCache::open(&cache_dir(), &req.path) };
    let bar = Bar::new("adding", 0, 0, !global.json);
    let outcome = data.add(req, &mut cache, &bar).await;
    bar.finish();
    let outcome = outcome?;
    if !outcome.problems.is_empty() {
        for p in &outcome.problems {
            eprintln!("error: {}: {}", p.path, p.message);
        }
        eprintln!(
            "error: {} problem(s) in {shown}; no version was made (the other files' content is \
             stored, so adding again after a fix is quick)",
            outcome.problems.len(),
        );
        return Ok(ExitCode::FAILURE);
    }
    let Some(commit) = outcome.commit else { anyhow::bail!("no version was made") };
    let secs = started.elapsed().as_secs_f64();
    if global.json {
        crate::output::json(&json!({
            "version": commit.version,
            "created": commit.created,
            "files": outcome.files,
            "bytes": outcome.bytes,
            "hashed": outcome.hashed,
            "hashed_bytes": outcome.hashed_bytes,
            "uploaded": outcome.uploaded,
            "uploaded_bytes": outcome.uploaded_bytes,
            "table": outcome.table,
            "seconds": secs,
        }))?;
    } else if commit.created {
        let table = outcome
            .table
            .as_ref()
            .map(|t| {
                format!(
                    "; a {} table of {} rows × {} columns",
                    t.format.as_str(),
                    t.rows,
                    t.columns.len()
                )
            })
            .unwrap_or_default();
        println!(
            "{}: {} file{}, {} (hashed {}, {} from the stat cache; uploaded {} blob{}, {}){table} in {secs:.1} s",
            commit.version.label(),
            outcome.files,
            if outcome.files == 1 { "" } else { "s" },
            size(outcome.bytes),
            outcome.hashed,
            outcome.files - outcome.hashed,
            outcome.uploaded,
            if outcome.uploaded == 1 { "" } else { "s" },
            size(outcome.uploaded_bytes)
        );
    } else {
        println!(
            "no change: {} already holds {} {} ({}); checked in {secs:.1} s",
            commit.version.label(),
            if outcome.files == 1 { "this" } else { "these" },
            if outcome.files == 1 {
                "file".to_string()
            } else {
                format!("{} files", outcome.files)
            },
            size(outcome.bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}
