//! Importing the registry from the issuing side. Each record is one holder
//! as that side sees them now: their card's certificates, their
//! smartphones'. The registry is brought to it.
//!
//! A chunk of records is read against the registry first ([`state`]), and
//! each record planned on its own ([`plan`]): holders the registry does not
//! know go in bulk, all in one transaction with their audit record
//! (PostgreSQL's `COPY`; batched inserts on SQLite); a known holder whose
//! record changes nothing is skipped, so the same file twice changes
//! nothing, and a file imported again after a crash completes; a record that
//! changes something is applied in its own transaction ([`apply`]), read
//! again and planned again under its locks, every status change through the
//! change stream, the outbox and the audit log as a suspension's.

mod apply;
mod first_load;
mod plan;
mod state;

use std::collections::HashSet;

pub use first_load::{FirstLoad, FirstLoadEnd};

use chrono::{DateTime, NaiveDate, Utc};
use hotline_core::{CertificateKind, DeviceId, HolderFingerprint, IssuerId, RevocationReason, Serial};

use crate::audit::AuditEntry;
use crate::registry::Bulk;
use crate::{NewCertificate, NewHolder, NewSmartphone, Store, format_instant};

/// What the issuing side says of one certificate's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stance {
    /// Issued; nothing said of its status, so a hold placed here stays.
    Issued,
    /// Valid by the issuing side's word: refused if the registry holds or has revoked it.
    Good,
    /// Revoked by the issuing side (an address change revokes the signature certificate).
    Revoked(RevocationReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportCertificate {
    pub issuer: IssuerId,
    pub serial: Serial,
    pub kind: CertificateKind,
    pub stance: Stance,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSmartphone {
    pub device_id: DeviceId,
    pub certificates: Vec<ImportCertificate>,
}

/// One holder as the issuing side sees them now. A part left out (`None`)
/// says nothing; a part given is the whole of it, and what the registry has
/// beyond it is revoked as superseded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRecord {
    /// Where it is in the file (1-based), for messages.
    pub line: u64,
    pub fingerprint: HolderFingerprint,
    pub date_of_birth: NaiveDate,
    /// The certificates of the holder's current card. None of them on the
    /// registered card: a new card, and the old one is revoked.
    pub card: Option<Vec<ImportCertificate>>,
    /// Every smartphone of the holder's with its certificates.
    pub smartphones: Option<Vec<ImportSmartphone>>,
}

impl ImportRecord {
    fn certificates(&self) -> impl Iterator<Item = &ImportCertificate> {
        let card = self.card.iter().flatten();
        card.chain(self.smartphones.iter().flatten().flat_map(|p| &p.certificates))
    }
}

/// Who imports, from where, and when: named in every audit record of the import.
#[derive(Debug, Clone)]
pub struct ImportRun<'a> {
    pub actor: &'a str,
    /// The file's name, as the operator gave it.
    pub source: &'a str,
    pub at: DateTime<Utc>,
    /// Apply nothing from the first refused record of the chunk on (the
    /// records before it are applied, each whole), rather than go on past it.
    pub stop_at_refusal: bool,
}

/// What a chunk of records did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    /// Holders the registry did not know.
    pub added: u64,
    /// Known holders whose record changed something.
    pub changed: u64,
    /// Known holders whose record changed nothing.
    pub unchanged: u64,
    /// Certificates registered.
    pub certificates_added: u64,
    /// Status changes made (revocations), each in the change stream, the outbox and the audit log.
    pub revoked: u64,
    /// Records refused, with why; nothing of a refused record is applied.
    pub refused: Vec<Refusal>,
    /// The line of the refused record the import stopped at ([`ImportRun::stop_at_refusal`]).
    pub stopped_at: Option<u64>,
}

/// A record refused: its line and why, in words that never quote the Individual Number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub line: u64,
    pub reason: String,
}

