//! Partition reassignment (KIP-455) and leader election (KIP-460, and the
//! automatic preferred-leader rebalance), as KRaft's
//! `ReplicationControlManager` does them.
//!
//! A reassignment records its target without moving anything at once: the
//! partition's `replicas` become target ∪ current (target first), the
//! replicas being added and removed are listed beside them
//! ([`MetadataRecord::PartitionReassignment`]), and the new replicas start
//! as followers. When the leader's AlterPartition brings every target
//! replica into the ISR, the reassignment completes in the same lock:
//! replicas become the target, removed replicas leave the ISR, and a
//! removed leader hands over to the first in-sync target replica.
//! Cancelling reverts to the original replicas.

use std::collections::HashSet;

use millrace_protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::controller::{partition_record, CommitOffset, Controller, State};
use crate::error::ApiError;
use crate::image::{MetadataImage, PartitionRegistration};
use crate::records::MetadataRecord;

/// Which leader ElectLeaders asks for (its `election_type` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    /// The first replica, if it is live and in the ISR (type 0).
    Preferred,
    /// A live replica outside the ISR when no ISR member is live (type 1):
    /// availability over durability, as the operator chose.
    Unclean,
}

impl ElectionType {
    /// The type ElectLeaders' `election_type` names (v0 has no field and
    /// means preferred), or `None` for an unknown value.
    pub fn from_wire(value: i8) -> Option<ElectionType> {
        match value {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// The partitions of one topic an ElectLeaders request names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPartitions {
    /// The topic.
    pub topic: String,
    /// Partition indexes.
    pub partitions: Vec<i32>,
}

/// ElectLeaders' outcome for one topic: a result per partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElectionResult {
    /// The topic.
    pub topic: String,
    /// Per partition: elected, or why not.
    pub partitions: Vec<(i32, Result<(), ApiError>)>,
}

/// One partition of an AlterPartitionReassignments request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignmentSpec {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The target replicas, preferred leader first; `None` cancels the
    /// reassignment in progress.
    pub replicas: Option<Vec<i32>>,
}

/// An ongoing reassignment, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OngoingReassignment {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The full replica set (target and replicas still being removed).
    pub replicas: Vec<i32>,
    /// Replicas being added.
    pub adding_replicas: Vec<i32>,
    /// Replicas being removed.
    pub removing_replicas: Vec<i32>,
}

impl Controller {
    /// ElectLeaders on the active controller. `partitions: None` means every
    /// partition, and then (as Kafka) partitions that already have the
    /// wanted leader are left out of the results. Elections are committed
    /// as one batch; returns the results and the commit offset.
    pub(crate) fn elect_leaders_local(
        &self,
        election: ElectionType,
        partitions: Option<Vec<TopicPartitions>>,
    ) -> (Vec<ElectionResult>, CommitOffset) {
        let mut state = self.lock();
        let image = state.image.clone();
        let mut records = Vec::new();
        let mut results = Vec::new();
        match partitions {
            None => {
                for topic in image.topics_sorted() {
                    let mut result = ElectionResult {
                        topic: topic.name.clone(),
                        partitions: Vec::new(),
                    };
                    for &index in topic.partitions.keys() {
                        let outcome = elect(&image, &topic.name, index, election, &mut records);
                        if !matches!(&outcome, Err(e) if e.code == ErrorCode::ElectionNotNeeded) {
                            result.partitions.push((index, outcome));
                        }
                    }
                    results.push(result);
                }
            }
            Some(topics) => {
                for topic in topics {
                    let partitions = topic
                        .partitions
                        .iter()
                        .map(|&index| {
                            (
                                index,
                                elect(&image, &topic.topic, index, election, &mut records),
                            )
                        })
                        .collect();
                    results.push(ElectionResult {
                        topic: topic.topic,
                        partitions,
                    });
                }
            }
        }
        if records.is_empty() {
            return (results, image.offset);
        }
        match self.commit(&mut state, records) {
            Ok(offset) => (results, offset),
            Err(e) => {
                for topic in &mut results {
                    for (_, outcome) in &mut topic.partitions {
                        if outcome.is_ok() {
                            *outcome = Err(e.clone());
                        }
                    }
                }
                (results, image.offset)
            }
        }
    }

