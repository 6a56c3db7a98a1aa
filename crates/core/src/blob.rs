//! The content-addressed blob store: BLAKE3-named blobs on a local folder or S3-compatible
//! storage, through `object_store`.
//!
//! Every put is streamed (a large blob never sits whole in memory), atomic (a blob becomes
//! visible under its digest only once complete, so a crash mid-write leaves nothing half-made)
//! and deduplicating (content already stored is not rewritten). Every full read is verified:
//! the stream fails at its end if the bytes do not hash to the digest they were asked by.
//!
//! Layout under the store's prefix: `blobs/ab/abcdef…` for content, `tmp/<id>` for uploads in
//! flight (swept by [`BlobStore::sweep_tmp`]).

use std::fmt;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::error::{Error, Result};
use crate::pack::{self, PackWriter, Packs};

/// A BLAKE3 digest, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            use std::fmt::Write;
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Digest> {
        let bad = || Error::InvalidDigest { digest: s.chars().take(80).collect() };
        if s.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).map_err(|_| bad())?;
            if !hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
                return Err(bad());
            }
            out[i] = u8::from_str_radix(hex, 16).map_err(|_| bad())?;
        }
        Ok(Digest(out))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

/// Connection settings for S3-compatible storage. Unset fields fall back to the usual `AWS_*`
/// environment variables.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// e.g. `http://127.0.0.1:9000`; plain HTTP is allowed only when an endpoint is given.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// Tuning of uploads.
#[derive(Debug, Clone)]
pub struct BlobStoreOptions {
    /// Bytes per upload part; also the largest blob put in one request. At least 5 MiB for S3.
    pub chunk_size: usize,
    /// Parts uploaded at once. Memory held by one put is about `chunk_size * (concurrency + 1)`.
    pub concurrency: usize,
    pub s3: S3Options,
}

impl Default for BlobStoreOptions {
    fn default() -> BlobStoreOptions {
        BlobStoreOptions { chunk_size: 8 << 20, concurrency: 4, s3: S3Options::default() }
    }
}

/// What a put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutOutcome {
    pub digest: Digest,
    pub size: u64,
    /// True when the content was already stored and nothing was written.
    pub existed: bool,
}

/// The blob store; cheap to clone.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    location: String,
    options: Arc<BlobStoreOptions>,
    /// The folder of a local store: its uploads in flight are swept through the file system,
    /// which also sees the staging files `object_store` hides.
    local_root: Option<std::path::PathBuf>,
    /// A local store's packs of small blobs (see [`Bulk`]).
    packs: Option<Arc<Packs>>,
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStore").field("location", &self.location).finish()
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

