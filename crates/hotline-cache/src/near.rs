//! The near-cache: an in-process copy of the revocation cache in each API
//! instance, so a status query costs no network round trip.
//!
//! It follows the store's change stream itself, with the same ordered applies
//! and the same marker as the shared cache, so its completeness rests on what
//! it read from the store and on nothing else. Redis pub/sub only wakes it: an
//! instance that commits a change publishes a poke, and every instance applies
//! the change at once instead of at its next poll. A lost pub/sub connection
//! delays updates to the next poll (every sync interval); if the store cannot
//! be read either, the marker's `as_of` ages past the freshness bound and
//! readers fall back, exactly as for the shared cache.

use std::time::Duration;

use futures::StreamExt;
use hotline_store::Store;

use crate::{CacheSync, MemoryCache, RedisCache, RevocationCache};

#[derive(Clone)]
pub struct NearCache {
    cache: RevocationCache,
    sync: CacheSync,
    redis: RedisCache,
}

impl NearCache {
    pub fn new(store: Store, redis: RedisCache) -> Self {
        let cache = RevocationCache::Memory(MemoryCache::new());
        let sync = CacheSync::new(store, cache.clone());
        Self { cache, sync, redis }
    }

    pub fn cache(&self) -> &RevocationCache {
        &self.cache
    }

    pub fn sync(&self) -> &CacheSync {
        &self.sync
    }

    /// After a commit in this instance: apply it here at once.
    pub async fn changed(&self) {
        let _ = self.sync.follow().await;
    }

    /// Keeps the near-cache complete until the process ends: polls the store
    /// every `interval` and applies at once whenever any instance pokes.
    pub async fn run(self, interval: Duration) {
        let poll = self.sync.clone().run(interval);
        let listen = async {
            loop {
                match self.redis.pokes().await {
                    Ok(mut pokes) => {
                        while pokes.next().await.is_some() {
                            if let Err(e) = self.sync.follow().await {
                                tracing::debug!(error = format!("{e:#}"), "near-cache follow after a poke failed");
                            }
                        }
                    }
                    Err(e) => tracing::debug!(error = format!("{e:#}"), "cache pokes unavailable; polling only"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        tokio::join!(poll, listen);
    }
}
