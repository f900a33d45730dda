//! A whole-number setting with its allowed range in its type, so an
//! out-of-range value is refused when the configuration is read (naming the
//! setting, the value and the range) instead of being clamped later.

use std::fmt;

use serde::de::{Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// A whole number in `MIN..=MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Bounded<const MIN: u64, const MAX: u64>(u64);

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    /// The value, if it is in range.
    pub const fn new(value: u64) -> Option<Self> {
        if MIN <= value && value <= MAX { Some(Self(value)) } else { None }
    }

    /// A value known at compile time to be in range (built-in defaults).
    pub const fn of(value: u64) -> Self {
        assert!(MIN <= value && value <= MAX, "a built-in default is out of its own range");
        Self(value)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    /// As a count (the ranges are far below `usize::MAX`).
    pub fn count(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }

    /// As a signed count, for the database's integers.
    pub fn signed(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }

    pub fn millis(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }

    pub fn seconds(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

impl<const MIN: u64, const MAX: u64> fmt::Display for Bounded<MIN, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(InRange::<MIN, MAX>)
    }
}

/// Reads a whole number and checks its range, whatever integer type the source holds it in.
struct InRange<const MIN: u64, const MAX: u64>;

impl<const MIN: u64, const MAX: u64> InRange<MIN, MAX> {
    fn refuse<E: serde::de::Error>(unexpected: Unexpected<'_>) -> E {
        E::invalid_value(unexpected, &format!("a whole number from {MIN} to {MAX}").as_str())
    }
}

impl<'de, const MIN: u64, const MAX: u64> Visitor<'de> for InRange<MIN, MAX> {
    type Value = Bounded<MIN, MAX>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a whole number from {MIN} to {MAX}")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Bounded::new(v).ok_or_else(|| Self::refuse(Unexpected::Unsigned(v)))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(Self::refuse(Unexpected::Signed(v))),
        }
    }

    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Self::Value, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(Self::refuse(Unexpected::Other("a number too large"))),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Err(E::custom(format_args!("{v} is not a whole number; expected a whole number from {MIN} to {MAX}")))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        // An environment variable's digits come as text (`EnvText`).
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            return match v.parse::<u64>() {
                Ok(n) => self.visit_u64(n),
                Err(_) => Err(Self::refuse(Unexpected::Other("a number too large"))),
            };
        }
        // Never repeat long text: it may be a secret put in the wrong place.
        let shown: String = v.chars().take(24).collect();
        Err(E::custom(format_args!("{shown:?} is not a whole number; expected a whole number from {MIN} to {MAX}")))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Err(E::custom(format_args!("{v} is not a whole number; expected a whole number from {MIN} to {MAX}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        n: Bounded<1, 10>,
    }

    fn read(text: &str) -> Result<u64, String> {
        use figment::providers::{Format, Toml};
        figment::Figment::from(Toml::string(text)).extract::<Holder>().map(|h| h.n.get()).map_err(|e| e.to_string())
    }

    #[test]
    fn values_in_range_are_read_and_others_refused_with_the_range() {
        assert_eq!(read("n = 1"), Ok(1));
        assert_eq!(read("n = 10"), Ok(10));
        for bad in ["n = 0", "n = 11", "n = -3", "n = 2.5", "n = \"five\""] {
            let err = read(bad).unwrap_err();
            assert!(err.contains("a whole number from 1 to 10"), "{bad}: {err}");
        }
        assert!(read("n = \"five\"").unwrap_err().contains("\"five\" is not a whole number"));
        assert_eq!(Bounded::<1, 10>::new(0), None);
        assert_eq!(Bounded::<1, 10>::new(7).map(Bounded::get), Some(7));
    }
}
