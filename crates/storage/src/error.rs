//! The one error type of the storage crate.
//!
//! The broker maps these to Kafka error codes in one place: `NoSpace`,
//! `CapReached` and `Io`/`LogDirOffline` become `KAFKA_STORAGE_ERROR`, `OffsetOutOfRange`
//! becomes `OFFSET_OUT_OF_RANGE`, `Corrupt` becomes `CORRUPT_MESSAGE`,
//! `Producer` becomes the code named on its `ProducerStateError` variant.

use std::io;
use std::path::{Path, PathBuf};

use crate::config::TopicPartition;

/// Everything that can go wrong in the partition log.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O error other than a full disk. The log dir it happened in is
    /// marked offline, because Kafka treats such errors as a failed disk.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What the log was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// ENOSPC or EDQUOT. The log is left exactly as it was before the
    /// operation, so the dir stays online and a later append can succeed.
    #[error("no space left in log dir {}", dir.display())]
    NoSpace {
        /// The log dir (or partition dir) that is full.
        dir: PathBuf,
    },
    /// The append would take the broker's logs past
    /// `millrace.log.dirs.max.bytes`: a full disk of the configured size.
    /// Refused before anything is written; the dir stays online.
    #[error(
        "log dirs hold {used} bytes; {requested} more would pass millrace.log.dirs.max.bytes={cap}"
    )]
    CapReached {
        /// Bytes the logs hold (with appends in flight).
        used: u64,
        /// The cap.
        cap: u64,
        /// Bytes the refused append needed.
        requested: u64,
    },
    /// A read or DeleteRecords named an offset the log does not hold.
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: i64,
        /// First offset the log holds.
        log_start_offset: i64,
        /// Offset the next append will get.
        log_end_offset: i64,
    },
    /// Bytes that are not valid record batches, or a file that cannot be
    /// parsed (checkpoint, index, partition metadata).
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// The partition exists on disk with another topic id (the topic was
    /// deleted and re-created while this broker was away).
    #[error("topic id mismatch for {topic_partition}: log has {existing}, requested {requested}")]
    TopicIdMismatch {
        /// The partition.
        topic_partition: TopicPartition,
        /// Topic id stored in `partition.metadata`.
        existing: uuid::Uuid,
        /// Topic id the caller expected.
        requested: uuid::Uuid,
    },
    /// An offset argument that makes no sense (negative, non-monotonic
    /// follower batches, a follower append behind the log end).
    #[error("invalid offset: {0}")]
    InvalidOffset(String),
    /// The log dir holding this log failed earlier and is offline.
    #[error("log dir {} is offline", .0.display())]
    LogDirOffline(PathBuf),
    /// Producer-state validation refused a leader append; nothing was
    /// written. Each variant names the Kafka error code to answer.
    #[error("producer state: {0}")]
    Producer(#[from] crate::producer_state::ProducerStateError),
}

impl StorageError {
    /// Wraps an I/O error, classifying a full disk or exhausted quota as
    /// [`StorageError::NoSpace`] so callers can tell it from a broken disk.
    pub fn io(context: impl Into<String>, dir: &Path, source: io::Error) -> StorageError {
        if is_no_space(&source) {
            StorageError::NoSpace {
                dir: dir.to_path_buf(),
            }
        } else {
            StorageError::Io {
                context: context.into(),
                source,
            }
        }
    }

    /// Whether this error means the disk itself failed (the dir goes offline).
    pub fn is_disk_failure(&self) -> bool {
        matches!(self, StorageError::Io { .. })
    }
}

/// ENOSPC and EDQUOT: the two errors Kafka reports as a full disk.
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == libc::ENOSPC || code == libc::EDQUOT)
}

/// Shorthand used throughout the crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
