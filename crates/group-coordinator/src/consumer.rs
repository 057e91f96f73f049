//! The KIP-848 consumer group protocol (ConsumerGroupHeartbeat,
//! ConsumerGroupDescribe), as Kafka 3.7 runs it.
//!
//! A heartbeat updates the member's subscription; a change of membership,
//! subscriptions or subscribed topics' metadata bumps the group epoch, which
//! makes the coordinator compute a new target assignment with a server-side
//! assignor. Each member then reconciles toward its target one heartbeat at
//! a time (Kafka's CurrentAssignmentBuilder): partitions it must give up are
//! taken away first, and a partition is handed to a member only once no
//! other member owns it. Member epochs fence zombies. Regex subscriptions
//! are refused with INVALID_REQUEST, as in Kafka 3.7.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use kafka_protocol::messages::ConsumerGroupHeartbeatRequest;
use millrace_protocol::ErrorCode;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::assignor::{self, MemberSpec};
use crate::classic::ClassicState;
use crate::records::{
    self, CurrentAssignmentValue, MemberMetadataValue, RecordKey, TopicMetadata, TopicPartitions,
};
use crate::shard::{Group, Record, ShardState, WriteResult};
use crate::timer::TimerKey;
use crate::ClientInfo;

/// Member epoch of a member leaving for good.
const LEAVE_EPOCH: i32 = -1;
/// Member epoch of a static member leaving temporarily.
const STATIC_LEAVE_EPOCH: i32 = -2;

/// Where a member is in its reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberState {
    Revoking,
    Assigning,
    Stable,
}

/// One KIP-848 member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConsumerMember {
    pub member_id: String,
    pub meta: MemberMetadataValue,
    pub cur: CurrentAssignmentValue,
}

impl ConsumerMember {
    pub(crate) fn state(&self) -> MemberState {
        if !self.cur.pending_revocation.is_empty() {
            MemberState::Revoking
        } else if !self.cur.pending_assignment.is_empty() {
            MemberState::Assigning
        } else {
            MemberState::Stable
        }
    }
}

/// A KIP-848 consumer group.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConsumerGroup {
    pub id: String,
    pub group_epoch: i32,
    /// Subscribed topic name -> metadata, as of the last epoch bump.
    pub subscription: BTreeMap<String, TopicMetadata>,
    pub members: BTreeMap<String, ConsumerMember>,
    pub static_members: HashMap<String, String>,
    pub target_epoch: i32,
    pub target: HashMap<String, TopicPartitions>,
    /// (topic id, partition) -> epoch of the member owning it (assigned or
    /// pending revocation).
    pub owners: HashMap<(Uuid, i32), i32>,
}

impl ConsumerGroup {
    /// Replaces the subscribed topics' metadata, recording it when it
    /// changed (a change bumps the group epoch: assignments are recomputed).
    /// Returns whether it changed.
    fn set_subscription(
        &mut self,
        group_id: &str,
        subscription: BTreeMap<String, TopicMetadata>,
        records: &mut Vec<Record>,
    ) -> bool {
        if subscription == self.subscription {
            return false;
        }
        let topics: Vec<TopicMetadata> = subscription.values().cloned().collect();
        records.push((
            RecordKey::ConsumerGroupPartitionMetadata {
                group: group_id.to_string(),
            }
            .encode(),
            Some(records::encode_partition_metadata(&topics)),
        ));
        self.subscription = subscription;
        true
    }

    fn new(id: &str) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_string(),
            ..Default::default()
        }
    }

    pub(crate) fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.target_epoch {
            "Assigning"
        } else if self.members.values().any(|m| {
            m.cur.target_member_epoch != self.target_epoch || m.state() != MemberState::Stable
        }) {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    pub(crate) fn subscribed_topic_names(&self) -> HashSet<String> {
        self.members
            .values()
            .flat_map(|m| m.meta.subscribed_topic_names.iter().cloned())
            .collect()
    }

    fn owned(m: &ConsumerMember) -> impl Iterator<Item = (Uuid, i32)> + '_ {
        m.cur
            .assigned
            .iter()
            .chain(m.cur.pending_revocation.iter())
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
    }

    /// Replaces (or adds) a member, keeping the owner index right.
    fn put_member(&mut self, m: ConsumerMember) {
        self.drop_member(&m.member_id.clone());
        for tp in Self::owned(&m) {
            self.owners.insert(tp, m.cur.member_epoch);
        }
        if let Some(i) = &m.meta.instance_id {
            self.static_members.insert(i.clone(), m.member_id.clone());
        }
        self.members.insert(m.member_id.clone(), m);
    }

    fn drop_member(&mut self, member_id: &str) -> Option<ConsumerMember> {
        let old = self.members.remove(member_id)?;
        for tp in Self::owned(&old) {
            self.owners.remove(&tp);
        }
        if let Some(i) = &old.meta.instance_id {
            if self.static_members.get(i).map(String::as_str) == Some(member_id) {
                self.static_members.remove(i);
            }
        }
        Some(old)
    }

    fn rebuild_owners(&mut self) {
        self.owners.clear();
        for m in self.members.values() {
            for tp in Self::owned(m) {
                self.owners.insert(tp, m.cur.member_epoch);
            }
        }
    }

    /// The assignor most members asked for, or the configured default.
    fn preferred_assignor(&self, default: &str) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.meta.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for (a, c) in votes {
            if best.is_none_or(|(_, bc)| c > bc) {
                best = Some((a, c));
            }
        }
        best.map_or_else(|| default.to_string(), |(a, _)| a.to_string())
    }

    fn topic_name(&self, id: Uuid) -> String {
        self.subscription
            .values()
            .find(|t| t.id == id)
            .map(|t| t.name.clone())
            .unwrap_or_default()
    }

    /// Records that delete the group and its members.
    pub(crate) fn tombstones(&self) -> Vec<Record> {
        let g = self.id.clone();
        let mut out = Vec::new();
        for m in self.members.keys() {
            out.extend(member_tombstones(&g, m));
        }
        out.push((
            RecordKey::ConsumerGroupTargetAssignmentMetadata { group: g.clone() }.encode(),
            None,
        ));
        out.push((
            RecordKey::ConsumerGroupPartitionMetadata { group: g.clone() }.encode(),
            None,
        ));
        out.push((RecordKey::ConsumerGroupMetadata { group: g }.encode(), None));
        out
    }
}

