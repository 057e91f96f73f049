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

struct Applied {
    image: MetadataImage,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, openraft::BasicNode>,
    /// Whether a snapshot was asked for and has not been taken yet.
    snapshot_requested: bool,
}

struct Shared {
    dir: PathBuf,
    applied: Mutex<Applied>,
    /// The latest snapshot; its lock also serialises writing the file.
    snapshot: Mutex<Option<StoredSnapshot>>,
    image_tx: watch::Sender<Arc<MetadataImage>>,
    snapshot_every_records: u64,
    /// Asks the quorum to have openraft build a snapshot.
    snapshot_wanted: mpsc::UnboundedSender<()>,
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
    /// `snapshot_wanted` receives a message whenever `snapshot_every_records`
    /// records were applied since the last snapshot.
    pub(crate) fn open(
        dir: &Path,
        snapshot_every_records: u64,
        snapshot_wanted: mpsc::UnboundedSender<()>,
    ) -> Result<StateMachine, StoreError> {
        let stored: Option<StoredSnapshot> = files::read_checked(&dir.join(SNAPSHOT_FILE))?;
        let applied = match &stored {
            Some(s) => Applied {
                image: s.payload.rebuild(),
                last_applied: s.meta.last_log_id,
                membership: s.meta.last_membership.clone(),
                snapshot_requested: false,
            },
            None => Applied {
                image: MetadataImage::empty(),
                last_applied: None,
                membership: StoredMembership::default(),
                snapshot_requested: false,
            },
        };
        let (image_tx, _) = watch::channel(Arc::new(applied.image.clone()));
        Ok(StateMachine {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                applied: Mutex::new(applied),
                image_tx,
                snapshot_every_records: snapshot_every_records.max(1),
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
}

impl Shared {
    fn snapshot_offset(&self) -> i64 {
        self.snapshot_offset.load(Ordering::Acquire)
    }

    /// Saves `stored` as the latest snapshot unless a newer one is already
    /// saved (a build and an install can race). Returns whether it was saved.
    fn save_snapshot(&self, stored: StoredSnapshot) -> Result<bool, StoreError> {
        let mut current = self.snapshot.lock();
        if let Some(existing) = current.as_ref() {
            if existing.meta.last_log_id > stored.meta.last_log_id {
                return Ok(false);
            }
        }
        files::write_checked(&self.dir, SNAPSHOT_FILE, &stored)?;
        self.snapshot_offset
            .store(stored.payload.image_offset, Ordering::Release);
        *current = Some(stored);
        Ok(true)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (payload, last_applied, membership) = {
            let applied = self.shared.applied.lock();
            (
                SnapshotPayload::of(&applied.image),
                applied.last_applied,
                applied.membership.clone(),
            )
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
        let saved = tokio::task::spawn_blocking(move || shared.save_snapshot(to_save))
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, AnyError::new(&e)))?
            .map_err(|e| {
                StorageIOError::write_snapshot(Some(stored.meta.signature()), AnyError::new(&e))
            })?;
        self.shared.applied.lock().snapshot_requested = false;
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
            let since_snapshot = applied.image.offset - self.shared.snapshot_offset();
            if !applied.snapshot_requested
                && since_snapshot >= self.shared.snapshot_every_records as i64
            {
                applied.snapshot_requested = true;
                let _ = self.shared.snapshot_wanted.send(());
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
        let saved = tokio::task::spawn_blocking(move || shared.save_snapshot(stored))
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
            applied.snapshot_requested = false;
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

    #[tokio::test]
    async fn offsets_count_records_not_entries_and_snapshots_restore_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tx, mut wanted) = mpsc::unbounded_channel();
        let mut sm = StateMachine::open(dir.path(), 3, tx).expect("open");
        let answers = sm
            .apply(vec![
                entry(0, EntryPayload::Blank),
                entry(1, batch(&["a", "b"])),
                entry(2, EntryPayload::Blank),
                entry(3, batch(&["c"])),
            ])
            .await
            .expect("apply");
        let offsets: Vec<i64> = answers.iter().map(|a| a.last_offset).collect();
        assert_eq!(offsets, vec![-1, 1, 1, 2]);
        assert!(wanted.try_recv().is_ok(), "3 records ask for a snapshot");
        let snapshot = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("build");
        assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(3));

        let (tx, _wanted) = mpsc::unbounded_channel();
        let mut restarted = StateMachine::open(dir.path(), 3, tx).expect("reopen");
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
        let mut leader = StateMachine::open(leader_dir.path(), 100, tx).expect("open");
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
        let mut follower = StateMachine::open(dir.path(), 100, tx).expect("open");
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
}
