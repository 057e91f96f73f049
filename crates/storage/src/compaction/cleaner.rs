//! One cleaning pass: build the offset map, rewrite segment groups, swap
//! them in crash-safely.
//!
//! # Which records survive
//!
//! - A record with a key survives if it is the latest for its key (offset
//!   `>=` the map's) or lies past the end of the map.
//! - A tombstone (null value) that is the latest for its key survives until
//!   its batch's delete horizon (KIP-534): the first pass that keeps it
//!   rewrites its batch with `delete horizon = now + delete.retention.ms`;
//!   a pass after that horizon drops it.
//! - Records with a null key are kept.
//! - Transactions (Kafka's `CleanedTransactionMetadata`): the cleanable
//!   range ends at the first unstable offset, so every transaction in it is
//!   decided. A transactional batch of producer `P` inside an aborted
//!   transaction of `P` (per the transaction indexes: first offset <=
//!   batch offset <= abort marker) is dropped, and its keys never enter the
//!   map, so aborted data cannot shadow committed data. Committed
//!   transactional batches are compacted like plain ones.
//! - Control batches (markers) are copied as-is and never mapped. Kafka
//!   eventually removes a marker whose transaction is gone; keeping them is
//!   harmless and keeps the transaction indexes exact.
//! - A rewritten batch keeps its base offset, last offset (so producer
//!   sequence numbers stay valid), producer fields, transactional flag,
//!   leader epoch, codec and timestamp type (`BatchBuilder::like`). A batch
//!   left with no records is dropped: producer state is rebuilt from the
//!   snapshot taken when its segment was rolled, which predates cleaning.
//! - The cleaned segment's `.txnindex` is the union of its old segments'.
//!
//! # The swap
//!
//! For a group of old segments starting at base offset `B`:
//!
//! 1. write `B.log.cleaned`, `B.index.cleaned`, `B.timeindex.cleaned`; fsync;
//! 2. rename the index files and then the log file to `.swap`, fsync the
//!    directory: **commit point** (recovery completes a swap once
//!    `B.log.swap` exists, and discards `.cleaned` files otherwise);
//! 3. rename the old segments' files to `.deleted`;
//! 4. rename the `.swap` files live, fsync the directory, and replace the
//!    old segments in the in-memory list (under the append lock).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use millrace_protocol::records::{Batch, BatchBuilder, BatchHeader};

use super::offset_map::OffsetMap;
use super::{cleanable, CleanStats};
use crate::checkpoint::sync_dir;
use crate::error::{Result, StorageError};
use crate::file_names::SegmentPath;
use crate::log::Log;
use crate::now_ms;
use crate::segment::{encode_entries, BatchReader, Next, Segment, SegmentIndexWriter};

/// Where a test makes compaction stop, as if the process died there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub(crate) enum CrashPoint {
    /// `.cleaned` files written, nothing renamed.
    #[cfg_attr(not(test), allow(dead_code))]
    AfterCleaned,
    /// `.swap` files in place (committed), old segments untouched.
    #[cfg_attr(not(test), allow(dead_code))]
    AfterSwap,
    /// Old segments renamed `.deleted`, `.swap` files not yet live.
    #[cfg_attr(not(test), allow(dead_code))]
    AfterOldDeleted,
}

fn crashed() -> StorageError {
    StorageError::Corrupt("simulated crash".into())
}

fn keep_as_is(header: &BatchHeader) -> bool {
    header.is_control()
}

/// The aborted transactions of a log, by producer: `(first offset, marker
/// offset)` sorted by first offset.
#[derive(Debug, Default)]
pub(crate) struct Aborted(std::collections::HashMap<i64, Vec<(i64, i64)>>);

impl Aborted {
    pub(crate) fn of(log: &Log) -> Aborted {
        let mut map: std::collections::HashMap<i64, Vec<(i64, i64)>> = Default::default();
        for e in log.all_aborted_entries() {
            map.entry(e.producer_id)
                .or_default()
                .push((e.first_offset, e.last_offset));
        }
        for v in map.values_mut() {
            v.sort_unstable();
        }
        Aborted(map)
    }

