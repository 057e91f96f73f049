//! The cleaner's key → latest offset map, bounded by
//! `log.cleaner.dedupe.buffer.size`.
//!
//! Like Kafka's `SkimpyOffsetMap` it stores a 16-byte hash of each key, not
//! the key, and charges 24 bytes per entry (hash + offset) against the
//! buffer, filling it to at most 90%. Two independent 64-bit SipHashes make
//! the 128-bit hash; a collision would make the cleaner drop a record that
//! was not superseded, with odds like MD5's in Kafka.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

const BYTES_PER_ENTRY: usize = 24;
const MAX_LOAD: f64 = 0.9;

/// Key hash → largest offset seen for that key.
#[derive(Debug)]
pub(crate) struct OffsetMap {
    map: HashMap<u128, i64>,
    capacity: usize,
}

fn key_hash(key: &[u8]) -> u128 {
    let mut a = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut a);
    let mut b = std::collections::hash_map::DefaultHasher::new();
    0x5eed_u16.hash(&mut b);
    key.hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

impl OffsetMap {
    /// A map using at most `buffer_bytes` (at least one entry).
    pub(crate) fn new(buffer_bytes: usize) -> OffsetMap {
        let capacity = (((buffer_bytes / BYTES_PER_ENTRY) as f64) * MAX_LOAD) as usize;
        OffsetMap {
            map: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Entries the map may still take.
    pub(crate) fn remaining(&self) -> usize {
        self.capacity.saturating_sub(self.map.len())
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Records that `key` was seen at `offset` (offsets only grow).
    pub(crate) fn put(&mut self, key: &[u8], offset: i64) {
        let slot = self.map.entry(key_hash(key)).or_insert(offset);
        if *slot < offset {
            *slot = offset;
        }
    }

    /// The latest offset of `key`, if seen.
    pub(crate) fn get(&self, key: &[u8]) -> Option<i64> {
        self.map.get(&key_hash(key)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_offset_and_respects_capacity() {
        let mut map = OffsetMap::new(24 * 100);
        assert_eq!(map.remaining(), 90);
        map.put(b"a", 5);
        map.put(b"a", 3);
        map.put(b"b", 7);
        assert_eq!(map.get(b"a"), Some(5));
        assert_eq!(map.get(b"b"), Some(7));
        assert_eq!(map.get(b"c"), None);
        assert_eq!(map.len(), 2);
        assert_eq!(map.remaining(), 88);
        assert_eq!(OffsetMap::new(0).remaining(), 1);
    }
}
