//! Turning a local folder into a version's items: walk it, hash what changed (on all cores),
//! upload only what the blob store lacks.
//!
//! A **stat cache** (as git's index) remembers, per file, size, modification and change times,
//! inode and the hash; a file whose stat is unchanged is not read again. An entry is trusted only
//! if the file was last modified at least [`RACY_NS`] before it was hashed, so a write that lands
//! within the file system's timestamp granularity of the hashing is never missed.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use slipway_core::{BlobStore, Digest};

use crate::error::{Error, Result};
use crate::types::{Item, check_item_path};

/// Files up to this size are read into memory once (hashed, then uploaded from memory); larger
/// ones are hashed streaming and, if the store lacks them, uploaded streaming.
const IN_MEMORY: u64 = 8 << 20;
/// A cache entry is trusted only for files modified this long before they were hashed.
pub const RACY_NS: i64 = 2_000_000_000;

/// A file found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// Path relative to the scanned root, `/`-separated.
    pub rel: String,
    pub abs: PathBuf,
    pub stat: Stat,
}

/// What the stat cache compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
}

impl Stat {
    fn of(meta: &std::fs::Metadata) -> Stat {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Stat {
                size: meta.len(),
                mtime_ns: meta
                    .mtime()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(meta.mtime_nsec()),
                ctime_ns: meta
                    .ctime()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(meta.ctime_nsec()),
                ino: meta.ino(),
            }
        }
        #[cfg(not(unix))]
        {
            let ns = |t: std::io::Result<SystemTime>| {
                t.ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos() as i64)
                    .unwrap_or(0)
            };
            Stat { size: meta.len(), mtime_ns: ns(meta.modified()), ctime_ns: 0, ino: 0 }
        }
    }
}

/// Something wrong with one item; the others go on, but no version is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// Finds the files under `root` (or `root` itself if it is a file). Symbolic links to files are
/// followed; links to folders, broken links and link loops are problems, as are names that are
/// not valid UTF-8 or not valid item paths.
pub fn scan(root: &Path) -> Result<(Vec<LocalFile>, Vec<Problem>)> {
    let meta = std::fs::metadata(root).map_err(|e| {
        Error::invalid(format!("cannot read '{}': {}", root.display(), io_reason(&e)))
    })?;
    let mut files = Vec::new();
    let mut problems = Vec::new();
    if meta.is_file() {
        let name = root.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        files.push(LocalFile { rel: name, abs: root.to_path_buf(), stat: Stat::of(&meta) });
        return Ok((files, problems));
    }
    let mut stack: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                problems.push(Problem { path: display_rel(&prefix), message: io_reason(&e) });
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    problems.push(Problem { path: display_rel(&prefix), message: io_reason(&e) });
                    continue;
                }
            };
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                problems.push(Problem {
                    path: format!("{}{}", prefix, entry.file_name().to_string_lossy()),
                    message: "the name is not valid UTF-8".into(),
                });
                continue;
            };
            let rel = format!("{prefix}{name}");
            let path = entry.path();
            let kind = match entry.file_type() {
                Ok(kind) => kind,
                Err(e) => {
                    problems.push(Problem { path: rel, message: io_reason(&e) });
                    continue;
                }
            };
            if kind.is_dir() {
                stack.push((path, format!("{rel}/")));
                continue;
            }
            // Files, and whatever links point to (metadata follows links).
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => {
                    if let Err(e) = check_item_path(&rel) {
                        problems.push(Problem { path: rel, message: e.to_string() });
                    } else {
                        files.push(LocalFile { rel, abs: path, stat: Stat::of(&m) });
                    }
                }
                Ok(m) if m.is_dir() => problems.push(Problem {
                    path: rel,
                    message: "a symbolic link to a folder (not followed)".into(),
                }),
                Ok(_) => problems.push(Problem {
                    path: rel,
                    message: "not a regular file (device, socket or pipe)".into(),
                }),
                Err(e) if kind.is_symlink() => problems.push(Problem {
                    path: rel,
                    message: format!("a broken symbolic link or a link loop ({})", io_reason(&e)),
                }),
                Err(e) => problems.push(Problem { path: rel, message: io_reason(&e) }),
            }
        }
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((files, problems))
}

/// The stat-cache view of a file's metadata.
pub(crate) fn stat_of(meta: &std::fs::Metadata) -> Stat {
    Stat::of(meta)
}

