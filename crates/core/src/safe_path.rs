//! User-supplied relative paths (artifact paths, dataset item paths) that can never escape
//! their root.
//!
//! A [`SafePath`] is checked once, when it is parsed, against every trick behind MLflow's
//! path-traversal advisories: `..`, absolute paths, backslashes, percent-encoded separators and
//! dots, `file:` and other scheme prefixes, `//`, `#` fragments, `;` path parameters and `?`
//! queries. Input is decoded once, by the HTTP layer, before it gets here; any escape sequence
//! still present is refused rather than decoded again.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Longest accepted path, in bytes.
const MAX_PATH_LEN: usize = 1024;
/// Longest accepted component, in bytes (the common file-system limit).
const MAX_COMPONENT_LEN: usize = 255;

/// A normalised relative path of one or more `/`-separated components, none of them `.` or `..`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SafePath(String);

impl SafePath {
    /// Checks `input` and returns it as a safe path, or says which rule it breaks.
    pub fn parse(input: &str) -> Result<SafePath> {
        let reject = |reason: &'static str| Error::InvalidPath { path: input.to_string(), reason };
        if input.is_empty() {
            return Err(reject("the path is empty"));
        }
        if input.len() > MAX_PATH_LEN {
            return Err(reject("the path is longer than 1024 bytes"));
        }
        if input.chars().any(|c| c.is_control()) {
            return Err(reject("the path contains a control character"));
        }
        if input.contains('\\') {
            return Err(reject("backslashes are not allowed"));
        }
        if input.starts_with('/') {
            return Err(reject("absolute paths are not allowed"));
        }
        if has_percent_escape(input) {
            return Err(reject("percent-encoded sequences are not allowed"));
        }
        if input.contains('#') {
            return Err(reject("'#' is not allowed"));
        }
        if input.contains(';') {
            return Err(reject("';' is not allowed"));
        }
        if input.contains('?') {
            return Err(reject("'?' is not allowed"));
        }
        if input.starts_with('~') {
            return Err(reject("paths starting with '~' are not allowed"));
        }
        let trimmed = input.strip_suffix('/').unwrap_or(input);
        let mut components = Vec::new();
        for (i, part) in trimmed.split('/').enumerate() {
            match part {
                "" => return Err(reject("empty components ('//') are not allowed")),
                "." | ".." => return Err(reject("'.' and '..' components are not allowed")),
                _ => {}
            }
            if i == 0 && part.contains(':') {
                return Err(reject(
                    "scheme or drive prefixes (like 'file:' or 'C:') are not allowed",
                ));
            }
            if part.len() > MAX_COMPONENT_LEN {
                return Err(reject("a component is longer than 255 bytes"));
            }
            if part.trim() != part || part.trim_end_matches('.').is_empty() {
                return Err(reject(
                    "components of only dots or with surrounding spaces are not allowed",
                ));
            }
            components.push(part);
        }
        Ok(SafePath(components.join("/")))
    }

    /// The path as `a/b/c`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// This path followed by `other`.
    pub fn join(&self, other: &SafePath) -> SafePath {
        SafePath(format!("{}/{}", self.0, other.0))
    }
}

