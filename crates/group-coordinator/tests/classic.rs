//! The classic group protocol over an in-memory log.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::*;
use millrace_group_coordinator::records::RecordKey;
use millrace_group_coordinator::ErrorCode;
use tokio::time::Instant;

const OK: i16 = 0;

#[tokio::test(start_paused = true)]
async fn single_member_is_stable_after_the_initial_delay() {
    let (c, log) = coordinator().await;
    let start = Instant::now();
    let joined = join_new(&c, "g", "client").await;
    let waited = start.elapsed();
    assert_eq!(joined.error_code, OK);
    assert!(waited >= Duration::from_millis(3000), "{waited:?}");
    assert!(waited < Duration::from_millis(3100), "{waited:?}");
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, joined.member_id);
    assert_eq!(joined.members.len(), 1);
    assert_eq!(
        joined
            .protocol_name
            .as_ref()
            .map(|s| s.to_string())
            .as_deref(),
        Some("range")
    );
    encodes(&joined, 5);
    assert_eq!(
        describe(&c, "g").await.group_state.as_str(),
        "CompletingRebalance"
    );

    let synced = c
        .sync_group(
            3,
            sync_req("g", 1, &joined.member_id, &[(&joined.member_id, b"A")]),
        )
        .await;
    assert_eq!(synced.error_code, OK);
    assert_eq!(&synced.assignment[..], b"A");
    encodes(&synced, 3);
    assert_eq!(heartbeat(&c, "g", 1, &joined.member_id).await, OK);

    let d = describe(&c, "g").await;
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.protocol_type.as_str(), "consumer");
    assert_eq!(d.protocol_data.as_str(), "range");
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].client_id.as_str(), "client");
    assert_eq!(d.members[0].client_host.as_str(), "/127.0.0.1");
    assert_eq!(&d.members[0].member_assignment[..], b"A");

    // The assignment was persisted as a group metadata record.
    let recs = log.records(0);
    assert!(recs.iter().any(
        |(k, v)| matches!(k, RecordKey::GroupMetadata { group } if group == "g") && v.is_some()
    ));

    let listed = c.list_groups(4, ListGroupsRequest::default()).await;
    assert_eq!(listed.groups.len(), 1);
    assert_eq!(listed.groups[0].group_state.as_str(), "Stable");
    encodes(&listed, 4);
}

#[tokio::test(start_paused = true)]
async fn initial_delay_extends_while_members_arrive() {
    let (c, _) = coordinator().await;
    let start = Instant::now();
    let a = spawn_join(&c, "a", 3, join_req("g", "", None, &["t"]));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let b = spawn_join(&c, "b", 3, join_req("g", "", None, &["t"]));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    // 3 s, then extended by 3 s because b arrived during the first delay.
    assert_eq!(start.elapsed().as_millis() / 100, 60);
    assert_eq!(a.generation_id, 1);
    assert_eq!(b.generation_id, 1);
    assert_eq!(a.leader, b.leader);
}

