//! The KIP-848 consumer protocol over an in-memory log.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::*;
use millrace_group_coordinator::{ErrorCode, GroupCoordinator};
use uuid::Uuid;

const OK: i16 = 0;
const FOO: Uuid = Uuid::from_u128(0xf00);
const BAR: Uuid = Uuid::from_u128(0xba7);

type Owned = BTreeMap<Uuid, BTreeSet<i32>>;

async fn kip848() -> (Arc<GroupCoordinator>, Arc<FakeLog>) {
    let (c, log) = coordinator().await;
    resolve(&c);
    (c, log)
}

fn resolve(c: &GroupCoordinator) {
    c.set_topic_resolver(Arc::new(|t: &str| match t {
        "foo" => Some((FOO, 6)),
        "bar" => Some((BAR, 3)),
        _ => None,
    }));
}

fn join(topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb("g")))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(5000)
        .with_subscribed_topic_names(Some(topics.iter().map(|t| TopicName(sb(t))).collect()))
        .with_topic_partitions(Some(vec![]))
}

fn hb(member: &str, epoch: i32, owned: &Owned) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb("g")))
        .with_member_id(sb(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(Some(
            owned
                .iter()
                .map(|(t, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(*t)
                        .with_partitions(ps.iter().copied().collect())
                })
                .collect(),
        ))
}

/// A client: applies returned assignments like the Java consumer does.
struct Member {
    id: String,
    epoch: i32,
    owned: Owned,
}

impl Member {
    fn apply(&mut self, r: &ConsumerGroupHeartbeatResponse) {
        assert_eq!(r.error_code, OK, "{:?}", r.error_message);
        self.id = r.member_id.as_ref().unwrap().to_string();
        self.epoch = r.member_epoch;
        if let Some(a) = &r.assignment {
            self.owned = a
                .topic_partitions
                .iter()
                .filter(|t| !t.partitions.is_empty())
                .map(|t| (t.topic_id, t.partitions.iter().copied().collect()))
                .collect();
        }
    }

    async fn beat(&mut self, c: &GroupCoordinator) -> ConsumerGroupHeartbeatResponse {
        let r = c
            .consumer_group_heartbeat(0, hb(&self.id, self.epoch, &self.owned))
            .await;
        encodes(&r, 0);
        self.apply(&r);
        r
    }

    fn count(&self) -> usize {
        self.owned.values().map(BTreeSet::len).sum()
    }
}

async fn new_member(c: &GroupCoordinator, req: ConsumerGroupHeartbeatRequest) -> Member {
    let r = c.consumer_group_heartbeat(0, req).await;
    let mut m = Member {
        id: String::new(),
        epoch: 0,
        owned: Owned::new(),
    };
    m.apply(&r);
    m
}

fn disjoint(members: &[&Member]) {
    let mut seen = BTreeSet::new();
    for m in members {
        for (t, ps) in &m.owned {
            for p in ps {
                assert!(seen.insert((*t, *p)), "partition {t}:{p} owned twice");
            }
        }
    }
}

async fn describe848(c: &GroupCoordinator) -> consumer_group_describe_response::DescribedGroup {
    let r = c
        .consumer_group_describe(
            0,
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(sb("g"))]),
        )
        .await;
    encodes(&r, 0);
    r.groups.into_iter().next().unwrap()
}

