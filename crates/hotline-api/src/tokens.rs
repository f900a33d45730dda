//! Token look-ups, remembered in memory: a validator's status query must not
//! cost a database round trip, and must still be answered from the cache
//! while the database is unreachable.
//!
//! A remembered token is re-read after `FRESH`; if the database cannot be
//! reached then, the remembered answer serves for up to `STALE_ON_ERROR`.
//! Revoking a token therefore takes effect within `FRESH`.

use foldhash::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hotline_store::{Store, TokenRecord, secret_digest};

const FRESH: Duration = Duration::from_secs(60);
const STALE_ON_ERROR: Duration = Duration::from_secs(3600);
/// Bounds memory if someone sprays random tokens: unknown tokens are never remembered,
/// and the map is cleared if it ever grows past this.
const MAX_REMEMBERED: usize = 100_000;

/// A remembered token and when it was read from the store.
type Remembered = (Arc<TokenRecord>, Instant);

/// Remembered tokens by the SHA-256 of their secret. Every validator request
/// reads it, so it is a read-mostly lock and records are shared, not copied.
#[derive(Default)]
pub struct TokenCache {
    known: RwLock<HashMap<[u8; 32], Remembered>>,
}

/// The database could not be asked and the token was not remembered.
#[derive(Debug)]
pub struct LookupFailed(pub anyhow::Error);

impl TokenCache {
    fn remembered(&self, hash: &[u8; 32]) -> Option<Remembered> {
        self.known.read().unwrap_or_else(|p| p.into_inner()).get(hash).cloned()
    }

    pub async fn find(&self, store: &Store, secret: &str) -> Result<Option<Arc<TokenRecord>>, LookupFailed> {
        let hash = secret_digest(secret);
        let remembered = match self.remembered(&hash) {
            Some((record, at)) if at.elapsed() < FRESH => return Ok(Some(record)),
            other => other,
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
                        known.insert(hash, (record.clone(), Instant::now()));
                    }
                    None => {
                        known.remove(&hash);
                    }
                }
                Ok(found)
            }
            Err(e) => match remembered {
                Some((record, at)) if at.elapsed() < STALE_ON_ERROR => Ok(Some(record)),
                _ => Err(LookupFailed(e)),
            },
        }
    }
}