    /// Whether this data batch belongs to an aborted transaction.
    pub(crate) fn contains(&self, header: &BatchHeader) -> bool {
        if !header.is_transactional() || header.is_control() {
            return false;
        }
        let Some(txns) = self.0.get(&header.producer_id) else {
            return false;
        };
        let offset = header.base_offset;
        let i = txns.partition_point(|(first, _)| *first <= offset);
        i > 0 && txns[i - 1].1 >= offset
    }
}

fn bad_data(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Enters the keys of one batch into the map.
fn map_batch(
    map: &mut OffsetMap,
    aborted: &Aborted,
    header: &BatchHeader,
    bytes: &[u8],
) -> io::Result<()> {
    if keep_as_is(header) || aborted.contains(header) {
        return Ok(());
    }
    let batch = Batch {
        header: *header,
        bytes,
    };
    let payload = batch.records().map_err(bad_data)?;
    for record in payload.iter() {
        let record = record.map_err(bad_data)?;
        if let Some(key) = record.key {
            map.put(key, header.base_offset + i64::from(record.offset_delta));
        }
    }
    Ok(())
}

/// The filtered form of one batch.
enum Filtered {
    Original,
    Rewritten(Vec<u8>),
    Dropped,
}

struct Filter<'a> {
    map: &'a OffsetMap,
    aborted: &'a Aborted,
    map_end: i64,
    now: i64,
    delete_retention_ms: i64,
    removed: u64,
    max_horizon: i64,
}

impl Filter<'_> {
    fn batch(&mut self, header: &BatchHeader, bytes: &[u8]) -> io::Result<Filtered> {
        if keep_as_is(header) {
            return Ok(Filtered::Original);
        }
        if self.aborted.contains(header) {
            self.removed += header.records_count.max(0) as u64;
            return Ok(Filtered::Dropped);
        }
        let batch = Batch {
            header: *header,
            bytes,
        };
        let payload = batch.records().map_err(bad_data)?;
        let horizon = header.has_delete_horizon().then_some(header.base_timestamp);
        let retain_tombstones = horizon.is_none_or(|h| self.now < h);
        let mut kept = 0usize;
        let mut kept_tombstone = false;
        let mut total = 0usize;
        let mut builder: Option<BatchBuilder> = None;
        let codec = header.compression().map_err(bad_data)?;
        let mut decisions: Vec<bool> = Vec::with_capacity(header.records_count.max(0) as usize);
        for record in payload.iter() {
            let record = record.map_err(bad_data)?;
            total += 1;
            let offset = header.base_offset + i64::from(record.offset_delta);
            let keep = match record.key {
                None => true,
                Some(_) if offset >= self.map_end => true,
                Some(key) => {
                    let latest = self.map.get(key).is_none_or(|o| offset >= o);
                    latest && (record.value.is_some() || retain_tombstones)
                }
            };
            if keep {
                kept += 1;
                kept_tombstone |= record.value.is_none() && record.key.is_some();
            }
            decisions.push(keep);
        }
        self.removed += (total - kept) as u64;
        if kept == 0 {
            return Ok(Filtered::Dropped);
        }
        let new_horizon = match horizon {
            Some(h) => Some(h),
            None if kept_tombstone => Some(self.now.saturating_add(self.delete_retention_ms)),
            None => None,
        };
        if kept == total && horizon == new_horizon {
            return Ok(Filtered::Original);
        }
        for (record, keep) in payload.iter().zip(decisions) {
            let record = record.map_err(bad_data)?;
            if !keep {
                continue;
            }
            let b = builder.get_or_insert_with(|| {
                let b = BatchBuilder::like(header, header.base_offset, codec)
                    .last_offset_delta(header.last_offset_delta);
                match new_horizon {
                    Some(h) => b.delete_horizon(h),
                    None => b,
                }
            });
            b.append(
                header.base_offset + i64::from(record.offset_delta),
                header.base_timestamp + record.timestamp_delta,
                record.key,
                record.value,
                record.header_count,
                record.headers,
            );
        }
        let Some(builder) = builder else {
            return Ok(Filtered::Dropped);
        };
        if let Some(h) = new_horizon {
            self.max_horizon = self.max_horizon.max(h);
        }
        let built = builder.build().map_err(bad_data)?;
        Ok(Filtered::Rewritten(built.to_vec()))
    }
}

