//! Idempotent-producer and transaction state of one partition, after
//! Kafka's `ProducerStateManager`, `ProducerAppendInfo` and
//! `ProducerStateEntry`.
//!
//! For every producer id seen in the log the state keeps its epoch, the
//! metadata of its last five batches (for duplicate detection), the last
//! coordinator epoch of its markers and the first offset of its open
//! transaction. From that the log derives the first unstable offset (the
//! oldest open, or completed but not yet replicated, transaction) and so
//! the last stable offset.
//!
//! # Validation
//!
//! A batch is checked against the producer's entry according to its origin
//! (Kafka's `AppendOrigin`):
//!
//! - client (leader append): epoch not older than the producer's, sequence
//!   continuity (`seq == last + 1`, wrapping from `i32::MAX` to 0), sequence
//!   0 for a new epoch of a known producer, no plain batch while a
//!   transaction is open; a producer with no state accepts any sequence
//!   (Kafka 3.7 no longer answers UNKNOWN_PRODUCER_ID from the log);
//! - coordinator (group coordinator batches, transaction markers): epoch
//!   and coordinator epoch only;
//! - replication and replay: nothing is refused.
//!
//! Validation runs on copies of the touched entries before anything is
//! written; the state changes only after the bytes are in the log.
//!
//! # Snapshots (`<20-digit offset>.snapshot`)
//!
//! Kafka's format: `version: i16 = 1`, `crc: u32` (CRC-32C of everything
//! after it), then an `i32` count of entries, each
//! `producer_id: i64, epoch: i16, last_sequence: i32, last_offset: i64,
//! offset_delta: i32, timestamp: i64, coordinator_epoch: i32,
//! current_txn_first_offset: i64` (-1 = none), all big-endian. A snapshot
//! named `N` holds the state after every batch below offset `N`. Only the
//! producer's last batch is kept, as in Kafka.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use millrace_protocol::control::{parse_end_txn_marker_value, ControlType};
use millrace_protocol::records::{Batch, BatchHeader};

use crate::file_names::{parse_snapshot_file_name, snapshot_file_name, tmp_path};

/// How many recent batches per producer are kept for duplicate detection
/// (Kafka's `NUM_BATCHES_TO_RETAIN`, matching the client's max in-flight).
pub(crate) const BATCHES_TO_RETAIN: usize = 5;

/// Kafka's default `producer.id.expiration.ms` (one day).
pub const DEFAULT_PRODUCER_ID_EXPIRATION_MS: i64 = 86_400_000;

/// Why a leader append was refused by producer-state validation; the
/// broker maps each variant to the Kafka error code named on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerStateError {
    /// A sequence gap or a non-zero first sequence of a new epoch:
    /// OUT_OF_ORDER_SEQUENCE_NUMBER.
    #[error("out of order sequence for producer {producer_id}: expected {expected}, received {received}")]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The sequence the log expected.
        expected: i32,
        /// The batch's first sequence.
        received: i32,
    },
    /// A batch or marker from an older producer epoch: INVALID_PRODUCER_EPOCH.
    #[error("producer {producer_id} epoch {received} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        /// The producer.
        producer_id: i64,
        /// The epoch the log knows.
        current: i16,
        /// The epoch of the refused batch.
        received: i16,
    },
    /// UNKNOWN_PRODUCER_ID. Kafka 3.7's log no longer returns it (a producer
    /// without state may start at any sequence); kept so the broker can map
    /// it should a future check need it.
    #[error("unknown producer id {producer_id}")]
    UnknownProducerId {
        /// The producer.
        producer_id: i64,
    },
    /// A batch that does not fit the producer's transaction state (a plain
    /// batch while a transaction is open): INVALID_TXN_STATE.
    #[error("invalid transaction state for producer {producer_id}: {reason}")]
    InvalidTxnState {
        /// The producer.
        producer_id: i64,
        /// What was wrong.
        reason: String,
    },
    /// A marker from an older transaction coordinator epoch:
    /// TRANSACTION_COORDINATOR_FENCED.
    #[error("coordinator epoch {received} for producer {producer_id} is older than {current}")]
    CoordinatorFenced {
        /// The producer.
        producer_id: i64,
        /// The coordinator epoch of the producer's last marker.
        current: i32,
        /// The marker's coordinator epoch.
        received: i32,
    },
}

