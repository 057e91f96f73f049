//! One partition's log: an ordered list of segments plus the offsets that
//! describe it (log start, log end, high watermark, recovery point) and the
//! leader epoch history.
//!
//! # Concurrency
//!
//! - Appends, truncation, rolls, retention and the commit step of compaction
//!   serialize on `append_lock`.
//! - Readers never take it: they clone the segment list (an `Arc` behind a
//!   short read lock), read the atomics, and `pread` outside any lock.
//!   A segment's visible size moves only after a whole append succeeded, so
//!   readers never see a partial batch.
//! - Truncation rewrites bytes at offsets readers may be reading; it bumps
//!   `generation` (odd while in progress, seqlock style) and a reader whose
//!   read overlapped a truncation retries.
//! - Producer state (`producers`) changes only under `append_lock`: it is
//!   validated before the bytes are written and applied after they are.
//! - fsyncs run under `flush_lock` only (except with `flush.messages`, where
//!   the append itself flushes), so background flushes do not stall appends.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use bytes::Bytes;
use millrace_protocol::records::{
    set_base_offset, set_log_append_time, set_partition_leader_epoch, BatchHeader,
};
use parking_lot::{Mutex, RwLock};

use crate::background::{Background, Task};
use crate::checkpoint::sync_dir;
use crate::config::{LogConfig, TopicPartition};
use crate::epoch_cache::LeaderEpochCache;
use crate::error::{Result, StorageError};
use crate::log_dir::DirState;
use crate::now_ms;
use crate::producer_state::{
    self, AbortedTxn, BatchFacts, Origin, ProducerStateEntry, ProducerStateError,
    ProducerStateManager,
};
use crate::segment::{BatchReader, Next, Segment};
use crate::txn_index::AbortedTxnEntry;
use crate::usage::DiskUsage;

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub first_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// Largest batch max timestamp among the appended batches.
    pub max_timestamp: i64,
    /// Last offset of the batch carrying `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// The LogAppendTime stamped on the batches, if any.
    pub log_append_time: Option<i64>,
    /// Log start offset after the append (the Produce response carries it).
    pub log_start_offset: i64,
    /// Number of batches appended.
    pub batch_count: usize,
    /// Bytes appended.
    pub bytes: usize,
    /// The batch repeated one of the producer's last five batches: nothing
    /// was written and the offsets are those of the original (Kafka answers
    /// such a retry with success and the original offsets).
    pub duplicate: bool,
}

/// What a read returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole record batches, possibly empty.
    pub records: Bytes,
    /// Log start offset at the time of the read.
    pub log_start_offset: i64,
    /// Log end offset at the time of the read.
    pub log_end_offset: i64,
}

/// Answer to a timestamp lookup (ListOffsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampAndOffset {
    /// The record's timestamp.
    pub timestamp: i64,
    /// The record's offset.
    pub offset: i64,
    /// Leader epoch of the record's batch, if it was stamped.
    pub leader_epoch: Option<i32>,
}

/// A partition log. `Send + Sync`; every method takes `&self`.
#[derive(Debug)]
pub struct Log {
    tp: TopicPartition,
    topic_id: Mutex<uuid::Uuid>,
    dir: PathBuf,
    dir_state: Arc<DirState>,
    config: RwLock<LogConfig>,
    append_lock: Mutex<()>,
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    log_start: AtomicI64,
    log_end: AtomicI64,
    high_watermark: AtomicI64,
    recovery_point: AtomicI64,
    generation: AtomicU64,
    pub(crate) epochs: Mutex<LeaderEpochCache>,
    flush_lock: Mutex<()>,
    last_flush_ms: AtomicI64,
    /// Cleaner checkpoint: offsets below it were compacted (-1 = never).
    pub(crate) first_dirty_offset: AtomicI64,
    /// Latest delete horizon the cleaner wrote (tombstones to expire).
    pub(crate) latest_delete_horizon: AtomicI64,
    /// Held while a cleaner works on this log.
    pub(crate) cleaning: Mutex<()>,
    background: Arc<Background>,
    self_ref: Weak<Log>,
    deleted: AtomicBool,
    dir_needs_sync: AtomicBool,
    /// Idempotent-producer and transaction state (changed under `append_lock`).
    producers: Mutex<ProducerStateManager>,
    /// Cached first unstable offset, -1 when every transaction is stable.
    first_unstable: AtomicI64,
    /// The broker-wide storage cap this log counts against (set by the
    /// manager; a log opened on its own has none).
    usage: OnceLock<Arc<DiskUsage>>,
    /// Segment bytes this log has counted in `usage` (changed under
    /// `append_lock`).
    accounted: AtomicU64,
}

/// Everything a freshly opened log starts from.
pub(crate) struct LogState {
    pub tp: TopicPartition,
    pub topic_id: uuid::Uuid,
    pub dir: PathBuf,
    pub dir_state: Arc<DirState>,
    pub config: LogConfig,
    pub segments: Vec<Arc<Segment>>,
    pub log_start: i64,
    pub log_end: i64,
    pub high_watermark: i64,
    pub recovery_point: i64,
    pub epochs: LeaderEpochCache,
    pub first_dirty_offset: i64,
    pub background: Arc<Background>,
}

/// Random `segment.jitter.ms` for one segment, as Kafka computes it.
pub(crate) fn roll_jitter(config: &LogConfig) -> i64 {
    if config.segment_jitter_ms <= 0 {
        return 0;
    }
    let bound = config.segment_jitter_ms.min(config.segment_ms).max(1);
    rand::random_range(0..bound)
}

impl Log {
    pub(crate) fn from_state(state: LogState) -> Arc<Log> {
        Arc::new_cyclic(|weak| Log {
            tp: state.tp,
            topic_id: Mutex::new(state.topic_id),
            dir: state.dir,
            dir_state: state.dir_state,
            config: RwLock::new(state.config),
            append_lock: Mutex::new(()),
            segments: RwLock::new(Arc::new(state.segments)),
            log_start: AtomicI64::new(state.log_start),
            log_end: AtomicI64::new(state.log_end),
            high_watermark: AtomicI64::new(state.high_watermark),
            recovery_point: AtomicI64::new(state.recovery_point),
            generation: AtomicU64::new(0),
            epochs: Mutex::new(state.epochs),
            flush_lock: Mutex::new(()),
            last_flush_ms: AtomicI64::new(now_ms()),
            first_dirty_offset: AtomicI64::new(state.first_dirty_offset),
            latest_delete_horizon: AtomicI64::new(-1),
            cleaning: Mutex::new(()),
            background: state.background,
            self_ref: weak.clone(),
            deleted: AtomicBool::new(false),
            dir_needs_sync: AtomicBool::new(false),
            producers: Mutex::new(ProducerStateManager::default()),
            first_unstable: AtomicI64::new(-1),
            usage: OnceLock::new(),
            accounted: AtomicU64::new(0),
        })
    }

    /// The partition this log stores.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    /// The topic id from `partition.metadata`.
    pub fn topic_id(&self) -> uuid::Uuid {
        *self.topic_id.lock()
    }

