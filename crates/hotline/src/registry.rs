//! `hotline registry import` and `generate`: the issuing side's file read
//! line by line (never whole: a national file is tens of gigabytes), checked,
//! and applied a chunk at a time, with a progress bar over its bytes.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use hotline::cli::OnError;
use hotline::config::Config;
use hotline::registry_file::Reader;
use hotline_store::synthetic::Generator;
use hotline_store::{ImportOutcome, ImportRecord, ImportRun, Store};
use indicatif::{ProgressBar, ProgressStyle};

/// A longer line is refused unread: a holder's record is well under a kilobyte.
const MAX_LINE: u64 = 64 * 1024;

/// Holders added before the planner's statistics are first refreshed.
const FIRST_REFRESH: u64 = 10_000;

/// One line of the file: its text, or why it could not be read as text.
enum Line {
    Text(String),
    Unreadable(&'static str),
}

/// Reads the next line, at most [`MAX_LINE`] bytes of it kept; `None` at the end.
fn next_line(reader: &mut impl BufRead, bytes: &mut u64) -> std::io::Result<Option<Line>> {
    let mut buf = Vec::new();
    let n = reader.by_ref().take(MAX_LINE + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    *bytes += n as u64;
    if buf.last() != Some(&b'\n') && n as u64 > MAX_LINE {
        // Skip the rest of the line.
        let mut rest = Vec::new();
        *bytes += reader.read_until(b'\n', &mut rest)? as u64;
        return Ok(Some(Line::Unreadable("the line is longer than 64 KiB")));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(String::from_utf8(buf).map_or(Line::Unreadable("the line is not UTF-8"), Line::Text)))
}

/// The records of one transaction: no holder and no serial twice.
#[derive(Default)]
struct Chunk {
    records: Vec<ImportRecord>,
    holders: HashSet<String>,
    serials: HashSet<(String, String)>,
}

impl Chunk {
    fn keys(record: &ImportRecord) -> Vec<(String, String)> {
        let card = record.card.iter().flatten();
        let phones = record.smartphones.iter().flatten().flat_map(|p| &p.certificates);
        card.chain(phones).map(|c| (c.issuer.as_str().to_owned(), c.serial.as_str().to_owned())).collect()
    }

    /// Whether `record` repeats a holder or a serial of the chunk: it then waits for the next one,
    /// so that a later line about the same holder is applied after the earlier.
    fn repeats(&self, record: &ImportRecord) -> bool {
        self.holders.contains(record.fingerprint.as_str())
            || Self::keys(record).iter().any(|k| self.serials.contains(k))
    }

    fn push(&mut self, record: ImportRecord) {
        self.holders.insert(record.fingerprint.as_str().to_owned());
        self.serials.extend(Self::keys(&record));
        self.records.push(record);
    }

    fn take(&mut self) -> Vec<ImportRecord> {
        self.holders.clear();
        self.serials.clear();
        std::mem::take(&mut self.records)
    }
}

struct Import<'a> {
    store: &'a Store,
    run: ImportRun<'a>,
    bar: ProgressBar,
    total: ImportOutcome,
    read: u64,
    /// Holders added when the planner's statistics were last refreshed.
    analyzed_at: u64,
}

impl Import<'_> {
    async fn apply(&mut self, records: Vec<ImportRecord>) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let outcome = self.store.import(&records, &self.run).await?;
        for refusal in &outcome.refused {
            self.say(&format!("line {}: {}", refusal.line, refusal.reason));
        }
        self.total.add(outcome);
        // Each time the holders this import added double, the planner learns the registry's new size.
        if self.total.added >= (2 * self.analyzed_at).max(FIRST_REFRESH) {
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

/// What a record is checked against, owned by the reading thread.
struct Checks {
    key: hotline_core::PiiKey,
    issuers: HashMap<hotline_core::IssuerId, hotline_core::CertificateKind>,
    today: chrono::NaiveDate,
}

/// What the reading thread hands the import, in the file's order.
enum Reading {
    /// Records for one transaction: no holder and no serial twice.
    Chunk(Vec<ImportRecord>),
    /// A line that is not a record, and why.
    Refused { line: u64, reason: String },
    /// Reading the file failed.
    Failed(anyhow::Error),
}

/// Chunks read ahead of the one being applied: one is being read while one
/// is applied, and one more waits, so neither side waits for the other.
const READ_AHEAD: usize = 2;

/// Reads and checks the file on its own thread, a chunk at a time, while the
/// chunk before is applied: reading (the JSON, the check digit, the keyed
/// fingerprint) is the import's own CPU work, and the database's is the
/// rest, so on a machine with two cores they overlap. The thread stops at
/// the end of the file, after a refusal when told to stop there, or when
/// the import stops listening.
fn read_in_chunks(
    mut lines: impl BufRead + Send + 'static,
    checks: Checks,
    chunk_size: usize,
    stop_at_refusal: bool,
    bar: ProgressBar,
) -> tokio::sync::mpsc::Receiver<Reading> {
    let (sender, receiver) = tokio::sync::mpsc::channel(READ_AHEAD);
    std::thread::spawn(move || {
        let reader = Reader { key: &checks.key, issuers: checks.issuers, today: checks.today };
        let send = |read| sender.blocking_send(read).is_ok();
        let mut chunk = Chunk::default();
        let (mut line_number, mut bytes) = (0u64, 0u64);
        loop {
            let line = match next_line(&mut lines, &mut bytes) {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) => {
                    send(Reading::Failed(anyhow::Error::new(e).context("could not read the file")));
                    return;
                }
            };
            line_number += 1;
            bar.set_position(bytes);
            let parsed = match line {
                Line::Text(text) if text.trim().is_empty() => continue,
                Line::Text(text) => reader.record(line_number, &text),
                Line::Unreadable(why) => Err(why.to_owned()),
            };
            let delivered = match parsed {
                Ok(record) => {
                    let mut delivered = true;
                    if chunk.repeats(&record) {
                        delivered = send(Reading::Chunk(chunk.take()));
                    }
                    chunk.push(record);
                    if chunk.records.len() >= chunk_size {
                        delivered = delivered && send(Reading::Chunk(chunk.take()));
                    }
                    delivered
                }
                Err(reason) if stop_at_refusal => {
                    // The records before the bad one are applied; nothing after it is read.
                    send(Reading::Chunk(chunk.take()));
                    send(Reading::Refused { line: line_number, reason });
                    return;
                }
                Err(reason) => send(Reading::Refused { line: line_number, reason }),
            };
            if !delivered {
                return;
            }
        }
        send(Reading::Chunk(chunk.take()));
    });
    receiver
}

pub async fn import(config: &Config, file: &Path, on_error: OnError, chunk_size: usize) -> anyhow::Result<ExitCode> {
    let store = config.open_store().await?;
    store.migrate().await?;
    let key = config.pii_key(store.backend())?;
    let issuers: HashMap<_, _> = store.issuer_kinds().await?.into_iter().collect();
    let today = hotline_core::rules::tokyo_date(chrono::Utc::now());
    let opened = File::open(file).with_context(|| format!("could not open {}", file.display()))?;
    let size = opened.metadata().map(|m| m.len()).unwrap_or(0);
    let lines = BufReader::with_capacity(1 << 20, opened);
    let source = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let bar = ProgressBar::new(size).with_style(
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
    let checks = Checks { key, issuers, today };
    let mut read = read_in_chunks(lines, checks, chunk_size, run.stop_at_refusal, bar.clone());
    let mut import = Import { store: &store, run, bar, total: ImportOutcome::default(), read: 0, analyzed_at: 0 };
    // Dropping `read` when the import stops tells the reading thread to stop too.
    while import.total.stopped_at.is_none() {
        match read.recv().await {
            None => break,
            Some(Reading::Chunk(records)) => {
                import.read += records.len() as u64;
                import.apply(records).await?;
            }
            Some(Reading::Refused { line, reason }) => {
                import.read += 1;
                import.refuse(line, reason);
            }
            Some(Reading::Failed(e)) => return Err(e),
        }
    }
    drop(read);
    import.bar.finish_and_clear();
    let t = &import.total;
    tracing::info!(
        source = %source, records = import.read, added = t.added, changed = t.changed, unchanged = t.unchanged,
        certificates_added = t.certificates_added, revoked = t.revoked, refused = t.refused.len(),
        "registry import finished"
    );
    println!(
        "imported {}: {} records read; {} holders added, {} changed, {} unchanged; {} certificates registered, {} revoked; {} refused",
        file.display(),
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
