//! Log compaction (`cleanup.policy=compact`), after Kafka's `LogCleaner`.
//!
//! A log is split at its *first dirty offset* (the cleaner checkpoint):
//! below it the log was already compacted, above it records are new. The
//! *first uncleanable offset* is the smallest of the active segment's base,
//! the last stable offset (high watermark, or the first offset of an open
//! transaction if lower), and the first segment younger than
//! `min.compaction.lag.ms`. A log is cleaned when its dirty ratio (dirty
//! bytes / cleanable bytes) exceeds `min.cleanable.dirty.ratio`, when a
//! dirty segment is older than `max.compaction.lag.ms`, or when tombstones
//! written earlier reached their delete horizon.
//!
//! A pass builds a key → latest offset map over the dirty section (bounded
//! by the dedupe buffer; a full map ends the pass early and the next pass
//! continues), then rewrites every non-active segment from the log start up
//! to where the map ends, in groups that fit one segment, keeping per key
//! only the latest record (see [`cleaner`] for the exact rules and the
//! crash-safe swap).

mod cleaner;
mod offset_map;

use std::sync::atomic::Ordering;
use std::sync::Arc;

#[cfg(test)]
pub(crate) use cleaner::CrashPoint;

use crate::error::Result;
use crate::log::Log;
use crate::segment::Segment;

/// What one cleaning pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// Segments rewritten.
    pub segments_cleaned: usize,
    /// Bytes read from the old segments.
    pub bytes_read: u64,
    /// Bytes written to the cleaned segments.
    pub bytes_written: u64,
    /// Records dropped (superseded values and expired tombstones).
    pub records_removed: u64,
    /// The first dirty offset after the pass (the new cleaner checkpoint).
    pub next_dirty_offset: i64,
}

/// Where a log stands for the cleaner.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cleanable {
    pub first_dirty: i64,
    pub first_uncleanable: i64,
    pub clean_bytes: u64,
    pub dirty_bytes: u64,
    pub needs_now: bool,
    pub tombstones_due: bool,
}

impl Cleanable {
    pub(crate) fn ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }
}

fn segment_range(
    segments: &[Arc<Segment>],
    from: i64,
    to: i64,
) -> impl Iterator<Item = (usize, &Arc<Segment>)> {
    segments.iter().enumerate().filter(move |(i, s)| {
        let next = segments.get(i + 1).map_or(i64::MAX, |n| n.base_offset());
        next > from && s.base_offset() < to
    })
}

/// Computes the cleanable range of `log` at `now_ms`.
pub(crate) fn cleanable(log: &Log, now_ms: i64) -> Option<Cleanable> {
    let config = log.config();
    if !config.cleanup_compact {
        return None;
    }
    let segments = log.segments_snapshot();
    let active = segments.last()?;
    let log_start = log.log_start_offset();
    let leo = log.log_end_offset();
    let checkpoint = log.first_dirty_offset.load(Ordering::Acquire);
    let first_dirty = if checkpoint < log_start || checkpoint > leo {
        log_start
    } else {
        checkpoint
    };
    // Never past an undecided transaction (Kafka's firstUnstableOffset).
    let mut first_uncleanable = active.base_offset().min(log.last_stable_offset());
    let non_active = &segments[..segments.len() - 1];
    if config.min_compaction_lag_ms > 0 {
        for (_, seg) in segment_range(non_active, first_dirty, i64::MAX) {
            if seg.largest_timestamp() > now_ms.saturating_sub(config.min_compaction_lag_ms) {
                first_uncleanable = first_uncleanable.min(seg.base_offset());
                break;
            }
        }
    }
    let clean_bytes: u64 = segment_range(&segments, log_start, first_dirty)
        .map(|(_, s)| s.size())
        .sum();
    let dirty_bytes: u64 = if first_uncleanable > first_dirty {
        segment_range(&segments, first_dirty, first_uncleanable)
            .map(|(_, s)| s.size())
            .sum()
    } else {
        0
    };
    let max_lag = config.max_compaction_lag_ms.max(0);
    let needs_now = dirty_bytes > 0
        && segment_range(non_active, first_dirty, first_uncleanable)
            .filter_map(|(_, s)| first_batch_timestamp(s))
            .filter(|ts| *ts > 0)
            .min()
            .is_some_and(|earliest| earliest < now_ms.saturating_sub(max_lag));
    let horizon = log.latest_delete_horizon.load(Ordering::Acquire);
    let tombstones_due = horizon >= 0 && horizon <= now_ms;
    Some(Cleanable {
        first_dirty,
        first_uncleanable,
        clean_bytes,
        dirty_bytes,
        needs_now,
        tombstones_due,
    })
}

fn first_batch_timestamp(seg: &Segment) -> Option<i64> {
    let mut reader = crate::segment::BatchReader::for_lookup(seg.file(), 0, seg.size());
    match reader.next_header() {
        Ok(crate::segment::Next::Header(_, h)) => Some(h.max_timestamp),
        _ => None,
    }
}

impl Log {
    /// Whether the cleaner should compact this log now: dirty ratio above
    /// `min.cleanable.dirty.ratio`, a dirty segment past
    /// `max.compaction.lag.ms`, or tombstones past their delete horizon.
    pub fn needs_compaction(&self, now_ms: i64) -> bool {
        cleanable(self, now_ms).is_some_and(|c| {
            (c.dirty_bytes > 0
                && (c.needs_now || c.ratio() > self.config().min_cleanable_dirty_ratio))
                || c.tombstones_due
        })
    }

    /// The dirty ratio the cleaner uses to pick the filthiest log.
    pub fn dirty_ratio(&self, now_ms: i64) -> f64 {
        cleanable(self, now_ms).map_or(0.0, |c| c.ratio())
    }

    /// Runs one compaction pass now, whatever the dirty ratio (the cleaner
    /// threads call this for logs that [`Log::needs_compaction`]). `Ok(None)`
    /// when compaction is off for the log or nothing is cleanable.
    pub fn compact(&self, now_ms: i64, dedupe_buffer_bytes: usize) -> Result<Option<CleanStats>> {
        self.check_usable()?;
        let result = cleaner::clean(self, now_ms, dedupe_buffer_bytes, None);
        self.guard(result)
    }

    /// Compaction with a simulated crash, for the swap recovery tests.
    #[cfg(test)]
    pub(crate) fn compact_and_crash(
        &self,
        now_ms: i64,
        crash: CrashPoint,
    ) -> Result<Option<CleanStats>> {
        cleaner::clean(self, now_ms, 1 << 20, Some(crash))
    }
}