fn member_tombstones(group: &str, member: &str) -> Vec<Record> {
    vec![
        (
            RecordKey::ConsumerGroupCurrentMemberAssignment {
                group: group.to_string(),
                member: member.to_string(),
            }
            .encode(),
            None,
        ),
        (
            RecordKey::ConsumerGroupTargetAssignmentMember {
                group: group.to_string(),
                member: member.to_string(),
            }
            .encode(),
            None,
        ),
        (
            RecordKey::ConsumerGroupMemberMetadata {
                group: group.to_string(),
                member: member.to_string(),
            }
            .encode(),
            None,
        ),
    ]
}

fn member_metadata_record(group: &str, m: &ConsumerMember) -> Record {
    (
        RecordKey::ConsumerGroupMemberMetadata {
            group: group.to_string(),
            member: m.member_id.clone(),
        }
        .encode(),
        Some(m.meta.encode()),
    )
}

fn current_assignment_record(group: &str, m: &ConsumerMember) -> Record {
    (
        RecordKey::ConsumerGroupCurrentMemberAssignment {
            group: group.to_string(),
            member: m.member_id.clone(),
        }
        .encode(),
        Some(m.cur.encode()),
    )
}

/// A new random id in Kafka's `Uuid.toString()` form (KIP-848 member ids).
pub(crate) fn kafka_uuid_string() -> String {
    millrace_protocol::uuid_text::encode(Uuid::new_v4().as_bytes())
}

/// Reconciles a member toward its target (Kafka 3.7's CurrentAssignmentBuilder).
/// `owned` is what the member reported owning (None: not reported);
/// `is_free` tells whether no member owns a partition.
fn reconcile(
    member: &ConsumerMember,
    target_epoch: i32,
    target: &TopicPartitions,
    owned: Option<&TopicPartitions>,
    is_free: &dyn Fn(Uuid, i32) -> bool,
) -> ConsumerMember {
    let mut m = member.clone();
    let take_free = |m: &mut ConsumerMember| {
        let mut still = TopicPartitions::new();
        for (t, ps) in std::mem::take(&mut m.cur.pending_assignment) {
            for p in ps {
                if is_free(t, p) {
                    m.cur.assigned.entry(t).or_default().insert(p);
                } else {
                    still.entry(t).or_default().insert(p);
                }
            }
        }
        m.cur.pending_assignment = still;
    };
    if member.cur.target_member_epoch != target_epoch {
        let mut assigned = TopicPartitions::new();
        let mut revoking = TopicPartitions::new();
        let mut pending = TopicPartitions::new();
        let mut topics: BTreeSet<Uuid> = target.keys().copied().collect();
        topics.extend(member.cur.assigned.keys());
        topics.extend(member.cur.pending_revocation.keys());
        for t in topics {
            let tgt = target.get(&t).cloned().unwrap_or_default();
            let mut had: BTreeSet<i32> = member.cur.assigned.get(&t).cloned().unwrap_or_default();
            had.extend(member.cur.pending_revocation.get(&t).into_iter().flatten());
            let keep: BTreeSet<i32> = had.intersection(&tgt).copied().collect();
            let rev: BTreeSet<i32> = had.difference(&keep).copied().collect();
            let add: BTreeSet<i32> = tgt.difference(&keep).copied().collect();
            if !keep.is_empty() {
                assigned.insert(t, keep);
            }
            if !rev.is_empty() {
                revoking.insert(t, rev);
            }
            if !add.is_empty() {
                pending.insert(t, add);
            }
        }
        m.cur.assigned = assigned;
        m.cur.pending_revocation = revoking;
        m.cur.pending_assignment = pending;
        m.cur.target_member_epoch = target_epoch;
        if m.cur.pending_revocation.is_empty() {
            m.cur.previous_member_epoch = member.cur.member_epoch;
            m.cur.member_epoch = target_epoch;
            take_free(&mut m);
        }
        return m;
    }
    match member.state() {
        MemberState::Revoking => {
            let still_owns = match owned {
                None => true,
                Some(owned) => member.cur.pending_revocation.iter().any(|(t, ps)| {
                    owned
                        .get(t)
                        .is_some_and(|o| o.intersection(ps).next().is_some())
                }),
            };
            if !still_owns {
                m.cur.pending_revocation.clear();
                m.cur.previous_member_epoch = member.cur.member_epoch;
                m.cur.member_epoch = member.cur.target_member_epoch;
                take_free(&mut m);
            }
        }
        MemberState::Assigning => take_free(&mut m),
        MemberState::Stable => {}
    }
    m
}

