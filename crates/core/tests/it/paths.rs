//! Safe paths end to end: every trick is refused with a 400-class error and nothing is written
//! outside (or inside) the root.

use slipway_core::SafeRoot;

/// Each class of trick behind MLflow's path-traversal advisories.
const TRICKS: &[&str] = &[
    "../escape.txt",
    "a/../../escape.txt",
    "/tmp/escape.txt",
    "//escape.txt",
    "..\\escape.txt",
    "a\\..\\..\\escape.txt",
    "%2e%2e/escape.txt",
    "..%2fescape.txt",
    "%252e%252e%252fescape.txt",
    "file:escape.txt",
    "file:///tmp/escape.txt",
    "a#/../../escape.txt",
    "a;/../../escape.txt",
    "a?/../../escape.txt",
    "./../escape.txt",
    "C:/escape.txt",
];

fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_trick_is_refused_and_writes_nothing() {
    let outer = tempfile::tempdir().unwrap();
    let root = SafeRoot::new(outer.path().join("deep/er/root")).unwrap();
    let before = listing(outer.path());
    for trick in TRICKS {
        let err = root.write(trick, b"pwned").unwrap_err();
        assert_eq!(err.code().http_status(), 400, "{trick}: {err}");
        assert!(root.read(trick).is_err(), "{trick} was readable");
    }
    assert_eq!(listing(outer.path()), before, "something was written");
    assert!(!std::path::Path::new("/tmp/escape.txt").exists());
}

#[test]
fn plain_paths_are_written_atomically_inside_the_root() {
    let outer = tempfile::tempdir().unwrap();
    let root = SafeRoot::new(outer.path().join("root")).unwrap();
    let written = root.write("models/v1/model.onnx", b"bytes").unwrap();
    assert!(written.starts_with(root.path()));
    assert_eq!(root.read("models/v1/model.onnx").unwrap(), b"bytes");
    root.write("models/v1/model.onnx", b"new bytes").unwrap();
    assert_eq!(root.read("models/v1/model.onnx").unwrap(), b"new bytes");
    // No temporary files are left beside it.
    assert_eq!(listing(&root.path().join("models/v1")), vec!["model.onnx".to_string()]);
}

#[test]
fn a_link_out_of_the_root_is_refused() {
    let outer = tempfile::tempdir().unwrap();
    let root = SafeRoot::new(outer.path().join("root")).unwrap();
    let elsewhere = outer.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, root.path().join("link")).unwrap();
    let err = root.write("link/escape.txt", b"pwned").unwrap_err();
    assert_eq!(err.code().http_status(), 400, "{err}");
    assert!(listing(&elsewhere).is_empty());
}