    /// The automatic preferred-leader rebalance (`auto.leader.rebalance.enable`),
    /// as Kafka's controller runs it every
    /// `leader.imbalance.check.interval.seconds`: for each broker, the
    /// share of the partitions it is preferred leader of but does not lead
    /// is its imbalance; above `imbalance_percentage` percent, each such
    /// partition whose preferred replica is live and in sync gets it back as
    /// leader. Partitions being reassigned are left alone. Also completes a
    /// reassignment whose target is already in sync but was not completed
    /// (its completing commit failed). Returns the commit offset when
    /// anything changed.
    pub(crate) fn balance_partition_leaders_local(
        &self,
        imbalance_percentage: i32,
    ) -> Result<Option<CommitOffset>, ApiError> {
        let mut state = self.lock();
        let image = state.image.clone();
        let mut records = Vec::new();
        for topic in image.topics_sorted() {
            for (&index, p) in &topic.partitions {
                if let Some(done) = completed(&image, p) {
                    records.extend(registration_records(topic.id, index, done));
                }
            }
        }
        for broker in image.brokers.values().filter(|b| !b.fenced) {
            let mut preferred = 0usize;
            let mut imbalanced = Vec::new();
            for topic in image.topics_sorted() {
                for (&index, p) in &topic.partitions {
                    if p.is_reassigning() || p.replicas.first() != Some(&broker.id) {
                        continue;
                    }
                    preferred += 1;
                    if p.leader != broker.id {
                        imbalanced.push((topic.clone(), index));
                    }
                }
            }
            if preferred == 0 || imbalanced.is_empty() {
                continue;
            }
            // Kafka: imbalance ratio > leader.imbalance.per.broker.percentage / 100.
            if imbalanced.len() * 100 <= preferred * imbalance_percentage.max(0) as usize {
                continue;
            }
            for (topic, index) in imbalanced {
                let before = records.len();
                let _ = elect(
                    &image,
                    &topic.name,
                    index,
                    ElectionType::Preferred,
                    &mut records,
                );
                if records.len() > before {
                    tracing::info!(
                        partition = %format!("{}-{index}", topic.name),
                        leader = broker.id,
                        "leadership moved back to the preferred replica"
                    );
                }
            }
        }
        if records.is_empty() {
            return Ok(None);
        }
        self.commit(&mut state, records).map(Some)
    }

    /// AlterPartitionReassignments on the active controller: one result per
    /// spec. `unclean_default` is `unclean.leader.election.enable` of the
    /// broker that received the request, used for topics without their
    /// own override (a cancellation that would need an unclean election is
    /// refused without it, as in Kafka).
    pub(crate) fn alter_partition_reassignments_local(
        &self,
        specs: Vec<ReassignmentSpec>,
        unclean_default: bool,
    ) -> (Vec<Result<(), ApiError>>, CommitOffset) {
        let mut state = self.lock();
        let mut image = (*state.image).clone();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(specs.len());
        for spec in specs {
            let result = plan_reassignment(&image, &spec, unclean_default).map(|planned| {
                for r in &planned {
                    // Later specs for the same partition see this one.
                    image.apply(image.offset, r);
                }
                records.extend(planned);
            });
            results.push(result);
        }
        if records.is_empty() {
            return (results, state.image.offset);
        }
        self.commit_batch(&mut state, records, results)
    }

