//! Adding a local folder or file as the next version of a dataset: scan it, hash what changed,
//! upload what the store lacks, read tables (schema, rows, profile), attach item metadata and
//! commit — or, if anything is wrong, name every problem and make no version.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use futures::StreamExt;

use crate::error::{Error, Result};
use crate::ingest::{self, LocalFile, Problem, Progress, StatCache};
use crate::profile::Profile;
use crate::table::{self, Batches, Format, TableInfo};
use crate::types::{Kind, Manifest, VersionRef};
use crate::{Commit, Data, NewVersion};

/// What to add.
#[derive(Debug, Clone)]
pub struct AddRequest {
    pub path: PathBuf,
    pub dataset: String,
    pub message: String,
    pub description: Option<String>,
    pub author: String,
    /// Per-item metadata by item path (from [`ingest::read_meta`]); folders only.
    pub meta: Option<HashMap<String, BTreeMap<String, String>>>,
    /// `None`: a `.csv`/`.parquet` file is a table, anything else a folder of files. A folder
    /// added as a table is the parts of one table (files named `_*` or `.*` are skipped, as
    /// Spark and Hive write them).
    pub kind: Option<Kind>,
    /// Files in flight at once.
    pub concurrency: usize,
}

/// What an add did.
#[derive(Debug)]
pub struct AddOutcome {
    /// The version made or found unchanged; `None` when there were problems.
    pub commit: Option<Commit>,
    /// Everything wrong, by item; non-empty means no version was made.
    pub problems: Vec<Problem>,
    pub files: usize,
    pub bytes: u64,
    pub hashed: usize,
    pub hashed_bytes: u64,
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    /// For tables: the schema and row count.
    pub table: Option<TableInfo>,
}

impl Data {
    /// Adds `req.path` as the next version of `req.dataset` (unless its content equals the
    /// latest version's). Problems with single items are listed in the outcome; errors are for
    /// the request as a whole (a missing path, a bad name, a store that fails).
    pub async fn add(
        &self,
        req: AddRequest,
        cache: &mut StatCache,
        progress: &dyn Progress,
    ) -> Result<AddOutcome> {
        crate::check_name(&req.dataset)?;
        let is_file = std::fs::metadata(&req.path).map(|m| m.is_file()).unwrap_or(false);
        let shown = req.path.display().to_string();
        let kind = match req.kind {
            Some(k) => k,
            None if is_file && Format::of_path(&shown).is_some() => Kind::Table,
            None => Kind::Files,
        };
        if kind == Kind::Table && req.meta.is_some() {
            return Err(Error::invalid(
                "--meta is for folders of files; a table's columns are its metadata",
            ));
        }
        let (mut files, mut problems) = ingest::scan(&req.path)?;
        if kind == Kind::Table {
            files.retain(|f| {
                let name = f.rel.rsplit('/').next().unwrap_or_default();
                is_file || !(name.starts_with('_') || name.starts_with('.'))
            });
            let formats: HashSet<Option<Format>> =
                files.iter().map(|f| Format::of_path(&f.rel)).collect();
            for f in &files {
                if Format::of_path(&f.rel).is_none() {
                    problems.push(Problem {
                        path: f.rel.clone(),
                        message: "not a table file (.csv, .parquet)".into(),
                    });
                }
            }
            if formats.len() > 1 && !formats.contains(&None) {
                problems.push(Problem {
                    path: ".".into(),
                    message: "a table's parts are all CSV or all Parquet, not both".into(),
                });
            }
        }
        if files.is_empty() && problems.is_empty() {
            return Err(Error::invalid(format!("nothing to add: {shown} holds no files")));
        }
        let latest =
            match self.resolve(&VersionRef { name: req.dataset.clone(), version: None }).await {
                Ok(v) => Some(self.manifest(&v).await?),
                Err(Error::DatasetNotFound { .. } | Error::VersionNotFound { .. }) => None,
                Err(e) => return Err(e),
            };
        let known: HashSet<String> = latest
            .as_ref()
            .map(|m| m.items.iter().map(|i| i.hash.clone()).collect())
            .unwrap_or_default();
        progress.begin(files.len() as u64, files.iter().map(|f| f.stat.size).sum());
        let ingested =
            ingest::ingest(&files, &self.blobs, cache, &known, progress, req.concurrency).await;
        if let Err(e) = cache.save(&files) {
            tracing::warn!(target: "data::ingest", "could not save the stat cache: {e}");
        }
        problems.extend(ingested.problems.iter().cloned());
        let mut items = ingested.items;
        let mut meta = req.meta;
        if let Some(meta) = meta.as_mut() {
            for item in &mut items {
                if let Some(m) = meta.remove(&item.path) {
                    item.meta = m;
                }
            }
            let mut unknown: Vec<&String> = meta.keys().collect();
            unknown.sort();
            for path in unknown {
                problems.push(Problem {
                    path: path.clone(),
                    message: "listed in the metadata file but not in the folder".into(),
                });
            }
        }
        let mut table_info = None;
        let mut profile = None;
        if kind == Kind::Table && problems.is_empty() {
            let same_as_latest = latest.as_ref().is_some_and(|m| {
                m.table.is_some()
                    && m.items.len() == items.len()
                    && m.items.iter().zip(&items).all(|(a, b)| a.path == b.path && a.hash == b.hash)
            });
            if same_as_latest {
                table_info = latest.as_ref().and_then(|m| m.table.clone());
            } else {
                match inspect_parts(&files, req.concurrency).await {
                    Ok((info, p)) => {
                        table_info = Some(info);
                        profile = Some(p);
                    }
                    Err(mut more) => problems.append(&mut more),
                }
            }
        }
        problems.sort_by(|a, b| a.path.cmp(&b.path));
        let mut outcome = AddOutcome {
            commit: None,
            problems,
            files: files.len(),
            bytes: files.iter().map(|f| f.stat.size).sum(),
            hashed: ingested.hashed,
            hashed_bytes: ingested.hashed_bytes,
            uploaded: ingested.uploaded,
            uploaded_bytes: ingested.uploaded_bytes,
            table: table_info.clone(),
        };
        if !outcome.problems.is_empty() {
            return Ok(outcome);
        }
        let mut manifest = Manifest::new(kind, items)?;
        manifest.table = table_info;
        let source = std::fs::canonicalize(&req.path).unwrap_or(req.path);
        let new = NewVersion {
            message: req.message,
            author: req.author,
            source: source.display().to_string(),
            description: req.description,
            derived_from: None,
            profile,
        };
        // Every item's content was just uploaded or found stored by the ingest.
        let stored: HashSet<String> = manifest.items.iter().map(|i| i.hash.clone()).collect();
        outcome.commit = Some(self.commit_checked(&req.dataset, &manifest, new, &stored).await?);
        Ok(outcome)
    }
}

