//! Keeping the cache complete: follow the store's stream of status changes
//! from the marker, and rebuild from a store snapshot when the marker is gone
//! (an empty or restarted Redis, a first start).
//!
//! Every API instance runs this loop, and also runs one step right after each
//! suspension or release it commits so the change is visible at once. Steps
//! from many instances may overlap: the apply is atomic and checks the marker,
//! so the result is the same as if one had run.

use std::time::Duration;

use anyhow::bail;
use chrono::Utc;
use hotline_store::Store;

use crate::{Applied, RevocationCache};

/// Changes read from the store per apply.
const BATCH: i64 = 1_000;
/// Snapshot entries per page during a rebuild.
const PAGE: i64 = 5_000;

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The cache is complete up to the store's head at `position`.
    UpToDate { position: i64 },
    /// The cache had no marker and was rebuilt.
    Rebuilt { position: i64, entries: u64 },
}

#[derive(Clone)]
pub struct CacheSync {
    store: Store,
    cache: RevocationCache,
    /// Snapshot entries per page during a rebuild.
    page: i64,
}

impl CacheSync {
    pub fn new(store: Store, cache: RevocationCache) -> Self {
        Self { store, cache, page: PAGE }
    }

    /// With `page` snapshot entries per page: a test reads many pages from a small registry.
    #[must_use]
    pub fn with_page(mut self, page: i64) -> Self {
        self.page = page.max(1);
        self
    }

    /// Brings the cache up to the store's head, rebuilding it if it has no marker.
    pub async fn step(&self) -> anyhow::Result<SyncOutcome> {
        if let Some(position) = self.follow().await? {
            return Ok(SyncOutcome::UpToDate { position });
        }
        let (position, entries) = self.rebuild(|_| {}).await?;
        Ok(SyncOutcome::Rebuilt { position, entries })
    }

    /// Applies the store's changes after the marker until the cache reaches the
    /// store's head; returns that position, or `None` when there is no marker
    /// (a rebuild is needed, which this never starts).
    pub async fn follow(&self) -> anyhow::Result<Option<i64>> {
        for _ in 0..10_000 {
            let Some(marker) = self.cache.marker().await? else { return Ok(None) };
            // The window says how complete it is: as of when every change committed before is in it.
            let window = self.store.status_changes_after(marker.position, BATCH).await?;
            let complete = window.complete_as_of.is_some();
            match self.cache.apply(marker.position, &window.changes, window.to, window.complete_as_of).await? {
                Applied::Advanced { position } if complete => return Ok(Some(position)),
                // More to read, or someone else moved the marker: read again from it.
                Applied::Advanced { .. } | Applied::Gap { .. } => continue,
                Applied::NoMarker => return Ok(None),
            }
        }
        bail!("the cache sync did not converge")
    }

    /// Rebuilds the cache from a store snapshot; readers keep the old generation
    /// (or the store) until the new one is complete. Returns (position, entries).
    pub async fn rebuild(&self, mut progress: impl FnMut(u64)) -> anyhow::Result<(i64, u64)> {
        let read_at = Utc::now();
        let rebuild = self.cache.begin_rebuild().await?;
        // The snapshot is read and loaded concurrently, a few pages apart.
        let (pages_tx, mut pages_rx) = tokio::sync::mpsc::channel::<Vec<hotline_store::StatusChange>>(4);
        let load = async {
            let mut entries = 0u64;
            while let Some(page) = pages_rx.recv().await {
                self.cache.load(rebuild, &page).await?;
                entries += page.len() as u64;
                progress(entries);
            }
            anyhow::Ok(entries)
        };
        let (position, entries) =
            tokio::try_join!(async { Ok(self.store.status_snapshot(self.page, pages_tx).await?) }, load)?;
        self.cache.finish_rebuild(rebuild, position, read_at).await?;
        tracing::info!(position, entries, generation = rebuild.generation, "cache rebuilt");
        Ok((position, entries))
    }

    /// Runs a step every `interval` until the process ends; failures are logged
    /// and retried, and readers fall back to the store meanwhile.
    pub async fn run(self, interval: Duration) {
        let mut failing = false;
        loop {
            match self.step().await {
                Ok(_) if failing => {
                    tracing::info!(backend = self.cache.backend_name(), "cache sync recovered");
                    failing = false;
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        backend = self.cache.backend_name(),
                        "cache sync failing; status answers come from the store"
                    );
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::time::sleep(interval).await;
        }
    }
}