#[tokio::test(start_paused = true)]
async fn join_assign_revoke_then_assign_and_leave() {
    let (c, _) = kip848().await;
    let mut a = new_member(&c, join(&["foo"])).await;
    assert_eq!(a.id.len(), 22);
    assert_eq!(a.epoch, 1);
    assert_eq!(a.count(), 6);
    let d = describe848(&c).await;
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!((d.group_epoch, d.assignment_epoch), (1, 1));
    assert_eq!(d.assignor_name.as_str(), "uniform");
    assert_eq!(
        d.members[0].assignment.topic_partitions[0]
            .topic_name
            .as_str(),
        "foo"
    );

    // B joins: it must wait until A revoked what B gets.
    let mut b = new_member(&c, join(&["foo"])).await;
    assert_eq!(b.epoch, 2);
    assert_eq!(b.count(), 0);
    disjoint(&[&a, &b]);
    assert_eq!(describe848(&c).await.group_state.as_str(), "Reconciling");
    // A learns it must give up three partitions; its epoch stays until it did.
    let r = a.beat(&c).await;
    assert!(r.assignment.is_some());
    assert_eq!(a.epoch, 1);
    assert_eq!(a.count(), 3);
    // B still gets nothing while A has not confirmed.
    b.beat(&c).await;
    assert_eq!(b.count(), 0);
    // A confirms the revocation by reporting what it owns now.
    a.beat(&c).await;
    assert_eq!(a.epoch, 2);
    b.beat(&c).await;
    assert_eq!(b.count(), 3);
    disjoint(&[&a, &b]);
    assert_eq!(describe848(&c).await.group_state.as_str(), "Stable");
    // Steady heartbeats carry no assignment.
    assert!(a.beat(&c).await.assignment.is_none());

    // A leaves: B takes everything.
    let left = c.consumer_group_heartbeat(0, hb(&a.id, -1, &a.owned)).await;
    assert_eq!(left.error_code, OK);
    assert_eq!(left.member_epoch, -1);
    b.beat(&c).await;
    assert_eq!(b.count(), 6);
    assert_eq!(b.epoch, 3);
    assert_eq!(describe848(&c).await.members.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn heartbeat_errors() {
    let (c, _) = kip848().await;
    let mut a = new_member(&c, join(&["foo"])).await;
    let r = c.consumer_group_heartbeat(0, hb(&a.id, 5, &a.owned)).await;
    assert_eq!(r.error_code, ErrorCode::FencedMemberEpoch.code());
    let r = c
        .consumer_group_heartbeat(0, hb("nobody", 1, &a.owned))
        .await;
    assert_eq!(r.error_code, ErrorCode::UnknownMemberId.code());
    encodes(&r, 0);
    let r = c
        .consumer_group_heartbeat(0, join(&["foo"]).with_server_assignor(Some(sb("sticky"))))
        .await;
    assert_eq!(r.error_code, ErrorCode::UnsupportedAssignor.code());
    let r = c
        .consumer_group_heartbeat(0, join(&["foo"]).with_rebalance_timeout_ms(-1))
        .await;
    assert_eq!(r.error_code, ErrorCode::InvalidRequest.code());
    let r = c
        .consumer_group_heartbeat(
            0,
            join(&[])
                .with_subscribed_topic_names(None)
                .with_subscribed_topic_regex(Some(sb("f.*"))),
        )
        .await;
    assert_eq!(r.error_code, ErrorCode::InvalidRequest.code());
    let r = c.consumer_group_heartbeat(0, hb("", 1, &a.owned)).await;
    assert_eq!(r.error_code, ErrorCode::InvalidRequest.code());
    // A lost response: the previous epoch is accepted once with a subset of the assignment.
    let mut b = new_member(&c, join(&["foo"])).await;
    a.beat(&c).await; // revoking
    a.beat(&c).await; // epoch 2
    assert_eq!(a.epoch, 2);
    let r = c.consumer_group_heartbeat(0, hb(&a.id, 1, &a.owned)).await;
    assert_eq!(r.error_code, OK);
    assert_eq!(r.member_epoch, 2);
    b.beat(&c).await;
    // Classic APIs refuse the consumer group.
    let j = c
        .join_group(client("x"), 5, join_req("g", "", None, &["foo"]))
        .await;
    assert_eq!(j.error_code, ErrorCode::InconsistentGroupProtocol.code());
    let d = describe(&c, "g").await;
    assert_eq!(d.error_code, ErrorCode::GroupIdNotFound.code());
    let listed = c
        .list_groups(
            5,
            ListGroupsRequest::default().with_types_filter(vec![sb("consumer")]),
        )
        .await;
    assert_eq!(listed.groups.len(), 1);
    assert_eq!(listed.groups[0].protocol_type.as_str(), "consumer");
    let missing = c
        .consumer_group_describe(
            0,
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(sb("nope"))]),
        )
        .await;
    assert_eq!(
        missing.groups[0].error_code,
        ErrorCode::GroupIdNotFound.code()
    );
}

