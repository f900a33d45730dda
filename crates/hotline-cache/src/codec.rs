//! How an entry is written in the cache: compact text, so a national registry
//! of held certificates fits comfortably in Redis (see ARCHITECTURE.md), and
//! which bucket a serial falls in.

use chrono::DateTime;
use hotline_core::CertificateStatus;

use crate::CachedStatus;

/// RFC 5280 reason codes for the reasons the registry writes; others are kept as text.
const REASONS: &[(&str, &str)] =
    &[("certificate_hold", "6"), ("superseded", "4"), ("key_compromise", "1"), ("unspecified", "0")];

/// `s|1763791200|6`: status letter, since (Unix seconds), reason code (or text, or empty).
pub fn encode(status: CertificateStatus, reason: Option<&str>, since: DateTime<chrono::Utc>) -> String {
    let letter = match status {
        CertificateStatus::Suspended => "s",
        CertificateStatus::Revoked => "r",
        CertificateStatus::Good => "g",
    };
    let reason = reason.map(|r| REASONS.iter().find(|(name, _)| *name == r).map_or(r, |(_, code)| *code)).unwrap_or("");
    format!("{letter}|{}|{reason}", since.timestamp())
}

pub fn decode(value: &str) -> Option<CachedStatus> {
    let mut parts = value.splitn(3, '|');
    let status = match parts.next()? {
        "s" => CertificateStatus::Suspended,
        "r" => CertificateStatus::Revoked,
        "g" => CertificateStatus::Good,
        _ => return None,
    };
    let since = DateTime::from_timestamp(parts.next()?.parse().ok()?, 0)?;
    let reason = parts
        .next()
        .filter(|r| !r.is_empty())
        .map(|r| REASONS.iter().find(|(_, code)| *code == r).map_or(r, |(name, _)| *name).to_owned());
    Some(CachedStatus { status, reason, since })
}

/// Buckets per issuer: 65 536, so that at a million held certificates each
/// bucket holds about 15 entries and stays in Redis's compact listpack encoding.
pub const BUCKET_BITS: u32 = 16;

/// The bucket of a serial: FNV-1a over its text, folded to 16 bits, so that
/// even sequential serials spread evenly.
pub fn bucket(serial: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in serial.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{:04x}", (h ^ (h >> BUCKET_BITS)) & ((1 << BUCKET_BITS) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_compactly() {
        let since = DateTime::from_timestamp(1_763_791_200, 0).unwrap();
        let v = encode(CertificateStatus::Suspended, Some("certificate_hold"), since);
        assert_eq!(v, "s|1763791200|6");
        assert_eq!(
            decode(&v),
            Some(CachedStatus { status: CertificateStatus::Suspended, reason: Some("certificate_hold".into()), since })
        );
        let odd = encode(CertificateStatus::Revoked, Some("affiliation_changed"), since);
        assert_eq!(decode(&odd).unwrap().reason.as_deref(), Some("affiliation_changed"));
        assert_eq!(decode(&encode(CertificateStatus::Revoked, None, since)).unwrap().reason, None);
        assert_eq!(decode("x|1|"), None);
    }

    #[test]
    fn sequential_serials_spread_over_buckets() {
        let buckets: std::collections::HashSet<String> = (0..1000u32).map(|i| bucket(&format!("{i:08x}"))).collect();
        assert!(buckets.len() > 950, "{}", buckets.len());
        assert!(buckets.iter().all(|b| b.len() == 4));
    }
}
