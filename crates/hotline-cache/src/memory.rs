//! The in-process backend: the embedded default when no Redis is configured,
//! and every API instance's near-cache. The same semantics as Redis, under
//! one lock.
//!
//! An instance holds every certificate that is not good, tens of millions at
//! national size, so an entry is 31 bytes with no allocation of its own: the
//! serial's bytes (at most 20, RFC 5280) with their length as the key, and the
//! record packed beside it ([`Packed`]). An issuer's entries stand in a
//! [`SerialTable`], 33 to 43 bytes an entry at any size; in a hash map they
//! took 37 to 73 (73 just after the map doubled), and with a `String` key and
//! the record as it is about twice that.

use foldhash::{HashMap, HashMapExt};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use hotline_core::{CertificateStatus, IssuerId, RevocationReason, Serial, StatusRecord};
use hotline_store::StatusChange;

use crate::serial_table::SerialTable;
use crate::{Applied, Lookup, Marker, Rebuild};

/// issuer → serial → status: nested so a lookup borrows the issuer's `&str` and allocates nothing.
type Entries = HashMap<String, SerialTable>;

/// A rebuild's entries as the snapshot gives them, each issuer's made a table once complete.
type Building = HashMap<String, Vec<(SerialKey, Packed)>>;

/// A serial as its bytes: the length, then the bytes, then zeros. Serials are
/// canonical (no leading zero byte), so equal serials have equal keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub(crate) struct SerialKey([u8; Serial::MAX_BYTES + 1]);

impl SerialKey {
    fn of(serial: &Serial) -> Self {
        let hex = serial.as_str().as_bytes();
        let mut key = [0u8; Serial::MAX_BYTES + 1];
        // A `Serial` is 2 to 40 hex digits, an even number: `len` is 1 to 20,
        // and the digits always decode.
        let len = hex.len() / 2;
        key[0] = len as u8;
        let _ = hex::decode_to_slice(hex, &mut key[1..=len]);
        Self(key)
    }

    /// The key of the serial that is the number `n`.
    #[cfg(test)]
    pub(crate) fn from_number(n: u64) -> Self {
        Self::of(&Serial::parse(&format!("{n:016x}")).expect("16 hex digits are a serial"))
    }
}

/// A [`StatusRecord`] in 10 bytes, aligned to one so the entry has no padding:
/// `since` in microseconds (what the store keeps), the status, the reason's
/// RFC 5280 code (`NO_REASON` for none).
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub(crate) struct Packed {
    since_micros: [u8; 8],
    status: u8,
    reason: u8,
}

const NO_REASON: u8 = u8::MAX;

impl Packed {
    #[cfg(test)]
    pub(crate) fn from_parts(since_micros: i64, status: u8, reason: u8) -> Self {
        Self { since_micros: since_micros.to_le_bytes(), status, reason }
    }

    fn of(record: &StatusRecord) -> Self {
        Self {
            since_micros: record.since.timestamp_micros().to_le_bytes(),
            status: CertificateStatus::ALL.iter().position(|s| *s == record.status).unwrap_or(0) as u8,
            reason: record.reason.map_or(NO_REASON, RevocationReason::code),
        }
    }

    /// The record, or `None` if the bytes do not read (never written so): the lookup is then cold, so the
    /// reader asks the next tier rather than take an unreadable entry for a good certificate.
    fn record(self) -> Option<StatusRecord> {
        Some(StatusRecord {
            status: *CertificateStatus::ALL.get(usize::from(self.status))?,
            reason: match self.reason {
                NO_REASON => None,
                code => Some(RevocationReason::from_code(code)?),
            },
            since: DateTime::from_timestamp_micros(i64::from_le_bytes(self.since_micros))?,
        })
    }
}

#[derive(Default)]
struct State {
    marker: Option<Marker>,
    current: Entries,
    building: HashMap<u64, Building>,
    last_generation: u64,
}

#[derive(Clone, Default)]
pub struct MemoryCache(Arc<RwLock<State>>);

impl MemoryCache {
    pub fn new() -> Self {
        Self::default()
    }

    // A panic while holding the lock cannot leave the maps half-written in a
    // way that matters more than losing the cache, which readers survive.
    fn state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn lookup(&self, keys: &[(IssuerId, Serial)]) -> Lookup {
        let state = self.read();
        let Some(marker) = state.marker else { return Lookup::Cold };
        let entries: Option<Vec<_>> = keys
            .iter()
            .map(|(i, s)| match state.current.get(i.as_str()).and_then(|by_serial| by_serial.get(&SerialKey::of(s))) {
                None => Some(None),
                Some(packed) => packed.record().map(Some),
            })
            .collect();
        match entries {
            Some(entries) => Lookup::Known { marker, entries },
            None => Lookup::Cold,
        }
    }

