//! Token look-ups, remembered in memory: a validator's status query must not
//! cost a database round trip, and must still be answered from the cache
//! while the database is unreachable.
//!
//! A remembered token is re-read after `FRESH`; if the database cannot be
//! reached then, the remembered answer serves for up to `STALE_ON_ERROR`.
//! Revoking a token therefore takes effect within `FRESH`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hotline_store::{Store, TokenRecord, hash_secret};

const FRESH: Duration = Duration::from_secs(60);
const STALE_ON_ERROR: Duration = Duration::from_secs(3600);
/// Bounds memory if someone sprays random tokens: unknown tokens are never remembered,
/// and the map is cleared if it ever grows past this.
const MAX_REMEMBERED: usize = 100_000;

#[derive(Default)]
pub struct TokenCache {
    known: Mutex<HashMap<String, (TokenRecord, Instant)>>,
}

/// The database could not be asked and the token was not remembered.
#[derive(Debug)]
pub struct LookupFailed(pub anyhow::Error);

impl TokenCache {
    fn remembered(&self, hash: &str) -> Option<(TokenRecord, Instant)> {
        self.known.lock().unwrap_or_else(|p| p.into_inner()).get(hash).cloned()
    }

    pub async fn find(&self, store: &Store, secret: &str) -> Result<Option<TokenRecord>, LookupFailed> {
        let hash = hash_secret(secret);
        let remembered = self.remembered(&hash);
        if let Some((record, at)) = &remembered
            && at.elapsed() < FRESH
        {
            return Ok(Some(record.clone()));
        }
        match store.find_token(secret).await {
            Ok(found) => {
                let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
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