    /// ListPartitionReassignments on the active controller: the
    /// reassignments in progress, of every topic (`None`) or of the named
    /// partitions (unknown ones are skipped, as Kafka does). Answered by
    /// the active controller, as in KRaft, so a client that just started a
    /// reassignment through another broker sees it.
    pub(crate) fn list_partition_reassignments_local(
        &self,
        topics: Option<Vec<TopicPartitions>>,
    ) -> Vec<OngoingReassignment> {
        let image = self.lock().image.clone();
        let ongoing = |name: &str, index: i32, p: &PartitionRegistration| OngoingReassignment {
            topic: name.to_string(),
            partition: index,
            replicas: p.replicas.clone(),
            adding_replicas: p.adding_replicas.clone(),
            removing_replicas: p.removing_replicas.clone(),
        };
        let mut out = Vec::new();
        match topics {
            None => {
                for topic in image.topics_sorted() {
                    for (&index, p) in &topic.partitions {
                        if p.is_reassigning() {
                            out.push(ongoing(&topic.name, index, p));
                        }
                    }
                }
            }
            Some(topics) => {
                for t in topics {
                    let Some(topic) = image.topic(&t.topic) else {
                        continue;
                    };
                    for index in t.partitions {
                        if let Some(p) = topic.partitions.get(&index) {
                            if p.is_reassigning() {
                                out.push(ongoing(&topic.name, index, p));
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The hook AlterPartition calls after committing an ISR change: when
    /// the new ISR holds every target replica of a reassignment in
    /// progress, completes it (one more commit, under the same lock).
    /// Returns the registration and offset the caller should report.
    pub(crate) fn complete_reassignment(
        &self,
        state: &mut State,
        topic_id: Uuid,
        partition: i32,
        registration: PartitionRegistration,
        offset: CommitOffset,
    ) -> Result<(PartitionRegistration, CommitOffset), ApiError> {
        let Some(done) = completed(&state.image, &registration) else {
            return Ok((registration, offset));
        };
        tracing::info!(
            %topic_id,
            partition,
            replicas = ?done.replicas,
            leader = done.leader,
            "partition reassignment completed"
        );
        let records = registration_records(topic_id, partition, done.clone());
        let offset = self.commit(state, records)?;
        Ok((done, offset))
    }
}

/// The records that set a partition to `registration`, its reassignment
/// state included.
fn registration_records(
    topic_id: Uuid,
    partition: i32,
    registration: PartitionRegistration,
) -> Vec<MetadataRecord> {
    let reassignment = MetadataRecord::PartitionReassignment {
        topic_id,
        partition_id: partition,
        adding_replicas: registration.adding_replicas.clone(),
        removing_replicas: registration.removing_replicas.clone(),
    };
    vec![
        partition_record(topic_id, partition, registration),
        reassignment,
    ]
}

/// The registration that completes `p`'s reassignment, if one is in
/// progress and every target replica is in the ISR (Kafka's
/// `PartitionReassignmentReplicas.maybeCompleteReassignment`): replicas
/// become the target, removed replicas leave the ISR, and a removed (or
/// dead) leader is replaced by the first live in-sync target replica.
fn completed(image: &MetadataImage, p: &PartitionRegistration) -> Option<PartitionRegistration> {
    if !p.is_reassigning() {
        return None;
    }
    let target = p.target_replicas();
    if target.is_empty() || !target.iter().all(|r| p.isr.contains(r)) {
        return None;
    }
    let isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| !p.removing_replicas.contains(r))
        .collect();
    let mut next = PartitionRegistration {
        replicas: target.clone(),
        isr,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
        partition_epoch: p.partition_epoch + 1,
        ..p.clone()
    };
    if !target.contains(&p.leader) {
        let leader = target
            .iter()
            .copied()
            .find(|r| next.isr.contains(r) && image.is_live(*r))?;
        next.leader = leader;
        next.leader_epoch = p.leader_epoch + 1;
    }
    Some(next)
}

/// One partition's election (KRaft's `electLeader`): appends the change to
/// `records` and returns `Ok`, or says why nothing changed.
fn elect(
    image: &MetadataImage,
    topic: &str,
    index: i32,
    election: ElectionType,
    records: &mut Vec<MetadataRecord>,
) -> Result<(), ApiError> {
    let t = image.topic(topic).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownTopicOrPartition,
            format!("No such topic as {topic}"),
        )
    })?;
    let p = t.partitions.get(&index).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownTopicOrPartition,
            format!("No such partition as {topic}-{index}"),
        )
    })?;
    let has_leader = p.leader >= 0 && image.is_live(p.leader);
    let mut next = p.clone();
    match election {
        ElectionType::Preferred => {
            // During a reassignment the preferred replica is the target's first.
            let preferred = p.target_replicas().first().copied().unwrap_or(-1);
            if p.leader == preferred && has_leader {
                return Err(election_not_needed());
            }
            if !(p.isr.contains(&preferred) && image.is_live(preferred)) {
                return Err(ApiError::new(
                    ErrorCode::PreferredLeaderNotAvailable,
                    "The preferred leader was not available.",
                ));
            }
            next.leader = preferred;
        }
        ElectionType::Unclean => {
            if has_leader {
                return Err(election_not_needed());
            }
            if let Some(&leader) = p.isr.iter().find(|&&r| image.is_live(r)) {
                next.leader = leader;
            } else if let Some(&leader) = p.replicas.iter().find(|&&r| image.is_live(r)) {
                tracing::warn!(
                    partition = %format!("{topic}-{index}"),
                    leader,
                    "unclean leader election: a replica outside the ISR becomes leader"
                );
                next.leader = leader;
                next.isr = vec![leader];
            } else {
                return Err(ApiError::new(
                    ErrorCode::EligibleLeadersNotAvailable,
                    "Eligible topic partition leaders are not available.",
                ));
            }
        }
    }
    next.leader_epoch += 1;
    next.partition_epoch += 1;
    records.push(partition_record(t.id, index, next));
    Ok(())
}

