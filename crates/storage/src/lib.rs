//! Kafka's partition log for Millrace: segments, sparse indexes, the
//! leader epoch history, checkpoints, crash recovery, retention and
//! compaction, with Apache Kafka's on-disk layout.
//!
//! Storage knows nothing about sockets or Kafka APIs, and it is
//! synchronous: blocking file I/O, std threads for background work, every
//! method callable from any thread (async callers use `spawn_blocking`).
//!
//! # Layout
//!
//! - [`config`]: [`TopicPartition`], [`LogConfig`] (topic settings with
//!   Kafka's defaults) and [`LogManagerOptions`] (broker settings).
//! - [`error`]: [`StorageError`], the crate's one error type.
//! - [`file_names`]: the only place file and directory names are made or
//!   parsed; typed [`file_names::SegmentPath`].
//! - [`checkpoint`]: the text checkpoint files (`recovery-point-offset-checkpoint`,
//!   `leader-epoch-checkpoint`, `partition.metadata`, …).
//! - `epoch_cache`: the leader epoch history (`LeaderEpochFileCache`).
//! - `index`, `offset_index`, `time_index`: the `.index` and `.timeindex` files.
//! - `producer_state`: idempotent-producer and transaction state, its
//!   `.snapshot` files ([`ProducerStateError`], [`ProducerStateEntry`], [`AbortedTxn`]).
//! - `txn_index`: the per-segment `.txnindex` of aborted transactions.
//! - `segment`: one `.log` file plus its indexes; scanning, reading, recovery.
//! - [`log`]: [`Log`], one partition: append, read, truncate, retention.
//! - `recovery`: opening a partition dir, clean start or crash recovery.
//! - [`compaction`]: the log cleaner (`cleanup.policy=compact`).
//! - [`manager`]: [`LogManager`], all partitions across log dirs, checkpoints
//!   and background threads.
//! - `background`, `log_dir`: deferred file removal and per-dir liveness.
//! - [`usage`]: [`DiskUsage`], the running total of segment bytes and the
//!   broker's storage cap (`millrace.log.dirs.max.bytes`).
//!
//! # Offsets kept apart
//!
//! A log tracks its *log end offset* (written and visible to readers), its
//! *recovery point* (fsynced; recovery starts there), its *high watermark*
//! (set by replication) and its *log start offset* (retention and
//! DeleteRecords), each in its own atomic.

pub mod checkpoint;
pub mod compaction;
pub mod config;
pub mod error;
pub mod file_names;
pub mod log;
pub mod manager;

mod background;
mod epoch_cache;
mod index;
mod log_dir;
mod offset_index;
mod producer_state;
mod recovery;
mod segment;
mod time_index;
mod txn_index;
pub mod usage;

pub use compaction::CleanStats;
pub use config::{LogConfig, LogManagerOptions, TopicPartition};
pub use error::StorageError;
pub use log::{AppendInfo, Log, ReadResult, TimestampAndOffset};
pub use manager::{LogDirUsage, LogManager, PartitionUsage};
pub use producer_state::{
    AbortedTxn, ProducerStateEntry, ProducerStateError, DEFAULT_PRODUCER_ID_EXPIRATION_MS,
};
pub use usage::DiskUsage;

/// Wall-clock milliseconds since the Unix epoch, as Kafka timestamps are.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
