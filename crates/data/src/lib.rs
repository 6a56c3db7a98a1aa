//! Datasets: named, immutable versions of a folder of files or a table, with content in the
//! blob store and lineage (parent version, source, author, message).
//!
//! [`Data`] is the store-side API (versions, manifests, diffs); [`ingest`] turns a local folder
//! into items (hashing on all cores, a stat cache so unchanged files are never re-hashed,
//! uploading only what the store lacks) and [`checkout`] writes a version back out, verified.
//! This crate knows nothing of HTTP or the command line.

pub mod checkout;
pub mod derive;
mod error;
pub mod ingest;
mod types;

use std::collections::HashSet;

use futures::{StreamExt, TryStreamExt};
use slipway_core::{Backend, BlobStore, Db, Digest, Migration, now_ms};
use sqlx::Row;
use sqlx::any::AnyRow;

pub use error::{Error, Result};
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
}

/// The outcome of [`Data::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub version: Version,
    /// False when the content equals the latest version's: nothing new was made.
    pub created: bool,
}

/// Datasets over the metadata and blob stores; cheap to clone.
#[derive(Clone, Debug)]
pub struct Data {
    db: Db,
    blobs: BlobStore,
}

const VERSION_COLUMNS: &str = "d.name, v.version, v.kind, v.manifest, v.parent, v.message, \
     v.author, v.source, v.items, v.bytes, v.created_at, v.derived_from";

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

    /// What changed from `a` to `b`.
    pub async fn diff(&self, a: &Version, b: &Version) -> Result<Diff> {
        let (ma, mb) = futures::try_join!(self.manifest(a), self.manifest(b))?;
        Ok(Diff::between(&ma, &mb))
    }

    /// Makes `manifest` the next version of dataset `name` (created if new), unless it equals
    /// the latest version's content. Every item's content must already be in the blob store
    /// (items already in the latest version are known to be); otherwise nothing is made.
    pub async fn commit(&self, name: &str, manifest: &Manifest, new: NewVersion) -> Result<Commit> {
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
        let mut to_check: Vec<&Item> =
            manifest.items.iter().filter(|i| !known.contains(&i.hash)).collect();
        to_check.sort_by(|a, b| a.hash.cmp(&b.hash));
        to_check.dedup_by(|a, b| a.hash == b.hash);
        let missing: Vec<String> = futures::stream::iter(to_check)
            .map(|item| async move {
                let digest = item
                    .hash
                    .parse::<Digest>()
                    .map_err(|_| Error::invalid(format!("bad hash of '{}'", item.path)))?;
                Ok::<_, Error>(match self.blobs.size(&digest).await? {
                    Some(size) if size == item.size => None,
                    _ => Some(item.path.clone()),
                })
            })
            .buffer_unordered(CHECK_CONCURRENCY)
            .try_filter_map(|m| async move { Ok(m) })
            .try_collect()
            .await?;
        if let Some(example) = missing.iter().min() {
            return Err(Error::MissingContent { count: missing.len(), example: example.clone() });
        }
        self.blobs.put_bytes(encoded.into()).await?;

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
             source, items, bytes, created_at, derived_from) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