/// A heartbeat's outcome once its records are queued.
pub(crate) struct HeartbeatOutcome {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub assignment: Option<TopicPartitions>,
    pub write: oneshot::Receiver<WriteResult>,
}

/// A member as ConsumerGroupDescribe shows it.
pub(crate) struct DescribedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Vec<(Uuid, String, Vec<i32>)>,
    pub target_assignment: Vec<(Uuid, String, Vec<i32>)>,
}

/// A group as ConsumerGroupDescribe shows it.
pub(crate) struct DescribedConsumer {
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<DescribedMember>,
}

type HbError = (ErrorCode, Option<String>);

fn invalid(msg: &str) -> HbError {
    (ErrorCode::InvalidRequest, Some(msg.to_string()))
}

impl ShardState {
    fn consumer(&mut self, group_id: &str) -> Option<&mut ConsumerGroup> {
        match self.groups.get_mut(group_id) {
            Some(Group::Consumer(g)) => Some(g),
            _ => None,
        }
    }

    fn session_ms(&self) -> i64 {
        i64::from(self.ctx.consumer_config().consumer_group_session_timeout_ms)
    }

    /// ConsumerGroupHeartbeat.
    pub(crate) fn consumer_heartbeat(
        &mut self,
        req: &ConsumerGroupHeartbeatRequest,
        client: &ClientInfo,
    ) -> Result<HeartbeatOutcome, HbError> {
        let group_id = req.group_id.to_string();
        let epoch = req.member_epoch;
        let member_id_req = req.member_id.to_string();
        // Request validation (Kafka's throwIfConsumerGroupHeartbeatRequestIsInvalid).
        if req.instance_id.as_ref().is_some_and(|s| s.is_empty()) {
            return Err(invalid("InstanceId can't be empty."));
        }
        if req.rack_id.as_ref().is_some_and(|s| s.is_empty()) {
            return Err(invalid("RackId can't be empty."));
        }
        // v1 clients send an empty regex to mean "names only" (librdkafka
        // does on every join); only a real pattern is refused.
        if req
            .subscribed_topic_regex
            .as_ref()
            .is_some_and(|r| !r.is_empty())
        {
            return Err(invalid(
                "SubscribedTopicRegex is not supported: subscribe to topic names.",
            ));
        }
        if epoch > 0 || epoch == LEAVE_EPOCH {
            if member_id_req.is_empty() {
                return Err(invalid("MemberId can't be empty."));
            }
        } else if epoch == 0 {
            if req.rebalance_timeout_ms == -1 {
                return Err(invalid(
                    "RebalanceTimeoutMs must be provided in first request.",
                ));
            }
            if req.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) {
                return Err(invalid("TopicPartitions must be empty when (re-)joining."));
            }
            if req.subscribed_topic_names.is_none() {
                return Err(invalid(
                    "SubscribedTopicNames must be set in first request.",
                ));
            }
        } else if epoch == STATIC_LEAVE_EPOCH {
            if req.instance_id.is_none() {
                return Err(invalid("InstanceId can't be null."));
            }
        } else {
            return Err(invalid(&format!("MemberEpoch {epoch} is invalid.")));
        }
        let consumer_config = self.ctx.consumer_config();
        if let Some(a) = &req.server_assignor {
            if !consumer_config
                .consumer_group_assignors
                .iter()
                .any(|c| c == a.as_str())
                || !assignor::ASSIGNORS.contains(&a.as_str())
            {
                return Err((
                    ErrorCode::UnsupportedAssignor,
                    Some(format!(
                        "ServerAssignor {} is not supported. Supported assignors: {}.",
                        a.as_str(),
                        self.ctx
                            .consumer_config()
                            .consumer_group_assignors
                            .join(", ")
                    )),
                ));
            }
        }
        if epoch == LEAVE_EPOCH || epoch == STATIC_LEAVE_EPOCH {
            return self.consumer_leave(
                &group_id,
                &member_id_req,
                req.instance_id.as_deref(),
                epoch,
            );
        }