#[tokio::test(start_paused = true)]
async fn three_members_join_and_leave_with_generation_changes() {
    let (c, _) = coordinator().await;
    let joins: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|id| spawn_join(&c, id, 3, join_req("g", "", None, &["t"])))
        .collect();
    let mut members = Vec::new();
    for j in joins {
        members.push(j.await.unwrap());
    }
    assert!(members
        .iter()
        .all(|m| m.error_code == OK && m.generation_id == 1));
    let leader = members.iter().find(|m| m.member_id == m.leader).unwrap();
    assert_eq!(leader.members.len(), 3);
    assert!(members
        .iter()
        .filter(|m| m.member_id != m.leader)
        .all(|m| m.members.is_empty()));

    // Followers wait for the leader's assignment.
    let followers: Vec<_> = members
        .iter()
        .filter(|m| m.member_id != m.leader)
        .map(|m| {
            let c = c.clone();
            let id = m.member_id.to_string();
            tokio::spawn(async move { c.sync_group(3, sync_req("g", 1, &id, &[])).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let assignments: Vec<(&str, &[u8])> = members
        .iter()
        .map(|m| (m.member_id.as_str(), m.member_id.as_bytes()))
        .collect();
    let lsync = c
        .sync_group(3, sync_req("g", 1, &leader.member_id, &assignments))
        .await;
    assert_eq!(lsync.error_code, OK);
    for f in followers {
        let r = f.await.unwrap();
        assert_eq!(r.error_code, OK);
        assert!(!r.assignment.is_empty());
    }
    assert_eq!(describe(&c, "g").await.group_state.as_str(), "Stable");

    // One follower leaves (v3 batched): the others must rejoin.
    let gone = members
        .iter()
        .find(|m| m.member_id != m.leader)
        .unwrap()
        .member_id
        .to_string();
    let left = c
        .leave_group(
            3,
            LeaveGroupRequest::default()
                .with_group_id(GroupId(sb("g")))
                .with_members(vec![MemberIdentity::default().with_member_id(sb(&gone))]),
        )
        .await;
    assert_eq!(left.error_code, OK);
    assert_eq!(left.members[0].error_code, OK);
    encodes(&left, 3);
    let stay: Vec<String> = members
        .iter()
        .map(|m| m.member_id.to_string())
        .filter(|m| *m != gone)
        .collect();
    for m in &stay {
        assert_eq!(
            heartbeat(&c, "g", 1, m).await,
            ErrorCode::RebalanceInProgress.code()
        );
    }
    assert_eq!(
        heartbeat(&c, "g", 1, &gone).await,
        ErrorCode::UnknownMemberId.code()
    );
    let start = Instant::now();
    let rejoins: Vec<_> = stay
        .iter()
        .map(|m| spawn_join(&c, "x", 3, join_req("g", m, None, &["t"])))
        .collect();
    for r in rejoins {
        let r = r.await.unwrap();
        assert_eq!(r.error_code, OK);
        assert_eq!(r.generation_id, 2);
    }
    // The rebalance completes as soon as every member rejoined.
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(describe(&c, "g").await.members.len(), 2);

    // A v0 leave of an unknown member.
    let l = c
        .leave_group(
            0,
            LeaveGroupRequest::default()
                .with_group_id(GroupId(sb("g")))
                .with_member_id(sb("nobody")),
        )
        .await;
    assert_eq!(l.error_code, ErrorCode::UnknownMemberId.code());
    encodes(&l, 0);
}

#[tokio::test(start_paused = true)]
async fn member_id_required_and_pending_member_expiry() {
    let (c, _) = coordinator().await;
    let first = c
        .join_group(client("cl"), 4, join_req("g", "", None, &["t"]))
        .await;
    assert_eq!(first.error_code, ErrorCode::MemberIdRequired.code());
    assert_eq!(first.generation_id, -1);
    encodes(&first, 4);
    // v3 clients get no such round trip.
    let (c3, _) = coordinator().await;
    let old = c3
        .join_group(client("old"), 3, join_req("g", "", None, &["t"]))
        .await;
    assert_eq!(old.error_code, OK);
    // The pending member never comes back: it expires after its session timeout.
    tokio::time::sleep(Duration::from_millis(10_001)).await;
    let late = c
        .join_group(
            client("cl"),
            4,
            join_req("g", &first.member_id, None, &["t"]),
        )
        .await;
    assert_eq!(late.error_code, ErrorCode::UnknownMemberId.code());
}

#[tokio::test(start_paused = true)]
async fn join_validation_errors() {
    let (c, _) = coordinator().await;
    let bad = c
        .join_group(
            client("x"),
            5,
            join_req("g", "", None, &["t"]).with_session_timeout_ms(1000),
        )
        .await;
    assert_eq!(bad.error_code, ErrorCode::InvalidSessionTimeout.code());
    let empty = c
        .join_group(client("x"), 5, join_req("", "", None, &["t"]))
        .await;
    assert_eq!(empty.error_code, ErrorCode::InvalidGroupId.code());
    let unknown = c
        .join_group(client("x"), 5, join_req("g", "ghost", None, &["t"]))
        .await;
    assert_eq!(unknown.error_code, ErrorCode::UnknownMemberId.code());
    // A failed join does not leave a group behind.
    assert!(c
        .list_groups(4, ListGroupsRequest::default())
        .await
        .groups
        .is_empty());

    let a = join_new(&c, "g", "a").await;
    assert_eq!(a.error_code, OK);
    let mut other = join_req("g", "", None, &["t"]);
    other.protocol_type = sb("connect");
    let r = c.join_group(client("b"), 3, other).await;
    assert_eq!(r.error_code, ErrorCode::InconsistentGroupProtocol.code());
    let mut other = join_req("g", "", None, &["t"]);
    other.protocols[0].name = sb("roundrobin");
    let r = c.join_group(client("b"), 3, other).await;
    assert_eq!(r.error_code, ErrorCode::InconsistentGroupProtocol.code());
}

#[tokio::test(start_paused = true)]
async fn group_max_size() {
    let log = std::sync::Arc::new(FakeLog::default());
    let c = coordinator_on(
        log,
        millrace_group_coordinator::GroupCoordinatorConfig {
            group_max_size: 1,
            ..config()
        },
    )
    .await;
    let a = join_new(&c, "g", "a").await;
    assert_eq!(a.error_code, OK);
    let b = c
        .join_group(client("b"), 3, join_req("g", "", None, &["t"]))
        .await;
    assert_eq!(b.error_code, ErrorCode::GroupMaxSizeReached.code());
}

#[tokio::test(start_paused = true)]
async fn protocol_is_chosen_by_vote() {
    let (c, _) = coordinator().await;
    let proto = |names: &[&str]| {
        let mut r = join_req("g", "", None, &["t"]);
        r.protocols = names
            .iter()
            .map(|n| {
                kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(sb(n))
            })
            .collect();
        r
    };
    let a = spawn_join(&c, "a", 3, proto(&["range", "roundrobin"]));
    let b = spawn_join(&c, "b", 3, proto(&["roundrobin", "range"]));
    let d = spawn_join(&c, "d", 3, proto(&["roundrobin", "range"]));
    for j in [a, b, d] {
        let r = j.await.unwrap();
        assert_eq!(r.protocol_name.unwrap().as_str(), "roundrobin");
    }
}

#[tokio::test(start_paused = true)]
async fn static_member_rejoins_without_rebalance_and_old_id_is_fenced() {
    let (c, _) = coordinator().await;
    let first = c
        .join_group(client("s"), 5, join_req("g", "", Some("inst-1"), &["t"]))
        .await;
    assert_eq!(
        first.error_code, OK,
        "static members skip MEMBER_ID_REQUIRED"
    );
    let old_id = first.member_id.to_string();
    let s = c
        .sync_group(3, sync_req("g", 1, &old_id, &[(&old_id, b"P0")]))
        .await;
    assert_eq!(s.error_code, OK);

    // Restart: same instance id, no member id.
    let again = c
        .join_group(client("s"), 5, join_req("g", "", Some("inst-1"), &["t"]))
        .await;
    assert_eq!(again.error_code, OK);
    assert_ne!(again.member_id.as_str(), old_id);
    assert_eq!(again.generation_id, 1, "no rebalance");
    // v5 (pre KIP-814): the old leader id is returned so the client does not reassign.
    assert_eq!(again.leader.as_str(), old_id);
    assert!(again.members.is_empty());
    assert_eq!(describe(&c, "g").await.group_state.as_str(), "Stable");
    let s2 = c
        .sync_group(3, sync_req("g", 1, &again.member_id, &[]))
        .await;
    assert_eq!(s2.error_code, OK);
    assert_eq!(
        &s2.assignment[..],
        b"P0",
        "the current assignment comes back"
    );

    // The old member id is fenced.
    let hb = c
        .heartbeat(
            3,
            HeartbeatRequest::default()
                .with_group_id(GroupId(sb("g")))
                .with_generation_id(1)
                .with_member_id(sb(&old_id))
                .with_group_instance_id(Some(sb("inst-1"))),
        )
        .await;
    assert_eq!(hb.error_code, ErrorCode::FencedInstanceId.code());
    let j = c
        .join_group(
            client("s"),
            5,
            join_req("g", &old_id, Some("inst-1"), &["t"]),
        )
        .await;
    assert_eq!(j.error_code, ErrorCode::FencedInstanceId.code());

    // v9 leader rejoin: skip_assignment with the member list.
    let v9 = c
        .join_group(client("s"), 9, join_req("g", "", Some("inst-1"), &["t"]))
        .await;
    assert_eq!(v9.error_code, OK);
    assert!(v9.skip_assignment);
    assert_eq!(v9.leader, v9.member_id);
    assert_eq!(v9.members.len(), 1);
    encodes(&v9, 9);

    // Static leave by instance id.
    let left = c
        .leave_group(
            4,
            LeaveGroupRequest::default()
                .with_group_id(GroupId(sb("g")))
                .with_members(vec![MemberIdentity::default()
                    .with_member_id(sb(""))
                    .with_group_instance_id(Some(sb("inst-1")))]),
        )
        .await;
    assert_eq!(left.members[0].error_code, OK);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(describe(&c, "g").await.members.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn session_expiry_removes_members_and_rebalances() {
    let (c, _) = coordinator().await;
    let a = spawn_join(&c, "a", 3, join_req("g", "", None, &["t"]));
    let b = spawn_join(&c, "b", 3, join_req("g", "", None, &["t"]));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let leader = if a.member_id == a.leader { &a } else { &b };
    let follower = if a.member_id == a.leader { &b } else { &a };
    let fs = {
        let c = c.clone();
        let id = follower.member_id.to_string();
        tokio::spawn(async move { c.sync_group(3, sync_req("g", 1, &id, &[])).await })
    };
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        c.sync_group(3, sync_req("g", 1, &leader.member_id, &[]))
            .await
            .error_code,
        OK
    );
    assert_eq!(fs.await.unwrap().error_code, OK);
    // Only the leader heartbeats; the follower's 10 s session runs out.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(3000)).await;
        let e = heartbeat(&c, "g", 1, &leader.member_id).await;
        if e != OK {
            assert_eq!(e, ErrorCode::RebalanceInProgress.code());
            break;
        }
    }
    assert_eq!(
        describe(&c, "g").await.group_state.as_str(),
        "PreparingRebalance"
    );
    let r = c
        .join_group(
            client("a"),
            3,
            join_req("g", &leader.member_id, None, &["t"]),
        )
        .await;
    assert_eq!(r.generation_id, 2);
    assert_eq!(r.members.len(), 1);
    // The last member expires too: the group becomes Empty.
    tokio::time::sleep(Duration::from_millis(40_000)).await;
    assert_eq!(describe(&c, "g").await.group_state.as_str(), "Empty");
}

#[tokio::test(start_paused = true)]
async fn heartbeat_and_sync_errors_by_state() {
    let (c, _) = coordinator().await;
    assert_eq!(
        heartbeat(&c, "nope", 1, "m").await,
        ErrorCode::UnknownMemberId.code()
    );
    let a = join_new(&c, "g", "a").await;
    let id = a.member_id.to_string();
    // CompletingRebalance: heartbeats are fine, a commit is not.
    assert_eq!(heartbeat(&c, "g", 1, &id).await, OK);
    assert_eq!(
        heartbeat(&c, "g", 0, &id).await,
        ErrorCode::IllegalGeneration.code()
    );
    let commit = c
        .offset_commit(8, offset_commit_req("g", 1, &id, "t", 0, 5))
        .await;
    assert_eq!(
        commit.topics[0].partitions[0].error_code,
        ErrorCode::RebalanceInProgress.code()
    );
    assert_eq!(
        c.sync_group(3, sync_req("g", 7, &id, &[])).await.error_code,
        ErrorCode::IllegalGeneration.code()
    );
    assert_eq!(
        c.sync_group(3, sync_req("g", 1, "who", &[]))
            .await
            .error_code,
        ErrorCode::UnknownMemberId.code()
    );
    let mut bad = sync_req("g", 1, &id, &[]);
    bad.protocol_name = Some(sb("roundrobin"));
    assert_eq!(
        c.sync_group(5, bad).await.error_code,
        ErrorCode::InconsistentGroupProtocol.code()
    );
    assert_eq!(
        c.sync_group(5, sync_req("g", 1, &id, &[])).await.error_code,
        OK
    );
    // Stable: commits by the member work, by strangers do not.
    let ok = c
        .offset_commit(8, offset_commit_req("g", 1, &id, "t", 0, 5))
        .await;
    assert_eq!(ok.topics[0].partitions[0].error_code, OK);
    let stranger = c
        .offset_commit(8, offset_commit_req("g", 1, "who", "t", 0, 5))
        .await;
    assert_eq!(
        stranger.topics[0].partitions[0].error_code,
        ErrorCode::UnknownMemberId.code()
    );
    let old = c
        .offset_commit(8, offset_commit_req("g", 0, &id, "t", 0, 5))
        .await;
    assert_eq!(
        old.topics[0].partitions[0].error_code,
        ErrorCode::IllegalGeneration.code()
    );
    let simple = c
        .offset_commit(8, offset_commit_req("g", -1, "", "t", 0, 5))
        .await;
    assert_eq!(
        simple.topics[0].partitions[0].error_code,
        ErrorCode::UnknownMemberId.code()
    );
    // PreparingRebalance (the leader rejoins with a second member waiting).
    let _b = spawn_join(&c, "b", 3, join_req("g", "", None, &["t"]));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        heartbeat(&c, "g", 1, &id).await,
        ErrorCode::RebalanceInProgress.code()
    );
    assert_eq!(
        c.sync_group(3, sync_req("g", 1, &id, &[])).await.error_code,
        ErrorCode::RebalanceInProgress.code()
    );
    let during = c
        .offset_commit(8, offset_commit_req("g", 1, &id, "t", 0, 6))
        .await;
    assert_eq!(
        during.topics[0].partitions[0].error_code, OK,
        "commits are allowed while preparing"
    );
}

#[tokio::test(start_paused = true)]
async fn back_to_back_rebalances_for_cooperative_clients() {
    let (c, _) = coordinator().await;
    let a = join_new(&c, "g", "a").await;
    let id = a.member_id.to_string();
    assert_eq!(
        c.sync_group(3, sync_req("g", 1, &id, &[(&id, b"1")]))
            .await
            .error_code,
        OK
    );
    // Cooperative: the member rejoins at once with new owned partitions.
    for generation in 2..=4 {
        let r = c
            .join_group(
                client("a"),
                5,
                join_req("g", &id, None, &["t", &format!("x{generation}")]),
            )
            .await;
        assert_eq!(r.error_code, OK);
        assert_eq!(r.generation_id, generation);
        let s = c
            .sync_group(3, sync_req("g", generation, &id, &[(&id, b"2")]))
            .await;
        assert_eq!(s.error_code, OK);
        assert_eq!(describe(&c, "g").await.group_state.as_str(), "Stable");
    }
    // A follower with unchanged metadata gets the current generation back.
    let f = spawn_join(&c, "b", 3, join_req("g", "", None, &["t", "x4"]));
    tokio::time::sleep(Duration::from_millis(1)).await;
    let leader = c
        .join_group(client("a"), 5, join_req("g", &id, None, &["t", "x4"]))
        .await;
    let f = f.await.unwrap();
    assert_eq!(leader.generation_id, 5);
    assert_eq!(f.generation_id, 5);
}

#[tokio::test(start_paused = true)]
async fn members_that_miss_sync_are_removed() {
    let (c, _) = coordinator().await;
    let a = spawn_join(&c, "a", 3, join_req("g", "", None, &["t"]));
    let b = spawn_join(&c, "b", 3, join_req("g", "", None, &["t"]));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let leader = if a.member_id == a.leader { a } else { b };
    // Only the leader syncs; the follower never does.
    assert_eq!(
        c.sync_group(3, sync_req("g", 1, &leader.member_id, &[]))
            .await
            .error_code,
        OK
    );
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(3001)).await;
        heartbeat(&c, "g", 1, &leader.member_id).await;
    }
    let d = describe(&c, "g").await;
    assert_eq!(d.group_state.as_str(), "PreparingRebalance");
    assert_eq!(d.members.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn resign_answers_parked_requests_with_not_coordinator() {
    let (c, _) = coordinator().await;
    let j = spawn_join(&c, "a", 3, join_req("g", "", None, &["t"]));
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.on_resigned(0, 1);
    let r = j.await.unwrap();
    assert_eq!(r.error_code, ErrorCode::NotCoordinator.code());
    assert_eq!(
        heartbeat(&c, "g", 1, "m").await,
        ErrorCode::NotCoordinator.code()
    );
    assert!(!c.is_loaded(0));
}

#[tokio::test(start_paused = true)]
async fn loading_partition_answers_load_in_progress() {
    let log = std::sync::Arc::new(FakeLog::default());
    log.block_reads
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let c = millrace_group_coordinator::GroupCoordinator::new(config(), log.clone());
    let other = millrace_group_coordinator::GroupCoordinator::new(
        millrace_group_coordinator::GroupCoordinatorConfig {
            offsets_topic_partitions: 2,
            ..config()
        },
        log,
    );
    c.on_elected(0, 1);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!c.is_loaded(0));
    let r = c
        .join_group(client("a"), 5, join_req("g", "", None, &["t"]))
        .await;
    assert_eq!(r.error_code, ErrorCode::CoordinatorLoadInProgress.code());
    let d = describe(&c, "g").await;
    assert_eq!(d.error_code, ErrorCode::CoordinatorLoadInProgress.code());
    // Not elected at all: NOT_COORDINATOR.
    let r = other
        .join_group(client("a"), 5, join_req("g", "", None, &["t"]))
        .await;
    assert_eq!(r.error_code, ErrorCode::NotCoordinator.code());
    c.shutdown();
}

#[tokio::test(start_paused = true)]
async fn delete_groups_refuses_non_empty_groups() {
    let (c, log) = coordinator().await;
    let a = join_new(&c, "busy", "a").await;
    assert_eq!(a.error_code, OK);
    c.offset_commit(8, offset_commit_req("idle", -1, "", "t", 0, 1))
        .await;
    let r = c
        .delete_groups(
            2,
            DeleteGroupsRequest::default().with_groups_names(vec![
                GroupId(sb("busy")),
                GroupId(sb("idle")),
                GroupId(sb("ghost")),
            ]),
        )
        .await;
    encodes(&r, 2);
    let codes: Vec<i16> = r.results.iter().map(|g| g.error_code).collect();
    assert_eq!(
        codes,
        vec![
            ErrorCode::NonEmptyGroup.code(),
            OK,
            ErrorCode::GroupIdNotFound.code()
        ]
    );
    assert!(c.committed_offsets("idle").unwrap().is_empty());
    let recs = log.records(0);
    assert!(recs.iter().any(
        |(k, v)| matches!(k, RecordKey::OffsetCommit { group, .. } if group == "idle")
            && v.is_none()
    ));
    assert!(recs.iter().any(
        |(k, v)| matches!(k, RecordKey::GroupMetadata { group } if group == "idle") && v.is_none()
    ));
    assert_eq!(describe(&c, "idle").await.group_state.as_str(), "Dead");
}

pub fn offset_commit_req(
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> OffsetCommitRequest {
    use kafka_protocol::messages::offset_commit_request::*;
    OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(sb(member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(sb(topic)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)])])
}
