//! What the offset and time indexes share: fixed-size big-endian entries
//! kept in memory (loaded lazily from the file on first use) and appended to
//! the file incrementally when the segment is flushed, rolled or closed.
//!
//! Kafka memory-maps its index files; Millrace keeps the entries of indexes
//! in use in memory and writes them with `pwrite`, which needs no unsafe code
//! and gives the same file contents. An index is only trusted after a clean
//! shutdown or below the recovery point; everything after it is rebuilt from
//! the log during recovery, so an index file never needs to be fsynced
//! before the data it describes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// One fixed-size index entry.
pub(crate) trait IndexEntry: Copy + std::fmt::Debug {
    /// Bytes per entry on disk.
    const SIZE: usize;
    /// Encodes into `out` (exactly `SIZE` bytes).
    fn encode(&self, out: &mut [u8]);
    /// Decodes from `buf` (exactly `SIZE` bytes).
    fn decode(buf: &[u8]) -> Self;
}

/// The entries of one index file and how many of them are on disk.
#[derive(Debug)]
pub(crate) struct IndexFile<E: IndexEntry> {
    path: PathBuf,
    entries: Option<Vec<E>>,
    persisted: usize,
    retired: bool,
}

impl<E: IndexEntry> IndexFile<E> {
    /// An index whose file will be read on first use.
    pub(crate) fn lazy(path: PathBuf) -> Self {
        IndexFile {
            path,
            entries: None,
            persisted: 0,
            retired: false,
        }
    }

    /// An index with known entries, `persisted` of which are in the file.
    pub(crate) fn loaded(path: PathBuf, entries: Vec<E>, persisted: usize) -> Self {
        IndexFile {
            path,
            entries: Some(entries),
            persisted,
            retired: false,
        }
    }

    /// The index file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the entries are in memory.
    pub(crate) fn is_loaded(&self) -> bool {
        self.entries.is_some()
    }

    /// The entries; `None` until [`IndexFile::load`] or [`IndexFile::replace`].
    pub(crate) fn entries(&self) -> Option<&[E]> {
        self.entries.as_deref()
    }

    /// Reads and validates the file (sizes, increasing relative offsets).
    /// `Err` describes why the file cannot be trusted; the caller rebuilds.
    pub(crate) fn load(&mut self, valid: impl Fn(&E, Option<&E>) -> bool) -> Result<(), String> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(format!("{} is missing", self.path.display()))
            }
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
        };
        if !bytes.len().is_multiple_of(E::SIZE) {
            return Err(format!(
                "{} has {} bytes, not a multiple of {}",
                self.path.display(),
                bytes.len(),
                E::SIZE
            ));
        }
        let mut entries: Vec<E> = Vec::with_capacity(bytes.len() / E::SIZE);
        for chunk in bytes.chunks_exact(E::SIZE) {
            let entry = E::decode(chunk);
            if !valid(&entry, entries.last()) {
                return Err(format!(
                    "{} entry {} ({entry:?}) is out of order",
                    self.path.display(),
                    entries.len()
                ));
            }
            entries.push(entry);
        }
        self.persisted = entries.len();
        self.entries = Some(entries);
        Ok(())
    }

    /// Replaces all entries (after a rebuild); none of them is on disk yet
    /// and the file will be rewritten by the next persist.
    pub(crate) fn replace(&mut self, entries: Vec<E>) {
        self.entries = Some(entries);
        self.persisted = 0;
    }

    /// Appends an entry in memory.
    pub(crate) fn push(&mut self, entry: E) {
        if let Some(entries) = self.entries.as_mut() {
            entries.push(entry);
        }
    }

    /// Drops entries from `keep` on, in memory and (at the next persist) on disk.
    pub(crate) fn truncate(&mut self, keep: usize) {
        if let Some(entries) = self.entries.as_mut() {
            entries.truncate(keep);
            self.persisted = self.persisted.min(keep);
        }
    }

    /// Stops all further writes (the file was renamed away for deletion).
    pub(crate) fn retire(&mut self) {
        self.retired = true;
    }

    /// Writes the entries not yet on disk and cuts off any stale tail;
    /// fsyncs when `sync`.
    pub(crate) fn persist(&mut self, sync: bool) -> io::Result<()> {
        if self.retired {
            return Ok(());
        }
        let Some(entries) = self.entries.as_ref() else {
            return Ok(());
        };
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)?;
        let new = &entries[self.persisted..];
        if !new.is_empty() {
            let mut buf = vec![0u8; new.len() * E::SIZE];
            for (entry, chunk) in new.iter().zip(buf.chunks_exact_mut(E::SIZE)) {
                entry.encode(chunk);
            }
            file.write_all_at(&buf, (self.persisted * E::SIZE) as u64)?;
        }
        let len = (entries.len() * E::SIZE) as u64;
        if file.metadata()?.len() != len {
            file.set_len(len)?;
        }
        if sync {
            file.sync_all()?;
        }
        self.persisted = entries.len();
        Ok(())
    }

    /// Reads just the last entry from the file, for the cheap sanity check
    /// done at start-up after a clean shutdown.
    pub(crate) fn peek_last_entry(path: &Path) -> Result<Option<E>, String> {
        let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let len = file
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len() as usize;
        if !len.is_multiple_of(E::SIZE) {
            return Err(format!(
                "{} has {len} bytes, not a multiple of {}",
                path.display(),
                E::SIZE
            ));
        }
        if len == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; E::SIZE];
        file.read_exact_at(&mut buf, (len - E::SIZE) as u64)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Some(E::decode(&buf)))
    }
}
