//! Hosting the group and transaction coordinators on this broker.
//!
//! Both coordinators are libraries that keep their state in compacted
//! internal topics (`__consumer_offsets`, `__transaction_state`). This module
//! gives them those topics (appends that wait for the high watermark, reads
//! for loading), creates the topics on first use as Kafka does, hands them
//! producer-id blocks from the metadata controller, writes transaction
//! markers to local partitions, and tells them when this broker gains or
//! loses leadership of one of their partitions, so a coordinator follows its
//! partition's leader (which matters once partitions are replicated).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::future::{FutureExt, Shared};
use millrace_config::BrokerConfig;
use millrace_group_coordinator::{
    ConsumerGroupConfig, GroupCoordinator, GroupCoordinatorConfig, LogChunk as GroupLogChunk,
    OffsetsLog,
};
use millrace_metadata::controller::CreateTopicSpec;
use millrace_metadata::MetadataImage;
use millrace_protocol::ErrorCode;
use millrace_txn_coordinator::{
    LogChunk as TxnLogChunk, MarkerRequest, MarkerWriter, ProducerIdBlock, ProducerIdSource,
    TopicPartition as TxnTopicPartition, TransactionCoordinator, TransactionLog,
    TxnCoordinatorConfig,
};
use parking_lot::Mutex;

use crate::broker::Broker;
use crate::partition::{Isolation, Partition};

/// Kafka's group metadata topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Kafka's transaction state topic.
pub const TXN_STATE_TOPIC: &str = "__transaction_state";
/// Producer ids handed out per controller round trip (Kafka's block size).
const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// How long a coordinator append may wait for replication
/// (`offsets.commit.timeout.ms` plays this role for groups).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;

/// The two coordinators and which of their partitions this broker leads.
pub struct Coordinators {
    group: Arc<GroupCoordinator>,
    txn: Arc<TransactionCoordinator>,
    /// `(topic, partition) -> leader epoch` for the partitions we lead.
    elected: Mutex<HashMap<(String, i32), i32>>,
    /// Internal-topic creations in flight, shared by every request waiting
    /// on one: a creation can take as long as the metadata quorum needs.
    creating: Mutex<HashMap<String, Shared<BoxFuture<bool>>>>,
}

impl Coordinators {
    /// Builds both coordinators over `broker`'s partitions.
    pub fn new(broker: Weak<Broker>, config: &BrokerConfig) -> Coordinators {
        let group_config = GroupCoordinatorConfig {
            offsets_topic_partitions: config.offsets_topic_num_partitions(),
            group_initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms(),
            group_min_session_timeout_ms: config.group_min_session_timeout_ms(),
            group_max_session_timeout_ms: config.group_max_session_timeout_ms(),
            group_max_size: config.group_max_size(),
            offsets_retention_ms: config.offsets_retention_ms(),
            offsets_retention_check_interval_ms: config.offsets_retention_check_interval_ms(),
            offset_metadata_max_bytes: config.offset_metadata_max_bytes(),
        };
        let txn_config = TxnCoordinatorConfig {
            transaction_state_partitions: config.transaction_state_log_num_partitions(),
            offsets_topic_partitions: config.offsets_topic_num_partitions(),
            transaction_max_timeout_ms: config.transaction_max_timeout_ms(),
            transactional_id_expiration_ms: i64::from(config.transactional_id_expiration_ms()),
            abort_timed_out_transaction_cleanup_interval_ms: config
                .transaction_abort_timed_out_transaction_cleanup_interval_ms()
                .max(1) as u64,
            remove_expired_transaction_cleanup_interval_ms: config
                .transaction_remove_expired_transaction_cleanup_interval_ms()
                .max(1) as u64,
            ..TxnCoordinatorConfig::default()
        };
        let logs = Arc::new(InternalTopicLog {
            broker: broker.clone(),
        });
        let group = GroupCoordinator::new(group_config, logs.clone());
        group.set_consumer_group_config(ConsumerGroupConfig {
            consumer_group_session_timeout_ms: config.group_consumer_session_timeout_ms(),
            consumer_group_heartbeat_interval_ms: config.group_consumer_heartbeat_interval_ms(),
            consumer_group_max_size: config.group_consumer_max_size(),
            consumer_group_assignors: config.group_consumer_assignors(),
        });
        // KIP-848 assignment reads topic ids and partition counts from the
        // latest metadata image.
        let images = broker.clone();
        group.set_topic_resolver(Arc::new(move |topic: &str| {
            let broker = images.upgrade()?;
            let image = broker.image();
            let t = image.topic(topic)?;
            Some((t.id, t.partitions.len() as i32))
        }));
        let markers = Arc::new(LocalMarkerWriter {
            broker: broker.clone(),
            group: Arc::downgrade(&group),
        });
        let txn = TransactionCoordinator::new(
            txn_config,
            logs,
            Arc::new(ControllerProducerIds { broker }),
            markers,
        );
        Coordinators {
            group,
            txn,
            elected: Mutex::new(HashMap::new()),
            creating: Mutex::new(HashMap::new()),
        }
    }

