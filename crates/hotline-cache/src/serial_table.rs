//! An issuer's not-good certificates in the in-process cache, in 33 to 43
//! bytes each at any size. A hash map's buckets double all at once, so its
//! cost per entry swings between 37 and 73 bytes as the registry grows (73
//! just after each doubling). Here the entries stand in one packed array,
//! grouped by a hash of the serial into slots of two to four on average, with
//! where each slot starts (one to two bytes an entry). The array is built
//! whole, at a rebuild and when the changes since outgrow an eighth of it;
//! those changes stand beside it in a small map, which a lookup asks first.
//!
//! Building it again is two passes over the array, done under the cache's
//! write lock, once per eighth of the entries changed: lookups wait for it,
//! about 0.1 s at a million entries and 1 to 2 s at 12.5 million (an
//! issuer's share of a national 25 million, after 1.5 million changes:
//! months apart). A hash map's doubling held the lock as long, once per
//! doubling.

use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use foldhash::{HashMap, HashMapExt};

use crate::memory::{Packed, SerialKey};

/// Changes kept beside the array before it is built again: this many, and an eighth of the array.
const CHANGES_FLOOR: usize = 1024;
/// Entries per slot, on average, at most.
const PER_SLOT: usize = 4;
/// The slots' hash is fixed: the array is only ever read by this process, and
/// a caller choosing serials can only choose which slot it reads, not how full.
const SEED: u64 = 0x6a70_6b69_2d6e_6561;

pub(crate) struct SerialTable {
    /// Each serial at most once, grouped by slot.
    entries: Box<[(SerialKey, Packed)]>,
    /// `entries[starts[s]..starts[s + 1]]` are the entries of slot `s`.
    starts: Box<[u32]>,
    bits: u32,
    /// Changes since the array was built: `None` for an entry of the array that became good.
    changes: HashMap<SerialKey, Option<Packed>>,
}

impl Default for SerialTable {
    fn default() -> Self {
        Self::build(Vec::new())
    }
}

impl SerialTable {
    /// The table of `entries`, each serial once (a snapshot's, by the store's unique key).
    pub(crate) fn build(entries: Vec<(SerialKey, Packed)>) -> Self {
        let bits = slot_bits(entries.len());
        let slots = 1usize << bits;
        // A counting sort by slot: two passes, one hash per entry each.
        let mut starts = vec![0u32; slots + 1];
        for (key, _) in &entries {
            starts[slot(key, bits) + 1] += 1;
        }
        for s in 0..slots {
            starts[s + 1] += starts[s];
        }
        let mut next = starts[..slots].to_vec();
        let mut placed = vec![(SerialKey::default(), Packed::default()); entries.len()];
        for entry in entries {
            let s = slot(&entry.0, bits);
            placed[next[s] as usize] = entry;
            next[s] += 1;
        }
        Self { entries: placed.into_boxed_slice(), starts: starts.into_boxed_slice(), bits, changes: HashMap::new() }
    }

    pub(crate) fn get(&self, key: &SerialKey) -> Option<Packed> {
        if !self.changes.is_empty()
            && let Some(change) = self.changes.get(key)
        {
            return *change;
        }
        self.in_array(key)
    }

    pub(crate) fn insert(&mut self, key: SerialKey, value: Packed) {
        self.changes.insert(key, Some(value));
        self.build_again_if_due();
    }

    pub(crate) fn remove(&mut self, key: &SerialKey) {
        if self.in_array(key).is_some() {
            self.changes.insert(*key, None);
        } else {
            self.changes.remove(key);
        }
        self.build_again_if_due();
    }

