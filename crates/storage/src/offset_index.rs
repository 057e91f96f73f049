//! The offset index: relative offset → file position, sparse.
//!
//! # Format (`<base offset>.index`)
//!
//! A sequence of 8-byte big-endian entries, as in Apache Kafka:
//!
//! ```text
//! offset  size  field
//!      0     4  relative offset (batch last offset - segment base offset), u32
//!      4     4  file position of the start of that batch, u32
//! ```
//!
//! An entry is added for the first batch after every `index.interval.bytes`
//! of log; it maps the batch's *last* offset to the batch's *start*
//! position, so a lookup for offset `o` takes the largest entry `<= o` and
//! scans forward from its position. Entries strictly increase in both
//! columns. The index holds at most `segment.index.bytes / 8` entries; a
//! full index rolls the segment.

use crate::index::IndexEntry;

/// One offset index entry: 4-byte relative offset, 4-byte position,
/// big-endian (format in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    /// Offset relative to the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub position: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;

    fn encode(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }

    fn decode(buf: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]),
            position: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        }
    }
}

impl OffsetEntry {
    /// Whether `self` may follow `prev` in a valid index.
    pub(crate) fn follows(&self, prev: Option<&OffsetEntry>) -> bool {
        prev.is_none_or(|p| self.relative_offset > p.relative_offset && self.position > p.position)
    }
}

/// The position to start scanning from for `relative_offset`: the largest
/// entry at or below it, or the start of the file.
pub(crate) fn lookup(entries: &[OffsetEntry], relative_offset: u32) -> OffsetEntry {
    let idx = entries.partition_point(|e| e.relative_offset <= relative_offset);
    if idx == 0 {
        OffsetEntry {
            relative_offset: 0,
            position: 0,
        }
    } else {
        entries[idx - 1]
    }
}

/// Number of entries to keep when truncating the log to `relative_offset`:
/// entries for batches ending at or after it go.
#[cfg(test)]
pub(crate) fn keep_below(entries: &[OffsetEntry], relative_offset: u32) -> usize {
    entries.partition_point(|e| e.relative_offset < relative_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(relative_offset: u32, position: u32) -> OffsetEntry {
        OffsetEntry {
            relative_offset,
            position,
        }
    }

    #[test]
    fn lookup_finds_the_floor_entry() {
        let entries = [e(9, 4100), e(20, 8300), e(35, 12500)];
        assert_eq!(lookup(&entries, 0), e(0, 0));
        assert_eq!(lookup(&entries, 9), e(9, 4100));
        assert_eq!(lookup(&entries, 19), e(9, 4100));
        assert_eq!(lookup(&entries, 1000), e(35, 12500));
        assert_eq!(keep_below(&entries, 20), 1);
        assert_eq!(keep_below(&entries, 21), 2);
    }

    #[test]
    fn entries_round_trip_big_endian() {
        let mut buf = [0u8; 8];
        e(0x01020304, 0x0a0b0c0d).encode(&mut buf);
        assert_eq!(buf, [1, 2, 3, 4, 10, 11, 12, 13]);
        assert_eq!(OffsetEntry::decode(&buf), e(0x01020304, 0x0a0b0c0d));
        assert!(e(2, 10).follows(Some(&e(1, 5))));
        assert!(!e(2, 10).follows(Some(&e(2, 5))));
        assert!(!e(3, 5).follows(Some(&e(2, 5))));
    }

    #[test]
    fn index_files_load_persist_and_truncate() {
        use crate::index::IndexFile;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.index");
        let mut index: IndexFile<OffsetEntry> = IndexFile::loaded(path.clone(), Vec::new(), 0);
        index.push(e(1, 100));
        index.push(e(5, 200));
        index.persist(true).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 16);
        index.push(e(9, 300));
        index.persist(false).unwrap();
        assert_eq!(
            IndexFile::<OffsetEntry>::peek_last_entry(&path).unwrap(),
            Some(e(9, 300))
        );
        index.truncate(1);
        index.persist(false).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
        let mut lazy: IndexFile<OffsetEntry> = IndexFile::lazy(path.clone());
        lazy.load(|e, p| e.follows(p)).unwrap();
        assert_eq!(lazy.entries().unwrap(), &[e(1, 100)]);
        std::fs::write(&path, [0u8; 7]).unwrap();
        assert!(IndexFile::<OffsetEntry>::lazy(path.clone())
            .load(|e, p| e.follows(p))
            .is_err());
        let mut bad = Vec::new();
        bad.extend_from_slice(&[0, 0, 0, 5, 0, 0, 0, 9]);
        bad.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 10]);
        std::fs::write(&path, bad).unwrap();
        assert!(IndexFile::<OffsetEntry>::lazy(path)
            .load(|e, p| e.follows(p))
            .is_err());
    }
}