impl BlobStore {
    /// Opens the store at `location`: a local folder path (created if missing), or
    /// `s3://bucket[/prefix]`.
    pub fn open(location: &str, options: BlobStoreOptions) -> Result<BlobStore> {
        let bad = |reason: String| Error::InvalidBlobLocation { location: location.into(), reason };
        if options.chunk_size < (5 << 20) && location.starts_with("s3://") {
            return Err(bad("S3 needs a chunk size of at least 5 MiB".into()));
        }
        if options.chunk_size == 0 || options.concurrency == 0 {
            return Err(bad("chunk size and concurrency must be positive".into()));
        }
        let mut local_root = None;
        let (store, prefix): (Arc<dyn ObjectStore>, ObjectPath) =
            if let Some(rest) = location.strip_prefix("s3://") {
                crate::init_tls();
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(bad("the bucket name is empty".into()));
                }
                let s3 = &options.s3;
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(s3.region.clone().unwrap_or_else(|| "us-east-1".into()));
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                if let Some(key) = &s3.access_key_id {
                    builder = builder.with_access_key_id(key);
                }
                if let Some(secret) = &s3.secret_access_key {
                    builder = builder.with_secret_access_key(secret);
                }
                let store = builder.build().map_err(|e| bad(e.to_string()))?;
                let prefix =
                    ObjectPath::parse(prefix.trim_matches('/')).map_err(|e| bad(e.to_string()))?;
                (Arc::new(store), prefix)
            } else {
                if location.contains("://") {
                    return Err(bad("expected a folder path or s3://bucket/prefix".into()));
                }
                std::fs::create_dir_all(location)
                    .map_err(|e| Error::io(format!("creating {location}"), e))?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(location)
                    .map_err(|e| bad(e.to_string()))?;
                local_root = Some(std::path::PathBuf::from(location));
                (Arc::new(store), ObjectPath::default())
            };
        let packs = local_root.as_deref().map(|root| Arc::new(Packs::new(root)));
        Ok(BlobStore {
            store,
            prefix,
            location: location.to_string(),
            options: Arc::new(options),
            local_root,
            packs,
        })
    }

    /// Where the store lives, as configured.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn blob_path(&self, digest: &Digest) -> ObjectPath {
        let hex = digest.to_hex();
        self.prefix.clone().join("blobs").join(&hex[..2]).join(hex.as_str())
    }

    fn tmp_dir(&self) -> ObjectPath {
        self.prefix.clone().join("tmp")
    }

    /// Stores `bytes`.
    pub async fn put_bytes(&self, bytes: Bytes) -> Result<PutOutcome> {
        self.put_stream(futures::stream::iter([Ok(bytes)])).await
    }

    /// Stores the file at `path`, reading it in chunks.
    pub async fn put_file(&self, path: &std::path::Path) -> Result<PutOutcome> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let stream = tokio_util_like::reader_stream(file, 1 << 20);
        self.put_stream(stream).await
    }

    /// Stores the bytes of `stream`, which may be of any length.
    pub async fn put_stream<S>(&self, stream: S) -> Result<PutOutcome>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        self.put_boxed(Box::pin(stream)).await
    }

    async fn put_boxed(&self, mut stream: ByteStream) -> Result<PutOutcome> {
        let chunk_size = self.options.chunk_size;
        let mut hasher = blake3::Hasher::new();
        let mut head = BytesMut::new();
        let read_err = |e: std::io::Error| Error::io("reading the blob's content", e);

        // Small blobs: hashed first, then written in one request straight to their final name.
        while head.len() <= chunk_size {
            match stream.next().await {
                Some(chunk) => head.extend_from_slice(&chunk.map_err(read_err)?),
                None => {
                    let bytes = head.freeze();
                    hasher.update(&bytes);
                    let digest = Digest(*hasher.finalize().as_bytes());
                    let size = bytes.len() as u64;
                    let path = self.blob_path(&digest);
                    if self.packed(&digest).await.is_some() || self.exists_at(&path).await? {
                        return Ok(PutOutcome { digest, size, existed: true });
                    }
                    if let Some(root) = &self.local_root {
                        // Locally: one create and one rename, in the blob's own folder (see
                        // `write_local`).
                        let target = root.join(path.as_ref());
                        tokio::task::spawn_blocking(move || write_local(&target, &bytes))
                            .await
                            .map_err(|e| Error::io("writing a blob", std::io::Error::other(e)))??;
                    } else {
                        // An S3 PUT is atomic by itself.
                        self.store.put(&path, PutPayload::from(bytes)).await?;
                    }
                    return Ok(PutOutcome { digest, size, existed: false });
                }
            }
        }

        // Large blobs: a multipart upload under tmp/, renamed to the digest's name when complete.
        let tmp = self.tmp_dir().join(crate::new_id());
        let upload = self.store.put_multipart(&tmp).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, chunk_size);
        let mut size = head.len() as u64;
        hasher.update(&head);
        writer.write(&head);
        drop(head);
        let streamed: Result<()> = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(read_err)?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
                writer.wait_for_capacity(self.options.concurrency).await?;
                writer.write(&chunk);
            }
            Ok(())
        }
        .await;
        if let Err(e) = streamed {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.finish().await?;
        let digest = Digest(*hasher.finalize().as_bytes());
        let path = self.blob_path(&digest);
        if self.exists_at(&path).await? {
            self.store.delete(&tmp).await?;
            return Ok(PutOutcome { digest, size, existed: true });
        }
        self.store.rename(&tmp, &path).await?;
        Ok(PutOutcome { digest, size, existed: false })
    }

    async fn exists_at(&self, path: &ObjectPath) -> Result<bool> {
        match self.store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The size of the blob, or `None` if it is not stored.
    pub async fn size(&self, digest: &Digest) -> Result<Option<u64>> {
        if let Some(loc) = self.packed(digest).await {
            return Ok(Some(loc.len));
        }
        match self.store.head(&self.blob_path(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Streams the blob's bytes. The stream's last item is an error if the content does not
    /// hash to `digest`.
    pub async fn get(&self, digest: &Digest) -> Result<BlobReader> {
        if let Some(loc) = self.packed(digest).await {
            let size = loc.len;
            let bytes = tokio::task::spawn_blocking(move || Packs::read_blob(&loc))
                .await
                .map_err(|e| Error::io("reading a pack", std::io::Error::other(e)))?
                .map_err(|e| Error::io(format!("reading blob {digest}"), e))?;
            let inner = futures::stream::iter([Ok(Bytes::from(bytes))]).boxed();
            return Ok(BlobReader {
                inner,
                hasher: Some(blake3::Hasher::new()),
                expected: *digest,
                size,
            });
        }
        let result = match self.store.get(&self.blob_path(digest)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::BlobNotFound { digest: digest.to_hex() });
            }
            Err(e) => return Err(e.into()),
        };
        let size = result.meta.size;
        let inner = result.into_stream().map_err(Error::from).boxed();
        Ok(BlobReader { inner, hasher: Some(blake3::Hasher::new()), expected: *digest, size })
    }

    /// Reads a whole blob into memory, verified. For small blobs.
    pub async fn read(&self, digest: &Digest) -> Result<Bytes> {
        let mut reader = self.get(digest).await?;
        let mut out = BytesMut::with_capacity(reader.size() as usize);
        while let Some(chunk) = reader.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out.freeze())
    }

    /// Where a local store packed `digest`, if it did.
    async fn packed(&self, digest: &Digest) -> Option<pack::Loc> {
        let packs = self.packs.clone()?;
        let digest = *digest;
        tokio::task::spawn_blocking(move || packs.find(&digest)).await.ok().flatten()
    }

    /// A writer for many blobs at once (an ingest): in a local store, blobs up to 8 MiB are
    /// appended to pack files instead of becoming a file each, and become visible when the
    /// writer's [`Bulk::finish`] seals them. Elsewhere the same as [`put_bytes`](Self::put_bytes).
    pub fn bulk(&self) -> Bulk {
        Bulk {
            store: self.clone(),
            writer: self.packs.clone().map(|p| Arc::new(PackWriter::new(p))),
        }
    }

    /// Removes the blob (no error if it was not there). Callers make sure nothing refers to it.
    /// A packed blob cannot be removed on its own (a repack would; none exists yet).
    pub async fn delete(&self, digest: &Digest) -> Result<()> {
        if self.packed(digest).await.is_some() {
            return Err(Error::InvalidArgument(format!(
                "blob {digest} is in a pack; packed blobs are not deleted one by one"
            )));
        }
        match self.store.delete(&self.blob_path(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes uploads in flight older than `age` (left by crashed writers): under `tmp/`, and
    /// in a local store the `.tmp-*` staging files beside the blobs. Returns how many.
    pub async fn sweep_tmp(&self, age: Duration) -> Result<usize> {
        if let Some(root) = &self.local_root {
            let root = root.clone();
            return tokio::task::spawn_blocking(move || {
                let mut removed = sweep_folder(&root.join("tmp"), age, |_| true)?;
                removed += Packs::new(&root).sweep(age)?;
                let blobs = match std::fs::read_dir(root.join("blobs")) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
                    Err(e) => return Err(Error::io("listing blobs", e)),
                };
                for dir in blobs.flatten() {
                    removed += sweep_folder(&dir.path(), age, |name| name.starts_with(STAGING))?;
                }
                Ok(removed)
            })
            .await
            .map_err(|e| Error::io("sweeping uploads", std::io::Error::other(e)))?;
        }
        let cutoff = crate::now_ms() - age.as_millis() as i64;
        let stale: Vec<ObjectPath> = self
            .store
            .list(Some(&self.tmp_dir()))
            .try_filter_map(|meta| async move {
                Ok((meta.last_modified.timestamp_millis() < cutoff).then_some(meta.location))
            })
            .try_collect()
            .await?;
        for path in &stale {
            match self.store.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(stale.len())
    }

    /// Checks that the store answers (a missing object is a fine answer).
    pub async fn check(&self) -> Result<()> {
        self.exists_at(&self.prefix.clone().join(".slipway-probe")).await.map(|_| ())
    }
}

/// Many puts at once (see [`BlobStore::bulk`]). Dropped without [`finish`](Self::finish),
/// what it packed stays invisible (and is swept).
pub struct Bulk {
    store: BlobStore,
    writer: Option<Arc<PackWriter>>,
}

impl Bulk {
    /// Stores `bytes` (packed, in a local store, if small).
    pub async fn put(&self, bytes: Bytes) -> Result<PutOutcome> {
        self.put_inner(None, bytes).await
    }

    /// Stores `bytes` whose digest the caller has just computed from these very bytes (an
    /// ingest hashes what it read), sparing a second hashing pass when they are packed. A
    /// wrong digest would not go unnoticed: every read verifies the content.
    pub async fn put_hashed(&self, digest: Digest, bytes: Bytes) -> Result<PutOutcome> {
        self.put_inner(Some(digest), bytes).await
    }

    async fn put_inner(&self, digest: Option<Digest>, bytes: Bytes) -> Result<PutOutcome> {
        let Some(writer) = self.writer.clone().filter(|_| bytes.len() <= pack::MAX_PACKED) else {
            return self.store.put_bytes(bytes).await;
        };
        let packs = self.store.packs.clone();
        let root = self.store.local_root.clone();
        tokio::task::spawn_blocking(move || {
            let digest = digest.unwrap_or_else(|| Digest::of(&bytes));
            let size = bytes.len() as u64;
            let hex = digest.to_hex();
            let loose = root.is_some_and(|r| r.join("blobs").join(&hex[..2]).join(&hex).exists());
            if loose || writer.pending(&digest) || packs.is_some_and(|p| p.find(&digest).is_some())
            {
                return Ok(PutOutcome { digest, size, existed: true });
            }
            writer.append(digest, &bytes)?;
            Ok(PutOutcome { digest, size, existed: false })
        })
        .await
        .map_err(|e| Error::io("packing a blob", std::io::Error::other(e)))?
    }

    /// Seals what was packed: afterwards every put is visible to every reader.
    pub async fn finish(self) -> Result<()> {
        let Some(writer) = self.writer else { return Ok(()) };
        tokio::task::spawn_blocking(move || writer.seal())
            .await
            .map_err(|e| Error::io("sealing a pack", std::io::Error::other(e)))?
    }
}

/// The name prefix of a local blob being written (hidden, and never a digest).
const STAGING: &str = ".tmp-";

/// Writes a small blob of a local store: into a staging file in the blob's own folder, then
/// renamed onto its name, so a crash leaves at most a `.tmp-*` file (swept later) and readers
/// see the whole blob or none. Staging beside the blob keeps the rename within one folder and
/// spreads file creation over the 256 `blobs/xx/` folders instead of one busy `tmp/` (creating
/// 20,000 files in one folder serialises on that folder's lock; renames across folders on the
/// file system's rename lock).
fn write_local(target: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = target
        .parent()
        .ok_or_else(|| Error::io("writing a blob", std::io::Error::other("no folder")))?;
    let staging = dir.join(format!("{STAGING}{}", crate::new_id()));
    let create = || std::fs::File::options().write(true).create_new(true).open(&staging);
    let mut file = match create() {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            create().map_err(|e| Error::io(format!("creating {}", staging.display()), e))?
        }
        Err(e) => return Err(Error::io(format!("creating {}", staging.display()), e)),
    };
    let written = file.write_all(bytes).and_then(|()| {
        drop(file);
        std::fs::rename(&staging, target)
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&staging);
        return Err(Error::io(format!("writing {}", target.display()), e));
    }
    Ok(())
}

/// Deletes the files in `dir` whose names pass `pick`, last modified more than `age` ago.
fn sweep_folder(
    dir: &std::path::Path,
    age: Duration,
    pick: impl Fn(&str) -> bool,
) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        if !entry.file_name().to_str().is_some_and(&pick) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let old = meta.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|e| e >= age);
        if meta.is_file() && old && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The verified byte stream of one blob.
pub struct BlobReader {
    inner: futures::stream::BoxStream<'static, Result<Bytes>>,
    hasher: Option<blake3::Hasher>,
    expected: Digest,
    size: u64,
}

impl BlobReader {
    /// The blob's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Stream for BlobReader {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(hasher) = this.hasher.as_mut() else { return Poll::Ready(None) };
        match this.inner.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                hasher.update(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.hasher = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                let actual = Digest(*hasher.finalize().as_bytes());
                this.hasher = None;
                if actual == this.expected {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(Error::BlobCorrupt {
                        digest: this.expected.to_hex(),
                        actual: actual.to_hex(),
                    })))
                }
            }
        }
    }
}

/// Reading an `AsyncRead` as a stream of chunks (what tokio-util's `ReaderStream` does).
mod tokio_util_like {
    use bytes::Bytes;
    use futures::Stream;
    use tokio::io::{AsyncRead, AsyncReadExt};

    pub(super) fn reader_stream<R: AsyncRead + Unpin + Send + 'static>(
        reader: R,
        chunk: usize,
    ) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        futures::stream::unfold(Some(reader), move |state| async move {
            let mut reader = state?;
            let mut buf = vec![0u8; chunk];
            let mut filled = 0;
            while filled < chunk {
                match reader.read(&mut buf[filled..]).await {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => return Some((Err(e), None)),
                }
            }
            if filled == 0 {
                return None;
            }
            buf.truncate(filled);
            Some((Ok(Bytes::from(buf)), Some(reader)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_through_hex() {
        let d = Digest::of(b"slipway");
        assert_eq!(d.to_hex().parse::<Digest>().unwrap(), d);
        assert!("zz".parse::<Digest>().is_err());
        assert!(d.to_hex().to_uppercase().parse::<Digest>().is_err());
        assert!(format!("{}x", &d.to_hex()[..63]).parse::<Digest>().is_err());
    }
}
