//! Answering validators: from the revocation cache while it is known complete
//! and fresh, otherwise from the store, otherwise 503. Never "good" by default
//! (invariant 3): a certificate is good only if a complete source says so.

use foldhash::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hotline_cache::{CacheSync, Lookup, NearCache, RevocationCache};
use hotline_core::{IssuerId, Serial, StatusRecord};
use hotline_store::Store;

use crate::metrics::Metrics;

/// Answers for a set of keys, all from one source and complete as of one instant.
#[derive(Debug, Clone)]
pub struct Answers {
    pub as_of: DateTime<Utc>,
    pub source: &'static str,
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
    pub source: &'static str,
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
    /// How long a fallback to the store may take before the answer is 503.
    pub store_timeout: Duration,
    /// How long the cache update after a commit may hold up the response.
    pub post_commit_sync_timeout: Duration,
}

impl Default for StatusSettings {
    fn default() -> Self {
        Self {
            freshness_bound: Duration::from_secs(2),
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
    listed: ListedMemo,
}

/// Whether a cache tier is past its freshness bound, so that each lapse, and
/// the tier's return, are logged once: the metrics count the answers that fell
/// back, the log says when and how stale. A tier behind one that answers is
/// not asked, so it may recover and lapse again unseen: a lapse is told by the
/// marker it stopped at, not by the last answer having been fresh.
#[derive(Default)]
struct Passing {
    /// The `as_of` (ms) of the marker of the lapse told last; 0 while the tier is fresh.
    told_as_of: AtomicI64,
}

impl Passing {
    /// Notes a stale answer; true (and logged) if this lapse was not told yet.
    fn stale(&self, source: &str, as_of: DateTime<Utc>, age: Duration, bound: Duration) -> bool {
        let as_of = as_of.timestamp_millis();
        let new_lapse = self.told_as_of.swap(as_of, Ordering::Relaxed) != as_of;
        if new_lapse {
            tracing::warn!(
                source,
                age_ms = age.as_millis() as u64,
                bound_ms = bound.as_millis() as u64,
                "a cache tier is past its freshness bound; its answers come from the next source"
            );
        }
        new_lapse
    }

    /// Notes a fresh answer; true (and logged) if the tier was stale until now.
    fn fresh(&self, source: &str) -> bool {
        // One load per answer while fresh; the swap only on the way back.
        let back = self.told_as_of.load(Ordering::Relaxed) != 0 && self.told_as_of.swap(0, Ordering::Relaxed) != 0;
        if back {
            tracing::info!(source, "a cache tier is within its freshness bound again");
        }
        back
    }
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
            listed: ListedMemo { known: quick_cache::sync::Cache::new(LISTED_MEMO_ENTRIES) },
        }
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
        let near = match &self.near {
            Some(near) => self.ask_cache(near.cache(), "near_cache", &self.near_passing, keys).await,
            None => None,
        };
        let answers = match near {
            Some(answers) => Ok(answers),
            None => match self.ask_cache(&self.cache, "cache", &self.cache_passing, keys).await {
                Some(answers) => Ok(answers),
                None => self.ask_store(keys).await,
            },
        };
        match &answers {
            Ok(a) => {
                for s in &a.statuses {
                    metrics.status_answer(a.source, s.as_ref().map_or("good", |k| k.status.as_str()));
                }
            }
            Err(Unavailable) => metrics.status_answer("unavailable", "none"),
        }
        answers
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
                None if answers.source == "store" => Some(Listing::Unlisted),
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
            let found =
                tokio::time::timeout(self.settings.store_timeout, self.store.certificate_statuses(&asked)).await;
            let found = match found {
                Ok(Ok(found)) => found,
                Ok(Err(e)) => {
                    tracing::warn!(error = format!("{e:#}"), "could not ask the store whether serials are listed");
                    return Err(Unavailable);
                }
                Err(_) => {
                    tracing::warn!("asking the store whether serials are listed timed out");
                    return Err(Unavailable);
                }
            };
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
        source: &'static str,
        passing: &Passing,
        keys: &[(IssuerId, Serial)],
    ) -> Option<Answers> {
        let Lookup::Known { marker, entries } = cache.lookup(keys).await.ok()? else { return None };
        let age = Utc::now().signed_duration_since(marker.as_of).to_std().unwrap_or_default();
        if age > self.settings.freshness_bound {
            passing.stale(source, marker.as_of, age, self.settings.freshness_bound);
            return None;
        }
        passing.fresh(source);
        Some(Answers { as_of: marker.as_of, source, statuses: entries })
    }

    async fn ask_store(&self, keys: &[(IssuerId, Serial)]) -> Result<Answers, Unavailable> {
        let as_of = Utc::now();
        let found = tokio::time::timeout(self.settings.store_timeout, self.store.certificate_statuses(keys)).await;
        match found {
            Ok(Ok(statuses)) => Ok(Answers { as_of, source: "store", statuses }),
            Ok(Err(e)) => {
                tracing::warn!(error = format!("{e:#}"), "status fallback to the store failed");
                Err(Unavailable)
            }
            Err(_) => {
                tracing::warn!("status fallback to the store timed out");
                Err(Unavailable)
            }
        }
    }

    /// Brings the cache up to date right after a commit, so the change is visible
    /// at once. Failure is not the caller's problem: the change is durable and the
    /// background sync applies it.
    pub async fn after_commit(&self, metrics: &Metrics) {
        match tokio::time::timeout(self.settings.post_commit_sync_timeout, self.sync.follow()).await {
            Ok(Ok(Some(_))) => {}
            // No marker: the cache is being (re)built, and readers use the store meanwhile.
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                metrics.cache_write_failures.inc();
                tracing::warn!(
                    error = format!("{e:#}"),
                    "cache update after commit failed; the background sync will apply it"
                );
            }
            Err(_) => {
                metrics.cache_write_failures.inc();
                tracing::warn!("cache update after commit timed out; the background sync will apply it");
            }
        }
        if let Some(near) = &self.near {
            let _ = tokio::time::timeout(self.settings.post_commit_sync_timeout, near.changed()).await;
        }
        // Wake every instance's near-cache, whether or not this one has one.
        if let RevocationCache::Redis(redis) = &self.cache
            && let Err(e) = redis.poke().await
        {
            tracing::debug!(error = format!("{e:#}"), "could not publish a cache poke; near-caches will poll");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_lapse_of_a_tier_and_its_return_are_told_once() {
        let passing = Passing::default();
        let (bound, age) = (Duration::from_secs(2), Duration::from_secs(3));
        let marker = |ms| DateTime::<Utc>::from_timestamp_millis(ms).unwrap();
        assert!(!passing.fresh("cache"), "fresh from the start: nothing to tell");
        assert!(passing.stale("cache", marker(1_000), age, bound), "the first stale answer is told");
        assert!(!passing.stale("cache", marker(1_000), age, bound), "the ones after it, at the same marker, are not");
        assert!(passing.fresh("cache"), "the first fresh answer after them is told");
        assert!(!passing.fresh("cache"), "the ones after it are not");
        assert!(passing.stale("cache", marker(9_000), age, bound), "a second lapse is told again");
        assert!(
            passing.stale("cache", marker(15_000), age, bound),
            "a lapse at a later marker is told, though no fresh answer was seen between (the tier was not asked)"
        );
    }
}
