//! The CA's state: which certificates are on each issuer's CRL, and every
//! event already applied (so a replay is answered as the first time). Every
//! change is appended to a journal in the data directory before it is
//! answered, and the journal is replayed at start, so a restarted CA
//! remembers both.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use anyhow::Context;
use hotline_ca::{CaProblem, CaStats, EntryState, RevocationAnswer, RevocationRequest};
use hotline_core::{CaAction, RevocationReason};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A certificate on a CRL.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub reason: RevocationReason,
    /// Unix seconds at which the CA applied it.
    pub since: i64,
}

impl Entry {
    fn state(&self) -> EntryState {
        if self.reason == RevocationReason::CertificateHold { EntryState::Held } else { EntryState::Revoked }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Record {
    Apply { request: RevocationRequest, answer: RevocationAnswer },
    Forget { issuer: String, serial: String },
}

/// A refusal: HTTP status and problem body.
pub type Refusal = (u16, CaProblem);

fn refuse(status: u16, code: &str, detail: String) -> Refusal {
    (status, CaProblem { code: code.to_owned(), detail })
}

pub struct Ledger {
    /// Issuer → serial (canonical hex) → entry. Ordered so CRLs are stable.
    pub entries: BTreeMap<String, BTreeMap<String, Entry>>,
    /// Issuer → has the CRL changed since it was last signed.
    pub dirty: HashMap<String, bool>,
    events: HashMap<String, (RevocationRequest, RevocationAnswer)>,
    pub stats: CaStats,
    journal: File,
}

impl Ledger {
    /// Opens the journal in `dir` and replays it.
    pub fn open(dir: &Path, issuers: &[String]) -> anyhow::Result<Self> {
        let path = dir.join("journal.jsonl");
        let mut ledger = Self {
            entries: issuers.iter().map(|i| (i.clone(), BTreeMap::new())).collect(),
            dirty: issuers.iter().map(|i| (i.clone(), true)).collect(),
            events: HashMap::new(),
            stats: CaStats::default(),
            journal: OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("could not open {}", path.display()))?,
        };
        for (n, line) in BufReader::new(File::open(&path)?).lines().enumerate() {
            let line = line?;
            // A line cut short by a crash was never answered: ignore it.
            let Ok(record) = serde_json::from_str::<Record>(&line) else {
                tracing::warn!(line = n + 1, "ignoring an incomplete journal line");
                continue;
            };
            ledger.replay(record);
        }
        Ok(ledger)
    }

    fn replay(&mut self, record: Record) {
        match record {
            Record::Apply { request, answer } => {
                self.set_entry(&request, answer.entry, &answer.applied_at);
                *self.stats.applied.entry(request.event_id.clone()).or_default() += 1;
                self.events.insert(request.event_id.clone(), (request, answer));
            }
            Record::Forget { issuer, serial } => {
                if let Some(entries) = self.entries.get_mut(&issuer) {
                    entries.remove(&serial);
                }
            }
        }
    }

    fn set_entry(&mut self, request: &RevocationRequest, state: EntryState, applied_at: &str) {
        let Some(entries) = self.entries.get_mut(&request.issuer) else { return };
        let serial = canonical(&request.serial).unwrap_or_default();
        let since = chrono::DateTime::parse_from_rfc3339(applied_at).map(|t| t.timestamp()).unwrap_or_default();
        match state {
            EntryState::Absent => {
                entries.remove(&serial);
            }
            EntryState::Held | EntryState::Revoked => {
                // A no-op (holding what is held) keeps the original date.
                let unchanged = entries.get(&serial).is_some_and(|e| e.state() == state);
                if !unchanged {
                    entries.insert(serial, Entry { reason: request.reason, since });
                }
            }
        }
        self.dirty.insert(request.issuer.clone(), true);
    }

    /// Applies an event once; a replay gets the first answer back.
    pub fn apply(&mut self, request: RevocationRequest, now: OffsetDateTime) -> Result<RevocationAnswer, Refusal> {
        if let Some((first, answer)) = self.events.get(&request.event_id) {
            if *first != request {
                self.stats.refused += 1;
                return Err(refuse(
                    422,
                    "event_id_reused",
                    format!("event {} was sent before with other content", request.event_id),
                ));
            }
            *self.stats.replays.entry(request.event_id.clone()).or_default() += 1;
            return Ok(RevocationAnswer { replay: true, ..answer.clone() });
        }
        let entry = self.decide(&request).inspect_err(|_| self.stats.refused += 1)?;
        let applied_at = chrono::DateTime::from_timestamp(now.unix_timestamp(), now.nanosecond())
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let answer = RevocationAnswer {
            event_id: request.event_id.clone(),
            issuer: request.issuer.clone(),
            serial: request.serial.clone(),
            action: request.action,
            entry,
            applied_at,
            replay: false,
        };
        let record = Record::Apply { request, answer: answer.clone() };
        self.write(&record).map_err(|e| refuse(500, "journal_failed", e.to_string()))?;
        self.replay(record);
        Ok(answer)
    }

    /// The entry state an event leads to, or why it is refused.
    fn decide(&self, request: &RevocationRequest) -> Result<EntryState, Refusal> {
        let entries = self.entries.get(&request.issuer).ok_or_else(|| {
            refuse(404, "unknown_issuer", format!("this CA does not serve issuer {}", request.issuer))
        })?;
        let serial = canonical(&request.serial)
            .ok_or_else(|| refuse(422, "invalid_serial", "serial must be 1 to 20 bytes of hex".to_owned()))?;
        if request.event_id.is_empty() || request.event_id.len() > 128 {
            return Err(refuse(422, "invalid_event_id", "event_id must be 1 to 128 characters".to_owned()));
        }
        if !request.action.fits(request.reason) {
            return Err(refuse(
                422,
                "reason_mismatch",
                format!("reason {} does not go with action {}", request.reason, request.action),
            ));
        }
        let current = entries.get(&serial).map(Entry::state).unwrap_or(EntryState::Absent);
        match (request.action, current) {
            (_, EntryState::Revoked) if request.action != CaAction::Revoke => Err(refuse(
                409,
                "already_revoked",
                format!("{} {} is revoked for good; nothing can change it", request.issuer, request.serial),
            )),
            (CaAction::Release, EntryState::Absent) => Err(refuse(
                409,
                "not_on_hold",
                format!("{} {} is not on hold, so it cannot be released", request.issuer, request.serial),
            )),
            (CaAction::Hold, _) => Ok(EntryState::Held),
            (CaAction::Release, _) => Ok(EntryState::Absent),
            (CaAction::Revoke, _) => Ok(EntryState::Revoked),
        }
    }

    /// Removes an entry without an event: a CA that lost a change, for reconciliation tests.
    pub fn forget(&mut self, issuer: &str, serial: &str) -> Result<(), Refusal> {
        let serial = canonical(serial).ok_or_else(|| refuse(422, "invalid_serial", "serial must be hex".to_owned()))?;
        let present = self.entries.get(issuer).is_some_and(|e| e.contains_key(&serial));
        if !present {
            return Err(refuse(404, "no_such_entry", format!("{issuer} {serial} is not on the CRL")));
        }
        let record = Record::Forget { issuer: issuer.to_owned(), serial };
        self.write(&record).map_err(|e| refuse(500, "journal_failed", e.to_string()))?;
        self.replay(record);
        self.dirty.insert(issuer.to_owned(), true);
        Ok(())
    }

    fn write(&mut self, record: &Record) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        // One write per record: a crash leaves at most one partial last line.
        self.journal.write_all(&line)?;
        Ok(())
    }
}

pub use hotline_ca::canonical_serial_hex as canonical;
