//! The classic group protocol: JoinGroup, SyncGroup, Heartbeat, LeaveGroup.
//!
//! Follows Kafka 3.7 (`ClassicGroup`, `GroupMetadataManager`'s classic paths
//! and the older `GroupCoordinator.scala` they were ported from): the states
//! Empty -> PreparingRebalance -> CompletingRebalance -> Stable, the initial
//! delayed join of a new group, KIP-394 member ids, KIP-345 static members
//! (KIP-814 skip-assignment), pending-sync expiry and group size limits.
//! Responses that Kafka parks in purgatory are oneshot channels here: the
//! request future awaits them, and dropping the partition's state (resign)
//! drops the senders, which the API layer answers with NOT_COORDINATOR.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use indexmap::IndexMap;
use millrace_protocol::ErrorCode;
use tokio::sync::oneshot;

use crate::records::{self, GroupMemberValue, GroupMetadataValue, RecordKey};
use crate::shard::{Group, ShardState, WriteResult};
use crate::timer::TimerKey;

/// Kafka's timeout for a new member's pending JoinGroup (5 minutes): a
/// member that disconnected while waiting is dropped after it.
pub(crate) const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1000;

/// Classic group states as DescribeGroups and ListGroups name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClassicState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl ClassicState {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
            ClassicState::Dead => "Dead",
        }
    }
}

/// What a JoinGroup answers.
#[derive(Debug, Clone, Default)]
pub(crate) struct JoinResult {
    pub error: Option<ErrorCode>,
    pub member_id: String,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: String,
    pub skip_assignment: bool,
    /// (member id, instance id, metadata), for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    pub(crate) fn error(member_id: &str, error: ErrorCode) -> JoinResult {
        JoinResult {
            error: Some(error),
            member_id: member_id.to_string(),
            generation_id: -1,
            ..Default::default()
        }
    }
}

/// What a SyncGroup answers.
#[derive(Debug, Clone, Default)]
pub(crate) struct SyncResult {
    pub error: Option<ErrorCode>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub(crate) fn error(error: ErrorCode) -> SyncResult {
        SyncResult {
            error: Some(error),
            ..Default::default()
        }
    }
}

/// A JoinGroup's outcome as the API layer awaits it.
pub(crate) enum JoinWait {
    Done(JoinResult),
    Wait(oneshot::Receiver<JoinResult>),
}

/// A SyncGroup's outcome as the API layer awaits it.
pub(crate) enum SyncWait {
    Done(SyncResult),
    Wait(oneshot::Receiver<SyncResult>),
}

/// One member of a classic group.
pub(crate) struct ClassicMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub awaiting_join: Option<oneshot::Sender<JoinResult>>,
    pub awaiting_sync: Option<oneshot::Sender<SyncResult>>,
    pub is_new: bool,
}

impl ClassicMember {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    fn vote(&self, candidates: &HashSet<&str>) -> Option<String> {
        self.protocols
            .iter()
            .find(|(n, _)| candidates.contains(n.as_str()))
            .map(|(n, _)| n.clone())
    }
}

/// A classic group.
pub(crate) struct ClassicGroup {
    pub id: String,
    pub state: ClassicState,
    pub previous_state: ClassicState,
    pub state_timestamp: Option<i64>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub members: IndexMap<String, ClassicMember>,
    pub static_members: HashMap<String, String>,
    pub pending_members: HashSet<String>,
    pub pending_sync: HashSet<String>,
    pub new_member_added: bool,
    /// `Some(remaining ms)` while the join phase is Kafka's InitialDelayedJoin.
    pub initial_join_remaining: Option<i64>,
    /// Topics the members subscribe to (protocol type "consumer" only).
    pub subscribed_topics: Option<HashSet<String>>,
}

impl ClassicGroup {
    pub(crate) fn new(id: &str, now: i64) -> ClassicGroup {
        ClassicGroup {
            id: id.to_string(),
            state: ClassicState::Empty,
            previous_state: ClassicState::Empty,
            state_timestamp: Some(now),
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending_members: HashSet::new(),
            pending_sync: HashSet::new(),
            new_member_added: false,
            initial_join_remaining: None,
            subscribed_topics: None,
        }
    }

