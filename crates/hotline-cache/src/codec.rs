//! How an entry is written in the cache: compact text, so a national registry
//! of held certificates fits comfortably in Redis (see ARCHITECTURE.md), and
//! which bucket a serial falls in.

use anyhow::{Context, anyhow};
use chrono::DateTime;
use hotline_core::{CertificateStatus, RevocationReason, StatusRecord};

/// `s|1763791200123|6`: status letter, since (Unix milliseconds), RFC 5280 reason code (empty for none).
pub fn encode(record: &StatusRecord) -> String {
    let letter = match record.status {
        CertificateStatus::Suspended => "s",
        CertificateStatus::Revoked => "r",
        CertificateStatus::Good => "g",
    };
    let reason = record.reason.map(|r| r.code().to_string()).unwrap_or_default();
    format!("{letter}|{}|{reason}", record.since.timestamp_millis())
}

/// Entries in whole seconds (as a Redis not emptied since an earlier version may hold) are told
/// apart by size: every `since` in seconds is below this (the year 5138),
/// every one in milliseconds above it (any instant after March 1973).
const SECONDS_UNTIL: i64 = 100_000_000_000;

/// Reads an entry back. An entry that does not read is an error, never a
/// guess: the lookup then fails and the next source answers (invariant 3).
pub fn decode(value: &str) -> anyhow::Result<StatusRecord> {
    let bad = || anyhow!("the cache holds an entry that does not read: {value:?}");
    let mut parts = value.splitn(3, '|');
    let status = match parts.next() {
        Some("s") => CertificateStatus::Suspended,
        Some("r") => CertificateStatus::Revoked,
        Some("g") => CertificateStatus::Good,
        _ => return Err(bad()),
    };
    let since: i64 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let since =
        if since < SECONDS_UNTIL { DateTime::from_timestamp(since, 0) } else { DateTime::from_timestamp_millis(since) };
    let since = since.ok_or_else(bad)?;
    let reason = match parts.next().ok_or_else(bad)? {
        "" => None,
        code => Some(code.parse().ok().and_then(RevocationReason::from_code).with_context(bad)?),
    };
    Ok(StatusRecord { status, reason, since })
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
        let since = DateTime::from_timestamp_millis(1_763_791_200_123).unwrap();
        let held = StatusRecord::held(since);
        let v = encode(&held);
        assert_eq!(v, "s|1763791200123|6", "milliseconds are kept");
        assert_eq!(decode(&v).unwrap(), held);
        for reason in RevocationReason::ALL {
            let revoked = StatusRecord::revoked(*reason, since);
            assert_eq!(decode(&encode(&revoked)).unwrap(), revoked);
        }
        let no_reason = StatusRecord { status: CertificateStatus::Revoked, reason: None, since };
        assert_eq!(decode(&encode(&no_reason)).unwrap().reason, None);
    }

    #[test]
    fn entries_kept_in_whole_seconds_still_read() {
        let entry = decode("s|1763791200|6").unwrap();
        assert_eq!(entry.since, DateTime::from_timestamp(1_763_791_200, 0).unwrap());
    }

    #[test]
    fn an_entry_that_does_not_read_is_an_error_not_a_good_certificate() {
        for bad in ["x|1|", "s|soon|6", "s|1|7", "s|1|key_compromise", "s|1", ""] {
            assert!(decode(bad).is_err(), "{bad:?} must not read");
        }
    }

    #[test]
    fn sequential_serials_spread_over_buckets() {
        let buckets: std::collections::HashSet<String> = (0..1000u32).map(|i| bucket(&format!("{i:08x}"))).collect();
        assert!(buckets.len() > 950, "{}", buckets.len());
        assert!(buckets.iter().all(|b| b.len() == 4));
    }
}