    pub(crate) fn set_topic_id(&self, id: uuid::Uuid) {
        *self.topic_id.lock() = id;
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log dir (disk) holding this partition.
    pub fn log_dir(&self) -> &Path {
        self.dir_state.path()
    }

    pub(crate) fn dir_state(&self) -> &Arc<DirState> {
        &self.dir_state
    }

    /// The current topic config.
    pub fn config(&self) -> LogConfig {
        *self.config.read()
    }

    /// Applies a changed topic config; new values take effect on the next
    /// append, roll or retention pass.
    pub fn update_config(&self, config: LogConfig) {
        *self.config.write() = config;
    }

    /// First offset the log holds.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// Offset the next append gets.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end.load(Ordering::Acquire)
    }

    /// Offset up to which data is known fsynced (Kafka's recovery point).
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point.load(Ordering::Acquire)
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments_snapshot().iter().map(|s| s.size()).sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments_snapshot().len()
    }

    /// Base offsets of the segments, oldest first (tests and tooling).
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments_snapshot()
            .iter()
            .map(|s| s.base_offset())
            .collect()
    }

    /// The high watermark the broker last set.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// Sets the high watermark, clamped to `[log_start, log_end]`; returns
    /// the value stored. The manager checkpoints it.
    pub fn update_high_watermark(&self, hw: i64) -> i64 {
        let _g = self.append_lock.lock();
        let hw = hw.clamp(self.log_start_offset(), self.log_end_offset());
        self.high_watermark.store(hw, Ordering::Release);
        let mut state = self.producers.lock();
        state.on_high_watermark(hw);
        self.refresh_unstable(&state);
        hw
    }

    /// The newest leader epoch in the history.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.lock().latest_epoch()
    }

    /// OffsetForLeaderEpoch: Kafka's `LeaderEpochFileCache.endOffsetFor`.
    /// `None` when the answer is undefined (unknown newer epoch, or -1).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let leo = self.log_end_offset();
        self.epochs.lock().end_offset_for(epoch, leo)
    }

    /// The epoch of the leader that appended `offset`.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.epochs.lock().epoch_for_offset(offset)
    }

    /// The epoch history as `(epoch, start offset)` pairs, oldest first.
    pub fn epoch_entries(&self) -> Vec<(i32, i64)> {
        self.epochs
            .lock()
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    pub(crate) fn segments_snapshot(&self) -> Arc<Vec<Arc<Segment>>> {
        self.segments.read().clone()
    }

    pub(crate) fn set_segments(&self, segments: Vec<Arc<Segment>>) {
        *self.segments.write() = Arc::new(segments);
        self.reaccount(0);
    }

    /// Makes this log count against the broker's storage cap, starting
    /// with what it holds now.
    pub(crate) fn attach_usage(&self, usage: Arc<DiskUsage>) {
        let _g = self.append_lock.lock();
        let held = self.size_bytes();
        if self.usage.set(usage.clone()).is_ok() {
            self.accounted.store(held, Ordering::Release);
            usage.add(held);
        }
    }

    /// Gives back everything this log counted (it is being deleted).
    /// Called under `append_lock`, after [`Log::mark_deleted`], so nothing
    /// counts it again.
    pub(crate) fn detach_usage(&self) {
        if let Some(usage) = self.usage.get() {
            usage.release(self.accounted.swap(0, Ordering::AcqRel));
        }
    }

    /// Re-counts this log's segment bytes after its segments changed
    /// (roll, retention, truncation, compaction), settling `reserved`
    /// bytes an append claimed. Under `append_lock`; walks this log's
    /// segments only, never a directory.
    fn reaccount(&self, reserved: u64) {
        let Some(usage) = self.usage.get() else {
            return;
        };
        if self.is_deleted() {
            usage.release(reserved);
            return;
        }
        let now = self.size_bytes();
        let before = self.accounted.swap(now, Ordering::AcqRel);
        let counted = before.saturating_add(reserved);
        if now > counted {
            usage.add(now - counted);
        } else {
            usage.release(counted - now);
        }
    }

    /// Claims room under the storage cap for an append of `bytes`;
    /// refused with [`StorageError::CapReached`] (nothing written).
    fn reserve(&self, bytes: u64) -> Result<u64> {
        if bytes == 0 {
            // Nothing to write: never refused, even above a lowered cap.
            return Ok(0);
        }
        match self.usage.get() {
            Some(usage) if !usage.try_reserve(bytes) => Err(StorageError::CapReached {
                used: usage.used(),
                cap: usage.cap(),
                requested: bytes,
            }),
            Some(_) => Ok(bytes),
            None => Ok(0),
        }
    }

    /// Settles a reservation after an append: a success keeps it as this
    /// log's bytes; a failure re-counts what is really there.
    fn settle<T>(&self, reserved: u64, result: &Result<T>) {
        if reserved == 0 {
            return;
        }
        if result.is_ok() {
            self.accounted.fetch_add(reserved, Ordering::AcqRel);
        } else {
            self.reaccount(reserved);
        }
    }

    pub(crate) fn append_lock(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.append_lock.lock()
    }

    pub(crate) fn background(&self) -> &Arc<Background> {
        &self.background
    }

    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }

    /// Whether the log was deleted (its directory renamed away).
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Fails fast when the dir is offline or the log deleted.
    pub(crate) fn check_usable(&self) -> Result<()> {
        if self.dir_state.is_offline() {
            return Err(StorageError::LogDirOffline(
                self.dir_state.path().to_path_buf(),
            ));
        }
        if self.is_deleted() {
            return Err(StorageError::Io {
                context: format!("using {} after it was deleted", self.tp),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "log deleted"),
            });
        }
        Ok(())
    }

    /// Takes the dir offline on a disk failure; passes every error on.
    pub(crate) fn guard<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            if e.is_disk_failure() && !self.is_deleted() {
                self.dir_state.mark_offline(format!("{}: {e}", self.tp));
            }
        }
        result
    }

    pub(crate) fn io_err(&self, context: impl Into<String>, e: std::io::Error) -> StorageError {
        StorageError::io(context, self.dir_state.path(), e)
    }

    /// Leader append of a client's Produce batches; see the crate docs for
    /// the contract. Patches base offsets, leader epoch and (when given)
    /// LogAppendTime in place, validates batches with a producer id against
    /// the producer state (epoch, sequence, transaction state; refusals are
    /// [`StorageError::Producer`] and write nothing), answers a retried
    /// batch with its original offsets (`duplicate`), then writes the
    /// batches with one write per segment they land in.
    pub fn append_as_leader(
        &self,
        records: &mut [u8],
        leader_epoch: i32,
        log_append_time: Option<i64>,
    ) -> Result<AppendInfo> {
        self.leader_append(records, leader_epoch, log_append_time, Origin::Client)
    }

    /// Leader append by a coordinator (the group coordinator's offset
    /// commits, including TxnOffsetCommit batches carrying a producer id and
    /// epoch without sequence numbers). Only the producer epoch is checked;
    /// transactional batches open a transaction that a marker completes.
    pub fn append_coordinator_batch(
        &self,
        records: &mut [u8],
        leader_epoch: i32,
    ) -> Result<AppendInfo> {
        self.leader_append(records, leader_epoch, None, Origin::Coordinator)
    }

    /// WriteTxnMarkers: appends one end-transaction control batch for
    /// `producer_id`, completing its open transaction here (an abort is
    /// recorded in the aborted-transaction index). Refused with
    /// [`ProducerStateError::InvalidProducerEpoch`] for an epoch older than
    /// the producer's and [`ProducerStateError::CoordinatorFenced`] for a
    /// coordinator epoch older than its last marker's. A marker for a
    /// producer with no open transaction is written anyway, as in Kafka.
    pub fn append_control_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        leader_epoch: i32,
    ) -> Result<AppendInfo> {
        let batch = millrace_protocol::control::end_txn_marker_batch(
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
            now_ms(),
        )
        .map_err(|e| StorageError::Corrupt(format!("building a transaction marker: {e}")))?;
        let mut bytes = batch.to_vec();
        self.leader_append(&mut bytes, leader_epoch, None, Origin::Coordinator)
    }

    fn leader_append(
        &self,
        records: &mut [u8],
        leader_epoch: i32,
        log_append_time: Option<i64>,
        origin: Origin,
    ) -> Result<AppendInfo> {
        self.check_usable()?;
        let _g = self.append_lock.lock();
        let config = self.config();
        let first_offset = self.log_end_offset();
        let mut next = first_offset;
        let mut pos = 0usize;
        let mut facts = Vec::new();
        let mut batches = 0usize;
        while pos < records.len() {
            let header = BatchHeader::parse(&records[pos..])
                .map_err(|e| StorageError::Corrupt(format!("batch at byte {pos}: {e}")))?;
            let size = header.size();
            if pos + size > records.len() || header.last_offset_delta < 0 {
                return Err(StorageError::Corrupt(format!(
                    "batch at byte {pos} is truncated or has a negative offset delta"
                )));
            }
            if origin == Origin::Client && header.has_producer_id() {
                if header.is_control() {
                    return Err(StorageError::Corrupt(
                        "clients may not write control batches".into(),
                    ));
                }
                if header.base_sequence < 0 {
                    return Err(StorageError::Corrupt(format!(
                        "idempotent batch with invalid sequence number {}",
                        header.base_sequence
                    )));
                }
            }
            let batch = &mut records[pos..pos + size];
            set_base_offset(batch, next);
            set_partition_leader_epoch(batch, leader_epoch);
            if let Some(ts) = log_append_time {
                set_log_append_time(batch, ts);
            }
            let mut patched = header;
            patched.base_offset = next;
            if let Some(ts) = log_append_time {
                patched.max_timestamp = ts;
            }
            facts.extend(BatchFacts::of(&patched, batch));
            batches += 1;
            next += i64::from(header.last_offset_delta) + 1;
            pos += size;
        }
        if !facts.is_empty() {
            let state = self.producers.lock();
            if origin == Origin::Client {
                for fact in &facts {
                    let Some(entry) = state.producers.get(&fact.producer_id) else {
                        continue;
                    };
                    let Some(dup) = entry.find_duplicate(fact) else {
                        continue;
                    };
                    if batches == 1 {
                        tracing::debug!(log = %self.tp, producer_id = fact.producer_id, "duplicate batch");
                        return Ok(AppendInfo {
                            first_offset: dup.first_offset(),
                            last_offset: dup.last_offset,
                            max_timestamp: dup.timestamp,
                            offset_of_max_timestamp: dup.last_offset,
                            log_append_time: log_append_time.map(|_| dup.timestamp),
                            log_start_offset: self.log_start_offset(),
                            batch_count: 0,
                            bytes: 0,
                            duplicate: true,
                        });
                    }
                    return Err(StorageError::Producer(
                        ProducerStateError::OutOfOrderSequence {
                            producer_id: fact.producer_id,
                            expected: producer_state::increment_sequence(
                                entry.batches.back().map_or(-1, |b| b.last_seq),
                                1,
                            ),
                            received: fact.first_seq,
                        },
                    ));
                }
            }
            state.validate(&facts, origin)?;
        }
        let reserved = self.reserve(records.len() as u64)?;
        let result = self.append_locked(
            records,
            &config,
            Some(leader_epoch),
            log_append_time,
            &facts,
        );
        self.settle(reserved, &result);
        self.guard(result)
    }

    /// Follower (or replay) append: batches keep their offsets and epochs.
    /// The first batch must start at or after the log end offset (a leader's
    /// compacted log may skip offsets, as Kafka allows) and offsets must
    /// increase; otherwise [`StorageError::InvalidOffset`]. Producer state
    /// and the aborted-transaction index follow the batches without
    /// refusing any (the leader validated them), so a follower that becomes
    /// leader detects duplicates and knows the open transactions.
    pub fn append_as_follower(&self, records: &[u8]) -> Result<AppendInfo> {
        self.check_usable()?;
        let _g = self.append_lock.lock();
        let config = self.config();
        let mut expected = self.log_end_offset();
        let mut pos = 0usize;
        let mut facts = Vec::new();
        while pos < records.len() {
            let header = BatchHeader::parse(&records[pos..])
                .map_err(|e| StorageError::Corrupt(format!("batch at byte {pos}: {e}")))?;
            if pos + header.size() > records.len() || header.last_offset_delta < 0 {
                return Err(StorageError::Corrupt(format!(
                    "batch at byte {pos} is truncated or has a negative offset delta"
                )));
            }
            if header.base_offset < expected {
                return Err(StorageError::InvalidOffset(format!(
                    "follower batch at offset {} but the log expects {expected} or later",
                    header.base_offset
                )));
            }
            expected = header.next_offset();
            facts.extend(BatchFacts::of(&header, &records[pos..pos + header.size()]));
            pos += header.size();
        }
        // Refused before anything is written, so a follower at the cap keeps
        // a log exactly as it was and fetches again once there is room.
        let reserved = self.reserve(records.len() as u64)?;
        let result = self.append_locked(records, &config, None, None, &facts);
        self.settle(reserved, &result);
        self.guard(result)
    }

    fn should_roll(
        &self,
        active: &Segment,
        written: u64,
        header: &BatchHeader,
        config: &LogConfig,
        now: i64,
    ) -> Result<bool> {
        if !active.can_hold(header.last_offset()) {
            return Ok(written > 0 || active.base_offset() != header.base_offset);
        }
        if written == 0 {
            return Ok(false);
        }
        if written + header.size() as u64 > config.segment_bytes || active.index_full(config) {
            return Ok(true);
        }
        let waited = active
            .time_waited_for_roll(now, header.max_timestamp)
            .map_err(|e| self.io_err("reading the first batch of the active segment", e))?;
        Ok(waited > config.segment_ms.saturating_sub(active.roll_jitter_ms()))
    }

    fn append_locked(
        &self,
        records: &[u8],
        config: &LogConfig,
        leader_epoch: Option<i32>,
        log_append_time: Option<i64>,
        facts: &[BatchFacts],
    ) -> Result<AppendInfo> {
        let log_start = self.log_start_offset();
        if records.is_empty() {
            let leo = self.log_end_offset();
            return Ok(AppendInfo {
                first_offset: leo,
                last_offset: leo - 1,
                max_timestamp: -1,
                offset_of_max_timestamp: -1,
                log_append_time,
                log_start_offset: log_start,
                batch_count: 0,
                bytes: 0,
                duplicate: false,
            });
        }
        let now = now_ms();
        let segments = self.segments_snapshot();
        let Some(first_active) = segments.last().cloned() else {
            return Err(StorageError::Corrupt(format!(
                "{} has no segments",
                self.tp
            )));
        };
        first_active
            .ensure_indexes_loaded()
            .map_err(|e| self.io_err("loading the active segment's indexes", e))?;
        let mark = first_active.mark();
        let segments_before = segments.len();
        let mut active = first_active.clone();
        let mut written = active.size();
        let mut rolled: Vec<(Arc<Segment>, u64)> = Vec::new();
        let mut run_start = 0usize;
        let mut pos = 0usize;
        let mut info = AppendInfo {
            first_offset: -1,
            last_offset: -1,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            log_append_time,
            log_start_offset: log_start,
            batch_count: 0,
            bytes: records.len(),
            duplicate: false,
        };
        let mut epoch_changed = false;
        // Copied only when an append changes the epoch history (rare), so
        // the common append allocates nothing.
        let mut epochs_before: Option<Vec<crate::checkpoint::EpochEntry>> = None;
        let outcome: Result<()> = (|| {
            while pos < records.len() {
                let header = BatchHeader::parse(&records[pos..])
                    .map_err(|e| StorageError::Corrupt(e.to_string()))?;
                let pending = (pos - run_start) as u64;
                if self.should_roll(&active, written + pending, &header, config, now)? {
                    if pos > run_start {
                        self.write_run(&active, &records[run_start..pos], written)?;
                        written += pending;
                    }
                    rolled.push((active.clone(), written));
                    active = self.roll_with_written(
                        header.base_offset,
                        config,
                        now,
                        Some(written),
                        facts,
                    )?;
                    written = 0;
                    run_start = pos;
                }
                if info.first_offset < 0 {
                    info.first_offset = header.base_offset;
                }
                info.last_offset = header.last_offset();
                if header.max_timestamp > info.max_timestamp {
                    info.max_timestamp = header.max_timestamp;
                    info.offset_of_max_timestamp = header.last_offset();
                }
                info.batch_count += 1;
                if leader_epoch.is_none() {
                    let epoch = header.partition_leader_epoch;
                    let mut cache = self.epochs.lock();
                    if epoch >= 0 && cache.latest_epoch().is_none_or(|l| epoch > l) {
                        epochs_before.get_or_insert_with(|| cache.entries().to_vec());
                        epoch_changed |= cache.assign(epoch, header.base_offset);
                    }
                }
                pos += header.size();
            }
            if pos > run_start {
                self.write_run(&active, &records[run_start..pos], written)?;
                written += (pos - run_start) as u64;
            }
            if let Some(epoch) = leader_epoch {
                let mut cache = self.epochs.lock();
                let unchanged = cache
                    .entries()
                    .last()
                    .is_some_and(|e| e.epoch == epoch && e.start_offset <= info.first_offset);
                if !unchanged && epoch >= 0 {
                    epochs_before.get_or_insert_with(|| cache.entries().to_vec());
                    epoch_changed |= cache.assign(epoch, info.first_offset);
                }
            }
            if epoch_changed {
                self.epochs.lock().flush()?;
            }
            Ok(())
        })();
        if let Err(e) = outcome {
            self.rollback_append(
                &first_active,
                &mark,
                segments_before,
                epochs_before,
                epoch_changed,
            );
            return Err(e);
        }
        for (segment, size) in &rolled {
            segment.set_size(*size);
        }
        active.set_size(written);
        let leo = info.last_offset + 1;
        // Producer state first: a reader of the log end then never sees a
        // transactional batch without the transaction it opened.
        let committed = self.commit_producer_state(facts);
        self.log_end.store(leo, Ordering::Release);
        committed?;
        if leo - self.recovery_point() >= config.flush_messages {
            self.flush_up_to(leo)?;
        }
        Ok(info)
    }

    fn write_run(&self, segment: &Segment, bytes: &[u8], position: u64) -> Result<()> {
        segment
            .write_at(bytes, position)
            .map_err(|e| self.io_err(format!("appending to {}", segment.path()), e))?;
        segment.index_written(bytes, position);
        Ok(())
    }

    /// Puts the log back exactly as it was before a failed append.
    fn rollback_append(
        &self,
        first_active: &Arc<Segment>,
        mark: &crate::segment::SegmentMark,
        segments_before: usize,
        epochs_before: Option<Vec<crate::checkpoint::EpochEntry>>,
        epoch_changed: bool,
    ) {
        let segments = self.segments_snapshot();
        if segments.len() > segments_before {
            let keep: Vec<Arc<Segment>> = segments[..segments_before].to_vec();
            for seg in &segments[segments_before..] {
                for path in [
                    Ok(seg.path().clone()),
                    seg.path().to_index(),
                    seg.path().to_time_index(),
                ]
                .into_iter()
                .flatten()
                {
                    let _ = std::fs::remove_file(path.path());
                }
            }
            self.set_segments(keep);
        }
        if let Err(e) = first_active.reset_to(mark) {
            self.dir_state
                .mark_offline(format!("{}: cannot undo a failed append: {e}", self.tp));
        }
        if let (true, Some(epochs_before)) = (epoch_changed, epochs_before) {
            let mut cache = self.epochs.lock();
            cache.restore(epochs_before);
            if let Err(e) = cache.flush() {
                tracing::warn!(log = %self.tp, "could not restore the epoch checkpoint: {e}");
            }
        }
        let leo = self.log_end_offset();
        self.recovery_point.fetch_min(leo, Ordering::AcqRel);
        // Snapshots taken at rolls of the failed append describe batches
        // that are gone.
        if let Err(e) = producer_state::delete_snapshots(&self.dir, |o| o > leo) {
            tracing::warn!(log = %self.tp, "could not remove snapshots of a failed append: {e}");
        }
    }

    /// Starts a new active segment at `base_offset`; the old one gets its
    /// final time index entry and an asynchronous fsync.
    fn roll_locked(&self, base_offset: i64, config: &LogConfig, now: i64) -> Result<Arc<Segment>> {
        self.roll_with_written(base_offset, config, now, None, &[])
    }

    /// [`Log::roll_locked`] for an append in progress: `written` is the
    /// active segment's size including the bytes not yet published.
    fn roll_with_written(
        &self,
        base_offset: i64,
        config: &LogConfig,
        now: i64,
        written: Option<u64>,
        pending: &[BatchFacts],
    ) -> Result<Arc<Segment>> {
        self.snapshot_at(base_offset, pending)?;
        let segments = self.segments_snapshot();
        if let Some(active) = segments.last() {
            active
                .finish_active(written.unwrap_or_else(|| active.size()))
                .map_err(|e| self.io_err(format!("finishing {}", active.path()), e))?;
        }
        let segment = Segment::create(&self.dir, base_offset, config, now, roll_jitter(config))
            .map_err(|e| {
                self.io_err(format!("creating segment {base_offset} of {}", self.tp), e)
            })?;
        let segment = Arc::new(segment);
        let mut list: Vec<Arc<Segment>> = segments.as_ref().clone();
        list.push(segment.clone());
        self.set_segments(list);
        self.dir_needs_sync.store(true, Ordering::Release);
        self.background.schedule(Task::Flush {
            log: self.self_ref.clone(),
            up_to: base_offset,
        });
        tracing::debug!(log = %self.tp, base_offset, "rolled a new segment");
        Ok(segment)
    }

    /// Rolls a new segment at the log end offset (no-op if the active
    /// segment is empty).
    pub fn roll(&self) -> Result<()> {
        self.check_usable()?;
        let _g = self.append_lock.lock();
        let result = (|| {
            let segments = self.segments_snapshot();
            if segments.last().is_some_and(|s| s.size() == 0) {
                return Ok(());
            }
            let config = self.config();
            self.roll_locked(self.log_end_offset(), &config, now_ms())
                .map(drop)
        })();
        self.guard(result)
    }

    /// fsyncs everything appended so far and advances the recovery point.
    pub fn flush(&self) -> Result<()> {
        self.check_usable()?;
        self.flush_up_to(self.log_end_offset())
    }

    /// fsyncs the segments holding offsets below `offset`.
    pub(crate) fn flush_up_to(&self, offset: i64) -> Result<()> {
        if self.dir_state.is_offline() || self.is_deleted() {
            return Ok(());
        }
        let _f = self.flush_lock.lock();
        let offset = offset.min(self.log_end_offset());
        let rp = self.recovery_point();
        let result = (|| {
            if offset > rp {
                let segments = self.segments_snapshot();
                for (i, seg) in segments.iter().enumerate() {
                    let next_base = segments.get(i + 1).map_or(i64::MAX, |n| n.base_offset());
                    if seg.base_offset() < offset && next_base > rp && !seg.is_retired() {
                        seg.flush()
                            .map_err(|e| self.io_err(format!("flushing {}", seg.path()), e))?;
                    }
                }
            }
            if self.dir_needs_sync.swap(false, Ordering::AcqRel) {
                if let Err(e) = sync_dir(&self.dir) {
                    self.dir_needs_sync.store(true, Ordering::Release);
                    return Err(self.io_err(format!("fsyncing {}", self.dir.display()), e));
                }
            }
            Ok(())
        })();
        let result = self.guard(result);
        if result.is_ok() && offset > rp {
            self.recovery_point.fetch_max(offset, Ordering::AcqRel);
        }
        self.last_flush_ms.store(now_ms(), Ordering::Release);
        result
    }

    /// When the last flush ran (for `flush.ms`).
    pub(crate) fn last_flush_ms(&self) -> i64 {
        self.last_flush_ms.load(Ordering::Acquire)
    }

    /// Reads whole batches; see the crate docs for the full contract.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<ReadResult> {
        if self.dir_state.is_offline() {
            return Err(StorageError::LogDirOffline(
                self.dir_state.path().to_path_buf(),
            ));
        }
        loop {
            let generation = self.generation.load(Ordering::Acquire);
            if generation % 2 == 1 {
                std::thread::yield_now();
                continue;
            }
            let log_start = self.log_start_offset();
            let log_end = self.log_end_offset();
            if start_offset < log_start || start_offset > log_end {
                return Err(StorageError::OffsetOutOfRange {
                    offset: start_offset,
                    log_start_offset: log_start,
                    log_end_offset: log_end,
                });
            }
            let segments = self.segments_snapshot();
            let mut records = Bytes::new();
            let mut failed = None;
            if start_offset < log_end {
                let first = segments
                    .partition_point(|s| s.base_offset() <= start_offset)
                    .saturating_sub(1);
                for seg in &segments[first..] {
                    match seg.read(
                        start_offset,
                        max_bytes,
                        max_offset,
                        min_one_batch,
                        seg.size(),
                    ) {
                        Ok(Some(bytes)) => {
                            records = bytes;
                            break;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
            }
            if self.generation.load(Ordering::Acquire) != generation {
                continue;
            }
            if let Some(e) = failed {
                return self.guard(Err(self.io_err(format!("reading {}", self.tp), e)));
            }
            return Ok(ReadResult {
                records,
                log_start_offset: self.log_start_offset(),
                log_end_offset: self.log_end_offset(),
            });
        }
    }

    /// Runs a read-only `f` so that a concurrent truncation (which rewrites
    /// bytes readers may be looking at) makes it retry instead of failing.
    fn stable_read<T>(&self, f: impl Fn() -> std::io::Result<T>) -> std::io::Result<T> {
        loop {
            let generation = self.generation.load(Ordering::Acquire);
            if generation % 2 == 1 {
                std::thread::yield_now();
                continue;
            }
            let result = f();
            if self.generation.load(Ordering::Acquire) == generation {
                return result;
            }
        }
    }

    /// The truncation counter (odd while a truncation runs).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// ListOffsets by timestamp; see the crate docs.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<TimestampAndOffset>> {
        self.check_usable()?;
        let found = self.stable_read(|| {
            let log_start = self.log_start_offset();
            let segments = self.segments_snapshot();
            for seg in segments.iter() {
                if seg.size() == 0 || seg.largest_timestamp() < ts {
                    continue;
                }
                if let Some(hit) = seg.find_offset_by_timestamp(ts, log_start, seg.size())? {
                    return Ok(Some(hit));
                }
            }
            Ok(None)
        });
        let found =
            found.map_err(|e| self.io_err(format!("searching {} by timestamp", self.tp), e));
        Ok(self
            .guard(found)?
            .map(|(timestamp, offset, epoch)| TimestampAndOffset {
                timestamp,
                offset,
                leader_epoch: (epoch >= 0).then_some(epoch),
            }))
    }

    /// ListOffsets MAX_TIMESTAMP (KIP-734); see the crate docs.
    pub fn max_timestamp_and_offset(&self) -> Result<Option<TimestampAndOffset>> {
        self.check_usable()?;
        let found = self.stable_read(|| {
            let segments = self.segments_snapshot();
            let mut best: Option<&Arc<Segment>> = None;
            for seg in segments.iter() {
                if seg.size() > 0
                    && seg.max_timestamp() >= 0
                    && best.is_none_or(|b| seg.max_timestamp() > b.max_timestamp())
                {
                    best = Some(seg);
                }
            }
            match best {
                Some(seg) => seg.find_max_timestamp_record(seg.size()),
                None => Ok(None),
            }
        });
        let found = found
            .map_err(|e| self.io_err(format!("searching {} for its max timestamp", self.tp), e));
        Ok(self
            .guard(found)?
            .map(|(timestamp, offset, epoch)| TimestampAndOffset {
                timestamp,
                offset,
                leader_epoch: (epoch >= 0).then_some(epoch),
            }))
    }

    /// DeleteRecords: moves the log start offset to `offset` and deletes the
    /// segments wholly below it. Beyond the high watermark is
    /// [`StorageError::OffsetOutOfRange`]. Returns the new log start offset.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64> {
        self.check_usable()?;
        let _g = self.append_lock.lock();
        let hw = self.high_watermark();
        if offset < 0 || offset > hw {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: self.log_end_offset(),
            });
        }
        let result = (|| {
            if offset > self.log_start_offset() {
                self.log_start.store(offset, Ordering::Release);
                let mut cache = self.epochs.lock();
                if cache.truncate_from_start(offset) {
                    cache.flush()?;
                }
                drop(cache);
                self.delete_log_start_breached_locked()?;
                let first_base = self
                    .segments_snapshot()
                    .first()
                    .map_or(offset, |s| s.base_offset());
                self.after_log_start_moved(first_base)?;
            }
            Ok(self.log_start_offset())
        })();
        self.guard(result)
    }

    /// Applies retention by time and size (for `cleanup.policy=delete`) and
    /// deletes segments wholly below the log start offset. Returns the
    /// number of segments deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        self.check_usable()?;
        let _g = self.append_lock.lock();
        let result = (|| {
            let config = self.config();
            let mut deleted = self.delete_log_start_breached_locked()?;
            if config.cleanup_delete {
                if config.retention_ms >= 0 {
                    let n = self.deletable(|seg, _| {
                        // An empty segment (compaction can leave one) holds
                        // nothing to retain, whatever its mtime says.
                        seg.size() == 0 || now_ms - seg.largest_timestamp() > config.retention_ms
                    });
                    deleted += self.delete_oldest_locked(n, "retention.ms")?;
                }
                if config.retention_bytes >= 0 {
                    let mut excess = self.size_bytes() as i64 - config.retention_bytes;
                    let n = self.deletable(|seg, _| {
                        if excess - seg.size() as i64 >= 0 {
                            excess -= seg.size() as i64;
                            true
                        } else {
                            false
                        }
                    });
                    deleted += self.delete_oldest_locked(n, "retention.bytes")?;
                }
            }
            Ok(deleted)
        })();
        self.guard(result)
    }

    fn delete_log_start_breached_locked(&self) -> Result<usize> {
        let log_start = self.log_start_offset();
        let n = self.deletable(|_, next| next.is_some_and(|n| n.base_offset() <= log_start));
        self.delete_oldest_locked(n, "log start offset")
    }

    /// Kafka's `deletableSegments`: oldest-first while `predicate` holds,
    /// never past the high watermark and never an empty last segment.
    fn deletable(&self, mut predicate: impl FnMut(&Segment, Option<&Segment>) -> bool) -> usize {
        let segments = self.segments_snapshot();
        let hw = self.high_watermark();
        let leo = self.log_end_offset();
        let mut n = 0;
        for (i, seg) in segments.iter().enumerate() {
            let next = segments.get(i + 1).map(|s| s.as_ref());
            let last_and_empty = next.is_none() && seg.size() == 0;
            let upper = next.map_or(leo, |s| s.base_offset());
            if hw >= upper && !last_and_empty && predicate(seg, next) {
                n += 1;
            } else {
                break;
            }
        }
        n
    }

    /// Removes the `count` oldest segments (rolling first if that is all of
    /// them), advancing the log start offset.
    fn delete_oldest_locked(&self, count: usize, reason: &str) -> Result<usize> {
        if count == 0 {
            return Ok(0);
        }
        let config = self.config();
        if count >= self.segments_snapshot().len() {
            self.roll_locked(self.log_end_offset(), &config, now_ms())?;
        }
        let segments = self.segments_snapshot();
        let (gone, keep) = segments.split_at(count);
        let keep = keep.to_vec();
        let gone = gone.to_vec();
        let new_start = keep
            .first()
            .map_or(self.log_end_offset(), |s| s.base_offset());
        self.set_segments(keep);
        if new_start > self.log_start_offset() {
            self.log_start.store(new_start, Ordering::Release);
        }
        let log_start = self.log_start_offset();
        self.high_watermark.fetch_max(log_start, Ordering::AcqRel);
        self.recovery_point.fetch_max(log_start, Ordering::AcqRel);
        {
            let mut cache = self.epochs.lock();
            if cache.truncate_from_start(log_start) {
                cache.flush()?;
            }
        }
        self.after_log_start_moved(new_start)?;
        tracing::info!(log = %self.tp, segments = gone.len(), log_start, "deleting segments ({reason})");
        self.schedule_deletion(&gone, &config)?;
        Ok(gone.len())
    }

    /// Renames segments to `.deleted` and schedules their removal.
    pub(crate) fn schedule_deletion(
        &self,
        segments: &[Arc<Segment>],
        config: &LogConfig,
    ) -> Result<()> {
        let mut paths = Vec::new();
        for seg in segments {
            paths
                .extend(seg.rename_to_deleted().map_err(|e| {
                    self.io_err(format!("renaming {} for deletion", seg.path()), e)
                })?);
        }
        self.dir_needs_sync.store(true, Ordering::Release);
        self.background.schedule(Task::DeleteFiles {
            due_ms: now_ms().saturating_add(config.file_delete_delay_ms.max(0)),
            paths,
        });
        Ok(())
    }

    /// Replication: removes everything at and after `offset` (whole batches:
    /// a batch holding `offset` goes entirely, as in Kafka) and the epoch
    /// entries starting there. A no-op when `offset >= log_end_offset`.
    pub fn truncate_to(&self, offset: i64) -> Result<()> {
        self.check_usable()?;
        if offset < 0 {
            return Err(StorageError::InvalidOffset(format!(
                "cannot truncate to negative offset {offset}"
            )));
        }
        let _g = self.append_lock.lock();
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        let segments = self.segments_snapshot();
        if segments.first().is_none_or(|s| s.base_offset() > offset) {
            let result = self.truncate_fully_locked(offset);
            return self.guard(result);
        }
        let _f = self.flush_lock.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let result = (|| {
            let config = self.config();
            let keep_n = segments.partition_point(|s| s.base_offset() <= offset);
            let (keep, gone) = segments.split_at(keep_n);
            let keep = keep.to_vec();
            let gone = gone.to_vec();
            let Some(active) = keep.last().cloned() else {
                return Err(StorageError::Corrupt("no segment to truncate".into()));
            };
            self.set_segments(keep);
            if !gone.is_empty() {
                self.schedule_deletion(&gone, &config)?;
            }
            active
                .truncate_to(offset)
                .map_err(|e| self.io_err(format!("truncating {}", active.path()), e))?;
            // A batch straddling `offset` went entirely, so the data may now
            // end below it. Start an empty segment at `offset` so the log end
            // survives a restart (recovery takes it from the last segment).
            let data_end = active
                .read_next_offset()
                .map_err(|e| self.io_err(format!("reading the end of {}", active.path()), e))?
                .unwrap_or(active.base_offset());
            if data_end < offset {
                self.roll_locked(offset, &config, now_ms())?;
            }
            self.after_truncation(offset)?;
            for seg in self.segments_snapshot().iter() {
                seg.txn_truncate_to(offset).map_err(|e| {
                    self.io_err(format!("truncating the txn index of {}", seg.path()), e)
                })?;
            }
            // Also the one a roll just took at `offset`: it holds the state
            // of batches that are gone.
            producer_state::delete_snapshots(&self.dir, |o| o >= offset)
                .map_err(|e| self.io_err("removing producer snapshots", e))?;
            self.load_producer_state_locked(None, false)
        })();
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.guard(result)
    }

    fn after_truncation(&self, offset: i64) -> Result<()> {
        self.log_end.store(offset, Ordering::Release);
        self.log_start.fetch_min(offset, Ordering::AcqRel);
        self.high_watermark.fetch_min(offset, Ordering::AcqRel);
        self.recovery_point.fetch_min(offset, Ordering::AcqRel);
        self.reaccount(0);
        let dirty = self.first_dirty_offset.load(Ordering::Acquire);
        if dirty > offset {
            self.first_dirty_offset.store(offset, Ordering::Release);
        }
        let mut cache = self.epochs.lock();
        if cache.truncate_from_end(offset) {
            cache.flush()?;
        }
        tracing::info!(log = %self.tp, offset, "truncated");
        Ok(())
    }

    /// Replication: empties the log and restarts it at `offset`.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<()> {
        self.check_usable()?;
        if offset < 0 {
            return Err(StorageError::InvalidOffset(format!(
                "cannot restart the log at negative offset {offset}"
            )));
        }
        let _g = self.append_lock.lock();
        let result = self.truncate_fully_locked(offset);
        self.guard(result)
    }

    pub(crate) fn truncate_fully_locked(&self, offset: i64) -> Result<()> {
        let _f = self.flush_lock.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let result = (|| {
            let config = self.config();
            let segments = self.segments_snapshot();
            // Move every old segment away first: one may share the new base offset.
            self.schedule_deletion(&segments, &config)?;
            let fresh = Segment::create(&self.dir, offset, &config, now_ms(), roll_jitter(&config))
                .map_err(|e| self.io_err("creating a segment", e))?;
            self.set_segments(vec![Arc::new(fresh)]);
            self.log_end.store(offset, Ordering::Release);
            self.log_start.store(offset, Ordering::Release);
            self.high_watermark.store(offset, Ordering::Release);
            self.recovery_point.store(offset, Ordering::Release);
            self.first_dirty_offset.store(offset, Ordering::Release);
            self.dir_needs_sync.store(true, Ordering::Release);
            let mut cache = self.epochs.lock();
            if cache.clear() {
                cache.flush()?;
            }
            drop(cache);
            {
                let mut state = self.producers.lock();
                *state = ProducerStateManager::default();
                self.refresh_unstable(&state);
            }
            producer_state::delete_snapshots(&self.dir, |_| true)
                .map_err(|e| self.io_err("removing producer snapshots", e))?;
            tracing::info!(log = %self.tp, offset, "truncated fully");
            Ok(())
        })();
        self.generation.fetch_add(1, Ordering::AcqRel);
        result
    }

    /// Clean-shutdown work: final time index entries, index files written,
    /// everything fsynced, recovery point at the log end.
    pub(crate) fn close(&self) -> Result<()> {
        if self.dir_state.is_offline() || self.is_deleted() {
            return Ok(());
        }
        let _g = self.append_lock.lock();
        let result = (|| {
            if let Some(active) = self.segments_snapshot().last() {
                active
                    .finish_active(active.size())
                    .map_err(|e| self.io_err(format!("closing {}", active.path()), e))?;
            }
            self.snapshot_at(self.log_end_offset(), &[])?;
            self.dir_needs_sync.store(true, Ordering::Release);
            self.flush_up_to(self.log_end_offset())?;
            for seg in self.segments_snapshot().iter() {
                seg.persist_indexes()
                    .map_err(|e| self.io_err(format!("writing indexes of {}", seg.path()), e))?;
            }
            Ok(())
        })();
        self.guard(result)
    }
}

