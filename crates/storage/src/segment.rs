//! One log segment: a `.log` file of whole record batches plus its offset
//! and time indexes.
//!
//! # Format (`<base offset>.log`)
//!
//! Record batches (message format v2) laid end to end, exactly as produced
//! (after the leader patched base offset, leader epoch and, for
//! LogAppendTime topics, the max timestamp). The segment's base offset is
//! the base offset of its first batch; no batch may extend more than
//! `i32::MAX` offsets past it, because indexes store relative offsets.
//!
//! # Offsets kept apart
//!
//! Like Redpanda's `segment.h`, a segment keeps what is *written* and what
//! is *visible* apart: bytes are written with one `pwrite` first, and
//! [`Segment::size`] (what readers may read) only moves once the whole
//! append succeeded. What is *fsynced* is tracked by the log's recovery
//! point, not here.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use millrace_protocol::records::{
    Batch, BatchHeader, TimestampType, BATCH_HEADER_LEN, NO_TIMESTAMP,
};
use parking_lot::Mutex;

use crate::config::LogConfig;
use crate::file_names::SegmentPath;
use crate::index::IndexFile;
use crate::offset_index::{self, OffsetEntry};
use crate::time_index::{self, TimeEntry};
use crate::txn_index::{AbortedTxnEntry, TxnIndex};

/// Sentinel: the rolling-based timestamp has not been read yet.
const UNKNOWN: i64 = i64::MIN;

/// Bytes read per `pread` when scanning a whole segment (recovery,
/// compaction, index rebuilds).
const SCAN_CHUNK: usize = 1024 * 1024;

/// Bytes read per `pread` when looking for one batch from an index entry:
/// a little more than `index.interval.bytes`, so one read usually suffices.
const LOOKUP_CHUNK: usize = 8 * 1024;

/// The indexes of a segment and the append-side state that feeds them.
#[derive(Debug)]
pub(crate) struct Indexes {
    pub(crate) offset: IndexFile<OffsetEntry>,
    pub(crate) time: IndexFile<TimeEntry>,
    bytes_since_last_entry: u64,
}

/// What the index bookkeeping of a segment looked like before an append, so
/// a failed append can put it back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentMark {
    size: u64,
    offset_entries: usize,
    time_entries: usize,
    bytes_since_last_entry: u64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    rolling_based_timestamp: i64,
}

/// One segment of a partition log: `<base offset>.log` holding whole v2
/// record batches end to end, with its `.index` and `.timeindex` (formats
/// in the module docs of this file and of `offset_index`/`time_index`).
#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: i64,
    path: SegmentPath,
    file: File,
    size: AtomicU64,
    indexes: Mutex<Indexes>,
    max_timestamp: AtomicI64,
    offset_of_max_timestamp: AtomicI64,
    rolling_based_timestamp: AtomicI64,
    created_ms: i64,
    roll_jitter_ms: i64,
    index_interval_bytes: u64,
    retired: AtomicBool,
    /// The `.txnindex` entries of aborts whose marker is in this segment.
    txn: Mutex<TxnIndex>,
    /// The `.txnindex` file was corrupt at open; the log rebuilds it.
    txn_corrupt: AtomicBool,
}

/// Outcome of validating a segment's bytes during recovery.
#[derive(Debug)]
pub(crate) struct RecoveryOutcome {
    /// Bytes of whole, valid batches.
    pub valid_bytes: u64,
    /// Bytes cut off the end (a torn or corrupt tail).
    pub truncated_bytes: u64,
    /// Offset after the last valid batch (`None` if the segment is empty).
    pub next_offset: Option<i64>,
}

/// Per-batch facts the indexes need, taken from a batch header.
fn record_timestamp(header: &BatchHeader, timestamp_delta: i64) -> i64 {
    if header.timestamp_type() == TimestampType::LogAppendTime {
        header.max_timestamp
    } else {
        header.base_timestamp.wrapping_add(timestamp_delta)
    }
}

/// What the scanner found next.
pub(crate) enum Next<'a> {
    /// A framed batch at `pos` (not yet CRC-checked).
    Batch(u64, BatchHeader, &'a [u8]),
    /// A framed batch header at `pos` (body not read).
    Header(u64, BatchHeader),
    /// Clean end of the range.
    End,
    /// Bytes at `pos` that are not a whole batch.
    Invalid(u64, String),
}

/// Reads batches from a segment file in large chunks.
pub(crate) struct BatchReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
    chunk: usize,
}

impl<'a> BatchReader<'a> {
    /// Scans `[start, end)` of `file` in large reads.
    pub(crate) fn new(file: &'a File, start: u64, end: u64) -> Self {
        BatchReader {
            file,
            pos: start,
            end,
            buf: Vec::new(),
            buf_start: start,
            chunk: SCAN_CHUNK,
        }
    }

    /// Scans `[start, end)` in small reads, for finding one batch.
    pub(crate) fn for_lookup(file: &'a File, start: u64, end: u64) -> Self {
        BatchReader {
            chunk: LOOKUP_CHUNK,
            ..BatchReader::new(file, start, end)
        }
    }

