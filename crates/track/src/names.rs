//! Generated run names, `adjective-animal-number` like MLflow's (`victorious-eel-522`).

const ADJECTIVES: &[&str] = &[
    "agile", "bold", "brave", "bright", "calm", "clever", "crisp", "daring", "eager", "gentle",
    "glad", "grand", "happy", "honest", "humble", "keen", "kind", "lively", "lucky", "merry",
    "mighty", "nimble", "noble", "patient", "polite", "proud", "quick", "quiet", "rare", "sharp",
    "shy", "silent", "smooth", "steady", "swift", "tidy", "upbeat", "vivid", "warm", "wise",
];
const ANIMALS: &[&str] = &[
    "ant", "bat", "bear", "bee", "bison", "boar", "crab", "crane", "deer", "dove", "eel", "elk",
    "finch", "fox", "frog", "gnu", "goat", "hare", "hawk", "heron", "ibis", "koi", "lark", "lynx",
    "mole", "moth", "newt", "owl", "panda", "quail", "ram", "seal", "shrew", "snail", "swan",
    "toad", "trout", "vole", "wolf", "yak",
];

/// A name drawn from the bits of `run_id` (hex), so the same run always gets the same name.
pub(crate) fn run_name(run_id: &str) -> String {
    let bits = u64::from_str_radix(&run_id[run_id.len().saturating_sub(15)..], 16).unwrap_or(0);
    let adjective = ADJECTIVES[(bits % ADJECTIVES.len() as u64) as usize];
    let animal = ANIMALS[((bits / 64) % ANIMALS.len() as u64) as usize];
    format!("{adjective}-{animal}-{}", (bits / 4096) % 1000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_stable_and_shaped() {
        let name = super::run_name("0199a1b2c3d4e5f60718293a4b5c6d7e");
        assert_eq!(name, super::run_name("0199a1b2c3d4e5f60718293a4b5c6d7e"));
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert!(parts[2].parse::<u32>().unwrap() < 1000);
        assert_ne!(name, super::run_name("0199a1b2c3d4e5f60718293a4b5c6d7f"));
    }
}
