//! Signed answers kept for reuse: signing costs far more than a look-up, and
//! most validators ask again and again about the same certificates.
//!
//! An answer is kept under the certificate and *what is known of it*
//! (good; revoked since when and why; unknown), so the status is always
//! looked up first and a response signed before a change can never answer
//! after it: the change gives a new key. Entries are re-signed once a part of
//! their validity has passed, each a little later than the configured part by
//! a jitter of its own, so that answers signed together are not all signed
//! again together (the kept one is sent meanwhile, while enough of its
//! validity is left), and the cache is bounded by the bytes it holds.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hotline_core::{IssuerId, Serial};
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::request::HashAlgorithm;
use crate::response::{Known, Signed};

/// One certificate, as asked (the hash algorithm shapes the response), and
/// what is known of it. The issuer and serial are held inline, not as strings
/// on the heap: the key is compared on every look-up, and a heap string per
/// kept entry was a cache miss per look-up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    issuer: Inline<64>,
    serial: Inline<{ Serial::MAX_BYTES * 2 }>,
    pub hash: HashAlgorithm,
    pub known: Known,
}

impl CacheKey {
    pub fn new(issuer: &IssuerId, serial: &Serial, hash: HashAlgorithm, known: Known) -> Self {
        Self { issuer: Inline::new(issuer.as_str()), serial: Inline::new(serial.as_str()), hash, known }
    }
}

/// Up to `N` bytes of a name, inline. Longer names cannot be made by the
/// parsers (issuer slugs are at most 64 characters, serials 40 hex digits);
/// should one be, it is cut, which only makes two keys the same if they
/// share their first `N` bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Inline<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> Inline<N> {
    fn new(name: &str) -> Self {
        let len = name.len().min(N);
        let mut bytes = [0; N];
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        Self { len: u8::try_from(len).unwrap_or(u8::MAX), bytes }
    }
}

impl<const N: usize> std::fmt::Debug for Inline<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.bytes[..usize::from(self.len)]))
    }
}

#[derive(Clone)]
struct Bytes;

impl Weighter<CacheKey, Arc<Signed>> for Bytes {
    fn weight(&self, key: &CacheKey, value: &Arc<Signed>) -> u64 {
        (value.der.len() + std::mem::size_of_val(key) + 64) as u64
    }
}

/// How a look-up went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    /// Nothing kept for this key, or what is kept is too near its nextUpdate to be sent.
    Miss,
    /// Kept and still good to send, but old enough to be signed again (in the background).
    Stale,
}

/// A kept answer is sent only while this much of its validity is left, so a
/// client never gets one that expires on the way.
const LEFT_TO_SEND: chrono::Duration = chrono::Duration::seconds(5);

pub struct SignedCache {
    entries: Cache<CacheKey, Arc<Signed>, Bytes>,
    /// Re-sign an answer once this much of its validity has passed.
    resign_after: chrono::Duration,
}

impl SignedCache {
    /// `bytes`: the most it holds; `resign_after`: the age at which an answer is signed again.
    pub fn new(bytes: u64, resign_after: chrono::Duration) -> Self {
        // quick_cache wants an estimate of the number of entries: about 1 KiB each.
        let estimated = usize::try_from(bytes / 1024).unwrap_or(usize::MAX).max(16);
        Self { entries: Cache::with_weighter(estimated, bytes, Bytes), resign_after }
    }

    /// What is kept for `key`: a hit, a stale answer still good to send (to be
    /// signed again), or nothing usable.
    pub fn get(&self, key: &CacheKey, now: DateTime<Utc>) -> (Lookup, Option<Arc<Signed>>) {
        match self.entries.get(key) {
            None => (Lookup::Miss, None),
            Some(signed) if now + LEFT_TO_SEND.min(self.resign_after) >= signed.next_update => (Lookup::Miss, None),
            Some(signed) if now >= self.due(&signed) => (Lookup::Stale, Some(signed)),
            Some(signed) => (Lookup::Hit, Some(signed)),
        }
    }