        // The group.
        match self.groups.get(&group_id) {
            Some(Group::Consumer(_)) => {}
            Some(Group::Classic(g)) => {
                let convertible = g.is(ClassicState::Empty)
                    && g.members.is_empty()
                    && g.pending_members.is_empty();
                if epoch == 0 && convertible {
                    let tomb = (
                        RecordKey::GroupMetadata {
                            group: group_id.clone(),
                        }
                        .encode(),
                        None,
                    );
                    let w = self.write(vec![tomb], None);
                    self.after_write(w, |_, _| {});
                    self.groups.insert(
                        group_id.clone(),
                        Group::Consumer(ConsumerGroup::new(&group_id)),
                    );
                } else {
                    return Err((
                        ErrorCode::GroupIdNotFound,
                        Some(format!("Group {group_id} is not a consumer group.")),
                    ));
                }
            }
            None => {
                if epoch != 0 {
                    return Err((
                        ErrorCode::UnknownMemberId,
                        Some(format!("Group {group_id} not found.")),
                    ));
                }
                self.groups.insert(
                    group_id.clone(),
                    Group::Consumer(ConsumerGroup::new(&group_id)),
                );
            }
        }
        let cfg_max = self.ctx.consumer_config().consumer_group_max_size.max(0) as usize;
        let default_assignor = self
            .ctx
            .consumer_config()
            .consumer_group_assignors
            .first()
            .cloned()
            .unwrap_or_else(|| "uniform".to_string());
        let owned: Option<TopicPartitions> = req.topic_partitions.as_ref().map(|tps| {
            let mut out = TopicPartitions::new();
            for tp in tps {
                out.entry(tp.topic_id)
                    .or_default()
                    .extend(tp.partitions.iter().copied());
            }
            out
        });
        let mut records: Vec<Record> = Vec::new();
        let session = self.session_ms();
        let Some(g) = self.consumer(&group_id) else {
            return Err((ErrorCode::UnknownServerError, None));
        };

        // The member.
        let instance = req.instance_id.as_ref().map(|s| s.to_string());
        let mut is_new = false;
        let mut replaced_static: Option<String> = None;
        let member = if epoch == 0 {
            let existing_static = instance
                .as_ref()
                .and_then(|i| g.static_members.get(i).cloned())
                .filter(|id| *id != member_id_req);
            if let Some(old_id) = existing_static {
                let Some(old) = g.members.get(&old_id).cloned() else {
                    return Err((ErrorCode::UnknownServerError, None));
                };
                if old.cur.member_epoch != STATIC_LEAVE_EPOCH {
                    return Err((
                        ErrorCode::UnreleasedInstanceId,
                        Some(format!(
                            "Static member {old_id} with instance id {} is not released yet.",
                            instance.as_deref().unwrap_or_default()
                        )),
                    ));
                }
                // The new instance takes the old one's assignment and epoch.
                let new_id = if member_id_req.is_empty() {
                    kafka_uuid_string()
                } else {
                    member_id_req.clone()
                };
                let mut m = old.clone();
                m.member_id = new_id;
                m.cur.member_epoch = old.cur.previous_member_epoch;
                replaced_static = Some(old_id);
                m
            } else if let Some(existing) = g.members.get(&member_id_req).cloned() {
                // A known member rejoining from epoch 0 gave up everything.
                let mut m = existing;
                m.cur.assigned.clear();
                m.cur.pending_revocation.clear();
                m.cur.pending_assignment.clear();
                m.cur.member_epoch = 0;
                m.cur.target_member_epoch = 0;
                m
            } else {
                if g.members.len() >= cfg_max {
                    return Err((
                        ErrorCode::GroupMaxSizeReached,
                        Some(format!("The consumer group has reached its maximum capacity of {cfg_max} members.")),
                    ));
                }
                is_new = true;
                ConsumerMember {
                    member_id: if member_id_req.is_empty() {
                        kafka_uuid_string()
                    } else {
                        member_id_req.clone()
                    },
                    meta: MemberMetadataValue {
                        rebalance_timeout_ms: -1,
                        ..Default::default()
                    },
                    cur: CurrentAssignmentValue {
                        member_epoch: 0,
                        previous_member_epoch: -1,
                        target_member_epoch: 0,
                        ..Default::default()
                    },
                }
            }
        } else {
            let Some(m) = g.members.get(&member_id_req).cloned() else {
                return Err((
                    ErrorCode::UnknownMemberId,
                    Some(format!(
                        "Member {member_id_req} is not a member of group {group_id}."
                    )),
                ));
            };
            if epoch > m.cur.member_epoch {
                return Err((
                    ErrorCode::FencedMemberEpoch,
                    Some(format!("The consumer group member has a greater member epoch ({epoch}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.", m.cur.member_epoch)),
                ));
            }
            if epoch < m.cur.member_epoch {
                let ok = epoch == m.cur.previous_member_epoch
                    && owned.as_ref().is_some_and(|o| {
                        o.iter()
                            .all(|(t, ps)| m.cur.assigned.get(t).is_some_and(|a| ps.is_subset(a)))
                    });
                if !ok {
                    return Err((
                        ErrorCode::FencedMemberEpoch,
                        Some(format!("The consumer group member has a smaller member epoch ({epoch}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.", m.cur.member_epoch)),
                    ));
                }
            }
            m
        };
        let member_id = member.member_id.clone();

