//! Datasets on both metadata stores and both blob stores: versions, ingest with its stat cache,
//! byte-identical checkout, diffs, and what bad input does.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

mod tables;

use slipway_core::testing::{BlobBackend, TestBlobs, TestDb};
use slipway_core::{Backend, on_both_backends, on_both_blob_stores};
use slipway_data::ingest::{self, StatCache};
use slipway_data::{Data, Error, Item, Kind, Manifest, NewVersion, VersionRef};

/// Writes `files` under `root`, each modified an hour ago (so the stat cache may trust them).
fn write_files(root: &Path, files: &[(&str, &[u8])]) {
    for (rel, bytes) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        age(&path);
    }
}

fn age(path: &Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(3600)).unwrap();
}

fn new(message: &str) -> NewVersion {
    NewVersion {
        message: message.into(),
        author: "test".into(),
        source: "here".into(),
        description: None,
        derived_from: None,
        profile: None,
    }
}

/// Scans, ingests and commits `root` as the next version of `name`.
async fn add(
    data: &Data,
    cache: &mut StatCache,
    root: &Path,
    name: &str,
) -> (slipway_data::Commit, ingest::Ingested) {
    let (files, problems) = ingest::scan(root).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let known: HashSet<String> = match data.resolve(&VersionRef::parse(name).unwrap()).await {
        Ok(v) => data.manifest(&v).await.unwrap().items.into_iter().map(|i| i.hash).collect(),
        Err(_) => HashSet::new(),
    };
    let ingested = ingest::ingest(&files, data.blobs(), cache, &known, &(), 4).await;
    assert!(ingested.problems.is_empty(), "{:?}", ingested.problems);
    cache.save(&files).unwrap();
    let manifest = Manifest::new(Kind::Files, ingested.items.clone()).unwrap();
    let commit = data.commit(name, &manifest, new("add")).await.unwrap();
    (commit, ingested)
}

fn clip(i: usize) -> Vec<u8> {
    // Distinct, not tiny, some bigger than a blob chunk would be for tiny chunk sizes.
    (0..(1000 + i * 37)).map(|j| ((i * 31 + j * 7) % 251) as u8).collect()
}

async fn versions_add_checkout_and_diff(blobs: BlobBackend) {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = TestBlobs::new(blobs);
    let data = Data::open(db.db.clone(), store.store.clone()).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("clips");
    let contents: Vec<(String, Vec<u8>)> =
        (0..40).map(|i| (format!("ward{}/clip-{i:03}.json", i % 3), clip(i))).collect();
    let files: Vec<(&str, &[u8])> =
        contents.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
    write_files(&root, &files);
    write_files(&root, &[("odd name #1 %20.txt", b"same"), ("copy.txt", b"same")]);
    let mut cache = StatCache::open(&work.path().join("cache"), &root);

    let (first, ingested) = add(&data, &mut cache, &root, "falls").await;
    assert!(first.created);
    assert_eq!(first.version.version, 1);
    assert_eq!((ingested.hashed, ingested.uploaded), (42, 41), "two files share content");

    // Again: nothing read, nothing uploaded, no new version.
    let mut cache = StatCache::open(&work.path().join("cache"), &root);
    let (again, ingested) = add(&data, &mut cache, &root, "falls").await;
    assert!(!again.created);
    assert_eq!(again.version.version, 1);
    assert_eq!((ingested.hashed, ingested.uploaded), (0, 0));

    // One file changes: one file read, one blob uploaded, one version whose diff names it.
    write_files(&root, &[("ward1/clip-004.json", b"fallen")]);
    let (second, ingested) = add(&data, &mut cache, &root, "falls").await;
    assert_eq!((second.created, second.version.version, second.version.parent), (true, 2, Some(1)));
    assert_eq!((ingested.hashed, ingested.uploaded), (1, 1));
    let diff = data.diff(&first.version, &second.version).await.unwrap();
    assert!(diff.added.is_empty() && diff.removed.is_empty());
    assert_eq!(
        diff.changed.iter().map(|(a, _)| a.path.as_str()).collect::<Vec<_>>(),
        ["ward1/clip-004.json"]
    );
    assert_eq!(diff.unchanged, 41);

    // Checkout of version 1 is byte-identical to what was added then.
    let out = work.path().join("out");
    let v1 = data.resolve(&VersionRef::parse("falls@1").unwrap()).await.unwrap();
    let manifest = data.manifest(&v1).await.unwrap();
    let done =
        slipway_data::checkout::checkout(data.blobs(), &manifest, &out, &(), 4).await.unwrap();
    assert_eq!(done.files, 42);
    for (rel, bytes) in &contents {
        assert_eq!(&std::fs::read(out.join(rel)).unwrap(), bytes, "{rel}");
    }
    assert_eq!(std::fs::read(out.join("odd name #1 %20.txt")).unwrap(), b"same");
    // Into a folder that is not empty: refused, nothing written.
    let err =
        slipway_data::checkout::checkout(data.blobs(), &manifest, &out, &(), 4).await.unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");

    // A checkout that hits missing content fails and leaves only whole, verified files.
    let mut broken = manifest.items.clone();
    broken.insert(
        5,
        Item {
            path: "ward0/missing.bin".into(),
            size: 9,
            hash: "cd".repeat(32),
            meta: Default::default(),
        },
    );
    let broken = Manifest::new(Kind::Files, broken).unwrap();
    let out2 = work.path().join("out2");
    let err =
        slipway_data::checkout::checkout(data.blobs(), &broken, &out2, &(), 4).await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!out2.join("ward0/missing.bin").exists());
    let by_path: std::collections::HashMap<&str, &Vec<u8>> =
        contents.iter().map(|(p, b)| (p.as_str(), b)).collect();
    let (written, _) = ingest::scan(&out2).unwrap();
    for f in &written {
        let want =
            by_path.get(f.rel.as_str()).map(|b| b.to_vec()).unwrap_or_else(|| b"same".to_vec());
        assert_eq!(std::fs::read(&f.abs).unwrap(), want, "{} is whole", f.rel);
    }

    let log = data.log("falls").await.unwrap();
    assert_eq!(log.iter().map(|v| v.version).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(data.datasets().await.unwrap()[0].latest, Some(2));
}

