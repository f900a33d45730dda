//! `hotline registry import` and `generate`: the issuing side's file read
//! on a thread of its own ([`crate::registry_reading`]) and applied a chunk
//! at a time, or loaded whole in one transaction into an empty registry
//! (`--first-load`), with a progress bar over its bytes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use hotline::cli::OnError;
use hotline::config::Config;
use hotline_store::synthetic::Generator;
use hotline_store::{FirstLoad, ImportOutcome, ImportRecord, ImportRun, Store};
use indicatif::{ProgressBar, ProgressStyle};

use crate::registry_reading::{Checks, ReadOptions, Reading, read_in_chunks};

/// Holders added before the planner's statistics are first refreshed.
const FIRST_REFRESH: u64 = 10_000;

struct Import<'a> {
    store: &'a Store,
    /// A first load under way: chunks go into it instead of their own transactions.
    first_load: Option<FirstLoad>,
    run: ImportRun<'a>,
    bar: ProgressBar,
    total: ImportOutcome,
    read: u64,
    /// Holders added when the planner's statistics were last refreshed.
    analyzed_at: u64,
    started: Instant,
}

impl Import<'_> {
    async fn apply(&mut self, records: Vec<ImportRecord>) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let outcome = match &mut self.first_load {
            Some(load) => load.load(&records, &self.run).await?,
            None => self.store.import(&records, &self.run).await?,
        };
        for refusal in &outcome.refused {
            self.say(&format!("line {}: {}", refusal.line, refusal.reason));
        }
        self.total.add(outcome);
        // Each time the holders this import added double, the planner learns the registry's new size
        // (a first load has no index to plan with until its end, which refreshes them itself).
        if self.first_load.is_none() && self.total.added >= (2 * self.analyzed_at).max(FIRST_REFRESH) {
            self.store.refresh_registry_statistics().await?;
            self.analyzed_at = self.total.added;
        }
        let t = &self.total;
        self.bar.set_message(format!("{} added, {} changed, {} refused", t.added, t.changed, t.refused.len()));
        Ok(())
    }

    /// A line for the person running the import, above the bar; on standard error when no bar is drawn
    /// (not a terminal), where `println` on a hidden bar would drop it.
    fn say(&self, line: &str) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    fn refuse(&mut self, line: u64, reason: String) {
        self.say(&format!("line {line}: {reason}"));
        self.total.refused.push(hotline_store::Refusal { line, reason });
        if self.run.stop_at_refusal {
            self.total.stopped_at = Some(line);
        }
    }
}