        // Update the subscription.
        let mut updated = member.clone();
        if let Some(i) = &instance {
            updated.meta.instance_id = Some(i.clone());
        }
        if let Some(r) = &req.rack_id {
            updated.meta.rack_id = Some(r.to_string());
        }
        if req.rebalance_timeout_ms != -1 {
            updated.meta.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if !client.client_id.is_empty() || is_new {
            updated.meta.client_id = client.client_id.clone();
        }
        if !client.client_host.is_empty() || is_new {
            updated.meta.client_host = client.client_host.clone();
        }
        if let Some(names) = &req.subscribed_topic_names {
            let mut names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            names.sort();
            names.dedup();
            updated.meta.subscribed_topic_names = names;
        }
        if let Some(a) = &req.server_assignor {
            updated.meta.server_assignor = Some(a.to_string());
        }
        let mut bump = is_new;
        if updated.meta != member.meta || is_new || replaced_static.is_some() {
            records.push(member_metadata_record(&group_id, &updated));
            if updated.meta.subscribed_topic_names != member.meta.subscribed_topic_names
                || updated.meta.server_assignor != member.meta.server_assignor
            {
                bump = true;
            }
        }
        if let Some(old_id) = &replaced_static {
            // Move the old instance's target to the new member id.
            records.extend(member_tombstones(&group_id, old_id));
            if let Some(t) = g.target.remove(old_id) {
                g.target.insert(member_id.clone(), t.clone());
                records.push((
                    RecordKey::ConsumerGroupTargetAssignmentMember {
                        group: group_id.clone(),
                        member: member_id.clone(),
                    }
                    .encode(),
                    Some(records::encode_target_assignment_member(&t)),
                ));
            }
            g.drop_member(old_id);
            records.push(current_assignment_record(&group_id, &updated));
        }
        g.put_member(updated.clone());

        // Subscription metadata (refreshed every heartbeat).
        let names = g.subscribed_topic_names();
        let mut subscription = BTreeMap::new();
        for n in names {
            if let Some((id, partitions)) = self.ctx.resolve(&n) {
                subscription.insert(
                    n.clone(),
                    TopicMetadata {
                        id,
                        name: n,
                        partitions,
                    },
                );
            }
        }
        let Some(g) = self.consumer(&group_id) else {
            return Err((ErrorCode::UnknownServerError, None));
        };
        if g.set_subscription(&group_id, subscription, &mut records) {
            bump = true;
        }
        if bump {
            g.group_epoch += 1;
            records.push((
                RecordKey::ConsumerGroupMetadata {
                    group: group_id.clone(),
                }
                .encode(),
                Some(records::encode_consumer_group_metadata(g.group_epoch)),
            ));
        }

        // Target assignment.
        if g.group_epoch > g.target_epoch {
            let assignor = g.preferred_assignor(&default_assignor);
            let topics: BTreeMap<Uuid, i32> = g
                .subscription
                .values()
                .map(|t| (t.id, t.partitions))
                .collect();
            let specs: BTreeMap<String, MemberSpec> = g
                .members
                .values()
                .map(|m| {
                    (
                        m.member_id.clone(),
                        MemberSpec {
                            subscribed: m
                                .meta
                                .subscribed_topic_names
                                .iter()
                                .filter_map(|n| g.subscription.get(n).map(|t| t.id))
                                .collect(),
                            current: g.target.get(&m.member_id).cloned().unwrap_or_default(),
                        },
                    )
                })
                .collect();
            let Some(new_target) = assignor::assign(&assignor, &specs, &topics) else {
                return Err((ErrorCode::UnsupportedAssignor, None));
            };
            for (m, a) in new_target {
                if g.target.get(&m) != Some(&a) {
                    records.push((
                        RecordKey::ConsumerGroupTargetAssignmentMember {
                            group: group_id.clone(),
                            member: m.clone(),
                        }
                        .encode(),
                        Some(records::encode_target_assignment_member(&a)),
                    ));
                    g.target.insert(m, a);
                }
            }
            g.target_epoch = g.group_epoch;
            records.push((
                RecordKey::ConsumerGroupTargetAssignmentMetadata {
                    group: group_id.clone(),
                }
                .encode(),
                Some(records::encode_target_assignment_metadata(g.target_epoch)),
            ));
            tracing::info!(group = %group_id, epoch = g.target_epoch, assignor, "computed new target assignment");
        }

        // Reconcile this member.
        let current = g.members.get(&member_id).cloned().unwrap_or(updated);
        let before_assigned = current.cur.assigned.clone();
        let target = g.target.get(&member_id).cloned().unwrap_or_default();
        let reconciled = if current.state() != MemberState::Stable
            || current.cur.target_member_epoch != g.target_epoch
        {
            let owners = &g.owners;
            let is_free = |t: Uuid, p: i32| !owners.contains_key(&(t, p));
            reconcile(&current, g.target_epoch, &target, owned.as_ref(), &is_free)
        } else {
            current.clone()
        };
        let changed = reconciled.cur != current.cur;
        if changed || is_new {
            records.push(current_assignment_record(&group_id, &reconciled));
            g.put_member(reconciled.clone());
        }
        let revoking = reconciled.state() == MemberState::Revoking;
        let rebalance_timeout = i64::from(reconciled.meta.rebalance_timeout_ms.max(0));
        let member_epoch = reconciled.cur.member_epoch;
        let assignment_changed = reconciled.cur.assigned != before_assigned;
        let reported_differs = owned.as_ref().is_some_and(|o| {
            let norm: TopicPartitions = o
                .iter()
                .filter(|(_, p)| !p.is_empty())
                .map(|(t, p)| (*t, p.clone()))
                .collect();
            norm != reconciled.cur.assigned
        });
        let send_assignment = epoch == 0 || assignment_changed || reported_differs;
        let assigned = reconciled.cur.assigned.clone();

        let rev_key = TimerKey::ConsumerRevocation(group_id.clone(), member_id.clone());
        if revoking {
            let entering = current.state() != MemberState::Revoking
                || current.cur.target_member_epoch != reconciled.cur.target_member_epoch;
            if entering || !self.timers.is_scheduled(&rev_key) {
                self.timers.schedule_ms(rev_key, rebalance_timeout);
            }
        } else {
            self.timers.cancel(&rev_key);
        }
        if let Some(old) = &replaced_static {
            self.timers
                .cancel(&TimerKey::ConsumerSession(group_id.clone(), old.clone()));
        }
        self.timers.schedule_ms(
            TimerKey::ConsumerSession(group_id.clone(), member_id.clone()),
            session,
        );
        let write = self.write(records, None);
        Ok(HeartbeatOutcome {
            member_id,
            member_epoch,
            heartbeat_interval_ms: self
                .ctx
                .consumer_config()
                .consumer_group_heartbeat_interval_ms,
            assignment: send_assignment.then_some(assigned),
            write,
        })
    }

