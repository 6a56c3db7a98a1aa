//! An endpoint's traffic: the variants that answer it (each a model version or alias with a
//! share of the buckets of [`crate::split`]), an optional shadow that sees every request (or a
//! sampled share of them) and answers none, and the header that carries a request's routing key. Kept as one JSON value on
//! the endpoint's row, so a change is one atomic write every replica reads alike.

use serde::{Deserialize, Serialize};

use crate::split::{BUCKETS, Buckets, counts_of};

/// The header carrying a routing key unless an endpoint names another.
pub const DEFAULT_KEY_HEADER: &str = "x-slipway-key";

/// One variant: a name, what it serves, and its share in buckets (hundredths of a percent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    pub name: String,
    /// A version number, `latest` or an alias of the endpoint's model.
    pub reference: String,
    pub buckets: usize,
}

impl Variant {
    /// The share of traffic, in percent.
    pub fn weight(&self) -> f64 {
        self.buckets as f64 * 100.0 / BUCKETS as f64
    }
}

/// How an endpoint's requests are shared out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traffic {
    /// At least one; the first is the baseline (the endpoint's `reference`).
    pub variants: Vec<Variant>,
    pub owners: Buckets,
    /// Mixed into every key's hash: a new experiment reshuffles who sees what.
    pub seed: u64,
    /// The shadow's `buckets` are the share of requests it sees (all of them at `BUCKETS`).
    pub shadow: Option<Variant>,
    pub key_header: String,
}

/// Mixed into a key's hash for the shadow's sample, so that who is mirrored does not follow
/// who is routed where.
const SHADOW_SALT: u64 = 0x5ad0_0f5a_3b1e_c0de;

#[derive(Serialize, Deserialize)]
struct Stored {
    variants: Vec<Variant>,
    owners: String,
    seed: u64,
    shadow: Option<Variant>,
    key_header: String,
}

impl Traffic {
    /// Everything to one reference.
    pub fn single(reference: &str, seed: u64) -> Traffic {
        let variant = Variant {
            name: variant_name(reference),
            reference: reference.into(),
            buckets: BUCKETS,
        };
        Traffic {
            variants: vec![variant],
            owners: Buckets::new(&[BUCKETS]),
            seed,
            shadow: None,
            key_header: DEFAULT_KEY_HEADER.into(),
        }
    }

    /// The traffic of a stored row: its JSON, or (empty) everything to `reference`.
    pub(crate) fn load(json: &str, reference: &str) -> Result<Traffic, String> {
        if json.is_empty() {
            return Ok(Traffic::single(reference, 0));
        }
        let s: Stored = serde_json::from_str(json).map_err(|e| format!("bad traffic: {e}"))?;
        if s.variants.is_empty() {
            return Err("bad traffic: no variants".into());
        }
        let owners = Buckets::decode(&s.owners, s.variants.len())?;
        Ok(Traffic {
            variants: s.variants,
            owners,
            seed: s.seed,
            // Rows written before shadows were sampled mirror everything.
            shadow: s.shadow.map(|v| Variant {
                buckets: if v.buckets == 0 { BUCKETS } else { v.buckets },
                ..v
            }),
            key_header: s.key_header,
        })
    }

    pub(crate) fn store(&self) -> String {
        serde_json::to_string(&Stored {
            variants: self.variants.clone(),
            owners: self.owners.encode(),
            seed: self.seed,
            shadow: self.shadow.clone(),
            key_header: self.key_header.clone(),
        })
        .expect("traffic serialises")
    }

    /// The same traffic with new weights (`(reference, percent)` pairs, summing to 100),
    /// handing over as few buckets as possible: a variant that stays keeps its buckets up to
    /// its new share. A variant at 0 stays listed (it can come back without reshuffling).
    pub fn with_split(&self, split: &[(String, f64)]) -> Result<Traffic, String> {
        let mut seen = std::collections::HashSet::new();
        for (reference, _) in split {
            check_reference(reference)?;
            if !seen.insert(variant_name(reference)) {
                return Err(format!("variant '{}' is named twice", variant_name(reference)));
            }
        }
        let weights: Vec<f64> = split.iter().map(|(_, w)| *w).collect();
        let counts = counts_of(&weights)?;
        let variants: Vec<Variant> = split
            .iter()
            .zip(&counts)
            .map(|((reference, _), &n)| Variant {
                name: variant_name(reference),
                reference: canonical(reference),
                buckets: n,
            })
            .collect();
        // Old owners renumbered to the new positions; a dropped variant's buckets are free.
        let map: Vec<Option<usize>> = self
            .variants
            .iter()
            .map(|old| variants.iter().position(|v| v.name == old.name))
            .collect();
        let owners = self.owners.remap(&map).rebalance(&counts);
        Ok(Traffic { variants, owners, ..self.clone() })
    }

