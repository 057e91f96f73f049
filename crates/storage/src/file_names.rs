//! Every file and directory name the log uses, made and parsed here only.
//!
//! The names are Apache Kafka's (`LogFileUtils`, `UnifiedLog`), so an
//! operator who knows Kafka recognises a Millrace log dir:
//!
//! ```text
//! <log dir>/
//!   meta.properties                       written by the broker
//!   .kafka_cleanshutdown                  present only while cleanly stopped
//!   recovery-point-offset-checkpoint      \
//!   log-start-offset-checkpoint            | offset checkpoints, one line per
//!   replication-offset-checkpoint          | partition of this dir
//!   cleaner-offset-checkpoint             /
//!   <topic>-<partition>/
//!     partition.metadata                  topic id
//!     leader-epoch-checkpoint             epoch -> start offset
//!     00000000000000000000.log            segment data, named by base offset
//!     00000000000000000000.index          offset index
//!     00000000000000000000.timeindex      time index
//!     00000000000000000000.txnindex       aborted transactions (only once one aborted)
//!     00000000000000000042.snapshot       producer state after offsets below 42
//!     …log.deleted / .cleaned / .swap     files in transition
//!   <topic>-<partition>.<uuid hex>-delete a deleted partition awaiting removal
//! ```
//!
//! Base offsets are zero-padded to 20 digits so `ls` sorts segments
//! numerically. [`SegmentPath`] is a typed segment file name whose transforms
//! (`to_index`, `to_cleaned`, `to_swap`, …) refuse nonsense such as the index
//! of an index or swapping a file that was never cleaned.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::TopicPartition;

/// Marker written on clean shutdown and removed once the broker is up.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
/// Per-dir checkpoint of each partition's recovery point (fsynced offset).
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
/// Per-dir checkpoint of each partition's log start offset.
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// Per-dir checkpoint of each partition's high watermark.
pub const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";
/// Per-dir checkpoint of each compacted partition's first dirty offset.
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";
/// The broker's identity file; storage tolerates but never writes it.
pub const META_PROPERTIES: &str = "meta.properties";
/// Per-partition leader epoch history.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// Per-partition topic id.
pub const PARTITION_METADATA: &str = "partition.metadata";
/// Suffix of the temporary file a checkpoint is written to before renaming.
pub const TMP_SUFFIX: &str = ".tmp";
/// Suffix of a partition directory awaiting asynchronous removal.
pub const DELETE_DIR_SUFFIX: &str = "-delete";
/// Suffix of a partition directory being moved between log dirs (not used yet).
pub const FUTURE_DIR_SUFFIX: &str = "-future";
/// Suffix of a partition directory the controller no longer assigns.
pub const STRAY_DIR_SUFFIX: &str = "-stray";
/// KRaft's own log lives in a log dir too; the partition log never loads it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

const BASE_OFFSET_DIGITS: usize = 20;

/// A transform that makes no sense was requested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FileNameError(String);

impl From<FileNameError> for crate::StorageError {
    fn from(e: FileNameError) -> Self {
        crate::StorageError::Corrupt(e.0)
    }
}

/// Which file of a segment a [`SegmentPath`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentFileKind {
    /// `.log`: the record batches.
    Log,
    /// `.index`: offset → position.
    Index,
    /// `.timeindex`: timestamp → offset.
    TimeIndex,
    /// `.txnindex`: aborted transactions (reserved for transactions).
    TxnIndex,
}

impl SegmentFileKind {
    fn suffix(self) -> &'static str {
        match self {
            SegmentFileKind::Log => ".log",
            SegmentFileKind::Index => ".index",
            SegmentFileKind::TimeIndex => ".timeindex",
            SegmentFileKind::TxnIndex => ".txnindex",
        }
    }

    const ALL: [SegmentFileKind; 4] = [
        SegmentFileKind::Log,
        SegmentFileKind::Index,
        SegmentFileKind::TimeIndex,
        SegmentFileKind::TxnIndex,
    ];
}

/// Where a segment file is in its life: live, or in one of Kafka's
/// transitional states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// A live file of the log.
    Live,
    /// `.deleted`: removed from the log, awaiting `file.delete.delay.ms`.
    Deleted,
    /// `.cleaned`: compaction output not yet committed.
    Cleaned,
    /// `.swap`: committed compaction output replacing old segments.
    Swap,
}

impl Transition {
    fn suffix(self) -> &'static str {
        match self {
            Transition::Live => "",
            Transition::Deleted => ".deleted",
            Transition::Cleaned => ".cleaned",
            Transition::Swap => ".swap",
        }
    }
}

/// A typed segment file name: directory, base offset, kind and transition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SegmentPath {
    dir: PathBuf,
    base_offset: i64,
    kind: SegmentFileKind,
    transition: Transition,
}

impl SegmentPath {
    /// The live `.log` file of the segment starting at `base_offset`.
    pub fn log(dir: &Path, base_offset: i64) -> Result<SegmentPath, FileNameError> {
        if base_offset < 0 {
            return Err(FileNameError(format!(
                "a segment cannot start at negative offset {base_offset}"
            )));
        }
        Ok(SegmentPath {
            dir: dir.to_path_buf(),
            base_offset,
            kind: SegmentFileKind::Log,
            transition: Transition::Live,
        })
    }

