//! The time index: timestamp → offset, sparse and monotonic.
//!
//! # Format (`<base offset>.timeindex`)
//!
//! A sequence of 12-byte big-endian entries, as in Apache Kafka:
//!
//! ```text
//! offset  size  field
//!      0     8  timestamp: the largest timestamp seen in the segment so far, i64
//!      8     4  relative offset of the (last offset of the) batch that first
//!               carried that timestamp, u32
//! ```
//!
//! Entries are offered at the same points as offset index entries and kept
//! only when the timestamp grows, so both columns increase. When a segment
//! stops being active (roll or clean shutdown) a final entry with the
//! segment's maximum timestamp is appended even if the index is full, which
//! makes the last entry of every inactive segment's time index its maximum
//! timestamp — read at start-up without scanning the log.

use crate::index::IndexEntry;

/// One time index entry: 8-byte timestamp, 4-byte relative offset,
/// big-endian (format in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    /// Largest timestamp up to `relative_offset`.
    pub timestamp: i64,
    /// Offset relative to the segment's base offset.
    pub relative_offset: u32,
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;

    fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }

    fn decode(buf: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&buf[..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        }
    }
}

impl TimeEntry {
    /// Whether `self` may follow `prev` in a valid index.
    pub(crate) fn follows(&self, prev: Option<&TimeEntry>) -> bool {
        prev.is_none_or(|p| {
            self.timestamp > p.timestamp && self.relative_offset >= p.relative_offset
        })
    }
}

/// Whether an entry `(timestamp, relative_offset)` should be appended after
/// `entries` (Kafka's `TimeIndex.maybeAppend`: only a growing timestamp).
pub(crate) fn should_append(entries: &[TimeEntry], timestamp: i64, relative_offset: u32) -> bool {
    match entries.last() {
        None => timestamp >= 0,
        Some(last) => timestamp > last.timestamp && relative_offset >= last.relative_offset,
    }
}

/// The entry to start a timestamp search from: the largest entry whose
/// timestamp is `<= target` (`None` = search from the segment start).
pub(crate) fn lookup(entries: &[TimeEntry], target: i64) -> Option<TimeEntry> {
    let idx = entries.partition_point(|e| e.timestamp <= target);
    idx.checked_sub(1).map(|i| entries[i])
}

/// Number of entries to keep when truncating the log to `relative_offset`.
pub(crate) fn keep_below(entries: &[TimeEntry], relative_offset: u32) -> usize {
    entries.partition_point(|e| e.relative_offset < relative_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(timestamp: i64, relative_offset: u32) -> TimeEntry {
        TimeEntry {
            timestamp,
            relative_offset,
        }
    }

    #[test]
    fn lookup_and_append_rules() {
        let entries = [e(100, 3), e(250, 9), e(400, 15)];
        assert_eq!(lookup(&entries, 50), None);
        assert_eq!(lookup(&entries, 100), Some(e(100, 3)));
        assert_eq!(lookup(&entries, 399), Some(e(250, 9)));
        assert_eq!(lookup(&entries, i64::MAX), Some(e(400, 15)));
        assert!(!should_append(&entries, 400, 20), "timestamp must grow");
        assert!(should_append(&entries, 401, 15));
        assert!(
            !should_append(&[], -1, 0),
            "no-timestamp batches are not indexed"
        );
        assert_eq!(keep_below(&entries, 9), 1);
    }

    #[test]
    fn entries_round_trip_big_endian() {
        let mut buf = [0u8; 12];
        e(0x0102030405060708, 0x0a0b0c0d).encode(&mut buf);
        assert_eq!(buf, [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13]);
        assert_eq!(TimeEntry::decode(&buf), e(0x0102030405060708, 0x0a0b0c0d));
    }
}