async fn versions_are_numbered_and_refuse_missing_content(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = TestBlobs::new(BlobBackend::Local);
    let data = Data::open(db.db.clone(), store.store.clone()).await.unwrap();
    let stored = store.store.put_bytes(bytes::Bytes::from_static(b"frame")).await.unwrap();
    let item = |path: &str, hash: String, size| Item {
        path: path.into(),
        size,
        hash,
        meta: Default::default(),
    };
    let ok = Manifest::new(Kind::Files, vec![item("a.bin", stored.digest.to_hex(), 5)]).unwrap();
    let missing = Manifest::new(
        Kind::Files,
        vec![item("a.bin", stored.digest.to_hex(), 5), item("b.bin", "ab".repeat(32), 9)],
    )
    .unwrap();
    let err = data.commit("poses", &missing, new("x")).await.unwrap_err();
    assert!(matches!(err, Error::MissingContent { count: 1, .. }), "{err}");
    assert!(
        matches!(data.dataset("poses").await, Err(Error::DatasetNotFound { .. })),
        "nothing made"
    );
    let wrong_size =
        Manifest::new(Kind::Files, vec![item("a.bin", stored.digest.to_hex(), 6)]).unwrap();
    assert!(matches!(
        data.commit("poses", &wrong_size, new("x")).await,
        Err(Error::MissingContent { .. })
    ));

    let v1 = data.commit("poses", &ok, new("one")).await.unwrap();
    assert_eq!(
        (v1.created, v1.version.version, v1.version.items, v1.version.bytes),
        (true, 1, 1, 5)
    );
    let empty = Manifest::new(Kind::Files, vec![]).unwrap();
    let v2 = data.commit("poses", &empty, new("emptied")).await.unwrap();
    assert_eq!((v2.version.version, v2.version.parent), (2, Some(1)));
    let v3 = data.commit("poses", &ok, new("back")).await.unwrap();
    assert_eq!(v3.version.version, 3, "the same content as an older version is a new version");
    assert_eq!(data.resolve(&VersionRef::parse("poses").unwrap()).await.unwrap().version, 3);
    assert_eq!(data.resolve(&VersionRef::parse("poses@1").unwrap()).await.unwrap().message, "one");
    assert!(matches!(
        data.resolve(&VersionRef::parse("poses@4").unwrap()).await,
        Err(Error::VersionNotFound { .. })
    ));
    assert!(matches!(data.log("nope").await, Err(Error::DatasetNotFound { .. })));
    assert!(data.commit("../etc", &ok, new("x")).await.is_err());
}

async fn bad_input_names_the_item(_blobs: BlobBackend) {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = TestBlobs::new(BlobBackend::Local);
    let data = Data::open(db.db.clone(), store.store.clone()).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("in");
    write_files(&root, &[("good.txt", b"ok"), ("changing.txt", b"before")]);
    std::os::unix::fs::symlink("loop-b", root.join("loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", root.join("loop-b")).unwrap();
    std::os::unix::fs::symlink(work.path(), root.join("outside")).unwrap();
    write_files(&root, &[("secret.txt", b"no")]);
    std::fs::set_permissions(
        root.join("secret.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let unreadable_is_unreadable = std::fs::read(root.join("secret.txt")).is_err(); // not as root

    let (files, problems) = ingest::scan(&root).unwrap();
    let named: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(named, ["loop-a", "loop-b", "outside"], "{problems:?}");
    assert!(problems[0].message.contains("loop"), "{}", problems[0].message);
    // The file changes after it was listed and before it is read.
    std::fs::write(root.join("changing.txt"), b"after, and longer").unwrap();
    let mut cache = StatCache::disabled();
    let ingested = ingest::ingest(&files, data.blobs(), &mut cache, &HashSet::new(), &(), 2).await;
    let mut bad: Vec<&str> = ingested.problems.iter().map(|p| p.path.as_str()).collect();
    bad.sort();
    let mut want = vec!["changing.txt"];
    if unreadable_is_unreadable {
        want.push("secret.txt");
    }
    assert_eq!(bad, want, "{:?}", ingested.problems);
    assert!(ingested.problems[0].message.contains("changed"), "{:?}", ingested.problems);
    assert!(ingested.items.iter().any(|i| i.path == "good.txt"));
    assert!(
        ingest::scan(&work.path().join("missing"))
            .unwrap_err()
            .to_string()
            .contains("no such file")
    );
}

on_both_blob_stores!(versions_add_checkout_and_diff, bad_input_names_the_item);
on_both_backends!(versions_are_numbered_and_refuse_missing_content);
