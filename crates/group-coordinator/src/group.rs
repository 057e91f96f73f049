//! One classic consumer group: members, generation, chosen protocol,
//! committed offsets, and the requests waiting on its rebalance.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::format::{GroupValue, MemberValue, OffsetValue};

/// The states Kafka's DescribeGroups and ListGroups report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members (offsets may remain).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Removed.
    Dead,
}

impl GroupState {
    /// The name Kafka prints.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A member of a classic group.
#[derive(Debug)]
#[allow(missing_docs)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// (protocol name, metadata), in the member's preference order.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_heartbeat: Instant,
    /// The member's JoinGroup waiting for the join phase to end.
    pub join_waiter: Option<oneshot::Sender<JoinGroupResponse>>,
    /// The member's SyncGroup waiting for the leader's assignment.
    pub sync_waiter: Option<oneshot::Sender<SyncGroupResponse>>,
    /// JoinGroup version of the member's last join (shapes its response).
    pub join_version: i16,
    /// SyncGroup version of the member's pending sync.
    pub sync_version: i16,
}

impl Member {
    /// Metadata for `protocol`, empty when the member does not support it.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Whether the member sent exactly these protocols before.
    pub fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

/// A rebalance in progress: when the join phase ends.
#[derive(Debug, Clone, Copy)]
pub struct Rebalance {
    /// The join phase ends at the latest here (rebalance timeout).
    pub deadline: Instant,
    /// For a new group: `group.initial.rebalance.delay.ms` handling.
    pub initial: Option<InitialDelay>,
}

/// Kafka's `InitialDelayedJoin`: wait `delay`, extend while members keep
/// arriving, never beyond the rebalance timeout.
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub struct InitialDelay {
    pub next_check: Instant,
    pub delay_ms: u64,
    pub remaining_ms: u64,
    pub members_at_check: usize,
}

/// A classic group.
#[derive(Debug)]
#[allow(missing_docs)]
pub struct Group {
    pub id: String,
    pub partition: i32,
    pub state: GroupState,
    pub state_timestamp_ms: i64,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: IndexMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, and when.
    pub pending_members: HashMap<String, Instant>,
    /// `group.instance.id` → member id.
    pub static_members: HashMap<String, String>,
    pub rebalance: Option<Rebalance>,
    pub offsets: HashMap<(String, i32), OffsetValue>,
    /// Transactional offsets by producer id, applied by the marker.
    pub pending_txn_offsets: HashMap<i64, HashMap<(String, i32), OffsetValue>>,
}

impl Group {
    /// A new, empty group.
    pub fn new(id: &str, partition: i32, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            partition,
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: IndexMap::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            rebalance: None,
            offsets: HashMap::new(),
            pending_txn_offsets: HashMap::new(),
        }
    }

    /// Moves to `state`, remembering when.
    pub fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    /// Whether `protocol_type` and `protocols` fit the group's members.
    pub fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols.iter().any(|(n, _)| candidates.contains(n))
    }

    /// Protocols every member supports.
    pub fn candidate_protocols(&self) -> HashSet<String> {
        let mut iter = self.members.values();
        let Some(first) = iter.next() else {
            return HashSet::new();
        };
        let mut set: HashSet<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in iter {
            let theirs: HashSet<&String> = m.protocols.iter().map(|(n, _)| n).collect();
            set.retain(|n| theirs.contains(n));
        }
        set
    }

    /// Kafka's vote: each member votes for its most preferred candidate.
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: IndexMap<String, usize> = IndexMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(name.clone()).or_default() += 1;
            }
        }
        votes
            .iter()
            .max_by_key(|(_, v)| **v)
            .map(|(name, _)| name.clone())
    }

    /// Every member has a JoinGroup waiting and nobody owes a rejoin.
    pub fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    /// Whether a rebalance must wait for members.
    pub fn is_rebalancing(&self) -> bool {
        matches!(
            self.state,
            GroupState::PreparingRebalance | GroupState::CompletingRebalance
        )
    }

    /// The group as stored in `__consumer_offsets`.
    pub fn to_value(&self) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
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

    /// Topics the members subscribe to (consumer protocol only).
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.clone()?;
        Some(
            self.members
                .values()
                .flat_map(|m| crate::format::subscribed_topics(&m.metadata(&protocol)))
                .collect(),
        )
    }
}
