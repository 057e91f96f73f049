//! The state machine: committed record batches applied to a
//! [`MetadataImage`], and the snapshots that stand in for the log prefix.
//!
//! # Offsets
//!
//! Every record gets the next metadata offset (the first record ever is 0),
//! so offsets count records, not Raft entries: the leader's blank entries
//! and membership changes take no offset. Every node applies the same
//! entries in the same order, so every node assigns the same offsets.
//!
//! # Durability
//!
//! The image lives in memory. What makes it survive a restart is the log
//! (with its persisted commit point, openraft re-applies committed entries
//! at start) and the latest snapshot, `snapshot` in the data dir: the
//! records of [`MetadataImage::to_records`], the image's offset, and the
//! Raft position and membership they cover, replaced atomically.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use millrace_metadata::records::MetadataRecord;
use millrace_metadata::MetadataImage;
use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::files::{self, StoreError};
use crate::types::{AppliedBatch, NodeId, TypeConfig};

const SNAPSHOT_FILE: &str = "snapshot";

/// What a snapshot's data holds (and what is sent to a lagging follower).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SnapshotPayload {
    /// The image's offset: records are a compacted form of the log, so
    /// their count says nothing about it.
    pub(crate) image_offset: i64,
    /// Records that rebuild the image from empty.
    pub(crate) records: Vec<MetadataRecord>,
}

impl SnapshotPayload {
    fn of(image: &MetadataImage) -> SnapshotPayload {
        SnapshotPayload {
            image_offset: image.offset,
            records: image.to_records(),
        }
    }

    fn rebuild(&self) -> MetadataImage {
        let mut image = MetadataImage::empty();
        for (i, record) in self.records.iter().enumerate() {
            image.apply(i as i64, record);
        }
        image.offset = self.image_offset;
        image
    }
}

/// The `snapshot` file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
    payload: SnapshotPayload,
}

impl StoredSnapshot {
    fn to_snapshot(&self) -> Result<Snapshot<TypeConfig>, serde_json::Error> {
        let bytes = serde_json::to_vec(&self.payload)?;
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

/// When the state machine asks for a snapshot: Kafka's
/// `metadata.log.max.record.bytes.between.snapshots` and
/// `metadata.log.max.snapshot.interval.ms`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SnapshotTriggers {
    /// Bytes of records (their JSON, as the log holds them) applied since
    /// the last snapshot that ask for the next one.
    pub(crate) max_record_bytes: u64,
    /// How long after the last snapshot new records ask for the next one;
    /// `None`: only bytes count.
    pub(crate) max_interval: Option<Duration>,
    /// Raft entries kept after a new snapshot, at most: the log is purged
    /// up to this many entries before the snapshot's position, and at
    /// least up to the previous snapshot's, so a follower more than one
    /// snapshot behind receives the snapshot instead.
    pub(crate) entries_kept: u64,
}

/// What the state machine asks of the quorum's snapshot task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SnapshotWork {
    /// Build a snapshot now (a trigger fired).
    Build,
    /// A snapshot was built: purge the Raft log up to this index.
    PurgeUpTo(u64),
}

struct Applied {
    image: MetadataImage,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, openraft::BasicNode>,
    /// Whether a snapshot was asked for and has not been taken yet.
    snapshot_requested: bool,
    /// Bytes of records applied after what the latest snapshot covers.
    bytes_since_snapshot: u64,
    /// When the latest snapshot was taken (or this node started).
    snapshot_taken_at: Instant,
}

impl Applied {
    fn new(
        image: MetadataImage,
        last_applied: Option<LogId<NodeId>>,
        membership: StoredMembership<NodeId, openraft::BasicNode>,
    ) -> Applied {
        Applied {
            image,
            last_applied,
            membership,
            snapshot_requested: false,
            bytes_since_snapshot: 0,
            snapshot_taken_at: Instant::now(),
        }
    }

    /// Notes that a snapshot now covers everything applied.
    fn snapshot_covers_all(&mut self) {
        self.snapshot_requested = false;
        self.bytes_since_snapshot = 0;
        self.snapshot_taken_at = Instant::now();
    }
}