impl fmt::Debug for SafePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for SafePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn has_percent_escape(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(3).any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

/// A folder that user paths are confined to: the house wrapper for reading and writing files
/// named by users. Writes are atomic (a temporary file renamed into place); symbolic links that
/// lead outside the root are refused.
#[derive(Debug, Clone)]
pub struct SafeRoot {
    root: PathBuf,
}

impl SafeRoot {
    /// Uses (and creates) `root`.
    pub fn new(root: impl Into<PathBuf>) -> Result<SafeRoot> {
        let root = root.into();
        std::fs::create_dir_all(&root)
            .map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
        let root = root
            .canonicalize()
            .map_err(|e| Error::io(format!("resolving {}", root.display()), e))?;
        Ok(SafeRoot { root })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Where `path` lives under the root, after checking that no existing ancestor is a link
    /// that leads out of it.
    pub fn resolve(&self, path: &SafePath) -> Result<PathBuf> {
        let mut current = self.root.clone();
        for part in path.components() {
            current.push(part);
            match std::fs::symlink_metadata(&current) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let target = current
                        .canonicalize()
                        .map_err(|e| Error::io(format!("resolving {}", current.display()), e))?;
                    if !target.starts_with(&self.root) {
                        return Err(Error::InvalidPath {
                            path: path.to_string(),
                            reason: "it leads through a link outside its root",
                        });
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Ok(self.root.join(path.as_str()))
    }

    /// Writes `bytes` to the user-named `path` atomically, creating folders as needed.
    pub fn write(&self, path: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = SafePath::parse(path)?;
        let target = self.resolve(&path)?;
        let parent = target.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".slipway-tmp-")
            .tempfile_in(parent)
            .map_err(|e| Error::io(format!("creating a file in {}", parent.display()), e))?;
        use std::io::Write;
        tmp.write_all(bytes)
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(|e| Error::io(format!("writing {}", target.display()), e))?;
        tmp.persist(&target)
            .map_err(|e| Error::io(format!("renaming into {}", target.display()), e.error))?;
        Ok(target)
    }

    /// Reads the user-named `path`.
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        let path = SafePath::parse(path)?;
        let target = self.resolve(&path)?;
        std::fs::read(&target).map_err(|e| Error::io(format!("reading {}", target.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn check(input: &str, expected: expect_test::Expect) {
        let actual = match SafePath::parse(input) {
            Ok(p) => format!("ok {p}"),
            Err(Error::InvalidPath { reason, .. }) => format!("rejected: {reason}"),
            Err(e) => format!("other error: {e}"),
        };
        expected.assert_eq(&actual);
    }

    #[test]
    fn plain_paths_are_accepted() {
        check("model.onnx", expect!["ok model.onnx"]);
        check("a/b/c.txt", expect!["ok a/b/c.txt"]);
        check("dir/", expect!["ok dir"]);
        check("weird name (1).csv", expect!["ok weird name (1).csv"]);
        check("100%.txt", expect!["ok 100%.txt"]);
        check("a/12:00.log", expect!["ok a/12:00.log"]);
        check("..hidden", expect!["ok ..hidden"]);
        check("ünïcode/数据.json", expect!["ok ünïcode/数据.json"]);
    }

    #[test]
    fn traversal_tricks_are_rejected() {
        check("", expect!["rejected: the path is empty"]);
        check("..", expect!["rejected: '.' and '..' components are not allowed"]);
        check("../etc/passwd", expect!["rejected: '.' and '..' components are not allowed"]);
        check("a/../../b", expect!["rejected: '.' and '..' components are not allowed"]);
        check("a/./b", expect!["rejected: '.' and '..' components are not allowed"]);
        check("/etc/passwd", expect!["rejected: absolute paths are not allowed"]);
        check("//proc/self/root", expect!["rejected: absolute paths are not allowed"]);
        check("a//b", expect!["rejected: empty components ('//') are not allowed"]);
        check("..\\..\\etc", expect!["rejected: backslashes are not allowed"]);
        check("a\\..\\b", expect!["rejected: backslashes are not allowed"]);
        check("%2e%2e/etc", expect!["rejected: percent-encoded sequences are not allowed"]);
        check("..%2fetc", expect!["rejected: percent-encoded sequences are not allowed"]);
        check("%252e%252e/x", expect!["rejected: percent-encoded sequences are not allowed"]);
        check("a%5c..", expect!["rejected: percent-encoded sequences are not allowed"]);
        check(
            "file:/etc/passwd",
            expect!["rejected: scheme or drive prefixes (like 'file:' or 'C:') are not allowed"],
        );
        check(
            "file:etc",
            expect!["rejected: scheme or drive prefixes (like 'file:' or 'C:') are not allowed"],
        );
        check(
            "s3:bucket",
            expect!["rejected: scheme or drive prefixes (like 'file:' or 'C:') are not allowed"],
        );
        check(
            "C:/Windows",
            expect!["rejected: scheme or drive prefixes (like 'file:' or 'C:') are not allowed"],
        );
        check("a#/../../b", expect!["rejected: '#' is not allowed"]);
        check("a;/../b", expect!["rejected: ';' is not allowed"]);
        check("a?x=../b", expect!["rejected: '?' is not allowed"]);
        check("~/.ssh", expect!["rejected: paths starting with '~' are not allowed"]);
        check("a/\0b", expect!["rejected: the path contains a control character"]);
        check(
            "a/.../b",
            expect!["rejected: components of only dots or with surrounding spaces are not allowed"],
        );
        check(
            " ../x",
            expect!["rejected: components of only dots or with surrounding spaces are not allowed"],
        );
        check(
            "a/.. /b",
            expect!["rejected: components of only dots or with surrounding spaces are not allowed"],
        );
        check(&"x".repeat(256), expect!["rejected: a component is longer than 255 bytes"]);
    }

    #[test]
    fn rejected_paths_map_to_a_400_code() {
        let err = SafePath::parse("../x").unwrap_err();
        assert_eq!(err.code().http_status(), 400);
    }
}