fn display_rel(prefix: &str) -> String {
    if prefix.is_empty() { ".".into() } else { prefix.trim_end_matches('/').into() }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheEntry {
    stat: Stat,
    /// When hashing began.
    seen_ns: i64,
    hash: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    root: String,
    entries: HashMap<String, CacheEntry>,
}

/// The stat cache of one root folder, kept in a file of its own.
#[derive(Debug)]
pub struct StatCache {
    path: Option<PathBuf>,
    file: CacheFile,
}

impl StatCache {
    /// The cache of `root` under `cache_dir` (a missing or unreadable cache is an empty one).
    pub fn open(cache_dir: &Path, root: &Path) -> StatCache {
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let key = blake3::hash(root.to_string_lossy().as_bytes()).to_hex();
        let path = cache_dir.join(format!("{}.json", &key[..32]));
        let file = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<CacheFile>(&bytes).ok())
            .filter(|f| f.root == root.to_string_lossy())
            .unwrap_or_else(|| CacheFile {
                root: root.to_string_lossy().into(),
                ..CacheFile::default()
            });
        StatCache { path: Some(path), file }
    }

    /// A cache that remembers nothing (`--no-cache`).
    pub fn disabled() -> StatCache {
        StatCache { path: None, file: CacheFile::default() }
    }

    fn lookup(&self, f: &LocalFile) -> Option<&str> {
        let e = self.file.entries.get(&f.rel)?;
        (e.stat == f.stat && f.stat.mtime_ns + RACY_NS <= e.seen_ns).then_some(e.hash.as_str())
    }

    /// Writes the cache, keeping only the entries of `files` (the files that exist now).
    pub fn save(&mut self, files: &[LocalFile]) -> std::io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let live: HashSet<&str> = files.iter().map(|f| f.rel.as_str()).collect();
        self.file.entries.retain(|rel, _| live.contains(rel.as_str()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec(&self.file).map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, path)
    }
}

/// Told about each file as it is done.
pub trait Progress: Send + Sync {
    /// The work ahead, once it is known.
    fn begin(&self, _files: u64, _bytes: u64) {}
    fn file_done(&self, bytes: u64);
}

impl Progress for () {
    fn file_done(&self, _bytes: u64) {}
}

/// The items of an ingest, and what it took.
#[derive(Debug, Default)]
pub struct Ingested {
    pub items: Vec<Item>,
    pub problems: Vec<Problem>,
    /// Files read and hashed (the others came from the stat cache).
    pub hashed: usize,
    pub hashed_bytes: u64,
    /// Blobs written (the others were in the store already).
    pub uploaded: usize,
    pub uploaded_bytes: u64,
}

enum Outcome {
    Done { item: Item, hashed: bool, uploaded: bool, entry: Option<CacheEntry> },
    Problem(Problem),
}

