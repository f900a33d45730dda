//! The audit log's hash chain. Each record's hash covers the previous record's
//! hash and every field of its own, so editing, inserting or removing a record
//! breaks every hash after it; the store keeps the head of the chain so that
//! removing the last record is caught too.

use sha2::{Digest, Sha256};

/// The hash that precedes the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The fields of one audit record that the chain protects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFields<'a> {
    pub seq: i64,
    pub at: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: &'a str,
    pub details: &'a str,
}

/// The hash of a record given the hash of the one before it.
///
/// Each field is length-prefixed so that moving bytes from one field to the
/// next cannot produce the same input.
pub fn chain_hash(prev_hash: &str, fields: &AuditFields<'_>) -> String {
    let mut h = Sha256::new();
    let seq = fields.seq.to_string();
    for part in [prev_hash, &seq, fields.at, fields.actor, fields.action, fields.subject, fields.details] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(details: &str) -> AuditFields<'_> {
        AuditFields { seq: 1, at: "2026-01-01T00:00:00Z", actor: "t1", action: "suspend", subject: "s1", details }
    }

    #[test]
    fn any_change_changes_the_hash() {
        let base = chain_hash(GENESIS, &fields("{}"));
        assert_ne!(base, chain_hash(GENESIS, &fields("{ }")));
        assert_ne!(base, chain_hash(&"1".repeat(64), &fields("{}")));
        assert_eq!(base, chain_hash(GENESIS, &fields("{}")));
        assert_eq!(base.len(), 64);
    }

    #[test]
    fn fields_cannot_bleed_into_each_other() {
        let a = AuditFields { actor: "ab", action: "c", ..fields("") };
        let b = AuditFields { actor: "a", action: "bc", ..fields("") };
        assert_ne!(chain_hash(GENESIS, &a), chain_hash(GENESIS, &b));
    }
}