/// An aborted transaction as fetch reports it (`FetchResponse.AbortedTransactions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTxn {
    /// The producer whose transaction was aborted.
    pub producer_id: i64,
    /// The transaction's first offset; read_committed consumers skip the
    /// producer's transactional batches from here to its abort marker.
    pub first_offset: i64,
}

/// One producer's state, for DescribeProducers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerStateEntry {
    /// The producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub producer_epoch: i16,
    /// Last sequence written (-1 if none in the current epoch).
    pub last_sequence: i32,
    /// Timestamp of its last batch or marker.
    pub last_timestamp: i64,
    /// Coordinator epoch of its last marker (-1 if none).
    pub coordinator_epoch: i32,
    /// First offset of its open transaction on this partition.
    pub current_txn_start_offset: Option<i64>,
}

/// Who is appending, which decides how much is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Client,
    Coordinator,
    Replication,
}

/// Metadata of one appended batch, kept for duplicate detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub last_offset: i64,
    pub offset_delta: i32,
    pub timestamp: i64,
}

impl BatchMeta {
    pub(crate) fn first_offset(&self) -> i64 {
        self.last_offset - i64::from(self.offset_delta)
    }
}

/// A producer's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMeta>,
    pub coordinator_epoch: i32,
    pub txn_first_offset: Option<i64>,
    pub last_timestamp: i64,
}

impl Default for Entry {
    fn default() -> Self {
        Entry {
            epoch: -1,
            batches: VecDeque::new(),
            coordinator_epoch: -1,
            txn_first_offset: None,
            last_timestamp: -1,
        }
    }
}

/// `base + delta` in sequence space (wraps past `i32::MAX` to 0), as
/// Kafka's `DefaultRecordBatch.incrementSequence`.
pub(crate) fn increment_sequence(base: i32, delta: i32) -> i32 {
    if base > i32::MAX - delta {
        delta - (i32::MAX - base) - 1
    } else {
        base + delta
    }
}

fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

impl Entry {
    fn last_seq(&self) -> i32 {
        self.batches.back().map_or(-1, |b| b.last_seq)
    }

