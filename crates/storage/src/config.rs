//! Per-log configuration and the manager's options, with Apache Kafka's
//! defaults so a Millrace broker behaves like a Kafka broker out of the box.

use std::fmt;
use std::path::PathBuf;

/// A topic partition: the unit of log storage.
///
/// Displays as `topic-partition`, which is also the name of its directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// Builds a topic partition; a convenience for tests and callers.
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Topic-level log settings (Kafka's `segment.bytes`, `retention.ms`, …).
///
/// `Default` gives Apache Kafka's defaults. Times are milliseconds; `-1`
/// means unlimited where Kafka allows it, and `i64::MAX` stands for Kafka's
/// `Long.MAX_VALUE`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would exceed this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's data spans this long.
    pub segment_ms: i64,
    /// `segment.jitter.ms`: random reduction of `segment_ms` per segment.
    pub segment_jitter_ms: i64,
    /// `segment.index.bytes`: capacity of each offset and time index.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes of log between sparse index entries.
    pub index_interval_bytes: u64,
    /// `retention.ms`, `-1` = unlimited.
    pub retention_ms: i64,
    /// `retention.bytes`, `-1` = unlimited.
    pub retention_bytes: i64,
    /// `cleanup.policy` contains `delete`.
    pub cleanup_delete: bool,
    /// `cleanup.policy` contains `compact`.
    pub cleanup_compact: bool,
    /// `delete.retention.ms`: how long tombstones survive after cleaning.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty segment older than this is compacted
    /// regardless of the dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `flush.messages`: fsync after this many unflushed messages.
    pub flush_messages: i64,
    /// `flush.ms`: fsync when the last flush is older than this.
    pub flush_ms: i64,
    /// `file.delete.delay.ms`: how long `.deleted` files linger.
    pub file_delete_delay_ms: i64,
    /// `preallocate`: create segment files at full size.
    pub preallocate: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_jitter_ms: 0,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            file_delete_delay_ms: 60_000,
            preallocate: false,
        }
    }
}

impl LogConfig {
    /// Entries an offset index may hold (8 bytes each), as Kafka sizes it.
    pub fn max_offset_index_entries(&self) -> usize {
        ((self.segment_index_bytes / 8) as usize).max(1)
    }

    /// Entries a time index may hold (12 bytes each).
    pub fn max_time_index_entries(&self) -> usize {
        ((self.segment_index_bytes / 12) as usize).max(1)
    }
}

/// Broker-level storage settings (Kafka's `log.dirs`, `log.cleaner.*`, …).
#[derive(Debug, Clone)]
pub struct LogManagerOptions {
    /// `log.dirs`: one directory per disk.
    pub log_dirs: Vec<PathBuf>,
    /// `num.recovery.threads.per.data.dir`.
    pub recovery_threads_per_dir: usize,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// `log.flush.scheduler.interval.ms` (Kafka's default is `Long.MAX_VALUE`: never).
    pub flush_scheduler_interval_ms: u64,
    /// `log.flush.offset.checkpoint.interval.ms`, also used for the log start
    /// offset and high watermark checkpoints.
    pub checkpoint_interval_ms: u64,
    /// `log.cleaner.enable`.
    pub cleaner_enabled: bool,
    /// `log.cleaner.threads`.
    pub cleaner_threads: usize,
    /// `log.cleaner.backoff.ms`: sleep when nothing needs cleaning.
    pub cleaner_backoff_ms: u64,
    /// `log.cleaner.dedupe.buffer.size`: memory for the key → offset map.
    pub cleaner_dedupe_buffer_bytes: usize,
    /// Config for logs whose topic has no overrides.
    pub default_config: LogConfig,
    /// `millrace.log.dirs.max.bytes`: segment bytes all logs together may
    /// hold ([`crate::usage::UNLIMITED`] = no cap).
    pub max_bytes: u64,
}

impl Default for LogManagerOptions {
    fn default() -> Self {
        LogManagerOptions {
            log_dirs: Vec::new(),
            recovery_threads_per_dir: 2,
            retention_check_interval_ms: 300_000,
            flush_scheduler_interval_ms: i64::MAX as u64,
            checkpoint_interval_ms: 60_000,
            cleaner_enabled: true,
            cleaner_threads: 1,
            cleaner_backoff_ms: 15_000,
            cleaner_dedupe_buffer_bytes: 128 * 1024 * 1024,
            default_config: LogConfig::default(),
            max_bytes: crate::usage::UNLIMITED,
        }
    }
}