fn election_not_needed() -> ApiError {
    ApiError::new(
        ErrorCode::ElectionNotNeeded,
        "Leader election not needed for topic partition.",
    )
}

/// The records of one AlterPartitionReassignments entry, checked as KRaft's
/// `changePartitionReassignment` / `cancelPartitionReassignment`.
fn plan_reassignment(
    image: &MetadataImage,
    spec: &ReassignmentSpec,
    unclean_default: bool,
) -> Result<Vec<MetadataRecord>, ApiError> {
    let unknown = || {
        ApiError::new(
            ErrorCode::UnknownTopicOrPartition,
            format!(
                "Unable to find partition {}:{}.",
                spec.topic, spec.partition
            ),
        )
    };
    let topic = image.topic(&spec.topic).ok_or_else(unknown)?;
    let p = topic.partitions.get(&spec.partition).ok_or_else(unknown)?;
    let next = match &spec.replicas {
        None => revert(image, &spec.topic, spec.partition, p, unclean_default)?,
        Some(target) => {
            validate_target(image, target)?;
            reassign(image, p, target)
        }
    };
    Ok(registration_records(topic.id, spec.partition, next))
}

/// Kafka's `validateManualPartitionAssignment`.
fn validate_target(image: &MetadataImage, target: &[i32]) -> Result<(), ApiError> {
    let invalid = |m: String| ApiError::new(ErrorCode::InvalidReplicaAssignment, m);
    if target.is_empty() {
        return Err(invalid(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    let mut sorted = target.to_vec();
    sorted.sort_unstable();
    let mut previous = None;
    for broker in sorted {
        if !image.brokers.contains_key(&broker) {
            return Err(invalid(format!(
                "The manual partition assignment includes broker {broker}, but no such broker is registered."
            )));
        }
        if previous == Some(broker) {
            return Err(invalid(format!(
                "The manual partition assignment includes the broker {broker} more than once."
            )));
        }
        previous = Some(broker);
    }
    Ok(())
}

/// Starts (or replaces) a reassignment of `p` to `target`. As in KRaft the
/// current replica set (which during a reassignment already includes the
/// replicas being added) is the starting point: replicas become target ++
/// (current − target), with the difference recorded as adding/removing. A
/// target already in sync completes at once (a pure removal or reorder).
fn reassign(
    image: &MetadataImage,
    p: &PartitionRegistration,
    target: &[i32],
) -> PartitionRegistration {
    let current: HashSet<i32> = p.replicas.iter().copied().collect();
    let wanted: HashSet<i32> = target.iter().copied().collect();
    let removing: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !wanted.contains(r))
        .collect();
    let adding: Vec<i32> = target
        .iter()
        .copied()
        .filter(|r| !current.contains(r))
        .collect();
    let mut replicas = target.to_vec();
    replicas.extend(&removing);
    let next = PartitionRegistration {
        replicas,
        adding_replicas: adding,
        removing_replicas: removing,
        partition_epoch: p.partition_epoch + 1,
        ..p.clone()
    };
    if next.is_reassigning() {
        if let Some(done) = completed(image, &next) {
            return PartitionRegistration {
                partition_epoch: next.partition_epoch,
                ..done
            };
        }
    }
    next
}

/// Cancels `p`'s reassignment (Kafka's `PartitionReassignmentRevert`): the
/// replicas being added leave the replica set and ISR; if that empties the
/// ISR, the first remaining replica takes it, which is an unclean election
/// and needs `unclean.leader.election.enable`.
fn revert(
    image: &MetadataImage,
    topic: &str,
    index: i32,
    p: &PartitionRegistration,
    unclean_default: bool,
) -> Result<PartitionRegistration, ApiError> {
    if !p.is_reassigning() {
        return Err(ApiError::new(
            ErrorCode::NoReassignmentInProgress,
            "No partition reassignment is in progress.",
        ));
    }
    let replicas: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !p.adding_replicas.contains(r))
        .collect();
    let mut isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| !p.adding_replicas.contains(r))
        .collect();
    if replicas.is_empty() {
        return Ok(PartitionRegistration {
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
            partition_epoch: p.partition_epoch + 1,
            ..p.clone()
        });
    }
    if isr.is_empty() {
        let unclean = image
            .topic_config(topic)
            .get("unclean.leader.election.enable")
            .map_or(unclean_default, |v| v.eq_ignore_ascii_case("true"));
        if !unclean {
            return Err(ApiError::new(
                ErrorCode::InvalidReplicaAssignment,
                format!(
                    "Unable to revert partition assignment for {topic}:{index} because it would require an unclean leader election."
                ),
            ));
        }
        isr.push(replicas[0]);
    }
    let mut next = PartitionRegistration {
        replicas,
        isr,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
        partition_epoch: p.partition_epoch + 1,
        ..p.clone()
    };
    if !next.isr.contains(&next.leader) {
        next.leader = next
            .isr
            .iter()
            .copied()
            .find(|r| image.is_live(*r))
            .unwrap_or(-1);
        next.leader_epoch = p.leader_epoch + 1;
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::controller::{
        AlterPartitionSpec, ConfigValidator, ControllerConfig, CreateTopicSpec,
    };
    use crate::records::ConfigResourceType;

    struct AcceptAll;
    impl ConfigValidator for AcceptAll {
        fn validate_topic(&self, _: &str, _: &BTreeMap<String, String>) -> Result<(), ApiError> {
            Ok(())
        }
        fn validate_broker(&self, _: &str, _: &BTreeMap<String, String>) -> Result<(), ApiError> {
            Ok(())
        }
        fn is_list(&self, _: ConfigResourceType, _: &str) -> bool {
            false
        }
    }

    /// Four brokers and topic `t` with partition 0 on brokers 1 and 2.
    fn setup(dir: &Path) -> (Arc<Controller>, Uuid) {
        let c = Controller::open(
            dir,
            ControllerConfig {
                default_num_partitions: 1,
                default_replication_factor: 1,
                delete_topic_enable: true,
            },
            Arc::new(AcceptAll),
        )
        .unwrap();
        for id in 1..=4 {
            c.register_broker(id, vec![], None).unwrap();
        }
        let (r, _) = c.create_topics(
            vec![CreateTopicSpec {
                name: "t".into(),
                num_partitions: -1,
                replication_factor: -1,
                assignments: [(0, vec![1, 2])].into_iter().collect(),
                configs: vec![],
            }],
            false,
        );
        let id = r[0].as_ref().unwrap().topic_id;
        (c, id)
    }

    fn partition(c: &Controller) -> PartitionRegistration {
        c.image().topic("t").unwrap().partitions[&0].clone()
    }

    fn spec(replicas: Option<Vec<i32>>) -> ReassignmentSpec {
        ReassignmentSpec {
            topic: "t".into(),
            partition: 0,
            replicas,
        }
    }

    fn isr_change(c: &Controller, topic_id: Uuid, isr: Vec<i32>) -> PartitionRegistration {
        let p = partition(c);
        c.alter_partition(AlterPartitionSpec {
            topic_id,
            partition: 0,
            leader_id: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: isr,
        })
        .unwrap()
        .0
    }

    #[test]
    fn completes_when_the_target_is_in_sync_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (c, id) = setup(dir.path());
        let (r, _) = c.alter_partition_reassignments(vec![spec(Some(vec![3, 4]))], false);
        assert!(r[0].is_ok(), "{r:?}");
        drop(c);
        // The recorded reassignment is replayed from the metadata log.
        let (c, _) = setup_again(dir.path());
        let p = partition(&c);
        assert_eq!(p.replicas, vec![3, 4, 1, 2]);
        assert_eq!(
            (p.adding_replicas.clone(), p.removing_replicas.clone()),
            (vec![3, 4], vec![1, 2])
        );
        assert_eq!(c.list_partition_reassignments(None).unwrap().len(), 1);
        // One new replica in sync: not yet.
        let p = isr_change(&c, id, vec![1, 2, 3]);
        assert!(p.is_reassigning());
        // Both: replicas become the target, the removed leader hands over.
        let before = partition(&c);
        let p = isr_change(&c, id, vec![1, 2, 3, 4]);
        assert_eq!(p, partition(&c));
        assert_eq!(p.replicas, vec![3, 4]);
        assert_eq!(p.isr, vec![3, 4]);
        assert_eq!(p.leader, 3);
        assert_eq!(p.leader_epoch, before.leader_epoch + 1);
        assert!(!p.is_reassigning());
        assert!(c.list_partition_reassignments(None).unwrap().is_empty());
    }

    fn setup_again(dir: &Path) -> (Arc<Controller>, ()) {
        let c = Controller::open(
            dir,
            ControllerConfig {
                default_num_partitions: 1,
                default_replication_factor: 1,
                delete_topic_enable: true,
            },
            Arc::new(AcceptAll),
        )
        .unwrap();
        (c, ())
    }

    #[test]
    fn cancel_reverts_and_errors_are_kafkas() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = setup(dir.path());
        let code = |r: &[Result<(), ApiError>]| r[0].as_ref().err().map(|e| e.code);
        let (r, _) = c.alter_partition_reassignments(vec![spec(None)], false);
        assert_eq!(code(&r), Some(ErrorCode::NoReassignmentInProgress));
        for bad in [vec![], vec![3, 3], vec![3, 9]] {
            let (r, _) = c.alter_partition_reassignments(vec![spec(Some(bad))], false);
            assert_eq!(code(&r), Some(ErrorCode::InvalidReplicaAssignment));
        }
        let (r, _) = c.alter_partition_reassignments(
            vec![ReassignmentSpec {
                partition: 1,
                ..spec(Some(vec![1]))
            }],
            false,
        );
        assert_eq!(code(&r), Some(ErrorCode::UnknownTopicOrPartition));

        c.alter_partition_reassignments(vec![spec(Some(vec![2, 3]))], false);
        let p = partition(&c);
        assert_eq!(p.replicas, vec![2, 3, 1]);
        assert_eq!(
            (p.adding_replicas.clone(), p.removing_replicas.clone()),
            (vec![3], vec![1])
        );
        let (r, _) = c.alter_partition_reassignments(vec![spec(None)], false);
        assert!(r[0].is_ok());
        let p = partition(&c);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader),
            (vec![2, 1], vec![1, 2], 1)
        );
        assert!(!p.is_reassigning());

        // Within the ISR: completes at once, and the leader moves.
        let (r, _) = c.alter_partition_reassignments(vec![spec(Some(vec![2]))], false);
        assert!(r[0].is_ok());
        let p = partition(&c);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader),
            (vec![2], vec![2], 2)
        );
    }

    #[test]
    fn preferred_and_unclean_elections() {
        let dir = tempfile::tempdir().unwrap();
        let (c, id) = setup(dir.path());
        let one = |c: &Controller, e| {
            let (r, _) = c.elect_leaders(
                e,
                Some(vec![TopicPartitions {
                    topic: "t".into(),
                    partitions: vec![0],
                }]),
            );
            r[0].partitions[0].1.clone().err().map(|e| e.code)
        };
        assert_eq!(
            one(&c, ElectionType::Preferred),
            Some(ErrorCode::ElectionNotNeeded)
        );
        assert_eq!(
            one(&c, ElectionType::Unclean),
            Some(ErrorCode::ElectionNotNeeded)
        );
        // Broker 1 stops: broker 2 leads, then 1 returns in sync.
        c.controlled_shutdown(1).unwrap();
        assert_eq!(partition(&c).leader, 2);
        c.broker_heartbeat(1).unwrap();
        assert_eq!(
            one(&c, ElectionType::Preferred),
            Some(ErrorCode::PreferredLeaderNotAvailable)
        );
        isr_change(&c, id, vec![1, 2]);
        let (all, _) = c.elect_leaders(ElectionType::Preferred, None);
        assert_eq!(all[0].partitions.len(), 1, "{all:?}");
        assert!(all[0].partitions[0].1.is_ok());
        assert_eq!(partition(&c).leader, 1);
        let (all, _) = c.elect_leaders(ElectionType::Preferred, None);
        assert!(
            all[0].partitions.is_empty(),
            "not-needed partitions are left out"
        );
        // Leader 1 alone in the ISR, then stopped; 2 live outside the ISR.
        isr_change(&c, id, vec![1]);
        c.controlled_shutdown(1).unwrap();
        assert_eq!(partition(&c).isr, vec![1]);
        assert_eq!(one(&c, ElectionType::Unclean), None);
        let p = partition(&c);
        assert_eq!((p.leader, p.isr), (2, vec![2]));
    }

    #[test]
    fn the_rebalance_moves_leaders_back_above_the_imbalance_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let (c, id) = setup(dir.path());
        c.controlled_shutdown(1).unwrap();
        c.broker_heartbeat(1).unwrap();
        isr_change(&c, id, vec![1, 2]);
        assert_eq!(partition(&c).leader, 2);
        // Broker 1 leads 0 of its 1 preferred partitions: 100% > 10%.
        assert!(c.balance_partition_leaders(10).unwrap().is_some());
        assert_eq!(partition(&c).leader, 1);
        assert_eq!(c.balance_partition_leaders(10).unwrap(), None);
    }
}
