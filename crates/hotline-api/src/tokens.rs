//! Token look-ups, remembered in memory: a validator's status query must not
//! cost a database round trip, and must still be answered from the cache
//! while the database is unreachable.
//!
//! A remembered token is re-read once it is older than its freshness (`FRESH`
//! by default), by **one** request: the others keep using the remembered
//! record until that re-read answers. Were every request to re-read it, each
//! expiry would send one query per keep-alive connection in flight to the
//! database at once (64 under the status benchmark), and hold all of those
//! requests up behind the pool. If the database cannot be reached, the remembered record
//! serves for up to `STALE_ON_ERROR`. Revoking a token therefore takes effect
//! within the freshness plus the time one re-read takes.

use foldhash::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hotline_store::{Store, TokenRecord, secret_digest};

const FRESH: Duration = Duration::from_secs(60);
const STALE_ON_ERROR: Duration = Duration::from_secs(3600);
/// Bounds memory if someone sprays random tokens: unknown tokens are never remembered,
/// and the map is cleared if it ever grows past this.
const MAX_REMEMBERED: usize = 100_000;

/// A token read from the store, and when.
struct Remembered {
    record: Arc<TokenRecord>,
    read_at: Instant,
    /// Set while one request re-reads this token.
    refreshing: AtomicBool,
}

/// Remembered tokens by the SHA-256 of their secret. Every validator request
/// reads it, so it is a read-mostly lock and records are shared, not copied.
pub struct TokenCache {
    known: RwLock<HashMap<[u8; 32], Arc<Remembered>>>,
    fresh: Duration,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::with_freshness(FRESH)
    }
}

/// The database could not be asked and the token was not remembered.
#[derive(Debug)]
pub struct LookupFailed(pub hotline_store::Error);

/// The one re-read of a remembered token in progress. Dropping it, also when
/// the request is abandoned midway, lets the next request re-read the token.
struct RefreshClaim<'a>(&'a AtomicBool);

impl<'a> RefreshClaim<'a> {
    fn take(refreshing: &'a AtomicBool) -> Option<Self> {
        refreshing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            .then_some(Self(refreshing))
    }
}

impl Drop for RefreshClaim<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl TokenCache {
    /// Remembered tokens are re-read once older than `fresh`.
    pub fn with_freshness(fresh: Duration) -> Self {
        Self { known: RwLock::default(), fresh }
    }

    fn remembered(&self, hash: &[u8; 32]) -> Option<Arc<Remembered>> {
        self.known.read().unwrap_or_else(|p| p.into_inner()).get(hash).cloned()
    }

    pub async fn find(&self, store: &Store, secret: &str) -> Result<Option<Arc<TokenRecord>>, LookupFailed> {
        let hash = secret_digest(secret);
        let remembered = self.remembered(&hash);
        let _claim = match &remembered {
            Some(r) if r.read_at.elapsed() < self.fresh => return Ok(Some(r.record.clone())),
            Some(r) if r.read_at.elapsed() < STALE_ON_ERROR => match RefreshClaim::take(&r.refreshing) {
                Some(claim) => Some(claim),
                // Another request is re-reading it: until that answers, the remembered record stands.
                None => return Ok(Some(r.record.clone())),
            },
            _ => None,
        };
        match store.find_token(secret).await {
            Ok(found) => {
                let found = found.map(Arc::new);
                let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
                match &found {
                    Some(record) => {
                        if known.len() >= MAX_REMEMBERED {
                            known.clear();
                        }
                        let fresh = Remembered {
                            record: record.clone(),
                            read_at: Instant::now(),
                            refreshing: AtomicBool::new(false),
                        };
                        known.insert(hash, Arc::new(fresh));
                    }
                    None => {
                        known.remove(&hash);
                    }
                }
                Ok(found)
            }
            Err(e) => match &remembered {
                Some(r) if r.read_at.elapsed() < STALE_ON_ERROR => Ok(Some(r.record.clone())),
                _ => Err(LookupFailed(e)),
            },
        }
    }
}
