//! Apache Kafka 3.7's group coordinator for classic consumer groups, as a
//! library the broker calls with decoded requests.
//!
//! A group lives on the partition of `__consumer_offsets` its id hashes to;
//! this coordinator serves the groups of the partitions the broker leads
//! ([`GroupCoordinator::on_elected`]). Membership (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup) is kept in memory and the outcome of each
//! rebalance, like every committed offset, is appended to that partition in
//! Kafka's record format ([`format`]) before it is acknowledged, so a new
//! leader (or a restarted broker) rebuilds the same state by replaying it.
//!
//! The coordinator never touches files or sockets: it appends and reads
//! through [`OffsetsLog`], which the broker implements over its partitions.
//! Timers (session and rebalance timeouts, the initial rebalance delay,
//! offset expiry) run on one tokio task.
//!
//! Not served yet: the KIP-848 consumer protocol (ConsumerGroupHeartbeat),
//! which clients only use when they opt in with `group.protocol=consumer`.

pub mod format;
pub mod group;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
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
    delete_groups_response, describe_groups_response, DeleteGroupsRequest, DeleteGroupsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;
use millrace_protocol::control::{coordinator_partition, ControlType};
use millrace_protocol::records::{BatchBuilder, BatchIter, Compression};
pub use millrace_protocol::ErrorCode;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::format::{OffsetValue, RecordKey};
use crate::group::{Group, GroupState, InitialDelay, Member, Rebalance};

/// A boxed future, so [`OffsetsLog`] can be a trait object.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;

/// The `__consumer_offsets` partitions as the broker exposes them.
pub trait OffsetsLog: Send + Sync + 'static {
    /// Appends one v2 batch (base offset 0; the log assigns offsets) to
    /// `partition` as leader; resolves once committed. Returns the base offset.
    fn append(&self, partition: i32, batch: Bytes) -> BoxFuture<Result<i64, ErrorCode>>;
    /// Reads whole batches from `offset`, for loading.
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
    /// The partition's log start offset.
    pub log_start_offset: i64,
    /// The partition's high watermark: loading reads up to here.
    pub high_watermark: i64,
}

/// Who sent a request (DescribeGroups shows it).
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// `client.id`.
    pub client_id: String,
    /// `/<ip>`, as Kafka prints it.
    pub client_host: String,
}

/// The broker settings the coordinator follows (Kafka's names in the docs).
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
    /// `offsets.retention.minutes` in ms.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: i32,
}

impl Default for GroupCoordinatorConfig {
    fn default() -> Self {
        GroupCoordinatorConfig {
            offsets_topic_partitions: 50,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: i32::MAX,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ownership {
    Loading(i32),
    Loaded(i32),
}

#[derive(Default)]
struct State {
    partitions: HashMap<i32, Ownership>,
    groups: HashMap<String, Group>,
    shutdown: bool,
}

/// The group coordinator of one broker.
pub struct GroupCoordinator {
    config: GroupCoordinatorConfig,
    log: Arc<dyn OffsetsLog>,
    state: Mutex<State>,
    self_ref: Weak<GroupCoordinator>,
    ticker_started: Mutex<bool>,
}

/// A transactional offset commit seen while loading: group, topic,
/// partition, value (None = tombstone).
type PendingOffset = (String, String, i32, Option<OffsetValue>);
/// One topic's answer to OffsetFetch: partition and offset or error.
type TopicOffsets = (String, Vec<(i32, Result<OffsetValue, ErrorCode>)>);

/// How often membership timers are checked.
const TICK: Duration = Duration::from_millis(100);
/// Bytes read per step while loading a partition.
const LOAD_BUFFER: usize = 5 << 20;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Kafka maps the log's append errors to what an offset commit reports.
fn commit_error(code: ErrorCode) -> ErrorCode {
    match code {
        ErrorCode::UnknownTopicOrPartition
        | ErrorCode::NotEnoughReplicas
        | ErrorCode::NotEnoughReplicasAfterAppend
        | ErrorCode::RequestTimedOut => ErrorCode::CoordinatorNotAvailable,
        ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => ErrorCode::NotCoordinator,
        ErrorCode::MessageTooLarge
        | ErrorCode::RecordListTooLarge
        | ErrorCode::InvalidFetchSize => ErrorCode::InvalidCommitOffsetSize,
        other => other,
    }
}

fn build_batch(
    records: &[(Bytes, Option<Bytes>)],
    producer: Option<(i64, i16)>,
) -> Result<Bytes, ErrorCode> {
    let mut builder = BatchBuilder::new(0, Compression::None);
    if let Some((pid, epoch)) = producer {
        builder = builder.producer(pid, epoch, -1).transaction(true, false);
    }
    let now = now_ms();
    for (i, (key, value)) in records.iter().enumerate() {
        builder.append(i as i64, now, Some(key), value.as_deref(), 0, &[]);
    }
    builder.build().map_err(|_| ErrorCode::UnknownServerError)
}

fn join_error(code: ErrorCode, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code.code())
        .with_generation_id(-1)
        .with_protocol_name(Some(StrBytes::default()))
        .with_member_id(s(member_id))
}

fn sync_error(code: ErrorCode) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(code.code())
}

impl GroupCoordinator {
    /// A coordinator that owns no partition yet.
    pub fn new(config: GroupCoordinatorConfig, log: Arc<dyn OffsetsLog>) -> Arc<Self> {
        let coordinator = Arc::new_cyclic(|weak| GroupCoordinator {
            config,
            log,
            state: Mutex::new(State::default()),
            self_ref: weak.clone(),
            ticker_started: Mutex::new(false),
        });
        coordinator.start_ticker();
        coordinator
    }

    fn start_ticker(&self) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let mut started = self.ticker_started.lock();
        if *started {
            return;
        }
        *started = true;
        let weak = self.self_ref.clone();
        let check_every =
            Duration::from_millis(self.config.offsets_retention_check_interval_ms.max(1000) as u64);
        tokio::spawn(async move {
            let mut next_expiry = Instant::now() + check_every;
            loop {
                tokio::time::sleep(TICK).await;
                let Some(c) = weak.upgrade() else { return };
                if c.state.lock().shutdown {
                    return;
                }
                c.tick();
                if Instant::now() >= next_expiry {
                    next_expiry = Instant::now() + check_every;
                    c.expire_offsets().await;
                }
            }
        });
    }