    /// Parses a file name inside a partition directory; `None` for files that
    /// are not segment files.
    pub fn parse(path: &Path) -> Option<SegmentPath> {
        let name = path.file_name()?.to_str()?;
        let dir = path.parent()?.to_path_buf();
        let (rest, transition) = [Transition::Deleted, Transition::Cleaned, Transition::Swap]
            .into_iter()
            .find_map(|t| name.strip_suffix(t.suffix()).map(|r| (r, t)))
            .unwrap_or((name, Transition::Live));
        let (digits, kind) = SegmentFileKind::ALL
            .into_iter()
            .find_map(|k| rest.strip_suffix(k.suffix()).map(|d| (d, k)))?;
        if digits.len() != BASE_OFFSET_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let base_offset: i64 = digits.parse().ok()?;
        Some(SegmentPath {
            dir,
            base_offset,
            kind,
            transition,
        })
    }

    /// The segment's base offset.
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Which file of the segment this is.
    pub fn kind(&self) -> SegmentFileKind {
        self.kind
    }

    /// Live or in transition.
    pub fn transition(&self) -> Transition {
        self.transition
    }

    /// The directory holding the file.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file name, e.g. `00000000000000000042.log.swap`.
    pub fn file_name(&self) -> String {
        format!(
            "{:0width$}{}{}",
            self.base_offset,
            self.kind.suffix(),
            self.transition.suffix(),
            width = BASE_OFFSET_DIGITS
        )
    }

    /// The full path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(self.file_name())
    }

    fn sibling(&self, kind: SegmentFileKind) -> Result<SegmentPath, FileNameError> {
        if self.kind != SegmentFileKind::Log {
            return Err(FileNameError(format!(
                "{} is not a .log file; only a log file has index siblings",
                self.file_name()
            )));
        }
        Ok(SegmentPath {
            kind,
            ..self.clone()
        })
    }

    /// The offset index of this log file, in the same transition.
    pub fn to_index(&self) -> Result<SegmentPath, FileNameError> {
        self.sibling(SegmentFileKind::Index)
    }

    /// The time index of this log file, in the same transition.
    pub fn to_time_index(&self) -> Result<SegmentPath, FileNameError> {
        self.sibling(SegmentFileKind::TimeIndex)
    }

    /// The transaction index of this log file, in the same transition.
    pub fn to_txn_index(&self) -> Result<SegmentPath, FileNameError> {
        self.sibling(SegmentFileKind::TxnIndex)
    }

    fn transition_to(
        &self,
        from: &[Transition],
        to: Transition,
    ) -> Result<SegmentPath, FileNameError> {
        if !from.contains(&self.transition) {
            return Err(FileNameError(format!(
                "cannot move {} to {to:?}",
                self.file_name()
            )));
        }
        Ok(SegmentPath {
            transition: to,
            ..self.clone()
        })
    }

    /// The `.deleted` name of a live (or swap) file being removed.
    pub fn to_deleted(&self) -> Result<SegmentPath, FileNameError> {
        self.transition_to(&[Transition::Live, Transition::Swap], Transition::Deleted)
    }

    /// The `.cleaned` name compaction writes a live segment's replacement to.
    pub fn to_cleaned(&self) -> Result<SegmentPath, FileNameError> {
        self.transition_to(&[Transition::Live], Transition::Cleaned)
    }

    /// The `.swap` name a `.cleaned` file takes when compaction commits.
    pub fn to_swap(&self) -> Result<SegmentPath, FileNameError> {
        self.transition_to(&[Transition::Cleaned], Transition::Swap)
    }

    /// The live name a `.swap` file takes once the old segments are gone.
    pub fn to_live(&self) -> Result<SegmentPath, FileNameError> {
        self.transition_to(&[Transition::Swap], Transition::Live)
    }
}

impl fmt::Display for SegmentPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path().display())
    }
}

/// The directory name of a partition: `<topic>-<partition>`.
pub fn partition_dir_name(tp: &TopicPartition) -> String {
    tp.to_string()
}

/// Parses `<topic>-<partition>`; `None` for anything else (files, `-delete`,
/// `-future` and `-stray` dirs, names with an empty topic).
pub fn parse_partition_dir(name: &str) -> Option<TopicPartition> {
    if name.ends_with(DELETE_DIR_SUFFIX)
        || name.ends_with(FUTURE_DIR_SUFFIX)
        || name.ends_with(STRAY_DIR_SUFFIX)
    {
        return None;
    }
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty()
        || partition.is_empty()
        || !partition.bytes().all(|b| b.is_ascii_digit())
        || !topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return None;
    }
    let partition: i32 = partition.parse().ok()?;
    Some(TopicPartition::new(topic, partition))
}