    fn in_array(&self, key: &SerialKey) -> Option<Packed> {
        let s = slot(key, self.bits);
        let slot_entries = &self.entries[self.starts[s] as usize..self.starts[s + 1] as usize];
        slot_entries.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    fn build_again_if_due(&mut self) {
        if self.changes.len() <= CHANGES_FLOOR + self.entries.len() / 8 {
            return;
        }
        let (array, changes) = (std::mem::take(&mut self.entries), std::mem::take(&mut self.changes));
        let mut entries: Vec<_> = array.iter().filter(|(k, _)| !changes.contains_key(k)).copied().collect();
        // The old array goes before the new one is placed: two arrays at once, not three.
        drop(array);
        entries.extend(changes.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
        *self = Self::build(entries);
    }

    /// The heap this table holds, in bytes: the array, the slots' starts and
    /// the map's buckets (a control byte each; seven in eight may be used).
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        let bucket = std::mem::size_of::<(SerialKey, Option<Packed>)>() + 1;
        std::mem::size_of_val(&*self.entries)
            + std::mem::size_of_val(&*self.starts)
            + self.changes.capacity().div_ceil(7) * 8 * bucket
    }
}

/// Slots for `n` entries: a power of two, at least `n / PER_SLOT`.
fn slot_bits(n: usize) -> u32 {
    n.div_ceil(PER_SLOT).max(1).next_power_of_two().trailing_zeros()
}

fn slot(key: &SerialKey, bits: u32) -> usize {
    match bits {
        0 => 0,
        _ => (FixedState::with_seed(SEED).hash_one(key) >> (64 - bits)) as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys and values from a small deterministic generator (xorshift), so a failure repeats.
    struct Draws(u64);

    impl Draws {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn key(&mut self, pool: u64) -> SerialKey {
            SerialKey::from_number(self.next() % pool + 1)
        }

        fn value(&mut self) -> Packed {
            Packed::from_parts(self.next() as i64 >> 8, (self.next() % 2) as u8 + 1, (self.next() % 11) as u8)
        }
    }

    #[test]
    fn answers_as_a_map_would_through_changes_and_builds() {
        let mut draws = Draws(0x2545_f491_4f6c_dd1d);
        let pool = 6_000;
        let mut model = std::collections::HashMap::new();
        let mut first = Vec::new();
        for _ in 0..3_000 {
            let (key, value) = (draws.key(pool), draws.value());
            if model.insert(key, value).is_none() {
                first.push((key, value));
            } else {
                first.iter_mut().filter(|(k, _)| *k == key).for_each(|e| e.1 = value);
            }
        }
        let mut table = SerialTable::build(first);
        let mut builds = 0;
        for step in 0..40_000u32 {
            let key = draws.key(pool);
            if draws.next().is_multiple_of(3) {
                table.remove(&key);
                model.remove(&key);
            } else {
                let value = draws.value();
                table.insert(key, value);
                model.insert(key, value);
            }
            if table.changes.is_empty() {
                builds += 1;
            }
            if step.is_multiple_of(997) {
                for n in 1..=pool {
                    let key = SerialKey::from_number(n);
                    assert_eq!(table.get(&key), model.get(&key).copied(), "serial {n} after {step} changes");
                }
            }
        }
        assert!(builds >= 3, "the array was built again as changes grew ({builds} times)");
    }

    #[test]
    fn an_entry_costs_at_most_64_bytes_at_every_size() {
        // Around powers of two, where a hash map has just doubled, and between them.
        for n in [10_000, 16_383, 16_384, 16_385, 100_000, 131_072, 131_073, 200_000] {
            let mut table =
                SerialTable::build((1..=n).map(|i| (SerialKey::from_number(i), Packed::default())).collect());
            let built = table.heap_bytes() as f64 / n as f64;
            assert!(built <= 34.0, "{n} entries as built: {built:.1} bytes each");
            // The most the changes reach before the array is built again: an eighth of it, all new serials.
            let mut added = 0;
            while table.changes.len() < CHANGES_FLOOR + n as usize / 8 {
                added += 1;
                table.insert(SerialKey::from_number(n + added), Packed::default());
            }
            let most = table.heap_bytes() as f64 / (n + added) as f64;
            assert!(most <= 64.0, "{n} entries and {added} changes: {most:.1} bytes each");
        }
    }

    #[test]
    fn an_empty_table_answers_nothing_and_takes_entries() {
        let mut table = SerialTable::default();
        let key = SerialKey::from_number(42);
        assert_eq!(table.get(&key), None);
        table.remove(&key);
        assert!(table.changes.is_empty(), "removing what is not there records nothing");
        table.insert(key, Packed::default());
        assert_eq!(table.get(&key), Some(Packed::default()));
        table.remove(&key);
        assert_eq!(table.get(&key), None);
    }
}