struct Shared {
    dir: PathBuf,
    applied: Mutex<Applied>,
    /// The latest snapshot; its lock also serialises writing the file.
    snapshot: Mutex<Option<StoredSnapshot>>,
    image_tx: watch::Sender<Arc<MetadataImage>>,
    triggers: SnapshotTriggers,
    /// Asks the quorum to have openraft build a snapshot.
    snapshot_wanted: mpsc::UnboundedSender<SnapshotWork>,
    snapshots_built: AtomicU64,
    /// The metadata offset the latest snapshot covers (-1: none), readable
    /// without waiting for a snapshot being written.
    snapshot_offset: AtomicI64,
}

/// The node's state machine (openraft's `RaftStateMachine`).
pub(crate) struct StateMachine {
    shared: Arc<Shared>,
}

/// Builds snapshots from the applied state (openraft's `RaftSnapshotBuilder`).
pub(crate) struct SnapshotBuilder {
    shared: Arc<Shared>,
}

impl StateMachine {
    /// Loads the latest snapshot from `dir` (if any) as the starting state.
    /// `snapshot_wanted` receives [`SnapshotWork::Build`] whenever
    /// `triggers` say a snapshot is due, and [`SnapshotWork::PurgeUpTo`]
    /// after each snapshot built here.
    pub(crate) fn open(
        dir: &Path,
        triggers: SnapshotTriggers,
        snapshot_wanted: mpsc::UnboundedSender<SnapshotWork>,
    ) -> Result<StateMachine, StoreError> {
        let stored: Option<StoredSnapshot> = files::read_checked(&dir.join(SNAPSHOT_FILE))?;
        let applied = match &stored {
            Some(s) => Applied::new(
                s.payload.rebuild(),
                s.meta.last_log_id,
                s.meta.last_membership.clone(),
            ),
            None => Applied::new(MetadataImage::empty(), None, StoredMembership::default()),
        };
        let (image_tx, _) = watch::channel(Arc::new(applied.image.clone()));
        Ok(StateMachine {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                applied: Mutex::new(applied),
                image_tx,
                triggers: SnapshotTriggers {
                    max_record_bytes: triggers.max_record_bytes.max(1),
                    ..triggers
                },
                snapshot_wanted,
                snapshots_built: AtomicU64::new(0),
                snapshot_offset: AtomicI64::new(
                    stored.as_ref().map_or(-1, |s| s.payload.image_offset),
                ),
                snapshot: Mutex::new(stored),
            }),
        })
    }

    /// The channel every applied image is published on.
    pub(crate) fn image_sender(&self) -> watch::Sender<Arc<MetadataImage>> {
        self.shared.image_tx.clone()
    }

    /// Gives the quorum a way to read the latest snapshot's position.
    pub(crate) fn snapshot_probe(&self) -> SnapshotProbe {
        SnapshotProbe {
            shared: self.shared.clone(),
        }
    }
}

/// Reads which snapshot the state machine holds, for metrics and tests.
#[derive(Clone)]
pub(crate) struct SnapshotProbe {
    shared: Arc<Shared>,
}

impl SnapshotProbe {
    /// The metadata offset the latest snapshot covers, if there is one.
    pub(crate) fn offset(&self) -> Option<i64> {
        Some(self.shared.snapshot_offset()).filter(|&offset| offset >= 0)
    }

    /// Whether records arrived since the latest snapshot and the snapshot
    /// interval has passed since it; if so, the snapshot counts as asked
    /// for (the caller has it built).
    pub(crate) fn due_by_time(&self) -> bool {
        let mut applied = self.shared.applied.lock();
        let due = self.shared.due_by_time(&applied);
        if due {
            applied.snapshot_requested = true;
        }
        due
    }
}

impl Shared {
    fn snapshot_offset(&self) -> i64 {
        self.snapshot_offset.load(Ordering::Acquire)
    }

