//! The blob store on a local folder and on a real S3-compatible server.

use bytes::Bytes;
use futures::StreamExt;
use slipway_core::testing::{BlobBackend, TestBlobs};
use slipway_core::{BlobStoreOptions, Digest, Error, on_both_blob_stores};

/// Deterministic pseudo-random bytes (xorshift), so large blobs need no memory to describe.
struct Noise(u64);

impl Noise {
    fn chunk(&mut self, len: usize) -> Bytes {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            out.extend_from_slice(&self.0.to_le_bytes());
        }
        out.truncate(len);
        Bytes::from(out)
    }
}

fn options() -> BlobStoreOptions {
    BlobStoreOptions { chunk_size: 5 << 20, concurrency: 2, ..BlobStoreOptions::default() }
}

async fn read_all(t: &TestBlobs, digest: &Digest) -> Vec<u8> {
    t.store.read(digest).await.unwrap().to_vec()
}

async fn small_blobs_round_trip_and_deduplicate(backend: BlobBackend) {
    let t = TestBlobs::with_options(backend, options());
    let first = t.store.put_bytes(Bytes::from_static(b"hello, falls")).await.unwrap();
    assert_eq!(first.digest, Digest::of(b"hello, falls"));
    assert_eq!(first.size, 12);
    assert!(!first.existed);
    let again = t.store.put_bytes(Bytes::from_static(b"hello, falls")).await.unwrap();
    assert!(again.existed);
    assert_eq!(again.digest, first.digest);
    assert_eq!(read_all(&t, &first.digest).await, b"hello, falls");
    assert_eq!(t.store.size(&first.digest).await.unwrap(), Some(12));
    let empty = t.store.put_bytes(Bytes::new()).await.unwrap();
    assert_eq!(empty.size, 0);
    assert_eq!(read_all(&t, &empty.digest).await, b"");
}

async fn large_blobs_stream_in_parts(backend: BlobBackend) {
    let t = TestBlobs::with_options(backend, options());
    let mut noise = Noise(7);
    // 23 MiB in uneven chunks: several upload parts and a short last one.
    let chunks: Vec<Bytes> = (0..23).map(|i| noise.chunk((1 << 20) + i * 977)).collect();
    let whole: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    let stream = futures::stream::iter(chunks.clone().into_iter().map(Ok));
    let put = t.store.put_stream(stream).await.unwrap();
    assert_eq!(put.digest, Digest::of(&whole));
    assert_eq!(put.size, whole.len() as u64);
    assert!(!put.existed);
    assert_eq!(read_all(&t, &put.digest).await, whole);
    let again =
        t.store.put_stream(futures::stream::iter(chunks.into_iter().map(Ok))).await.unwrap();
    assert!(again.existed);
}

async fn a_missing_blob_is_not_found(backend: BlobBackend) {
    let t = TestBlobs::new(backend);
    let digest = Digest::of(b"never stored");
    assert_eq!(t.store.size(&digest).await.unwrap(), None);
    match t.store.get(&digest).await {
        Err(Error::BlobNotFound { .. }) => {}
        other => panic!("expected BlobNotFound, got {:?}", other.map(|_| ())),
    }
}

async fn a_failed_upload_leaves_no_blob(backend: BlobBackend) {
    let t = TestBlobs::with_options(backend, options());
    let mut noise = Noise(11);
    let good: Vec<std::io::Result<Bytes>> = (0..8).map(|_| Ok(noise.chunk(1 << 20))).collect();
    let whole: Vec<u8> = good.iter().flat_map(|c| c.as_ref().unwrap().iter().copied()).collect();
    let failing = futures::stream::iter(
        good.into_iter().chain([Err(std::io::Error::other("client went away"))]),
    );
    let err = t.store.put_stream(failing).await.unwrap_err();
    assert!(err.to_string().contains("client went away"), "{err}");
    // What was streamed before the failure is not visible under any digest.
    assert_eq!(t.store.size(&Digest::of(&whole)).await.unwrap(), None);
    assert_eq!(
        t.store.sweep_tmp(std::time::Duration::ZERO).await.unwrap(),
        0,
        "upload not aborted"
    );
}

