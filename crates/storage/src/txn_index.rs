//! The aborted-transaction index (`<base offset>.txnindex`), Kafka's
//! `TransactionIndex`.
//!
//! # Format
//!
//! A flat array of 34-byte big-endian entries, one per transaction aborted
//! by a marker in this segment, in marker order:
//!
//! ```text
//! version: i16 (= 0) | producer_id: i64 | first_offset: i64 | last_offset: i64 | last_stable_offset: i64
//! ```
//!
//! `first_offset` is the transaction's first data offset, `last_offset` the
//! abort marker's offset and `last_stable_offset` the LSO just after the
//! abort (the first offset of another open transaction, else the marker's
//! offset + 1). Fetch uses it to stop scanning later segments early.
//!
//! The file exists only once a segment got its first abort (Kafka creates
//! it lazily too). A file with a partial entry or an unknown version is
//! corrupt: the log rebuilds the index by replaying the segment.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Bytes per entry.
pub(crate) const ENTRY_SIZE: usize = 34;
const VERSION: i16 = 0;

/// One aborted transaction as the index stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbortedTxnEntry {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl AbortedTxnEntry {
    fn encode(&self) -> [u8; ENTRY_SIZE] {
        let mut out = [0u8; ENTRY_SIZE];
        out[0..2].copy_from_slice(&VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Result<AbortedTxnEntry, String> {
        let i64_at = |at: usize| -> Result<i64, String> {
            b.get(at..at + 8)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .map(i64::from_be_bytes)
                .ok_or_else(|| "short entry".to_string())
        };
        let version = b
            .get(0..2)
            .and_then(|s| <[u8; 2]>::try_from(s).ok())
            .map(i16::from_be_bytes)
            .ok_or_else(|| "short entry".to_string())?;
        if version != VERSION {
            return Err(format!("unknown txn index entry version {version}"));
        }
        let entry = AbortedTxnEntry {
            producer_id: i64_at(2)?,
            first_offset: i64_at(10)?,
            last_offset: i64_at(18)?,
            last_stable_offset: i64_at(26)?,
        };
        if entry.first_offset > entry.last_offset || entry.first_offset < 0 {
            return Err(format!(
                "entry with first offset {} after last offset {}",
                entry.first_offset, entry.last_offset
            ));
        }
        Ok(entry)
    }
}

/// One segment's aborted-transaction index: entries in memory, appended to
/// the file as they are added.
#[derive(Debug)]
pub(crate) struct TxnIndex {
    path: PathBuf,
    entries: Vec<AbortedTxnEntry>,
    file: Option<File>,
    dirty: bool,
    retired: bool,
}

impl TxnIndex {
    /// An empty index for a new segment (no file until the first abort).
    pub(crate) fn empty(path: PathBuf) -> TxnIndex {
        TxnIndex {
            path,
            entries: Vec::new(),
            file: None,
            dirty: false,
            retired: false,
        }
    }

    /// Reads the index file (missing = empty). `Err` describes corruption;
    /// the caller rebuilds the index.
    pub(crate) fn load(path: PathBuf) -> io::Result<Result<TxnIndex, String>> {
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Ok(TxnIndex::empty(path))),
            Err(e) => return Err(e),
        };
        Ok(decode_all(&bytes).map(|entries| TxnIndex {
            path,
            entries,
            file: None,
            dirty: false,
            retired: false,
        }))
    }

    /// Builds an index over entries already written to `path` (compaction).
    pub(crate) fn with_entries(path: PathBuf, entries: Vec<AbortedTxnEntry>) -> TxnIndex {
        TxnIndex {
            path,
            entries,
            file: None,
            dirty: false,
            retired: false,
        }
    }

    /// The entries, in marker order.
    pub(crate) fn entries(&self) -> &[AbortedTxnEntry] {
        &self.entries
    }

    fn open(&mut self) -> io::Result<&File> {
        if self.file.is_none() {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.path)?;
            self.file = Some(f);
        }
        self.file
            .as_ref()
            .ok_or_else(|| io::Error::other("txn index file not open"))
    }

    /// Adds an entry (not fsynced; [`TxnIndex::flush`] does that).
    pub(crate) fn append(&mut self, entry: AbortedTxnEntry) -> io::Result<()> {
        if self.retired {
            return Ok(());
        }
        let at = (self.entries.len() * ENTRY_SIZE) as u64;
        let bytes = entry.encode();
        self.open()?.write_all_at(&bytes, at)?;
        self.entries.push(entry);
        self.dirty = true;
        Ok(())
    }

    /// Removes entries whose marker is at or after `offset` (Kafka's
    /// `TransactionIndex.truncateTo`).
    pub(crate) fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let keep = self
            .entries
            .iter()
            .position(|e| e.last_offset >= offset)
            .unwrap_or(self.entries.len());
        if keep == self.entries.len() || self.retired {
            return Ok(());
        }
        self.entries.truncate(keep);
        self.open()?.set_len((keep * ENTRY_SIZE) as u64)?;
        self.dirty = true;
        Ok(())
    }

    /// Drops every entry and removes the file (before a rebuild).
    pub(crate) fn reset(&mut self) -> io::Result<()> {
        self.entries.clear();
        self.file = None;
        self.dirty = false;
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// fsyncs appended entries.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if self.dirty && !self.retired {
            if let Some(f) = &self.file {
                f.sync_data()?;
            }
            self.dirty = false;
        }
        Ok(())
    }

    /// Stops writing (the segment's files were renamed away).
    pub(crate) fn retire(&mut self) {
        self.retired = true;
        self.file = None;
    }

    /// Kafka's `collectAbortedTxns`: entries with `last_offset >= start`
    /// and `first_offset < upper`; `true` once an entry's LSO reaches
    /// `upper` (later segments cannot hold more matches).
    pub(crate) fn collect(&self, start: i64, upper: i64, out: &mut Vec<AbortedTxnEntry>) -> bool {
        for e in &self.entries {
            if e.last_offset >= start && e.first_offset < upper {
                out.push(*e);
            }
            if e.last_stable_offset >= upper {
                return true;
            }
        }
        false
    }
}

