//! The reference number an operator reads to the caller: short, unambiguous
//! over the phone, and random so it reveals nothing about volume or order.

use std::fmt;

/// Crockford's base-32 alphabet: no I, L, O or U, so nothing sounds or looks alike.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Eight base-32 symbols (40 random bits) shown as `XXXX-XXXX`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference(String);

impl Reference {
    /// Builds a reference from 5 random bytes supplied by the caller (this crate has no randomness).
    pub fn from_random(bytes: [u8; 5]) -> Self {
        let mut bits = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let mut symbols = [0u8; 8];
        for s in symbols.iter_mut().rev() {
            *s = ALPHABET[(bits & 31) as usize];
            bits >>= 5;
        }
        let text: String = symbols.iter().map(|b| char::from(*b)).collect();
        Self(format!("{}-{}", &text[..4], &text[4..]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_use_the_unambiguous_alphabet() {
        let r = Reference::from_random([0xff, 0x00, 0x7a, 0x13, 0x99]);
        assert_eq!(r.as_str().len(), 9);
        assert_eq!(&r.as_str()[4..5], "-");
        assert!(r.as_str().chars().filter(|c| *c != '-').all(|c| ALPHABET.contains(&(c as u8))));
        assert_ne!(r, Reference::from_random([0xff, 0x00, 0x7a, 0x13, 0x98]));
    }

    #[test]
    fn all_zero_bytes_give_all_zero_symbols() {
        assert_eq!(Reference::from_random([0; 5]).as_str(), "0000-0000");
    }
}
