//! Kafka 3.7's group coordinator as a library the broker calls.
//!
//! The coordinator owns the `__consumer_offsets` partitions this broker
//! leads: for each, it loads the groups and offsets from the log (offset
//! commits, classic group metadata, KIP-848 consumer group records,
//! transactional offsets and their markers), serves the group APIs for the
//! groups that hash to it, and appends every change back as Kafka's record
//! formats, so the topic reads like one written by Kafka.
//!
//! # Layout
//!
//! - [`records`]: the `__consumer_offsets` key/value schemas.
//! - `classic`: JoinGroup/SyncGroup/Heartbeat/LeaveGroup state machine.
//! - `consumer` and [`assignor`]: the KIP-848 protocol and its server-side
//!   `uniform` and `range` assignors.
//! - `offsets`: commits, fetches, deletes, expiry, DeleteGroups.
//! - `shard`: one partition's state, ordered writer and load.
//! - `timer`: keyed deadlines on tokio time.
//!
//! Every API takes the decoded request and its version and returns the
//! whole response; the broker only encodes it. Requests for groups on
//! partitions this coordinator does not lead answer NOT_COORDINATOR, and
//! those still loading COORDINATOR_LOAD_IN_PROGRESS.

pub mod assignor;
mod classic;
mod consumer;
mod offsets;
pub mod records;
mod shard;
mod timer;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::consumer_group_describe_response as cgd;
use kafka_protocol::messages::consumer_group_heartbeat_response as cgh;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, DeleteGroupsRequest, DeleteGroupsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;
use millrace_protocol::control::coordinator_partition;
pub use millrace_protocol::ErrorCode;
use parking_lot::RwLock;
use uuid::Uuid;

use classic::{JoinParams, JoinResult, JoinWait, SyncResult, SyncWait};
use offsets::{CommitPartition, CommitWho, FetchedPartition};
use shard::Shard;

/// A boxed future the [`OffsetsLog`] returns, so the trait stays object safe.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;

/// The `__consumer_offsets` partitions as the broker exposes them to the
/// coordinator: the coordinator never touches storage itself, so the same
/// code runs over a real log, a replicated one, or a test double.
pub trait OffsetsLog: Send + Sync + 'static {
    /// Appends one v2 record batch (built by the coordinator with base
    /// offset 0; the log assigns offsets) to `partition` as leader and
    /// resolves once it is committed (acks=all), with its base offset.
    /// Transactional batches (TxnOffsetCommit) carry the producer id/epoch
    /// and base sequence -1.
    fn append(&self, partition: i32, batch: Bytes) -> BoxFuture<Result<i64, ErrorCode>>;
    /// Reads whole batches starting at `offset` (at least one batch if any
    /// exist), for loading.
    fn read(
        &self,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> BoxFuture<Result<LogChunk, ErrorCode>>;
}

/// What [`OffsetsLog::read`] returns.
#[derive(Debug, Clone, Default)]
pub struct LogChunk {
    /// Whole batches.
    pub records: Bytes,
    /// The partition's log start offset (loading starts there).
    pub log_start_offset: i64,
    /// The high watermark (loading stops there).
    pub high_watermark: i64,
}

/// Topic metadata for KIP-848 server-side assignment: topic name to
/// (topic id, partition count), `None` when the topic does not exist.
/// Kept as a trait so the broker can answer from its metadata image.
pub trait TopicResolver: Send + Sync + 'static {
    /// Looks a topic up.
    fn resolve(&self, topic: &str) -> Option<(Uuid, i32)>;
}

impl<F> TopicResolver for F
where
    F: Fn(&str) -> Option<(Uuid, i32)> + Send + Sync + 'static,
{
    fn resolve(&self, topic: &str) -> Option<(Uuid, i32)> {
        self(topic)
    }
}