#[tokio::test(start_paused = true)]
async fn range_assignor_and_subscription_changes() {
    let (c, _) = kip848().await;
    let mut a = new_member(
        &c,
        join(&["foo", "bar"]).with_server_assignor(Some(sb("range"))),
    )
    .await;
    let mut b = new_member(
        &c,
        join(&["foo", "bar"]).with_server_assignor(Some(sb("range"))),
    )
    .await;
    for _ in 0..3 {
        a.beat(&c).await;
        b.beat(&c).await;
    }
    assert_eq!(describe848(&c).await.assignor_name.as_str(), "range");
    let (first, second) = if a.id < b.id { (&a, &b) } else { (&b, &a) };
    assert_eq!(first.owned[&FOO], [0, 1, 2].into());
    assert_eq!(second.owned[&FOO], [3, 4, 5].into());
    assert_eq!(first.owned[&BAR], [0, 1].into());
    assert_eq!(second.owned[&BAR], [2].into());
    // b drops bar from its subscription.
    let r = c
        .consumer_group_heartbeat(
            0,
            hb(&b.id, b.epoch, &b.owned)
                .with_subscribed_topic_names(Some(vec![TopicName(sb("foo"))])),
        )
        .await;
    b.apply(&r);
    for _ in 0..3 {
        a.beat(&c).await;
        b.beat(&c).await;
    }
    assert!(!b.owned.contains_key(&BAR));
    assert_eq!(a.owned[&BAR].len(), 3);
    disjoint(&[&a, &b]);
}

#[tokio::test(start_paused = true)]
async fn session_timeout_and_revocation_timeout_fence_members() {
    let (c, _) = kip848().await;
    let mut a = new_member(&c, join(&["foo"])).await;
    let mut b = new_member(&c, join(&["foo"])).await;
    // A never confirms its revocation: after its rebalance timeout (5 s) it is fenced.
    a.beat(&c).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(2000)).await;
        b.beat(&c).await;
    }
    let r = c
        .consumer_group_heartbeat(0, hb(&a.id, a.epoch, &a.owned))
        .await;
    assert_eq!(r.error_code, ErrorCode::UnknownMemberId.code());
    b.beat(&c).await;
    assert_eq!(b.count(), 6);
    // B stops heartbeating: gone after the 45 s session timeout.
    tokio::time::sleep(Duration::from_millis(45_001)).await;
    let d = describe848(&c).await;
    assert_eq!(d.group_state.as_str(), "Empty");
    assert!(d.members.is_empty());
}

#[tokio::test(start_paused = true)]
async fn static_member_leaves_and_returns_with_its_assignment() {
    let (c, _) = kip848().await;
    let mut a = new_member(&c, join(&["foo"]).with_instance_id(Some(sb("i1")))).await;
    let epoch = a.epoch;
    let owned = a.owned.clone();
    // Active instance: another process with the same instance id is refused.
    let r = c
        .consumer_group_heartbeat(0, join(&["foo"]).with_instance_id(Some(sb("i1"))))
        .await;
    assert_eq!(r.error_code, ErrorCode::UnreleasedInstanceId.code());
    let left = c
        .consumer_group_heartbeat(0, hb(&a.id, -2, &a.owned).with_instance_id(Some(sb("i1"))))
        .await;
    assert_eq!(left.error_code, OK);
    assert_eq!(left.member_epoch, -2);
    let back = c
        .consumer_group_heartbeat(0, join(&["foo"]).with_instance_id(Some(sb("i1"))))
        .await;
    assert_eq!(back.error_code, OK);
    assert_ne!(back.member_id.as_ref().unwrap().as_str(), a.id);
    assert_eq!(back.member_epoch, epoch);
    a.apply(&back);
    assert_eq!(a.owned, owned);
    let d = describe848(&c).await;
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.group_epoch, 1, "no rebalance");
}

