//! The partitions this broker hosts, kept in step with the metadata image
//! (Kafka's `ReplicaManager` applying a metadata delta).
//!
//! Each published image is applied in order: partitions newly assigned to
//! this broker get a log (created, or adopted from disk when its topic id
//! matches), partitions of deleted topics lose theirs, and leadership and
//! topic configs are refreshed. Request handlers that changed metadata wait
//! for [`PartitionManager::wait_applied`] so a client sees its own change.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use millrace_metadata::MetadataImage;
use millrace_storage::{LogManager, StorageError, TopicPartition};
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::partition::{LeaderState, Partition};
use crate::topic_settings::TopicSettings;

/// Partitions hosted by this broker, by topic name and index.
pub struct PartitionManager {
    node_id: i32,
    log_manager: Arc<LogManager>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    applied: watch::Sender<i64>,
}

impl PartitionManager {
    /// An empty manager over `log_manager`'s logs.
    pub fn new(node_id: i32, log_manager: Arc<LogManager>) -> Self {
        let (applied, _) = watch::channel(-1);
        PartitionManager {
            node_id,
            log_manager,
            partitions: RwLock::new(HashMap::new()),
            applied,
        }
    }

    /// The hosted partition, if any.
    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        let key = TopicPartition {
            topic: topic.to_string(),
            partition,
        };
        self.partitions.read().get(&key).cloned()
    }

    /// Every hosted partition.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// The log manager behind the partitions.
    pub fn log_manager(&self) -> &Arc<LogManager> {
        &self.log_manager
    }

    /// Offset of the last metadata image applied.
    pub fn applied_offset(&self) -> i64 {
        *self.applied.borrow()
    }

    /// Waits until the image at `offset` (or later) has been applied, or
    /// `timeout` passes. Returns whether it was applied.
    pub async fn wait_applied(&self, offset: i64, timeout: Duration) -> bool {
        let mut rx = self.applied.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|&applied| applied >= offset))
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false)
    }

    /// Brings hosted partitions in line with `image`. `settings_for` gives
    /// the effective settings of a topic. On the first call
    /// (`remove_strays`), logs on disk that the image does not assign to this
    /// broker (topics deleted while it was down) are deleted too.
    pub fn apply(
        &self,
        image: &MetadataImage,
        settings_for: &dyn Fn(&str) -> Arc<TopicSettings>,
        remove_strays: bool,
    ) {
        let mut wanted: HashSet<TopicPartition> = HashSet::new();
        for topic in image.topics_by_id.values() {
            let settings = settings_for(&topic.name);
            let name: Arc<str> = Arc::from(topic.name.as_str());
            for (&index, registration) in &topic.partitions {
                if !registration.replicas.contains(&self.node_id) {
                    continue;
                }
                let tp = TopicPartition {
                    topic: topic.name.clone(),
                    partition: index,
                };
                wanted.insert(tp.clone());
                let state = LeaderState {
                    leader: registration.leader,
                    leader_epoch: registration.leader_epoch,
                    partition_epoch: registration.partition_epoch,
                    replicas: registration.replicas.clone(),
                    isr: registration.isr.clone(),
                };
                let existing = self.partitions.read().get(&tp).cloned();
                match existing {
                    Some(partition) if partition.topic_id() == topic.id => {
                        partition.update_leader_state(state);
                        if *partition.settings() != *settings {
                            partition.update_settings(settings.clone());
                        }
                    }
                    stale => {
                        if stale.is_some() {
                            self.remove(&tp);
                        }
                        match self.open_partition(&tp, &name, topic.id, state, &settings) {
                            Ok(partition) => {
                                self.partitions.write().insert(tp, partition);
                            }
                            Err(e) => {
                                tracing::error!(partition = %tp, error = %e, "cannot open log");
                            }
                        }
                    }
                }
            }
        }
        let gone: Vec<TopicPartition> = self
            .partitions
            .read()
            .keys()
            .filter(|tp| !wanted.contains(*tp))
            .cloned()
            .collect();
        for tp in gone {
            self.remove(&tp);
        }
        if remove_strays {
            for log in self.log_manager.logs() {
                let tp = log.topic_partition().clone();
                if !wanted.contains(&tp) {
                    tracing::info!(partition = %tp, "deleting a log whose topic no longer exists");
                    if let Err(e) = self.log_manager.delete(&tp) {
                        tracing::error!(partition = %tp, error = %e, "cannot delete stray log");
                    }
                }
            }
        }
    }

    /// Records that everything derived from the image at `offset` (the
    /// partitions and the coordinators' leadership) is in place, waking
    /// [`PartitionManager::wait_applied`]. Separate from [`PartitionManager::apply`]
    /// so a request that waited never sees a partition whose coordinator is
    /// not elected yet.
    pub fn mark_applied(&self, offset: i64) {
        self.applied.send_if_modified(|applied| {
            if offset > *applied {
                *applied = offset;
                true
            } else {
                false
            }
        });
    }

    /// Opens (or creates) the log of `tp` and wraps it. A log left on disk by
    /// an older topic of the same name is deleted first.
    fn open_partition(
        &self,
        tp: &TopicPartition,
        name: &Arc<str>,
        topic_id: uuid::Uuid,
        state: LeaderState,
        settings: &Arc<TopicSettings>,
    ) -> Result<Arc<Partition>, StorageError> {
        let log = match self.log_manager.get_or_create(tp, topic_id, settings.log) {
            Err(StorageError::TopicIdMismatch { .. }) => {
                tracing::info!(partition = %tp, "replacing the log of a deleted topic with the same name");
                self.log_manager.delete(tp)?;
                self.log_manager.get_or_create(tp, topic_id, settings.log)?
            }
            other => other?,
        };
        Ok(Arc::new(Partition::new(
            name.clone(),
            topic_id,
            tp.partition,
            self.node_id,
            log,
            state,
            settings.clone(),
        )))
    }

    /// Drops a partition this broker no longer replicates (its topic was
    /// deleted, or a reassignment moved it away) and deletes its log.
    /// Requests still waiting on it (acks=all, long-poll fetches) are told
    /// it is no longer led here, so clients go to the new leader at once.
    fn remove(&self, tp: &TopicPartition) {
        let removed = self.partitions.write().remove(tp);
        if let Some(partition) = removed {
            partition.resign();
            if let Err(e) = self.log_manager.delete(tp) {
                tracing::error!(partition = %tp, error = %e, "cannot delete log");
            }
        }
    }
}