    /// The time trigger: new records, and the interval passed.
    fn due_by_time(&self, applied: &Applied) -> bool {
        !applied.snapshot_requested
            && applied.image.offset > self.snapshot_offset()
            && self
                .triggers
                .max_interval
                .is_some_and(|interval| applied.snapshot_taken_at.elapsed() >= interval)
    }

    /// Saves `stored` as the latest snapshot unless a newer one is already
    /// saved (a build and an install can race). Returns whether it was
    /// saved, and the Raft index the snapshot before it covered.
    fn save_snapshot(&self, stored: StoredSnapshot) -> Result<(bool, Option<u64>), StoreError> {
        let mut current = self.snapshot.lock();
        let previous = current
            .as_ref()
            .and_then(|existing| existing.meta.last_log_id)
            .map(|id| id.index);
        if let Some(existing) = current.as_ref() {
            if existing.meta.last_log_id > stored.meta.last_log_id {
                return Ok((false, previous));
            }
        }
        files::write_checked(&self.dir, SNAPSHOT_FILE, &stored)?;
        self.snapshot_offset
            .store(stored.payload.image_offset, Ordering::Release);
        *current = Some(stored);
        Ok((true, previous))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (payload, last_applied, membership) = {
            let mut applied = self.shared.applied.lock();
            let taken = (
                SnapshotPayload::of(&applied.image),
                applied.last_applied,
                applied.membership.clone(),
            );
            applied.snapshot_covers_all();
            taken
        };
        let sequence = self.shared.snapshots_built.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_applied {
            Some(id) => format!("{}-{}-{sequence}", id.leader_id, id.index),
            None => format!("empty-{sequence}"),
        };
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: last_applied,
                last_membership: membership,
                snapshot_id,
            },
            payload,
        };
        let shared = self.shared.clone();
        let to_save = stored.clone();
        let (saved, previous) = tokio::task::spawn_blocking(move || shared.save_snapshot(to_save))
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, AnyError::new(&e)))?
            .map_err(|e| {
                StorageIOError::write_snapshot(Some(stored.meta.signature()), AnyError::new(&e))
            })?;
        if let Some(covered) = stored.meta.last_log_id.map(|id| id.index) {
            if let Some(upto) = purge_point(self.shared.triggers.entries_kept, covered, previous) {
                let _ = self
                    .shared
                    .snapshot_wanted
                    .send(SnapshotWork::PurgeUpTo(upto));
            }
        }
        if saved {
            tracing::info!(
                offset = stored.payload.image_offset,
                records = stored.payload.records.len(),
                last_log_id = ?stored.meta.last_log_id,
                "metadata snapshot written"
            );
        }
        stored.to_snapshot().map_err(|e| {
            StorageIOError::read_snapshot(Some(stored.meta.signature()), AnyError::new(&e)).into()
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<NodeId>>,
            StoredMembership<NodeId, openraft::BasicNode>,
        ),
        StorageError<NodeId>,
    > {
        let applied = self.shared.applied.lock();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<AppliedBatch>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut answers = Vec::new();
        let published = {
            let mut applied = self.shared.applied.lock();
            let offset_before = applied.image.offset;
            for entry in entries {
                applied.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(batch) => {
                        for record in &batch.records {
                            let offset = applied.image.offset + 1;
                            applied.image.apply(offset, record);
                            applied.bytes_since_snapshot += encoded_len(record);
                        }
                    }
                    EntryPayload::Membership(membership) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                    }
                }
                answers.push(AppliedBatch {
                    last_offset: applied.image.offset,
                });
            }
            let due_by_bytes = !applied.snapshot_requested
                && applied.bytes_since_snapshot >= self.shared.triggers.max_record_bytes;
            if due_by_bytes || self.shared.due_by_time(&applied) {
                applied.snapshot_requested = true;
                let _ = self.shared.snapshot_wanted.send(SnapshotWork::Build);
            }
            // Blank and membership entries leave the image as it was:
            // subscribers hear only of images with new records.
            (applied.image.offset != offset_before).then(|| Arc::new(applied.image.clone()))
        };
        // Published before the answers go back, so `Quorum::append`
        // returning implies `image()` shows the batch.
        if let Some(image) = published {
            self.shared.image_tx.send_replace(image);
        }
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let payload: SnapshotPayload = serde_json::from_slice(snapshot.get_ref()).map_err(|e| {
            StorageIOError::read_snapshot(Some(meta.signature()), AnyError::new(&e))
        })?;
        let image = payload.rebuild();
        let stored = StoredSnapshot {
            meta: meta.clone(),
            payload,
        };
        let shared = self.shared.clone();
        let (saved, _) = tokio::task::spawn_blocking(move || shared.save_snapshot(stored))
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, AnyError::new(&e)))?
            .map_err(|e| {
                StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e))
            })?;
        if !saved {
            return Ok(());
        }
        tracing::info!(
            offset = image.offset,
            last_log_id = ?meta.last_log_id,
            "installed a metadata snapshot from the leader"
        );
        let published = Arc::new(image.clone());
        {
            let mut applied = self.shared.applied.lock();
            applied.image = image;
            applied.last_applied = meta.last_log_id;
            applied.membership = meta.last_membership.clone();
            applied.snapshot_covers_all();
        }
        self.shared.image_tx.send_replace(published);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let current = self.shared.snapshot.lock().clone();
        let Some(stored) = current else {
            return Ok(None);
        };
        let snapshot = stored.to_snapshot().map_err(|e| {
            StorageIOError::read_snapshot(Some(stored.meta.signature()), AnyError::new(&e))
        })?;
        Ok(Some(snapshot))
    }
}