/// Groups consecutive segments so each group's output fits one segment.
fn group_segments(
    segments: &[Arc<Segment>],
    next_base: i64,
    max_bytes: u64,
) -> Vec<Vec<Arc<Segment>>> {
    let mut groups: Vec<Vec<Arc<Segment>>> = Vec::new();
    let mut i = 0;
    while i < segments.len() {
        let mut group = vec![segments[i].clone()];
        let mut size = segments[i].size();
        let base = segments[i].base_offset();
        i += 1;
        while i < segments.len() {
            let seg = &segments[i];
            let end = segments.get(i + 1).map_or(next_base, |n| n.base_offset());
            if size + seg.size() > max_bytes || end - 1 - base > i64::from(i32::MAX) {
                break;
            }
            size += seg.size();
            group.push(seg.clone());
            i += 1;
        }
        groups.push(group);
    }
    groups
}

/// Runs a pass; see the module docs.
pub(crate) fn clean(
    log: &Log,
    now: i64,
    dedupe_buffer_bytes: usize,
    crash: Option<CrashPoint>,
) -> Result<Option<CleanStats>> {
    let _cleaning = log.cleaning.lock();
    let generation = log.generation();
    let result = clean_locked(log, now, dedupe_buffer_bytes, crash, generation);
    match result {
        // A truncation cut segments under the cleaner: not a disk failure.
        Err(StorageError::Io { .. }) if log.generation() != generation => Ok(None),
        other => other,
    }
}

fn clean_locked(
    log: &Log,
    now: i64,
    dedupe_buffer_bytes: usize,
    crash: Option<CrashPoint>,
    generation: u64,
) -> Result<Option<CleanStats>> {
    if generation % 2 == 1 {
        return Ok(None);
    }
    let Some(range) = cleanable(log, now) else {
        return Ok(None);
    };
    let io = |what: String, e: io::Error| log.io_err(what, e);
    let segments = log.segments_snapshot();
    let non_active = &segments[..segments.len().saturating_sub(1)];
    // 1. The offset map over [first dirty, first uncleanable).
    let aborted = Aborted::of(log);
    let mut map = OffsetMap::new(dedupe_buffer_bytes);
    let mut map_end = range.first_dirty;
    'segments: for (i, seg) in non_active.iter().enumerate() {
        let next = non_active.get(i + 1).map_or(i64::MAX, |n| n.base_offset());
        if next <= range.first_dirty || seg.base_offset() >= range.first_uncleanable {
            continue;
        }
        let mut reader = BatchReader::new(seg.file(), 0, seg.size());
        loop {
            match reader
                .next_batch()
                .map_err(|e| io(format!("reading {}", seg.path()), e))?
            {
                Next::Batch(_, header, bytes) => {
                    if header.last_offset() < range.first_dirty {
                        continue;
                    }
                    if header.base_offset >= range.first_uncleanable {
                        break 'segments;
                    }
                    let records = header.records_count.max(0) as usize;
                    if records > map.remaining() && map.len() > 0 {
                        break 'segments;
                    }
                    map_batch(&mut map, &aborted, &header, bytes)
                        .map_err(|e| io(format!("mapping {}", seg.path()), e))?;
                    map_end = header.next_offset();
                }
                Next::End | Next::Invalid(..) => break,
                Next::Header(..) => unreachable!(),
            }
        }
        if next <= range.first_uncleanable {
            map_end = map_end.max(next.min(range.first_uncleanable));
        }
    }
    let map_end = map_end.min(range.first_uncleanable);
    if map_end <= range.first_dirty && !range.tombstones_due {
        return Ok(None);
    }
    // 2. Rewrite every non-active segment below the end of the map.
    let log_start = log.log_start_offset();
    let to_clean: Vec<Arc<Segment>> = non_active
        .iter()
        .enumerate()
        .filter(|(i, s)| {
            let next = non_active.get(i + 1).map_or(i64::MAX, |n| n.base_offset());
            s.base_offset() < map_end.max(range.first_dirty) && next > log_start
        })
        .map(|(_, s)| s.clone())
        .collect();
    if to_clean.is_empty() {
        return Ok(None);
    }
    let after = segments
        .get(
            to_clean.len()
                + segments
                    .iter()
                    .position(|s| Arc::ptr_eq(s, &to_clean[0]))
                    .unwrap_or(0),
        )
        .map_or(log.log_end_offset(), |s| s.base_offset());
    let config = log.config();
    let mut stats = CleanStats {
        next_dirty_offset: map_end.max(range.first_dirty),
        ..CleanStats::default()
    };
    let mut filter = Filter {
        map: &map,
        aborted: &aborted,
        map_end,
        now,
        delete_retention_ms: config.delete_retention_ms,
        removed: 0,
        max_horizon: -1,
    };
    for group in group_segments(&to_clean, after, config.segment_bytes.max(1)) {
        if !clean_group(log, &group, &mut filter, &mut stats, crash, generation)? {
            // The log changed under the cleaner; try again next time.
            return Ok(None);
        }
    }
    stats.records_removed = filter.removed;
    log.first_dirty_offset
        .store(stats.next_dirty_offset, Ordering::Release);
    let horizon = filter.max_horizon;
    if horizon >= 0 {
        log.latest_delete_horizon
            .fetch_max(horizon, Ordering::AcqRel);
    } else if range.tombstones_due {
        log.latest_delete_horizon.store(-1, Ordering::Release);
    }
    tracing::info!(log = %log.topic_partition(), ?stats, "compacted");
    Ok(Some(stats))
}