    /// The same traffic with `shadow` (a reference) mirrored `percent` of requests, or none.
    pub fn with_shadow(&self, shadow: Option<&str>, percent: f64) -> Result<Traffic, String> {
        let shadow = match shadow {
            None => None,
            Some(r) => {
                check_reference(r)?;
                if !(percent > 0.0 && percent <= 100.0) {
                    return Err(format!(
                        "the shadow's percent must be above 0 and at most 100, not {percent}"
                    ));
                }
                let buckets = ((percent * BUCKETS as f64 / 100.0).round() as usize).max(1);
                Some(Variant { name: variant_name(r), reference: canonical(r), buckets })
            }
        };
        Ok(Traffic { shadow, ..self.clone() })
    }

    /// The same traffic with routing keys read from header `name` (lower-cased).
    pub fn with_key_header(&self, name: &str) -> Result<Traffic, String> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(format!(
                "key_header: '{name}' is not a header name (letters, digits and '-')"
            ));
        }
        Ok(Traffic { key_header: name.to_ascii_lowercase(), ..self.clone() })
    }

    /// Whether two variants or more have traffic: an experiment, whose answers are remembered
    /// for their ground truth.
    pub fn in_experiment(&self) -> bool {
        self.variants.iter().filter(|v| v.buckets > 0).count() > 1
    }

    /// The variant a request goes to: by its routing key, or at random by weight.
    pub fn route(&self, key: Option<&[u8]>) -> usize {
        let bucket = match key {
            Some(k) => crate::split::bucket_of(k, self.seed),
            None => crate::split::random_bucket(),
        };
        self.owners.owner(bucket)
    }

    /// Whether a request (by its routing key, or at random) is mirrored to the shadow: a key
    /// is always or never in the sample while the share is unchanged.
    pub fn mirrors(&self, key: Option<&[u8]>) -> bool {
        let Some(shadow) = &self.shadow else { return false };
        if shadow.buckets >= BUCKETS {
            return true;
        }
        let bucket = match key {
            Some(k) => crate::split::bucket_of(k, self.seed ^ SHADOW_SALT),
            None => crate::split::random_bucket(),
        };
        bucket < shadow.buckets
    }
}

/// `v3` for version 3, the alias itself otherwise.
pub fn variant_name(reference: &str) -> String {
    let r = canonical(reference);
    if r.chars().all(|c| c.is_ascii_digit()) { format!("v{r}") } else { r }
}

/// A variant's reference as stored: `v3` and `3` are version 3.
pub(crate) fn canonical(reference: &str) -> String {
    match reference.strip_prefix('v') {
        Some(n) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => n.to_string(),
        _ => reference.to_string(),
    }
}