/// Where to purge the Raft log once a snapshot covers index `covered`:
/// keep at most `kept` entries before it, and none that the previous
/// snapshot (covering `previous`) covered too. `None`: purge nothing.
fn purge_point(kept: u64, covered: u64, previous: Option<u64>) -> Option<u64> {
    let by_count = covered.checked_sub(kept);
    by_count.max(previous.filter(|&p| p <= covered))
}

/// The size of a record as the log stores it (its JSON), without
/// allocating the encoding.
fn encoded_len(record: &MetadataRecord) -> u64 {
    struct Counter(u64);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Encoding a record into memory cannot fail; were it to, the record
    // counts as empty and only delays a snapshot.
    let _ = serde_json::to_writer(&mut counter, record);
    counter.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use millrace_metadata::records::ConfigResourceType;
    use openraft::CommittedLeaderId;

    use crate::types::RecordBatch;

    fn config(name: &str) -> MetadataRecord {
        MetadataRecord::Config {
            resource_type: ConfigResourceType::Broker,
            resource_name: String::new(),
            name: name.into(),
            value: Some("1".into()),
        }
    }

    fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload,
        }
    }

    fn batch(names: &[&str]) -> EntryPayload<TypeConfig> {
        EntryPayload::Normal(RecordBatch {
            records: names.iter().map(|n| config(n)).collect(),
        })
    }

    fn by_bytes(max_record_bytes: u64) -> SnapshotTriggers {
        SnapshotTriggers {
            max_record_bytes,
            max_interval: None,
            entries_kept: 0,
        }
    }

    /// The bytes of these records, as the byte trigger counts them.
    fn bytes_of(names: &[&str]) -> u64 {
        names.iter().map(|n| encoded_len(&config(n))).sum()
    }

    #[tokio::test]
    async fn offsets_count_records_not_entries_and_snapshots_restore_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tx, mut wanted) = mpsc::unbounded_channel();
        let three = by_bytes(bytes_of(&["a", "b", "c"]));
        let mut sm = StateMachine::open(dir.path(), three, tx).expect("open");
        let answers = sm
            .apply(vec![
                entry(0, EntryPayload::Blank),
                entry(1, batch(&["a", "b"])),
                entry(2, EntryPayload::Blank),
            ])
            .await
            .expect("apply");
        assert!(
            wanted.try_recv().is_err(),
            "2 records' bytes are not enough"
        );
        let more = sm
            .apply(vec![entry(3, batch(&["c"]))])
            .await
            .expect("apply");
        let offsets: Vec<i64> = answers.iter().chain(&more).map(|a| a.last_offset).collect();
        assert_eq!(offsets, vec![-1, 1, 1, 2]);
        assert_eq!(
            wanted.try_recv().ok(),
            Some(SnapshotWork::Build),
            "3 records' bytes ask for a snapshot"
        );
        let snapshot = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("build");
        assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(3));

        let (tx, _wanted) = mpsc::unbounded_channel();
        let mut restarted = StateMachine::open(dir.path(), three, tx).expect("reopen");
        let image = restarted.image_sender().borrow().clone();
        assert_eq!(image.offset, 2);
        assert_eq!(image.broker_config("").len(), 3);
        let (last, _) = restarted.applied_state().await.expect("state");
        assert_eq!(last.map(|l| l.index), Some(3));
        let answers = restarted
            .apply(vec![entry(4, batch(&["d"]))])
            .await
            .expect("apply");
        assert_eq!(answers[0].last_offset, 3);
    }

    #[tokio::test]
    async fn an_installed_snapshot_replaces_the_image() {
        let leader_dir = tempfile::tempdir().expect("tempdir");
        let (tx, _w) = mpsc::unbounded_channel();
        let mut leader =
            StateMachine::open(leader_dir.path(), by_bytes(1 << 20), tx).expect("open");
        leader
            .apply(vec![entry(0, batch(&["a", "b"]))])
            .await
            .expect("apply");
        let snapshot = leader
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("build");

        let dir = tempfile::tempdir().expect("tempdir");
        let (tx, _w) = mpsc::unbounded_channel();
        let mut follower = StateMachine::open(dir.path(), by_bytes(1 << 20), tx).expect("open");
        follower
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .expect("install");
        let image = follower.image_sender().borrow().clone();
        assert_eq!(image.offset, 1);
        assert_eq!(image.broker_config("").len(), 2);
        let current = follower
            .get_current_snapshot()
            .await
            .expect("current")
            .expect("some");
        assert_eq!(current.meta, snapshot.meta);
    }

    #[test]
    fn the_log_is_purged_to_the_previous_snapshot_or_the_kept_count() {
        // At most `kept` entries are kept...
        assert_eq!(purge_point(1000, 5000, None), Some(4000));
        assert_eq!(purge_point(1000, 5000, Some(3000)), Some(4000));
        // ... and never more than one snapshot's worth.
        assert_eq!(purge_point(1000, 5000, Some(4500)), Some(4500));
        assert_eq!(purge_point(1000, 10, None), None);
        assert_eq!(purge_point(1000, 10, Some(8)), Some(8));
        assert_eq!(purge_point(0, 10, Some(8)), Some(10));
    }

    #[tokio::test]
    async fn the_interval_asks_for_a_snapshot_only_after_new_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tx, mut wanted) = mpsc::unbounded_channel();
        // An interval that has always passed: only new records decide.
        let triggers = SnapshotTriggers {
            max_record_bytes: 1 << 20,
            max_interval: Some(Duration::ZERO),
            entries_kept: 0,
        };
        let mut sm = StateMachine::open(dir.path(), triggers, tx).expect("open");
        let probe = sm.snapshot_probe();
        assert!(!probe.due_by_time(), "nothing to snapshot yet");
        sm.apply(vec![entry(0, EntryPayload::Blank)])
            .await
            .expect("apply");
        assert!(wanted.try_recv().is_err(), "a blank entry is no record");
        sm.apply(vec![entry(1, batch(&["a"]))])
            .await
            .expect("apply");
        assert_eq!(
            wanted.try_recv().ok(),
            Some(SnapshotWork::Build),
            "a new record after the interval"
        );
        assert!(!probe.due_by_time(), "already asked for");
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("build");
        assert_eq!(probe.offset(), Some(0));
        assert_eq!(wanted.try_recv().ok(), Some(SnapshotWork::PurgeUpTo(1)));
        assert!(!probe.due_by_time(), "the snapshot covers every record");
        sm.apply(vec![entry(2, batch(&["b"]))])
            .await
            .expect("apply");
        assert_eq!(wanted.try_recv().ok(), Some(SnapshotWork::Build));
    }
}
