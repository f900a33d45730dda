//! The revocation cache: what validators read, and the only crate that knows Redis.
//!
//! It holds, per (issuer, serial), the status of every certificate that is not
//! good, plus a **completeness marker**: the stream position up to which every
//! status change has been applied, and `as_of`, an instant before which every
//! committed change is known to be in. Readers trust the cache only while the
//! marker exists and `as_of` is recent; otherwise they ask the store
//! (invariant 3: never "good" because a cache was cold, stale or down).
//!
//! Writes are ordered batch applies that check the marker atomically (a Lua
//! script on Redis, a mutex in process), so the marker only ever advances over
//! changes really applied, whoever applies them. A rebuild loads a new
//! generation beside the current one and switches the marker to it atomically.

mod codec;
mod memory;
mod near;
mod redis_backend;
mod serial_table;
mod sync;

use chrono::{DateTime, Utc};
use hotline_core::{IssuerId, Serial, StatusRecord};
use hotline_store::StatusChange;

pub use memory::MemoryCache;
pub use near::NearCache;
pub use redis_backend::{RedisCache, RedisSettings};
pub use sync::{CacheSync, SyncOutcome};

/// The cache's completeness marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// Which generation of entries the marker describes (bumped by each rebuild).
    pub generation: u64,
    /// Every change up to this stream position is applied.
    pub position: i64,
    /// Every change committed before this instant is applied.
    pub as_of: DateTime<Utc>,
}

impl Marker {
    /// Seconds from `as_of` to `now` (never negative).
    pub fn lag_seconds(&self, now: DateTime<Utc>) -> f64 {
        (now - self.as_of).num_milliseconds().max(0) as f64 / 1000.0
    }
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// No marker: the cache cannot say anything (empty, lost, or being built).
    Cold,
    /// The marker and, per key asked, the entry (`None`: good as of the marker).
    /// Entries are kept only for certificates that are not good.
    Known { marker: Marker, entries: Vec<Option<StatusRecord>> },
}

/// What an apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The marker now stands at this position.
    Advanced { position: i64 },
    /// The batch starts after the marker: changes in between are missing. Re-read from `marker`.
    Gap { marker: i64 },
    /// There is no marker: rebuild first.
    NoMarker,
}

/// A rebuild in progress: entries go into `generation` until it is switched in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuild {
    pub generation: u64,
}

/// The cache, with its backend chosen by configuration.
#[derive(Clone)]
pub enum RevocationCache {
    Memory(MemoryCache),
    Redis(RedisCache),
}

impl RevocationCache {
    pub fn backend_name(&self) -> &'static str {
        match self {
            RevocationCache::Memory(_) => "memory",
            RevocationCache::Redis(_) => "redis",
        }
    }

    /// Looks up every key in one round trip, with the marker read atomically with them.
    pub async fn lookup(&self, keys: &[(IssuerId, Serial)]) -> anyhow::Result<Lookup> {
        match self {
            RevocationCache::Memory(c) => Ok(c.lookup(keys)),
            RevocationCache::Redis(c) => c.lookup(keys).await,
        }
    }

    pub async fn marker(&self) -> anyhow::Result<Option<Marker>> {
        match self {
            RevocationCache::Memory(c) => Ok(c.marker()),
            RevocationCache::Redis(c) => c.marker().await,
        }
    }

    /// Applies `changes` (positions after `from`, up to `to`) if the marker is at
    /// `from` or beyond; a change at or before the marker is skipped. With
    /// `as_of`, the caller read the store at that instant and `to` was its head.
    pub async fn apply(
        &self,
        from: i64,
        changes: &[StatusChange],
        to: i64,
        as_of: Option<DateTime<Utc>>,
    ) -> anyhow::Result<Applied> {
        match self {
            RevocationCache::Memory(c) => Ok(c.apply(from, changes, to, as_of)),
            RevocationCache::Redis(c) => c.apply(from, changes, to, as_of).await,
        }
    }

    /// Starts a rebuild in a fresh generation that readers do not see yet.
    pub async fn begin_rebuild(&self) -> anyhow::Result<Rebuild> {
        match self {
            RevocationCache::Memory(c) => Ok(c.begin_rebuild()),
            RevocationCache::Redis(c) => c.begin_rebuild().await,
        }
    }

    /// Loads snapshot entries into a rebuild's generation.
    pub async fn load(&self, rebuild: Rebuild, entries: &[StatusChange]) -> anyhow::Result<()> {
        match self {
            RevocationCache::Memory(c) => {
                c.load(rebuild, entries);
                Ok(())
            }
            RevocationCache::Redis(c) => c.load(rebuild, entries).await,
        }
    }

    /// Switches readers to the rebuilt generation, complete up to `position` as of `as_of`,
    /// and drops the generation it replaces.
    pub async fn finish_rebuild(&self, rebuild: Rebuild, position: i64, as_of: DateTime<Utc>) -> anyhow::Result<()> {
        match self {
            RevocationCache::Memory(c) => {
                c.finish_rebuild(rebuild, position, as_of);
                Ok(())
            }
            RevocationCache::Redis(c) => c.finish_rebuild(rebuild, position, as_of).await,
        }
    }
}