    /// The offsets partition of `group_id`.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        coordinator_partition(group_id, self.config.offsets_topic_partitions)
    }

    /// This broker leads offsets partition `partition` at `epoch`: load it.
    pub fn on_elected(self: &Arc<Self>, partition: i32, epoch: i32) {
        self.start_ticker();
        {
            let mut state = self.state.lock();
            state
                .partitions
                .insert(partition, Ownership::Loading(epoch));
            state.groups.retain(|_, g| g.partition != partition);
        }
        let this = self.clone();
        tokio::spawn(async move {
            match this.load(partition).await {
                Ok(groups) => {
                    let mut state = this.state.lock();
                    if state.partitions.get(&partition) != Some(&Ownership::Loading(epoch)) {
                        return;
                    }
                    let count = groups.len();
                    for g in groups {
                        state.groups.insert(g.id.clone(), g);
                    }
                    state.partitions.insert(partition, Ownership::Loaded(epoch));
                    tracing::debug!(partition, groups = count, "offsets partition loaded");
                }
                Err(e) => {
                    tracing::error!(partition, error = ?e, "cannot load offsets partition");
                    let mut state = this.state.lock();
                    if state.partitions.get(&partition) == Some(&Ownership::Loading(epoch)) {
                        state.partitions.remove(&partition);
                    }
                }
            }
        });
    }

    /// Leadership of `partition` was lost: forget its groups.
    pub fn on_resigned(&self, partition: i32, _epoch: i32) {
        let mut state = self.state.lock();
        state.partitions.remove(&partition);
        state.groups.retain(|_, g| g.partition != partition);
    }

    /// Whether `partition` is loaded.
    pub fn is_loaded(&self, partition: i32) -> bool {
        matches!(
            self.state.lock().partitions.get(&partition),
            Some(Ownership::Loaded(_))
        )
    }

    /// Stops the timers; waiting requests answer NOT_COORDINATOR.
    pub fn shutdown(&self) {
        let mut state = self.state.lock();
        state.shutdown = true;
        state.groups.clear();
        state.partitions.clear();
    }

    fn check_owned(&self, state: &State, group_id: &str) -> Result<i32, ErrorCode> {
        let partition = self.partition_for(group_id);
        match state.partitions.get(&partition) {
            Some(Ownership::Loaded(_)) => Ok(partition),
            Some(Ownership::Loading(_)) => Err(ErrorCode::CoordinatorLoadInProgress),
            None => Err(ErrorCode::NotCoordinator),
        }
    }

    // ------------------------------------------------------------ loading --

    async fn load(&self, partition: i32) -> Result<Vec<Group>, ErrorCode> {
        let mut offset = 0i64;
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut pending: HashMap<i64, Vec<PendingOffset>> = HashMap::new();
        let now = now_ms();
        loop {
            let chunk = self.log.read(partition, offset, LOAD_BUFFER).await?;
            if offset < chunk.log_start_offset {
                offset = chunk.log_start_offset;
            }
            if offset >= chunk.high_watermark || chunk.records.is_empty() {
                break;
            }
            let mut advanced = false;
            for batch in BatchIter::new(&chunk.records) {
                let Ok(batch) = batch else { break };
                let next = batch.header.next_offset();
                if next <= offset {
                    continue;
                }
                offset = next;
                advanced = true;
                let Ok(records) = batch.records() else {
                    continue;
                };
                let pid = batch.header.producer_id;
                if batch.header.is_control() {
                    let kind = records
                        .iter()
                        .next()
                        .and_then(Result::ok)
                        .and_then(|r| r.key.and_then(ControlType::parse_key));
                    if let Some(entries) = pending.remove(&pid) {
                        if kind == Some(ControlType::Commit) {
                            for (g, topic, p, value) in entries {
                                apply_offset(&mut groups, partition, now, &g, topic, p, value);
                            }
                        }
                    }
                    continue;
                }
                for record in records.iter() {
                    let Ok(record) = record else { break };
                    let Some(key) = record.key.and_then(format::parse_key) else {
                        continue;
                    };
                    match key {
                        RecordKey::Offset {
                            group,
                            topic,
                            partition: p,
                        } => {
                            let value = record.value.and_then(format::parse_offset_value);
                            if batch.header.is_transactional() {
                                pending
                                    .entry(pid)
                                    .or_default()
                                    .push((group, topic, p, value));
                            } else {
                                apply_offset(&mut groups, partition, now, &group, topic, p, value);
                            }
                        }
                        RecordKey::Group { group } => {
                            match record.value.and_then(format::parse_group_value) {
                                Some(v) => {
                                    let g = groups
                                        .entry(group.clone())
                                        .or_insert_with(|| Group::new(&group, partition, now));
                                    restore_group(g, v);
                                }
                                None => {
                                    if let Some(g) = groups.get_mut(&group) {
                                        g.members.clear();
                                        g.static_members.clear();
                                        g.generation = 0;
                                        g.protocol_type = None;
                                        g.protocol = None;
                                        g.leader = None;
                                        g.state = GroupState::Empty;
                                    }
                                }
                            }
                        }
                        RecordKey::Other => {}
                    }
                }
            }
            if !advanced {
                break;
            }
        }
        // Transactions still open when loading ends stay pending.
        for (pid, entries) in pending {
            for (group, topic, p, value) in entries {
                if let Some(value) = value {
                    let g = groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(&group, partition, now));
                    g.pending_txn_offsets
                        .entry(pid)
                        .or_default()
                        .insert((topic, p), value);
                }
            }
        }
        groups.retain(|_, g| {
            !g.members.is_empty()
                || !g.offsets.is_empty()
                || !g.pending_txn_offsets.is_empty()
                || g.protocol_type.is_some()
        });
        Ok(groups.into_values().collect())
    }

    // ------------------------------------------------------------- timers --

    fn tick(&self) {
        let now = Instant::now();
        let wall = now_ms();
        let mut persist = Vec::new();
        {
            let mut state = self.state.lock();
            for g in state.groups.values_mut() {
                // Pending (MEMBER_ID_REQUIRED) members that never came back.
                let session =
                    |m: &Member| Duration::from_millis(m.session_timeout_ms.max(0) as u64);
                let max_session =
                    Duration::from_millis(self.config.group_max_session_timeout_ms.max(0) as u64);
                g.pending_members.retain(|_, since| {
                    now.duration_since(*since) < max_session.min(Duration::from_secs(300))
                });
                let expired: Vec<String> = g
                    .members
                    .values()
                    .filter(|m| {
                        m.join_waiter.is_none()
                            && m.sync_waiter.is_none()
                            && now.duration_since(m.last_heartbeat) >= session(m)
                    })
                    .map(|m| m.member_id.clone())
                    .collect();
                for id in expired {
                    tracing::info!(group = %g.id, member = %id, "member session expired");
                    remove_member(g, &id);
                    if matches!(
                        g.state,
                        GroupState::Stable | GroupState::CompletingRebalance
                    ) {
                        self.prepare_rebalance(g, now, wall);
                    }
                }
                if g.state == GroupState::PreparingRebalance {
                    if let Some(p) = self.maybe_complete_join(g, now, wall) {
                        persist.push(p);
                    }
                }
            }
        }
        for (partition, batch) in persist {
            self.persist_in_background(partition, batch);
        }
    }

    fn persist_in_background(&self, partition: i32, batch: Bytes) {
        let log = self.log.clone();
        tokio::spawn(async move {
            if let Err(e) = log.append(partition, batch).await {
                tracing::warn!(partition, error = ?e, "cannot persist group metadata");
            }
        });
    }

    fn prepare_rebalance(&self, g: &mut Group, now: Instant, wall: i64) {
        if g.state == GroupState::CompletingRebalance {
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(sync_error(ErrorCode::RebalanceInProgress));
                }
            }
        }
        let rebalance_timeout = g
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as u64)
            .max()
            .unwrap_or(0);
        let initial = (g.state == GroupState::Empty).then(|| {
            let delay =
                (self.config.group_initial_rebalance_delay_ms.max(0) as u64).min(rebalance_timeout);
            InitialDelay {
                next_check: now + Duration::from_millis(delay),
                delay_ms: delay,
                remaining_ms: rebalance_timeout.saturating_sub(delay),
                members_at_check: g.members.len(),
            }
        });
        g.rebalance = Some(Rebalance {
            deadline: now + Duration::from_millis(rebalance_timeout),
            initial,
        });
        g.transition(GroupState::PreparingRebalance, wall);
    }

    /// Ends the join phase when everyone joined (or time is up). Returns a
    /// group-metadata batch to persist when the group became empty.
    fn maybe_complete_join(&self, g: &mut Group, now: Instant, wall: i64) -> Option<(i32, Bytes)> {
        let rebalance = g.rebalance?;
        if let Some(mut initial) = rebalance.initial {
            if now < initial.next_check {
                return None;
            }
            let grew = g.members.len() > initial.members_at_check;
            if grew && initial.remaining_ms > 0 {
                let extend = initial.delay_ms.min(initial.remaining_ms);
                initial.remaining_ms -= extend;
                initial.next_check = now + Duration::from_millis(extend);
                initial.members_at_check = g.members.len();
                g.rebalance = Some(Rebalance {
                    initial: Some(initial),
                    ..rebalance
                });
                return None;
            }
        } else if !g.all_members_joined() && now < rebalance.deadline {
            return None;
        }
        self.complete_join(g, wall)
    }

    fn complete_join(&self, g: &mut Group, wall: i64) -> Option<(i32, Bytes)> {
        g.rebalance = None;
        let gone: Vec<String> = g
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            remove_member(g, &id);
        }
        g.pending_members.clear();
        g.generation += 1;
        if g.members.is_empty() {
            g.protocol = None;
            g.leader = None;
            g.transition(GroupState::Empty, wall);
            let record = (
                format::group_key(&g.id),
                Some(format::group_value(&g.to_value())),
            );
            return build_batch(&[record], None).ok().map(|b| (g.partition, b));
        }
        g.protocol = g.select_protocol();
        if g.leader.as_ref().is_none_or(|l| !g.members.contains_key(l)) {
            g.leader = g.members.keys().next().cloned();
        }
        g.transition(GroupState::CompletingRebalance, wall);
        let protocol = g.protocol.clone().unwrap_or_default();
        let leader = g.leader.clone().unwrap_or_default();
        let all: Vec<(String, Option<String>, Bytes)> = g
            .members
            .values()
            .map(|m| {
                (
                    m.member_id.clone(),
                    m.instance_id.clone(),
                    m.metadata(&protocol),
                )
            })
            .collect();
        let generation = g.generation;
        let protocol_type = g.protocol_type.clone();
        let now = Instant::now();
        for m in g.members.values_mut() {
            m.last_heartbeat = now;
            let Some(w) = m.join_waiter.take() else {
                continue;
            };
            let version = m.join_version;
            let mut response = JoinGroupResponse::default()
                .with_generation_id(generation)
                .with_protocol_name(Some(s(&protocol)))
                .with_leader(s(&leader))
                .with_member_id(s(&m.member_id));
            if version >= 7 {
                response.protocol_type = protocol_type.as_deref().map(s);
            }
            if m.member_id == leader {
                response.members = all
                    .iter()
                    .map(|(id, instance, metadata)| {
                        let mut member = JoinGroupResponseMember::default()
                            .with_member_id(s(id))
                            .with_metadata(metadata.clone());
                        if version >= 5 {
                            member.group_instance_id = instance.as_deref().map(s);
                        }
                        member
                    })
                    .collect();
            }
            let _ = w.send(response);
        }
        None
    }

    // --------------------------------------------------------- membership --

    /// JoinGroup (see the crate docs).
    pub async fn join_group(
        &self,
        client: ClientInfo,
        version: i16,
        req: JoinGroupRequest,
    ) -> JoinGroupResponse {
        let group_id = req.group_id.as_str().to_string();
        let member_id = req.member_id.as_str().to_string();
        if group_id.is_empty() {
            return join_error(ErrorCode::InvalidGroupId, &member_id);
        }
        let session = req.session_timeout_ms;
        if session < self.config.group_min_session_timeout_ms
            || session > self.config.group_max_session_timeout_ms
        {
            return join_error(ErrorCode::InvalidSessionTimeout, &member_id);
        }
        let rebalance_timeout = if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            session
        };
        let protocol_type = req.protocol_type.as_str().to_string();
        let protocols: Vec<(String, Bytes)> = req
            .protocols
            .iter()
            .map(|p| (p.name.as_str().to_string(), p.metadata.clone()))
            .collect();
        let instance_id = req
            .group_instance_id
            .as_ref()
            .map(|i| i.as_str().to_string());
        let (tx, rx) = oneshot::channel();
        let mut tx = Some(tx);
        let mut persist = None;
        {
            let mut state = self.state.lock();
            let partition = match self.check_owned(&state, &group_id) {
                Ok(p) => p,
                Err(e) => return join_error(e, &member_id),
            };
            let wall = now_ms();
            let now = Instant::now();
            if !member_id.is_empty() && !state.groups.contains_key(&group_id) {
                return join_error(ErrorCode::UnknownMemberId, &member_id);
            }
            let g = state
                .groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(&group_id, partition, wall));
            if g.state == GroupState::Dead {
                return join_error(ErrorCode::CoordinatorNotAvailable, &member_id);
            }
            if !g.supports(&protocol_type, &protocols) {
                return join_error(ErrorCode::InconsistentGroupProtocol, &member_id);
            }
            let new_member = |id: String, waiter| Member {
                member_id: id,
                instance_id: instance_id.clone(),
                client_id: client.client_id.clone(),
                client_host: client.client_host.clone(),
                rebalance_timeout_ms: rebalance_timeout,
                session_timeout_ms: session,
                protocol_type: protocol_type.clone(),
                protocols: protocols.clone(),
                assignment: Bytes::new(),
                last_heartbeat: now,
                join_waiter: waiter,
                sync_waiter: None,
                join_version: version,
                sync_version: 0,
            };
            let mut static_rejoin = false;
            if member_id.is_empty() {
                let new_id = format!(
                    "{}-{}",
                    instance_id.as_deref().unwrap_or(&client.client_id),
                    uuid::Uuid::new_v4()
                );
                if let Some(instance) = &instance_id {
                    if let Some(old_id) = g.static_members.get(instance).cloned() {
                        // A static member came back with a new member id:
                        // it replaces the old one, without a rebalance when
                        // nothing changed (KIP-345).
                        let Some(mut old) = g.members.shift_remove(&old_id) else {
                            return join_error(ErrorCode::UnknownMemberId, &member_id);
                        };
                        if let Some(w) = old.join_waiter.take() {
                            let _ = w.send(join_error(ErrorCode::FencedInstanceId, &old_id));
                        }
                        if let Some(w) = old.sync_waiter.take() {
                            let _ = w.send(sync_error(ErrorCode::FencedInstanceId));
                        }
                        let unchanged = old.same_protocols(&protocols);
                        let mut member = new_member(new_id.clone(), None);
                        member.assignment = old.assignment.clone();
                        g.members.insert(new_id.clone(), member);
                        g.static_members.insert(instance.clone(), new_id.clone());
                        if g.leader.as_deref() == Some(old_id.as_str()) {
                            g.leader = Some(new_id.clone());
                        }
                        if g.state == GroupState::Stable && unchanged {
                            let protocol = g.protocol.clone().unwrap_or_default();
                            let leader = g.leader.clone().unwrap_or_default();
                            let mut response = JoinGroupResponse::default()
                                .with_generation_id(g.generation)
                                .with_protocol_name(Some(s(&protocol)))
                                .with_leader(s(&leader))
                                .with_member_id(s(&new_id));
                            if version >= 7 {
                                response.protocol_type = g.protocol_type.as_deref().map(s);
                            }
                            if version >= 9 && leader == new_id {
                                response.skip_assignment = true;
                                response.members = g
                                    .members
                                    .values()
                                    .map(|m| {
                                        JoinGroupResponseMember::default()
                                            .with_member_id(s(&m.member_id))
                                            .with_group_instance_id(m.instance_id.as_deref().map(s))
                                            .with_metadata(m.metadata(&protocol))
                                    })
                                    .collect();
                            }
                            let record = (
                                format::group_key(&g.id),
                                Some(format::group_value(&g.to_value())),
                            );
                            persist = build_batch(&[record], None).ok().map(|b| (g.partition, b));
                            drop(state);
                            if let Some((p, b)) = persist {
                                self.persist_in_background(p, b);
                            }
                            return response;
                        }
                        if let Some(m) = g.members.get_mut(&new_id) {
                            m.join_waiter = tx.take();
                        }
                        if g.state != GroupState::PreparingRebalance {
                            self.prepare_rebalance(g, now, wall);
                        }
                        static_rejoin = true;
                    }
                }
                if static_rejoin {
                    // Waits below like any other join.
                } else if g.members.len() + g.pending_members.len()
                    >= self.config.group_max_size.max(0) as usize
                {
                    return join_error(ErrorCode::GroupMaxSizeReached, &member_id);
                } else if instance_id.is_none() && version >= 4 {
                    g.pending_members.insert(new_id.clone(), now);
                    return join_error(ErrorCode::MemberIdRequired, &new_id);
                } else {
                    if let Some(instance) = &instance_id {
                        g.static_members.insert(instance.clone(), new_id.clone());
                    }
                    self.add_member_and_rebalance(g, new_member(new_id, tx.take()), now, wall);
                }
            } else {
                if let Some(instance) = &instance_id {
                    if g.static_members
                        .get(instance)
                        .is_some_and(|known| *known != member_id)
                    {
                        return join_error(ErrorCode::FencedInstanceId, &member_id);
                    }
                }
                if g.pending_members.remove(&member_id).is_some() {
                    if g.members.len() >= self.config.group_max_size.max(0) as usize {
                        return join_error(ErrorCode::GroupMaxSizeReached, &member_id);
                    }
                    self.add_member_and_rebalance(
                        g,
                        new_member(member_id.clone(), tx.take()),
                        now,
                        wall,
                    );
                } else if !g.members.contains_key(&member_id) {
                    return join_error(ErrorCode::UnknownMemberId, &member_id);
                } else {
                    let state_now = g.state;
                    let is_leader = g.leader.as_deref() == Some(member_id.as_str());
                    let generation = g.generation;
                    let protocol = g.protocol.clone().unwrap_or_default();
                    let leader = g.leader.clone().unwrap_or_default();
                    let group_protocol_type = g.protocol_type.clone();
                    let Some(m) = g.members.get_mut(&member_id) else {
                        return join_error(ErrorCode::UnknownMemberId, &member_id);
                    };
                    let unchanged = m.same_protocols(&protocols);
                    m.last_heartbeat = now;
                    m.join_version = version;
                    m.session_timeout_ms = session;
                    m.rebalance_timeout_ms = rebalance_timeout;
                    m.client_id = client.client_id.clone();
                    m.client_host = client.client_host.clone();
                    match state_now {
                        GroupState::PreparingRebalance => {
                            m.protocols = protocols.clone();
                            if let Some(old) = std::mem::replace(&mut m.join_waiter, tx.take()) {
                                let _ =
                                    old.send(join_error(ErrorCode::UnknownMemberId, &member_id));
                            }
                        }
                        GroupState::CompletingRebalance | GroupState::Stable
                            if unchanged && !(state_now == GroupState::Stable && is_leader) =>
                        {
                            // A resent JoinGroup: answer with the current generation.
                            let mut response = JoinGroupResponse::default()
                                .with_generation_id(generation)
                                .with_protocol_name(Some(s(&protocol)))
                                .with_leader(s(&leader))
                                .with_member_id(s(&member_id));
                            if version >= 7 {
                                response.protocol_type = group_protocol_type.as_deref().map(s);
                            }
                            if is_leader {
                                response.members = g
                                    .members
                                    .values()
                                    .map(|m| {
                                        let mut member = JoinGroupResponseMember::default()
                                            .with_member_id(s(&m.member_id))
                                            .with_metadata(m.metadata(&protocol));
                                        if version >= 5 {
                                            member.group_instance_id =
                                                m.instance_id.as_deref().map(s);
                                        }
                                        member
                                    })
                                    .collect();
                            }
                            return response;
                        }
                        _ => {
                            m.protocols = protocols.clone();
                            m.join_waiter = tx.take();
                            self.prepare_rebalance(g, now, wall);
                        }
                    }
                }
            }
            if g.state == GroupState::PreparingRebalance {
                persist = self.maybe_complete_join(g, now, wall);
            }
        }
        if let Some((p, b)) = persist {
            self.persist_in_background(p, b);
        }
        rx.await
            .unwrap_or_else(|_| join_error(ErrorCode::NotCoordinator, &member_id))
    }

    fn add_member_and_rebalance(&self, g: &mut Group, member: Member, now: Instant, wall: i64) {
        if g.members.is_empty() {
            g.protocol_type = Some(member.protocol_type.clone());
        }
        g.members.insert(member.member_id.clone(), member);
        if matches!(
            g.state,
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(g, now, wall);
        }
    }

    /// SyncGroup (see the crate docs).
    pub async fn sync_group(&self, version: i16, req: SyncGroupRequest) -> SyncGroupResponse {
        let group_id = req.group_id.as_str().to_string();
        let member_id = req.member_id.as_str().to_string();
        let (tx, rx) = oneshot::channel();
        let persist;
        {
            let mut state = self.state.lock();
            if let Err(e) = self.check_owned(&state, &group_id) {
                return sync_error(e);
            }
            let Some(g) = state.groups.get_mut(&group_id) else {
                return sync_error(ErrorCode::UnknownMemberId);
            };
            if let Err(e) = check_member(
                g,
                &member_id,
                req.group_instance_id.as_ref().map(|s| s.as_str()),
            ) {
                return sync_error(e);
            }
            if req.generation_id != g.generation {
                return sync_error(ErrorCode::IllegalGeneration);
            }
            if version >= 5 {
                let type_ok = req
                    .protocol_type
                    .as_ref()
                    .is_none_or(|t| Some(t.as_str()) == g.protocol_type.as_deref());
                let name_ok = req
                    .protocol_name
                    .as_ref()
                    .is_none_or(|n| Some(n.as_str()) == g.protocol.as_deref());
                if !type_ok || !name_ok {
                    return sync_error(ErrorCode::InconsistentGroupProtocol);
                }
            }
            match g.state {
                GroupState::Empty | GroupState::Dead => {
                    return sync_error(ErrorCode::UnknownMemberId)
                }
                GroupState::PreparingRebalance => {
                    return sync_error(ErrorCode::RebalanceInProgress)
                }
                GroupState::Stable => {
                    let protocol_type = g.protocol_type.clone();
                    let protocol = g.protocol.clone();
                    let Some(m) = g.members.get_mut(&member_id) else {
                        return sync_error(ErrorCode::UnknownMemberId);
                    };
                    m.last_heartbeat = Instant::now();
                    let mut response =
                        SyncGroupResponse::default().with_assignment(m.assignment.clone());
                    if version >= 5 {
                        response.protocol_type = protocol_type.as_deref().map(s);
                        response.protocol_name = protocol.as_deref().map(s);
                    }
                    return response;
                }
                GroupState::CompletingRebalance => {}
            }
            if let Some(m) = g.members.get_mut(&member_id) {
                m.last_heartbeat = Instant::now();
                m.sync_version = version;
                if let Some(old) = m.sync_waiter.replace(tx) {
                    let _ = old.send(sync_error(ErrorCode::UnknownMemberId));
                }
            }
            if g.leader.as_deref() != Some(member_id.as_str()) {
                persist = None;
            } else {
                let assignments: HashMap<String, Bytes> = req
                    .assignments
                    .iter()
                    .map(|a| (a.member_id.as_str().to_string(), a.assignment.clone()))
                    .collect();
                for m in g.members.values_mut() {
                    m.assignment = assignments.get(&m.member_id).cloned().unwrap_or_default();
                }
                let record = (
                    format::group_key(&g.id),
                    Some(format::group_value(&g.to_value())),
                );
                persist = Some((g.partition, g.generation, build_batch(&[record], None)));
            }
        }
        if let Some((partition, generation, batch)) = persist {
            let result = match batch {
                Ok(b) => self.log.append(partition, b).await.map(|_| ()),
                Err(e) => Err(e),
            };
            let mut state = self.state.lock();
            if let Some(g) = state.groups.get_mut(&group_id) {
                if g.generation == generation && g.state == GroupState::CompletingRebalance {
                    match result {
                        Ok(()) => {
                            g.transition(GroupState::Stable, now_ms());
                            let protocol_type = g.protocol_type.clone();
                            let protocol = g.protocol.clone();
                            for m in g.members.values_mut() {
                                if let Some(w) = m.sync_waiter.take() {
                                    let mut response = SyncGroupResponse::default()
                                        .with_assignment(m.assignment.clone());
                                    if m.sync_version >= 5 {
                                        response.protocol_type = protocol_type.as_deref().map(s);
                                        response.protocol_name = protocol.as_deref().map(s);
                                    }
                                    let _ = w.send(response);
                                }
                            }
                        }
                        Err(e) => {
                            let code = commit_error(e);
                            for m in g.members.values_mut() {
                                m.assignment = Bytes::new();
                                if let Some(w) = m.sync_waiter.take() {
                                    let _ = w.send(sync_error(code));
                                }
                            }
                            let wall = now_ms();
                            self.prepare_rebalance(g, Instant::now(), wall);
                        }
                    }
                }
            }
        }
        rx.await
            .unwrap_or_else(|_| sync_error(ErrorCode::NotCoordinator))
    }

    /// Heartbeat (see the crate docs).
    pub async fn heartbeat(&self, _version: i16, req: HeartbeatRequest) -> HeartbeatResponse {
        let group_id = req.group_id.as_str();
        let member_id = req.member_id.as_str();
        let code = (|| {
            let mut state = self.state.lock();
            self.check_owned(&state, group_id)?;
            let g = state
                .groups
                .get_mut(group_id)
                .ok_or(ErrorCode::UnknownMemberId)?;
            check_member(
                g,
                member_id,
                req.group_instance_id.as_ref().map(|s| s.as_str()),
            )?;
            if g.state == GroupState::Empty || g.state == GroupState::Dead {
                return Err(ErrorCode::UnknownMemberId);
            }
            if req.generation_id != g.generation {
                return Err(ErrorCode::IllegalGeneration);
            }
            if let Some(m) = g.members.get_mut(member_id) {
                m.last_heartbeat = Instant::now();
            }
            if g.state == GroupState::PreparingRebalance {
                return Err(ErrorCode::RebalanceInProgress);
            }
            Ok(())
        })();
        HeartbeatResponse::default().with_error_code(code.err().map_or(0, |e| e.code()))
    }

    /// LeaveGroup (see the crate docs).
    pub async fn leave_group(&self, version: i16, req: LeaveGroupRequest) -> LeaveGroupResponse {
        let group_id = req.group_id.as_str();
        let leaving: Vec<(String, Option<String>)> = if version >= 3 {
            req.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.as_str().to_string(),
                        m.group_instance_id.as_ref().map(|i| i.as_str().to_string()),
                    )
                })
                .collect()
        } else {
            vec![(req.member_id.as_str().to_string(), None)]
        };
        let mut persist = None;
        let mut results = Vec::new();
        let top: Result<(), ErrorCode> = (|| {
            let mut state = self.state.lock();
            self.check_owned(&state, group_id)?;
            let g = state
                .groups
                .get_mut(group_id)
                .ok_or(ErrorCode::UnknownMemberId)?;
            let now = Instant::now();
            let wall = now_ms();
            for (member_id, instance) in &leaving {
                let target = match (instance, member_id.as_str()) {
                    (Some(i), id) => match g.static_members.get(i) {
                        Some(known) if id.is_empty() || known == id => Ok(known.clone()),
                        Some(_) => Err(ErrorCode::FencedInstanceId),
                        None => Err(ErrorCode::UnknownMemberId),
                    },
                    (None, id) => {
                        if g.members.contains_key(id) {
                            Ok(id.to_string())
                        } else if g.pending_members.remove(id).is_some() {
                            results.push((member_id.clone(), instance.clone(), Ok(())));
                            continue;
                        } else {
                            Err(ErrorCode::UnknownMemberId)
                        }
                    }
                };
                match target {
                    Ok(id) => {
                        remove_member(g, &id);
                        results.push((member_id.clone(), instance.clone(), Ok(())));
                    }
                    Err(e) => results.push((member_id.clone(), instance.clone(), Err(e))),
                }
            }
            if results.iter().any(|r| r.2.is_ok()) {
                match g.state {
                    GroupState::Stable | GroupState::CompletingRebalance => {
                        self.prepare_rebalance(g, now, wall)
                    }
                    _ => {}
                }
                if g.state == GroupState::PreparingRebalance {
                    persist = self.maybe_complete_join(g, now, wall);
                }
            }
            Ok(())
        })();
        if let Some((p, b)) = persist {
            self.persist_in_background(p, b);
        }
        match top {
            Err(e) => {
                let mut response = LeaveGroupResponse::default().with_error_code(e.code());
                if version >= 3 {
                    response.members = leaving
                        .iter()
                        .map(|(id, instance)| {
                            MemberResponse::default()
                                .with_member_id(s(id))
                                .with_group_instance_id(instance.as_deref().map(s))
                                .with_error_code(e.code())
                        })
                        .collect();
                }
                response
            }
            Ok(()) if version >= 3 => LeaveGroupResponse::default().with_members(
                results
                    .into_iter()
                    .map(|(id, instance, r)| {
                        MemberResponse::default()
                            .with_member_id(s(&id))
                            .with_group_instance_id(instance.as_deref().map(s))
                            .with_error_code(r.err().map_or(0, |e| e.code()))
                    })
                    .collect(),
            ),
            Ok(()) => LeaveGroupResponse::default().with_error_code(
                results
                    .first()
                    .and_then(|r| r.2.err())
                    .map_or(0, |e| e.code()),
            ),
        }
    }

    // ------------------------------------------------------------ offsets --

    /// OffsetCommit (see the crate docs).
    pub async fn offset_commit(
        &self,
        version: i16,
        req: OffsetCommitRequest,
    ) -> OffsetCommitResponse {
        let group_id = req.group_id.as_str().to_string();
        let all_with = |code: ErrorCode| {
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
                                            .with_error_code(code.code())
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
        };
        if group_id.is_empty() {
            return all_with(ErrorCode::InvalidGroupId);
        }
        let generation = req.generation_id_or_member_epoch;
        let member_id = req.member_id.as_str();
        let partition = {
            let mut state = self.state.lock();
            let partition = match self.check_owned(&state, &group_id) {
                Ok(p) => p,
                Err(e) => return all_with(e),
            };
            let wall = now_ms();
            match state.groups.get_mut(&group_id) {
                None if generation < 0 => {
                    state
                        .groups
                        .insert(group_id.clone(), Group::new(&group_id, partition, wall));
                }
                None => return all_with(ErrorCode::IllegalGeneration),
                Some(g) => {
                    if let Err(e) = validate_commit(
                        g,
                        generation,
                        member_id,
                        req.group_instance_id.as_ref().map(|s| s.as_str()),
                    ) {
                        return all_with(e);
                    }
                }
            }
            partition
        };
        let now = now_ms();
        let max_metadata = self.config.offset_metadata_max_bytes.max(0) as usize;
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        let mut errors: HashMap<(String, i32), ErrorCode> = HashMap::new();
        for t in &req.topics {
            for p in &t.partitions {
                let metadata = p.committed_metadata.as_ref().map_or("", |m| m.as_str());
                let key = (t.name.as_str().to_string(), p.partition_index);
                if metadata.len() > max_metadata {
                    errors.insert(key, ErrorCode::OffsetMetadataTooLarge);
                    continue;
                }
                let value = OffsetValue {
                    offset: p.committed_offset,
                    leader_epoch: if version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: metadata.to_string(),
                    commit_timestamp: now,
                };
                records.push((
                    format::offset_key(&group_id, &key.0, key.1),
                    Some(format::offset_value(&value)),
                ));
                accepted.push((key, value));
            }
        }
        if !records.is_empty() {
            let result = match build_batch(&records, None) {
                Ok(b) => self.log.append(partition, b).await.map(|_| ()),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    let mut state = self.state.lock();
                    if let Some(g) = state.groups.get_mut(&group_id) {
                        if let Some(m) = g.members.get_mut(member_id) {
                            m.last_heartbeat = Instant::now();
                        }
                        for (key, value) in accepted {
                            g.offsets.insert(key, value);
                        }
                    }
                }
                Err(e) => {
                    let code = commit_error(e);
                    for (key, _) in accepted {
                        errors.insert(key, code);
                    }
                }
            }
        }
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
                                    let code = errors
                                        .get(&(t.name.as_str().to_string(), p.partition_index))
                                        .map_or(0, |e| e.code());
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }

    /// TxnOffsetCommit: offsets that become visible when the producer's
    /// transaction commits ([`GroupCoordinator::complete_transaction`]).
    pub async fn txn_offset_commit(
        &self,
        version: i16,
        req: TxnOffsetCommitRequest,
    ) -> TxnOffsetCommitResponse {
        let group_id = req.group_id.as_str().to_string();
        let all_with = |errors: &HashMap<(String, i32), ErrorCode>, default: Option<ErrorCode>| {
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
                                        let code = default.or_else(|| {
                                            errors
                                                .get(&(
                                                    t.name.as_str().to_string(),
                                                    p.partition_index,
                                                ))
                                                .copied()
                                        });
                                        TxnOffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code.map_or(0, |e| e.code()))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
        };
        let none = HashMap::new();
        if group_id.is_empty() {
            return all_with(&none, Some(ErrorCode::InvalidGroupId));
        }
        let partition = {
            let mut state = self.state.lock();
            let partition = match self.check_owned(&state, &group_id) {
                Ok(p) => p,
                Err(e) => return all_with(&none, Some(e)),
            };
            let wall = now_ms();
            let g = state
                .groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(&group_id, partition, wall));
            if version >= 3 && req.generation_id >= 0 {
                let member_id = req.member_id.as_str();
                if let Err(e) = check_member(
                    g,
                    member_id,
                    req.group_instance_id.as_ref().map(|s| s.as_str()),
                ) {
                    return all_with(&none, Some(e));
                }
                if req.generation_id != g.generation {
                    return all_with(&none, Some(ErrorCode::IllegalGeneration));
                }
            }
            partition
        };
        let now = now_ms();
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        let mut errors = HashMap::new();
        for t in &req.topics {
            for p in &t.partitions {
                let metadata = p.committed_metadata.as_ref().map_or("", |m| m.as_str());
                let key = (t.name.as_str().to_string(), p.partition_index);
                if metadata.len() > self.config.offset_metadata_max_bytes.max(0) as usize {
                    errors.insert(key, ErrorCode::OffsetMetadataTooLarge);
                    continue;
                }
                let value = OffsetValue {
                    offset: p.committed_offset,
                    leader_epoch: if version >= 2 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: metadata.to_string(),
                    commit_timestamp: now,
                };
                records.push((
                    format::offset_key(&group_id, &key.0, key.1),
                    Some(format::offset_value(&value)),
                ));
                accepted.push((key, value));
            }
        }
        if !records.is_empty() {
            let pid = req.producer_id.0;
            let result = match build_batch(&records, Some((pid, req.producer_epoch))) {
                Ok(b) => self.log.append(partition, b).await.map(|_| ()),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    let mut state = self.state.lock();
                    if let Some(g) = state.groups.get_mut(&group_id) {
                        let pending = g.pending_txn_offsets.entry(pid).or_default();
                        for (key, value) in accepted {
                            pending.insert(key, value);
                        }
                    }
                }
                Err(e) => {
                    let code = match e {
                        ErrorCode::InvalidProducerEpoch if version >= 2 => {
                            ErrorCode::ProducerFenced
                        }
                        other => commit_error(other),
                    };
                    for (key, _) in accepted {
                        errors.insert(key, code);
                    }
                }
            }
        }
        all_with(&errors, None)
    }

    /// A marker was written to offsets partition `partition`: a commit makes
    /// the producer's pending offsets visible, an abort drops them.
    pub fn complete_transaction(&self, partition: i32, producer_id: i64, commit: bool) {
        let mut state = self.state.lock();
        for g in state
            .groups
            .values_mut()
            .filter(|g| g.partition == partition)
        {
            if let Some(pending) = g.pending_txn_offsets.remove(&producer_id) {
                if commit {
                    g.offsets.extend(pending);
                }
            }
        }
    }

    fn fetch_group_offsets(
        &self,
        state: &State,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
        require_stable: bool,
    ) -> Result<Vec<TopicOffsets>, ErrorCode> {
        self.check_owned(state, group_id)?;
        let g = state.groups.get(group_id);
        let pending: HashSet<(String, i32)> = g
            .map(|g| {
                g.pending_txn_offsets
                    .values()
                    .flat_map(|m| m.keys().cloned())
                    .collect()
            })
            .unwrap_or_default();
        let lookup = |topic: &str, p: i32| -> Result<OffsetValue, ErrorCode> {
            let key = (topic.to_string(), p);
            if require_stable && pending.contains(&key) {
                return Err(ErrorCode::UnstableOffsetCommit);
            }
            Ok(g.and_then(|g| g.offsets.get(&key))
                .cloned()
                .unwrap_or(OffsetValue {
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                    commit_timestamp: -1,
                }))
        };
        let topics = match topics {
            Some(t) => t,
            None => {
                let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
                if let Some(g) = g {
                    for (t, p) in g.offsets.keys() {
                        by_topic.entry(t.clone()).or_default().push(*p);
                    }
                }
                by_topic
                    .into_iter()
                    .map(|(t, mut ps)| {
                        ps.sort_unstable();
                        (t, ps)
                    })
                    .collect()
            }
        };
        Ok(topics
            .into_iter()
            .map(|(t, ps)| {
                let results = ps.iter().map(|&p| (p, lookup(&t, p))).collect();
                (t, results)
            })
            .collect())
    }

    /// OffsetFetch (see the crate docs).
    pub async fn offset_fetch(&self, version: i16, req: OffsetFetchRequest) -> OffsetFetchResponse {
        let state = self.state.lock();
        let epoch_of = |v: &OffsetValue| if version >= 5 { v.leader_epoch } else { -1 };
        if version >= 8 {
            let groups = req
                .groups
                .iter()
                .map(|group| {
                    let topics = group.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.as_str().to_string(), t.partition_indexes.clone()))
                            .collect()
                    });
                    let response =
                        OffsetFetchResponseGroup::default().with_group_id(group.group_id.clone());
                    match self.fetch_group_offsets(
                        &state,
                        group.group_id.as_str(),
                        topics,
                        req.require_stable,
                    ) {
                        Err(e) => response.with_error_code(e.code()),
                        Ok(topics) => response.with_topics(
                            topics
                                .into_iter()
                                .map(|(t, ps)| {
                                    OffsetFetchResponseTopics::default()
                                        .with_name(TopicName(s(&t)))
                                        .with_partitions(
                                            ps.into_iter()
                                                .map(|(p, r)| match r {
                                                    Ok(v) => {
                                                        OffsetFetchResponsePartitions::default()
                                                            .with_partition_index(p)
                                                            .with_committed_offset(v.offset)
                                                            .with_committed_leader_epoch(epoch_of(
                                                                &v,
                                                            ))
                                                            .with_metadata(Some(s(&v.metadata)))
                                                    }
                                                    Err(e) => {
                                                        OffsetFetchResponsePartitions::default()
                                                            .with_partition_index(p)
                                                            .with_committed_offset(-1)
                                                            .with_metadata(
                                                                Some(StrBytes::default()),
                                                            )
                                                            .with_error_code(e.code())
                                                    }
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
        let topics = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.as_str().to_string(), t.partition_indexes.clone()))
                .collect()
        });
        match self.fetch_group_offsets(&state, req.group_id.as_str(), topics, req.require_stable) {
            Err(e) => {
                let mut response = OffsetFetchResponse::default();
                if version >= 2 {
                    response.error_code = e.code();
                } else if let Some(ts) = &req.topics {
                    response.topics = ts
                        .iter()
                        .map(|t| {
                            OffsetFetchResponseTopic::default()
                                .with_name(t.name.clone())
                                .with_partitions(
                                    t.partition_indexes
                                        .iter()
                                        .map(|&p| {
                                            OffsetFetchResponsePartition::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(-1)
                                                .with_metadata(Some(StrBytes::default()))
                                                .with_error_code(e.code())
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                }
                response
            }
            Ok(topics) => OffsetFetchResponse::default().with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetFetchResponseTopic::default()
                            .with_name(TopicName(s(&t)))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|(p, r)| match r {
                                        Ok(v) => OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(v.offset)
                                            .with_committed_leader_epoch(epoch_of(&v))
                                            .with_metadata(Some(s(&v.metadata))),
                                        Err(e) => OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(-1)
                                            .with_metadata(Some(StrBytes::default()))
                                            .with_error_code(e.code()),
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        }
    }

    /// OffsetDelete (see the crate docs).
    pub async fn offset_delete(
        &self,
        _version: i16,
        req: OffsetDeleteRequest,
    ) -> OffsetDeleteResponse {
        let group_id = req.group_id.as_str().to_string();
        let mut errors: HashMap<(String, i32), ErrorCode> = HashMap::new();
        let mut records = Vec::new();
        let partition = {
            let mut state = self.state.lock();
            let partition = match self.check_owned(&state, &group_id) {
                Ok(p) => p,
                Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
            };
            let Some(g) = state.groups.get_mut(&group_id) else {
                return OffsetDeleteResponse::default()
                    .with_error_code(ErrorCode::GroupIdNotFound.code());
            };
            if g.state == GroupState::Dead {
                return OffsetDeleteResponse::default()
                    .with_error_code(ErrorCode::GroupIdNotFound.code());
            }
            if g.state != GroupState::Empty && g.protocol_type.as_deref() != Some("consumer") {
                return OffsetDeleteResponse::default()
                    .with_error_code(ErrorCode::NonEmptyGroup.code());
            }
            let subscribed = if g.state == GroupState::Empty {
                HashSet::new()
            } else {
                g.subscribed_topics().unwrap_or_default()
            };
            for t in &req.topics {
                for p in &t.partitions {
                    let key = (t.name.as_str().to_string(), p.partition_index);
                    if subscribed.contains(&key.0) {
                        errors.insert(key, ErrorCode::GroupSubscribedToTopic);
                    } else if g.offsets.remove(&key).is_some() {
                        records.push((format::offset_key(&group_id, &key.0, key.1), None));
                    }
                }
            }
            partition
        };
        if !records.is_empty() {
            if let Ok(b) = build_batch(&records, None) {
                if let Err(e) = self.log.append(partition, b).await {
                    return OffsetDeleteResponse::default().with_error_code(commit_error(e).code());
                }
            }
        }
        OffsetDeleteResponse::default().with_topics(
            req.topics
                .iter()
                .map(|t| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    let code = errors
                                        .get(&(t.name.as_str().to_string(), p.partition_index))
                                        .map_or(0, |e| e.code());
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }

    /// Expires offsets older than `offsets.retention.minutes` (Kafka 2.1+
    /// rules: a consumer group's offsets only once it is empty; offsets of
    /// groups that never had members by commit time).
    async fn expire_offsets(&self) {
        let retention = self.config.offsets_retention_ms;
        let now = now_ms();
        let mut batches = Vec::new();
        {
            let mut state = self.state.lock();
            let mut dead = Vec::new();
            for g in state.groups.values_mut() {
                if g.state != GroupState::Empty {
                    continue;
                }
                let expired: Vec<(String, i32)> = g
                    .offsets
                    .iter()
                    .filter(|(key, v)| {
                        !g.pending_txn_offsets.values().any(|p| p.contains_key(*key))
                            && if g.protocol_type.is_some() {
                                now - g.state_timestamp_ms.max(v.commit_timestamp) >= retention
                            } else {
                                now - v.commit_timestamp >= retention
                            }
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                let mut records: Vec<(Bytes, Option<Bytes>)> = expired
                    .iter()
                    .map(|(t, p)| (format::offset_key(&g.id, t, *p), None))
                    .collect();
                for key in &expired {
                    g.offsets.remove(key);
                }
                if g.offsets.is_empty() && g.pending_txn_offsets.is_empty() {
                    records.push((format::group_key(&g.id), None));
                    dead.push(g.id.clone());
                }
                if !expired.is_empty() {
                    tracing::info!(group = %g.id, expired = expired.len(), "expired committed offsets");
                }
                if !records.is_empty() && (!expired.is_empty() || g.protocol_type.is_some()) {
                    if let Ok(b) = build_batch(&records, None) {
                        batches.push((g.partition, b));
                    }
                }
            }
            for id in dead {
                state.groups.remove(&id);
            }
        }
        for (partition, b) in batches {
            if let Err(e) = self.log.append(partition, b).await {
                tracing::warn!(partition, error = ?e, "cannot write offset expiry tombstones");
            }
        }
    }

    /// Topics were deleted: drop their offsets (with tombstones).
    pub async fn on_topics_deleted(&self, topics: Vec<String>) {
        let topics: HashSet<String> = topics.into_iter().collect();
        let mut batches = Vec::new();
        {
            let mut state = self.state.lock();
            for g in state.groups.values_mut() {
                let gone: Vec<(String, i32)> = g
                    .offsets
                    .keys()
                    .filter(|(t, _)| topics.contains(t))
                    .cloned()
                    .collect();
                if gone.is_empty() {
                    continue;
                }
                let records: Vec<(Bytes, Option<Bytes>)> = gone
                    .iter()
                    .map(|(t, p)| (format::offset_key(&g.id, t, *p), None))
                    .collect();
                for key in gone {
                    g.offsets.remove(&key);
                }
                if let Ok(b) = build_batch(&records, None) {
                    batches.push((g.partition, b));
                }
            }
        }
        for (partition, b) in batches {
            if let Err(e) = self.log.append(partition, b).await {
                tracing::warn!(partition, error = ?e, "cannot remove offsets of deleted topics");
            }
        }
    }

    // -------------------------------------------------------------- admin --

    /// ListGroups (see the crate docs).
    pub async fn list_groups(&self, version: i16, req: ListGroupsRequest) -> ListGroupsResponse {
        let state = self.state.lock();
        let filter: HashSet<String> = req
            .states_filter
            .iter()
            .map(|s| s.as_str().to_ascii_lowercase())
            .collect();
        let loading = state
            .partitions
            .values()
            .any(|o| matches!(o, Ownership::Loading(_)));
        let mut groups: Vec<ListedGroup> = state
            .groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .filter(|g| filter.is_empty() || filter.contains(&g.state.name().to_ascii_lowercase()))
            .map(|g| {
                let mut listed = ListedGroup::default()
                    .with_group_id(GroupId(s(&g.id)))
                    .with_protocol_type(s(g.protocol_type.as_deref().unwrap_or("")));
                if version >= 4 {
                    listed.group_state = s(g.state.name());
                }
                listed
            })
            .collect();
        groups.sort_by(|a, b| a.group_id.as_str().cmp(b.group_id.as_str()));
        let mut response = ListGroupsResponse::default().with_groups(groups);
        if loading {
            response.error_code = ErrorCode::CoordinatorLoadInProgress.code();
        }
        response
    }

    /// DescribeGroups (see the crate docs).
    pub async fn describe_groups(
        &self,
        version: i16,
        req: DescribeGroupsRequest,
    ) -> DescribeGroupsResponse {
        let state = self.state.lock();
        let groups = req
            .groups
            .iter()
            .map(|id| {
                let base =
                    describe_groups_response::DescribedGroup::default().with_group_id(id.clone());
                if let Err(e) = self.check_owned(&state, id.as_str()) {
                    return base.with_error_code(e.code());
                }
                let Some(g) = state.groups.get(id.as_str()) else {
                    return base.with_group_state(s("Dead"));
                };
                let protocol = g.protocol.clone().unwrap_or_default();
                let with_members = matches!(
                    g.state,
                    GroupState::Stable
                        | GroupState::CompletingRebalance
                        | GroupState::PreparingRebalance
                );
                base.with_group_state(s(g.state.name()))
                    .with_protocol_type(s(g.protocol_type.as_deref().unwrap_or("")))
                    .with_protocol_data(s(
                        if g.state == GroupState::Stable
                            || g.state == GroupState::CompletingRebalance
                        {
                            &protocol
                        } else {
                            ""
                        },
                    ))
                    .with_members(if with_members {
                        g.members
                            .values()
                            .map(|m| {
                                let mut member =
                                    describe_groups_response::DescribedGroupMember::default()
                                        .with_member_id(s(&m.member_id))
                                        .with_client_id(s(&m.client_id))
                                        .with_client_host(s(&m.client_host))
                                        .with_member_metadata(if g.state == GroupState::Stable {
                                            m.metadata(&protocol)
                                        } else {
                                            Bytes::new()
                                        })
                                        .with_member_assignment(if g.state == GroupState::Stable {
                                            m.assignment.clone()
                                        } else {
                                            Bytes::new()
                                        });
                                if version >= 4 {
                                    member.group_instance_id = m.instance_id.as_deref().map(s);
                                }
                                member
                            })
                            .collect()
                    } else {
                        Vec::new()
                    })
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    /// DeleteGroups (see the crate docs).
    pub async fn delete_groups(
        &self,
        _version: i16,
        req: DeleteGroupsRequest,
    ) -> DeleteGroupsResponse {
        let mut results = Vec::new();
        let mut batches = Vec::new();
        {
            let state = self.state.lock();
            for id in &req.groups_names {
                let code = match self.check_owned(&state, id.as_str()) {
                    Err(e) => Some(e),
                    Ok(_) => match state.groups.get(id.as_str()) {
                        None => Some(ErrorCode::GroupIdNotFound),
                        Some(g) if g.state == GroupState::Dead => Some(ErrorCode::GroupIdNotFound),
                        Some(g) if g.state != GroupState::Empty => Some(ErrorCode::NonEmptyGroup),
                        Some(g) => {
                            let mut records: Vec<(Bytes, Option<Bytes>)> = g
                                .offsets
                                .keys()
                                .map(|(t, p)| (format::offset_key(&g.id, t, *p), None))
                                .collect();
                            records.push((format::group_key(&g.id), None));
                            if let Ok(b) = build_batch(&records, None) {
                                batches.push((id.as_str().to_string(), g.partition, b));
                            }
                            None
                        }
                    },
                };
                results.push((id.clone(), code));
            }
        }
        let mut failed: HashMap<String, ErrorCode> = HashMap::new();
        for (id, partition, b) in batches {
            match self.log.append(partition, b).await {
                Ok(_) => {
                    self.state.lock().groups.remove(&id);
                }
                Err(e) => {
                    failed.insert(id, commit_error(e));
                }
            }
        }
        DeleteGroupsResponse::default().with_results(
            results
                .into_iter()
                .map(|(id, code)| {
                    let code = code.or_else(|| failed.get(id.as_str()).copied());
                    delete_groups_response::DeletableGroupResult::default()
                        .with_group_id(id)
                        .with_error_code(code.map_or(0, |e| e.code()))
                })
                .collect(),
        )
    }
}

fn apply_offset(
    groups: &mut HashMap<String, Group>,
    partition: i32,
    now: i64,
    group: &str,
    topic: String,
    p: i32,
    value: Option<OffsetValue>,
) {
    let g = groups
        .entry(group.to_string())
        .or_insert_with(|| Group::new(group, partition, now));
    match value {
        Some(v) => {
            g.offsets.insert((topic, p), v);
        }
        None => {
            g.offsets.remove(&(topic, p));
        }
    }
}

fn restore_group(g: &mut Group, v: format::GroupValue) {
    let now = Instant::now();
    g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
    g.generation = v.generation;
    g.protocol = v.protocol.clone();
    g.leader = v.leader;
    if v.state_timestamp > 0 {
        g.state_timestamp_ms = v.state_timestamp;
    }
    g.members.clear();
    g.static_members.clear();
    let protocol = v.protocol.unwrap_or_default();
    for m in v.members {
        if let Some(i) = &m.instance_id {
            g.static_members.insert(i.clone(), m.member_id.clone());
        }
        g.members.insert(
            m.member_id.clone(),
            Member {
                member_id: m.member_id,
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                last_heartbeat: now,
                join_waiter: None,
                sync_waiter: None,
                join_version: 0,
                sync_version: 0,
            },
        );
    }
    g.state = if g.members.is_empty() {
        GroupState::Empty
    } else {
        GroupState::Stable
    };
}

fn remove_member(g: &mut Group, member_id: &str) {
    if let Some(mut m) = g.members.shift_remove(member_id) {
        if let Some(i) = &m.instance_id {
            if g.static_members.get(i).map(String::as_str) == Some(member_id) {
                g.static_members.remove(i);
            }
        }
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(join_error(ErrorCode::UnknownMemberId, member_id));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(sync_error(ErrorCode::UnknownMemberId));
        }
    }
    if g.leader.as_deref() == Some(member_id) {
        g.leader = g.members.keys().next().cloned();
    }
}

/// UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID checks shared by group requests.
fn check_member(g: &Group, member_id: &str, instance_id: Option<&str>) -> Result<(), ErrorCode> {
    if let Some(instance) = instance_id {
        match g.static_members.get(instance) {
            Some(known) if known != member_id => return Err(ErrorCode::FencedInstanceId),
            _ => {}
        }
    }
    if !g.members.contains_key(member_id) {
        return Err(ErrorCode::UnknownMemberId);
    }
    Ok(())
}

fn validate_commit(
    g: &Group,
    generation: i32,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<(), ErrorCode> {
    if g.state == GroupState::Dead {
        return Err(ErrorCode::CoordinatorNotAvailable);
    }
    if generation < 0 && g.state == GroupState::Empty {
        return Ok(());
    }
    if let Some(instance) = instance_id {
        if g.static_members
            .get(instance)
            .is_some_and(|k| k != member_id)
        {
            return Err(ErrorCode::FencedInstanceId);
        }
    }
    if g.state == GroupState::CompletingRebalance {
        return Err(ErrorCode::RebalanceInProgress);
    }
    if !g.members.contains_key(member_id) {
        return Err(ErrorCode::UnknownMemberId);
    }
    if generation != g.generation {
        return Err(ErrorCode::IllegalGeneration);
    }
    Ok(())
}
