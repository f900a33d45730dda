//! Answering validators: from the revocation cache while it is known complete
//! and fresh, otherwise from the store; while the store cannot answer either
//! (a failover: nothing can commit), from the caches' last confirmed state,
//! with its true, older `as_of`, up to the maximum staleness; otherwise 503.
//! Never "good" by default (invariant 3): a certificate is good only if a
//! complete source says so, as of the instant it was complete.

mod passing;
mod reach;

use foldhash::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hotline_cache::{CacheSync, Lookup, NearCache, RevocationCache};
use hotline_core::{IssuerId, Serial, StatusRecord};
use hotline_store::{Sealer, Store};

use crate::metrics::Metrics;
use passing::Passing;
use reach::StoreReach;

/// Which tier answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// This instance's near-cache, within the freshness bound.
    NearCache,
    /// The shared cache, within the freshness bound.
    Cache,
    /// The database.
    Store,
    /// The near-cache past its freshness bound, while the store cannot answer.
    NearCacheStale,
    /// The shared cache past its freshness bound, while the store cannot answer.
    CacheStale,
}

impl Source {
    pub const ALL: [Source; 5] =
        [Source::NearCache, Source::Cache, Source::Store, Source::NearCacheStale, Source::CacheStale];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::NearCache => "near_cache",
            Source::Cache => "cache",
            Source::Store => "store",
            Source::NearCacheStale => "near_cache_stale",
            Source::CacheStale => "cache_stale",
        }
    }

    /// The same tier past its freshness bound.
    fn stale(self) -> Source {
        match self {
            Source::NearCache => Source::NearCacheStale,
            Source::Cache => Source::CacheStale,
            other => other,
        }
    }
}

/// Answers for a set of keys, all from one source and complete as of one instant.
#[derive(Debug, Clone)]
pub struct Answers {
    pub as_of: DateTime<Utc>,
    pub source: Source,
    /// Per key: `None` means good (the registry holds nothing against it).
    pub statuses: Vec<Option<StatusRecord>>,
}

/// Neither the cache nor the store could answer.
#[derive(Debug)]
pub struct Unavailable;

/// What the registry says of one certificate, for an answer that tells a
/// good certificate from one the registry does not hold (OCSP's `unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Listed and not good: its record.
    NotGood(StatusRecord),
    /// Listed and good.
    Good,
    /// Not in the registry.
    Unlisted,
}

/// Answers with the registry's listing of each key, as of one instant.
#[derive(Debug, Clone)]
pub struct Listings {
    pub as_of: DateTime<Utc>,
    pub source: Source,
    pub listings: Vec<Listing>,
}

/// Which (issuer, serial) pairs the registry lists: a certificate, once
/// listed, stays listed, so a yes is kept for good (until evicted); a no is
/// kept briefly, since an import may add the serial.
struct ListedMemo {
    known: quick_cache::sync::Cache<(IssuerId, Serial), (bool, std::time::Instant)>,
}

/// How long "not listed" is believed before the store is asked again.
const UNLISTED_FOR: Duration = Duration::from_secs(10);
/// How many listings are remembered.
const LISTED_MEMO_ENTRIES: usize = 100_000;

/// How the status service is tuned.
#[derive(Debug, Clone, Copy)]
pub struct StatusSettings {
    /// The cache answers only if its marker was confirmed this recently.
    pub freshness_bound: Duration,
    /// While the store cannot answer, the caches answer with their last
    /// confirmed state if it is at most this old; past it, 503.
    pub max_staleness: Duration,
    /// How long a fallback to the store may take before the answer is 503.
    pub store_timeout: Duration,
    /// How long the cache update after a commit may hold up the response.
    pub post_commit_sync_timeout: Duration,
}

impl Default for StatusSettings {
    fn default() -> Self {
        Self {
            freshness_bound: Duration::from_secs(2),
            max_staleness: Duration::from_secs(60),
            store_timeout: Duration::from_secs(1),
            post_commit_sync_timeout: Duration::from_millis(500),
        }
    }
}

pub struct StatusService {
    pub cache: RevocationCache,
    pub sync: CacheSync,
    /// The in-process near-cache in front of a shared (Redis) cache, if enabled.
    pub near: Option<NearCache>,
    store: Store,
    issuers: HashSet<String>,
    settings: StatusSettings,
    near_passing: Passing,
    cache_passing: Passing,
    reach: StoreReach,
    listed: ListedMemo,
    /// This process's sealer: a commit here is visible once it is sealed.
    sealer: Option<Arc<Sealer>>,
}