/// Producer state, transactions and the last stable offset.
impl Log {
    fn refresh_unstable(&self, state: &ProducerStateManager) {
        self.first_unstable.store(
            state.first_unstable_offset().unwrap_or(-1),
            Ordering::Release,
        );
    }

    /// First offset of the oldest transaction that is still open, or
    /// completed with its marker not yet below the high watermark (Kafka's
    /// `firstUnstableOffset`); `None` when every transaction is stable.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        let v = self.first_unstable.load(Ordering::Acquire);
        (v >= 0).then_some(v)
    }

    /// `min(high watermark, first unstable offset)`: read_committed
    /// fetches stop here.
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        self.first_unstable_offset().map_or(hw, |f| f.min(hw))
    }

    /// Kafka's `collectAbortedTransactions`: every aborted transaction
    /// with `last_offset >= start_offset` and `first_offset <
    /// upper_bound_offset`, searching from the segment holding
    /// `start_offset` onward, for a read_committed fetch response.
    pub fn aborted_transactions(
        &self,
        start_offset: i64,
        upper_bound_offset: i64,
    ) -> Vec<AbortedTxn> {
        let segments = self.segments_snapshot();
        let first = segments
            .partition_point(|s| s.base_offset() <= start_offset)
            .saturating_sub(1);
        let mut found = Vec::new();
        for seg in segments.iter().skip(first) {
            if seg.txn_collect(start_offset, upper_bound_offset, &mut found) {
                break;
            }
        }
        found
            .into_iter()
            .map(|e| AbortedTxn {
                producer_id: e.producer_id,
                first_offset: e.first_offset,
            })
            .collect()
    }

    /// Every aborted transaction in the log, oldest marker first (cleaner).
    pub(crate) fn all_aborted_entries(&self) -> Vec<AbortedTxnEntry> {
        self.segments_snapshot()
            .iter()
            .flat_map(|s| s.txn_entries())
            .collect()
    }

    /// The state of every producer this partition knows (DescribeProducers),
    /// by producer id.
    pub fn producer_states(&self) -> Vec<ProducerStateEntry> {
        self.producers.lock().entries()
    }

    /// Removes producers whose last append is `expiration_ms` or more
    /// before `now_ms` and that have no open transaction
    /// (`producer.id.expiration.ms`). Returns how many were removed.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        let _g = self.append_lock.lock();
        let mut state = self.producers.lock();
        let n = state.expire(now_ms, expiration_ms);
        if n > 0 {
            tracing::debug!(log = %self.tp, expired = n, "expired producer ids");
        }
        n
    }

    /// Writes the producer state after the batches below `offset`:
    /// the applied state plus those of `pending` (an append in progress)
    /// that end below `offset`.
    fn snapshot_at(&self, offset: i64, pending: &[BatchFacts]) -> Result<()> {
        let before: Vec<BatchFacts> = pending
            .iter()
            .filter(|f| f.last_offset < offset)
            .copied()
            .collect();
        let written = if before.is_empty() {
            let state = self.producers.lock();
            producer_state::write_snapshot(&self.dir, offset, &state)
        } else {
            let mut state = self.producers.lock().clone();
            state.apply(&before, self.high_watermark());
            producer_state::write_snapshot(&self.dir, offset, &state)
        };
        written.map_err(|e| self.io_err(format!("writing the producer snapshot at {offset}"), e))
    }

    /// Applies written batches to the producer state and records aborts in
    /// the transaction index of the segment holding each marker.
    fn commit_producer_state(&self, facts: &[BatchFacts]) -> Result<()> {
        if facts.is_empty() {
            return Ok(());
        }
        let completed = {
            let mut state = self.producers.lock();
            let completed = state.apply(facts, self.high_watermark());
            self.refresh_unstable(&state);
            completed
        };
        if completed.iter().all(|(txn, _)| !txn.aborted) {
            return Ok(());
        }
        let segments = self.segments_snapshot();
        for (txn, lso) in completed {
            if !txn.aborted {
                continue;
            }
            let at = segments
                .partition_point(|s| s.base_offset() <= txn.last_offset)
                .saturating_sub(1);
            let Some(seg) = segments.get(at) else {
                continue;
            };
            seg.txn_append(AbortedTxnEntry {
                producer_id: txn.producer_id,
                first_offset: txn.first_offset,
                last_offset: txn.last_offset,
                last_stable_offset: lso,
            })
            .map_err(|e| self.io_err(format!("writing the txn index of {}", seg.path()), e))?;
        }
        Ok(())
    }

    /// After the log start moved and segments below `first_base` went:
    /// their snapshots go too, and transactions wholly below the log start
    /// stop counting as unstable.
    fn after_log_start_moved(&self, first_base: i64) -> Result<()> {
        producer_state::delete_snapshots(&self.dir, |o| o < first_base)
            .map_err(|e| self.io_err("removing producer snapshots", e))?;
        let mut state = self.producers.lock();
        state.on_log_start(self.log_start_offset());
        self.refresh_unstable(&state);
        Ok(())
    }

    /// Rebuilds the producer state: loads the newest readable snapshot at or
    /// below the log end (and at or below `rebuild_index_from`), then
    /// replays the batches after it. With `rebuild_index_from`, the
    /// transaction indexes of the replayed range are rebuilt as well (after
    /// crash recovery or a corrupt `.txnindex`). Takes the append lock.
    ///
    /// After a clean shutdown of a log that has no snapshot at all (written
    /// before producer state existed), only the last two segments are
    /// replayed, as Kafka does, so such a start stays cheap.
    pub(crate) fn load_producer_state(
        &self,
        rebuild_index_from: Option<i64>,
        clean_shutdown: bool,
    ) -> Result<()> {
        let _g = self.append_lock.lock();
        let result = self.load_producer_state_locked(rebuild_index_from, clean_shutdown);
        self.guard(result)
    }

    fn load_producer_state_locked(
        &self,
        rebuild_index_from: Option<i64>,
        clean_shutdown: bool,
    ) -> Result<()> {
        let io = |what: &str, e: std::io::Error| self.io_err(format!("{what} of {}", self.tp), e);
        let leo = self.log_end_offset();
        let segments = self.segments_snapshot();
        let first_base = segments.first().map_or(leo, |s| s.base_offset());
        let corrupt_from = segments
            .iter()
            .filter(|s| s.txn_corrupt())
            .map(|s| s.base_offset())
            .min();
        let rebuild_from = match (rebuild_index_from, corrupt_from) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let limit = rebuild_from.map_or(leo, |r| r.min(leo));
        let snapshots =
            producer_state::list_snapshots(&self.dir).map_err(|e| io("listing snapshots", e))?;
        let bases: std::collections::HashSet<i64> =
            segments.iter().map(|s| s.base_offset()).collect();
        let newest_kept = snapshots.range(..=leo).next_back().map(|(o, _)| *o);
        // Kafka keeps one snapshot per segment plus the newest; anything
        // past the log end describes batches that are gone.
        for (offset, path) in &snapshots {
            let stray = *offset > leo
                || *offset < first_base
                || (!bases.contains(offset) && Some(*offset) != newest_kept);
            if stray {
                let _ = std::fs::remove_file(path);
            }
        }
        let mut state = None;
        let mut start = first_base;
        for (offset, path) in snapshots.range(first_base..=limit).rev() {
            if !path.exists() {
                continue;
            }
            let bytes = std::fs::read(path).map_err(|e| io("reading a snapshot", e))?;
            match producer_state::decode_snapshot(&bytes) {
                Ok(s) => {
                    state = Some(s);
                    start = *offset;
                    break;
                }
                Err(why) => {
                    tracing::warn!(log = %self.tp, snapshot = %path.display(), "ignoring a corrupt producer snapshot: {why}");
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        if state.is_none() && snapshots.is_empty() && clean_shutdown && rebuild_from.is_none() {
            start = segments
                .len()
                .checked_sub(2)
                .and_then(|i| segments.get(i))
                .map_or(first_base, |s| s.base_offset());
        }
        let mut state = state.unwrap_or_default();
        let rebuild_index = rebuild_from.is_some();
        let hw = self.high_watermark();
        for (i, seg) in segments.iter().enumerate() {
            let next = segments.get(i + 1).map_or(i64::MAX, |n| n.base_offset());
            if next <= start {
                continue;
            }
            if rebuild_index {
                seg.txn_truncate_to(start)
                    .map_err(|e| io("truncating a txn index", e))?;
            }
            let size = seg.size();
            let from = if seg.base_offset() < start {
                seg.find_batch(start, size)
                    .map_err(|e| io("finding the replay start", e))?
                    .map_or(size, |(pos, _)| pos)
            } else {
                0
            };
            let mut reader = BatchReader::new(seg.file(), from, size);
            while let Next::Batch(_, header, bytes) = reader
                .next_batch()
                .map_err(|e| io("replaying producer state", e))?
            {
                if header.last_offset() < start {
                    continue;
                }
                if header.base_offset >= leo {
                    break;
                }
                let Some(fact) = BatchFacts::of(&header, bytes) else {
                    continue;
                };
                for (txn, lso) in state.apply(&[fact], hw) {
                    if txn.aborted && rebuild_index {
                        seg.txn_append(AbortedTxnEntry {
                            producer_id: txn.producer_id,
                            first_offset: txn.first_offset,
                            last_offset: txn.last_offset,
                            last_stable_offset: lso,
                        })
                        .map_err(|e| io("rebuilding a txn index", e))?;
                    }
                }
            }
        }
        state.on_log_start(self.log_start_offset());
        tracing::debug!(log = %self.tp, snapshot = start, producers = state.producers.len(), "loaded producer state");
        let mut current = self.producers.lock();
        *current = state;
        self.refresh_unstable(&current);
        Ok(())
    }
}
