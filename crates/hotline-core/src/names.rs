//! Identifiers that arrive from outside: certificate serials, issuers, devices
//! and calls. Each parses once at the edge into a value that is known to be well formed.

use std::fmt;

/// Why an identifier was refused; the message is safe to show to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub &'static str);

/// A certificate serial number: hex, 1 to 20 bytes (RFC 5280 §4.1.2.2), kept
/// in one form, lowercase without leading zero bytes, since a serial is an
/// integer: `00ab` and `ab` are the same certificate, however a client (or a
/// CRL's DER) writes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(String);

impl Serial {
    pub const MAX_BYTES: usize = 20;

    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() || !s.len().is_multiple_of(2) || s.len() > Self::MAX_BYTES * 2 {
            return Err(NameError("must be 1 to 20 bytes of hex (2 to 40 hex digits, an even number)"));
        }
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NameError("must contain only hex digits 0-9 a-f"));
        }
        let mut canonical = s;
        while canonical.len() > 2 && canonical.starts_with("00") {
            canonical = &canonical[2..];
        }
        Ok(Self(canonical.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Short machine names: lowercase letters, digits and '-', 1 to 64 characters.
fn parse_slug(s: &str) -> Result<&str, NameError> {
    let ok =
        !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok { Ok(s) } else { Err(NameError("must be 1 to 64 characters of a-z, 0-9 and '-'")) }
}

/// Opaque identifiers chosen by other systems: 1 to 128 printable ASCII
/// characters without spaces, so they can be logged and quoted safely.
fn parse_token_like(s: &str) -> Result<&str, NameError> {
    let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic());
    if ok { Ok(s) } else { Err(NameError("must be 1 to 128 printable ASCII characters without spaces")) }
}

macro_rules! string_name {
    ($(#[$doc:meta])* $name:ident, $parser:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, NameError> {
                $parser(s).map(|s| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_name!(
    /// A certificate issuer known to the registry, such as `jpki-sign`.
    IssuerId, parse_slug
);
string_name!(
    /// The identifier of a smartphone on which certificates are installed.
    DeviceId, parse_token_like
);
string_name!(
    /// The call centre's identifier of the phone call that led to a report.
    CallId, parse_token_like
);

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_normalised_to_lowercase() {
        assert_eq!(Serial::parse("0A1B").unwrap().as_str(), "0a1b");
    }

    #[test]
    fn serials_lose_their_leading_zero_bytes() {
        assert_eq!(Serial::parse("00008A01").unwrap().as_str(), "8a01");
        assert_eq!(Serial::parse("0000").unwrap().as_str(), "00");
        assert_eq!(Serial::parse("0a00").unwrap().as_str(), "0a00", "a zero digit is not a zero byte");
    }

    #[test]
    fn serial_bounds() {
        assert!(Serial::parse(&"ab".repeat(20)).is_ok());
        assert!(Serial::parse(&"ab".repeat(21)).is_err());
        assert!(Serial::parse("").is_err());
        assert!(Serial::parse("abc").is_err());
        assert!(Serial::parse("zz").is_err());
        assert!(Serial::parse("0a:1b").is_err());
    }

    #[test]
    fn issuers_are_slugs() {
        assert!(IssuerId::parse("jpki-sign").is_ok());
        assert!(IssuerId::parse("JPKI").is_err());
        assert!(IssuerId::parse("").is_err());
    }

    #[test]
    fn device_and_call_ids_refuse_spaces_and_control_characters() {
        assert!(DeviceId::parse("android-3f9a").is_ok());
        assert!(DeviceId::parse("a b").is_err());
        assert!(CallId::parse("call\n1").is_err());
        assert!(CallId::parse(&"c".repeat(129)).is_err());
    }
}
