//! Opening a partition directory: finishing interrupted file transitions,
//! then either a cheap start (after a clean shutdown) or recovery from the
//! recovery point (after a crash).
//!
//! # Clean start
//!
//! With the `.kafka_cleanshutdown` marker present nothing is scanned: each
//! segment's index files get a constant-cost check (whole entries, last
//! entry inside the log) and the log end offset comes from a short scan of
//! the active segment after its last index entry. Index entries are loaded
//! lazily on first use, so opening gigabytes of log takes milliseconds.
//!
//! # Recovery
//!
//! Without the marker, every segment from the one holding the recovery
//! point onward is validated batch by batch (framing, CRC, increasing
//! offsets, every record walked). The first invalid byte ends the log:
//! the segment is cut there and later segments are deleted. Indexes of
//! recovered segments are rebuilt, and epoch entries past the new end go.
//!
//! # Interrupted transitions
//!
//! `.cleaned` and `.deleted` files are removed. A `.log.swap` file means
//! compaction committed: the old segments it replaces (those whose base
//! offset falls in its offset range) are removed and it is renamed live and
//! recovered (its `.txnindex.swap` goes live with it; other index swaps are
//! dropped and rebuilt).
//!
//! # Producer state
//!
//! Once the log end is known (after any cut), the producer state is loaded
//! from the newest valid `.snapshot` at or below it and the batches after
//! it are replayed; after a crash the replay starts no later than the first
//! re-validated segment and rebuilds those segments' `.txnindex`. Compaction renames `.cleaned` to `.swap` only once the file is
//! complete and fsynced, so either the old or the new segment set survives.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::background::Background;
use crate::checkpoint::{sync_dir, LeaderEpochCheckpointFile, PartitionMetadataFile};
use crate::config::{LogConfig, TopicPartition};
use crate::epoch_cache::LeaderEpochCache;
use crate::error::{Result, StorageError};
use crate::file_names::{
    SegmentFileKind, SegmentPath, Transition, LEADER_EPOCH_CHECKPOINT, PARTITION_METADATA,
    TMP_SUFFIX,
};
use crate::log::{roll_jitter, Log, LogState};
use crate::log_dir::DirState;
use crate::now_ms;
use crate::segment::{BatchReader, Next, Segment};

/// What the manager knows about a partition before opening it.
pub(crate) struct LoadParams {
    pub tp: TopicPartition,
    pub dir: PathBuf,
    pub config: LogConfig,
    pub dir_state: Arc<DirState>,
    pub background: Arc<Background>,
    pub clean_shutdown: bool,
    pub recovery_point: Option<i64>,
    pub log_start_offset: Option<i64>,
    pub high_watermark: Option<i64>,
    pub cleaner_offset: Option<i64>,
}

fn io_err(dir: &Path, context: String, e: io::Error) -> StorageError {
    StorageError::io(context, dir, e)
}