/// What a cache tier could say.
enum Asked {
    /// Complete within the freshness bound.
    Fresh(Answers),
    /// Complete as of longer ago than that, but within the maximum staleness:
    /// the truth as of then, for when the store cannot answer.
    Stale(Answers),
    /// Nothing: no marker, unreachable, or older than the maximum staleness.
    Nothing,
}

impl StatusService {
    pub fn new(store: Store, cache: RevocationCache, issuers: Vec<IssuerId>, settings: StatusSettings) -> Self {
        let sync = CacheSync::new(store.clone(), cache.clone());
        let issuers = issuers.iter().map(|i| i.as_str().to_owned()).collect();
        Self {
            cache,
            sync,
            near: None,
            store,
            issuers,
            settings,
            near_passing: Passing::default(),
            cache_passing: Passing::default(),
            reach: StoreReach::default(),
            sealer: None,
            listed: ListedMemo { known: quick_cache::sync::Cache::new(LISTED_MEMO_ENTRIES) },
        }
    }

    /// Seals this process's commits before they are followed ([`Self::after_commit`]).
    pub fn with_sealer(mut self, sealer: Arc<Sealer>) -> Self {
        self.sealer = Some(sealer);
        self
    }

    /// Puts an in-process near-cache in front of the shared cache.
    pub fn with_near_cache(mut self, near: NearCache) -> Self {
        self.near = Some(near);
        self
    }

    pub fn knows_issuer(&self, issuer: &IssuerId) -> bool {
        self.issuers.contains(issuer.as_str())
    }

    pub async fn answer(&self, keys: &[(IssuerId, Serial)], metrics: &Metrics) -> Result<Answers, Unavailable> {
        let answers = self.ask_the_tiers(keys).await;
        match &answers {
            Ok(a) => {
                for s in &a.statuses {
                    metrics.status_answer(a.source.as_str(), s.as_ref().map_or("good", |k| k.status.as_str()));
                }
            }
            Err(Unavailable) => metrics.status_answer("unavailable", "none"),
        }
        answers
    }

    /// The fresh caches, then the store, then the freshest stale cache.
    async fn ask_the_tiers(&self, keys: &[(IssuerId, Serial)]) -> Result<Answers, Unavailable> {
        let mut stale = None;
        let tiers = self.near.as_ref().map(|n| (n.cache(), Source::NearCache, &self.near_passing)).into_iter();
        for (cache, source, passing) in tiers.chain([(&self.cache, Source::Cache, &self.cache_passing)]) {
            match self.ask_cache(cache, source, passing, keys).await {
                Asked::Fresh(answers) => return Ok(answers),
                Asked::Stale(answers) => stale = freshest(stale, answers),
                Asked::Nothing => {}
            }
        }
        if let Ok(answers) = self.ask_store(keys).await {
            return Ok(answers);
        }
        stale.ok_or(Unavailable)
    }