impl ImportOutcome {
    pub fn add(&mut self, other: ImportOutcome) {
        self.added += other.added;
        self.changed += other.changed;
        self.unchanged += other.unchanged;
        self.certificates_added += other.certificates_added;
        self.revoked += other.revoked;
        self.refused.extend(other.refused);
        self.stopped_at = self.stopped_at.or(other.stopped_at);
    }

    fn refuse(&mut self, line: u64, reason: impl Into<String>) {
        self.refused.push(Refusal { line, reason: reason.into() });
    }
}

impl Store {
    /// Applies a chunk of records. Records of one chunk name distinct holders
    /// and serials; one that repeats an earlier one of the chunk is refused
    /// (a caller reading a file starts a new chunk there instead).
    pub async fn import(&self, records: &[ImportRecord], run: &ImportRun<'_>) -> crate::Result<ImportOutcome> {
        let mut outcome = ImportOutcome::default();
        let distinct = distinct_records(records, &mut outcome);
        let mut conn = self.pool().acquire().await?;
        let registry = state::read(&mut conn, &distinct, state::Owners::OfKnownHolders).await?;
        drop(conn);
        let mut planned = Vec::with_capacity(distinct.len());
        for record in distinct {
            let holder = registry.holder(&record.fingerprint);
            let planned_record = match plan::plan(record, &holder, &registry.owners) {
                Err(reason) => Err(reason),
                Ok(p) => Ok((p.is_nothing() && holder.id.is_some(), holder.id.is_none() && p.is_plain_registration())),
            };
            planned.push((record, planned_record));
        }
        if run.stop_at_refusal {
            let first = outcome
                .refused
                .iter()
                .map(|r| r.line)
                .chain(planned.iter().filter(|(_, p)| p.is_err()).map(|(r, _)| r.line))
                .min();
            if let Some(first) = first {
                planned.retain(|(r, _)| r.line <= first);
                outcome.stopped_at = Some(first);
                outcome.refused.retain(|r| r.line <= first);
            }
        }
        let mut fresh = Vec::new();
        let mut changing = Vec::new();
        for (record, planned_record) in planned {
            match planned_record {
                Err(reason) => outcome.refuse(record.line, reason),
                Ok((true, _)) => outcome.unchanged += 1,
                Ok((false, true)) => fresh.push(record),
                Ok((false, false)) => changing.push(record),
            }
        }
        self.register_fresh(&fresh, run, &mut outcome).await?;
        for record in changing {
            if outcome.stopped_at.is_some_and(|line| record.line > line) {
                break;
            }
            self.apply_counted(record, run, &mut outcome).await?;
        }
        Ok(outcome)
    }
}

impl Store {
    /// Brings the planner's statistics of the registry's tables up to date.
    /// A registry that grows many times over in one import would otherwise be
    /// planned as the small one it was (a scan where an index serves) until
    /// autovacuum gets to it; the import calls this as it grows.
    pub async fn refresh_registry_statistics(&self) -> crate::Result<()> {
        let sql = match self.backend() {
            crate::Backend::Postgres => "ANALYZE holders, cards, certificates",
            // SQLite's own advice: analyzes only what needs it.
            crate::Backend::Sqlite => "PRAGMA optimize",
        };
        sqlx::query(sql).execute(self.pool()).await?;
        Ok(())
    }

    /// Registers holders not registered yet in bulk. A batch refused because
    /// a key is taken (a serial of someone else's, a holder registered
    /// meanwhile) is halved until the record at fault is alone, and that one
    /// goes down the path that reads everything and says why.
    async fn register_fresh(
        &self,
        fresh: &[&ImportRecord],
        run: &ImportRun<'_>,
        outcome: &mut ImportOutcome,
    ) -> crate::Result<()> {
        let at = format_instant(run.at);
        let mut pending = std::collections::VecDeque::from([fresh]);
        while let Some(batch) = pending.pop_front() {
            let (Some(first), Some(last)) = (batch.first(), batch.last()) else { continue };
            if outcome.stopped_at.is_some_and(|line| first.line > line) {
                break;
            }
            let holders: Vec<NewHolder> = batch.iter().map(|r| new_holder(r)).collect();
            let entry = bulk_entry(run, &at, [first.line, last.line], holders.len(), false);
            match self.register(&holders, run.at, Some(&entry)).await? {
                Bulk::Added(n) => {
                    outcome.added += n as u64;
                    outcome.certificates_added += batch.iter().map(|r| r.certificates().count() as u64).sum::<u64>();
                }
                Bulk::Taken if batch.len() == 1 => self.apply_counted(first, run, outcome).await?,
                Bulk::Taken => {
                    let (left, right) = batch.split_at(batch.len() / 2);
                    pending.push_front(right);
                    pending.push_front(left);
                }
            }
        }
        Ok(())
    }

