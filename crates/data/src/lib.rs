//! Datasets: named, immutable versions of a folder of files or a table, with content in the
//! blob store and lineage (parent version, source, author, message).
//!
//! [`Data`] is the store-side API (versions, manifests, diffs); [`ingest`] turns a local folder
//! into items (hashing on all cores, a stat cache so unchanged files are never re-hashed,
//! uploading only what the store lacks) and [`checkout`] writes a version back out, verified.
//! This crate knows nothing of HTTP or the command line.

pub mod add;
pub mod checkout;
pub mod derive;
mod error;
pub mod example;
pub mod ingest;
pub mod profile;
pub mod table;
mod types;

use std::collections::HashSet;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use slipway_core::{Backend, BlobStore, Db, Digest, Migration, now_ms};
use sqlx::Row;
use sqlx::any::AnyRow;

pub use error::{Error, Result};
pub use profile::Profile;
pub use types::{
    Dataset, Diff, Item, Kind, Manifest, Version, VersionRef, check_item_path, check_name,
};

/// The data stage's schema.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "datasets",
        sqlite: include_str!("../migrations/sqlite/0001_datasets.sql"),
        postgres: include_str!("../migrations/postgres/0001_datasets.sql"),
    },
    Migration {
        version: 2,
        name: "derived versions",
        sqlite: include_str!("../migrations/sqlite/0002_derived_from.sql"),
        postgres: include_str!("../migrations/postgres/0002_derived_from.sql"),
    },
    Migration {
        version: 3,
        name: "profiles",
        sqlite: include_str!("../migrations/sqlite/0003_profiles.sql"),
        postgres: include_str!("../migrations/postgres/0003_profiles.sql"),
    },
];

/// How many blob-store lookups run at once when a new version's content is checked.
const CHECK_CONCURRENCY: usize = 32;

/// What a new version records besides its items.
#[derive(Debug, Clone, Default)]
pub struct NewVersion {
    pub message: String,
    pub author: String,
    pub source: String,
    pub description: Option<String>,
    /// The version this one was made from (`name@N`), for samples and splits.
    pub derived_from: Option<String>,
    /// The content's profile. For tables the caller gives it (it reads the rows); for folders
    /// whose items carry metadata, [`Data::commit`] profiles the metadata when this is `None`.
    pub profile: Option<Profile>,
}

/// The outcome of [`Data::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub version: Version,
    /// False when the content equals the latest version's: nothing new was made.
    pub created: bool,
}

/// A page of a table's rows (see [`Data::table_rows`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowPage {
    pub columns: Vec<String>,
    /// Cells in Arrow's text form; `None` for null.
    pub rows: Vec<Vec<Option<String>>>,
    /// Rows in the whole table.
    pub total: u64,
}

/// Datasets over the metadata and blob stores; cheap to clone.
#[derive(Clone, Debug)]
pub struct Data {
    db: Db,
    blobs: BlobStore,
}

const VERSION_COLUMNS: &str = "d.name, v.version, v.kind, v.manifest, v.parent, v.message, \
     v.author, v.source, v.items, v.bytes, v.created_at, v.derived_from, v.profile";

fn version_from_row(row: &AnyRow) -> Result<Version> {
    Ok(Version {
        dataset: row.try_get("name")?,
        version: row.try_get("version")?,
        kind: Kind::parse(&row.try_get::<String, _>("kind")?)?,
        manifest: row.try_get("manifest")?,
        parent: row.try_get("parent")?,
        message: row.try_get("message")?,
        author: row.try_get("author")?,
        source: row.try_get("source")?,
        items: row.try_get("items")?,
        bytes: row.try_get("bytes")?,
        created_at: row.try_get("created_at")?,
        derived_from: row.try_get("derived_from")?,
        profile: row.try_get("profile")?,
    })
}

