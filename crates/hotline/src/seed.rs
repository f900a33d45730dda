//! `hotline seed`: a synthetic registry, loaded in batches with a progress bar.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use hotline_store::synthetic::{Generator, SampleHolder};
use indicatif::{ProgressBar, ProgressStyle};

use hotline::config::Config;

const CHUNK: usize = 1_000;

pub async fn run(config: &Config, holders: usize, samples: Option<&Path>) -> anyhow::Result<()> {
    let store = config.open_store().await?;
    store.migrate().await?;
    let key = config.pii_key(store.backend())?;
    let mut sample_file = samples
        .map(|p| {
            std::fs::File::create(p)
                .with_context(|| format!("could not create {}", p.display()))
                .map(std::io::BufWriter::new)
        })
        .transpose()?;
    if let Some(f) = sample_file.as_mut() {
        f.write_all(b"{\"holders\":[\n")?;
    }
    let bar = ProgressBar::new(holders as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} seeding [{bar:40}] {pos}/{len} holders ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut generator = Generator::new(rand::rng());
    let mut added = 0;
    let mut written = 0;
    while written < holders {
        let n = CHUNK.min(holders - written);
        let batch: Vec<SampleHolder> = (0..n).map(|_| generator.holder()).collect();
        added += store.insert_samples(&key, &batch).await?;
        if let Some(f) = sample_file.as_mut() {
            for (i, h) in batch.iter().enumerate() {
                let sep = if written + i + 1 < holders { ",\n" } else { "\n" };
                f.write_all(h.to_json().to_string().as_bytes())?;
                f.write_all(sep.as_bytes())?;
            }
        }
        written += n;
        bar.inc(n as u64);
    }
    bar.finish();
    if let Some(mut f) = sample_file {
        f.write_all(b"]}\n")?;
        f.flush()?;
    }
    println!("seeded {added} holders");
    Ok(())
}