/// Encodes entries as file bytes (compaction output).
pub(crate) fn encode_all(entries: &[AbortedTxnEntry]) -> Vec<u8> {
    entries.iter().flat_map(|e| e.encode()).collect()
}

/// Decodes a whole index file.
pub(crate) fn decode_all(bytes: &[u8]) -> Result<Vec<AbortedTxnEntry>, String> {
    if !bytes.len().is_multiple_of(ENTRY_SIZE) {
        return Err(format!(
            "{} bytes is not a whole number of {ENTRY_SIZE}-byte entries",
            bytes.len()
        ));
    }
    bytes
        .chunks_exact(ENTRY_SIZE)
        .map(AbortedTxnEntry::decode)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxnEntry {
        AbortedTxnEntry {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn entries_round_trip_through_the_file_and_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let mut idx = TxnIndex::empty(path.clone());
        idx.append(entry(1, 0, 5, 6)).unwrap();
        idx.append(entry(2, 3, 9, 10)).unwrap();
        idx.flush().unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 68);
        let loaded = TxnIndex::load(path.clone()).unwrap().unwrap();
        assert_eq!(loaded.entries(), idx.entries());
        idx.truncate_to(9).unwrap();
        let loaded = TxnIndex::load(path.clone()).unwrap().unwrap();
        assert_eq!(loaded.entries(), &[entry(1, 0, 5, 6)]);
    }

    #[test]
    fn corrupt_files_are_detected() {
        assert!(decode_all(&[0u8; 33]).is_err());
        let mut bytes = encode_all(&[entry(1, 0, 5, 6)]);
        bytes[1] = 7;
        assert!(decode_all(&bytes).is_err());
        let bytes = encode_all(&[entry(1, 9, 5, 6)]);
        assert!(decode_all(&bytes).is_err());
    }

    #[test]
    fn collect_stops_once_the_lso_passes_the_upper_bound() {
        let mut idx = TxnIndex::empty(PathBuf::from("/nonexistent"));
        idx.entries = vec![entry(1, 0, 5, 6), entry(2, 7, 9, 20), entry(3, 21, 25, 26)];
        let mut out = Vec::new();
        assert!(idx.collect(0, 15, &mut out));
        assert_eq!(out.len(), 2);
        let mut out = Vec::new();
        assert!(!idx.collect(6, 100, &mut out));
        assert_eq!(out, vec![entry(2, 7, 9, 20), entry(3, 21, 25, 26)]);
    }
}
