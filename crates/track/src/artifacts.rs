//! Artifacts: files logged under a path (`<experiment>/<run>/artifacts/model.onnx`), stored as
//! content-addressed blobs. A path row names a blob; the blob store holds the bytes once however
//! many paths name them.

use bytes::Bytes;
use futures::Stream;
use slipway_core::{BlobReader, BlobStore, Db, Digest, SafePath, Sql, now_ms};
use sqlx::Row;

use crate::error::{Error, Result};

/// One entry of a listing: a file (with its size) or a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactEntry {
    /// The name relative to the listed folder.
    pub path: String,
    pub is_dir: bool,
    pub size: Option<u64>,
}

/// A stored artifact file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactFile {
    pub path: SafePath,
    pub digest: Digest,
    pub size: u64,
    pub created_at: i64,
}

/// The artifact store over the metadata store and the blob store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Artifacts {
    db: Db,
    blobs: BlobStore,
}

impl Artifacts {
    pub fn new(db: Db, blobs: BlobStore) -> Artifacts {
        Artifacts { db, blobs }
    }

    /// Stores the bytes of `stream` at `path` (replacing what was there).
    pub async fn put<S>(&self, path: &str, stream: S) -> Result<ArtifactFile>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        let path = SafePath::parse(path)?;
        let outcome = self.blobs.put_stream(stream).await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO artifact_files (path, digest, size, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (path) DO UPDATE SET digest = excluded.digest, size = excluded.size, \
             created_at = excluded.created_at",
        )
        .bind(path.as_str())
        .bind(outcome.digest.to_hex())
        .bind(outcome.size as i64)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(ArtifactFile { path, digest: outcome.digest, size: outcome.size, created_at: now })
    }

    /// The file at `path`, if one is stored there.
    pub async fn file(&self, path: &str) -> Result<Option<ArtifactFile>> {
        let path = SafePath::parse(path)?;
        let row =
            sqlx::query("SELECT digest, size, created_at FROM artifact_files WHERE path = $1")
                .bind(path.as_str())
                .fetch_optional(self.db.pool())
                .await?;
        let Some(row) = row else { return Ok(None) };
        let digest: String = row.try_get("digest")?;
        Ok(Some(ArtifactFile {
            path,
            digest: digest.parse()?,
            size: row.try_get::<i64, _>("size")? as u64,
            created_at: row.try_get("created_at")?,
        }))
    }

    /// The verified bytes of a stored file.
    pub async fn open(&self, file: &ArtifactFile) -> Result<BlobReader> {
        Ok(self.blobs.get(&file.digest).await?)
    }

    /// The files and folders directly inside `dir` (the root when empty), names sorted. A path
    /// that is a file, or nothing, lists as empty.
    pub async fn list(&self, dir: &str) -> Result<Vec<ArtifactEntry>> {
        let prefix = match dir.trim_end_matches('/') {
            "" => String::new(),
            d => format!("{}/", SafePath::parse(d)?),
        };
        // Every path under the prefix, by a range scan of the primary key.
        let mut q = Sql::new("SELECT path, size FROM artifact_files WHERE path >= ");
        q.bind(prefix.as_str());
        if !prefix.is_empty() {
            let upper = format!("{}0", &prefix[..prefix.len() - 1]); // '0' sorts right after '/'
            q.push(" AND path < ").bind(upper);
        }
        q.push(" ORDER BY path");
        let rows = q.query(&self.db).fetch_all(self.db.pool()).await?;
        let mut entries: Vec<ArtifactEntry> = Vec::new();
        for row in rows {
            let path: String = row.try_get("path")?;
            let Some(rest) = path.strip_prefix(&prefix) else { continue };
            match rest.split_once('/') {
                Some((folder, _)) => {
                    if entries.last().is_none_or(|e| e.path != folder) {
                        entries.push(ArtifactEntry {
                            path: folder.to_string(),
                            is_dir: true,
                            size: None,
                        });
                    }
                }
                None => entries.push(ArtifactEntry {
                    path: rest.to_string(),
                    is_dir: false,
                    size: Some(row.try_get::<i64, _>("size")? as u64),
                }),
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        entries.dedup_by(|a, b| a.path == b.path && a.is_dir == b.is_dir);
        Ok(entries)
    }

    /// Removes the file at `path`, or every file under it if it is a folder. The blobs stay
    /// (other paths may name them).
    pub async fn delete(&self, path: &str) -> Result<u64> {
        let path = SafePath::parse(path)?;
        let folder = format!("{path}/");
        let upper = format!("{path}0");
        let done =
            sqlx::query("DELETE FROM artifact_files WHERE path = $1 OR (path >= $2 AND path < $3)")
                .bind(path.as_str())
                .bind(&folder)
                .bind(&upper)
                .execute(self.db.pool())
                .await?;
        if done.rows_affected() == 0 {
            return Err(Error::ArtifactNotFound { path: path.to_string() });
        }
        Ok(done.rows_affected())
    }
}
