//! Signed answers kept for reuse: signing costs far more than a look-up, and
//! most validators ask again and again about the same certificates.
//!
//! An answer is kept under the certificate and *what is known of it*
//! (good; revoked since when and why; unknown), so the status is always
//! looked up first and a response signed before a change can never answer
//! after it: the change gives a new key. Entries are re-signed once a part of
//! their validity has passed (the kept one is sent meanwhile, while enough of
//! its validity is left), and the cache is bounded by the bytes it holds.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hotline_core::IssuerId;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::request::HashAlgorithm;
use crate::response::{Known, Signed};

/// One certificate, as asked (the hash algorithm shapes the response), and what is known of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub issuer: IssuerId,
    pub serial: String,
    pub hash: HashAlgorithm,
    pub known: Known,
}

#[derive(Clone)]
struct Bytes;

impl Weighter<CacheKey, Arc<Signed>> for Bytes {
    fn weight(&self, key: &CacheKey, value: &Arc<Signed>) -> u64 {
        (value.der.len() + key.serial.len() + 96) as u64
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
            Some(signed) if now - signed.this_update >= self.resign_after => (Lookup::Stale, Some(signed)),
            Some(signed) => (Lookup::Hit, Some(signed)),
        }
    }

    pub fn put(&self, key: CacheKey, signed: Arc<Signed>) {
        self.entries.insert(key, signed);
    }

    /// Entries and bytes held.
    pub fn size(&self) -> (usize, u64) {
        (self.entries.len(), self.entries.weight())
    }
}
