//! `slipway blobs`: a put killed with `kill -9` leaves no visible partial blob.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::{Proc, kill9, run, slipway};

fn content() -> Vec<u8> {
    (0..24u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect()
}

fn check_kill_during_put(location: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let data = content();
    let digest = blake3::hash(&data).to_hex().to_string();
    let mut args = vec!["blobs", "put", "-", "--data-dir", ".", "--artifacts", location];
    args.extend_from_slice(extra);
    let mut child = Proc(
        slipway(dir.path())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Feed 18 of the 24 MiB (several upload parts), then kill it mid-put.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&data[..18 << 20]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    kill9(&mut child);
    drop(stdin);

    let mut stat = vec!["blobs", "stat", &digest, "--data-dir", ".", "--artifacts", location];
    stat.extend_from_slice(extra);
    let out = run(dir.path(), &stat);
    assert!(!out.status.success(), "a partial blob is visible");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not stored"));

    // The next put of the same content succeeds and reads back identically.
    let mut child = slipway(dir.path())
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&digest));
    let mut get = vec!["blobs", "get", &digest, "--data-dir", ".", "--artifacts", location];
    get.extend_from_slice(extra);
    let out = run(dir.path(), &get);
    assert!(out.status.success());
    assert!(out.stdout == data, "read-back differs");
}

#[test]
fn kill_during_put_leaves_no_partial_blob_local() {
    let dir = tempfile::tempdir().unwrap();
    check_kill_during_put(&dir.path().join("blobs").display().to_string(), &[]);
    // Nothing but complete blobs and abandoned uploads under tmp/ is left behind.
    let blobs = dir.path().join("blobs/blobs");
    for entry in walk(&blobs) {
        let name = entry.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(name.len(), 64, "unexpected file {}", entry.display());
    }
}

#[test]
fn kill_during_put_leaves_no_partial_blob_s3() {
    let bucket = std::env::var("SLIPWAY_TEST_S3_URL")
        .expect("S3 tests need SLIPWAY_TEST_S3_URL; scripts/test sets it");
    let endpoint = std::env::var("SLIPWAY_TEST_S3_ENDPOINT").expect("SLIPWAY_TEST_S3_ENDPOINT");
    let location = format!("{bucket}/kill-{}", slipway_core::new_id());
    check_kill_during_put(&location, &["--s3-endpoint", &endpoint]);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