    pub(crate) fn marker(&self) -> Option<Marker> {
        self.read().marker
    }

    pub(crate) fn apply(&self, from: i64, changes: &[StatusChange], to: i64, as_of: Option<DateTime<Utc>>) -> Applied {
        let mut state = self.state();
        let Some(mut marker) = state.marker else { return Applied::NoMarker };
        if marker.position < from {
            return Applied::Gap { marker: marker.position };
        }
        for c in changes.iter().filter(|c| c.position > marker.position) {
            put(&mut state.current, c);
        }
        if to >= marker.position {
            marker.position = to;
            if let Some(as_of) = as_of {
                marker.as_of = marker.as_of.max(as_of);
            }
        }
        state.marker = Some(marker);
        Applied::Advanced { position: marker.position }
    }

    pub(crate) fn begin_rebuild(&self) -> Rebuild {
        let mut state = self.state();
        state.last_generation += 1;
        let generation = state.last_generation;
        state.building.insert(generation, Building::new());
        Rebuild { generation }
    }

    pub(crate) fn load(&self, rebuild: Rebuild, entries: &[StatusChange]) {
        let mut state = self.state();
        if let Some(building) = state.building.get_mut(&rebuild.generation) {
            // A snapshot holds each certificate once, and none that is good (absent is good).
            for c in entries.iter().filter(|c| c.record.status != CertificateStatus::Good) {
                let issuer = match building.get_mut(c.issuer.as_str()) {
                    Some(issuer) => issuer,
                    None => building.entry(c.issuer.as_str().to_owned()).or_default(),
                };
                issuer.push((SerialKey::of(&c.serial), Packed::of(&c.record)));
            }
        }
    }

    pub(crate) fn finish_rebuild(&self, rebuild: Rebuild, position: i64, as_of: DateTime<Utc>) {
        let Some(building) = self.state().building.remove(&rebuild.generation) else { return };
        // Built outside the lock: readers keep the current generation meanwhile.
        let entries: Entries = building.into_iter().map(|(issuer, e)| (issuer, SerialTable::build(e))).collect();
        let mut state = self.state();
        state.current = entries;
        state.marker = Some(Marker { generation: rebuild.generation, position, as_of });
    }

    /// Forgets everything, as a restarted process would (for tests of cold starts).
    pub fn clear(&self) {
        let mut state = self.state();
        state.marker = None;
        state.current.clear();
    }
}

fn put(entries: &mut Entries, c: &StatusChange) {
    if c.record.status == CertificateStatus::Good {
        if let Some(by_serial) = entries.get_mut(c.issuer.as_str()) {
            by_serial.remove(&SerialKey::of(&c.serial));
        }
    } else {
        let by_serial = match entries.get_mut(c.issuer.as_str()) {
            Some(by_serial) => by_serial,
            None => entries.entry(c.issuer.as_str().to_owned()).or_default(),
        };
        by_serial.insert(SerialKey::of(&c.serial), Packed::of(&c.record));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_31_bytes_without_padding() {
        assert_eq!(std::mem::size_of::<(SerialKey, Packed)>(), 31);
    }

    #[test]
    fn every_record_reads_back_as_written() {
        let since = DateTime::parse_from_rfc3339("2026-12-02T23:46:07.123456Z").unwrap().with_timezone(&Utc);
        let mut records = vec![StatusRecord::held(since), StatusRecord::good(since)];
        records.extend(RevocationReason::ALL.iter().map(|r| StatusRecord::revoked(*r, since)));
        for record in records {
            assert_eq!(Packed::of(&record).record(), Some(record));
        }
    }

    #[test]
    fn serial_keys_differ_exactly_when_serials_do() {
        let key = |s: &str| SerialKey::of(&Serial::parse(s).unwrap());
        assert!(key("00ab") == key("ab") && key("AB") == key("ab"), "one certificate, one key");
        assert!(key("ab") != key("ab00") && key("01") != key("10") && key("ff") != key("00ff00"));
        let longest = "f".repeat(40);
        assert_eq!(key(&longest).0[1..], [0xff; 20]);
    }
}