async fn two_gib_blob_with_bounded_memory(backend: BlobBackend) {
    const SIZE: usize = 2 << 30;
    const CHUNK: usize = 1 << 20;
    let t = TestBlobs::new(backend);
    // Measure this test's peak alone: reset the process's high-water mark first.
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting VmHWM");
    let mut noise = Noise(2026);
    let mut hasher = blake3::Hasher::new();
    let stream = futures::stream::iter(0..SIZE / CHUNK).map(move |_| {
        let chunk = noise.chunk(CHUNK);
        Ok(chunk)
    });
    let put = t.store.put_stream(stream).await.unwrap();
    assert_eq!(put.size, SIZE as u64);
    let mut reader = t.store.get(&put.digest).await.unwrap();
    let mut read = 0usize;
    let mut check = Noise(2026);
    let mut expected = BytesQueue::default();
    while let Some(chunk) = reader.next().await {
        let chunk = chunk.unwrap();
        hasher.update(&chunk);
        expected.compare(&chunk, &mut check);
        read += chunk.len();
    }
    assert_eq!(read, SIZE);
    assert_eq!(hasher.finalize().to_hex().as_str().parse::<Digest>().unwrap(), put.digest);
    let peak_kib = peak_rss_kib();
    assert!(peak_kib < 100 * 1024, "peak RSS {} MiB for a 2 GiB blob", peak_kib / 1024);
    eprintln!("2 GiB put + get on {backend:?}: peak RSS {} MiB", peak_kib / 1024);
    t.store.delete(&put.digest).await.unwrap();
}

/// Compares a read-back stream with the generator, whatever the chunk boundaries.
#[derive(Default)]
struct BytesQueue {
    pending: Vec<u8>,
}

impl BytesQueue {
    fn compare(&mut self, chunk: &[u8], noise: &mut Noise) {
        let mut offset = 0;
        while offset < chunk.len() {
            if self.pending.is_empty() {
                self.pending = noise.chunk(1 << 20).to_vec();
            }
            let n = self.pending.len().min(chunk.len() - offset);
            assert_eq!(&chunk[offset..offset + n], &self.pending[..n], "content differs");
            self.pending.drain(..n);
            offset += n;
        }
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A bulk writer's blobs are visible once it finishes, read back verified, and never stored twice.
async fn bulk_puts_are_visible_after_finish(backend: BlobBackend) {
    let t = TestBlobs::with_options(backend, options());
    let loose = t.store.put_bytes(Bytes::from_static(b"loose frame")).await.unwrap();
    let bulk = t.store.bulk();
    let mut noise = Noise(7);
    let contents: Vec<Bytes> = (0..50).map(|i| noise.chunk(1000 + i * 13)).collect();
    let mut digests = Vec::new();
    for c in &contents {
        let put = bulk.put(c.clone()).await.unwrap();
        assert!(!put.existed);
        digests.push(put.digest);
    }
    assert!(bulk.put(contents[3].clone()).await.unwrap().existed, "pending in this writer");
    assert!(bulk.put(Bytes::from_static(b"loose frame")).await.unwrap().existed, "stored loose");
    let big = noise.chunk(9 << 20);
    let big_put = bulk.put(big.clone()).await.unwrap();
    if backend == BlobBackend::Local {
        assert_eq!(t.store.size(&digests[0]).await.unwrap(), None, "not visible before finish");
    }
    bulk.finish().await.unwrap();
    for (c, d) in contents.iter().zip(&digests) {
        assert_eq!(t.store.size(d).await.unwrap(), Some(c.len() as u64));
        assert_eq!(read_all(&t, d).await, c.to_vec());
    }
    assert_eq!(read_all(&t, &big_put.digest).await, big.to_vec());
    assert_eq!(read_all(&t, &loose.digest).await, b"loose frame");
    // Another handle on the same store (another process) finds them too, and does not re-store.
    let other = slipway_core::BlobStore::open(&t.location, options_for(&t)).unwrap();
    assert_eq!(other.read(&digests[7]).await.unwrap(), contents[7]);
    assert!(other.put_bytes(contents[7].clone()).await.unwrap().existed);
    let second = other.bulk();
    assert!(second.put(contents[9].clone()).await.unwrap().existed);
    second.finish().await.unwrap();
}

fn options_for(t: &TestBlobs) -> BlobStoreOptions {
    BlobStoreOptions { s3: t.s3.clone(), ..options() }
}

on_both_blob_stores!(
    bulk_puts_are_visible_after_finish,
    small_blobs_round_trip_and_deduplicate,
    large_blobs_stream_in_parts,
    a_missing_blob_is_not_found,
    a_failed_upload_leaves_no_blob,
    two_gib_blob_with_bounded_memory,
);

#[tokio::test]
async fn corruption_is_detected_on_read() {
    let t = TestBlobs::new(BlobBackend::Local);
    let put = t.store.put_bytes(Bytes::from_static(b"original content")).await.unwrap();
    let hex = put.digest.to_hex();
    let file = std::path::Path::new(&t.location).join("blobs").join(&hex[..2]).join(&hex);
    std::fs::write(&file, b"tampered content").unwrap();
    let err = t.store.read(&put.digest).await.unwrap_err();
    assert!(matches!(err, Error::BlobCorrupt { .. }), "{err}");
}

#[tokio::test]
async fn packs_are_verified_swept_and_not_deleted_one_by_one() {
    let t = TestBlobs::new(BlobBackend::Local);
    let packs = std::path::Path::new(&t.location).join("packs");
    let bulk = t.store.bulk();
    let kept = bulk.put(Bytes::from_static(b"frame a")).await.unwrap();
    let other = bulk.put(Bytes::from_static(b"frame b")).await.unwrap();
    bulk.finish().await.unwrap();
    // A writer that dies before sealing leaves a pack without an index: invisible, then swept.
    let dying = t.store.bulk();
    let lost = dying.put(Bytes::from_static(b"never sealed")).await.unwrap();
    drop(dying);
    assert_eq!(t.store.size(&lost.digest).await.unwrap(), None);
    let count = |ext: &str| {
        std::fs::read_dir(&packs)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(ext))
            .count()
    };
    assert_eq!((count(".pack"), count(".idx")), (2, 1));
    assert_eq!(t.store.sweep_tmp(std::time::Duration::ZERO).await.unwrap(), 1);
    assert_eq!((count(".pack"), count(".idx")), (1, 1));
    assert_eq!(t.store.read(&kept.digest).await.unwrap(), Bytes::from_static(b"frame a"));
    let err = t.store.delete(&kept.digest).await.unwrap_err();
    assert!(err.to_string().contains("pack"), "{err}");
    // Damage inside the pack is caught on read.
    let pack = std::fs::read_dir(&packs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "pack"))
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&pack, bytes).unwrap();
    let damaged = t.store.read(&kept.digest).await.unwrap_err();
    let second = t.store.read(&other.digest).await.unwrap();
    assert!(matches!(damaged, Error::BlobCorrupt { .. }), "{damaged}");
    assert_eq!(second, Bytes::from_static(b"frame b"), "the rest of the pack reads");
}

