//! New versions made from a version: deterministic samples and splits, optionally stratified by
//! an item metadata field.
//!
//! Items are ordered by BLAKE3(seed, path), so the outcome depends only on the seed and the
//! paths (not on listing order), and growing a dataset keeps earlier picks stable where it can.
//! Per stratum, counts are allocated by the largest-remainder method, so every class's share of
//! a sample or a split part is within one item of its exact share.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::types::Item;

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

/// Items grouped by class, each group in seed order.
fn strata<'a>(
    items: &'a [Item],
    field: Option<&str>,
    seed: u64,
) -> BTreeMap<&'a str, Vec<&'a Item>> {
    let mut groups: BTreeMap<&str, Vec<(&Item, [u8; 32])>> = BTreeMap::new();
    for item in items {
        groups.entry(class(item, field)).or_default().push((item, order_key(seed, &item.path)));
    }
    groups
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by_key(|a| a.1);
            (k, v.into_iter().map(|(i, _)| i).collect())
        })
        .collect()
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
    let n = match size {
        SampleSize::Fraction(f) if f > 0.0 && f <= 1.0 => (f * items.len() as f64).round() as usize,
        SampleSize::Fraction(f) => {
            return Err(Error::invalid(format!("a sample fraction is in (0, 1], not {f}")));
        }
        SampleSize::Count(n) if n <= items.len() => n,
        SampleSize::Count(n) => {
            return Err(Error::invalid(format!(
                "cannot sample {n} items from a version of {}",
                items.len()
            )));
        }
    };
    let groups = strata(items, stratify_by, seed);
    let sizes: Vec<f64> = groups.values().map(|g| g.len() as f64).collect();
    let counts = allocate(n, &sizes);
    let mut out: Vec<Item> = groups
        .values()
        .zip(counts)
        .flat_map(|(g, c)| g.iter().take(c).map(|i| (*i).clone()))
        .collect();
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
    if parts.is_empty() || parts.iter().any(|(_, f)| !(0.0..=1.0).contains(f)) {
        return Err(Error::invalid("split fractions are between 0 and 1"));
    }
    let sum: f64 = parts.iter().map(|(_, f)| f).sum();
    if (sum - 1.0).abs() > 1e-6 {
        return Err(Error::invalid(format!("split fractions must add up to 1, not {sum}")));
    }
    let weights: Vec<f64> = parts.iter().map(|(_, f)| *f).collect();
    let mut out: Vec<(String, Vec<Item>)> =
        parts.iter().map(|(n, _)| (n.clone(), Vec::new())).collect();
    for group in strata(items, stratify_by, seed).values() {
        let counts = allocate(group.len(), &weights);
        let mut rest = group.iter();
        for (part, count) in out.iter_mut().zip(counts) {
            part.1.extend(rest.by_ref().take(count).map(|i| (*i).clone()));
        }
    }
    for (_, items) in &mut out {
        items.sort_by(|a, b| a.path.cmp(&b.path));
    }
    Ok(out)
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