impl Import<'_> {
    /// Reads the file (or only the lines of `only`) and applies it chunk by chunk, until its end or a stop.
    async fn read_file(
        &mut self,
        file: &Path,
        checks: Checks,
        chunk_size: usize,
        only: Option<Vec<u64>>,
    ) -> anyhow::Result<()> {
        let opened = File::open(file).with_context(|| format!("could not open {}", file.display()))?;
        self.bar.set_length(opened.metadata().map(|m| m.len()).unwrap_or(0));
        self.bar.set_position(0);
        let lines = BufReader::with_capacity(1 << 20, opened);
        let options = ReadOptions { chunk_size, stop_at_refusal: self.run.stop_at_refusal, only };
        let mut read = read_in_chunks(lines, checks, options, self.bar.clone());
        // Dropping `read` when the import stops tells the reading thread to stop too.
        while self.total.stopped_at.is_none() {
            match read.recv().await {
                None => break,
                Some(Reading::Chunk(records)) => {
                    self.read += records.len() as u64;
                    self.apply(records).await?;
                }
                Some(Reading::Refused { line, reason }) => {
                    self.read += 1;
                    self.refuse(line, reason);
                }
                Some(Reading::Failed(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Settles and commits the first load, then applies the records it set aside, the careful way.
    async fn finish_first_load(
        &mut self,
        load: FirstLoad,
        file: &Path,
        checks: Checks,
        chunk_size: usize,
    ) -> anyhow::Result<()> {
        let bar = self.bar.clone();
        // Each stage's time is logged as it ends: where a long first load spends its time.
        let stage: std::sync::Mutex<(&str, Instant)> = std::sync::Mutex::new(("copying the records", self.started));
        let done = |(name, since): (&str, Instant)| {
            tracing::info!(stage = name, elapsed_ms = since.elapsed().as_millis() as u64, "first load stage done");
        };
        let end = load
            .finish(&self.run, |step| {
                bar.set_message(step.to_owned());
                let next = (step, Instant::now());
                done(std::mem::replace(&mut *stage.lock().unwrap_or_else(|e| e.into_inner()), next));
            })
            .await?;
        done(stage.into_inner().unwrap_or_else(|e| e.into_inner()));
        let t = &mut self.total;
        t.added -= end.holders_set_aside;
        t.certificates_added -= end.certificates_set_aside;
        t.revoked += end.revoked;
        if !end.set_aside.is_empty() {
            self.say(&format!(
                "{} records set aside (a holder listed twice, or a serial shared between holders): applied one by one now",
                end.set_aside.len()
            ));
            // They were counted as read once already.
            self.read -= end.set_aside.len() as u64;
            self.read_file(file, checks, chunk_size, Some(end.set_aside)).await?;
        }
        Ok(())
    }
}

pub async fn import(
    config: &Config,
    file: &Path,
    on_error: OnError,
    chunk_size: usize,
    first_load: bool,
) -> anyhow::Result<ExitCode> {
    let store = config.open_store().await?;
    store.migrate().await?;
    let issuers: HashMap<_, _> = store.issuer_kinds().await?.into_iter().collect();
    let today = hotline_core::rules::tokyo_date(chrono::Utc::now());
    let checks = || -> anyhow::Result<Checks> {
        Ok(Checks { key: config.pii_key(store.backend())?, issuers: issuers.clone(), today })
    };
    let source = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} importing [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let run = ImportRun {
        actor: "registry-import",
        source: &source,
        at: chrono::Utc::now(),
        stop_at_refusal: on_error == OnError::Stop,
    };
    let first_load = if first_load { Some(store.begin_first_load().await?) } else { None };
    let loading_first = first_load.is_some();
    let mut import = Import {
        store: &store,
        first_load,
        run,
        bar,
        total: ImportOutcome::default(),
        read: 0,
        analyzed_at: 0,
        started: Instant::now(),
    };
    import.read_file(file, checks()?, chunk_size, None).await?;
    if let Some(load) = import.first_load.take() {
        if let Some(line) = import.total.stopped_at {
            // Dropping the load rolls it back, schema changes and all.
            drop(load);
            import.bar.finish_and_clear();
            println!(
                "stopped at line {line} (--on-error stop): a first load is one transaction, so nothing is loaded; correct the line and run it again"
            );
            return Ok(ExitCode::from(2));
        }
        import.finish_first_load(load, file, checks()?, chunk_size).await?;
    }
    import.bar.finish_and_clear();
    let t = &import.total;
    tracing::info!(
        source = %source, records = import.read, added = t.added, changed = t.changed, unchanged = t.unchanged,
        certificates_added = t.certificates_added, revoked = t.revoked, refused = t.refused.len(),
        first_load = loading_first, "registry import finished"
    );
    println!(
        "imported {}{}: {} records read; {} holders added, {} changed, {} unchanged; {} certificates registered, {} revoked; {} refused",
        file.display(),
        if loading_first { " (first load)" } else { "" },
        import.read,
        t.added,
        t.changed,
        t.unchanged,
        t.certificates_added,
        t.revoked,
        t.refused.len()
    );
    if let Some(line) = t.stopped_at {
        println!(
            "stopped at line {line} (--on-error stop): the records before it are applied, none after; correct it and run the import again"
        );
    }
    Ok(if t.refused.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// Writes `holders` synthetic holders in the import's format.
pub fn generate(holders: u64, out: &Path) -> anyhow::Result<ExitCode> {
    let file = File::create(out).with_context(|| format!("could not create {}", out.display()))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let bar = ProgressBar::new(holders).with_style(
        ProgressStyle::with_template("{spinner} writing [{bar:40}] {pos}/{len} holders ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut generator = Generator::new(rand::rng());
    for _ in 0..holders {
        serde_json::to_writer(&mut writer, &generator.holder().to_json())?;
        writer.write_all(b"\n")?;
        bar.inc(1);
    }
    writer.flush()?;
    bar.finish_and_clear();
    println!("wrote {holders} synthetic holders to {}", out.display());
    Ok(ExitCode::SUCCESS)
}
