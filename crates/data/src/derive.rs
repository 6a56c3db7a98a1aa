//! New versions made from a version: deterministic samples and splits, optionally stratified by
//! an item metadata field.
//!
//! Items are ordered by BLAKE3(seed, path), so the outcome depends only on the seed and the
//! paths (not on listing order), and growing a dataset keeps earlier picks stable where it can.
//! Per stratum, counts are allocated by the largest-remainder method, so every class's share of
//! a sample or a split part is within one item of its exact share.

use std::collections::BTreeMap;

use arrow_array::RecordBatch;

use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::table::{self, Profiler, TableInfo};
use crate::types::{Item, Kind, Manifest, Version};
use crate::{Commit, Data, NewVersion};

/// How big a sample is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampleSize {
    /// A fraction of the items, in (0, 1].
    Fraction(f64),
    /// A number of items, at most all of them.
    Count(usize),
}

/// The class of an item under `field` (items without it form the class "").
fn class<'a>(item: &'a Item, field: Option<&str>) -> &'a str {
    field.and_then(|f| item.meta.get(f)).map(String::as_str).unwrap_or("")
}

fn order_key(seed: u64, path: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(path.as_bytes());
    *h.finalize().as_bytes()
}

/// Units (items or rows) `0..n` grouped by class, each group in key order.
fn strata_of<'a>(classes: &[&'a str], keys: &[[u8; 32]]) -> BTreeMap<&'a str, Vec<usize>> {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, class) in classes.iter().enumerate() {
        groups.entry(class).or_default().push(i);
    }
    for group in groups.values_mut() {
        group.sort_by_key(|&i| keys[i]);
    }
    groups
}

/// How many of `total` units a sample takes.
fn sample_count(total: usize, size: SampleSize, unit: &str) -> Result<usize> {
    let n = match size {
        SampleSize::Fraction(f) if f > 0.0 && f <= 1.0 => (f * total as f64).round() as usize,
        SampleSize::Fraction(f) => {
            return Err(Error::invalid(format!("a sample fraction is in (0, 1], not {f}")));
        }
        SampleSize::Count(0) => {
            return Err(Error::invalid(format!(
                "a sample has at least 1 {}",
                unit.trim_end_matches('s')
            )));
        }
        SampleSize::Count(n) if n <= total => n,
        SampleSize::Count(n) => {
            return Err(Error::invalid(format!(
                "cannot sample {n} {unit} from a version of {total}"
            )));
        }
    };
    if n == 0 {
        // An empty version is never what a sample was for.
        return Err(Error::invalid(format!(
            "that fraction of a version of {total} {unit} is none of them: ask for more"
        )));
    }
    Ok(n)
}

/// Refuses to stratify files by a metadata field none of them has (a typo would otherwise
/// give an unstratified sample recorded as stratified).
fn check_field(items: &[Item], stratify_by: Option<&str>) -> Result<()> {
    let Some(field) = stratify_by else { return Ok(()) };
    if items.iter().any(|i| i.meta.contains_key(field)) {
        return Ok(());
    }
    let mut known: Vec<&str> =
        items.iter().flat_map(|i| i.meta.keys().map(String::as_str)).collect();
    known.sort_unstable();
    known.dedup();
    Err(Error::invalid(if known.is_empty() {
        format!("no item has metadata to stratify by (asked for '{field}')")
    } else {
        format!(
            "no item has the metadata field '{field}' to stratify by (fields: {})",
            known.join(", ")
        )
    }))
}

/// The indices a stratified sample picks, ascending.
fn sample_indices(classes: &[&str], keys: &[[u8; 32]], n: usize) -> Vec<usize> {
    let groups = strata_of(classes, keys);
    let sizes: Vec<f64> = groups.values().map(|g| g.len() as f64).collect();
    let counts = allocate(n, &sizes);
    let mut out: Vec<usize> =
        groups.values().zip(counts).flat_map(|(g, c)| g.iter().take(c).copied()).collect();
    out.sort_unstable();
    out
}