impl Data {
    /// Opens the data stage on the stores, bringing its schema up to date.
    pub async fn open(db: Db, blobs: BlobStore) -> Result<Data> {
        db.migrate("data", MIGRATIONS).await?;
        Ok(Data { db, blobs })
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Every dataset, by name.
    pub async fn datasets(&self) -> Result<Vec<Dataset>> {
        let rows = sqlx::query(
            "SELECT d.name, d.description, d.created_at, \
             (SELECT MAX(v.version) FROM dataset_versions v WHERE v.dataset_id = d.dataset_id) AS latest \
             FROM datasets d ORDER BY d.name",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(dataset_from_row).collect()
    }

    pub async fn dataset(&self, name: &str) -> Result<Dataset> {
        check_name(name)?;
        let row = sqlx::query(
            "SELECT d.name, d.description, d.created_at, \
             (SELECT MAX(v.version) FROM dataset_versions v WHERE v.dataset_id = d.dataset_id) AS latest \
             FROM datasets d WHERE d.name = $1",
        )
        .bind(name)
        .fetch_optional(self.db.pool())
        .await?;
        match row {
            Some(row) => dataset_from_row(&row),
            None => Err(Error::DatasetNotFound { name: name.to_string() }),
        }
    }

    /// A dataset's versions, newest first.
    pub async fn log(&self, name: &str) -> Result<Vec<Version>> {
        self.dataset(name).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM dataset_versions v JOIN datasets d ON d.dataset_id = v.dataset_id \
             WHERE d.name = $1 ORDER BY v.version DESC"
        )))
        .bind(name)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(version_from_row).collect()
    }

    /// The version `r` names (`NAME`, `NAME@N`, `NAME@latest`).
    pub async fn resolve(&self, r: &VersionRef) -> Result<Version> {
        let dataset = self.dataset(&r.name).await?;
        let not_found = || Error::VersionNotFound {
            name: r.name.clone(),
            version: r.version.map(|v| v.to_string()).unwrap_or_else(|| "yet".into()),
        };
        let number = match r.version.or(dataset.latest) {
            Some(n) => n,
            None => return Err(not_found()),
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM dataset_versions v JOIN datasets d ON d.dataset_id = v.dataset_id \
             WHERE d.name = $1 AND v.version = $2"
        )))
        .bind(&r.name)
        .bind(number)
        .fetch_optional(self.db.pool())
        .await?;
        match row {
            Some(row) => version_from_row(&row),
            None => Err(not_found()),
        }
    }

    /// A version's items, read from the blob store (verified).
    pub async fn manifest(&self, version: &Version) -> Result<Manifest> {
        let digest = version.manifest.parse::<Digest>().map_err(|_| {
            Error::Corrupt(format!("{} has a bad manifest digest", version.label()))
        })?;
        Manifest::decode(&self.blobs.read(&digest).await?)
    }

    /// A version's profile, if it has one.
    pub async fn profile(&self, version: &Version) -> Result<Option<Profile>> {
        let Some(hex) = &version.profile else { return Ok(None) };
        let digest = hex
            .parse::<Digest>()
            .map_err(|_| Error::Corrupt(format!("{} has a bad profile digest", version.label())))?;
        Profile::decode(&self.blobs.read(&digest).await?).map(Some)
    }

    /// What changed from `a` to `b`: items, and for two tables their schema and rows.
    pub async fn diff(&self, a: &Version, b: &Version) -> Result<Diff> {
        let (ma, mb) = futures::try_join!(self.manifest(a), self.manifest(b))?;
        let mut diff = Diff::between(&ma, &mb);
        if let (Some(ta), Some(tb)) = (&ma.table, &mb.table) {
            let (pa, pb) = futures::try_join!(self.table_bytes(&ma), self.table_bytes(&mb))?;
            let open = |parts: &[Bytes], format| {
                parts
                    .iter()
                    .map(|b| table::Batches::open_bytes(b.clone(), format))
                    .collect::<std::result::Result<Vec<_>, String>>()
            };
            let (ta, tb) = (ta.clone(), tb.clone());
            let rows = tokio::task::spawn_blocking(move || {
                table::diff_tables(&ta, &tb, &|| open(&pa, ta.format), &|| open(&pb, tb.format))
            })
            .await
            .map_err(|e| Error::Corrupt(format!("the table diff failed: {e}")))?
            .map_err(|e| Error::Corrupt(format!("a stored table does not read: {e}")))?;
            diff.table = Some(rows);
        }
        Ok(diff)
    }

    /// The content of a table version's files, in path order (verified reads).
    pub async fn table_bytes(&self, manifest: &Manifest) -> Result<Vec<Bytes>> {
        let mut out = Vec::with_capacity(manifest.items.len());
        for item in &manifest.items {
            let digest = item
                .hash
                .parse::<Digest>()
                .map_err(|_| Error::Corrupt(format!("bad hash of '{}'", item.path)))?;
            out.push(self.blobs.read(&digest).await?);
        }
        Ok(out)
    }

    /// A page of a table version's rows, cells as text.
    pub async fn table_rows(
        &self,
        version: &Version,
        offset: u64,
        limit: usize,
    ) -> Result<RowPage> {
        let (info, parts) = self.table_batches(version).await?;
        let columns: Vec<String> = info.columns.iter().map(|c| c.name.clone()).collect();
        let rows = tokio::task::spawn_blocking(move || -> std::result::Result<_, String> {
            let mut skip = offset;
            let mut rows = Vec::new();
            for part in parts {
                for batch in part {
                    let batch = batch?;
                    let n = batch.num_rows() as u64;
                    if skip >= n {
                        skip -= n;
                        continue;
                    }
                    let want: Vec<usize> =
                        (skip as usize..batch.num_rows()).take(limit - rows.len()).collect();
                    skip = 0;
                    rows.extend(table::rows_text(&batch, &want)?);
                    if rows.len() >= limit {
                        return Ok(rows);
                    }
                }
            }
            Ok(rows)
        })
        .await
        .map_err(|e| Error::Corrupt(format!("reading rows failed: {e}")))?
        .map_err(|e| Error::Corrupt(format!("{} does not read: {e}", version.label())))?;
        Ok(RowPage { columns, rows, total: info.rows })
    }

    /// A table version's record batches, part after part.
    pub async fn table_batches(
        &self,
        version: &Version,
    ) -> Result<(table::TableInfo, Vec<table::Batches>)> {
        let manifest = self.manifest(version).await?;
        let Some(info) = manifest.table.clone() else {
            return Err(Error::invalid(format!(
                "{} is a folder of files, not a table",
                version.label()
            )));
        };
        let parts = self
            .table_bytes(&manifest)
            .await?
            .into_iter()
            .map(|b| table::Batches::open_bytes(b, info.format))
            .collect::<std::result::Result<Vec<_>, String>>()
            .map_err(|e| Error::Corrupt(format!("{} does not read: {e}", version.label())))?;
        Ok((info, parts))
    }

    /// Makes `manifest` the next version of dataset `name` (created if new), unless it equals
    /// the latest version's content. Every item's content must already be in the blob store
    /// (items already in the latest version are known to be); otherwise nothing is made.
    pub async fn commit(&self, name: &str, manifest: &Manifest, new: NewVersion) -> Result<Commit> {
        self.commit_checked(name, manifest, new, &HashSet::new()).await
    }

    /// [`commit`](Self::commit), told which contents this process has just seen stored (an
    /// ingest that uploaded them or found them), so only the rest is looked up.
    pub(crate) async fn commit_checked(
        &self,
        name: &str,
        manifest: &Manifest,
        new: NewVersion,
        stored: &HashSet<String>,
    ) -> Result<Commit> {
        check_name(name)?;
        let encoded = manifest.encode();
        let manifest_digest = Digest::of(&encoded);
        let latest = match self.resolve(&VersionRef { name: name.into(), version: None }).await {
            Ok(v) => Some(v),
            Err(Error::DatasetNotFound { .. } | Error::VersionNotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        if let Some(latest) = &latest
            && latest.manifest == manifest_digest.to_hex()
        {
            return Ok(Commit { version: latest.clone(), created: false });
        }
        // Content check, before anything is written.
        let known: HashSet<String> = match &latest {
            Some(v) => self.manifest(v).await?.items.into_iter().map(|i| i.hash).collect(),
            None => HashSet::new(),
        };
        // Owned values in the stream: futures that borrow across `buffer_unordered` are not
        // `Send` for every lifetime, which a server's handlers need.
        let mut to_check: Vec<(String, String, u64)> = manifest
            .items
            .iter()
            .filter(|i| !known.contains(&i.hash) && !stored.contains(&i.hash))
            .map(|i| (i.hash.clone(), i.path.clone(), i.size))
            .collect();
        to_check.sort();
        to_check.dedup_by(|a, b| a.0 == b.0);
        let blobs = self.blobs.clone();
        let missing: Vec<String> = futures::stream::iter(to_check)
            .map(move |(hash, path, size)| {
                let blobs = blobs.clone();
                async move {
                    let digest = hash
                        .parse::<Digest>()
                        .map_err(|_| Error::invalid(format!("bad hash of '{path}'")))?;
                    Ok::<_, Error>(match blobs.size(&digest).await? {
                        Some(stored) if stored == size => None,
                        _ => Some(path),
                    })
                }
            })
            .buffer_unordered(CHECK_CONCURRENCY)
            .try_filter_map(|m| async move { Ok(m) })
            .try_collect()
            .await?;
        if let Some(example) = missing.iter().min() {
            return Err(Error::MissingContent { count: missing.len(), example: example.clone() });
        }
        self.blobs.put_bytes(encoded.into()).await?;
        let profile = match new.profile {
            Some(p) => Some(p),
            None if manifest.kind == Kind::Files => profile::of_metadata(&manifest.items),
            None => None,
        };
        let profile_digest = match profile {
            Some(p) => Some(self.blobs.put_bytes(p.encode().into()).await?.digest.to_hex()),
            None => None,
        };

        let now = now_ms();
        let mut tx = self.db.begin_write().await?;
        let lock = if self.db.backend() == Backend::Postgres { " FOR UPDATE" } else { "" };
        let existing = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT dataset_id FROM datasets WHERE name = $1{lock}"
        )))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let dataset_id: i64 = match existing {
            Some(row) => row.try_get("dataset_id")?,
            None => sqlx::query(
                "INSERT INTO datasets (name, description, created_at) VALUES ($1, $2, $3) RETURNING dataset_id",
            )
            .bind(name)
            .bind(new.description.clone().unwrap_or_default())
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| {
                if slipway_core::is_unique_violation(&e) {
                    Error::invalid(format!("dataset '{name}' was created concurrently; try again"))
                } else {
                    e.into()
                }
            })?
            .try_get("dataset_id")?,
        };
        let row = sqlx::query(
            "SELECT version, manifest FROM dataset_versions WHERE dataset_id = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(dataset_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (parent, parent_manifest) = match row {
            Some(row) => (
                Some(row.try_get::<i64, _>("version")?),
                Some(row.try_get::<String, _>("manifest")?),
            ),
            None => (None, None),
        };
        if parent_manifest.as_deref() == Some(manifest_digest.to_hex().as_str()) {
            // Someone committed the same content meanwhile.
            tx.rollback().await?;
            let same = self.resolve(&VersionRef { name: name.into(), version: parent }).await?;
            return Ok(Commit { version: same, created: false });
        }
        let number = parent.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO dataset_versions (dataset_id, version, kind, manifest, parent, message, author, \
             source, items, bytes, created_at, derived_from, profile) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(dataset_id)
        .bind(number)
        .bind(manifest.kind.as_str())
        .bind(manifest_digest.to_hex())
        .bind(parent)
        .bind(&new.message)
        .bind(&new.author)
        .bind(&new.source)
        .bind(manifest.items.len() as i64)
        .bind(manifest.bytes() as i64)
        .bind(now)
        .bind(&new.derived_from)
        .bind(&profile_digest)
        .execute(&mut *tx)
        .await?;
        if let Some(description) = new.description.filter(|d| !d.is_empty()) {
            sqlx::query("UPDATE datasets SET description = $1 WHERE dataset_id = $2")
                .bind(description)
                .bind(dataset_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let version =
            self.resolve(&VersionRef { name: name.into(), version: Some(number) }).await?;
        Ok(Commit { version, created: true })
    }
}

fn dataset_from_row(row: &AnyRow) -> Result<Dataset> {
    Ok(Dataset {
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        latest: row.try_get("latest")?,
    })
}