fn clean_group(
    log: &Log,
    group: &[Arc<Segment>],
    filter: &mut Filter<'_>,
    stats: &mut CleanStats,
    crash: Option<CrashPoint>,
    generation: u64,
) -> Result<bool> {
    let Some(first) = group.first() else {
        return Ok(true);
    };
    let io = |what: String, e: io::Error| log.io_err(what, e);
    let config = log.config();
    let base = first.base_offset();
    let dir = log.dir().to_path_buf();
    let live = SegmentPath::log(&dir, base)?;
    let cleaned = live.to_cleaned()?;
    let cleaned_index = cleaned.to_index()?;
    let cleaned_time = cleaned.to_time_index()?;
    let cleaned_txn = cleaned.to_txn_index()?;
    let txn_entries: Vec<crate::txn_index::AbortedTxnEntry> =
        group.iter().flat_map(|s| s.txn_entries()).collect();
    let out = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(cleaned.path())
        .map_err(|e| io(format!("creating {cleaned}"), e))?;
    let result = (|| -> Result<(Vec<_>, Vec<_>, i64, i64)> {
        let mut index = SegmentIndexWriter::new(base, config.index_interval_bytes);
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut position = 0u64;
        let flush_buf = |buf: &mut Vec<u8>, out: &File, position: &mut u64| -> io::Result<()> {
            out.write_all_at(buf, *position)?;
            *position += buf.len() as u64;
            buf.clear();
            Ok(())
        };
        for seg in group {
            stats.bytes_read += seg.size();
            let mut reader = BatchReader::new(seg.file(), 0, seg.size());
            loop {
                let next = reader
                    .next_batch()
                    .map_err(|e| io(format!("reading {}", seg.path()), e))?;
                let (header, bytes) = match next {
                    Next::Batch(_, h, b) => (h, b),
                    Next::End | Next::Invalid(..) => break,
                    Next::Header(..) => unreachable!(),
                };
                let filtered = filter
                    .batch(&header, bytes)
                    .map_err(|e| io(format!("filtering {}", seg.path()), e))?;
                let written: &[u8] = match &filtered {
                    Filtered::Dropped => continue,
                    Filtered::Original => bytes,
                    Filtered::Rewritten(v) => v,
                };
                let written_header = BatchHeader::parse(written)
                    .map_err(|e| StorageError::Corrupt(e.to_string()))?;
                index.add(&written_header, position + buf.len() as u64);
                buf.extend_from_slice(written);
                if buf.len() >= 1 << 20 {
                    flush_buf(&mut buf, &out, &mut position)
                        .map_err(|e| io(format!("writing {cleaned}"), e))?;
                }
            }
        }
        flush_buf(&mut buf, &out, &mut position)
            .map_err(|e| io(format!("writing {cleaned}"), e))?;
        out.sync_all()
            .map_err(|e| io(format!("syncing {cleaned}"), e))?;
        stats.bytes_written += position;
        let (offsets, times, max_ts, max_off) = index.finish();
        let mut files = vec![
            (&cleaned_index, encode_entries(&offsets)),
            (&cleaned_time, encode_entries(&times)),
        ];
        if !txn_entries.is_empty() {
            files.push((&cleaned_txn, crate::txn_index::encode_all(&txn_entries)));
        }
        for (path, bytes) in files {
            let write = || -> io::Result<()> {
                let f = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(path.path())?;
                f.write_all_at(&bytes, 0)?;
                f.sync_all()
            };
            write().map_err(|e| io(format!("writing {path}"), e))?;
        }
        Ok((offsets, times, max_ts, max_off))
    })();
    let (offsets, times, max_ts, max_off) = match result {
        Ok(v) => v,
        Err(e) => {
            for p in [&cleaned, &cleaned_index, &cleaned_time, &cleaned_txn] {
                let _ = fs::remove_file(p.path());
            }
            return Err(e);
        }
    };
    if crash == Some(CrashPoint::AfterCleaned) {
        return Err(crashed());
    }
    // Commit under the append lock: the old segments must still be in place.
    let _g = log.append_lock();
    let current = log.segments_snapshot();
    let Some(at) = current.iter().position(|s| Arc::ptr_eq(s, first)) else {
        tracing::info!(log = %log.topic_partition(), "segments changed during cleaning; discarding the result");
        for p in [&cleaned, &cleaned_index, &cleaned_time, &cleaned_txn] {
            let _ = fs::remove_file(p.path());
        }
        return Ok(false);
    };
    // Truncation rewrites segments in place, so the same segment objects
    // do not prove the same contents: the generation must match too.
    let still_there = group
        .iter()
        .enumerate()
        .all(|(k, s)| current.get(at + k).is_some_and(|c| Arc::ptr_eq(c, s)))
        && at + group.len() < current.len()
        && log.generation() == generation;
    if !still_there {
        for p in [&cleaned, &cleaned_index, &cleaned_time, &cleaned_txn] {
            let _ = fs::remove_file(p.path());
        }
        return Ok(false);
    }
    let swap = cleaned.to_swap()?;
    let mut renames = vec![
        (&cleaned_index, cleaned_index.to_swap()?),
        (&cleaned_time, cleaned_time.to_swap()?),
    ];
    if !txn_entries.is_empty() {
        renames.push((&cleaned_txn, cleaned_txn.to_swap()?));
    }
    renames.push((&cleaned, swap.clone()));
    for (from, to) in &renames {
        fs::rename(from.path(), to.path()).map_err(|e| io(format!("renaming {from}"), e))?;
    }
    sync_dir(&dir).map_err(|e| io(format!("syncing {}", dir.display()), e))?;
    if crash == Some(CrashPoint::AfterSwap) {
        return Err(crashed());
    }
    let mut deleted_paths = Vec::new();
    for seg in group {
        deleted_paths.extend(
            seg.rename_to_deleted()
                .map_err(|e| io(format!("renaming {} for deletion", seg.path()), e))?,
        );
    }
    if crash == Some(CrashPoint::AfterOldDeleted) {
        return Err(crashed());
    }
    for (_, swapped) in &renames {
        let to = swapped.to_live()?;
        fs::rename(swapped.path(), to.path()).map_err(|e| io(format!("renaming {swapped}"), e))?;
    }
    sync_dir(&dir).map_err(|e| io(format!("syncing {}", dir.display()), e))?;
    let segment = Segment::open_with_indexes(
        live.clone(),
        &config,
        now_ms(),
        offsets,
        times,
        max_ts,
        max_off,
    )
    .map_err(|e| io(format!("opening {live}"), e))?;
    segment
        .set_txn_entries(txn_entries)
        .map_err(|e| io(format!("opening {live}"), e))?;
    let mut list: Vec<Arc<Segment>> = Vec::with_capacity(current.len());
    list.extend_from_slice(&current[..at]);
    list.push(Arc::new(segment));
    list.extend_from_slice(&current[at + group.len()..]);
    log.set_segments(list);
    stats.segments_cleaned += group.len();
    log.background()
        .schedule(crate::background::Task::DeleteFiles {
            due_ms: now_ms().saturating_add(config.file_delete_delay_ms.max(0)),
            paths: deleted_paths,
        });
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use millrace_protocol::records::{BatchIter, Compression};

    fn keyed(key: &str, value: &str) -> Vec<u8> {
        let mut b = BatchBuilder::new(0, Compression::None);
        b.append(0, 1, Some(key.as_bytes()), Some(value.as_bytes()), 0, &[]);
        b.build().unwrap().to_vec()
    }

    fn values(log: &Log) -> Vec<(i64, Vec<u8>)> {
        let r = log
            .read(log.log_start_offset(), 1 << 20, i64::MAX, true)
            .unwrap();
        let mut out = Vec::new();
        let mut offset = log.log_start_offset();
        let mut bytes = r.records;
        loop {
            for batch in BatchIter::new(&bytes) {
                let batch = batch.unwrap();
                batch.verify_crc().unwrap();
                for rec in batch.records().unwrap().iter() {
                    let rec = rec.unwrap();
                    out.push((
                        batch.header.base_offset + i64::from(rec.offset_delta),
                        rec.value.unwrap().to_vec(),
                    ));
                }
                offset = batch.header.next_offset();
            }
            if offset >= log.log_end_offset() {
                break;
            }
            bytes = log.read(offset, 1 << 20, i64::MAX, true).unwrap().records;
        }
        out
    }

    fn transitional(dir: &std::path::Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".swap") || n.contains(".cleaned") || n.contains(".deleted"))
            .collect()
    }

    #[test]
    fn a_crash_during_the_swap_recovers_the_old_or_the_new_segments() {
        use crate::{LogConfig, LogManager, LogManagerOptions, TopicPartition};
        let config = LogConfig {
            segment_bytes: 100_000,
            cleanup_compact: true,
            cleanup_delete: false,
            ..LogConfig::default()
        };
        let tp = TopicPartition::new("swap", 0);
        for point in [
            CrashPoint::AfterCleaned,
            CrashPoint::AfterSwap,
            CrashPoint::AfterOldDeleted,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let options = LogManagerOptions {
                log_dirs: vec![dir.path().to_path_buf()],
                cleaner_enabled: false,
                ..LogManagerOptions::default()
            };
            let manager = LogManager::open(options.clone(), |_| config).unwrap();
            let log = manager
                .get_or_create(&tp, uuid::Uuid::new_v4(), config)
                .unwrap();
            for round in 0..3 {
                for k in 0..4 {
                    let mut b = keyed(&format!("k{k}"), &format!("{round}"));
                    log.append_as_leader(&mut b, 0, None).unwrap();
                }
                log.roll().unwrap();
            }
            log.update_high_watermark(i64::MAX);
            let before = values(&log);
            assert_eq!(before.len(), 12);
            let pdir = log.dir().to_path_buf();
            assert!(log.compact_and_crash(100, point).is_err());
            drop(log);
            drop(manager);
            let manager = LogManager::open(options, |_| config).unwrap();
            let log = manager.get(&tp).unwrap();
            let after = values(&log);
            match point {
                CrashPoint::AfterCleaned => assert_eq!(after, before, "{point:?}: old segments"),
                _ => {
                    assert_eq!(after.len(), 4, "{point:?}: new segments {after:?}");
                    assert!(after.iter().all(|(_, v)| v == b"2"), "{point:?}");
                }
            }
            assert_eq!(log.log_end_offset(), 12);
            assert!(
                transitional(&pdir).is_empty(),
                "{point:?}: {:?}",
                transitional(&pdir)
            );
            for (offset, _) in &after {
                assert!(!log
                    .read(*offset, 1, i64::MAX, true)
                    .unwrap()
                    .records
                    .is_empty());
            }
            manager.shutdown().unwrap();
        }
    }
}
