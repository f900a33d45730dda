//! Reading the issuing side's file on a thread of its own: line by line
//! (never whole: a national file is tens of gigabytes), each line checked
//! and parsed, records gathered into chunks that repeat no holder and no
//! serial, handed to the import in the file's order while the chunk before
//! is being applied.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Read};

use hotline::registry_file::Reader;
use hotline_store::ImportRecord;
use indicatif::ProgressBar;

/// A longer line is refused unread: a holder's record is well under a kilobyte.
const MAX_LINE: u64 = 64 * 1024;

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

/// What a record is checked against, owned by the reading thread.
pub struct Checks {
    pub key: hotline_core::PiiKey,
    pub issuers: HashMap<hotline_core::IssuerId, hotline_core::CertificateKind>,
    pub today: chrono::NaiveDate,
}

/// What the reading thread hands the import, in the file's order.
pub enum Reading {
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

/// How the file is read.
pub struct ReadOptions {
    /// Records per chunk at most.
    pub chunk_size: usize,
    /// Read nothing after a refused line.
    pub stop_at_refusal: bool,
    /// Only these lines (ascending), the others skipped unparsed; all of them when `None`.
    pub only: Option<Vec<u64>>,
}

/// Reads and checks the file on its own thread, a chunk at a time, while the
/// chunk before is applied: reading (the JSON, the check digit, the keyed
/// fingerprint) is the import's own CPU work, and the database's is the
/// rest, so on a machine with two cores they overlap. The thread stops at
/// the end of the file, after a refusal when told to stop there, or when
/// the import stops listening.
pub fn read_in_chunks(
    mut lines: impl BufRead + Send + 'static,
    checks: Checks,
    options: ReadOptions,
    bar: ProgressBar,
) -> tokio::sync::mpsc::Receiver<Reading> {
    let ReadOptions { chunk_size, stop_at_refusal, only } = options;
    let (sender, receiver) = tokio::sync::mpsc::channel(READ_AHEAD);
    std::thread::spawn(move || {
        let reader = Reader { key: &checks.key, issuers: checks.issuers, today: checks.today };
        let send = |read| sender.blocking_send(read).is_ok();
        let mut chunk = Chunk::default();
        let mut wanted = only.map(|lines| lines.into_iter().peekable());
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
            if let Some(wanted) = &mut wanted {
                while wanted.next_if(|w| *w < line_number).is_some() {}
                match wanted.peek() {
                    None => break,
                    Some(w) if *w > line_number => continue,
                    Some(_) => {}
                }
            }
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
