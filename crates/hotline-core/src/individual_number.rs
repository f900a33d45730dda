//! The Individual Number (個人番号): 12 digits, the last a check digit, and the
//! keyed fingerprint under which the registry finds a holder.
//!
//! The number is specific personal information under the My Number Act. It is
//! held only in this type, whose `Debug` and `Display` never print it; the
//! store keeps only `HolderFingerprint`, an HMAC-SHA256 under a secret key,
//! because a plain hash of an 11-digit space is reversed by brute force.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a string is not an Individual Number. The messages never repeat the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IndividualNumberError {
    #[error("must be exactly 12 digits")]
    Shape,
    #[error("check digit does not match")]
    CheckDigit,
}

/// A 12-digit Individual Number whose check digit is correct.
#[derive(Clone, PartialEq, Eq)]
pub struct IndividualNumber([u8; 12]);

impl IndividualNumber {
    /// Parses 12 ASCII digits and verifies the check digit (MIC ordinance No. 85 of 2014, art. 5).
    pub fn parse(s: &str) -> Result<Self, IndividualNumberError> {
        let bytes = s.as_bytes();
        if bytes.len() != 12 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(IndividualNumberError::Shape);
        }
        let mut digits = [0u8; 12];
        for (d, b) in digits.iter_mut().zip(bytes) {
            *d = b - b'0';
        }
        let mut first = [0u8; 11];
        first.copy_from_slice(&digits[..11]);
        if check_digit(&first) != digits[11] {
            return Err(IndividualNumberError::CheckDigit);
        }
        Ok(Self(digits))
    }

    /// Builds a valid number from its first 11 digits by appending the check digit
    /// (used to generate synthetic registries).
    pub fn from_first_eleven(first: [u8; 11]) -> Option<Self> {
        if first.iter().any(|d| *d > 9) {
            return None;
        }
        let mut digits = [0u8; 12];
        digits[..11].copy_from_slice(&first);
        digits[11] = check_digit(&first);
        Some(Self(digits))
    }

    /// The digits in clear. Named loudly on purpose: only the synthetic-registry
    /// sample file, written for a person to try the API, may call this.
    pub fn expose_digits(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }

    /// The keyed fingerprint the registry stores and looks holders up by.
    pub fn fingerprint(&self, key: &PiiKey) -> HolderFingerprint {
        let mut mac = key.mac();
        mac.update(b"individual-number:v1:");
        mac.update(&self.0);
        HolderFingerprint(hex::encode(mac.finalize().into_bytes()))
    }
}

/// The check digit of the first 11 digits.
///
/// P_n is the n-th digit counted from the right; Q_n = n + 1 for n ≤ 6 and
/// n − 5 for n ≥ 7; check = 11 − (Σ P_n·Q_n mod 11), or 0 when the remainder ≤ 1.
pub fn check_digit(first: &[u8; 11]) -> u8 {
    let sum: u32 = (1..=11usize)
        .map(|n| {
            let p = u32::from(first[11 - n]);
            let q = if n <= 6 { n + 1 } else { n - 5 } as u32;
            p * q
        })
        .sum();
    let remainder = sum % 11;
    if remainder <= 1 { 0 } else { (11 - remainder) as u8 }
}

impl fmt::Debug for IndividualNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IndividualNumber(<redacted>)")
    }
}

impl fmt::Display for IndividualNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The secret key for fingerprints (and request fingerprints): at least 32 bytes.
#[derive(Clone)]
pub struct PiiKey(Vec<u8>);

/// Why a configured PII key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PiiKeyError {
    #[error("the PII key must be hex-encoded")]
    NotHex,
    #[error("the PII key must be at least 32 bytes (64 hex digits), got {0} bytes")]
    TooShort(usize),
}

impl PiiKey {
    pub const MIN_BYTES: usize = 32;

    /// Parses a hex-encoded key of at least 32 bytes.
    pub fn from_hex(s: &str) -> Result<Self, PiiKeyError> {
        let bytes = hex::decode(s.trim()).map_err(|_| PiiKeyError::NotHex)?;
        Self::from_bytes(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, PiiKeyError> {
        if bytes.len() < Self::MIN_BYTES {
            return Err(PiiKeyError::TooShort(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// An HMAC-SHA256 instance keyed with this key.
    pub fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail; the fallback is unreachable.
        Hmac::<Sha256>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
    }

    /// Keyed digest of arbitrary bytes, hex-encoded (used for request fingerprints).
    pub fn digest(&self, domain: &str, bytes: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(domain.as_bytes());
        mac.update(b":");
        mac.update(bytes);
        hex::encode(mac.finalize().into_bytes())
    }
}

impl fmt::Debug for PiiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PiiKey(<secret>)")
    }
}

/// HMAC-SHA256 of an Individual Number, hex-encoded: what the registry stores.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HolderFingerprint(String);

impl HolderFingerprint {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_published_valid_numbers() {
        for n in ["123456789018", "023456789013", "621498320257", "548836529885"] {
            assert!(IndividualNumber::parse(n).is_ok(), "{n} should be valid");
        }
    }

    #[test]
    fn refuses_the_published_invalid_numbers() {
        for n in ["923456789018", "123456789010", "621498320258"] {
            assert_eq!(IndividualNumber::parse(n), Err(IndividualNumberError::CheckDigit), "{n}");
        }
    }

    #[test]
    fn refuses_wrong_shapes() {
        for n in ["", "12345678901", "1234567890180", "12345678901a", "１２３４５６７８９０１８", " 123456789018"]
        {
            assert_eq!(IndividualNumber::parse(n), Err(IndividualNumberError::Shape), "{n:?}");
        }
    }

    #[test]
    fn debug_and_display_never_print_the_digits() {
        let n = IndividualNumber::parse("621498320257").unwrap();
        for shown in [format!("{n:?}"), format!("{n}"), format!("{n:#?}")] {
            assert!(!shown.contains("621498320257"), "{shown}");
            assert!(!shown.contains("62149832"), "{shown}");
        }
    }

    #[test]
    fn generated_numbers_are_valid() {
        let n = IndividualNumber::from_first_eleven([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
        assert_eq!(n.map(|n| n.expose_digits()).as_deref(), Some("123456789018"));
    }

    #[test]
    fn fingerprint_depends_on_the_key() {
        let n = IndividualNumber::parse("123456789018").unwrap();
        let k1 = PiiKey::from_bytes(vec![1; 32]).unwrap();
        let k2 = PiiKey::from_bytes(vec![2; 32]).unwrap();
        assert_ne!(n.fingerprint(&k1), n.fingerprint(&k2));
        assert_eq!(n.fingerprint(&k1), n.fingerprint(&k1));
        assert!(!n.fingerprint(&k1).as_str().contains("123456789018"));
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(PiiKey::from_hex("abcd").err(), Some(PiiKeyError::TooShort(2)));
        assert_eq!(PiiKey::from_hex("zz").err(), Some(PiiKeyError::NotHex));
    }
}