    /// The group coordinator.
    pub fn group(&self) -> &Arc<GroupCoordinator> {
        &self.group
    }

    /// The transaction coordinator.
    pub fn txn(&self) -> &Arc<TransactionCoordinator> {
        &self.txn
    }

    /// Elects or resigns the coordinators for the internal partitions whose
    /// leadership changed in `image`.
    pub fn sync_leadership(&self, image: &MetadataImage, node_id: i32) {
        let mut now: HashMap<(String, i32), i32> = HashMap::new();
        for topic in [OFFSETS_TOPIC, TXN_STATE_TOPIC] {
            if let Some(t) = image.topic(topic) {
                for (&index, p) in &t.partitions {
                    if p.leader == node_id {
                        now.insert((topic.to_string(), index), p.leader_epoch);
                    }
                }
            }
        }
        let mut elected = self.elected.lock();
        for ((topic, index), epoch) in elected.iter() {
            if now.get(&(topic.clone(), *index)) != Some(epoch) {
                self.resign(topic, *index, *epoch);
            }
        }
        for ((topic, index), epoch) in &now {
            if elected.get(&(topic.clone(), *index)) != Some(epoch) {
                tracing::debug!(topic, partition = index, epoch, "coordinator elected");
                if topic == OFFSETS_TOPIC {
                    self.group.on_elected(*index, *epoch);
                } else {
                    self.txn.on_elected(*index, *epoch);
                }
            }
        }
        *elected = now;
    }

    fn resign(&self, topic: &str, index: i32, epoch: i32) {
        tracing::debug!(topic, partition = index, epoch, "coordinator resigned");
        if topic == OFFSETS_TOPIC {
            self.group.on_resigned(index, epoch);
        } else {
            self.txn.on_resigned(index, epoch);
        }
    }

    /// Stops the coordinators' timers.
    pub fn shutdown(&self) {
        self.group.shutdown();
        self.txn.shutdown();
    }
}

/// Creates `topic` (an internal topic) if it does not exist, with the
/// partition count, replication factor and configs Kafka gives it, and waits
/// until this broker has applied it. Returns false when it cannot exist yet
/// (for example fewer brokers than its replication factor): the caller
/// answers COORDINATOR_NOT_AVAILABLE and the client retries.
pub async fn ensure_internal_topic(broker: &Arc<Broker>, topic: &str) -> bool {
    let creation = {
        let mut creating = broker.coordinators().creating.lock();
        creating
            .entry(topic.to_string())
            .or_insert_with(|| {
                let (broker, topic) = (broker.clone(), topic.to_string());
                let task =
                    tokio::spawn(async move { create_internal_topic(&broker, &topic).await });
                async move { task.await.unwrap_or(false) }.boxed().shared()
            })
            .clone()
    };
    // Kafka answers COORDINATOR_NOT_AVAILABLE while the creation goes on
    // rather than holding the request; the client asks again.
    let outcome = tokio::time::timeout(INTERNAL_TOPIC_WAIT, creation).await;
    if outcome.is_ok() {
        broker.coordinators().creating.lock().remove(topic);
    }
    outcome.unwrap_or(false)
}

