//! The in-process backend: the embedded default when no Redis is configured.
//! The same semantics as Redis, under one mutex.

use foldhash::{HashMap, HashMapExt};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use hotline_core::{CertificateStatus, IssuerId, Serial, StatusRecord};
use hotline_store::StatusChange;

use crate::{Applied, Lookup, Marker, Rebuild};

/// issuer → serial → status: nested so a lookup borrows `&str` keys and allocates nothing.
type Entries = HashMap<String, HashMap<String, StatusRecord>>;

#[derive(Default)]
struct State {
    marker: Option<Marker>,
    current: Entries,
    building: HashMap<u64, Entries>,
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
        let entries = keys
            .iter()
            .map(|(i, s)| state.current.get(i.as_str()).and_then(|by_serial| by_serial.get(s.as_str())).copied())
            .collect();
        Lookup::Known { marker, entries }
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
        state.building.insert(generation, Entries::new());
        Rebuild { generation }
    }

    pub(crate) fn load(&self, rebuild: Rebuild, entries: &[StatusChange]) {
        let mut state = self.state();
        if let Some(building) = state.building.get_mut(&rebuild.generation) {
            for c in entries {
                put(building, c);
            }
        }
    }

    pub(crate) fn finish_rebuild(&self, rebuild: Rebuild, position: i64, as_of: DateTime<Utc>) {
        let mut state = self.state();
        if let Some(entries) = state.building.remove(&rebuild.generation) {
            state.current = entries;
            state.marker = Some(Marker { generation: rebuild.generation, position, as_of });
        }
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
            by_serial.remove(c.serial.as_str());
        }
    } else {
        let by_serial = match entries.get_mut(c.issuer.as_str()) {
            Some(by_serial) => by_serial,
            None => entries.entry(c.issuer.as_str().to_owned()).or_default(),
        };
        by_serial.insert(c.serial.as_str().to_owned(), c.record);
    }
}