    fn consumer_leave(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        epoch: i32,
    ) -> Result<HeartbeatOutcome, HbError> {
        let heartbeat_interval_ms = self
            .ctx
            .consumer_config()
            .consumer_group_heartbeat_interval_ms;
        let Some(g) = self.consumer(group_id) else {
            return Err((
                ErrorCode::UnknownMemberId,
                Some(format!("Group {group_id} not found.")),
            ));
        };
        let resolved = match instance_id {
            Some(i) if epoch == STATIC_LEAVE_EPOCH || member_id.is_empty() => {
                g.static_members.get(i).cloned()
            }
            _ => Some(member_id.to_string()),
        };
        let Some(id) = resolved.filter(|id| g.members.contains_key(id)) else {
            return Err((
                ErrorCode::UnknownMemberId,
                Some(format!(
                    "Member {member_id} is not a member of group {group_id}."
                )),
            ));
        };
        if !member_id.is_empty() && id != member_id {
            return Err((ErrorCode::FencedInstanceId, None));
        }
        if epoch == STATIC_LEAVE_EPOCH {
            // Keep the assignment for the instance's return; only the epoch changes.
            let Some(mut m) = g.members.get(&id).cloned() else {
                return Err((ErrorCode::UnknownMemberId, None));
            };
            if m.cur.member_epoch != STATIC_LEAVE_EPOCH {
                m.cur.previous_member_epoch = m.cur.member_epoch;
            }
            m.cur.member_epoch = STATIC_LEAVE_EPOCH;
            let record = current_assignment_record(group_id, &m);
            g.put_member(m);
            let write = self.write(vec![record], None);
            return Ok(HeartbeatOutcome {
                member_id: id,
                member_epoch: STATIC_LEAVE_EPOCH,
                heartbeat_interval_ms,
                assignment: None,
                write,
            });
        }
        let records = self.fence_member(group_id, &id, "member left");
        let write = self.write(records, None);
        Ok(HeartbeatOutcome {
            member_id: id,
            member_epoch: LEAVE_EPOCH,
            heartbeat_interval_ms,
            assignment: None,
            write,
        })
    }

    /// Removes a member and bumps the group epoch; returns the records.
    fn fence_member(&mut self, group_id: &str, member_id: &str, reason: &str) -> Vec<Record> {
        self.timers.cancel(&TimerKey::ConsumerSession(
            group_id.to_string(),
            member_id.to_string(),
        ));
        self.timers.cancel(&TimerKey::ConsumerRevocation(
            group_id.to_string(),
            member_id.to_string(),
        ));
        let Some(g) = self.consumer(group_id) else {
            return Vec::new();
        };
        if g.drop_member(member_id).is_none() {
            return Vec::new();
        }
        g.target.remove(member_id);
        let mut records = member_tombstones(group_id, member_id);
        let names = g.subscribed_topic_names();
        let before = g.subscription.clone();
        let subscription: BTreeMap<String, TopicMetadata> = before
            .into_iter()
            .filter(|(n, _)| names.contains(n))
            .collect();
        g.set_subscription(group_id, subscription, &mut records);
        g.group_epoch += 1;
        records.push((
            RecordKey::ConsumerGroupMetadata {
                group: group_id.to_string(),
            }
            .encode(),
            Some(records::encode_consumer_group_metadata(g.group_epoch)),
        ));
        tracing::info!(
            group = group_id,
            member = member_id,
            reason,
            epoch = g.group_epoch,
            "consumer group member removed"
        );
        records
    }

