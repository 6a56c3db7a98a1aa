//! Traffic split between an endpoint's variants. The unit of traffic is one of `BUCKETS`
//! buckets, each owned by one variant: a request with a routing key lands in the bucket its key
//! hashes to (with the endpoint's seed), a request without one in a random bucket. So a variant's
//! share is its bucket count exactly, a key keeps its variant while the owners do not change, and
//! a weight change hands over only the buckets it must: a variant that shrinks gives up its
//! highest buckets and a variant that grows takes them, nobody else's.
//!
//! Ownership is a plain value kept in the store (run-length text, a few bytes), so every replica
//! routes by the same table.

/// Buckets of the split: a weight is a whole number of hundredths of a percent.
pub const BUCKETS: usize = 10_000;

/// The owner of each bucket, by variant position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets(Vec<u16>);

impl Buckets {
    /// Contiguous ranges in variant order; `counts` sums to `BUCKETS`.
    pub fn new(counts: &[usize]) -> Buckets {
        debug_assert_eq!(counts.iter().sum::<usize>(), BUCKETS);
        let mut owners = Vec::with_capacity(BUCKETS);
        for (v, &n) in counts.iter().enumerate() {
            owners.extend(std::iter::repeat_n(v as u16, n));
        }
        owners.resize(BUCKETS, 0);
        Buckets(owners)
    }

    /// New ownership for `counts` (one per variant, summing to `BUCKETS`; variants beyond the
    /// old ones are new) that moves as few buckets as possible: each variant above its count
    /// frees its highest buckets, and the freed buckets go, lowest first, to the variants below
    /// their count, in variant order.
    pub fn rebalance(&self, counts: &[usize]) -> Buckets {
        debug_assert_eq!(counts.iter().sum::<usize>(), BUCKETS);
        let mut owners = self.0.clone();
        let mut held = vec![0usize; counts.len()];
        let mut free = Vec::new();
        // Buckets of variants that no longer exist are free from the start.
        for (b, o) in owners.iter().enumerate() {
            match held.get_mut(*o as usize) {
                Some(h) => *h += 1,
                None => free.push(b),
            }
        }
        for (v, &want) in counts.iter().enumerate() {
            let mut extra = held[v].saturating_sub(want);
            for b in (0..BUCKETS).rev() {
                if extra == 0 {
                    break;
                }
                if owners[b] as usize == v {
                    free.push(b);
                    extra -= 1;
                }
            }
        }
        free.sort_unstable();
        let mut free = free.into_iter();
        for (v, &want) in counts.iter().enumerate() {
            for _ in held[v].min(want)..want {
                if let Some(b) = free.next() {
                    owners[b] = v as u16;
                }
            }
        }
        Buckets(owners)
    }

    /// The same buckets with owner `i` renumbered to `map[i]`; `None` leaves a bucket without an
    /// owner, for [`Buckets::rebalance`] to hand out.
    pub fn remap(&self, map: &[Option<usize>]) -> Buckets {
        let owner = |o: u16| map.get(o as usize).copied().flatten().map_or(u16::MAX, |n| n as u16);
        Buckets(self.0.iter().map(|o| owner(*o)).collect())
    }

    /// The variant owning `bucket`.
    pub fn owner(&self, bucket: usize) -> usize {
        self.0[bucket % BUCKETS] as usize
    }

