//! Offsets: commit, fetch, delete, expiry, transactions and reloading.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use kafka_protocol::messages::offset_commit_request::*;
use kafka_protocol::messages::offset_delete_request::*;
use kafka_protocol::messages::offset_fetch_request::*;
use kafka_protocol::messages::txn_offset_commit_request::*;
use kafka_protocol::messages::*;
use millrace_group_coordinator::records::RecordKey;
use millrace_group_coordinator::{ErrorCode, GroupCoordinatorConfig};
use millrace_protocol::control::end_txn_marker_batch;

const OK: i16 = 0;

fn commit(
    group: &str,
    generation: i32,
    member: &str,
    parts: &[(&str, i32, i64, Option<&str>)],
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (t, p, o, m) in parts {
        let part = OffsetCommitRequestPartition::default()
            .with_partition_index(*p)
            .with_committed_offset(*o)
            .with_committed_leader_epoch(7)
            .with_committed_metadata(m.map(sb));
        match topics.iter_mut().find(|x| x.name.as_str() == *t) {
            Some(x) => x.partitions.push(part),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(sb(t)))
                    .with_partitions(vec![part]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(sb(member))
        .with_retention_time_ms(-1)
        .with_topics(topics)
}

fn fetch_v7(
    group: &str,
    topics: Option<&[(&str, &[i32])]>,
    require_stable: bool,
) -> OffsetFetchRequest {
    OffsetFetchRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_require_stable(require_stable)
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(sb(t)))
                        .with_partition_indexes(ps.to_vec())
                })
                .collect()
        }))
}

fn txn_commit(group: &str, pid: i64, parts: &[(&str, i32, i64)]) -> TxnOffsetCommitRequest {
    TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(sb("tx")))
        .with_group_id(GroupId(sb(group)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(0)
        .with_generation_id(-1)
        .with_topics(
            parts
                .iter()
                .map(|(t, p, o)| {
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(sb(t)))
                        .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                            .with_partition_index(*p)
                            .with_committed_offset(*o)
                            .with_committed_leader_epoch(-1)])
                })
                .collect(),
        )
}

#[tokio::test(start_paused = true)]
async fn commit_and_fetch_round_trip() {
    let (c, log) = coordinator().await;
    let r = c
        .offset_commit(
            8,
            commit(
                "g",
                -1,
                "",
                &[
                    ("t", 0, 10, Some("meta")),
                    ("t", 1, 20, None),
                    ("u", 0, 5, Some("")),
                ],
            ),
        )
        .await;
    encodes(&r, 8);
    assert!(r
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .all(|p| p.error_code == OK));
    // A simple commit creates an Empty group without a protocol.
    let d = describe(&c, "g").await;
    assert_eq!(d.group_state.as_str(), "Empty");
    assert_eq!(d.protocol_type.as_str(), "");

    let f = c
        .offset_fetch(7, fetch_v7("g", Some(&[("t", &[0, 1, 2])]), false))
        .await;
    encodes(&f, 7);
    assert_eq!(f.error_code, OK);
    let ps = &f.topics[0].partitions;
    assert_eq!(
        (ps[0].committed_offset, ps[0].committed_leader_epoch),
        (10, 7)
    );
    assert_eq!(ps[0].metadata.as_ref().unwrap().as_str(), "meta");
    assert_eq!(ps[1].committed_offset, 20);
    assert_eq!(ps[1].metadata.as_ref().unwrap().as_str(), "");
    assert_eq!(
        (ps[2].committed_offset, ps[2].committed_leader_epoch),
        (-1, -1)
    );
    // topics = null: every committed partition.
    let all = c.offset_fetch(7, fetch_v7("g", None, false)).await;
    let n: usize = all.topics.iter().map(|t| t.partitions.len()).sum();
    assert_eq!(n, 3);
    // Unknown group: -1.
    let none = c
        .offset_fetch(7, fetch_v7("other", Some(&[("t", &[0])]), false))
        .await;
    assert_eq!(none.topics[0].partitions[0].committed_offset, -1);
    // v8 batched groups.
    let v8 = c
        .offset_fetch(
            8,
            OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(sb("g")))
                    .with_topics(None),
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(sb("other")))
                    .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                        .with_name(TopicName(sb("t")))
                        .with_partition_indexes(vec![3])])),
            ]),
        )
        .await;
    encodes(&v8, 8);
    assert_eq!(v8.groups.len(), 2);
    assert_eq!(v8.groups[0].topics.len(), 2);
    assert_eq!(v8.groups[1].topics[0].partitions[0].committed_offset, -1);
    // Old versions encode too (no leader epoch before v5).
    let v1 = c
        .offset_fetch(1, fetch_v7("g", Some(&[("t", &[0])]), false))
        .await;
    encodes(&v1, 1);
    assert_eq!(v1.topics[0].partitions[0].committed_leader_epoch, -1);

    // Commit timestamp and value version 3 in the log.
    let recs = log.records(0);
    let (_, v) = recs.iter().find(|(k, _)| matches!(k, RecordKey::OffsetCommit { partition: 0, topic, .. } if topic == "t")).unwrap();
    let v = v.as_ref().unwrap();
    assert_eq!(&v[..2], &[0, 3]);
    let decoded = millrace_group_coordinator::records::OffsetCommitValue::decode(v).unwrap();
    assert!(decoded.commit_timestamp > 1_600_000_000_000);
}