/// How long a request waits for an internal topic's creation.
const INTERNAL_TOPIC_WAIT: Duration = Duration::from_secs(5);

async fn create_internal_topic(broker: &Arc<Broker>, topic: &str) -> bool {
    let image = broker.image();
    if image.topic(topic).is_some() {
        // The controller's image may be ahead of what this broker applied:
        // answer only once the coordinator for it is elected here.
        return broker
            .partitions()
            .wait_applied(image.offset, Duration::from_secs(5))
            .await;
    }
    let config = broker.static_config();
    let brokers = broker.image().brokers.len() as i16;
    let (partitions, replication, mut configs) = if topic == OFFSETS_TOPIC {
        (
            config.offsets_topic_num_partitions(),
            config.offsets_topic_replication_factor(),
            vec![(
                "segment.bytes".to_string(),
                Some(config.offsets_topic_segment_bytes().to_string()),
            )],
        )
    } else {
        (
            config.transaction_state_log_num_partitions(),
            config.transaction_state_log_replication_factor(),
            vec![
                (
                    "segment.bytes".to_string(),
                    Some(config.transaction_state_log_segment_bytes().to_string()),
                ),
                (
                    "min.insync.replicas".to_string(),
                    Some(config.transaction_state_log_min_isr().to_string()),
                ),
            ],
        )
    };
    if replication > brokers {
        tracing::warn!(
            topic,
            replication,
            brokers,
            "cannot create the internal topic until enough brokers are registered"
        );
        return false;
    }
    configs.push(("cleanup.policy".to_string(), Some("compact".to_string())));
    configs.push(("compression.type".to_string(), Some("producer".to_string())));
    let spec = CreateTopicSpec {
        name: topic.to_string(),
        num_partitions: partitions,
        replication_factor: replication,
        assignments: BTreeMap::new(),
        configs,
    };
    let controller = broker.controller().clone();
    let created = tokio::task::spawn_blocking(move || controller.create_topics(vec![spec], false))
        .await
        .ok();
    let Some((results, offset)) = created else {
        return false;
    };
    match results.into_iter().next() {
        Some(Ok(_)) => {}
        Some(Err(e)) if e.code == ErrorCode::TopicAlreadyExists => {}
        Some(Err(e)) => {
            tracing::error!(topic, error = %e, "cannot create internal topic");
            return false;
        }
        None => return false,
    }
    broker
        .partitions()
        .wait_applied(offset, Duration::from_secs(5))
        .await
}

/// `__consumer_offsets` and `__transaction_state` as the coordinators see
/// them.
struct InternalTopicLog {
    broker: Weak<Broker>,
}

impl InternalTopicLog {
    fn partition(&self, topic: &str, index: i32) -> Result<Arc<Partition>, ErrorCode> {
        let broker = self.broker.upgrade().ok_or(ErrorCode::NotCoordinator)?;
        broker
            .partitions()
            .get(topic, index)
            .ok_or(ErrorCode::NotCoordinator)
    }

    fn append(
        &self,
        topic: &'static str,
        index: i32,
        batch: Bytes,
    ) -> BoxFuture<Result<i64, ErrorCode>> {
        let partition = self.partition(topic, index);
        Box::pin(async move {
            let partition = partition?;
            let (base, end) = partition.append_coordinator_batch(&batch)?;
            partition.wait_committed(end, COMMIT_TIMEOUT).await?;
            Ok(base)
        })
    }

    fn read(
        &self,
        topic: &'static str,
        index: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<(Bytes, i64, i64), ErrorCode> {
        let partition = self.partition(topic, index)?;
        let read = partition.read(offset, max_bytes, true, Isolation::ReadUncommitted)?;
        Ok((read.records, read.log_start_offset, read.high_watermark))
    }
}

impl OffsetsLog for InternalTopicLog {
    fn append(&self, partition: i32, batch: Bytes) -> BoxFuture<Result<i64, ErrorCode>> {
        InternalTopicLog::append(self, OFFSETS_TOPIC, partition, batch)
    }