    fn set_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }

    /// The retained batch this one duplicates, if any.
    pub(crate) fn find_duplicate(&self, fact: &BatchFacts) -> Option<BatchMeta> {
        if fact.epoch != self.epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq == fact.first_seq && b.last_seq == fact.last_seq)
            .copied()
    }

    fn check_epoch(&self, pid: i64, epoch: i16, origin: Origin) -> Result<(), ProducerStateError> {
        if epoch < self.epoch && origin != Origin::Replication {
            return Err(ProducerStateError::InvalidProducerEpoch {
                producer_id: pid,
                current: self.epoch,
                received: epoch,
            });
        }
        Ok(())
    }

    fn check_sequence(
        &self,
        pid: i64,
        epoch: i16,
        first_seq: i32,
    ) -> Result<(), ProducerStateError> {
        if epoch != self.epoch {
            if first_seq != 0 && self.epoch != -1 {
                return Err(ProducerStateError::OutOfOrderSequence {
                    producer_id: pid,
                    expected: 0,
                    received: first_seq,
                });
            }
        } else {
            let last = self.last_seq();
            if self.epoch != -1 && !in_sequence(last, first_seq) {
                return Err(ProducerStateError::OutOfOrderSequence {
                    producer_id: pid,
                    expected: increment_sequence(last, 1),
                    received: first_seq,
                });
            }
        }
        Ok(())
    }

    /// Checks one batch of this producer against this state without
    /// changing it; see the module docs for what each origin checks.
    pub(crate) fn check(
        &self,
        fact: &BatchFacts,
        origin: Origin,
    ) -> Result<(), ProducerStateError> {
        let pid = fact.producer_id;
        self.check_epoch(pid, fact.epoch, origin)?;
        match fact.control {
            Some(Control::Marker {
                coordinator_epoch, ..
            }) => {
                if self.coordinator_epoch > coordinator_epoch && origin != Origin::Replication {
                    return Err(ProducerStateError::CoordinatorFenced {
                        producer_id: pid,
                        current: self.coordinator_epoch,
                        received: coordinator_epoch,
                    });
                }
            }
            Some(Control::Other) => {}
            None => {
                if origin == Origin::Client {
                    self.check_sequence(pid, fact.epoch, fact.first_seq)?;
                }
                if self.txn_first_offset.is_some() && !fact.transactional {
                    if origin != Origin::Replication {
                        return Err(ProducerStateError::InvalidTxnState {
                            producer_id: pid,
                            reason: format!(
                                "non-transactional batch at offset {} while a transaction is open",
                                fact.first_offset
                            ),
                        });
                    }
                    tracing::warn!(
                        producer_id = pid,
                        offset = fact.first_offset,
                        "replicated a non-transactional batch while a transaction is open"
                    );
                }
            }
        }
        Ok(())
    }

    /// Applies one batch of this producer after [`Entry::check`]. Returns
    /// the transaction it opened or the one a marker completed.
    pub(crate) fn apply(
        &mut self,
        fact: &BatchFacts,
        origin: Origin,
    ) -> Result<Applied, ProducerStateError> {
        self.check(fact, origin)?;
        match fact.control {
            Some(Control::Marker {
                commit,
                coordinator_epoch,
            }) => {
                let completed = self.txn_first_offset.map(|first| CompletedTxn {
                    producer_id: fact.producer_id,
                    first_offset: first,
                    last_offset: fact.first_offset,
                    aborted: !commit,
                });
                self.set_epoch(fact.epoch);
                self.txn_first_offset = None;
                self.coordinator_epoch = coordinator_epoch;
                self.last_timestamp = fact.max_timestamp;
                Ok(Applied::Completed(completed))
            }
            Some(Control::Other) => Ok(Applied::Completed(None)),
            None => {
                self.set_epoch(fact.epoch);
                if self.batches.len() >= BATCHES_TO_RETAIN {
                    self.batches.pop_front();
                }
                self.batches.push_back(BatchMeta {
                    first_seq: fact.first_seq,
                    last_seq: fact.last_seq,
                    last_offset: fact.last_offset,
                    offset_delta: (fact.last_offset - fact.first_offset) as i32,
                    timestamp: fact.max_timestamp,
                });
                self.last_timestamp = fact.max_timestamp;
                if self.txn_first_offset.is_none() && fact.transactional {
                    self.txn_first_offset = Some(fact.first_offset);
                    return Ok(Applied::Started(fact.first_offset));
                }
                Ok(Applied::Completed(None))
            }
        }
    }
}

/// What applying a batch did to the transaction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// A transaction began at this offset.
    Started(i64),
    /// A marker (maybe) completed a transaction; `None` for data batches.
    Completed(Option<CompletedTxn>),
}

/// A transaction ended by a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub aborted: bool,
}

/// What a control batch says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    Marker {
        commit: bool,
        coordinator_epoch: i32,
    },
    /// Unknown control type or empty control batch: no state change.
    Other,
}

/// The facts of one batch the producer state needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchFacts {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub transactional: bool,
    pub control: Option<Control>,
}

impl BatchFacts {
    /// Facts of a batch with a producer id, `None` for plain batches.
    /// `bytes` (the whole batch) is only read for control batches.
    pub(crate) fn of(header: &BatchHeader, bytes: &[u8]) -> Option<BatchFacts> {
        if !header.has_producer_id() {
            return None;
        }
        let control = header.is_control().then(|| control_of(header, bytes));
        let last_seq = if header.base_sequence < 0 {
            -1
        } else {
            increment_sequence(header.base_sequence, header.last_offset_delta)
        };
        Some(BatchFacts {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            first_seq: header.base_sequence,
            last_seq,
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp,
            transactional: header.is_transactional(),
            control,
        })
    }
}