#[tokio::test(start_paused = true)]
async fn metadata_too_large_and_commit_errors() {
    let (c, _) = coordinator().await;
    let big = "x".repeat(4097);
    let r = c
        .offset_commit(
            8,
            commit("g", -1, "", &[("t", 0, 1, Some(&big)), ("t", 1, 2, None)]),
        )
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ErrorCode::OffsetMetadataTooLarge.code()
    );
    assert_eq!(r.topics[0].partitions[1].error_code, OK);
    // A member commit to an unknown group: ILLEGAL_GENERATION.
    let r = c
        .offset_commit(8, commit("nogroup", 3, "m", &[("t", 0, 1, None)]))
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ErrorCode::IllegalGeneration.code()
    );
    // The log refuses: COORDINATOR_NOT_AVAILABLE and nothing is visible.
    let log = Arc::new(FakeLog::default());
    let c2 = coordinator_on(log.clone(), config()).await;
    log.fail_appends
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = c2
        .offset_commit(8, commit("g", -1, "", &[("t", 0, 1, None)]))
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ErrorCode::CoordinatorNotAvailable.code()
    );
    let f = c2
        .offset_fetch(7, fetch_v7("g", Some(&[("t", &[0])]), false))
        .await;
    assert_eq!(f.topics[0].partitions[0].committed_offset, -1);
    // Not the coordinator.
    c2.on_resigned(0, 1);
    let r = c2
        .offset_commit(8, commit("g", -1, "", &[("t", 0, 1, None)]))
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ErrorCode::NotCoordinator.code()
    );
    let f = c2
        .offset_fetch(7, fetch_v7("g", Some(&[("t", &[0])]), false))
        .await;
    assert_eq!(f.error_code, ErrorCode::NotCoordinator.code());
}

#[tokio::test(start_paused = true)]
async fn offset_delete_refuses_subscribed_topics() {
    let (c, _) = coordinator().await;
    let joined = join_new(&c, "g", "a").await;
    let id = joined.member_id.to_string();
    assert_eq!(
        c.sync_group(3, sync_req("g", 1, &id, &[])).await.error_code,
        OK
    );
    let r = c
        .offset_commit(
            8,
            commit("g", 1, &id, &[("t", 0, 1, None), ("old", 0, 9, None)]),
        )
        .await;
    assert!(r
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .all(|p| p.error_code == OK));
    let del = |topics: &[&str]| {
        OffsetDeleteRequest::default()
            .with_group_id(GroupId(sb("g")))
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(TopicName(sb(t)))
                            .with_partitions(vec![
                                OffsetDeleteRequestPartition::default().with_partition_index(0)
                            ])
                    })
                    .collect(),
            )
    };
    let r = c.offset_delete(0, del(&["t", "old"])).await;
    encodes(&r, 0);
    assert_eq!(r.error_code, OK);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ErrorCode::GroupSubscribedToTopic.code()
    );
    assert_eq!(r.topics[1].partitions[0].error_code, OK);
    let offsets = c.committed_offsets("g").unwrap();
    assert!(offsets.contains_key("t") && !offsets.contains_key("old"));
    let r = c
        .offset_delete(
            0,
            OffsetDeleteRequest::default().with_group_id(GroupId(sb("ghost"))),
        )
        .await;
    assert_eq!(r.error_code, ErrorCode::GroupIdNotFound.code());
}