    /// When a kept answer falls due to be signed again: `resign_after` past
    /// its `thisUpdate`, plus a part, drawn from its own digest, of half the
    /// time it may still be sent after that. Answers signed together (a
    /// warm-up, a restart) then fall due over seconds instead of in one wave
    /// that would take a core from the requests while the signers catch up.
    fn due(&self, signed: &Signed) -> DateTime<Utc> {
        let sendable = signed.next_update - signed.this_update - LEFT_TO_SEND - self.resign_after;
        let spread_ms = (sendable / 2).num_milliseconds().max(0);
        let draw = i64::from(u16::from_be_bytes([signed.digest[0], signed.digest[1]]));
        let jitter = chrono::Duration::milliseconds(spread_ms * draw / i64::from(u16::MAX));
        signed.this_update + self.resign_after + jitter
    }

    pub fn put(&self, key: CacheKey, signed: Arc<Signed>) {
        self.entries.insert(key, signed);
    }

    /// Entries and bytes held.
    pub fn size(&self) -> (usize, u64) {
        (self.entries.len(), self.entries.weight())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(this_update: DateTime<Utc>, validity_s: i64, digest: [u8; 16]) -> Arc<Signed> {
        let next_update = this_update + chrono::Duration::seconds(validity_s);
        let http = crate::CachingHeaders::new(&digest, this_update, next_update);
        Arc::new(Signed { der: bytes::Bytes::from_static(b"0"), this_update, next_update, digest, http })
    }

    fn key(serial: &str) -> CacheKey {
        let issuer = IssuerId::parse("jpki-auth").unwrap();
        CacheKey::new(&issuer, &Serial::parse(serial).unwrap(), HashAlgorithm::Sha1, Known::Good)
    }

    #[test]
    fn keys_tell_issuers_serials_hashes_and_statuses_apart() {
        let (auth, sign) = (IssuerId::parse("jpki-auth").unwrap(), IssuerId::parse("jpki-sign").unwrap());
        let serial = Serial::parse("0a0b").unwrap();
        let key = CacheKey::new;
        let base = key(&auth, &serial, HashAlgorithm::Sha1, Known::Good);
        assert_eq!(base, key(&auth, &Serial::parse("0a0b").unwrap(), HashAlgorithm::Sha1, Known::Good));
        assert_ne!(base, key(&sign, &serial, HashAlgorithm::Sha1, Known::Good));
        assert_ne!(base, key(&auth, &Serial::parse("0a").unwrap(), HashAlgorithm::Sha1, Known::Good));
        assert_ne!(base, key(&auth, &serial, HashAlgorithm::Sha256, Known::Good));
        assert_ne!(base, key(&auth, &serial, HashAlgorithm::Sha1, Known::Unknown));
        let longest = IssuerId::parse(&"a".repeat(64)).unwrap();
        assert_ne!(key(&longest, &serial, HashAlgorithm::Sha1, Known::Good), base);
    }

    #[test]
    fn an_answer_is_a_hit_until_due_then_stale_then_no_longer_sent() {
        let cache = SignedCache::new(1 << 20, chrono::Duration::seconds(30));
        let t = DateTime::from_timestamp(1_764_633_600, 0).unwrap();
        let at = |s: i64| t + chrono::Duration::seconds(s);
        // Digest 0x0000…: no jitter, due exactly 30 s after thisUpdate.
        cache.put(key("01"), signed(t, 60, [0; 16]));
        assert_eq!(cache.get(&key("01"), at(29)).0, Lookup::Hit);
        assert_eq!(cache.get(&key("01"), at(30)).0, Lookup::Stale);
        assert_eq!(cache.get(&key("01"), at(55)), (Lookup::Miss, None), "5 s before nextUpdate it is not sent");
        assert_eq!(cache.get(&key("02"), at(1)), (Lookup::Miss, None));
    }

    #[test]
    fn answers_signed_together_fall_due_over_a_spread_of_time() {
        let cache = SignedCache::new(1 << 20, chrono::Duration::seconds(30));
        let t = DateTime::from_timestamp(1_764_633_600, 0).unwrap();
        // The sendable time after 30 s is 25 s, half of it the spread: due between 30 and 42.5 s.
        let dues: Vec<i64> = (0..=255u8)
            .map(|b| {
                (cache.due(&signed(t, 60, [b, b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])) - t).num_milliseconds()
            })
            .collect();
        assert_eq!(dues[0], 30_000);
        assert_eq!(dues[255], 42_500);
        assert!(dues.windows(2).all(|w| w[0] < w[1]), "{dues:?}");
        // Never later than it may be sent.
        let late = signed(t, 60, [0xff; 16]);
        assert!(cache.due(&late) < late.next_update - LEFT_TO_SEND);
    }
}