#[tokio::test]
async fn sweeping_removes_abandoned_local_uploads() {
    let t = TestBlobs::new(BlobBackend::Local);
    let tmp = std::path::Path::new(&t.location).join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    // What a writer killed mid-upload leaves: a staging file object_store's listing hides.
    std::fs::write(tmp.join("0199abc#1"), b"partial").unwrap();
    std::fs::write(tmp.join("0199abd"), b"partial").unwrap();
    let kept = t.store.put_bytes(Bytes::from_static(b"complete")).await.unwrap();
    // A small blob is staged beside its final name; a crash there leaves a hidden .tmp- file.
    let hex = kept.digest.to_hex();
    let folder = std::path::Path::new(&t.location).join("blobs").join(&hex[..2]);
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 1, "no staging file left behind");
    std::fs::write(folder.join(".tmp-0199abe"), b"partial").unwrap();
    assert_eq!(
        t.store.sweep_tmp(std::time::Duration::from_secs(3600)).await.unwrap(),
        0,
        "too young"
    );
    assert_eq!(t.store.sweep_tmp(std::time::Duration::ZERO).await.unwrap(), 3);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 1, "the blob stays");
    assert_eq!(t.store.read(&kept.digest).await.unwrap(), Bytes::from_static(b"complete"));
}

#[test]
fn bad_locations_are_refused() {
    use slipway_core::BlobStore;
    for location in ["file:///etc", "http://example/x", "s3://"] {
        let err = BlobStore::open(location, BlobStoreOptions::default()).unwrap_err();
        assert_eq!(err.code().http_status(), 400, "{location}: {err}");
    }
}