fn remove_segment_files(path: &SegmentPath) -> io::Result<()> {
    for p in [
        Ok(path.clone()),
        path.to_index(),
        path.to_time_index(),
        path.to_txn_index(),
    ] {
        let p = p.map_err(io::Error::other)?.path();
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Offset after the last whole batch of a file, by header scan.
fn scan_next_offset(path: &Path) -> io::Result<Option<i64>> {
    let file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut reader = BatchReader::new(&file, 0, len);
    let mut next = None;
    while let Next::Header(_, h) = reader.next_header()? {
        next = Some(h.next_offset());
    }
    Ok(next)
}

/// Finishes interrupted renames and removes leftovers; returns the live
/// `.log` files by base offset and those that must be recovered.
fn tidy_dir(dir: &Path) -> io::Result<(BTreeMap<i64, SegmentPath>, BTreeSet<i64>)> {
    let mut logs = BTreeMap::new();
    let mut swaps = Vec::new();
    let mut indexes = Vec::new();
    let mut txn_swaps: Vec<SegmentPath> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.ends_with(TMP_SUFFIX) {
            fs::remove_file(&path)?;
            continue;
        }
        let Some(seg) = SegmentPath::parse(&path) else {
            continue;
        };
        match (seg.transition(), seg.kind()) {
            (Transition::Deleted | Transition::Cleaned, _) => fs::remove_file(&path)?,
            (Transition::Swap, SegmentFileKind::Log) => swaps.push(seg),
            // Aborted transactions cannot be rebuilt from compacted data:
            // a committed swap keeps its transaction index.
            (Transition::Swap, SegmentFileKind::TxnIndex) => txn_swaps.push(seg),
            (Transition::Swap, _) => fs::remove_file(&path)?,
            (Transition::Live, SegmentFileKind::Log) => {
                logs.insert(seg.base_offset(), seg);
            }
            (Transition::Live, _) => indexes.push(seg),
        }
    }
    let mut recover = BTreeSet::new();
    swaps.sort_by_key(|s| s.base_offset());
    for swap in swaps {
        let base = swap.base_offset();
        let next = scan_next_offset(&swap.path())?.unwrap_or(base);
        let end = next.max(base + 1);
        let replaced: Vec<i64> = logs.range(base..end).map(|(b, _)| *b).collect();
        for b in replaced {
            if let Some(old) = logs.remove(&b) {
                tracing::info!(segment = %old, "removing a segment replaced by an interrupted compaction swap");
                remove_segment_files(&old)?;
            }
        }
        let live = swap.to_live().map_err(io::Error::other)?;
        remove_segment_files(&live)?;
        fs::rename(swap.path(), live.path())?;
        if let Some(k) = txn_swaps.iter().position(|t| t.base_offset() == base) {
            let txn = txn_swaps.swap_remove(k);
            let to = txn.to_live().map_err(io::Error::other)?;
            fs::rename(txn.path(), to.path())?;
        }
        tracing::info!(segment = %live, "completed an interrupted compaction swap");
        recover.insert(base);
        logs.insert(base, live);
    }
    for orphan in txn_swaps {
        fs::remove_file(orphan.path())?;
    }
    for index in indexes {
        if !logs.contains_key(&index.base_offset()) {
            match fs::remove_file(index.path()) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok((logs, recover))
}

impl Log {
    /// Creates a brand-new partition directory with an empty first segment.
    pub(crate) fn create_new(
        tp: TopicPartition,
        dir: PathBuf,
        topic_id: uuid::Uuid,
        config: LogConfig,
        dir_state: Arc<DirState>,
        background: Arc<Background>,
    ) -> Result<Arc<Log>> {
        let ctx = |what: &str| format!("{what} for {tp}");
        fs::create_dir_all(&dir)
            .map_err(|e| io_err(dir_state.path(), ctx("creating the partition dir"), e))?;
        PartitionMetadataFile::new(dir.join(PARTITION_METADATA)).write(topic_id)?;
        let epochs = LeaderEpochCache::load(LeaderEpochCheckpointFile::new(
            dir.join(LEADER_EPOCH_CHECKPOINT),
        ))?;
        let segment = Segment::create(&dir, 0, &config, now_ms(), roll_jitter(&config))
            .map_err(|e| io_err(dir_state.path(), ctx("creating the first segment"), e))?;
        sync_dir(&dir)
            .map_err(|e| io_err(dir_state.path(), ctx("syncing the partition dir"), e))?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)
                .map_err(|e| io_err(dir_state.path(), ctx("syncing the log dir"), e))?;
        }
        Ok(Log::from_state(LogState {
            tp,
            topic_id,
            dir,
            dir_state,
            config,
            segments: vec![Arc::new(segment)],
            log_start: 0,
            log_end: 0,
            high_watermark: 0,
            recovery_point: 0,
            epochs,
            first_dirty_offset: -1,
            background,
        }))
    }

    /// Opens an existing partition directory, recovering it if needed.
    pub(crate) fn load(params: LoadParams) -> Result<Arc<Log>> {
        let LoadParams {
            tp,
            dir,
            config,
            dir_state,
            background,
            clean_shutdown,
            recovery_point,
            log_start_offset,
            high_watermark,
            cleaner_offset,
        } = params;
        let err = |context: String, e: io::Error| io_err(dir_state.path(), context, e);
        let started = std::time::Instant::now();
        let topic_id = PartitionMetadataFile::new(dir.join(PARTITION_METADATA))
            .read()?
            .unwrap_or(uuid::Uuid::nil());
        let mut epochs = match LeaderEpochCache::load(LeaderEpochCheckpointFile::new(
            dir.join(LEADER_EPOCH_CHECKPOINT),
        )) {
            Ok(cache) => cache,
            Err(StorageError::Corrupt(why)) => {
                tracing::warn!(log = %tp, "ignoring a corrupt leader epoch checkpoint: {why}");
                let file = LeaderEpochCheckpointFile::new(dir.join(LEADER_EPOCH_CHECKPOINT));
                file.write(&[])?;
                LeaderEpochCache::load(file)?
            }
            Err(e) => return Err(e),
        };
        let (logs, must_recover) =
            tidy_dir(&dir).map_err(|e| err(format!("tidying {}", dir.display()), e))?;
        let now = now_ms();
        let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(logs.len().max(1));
        for path in logs.into_values() {
            let seg = Segment::open(path.clone(), &config, now, roll_jitter(&config))
                .map_err(|e| err(format!("opening {path}"), e))?;
            segments.push(Arc::new(seg));
        }
        let mut epochs_changed = false;
        if segments.is_empty() {
            let base = log_start_offset.unwrap_or(0).max(0);
            let seg = Segment::create(&dir, base, &config, now, roll_jitter(&config))
                .map_err(|e| err(format!("creating the first segment of {tp}"), e))?;
            segments.push(Arc::new(seg));
        }
        let recover_from = if clean_shutdown {
            usize::MAX
        } else {
            let rp = recovery_point.unwrap_or(0);
            segments
                .partition_point(|s| s.base_offset() <= rp)
                .saturating_sub(1)
        };
        // Crash recovery re-validates from here: the transaction indexes of
        // these segments are rebuilt by replaying them.
        let rebuild_txn_from = segments.get(recover_from).map(|s| s.base_offset());
        let mut log_end = None;
        let mut cut_after = None;
        let mut min_offset = 0i64;
        let mut recovered = BTreeSet::new();
        for (i, seg) in segments.iter().enumerate() {
            let recover = i >= recover_from || must_recover.contains(&seg.base_offset());
            if !recover {
                if let Err(why) = seg.check_indexes() {
                    tracing::warn!(segment = %seg.path(), "rebuilding indexes: {why}");
                    if seg.rebuild_indexes().is_err() {
                        // The data itself is bad: fall through to recovery.
                    } else {
                        min_offset = seg.base_offset();
                        continue;
                    }
                } else {
                    min_offset = seg.base_offset();
                    continue;
                }
            }
            let min = min_offset.max(seg.base_offset());
            recovered.insert(i);
            let outcome = seg
                .recover(min, |h| {
                    let epoch = h.partition_leader_epoch;
                    if epoch >= 0 && epochs.latest_epoch().is_none_or(|l| epoch > l) {
                        epochs_changed |= epochs.assign(epoch, h.base_offset);
                    }
                })
                .map_err(|e| err(format!("recovering {}", seg.path()), e))?;
            if let Some(next) = outcome.next_offset {
                min_offset = next;
                log_end = Some(next);
            }
            if outcome.truncated_bytes > 0 {
                tracing::warn!(
                    segment = %seg.path(),
                    bytes = outcome.truncated_bytes,
                    kept = outcome.valid_bytes,
                    "recovery cut a torn or corrupt tail"
                );
                cut_after = Some(i);
                break;
            }
        }
        if let Some(i) = cut_after {
            for seg in segments.drain(i + 1..) {
                tracing::warn!(segment = %seg.path(), "deleting a segment after a corrupt tail");
                remove_segment_files(seg.path())
                    .map_err(|e| err(format!("deleting {}", seg.path()), e))?;
            }
        }
        let Some(active) = segments.last().cloned() else {
            return Err(StorageError::Corrupt(format!("{tp} has no segments")));
        };
        let log_end = if active.size() == 0 {
            active.base_offset()
        } else if recovered.contains(&(segments.len() - 1)) {
            log_end.unwrap_or(active.base_offset())
        } else {
            match active.read_next_offset() {
                Ok(next) => next.unwrap_or(active.base_offset()),
                Err(_) => {
                    let outcome = active
                        .recover(active.base_offset(), |_| {})
                        .map_err(|e| err(format!("recovering {}", active.path()), e))?;
                    outcome.next_offset.unwrap_or(active.base_offset())
                }
            }
        };
        let first_base = segments.first().map_or(0, |s| s.base_offset());
        let mut log_start = log_start_offset.unwrap_or(first_base).max(first_base);
        let recovery_point = if clean_shutdown {
            log_end
        } else {
            recovery_point
                .unwrap_or(0)
                .clamp(log_start.min(log_end), log_end)
        };
        if epochs.truncate_from_end(log_end) {
            epochs_changed = true;
        }
        let log = if log_start > log_end {
            // DeleteRecords moved the start past data a crash then lost.
            tracing::warn!(log = %tp, log_start, log_end, "log start is past the recovered end; restarting the log there");
            log_start = log_start.max(0);
            let log = Log::from_state(LogState {
                tp: tp.clone(),
                topic_id,
                dir,
                dir_state,
                config,
                segments,
                log_start: log_end,
                log_end,
                high_watermark: log_end,
                recovery_point,
                epochs,
                first_dirty_offset: cleaner_offset.unwrap_or(-1),
                background,
            });
            log.truncate_fully_locked(log_start)?;
            log
        } else {
            if epochs.truncate_from_start(log_start) {
                epochs_changed = true;
            }
            if epochs_changed || !clean_shutdown {
                epochs.flush()?;
            }
            let hw = high_watermark.unwrap_or(0).clamp(log_start, log_end);
            let log = Log::from_state(LogState {
                tp: tp.clone(),
                topic_id,
                dir,
                dir_state,
                config,
                segments,
                log_start,
                log_end,
                high_watermark: hw,
                recovery_point,
                epochs,
                first_dirty_offset: cleaner_offset.unwrap_or(-1),
                background,
            });
            // After recovery cut the log: the state describes what is left.
            log.load_producer_state(rebuild_txn_from, clean_shutdown)?;
            log
        };
        tracing::info!(
            log = %tp,
            log_start = log.log_start_offset(),
            log_end = log.log_end_offset(),
            segments = log.segment_count(),
            clean_shutdown,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded log"
        );
        Ok(log)
    }
}