    fn fence_and_write(&mut self, group_id: &str, member_id: &str, reason: &str) {
        let records = self.fence_member(group_id, member_id, reason);
        let w = self.write(records, None);
        self.after_write(w, |_, _| {});
    }

    pub(crate) fn on_consumer_session_timer(&mut self, group_id: &str, member_id: &str) {
        self.fence_and_write(group_id, member_id, "session timeout");
    }

    pub(crate) fn on_consumer_revocation_timer(&mut self, group_id: &str, member_id: &str) {
        let revoking = self
            .consumer(group_id)
            .and_then(|g| g.members.get(member_id))
            .is_some_and(|m| m.state() == MemberState::Revoking);
        if revoking {
            self.fence_and_write(
                group_id,
                member_id,
                "did not revoke partitions within the rebalance timeout",
            );
        }
    }

    /// KIP-848 part of an offset commit's validation.
    pub(crate) fn consumer_validate_commit(
        &mut self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
        transactional: bool,
    ) -> Option<ErrorCode> {
        let g = self.consumer(group_id)?;
        if epoch < 0 && (g.members.is_empty() || (transactional && member_id.is_empty())) {
            return None;
        }
        let Some(m) = g.members.get(member_id) else {
            return Some(ErrorCode::UnknownMemberId);
        };
        (epoch != m.cur.member_epoch).then_some(ErrorCode::StaleMemberEpoch)
    }

    /// KIP-848 check of an OffsetFetch v9 carrying a member id and epoch.
    pub(crate) fn consumer_validate_fetch(
        &self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
    ) -> Option<ErrorCode> {
        let Some(Group::Consumer(g)) = self.groups.get(group_id) else {
            return None;
        };
        let Some(m) = g.members.get(member_id) else {
            return Some(ErrorCode::UnknownMemberId);
        };
        (epoch != m.cur.member_epoch).then_some(ErrorCode::StaleMemberEpoch)
    }

