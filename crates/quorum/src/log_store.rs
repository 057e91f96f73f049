//! The durable Raft log, vote and commit point of one node.
//!
//! # Files (in the quorum data dir)
//!
//! - `raft.log`: checked lines (see [`crate::files`]). The first line is a
//!   [`LogLine::Purged`] header naming the last entry removed by a snapshot;
//!   every following line is one [`LogLine::Entry`], with consecutive
//!   indexes. Appends are fsynced before openraft is told they are durable.
//!   At open, a torn or unverifiable *last* line is truncated away (it was
//!   never acknowledged); damage anywhere else is an error, because dropping
//!   an acknowledged entry silently could lose a committed change.
//! - `vote`, `committed`: the vote and the last known commit point, each
//!   replaced atomically.
//!
//! Purging (after a snapshot) rewrites `raft.log` without the purged prefix
//! and with the new header, and renames it into place, so the header and the
//! entries always agree. Metadata logs are small (a snapshot bounds them), so
//! all entries are also kept in memory, where replication reads them.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File};
use std::io::Write;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, LogIdOptionExt, LogState, RaftLogReader, StorageError, StorageIOError,
    Vote,
};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::files::{self, io_error, StoreError};
use crate::types::{NodeId, TypeConfig};

const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote";
const COMMITTED_FILE: &str = "committed";

/// One line of `raft.log`.
#[derive(Serialize, Deserialize)]
enum LogLine {
    /// The header: the last purged entry, `None` when nothing was purged.
    Purged(Option<LogId<NodeId>>),
    /// A log entry.
    Entry(Entry<TypeConfig>),
}

/// Entries in memory, shared by the store and its readers.
#[derive(Default)]
struct LogCache {
    last_purged: Option<LogId<NodeId>>,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
}

/// The open `raft.log` and where each entry's line starts, for truncation.
struct LogFile {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    len: u64,
    line_starts: BTreeMap<u64, u64>,
}

/// The node's Raft log storage (openraft's `RaftLogStorage`).
pub(crate) struct LogStore {
    dir: PathBuf,
    cache: Arc<RwLock<LogCache>>,
    file: Arc<Mutex<LogFile>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

/// Reads entries for replication tasks while the store keeps appending.
#[derive(Clone)]
pub(crate) struct LogReader {
    cache: Arc<RwLock<LogCache>>,
}

impl LogStore {
    /// Opens (creating if needed) the log in `dir`, truncating a torn tail.
    pub(crate) fn open(dir: &Path) -> Result<LogStore, StoreError> {
        let path = dir.join(LOG_FILE);
        if !path.exists() {
            let header =
                files::encode_line(&LogLine::Purged(None)).map_err(|e| StoreError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(e),
                })?;
            files::replace_file(dir, LOG_FILE, &[&header])?;
        }
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        let (cache, line_starts, valid_len) = parse_log(&path, &bytes)?;
        let file = files::open_append(&path)?;
        if valid_len != bytes.len() as u64 {
            tracing::warn!(
                path = %path.display(),
                kept = valid_len,
                dropped = bytes.len() as u64 - valid_len,
                "truncating a torn final raft log entry that was never acknowledged"
            );
            file.set_len(valid_len).map_err(io_error(&path))?;
            file.sync_all().map_err(io_error(&path))?;
        }
        let vote = files::read_checked(&dir.join(VOTE_FILE))?;
        let committed: Option<Option<LogId<NodeId>>> =
            files::read_checked(&dir.join(COMMITTED_FILE))?;
        Ok(LogStore {
            dir: dir.to_path_buf(),
            cache: Arc::new(RwLock::new(cache)),
            file: Arc::new(Mutex::new(LogFile {
                dir: dir.to_path_buf(),
                path,
                file,
                len: valid_len,
                line_starts,
            })),
            vote,
            committed: committed.flatten(),
        })
    }

    /// Runs file work off the async threads; openraft awaits each storage
    /// call before the next, which keeps writes in order.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut LogFile) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || work(&mut file.lock()))
            .await
            .map_err(|e| StoreError::Io {
                path: self.dir.join(LOG_FILE),
                source: std::io::Error::other(e),
            })?
    }
}