fn control_of(header: &BatchHeader, bytes: &[u8]) -> Control {
    let batch = Batch {
        header: *header,
        bytes,
    };
    let Ok(payload) = batch.records() else {
        return Control::Other;
    };
    let Some(Ok(record)) = payload.iter().next() else {
        return Control::Other;
    };
    let kind = record.key.and_then(ControlType::parse_key);
    let epoch = record.value.and_then(parse_end_txn_marker_value);
    match (kind, epoch) {
        (Some(ControlType::Commit), Some(e)) => Control::Marker {
            commit: true,
            coordinator_epoch: e,
        },
        (Some(ControlType::Abort), Some(e)) => Control::Marker {
            commit: false,
            coordinator_epoch: e,
        },
        _ => Control::Other,
    }
}

/// The producer state of one partition.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProducerStateManager {
    pub producers: HashMap<i64, Entry>,
    /// Open transactions: first offset → producer id.
    pub ongoing: BTreeMap<i64, i64>,
    /// Completed transactions whose marker is not yet below the high
    /// watermark: first offset → (producer id, marker offset).
    pub unreplicated: BTreeMap<i64, (i64, i64)>,
}

impl ProducerStateManager {
    /// Checks `facts` (in order) without changing anything.
    pub(crate) fn validate(
        &self,
        facts: &[BatchFacts],
        origin: Origin,
    ) -> Result<(), ProducerStateError> {
        // The common Produce request: one batch, checked in place.
        if let [fact] = facts {
            return match self.producers.get(&fact.producer_id) {
                Some(entry) => entry.check(fact, origin),
                None => Entry::default().check(fact, origin),
            };
        }
        let mut touched: HashMap<i64, Entry> = HashMap::new();
        for fact in facts {
            let entry = touched.entry(fact.producer_id).or_insert_with(|| {
                self.producers
                    .get(&fact.producer_id)
                    .cloned()
                    .unwrap_or_default()
            });
            entry.apply(fact, origin)?;
        }
        Ok(())
    }

    /// Applies batches already in the log (never refuses). Completed
    /// transactions come back with the LSO to record for an abort.
    pub(crate) fn apply(&mut self, facts: &[BatchFacts], hw: i64) -> Vec<(CompletedTxn, i64)> {
        let mut completed = Vec::new();
        for fact in facts {
            let entry = self.producers.entry(fact.producer_id).or_default();
            match entry.apply(fact, Origin::Replication) {
                Ok(Applied::Started(first)) => {
                    self.ongoing.insert(first, fact.producer_id);
                }
                Ok(Applied::Completed(Some(txn))) => {
                    let lso = self
                        .ongoing
                        .iter()
                        .find(|(_, pid)| **pid != txn.producer_id)
                        .map_or(txn.last_offset + 1, |(first, _)| *first);
                    self.ongoing.remove(&txn.first_offset);
                    if txn.last_offset >= hw {
                        self.unreplicated
                            .insert(txn.first_offset, (txn.producer_id, txn.last_offset));
                    }
                    completed.push((txn, lso));
                }
                Ok(Applied::Completed(None)) | Err(_) => {}
            }
        }
        completed
    }

    /// Forgets completed transactions whose marker is below `hw`.
    pub(crate) fn on_high_watermark(&mut self, hw: i64) {
        self.unreplicated.retain(|_, (_, last)| *last >= hw);
    }

    /// Forgets completed transactions wholly below the log start.
    pub(crate) fn on_log_start(&mut self, log_start: i64) {
        self.unreplicated.retain(|_, (_, last)| *last >= log_start);
    }