#[tokio::test(start_paused = true)]
async fn offsets_expire_after_retention_once_the_group_is_empty() {
    let log = Arc::new(FakeLog::default());
    let cfg = GroupCoordinatorConfig {
        offsets_retention_ms: 60_000,
        offsets_retention_check_interval_ms: 1_000,
        ..config()
    };
    let c = coordinator_on(log.clone(), cfg).await;
    // A standalone commit expires by commit time.
    c.offset_commit(8, commit("simple", -1, "", &[("t", 0, 1, None)]))
        .await;
    // A consumer group keeps its offsets while Stable and subscribed.
    let joined = join_new(&c, "g", "a").await;
    let id = joined.member_id.to_string();
    c.sync_group(3, sync_req("g", 1, &id, &[])).await;
    c.offset_commit(8, commit("g", 1, &id, &[("t", 0, 5, None)]))
        .await;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(3000)).await;
        assert_eq!(heartbeat(&c, "g", 1, &id).await, OK);
    }
    // 93 s later: the simple group's offset and group are gone, g's stays.
    assert!(c.committed_offsets("simple").unwrap().is_empty());
    assert_eq!(describe(&c, "simple").await.group_state.as_str(), "Dead");
    assert_eq!(c.committed_offsets("g").unwrap()["t"][&0], 5);
    // The member leaves; retention counts from then (not from the old commit).
    c.leave_group(
        1,
        LeaveGroupRequest::default()
            .with_group_id(GroupId(sb("g")))
            .with_member_id(sb(&id)),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(describe(&c, "g").await.group_state.as_str(), "Empty");
    tokio::time::sleep(Duration::from_millis(50_000)).await;
    assert_eq!(c.committed_offsets("g").unwrap()["t"][&0], 5);
    tokio::time::sleep(Duration::from_millis(12_000)).await;
    assert!(c.committed_offsets("g").unwrap().is_empty());
    let recs = log.records(0);
    assert!(recs.iter().any(
        |(k, v)| matches!(k, RecordKey::OffsetCommit { group, .. } if group == "g") && v.is_none()
    ));
}

#[tokio::test(start_paused = true)]
async fn transactional_offsets_wait_for_the_marker() {
    let (c, log) = coordinator().await;
    c.offset_commit(8, commit("g", -1, "", &[("t", 0, 1, None)]))
        .await;
    let r = c
        .txn_offset_commit(3, txn_commit("g", 42, &[("t", 0, 100)]))
        .await;
    encodes(&r, 3);
    assert_eq!(r.topics[0].partitions[0].error_code, OK);
    // Pending: plain fetch sees the old offset, require_stable is refused.
    let f = c
        .offset_fetch(7, fetch_v7("g", Some(&[("t", &[0])]), false))
        .await;
    assert_eq!(f.topics[0].partitions[0].committed_offset, 1);
    let f = c
        .offset_fetch(7, fetch_v7("g", Some(&[("t", &[0])]), true))
        .await;
    assert_eq!(
        f.topics[0].partitions[0].error_code,
        ErrorCode::UnstableOffsetCommit.code()
    );
    // The batch in the log is transactional with the producer id.
    let batches = log.batches.lock().get(&0).cloned().unwrap();
    let h = millrace_protocol::records::BatchIter::new(&batches.last().unwrap().1)
        .next()
        .unwrap()
        .unwrap()
        .header;
    assert!(h.is_transactional() && h.producer_id == 42 && h.base_sequence == -1);
    // Commit marker.
    log.append_raw(0, end_txn_marker_batch(42, 0, true, 0, 0).unwrap());
    c.complete_transaction(0, 42, true);
    let f = c
        .offset_fetch(7, fetch_v7("g", Some(&[("t", &[0])]), true))
        .await;
    assert_eq!(f.topics[0].partitions[0].error_code, OK);
    assert_eq!(f.topics[0].partitions[0].committed_offset, 100);
    // Abort drops.
    c.txn_offset_commit(3, txn_commit("g", 43, &[("t", 0, 500)]))
        .await;
    log.append_raw(0, end_txn_marker_batch(43, 0, false, 0, 0).unwrap());
    c.complete_transaction(0, 43, false);
    assert_eq!(c.committed_offsets("g").unwrap()["t"][&0], 100);
}

