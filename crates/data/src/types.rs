//! The domain types of the data stage.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A named collection of versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dataset {
    pub name: String,
    pub description: String,
    pub created_at: i64,
    /// Number of the newest version (`None` before the first).
    pub latest: Option<i64>,
}

/// What a version holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A folder of files (clips, images): one item per file.
    Files,
    /// A table (CSV or Parquet).
    Table,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Files => "files",
            Kind::Table => "table",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Kind> {
        match s {
            "files" => Ok(Kind::Files),
            "table" => Ok(Kind::Table),
            other => Err(Error::Corrupt(format!("unknown version kind '{other}'"))),
        }
    }
}

/// One immutable version of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    pub dataset: String,
    pub version: i64,
    pub kind: Kind,
    /// BLAKE3 digest (hex) of the manifest blob.
    pub manifest: String,
    pub parent: Option<i64>,
    pub message: String,
    pub author: String,
    /// Where the content came from (a folder path, a parent version for samples and splits).
    pub source: String,
    pub items: i64,
    pub bytes: i64,
    pub created_at: i64,
    /// The version this one was made from (`name@N`): samples and splits.
    pub derived_from: Option<String>,
    /// BLAKE3 digest (hex) of the profile blob, if the version has one.
    pub profile: Option<String>,
}

impl Version {
    /// `name@N`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.dataset, self.version)
    }
}

/// One item of a version: a file and its content's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Relative path with `/` separators (checked by [`check_item_path`]).
    pub path: String,
    pub size: u64,
    /// BLAKE3 digest of the content, 64 hex characters.
    pub hash: String,
    /// Per-item metadata (e.g. camera, room, subject).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

/// A version's content: its items, sorted by path. Stored as a blob under its own digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub kind: Kind,
    pub items: Vec<Item>,
    /// For tables: the format, the schema and the row count (of all items together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<crate::table::TableInfo>,
}

impl Manifest {
    pub const FORMAT: u32 = 1;

    /// A manifest of `items`, sorted by path; duplicate or unsafe paths are refused.
    pub fn new(kind: Kind, mut items: Vec<Item>) -> Result<Manifest> {
        items.sort_by(|a, b| a.path.cmp(&b.path));
        for pair in items.windows(2) {
            if pair[0].path == pair[1].path {
                return Err(Error::invalid(format!("the item '{}' appears twice", pair[0].path)));
            }
        }
        for item in &items {
            check_item_path(&item.path)?;
            let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
            if item.hash.len() != 64 || !item.hash.bytes().all(hex) {
                return Err(Error::invalid(format!(
                    "the item '{}' has an invalid hash '{}'",
                    item.path, item.hash
                )));
            }
        }
        Ok(Manifest { format: Manifest::FORMAT, kind, items, table: None })
    }

    pub fn bytes(&self) -> u64 {
        self.items.iter().map(|i| i.size).sum()
    }

    /// The canonical encoding (what is hashed and stored).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Manifest> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::Corrupt(format!("a manifest does not parse: {e}")))?;
        if m.format != Manifest::FORMAT {
            return Err(Error::Corrupt(format!("manifest format {} is not known", m.format)));
        }
        Ok(m)
    }
}

/// Checks an item's relative path: `/`-separated, no empty, `.` or `..` components, no leading
/// `/`, no backslashes, NUL or control characters, at most 4096 bytes. Anything else (spaces,
/// `#`, `%`, non-ASCII) is a legitimate file name.
pub fn check_item_path(path: &str) -> Result<()> {
    let bad =
        |why: &str| Err(Error::invalid(format!("the item path '{path}' is not allowed: {why}")));
    if path.is_empty() || path.len() > 4096 {
        return bad("empty or longer than 4096 bytes");
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return bad("control characters and backslashes are not allowed");
    }
    for component in path.split('/') {
        match component {
            "" => return bad("empty component or leading/trailing '/'"),
            "." | ".." => return bad("'.' and '..' are not allowed"),
            _ => {}
        }
    }
    Ok(())
}

/// `NAME`, `NAME@N` or `NAME@latest` (`NAME` alone is the latest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRef {
    pub name: String,
    /// `None` = latest.
    pub version: Option<i64>,
}

