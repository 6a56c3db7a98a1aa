//! Tables (CSV and Parquet) and profiles through `Data::add`: schema and rows recorded, profiles
//! stored and mergeable, diffs by schema and rows, row-level samples and splits, and item
//! metadata profiled for folders. The data is the fall-detection example's.

use std::path::Path;

use slipway_core::testing::{BlobBackend, TestBlobs, TestDb};
use slipway_core::{Backend, on_both_backends};
use slipway_data::add::{AddOutcome, AddRequest};
use slipway_data::derive::{Derivation, SampleSize};
use slipway_data::example::{self, Camera, Options, Subjects};
use slipway_data::ingest::{self, StatCache};
use slipway_data::table::{self, Batches, Format};
use slipway_data::{Data, Kind, VersionRef};

fn request(path: &Path, dataset: &str) -> AddRequest {
    AddRequest {
        path: path.to_path_buf(),
        dataset: dataset.into(),
        message: String::new(),
        description: None,
        author: "test".into(),
        meta: None,
        kind: None,
        concurrency: 4,
    }
}

async fn add(data: &Data, req: AddRequest) -> AddOutcome {
    let mut cache = StatCache::disabled();
    data.add(req, &mut cache, &()).await.unwrap()
}

fn opts(clips: usize) -> Options {
    Options { clips, seed: 5, camera: Camera::P720, subjects: Subjects::Mixed }
}

/// Sets a file's modification time an hour back (the stat cache trusts it then).
fn age(path: &Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600)).unwrap();
}