#[tokio::test(start_paused = true)]
async fn reload_reproduces_state() {
    let (c, log) = coordinator().await;
    // Offsets, a tombstoned group, a stable classic group, txn commit and abort.
    c.offset_commit(
        8,
        commit(
            "simple",
            -1,
            "",
            &[("t", 0, 1, Some("m")), ("t", 1, 2, None)],
        ),
    )
    .await;
    c.offset_commit(8, commit("simple", -1, "", &[("t", 0, 3, Some("m2"))]))
        .await;
    c.offset_commit(8, commit("gone", -1, "", &[("t", 0, 1, None)]))
        .await;
    c.delete_groups(
        2,
        DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb("gone"))]),
    )
    .await;
    let joined = join_new(&c, "g", "a").await;
    let id = joined.member_id.to_string();
    c.sync_group(3, sync_req("g", 1, &id, &[(&id, b"ASSIGN")]))
        .await;
    c.txn_offset_commit(3, txn_commit("simple", 7, &[("t", 1, 70)]))
        .await;
    log.append_raw(0, end_txn_marker_batch(7, 0, true, 0, 0).unwrap());
    c.complete_transaction(0, 7, true);
    c.txn_offset_commit(3, txn_commit("simple", 8, &[("t", 0, 80)]))
        .await;
    log.append_raw(0, end_txn_marker_batch(8, 0, false, 0, 0).unwrap());
    c.complete_transaction(0, 8, false);
    c.txn_offset_commit(3, txn_commit("simple", 9, &[("u", 0, 90)]))
        .await; // still open
    c.shutdown();

    let c2 = coordinator_on(log.clone(), config()).await;
    let simple = c2.committed_offsets("simple").unwrap();
    assert_eq!(simple["t"][&0], 3);
    assert_eq!(simple["t"][&1], 70);
    assert!(!simple.contains_key("u"));
    let f = c2
        .offset_fetch(
            7,
            fetch_v7("simple", Some(&[("t", &[0]), ("u", &[0])]), true),
        )
        .await;
    assert_eq!(
        f.topics[0].partitions[0]
            .metadata
            .as_ref()
            .unwrap()
            .as_str(),
        "m2"
    );
    assert_eq!(
        f.topics[1].partitions[0].error_code,
        ErrorCode::UnstableOffsetCommit.code()
    );
    assert_eq!(describe(&c2, "gone").await.group_state.as_str(), "Dead");
    let d = describe(&c2, "g").await;
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.members[0].member_id.as_str(), id);
    assert_eq!(&d.members[0].member_assignment[..], b"ASSIGN");
    // The loaded member can keep heartbeating in generation 1.
    assert_eq!(heartbeat(&c2, "g", 1, &id).await, OK);
    // The open transaction commits after the reload.
    c2.complete_transaction(0, 9, true);
    assert_eq!(c2.committed_offsets("simple").unwrap()["u"][&0], 90);
    // A loaded member that stops heartbeating expires.
    tokio::time::sleep(Duration::from_millis(10_001 + 30_000)).await;
    assert_eq!(describe(&c2, "g").await.group_state.as_str(), "Empty");
}

#[tokio::test(start_paused = true)]
async fn deleted_topics_lose_their_offsets() {
    let (c, log) = coordinator().await;
    c.offset_commit(
        8,
        commit("g", -1, "", &[("t", 0, 1, None), ("keep", 0, 2, None)]),
    )
    .await;
    c.offset_commit(8, commit("only", -1, "", &[("t", 0, 1, None)]))
        .await;
    c.on_topics_deleted(vec!["t".to_string()]).await;
    let g = c.committed_offsets("g").unwrap();
    assert!(!g.contains_key("t") && g.contains_key("keep"));
    assert_eq!(describe(&c, "only").await.group_state.as_str(), "Dead");
    let tombstones = log
        .records(0)
        .iter()
        .filter(|(k, v)| {
            matches!(k, RecordKey::OffsetCommit { topic, .. } if topic == "t") && v.is_none()
        })
        .count();
    assert_eq!(tombstones, 2);
}

#[tokio::test(start_paused = true)]
async fn list_groups_filters() {
    let (c, _) = coordinator().await;
    c.offset_commit(8, commit("simple", -1, "", &[("t", 0, 1, None)]))
        .await;
    let joined = join_new(&c, "g", "a").await;
    c.sync_group(3, sync_req("g", 1, &joined.member_id, &[]))
        .await;
    let all = c.list_groups(5, ListGroupsRequest::default()).await;
    encodes(&all, 5);
    assert_eq!(all.groups.len(), 2);
    assert!(all
        .groups
        .iter()
        .all(|g| g.group_type.as_str() == "classic"));
    let stable = c
        .list_groups(
            4,
            ListGroupsRequest::default().with_states_filter(vec![sb("stable")]),
        )
        .await;
    assert_eq!(stable.groups.len(), 1);
    assert_eq!(stable.groups[0].group_id.as_str(), "g");
    let consumer = c
        .list_groups(
            5,
            ListGroupsRequest::default().with_types_filter(vec![sb("consumer")]),
        )
        .await;
    assert!(consumer.groups.is_empty());
    let v0 = c.list_groups(0, ListGroupsRequest::default()).await;
    encodes(&v0, 0);
}