    /// Position of the next batch.
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    fn ensure(&mut self, n: usize) -> io::Result<()> {
        let have_from = self.buf_start;
        let have_to = self.buf_start + self.buf.len() as u64;
        if self.pos >= have_from && self.pos + n as u64 <= have_to {
            return Ok(());
        }
        let want = (n.max(self.chunk) as u64).min(self.end - self.pos) as usize;
        self.buf.resize(want, 0);
        self.buf_start = self.pos;
        self.file.read_exact_at(&mut self.buf, self.pos)
    }

    fn slice(&self, n: usize) -> &[u8] {
        let from = (self.pos - self.buf_start) as usize;
        &self.buf[from..from + n]
    }

    fn header(&mut self) -> io::Result<Result<BatchHeader, Next<'static>>> {
        if self.pos >= self.end {
            return Ok(Err(Next::End));
        }
        let remaining = self.end - self.pos;
        if remaining < BATCH_HEADER_LEN as u64 {
            return Ok(Err(Next::Invalid(
                self.pos,
                format!("{remaining} trailing bytes are less than a batch header"),
            )));
        }
        self.ensure(BATCH_HEADER_LEN)?;
        let header = match BatchHeader::parse(self.slice(BATCH_HEADER_LEN)) {
            Ok(h) => h,
            Err(e) => return Ok(Err(Next::Invalid(self.pos, e.to_string()))),
        };
        if header.size() as u64 > remaining {
            return Ok(Err(Next::Invalid(
                self.pos,
                format!(
                    "batch claims {} bytes but only {remaining} remain",
                    header.size()
                ),
            )));
        }
        Ok(Ok(header))
    }

    /// The next batch header, skipping its body.
    pub(crate) fn next_header(&mut self) -> io::Result<Next<'static>> {
        match self.header()? {
            Err(next) => Ok(next),
            Ok(header) => {
                let pos = self.pos;
                self.pos += header.size() as u64;
                Ok(Next::Header(pos, header))
            }
        }
    }

    /// The next whole batch.
    pub(crate) fn next_batch(&mut self) -> io::Result<Next<'_>> {
        match self.header()? {
            Err(next) => Ok(next),
            Ok(header) => {
                let size = header.size();
                self.ensure(size)?;
                let pos = self.pos;
                let from = (pos - self.buf_start) as usize;
                self.pos += size as u64;
                Ok(Next::Batch(pos, header, &self.buf[from..from + size]))
            }
        }
    }
}

/// Checks one batch the way recovery must: CRC, offsets, and a walk over
/// every record (decompressing if needed).
pub(crate) fn validate_batch(
    header: &BatchHeader,
    bytes: &[u8],
    segment_base: i64,
    min_offset: i64,
) -> Result<(), String> {
    let batch = Batch {
        header: *header,
        bytes,
    };
    batch.verify_crc().map_err(|e| e.to_string())?;
    if header.last_offset_delta < 0 {
        return Err(format!(
            "negative last offset delta {}",
            header.last_offset_delta
        ));
    }
    if header.base_offset < min_offset {
        return Err(format!(
            "base offset {} goes backwards (expected >= {min_offset})",
            header.base_offset
        ));
    }
    if header.base_offset < segment_base
        || header.last_offset() - segment_base > i64::from(i32::MAX)
    {
        return Err(format!(
            "offsets {}..={} do not fit segment {segment_base}",
            header.base_offset,
            header.last_offset()
        ));
    }
    let payload = batch.records().map_err(|e| e.to_string())?;
    let mut count = 0;
    for record in payload.iter() {
        let record = record.map_err(|e| e.to_string())?;
        if record.offset_delta < 0 || record.offset_delta > header.last_offset_delta {
            return Err(format!(
                "record offset delta {} outside the batch",
                record.offset_delta
            ));
        }
        count += 1;
    }
    if count != header.records_count {
        return Err(format!(
            "batch claims {} records but holds {count}",
            header.records_count
        ));
    }
    Ok(())
}

/// Index entries and maximum timestamp computed while scanning batches.
#[derive(Debug, Default)]
struct IndexBuilder {
    offset: Vec<OffsetEntry>,
    time: Vec<TimeEntry>,
    bytes_since_last_entry: u64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
}

impl IndexBuilder {
    fn new() -> Self {
        IndexBuilder {
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: -1,
            ..IndexBuilder::default()
        }
    }

    fn add(&mut self, base: i64, interval: u64, header: &BatchHeader, position: u64) {
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        if self.bytes_since_last_entry > interval {
            let rel = (header.last_offset() - base) as u32;
            let entry = OffsetEntry {
                relative_offset: rel,
                position: position as u32,
            };
            if entry.follows(self.offset.last()) {
                self.offset.push(entry);
            }
            let ts_rel = (self.offset_of_max_timestamp - base).max(0) as u32;
            if time_index::should_append(&self.time, self.max_timestamp, ts_rel) {
                self.time.push(TimeEntry {
                    timestamp: self.max_timestamp,
                    relative_offset: ts_rel,
                });
            }
            self.bytes_since_last_entry = 0;
        }
        self.bytes_since_last_entry += header.size() as u64;
    }

    /// The final time index entry of an inactive segment.
    fn finish(&mut self, base: i64) {
        let rel = (self.offset_of_max_timestamp - base).max(0) as u32;
        if time_index::should_append(&self.time, self.max_timestamp, rel) {
            self.time.push(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset: rel,
            });
        }
    }
}