    /// Buckets per variant, for `n_variants` variants.
    pub fn counts(&self, n_variants: usize) -> Vec<usize> {
        let mut counts = vec![0; n_variants];
        for o in &self.0 {
            if let Some(c) = counts.get_mut(*o as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// Run-length text: `owner*count` runs joined by commas (`0*9000,1*1000`).
    pub fn encode(&self) -> String {
        let mut runs: Vec<(u16, usize)> = Vec::new();
        for &o in &self.0 {
            match runs.last_mut() {
                Some((last, n)) if *last == o => *n += 1,
                _ => runs.push((o, 1)),
            }
        }
        runs.iter().map(|(o, n)| format!("{o}*{n}")).collect::<Vec<_>>().join(",")
    }

    /// Reads [`Buckets::encode`]'s text; every owner must be below `n_variants`.
    pub fn decode(text: &str, n_variants: usize) -> Result<Buckets, String> {
        let mut owners = Vec::with_capacity(BUCKETS);
        for run in text.split(',').filter(|r| !r.is_empty()) {
            let (o, n) = run.split_once('*').ok_or_else(|| format!("bad bucket run '{run}'"))?;
            let o: u16 = o.parse().map_err(|_| format!("bad bucket owner '{o}'"))?;
            let n: usize = n.parse().map_err(|_| format!("bad bucket count '{n}'"))?;
            if o as usize >= n_variants || owners.len() + n > BUCKETS {
                return Err(format!("bucket run '{run}' does not fit {n_variants} variants"));
            }
            owners.extend(std::iter::repeat_n(o, n));
        }
        if owners.len() != BUCKETS {
            return Err(format!("{} buckets, not {BUCKETS}", owners.len()));
        }
        Ok(Buckets(owners))
    }
}

/// Percent weights (each ≥ 0, summing to 100 within 0.01) as bucket counts summing to
/// `BUCKETS`: largest remainders, ties to the earlier variant.
pub fn counts_of(weights: &[f64]) -> Result<Vec<usize>, String> {
    if weights.is_empty() {
        return Err("a split needs at least one variant".into());
    }
    if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
        return Err(format!("weight {w} is not a percentage between 0 and 100"));
    }
    let sum: f64 = weights.iter().sum();
    if (sum - 100.0).abs() > 0.01 {
        return Err(format!("weights sum to {sum}, not 100"));
    }
    let exact: Vec<f64> = weights.iter().map(|w| w / sum * BUCKETS as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    let short = BUCKETS - counts.iter().sum::<usize>();
    for &v in order.iter().take(short) {
        counts[v] += 1;
    }
    Ok(counts)
}

/// The bucket of a routing key under `seed`: FNV-1a over the key, then a 64-bit finaliser
/// (splitmix64) with the seed, so nearby keys spread and the mapping is stable across builds.
pub fn bucket_of(key: &[u8], seed: u64) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (mix(h ^ seed) % BUCKETS as u64) as usize
}

/// A random seed for a new endpoint's key hashing (std's random hasher keys).
pub fn new_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

/// A random bucket, for requests without a key.
pub fn random_bucket() -> usize {
    use std::cell::Cell;
    thread_local! {
        // Seeded differently on every thread.
        static STATE: Cell<u64> = Cell::new(new_seed());
    }
    STATE.with(|s| {
        let next = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(next);
        (mix(next) % BUCKETS as u64) as usize
    })
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_become_exact_bucket_counts() {
        assert_eq!(counts_of(&[90.0, 10.0]).unwrap(), [9000, 1000]);
        assert_eq!(counts_of(&[1.0, 99.0]).unwrap(), [100, 9900]);
        // Thirds: the remainder goes to the earliest.
        assert_eq!(counts_of(&[100.0 / 3.0; 3]).unwrap(), [3334, 3333, 3333]);
        assert!(counts_of(&[90.0, 20.0]).unwrap_err().contains("sum to 110"));
        assert!(counts_of(&[-5.0, 105.0]).unwrap_err().contains("-5"));
        assert!(counts_of(&[f64::NAN, 100.0]).is_err());
        assert!(counts_of(&[]).is_err());
    }

    #[test]
    fn a_weight_change_moves_only_the_buckets_it_must() {
        let b = Buckets::new(&counts_of(&[90.0, 10.0]).unwrap());
        let after = b.rebalance(&counts_of(&[80.0, 20.0]).unwrap());
        assert_eq!(after.counts(2), [8000, 2000]);
        let moved = (0..BUCKETS).filter(|&i| b.owner(i) != after.owner(i)).count();
        assert_eq!(moved, 1000);
        // Three variants, one shrinking, one growing: the third keeps every bucket.
        let three = Buckets::new(&[5000, 3000, 2000]);
        let next = three.rebalance(&[3000, 3000, 4000]);
        assert_eq!(next.counts(3), [3000, 3000, 4000]);
        assert!((0..BUCKETS).all(|i| three.owner(i) != 1 || next.owner(i) == 1));
        assert_eq!((0..BUCKETS).filter(|&i| three.owner(i) != next.owner(i)).count(), 2000);
        // A new variant takes buckets; a removed one's buckets are all handed out.
        let grown = b.rebalance(&[8500, 1000, 500]);
        assert_eq!(grown.counts(3), [8500, 1000, 500]);
        assert_eq!(grown.rebalance(&[10_000]).counts(1), [10_000]);
    }

    #[test]
    fn ownership_round_trips_as_text() {
        let b = Buckets::new(&[9000, 1000]).rebalance(&[7000, 2000, 1000]);
        let text = b.encode();
        assert_eq!(Buckets::decode(&text, 3).unwrap(), b);
        assert!(Buckets::decode(&text, 2).is_err());
        assert!(Buckets::decode("0*10", 1).unwrap_err().contains("10 buckets"));
        assert!(Buckets::decode("0*x", 1).is_err());
        assert_eq!(Buckets::new(&[10_000]).encode(), "0*10000");
    }

    #[test]
    fn keys_spread_evenly_and_seeds_reshuffle() {
        let mut counts = vec![0usize; 10];
        for i in 0..100_000 {
            counts[bucket_of(format!("patient-{i}").as_bytes(), 7) * 10 / BUCKETS] += 1;
        }
        // Each tenth of the buckets gets 10% of the keys, within half a point.
        assert!(counts.iter().all(|&c| (9_500..=10_500).contains(&c)), "{counts:?}");
        let same = (0..1000)
            .filter(|i| {
                let k = format!("k{i}");
                bucket_of(k.as_bytes(), 1) == bucket_of(k.as_bytes(), 2)
            })
            .count();
        assert!(same < 10, "{same} keys kept their bucket under another seed");
        let random: Vec<usize> = (0..1000).map(|_| random_bucket()).collect();
        assert!(random.iter().all(|b| *b < BUCKETS));
        assert!(random.windows(2).any(|w| w[0] != w[1]));
    }
}