    /// First offset of the oldest open or unreplicated transaction.
    pub(crate) fn first_unstable_offset(&self) -> Option<i64> {
        let ongoing = self.ongoing.keys().next().copied();
        let unreplicated = self.unreplicated.keys().next().copied();
        match (ongoing, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Removes producers idle for `expiration_ms` with no open transaction
    /// (Kafka's `removeExpiredProducers`). Returns how many went.
    pub(crate) fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.txn_first_offset.is_some() || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// The public view of every producer, by producer id.
    pub(crate) fn entries(&self) -> Vec<ProducerStateEntry> {
        let mut out: Vec<ProducerStateEntry> = self
            .producers
            .iter()
            .map(|(pid, e)| ProducerStateEntry {
                producer_id: *pid,
                producer_epoch: e.epoch,
                last_sequence: e.last_seq(),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.txn_first_offset,
            })
            .collect();
        out.sort_by_key(|e| e.producer_id);
        out
    }

    /// Rebuilds the state from snapshot entries.
    fn from_snapshot(entries: Vec<(i64, Entry)>) -> ProducerStateManager {
        let mut state = ProducerStateManager::default();
        for (pid, entry) in entries {
            if let Some(first) = entry.txn_first_offset {
                state.ongoing.insert(first, pid);
            }
            state.producers.insert(pid, entry);
        }
        state
    }
}

const SNAPSHOT_VERSION: i16 = 1;
const SNAPSHOT_ENTRY_SIZE: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;
/// Bytes before the entry array: version, crc.
const SNAPSHOT_ENTRIES_OFFSET: usize = 6;

/// Encodes a snapshot file.
pub(crate) fn encode_snapshot(state: &ProducerStateManager) -> Vec<u8> {
    let mut pids: Vec<&i64> = state.producers.keys().collect();
    pids.sort();
    let mut out = Vec::with_capacity(10 + pids.len() * SNAPSHOT_ENTRY_SIZE);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(pids.len() as i32).to_be_bytes());
    for pid in pids {
        let Some(e) = state.producers.get(pid) else {
            continue;
        };
        let last = e.batches.back();
        out.extend_from_slice(&pid.to_be_bytes());
        out.extend_from_slice(&e.epoch.to_be_bytes());
        out.extend_from_slice(&last.map_or(-1, |b| b.last_seq).to_be_bytes());
        out.extend_from_slice(&last.map_or(-1i64, |b| b.last_offset).to_be_bytes());
        out.extend_from_slice(&last.map_or(0, |b| b.offset_delta).to_be_bytes());
        out.extend_from_slice(&e.last_timestamp.to_be_bytes());
        out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
        out.extend_from_slice(&e.txn_first_offset.unwrap_or(-1).to_be_bytes());
    }
    let crc = crc32c::crc32c(&out[SNAPSHOT_ENTRIES_OFFSET..]);
    out[2..6].copy_from_slice(&crc.to_be_bytes());
    out
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let (head, rest) = self
            .0
            .split_at_checked(N)
            .ok_or_else(|| "snapshot ends early".to_string())?;
        self.0 = rest;
        head.try_into()
            .map_err(|_| "snapshot ends early".to_string())
    }
    fn i16(&mut self) -> Result<i16, String> {
        self.take::<2>().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Result<i32, String> {
        self.take::<4>().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Result<i64, String> {
        self.take::<8>().map(i64::from_be_bytes)
    }
}

/// Decodes a snapshot file; `Err` describes the corruption.
pub(crate) fn decode_snapshot(bytes: &[u8]) -> Result<ProducerStateManager, String> {
    let mut c = Cursor(bytes);
    let version = c.i16()?;
    if version != SNAPSHOT_VERSION {
        return Err(format!("unknown snapshot version {version}"));
    }
    let crc = c.take::<4>().map(u32::from_be_bytes)?;
    let computed = crc32c::crc32c(c.0);
    if crc != computed {
        return Err(format!(
            "snapshot crc {crc:#x} does not match {computed:#x}"
        ));
    }
    let count = c.i32()?;
    if count < 0 || count as usize * SNAPSHOT_ENTRY_SIZE != c.0.len() {
        return Err(format!(
            "snapshot claims {count} entries but holds {} bytes",
            c.0.len()
        ));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let pid = c.i64()?;
        let epoch = c.i16()?;
        let last_seq = c.i32()?;
        let last_offset = c.i64()?;
        let offset_delta = c.i32()?;
        let timestamp = c.i64()?;
        let coordinator_epoch = c.i32()?;
        let txn_first = c.i64()?;
        let mut entry = Entry {
            epoch,
            batches: VecDeque::new(),
            coordinator_epoch,
            txn_first_offset: (txn_first >= 0).then_some(txn_first),
            last_timestamp: timestamp,
        };
        if last_offset >= 0 {
            let first_seq = if last_seq < 0 {
                -1
            } else {
                // Kafka's decrementSequence.
                let d = offset_delta.max(0);
                if last_seq < d {
                    i32::MAX - (d - last_seq) + 1
                } else {
                    last_seq - d
                }
            };
            entry.batches.push_back(BatchMeta {
                first_seq,
                last_seq,
                last_offset,
                offset_delta: offset_delta.max(0),
                timestamp,
            });
        }
        entries.push((pid, entry));
    }
    Ok(ProducerStateManager::from_snapshot(entries))
}

/// Snapshot files of a partition dir by offset.
pub(crate) fn list_snapshots(dir: &Path) -> io::Result<BTreeMap<i64, PathBuf>> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if let Some(offset) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_snapshot_file_name)
        {
            out.insert(offset, path);
        }
    }
    Ok(out)
}

