//! Committed offsets and the group-wide admin operations of a partition:
//! OffsetCommit, TxnOffsetCommit, OffsetFetch, OffsetDelete, DeleteGroups,
//! ListGroups/DescribeGroups summaries, offset expiry and deleted topics.
//!
//! Offset commits are applied to memory only once their records are
//! committed to the log (as Kafka's coordinator exposes them only then), and
//! each remembers its record's log offset so a later record always wins, even
//! when a transactional commit is materialized after a plain one.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use millrace_protocol::ErrorCode;
use tokio::sync::oneshot;

use crate::classic::{ClassicGroup, ClassicState};
use crate::records::{OffsetCommitValue, RecordKey};
use crate::shard::{Committed, Group, Record, ShardState, WriteResult};

/// One partition of an OffsetCommit or TxnOffsetCommit.
#[derive(Debug, Clone)]
pub(crate) struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Who commits.
pub(crate) struct CommitWho<'a> {
    pub group_id: &'a str,
    pub generation_or_epoch: i32,
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    /// Producer id and epoch of a TxnOffsetCommit.
    pub txn: Option<(i64, i16)>,
    /// `retention_time_ms` of OffsetCommit v2-v4 (-1 = broker default).
    pub retention_ms: i64,
}

/// A validated commit waiting for its records.
pub(crate) struct PendingCommit {
    pub errors: Vec<Option<ErrorCode>>,
    pub write: oneshot::Receiver<WriteResult>,
    /// Index into the request's partitions and the value written, in record order.
    pub applied: Vec<(usize, OffsetCommitValue)>,
}

/// A partition in an OffsetFetch answer.
#[derive(Debug, Clone)]
pub(crate) struct FetchedPartition {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub error: Option<ErrorCode>,
}

/// A group as ListGroups shows it.
pub(crate) struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
    pub group_type: &'static str,
}

fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    RecordKey::OffsetCommit {
        group: group.to_string(),
        topic: topic.to_string(),
        partition,
    }
    .encode()
}

