//! Writing a version's files into a folder: in parallel, each verified against its hash while it
//! streams, so what lands on disk is byte-identical to what was added.
//!
//! The destination must be missing or empty, so nothing already there (a symbolic link planted
//! on the way, an older file) can redirect or mix into the checkout. Item paths were checked
//! when the version was made and are checked again here.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use slipway_core::{BlobStore, Digest};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::ingest::Progress;
use crate::types::{Item, Manifest, check_item_path};

/// What a checkout wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckedOut {
    pub files: usize,
    pub bytes: u64,
}

/// Writes every item of `manifest` under `dest`.
pub async fn checkout(
    blobs: &BlobStore,
    manifest: &Manifest,
    dest: &Path,
    progress: &dyn Progress,
    concurrency: usize,
) -> Result<CheckedOut> {
    prepare(dest)?;
    // After the first failure no new write starts; those already started finish (or remove
    // their file), so an error leaves only whole, verified files behind.
    let failed = std::sync::atomic::AtomicBool::new(false);
    let failed = &failed;
    let mut writes = futures::stream::iter(manifest.items.iter())
        .map(|item| async move {
            if failed.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(None);
            }
            let written = write_item(blobs, item, dest).await;
            match &written {
                Ok(()) => progress.file_done(item.size),
                Err(_) => failed.store(true, std::sync::atomic::Ordering::Relaxed),
            }
            written.map(|()| Some(item.size))
        })
        .buffer_unordered(concurrency.max(1));
    let mut out = CheckedOut::default();
    let mut first_error = None;
    while let Some(written) = writes.next().await {
        match written {
            Ok(Some(bytes)) => {
                out.bytes += bytes;
                out.files += 1;
            }
            Ok(None) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

fn prepare(dest: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(dest)
            .map_err(|e| Error::invalid(format!("cannot create '{}': {e}", dest.display()))),
        Err(e) => Err(Error::invalid(format!("cannot read '{}': {e}", dest.display()))),
        Ok(m) if !m.is_dir() => {
            Err(Error::invalid(format!("'{}' exists and is not a folder", dest.display())))
        }
        Ok(_) => {
            let mut entries = std::fs::read_dir(dest)
                .map_err(|e| Error::invalid(format!("cannot read '{}': {e}", dest.display())))?;
            if entries.next().is_some() {
                return Err(Error::invalid(format!(
                    "'{}' is not empty; check out into a new or empty folder",
                    dest.display()
                )));
            }
            Ok(())
        }
    }
}

async fn write_item(blobs: &BlobStore, item: &Item, dest: &Path) -> Result<()> {
    check_item_path(&item.path)?;
    let target: PathBuf = item.path.split('/').fold(dest.to_path_buf(), |p, c| p.join(c));
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(|e| {
            Error::invalid(format!("cannot create the folder of '{}': {e}", item.path))
        })?;
    }
    let digest: Digest = item.hash.parse()?;
    let mut reader = blobs.get(&digest).await?;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
        .await
        .map_err(|e| Error::invalid(format!("cannot write '{}': {e}", item.path)))?;
    let mut written = 0u64;
    let result: Result<()> = async {
        while let Some(chunk) = reader.next().await {
            let chunk = chunk?;
            written += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|e| Error::invalid(format!("cannot write '{}': {e}", item.path)))?;
        }
        file.flush()
            .await
            .map_err(|e| Error::invalid(format!("cannot write '{}': {e}", item.path)))?;
        if written != item.size {
            return Err(Error::Corrupt(format!(
                "'{}' is {written} bytes in the store, the version says {}",
                item.path, item.size
            )));
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&target).await;
    }
    result
}