fn check_parts(parts: &[(String, f64)]) -> Result<Vec<f64>> {
    if parts.is_empty() || parts.iter().any(|(_, f)| !(0.0..=1.0).contains(f)) {
        return Err(Error::invalid("split fractions are between 0 and 1"));
    }
    let sum: f64 = parts.iter().map(|(_, f)| f).sum();
    if (sum - 1.0).abs() > 1e-6 {
        // Rounded: 0.7 + 0.7 is said as 1.4, not 1.4000000000000001.
        let sum = (sum * 1e9).round() / 1e9;
        return Err(Error::invalid(format!("split fractions must add up to 1, not {sum}")));
    }
    Ok(parts.iter().map(|(_, f)| *f).collect())
}

/// The indices of each part of a stratified split, each ascending.
fn split_indices(classes: &[&str], keys: &[[u8; 32]], weights: &[f64]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); weights.len()];
    for group in strata_of(classes, keys).values() {
        let counts = allocate(group.len(), weights);
        let mut rest = group.iter();
        for (part, count) in out.iter_mut().zip(counts) {
            part.extend(rest.by_ref().take(count).copied());
        }
    }
    for part in &mut out {
        part.sort_unstable();
    }
    out
}

/// Per-row order keys for a seed: BLAKE3(seed, row content, occurrence of that content), so the
/// outcome depends on the rows, not on their order.
pub(crate) fn row_keys(seed: u64, row_hashes: &[u128]) -> Vec<[u8; 32]> {
    let mut seen: std::collections::HashMap<u128, u64> = std::collections::HashMap::new();
    row_hashes
        .iter()
        .map(|h| {
            let n = seen.entry(*h).or_insert(0);
            *n += 1;
            let mut k = blake3::Hasher::new();
            k.update(&seed.to_le_bytes());
            k.update(&h.to_le_bytes());
            k.update(&n.to_le_bytes());
            *k.finalize().as_bytes()
        })
        .collect()
}

/// The rows of a table a sample picks, ascending.
pub(crate) fn sample_rows(
    classes: &[&str],
    keys: &[[u8; 32]],
    size: SampleSize,
) -> Result<Vec<usize>> {
    let n = sample_count(keys.len(), size, "rows")?;
    Ok(sample_indices(classes, keys, n))
}

/// The rows of each part of a split, each ascending.
pub(crate) fn split_rows(
    classes: &[&str],
    keys: &[[u8; 32]],
    parts: &[(String, f64)],
) -> Result<Vec<Vec<usize>>> {
    Ok(split_indices(classes, keys, &check_parts(parts)?))
}

/// Splits `total` into parts proportional to `weights` (largest remainder; ties to the earlier
/// part), so each part is within one of its exact share.
fn allocate(total: usize, weights: &[f64]) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    if sum <= 0.0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut left = total.saturating_sub(counts.iter().sum());
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.partial_cmp(&ra).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b))
    });
    for i in order {
        if left == 0 {
            break;
        }
        counts[i] += 1;
        left -= 1;
    }
    counts
}