fn check_reference(reference: &str) -> Result<(), String> {
    let ok = !reference.is_empty()
        && reference.len() <= 128
        && reference.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(format!(
            "'{reference}' is not a variant: use a version (v3 or 3), latest or an alias"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
        pairs.iter().map(|(r, w)| (r.to_string(), *w)).collect()
    }

    #[test]
    fn splits_name_variants_and_keep_their_buckets() {
        let one = Traffic::single("1", 42);
        assert_eq!(one.variants[0].name, "v1");
        let ab = one.with_split(&split(&[("v1", 90.0), ("v2", 10.0)])).unwrap();
        assert_eq!(ab.variants[1].reference, "2");
        assert_eq!(ab.owners.counts(2), [9000, 1000]);
        // Reordered and reweighted: v2's old buckets stay v2's.
        let ba = ab.with_split(&split(&[("2", 50.0), ("champion", 0.0), ("v1", 50.0)])).unwrap();
        let names: Vec<&str> = ba.variants.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["v2", "champion", "v1"]);
        assert_eq!(ba.owners.counts(3), [5000, 0, 5000]);
        assert!((0..BUCKETS).all(|b| ab.owners.owner(b) != 1 || ba.owners.owner(b) == 0));
        assert_eq!(ba.variants[0].weight(), 50.0);
        // Round trip through the stored text.
        let back = Traffic::load(&ba.store(), "ignored").unwrap();
        assert_eq!(back, ba);
        assert_eq!(Traffic::load("", "3").unwrap(), Traffic::single("3", 0));
    }

    #[test]
    fn bad_splits_say_what_is_wrong() {
        let t = Traffic::single("1", 0);
        assert!(t.with_split(&split(&[("v1", 90.0), ("v2", 20.0)])).unwrap_err().contains("sum"));
        assert!(t.with_split(&split(&[("v1", 50.0), ("1", 50.0)])).unwrap_err().contains("twice"));
        assert!(t.with_split(&split(&[("a/b", 100.0)])).unwrap_err().contains("'a/b'"));
        assert!(t.with_split(&[]).is_err());
        assert!(t.with_shadow(Some("../x"), 100.0).is_err());
        assert_eq!(t.with_key_header("X-Patient").unwrap().key_header, "x-patient");
        assert!(t.with_key_header("bad header").unwrap_err().contains("key_header"));
        assert_eq!(t.with_shadow(Some("v3"), 100.0).unwrap().shadow.unwrap().reference, "3");
        assert!(Traffic::load("{", "1").is_err());
        for bad in [0.0, -1.0, 100.5, f64::NAN] {
            assert!(t.with_shadow(Some("v3"), bad).unwrap_err().contains("percent"), "{bad}");
        }
    }

    #[test]
    fn a_sampled_shadow_sees_its_share_and_keys_stay_in_or_out() {
        let t = Traffic::single("1", 4).with_shadow(Some("v2"), 20.0).unwrap();
        let mirrored = (0..100_000).filter(|_| t.mirrors(None)).count();
        assert!((19_000..=21_000).contains(&mirrored), "{mirrored}");
        let keys: Vec<String> = (0..20_000).map(|i| format!("bed-{i}")).collect();
        let first: Vec<bool> = keys.iter().map(|k| t.mirrors(Some(k.as_bytes()))).collect();
        assert!(keys.iter().zip(&first).all(|(k, m)| t.mirrors(Some(k.as_bytes())) == *m));
        let keyed = first.iter().filter(|m| **m).count();
        assert!((3_600..=4_400).contains(&keyed), "{keyed}");
        // The whole share mirrors every request; no shadow mirrors none; the stored text
        // keeps the share, and a row from before sampling mirrors everything.
        let all = t.with_shadow(Some("v2"), 100.0).unwrap();
        assert!((0..1000).all(|_| all.mirrors(None)));
        assert!(!Traffic::single("1", 4).mirrors(None));
        assert_eq!(Traffic::load(&t.store(), "1").unwrap(), t);
        let old = t.store().replace("\"buckets\":2000", "\"buckets\":0");
        assert_eq!(Traffic::load(&old, "1").unwrap().shadow.unwrap().buckets, BUCKETS);
    }

    #[test]
    fn keys_stick_and_shares_follow_weights() {
        let t = Traffic::single("1", 9).with_split(&split(&[("1", 90.0), ("2", 10.0)])).unwrap();
        let mut hits = [0usize; 2];
        for _ in 0..100_000 {
            hits[t.route(None)] += 1;
        }
        // Within one percentage point of the weights.
        assert!((89_000..=91_000).contains(&hits[0]), "{hits:?}");
        let keys: Vec<String> = (0..20_000).map(|i| format!("bed-{i}")).collect();
        let first: Vec<usize> = keys.iter().map(|k| t.route(Some(k.as_bytes()))).collect();
        assert!(keys.iter().zip(&first).all(|(k, v)| t.route(Some(k.as_bytes())) == *v));
        // Ten points of weight move about ten percent of the keys.
        let moved_to = t.with_split(&split(&[("1", 80.0), ("2", 20.0)])).unwrap();
        let moved =
            keys.iter().zip(&first).filter(|(k, v)| moved_to.route(Some(k.as_bytes())) != **v);
        let share = moved.count() as f64 / keys.len() as f64;
        assert!((0.08..=0.12).contains(&share), "{share}");
    }
}