impl ShardState {
    /// Validates a commit and queues its records.
    pub(crate) fn offset_commit(
        &mut self,
        who: CommitWho<'_>,
        parts: &[CommitPartition],
    ) -> Result<PendingCommit, ErrorCode> {
        let transactional = who.txn.is_some();
        let now = self.now();
        match self.groups.get(who.group_id) {
            None => {
                if who.generation_or_epoch < 0 || transactional {
                    let g = ClassicGroup::new(who.group_id, now);
                    self.groups
                        .insert(who.group_id.to_string(), Group::Classic(g));
                } else {
                    return Err(ErrorCode::IllegalGeneration);
                }
            }
            Some(Group::Classic(_)) => {}
            Some(Group::Consumer(_)) => {}
        }
        let validation = match self.groups.get(who.group_id) {
            Some(Group::Classic(_)) => self.classic_validate_commit(
                who.group_id,
                who.generation_or_epoch,
                who.member_id,
                who.instance_id,
                transactional,
            ),
            Some(Group::Consumer(_)) => self.consumer_validate_commit(
                who.group_id,
                who.member_id,
                who.generation_or_epoch,
                transactional,
            ),
            None => Some(ErrorCode::UnknownServerError),
        };
        if let Some(e) = validation {
            return Err(e);
        }
        let max = self.ctx.config.offset_metadata_max_bytes.max(0) as usize;
        let expire = (who.retention_ms >= 0).then(|| now.saturating_add(who.retention_ms));
        let mut errors = Vec::with_capacity(parts.len());
        let mut applied = Vec::new();
        let mut records: Vec<Record> = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let metadata = p.metadata.clone().unwrap_or_default();
            if metadata.encode_utf16().count() > max {
                errors.push(Some(ErrorCode::OffsetMetadataTooLarge));
                continue;
            }
            errors.push(None);
            let value = OffsetCommitValue {
                offset: p.offset,
                leader_epoch: p.leader_epoch,
                metadata,
                commit_timestamp: now,
                expire_timestamp: expire,
            };
            records.push((
                offset_key(who.group_id, &p.topic, p.partition),
                Some(value.encode()),
            ));
            applied.push((i, value));
        }
        let write = self.write(records, who.txn);
        Ok(PendingCommit {
            errors,
            write,
            applied,
        })
    }

    /// Makes a commit visible once its records are in the log.
    pub(crate) fn apply_commit(
        &mut self,
        group_id: &str,
        txn_producer: Option<i64>,
        parts: &[CommitPartition],
        applied: Vec<(usize, OffsetCommitValue)>,
        base_offset: i64,
    ) {
        for (n, (i, value)) in applied.into_iter().enumerate() {
            let Some(p) = parts.get(i) else { continue };
            let record_offset = base_offset + n as i64;
            match txn_producer {
                Some(pid) => {
                    self.pending_txn
                        .entry(pid)
                        .or_default()
                        .entry(group_id.to_string())
                        .or_default()
                        .entry(p.topic.clone())
                        .or_default()
                        .insert(
                            p.partition,
                            Committed {
                                value,
                                record_offset,
                            },
                        );
                }
                None => self.put_offset(group_id, &p.topic, p.partition, value, record_offset),
            }
        }
    }

    /// OffsetFetch for one group; `topics == None` means every partition.
    pub(crate) fn offset_fetch(
        &self,
        group_id: &str,
        member: Option<(&str, i32)>,
        topics: Option<Vec<(String, Vec<i32>)>>,
        require_stable: bool,
    ) -> Result<Vec<(String, Vec<FetchedPartition>)>, ErrorCode> {
        if let (Some(Group::Consumer(_)), Some((member_id, epoch))) =
            (self.groups.get(group_id), member)
        {
            if let Some(e) = self.consumer_validate_fetch(group_id, member_id, epoch) {
                return Err(e);
            }
        }
        let committed = self.offsets.get(group_id);
        let fetched = |topic: &str, p: i32| -> FetchedPartition {
            if require_stable && self.has_pending_txn(group_id, topic, p) {
                return FetchedPartition {
                    partition: p,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                    error: Some(ErrorCode::UnstableOffsetCommit),
                };
            }
            match committed.and_then(|t| t.get(topic)).and_then(|m| m.get(&p)) {
                Some(c) => FetchedPartition {
                    partition: p,
                    offset: c.value.offset,
                    leader_epoch: c.value.leader_epoch,
                    metadata: c.value.metadata.clone(),
                    error: None,
                },
                None => FetchedPartition {
                    partition: p,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                    error: None,
                },
            }
        };
        Ok(match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(t, ps)| {
                    let parts = ps.iter().map(|&p| fetched(&t, p)).collect();
                    (t, parts)
                })
                .collect(),
            None => committed
                .map(|c| {
                    c.iter()
                        .map(|(t, ps)| (t.clone(), ps.keys().map(|&p| fetched(t, p)).collect()))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// OffsetDelete: per-partition results plus the tombstones' write.
    #[allow(clippy::type_complexity)]
    pub(crate) fn offset_delete(
        &mut self,
        group_id: &str,
        topics: Vec<(String, Vec<i32>)>,
    ) -> Result<
        (
            Vec<(String, Vec<(i32, Option<ErrorCode>)>)>,
            oneshot::Receiver<WriteResult>,
        ),
        ErrorCode,
    > {
        let subscribed: Box<dyn Fn(&str) -> bool> = match self.groups.get(group_id) {
            None => return Err(ErrorCode::GroupIdNotFound),
            Some(Group::Classic(g)) => match g.state {
                ClassicState::Dead => return Err(ErrorCode::GroupIdNotFound),
                ClassicState::Empty => Box::new(|_| false),
                _ if g.protocol_type.as_deref() == Some("consumer") => {
                    let topics = g.subscribed_topics.clone().unwrap_or_default();
                    Box::new(move |t| topics.contains(t))
                }
                _ => return Err(ErrorCode::NonEmptyGroup),
            },
            Some(Group::Consumer(g)) => {
                let topics: HashSet<String> = g.subscribed_topic_names();
                Box::new(move |t| topics.contains(t))
            }
        };
        let mut out = Vec::new();
        let mut records = Vec::new();
        for (topic, parts) in topics {
            let is_subscribed = subscribed(&topic);
            let mut results = Vec::new();
            for p in parts {
                if is_subscribed {
                    results.push((p, Some(ErrorCode::GroupSubscribedToTopic)));
                    continue;
                }
                let had = self
                    .offsets
                    .get(group_id)
                    .and_then(|t| t.get(&topic))
                    .is_some_and(|m| m.contains_key(&p));
                if had {
                    self.remove_offset(group_id, &topic, p);
                    records.push((offset_key(group_id, &topic, p), None));
                }
                results.push((p, None));
            }
            out.push((topic, results));
        }
        Ok((out, self.write(records, None)))
    }

    /// Tombstones for every committed offset of `group_id`, removing them.
    fn drain_offset_tombstones(&mut self, group_id: &str) -> Vec<Record> {
        let mut records = Vec::new();
        if let Some(topics) = self.offsets.remove(group_id) {
            for (t, ps) in topics {
                for p in ps.keys() {
                    records.push((offset_key(group_id, &t, *p), None));
                }
            }
        }
        records
    }

    /// Records that delete a group (not its offsets).
    fn group_tombstones(&mut self, group_id: &str) -> Vec<Record> {
        match self.groups.remove(group_id) {
            Some(Group::Consumer(g)) => g.tombstones(),
            _ => vec![(
                RecordKey::GroupMetadata {
                    group: group_id.to_string(),
                }
                .encode(),
                None,
            )],
        }
    }

    /// Writes tombstones for an empty consumer group's records so a classic
    /// group can take its id (offsets are kept).
    pub(crate) fn remove_group_records_only(&mut self, group_id: &str) {
        let records = self.group_tombstones(group_id);
        let w = self.write(records, None);
        self.after_write(w, |_, _| {});
    }

    /// DeleteGroups: per-group results plus the tombstones' write.
    pub(crate) fn delete_groups(
        &mut self,
        groups: &[String],
    ) -> (Vec<Option<ErrorCode>>, oneshot::Receiver<WriteResult>) {
        let mut results = Vec::with_capacity(groups.len());
        let mut records = Vec::new();
        for id in groups {
            let deletable = match self.groups.get(id) {
                None => Err(ErrorCode::GroupIdNotFound),
                Some(Group::Classic(g)) => match g.state {
                    ClassicState::Dead => Err(ErrorCode::GroupIdNotFound),
                    ClassicState::Empty => Ok(()),
                    _ => Err(ErrorCode::NonEmptyGroup),
                },
                Some(Group::Consumer(g)) => {
                    if g.members.is_empty() {
                        Ok(())
                    } else {
                        Err(ErrorCode::NonEmptyGroup)
                    }
                }
            };
            match deletable {
                Err(e) => results.push(Some(e)),
                Ok(()) => {
                    records.extend(self.drain_offset_tombstones(id));
                    records.extend(self.group_tombstones(id));
                    for producer in self.pending_txn.values_mut() {
                        producer.remove(id);
                    }
                    tracing::info!(group = %id, "group deleted");
                    results.push(None);
                }
            }
        }
        (results, self.write(records, None))
    }

    /// Offset expiry (Kafka's cleanupGroupMetadata with the retention rules
    /// of KIP-211), then deletion of empty groups left without offsets.
    pub(crate) fn expire_offsets(&mut self) {
        let now = self.now();
        let retention = self.ctx.config.offsets_retention_ms;
        let mut records = Vec::new();
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in ids {
            let expired = self.expired_offsets(&id, now, retention);
            for (t, p) in expired {
                if self.has_pending_txn(&id, &t, p) {
                    continue;
                }
                self.remove_offset(&id, &t, p);
                records.push((offset_key(&id, &t, p), None));
            }
            records.extend(self.maybe_delete_empty_group(&id));
        }
        if !records.is_empty() {
            tracing::info!(
                partition = self.partition,
                records = records.len(),
                "removed expired offsets and empty groups"
            );
            let w = self.write(records, None);
            self.after_write(w, |_, _| {});
        }
    }

    fn expired_offsets(&self, group_id: &str, now: i64, retention: i64) -> Vec<(String, i32)> {
        let Some(offsets) = self.offsets.get(group_id) else {
            return Vec::new();
        };
        // The base timestamp of each offset, or None when the group keeps it.
        type Base<'a> = Box<dyn Fn(&str, &Committed) -> Option<i64> + 'a>;
        let base: Base = match self.groups.get(group_id) {
            Some(Group::Classic(g)) => match (&g.protocol_type, g.state) {
                (Some(_), ClassicState::Empty) => {
                    let since = g.state_timestamp;
                    Box::new(move |_, c| {
                        Some(since.map_or(c.value.commit_timestamp, |s| {
                            s.max(c.value.commit_timestamp)
                        }))
                    })
                }
                (Some(pt), ClassicState::Stable) if pt == "consumer" => {
                    match &g.subscribed_topics {
                        Some(subscribed) => Box::new(move |t, c| {
                            (!subscribed.contains(t)).then_some(c.value.commit_timestamp)
                        }),
                        None => return Vec::new(),
                    }
                }
                (None, _) => Box::new(|_, c| Some(c.value.commit_timestamp)),
                _ => return Vec::new(),
            },
            Some(Group::Consumer(g)) => {
                let subscribed = g.subscribed_topic_names();
                Box::new(move |t, c| (!subscribed.contains(t)).then_some(c.value.commit_timestamp))
            }
            None => Box::new(|_, c| Some(c.value.commit_timestamp)),
        };
        let mut out = Vec::new();
        for (t, ps) in offsets {
            for (p, c) in ps {
                let Some(b) = base(t, c) else { continue };
                let expired = match c.value.expire_timestamp {
                    Some(e) => now >= e,
                    None => now - b >= retention,
                };
                if expired {
                    out.push((t.clone(), *p));
                }
            }
        }
        out
    }

    /// An Empty group without offsets (or pending transactional ones) is
    /// deleted: Kafka transitions it to Dead and writes its tombstone.
    fn maybe_delete_empty_group(&mut self, group_id: &str) -> Vec<Record> {
        if self.offsets.contains_key(group_id) || self.has_pending_txn_for_group(group_id) {
            return Vec::new();
        }
        let empty = match self.groups.get(group_id) {
            Some(Group::Classic(g)) => {
                g.is(ClassicState::Empty) && g.members.is_empty() && g.pending_members.is_empty()
            }
            Some(Group::Consumer(g)) => g.members.is_empty(),
            None => false,
        };
        if !empty {
            return Vec::new();
        }
        tracing::info!(group = group_id, "empty group without offsets removed");
        self.group_tombstones(group_id)
    }

    /// Topics were deleted: their offsets go, with tombstones.
    pub(crate) fn topics_deleted(
        &mut self,
        topics: &HashSet<String>,
    ) -> oneshot::Receiver<WriteResult> {
        let mut records = Vec::new();
        let ids: Vec<String> = self.offsets.keys().cloned().collect();
        for id in &ids {
            let doomed: Vec<(String, i32)> = self
                .offsets
                .get(id)
                .map(|t| {
                    t.iter()
                        .filter(|(name, _)| topics.contains(*name))
                        .flat_map(|(name, ps)| ps.keys().map(move |p| (name.clone(), *p)))
                        .collect()
                })
                .unwrap_or_default();
            for (t, p) in doomed {
                self.remove_offset(id, &t, p);
                records.push((offset_key(id, &t, p), None));
            }
        }
        for producer in self.pending_txn.values_mut() {
            for group in producer.values_mut() {
                group.retain(|t, _| !topics.contains(t));
            }
        }
        for id in ids {
            records.extend(self.maybe_delete_empty_group(&id));
        }
        self.write(records, None)
    }

    /// Every group, for ListGroups.
    pub(crate) fn list_groups(&self) -> Vec<ListedGroup> {
        self.groups
            .iter()
            .filter_map(|(id, g)| match g {
                Group::Classic(g) if !g.is(ClassicState::Dead) => Some(ListedGroup {
                    group_id: id.clone(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    state: g.state.name(),
                    group_type: "classic",
                }),
                Group::Classic(_) => None,
                Group::Consumer(g) => Some(ListedGroup {
                    group_id: id.clone(),
                    protocol_type: "consumer".to_string(),
                    state: g.state_name(),
                    group_type: "consumer",
                }),
            })
            .collect()
    }
}

/// A classic group as DescribeGroups shows it.
pub(crate) struct DescribedClassic {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    /// member id, instance id, client id, client host, metadata, assignment.
    #[allow(clippy::type_complexity)]
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

impl ShardState {
    /// DescribeGroups for one group: `Ok(None)` when unknown,
    /// `Err` when it is not a classic group.
    pub(crate) fn describe_classic(
        &self,
        group_id: &str,
    ) -> Result<Option<DescribedClassic>, ErrorCode> {
        match self.groups.get(group_id) {
            None => Ok(None),
            Some(Group::Consumer(_)) => Err(ErrorCode::GroupIdNotFound),
            Some(Group::Classic(g)) => {
                let stable = g.is(ClassicState::Stable);
                let protocol = if stable {
                    g.protocol_name.clone().unwrap_or_default()
                } else {
                    String::new()
                };
                let members = g
                    .members
                    .values()
                    .map(|m| {
                        let (meta, asg) = if stable {
                            (
                                m.protocols
                                    .iter()
                                    .find(|(n, _)| *n == protocol)
                                    .map(|(_, b)| b.clone())
                                    .unwrap_or_default(),
                                m.assignment.clone(),
                            )
                        } else {
                            (Bytes::new(), Bytes::new())
                        };
                        (
                            m.member_id.clone(),
                            m.group_instance_id.clone(),
                            m.client_id.clone(),
                            m.client_host.clone(),
                            meta,
                            asg,
                        )
                    })
                    .collect();
                Ok(Some(DescribedClassic {
                    state: g.state.name(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    protocol,
                    members,
                }))
            }
        }
    }
}

/// Offsets of a group, for tests and tools: topic -> partition -> offset.
pub(crate) fn snapshot(
    offsets: Option<&crate::shard::OffsetMap>,
) -> BTreeMap<String, BTreeMap<i32, i64>> {
    offsets
        .map(|o| {
            o.iter()
                .map(|(t, ps)| {
                    (
                        t.clone(),
                        ps.iter().map(|(p, c)| (*p, c.value.offset)).collect(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