#[tokio::test(start_paused = true)]
async fn offsets_use_member_epochs() {
    use kafka_protocol::messages::offset_commit_request::*;
    use kafka_protocol::messages::offset_fetch_request::*;
    let (c, _) = kip848().await;
    let a = new_member(&c, join(&["foo"])).await;
    let commit = |member: &str, epoch: i32| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(sb("g")))
            .with_member_id(sb(member))
            .with_generation_id_or_member_epoch(epoch)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(sb("foo")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(42)])])
    };
    let code = |r: OffsetCommitResponse| r.topics[0].partitions[0].error_code;
    assert_eq!(code(c.offset_commit(9, commit(&a.id, a.epoch)).await), OK);
    assert_eq!(
        code(c.offset_commit(9, commit(&a.id, a.epoch + 1)).await),
        ErrorCode::StaleMemberEpoch.code()
    );
    assert_eq!(
        code(c.offset_commit(9, commit("x", 1)).await),
        ErrorCode::UnknownMemberId.code()
    );
    let fetch = |epoch: i32| {
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(sb("g")))
            .with_member_id(Some(sb(&a.id)))
            .with_member_epoch(epoch)
            .with_topics(None)])
    };
    let f = c.offset_fetch(9, fetch(a.epoch)).await;
    encodes(&f, 9);
    assert_eq!(f.groups[0].topics[0].partitions[0].committed_offset, 42);
    let f = c.offset_fetch(9, fetch(a.epoch + 3)).await;
    assert_eq!(f.groups[0].error_code, ErrorCode::StaleMemberEpoch.code());
    // Offsets of a subscribed topic cannot be deleted.
    let del = c
        .offset_delete(
            0,
            OffsetDeleteRequest::default()
                .with_group_id(GroupId(sb("g")))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(sb("foo")))
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(0),
                        ]),
                ]),
        )
        .await;
    assert_eq!(
        del.topics[0].partitions[0].error_code,
        ErrorCode::GroupSubscribedToTopic.code()
    );
}

#[tokio::test(start_paused = true)]
async fn reload_restores_consumer_groups() {
    let (c, log) = kip848().await;
    let mut a = new_member(&c, join(&["foo"])).await;
    let mut b = new_member(&c, join(&["foo", "bar"])).await;
    for _ in 0..3 {
        a.beat(&c).await;
        b.beat(&c).await;
    }
    let before = describe848(&c).await;
    c.shutdown();
    let c2 = coordinator_on(log, config()).await;
    resolve(&c2);
    let after = describe848(&c2).await;
    assert_eq!(after.group_state, before.group_state);
    assert_eq!(after.group_epoch, before.group_epoch);
    assert_eq!(after.assignment_epoch, before.assignment_epoch);
    assert_eq!(after.members, before.members);
    // Members carry on with their epochs.
    assert!(a.beat(&c2).await.error_code == OK);
    assert!(b.beat(&c2).await.error_code == OK);
    disjoint(&[&a, &b]);
    // DeleteGroups refuses the non-empty group, accepts it once empty.
    let r = c2
        .delete_groups(
            2,
            DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb("g"))]),
        )
        .await;
    assert_eq!(r.results[0].error_code, ErrorCode::NonEmptyGroup.code());
    for m in [&a, &b] {
        c2.consumer_group_heartbeat(0, hb(&m.id, -1, &m.owned))
            .await;
    }
    let r = c2
        .delete_groups(
            2,
            DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb("g"))]),
        )
        .await;
    assert_eq!(r.results[0].error_code, OK);
    assert_eq!(
        describe848(&c2).await.error_code,
        ErrorCode::GroupIdNotFound.code()
    );
}