    /// ConsumerGroupDescribe of one group.
    pub(crate) fn consumer_describe(&self, group_id: &str) -> Result<DescribedConsumer, ErrorCode> {
        let Some(Group::Consumer(g)) = self.groups.get(group_id) else {
            return Err(ErrorCode::GroupIdNotFound);
        };
        let default = self
            .ctx
            .consumer_config()
            .consumer_group_assignors
            .first()
            .cloned()
            .unwrap_or_else(|| "uniform".to_string());
        let conv = |a: &TopicPartitions| -> Vec<(Uuid, String, Vec<i32>)> {
            a.iter()
                .map(|(t, ps)| (*t, g.topic_name(*t), ps.iter().copied().collect()))
                .collect()
        };
        Ok(DescribedConsumer {
            state: g.state_name(),
            group_epoch: g.group_epoch,
            assignment_epoch: g.target_epoch,
            assignor: g.preferred_assignor(&default),
            members: g
                .members
                .values()
                .map(|m| DescribedMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.meta.instance_id.clone(),
                    rack_id: m.meta.rack_id.clone(),
                    member_epoch: m.cur.member_epoch,
                    client_id: m.meta.client_id.clone(),
                    client_host: m.meta.client_host.clone(),
                    subscribed_topic_names: m.meta.subscribed_topic_names.clone(),
                    subscribed_topic_regex: m.meta.subscribed_topic_regex.clone(),
                    assignment: conv(&m.cur.assigned),
                    target_assignment: conv(
                        &g.target.get(&m.member_id).cloned().unwrap_or_default(),
                    ),
                })
                .collect(),
        })
    }

    /// Applies a KIP-848 record read from the log.
    pub(crate) fn replay_consumer(
        &mut self,
        key: RecordKey,
        value: Option<&[u8]>,
    ) -> Result<(), records::DecodeError> {
        let group_id = key.group().to_string();
        if value.is_none() && !matches!(self.groups.get(&group_id), Some(Group::Consumer(_))) {
            return Ok(());
        }
        if !matches!(self.groups.get(&group_id), Some(Group::Consumer(_))) {
            self.groups.insert(
                group_id.clone(),
                Group::Consumer(ConsumerGroup::new(&group_id)),
            );
        }
        let Some(g) = self.consumer(&group_id) else {
            return Ok(());
        };
        match (key, value) {
            (RecordKey::ConsumerGroupMetadata { .. }, Some(v)) => {
                g.group_epoch = records::decode_consumer_group_metadata(v)?;
            }
            (RecordKey::ConsumerGroupMetadata { .. }, None) => {
                self.groups.remove(&group_id);
            }
            (RecordKey::ConsumerGroupPartitionMetadata { .. }, v) => {
                let topics = v.map(records::decode_partition_metadata).transpose()?;
                g.subscription = topics
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| (t.name.clone(), t))
                    .collect();
            }
            (RecordKey::ConsumerGroupMemberMetadata { member, .. }, Some(v)) => {
                let meta = MemberMetadataValue::decode(v)?;
                let mut m = g
                    .members
                    .get(&member)
                    .cloned()
                    .unwrap_or_else(|| ConsumerMember {
                        member_id: member.clone(),
                        cur: CurrentAssignmentValue {
                            previous_member_epoch: -1,
                            ..Default::default()
                        },
                        ..Default::default()
                    });
                m.meta = meta;
                g.put_member(m);
            }
            (RecordKey::ConsumerGroupMemberMetadata { member, .. }, None) => {
                g.drop_member(&member);
            }
            (RecordKey::ConsumerGroupTargetAssignmentMetadata { .. }, v) => {
                g.target_epoch = v
                    .map(records::decode_target_assignment_metadata)
                    .transpose()?
                    .unwrap_or(0);
            }
            (RecordKey::ConsumerGroupTargetAssignmentMember { member, .. }, Some(v)) => {
                g.target
                    .insert(member, records::decode_target_assignment_member(v)?);
            }
            (RecordKey::ConsumerGroupTargetAssignmentMember { member, .. }, None) => {
                g.target.remove(&member);
            }
            (RecordKey::ConsumerGroupCurrentMemberAssignment { member, .. }, Some(v)) => {
                let cur = CurrentAssignmentValue::decode(v)?;
                let mut m = g
                    .members
                    .get(&member)
                    .cloned()
                    .unwrap_or_else(|| ConsumerMember {
                        member_id: member.clone(),
                        ..Default::default()
                    });
                m.cur = cur;
                g.put_member(m);
            }
            (RecordKey::ConsumerGroupCurrentMemberAssignment { member, .. }, None) => {
                if let Some(mut m) = g.members.get(&member).cloned() {
                    m.cur = CurrentAssignmentValue {
                        member_epoch: LEAVE_EPOCH,
                        previous_member_epoch: LEAVE_EPOCH,
                        target_member_epoch: LEAVE_EPOCH,
                        ..Default::default()
                    };
                    g.put_member(m);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// After loading: owner index and session timers of every member.
    pub(crate) fn consumer_after_load(&mut self) {
        let session = self.session_ms();
        let mut timers = Vec::new();
        for g in self.groups.values_mut() {
            if let Group::Consumer(g) = g {
                g.rebuild_owners();
                for m in g.members.values() {
                    timers.push((
                        g.id.clone(),
                        m.member_id.clone(),
                        m.state() == MemberState::Revoking,
                        m.meta.rebalance_timeout_ms,
                    ));
                }
            }
        }
        for (g, m, revoking, rebalance) in timers {
            if revoking {
                self.timers.schedule_ms(
                    TimerKey::ConsumerRevocation(g.clone(), m.clone()),
                    i64::from(rebalance.max(0)),
                );
            }
            self.timers
                .schedule_ms(TimerKey::ConsumerSession(g, m), session);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_uuid_strings_are_22_url_safe_chars() {
        let s = kafka_uuid_string();
        assert_eq!(s.len(), 22, "{s}");
        assert!(s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn reconcile_revokes_before_assigning() {
        let t = Uuid::from_u128(1);
        let member = ConsumerMember {
            member_id: "a".into(),
            cur: CurrentAssignmentValue {
                member_epoch: 1,
                previous_member_epoch: 0,
                target_member_epoch: 1,
                assigned: [(t, [0, 1].into())].into(),
                ..Default::default()
            },
            ..Default::default()
        };
        // New target moves partition 1 away and gives 2, which is owned by someone.
        let target: TopicPartitions = [(t, [0, 2].into())].into();
        let owned_by_other = |tp: Uuid, p: i32| !(tp == t && p == 2);
        let m = reconcile(&member, 2, &target, None, &owned_by_other);
        assert_eq!(m.state(), MemberState::Revoking);
        assert_eq!(m.cur.member_epoch, 1);
        assert_eq!(m.cur.assigned, [(t, [0].into())].into());
        assert_eq!(m.cur.pending_revocation, [(t, [1].into())].into());
        // Still owns 1: nothing changes.
        let owns: TopicPartitions = [(t, [0, 1].into())].into();
        let m2 = reconcile(&m, 2, &target, Some(&owns), &owned_by_other);
        assert_eq!(m2, m);
        // Revoked: epoch moves, 2 is still owned by another member.
        let owns: TopicPartitions = [(t, [0].into())].into();
        let m3 = reconcile(&m, 2, &target, Some(&owns), &owned_by_other);
        assert_eq!(m3.state(), MemberState::Assigning);
        assert_eq!(m3.cur.member_epoch, 2);
        // 2 freed: assigned.
        let m4 = reconcile(&m3, 2, &target, Some(&owns), &|_, _| true);
        assert_eq!(m4.state(), MemberState::Stable);
        assert_eq!(m4.cur.assigned, target);
    }
}