impl Data {
    /// Commits items whose content a client has already put in the blob store (the HTTP path:
    /// clients without store credentials upload blobs, then name them). Tables are read back
    /// from the store for their schema, rows and profile; a folder's item metadata is profiled.
    /// Nothing is made unless every item's content is stored with its size.
    pub async fn commit_items(
        &self,
        name: &str,
        kind: Kind,
        items: Vec<crate::Item>,
        mut new: NewVersion,
    ) -> Result<Commit> {
        crate::check_name(name)?;
        let mut manifest = Manifest::new(kind, items)?;
        if kind == Kind::Table {
            if manifest.items.is_empty() {
                return Err(Error::invalid("a table needs at least one file"));
            }
            let mut formats = HashSet::new();
            for item in &manifest.items {
                let format = Format::of_path(&item.path).ok_or_else(|| {
                    Error::invalid(format!("'{}' is not a table file (.csv, .parquet)", item.path))
                })?;
                formats.insert(format);
                let digest = item.hash.parse::<slipway_core::Digest>()?;
                if self.blobs.size(&digest).await? != Some(item.size) {
                    return Err(Error::MissingContent { count: 1, example: item.path.clone() });
                }
            }
            if formats.len() > 1 {
                return Err(Error::invalid("a table's parts are all CSV or all Parquet, not both"));
            }
            let parts = self.table_bytes(&manifest).await?;
            let paths: Vec<String> = manifest.items.iter().map(|i| i.path.clone()).collect();
            let (info, profile) = tokio::task::spawn_blocking(move || {
                let mut read = Vec::new();
                for (path, bytes) in paths.into_iter().zip(parts) {
                    let format = Format::of_path(&path).unwrap_or(Format::Csv);
                    let inspected = Batches::open_bytes(bytes, format)
                        .and_then(|b| table::inspect(b, format))
                        .map_err(|e| Error::invalid(format!("{path}: {e}")))?;
                    read.push((path, inspected.0, inspected.1));
                }
                table::combine(read).map_err(|(path, e)| Error::invalid(format!("{path}: {e}")))
            })
            .await
            .map_err(|e| Error::Corrupt(format!("reading the table failed: {e}")))??;
            manifest.table = Some(info);
            new.profile = Some(profile);
        }
        self.commit(name, &manifest, new).await
    }
}

/// Reads every part of a table (in parallel), checks they share one schema and merges their
/// profiles. A part that changed since it was hashed is a problem.
async fn inspect_parts(
    files: &[LocalFile],
    concurrency: usize,
) -> std::result::Result<(TableInfo, Profile), Vec<Problem>> {
    type Inspected = std::result::Result<(TableInfo, Profile), String>;
    let results: Vec<(String, Inspected)> = futures::stream::iter(files.iter().cloned())
        .map(|file| async move {
            let rel = file.rel.clone();
            let done = tokio::task::spawn_blocking(move || inspect_one(&file))
                .await
                .unwrap_or_else(|e| Err(format!("reading the table failed: {e}")));
            (rel, done)
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let mut parts = Vec::new();
    let mut problems = Vec::new();
    for (path, r) in results {
        match r {
            Ok((info, profile)) => parts.push((path, info, profile)),
            Err(message) => problems.push(Problem { path, message }),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    table::combine(parts).map_err(|(path, message)| vec![Problem { path, message }])
}

fn inspect_one(file: &LocalFile) -> std::result::Result<(TableInfo, Profile), String> {
    let format = Format::of_path(&file.rel).ok_or("not a table file (.csv, .parquet)")?;
    let batches = Batches::open_file(&file.abs, format)?;
    let out = table::inspect(batches, format)?;
    let now = std::fs::metadata(&file.abs).map_err(|e| e.to_string())?;
    if now.len() != file.stat.size || ingest::stat_of(&now).mtime_ns != file.stat.mtime_ns {
        return Err("the file changed while it was being added".into());
    }
    Ok(out)
}