/// Parses `raft.log`: the entries, where each line starts, and how many
/// leading bytes are valid (the rest is a torn tail to cut).
fn parse_log(path: &Path, bytes: &[u8]) -> Result<(LogCache, BTreeMap<u64, u64>, u64), StoreError> {
    let corrupt = |line: usize, reason: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("line {line}: {reason}"),
    };
    let mut cache = LogCache::default();
    let mut line_starts = BTreeMap::new();
    let mut position = 0usize;
    let mut number = 0usize;
    let mut next_index = None;
    while position < bytes.len() {
        number += 1;
        let rest = &bytes[position..];
        let newline = rest.iter().position(|&b| b == b'\n');
        let body = &rest[..newline.unwrap_or(rest.len())];
        let parsed = match newline {
            Some(_) => files::decode_line::<LogLine>(body),
            None => Err("line is missing its newline".into()),
        };
        let is_last = newline.is_none_or(|n| n + 1 == rest.len());
        match parsed {
            Ok(LogLine::Purged(last_purged)) if number == 1 => {
                cache.last_purged = last_purged;
                next_index = Some(last_purged.next_index());
            }
            Ok(LogLine::Entry(entry)) if number > 1 => {
                let expected = next_index.unwrap_or(0);
                if entry.log_id.index != expected {
                    return Err(corrupt(
                        number,
                        format!(
                            "entry index {} where {expected} was expected",
                            entry.log_id.index
                        ),
                    ));
                }
                next_index = Some(expected + 1);
                line_starts.insert(expected, position as u64);
                cache.entries.insert(expected, entry);
            }
            Ok(_) => return Err(corrupt(number, "header and entries out of place".into())),
            // The header is written by rename, so it cannot be torn.
            Err(reason) if is_last && number > 1 => {
                tracing::debug!(line = number, %reason, "torn raft log tail");
                return Ok((cache, line_starts, position as u64));
            }
            Err(reason) => return Err(corrupt(number, reason)),
        }
        position += body.len() + 1;
    }
    if number == 0 {
        return Err(corrupt(1, "missing header".into()));
    }
    Ok((cache, line_starts, bytes.len() as u64))
}

