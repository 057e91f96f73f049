//! End-to-end flows of the transaction coordinator over in-memory fakes.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::*;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::list_transactions_request::ListTransactionsRequest;
use kafka_protocol::messages::TransactionalId;
use millrace_protocol::control::coordinator_partition;
use millrace_txn_coordinator::format::{build_batch, LogEntry};
use millrace_txn_coordinator::state::Transit;
use millrace_txn_coordinator::{ErrorCode, TxnState};
use std::sync::atomic::Ordering;

const OK: i16 = 0;
const FENCED: i16 = ErrorCode::ProducerFenced.code();
const CONCURRENT: i16 = ErrorCode::ConcurrentTransactions.code();

fn states(entries: &[LogEntry]) -> Vec<Option<TxnState>> {
    entries
        .iter()
        .map(|e| match e {
            LogEntry::Value(_, t) => Some(t.state),
            LogEntry::Tombstone(_) => None,
        })
        .collect()
}

#[tokio::test]
async fn idempotent_producers_get_fresh_ids_across_blocks() {
    let mut config = test_config();
    config.transaction_state_partitions = 1;
    let env = Env::new(config);
    // Ids need no loaded partition.
    let mut pids = Vec::new();
    for _ in 0..12 {
        let (err, pid, epoch) = env.init(None, 0).await;
        assert_eq!((err, epoch), (OK, 0));
        pids.push(pid);
    }
    // Blocks of 10 starting at 1000, then 2000.
    assert_eq!(pids[..10], (1000..1010).collect::<Vec<_>>()[..]);
    assert_eq!(pids[10..], [2000, 2001]);
    assert_eq!(env.ids.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn init_creates_then_bumps_and_validates() {
    let env = Env::new(test_config());
    env.elect(0, 1).await;
    let (err, pid, epoch) = env.init(Some("t"), 60_000).await;
    assert_eq!((err, epoch), (OK, 0));
    let (err, pid2, epoch) = env.init(Some("t"), 60_000).await;
    assert_eq!((err, pid2, epoch), (OK, pid, 1));
    assert_eq!(
        env.init(Some("t"), 900_001).await.0,
        ErrorCode::InvalidTransactionTimeout.code()
    );
    assert_eq!(
        env.init(Some("t"), 0).await.0,
        ErrorCode::InvalidTransactionTimeout.code()
    );
    assert_eq!(
        env.init(Some(""), 1000).await.0,
        ErrorCode::InvalidRequest.code()
    );
    assert_eq!(
        env.init_v(4, Some("t"), 1000, pid, -1).await.0,
        ErrorCode::InvalidRequest.code()
    );
    // Both inits were persisted as Empty with the right epochs.
    let entries = env.log.entries(0);
    assert_eq!(states(&entries), vec![Some(TxnState::Empty); 2]);
    match &entries[1] {
        LogEntry::Value(id, t) => {
            assert_eq!(id, "t");
            assert_eq!((t.producer_id, t.producer_epoch, t.start_ms), (pid, 1, -1));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn kip360_bump_and_retry_and_fencing() {
    let env = Env::new(test_config());
    env.elect(0, 1).await;
    let (_, pid, _) = env.init(Some("t"), 60_000).await;
    // The producer presents its current (pid, 0): bump to 1.
    assert_eq!(env.init_v(4, Some("t"), 60_000, pid, 0).await, (OK, pid, 1));
    // A retry of that bump presents (pid, 0) again: same epoch, no new bump.
    assert_eq!(env.init_v(4, Some("t"), 60_000, pid, 0).await, (OK, pid, 1));
    // An unknown epoch is fenced.
    assert_eq!(env.init_v(4, Some("t"), 60_000, pid, 7).await.0, FENCED);
    // A different producer id is fenced; old clients see INVALID_PRODUCER_EPOCH.
    assert_eq!(env.init_v(4, Some("t"), 60_000, pid + 1, 1).await.0, FENCED);
    assert_eq!(
        env.init_v(3, Some("t"), 60_000, pid + 1, 1).await.0,
        ErrorCode::InvalidProducerEpoch.code()
    );
    // A plain init (new producer instance) bumps and forgets the last epoch.
    assert_eq!(env.init(Some("t"), 60_000).await, (OK, pid, 2));
    assert_eq!(env.init_v(4, Some("t"), 60_000, pid, 1).await.0, FENCED);
}

#[tokio::test]
async fn fenced_and_unknown_producers_are_rejected() {
    let env = Env::new(test_config());
    env.elect(0, 1).await;
    let (_, pid, e0) = env.init(Some("t"), 60_000).await;
    let (_, _, e1) = env.init(Some("t"), 60_000).await;
    assert_eq!(env.add("t", pid, e0, &[("a", 0)]).await, vec![FENCED]);
    assert_eq!(
        env.add_v(1, "t", pid, e0, &[("a", 0)]).await,
        vec![ErrorCode::InvalidProducerEpoch.code()]
    );
    assert_eq!(
        env.add("t", pid + 1, e1, &[("a", 0)]).await,
        vec![ErrorCode::InvalidProducerIdMapping.code()]
    );
    assert_eq!(
        env.add("nope", pid, e1, &[("a", 0)]).await,
        vec![ErrorCode::InvalidProducerIdMapping.code()]
    );
    assert_eq!(env.end("t", pid, e0, true).await, FENCED);
    assert_eq!(
        env.end_v(1, "t", pid, e0, true).await,
        ErrorCode::InvalidProducerEpoch.code()
    );
    assert_eq!(
        env.add_offsets(1, "t", pid, e0, "g").await,
        ErrorCode::InvalidProducerEpoch.code()
    );
    // EndTxn on an Empty transaction is an invalid state.
    assert_eq!(
        env.end("t", pid, e1, true).await,
        ErrorCode::InvalidTxnState.code()
    );
}

#[tokio::test]
async fn commit_flow_writes_markers_then_completes() {
    let env = Env::new(test_config());
    env.elect(0, 7).await;
    let (_, pid, epoch) = env.init(Some("t"), 60_000).await;
    assert_eq!(
        env.add("t", pid, epoch, &[("a", 0), ("a", 1)]).await,
        vec![OK, OK]
    );
    let appends = env.log.appends.load(Ordering::SeqCst);
    assert_eq!(env.add("t", pid, epoch, &[("a", 1)]).await, vec![OK]);
    assert_eq!(
        env.log.appends.load(Ordering::SeqCst),
        appends,
        "partitions already in the transaction need no write"
    );
    assert_eq!(env.add_offsets(3, "t", pid, epoch, "group").await, OK);
    let offsets_partition = coordinator_partition("group", 50);

    let d = env.describe("t").await;
    assert_eq!(d.transaction_state.as_str(), "Ongoing");
    assert_eq!(d.transaction_start_time_ms, env.now());
    let mut described: Vec<(String, Vec<i32>)> = d
        .topics
        .iter()
        .map(|t| (t.topic.as_str().to_string(), t.partitions.clone()))
        .collect();
    described.sort();
    assert_eq!(
        described,
        vec![
            ("__consumer_offsets".into(), vec![offsets_partition]),
            ("a".into(), vec![0, 1])
        ]
    );

    assert_eq!(env.end("t", pid, epoch, true).await, OK);
    env.wait_state("t", "CompleteCommit").await;
    let requests = env.markers.requests.lock().clone();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert!(r.commit);
    assert_eq!(
        (r.producer_id, r.producer_epoch, r.coordinator_epoch),
        (pid, epoch, 7)
    );
    assert_eq!(
        r.partitions,
        vec![
            tp("__consumer_offsets", offsets_partition),
            tp("a", 0),
            tp("a", 1)
        ]
    );
    assert!(env.describe("t").await.topics.is_empty());

    // Retrying the same outcome is fine; the opposite one is not.
    assert_eq!(env.end("t", pid, epoch, true).await, OK);
    assert_eq!(
        env.end("t", pid, epoch, false).await,
        ErrorCode::InvalidTxnState.code()
    );
    assert_eq!(
        states(&env.log.entries(0)),
        [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::CompleteCommit
        ]
        .map(Some)
    );
    // The next transaction starts from CompleteCommit.
    assert_eq!(env.add("t", pid, epoch, &[("b", 0)]).await, vec![OK]);
    assert_eq!(env.state("t").await, "Ongoing");
}

#[tokio::test]
async fn abort_flow_retries_failed_markers_and_drops_deleted_partitions() {
    let env = Env::new(test_config());
    env.elect(0, 3).await;
    let (_, pid, epoch) = env.init(Some("t"), 60_000).await;
    env.add("t", pid, epoch, &[("a", 0), ("a", 1), ("gone", 0)])
        .await;
    env.markers.failures.lock().insert(tp("a", 1), 3);
    env.markers.unknown.lock().insert(tp("gone", 0));
    assert_eq!(env.end("t", pid, epoch, false).await, OK);
    env.wait_state("t", "CompleteAbort").await;
    let requests = env.markers.requests.lock().clone();
    assert_eq!(requests.len(), 4, "one attempt plus three retries");
    assert!(requests.iter().all(|r| !r.commit));
    assert_eq!(requests[0].partitions.len(), 3);
    for r in &requests[1..] {
        assert_eq!(r.partitions, vec![tp("a", 1)]);
    }
    assert_eq!(env.end("t", pid, epoch, false).await, OK);
    assert_eq!(
        env.end("t", pid, epoch, true).await,
        ErrorCode::InvalidTxnState.code()
    );
}

#[tokio::test]
async fn operations_during_the_marker_phase_are_concurrent() {
    let env = Env::new(test_config());
    env.elect(0, 1).await;
    let (_, pid, epoch) = env.init(Some("t"), 60_000).await;
    env.add("t", pid, epoch, &[("a", 0)]).await;
    env.markers.blocked.store(true, Ordering::SeqCst);
    assert_eq!(env.end("t", pid, epoch, true).await, OK);
    assert_eq!(env.state("t").await, "PrepareCommit");
    assert_eq!(env.end("t", pid, epoch, true).await, CONCURRENT);
    assert_eq!(env.end("t", pid, epoch, false).await, CONCURRENT);
    assert_eq!(
        env.add("t", pid, epoch, &[("a", 0)]).await,
        vec![CONCURRENT]
    );
    assert_eq!(env.add_offsets(3, "t", pid, epoch, "g").await, CONCURRENT);
    assert_eq!(env.init(Some("t"), 60_000).await.0, CONCURRENT);
    env.markers.blocked.store(false, Ordering::SeqCst);
    env.wait_state("t", "CompleteCommit").await;
    assert_eq!(env.init(Some("t"), 60_000).await, (OK, pid, epoch + 1));
}

#[tokio::test]
async fn init_during_ongoing_aborts_with_a_fenced_epoch() {
    let env = Env::new(test_config());
    env.elect(0, 1).await;
    let (_, pid, e0) = env.init(Some("t"), 60_000).await;
    env.add("t", pid, e0, &[("a", 0)]).await;
    // A new producer instance: the open transaction is aborted first.
    assert_eq!(env.init(Some("t"), 60_000).await.0, CONCURRENT);
    let (pid2, e2) = env.init_retrying("t", 60_000).await;
    assert_eq!((pid2, e2), (pid, e0 + 2));
    let requests = env.markers.requests.lock().clone();
    assert_eq!(requests.len(), 1);
    assert!(!requests[0].commit);
    assert_eq!(
        requests[0].producer_epoch,
        e0 + 1,
        "abort markers carry the fence epoch"
    );
    // The old instance is fenced everywhere.
    assert_eq!(env.add("t", pid, e0, &[("a", 0)]).await, vec![FENCED]);
    assert_eq!(env.end("t", pid, e0, true).await, FENCED);
}

#[tokio::test]
async fn timed_out_transactions_are_aborted_and_the_zombie_fenced() {
    let env = Env::new(test_config());
    env.elect(0, 1).await;
    let (_, pid, epoch) = env.init(Some("t"), 1_000).await;
    env.add("t", pid, epoch, &[("a", 0)]).await;
    env.advance(500);
    env.coord.abort_timed_out_transactions().await;
    assert_eq!(env.state("t").await, "Ongoing");
    env.advance(600);
    env.coord.abort_timed_out_transactions().await;
    env.wait_state("t", "CompleteAbort").await;
    let d = env.describe("t").await;
    assert_eq!(d.producer_epoch, epoch + 1);
    let requests = env.markers.requests.lock().clone();
    assert_eq!(requests.len(), 1);
    assert!(!requests[0].commit);
    assert_eq!(requests[0].producer_epoch, epoch + 1);
    // The zombie cannot commit or continue.
    assert_eq!(env.end("t", pid, epoch, true).await, FENCED);
    assert_eq!(env.add("t", pid, epoch, &[("a", 0)]).await, vec![FENCED]);
    // Its KIP-360 recovery with the stale epoch is fenced too.
    assert_eq!(env.init_v(4, Some("t"), 1_000, pid, epoch).await.0, FENCED);
    // A fresh instance continues with the next epoch.
    assert_eq!(env.init(Some("t"), 1_000).await, (OK, pid, epoch + 2));
    // The abort was persisted with the bumped epoch.
    let entries = env.log.entries(0);
    match &entries[entries.len() - 2] {
        LogEntry::Value(_, t) => {
            assert_eq!(t.state, TxnState::CompleteAbort);
            assert_eq!(t.producer_epoch, epoch + 1);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn reload_mid_prepare_commit_resumes_markers_with_the_new_epoch() {
    let env = Env::new(test_config());
    env.elect(0, 1).await;
    let (_, pid, epoch) = env.init(Some("t"), 60_000).await;
    env.add("t", pid, epoch, &[("a", 0), ("b", 2)]).await;
    env.markers.blocked.store(true, Ordering::SeqCst);
    assert_eq!(env.end("t", pid, epoch, true).await, OK);
    // Leadership moves before any marker lands.
    env.coord.on_resigned(0, 1);
    assert_eq!(
        env.add("t", pid, epoch, &[("a", 0)]).await,
        vec![ErrorCode::NotCoordinator.code()]
    );
    assert!(!env.coord.is_loaded(0));

    let next = env.successor();
    next.log.hold_reads.store(true, Ordering::SeqCst);
    next.coord.on_elected(0, 2);
    assert_eq!(
        next.init(Some("t"), 60_000).await.0,
        ErrorCode::CoordinatorLoadInProgress.code()
    );
    assert_eq!(
        next.describe("t").await.error_code,
        ErrorCode::CoordinatorLoadInProgress.code()
    );
    next.log.hold_reads.store(false, Ordering::SeqCst);
    wait_until(|| next.coord.is_loaded(0)).await;
    next.wait_state("t", "CompleteCommit").await;
    let d = next.describe("t").await;
    assert_eq!((d.producer_id.0, d.producer_epoch), (pid, epoch));
    let requests = next.markers.requests.lock().clone();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].commit);
    assert_eq!(requests[0].coordinator_epoch, 2);
    assert_eq!(requests[0].partitions, vec![tp("a", 0), tp("b", 2)]);
    // The old coordinator never wrote a completion.
    let completes = states(&env.log.entries(0))
        .into_iter()
        .filter(|s| *s == Some(TxnState::CompleteCommit))
        .count();
    assert_eq!(completes, 1);
    // The new leader serves the producer normally.
    assert_eq!(next.init(Some("t"), 60_000).await, (OK, pid, epoch + 1));
    env.markers.blocked.store(false, Ordering::SeqCst);
}

#[tokio::test]
async fn unled_partitions_answer_not_coordinator() {
    let mut config = test_config();
    config.transaction_state_partitions = 50;
    let env = Env::new(config);
    let p = env.coord.partition_for("abc");
    assert_eq!(p, coordinator_partition("abc", 50));
    assert_eq!(
        env.init(Some("abc"), 1000).await.0,
        ErrorCode::NotCoordinator.code()
    );
    env.elect(p, 4).await;
    assert_eq!(env.init(Some("abc"), 1000).await.0, OK);
    // A resignation for an older epoch is ignored.
    env.coord.on_resigned(p, 3);
    assert!(env.coord.is_loaded(p));
    env.coord.shutdown();
    assert_eq!(
        env.init(Some("abc"), 1000).await.0,
        ErrorCode::NotCoordinator.code()
    );
}

#[tokio::test]
async fn idle_transactional_ids_expire_with_a_tombstone() {
    let mut config = test_config();
    config.transactional_id_expiration_ms = 10_000;
    let env = Env::new(config);
    env.elect(0, 1).await;
    let (_, pid, epoch) = env.init(Some("idle"), 60_000).await;
    env.init(Some("busy"), 60_000).await;
    let (_, bpid, bepoch) = env.init(Some("busy"), 60_000).await;
    env.add("busy", bpid, bepoch, &[("a", 0)]).await;
    env.advance(5_000);
    env.coord.remove_expired_transactional_ids().await;
    assert_eq!(env.state("idle").await, "Empty");
    env.advance(6_000);
    env.coord.remove_expired_transactional_ids().await;
    assert_eq!(
        env.describe("idle").await.error_code,
        ErrorCode::TransactionalIdNotFound.code()
    );
    assert_eq!(
        env.state("busy").await,
        "Ongoing",
        "open transactions never expire"
    );
    assert!(matches!(
        env.log.entries(0).last(),
        Some(LogEntry::Tombstone(id)) if id == "idle"
    ));
    assert_eq!(
        env.add("idle", pid, epoch, &[("a", 0)]).await,
        vec![ErrorCode::InvalidProducerIdMapping.code()]
    );
    // A reload agrees: the id is gone, the other is still there.
    let next = env.successor();
    next.elect(0, 2).await;
    assert_eq!(
        next.describe("idle").await.error_code,
        ErrorCode::TransactionalIdNotFound.code()
    );
    assert_eq!(next.state("busy").await, "Ongoing");
    // A returning producer starts over with a new producer id.
    let (err, _, new_epoch) = next.init(Some("idle"), 60_000).await;
    assert_eq!((err, new_epoch), (OK, 0));
    assert_eq!(
        next.ids.calls.load(Ordering::SeqCst),
        1,
        "a fresh id was allocated"
    );
}

#[tokio::test]
async fn describe_and_list_filter_like_kafka() {
    let env = Env::new(test_config());
    env.elect(0, 1).await;
    let (_, pa, ea) = env.init(Some("a"), 60_000).await;
    env.add("a", pa, ea, &[("x", 0)]).await;
    let (_, pb, _) = env.init(Some("b"), 60_000).await;
    env.advance(10_000);
    let (_, pc, ec) = env.init(Some("c"), 60_000).await;
    env.add("c", pc, ec, &[("x", 1)]).await;
    env.end("c", pc, ec, true).await;
    env.wait_state("c", "CompleteCommit").await;

    let d = env.describe("a").await;
    assert_eq!(d.error_code, OK);
    assert_eq!(d.transaction_state.as_str(), "Ongoing");
    assert_eq!(d.transaction_timeout_ms, 60_000);
    assert_eq!((d.producer_id.0, d.producer_epoch), (pa, ea));
    assert_eq!(
        env.describe("zzz").await.error_code,
        ErrorCode::TransactionalIdNotFound.code()
    );

    let list = |version: i16, states: &[&str], pids: &[i64], duration: i64| {
        let mut req = ListTransactionsRequest::default();
        req.state_filters = states.iter().map(|x| s(x)).collect();
        req.producer_id_filters = pids.iter().map(|p| (*p).into()).collect();
        req.duration_filter = duration;
        let coord = env.coord.clone();
        async move {
            let r = coord.list_transactions(version, req).await;
            let ids: Vec<(String, String)> = r
                .transaction_states
                .iter()
                .map(|t| {
                    (
                        t.transactional_id.as_str().to_string(),
                        t.transaction_state.as_str().to_string(),
                    )
                })
                .collect();
            let unknown: Vec<String> = r
                .unknown_state_filters
                .iter()
                .map(|u| u.as_str().to_string())
                .collect();
            (r.error_code, ids, unknown)
        }
    };
    let (err, all, _) = list(0, &[], &[], -1).await;
    assert_eq!(err, OK);
    assert_eq!(
        all,
        vec![
            ("a".into(), "Ongoing".into()),
            ("b".into(), "Empty".into()),
            ("c".into(), "CompleteCommit".into())
        ]
    );
    let (_, only, unknown) = list(0, &["Ongoing", "Bogus"], &[], -1).await;
    assert_eq!(only, vec![("a".to_string(), "Ongoing".to_string())]);
    assert_eq!(unknown, vec!["Bogus".to_string()]);
    let (_, by_pid, _) = list(0, &[], &[pb], -1).await;
    assert_eq!(by_pid, vec![("b".to_string(), "Empty".to_string())]);
    // "a" started 10s ago, "c" just now; Empty "b" has no start (-1).
    env.advance(1_000);
    let (_, long, _) = list(1, &["Ongoing", "CompleteCommit"], &[], 5_000).await;
    assert_eq!(long, vec![("a".to_string(), "Ongoing".to_string())]);
    // v0 has no duration filter.
    let (_, v0, _) = list(0, &["Ongoing", "CompleteCommit"], &[], 5_000).await;
    assert_eq!(v0.len(), 2);
}

#[tokio::test]
async fn exhausted_epoch_rotates_the_producer_id() {
    let log = std::sync::Arc::new(MemLog::default());
    let exhausted = i16::MAX - 1;
    let seeded = Transit {
        producer_id: 77,
        last_producer_id: 77,
        producer_epoch: exhausted,
        last_producer_epoch: -1,
        timeout_ms: 60_000,
        state: TxnState::CompleteCommit,
        partitions: Default::default(),
        start_ms: 5,
        last_update_ms: 6,
    };
    log.push(0, build_batch("t", Some(&seeded), 6).unwrap());
    let env = Env::with_log(test_config(), log);
    env.elect(0, 1).await;
    // KIP-360 client presenting the exhausted epoch gets a new producer id.
    let (err, pid, epoch) = env.init_v(4, Some("t"), 60_000, 77, exhausted).await;
    assert_eq!((err, epoch), (OK, 0));
    assert_ne!(pid, 77);
    // Its retry (old id, exhausted epoch) gets the same answer, not a fence.
    assert_eq!(
        env.init_v(4, Some("t"), 60_000, 77, exhausted).await,
        (OK, pid, 0)
    );
    // Any other old epoch is fenced.
    assert_eq!(env.init_v(4, Some("t"), 60_000, 77, 3).await.0, FENCED);
}

#[tokio::test]
async fn failed_log_appends_clear_the_pending_state() {
    let env = Env::new(test_config());
    env.elect(0, 1).await;
    let (_, pid, epoch) = env.init(Some("t"), 60_000).await;
    env.log.fail_next_appends.store(1, Ordering::SeqCst);
    assert_eq!(
        env.add("t", pid, epoch, &[("a", 0)]).await,
        vec![ErrorCode::CoordinatorNotAvailable.code()]
    );
    assert_eq!(env.state("t").await, "Empty");
    assert_eq!(env.add("t", pid, epoch, &[("a", 0)]).await, vec![OK]);
    // A failed completion write is retried until it lands.
    env.log.fail_next_appends.store(0, Ordering::SeqCst);
    env.markers.blocked.store(true, Ordering::SeqCst);
    assert_eq!(env.end("t", pid, epoch, true).await, OK);
    env.log.fail_next_appends.store(2, Ordering::SeqCst);
    env.markers.blocked.store(false, Ordering::SeqCst);
    env.wait_state("t", "CompleteCommit").await;
}

#[tokio::test]
async fn batched_v4_add_and_verify_only() {
    let env = Env::new(test_config());
    env.elect(0, 1).await;
    let (_, pid, epoch) = env.init(Some("t"), 60_000).await;
    let txn = |verify: bool, tps: &[(&str, i32)]| {
        let mut t = AddPartitionsToTxnTransaction::default();
        t.transactional_id = TransactionalId(s("t"));
        t.producer_id = pid.into();
        t.producer_epoch = epoch;
        t.verify_only = verify;
        t.topics = topics(tps);
        t
    };
    let codes = |r: &kafka_protocol::messages::AddPartitionsToTxnResponse| -> Vec<Vec<i16>> {
        r.results_by_transaction
            .iter()
            .map(|t| {
                t.topic_results
                    .iter()
                    .flat_map(|tr| {
                        tr.results_by_partition
                            .iter()
                            .map(|p| p.partition_error_code)
                    })
                    .collect()
            })
            .collect()
    };
    let mut req = AddPartitionsToTxnRequest::default();
    req.transactions = vec![txn(false, &[("a", 0)])];
    let r = env.coord.add_partitions_to_txn(4, req).await;
    assert_eq!(codes(&r), vec![vec![OK]]);
    let mut req = AddPartitionsToTxnRequest::default();
    req.transactions = vec![txn(true, &[("a", 0), ("a", 1)])];
    let r = env.coord.add_partitions_to_txn(4, req).await;
    assert_eq!(r.results_by_transaction[0].transactional_id.as_str(), "t");
    assert_eq!(codes(&r), vec![vec![OK, ErrorCode::InvalidTxnState.code()]]);
    assert_eq!(env.state("t").await, "Ongoing");
}

#[test]
fn request_futures_are_send() {
    fn assert_send<T: Send>(_: T) {}
    let env = Env::new(test_config());
    let c = env.coord.clone();
    assert_send(async move {
        c.init_producer_id(4, Default::default()).await;
        c.add_partitions_to_txn(3, Default::default()).await;
        c.add_offsets_to_txn(3, Default::default()).await;
        c.end_txn(3, Default::default()).await;
        c.describe_transactions(0, Default::default()).await;
        c.list_transactions(1, Default::default()).await;
        c.abort_timed_out_transactions().await;
        c.remove_expired_transactional_ids().await;
    });
}