/// A deterministic sample of `items`.
pub fn sample(
    items: &[Item],
    size: SampleSize,
    stratify_by: Option<&str>,
    seed: u64,
) -> Result<Vec<Item>> {
    check_field(items, stratify_by)?;
    let n = sample_count(items.len(), size, "items")?;
    let classes: Vec<&str> = items.iter().map(|i| class(i, stratify_by)).collect();
    let keys: Vec<[u8; 32]> = items.iter().map(|i| order_key(seed, &i.path)).collect();
    let mut out: Vec<Item> =
        sample_indices(&classes, &keys, n).into_iter().map(|i| items[i].clone()).collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// A deterministic split of `items` into named parts with the given fractions (summing to 1).
pub fn split(
    items: &[Item],
    parts: &[(String, f64)],
    stratify_by: Option<&str>,
    seed: u64,
) -> Result<Vec<(String, Vec<Item>)>> {
    let weights = check_parts(parts)?;
    check_field(items, stratify_by)?;
    let classes: Vec<&str> = items.iter().map(|i| class(i, stratify_by)).collect();
    let keys: Vec<[u8; 32]> = items.iter().map(|i| order_key(seed, &i.path)).collect();
    Ok(parts
        .iter()
        .zip(split_indices(&classes, &keys, &weights))
        .map(|((name, _), idx)| {
            let mut part: Vec<Item> = idx.into_iter().map(|i| items[i].clone()).collect();
            part.sort_by(|a, b| a.path.cmp(&b.path));
            (name.clone(), part)
        })
        .collect())
}

/// Who makes a derived version, and why.
#[derive(Debug, Clone, Default)]
pub struct Derivation {
    /// Keep each value of this field (item metadata; for tables, a column) at its share.
    pub stratify_by: Option<String>,
    pub seed: u64,
    pub author: String,
    /// The version's message; empty: its source.
    pub message: String,
}

impl Data {
    /// A deterministic sample of `from` as the next version of `into`: items of a folder, rows
    /// of a table.
    pub async fn sample(
        &self,
        from: &Version,
        size: SampleSize,
        how: &Derivation,
        into: &str,
    ) -> Result<Commit> {
        crate::check_name(into)?;
        let what = match size {
            SampleSize::Fraction(f) => format!("fraction {f}"),
            SampleSize::Count(n) => format!("{n} {}", unit(from.kind)),
        };
        let source = format!("sample of {}: {what}, seed {}{}", from.label(), how.seed, strat(how));
        let manifest = self.manifest(from).await?;
        let (new_manifest, profile) = match manifest.table.clone() {
            None => {
                let picked = sample(&manifest.items, size, how.stratify_by.as_deref(), how.seed)?;
                (Manifest::new(Kind::Files, picked)?, None)
            }
            Some(info) => {
                let mut parts = self
                    .table_subsets(&manifest, info, how, move |classes, keys| {
                        Ok(vec![sample_rows(classes, keys, size)?])
                    })
                    .await?;
                let (m, p) = parts.remove(0);
                (m, Some(p))
            }
        };
        self.commit_derived(into, &new_manifest, profile, from, source, how).await
    }

    /// A deterministic split of `from` into `PREFIX-PART` datasets, one version each.
    pub async fn split(
        &self,
        from: &Version,
        parts: &[(String, f64)],
        how: &Derivation,
        prefix: &str,
    ) -> Result<Vec<Commit>> {
        let targets: Vec<String> = parts.iter().map(|(p, _)| format!("{prefix}-{p}")).collect();
        for t in &targets {
            crate::check_name(t)?;
        }
        check_parts(parts)?;
        let shares: Vec<String> = parts.iter().map(|(n, f)| format!("{n} {f}")).collect();
        let manifest = self.manifest(from).await?;
        let made: Vec<(Manifest, Option<Profile>)> = match manifest.table.clone() {
            None => split(&manifest.items, parts, how.stratify_by.as_deref(), how.seed)?
                .into_iter()
                .map(|(_, items)| Ok((Manifest::new(Kind::Files, items)?, None)))
                .collect::<Result<_>>()?,
            Some(info) => {
                let parts = parts.to_vec();
                self.table_subsets(&manifest, info, how, move |classes, keys| {
                    split_rows(classes, keys, &parts)
                })
                .await?
                .into_iter()
                .map(|(m, p)| (m, Some(p)))
                .collect()
            }
        };
        let mut commits = Vec::new();
        for (((part, _), target), (m, profile)) in parts.iter().zip(&targets).zip(made) {
            let source = format!(
                "{part} part of {}: {}, seed {}{}",
                from.label(),
                shares.join(" / "),
                how.seed,
                strat(how)
            );
            let how = Derivation { message: String::new(), ..how.clone() };
            commits.push(self.commit_derived(target, &m, profile, from, source, &how).await?);
        }
        Ok(commits)
    }

    async fn commit_derived(
        &self,
        target: &str,
        manifest: &Manifest,
        profile: Option<Profile>,
        from: &Version,
        source: String,
        how: &Derivation,
    ) -> Result<Commit> {
        let new = NewVersion {
            message: if how.message.is_empty() { source.clone() } else { how.message.clone() },
            author: how.author.clone(),
            source,
            description: None,
            derived_from: Some(from.label()),
            profile,
        };
        self.commit(target, manifest, new).await
    }

    /// Row subsets of a table, each written as one file of the table's format (named as the
    /// table's only file, or `part-00000.EXT`), stored, and profiled.
    async fn table_subsets(
        &self,
        manifest: &Manifest,
        info: TableInfo,
        how: &Derivation,
        pick: impl FnOnce(&[&str], &[[u8; 32]]) -> Result<Vec<Vec<usize>>> + Send + 'static,
    ) -> Result<Vec<(Manifest, Profile)>> {
        let bytes = self.table_bytes(manifest).await?;
        let name = match manifest.items.as_slice() {
            [only] => only.path.clone(),
            _ => format!("part-00000.{}", info.format.as_str()),
        };
        let (seed, field) = (how.seed, how.stratify_by.clone());
        let encoded: Vec<(Vec<u8>, TableInfo, Profile)> = tokio::task::spawn_blocking(move || {
            let parts = bytes
                .into_iter()
                .map(|b| table::Batches::open_bytes(b, info.format))
                .collect::<std::result::Result<Vec<_>, String>>()
                .map_err(|e| Error::Corrupt(format!("a stored table does not read: {e}")))?;
            let all = table::read_all(parts).map_err(Error::Corrupt)?;
            subsets_of(&all, &info, seed, field.as_deref(), pick)
        })
        .await
        .map_err(|e| Error::Corrupt(format!("deriving the table failed: {e}")))??;
        let mut out = Vec::new();
        for (file, info, profile) in encoded {
            let size = file.len() as u64;
            let put = self.blobs.put_bytes(file.into()).await?;
            let item = Item {
                path: name.clone(),
                size,
                hash: put.digest.to_hex(),
                meta: Default::default(),
            };
            let mut m = Manifest::new(Kind::Table, vec![item])?;
            m.table = Some(info);
            out.push((m, profile));
        }
        Ok(out)
    }
}

fn subsets_of(
    all: &RecordBatch,
    info: &TableInfo,
    seed: u64,
    field: Option<&str>,
    pick: impl FnOnce(&[&str], &[[u8; 32]]) -> Result<Vec<Vec<usize>>>,
) -> Result<Vec<(Vec<u8>, TableInfo, Profile)>> {
    let every: Vec<usize> = (0..all.num_columns()).collect();
    let hashes = table::batch_row_hashes(all, &every).map_err(Error::Corrupt)?;
    let keys = row_keys(seed, &hashes);
    let texts: Vec<Option<String>> = match field {
        None => vec![None; all.num_rows()],
        Some(f) => {
            let i = all.schema().index_of(f).map_err(|_| {
                Error::invalid(format!("the table has no column '{f}' to stratify by"))
            })?;
            let rows: Vec<usize> = (0..all.num_rows()).collect();
            let column = all.project(&[i]).map_err(|e| Error::Corrupt(e.to_string()))?;
            table::rows_text(&column, &rows)
                .map_err(Error::Corrupt)?
                .into_iter()
                .map(|mut r| r.pop().flatten())
                .collect()
        }
    };
    let classes: Vec<&str> = texts.iter().map(|t| t.as_deref().unwrap_or("")).collect();
    let mut out = Vec::new();
    for rows in pick(&classes, &keys)? {
        let batch = table::take_rows(all, &rows).map_err(Error::Corrupt)?;
        let mut profiler = Profiler::new(&info.columns);
        profiler.push(&batch).map_err(Error::Corrupt)?;
        let file = table::encode(&batch, info.format)?;
        let part = TableInfo { rows: rows.len() as u64, ..info.clone() };
        out.push((file, part, profiler.profile));
    }
    Ok(out)
}

fn unit(kind: Kind) -> &'static str {
    match kind {
        Kind::Files => "items",
        Kind::Table => "rows",
    }
}

