//! `hotline cache rebuild`: rebuild the revocation cache from the store, with
//! a progress bar; validators keep reading the old generation (or the store)
//! until the new one is complete.

use std::time::Instant;

use hotline_cache::CacheSync;
use indicatif::{ProgressBar, ProgressStyle};

use hotline::config::Config;

pub async fn rebuild(config: &Config) -> anyhow::Result<()> {
    let store = config.open_store().await?;
    let cache = config.cache()?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} rebuilding the {msg} cache: {pos} entries loaded ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(cache.backend_name());
    let started = Instant::now();
    let sync = CacheSync::new(store, cache);
    let (position, entries) = sync.rebuild(|n| bar.set_position(n)).await?;
    bar.finish();
    println!(
        "cache rebuilt: {entries} entries, complete up to change {position}, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