impl VersionRef {
    pub fn parse(s: &str) -> Result<VersionRef> {
        let (name, version) = match s.rsplit_once('@') {
            Some((name, "latest")) => (name, None),
            Some((name, v)) => {
                let n = v.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    Error::invalid(format!(
                        "'{s}': a version is a number from 1 or 'latest', not '{v}'"
                    ))
                })?;
                (name, Some(n))
            }
            None => (s, None),
        };
        check_name(name)?;
        Ok(VersionRef { name: name.to_string(), version })
    }
}

impl fmt::Display for VersionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => write!(f, "{}@latest", self.name),
        }
    }
}

/// Dataset names: 1-128 of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(['.', '-'])
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "'{name}' is not a valid dataset name: use 1-128 letters, digits, '.', '_' or '-', \
             not starting with '.' or '-'"
        )))
    }
}

/// What changed between two versions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub added: Vec<Item>,
    pub removed: Vec<Item>,
    /// (before, after) of items whose content or metadata changed.
    pub changed: Vec<(Item, Item)>,
    pub unchanged: usize,
    /// For two tables: schema and row changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<crate::table::TableDiff>,
}

impl Diff {
    pub fn between(a: &Manifest, b: &Manifest) -> Diff {
        let mut diff = Diff::default();
        let (mut i, mut j) = (0, 0);
        while i < a.items.len() || j < b.items.len() {
            match (a.items.get(i), b.items.get(j)) {
                (Some(x), Some(y)) if x.path == y.path => {
                    if x == y {
                        diff.unchanged += 1;
                    } else {
                        diff.changed.push((x.clone(), y.clone()));
                    }
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x.path < y.path => {
                    diff.removed.push(x.clone());
                    i += 1;
                }
                (Some(x), None) => {
                    diff.removed.push(x.clone());
                    i += 1;
                }
                (_, Some(y)) => {
                    diff.added.push(y.clone());
                    j += 1;
                }
                (None, None) => break,
            }
        }
        diff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(path: &str, hash: char) -> Item {
        Item {
            path: path.into(),
            size: 1,
            hash: hash.to_string().repeat(64),
            meta: BTreeMap::new(),
        }
    }

    #[test]
    fn refs_and_names() {
        assert_eq!(
            VersionRef::parse("falls").unwrap(),
            VersionRef { name: "falls".into(), version: None }
        );
        assert_eq!(VersionRef::parse("falls@3").unwrap().version, Some(3));
        assert_eq!(VersionRef::parse("falls@latest").unwrap().version, None);
        for bad in ["falls@0", "falls@x", "@3", "../x", ".hidden", "a/b", "x@-1", ""] {
            assert!(VersionRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn item_paths() {
        for ok in ["a", "clips/ward 3/#1 (copy).json", "ünï/cödé.csv", "a..b/c"] {
            check_item_path(ok).unwrap();
        }
        for bad in ["", "/abs", "a//b", "a/", "../x", "a/./b", "a\\b", "a\nb", "a/\0"] {
            assert!(check_item_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn manifests_sort_refuse_duplicates_and_diff() {
        let a = Manifest::new(Kind::Files, vec![item("b", 'b'), item("a", 'a'), item("c", 'c')])
            .unwrap();
        assert_eq!(a.items.iter().map(|i| i.path.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(Manifest::decode(&a.encode()).unwrap(), a);
        assert!(Manifest::new(Kind::Files, vec![item("a", 'a'), item("a", 'b')]).is_err());
        assert!(Manifest::new(Kind::Files, vec![item("a", 'z')]).is_err(), "not hex");
        let b = Manifest::new(Kind::Files, vec![item("a", 'a'), item("c", 'd'), item("d", 'd')])
            .unwrap();
        let d = Diff::between(&a, &b);
        assert_eq!(d.added.iter().map(|i| &i.path).collect::<Vec<_>>(), ["d"]);
        assert_eq!(d.removed.iter().map(|i| &i.path).collect::<Vec<_>>(), ["b"]);
        assert_eq!(d.changed.iter().map(|(x, _)| &x.path).collect::<Vec<_>>(), ["c"]);
        assert_eq!(d.unchanged, 1);
    }
}
