//! Pod ids and names. Ids are 64 hex characters: all the same length, so no
//! id is a prefix of another (runsc prefix-matches ids, DESIGN.md fact 2).

use super::{PodError, Result};

pub fn new_id() -> String {
    crate::util::random_hex(32)
}

/// Pod names follow docker's rule ([`crate::util::is_valid_name`]).
pub fn validate_name(name: &str) -> Result<()> {
    if crate::util::is_valid_name(name) {
        Ok(())
    } else {
        Err(PodError::BadName(name.to_string()))
    }
}

const ADJECTIVES: &[&str] = &[
    "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry",
    "nimble", "proud", "quick", "sharp", "tidy", "vivid", "witty", "zesty", "bold", "cosmic",
];
const NOUNS: &[&str] = &[
    "otter", "falcon", "badger", "heron", "lynx", "marmot", "newt", "osprey", "panda", "quokka",
    "raven", "seal", "tapir", "urchin", "vole", "walrus", "yak", "zebra", "gecko", "ibis",
];

/// A docker-like generated name; the random suffix keeps collisions rare,
/// and the database's UNIQUE constraint catches the rest.
pub fn generate_name() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("kernel random source unavailable");
    format!(
        "{}_{}_{:04x}",
        ADJECTIVES[b[0] as usize % ADJECTIVES.len()],
        NOUNS[b[1] as usize % NOUNS.len()],
        u16::from_le_bytes([b[2], b[3]])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "web-1", "A.b_c", &"x".repeat(63), &generate_name()] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "ä", &"x".repeat(64)] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn ids_are_fixed_length_hex() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