impl Segment {
    /// Creates a new, empty segment (its three files) starting at `base_offset`.
    pub(crate) fn create(
        dir: &std::path::Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
        roll_jitter_ms: i64,
    ) -> io::Result<Segment> {
        let path = SegmentPath::log(dir, base_offset)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let index_path = path.to_index().map_err(io::Error::other)?.path();
        let time_path = path.to_time_index().map_err(io::Error::other)?.path();
        let txn_path = path.to_txn_index().map_err(io::Error::other)?.path();
        match fs::remove_file(&txn_path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path.path())?;
        let create_index = |p: &PathBuf| {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(p)
                .map(drop)
        };
        let result = (|| {
            create_index(&index_path)?;
            create_index(&time_path)?;
            if config.preallocate {
                file.set_len(config.segment_bytes)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(path.path());
            let _ = fs::remove_file(&index_path);
            let _ = fs::remove_file(&time_path);
            return Err(e);
        }
        Ok(Segment {
            base_offset,
            file,
            size: AtomicU64::new(0),
            indexes: Mutex::new(Indexes {
                offset: IndexFile::loaded(index_path, Vec::new(), 0),
                time: IndexFile::loaded(time_path, Vec::new(), 0),
                bytes_since_last_entry: 0,
            }),
            max_timestamp: AtomicI64::new(NO_TIMESTAMP),
            offset_of_max_timestamp: AtomicI64::new(-1),
            rolling_based_timestamp: AtomicI64::new(NO_TIMESTAMP),
            created_ms: now_ms,
            roll_jitter_ms,
            index_interval_bytes: config.index_interval_bytes,
            retired: AtomicBool::new(false),
            txn: Mutex::new(TxnIndex::empty(txn_path)),
            txn_corrupt: AtomicBool::new(false),
            path,
        })
    }

    /// Opens an existing segment without reading its data or indexes; the
    /// caller either sanity-checks ([`Segment::check_indexes`]) or recovers it.
    pub(crate) fn open(
        path: SegmentPath,
        config: &LogConfig,
        now_ms: i64,
        roll_jitter_ms: i64,
    ) -> io::Result<Segment> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path.path())?;
        let size = file.metadata()?.len();
        let index_path = path.to_index().map_err(io::Error::other)?.path();
        let time_path = path.to_time_index().map_err(io::Error::other)?.path();
        let txn_path = path.to_txn_index().map_err(io::Error::other)?.path();
        let (txn, txn_corrupt) = match TxnIndex::load(txn_path.clone())? {
            Ok(t) => (t, false),
            Err(why) => {
                tracing::warn!(segment = %path, "transaction index is corrupt, rebuilding it: {why}");
                (TxnIndex::empty(txn_path), true)
            }
        };
        Ok(Segment {
            base_offset: path.base_offset(),
            file,
            size: AtomicU64::new(size),
            indexes: Mutex::new(Indexes {
                offset: IndexFile::lazy(index_path),
                time: IndexFile::lazy(time_path),
                bytes_since_last_entry: 0,
            }),
            max_timestamp: AtomicI64::new(NO_TIMESTAMP),
            offset_of_max_timestamp: AtomicI64::new(-1),
            rolling_based_timestamp: AtomicI64::new(UNKNOWN),
            created_ms: now_ms,
            roll_jitter_ms,
            index_interval_bytes: config.index_interval_bytes,
            retired: AtomicBool::new(false),
            txn: Mutex::new(txn),
            txn_corrupt: AtomicBool::new(txn_corrupt),
            path,
        })
    }

    /// Installs the transaction index entries compaction just wrote to
    /// this segment's `.txnindex`.
    pub(crate) fn set_txn_entries(&self, entries: Vec<AbortedTxnEntry>) -> io::Result<()> {
        let txn_path = self.path.to_txn_index().map_err(io::Error::other)?.path();
        *self.txn.lock() = TxnIndex::with_entries(txn_path, entries);
        self.txn_corrupt.store(false, Ordering::Release);
        Ok(())
    }

    /// Records an aborted transaction whose marker is in this segment.
    pub(crate) fn txn_append(&self, entry: AbortedTxnEntry) -> io::Result<()> {
        self.txn.lock().append(entry)
    }

    /// Drops aborted-transaction entries whose marker is at or after `offset`.
    pub(crate) fn txn_truncate_to(&self, offset: i64) -> io::Result<()> {
        let mut txn = self.txn.lock();
        if self.txn_corrupt.swap(false, Ordering::AcqRel) {
            txn.reset()?;
        }
        txn.truncate_to(offset)
    }

    /// Adds this segment's aborted transactions matching
    /// `[start, upper)`; `true` when later segments need not be searched.
    pub(crate) fn txn_collect(
        &self,
        start: i64,
        upper: i64,
        out: &mut Vec<AbortedTxnEntry>,
    ) -> bool {
        self.txn.lock().collect(start, upper, out)
    }

    /// Every aborted transaction recorded in this segment.
    pub(crate) fn txn_entries(&self) -> Vec<AbortedTxnEntry> {
        self.txn.lock().entries().to_vec()
    }