async fn tables_version_profile_diff_and_derive(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = TestBlobs::new(BlobBackend::Local);
    let data = Data::open(db.db.clone(), store.store.clone()).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let generated = work.path().join("gen");
    example::generate(&generated, &opts(60)).unwrap();
    let parquet = generated.join("features.parquet");
    age(&parquet);

    // A Parquet file is a table: schema, rows and a profile are recorded.
    let first = add(&data, request(&parquet, "features")).await;
    assert!(first.problems.is_empty(), "{:?}", first.problems);
    let v1 = first.commit.unwrap();
    assert!(v1.created);
    assert_eq!(v1.version.kind, Kind::Table);
    let info = first.table.unwrap();
    assert_eq!((info.format, info.rows, info.columns.len()), (Format::Parquet, 60, 17));
    let profile = data.profile(&v1.version).await.unwrap().expect("a table has a profile");
    assert_eq!(profile.rows, 60);
    let clips: Vec<example::Clip> = (0..60).map(|i| example::clip(&opts(60), i)).collect();
    let drops: Vec<f64> = clips.iter().map(|c| c.features(Camera::P720).hip_drop_px).collect();
    let hip = profile.column("hip_drop_px").unwrap().numeric.as_ref().unwrap();
    let mean = drops.iter().sum::<f64>() / 60.0;
    assert!((hip.mean().unwrap() - mean).abs() <= 1e-9 * mean.abs(), "{:?} vs {mean}", hip.mean());
    assert_eq!(hip.min, drops.iter().copied().reduce(f64::min));
    let activity = profile.column("activity").unwrap();
    let falls = clips.iter().filter(|c| c.activity == "fall").count() as u64;
    let top = activity.frequent.as_ref().unwrap();
    assert_eq!(top.counts.get("fall").copied().unwrap_or(0), falls);
    assert_eq!(top.total, 60);

    // Unchanged: read from the stat cache, nothing new.
    let mut cache = StatCache::open(&work.path().join("cache"), &parquet);
    data.add(request(&parquet, "features"), &mut cache, &()).await.unwrap();
    let again = data.add(request(&parquet, "features"), &mut cache, &()).await.unwrap();
    assert_eq!((again.hashed, again.commit.as_ref().unwrap().created), (0, false));

    // The same rows as CSV: the items differ, the rows do not.
    let batch =
        table::read_all(vec![Batches::open_file(&parquet, Format::Parquet).unwrap()]).unwrap();
    let csv_dir = work.path().join("csv");
    std::fs::create_dir_all(&csv_dir).unwrap();
    let csv_path = csv_dir.join("features.csv");
    std::fs::write(&csv_path, table::encode(&batch, Format::Csv).unwrap()).unwrap();
    let v2 = add(&data, request(&csv_path, "features")).await.commit.unwrap();
    assert_eq!(v2.version.version, 2);
    let d = data.diff(&v1.version, &v2.version).await.unwrap();
    assert_eq!((d.added.len(), d.removed.len()), (1, 1));
    let rows = d.table.unwrap();
    assert!(rows.columns_added.is_empty() && rows.columns_removed.is_empty(), "{rows:?}");
    assert_eq!((rows.rows_added, rows.rows_removed, rows.rows_unchanged), (0, 0, 60));

    // One row edited, one column added: a row removed and added, the column named.
    let text = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines: Vec<String> = text.lines().map(|l| format!("{l},x")).collect();
    lines[0] = lines[0].replace(",x", ",note");
    lines[3] = lines[3].replacen("clip-00002", "clip-00002b", 1);
    std::fs::write(&csv_path, lines.join("\n") + "\n").unwrap();
    let v3 = add(&data, request(&csv_path, "features")).await.commit.unwrap();
    let d = data.diff(&v2.version, &v3.version).await.unwrap().table.unwrap();
    assert_eq!(d.columns_added.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["note"]);
    assert_eq!((d.rows_added, d.rows_removed, d.rows_unchanged), (1, 1, 59));
    assert_eq!(d.added_examples[0][0].as_deref(), Some("clip-00002b"));
    assert_eq!(d.removed_examples[0][0].as_deref(), Some("clip-00002"));

    // Rows, paged.
    let page = data.table_rows(&v1.version, 58, 10).await.unwrap();
    assert_eq!((page.rows.len(), page.total, page.columns[0].as_str()), (2, 60, "clip_id"));
    assert_eq!(page.rows[0][0].as_deref(), Some("clip-00058"));

    // A stratified sample of rows, deterministic: the same again is no new version.
    let how = Derivation {
        stratify_by: Some("activity".into()),
        seed: 3,
        author: "t".into(),
        message: String::new(),
    };
    let s1 = data.sample(&v1.version, SampleSize::Fraction(0.5), &how, "half").await.unwrap();
    let s2 = data.sample(&v1.version, SampleSize::Fraction(0.5), &how, "half").await.unwrap();
    assert!(s1.created && !s2.created, "deterministic for a seed");
    assert_eq!(s1.version.derived_from.as_deref(), Some("features@1"));
    let sp = data.profile(&s1.version).await.unwrap().unwrap();
    assert_eq!(sp.rows, 30);
    for (class, count) in &top.counts {
        let got = sp
            .column("activity")
            .unwrap()
            .frequent
            .as_ref()
            .unwrap()
            .counts
            .get(class)
            .copied()
            .unwrap_or(0);
        assert!((got as f64 - *count as f64 / 2.0).abs() < 1.0, "{class}: {got} of {count}");
    }
    assert_eq!(data.table_rows(&s1.version, 0, 100).await.unwrap().rows.len(), 30);

    // A split covers every row once.
    let parts = [("train".to_string(), 0.8), ("test".to_string(), 0.2)];
    let how = Derivation { seed: 9, ..how };
    let split = data.split(&v1.version, &parts, &how, "features").await.unwrap();
    let mut ids: Vec<String> = Vec::new();
    for c in &split {
        let page = data.table_rows(&c.version, 0, 1000).await.unwrap();
        ids.extend(page.rows.into_iter().map(|r| r[0].clone().unwrap()));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 60);
    assert_eq!(split[0].version.label(), "features-train@1");
    assert!(data.sample(&v1.version, SampleSize::Count(61), &how, "x").await.is_err());
    let bad = Derivation { stratify_by: Some("nope".into()), ..how.clone() };
    let e = data.sample(&v1.version, SampleSize::Count(5), &bad, "x").await.unwrap_err();
    assert!(e.to_string().contains("'nope'"), "{e}");
}

