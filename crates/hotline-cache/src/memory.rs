//! The in-process backend: the embedded default when no Redis is configured.
//! The same semantics as Redis, under one mutex.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use hotline_core::{CertificateStatus, IssuerId, Serial};
use hotline_store::StatusChange;

use crate::{Applied, CachedStatus, Lookup, Marker, Rebuild};

type Entries = HashMap<(String, String), CachedStatus>;

#[derive(Default)]
struct State {
    marker: Option<Marker>,
    current: Entries,
    building: HashMap<u64, Entries>,
    last_generation: u64,
}

#[derive(Clone, Default)]
pub struct MemoryCache(Arc<Mutex<State>>);

impl MemoryCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-written in a
        // way that matters more than losing the cache, which readers survive.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn lookup(&self, keys: &[(IssuerId, Serial)]) -> Lookup {
        let state = self.state();
        let Some(marker) = state.marker else { return Lookup::Cold };
        let entries = keys
            .iter()
            .map(|(i, s)| state.current.get(&(i.as_str().to_owned(), s.as_str().to_owned())).cloned())
            .collect();
        Lookup::Known { marker, entries }
    }

    pub(crate) fn marker(&self) -> Option<Marker> {
        self.state().marker
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
    let key = (c.issuer.clone(), c.serial.clone());
    if c.status == CertificateStatus::Good {
        entries.remove(&key);
    } else {
        entries.insert(key, CachedStatus { status: c.status, reason: c.reason.clone(), since: c.since });
    }
}