/// The coordinator's settings, named after Kafka's broker configs, with
/// Kafka 3.7's defaults.
#[derive(Debug, Clone)]
pub struct GroupCoordinatorConfig {
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_partitions: i32,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: i32,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size`.
    pub group_max_size: i32,
    /// `offsets.retention.minutes` in milliseconds.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: i32,
}

/// The KIP-848 settings, apart from [`GroupCoordinatorConfig`] so a broker
/// that builds that struct field by field keeps compiling; set them with
/// [`GroupCoordinator::set_consumer_group_config`].
#[derive(Debug, Clone)]
pub struct ConsumerGroupConfig {
    /// `group.consumer.session.timeout.ms`.
    pub consumer_group_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`.
    pub consumer_group_heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`.
    pub consumer_group_max_size: i32,
    /// `group.consumer.assignors`; the first is the default.
    pub consumer_group_assignors: Vec<String>,
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        ConsumerGroupConfig {
            consumer_group_session_timeout_ms: 45_000,
            consumer_group_heartbeat_interval_ms: 5000,
            consumer_group_max_size: i32::MAX,
            consumer_group_assignors: vec!["uniform".to_string(), "range".to_string()],
        }
    }
}

impl Default for GroupCoordinatorConfig {
    fn default() -> Self {
        GroupCoordinatorConfig {
            offsets_topic_partitions: 50,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: i32::MAX,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
        }
    }
}

/// Who sent a request, as DescribeGroups reports it.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The request header's client id.
    pub client_id: String,
    /// The peer address as Kafka prints it ("/127.0.0.1").
    pub client_host: String,
}

/// Wall-clock milliseconds driven by tokio time, so a paused test clock
/// moves commit timestamps and expiry too.
pub(crate) struct Clock {
    base_ms: i64,
    base: tokio::time::Instant,
}

impl Clock {
    fn new() -> Clock {
        let base_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Clock {
            base_ms,
            base: tokio::time::Instant::now(),
        }
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.base_ms + self.base.elapsed().as_millis() as i64
    }
}

/// What every partition shares.
pub(crate) struct Ctx {
    pub config: GroupCoordinatorConfig,
    pub clock: Clock,
    pub log: Arc<dyn OffsetsLog>,
    pub resolver: RwLock<Option<Arc<dyn TopicResolver>>>,
    pub consumer: RwLock<ConsumerGroupConfig>,
}

impl Ctx {
    /// The KIP-848 settings in force.
    pub(crate) fn consumer_config(&self) -> ConsumerGroupConfig {
        self.consumer.read().clone()
    }

    pub(crate) fn resolve(&self, topic: &str) -> Option<(Uuid, i32)> {
        self.resolver.read().as_ref().and_then(|r| r.resolve(topic))
    }
}

/// Kafka's mapping of a failed group metadata append to the error a
/// client understands (GroupMetadataManager.storeGroup).
pub(crate) fn map_group_write_error(e: ErrorCode) -> ErrorCode {
    match e {
        ErrorCode::UnknownTopicOrPartition
        | ErrorCode::NotEnoughReplicas
        | ErrorCode::NotEnoughReplicasAfterAppend
        | ErrorCode::RequestTimedOut => ErrorCode::CoordinatorNotAvailable,
        ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => ErrorCode::NotCoordinator,
        ErrorCode::MessageTooLarge
        | ErrorCode::RecordListTooLarge
        | ErrorCode::InvalidFetchSize => ErrorCode::UnknownServerError,
        other => other,
    }
}

/// The same mapping for offset commits (too-large batches are
/// INVALID_COMMIT_OFFSET_SIZE there).
pub(crate) fn map_offset_write_error(e: ErrorCode) -> ErrorCode {
    match e {
        ErrorCode::MessageTooLarge
        | ErrorCode::RecordListTooLarge
        | ErrorCode::InvalidFetchSize => ErrorCode::InvalidCommitOffsetSize,
        other => map_group_write_error(other),
    }
}

fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn code(e: Option<ErrorCode>) -> i16 {
    e.map_or(0, |e| e.code())
}

/// Kafka's group coordinator for the `__consumer_offsets` partitions this
/// broker leads. Shared as an `Arc`; every method may be called from any task.
pub struct GroupCoordinator {
    ctx: Arc<Ctx>,
    shards: RwLock<HashMap<i32, Arc<Shard>>>,
    shut_down: AtomicBool,
}

impl GroupCoordinator {
    /// Builds a coordinator that owns no partition yet.
    pub fn new(config: GroupCoordinatorConfig, log: Arc<dyn OffsetsLog>) -> Arc<Self> {
        Arc::new(GroupCoordinator {
            ctx: Arc::new(Ctx {
                config,
                clock: Clock::new(),
                log,
                resolver: RwLock::new(None),
                consumer: RwLock::new(ConsumerGroupConfig::default()),
            }),
            shards: RwLock::new(HashMap::new()),
            shut_down: AtomicBool::new(false),
        })
    }

    /// Gives the coordinator the topic metadata KIP-848 assignment needs.
    /// Without one, KIP-848 members subscribe to topics that do not exist.
    pub fn set_topic_resolver(&self, resolver: Arc<dyn TopicResolver>) {
        *self.ctx.resolver.write() = Some(resolver);
    }

    /// Sets the KIP-848 settings (defaults are Kafka 3.7's).
    pub fn set_consumer_group_config(&self, config: ConsumerGroupConfig) {
        *self.ctx.consumer.write() = config;
    }

    /// The settings in force.
    pub fn config(&self) -> &GroupCoordinatorConfig {
        &self.ctx.config
    }

    /// The `__consumer_offsets` partition that owns `group_id`.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        coordinator_partition(group_id, self.ctx.config.offsets_topic_partitions)
    }

    /// This broker became leader of offsets partition `partition` at
    /// `epoch`: its groups are loaded in the background, and until then
    /// their requests answer COORDINATOR_LOAD_IN_PROGRESS.
    pub fn on_elected(self: &Arc<Self>, partition: i32, epoch: i32) {
        if self.shut_down.load(Ordering::Acquire) {
            return;
        }
        let shard = {
            let mut shards = self.shards.write();
            if let Some(old) = shards.get(&partition) {
                if old.epoch >= epoch {
                    return;
                }
                old.close();
            }
            let shard = Shard::new(partition, epoch);
            shards.insert(partition, shard.clone());
            shard
        };
        tracing::info!(partition, epoch, "loading __consumer_offsets partition");
        tokio::spawn(shard.load(self.ctx.clone()));
    }

    /// Leadership of `partition` was lost: its groups are dropped and their
    /// parked requests answer NOT_COORDINATOR.
    pub fn on_resigned(&self, partition: i32, epoch: i32) {
        let mut shards = self.shards.write();
        if let Some(shard) = shards.get(&partition) {
            if epoch >= 0 && shard.epoch > epoch {
                return;
            }
            shard.close();
            shards.remove(&partition);
            tracing::info!(partition, epoch, "resigned __consumer_offsets partition");
        }
    }

    /// Whether `partition`'s groups are loaded.
    pub fn is_loaded(&self, partition: i32) -> bool {
        self.shards
            .read()
            .get(&partition)
            .is_some_and(|s| s.is_loaded())
    }

    /// Stops every timer and background task; every partition is given up.
    pub fn shutdown(&self) {
        self.shut_down.store(true, Ordering::Release);
        let shards: Vec<Arc<Shard>> = self.shards.write().drain().map(|(_, s)| s).collect();
        for s in shards {
            s.close();
        }
    }

    fn shard(&self, group_id: &str) -> Result<Arc<Shard>, ErrorCode> {
        self.shards
            .read()
            .get(&self.partition_for(group_id))
            .cloned()
            .ok_or(ErrorCode::NotCoordinator)
    }

    fn with<R>(
        &self,
        group_id: &str,
        f: impl FnOnce(&mut shard::ShardState) -> R,
    ) -> Result<R, ErrorCode> {
        self.shard(group_id)?.with(f)
    }

    /// JoinGroup (v0-v9). The response waits for the join phase.
    pub async fn join_group(
        &self,
        client: ClientInfo,
        version: i16,
        req: JoinGroupRequest,
    ) -> JoinGroupResponse {
        let group_id = req.group_id.to_string();
        let member_id = req.member_id.to_string();
        let result = if group_id.is_empty() {
            JoinResult::error(&member_id, ErrorCode::InvalidGroupId)
        } else {
            let params = JoinParams {
                group_id: group_id.clone(),
                member_id: member_id.clone(),
                group_instance_id: if version >= 5 {
                    req.group_instance_id.as_ref().map(|s| s.to_string())
                } else {
                    None
                },
                client_id: client.client_id,
                client_host: client.client_host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: if version == 0 {
                    req.session_timeout_ms
                } else {
                    req.rebalance_timeout_ms
                },
                protocol_type: req.protocol_type.to_string(),
                protocols: req
                    .protocols
                    .iter()
                    .map(|p| (p.name.to_string(), p.metadata.clone()))
                    .collect(),
                require_known_member_id: version >= 4,
                supports_skip_assignment: version >= 9,
            };
            match self.with(&group_id, |st| st.classic_join(params)) {
                Err(e) => JoinResult::error(&member_id, e),
                Ok(JoinWait::Done(r)) => r,
                Ok(JoinWait::Wait(rx)) => rx
                    .await
                    .unwrap_or_else(|_| JoinResult::error(&member_id, ErrorCode::NotCoordinator)),
            }
        };
        join_response(version, result)
    }

    /// SyncGroup (v0-v5). Followers wait for the leader's assignment, which
    /// is persisted before anyone is answered.
    pub async fn sync_group(&self, version: i16, req: SyncGroupRequest) -> SyncGroupResponse {
        let group_id = req.group_id.to_string();
        let result = if group_id.is_empty() {
            SyncResult::error(ErrorCode::InvalidGroupId)
        } else {
            let assignments: HashMap<String, Bytes> = req
                .assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect();
            let instance = if version >= 3 {
                req.group_instance_id.as_ref().map(|s| s.to_string())
            } else {
                None
            };
            let pt = req.protocol_type.as_ref().map(|s| s.to_string());
            let pn = req.protocol_name.as_ref().map(|s| s.to_string());
            match self.with(&group_id, |st| {
                st.classic_sync(
                    &group_id,
                    req.generation_id,
                    &req.member_id,
                    instance.as_deref(),
                    pt.as_deref(),
                    pn.as_deref(),
                    assignments,
                )
            }) {
                Err(e) => SyncResult::error(e),
                Ok(SyncWait::Done(r)) => r,
                Ok(SyncWait::Wait(rx)) => rx
                    .await
                    .unwrap_or_else(|_| SyncResult::error(ErrorCode::NotCoordinator)),
            }
        };
        let mut resp = SyncGroupResponse::default()
            .with_error_code(code(result.error))
            .with_assignment(result.assignment);
        if version >= 5 {
            resp.protocol_type = result.protocol_type.map(sb);
            resp.protocol_name = result.protocol_name.map(sb);
        }
        resp
    }

    /// Heartbeat (v0-v4).
    pub async fn heartbeat(&self, version: i16, req: HeartbeatRequest) -> HeartbeatResponse {
        let group_id = req.group_id.to_string();
        let instance = if version >= 3 {
            req.group_instance_id.as_ref().map(|s| s.to_string())
        } else {
            None
        };
        let error = if group_id.is_empty() {
            Some(ErrorCode::InvalidGroupId)
        } else {
            self.with(&group_id, |st| {
                st.classic_heartbeat(
                    &group_id,
                    req.generation_id,
                    &req.member_id,
                    instance.as_deref(),
                )
            })
            .unwrap_or_else(Some)
        };
        HeartbeatResponse::default().with_error_code(code(error))
    }

    /// LeaveGroup (v0-v5; v3+ batches members by id or instance id).
    pub async fn leave_group(&self, version: i16, req: LeaveGroupRequest) -> LeaveGroupResponse {
        let group_id = req.group_id.to_string();
        let members: Vec<(String, Option<String>)> = if version >= 3 {
            req.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|s| s.to_string()),
                    )
                })
                .collect()
        } else {
            vec![(req.member_id.to_string(), None)]
        };
        let result = if group_id.is_empty() {
            Err(ErrorCode::InvalidGroupId)
        } else {
            self.with(&group_id, |st| st.classic_leave(&group_id, &members))
                .and_then(|r| r)
        };
        match result {
            Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
            Ok(errors) => {
                if version >= 3 {
                    LeaveGroupResponse::default().with_members(
                        members
                            .into_iter()
                            .zip(errors)
                            .map(|((id, inst), e)| {
                                MemberResponse::default()
                                    .with_member_id(sb(id))
                                    .with_group_instance_id(inst.map(sb))
                                    .with_error_code(code(e))
                            })
                            .collect(),
                    )
                } else {
                    LeaveGroupResponse::default()
                        .with_error_code(code(errors.first().copied().flatten()))
                }
            }
        }
    }

    async fn commit(
        &self,
        who: CommitWho<'_>,
        parts: &[CommitPartition],
    ) -> Vec<Option<ErrorCode>> {
        let group_id = who.group_id.to_string();
        let txn = who.txn.map(|(p, _)| p);
        let pending = match self
            .with(&group_id, |st| st.offset_commit(who, parts))
            .and_then(|r| r)
        {
            Ok(p) => p,
            Err(e) => return vec![Some(e); parts.len()],
        };
        let mut errors = pending.errors;
        if pending.applied.is_empty() {
            return errors;
        }
        match pending.write.await {
            Ok(Ok(base)) => {
                let applied = pending.applied;
                if let Err(e) = self.with(&group_id, |st| {
                    st.apply_commit(&group_id, txn, parts, applied, base)
                }) {
                    return vec![Some(e); parts.len()];
                }
            }
            res => {
                let e = match res {
                    Ok(Err(e)) => map_offset_write_error(e),
                    _ => ErrorCode::NotCoordinator,
                };
                for (i, _) in pending.applied {
                    if let Some(slot) = errors.get_mut(i) {
                        *slot = Some(e);
                    }
                }
            }
        }
        errors
    }

    /// OffsetCommit (v2-v9): member commits are checked against the
    /// group's generation (or KIP-848 member epoch); simple commits
    /// (generation -1, no member) are accepted for Empty or unknown groups.
    pub async fn offset_commit(
        &self,
        version: i16,
        req: OffsetCommitRequest,
    ) -> OffsetCommitResponse {
        let parts: Vec<CommitPartition> = req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| CommitPartition {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p.committed_metadata.as_ref().map(|s| s.to_string()),
                })
            })
            .collect();
        let instance = if version >= 7 {
            req.group_instance_id.as_ref().map(|s| s.to_string())
        } else {
            None
        };
        let who = CommitWho {
            group_id: &req.group_id,
            generation_or_epoch: req.generation_id_or_member_epoch,
            member_id: &req.member_id,
            instance_id: instance.as_deref(),
            txn: None,
            retention_ms: if (2..=4).contains(&version) {
                req.retention_time_ms
            } else {
                -1
            },
        };
        let errors = self.commit(who, &parts).await;
        let mut errors = errors.into_iter();
        OffsetCommitResponse::default().with_topics(
            req.topics
                .iter()
                .map(|t| {
                    OffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code(errors.next().flatten()))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }

    /// TxnOffsetCommit (v0-v5): the offsets stay pending until the
    /// transaction's marker ([`GroupCoordinator::complete_transaction`]).
    pub async fn txn_offset_commit(
        &self,
        version: i16,
        req: TxnOffsetCommitRequest,
    ) -> TxnOffsetCommitResponse {
        let parts: Vec<CommitPartition> = req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| CommitPartition {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= 2 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p.committed_metadata.as_ref().map(|s| s.to_string()),
                })
            })
            .collect();
        let (generation, member, instance) = if version >= 3 {
            (
                req.generation_id,
                req.member_id.to_string(),
                req.group_instance_id.as_ref().map(|s| s.to_string()),
            )
        } else {
            (-1, String::new(), None)
        };
        let who = CommitWho {
            group_id: &req.group_id,
            generation_or_epoch: generation,
            member_id: &member,
            instance_id: instance.as_deref(),
            txn: Some((req.producer_id.0, req.producer_epoch)),
            retention_ms: -1,
        };
        let errors = if req.group_id.is_empty() {
            vec![Some(ErrorCode::InvalidGroupId); parts.len()]
        } else {
            self.commit(who, &parts).await
        };
        let mut errors = errors.into_iter();
        TxnOffsetCommitResponse::default().with_topics(
            req.topics
                .iter()
                .map(|t| {
                    TxnOffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    TxnOffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code(errors.next().flatten()))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }

    #[allow(clippy::type_complexity)]
    fn fetch_group(
        &self,
        group_id: &str,
        member: Option<(&str, i32)>,
        topics: Option<Vec<(String, Vec<i32>)>>,
        require_stable: bool,
    ) -> Result<Vec<(String, Vec<FetchedPartition>)>, ErrorCode> {
        self.with(group_id, |st| {
            st.offset_fetch(group_id, member, topics, require_stable)
        })
        .and_then(|r| r)
    }

    /// OffsetFetch (v1-v9; v8+ batches groups). Unknown partitions answer
    /// offset -1; `topics: null` returns every committed partition;
    /// `require_stable` answers UNSTABLE_OFFSET_COMMIT while a
    /// transactional commit of the partition is pending.
    pub async fn offset_fetch(&self, version: i16, req: OffsetFetchRequest) -> OffsetFetchResponse {
        let require_stable = version >= 7 && req.require_stable;
        if version >= 8 {
            let groups = req
                .groups
                .iter()
                .map(|g| {
                    let topics = g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                            .collect()
                    });
                    let member = g
                        .member_id
                        .as_ref()
                        .map(|m| (m.as_str(), g.member_epoch))
                        .filter(|(_, e)| version >= 9 && *e >= 0);
                    match self.fetch_group(&g.group_id, member, topics, require_stable) {
                        Err(e) => OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(e.code()),
                        Ok(topics) => OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_topics(
                                topics
                                    .into_iter()
                                    .map(|(t, ps)| {
                                        OffsetFetchResponseTopics::default()
                                            .with_name(TopicName(sb(t)))
                                            .with_partitions(
                                                ps.into_iter()
                                                    .map(|p| {
                                                        OffsetFetchResponsePartitions::default()
                                                            .with_partition_index(p.partition)
                                                            .with_committed_offset(p.offset)
                                                            .with_committed_leader_epoch(
                                                                p.leader_epoch,
                                                            )
                                                            .with_metadata(Some(sb(p.metadata)))
                                                            .with_error_code(code(p.error))
                                                    })
                                                    .collect(),
                                            )
                                    })
                                    .collect(),
                            ),
                    }
                })
                .collect();
            return OffsetFetchResponse::default().with_groups(groups);
        }
        let topics: Option<Vec<(String, Vec<i32>)>> = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                .collect()
        });
        let result = self.fetch_group(&req.group_id, None, topics.clone(), require_stable);
        let to_topic = |t: String, ps: Vec<FetchedPartition>| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(sb(t)))
                .with_partitions(
                    ps.into_iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p.partition)
                                .with_committed_offset(p.offset)
                                .with_committed_leader_epoch(if version >= 5 {
                                    p.leader_epoch
                                } else {
                                    -1
                                })
                                .with_metadata(Some(sb(p.metadata)))
                                .with_error_code(code(p.error))
                        })
                        .collect(),
                )
        };
        match result {
            Ok(ts) => OffsetFetchResponse::default()
                .with_topics(ts.into_iter().map(|(t, ps)| to_topic(t, ps)).collect()),
            Err(e) if version >= 2 => OffsetFetchResponse::default().with_error_code(e.code()),
            Err(e) => OffsetFetchResponse::default().with_topics(
                topics
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(t, ps)| {
                        let parts = ps
                            .into_iter()
                            .map(|p| FetchedPartition {
                                partition: p,
                                offset: -1,
                                leader_epoch: -1,
                                metadata: String::new(),
                                error: Some(e),
                            })
                            .collect();
                        to_topic(t, parts)
                    })
                    .collect(),
            ),
        }
    }

    /// OffsetDelete (v0): refused per partition with
    /// GROUP_SUBSCRIBED_TO_TOPIC while the group consumes the topic.
    pub async fn offset_delete(
        &self,
        _version: i16,
        req: OffsetDeleteRequest,
    ) -> OffsetDeleteResponse {
        let group_id = req.group_id.to_string();
        let topics: Vec<(String, Vec<i32>)> = req
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect();
        let result = self
            .with(&group_id, |st| st.offset_delete(&group_id, topics))
            .and_then(|r| r);
        let (results, write) = match result {
            Ok(r) => r,
            Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
        };
        match write.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return OffsetDeleteResponse::default()
                    .with_error_code(map_offset_write_error(e).code())
            }
            Err(_) => {
                return OffsetDeleteResponse::default()
                    .with_error_code(ErrorCode::NotCoordinator.code())
            }
        }
        OffsetDeleteResponse::default().with_topics(
            results
                .into_iter()
                .map(|(t, ps)| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(TopicName(sb(t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, e)| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(code(e))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }

    /// ListGroups (v0-v5) over every partition this coordinator leads,
    /// with the v4 states filter and v5 types filter (case-insensitive).
    pub async fn list_groups(&self, version: i16, req: ListGroupsRequest) -> ListGroupsResponse {
        let states: HashSet<String> = if version >= 4 {
            req.states_filter.iter().map(|s| s.to_lowercase()).collect()
        } else {
            HashSet::new()
        };
        let types: HashSet<String> = if version >= 5 {
            req.types_filter.iter().map(|s| s.to_lowercase()).collect()
        } else {
            HashSet::new()
        };
        let shards: Vec<Arc<Shard>> = self.shards.read().values().cloned().collect();
        let mut error = None;
        let mut groups = Vec::new();
        for shard in shards {
            match shard.with(|st| st.list_groups()) {
                Ok(list) => groups.extend(list),
                Err(ErrorCode::CoordinatorLoadInProgress) => {
                    error = Some(ErrorCode::CoordinatorLoadInProgress)
                }
                Err(_) => {}
            }
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        let listed = groups
            .into_iter()
            .filter(|g| states.is_empty() || states.contains(&g.state.to_lowercase()))
            .filter(|g| types.is_empty() || types.contains(g.group_type))
            .map(|g| {
                let mut l = ListedGroup::default()
                    .with_group_id(GroupId(sb(g.group_id)))
                    .with_protocol_type(sb(g.protocol_type));
                if version >= 4 {
                    l.group_state = sb(g.state);
                }
                if version >= 5 {
                    l.group_type = sb(g.group_type);
                }
                l
            })
            .collect();
        ListGroupsResponse::default()
            .with_error_code(code(error))
            .with_groups(listed)
    }

    /// DescribeGroups (v0-v6). Unknown groups are reported Dead (v6:
    /// GROUP_ID_NOT_FOUND); member metadata and assignments only when Stable.
    pub async fn describe_groups(
        &self,
        version: i16,
        req: DescribeGroupsRequest,
    ) -> DescribeGroupsResponse {
        let groups = req
            .groups
            .iter()
            .map(|gid| {
                let base = DescribedGroup::default().with_group_id(gid.clone());
                match self
                    .with(gid, |st| st.describe_classic(gid))
                    .and_then(|r| r)
                {
                    Err(ErrorCode::GroupIdNotFound) => {
                        let mut g = base
                            .with_error_code(ErrorCode::GroupIdNotFound.code())
                            .with_group_state(sb("Dead"));
                        if version >= 6 {
                            g.error_message = Some(sb(format!(
                                "Group {} is not a classic group.",
                                gid.as_str()
                            )));
                        }
                        g
                    }
                    Err(e) => base.with_error_code(e.code()).with_group_state(sb("")),
                    Ok(None) => {
                        if version >= 6 {
                            base.with_error_code(ErrorCode::GroupIdNotFound.code())
                                .with_group_state(sb("Dead"))
                                .with_error_message(Some(sb(format!(
                                    "Group {} not found.",
                                    gid.as_str()
                                ))))
                        } else {
                            base.with_group_state(sb("Dead"))
                        }
                    }
                    Ok(Some(d)) => base
                        .with_group_state(sb(d.state))
                        .with_protocol_type(sb(d.protocol_type))
                        .with_protocol_data(sb(d.protocol))
                        .with_members(
                            d.members
                                .into_iter()
                                .map(|(id, inst, client, host, meta, asg)| {
                                    DescribedGroupMember::default()
                                        .with_member_id(sb(id))
                                        .with_group_instance_id(if version >= 4 {
                                            inst.map(sb)
                                        } else {
                                            None
                                        })
                                        .with_client_id(sb(client))
                                        .with_client_host(sb(host))
                                        .with_member_metadata(meta)
                                        .with_member_assignment(asg)
                                })
                                .collect(),
                        ),
                }
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    /// DeleteGroups (v0-v2): only Empty groups (NON_EMPTY_GROUP otherwise,
    /// GROUP_ID_NOT_FOUND for unknown ones); their offsets are tombstoned.
    pub async fn delete_groups(
        &self,
        _version: i16,
        req: DeleteGroupsRequest,
    ) -> DeleteGroupsResponse {
        // Group the ids by partition so each partition writes one batch.
        let mut by_shard: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        let mut results: HashMap<String, Option<ErrorCode>> = HashMap::new();
        for g in &req.groups_names {
            if g.is_empty() {
                results.insert(g.to_string(), Some(ErrorCode::InvalidGroupId));
            } else {
                by_shard
                    .entry(self.partition_for(g))
                    .or_default()
                    .push(g.to_string());
            }
        }
        for (_, ids) in by_shard {
            let Some(first) = ids.first().cloned() else {
                continue;
            };
            match self.with(&first, |st| st.delete_groups(&ids)) {
                Err(e) => {
                    for id in ids {
                        results.insert(id, Some(e));
                    }
                }
                Ok((errs, write)) => {
                    let write_err = match write.await {
                        Ok(Ok(_)) => None,
                        Ok(Err(e)) => Some(map_group_write_error(e)),
                        Err(_) => Some(ErrorCode::NotCoordinator),
                    };
                    for (id, e) in ids.into_iter().zip(errs) {
                        results.insert(id, e.or(write_err));
                    }
                }
            }
        }
        DeleteGroupsResponse::default().with_results(
            req.groups_names
                .iter()
                .map(|g| {
                    DeletableGroupResult::default()
                        .with_group_id(g.clone())
                        .with_error_code(code(results.get(g.as_str()).copied().flatten()))
                })
                .collect(),
        )
    }

    /// ConsumerGroupHeartbeat (KIP-848, v0) without client information.
    pub async fn consumer_group_heartbeat(
        &self,
        version: i16,
        req: ConsumerGroupHeartbeatRequest,
    ) -> ConsumerGroupHeartbeatResponse {
        self.consumer_group_heartbeat_with_client(ClientInfo::default(), version, req)
            .await
    }

    /// ConsumerGroupHeartbeat (KIP-848, v0) recording the client id and host
    /// that ConsumerGroupDescribe reports.
    pub async fn consumer_group_heartbeat_with_client(
        &self,
        client: ClientInfo,
        _version: i16,
        req: ConsumerGroupHeartbeatRequest,
    ) -> ConsumerGroupHeartbeatResponse {
        let group_id = req.group_id.to_string();
        let err = |e: ErrorCode, msg: Option<String>| {
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(e.code())
                .with_error_message(msg.map(sb))
        };
        if group_id.is_empty() {
            return err(
                ErrorCode::InvalidRequest,
                Some("GroupId can't be empty.".into()),
            );
        }
        let outcome = match self
            .with(&group_id, |st| st.consumer_heartbeat(&req, &client))
            .map_err(|e| (e, None))
            .and_then(|r| r)
        {
            Ok(o) => o,
            Err((e, msg)) => return err(e, msg),
        };
        match outcome.write.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return err(map_group_write_error(e), None),
            Err(_) => return err(ErrorCode::NotCoordinator, None),
        }
        ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(sb(outcome.member_id)))
            .with_member_epoch(outcome.member_epoch)
            .with_heartbeat_interval_ms(outcome.heartbeat_interval_ms)
            .with_assignment(outcome.assignment.map(|a| {
                cgh::Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(id, ps)| {
                            cgh::TopicPartitions::default()
                                .with_topic_id(id)
                                .with_partitions(ps.into_iter().collect())
                        })
                        .collect(),
                )
            }))
    }

    /// ConsumerGroupDescribe (KIP-848, v0).
    pub async fn consumer_group_describe(
        &self,
        _version: i16,
        req: ConsumerGroupDescribeRequest,
    ) -> ConsumerGroupDescribeResponse {
        let groups = req
            .group_ids
            .iter()
            .map(|gid| {
                let base = cgd::DescribedGroup::default().with_group_id(gid.clone());
                match self
                    .with(gid, |st| st.consumer_describe(gid))
                    .and_then(|r| r)
                {
                    Err(e) => base.with_error_code(e.code()).with_error_message(Some(sb(
                        if e == ErrorCode::GroupIdNotFound {
                            format!("Group {} not found.", gid.as_str())
                        } else {
                            e.to_string()
                        },
                    ))),
                    Ok(d) => {
                        let conv = |a: Vec<(Uuid, String, Vec<i32>)>| {
                            cgd::Assignment::default().with_topic_partitions(
                                a.into_iter()
                                    .map(|(id, name, ps)| {
                                        cgd::TopicPartitions::default()
                                            .with_topic_id(id)
                                            .with_topic_name(TopicName(sb(name)))
                                            .with_partitions(ps)
                                    })
                                    .collect(),
                            )
                        };
                        base.with_group_state(sb(d.state))
                            .with_group_epoch(d.group_epoch)
                            .with_assignment_epoch(d.assignment_epoch)
                            .with_assignor_name(sb(d.assignor))
                            .with_members(
                                d.members
                                    .into_iter()
                                    .map(|m| {
                                        cgd::Member::default()
                                            .with_member_id(sb(m.member_id))
                                            .with_instance_id(m.instance_id.map(sb))
                                            .with_rack_id(m.rack_id.map(sb))
                                            .with_member_epoch(m.member_epoch)
                                            .with_client_id(sb(m.client_id))
                                            .with_client_host(sb(m.client_host))
                                            .with_subscribed_topic_names(
                                                m.subscribed_topic_names
                                                    .into_iter()
                                                    .map(|t| TopicName(sb(t)))
                                                    .collect(),
                                            )
                                            .with_subscribed_topic_regex(
                                                m.subscribed_topic_regex.map(sb),
                                            )
                                            .with_assignment(conv(m.assignment))
                                            .with_target_assignment(conv(m.target_assignment))
                                    })
                                    .collect(),
                            )
                    }
                }
            })
            .collect();
        ConsumerGroupDescribeResponse::default().with_groups(groups)
    }

    /// A transaction marker was written to offsets partition `partition` for
    /// `producer_id`: commit materializes that producer's pending
    /// transactional offsets, abort drops them.
    pub fn complete_transaction(&self, partition: i32, producer_id: i64, commit: bool) {
        let shard = self.shards.read().get(&partition).cloned();
        if let Some(shard) = shard {
            let _ = shard.with(|st| st.complete_txn(producer_id, commit));
        }
    }

    /// Topics were deleted: their committed offsets are forgotten and
    /// tombstoned, as Kafka does.
    pub async fn on_topics_deleted(&self, topics: Vec<String>) {
        let topics: HashSet<String> = topics.into_iter().collect();
        let shards: Vec<Arc<Shard>> = self.shards.read().values().cloned().collect();
        let mut writes = Vec::new();
        for shard in shards {
            if let Ok(w) = shard.with(|st| st.topics_deleted(&topics)) {
                writes.push(w);
            }
        }
        for w in writes {
            let _ = w.await;
        }
    }

    /// Committed offsets of `group_id` (topic -> partition -> offset), for
    /// tests and diagnostics; `None` when the group's partition is not served.
    pub fn committed_offsets(
        &self,
        group_id: &str,
    ) -> Option<BTreeMap<String, BTreeMap<i32, i64>>> {
        self.with(group_id, |st| offsets::snapshot(st.offsets.get(group_id)))
            .ok()
    }

    /// Runs offset expiry on every loaded partition now (Kafka runs it every
    /// `offsets.retention.check.interval.ms`; tests and tools call it directly).
    pub fn expire_offsets_now(&self) {
        let shards: Vec<Arc<Shard>> = self.shards.read().values().cloned().collect();
        for s in shards {
            let _ = s.with(|st| st.expire_offsets());
        }
    }
}

impl Drop for GroupCoordinator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn join_response(version: i16, r: JoinResult) -> JoinGroupResponse {
    let protocol_name = match r.protocol_name {
        Some(p) => Some(sb(p)),
        None if version < 7 => Some(sb("")),
        None => None,
    };
    JoinGroupResponse::default()
        .with_error_code(code(r.error))
        .with_generation_id(r.generation_id)
        .with_protocol_type(if version >= 7 {
            r.protocol_type.map(sb)
        } else {
            None
        })
        .with_protocol_name(protocol_name)
        .with_leader(sb(r.leader_id))
        .with_skip_assignment(version >= 9 && r.skip_assignment)
        .with_member_id(sb(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|(id, inst, meta)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(sb(id))
                        .with_group_instance_id(if version >= 5 { inst.map(sb) } else { None })
                        .with_metadata(meta)
                })
                .collect(),
        )
}