async fn table_parts_merge_into_the_whole_profile(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = TestBlobs::new(BlobBackend::Local);
    let data = Data::open(db.db.clone(), store.store.clone()).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let generated = work.path().join("gen");
    example::generate(&generated, &opts(301)).unwrap();
    let whole = table::read_all(vec![
        Batches::open_file(&generated.join("features.parquet"), Format::Parquet).unwrap(),
    ])
    .unwrap();
    let parts = work.path().join("parts");
    std::fs::create_dir_all(&parts).unwrap();
    let first: Vec<usize> = (0..150).collect();
    let second: Vec<usize> = (150..301).collect();
    for (name, rows) in [("part-0.parquet", &first), ("part-1.parquet", &second)] {
        let half = table::take_rows(&whole, rows).unwrap();
        std::fs::write(parts.join(name), table::encode(&half, Format::Parquet).unwrap()).unwrap();
    }
    std::fs::write(parts.join("_SUCCESS"), b"").unwrap();
    let one =
        add(&data, request(&generated.join("features.parquet"), "whole")).await.commit.unwrap();
    let req = AddRequest { kind: Some(Kind::Table), ..request(&parts, "halves") };
    let out = add(&data, req).await;
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(out.files, 2, "_SUCCESS is skipped");
    let two = out.commit.unwrap();
    assert_eq!(out.table.unwrap().rows, 301);
    let a = data.profile(&one.version).await.unwrap().unwrap();
    let b = data.profile(&two.version).await.unwrap().unwrap();
    assert_eq!(a.rows, b.rows);
    for (x, y) in a.columns.iter().zip(&b.columns) {
        assert_eq!(
            (x.count, x.nulls, x.distinct_count()),
            (y.count, y.nulls, y.distinct_count()),
            "{}",
            x.name
        );
        assert_eq!(x.frequent, y.frequent, "{}", x.name);
        if let (Some(p), Some(q)) = (&x.numeric, &y.numeric) {
            assert_eq!(p.mean().map(f64::to_bits), q.mean().map(f64::to_bits), "{} mean", x.name);
            assert_eq!(p.std().map(f64::to_bits), q.std().map(f64::to_bits), "{} std", x.name);
            assert_eq!((p.min, p.max), (q.min, q.max));
            assert_eq!(p.sketch, q.sketch, "{}: the merged sketch is the whole's", x.name);
        }
    }
    // Quantiles within the sketch's error of the exact order statistics.
    let mut exact: Vec<f64> = (0..301)
        .map(|i| example::clip(&opts(301), i).features(Camera::P720).peak_down_velocity_px_s)
        .collect();
    exact.sort_by(f64::total_cmp);
    let n = b.column("peak_down_velocity_px_s").unwrap().numeric.as_ref().unwrap();
    for q in [0.1, 0.25, 0.5, 0.75, 0.9] {
        let want = exact[(q * 300.0_f64).floor() as usize];
        let got = n.quantile(q).unwrap();
        assert!((got - want).abs() <= 0.01 * want.abs() + 1e-9, "q{q}: {got} vs {want}");
    }

    // Mixed formats, or a stray file, are problems: no version.
    std::fs::write(parts.join("notes.txt"), b"hi").unwrap();
    let req = AddRequest { kind: Some(Kind::Table), ..request(&parts, "halves") };
    let out = add(&data, req).await;
    assert!(out.commit.is_none());
    assert_eq!(out.problems[0].path, "notes.txt");
    assert_eq!(data.log("halves").await.unwrap().len(), 1);
}

async fn bad_tables_and_folder_metadata(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = TestBlobs::new(BlobBackend::Local);
    let data = Data::open(db.db.clone(), store.store.clone()).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let bad = work.path().join("bad.csv");
    std::fs::write(&bad, "a,b\n1,2\n3\n").unwrap();
    let out = add(&data, request(&bad, "broken")).await;
    assert!(out.commit.is_none());
    assert_eq!(out.problems.len(), 1);
    assert_eq!(out.problems[0].path, "bad.csv");
    assert!(out.problems[0].message.contains("line 3"), "{}", out.problems[0].message);
    assert!(data.dataset("broken").await.is_err(), "no half-made version");
    let fake = work.path().join("fake.parquet");
    std::fs::write(&fake, "not parquet").unwrap();
    let out = add(&data, request(&fake, "broken")).await;
    assert!(out.problems[0].message.contains("Parquet"), "{:?}", out.problems);

    // A folder with item metadata: the metadata is profiled.
    let generated = work.path().join("gen");
    example::generate(&generated, &opts(40)).unwrap();
    let meta = ingest::read_meta(&generated.join("clips.csv")).unwrap();
    let req = AddRequest { meta: Some(meta), ..request(&generated.join("clips"), "falls") };
    let out = add(&data, req).await;
    let v = out.commit.unwrap().version;
    assert_eq!(v.kind, Kind::Files);
    let p = data.profile(&v).await.unwrap().unwrap();
    assert_eq!(p.rows, 40);
    let subjects = p.column("subject").unwrap().frequent.as_ref().unwrap();
    assert_eq!(subjects.total, 40);
    assert!(p.column("activity").is_some() && p.column("room").is_some());
    // A sample of the folder keeps a profile of its own.
    let how = Derivation { seed: 1, author: "t".into(), ..Derivation::default() };
    let s = data.sample(&v, SampleSize::Count(10), &how, "falls-small").await.unwrap();
    assert_eq!(data.profile(&s.version).await.unwrap().unwrap().rows, 10);
    // --meta on a table is refused.
    let req = AddRequest {
        meta: Some(Default::default()),
        ..request(&generated.join("features.parquet"), "t")
    };
    let mut cache = StatCache::disabled();
    assert!(data.add(req, &mut cache, &()).await.is_err());
    assert!(data.resolve(&VersionRef::parse("t").unwrap()).await.is_err());
}

on_both_backends!(
    tables_version_profile_diff_and_derive,
    table_parts_merge_into_the_whole_profile,
    bad_tables_and_folder_metadata
);