    /// Like [`Self::answer`], but telling a good certificate from one the
    /// registry does not hold. A cache tier holds only what is not good, so
    /// for its "nothing held" the store is asked whether the serial is listed
    /// (remembered, see [`ListedMemo`]); if the store cannot say, neither can this.
    pub async fn listed(&self, keys: &[(IssuerId, Serial)], metrics: &Metrics) -> Result<Listings, Unavailable> {
        let answers = self.answer(keys, metrics).await?;
        let mut listings: Vec<Option<Listing>> = answers
            .statuses
            .iter()
            .map(|s| match s {
                Some(r) if r.status == hotline_core::CertificateStatus::Good => Some(Listing::Good),
                Some(r) => Some(Listing::NotGood(*r)),
                // The store lists every certificate it holds, good or not: absent there is absent.
                None if answers.source == Source::Store => Some(Listing::Unlisted),
                None => None,
            })
            .collect();
        let now = std::time::Instant::now();
        let mut ask = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            if listings[i].is_some() {
                continue;
            }
            match self.listed.known.get(key) {
                Some((true, _)) => listings[i] = Some(Listing::Good),
                Some((false, at)) if now.duration_since(at) < UNLISTED_FOR => listings[i] = Some(Listing::Unlisted),
                _ => ask.push(i),
            }
        }
        if !ask.is_empty() {
            let asked: Vec<(IssuerId, Serial)> = ask.iter().map(|&i| keys[i].clone()).collect();
            let found = self.ask_store_for(&asked, "whether serials are listed").await?;
            for (&i, record) in ask.iter().zip(found) {
                self.listed.known.insert(keys[i].clone(), (record.is_some(), now));
                listings[i] = Some(if record.is_some() { Listing::Good } else { Listing::Unlisted });
            }
        }
        Ok(Listings {
            as_of: answers.as_of,
            source: answers.source,
            listings: listings.into_iter().map(|l| l.unwrap_or(Listing::Unlisted)).collect(),
        })
    }

    async fn ask_cache(
        &self,
        cache: &RevocationCache,
        source: Source,
        passing: &Passing,
        keys: &[(IssuerId, Serial)],
    ) -> Asked {
        let Ok(Lookup::Known { marker, entries }) = cache.lookup(keys).await else { return Asked::Nothing };
        let age = Utc::now().signed_duration_since(marker.as_of).to_std().unwrap_or_default();
        if age <= self.settings.freshness_bound {
            passing.fresh(source.as_str());
            return Asked::Fresh(Answers { as_of: marker.as_of, source, statuses: entries });
        }
        passing.stale(source.as_str(), marker.as_of, age, self.settings.freshness_bound);
        if age > self.settings.max_staleness {
            return Asked::Nothing;
        }
        Asked::Stale(Answers { as_of: marker.as_of, source: source.stale(), statuses: entries })
    }

    async fn ask_store(&self, keys: &[(IssuerId, Serial)]) -> Result<Answers, Unavailable> {
        let as_of = Utc::now();
        let statuses = self.ask_store_for(keys, "certificate statuses").await?;
        Ok(Answers { as_of, source: Source::Store, statuses })
    }

    /// The store's records of `keys`, within its bound, if it is worth asking
    /// now ([`StoreReach`]); a failure is logged with `what` was asked.
    async fn ask_store_for(
        &self,
        keys: &[(IssuerId, Serial)],
        what: &'static str,
    ) -> Result<Vec<Option<StatusRecord>>, Unavailable> {
        if !self.reach.may_ask(Utc::now().timestamp_millis()) {
            return Err(Unavailable);
        }
        let found = self.store.within(self.settings.store_timeout, self.store.certificate_statuses(keys)).await;
        match found {
            Ok(found) => {
                self.reach.answered();
                Ok(found)
            }
            Err(e) => {
                self.reach.failed(Utc::now().timestamp_millis());
                tracing::warn!(error = e.report(), what, "the store could not answer a validator's query");
                Err(Unavailable)
            }
        }
    }

    /// The instant the freshest cache tier was last confirmed complete, if
    /// that is within the maximum staleness: validators can be answered as of
    /// it while the store cannot answer.
    pub async fn last_confirmed(&self) -> Option<DateTime<Utc>> {
        let near = self.near.as_ref().map(NearCache::cache).into_iter();
        let mut newest: Option<DateTime<Utc>> = None;
        for cache in near.chain([&self.cache]) {
            if let Ok(Some(marker)) = cache.marker().await {
                newest = newest.max(Some(marker.as_of));
            }
        }
        let oldest_allowed = Utc::now() - self.settings.max_staleness;
        newest.filter(|as_of| *as_of >= oldest_allowed)
    }

    /// Brings the cache up to date right after a commit, so the change is visible
    /// at once: the commit is sealed into the stream first (by this process's
    /// sealer, if it holds the lease; many commits share its batch), then
    /// followed. Failure is not the caller's problem: the change is durable and
    /// the background sync applies it.
    pub async fn after_commit(&self, metrics: &Metrics) {
        if let Some(sealer) = &self.sealer {
            sealer.sealed_after_now(self.settings.post_commit_sync_timeout).await;
        }
        if !self.follow_now().await {
            metrics.cache_write_failures.inc();
        }
    }

    /// After this process's sealer sealed changes, whoever committed them: its caches follow.
    pub async fn after_seal(&self) {
        self.follow_now().await;
    }

    /// Follows the stream into the shared cache and the near-cache, and wakes
    /// every instance's near-cache; false if the shared cache could not be updated.
    async fn follow_now(&self) -> bool {
        let updated = match tokio::time::timeout(self.settings.post_commit_sync_timeout, self.sync.follow()).await {
            // No marker: the cache is being (re)built, and readers use the store meanwhile.
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "cache update after commit failed; the background sync will apply it"
                );
                false
            }
            Err(_) => {
                tracing::warn!("cache update after commit timed out; the background sync will apply it");
                false
            }
        };
        if let Some(near) = &self.near {
            let _ = tokio::time::timeout(self.settings.post_commit_sync_timeout, near.changed()).await;
        }
        // Wake every instance's near-cache, whether or not this one has one.
        if let RevocationCache::Redis(redis) = &self.cache
            && let Err(e) = redis.poke().await
        {
            tracing::debug!(error = format!("{e:#}"), "could not publish a cache poke; near-caches will poll");
        }
        updated
    }
}

/// Of two stale answers, the one complete as of later.
fn freshest(kept: Option<Answers>, other: Answers) -> Option<Answers> {
    match kept {
        Some(kept) if kept.as_of >= other.as_of => Some(kept),
        _ => Some(other),
    }
}