    fn read(
        &self,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> BoxFuture<Result<GroupLogChunk, ErrorCode>> {
        let result = InternalTopicLog::read(self, OFFSETS_TOPIC, partition, offset, max_bytes);
        Box::pin(async move {
            let (records, log_start_offset, high_watermark) = result?;
            Ok(GroupLogChunk {
                records,
                log_start_offset,
                high_watermark,
            })
        })
    }
}

impl TransactionLog for InternalTopicLog {
    fn append(&self, partition: i32, batch: Bytes) -> BoxFuture<Result<i64, ErrorCode>> {
        InternalTopicLog::append(self, TXN_STATE_TOPIC, partition, batch)
    }

    fn read(
        &self,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> BoxFuture<Result<TxnLogChunk, ErrorCode>> {
        let result = InternalTopicLog::read(self, TXN_STATE_TOPIC, partition, offset, max_bytes);
        Box::pin(async move {
            let (records, log_start_offset, high_watermark) = result?;
            Ok(TxnLogChunk {
                records,
                log_start_offset,
                high_watermark,
            })
        })
    }
}

/// Producer-id blocks from the metadata controller (KIP-730).
struct ControllerProducerIds {
    broker: Weak<Broker>,
}

impl ProducerIdSource for ControllerProducerIds {
    fn allocate_block(&self) -> BoxFuture<Result<ProducerIdBlock, ErrorCode>> {
        let broker = self.broker.upgrade();
        Box::pin(async move {
            let broker = broker.ok_or(ErrorCode::CoordinatorNotAvailable)?;
            let controller = broker.controller().clone();
            let node_id = broker.node_id();
            let first = tokio::task::spawn_blocking(move || {
                controller.allocate_producer_ids(node_id, PRODUCER_ID_BLOCK_SIZE)
            })
            .await
            .map_err(|_| ErrorCode::UnknownServerError)?
            .map_err(|e| e.code)?;
            Ok(ProducerIdBlock {
                first_id: first,
                len: PRODUCER_ID_BLOCK_SIZE,
            })
        })
    }
}

/// Writes transaction markers to the partitions this broker leads; the
/// `__consumer_offsets` ones also settle the group coordinator's pending
/// transactional offsets. (Markers for partitions led elsewhere go through
/// WriteTxnMarkers once partitions are spread over brokers.)
struct LocalMarkerWriter {
    broker: Weak<Broker>,
    group: Weak<GroupCoordinator>,
}

impl MarkerWriter for LocalMarkerWriter {
    fn write_markers(
        &self,
        request: MarkerRequest,
    ) -> BoxFuture<Vec<(TxnTopicPartition, Result<(), ErrorCode>)>> {
        let broker = self.broker.upgrade();
        let group = self.group.upgrade();
        Box::pin(async move {
            let Some(broker) = broker else {
                return request
                    .partitions
                    .into_iter()
                    .map(|tp| (tp, Err(ErrorCode::NotLeaderOrFollower)))
                    .collect();
            };
            let mut results = Vec::with_capacity(request.partitions.len());
            for tp in request.partitions {
                let result = write_marker(
                    &broker,
                    group.as_deref(),
                    &tp.topic,
                    tp.partition,
                    request.producer_id,
                    request.producer_epoch,
                    request.commit,
                    request.coordinator_epoch,
                )
                .await;
                results.push((tp, result));
            }
            results
        })
    }
}

/// Appends one marker and waits for it to be committed (Kafka's
/// WriteTxnMarkers path, shared with that handler).
#[allow(clippy::too_many_arguments)]
pub async fn write_marker(
    broker: &Arc<Broker>,
    group: Option<&GroupCoordinator>,
    topic: &str,
    index: i32,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
) -> Result<(), ErrorCode> {
    let Some(partition) = broker.partitions().get(topic, index) else {
        return Err(broker.unhosted_partition_error(topic, index));
    };
    let end =
        partition.append_txn_marker(producer_id, producer_epoch, commit, coordinator_epoch)?;
    if topic == OFFSETS_TOPIC {
        if let Some(group) = group {
            group.complete_transaction(index, producer_id, commit);
        }
    }
    partition.wait_committed(end, COMMIT_TIMEOUT).await
}