/// The name a deleted partition's directory is renamed to before removal:
/// `<topic>-<partition>.<uuid without dashes>-delete`, shortening the topic
/// as Kafka does so the name stays within 255 bytes.
pub fn delete_dir_name(tp: &TopicPartition, unique: uuid::Uuid) -> String {
    let suffix = format!("-{}.{}{}", tp.partition, unique.simple(), DELETE_DIR_SUFFIX);
    let keep = tp.topic.len().min(255usize.saturating_sub(suffix.len()));
    format!("{}{}", &tp.topic[..keep], suffix)
}

/// Whether a directory name is a partition awaiting removal.
pub fn is_delete_dir(name: &str) -> bool {
    name.ends_with(DELETE_DIR_SUFFIX) && name.contains('.')
}

/// Suffix of producer-state snapshot files.
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";

/// `<20-digit offset>.snapshot`: the producer state after every batch
/// below `offset` (Kafka's `ProducerStateManager` file name).
pub fn snapshot_file_name(offset: i64) -> String {
    format!(
        "{:0width$}{SNAPSHOT_SUFFIX}",
        offset.max(0),
        width = BASE_OFFSET_DIGITS
    )
}

/// The offset of a snapshot file name; `None` for anything else.
pub fn parse_snapshot_file_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    if digits.len() != BASE_OFFSET_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `name.tmp`, the sibling a checkpoint is written to before its rename.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(TMP_SUFFIX);
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_are_zero_padded_and_round_trip() {
        let dir = Path::new("/data/t-0");
        let log = SegmentPath::log(dir, 42).unwrap();
        assert_eq!(log.file_name(), "00000000000000000042.log");
        assert_eq!(
            log.to_index().unwrap().file_name(),
            "00000000000000000042.index"
        );
        assert_eq!(
            log.to_time_index().unwrap().file_name(),
            "00000000000000000042.timeindex"
        );
        let swap = log.to_cleaned().unwrap().to_swap().unwrap();
        assert_eq!(swap.file_name(), "00000000000000000042.log.swap");
        let parsed = SegmentPath::parse(&swap.path()).unwrap();
        assert_eq!(parsed, swap);
        assert_eq!(parsed.to_live().unwrap(), log);
        let idx =
            SegmentPath::parse(Path::new("/d/00000000000000000007.timeindex.deleted")).unwrap();
        assert_eq!(idx.base_offset(), 7);
        assert_eq!(idx.kind(), SegmentFileKind::TimeIndex);
        assert_eq!(idx.transition(), Transition::Deleted);
    }

    #[test]
    fn snapshot_names_round_trip() {
        assert_eq!(snapshot_file_name(42), "00000000000000000042.snapshot");
        assert_eq!(parse_snapshot_file_name(&snapshot_file_name(42)), Some(42));
        assert_eq!(parse_snapshot_file_name("42.snapshot"), None);
        assert_eq!(
            parse_snapshot_file_name("00000000000000000042.snapshot.tmp"),
            None
        );
        assert_eq!(parse_snapshot_file_name("00000000000000000042.log"), None);
    }

    #[test]
    fn nonsense_transforms_are_refused() {
        let log = SegmentPath::log(Path::new("/d"), 0).unwrap();
        let index = log.to_index().unwrap();
        assert!(index.to_time_index().is_err());
        assert!(
            log.to_swap().is_err(),
            "only a cleaned file can become a swap file"
        );
        assert!(log.to_live().is_err());
        assert!(log.to_deleted().unwrap().to_cleaned().is_err());
        assert!(SegmentPath::log(Path::new("/d"), -1).is_err());
    }

    #[test]
    fn non_segment_files_do_not_parse() {
        for name in [
            "leader-epoch-checkpoint",
            "partition.metadata",
            "42.log",
            "0000000000000000004x.log",
            "00000000000000000042.snapshot",
            "00000000000000000042.log.tmp",
        ] {
            assert!(
                SegmentPath::parse(&Path::new("/d").join(name)).is_none(),
                "{name}"
            );
        }
    }

    #[test]
    fn partition_dirs_parse_from_the_right() {
        assert_eq!(
            parse_partition_dir("my-topic-12"),
            Some(TopicPartition::new("my-topic", 12))
        );
        assert_eq!(
            parse_partition_dir("__consumer_offsets-0"),
            Some(TopicPartition::new("__consumer_offsets", 0))
        );
        assert_eq!(parse_partition_dir("topic"), None);
        assert_eq!(parse_partition_dir("-3"), None);
        assert_eq!(parse_partition_dir("t-x"), None);
        let tp = TopicPartition::new("orders", 3);
        let deleted = delete_dir_name(&tp, uuid::Uuid::nil());
        assert_eq!(deleted, "orders-3.00000000000000000000000000000000-delete");
        assert!(is_delete_dir(&deleted));
        assert_eq!(parse_partition_dir(&deleted), None);
        assert_eq!(parse_partition_dir("orders-3-future"), None);
        let long = TopicPartition::new("x".repeat(249), 1);
        assert!(delete_dir_name(&long, uuid::Uuid::new_v4()).len() <= 255);
    }
}