/// Writes `<offset>.snapshot` (via a fsynced temp file and a rename).
pub(crate) fn write_snapshot(
    dir: &Path,
    offset: i64,
    state: &ProducerStateManager,
) -> io::Result<()> {
    let path = dir.join(snapshot_file_name(offset));
    let tmp = tmp_path(&path);
    let bytes = encode_snapshot(state);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes snapshot files whose offset satisfies `pred`.
pub(crate) fn delete_snapshots(dir: &Path, pred: impl Fn(i64) -> bool) -> io::Result<()> {
    for (offset, path) in list_snapshots(dir)? {
        if pred(offset) {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn data(pid: i64, epoch: i16, seq: i32, first: i64, count: i32, txn: bool) -> BatchFacts {
        BatchFacts {
            producer_id: pid,
            epoch,
            first_seq: seq,
            last_seq: increment_sequence(seq, count - 1),
            first_offset: first,
            last_offset: first + i64::from(count) - 1,
            max_timestamp: 1000,
            transactional: txn,
            control: None,
        }
    }

    fn marker(pid: i64, epoch: i16, offset: i64, commit: bool, coord: i32) -> BatchFacts {
        BatchFacts {
            producer_id: pid,
            epoch,
            first_seq: -1,
            last_seq: -1,
            first_offset: offset,
            last_offset: offset,
            max_timestamp: 2000,
            transactional: true,
            control: Some(Control::Marker {
                commit,
                coordinator_epoch: coord,
            }),
        }
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert!(in_sequence(i32::MAX, 0));
        assert!(!in_sequence(i32::MAX, 1));
    }

    #[test]
    fn snapshot_round_trips_and_detects_corruption() {
        let mut state = ProducerStateManager::default();
        state.apply(&[data(1, 0, 0, 0, 3, false), data(2, 4, 10, 3, 2, true)], 0);
        state.apply(&[marker(3, 1, 5, true, 7)], 0);
        let bytes = encode_snapshot(&state);
        let back = decode_snapshot(&bytes).unwrap();
        assert_eq!(back.entries(), state.entries());
        assert_eq!(back.ongoing, state.ongoing);
        let dup = back.producers[&2].find_duplicate(&data(2, 4, 10, 3, 2, true));
        assert_eq!(dup.map(|b| b.first_offset()), Some(3));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode_snapshot(&bad).is_err(), "flipped byte {i}");
        }
        assert!(decode_snapshot(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_snapshot(&[]).is_err());
    }

    proptest! {
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_snapshot(&bytes);
        }

        /// Sequential batches are always accepted; any other first
        /// sequence of the same epoch is refused with the expected value.
        #[test]
        fn sequence_continuity(start in 0i32..i32::MAX, counts in proptest::collection::vec(1i32..20, 1..10), bad in any::<i32>()) {
            let mut entry = Entry::default();
            let mut seq = start;
            let mut offset = 0i64;
            for count in &counts {
                let fact = data(9, 0, seq, offset, *count, false);
                entry.apply(&fact, Origin::Client).unwrap();
                seq = increment_sequence(seq, *count);
                offset += i64::from(*count);
            }
            prop_assume!(bad != seq && bad >= 0);
            let err = entry.apply(&data(9, 0, bad, offset, 1, false), Origin::Client).unwrap_err();
            prop_assert_eq!(err, ProducerStateError::OutOfOrderSequence { producer_id: 9, expected: seq, received: bad });
        }
    }
}