    /// One record in its own transaction, counted in `outcome`.
    async fn apply_counted(
        &self,
        record: &ImportRecord,
        run: &ImportRun<'_>,
        outcome: &mut ImportOutcome,
    ) -> crate::Result<()> {
        match self.apply_record(record, run).await? {
            apply::Applied::Unchanged => outcome.unchanged += 1,
            apply::Applied::Refused(reason) => {
                outcome.refuse(record.line, reason);
                if run.stop_at_refusal {
                    outcome.stopped_at = Some(record.line);
                }
            }
            apply::Applied::Changed { added_holder, certificates_added, revoked } => {
                if added_holder {
                    outcome.added += 1;
                } else {
                    outcome.changed += 1;
                }
                outcome.certificates_added += certificates_added;
                outcome.revoked += revoked;
            }
        }
        Ok(())
    }
}

/// The audit record of holders registered in bulk: the file's lines they came from and how many.
fn bulk_entry<'a>(
    run: &'a ImportRun<'_>,
    at: &'a str,
    lines: [u64; 2],
    holders: usize,
    first_load: bool,
) -> AuditEntry<'a> {
    let mut details = serde_json::json!({"source": run.source, "lines": lines, "holders_added": holders});
    if first_load {
        details["first_load"] = true.into();
    }
    AuditEntry { at, actor: run.actor, action: "registry.imported", subject: "registry", details: details.to_string() }
}

/// The records that repeat no holder and no serial of an earlier record of the chunk; the others are refused.
fn distinct_records<'r>(records: &'r [ImportRecord], outcome: &mut ImportOutcome) -> Vec<&'r ImportRecord> {
    let mut holders = HashSet::new();
    let mut serials = HashSet::new();
    let mut kept = Vec::with_capacity(records.len());
    for record in records {
        if !holders.insert(record.fingerprint.as_str()) {
            outcome.refuse(record.line, "the holder appears twice in this chunk of the file");
            continue;
        }
        let keys: Vec<(&str, &str)> = record.certificates().map(|c| (c.issuer.as_str(), c.serial.as_str())).collect();
        let mut own = HashSet::with_capacity(keys.len());
        if let Some((issuer, serial)) = keys.iter().find(|k| !own.insert(**k)) {
            outcome.refuse(record.line, format!("{issuer} {serial} is listed twice in the record"));
            continue;
        }
        if let Some((issuer, serial)) = keys.iter().find(|k| serials.contains(*k)) {
            outcome.refuse(record.line, format!("{issuer} {serial} appears twice in this chunk of the file"));
            continue;
        }
        serials.extend(keys);
        kept.push(record);
    }
    kept
}

fn new_certificate(c: &ImportCertificate) -> NewCertificate {
    NewCertificate { issuer: c.issuer.as_str().to_owned(), serial: c.serial.clone(), kind: c.kind }
}

fn new_holder(r: &ImportRecord) -> NewHolder {
    NewHolder {
        fingerprint: r.fingerprint.clone(),
        date_of_birth: r.date_of_birth,
        card: r.card.iter().flatten().map(new_certificate).collect(),
        smartphones: r
            .smartphones
            .iter()
            .flatten()
            .map(|p| NewSmartphone {
                device_id: p.device_id.clone(),
                certificates: p.certificates.iter().map(new_certificate).collect(),
            })
            .collect(),
    }
}