fn strat(how: &Derivation) -> String {
    how.stratify_by.as_deref().map(|f| format!(", stratified by {f}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize, classes: &[(&str, usize)]) -> Vec<Item> {
        let mut out = Vec::new();
        let mut i = 0;
        for (class, count) in classes {
            for _ in 0..*count {
                let mut meta = BTreeMap::new();
                meta.insert("activity".to_string(), class.to_string());
                out.push(Item {
                    path: format!("clip-{i:05}.json"),
                    size: 1,
                    hash: "0".repeat(64),
                    meta,
                });
                i += 1;
            }
        }
        while out.len() < n {
            out.push(Item {
                path: format!("x-{}", out.len()),
                size: 1,
                hash: "0".repeat(64),
                meta: BTreeMap::new(),
            });
        }
        out
    }

    fn share(items: &[Item], class: &str) -> usize {
        items.iter().filter(|i| i.meta.get("activity").map(String::as_str) == Some(class)).count()
    }

    #[test]
    fn samples_are_deterministic_and_stratified_within_one_item() {
        let all = items(0, &[("walk", 611), ("sit", 250), ("fall", 37), ("stand", 102)]);
        let a = sample(&all, SampleSize::Fraction(0.1), Some("activity"), 7).unwrap();
        let b = sample(&all, SampleSize::Fraction(0.1), Some("activity"), 7).unwrap();
        let c = sample(&all, SampleSize::Fraction(0.1), Some("activity"), 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 100);
        for (class, count) in [("walk", 611.0), ("sit", 250.0), ("fall", 37.0), ("stand", 102.0)] {
            let exact = count * 0.1;
            assert!(
                (share(&a, class) as f64 - exact).abs() < 1.0,
                "{class}: {} vs {exact}",
                share(&a, class)
            );
        }
        let mut shuffled = all.clone();
        shuffled.reverse();
        assert_eq!(
            sample(&shuffled, SampleSize::Fraction(0.1), Some("activity"), 7).unwrap(),
            a,
            "order-free"
        );
        let n = sample(&all, SampleSize::Count(33), Some("activity"), 1).unwrap();
        assert_eq!(n.len(), 33);
        assert!(sample(&all, SampleSize::Count(1001), None, 1).is_err());
        assert!(sample(&all, SampleSize::Fraction(0.0), None, 1).is_err());
        // Nothing, or a field no item has: refused, not an empty or unstratified version.
        let e = sample(&all, SampleSize::Count(0), None, 1).unwrap_err();
        assert_eq!(e.to_string(), "a sample has at least 1 item");
        let e = sample(&all, SampleSize::Fraction(0.0001), None, 1).unwrap_err();
        assert!(e.to_string().contains("is none of them"), "{e}");
        let e = sample(&all, SampleSize::Count(5), Some("activty"), 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no item has the metadata field 'activty' to stratify by (fields: activity)"
        );
        let e = split(&all, &[("a".into(), 0.5), ("b".into(), 0.5)], Some("x"), 1).unwrap_err();
        assert!(e.to_string().contains("'x'"), "{e}");
        let e = split(&all, &[("a".into(), 0.7), ("b".into(), 0.7)], None, 1).unwrap_err();
        assert_eq!(e.to_string(), "split fractions must add up to 1, not 1.4");
        assert!(sample(&all, SampleSize::Fraction(1.5), None, 1).is_err());
        assert_eq!(sample(&all, SampleSize::Fraction(1.0), None, 1).unwrap().len(), 1000);
    }

    #[test]
    fn splits_cover_every_item_once_in_proportion() {
        let all = items(0, &[("walk", 503), ("fall", 41), ("sit", 206)]);
        let parts =
            [("train".to_string(), 0.8), ("val".to_string(), 0.1), ("test".to_string(), 0.1)];
        let s = split(&all, &parts, Some("activity"), 3).unwrap();
        assert_eq!(s, split(&all, &parts, Some("activity"), 3).unwrap());
        let mut seen: Vec<&str> =
            s.iter().flat_map(|(_, v)| v.iter().map(|i| i.path.as_str())).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), all.len(), "every item in exactly one part");
        for (name, frac) in &parts {
            let part = &s.iter().find(|(n, _)| n == name).unwrap().1;
            for (class, count) in [("walk", 503.0), ("fall", 41.0), ("sit", 206.0)] {
                let exact = count * frac;
                assert!((share(part, class) as f64 - exact).abs() < 1.0, "{name}/{class}");
            }
        }
        assert!(split(&all, &[("a".into(), 0.5), ("b".into(), 0.4)], None, 1).is_err());
    }

    #[test]
    fn allocation_is_within_one_of_exact() {
        assert_eq!(allocate(10, &[1.0, 1.0, 1.0]), [4, 3, 3]);
        assert_eq!(allocate(0, &[1.0, 2.0]), [0, 0]);
        assert_eq!(allocate(7, &[0.0, 1.0]), [0, 7]);
    }
}