/// Hashes (or takes from the cache) every file and uploads the content the store lacks.
/// `known` are hashes whose content the store is known to hold (the latest version's).
pub async fn ingest(
    files: &[LocalFile],
    blobs: &BlobStore,
    cache: &mut StatCache,
    known: &HashSet<String>,
    progress: &dyn Progress,
    concurrency: usize,
) -> Ingested {
    let cached: HashMap<&str, String> = files
        .iter()
        .filter_map(|f| cache.lookup(f).map(|h| (f.rel.as_str(), h.to_string())))
        .collect();
    let cached = Arc::new(cached);
    // Hashes this ingest has taken on to store: equal files upload once.
    let claimed: Arc<std::sync::Mutex<HashSet<String>>> = Arc::default();
    // Small files go into packs (in a local store): far fewer files for the kernel to create.
    let bulk = blobs.bulk();
    let mut out = Ingested::default();
    let mut results = futures::stream::iter(files.iter().cloned())
        .map(|file| {
            let cached = cached.clone();
            let claimed = claimed.clone();
            let bulk = &bulk;
            async move {
                let hit = cached.get(file.rel.as_str()).cloned();
                let outcome = one_file(file, hit, blobs, bulk, known, &claimed).await;
                if let Outcome::Done { item, .. } = &outcome {
                    progress.file_done(item.size);
                }
                outcome
            }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(outcome) = results.next().await {
        match outcome {
            Outcome::Done { item, hashed, uploaded, entry } => {
                if hashed {
                    out.hashed += 1;
                    out.hashed_bytes += item.size;
                }
                if uploaded {
                    out.uploaded += 1;
                    out.uploaded_bytes += item.size;
                }
                if let Some(entry) = entry {
                    cache.file.entries.insert(item.path.clone(), entry);
                }
                out.items.push(item);
            }
            Outcome::Problem(p) => out.problems.push(p),
        }
    }
    drop(results);
    if let Err(e) = bulk.finish().await {
        out.problems.push(Problem {
            path: ".".into(),
            message: format!("storing the content failed: {e}"),
        });
    }
    out.items.sort_by(|a, b| a.path.cmp(&b.path));
    out.problems.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

async fn one_file(
    file: LocalFile,
    cached: Option<String>,
    blobs: &BlobStore,
    bulk: &slipway_core::Bulk,
    known: &HashSet<String>,
    claimed: &std::sync::Mutex<HashSet<String>>,
) -> Outcome {
    let problem = |message: String| Outcome::Problem(Problem { path: file.rel.clone(), message });
    let item = |hash: String| Item {
        path: file.rel.clone(),
        size: file.stat.size,
        hash,
        meta: Default::default(),
    };
    if let Some(hash) = cached {
        if known.contains(&hash) {
            return Outcome::Done { item: item(hash), hashed: false, uploaded: false, entry: None };
        }
        // Cached, but the store may not have it (another store, an interrupted add).
        if let Ok(digest) = hash.parse::<Digest>()
            && let Ok(Some(size)) = blobs.size(&digest).await
            && size == file.stat.size
        {
            return Outcome::Done { item: item(hash), hashed: false, uploaded: false, entry: None };
        }
    }
    let seen_ns = now_ns();
    let abs = file.abs.clone();
    let expected = file.stat;
    let read = tokio::task::spawn_blocking(move || read_and_hash(&abs, expected)).await;
    let (hash, bytes) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(message)) => return problem(message),
        Err(e) => return problem(format!("hashing failed: {e}")),
    };
    let entry = Some(CacheEntry { stat: file.stat, seen_ns, hash: hash.clone() });
    let digest: Digest = match hash.parse() {
        Ok(d) => d,
        Err(e) => return problem(e.to_string()),
    };
    let first = claimed.lock().map(|mut c| c.insert(hash.clone())).unwrap_or(true);
    // Content in memory goes straight to the put, which skips what the store has; a large file
    // is looked up first, so that it is not read a second time for nothing.
    let stored = known.contains(&hash)
        || !first
        || (bytes.is_none()
            && matches!(blobs.size(&digest).await, Ok(Some(size)) if size == file.stat.size));
    if stored {
        return Outcome::Done { item: item(hash), hashed: true, uploaded: false, entry };
    }
    let put = match bytes {
        Some(bytes) => bulk.put_hashed(digest, bytes.into()).await,
        None => blobs.put_file(&file.abs).await,
    };
    match put {
        Ok(outcome) if outcome.digest == digest => {
            Outcome::Done { item: item(hash), hashed: true, uploaded: !outcome.existed, entry }
        }
        Ok(_) => problem("the file changed while it was being added".into()),
        Err(e) => problem(format!("uploading failed: {e}")),
    }
}

/// Reads and hashes a file; small files come back in memory for the upload. Fails if the file
/// changes while it is read.
fn read_and_hash(
    path: &Path,
    expected: Stat,
) -> std::result::Result<(String, Option<Vec<u8>>), String> {
    let mut f = std::fs::File::open(path).map_err(|e| io_reason(&e))?;
    let mut hasher = blake3::Hasher::new();
    let mut kept = None;
    if expected.size <= IN_MEMORY {
        let mut buf = Vec::with_capacity(expected.size as usize);
        f.read_to_end(&mut buf).map_err(|e| io_reason(&e))?;
        hasher.update(&buf);
        kept = Some(buf);
    } else {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(|e| io_reason(&e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    let after = f.metadata().map(|m| Stat::of(&m)).map_err(|e| io_reason(&e))?;
    let read = kept.as_ref().map(|b| b.len() as u64);
    if after.size != expected.size
        || after.mtime_ns != expected.mtime_ns
        || read.is_some_and(|n| n != expected.size)
    {
        return Err("the file changed while it was being read".into());
    }
    Ok((hasher.finalize().to_hex().to_string(), kept))
}

/// Per-item metadata from a CSV file: a header row with a `path` column (paths relative to the
/// added folder) and any other columns, which become each item's metadata. Empty cells are left
/// out. A path listed twice, or a row without a path, is an error naming the line.
pub fn read_meta(
    csv_path: &Path,
) -> Result<HashMap<String, std::collections::BTreeMap<String, String>>> {
    let shown = csv_path.display();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(csv_path)
        .map_err(|e| Error::invalid(format!("cannot read the metadata file {shown}: {e}")))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| Error::invalid(format!("{shown}: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let Some(path_col) = headers.iter().position(|h| h == "path") else {
        return Err(Error::invalid(format!("{shown}: the header has no 'path' column")));
    };
    let mut out = HashMap::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| Error::invalid(format!("{shown}: {e}")))?;
        let path =
            record.get(path_col).unwrap_or_default().trim().trim_start_matches("./").to_string();
        if path.is_empty() {
            return Err(Error::invalid(format!("{shown}, line {line}: the path is empty")));
        }
        let meta: std::collections::BTreeMap<String, String> = headers
            .iter()
            .zip(record.iter())
            .enumerate()
            .filter(|(c, (_, v))| *c != path_col && !v.is_empty())
            .map(|(_, (k, v))| (k.clone(), v.to_string()))
            .collect();
        if out.insert(path.clone(), meta).is_some() {
            return Err(Error::invalid(format!("{shown}, line {line}: '{path}' is listed twice")));
        }
    }
    Ok(out)
}