    /// Rebuilds a group from its last `GroupMetadataValue`.
    pub(crate) fn from_record(id: &str, v: GroupMetadataValue) -> ClassicGroup {
        let mut g = ClassicGroup::new(id, -1);
        g.state_timestamp = (v.current_state_timestamp >= 0).then_some(v.current_state_timestamp);
        g.generation_id = v.generation;
        g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type.clone());
        g.protocol_name = v.protocol.clone();
        g.leader_id = v.leader.clone();
        for m in v.members {
            let protocols = match &v.protocol {
                Some(p) => vec![(p.clone(), m.subscription.clone())],
                None => Vec::new(),
            };
            if let Some(i) = &m.group_instance_id {
                g.static_members.insert(i.clone(), m.member_id.clone());
            }
            g.members.insert(
                m.member_id.clone(),
                ClassicMember {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    protocol_type: v.protocol_type.clone(),
                    protocols,
                    assignment: m.assignment,
                    awaiting_join: None,
                    awaiting_sync: None,
                    is_new: false,
                },
            );
        }
        g.state = if g.members.is_empty() {
            ClassicState::Empty
        } else {
            ClassicState::Stable
        };
        g.previous_state = g.state;
        g.subscribed_topics = g.compute_subscribed_topics();
        g
    }

    pub(crate) fn is(&self, s: ClassicState) -> bool {
        self.state == s
    }

    fn transition(&mut self, s: ClassicState, now: i64) {
        self.previous_state = self.state;
        self.state = s;
        self.state_timestamp = Some(now);
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    fn num_awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join() && self.pending_members.is_empty()
    }

    /// Largest rebalance timeout of the members (Kafka's group rebalance timeout).
    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    fn candidate_protocols(&self) -> HashSet<&str> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            for (n, _) in &m.protocols {
                *counts.entry(n.as_str()).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .filter(|(_, c)| *c == self.members.len())
            .map(|(n, _)| n)
            .collect()
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            let candidates = self.candidate_protocols();
            self.protocol_type.as_deref() == Some(protocol_type)
                && protocols
                    .iter()
                    .any(|(n, _)| candidates.contains(n.as_str()))
        }
    }

    /// The protocol most members prefer among those all members support.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: IndexMap<String, usize> = IndexMap::new();
        for m in self.members.values() {
            if let Some(p) = m.vote(&candidates) {
                *votes.entry(p).or_default() += 1;
            }
        }
        let mut best: Option<(String, usize)> = None;
        for (p, c) in votes {
            if best.as_ref().is_none_or(|(_, bc)| c > *bc) {
                best = Some((p, c));
            }
        }
        best.map(|(p, _)| p)
    }

    fn compute_subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            topics.extend(records::consumer_subscription_topics(
                &m.metadata(protocol),
            )?);
        }
        Some(topics)
    }

    fn add_member(&mut self, member: ClassicMember) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        if let Some(i) = &member.group_instance_id {
            self.static_members
                .insert(i.clone(), member.member_id.clone());
        }
        self.members.insert(member.member_id.clone(), member);
    }

    fn remove_member(&mut self, member_id: &str) -> Option<ClassicMember> {
        let m = self.members.shift_remove(member_id)?;
        if let Some(i) = &m.group_instance_id {
            if self.static_members.get(i).map(String::as_str) == Some(member_id) {
                self.static_members.remove(i);
            }
        }
        self.pending_sync.remove(member_id);
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        Some(m)
    }

    fn current_member_metadata(&self) -> Vec<(String, Option<String>, Bytes)> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| {
                (
                    m.member_id.clone(),
                    m.group_instance_id.clone(),
                    m.metadata(&protocol),
                )
            })
            .collect()
    }

    /// Static fencing and member existence (Kafka's validateCurrentMember).
    fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Option<ErrorCode> {
        if let Some(i) = instance_id {
            match self.static_members.get(i) {
                Some(current) if current != member_id => return Some(ErrorCode::FencedInstanceId),
                None if self.members.contains_key(member_id) => {
                    return Some(ErrorCode::FencedInstanceId)
                }
                _ => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Some(ErrorCode::UnknownMemberId);
        }
        None
    }

    pub(crate) fn group_record_value(&self, now: i64) -> GroupMetadataValue {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: self.protocol_name.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp: self.state_timestamp.unwrap_or(now),
            members: self
                .members
                .values()
                .map(|m| GroupMemberValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}

/// A JoinGroup after version-dependent defaults were applied.
pub(crate) struct JoinParams {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub require_known_member_id: bool,
    pub supports_skip_assignment: bool,
}

fn new_member_id(client_id: &str) -> String {
    format!("{client_id}-{}", uuid::Uuid::new_v4())
}

impl ShardState {
    fn classic(&mut self, group_id: &str) -> Option<&mut ClassicGroup> {
        match self.groups.get_mut(group_id) {
            Some(Group::Classic(g)) => Some(g),
            _ => None,
        }
    }

    /// The group metadata record of a classic group as it stands.
    fn group_record(&self, group_id: &str) -> Option<(Bytes, Option<Bytes>)> {
        let Some(Group::Classic(g)) = self.groups.get(group_id) else {
            return None;
        };
        Some((
            RecordKey::GroupMetadata {
                group: g.id.clone(),
            }
            .encode(),
            Some(g.group_record_value(self.now()).encode()),
        ))
    }

    /// JoinGroup.
    pub(crate) fn classic_join(&mut self, p: JoinParams) -> JoinWait {
        let cfg = &self.ctx.config;
        if p.session_timeout_ms < cfg.group_min_session_timeout_ms
            || p.session_timeout_ms > cfg.group_max_session_timeout_ms
        {
            return JoinWait::Done(JoinResult::error(
                &p.member_id,
                ErrorCode::InvalidSessionTimeout,
            ));
        }
        let unknown = p.member_id.is_empty();
        let now = self.now();
        let created = !self.groups.contains_key(&p.group_id);
        match self.groups.get(&p.group_id) {
            Some(Group::Classic(_)) => {}
            Some(Group::Consumer(cg)) => {
                if unknown && cg.members.is_empty() {
                    // An empty consumer group is converted back to a classic one.
                    self.remove_group_records_only(&p.group_id);
                    self.groups.insert(
                        p.group_id.clone(),
                        Group::Classic(ClassicGroup::new(&p.group_id, now)),
                    );
                } else {
                    return JoinWait::Done(JoinResult::error(
                        &p.member_id,
                        ErrorCode::InconsistentGroupProtocol,
                    ));
                }
            }
            None => {
                if !unknown {
                    return JoinWait::Done(JoinResult::error(
                        &p.member_id,
                        ErrorCode::UnknownMemberId,
                    ));
                }
                self.groups.insert(
                    p.group_id.clone(),
                    Group::Classic(ClassicGroup::new(&p.group_id, now)),
                );
            }
        }
        let max_size = self.ctx.config.group_max_size.max(0) as usize;
        let Some(g) = self.classic(&p.group_id) else {
            return JoinWait::Done(JoinResult::error(
                &p.member_id,
                ErrorCode::UnknownServerError,
            ));
        };
        // Kafka's acceptJoiningMember.
        let accept = match g.state {
            ClassicState::Empty | ClassicState::Dead => true,
            ClassicState::PreparingRebalance => {
                g.members
                    .get(&p.member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || g.num_awaiting_join() < max_size
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                g.members.contains_key(&p.member_id) || g.members.len() < max_size
            }
        };
        if !accept {
            if g.members.contains_key(&p.member_id) {
                self.remove_member_and_update(&p.group_id, &p.member_id.clone(), "group max size");
            }
            return JoinWait::Done(JoinResult::error("", ErrorCode::GroupMaxSizeReached));
        }
        let p_group = p.group_id.clone();
        let result = if unknown {
            self.join_unknown_member(p)
        } else {
            self.join_known_member(p)
        };
        // Kafka's handleJoinGroup: attempt to complete the join phase.
        if self
            .classic(&p_group)
            .is_some_and(|g| g.is(ClassicState::PreparingRebalance))
        {
            self.try_complete_join(&p_group);
        }
        // A group this failed join created is not kept (Kafka rolls the
        // creation back with the failed operation).
        if created
            && matches!(&result, JoinWait::Done(r) if r.error.is_some_and(|e| e != ErrorCode::MemberIdRequired))
        {
            let empty = self
                .classic(&p_group)
                .is_some_and(|g| g.members.is_empty() && g.pending_members.is_empty());
            if empty && !self.offsets.contains_key(&p_group) {
                self.groups.remove(&p_group);
            }
        }
        result
    }

    fn join_unknown_member(&mut self, p: JoinParams) -> JoinWait {
        let g = match self.classic(&p.group_id) {
            Some(g) => g,
            None => return JoinWait::Done(JoinResult::error("", ErrorCode::UnknownServerError)),
        };
        if g.is(ClassicState::Dead) {
            return JoinWait::Done(JoinResult::error("", ErrorCode::CoordinatorNotAvailable));
        }
        if !g.supports_protocols(&p.protocol_type, &p.protocols) {
            return JoinWait::Done(JoinResult::error("", ErrorCode::InconsistentGroupProtocol));
        }
        let member_id = new_member_id(&p.client_id);
        if let Some(instance) = p.group_instance_id.clone() {
            if let Some(old) = g.static_members.get(&instance).cloned() {
                return self.update_static_member_and_rebalance(p, old, member_id);
            }
            return self.add_member_and_rebalance(p, member_id);
        }
        if p.require_known_member_id {
            g.pending_members.insert(member_id.clone());
            let timeout = i64::from(p.session_timeout_ms);
            self.timers.schedule_ms(
                TimerKey::Heartbeat(p.group_id.clone(), member_id.clone()),
                timeout,
            );
            return JoinWait::Done(JoinResult::error(&member_id, ErrorCode::MemberIdRequired));
        }
        self.add_member_and_rebalance(p, member_id)
    }

    fn join_known_member(&mut self, p: JoinParams) -> JoinWait {
        let g = match self.classic(&p.group_id) {
            Some(g) => g,
            None => {
                return JoinWait::Done(JoinResult::error(&p.member_id, ErrorCode::UnknownMemberId))
            }
        };
        if g.is(ClassicState::Dead) {
            return JoinWait::Done(JoinResult::error(
                &p.member_id,
                ErrorCode::CoordinatorNotAvailable,
            ));
        }
        if !g.supports_protocols(&p.protocol_type, &p.protocols) {
            return JoinWait::Done(JoinResult::error(
                &p.member_id,
                ErrorCode::InconsistentGroupProtocol,
            ));
        }
        if g.pending_members.contains(&p.member_id) {
            let id = p.member_id.clone();
            g.pending_members.remove(&id);
            return self.add_member_and_rebalance(p, id);
        }
        if let Some(e) = g.validate_member(&p.member_id, p.group_instance_id.as_deref()) {
            return JoinWait::Done(JoinResult::error(&p.member_id, e));
        }
        let is_leader = g.is_leader(&p.member_id);
        let matches = g
            .members
            .get(&p.member_id)
            .is_some_and(|m| m.matches(&p.protocols));
        match g.state {
            ClassicState::PreparingRebalance => self.update_member_and_rebalance(p),
            ClassicState::CompletingRebalance => {
                if matches {
                    // A retry of a JoinGroup whose response was lost.
                    JoinWait::Done(JoinResult {
                        error: None,
                        members: if is_leader {
                            g.current_member_metadata()
                        } else {
                            Vec::new()
                        },
                        member_id: p.member_id.clone(),
                        generation_id: g.generation_id,
                        protocol_type: g.protocol_type.clone(),
                        protocol_name: g.protocol_name.clone(),
                        leader_id: g.leader_id.clone().unwrap_or_default(),
                        skip_assignment: false,
                    })
                } else {
                    self.update_member_and_rebalance(p)
                }
            }
            ClassicState::Stable => {
                if is_leader || !matches {
                    self.update_member_and_rebalance(p)
                } else {
                    JoinWait::Done(JoinResult {
                        error: None,
                        members: Vec::new(),
                        member_id: p.member_id.clone(),
                        generation_id: g.generation_id,
                        protocol_type: g.protocol_type.clone(),
                        protocol_name: g.protocol_name.clone(),
                        leader_id: g.leader_id.clone().unwrap_or_default(),
                        skip_assignment: false,
                    })
                }
            }
            ClassicState::Empty | ClassicState::Dead => {
                JoinWait::Done(JoinResult::error(&p.member_id, ErrorCode::UnknownMemberId))
            }
        }
    }

    fn add_member_and_rebalance(&mut self, p: JoinParams, member_id: String) -> JoinWait {
        let (tx, rx) = oneshot::channel();
        let group_id = p.group_id.clone();
        let Some(g) = self.classic(&group_id) else {
            return JoinWait::Done(JoinResult::error("", ErrorCode::UnknownServerError));
        };
        if g.is(ClassicState::PreparingRebalance) && g.generation_id == 0 {
            g.new_member_added = true;
        }
        g.add_member(ClassicMember {
            member_id: member_id.clone(),
            group_instance_id: p.group_instance_id,
            client_id: p.client_id,
            client_host: p.client_host,
            rebalance_timeout_ms: p.rebalance_timeout_ms,
            session_timeout_ms: p.session_timeout_ms,
            protocol_type: p.protocol_type,
            protocols: p.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(tx),
            awaiting_sync: None,
            is_new: true,
        });
        // A new member cannot heartbeat until it has its id; Kafka bounds its
        // parked JoinGroup instead.
        self.timers.schedule_ms(
            TimerKey::Heartbeat(group_id.clone(), member_id),
            NEW_MEMBER_JOIN_TIMEOUT_MS,
        );
        self.maybe_prepare_rebalance(&group_id, "new member joined");
        JoinWait::Wait(rx)
    }

    fn update_member_and_rebalance(&mut self, p: JoinParams) -> JoinWait {
        let (tx, rx) = oneshot::channel();
        let Some(g) = self.classic(&p.group_id) else {
            return JoinWait::Done(JoinResult::error(&p.member_id, ErrorCode::UnknownMemberId));
        };
        if let Some(m) = g.members.get_mut(&p.member_id) {
            m.protocols = p.protocols;
            m.rebalance_timeout_ms = p.rebalance_timeout_ms;
            m.session_timeout_ms = p.session_timeout_ms;
            if let Some(old) = m.awaiting_join.replace(tx) {
                // A duplicate JoinGroup replaces the parked one, whose client
                // (if still listening) just retries.
                let _ = old.send(JoinResult::error(
                    &p.member_id,
                    ErrorCode::RebalanceInProgress,
                ));
            }
        }
        self.maybe_prepare_rebalance(&p.group_id, "member rejoined");
        JoinWait::Wait(rx)
    }

    fn update_static_member_and_rebalance(
        &mut self,
        p: JoinParams,
        old_member_id: String,
        new_member_id: String,
    ) -> JoinWait {
        let group_id = p.group_id.clone();
        let (tx, rx) = oneshot::channel();
        let Some(g) = self.classic(&group_id) else {
            return JoinWait::Done(JoinResult::error("", ErrorCode::UnknownServerError));
        };
        let current_leader = g.leader_id.clone().unwrap_or_default();
        // Replace the old member id: its parked requests are fenced.
        let Some(mut member) = g.members.shift_remove(&old_member_id) else {
            return JoinWait::Done(JoinResult::error("", ErrorCode::UnknownServerError));
        };
        if let Some(cb) = member.awaiting_join.take() {
            let _ = cb.send(JoinResult::error(
                &old_member_id,
                ErrorCode::FencedInstanceId,
            ));
        }
        if let Some(cb) = member.awaiting_sync.take() {
            let _ = cb.send(SyncResult::error(ErrorCode::FencedInstanceId));
        }
        member.member_id = new_member_id.clone();
        // The restarted process is a new client: DescribeGroups shows it.
        let old_client = (
            std::mem::replace(&mut member.client_id, p.client_id.clone()),
            std::mem::replace(&mut member.client_host, p.client_host.clone()),
        );
        let old_protocols = std::mem::replace(&mut member.protocols, p.protocols.clone());
        member.rebalance_timeout_ms = p.rebalance_timeout_ms;
        member.session_timeout_ms = p.session_timeout_ms;
        member.awaiting_join = Some(tx);
        if g.leader_id.as_deref() == Some(old_member_id.as_str()) {
            g.leader_id = Some(new_member_id.clone());
        }
        if g.pending_sync.remove(&old_member_id) {
            g.pending_sync.insert(new_member_id.clone());
        }
        if let Some(i) = &p.group_instance_id {
            g.static_members.insert(i.clone(), new_member_id.clone());
        }
        let session = i64::from(member.session_timeout_ms);
        g.members.insert(new_member_id.clone(), member);
        self.timers.cancel(&TimerKey::Heartbeat(
            group_id.clone(),
            old_member_id.clone(),
        ));
        self.timers.schedule_ms(
            TimerKey::Heartbeat(group_id.clone(), new_member_id.clone()),
            session,
        );
        let Some(g) = self.classic(&group_id) else {
            return JoinWait::Wait(rx);
        };
        match g.state {
            ClassicState::Stable => {
                let next = g.select_protocol();
                if next.is_some() && next == g.protocol_name {
                    // Unchanged protocols: persist the new member id and hand
                    // back the current generation without a rebalance.
                    let records: Vec<_> = self.group_record(&group_id).into_iter().collect();
                    let write = self.write(records, None);
                    let gid = group_id.clone();
                    let skip = p.supports_skip_assignment;
                    self.after_write(write, move |st, res| {
                        st.finish_static_replace(
                            &gid,
                            &new_member_id,
                            &old_member_id,
                            old_protocols,
                            old_client,
                            &current_leader,
                            skip,
                            res,
                        )
                    });
                } else {
                    self.maybe_prepare_rebalance(&group_id, "static member changed protocols");
                }
            }
            ClassicState::CompletingRebalance => {
                self.prepare_rebalance(&group_id, "static member rejoined during sync");
            }
            _ => {}
        }
        JoinWait::Wait(rx)
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_static_replace(
        &mut self,
        group_id: &str,
        new_member_id: &str,
        old_member_id: &str,
        old_protocols: Vec<(String, Bytes)>,
        old_client: (String, String),
        current_leader: &str,
        supports_skip: bool,
        res: WriteResult,
    ) {
        let Some(g) = self.classic(group_id) else {
            return;
        };
        let Some(member) = g.members.get_mut(new_member_id) else {
            return;
        };
        let Some(cb) = member.awaiting_join.take() else {
            return;
        };
        if let Err(e) = res {
            // Revert, as Kafka does, so the old member id keeps working.
            let mut member = match g.members.shift_remove(new_member_id) {
                Some(m) => m,
                None => return,
            };
            member.member_id = old_member_id.to_string();
            member.protocols = old_protocols;
            (member.client_id, member.client_host) = old_client;
            if let Some(i) = member.group_instance_id.clone() {
                g.static_members.insert(i, old_member_id.to_string());
            }
            if g.leader_id.as_deref() == Some(new_member_id) {
                g.leader_id = Some(old_member_id.to_string());
            }
            let session = i64::from(member.session_timeout_ms);
            g.members.insert(old_member_id.to_string(), member);
            self.timers.cancel(&TimerKey::Heartbeat(
                group_id.to_string(),
                new_member_id.to_string(),
            ));
            self.timers.schedule_ms(
                TimerKey::Heartbeat(group_id.to_string(), old_member_id.to_string()),
                session,
            );
            let _ = cb.send(JoinResult::error(
                new_member_id,
                crate::map_group_write_error(e),
            ));
            return;
        }
        let is_leader = g.is_leader(new_member_id);
        let _ = cb.send(JoinResult {
            error: None,
            members: if is_leader && supports_skip {
                g.current_member_metadata()
            } else {
                Vec::new()
            },
            member_id: new_member_id.to_string(),
            generation_id: g.generation_id,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            // An old client must not think it leads (its assignment would
            // not be propagated by a Stable group): give it the old leader id.
            leader_id: if supports_skip {
                g.leader_id.clone().unwrap_or_default()
            } else {
                current_leader.to_string()
            },
            skip_assignment: is_leader && supports_skip,
        });
    }

    fn maybe_prepare_rebalance(&mut self, group_id: &str, reason: &str) {
        let can = self.classic(group_id).is_some_and(|g| {
            matches!(
                g.state,
                ClassicState::Stable | ClassicState::CompletingRebalance | ClassicState::Empty
            )
        });
        if can {
            self.prepare_rebalance(group_id, reason);
        }
    }

    fn prepare_rebalance(&mut self, group_id: &str, reason: &str) {
        let initial_delay = i64::from(self.ctx.config.group_initial_rebalance_delay_ms);
        let now = self.now();
        let Some(g) = self.classic(group_id) else {
            return;
        };
        if g.is(ClassicState::CompletingRebalance) {
            reset_and_propagate_assignment_error(g, ErrorCode::RebalanceInProgress);
        }
        let delay = if g.is(ClassicState::Empty) {
            g.initial_join_remaining = Some((g.rebalance_timeout_ms() - initial_delay).max(0));
            initial_delay
        } else {
            g.initial_join_remaining = None;
            g.rebalance_timeout_ms()
        };
        g.transition(ClassicState::PreparingRebalance, now);
        tracing::info!(
            group = group_id,
            generation = g.generation_id,
            reason,
            "preparing to rebalance group"
        );
        self.timers.cancel(&TimerKey::Sync(group_id.to_string()));
        self.timers
            .schedule_ms(TimerKey::Join(group_id.to_string()), delay);
        self.try_complete_join(group_id);
    }

    /// Completes the join phase early when every member rejoined (never for
    /// the initial delayed join, which always waits its delay).
    fn try_complete_join(&mut self, group_id: &str) {
        let ready = self.classic(group_id).is_some_and(|g| {
            g.is(ClassicState::PreparingRebalance)
                && g.initial_join_remaining.is_none()
                && g.has_all_members_joined()
        });
        if ready {
            self.timers.cancel(&TimerKey::Join(group_id.to_string()));
            self.complete_join(group_id);
        }
    }

    /// The join-phase timer fired.
    pub(crate) fn on_join_timer(&mut self, group_id: &str) {
        let initial_delay = i64::from(self.ctx.config.group_initial_rebalance_delay_ms);
        let Some(g) = self.classic(group_id) else {
            return;
        };
        if !g.is(ClassicState::PreparingRebalance) {
            return;
        }
        if let Some(remaining) = g.initial_join_remaining {
            if g.new_member_added && remaining != 0 {
                g.new_member_added = false;
                let delay = initial_delay.min(remaining);
                g.initial_join_remaining = Some((remaining - initial_delay).max(0));
                self.timers
                    .schedule_ms(TimerKey::Join(group_id.to_string()), delay);
                return;
            }
        }
        self.complete_join(group_id);
    }

    fn complete_join(&mut self, group_id: &str) {
        let now = self.now();
        let Some(g) = self.classic(group_id) else {
            return;
        };
        g.initial_join_remaining = None;
        // Dynamic members that did not rejoin in time are removed.
        let failed: Vec<String> = g
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in &failed {
            g.remove_member(id);
        }
        for id in failed {
            self.timers
                .cancel(&TimerKey::Heartbeat(group_id.to_string(), id));
        }
        let Some(g) = self.classic(group_id) else {
            return;
        };
        if g.is(ClassicState::Dead) {
            return;
        }
        // Elect a leader among the members that rejoined.
        let leader_ok = match g.leader_id.clone() {
            Some(l) => {
                if g.members.get(&l).is_some_and(|m| m.awaiting_join.is_some()) {
                    true
                } else if let Some(id) = g
                    .members
                    .values()
                    .find(|m| m.awaiting_join.is_some())
                    .map(|m| m.member_id.clone())
                {
                    g.leader_id = Some(id);
                    true
                } else {
                    false
                }
            }
            None => false,
        };
        if !leader_ok && !g.members.is_empty() {
            tracing::error!(
                group = group_id,
                "could not complete rebalance because no members rejoined"
            );
            let timeout = g.rebalance_timeout_ms();
            self.timers
                .schedule_ms(TimerKey::Join(group_id.to_string()), timeout);
            return;
        }
        // initNextGeneration
        g.generation_id += 1;
        g.pending_sync.clear();
        if g.members.is_empty() {
            g.protocol_name = None;
            g.subscribed_topics = g.compute_subscribed_topics();
            g.transition(ClassicState::Empty, now);
            tracing::info!(
                group = group_id,
                generation = g.generation_id,
                "group is now empty"
            );
            let records: Vec<_> = self.group_record(group_id).into_iter().collect();
            let write = self.write(records, None);
            self.after_write(write, |_, _| {});
            return;
        }
        g.protocol_name = g.select_protocol();
        g.subscribed_topics = g.compute_subscribed_topics();
        g.transition(ClassicState::CompletingRebalance, now);
        tracing::info!(
            group = group_id,
            generation = g.generation_id,
            members = g.members.len(),
            "stabilized group"
        );
        let leader = g.leader_id.clone().unwrap_or_default();
        let all_metadata = g.current_member_metadata();
        let generation = g.generation_id;
        let protocol_type = g.protocol_type.clone();
        let protocol_name = g.protocol_name.clone();
        let mut sessions = Vec::new();
        let mut rebalance_timeout = 0;
        for m in g.members.values_mut() {
            if let Some(cb) = m.awaiting_join.take() {
                let _ = cb.send(JoinResult {
                    error: None,
                    members: if m.member_id == leader {
                        all_metadata.clone()
                    } else {
                        Vec::new()
                    },
                    member_id: m.member_id.clone(),
                    generation_id: generation,
                    protocol_type: protocol_type.clone(),
                    protocol_name: protocol_name.clone(),
                    leader_id: leader.clone(),
                    skip_assignment: false,
                });
            }
            m.is_new = false;
            sessions.push((m.member_id.clone(), i64::from(m.session_timeout_ms)));
            rebalance_timeout = rebalance_timeout.max(i64::from(m.rebalance_timeout_ms));
        }
        g.pending_sync = g.members.keys().cloned().collect();
        for (id, session) in sessions {
            self.timers
                .schedule_ms(TimerKey::Heartbeat(group_id.to_string(), id), session);
        }
        self.timers
            .schedule_ms(TimerKey::Sync(group_id.to_string()), rebalance_timeout);
    }

    /// Members that did not sync within the rebalance timeout are removed.
    pub(crate) fn on_sync_timer(&mut self, group_id: &str) {
        let Some(g) = self.classic(group_id) else {
            return;
        };
        if !matches!(
            g.state,
            ClassicState::CompletingRebalance | ClassicState::Stable
        ) || g.pending_sync.is_empty()
        {
            return;
        }
        let pending: Vec<String> = g.pending_sync.drain().collect();
        for id in &pending {
            if let Some(mut m) = g.remove_member(id) {
                if let Some(cb) = m.awaiting_sync.take() {
                    let _ = cb.send(SyncResult::error(ErrorCode::UnknownMemberId));
                }
            }
        }
        for id in &pending {
            self.timers
                .cancel(&TimerKey::Heartbeat(group_id.to_string(), id.clone()));
        }
        tracing::info!(
            group = group_id,
            ?pending,
            "removing members on pending sync expiration"
        );
        self.prepare_rebalance(group_id, "pending sync expired");
    }

    fn remove_pending_sync(&mut self, group_id: &str, member_id: &str) {
        if let Some(g) = self.classic(group_id) {
            g.pending_sync.remove(member_id);
            if g.pending_sync.is_empty() {
                self.timers.cancel(&TimerKey::Sync(group_id.to_string()));
            }
        }
    }

    /// A member left or expired (Kafka's removeMemberAndUpdateGroup).
    pub(crate) fn remove_member_and_update(
        &mut self,
        group_id: &str,
        member_id: &str,
        reason: &str,
    ) {
        let Some(g) = self.classic(group_id) else {
            return;
        };
        let Some(mut m) = g.remove_member(member_id) else {
            return;
        };
        if let Some(cb) = m.awaiting_join.take() {
            let _ = cb.send(JoinResult::error("", ErrorCode::UnknownMemberId));
        }
        if let Some(cb) = m.awaiting_sync.take() {
            let _ = cb.send(SyncResult::error(ErrorCode::UnknownMemberId));
        }
        tracing::info!(
            group = group_id,
            member = member_id,
            reason,
            "member removed"
        );
        let state = g.state;
        self.timers.cancel(&TimerKey::Heartbeat(
            group_id.to_string(),
            member_id.to_string(),
        ));
        match state {
            ClassicState::Dead | ClassicState::Empty => {}
            ClassicState::Stable | ClassicState::CompletingRebalance => {
                self.maybe_prepare_rebalance(group_id, reason)
            }
            ClassicState::PreparingRebalance => self.try_complete_join(group_id),
        }
    }

    /// A member's (or pending member's) session timer fired.
    pub(crate) fn on_heartbeat_timer(&mut self, group_id: &str, member_id: &str) {
        let Some(g) = self.classic(group_id) else {
            return;
        };
        if g.is(ClassicState::Dead) {
            return;
        }
        if g.pending_members.remove(member_id) {
            tracing::info!(
                group = group_id,
                member = member_id,
                "pending member expired"
            );
            self.try_complete_join(group_id);
            return;
        }
        let Some(m) = g.members.get(member_id) else {
            return;
        };
        // Members parked in a rebalance satisfy their heartbeats (new members
        // excepted: theirs is the JoinGroup timeout).
        if !m.is_new && (m.awaiting_join.is_some() || m.awaiting_sync.is_some()) {
            return;
        }
        self.remove_member_and_update(group_id, member_id, "session timeout");
    }

    fn reschedule_heartbeat(&self, group_id: &str, member_id: &str, session_ms: i32) {
        self.timers.schedule_ms(
            TimerKey::Heartbeat(group_id.to_string(), member_id.to_string()),
            i64::from(session_ms),
        );
    }

    /// SyncGroup.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn classic_sync(
        &mut self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: HashMap<String, Bytes>,
    ) -> SyncWait {
        let Some(g) = self.classic(group_id) else {
            let code = if self.groups.contains_key(group_id) {
                ErrorCode::InconsistentGroupProtocol
            } else {
                ErrorCode::UnknownMemberId
            };
            return SyncWait::Done(SyncResult::error(code));
        };
        if g.is(ClassicState::Dead) {
            return SyncWait::Done(SyncResult::error(ErrorCode::CoordinatorNotAvailable));
        }
        if let Some(e) = g.validate_member(member_id, instance_id) {
            return SyncWait::Done(SyncResult::error(e));
        }
        if generation_id != g.generation_id {
            return SyncWait::Done(SyncResult::error(ErrorCode::IllegalGeneration));
        }
        if protocol_type.is_some() && protocol_type != g.protocol_type.as_deref() {
            return SyncWait::Done(SyncResult::error(ErrorCode::InconsistentGroupProtocol));
        }
        if protocol_name.is_some() && protocol_name != g.protocol_name.as_deref() {
            return SyncWait::Done(SyncResult::error(ErrorCode::InconsistentGroupProtocol));
        }
        match g.state {
            ClassicState::Empty => SyncWait::Done(SyncResult::error(ErrorCode::UnknownMemberId)),
            ClassicState::PreparingRebalance => {
                SyncWait::Done(SyncResult::error(ErrorCode::RebalanceInProgress))
            }
            ClassicState::Dead => {
                SyncWait::Done(SyncResult::error(ErrorCode::CoordinatorNotAvailable))
            }
            ClassicState::Stable => {
                let result = SyncResult {
                    error: None,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol_name.clone(),
                    assignment: g
                        .members
                        .get(member_id)
                        .map(|m| m.assignment.clone())
                        .unwrap_or_default(),
                };
                let session = g.members.get(member_id).map_or(0, |m| m.session_timeout_ms);
                self.remove_pending_sync(group_id, member_id);
                self.reschedule_heartbeat(group_id, member_id, session);
                SyncWait::Done(result)
            }
            ClassicState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = g.members.get_mut(member_id) {
                    if let Some(old) = m.awaiting_sync.replace(tx) {
                        let _ = old.send(SyncResult::error(ErrorCode::RebalanceInProgress));
                    }
                }
                let is_leader = g.is_leader(member_id);
                self.remove_pending_sync(group_id, member_id);
                if is_leader {
                    let now = self.now();
                    let Some(g) = self.classic(group_id) else {
                        return SyncWait::Wait(rx);
                    };
                    tracing::info!(
                        group = group_id,
                        generation = generation_id,
                        members = g.members.len(),
                        "assignment received from leader"
                    );
                    let mut assignment: HashMap<String, Bytes> = HashMap::new();
                    for id in g.members.keys() {
                        assignment
                            .insert(id.clone(), assignments.get(id).cloned().unwrap_or_default());
                    }
                    let mut value = g.group_record_value(now);
                    for m in &mut value.members {
                        m.assignment = assignment.get(&m.member_id).cloned().unwrap_or_default();
                    }
                    let record = (
                        RecordKey::GroupMetadata {
                            group: group_id.to_string(),
                        }
                        .encode(),
                        Some(value.encode()),
                    );
                    let write = self.write(vec![record], None);
                    let gid = group_id.to_string();
                    self.after_write(write, move |st, res| {
                        st.finish_sync_store(&gid, generation_id, assignment, res)
                    });
                }
                SyncWait::Wait(rx)
            }
        }
    }

    fn finish_sync_store(
        &mut self,
        group_id: &str,
        generation_id: i32,
        assignment: HashMap<String, Bytes>,
        res: WriteResult,
    ) {
        let now = self.now();
        let Some(g) = self.classic(group_id) else {
            return;
        };
        if !(g.is(ClassicState::CompletingRebalance) && g.generation_id == generation_id) {
            return;
        }
        match res {
            Err(e) => {
                reset_and_propagate_assignment_error(g, crate::map_group_write_error(e));
                self.maybe_prepare_rebalance(group_id, "error storing the group assignment");
            }
            Ok(_) => {
                for m in g.members.values_mut() {
                    m.assignment = assignment.get(&m.member_id).cloned().unwrap_or_default();
                }
                let propagated = propagate_assignment(g, None);
                g.transition(ClassicState::Stable, now);
                for (id, session) in propagated {
                    self.reschedule_heartbeat(group_id, &id, session);
                }
            }
        }
    }

    /// Heartbeat.
    pub(crate) fn classic_heartbeat(
        &mut self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Option<ErrorCode> {
        let Some(g) = self.classic(group_id) else {
            return Some(if self.groups.contains_key(group_id) {
                ErrorCode::InconsistentGroupProtocol
            } else {
                ErrorCode::UnknownMemberId
            });
        };
        if g.is(ClassicState::Dead) {
            return Some(ErrorCode::CoordinatorNotAvailable);
        }
        if let Some(e) = g.validate_member(member_id, instance_id) {
            return Some(e);
        }
        if generation_id != g.generation_id {
            return Some(ErrorCode::IllegalGeneration);
        }
        let session = g.members.get(member_id).map_or(0, |m| m.session_timeout_ms);
        let result = match g.state {
            ClassicState::Empty => return Some(ErrorCode::UnknownMemberId),
            ClassicState::Dead => return Some(ErrorCode::CoordinatorNotAvailable),
            ClassicState::PreparingRebalance => Some(ErrorCode::RebalanceInProgress),
            ClassicState::CompletingRebalance | ClassicState::Stable => None,
        };
        self.reschedule_heartbeat(group_id, member_id, session);
        result
    }

    /// LeaveGroup: one result per leaving member, or a group-level error.
    pub(crate) fn classic_leave(
        &mut self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Option<ErrorCode>>, ErrorCode> {
        let Some(g) = self.classic(group_id) else {
            if self.groups.contains_key(group_id) {
                return Err(ErrorCode::InconsistentGroupProtocol);
            }
            return Ok(vec![Some(ErrorCode::UnknownMemberId); members.len()]);
        };
        if g.is(ClassicState::Dead) {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        let mut out = Vec::with_capacity(members.len());
        for (member_id, instance_id) in members {
            let Some(g) = self.classic(group_id) else {
                out.push(Some(ErrorCode::UnknownMemberId));
                continue;
            };
            if let Some(i) = instance_id {
                match g.static_members.get(i).cloned() {
                    None => out.push(Some(ErrorCode::UnknownMemberId)),
                    Some(current) if !member_id.is_empty() && current != *member_id => {
                        out.push(Some(ErrorCode::FencedInstanceId))
                    }
                    Some(current) => {
                        self.remove_member_and_update(group_id, &current, "static member left");
                        out.push(None);
                    }
                }
            } else if g.pending_members.remove(member_id) {
                self.timers.cancel(&TimerKey::Heartbeat(
                    group_id.to_string(),
                    member_id.clone(),
                ));
                self.try_complete_join(group_id);
                out.push(None);
            } else if !g.members.contains_key(member_id) {
                out.push(Some(ErrorCode::UnknownMemberId));
            } else {
                self.remove_member_and_update(group_id, member_id, "member left");
                out.push(None);
            }
        }
        Ok(out)
    }

    /// Classic-group part of an offset commit's validation (Kafka's
    /// validateOffsetCommit plus the state check of doCommitOffsets).
    pub(crate) fn classic_validate_commit(
        &mut self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        instance_id: Option<&str>,
        transactional: bool,
    ) -> Option<ErrorCode> {
        let g = self.classic(group_id)?;
        if g.is(ClassicState::Dead) {
            return Some(ErrorCode::CoordinatorNotAvailable);
        }
        if generation_id >= 0 || !member_id.is_empty() || instance_id.is_some() {
            if let Some(e) = g.validate_member(member_id, instance_id) {
                return Some(e);
            }
            if generation_id != g.generation_id {
                return Some(ErrorCode::IllegalGeneration);
            }
        } else if !transactional && !g.is(ClassicState::Empty) {
            return Some(ErrorCode::UnknownMemberId);
        }
        if transactional {
            return None;
        }
        match g.state {
            ClassicState::CompletingRebalance => Some(ErrorCode::RebalanceInProgress),
            ClassicState::Stable | ClassicState::PreparingRebalance => {
                let session = g.members.get(member_id).map(|m| m.session_timeout_ms);
                if let Some(session) = session {
                    self.reschedule_heartbeat(group_id, member_id, session);
                }
                None
            }
            _ => None,
        }
    }

    /// After loading: members of loaded groups get fresh session timers.
    pub(crate) fn classic_after_load(&mut self) {
        let mut timers = Vec::new();
        for g in self.groups.values() {
            if let Group::Classic(g) = g {
                for m in g.members.values() {
                    timers.push((g.id.clone(), m.member_id.clone(), m.session_timeout_ms));
                }
            }
        }
        for (g, m, s) in timers {
            self.reschedule_heartbeat(&g, &m, s);
        }
    }
}

/// Members parked in SyncGroup get `error` and the assignments are cleared.
fn reset_and_propagate_assignment_error(g: &mut ClassicGroup, error: ErrorCode) {
    for m in g.members.values_mut() {
        m.assignment = Bytes::new();
    }
    propagate_assignment(g, Some(error));
}

/// Answers parked SyncGroups; returns the members answered with their
/// session timeouts (their heartbeats restart).
fn propagate_assignment(g: &mut ClassicGroup, error: Option<ErrorCode>) -> Vec<(String, i32)> {
    let (pt, pn) = if error.is_none() {
        (g.protocol_type.clone(), g.protocol_name.clone())
    } else {
        (None, None)
    };
    let mut out = Vec::new();
    for m in g.members.values_mut() {
        if let Some(cb) = m.awaiting_sync.take() {
            let _ = cb.send(SyncResult {
                error,
                protocol_type: pt.clone(),
                protocol_name: pn.clone(),
                assignment: m.assignment.clone(),
            });
            out.push((m.member_id.clone(), m.session_timeout_ms));
        }
    }
    out
}