impl LogFile {
    fn append(&mut self, lines: Vec<(u64, Vec<u8>)>) -> Result<(), StoreError> {
        let before = self.len;
        let mut buffer = Vec::new();
        let mut starts = Vec::with_capacity(lines.len());
        for (index, line) in lines {
            starts.push((index, before + buffer.len() as u64));
            buffer.extend_from_slice(&line);
        }
        let written = self
            .file
            .write_all(&buffer)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            // Leave the file as it was: these entries were not persisted.
            let _ = self.file.set_len(before);
            return Err(StoreError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.len = before + buffer.len() as u64;
        self.line_starts.extend(starts);
        Ok(())
    }

    fn truncate_from(&mut self, index: u64) -> Result<(), StoreError> {
        let Some(&start) = self.line_starts.get(&index) else {
            return Ok(());
        };
        self.file.set_len(start).map_err(io_error(&self.path))?;
        self.file.sync_all().map_err(io_error(&self.path))?;
        self.len = start;
        self.line_starts.split_off(&index);
        Ok(())
    }

    fn rewrite(
        &mut self,
        last_purged: Option<LogId<NodeId>>,
        kept: Vec<(u64, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let header =
            files::encode_line(&LogLine::Purged(last_purged)).map_err(|e| StoreError::Io {
                path: self.path.clone(),
                source: std::io::Error::other(e),
            })?;
        let mut parts: Vec<&[u8]> = vec![&header];
        let mut line_starts = BTreeMap::new();
        let mut len = header.len() as u64;
        for (index, line) in &kept {
            line_starts.insert(*index, len);
            len += line.len() as u64;
            parts.push(line);
        }
        files::replace_file(&self.dir, LOG_FILE, &parts)?;
        self.file = files::open_append(&self.path)?;
        self.len = len;
        self.line_starts = line_starts;
        Ok(())
    }
}

fn encode_entry(entry: &Entry<TypeConfig>) -> Result<Vec<u8>, serde_json::Error> {
    files::encode_line(&LogLine::Entry(entry.clone()))
}

fn encode_error(
    entry: &Entry<TypeConfig>,
) -> impl FnOnce(serde_json::Error) -> StorageError<NodeId> {
    let log_id = entry.log_id;
    move |e| StorageIOError::write_log_entry(log_id, AnyError::new(&e)).into()
}

fn storage_error(
    make: fn(AnyError) -> StorageIOError<NodeId>,
) -> impl FnOnce(StoreError) -> StorageError<NodeId> {
    move |e| make(AnyError::new(&e)).into()
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(self
            .cache
            .read()
            .entries
            .range(range)
            .map(|(_, entry)| entry.clone())
            .collect())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        LogReader {
            cache: self.cache.clone(),
        }
        .try_get_log_entries(range)
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let cache = self.cache.read();
        let last = cache
            .entries
            .last_key_value()
            .map(|(_, entry)| entry.log_id)
            .or(cache.last_purged);
        Ok(LogState {
            last_purged_log_id: cache.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            cache: self.cache.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let dir = self.dir.clone();
        let value = *vote;
        self.blocking(move |_| files::write_checked(&dir, VOTE_FILE, &value))
            .await
            .map_err(storage_error(StorageIOError::write_vote))?;
        self.vote = Some(value);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        if committed == self.committed {
            return Ok(());
        }
        let dir = self.dir.clone();
        self.blocking(move |_| files::write_checked(&dir, COMMITTED_FILE, &committed))
            .await
            .map_err(storage_error(StorageIOError::write))?;
        self.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut lines = Vec::new();
        {
            let mut cache = self.cache.write();
            for entry in entries {
                lines.push((
                    entry.log_id.index,
                    encode_entry(&entry).map_err(encode_error(&entry))?,
                ));
                cache.entries.insert(entry.log_id.index, entry);
            }
        }
        match self.blocking(move |file| file.append(lines)).await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(storage_error(StorageIOError::write_logs)(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.cache.write().entries.split_off(&log_id.index);
        self.blocking(move |file| file.truncate_from(log_id.index))
            .await
            .map_err(storage_error(StorageIOError::write_logs))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let kept = {
            let mut cache = self.cache.write();
            let kept_entries = cache.entries.split_off(&(log_id.index + 1));
            cache.entries = kept_entries;
            if cache.last_purged < Some(log_id) {
                cache.last_purged = Some(log_id);
            }
            let mut kept = Vec::with_capacity(cache.entries.len());
            for (index, entry) in &cache.entries {
                kept.push((*index, encode_entry(entry).map_err(encode_error(entry))?));
            }
            (cache.last_purged, kept)
        };
        self.blocking(move |file| file.rewrite(kept.0, kept.1))
            .await
            .map_err(storage_error(StorageIOError::write_logs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    use crate::types::RecordBatch;

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(RecordBatch { records: vec![] }),
        }
    }

    fn write_entries(store: &LogStore, indexes: std::ops::Range<u64>) {
        let mut cache = store.cache.write();
        let mut lines = Vec::new();
        for i in indexes {
            lines.push((i, encode_entry(&entry(i)).expect("encode")));
            cache.entries.insert(i, entry(i));
        }
        store.file.lock().append(lines).expect("append");
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        store.cache.read().entries.keys().copied().collect()
    }

    #[test]
    fn reopens_entries_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = LogStore::open(dir.path()).expect("open");
            write_entries(&store, 0..3);
        }
        let path = dir.path().join(LOG_FILE);
        let good = fs::read(&path).expect("read");
        let mut torn = good.clone();
        torn.extend_from_slice(b"0badc0de {\"Entry\":{\"log_id\"");
        fs::write(&path, &torn).expect("write");
        let store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(indexes(&store), vec![0, 1, 2]);
        assert_eq!(fs::read(&path).expect("read"), good);
        write_entries(&store, 3..4);
        drop(store);
        let store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(indexes(&store), vec![0, 1, 2, 3]);
    }

    #[test]
    fn damage_before_the_tail_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = LogStore::open(dir.path()).expect("open");
            write_entries(&store, 0..3);
        }
        let path = dir.path().join(LOG_FILE);
        let mut bytes = fs::read(&path).expect("read");
        let header_end = bytes.iter().position(|&b| b == b'\n').expect("header");
        bytes[header_end + 20] ^= 0x01;
        fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            LogStore::open(dir.path()),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[tokio::test]
    async fn truncate_and_purge_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut store = LogStore::open(dir.path()).expect("open");
            write_entries(&store, 0..6);
            store.truncate(entry(4).log_id).await.expect("truncate");
            store.purge(entry(1).log_id).await.expect("purge");
            write_entries(&store, 4..5);
            let state = store.get_log_state().await.expect("state");
            assert_eq!(state.last_purged_log_id, Some(entry(1).log_id));
            assert_eq!(state.last_log_id, Some(entry(4).log_id));
        }
        let mut store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(indexes(&store), vec![2, 3, 4]);
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(entry(1).log_id));
        // Purging past the end (a snapshot ahead of the log) empties it.
        store.purge(entry(9).log_id).await.expect("purge");
        drop(store);
        let mut store = LogStore::open(dir.path()).expect("reopen");
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id, Some(entry(9).log_id));
        assert!(indexes(&store).is_empty());
    }

    #[tokio::test]
    async fn vote_and_commit_point_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut store = LogStore::open(dir.path()).expect("open");
            store.save_vote(&Vote::new(3, 1)).await.expect("vote");
            store
                .save_committed(Some(entry(7).log_id))
                .await
                .expect("committed");
        }
        let mut store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(
            store.read_vote().await.expect("vote"),
            Some(Vote::new(3, 1))
        );
        assert_eq!(
            store.read_committed().await.expect("committed"),
            Some(entry(7).log_id)
        );
    }
}