    /// Whether the `.txnindex` file was unreadable at open.
    pub(crate) fn txn_corrupt(&self) -> bool {
        self.txn_corrupt.load(Ordering::Acquire)
    }

    /// The segment's first offset.
    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// The live `.log` path.
    pub(crate) fn path(&self) -> &SegmentPath {
        &self.path
    }

    /// The open `.log` file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Bytes of whole batches readers may see.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Publishes appended bytes to readers.
    pub(crate) fn set_size(&self, size: u64) {
        self.size.store(size, Ordering::Release);
    }

    /// Largest batch max timestamp (`NO_TIMESTAMP` if none).
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    /// Last offset of the first batch carrying [`Segment::max_timestamp`].
    pub(crate) fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp.load(Ordering::Acquire)
    }

    /// Kafka's `largestTimestamp`: the max timestamp, or the file's mtime
    /// when no batch carries a timestamp.
    pub(crate) fn largest_timestamp(&self) -> i64 {
        let ts = self.max_timestamp();
        if ts >= 0 {
            return ts;
        }
        self.file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64)
    }

    /// Whether `offset` can be stored relative to this segment's base.
    pub(crate) fn can_hold(&self, offset: i64) -> bool {
        offset >= self.base_offset && offset - self.base_offset <= i64::from(i32::MAX)
    }

    /// Whether either index reached its capacity.
    pub(crate) fn index_full(&self, config: &LogConfig) -> bool {
        let idx = self.indexes.lock();
        idx.offset
            .entries()
            .is_some_and(|e| e.len() >= config.max_offset_index_entries())
            || idx
                .time
                .entries()
                .is_some_and(|e| e.len() >= config.max_time_index_entries())
    }

    /// Kafka's `timeWaitedForRoll`: time since the first batch's timestamp
    /// (or since the segment was created when batches carry none).
    pub(crate) fn time_waited_for_roll(
        &self,
        now_ms: i64,
        max_timestamp_in_batch: i64,
    ) -> io::Result<i64> {
        let mut rolling = self.rolling_based_timestamp.load(Ordering::Acquire);
        if rolling == UNKNOWN {
            rolling = NO_TIMESTAMP;
            if self.size() > 0 {
                let mut reader = BatchReader::for_lookup(&self.file, 0, self.size());
                if let Next::Header(_, h) = reader.next_header()? {
                    rolling = h.max_timestamp;
                }
            }
            self.rolling_based_timestamp
                .store(rolling, Ordering::Release);
        }
        Ok(if rolling >= 0 {
            max_timestamp_in_batch.saturating_sub(rolling)
        } else {
            now_ms - self.created_ms
        })
    }

    /// The per-segment jitter subtracted from `segment.ms`.
    pub(crate) fn roll_jitter_ms(&self) -> i64 {
        self.roll_jitter_ms
    }

    /// Bookkeeping to restore if an append fails.
    pub(crate) fn mark(&self) -> SegmentMark {
        let idx = self.indexes.lock();
        SegmentMark {
            size: self.size(),
            offset_entries: idx.offset.entries().map_or(0, <[_]>::len),
            time_entries: idx.time.entries().map_or(0, <[_]>::len),
            bytes_since_last_entry: idx.bytes_since_last_entry,
            max_timestamp: self.max_timestamp(),
            offset_of_max_timestamp: self.offset_of_max_timestamp(),
            rolling_based_timestamp: self.rolling_based_timestamp.load(Ordering::Acquire),
        }
    }

    /// Undoes an append that failed after [`Segment::mark`]: cuts the file
    /// back and forgets the index entries it added.
    pub(crate) fn reset_to(&self, mark: &SegmentMark) -> io::Result<()> {
        let result = self.file.set_len(mark.size);
        let mut idx = self.indexes.lock();
        idx.offset.truncate(mark.offset_entries);
        idx.time.truncate(mark.time_entries);
        idx.bytes_since_last_entry = mark.bytes_since_last_entry;
        self.max_timestamp
            .store(mark.max_timestamp, Ordering::Release);
        self.offset_of_max_timestamp
            .store(mark.offset_of_max_timestamp, Ordering::Release);
        self.rolling_based_timestamp
            .store(mark.rolling_based_timestamp, Ordering::Release);
        self.set_size(mark.size);
        result
    }

    /// Writes `bytes` (whole batches) at `position` with one positioned
    /// write; on failure the file is cut back to `position`. Readers do not
    /// see the bytes until [`Segment::set_size`].
    pub(crate) fn write_at(&self, bytes: &[u8], position: u64) -> io::Result<()> {
        if let Err(e) = self.file.write_all_at(bytes, position) {
            if let Err(trunc) = self.file.set_len(position) {
                return Err(io::Error::other(format!(
                    "{e}; then could not cut back the partial write: {trunc}"
                )));
            }
            return Err(e);
        }
        Ok(())
    }

    /// Updates indexes and timestamps for batches just written at `position`.
    pub(crate) fn index_written(&self, bytes: &[u8], position: u64) {
        let mut idx = self.indexes.lock();
        let mut pos = 0usize;
        let mut max_ts = self.max_timestamp();
        let mut offset_of_max = self.offset_of_max_timestamp();
        if self.rolling_based_timestamp.load(Ordering::Acquire) == NO_TIMESTAMP && position == 0 {
            if let Ok(h) = BatchHeader::parse(bytes) {
                self.rolling_based_timestamp
                    .store(h.max_timestamp, Ordering::Release);
            }
        }
        while pos < bytes.len() {
            let Ok(header) = BatchHeader::parse(&bytes[pos..]) else {
                break;
            };
            if header.max_timestamp > max_ts {
                max_ts = header.max_timestamp;
                offset_of_max = header.last_offset();
            }
            if idx.bytes_since_last_entry > self.index_interval_bytes {
                let entry = OffsetEntry {
                    relative_offset: (header.last_offset() - self.base_offset) as u32,
                    position: (position + pos as u64) as u32,
                };
                if idx
                    .offset
                    .entries()
                    .is_some_and(|e| entry.follows(e.last()))
                {
                    idx.offset.push(entry);
                }
                let rel = (offset_of_max - self.base_offset).max(0) as u32;
                if idx
                    .time
                    .entries()
                    .is_some_and(|e| time_index::should_append(e, max_ts, rel))
                {
                    idx.time.push(TimeEntry {
                        timestamp: max_ts,
                        relative_offset: rel,
                    });
                }
                idx.bytes_since_last_entry = 0;
            }
            idx.bytes_since_last_entry += header.size() as u64;
            pos += header.size();
        }
        self.max_timestamp.store(max_ts, Ordering::Release);
        self.offset_of_max_timestamp
            .store(offset_of_max, Ordering::Release);
    }

    /// Loads indexes that were left lazy, rebuilding them from the log if
    /// the files cannot be trusted. Append paths call this first so index
    /// entries are never pushed to an unloaded index.
    pub(crate) fn ensure_indexes_loaded(&self) -> io::Result<()> {
        let mut idx = self.indexes.lock();
        self.load_indexes_locked(&mut idx)
    }

    fn load_indexes_locked(&self, idx: &mut Indexes) -> io::Result<()> {
        if idx.offset.is_loaded() && idx.time.is_loaded() {
            return Ok(());
        }
        let base = self.base_offset;
        let size = self.size();
        let ok_offset = idx.offset.is_loaded()
            || idx
                .offset
                .load(|e, p| e.follows(p) && u64::from(e.position) < size.max(1))
                .is_ok();
        let ok_time = idx.time.is_loaded() || idx.time.load(|e, p| e.follows(p)).is_ok();
        if !(ok_offset && ok_time) {
            tracing::warn!(
                segment = %self.path,
                "index files failed their check; rebuilding them from the log"
            );
            let built = self.scan_for_indexes(size)?;
            self.apply_rebuilt(idx, built, base);
        }
        Ok(())
    }

    fn scan_for_indexes(&self, size: u64) -> io::Result<IndexBuilder> {
        let mut builder = IndexBuilder::new();
        let mut reader = BatchReader::new(&self.file, 0, size);
        loop {
            match reader.next_header()? {
                Next::Header(pos, header) => {
                    builder.add(self.base_offset, self.index_interval_bytes, &header, pos)
                }
                Next::End => break,
                Next::Invalid(pos, why) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} at byte {pos}: {why}", self.path),
                    ))
                }
                Next::Batch(..) => unreachable!("next_header yields headers"),
            }
        }
        Ok(builder)
    }

    fn apply_rebuilt(&self, idx: &mut Indexes, mut built: IndexBuilder, base: i64) {
        built.finish(base);
        idx.offset.replace(built.offset);
        idx.time.replace(built.time);
        idx.bytes_since_last_entry = built.bytes_since_last_entry;
        self.max_timestamp
            .store(built.max_timestamp, Ordering::Release);
        self.offset_of_max_timestamp
            .store(built.offset_of_max_timestamp, Ordering::Release);
    }

    /// Start-up check after a clean shutdown: index files exist, have whole
    /// entries and a sane last entry. Reads only the last entries; the max
    /// timestamp comes from the time index's last entry.
    pub(crate) fn check_indexes(&self) -> Result<(), String> {
        let (offset_path, time_path) = {
            let idx = self.indexes.lock();
            (
                idx.offset.path().to_path_buf(),
                idx.time.path().to_path_buf(),
            )
        };
        let last = IndexFile::<OffsetEntry>::peek_last_entry(&offset_path)?;
        if let Some(last) = last {
            if u64::from(last.position) >= self.size().max(1) {
                return Err(format!(
                    "{} points past the end of the log",
                    offset_path.display()
                ));
            }
        }
        let last_time = IndexFile::<TimeEntry>::peek_last_entry(&time_path)?;
        if let Some(t) = last_time {
            if t.timestamp >= 0 {
                self.max_timestamp.store(t.timestamp, Ordering::Release);
                self.offset_of_max_timestamp.store(
                    self.base_offset + i64::from(t.relative_offset),
                    Ordering::Release,
                );
            }
        } else if self.size() > 0 {
            // A non-empty inactive segment always ends its time index with
            // the max timestamp, unless no batch had a timestamp at all.
            // Either way the full check is cheap enough to do on demand.
        }
        Ok(())
    }

    /// Rebuilds both indexes from the log now (start-up found them unusable).
    pub(crate) fn rebuild_indexes(&self) -> io::Result<()> {
        let built = self.scan_for_indexes(self.size())?;
        let mut idx = self.indexes.lock();
        self.apply_rebuilt(&mut idx, built, self.base_offset);
        Ok(())
    }

    /// Validates every batch (recovery after an unclean shutdown), cutting
    /// the file at the first invalid byte and rebuilding both indexes.
    /// `on_batch` sees each valid batch header (to rebuild epoch history).
    pub(crate) fn recover(
        &self,
        min_offset: i64,
        mut on_batch: impl FnMut(&BatchHeader),
    ) -> io::Result<RecoveryOutcome> {
        let file_len = self.file.metadata()?.len();
        let mut builder = IndexBuilder::new();
        let mut reader = BatchReader::new(&self.file, 0, file_len);
        let mut next_offset = None;
        let mut expected = min_offset;
        let valid = loop {
            match reader.next_batch()? {
                Next::Batch(pos, header, bytes) => {
                    if let Err(why) = validate_batch(&header, bytes, self.base_offset, expected) {
                        tracing::warn!(segment = %self.path, position = pos, "recovery found an invalid batch: {why}");
                        break pos;
                    }
                    builder.add(self.base_offset, self.index_interval_bytes, &header, pos);
                    on_batch(&header);
                    expected = header.next_offset();
                    next_offset = Some(header.next_offset());
                }
                Next::End => break reader.position(),
                Next::Invalid(pos, why) => {
                    if pos < file_len {
                        tracing::warn!(segment = %self.path, position = pos, "recovery found a torn batch: {why}");
                    }
                    break pos;
                }
                Next::Header(..) => unreachable!("next_batch yields batches"),
            }
        };
        if valid < file_len {
            self.file.set_len(valid)?;
        }
        self.set_size(valid);
        let mut idx = self.indexes.lock();
        self.apply_rebuilt(&mut idx, builder, self.base_offset);
        idx.offset.persist(false)?;
        idx.time.persist(false)?;
        let first = if valid > 0 {
            let mut r = BatchReader::for_lookup(&self.file, 0, valid);
            match r.next_header()? {
                Next::Header(_, h) => h.max_timestamp,
                _ => NO_TIMESTAMP,
            }
        } else {
            NO_TIMESTAMP
        };
        self.rolling_based_timestamp.store(first, Ordering::Release);
        Ok(RecoveryOutcome {
            valid_bytes: valid,
            truncated_bytes: file_len - valid,
            next_offset,
        })
    }

    /// Offset after the last batch, found from the last index entry by a
    /// short scan (Kafka's `readNextOffset`). Cuts a torn tail if it finds one.
    pub(crate) fn read_next_offset(&self) -> io::Result<Option<i64>> {
        let start = {
            let mut idx = self.indexes.lock();
            self.load_indexes_locked(&mut idx)?;
            idx.offset
                .entries()
                .and_then(|e| e.last())
                .map_or(0, |e| u64::from(e.position))
        };
        let size = self.size();
        let mut reader = BatchReader::for_lookup(&self.file, start, size);
        let mut next = None;
        loop {
            match reader.next_header()? {
                Next::Header(_, h) => next = Some(h.next_offset()),
                Next::End => break,
                Next::Invalid(pos, why) => {
                    tracing::warn!(segment = %self.path, position = pos, "cutting a torn tail: {why}");
                    self.file.set_len(pos)?;
                    self.set_size(pos);
                    break;
                }
                Next::Batch(..) => unreachable!(),
            }
        }
        if next.is_none() && start > 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: index points at no batch", self.path),
            ));
        }
        Ok(next)
    }

    /// Finds the first batch whose last offset is `>= offset`, looking at
    /// bytes below `size` only. Returns its position and header.
    pub(crate) fn find_batch(
        &self,
        offset: i64,
        size: u64,
    ) -> io::Result<Option<(u64, BatchHeader)>> {
        let start = {
            let mut idx = self.indexes.lock();
            self.load_indexes_locked(&mut idx)?;
            let rel = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
            let entries = idx.offset.entries().unwrap_or(&[]);
            u64::from(offset_index::lookup(entries, rel).position)
        };
        let mut reader = BatchReader::for_lookup(&self.file, start.min(size), size);
        loop {
            match reader.next_header()? {
                Next::Header(pos, h) if h.last_offset() >= offset => return Ok(Some((pos, h))),
                Next::Header(..) => {}
                Next::End | Next::Invalid(..) => return Ok(None),
                Next::Batch(..) => unreachable!(),
            }
        }
    }

    /// Reads whole batches starting with the one holding `offset`; see
    /// [`crate::Log::read`]. `Ok(None)` when this segment has no batch at or
    /// after `offset` (the caller moves to the next segment).
    pub(crate) fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
        size: u64,
    ) -> io::Result<Option<Bytes>> {
        let Some((pos, first)) = self.find_batch(offset, size)? else {
            return Ok(None);
        };
        if first.base_offset >= max_offset {
            return Ok(Some(Bytes::new()));
        }
        let first_size = first.size();
        if first_size > max_bytes && !min_one_batch {
            return Ok(Some(Bytes::new()));
        }
        let want = max_bytes.max(if min_one_batch { first_size } else { 0 });
        let want = (want as u64).min(size - pos) as usize;
        let mut buf = vec![0u8; want];
        self.file.read_exact_at(&mut buf, pos)?;
        let mut cut = 0usize;
        while cut + BATCH_HEADER_LEN <= buf.len() {
            let Ok(h) = BatchHeader::parse(&buf[cut..]) else {
                break;
            };
            if cut + h.size() > buf.len() || h.base_offset >= max_offset {
                break;
            }
            cut += h.size();
        }
        buf.truncate(cut);
        Ok(Some(Bytes::from(buf)))
    }

    /// The first record at or after `log_start` whose timestamp is `>= ts`:
    /// `(timestamp, offset, batch leader epoch)`.
    pub(crate) fn find_offset_by_timestamp(
        &self,
        ts: i64,
        log_start: i64,
        size: u64,
    ) -> io::Result<Option<(i64, i64, i32)>> {
        let start_offset = {
            let mut idx = self.indexes.lock();
            self.load_indexes_locked(&mut idx)?;
            let from_time = time_index::lookup(idx.time.entries().unwrap_or(&[]), ts)
                .map_or(self.base_offset, |e| {
                    self.base_offset + i64::from(e.relative_offset)
                });
            from_time.max(log_start)
        };
        let Some((pos, _)) = self.find_batch(start_offset, size)? else {
            return Ok(None);
        };
        let mut reader = BatchReader::for_lookup(&self.file, pos, size);
        loop {
            match reader.next_batch()? {
                Next::Batch(_, header, bytes) => {
                    if header.max_timestamp < ts {
                        continue;
                    }
                    let batch = Batch { header, bytes };
                    let payload = batch
                        .records()
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    for record in payload.iter() {
                        let record =
                            record.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                        let offset = header.base_offset + i64::from(record.offset_delta);
                        let timestamp = record_timestamp(&header, record.timestamp_delta);
                        if timestamp >= ts && offset >= log_start {
                            return Ok(Some((timestamp, offset, header.partition_leader_epoch)));
                        }
                    }
                }
                Next::End | Next::Invalid(..) => return Ok(None),
                Next::Header(..) => unreachable!(),
            }
        }
    }

    /// KIP-734: the first record carrying this segment's max timestamp.
    pub(crate) fn find_max_timestamp_record(
        &self,
        size: u64,
    ) -> io::Result<Option<(i64, i64, i32)>> {
        let max_ts = self.max_timestamp();
        let offset = self.offset_of_max_timestamp();
        if max_ts < 0 || offset < 0 {
            return Ok(None);
        }
        let Some((pos, _)) = self.find_batch(offset, size)? else {
            return Ok(None);
        };
        let mut reader = BatchReader::for_lookup(&self.file, pos, size);
        loop {
            match reader.next_batch()? {
                Next::Batch(_, header, bytes) => {
                    if header.max_timestamp != max_ts {
                        continue;
                    }
                    if header.timestamp_type() == TimestampType::LogAppendTime {
                        return Ok(Some((
                            max_ts,
                            header.base_offset,
                            header.partition_leader_epoch,
                        )));
                    }
                    let batch = Batch { header, bytes };
                    let payload = batch
                        .records()
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    for record in payload.iter() {
                        let record =
                            record.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                        if record_timestamp(&header, record.timestamp_delta) == max_ts {
                            let offset = header.base_offset + i64::from(record.offset_delta);
                            return Ok(Some((max_ts, offset, header.partition_leader_epoch)));
                        }
                    }
                }
                Next::End | Next::Invalid(..) => return Ok(None),
                Next::Header(..) => unreachable!(),
            }
        }
    }

    /// Removes every batch whose last offset is `>= offset`. Returns the
    /// number of bytes removed.
    pub(crate) fn truncate_to(&self, offset: i64) -> io::Result<u64> {
        let size = self.size();
        let Some((pos, _)) = self.find_batch(offset, size)? else {
            return Ok(0);
        };
        self.file.set_len(pos)?;
        self.set_size(pos);
        let mut idx = self.indexes.lock();
        let keep = idx
            .offset
            .entries()
            .map_or(0, |e| e.partition_point(|x| u64::from(x.position) < pos));
        idx.offset.truncate(keep);
        let rel = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        let keep_time = idx
            .time
            .entries()
            .map_or(0, |e| time_index::keep_below(e, rel));
        idx.time.truncate(keep_time);
        idx.bytes_since_last_entry = 0;
        // Exact max timestamp of what is left: the last time entry covers the
        // batches up to the last offset entry; scan the rest.
        let (mut max_ts, mut max_off) = idx
            .time
            .entries()
            .and_then(|e| e.last())
            .map_or((NO_TIMESTAMP, -1), |t| {
                (t.timestamp, self.base_offset + i64::from(t.relative_offset))
            });
        let scan_from = idx
            .offset
            .entries()
            .and_then(|e| e.last())
            .map_or(0, |e| u64::from(e.position));
        drop(idx);
        let mut reader = BatchReader::for_lookup(&self.file, scan_from, pos);
        while let Next::Header(_, h) = reader.next_header()? {
            if h.max_timestamp > max_ts {
                max_ts = h.max_timestamp;
                max_off = h.last_offset();
            }
        }
        self.max_timestamp.store(max_ts, Ordering::Release);
        self.offset_of_max_timestamp
            .store(max_off, Ordering::Release);
        if pos == 0 {
            self.rolling_based_timestamp
                .store(NO_TIMESTAMP, Ordering::Release);
        }
        Ok(size - pos)
    }

    /// Called when the segment stops being active: appends the final time
    /// index entry, trims a preallocated file and writes the index files.
    /// `written` is the segment's size including bytes of an append still
    /// in progress (not yet visible to readers).
    pub(crate) fn finish_active(&self, written: u64) -> io::Result<()> {
        let mut idx = self.indexes.lock();
        self.load_indexes_locked(&mut idx)?;
        let max_ts = self.max_timestamp();
        let rel = (self.offset_of_max_timestamp() - self.base_offset).max(0) as u32;
        if idx
            .time
            .entries()
            .is_some_and(|e| time_index::should_append(e, max_ts, rel))
        {
            idx.time.push(TimeEntry {
                timestamp: max_ts,
                relative_offset: rel,
            });
        }
        if self.file.metadata()?.len() > written {
            // Only a preallocated file is longer than its data.
            self.file.set_len(written)?;
        }
        idx.offset.persist(false)?;
        idx.time.persist(false)
    }

    /// fsyncs the data and writes (and fsyncs) the index entries.
    pub(crate) fn flush(&self) -> io::Result<()> {
        self.file.sync_data()?;
        self.txn.lock().flush()?;
        let mut idx = self.indexes.lock();
        idx.offset.persist(true)?;
        idx.time.persist(true)
    }

    /// Writes index entries without fsync (clean shutdown fsyncs after).
    pub(crate) fn persist_indexes(&self) -> io::Result<()> {
        let mut idx = self.indexes.lock();
        idx.offset.persist(false)?;
        idx.time.persist(false)
    }

    /// Renames the segment's files to `.deleted` and stops writing them.
    /// Returns the new paths, for delayed removal.
    pub(crate) fn rename_to_deleted(&self) -> io::Result<Vec<PathBuf>> {
        self.retired.store(true, Ordering::Release);
        {
            let mut idx = self.indexes.lock();
            idx.offset.retire();
            idx.time.retire();
        }
        self.txn.lock().retire();
        let mut out = Vec::new();
        for p in [
            Ok(self.path.clone()),
            self.path.to_index(),
            self.path.to_time_index(),
            self.path.to_txn_index(),
        ] {
            let p = p.map_err(io::Error::other)?;
            let to = p.to_deleted().map_err(io::Error::other)?.path();
            match fs::rename(p.path(), &to) {
                Ok(()) => out.push(to),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Whether the segment was removed from its log.
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Builds a segment object over files just written by compaction, with
    /// their indexes already known.
    pub(crate) fn open_with_indexes(
        path: SegmentPath,
        config: &LogConfig,
        now_ms: i64,
        offset_entries: Vec<OffsetEntry>,
        time_entries: Vec<TimeEntry>,
        max_timestamp: i64,
        offset_of_max_timestamp: i64,
    ) -> io::Result<Segment> {
        let seg = Segment::open(path, config, now_ms, 0)?;
        {
            let mut idx = seg.indexes.lock();
            let n = offset_entries.len();
            let m = time_entries.len();
            let off_path = idx.offset.path().to_path_buf();
            let time_path = idx.time.path().to_path_buf();
            idx.offset = IndexFile::loaded(off_path, offset_entries, n);
            idx.time = IndexFile::loaded(time_path, time_entries, m);
        }
        seg.max_timestamp.store(max_timestamp, Ordering::Release);
        seg.offset_of_max_timestamp
            .store(offset_of_max_timestamp, Ordering::Release);
        Ok(seg)
    }
}

/// Builds index entries for a segment written in one go (compaction output).
#[derive(Debug)]
pub(crate) struct SegmentIndexWriter {
    builder: IndexBuilder,
    base: i64,
    interval: u64,
}

impl SegmentIndexWriter {
    /// For a segment starting at `base`.
    pub(crate) fn new(base: i64, interval: u64) -> Self {
        SegmentIndexWriter {
            builder: IndexBuilder::new(),
            base,
            interval,
        }
    }

    /// Notes a batch written at `position`.
    pub(crate) fn add(&mut self, header: &BatchHeader, position: u64) {
        self.builder.add(self.base, self.interval, header, position);
    }

    /// Offset entries, time entries (with the final max-timestamp entry),
    /// max timestamp and its offset.
    pub(crate) fn finish(mut self) -> (Vec<OffsetEntry>, Vec<TimeEntry>, i64, i64) {
        self.builder.finish(self.base);
        (
            self.builder.offset,
            self.builder.time,
            self.builder.max_timestamp,
            self.builder.offset_of_max_timestamp,
        )
    }
}

/// Encodes index entries into file bytes (for compaction output files).
pub(crate) fn encode_entries<E: crate::index::IndexEntry>(entries: &[E]) -> Vec<u8> {
    let mut out = vec![0u8; entries.len() * E::SIZE];
    for (e, chunk) in entries.iter().zip(out.chunks_exact_mut(E::SIZE)) {
        e.encode(chunk);
    }
    out
}
