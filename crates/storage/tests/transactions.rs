//! Idempotent producers and transactions: sequence validation, duplicate
//! detection, the last stable offset, markers, the aborted-transaction
//! index, snapshots across restarts and crashes, truncation, retention,
//! compaction and producer expiry.

#![allow(clippy::unwrap_used)]

mod util;

use std::fs;

use millrace_protocol::records::{BatchBuilder, BatchIter, Compression};
use millrace_storage::{AbortedTxn, AppendInfo, LogConfig, ProducerStateError, StorageError};
use proptest::prelude::*;
use util::*;

/// An idempotent (optionally transactional) batch of `n` records.
fn idem(pid: i64, epoch: i16, seq: i32, n: usize, txn: bool, ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(0, Compression::None)
        .producer(pid, epoch, seq)
        .transaction(txn, false);
    for i in 0..n {
        let key = format!("k{i}");
        b.append(i as i64, ts, Some(key.as_bytes()), Some(b"v"), 0, &[]);
    }
    b.build().unwrap().to_vec()
}

/// A one-record keyed batch from a producer.
fn keyed(pid: i64, epoch: i16, seq: i32, txn: bool, key: &str, value: &str) -> Vec<u8> {
    let mut b = BatchBuilder::new(0, Compression::None)
        .producer(pid, epoch, seq)
        .transaction(txn, false);
    b.append(
        0,
        1_000,
        Some(key.as_bytes()),
        Some(value.as_bytes()),
        0,
        &[],
    );
    b.build().unwrap().to_vec()
}

fn append(t: &TestLog, batch: &[u8]) -> Result<AppendInfo, StorageError> {
    let mut bytes = batch.to_vec();
    t.log.append_as_leader(&mut bytes, 0, None)
}

fn producer_err(r: Result<AppendInfo, StorageError>) -> ProducerStateError {
    match r {
        Err(StorageError::Producer(e)) => e,
        other => panic!("expected a producer state error, got {other:?}"),
    }
}

fn catch_up(t: &TestLog) {
    t.log.update_high_watermark(t.log.log_end_offset());
}

fn snapshot_offsets(t: &TestLog) -> Vec<i64> {
    let mut v: Vec<i64> = fs::read_dir(t.partition_dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".snapshot").and_then(|d| d.parse().ok())
        })
        .collect();
    v.sort();
    v
}

fn files_with(t: &TestLog, suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(t.partition_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect();
    v.sort();
    v
}

#[test]
fn new_producers_accept_any_first_sequence_and_then_need_continuity() {
    let t = TestLog::new(LogConfig::default());
    assert_eq!(
        append(&t, &idem(1, 0, 0, 3, false, 1))
            .unwrap()
            .first_offset,
        0
    );
    // Kafka 3.7: a producer without state may start anywhere.
    assert_eq!(
        append(&t, &idem(2, 0, 42, 1, false, 1))
            .unwrap()
            .first_offset,
        3
    );
    append(&t, &idem(1, 0, 3, 2, false, 1)).unwrap();
    let gap = producer_err(append(&t, &idem(1, 0, 7, 1, false, 1)));
    assert_eq!(
        gap,
        ProducerStateError::OutOfOrderSequence {
            producer_id: 1,
            expected: 5,
            received: 7
        }
    );
    let behind = producer_err(append(&t, &idem(2, 0, 40, 1, false, 1)));
    assert!(matches!(
        behind,
        ProducerStateError::OutOfOrderSequence {
            expected: 43,
            received: 40,
            ..
        }
    ));
    assert_eq!(t.log.log_end_offset(), 6, "refused batches write nothing");
    let states = t.log.producer_states();
    assert_eq!(states.len(), 2);
    assert_eq!(states[0].last_sequence, 4);
    assert_eq!(states[1].last_sequence, 42);
}

#[test]
fn duplicates_of_the_last_five_batches_return_the_original_offsets() {
    let t = TestLog::new(LogConfig::default());
    let mut originals = Vec::new();
    for i in 0..6 {
        let info = append(&t, &idem(7, 1, i * 2, 2, false, 100 + i64::from(i))).unwrap();
        assert!(!info.duplicate);
        originals.push(info);
    }
    let leo = t.log.log_end_offset();
    for i in 1..6 {
        let info = append(&t, &idem(7, 1, i * 2, 2, false, 1)).unwrap();
        assert!(info.duplicate, "batch {i}");
        assert_eq!(info.first_offset, originals[i as usize].first_offset);
        assert_eq!(info.last_offset, originals[i as usize].last_offset);
        assert_eq!(info.max_timestamp, 100 + i64::from(i));
        assert_eq!(t.log.log_end_offset(), leo, "a duplicate is not written");
    }
    // The sixth-newest batch is no longer retained: out of order.
    let old = producer_err(append(&t, &idem(7, 1, 0, 2, false, 1)));
    assert!(matches!(
        old,
        ProducerStateError::OutOfOrderSequence { expected: 12, .. }
    ));
    // A duplicate inside a multi-batch append is refused.
    let mut two = idem(7, 1, 10, 2, false, 1);
    two.extend(idem(7, 1, 12, 1, false, 1));
    let e = producer_err(append(&t, &two));
    assert!(matches!(e, ProducerStateError::OutOfOrderSequence { .. }));
    // A same-range batch of another epoch is not a duplicate.
    let e = producer_err(append(&t, &idem(7, 0, 10, 2, false, 1)));
    assert!(matches!(
        e,
        ProducerStateError::InvalidProducerEpoch {
            current: 1,
            received: 0,
            ..
        }
    ));
}

#[test]
fn epoch_bumps_reset_sequences_and_older_epochs_are_fenced() {
    let t = TestLog::new(LogConfig::default());
    append(&t, &idem(3, 0, 0, 5, false, 1)).unwrap();
    let e = producer_err(append(&t, &idem(3, 1, 5, 1, false, 1)));
    assert_eq!(
        e,
        ProducerStateError::OutOfOrderSequence {
            producer_id: 3,
            expected: 0,
            received: 5
        }
    );
    append(&t, &idem(3, 1, 0, 1, false, 1)).unwrap();
    let e = producer_err(append(&t, &idem(3, 0, 5, 1, false, 1)));
    assert_eq!(
        e,
        ProducerStateError::InvalidProducerEpoch {
            producer_id: 3,
            current: 1,
            received: 0
        }
    );
    assert_eq!(t.log.producer_states()[0].producer_epoch, 1);
}

#[test]
fn sequences_wrap_at_i32_max() {
    let t = TestLog::new(LogConfig::default());
    append(&t, &idem(5, 0, i32::MAX - 1, 2, false, 1)).unwrap();
    assert_eq!(t.log.producer_states()[0].last_sequence, i32::MAX);
    let e = producer_err(append(&t, &idem(5, 0, 1, 1, false, 1)));
    assert!(matches!(
        e,
        ProducerStateError::OutOfOrderSequence {
            expected: 0,
            received: 1,
            ..
        }
    ));
    append(&t, &idem(5, 0, 0, 3, false, 1)).unwrap();
    // A batch whose sequences wrap inside it.
    let t2 = TestLog::new(LogConfig::default());
    append(&t2, &idem(5, 0, i32::MAX - 1, 4, false, 1)).unwrap();
    assert_eq!(t2.log.producer_states()[0].last_sequence, 1);
    assert!(
        append(&t2, &idem(5, 0, i32::MAX - 1, 4, false, 1))
            .unwrap()
            .duplicate
    );
    append(&t2, &idem(5, 0, 2, 1, false, 1)).unwrap();
}

#[test]
fn malformed_client_batches_are_refused() {
    let t = TestLog::new(LogConfig::default());
    let marker = millrace_protocol::control::end_txn_marker_batch(1, 0, true, 0, 1).unwrap();
    assert!(matches!(append(&t, &marker), Err(StorageError::Corrupt(_))));
    assert!(matches!(
        append(&t, &idem(1, 0, -1, 1, false, 1)),
        Err(StorageError::Corrupt(_))
    ));
    assert_eq!(t.log.log_end_offset(), 0);
}

#[test]
fn transactions_move_the_lso_and_markers_complete_them() {
    let t = TestLog::new(LogConfig::default());
    append(&t, &idem(1, 0, 0, 2, false, 1)).unwrap();
    append(&t, &idem(9, 0, 0, 2, true, 1)).unwrap(); // txn at 2
    append(&t, &idem(8, 0, 0, 1, true, 1)).unwrap(); // txn at 4
    append(&t, &idem(9, 0, 2, 1, true, 1)).unwrap();
    catch_up(&t);
    assert_eq!(t.log.first_unstable_offset(), Some(2));
    assert_eq!(t.log.last_stable_offset(), 2);
    // Read committed stops at the LSO.
    let r = t
        .log
        .read(0, 1 << 20, t.log.last_stable_offset(), true)
        .unwrap();
    let last = BatchIter::new(&r.records)
        .map(|b| b.unwrap().header.last_offset())
        .max();
    assert_eq!(last, Some(1));
    // A plain batch while the transaction is open.
    let e = producer_err(append(&t, &idem(9, 0, 3, 1, false, 1)));
    assert!(matches!(
        e,
        ProducerStateError::InvalidTxnState { producer_id: 9, .. }
    ));
    // Commit 9: the LSO moves to 8's transaction once replicated.
    let info = t.log.append_control_marker(9, 0, true, 5, 0).unwrap();
    assert_eq!(info.first_offset, 6);
    assert_eq!(
        t.log.first_unstable_offset(),
        Some(2),
        "marker not yet replicated"
    );
    catch_up(&t);
    assert_eq!(t.log.first_unstable_offset(), Some(4));
    assert_eq!(t.log.last_stable_offset(), 4);
    // Abort 8: recorded with the LSO after it.
    t.log.append_control_marker(8, 0, false, 5, 0).unwrap();
    catch_up(&t);
    assert_eq!(t.log.first_unstable_offset(), None);
    assert_eq!(t.log.last_stable_offset(), 8);
    assert_eq!(
        t.log.aborted_transactions(0, 8),
        vec![AbortedTxn {
            producer_id: 8,
            first_offset: 4
        }]
    );
    assert!(t.log.aborted_transactions(8, 100).is_empty());
    // Fenced markers.
    let e = producer_err(t.log.append_control_marker(9, 0, true, 4, 0));
    assert_eq!(
        e,
        ProducerStateError::CoordinatorFenced {
            producer_id: 9,
            current: 5,
            received: 4
        }
    );
    append(&t, &idem(9, 2, 0, 1, true, 1)).unwrap();
    let e = producer_err(t.log.append_control_marker(9, 1, false, 6, 0));
    assert!(matches!(
        e,
        ProducerStateError::InvalidProducerEpoch {
            current: 2,
            received: 1,
            ..
        }
    ));
    // A marker for a producer with no open transaction is written.
    let leo = t.log.log_end_offset();
    t.log.append_control_marker(77, 0, false, 0, 0).unwrap();
    assert_eq!(t.log.log_end_offset(), leo + 1);
    assert!(t.log.aborted_transactions(leo, leo + 1).is_empty());
    let s9 = t
        .log
        .producer_states()
        .into_iter()
        .find(|s| s.producer_id == 9)
        .unwrap();
    assert_eq!(s9.current_txn_start_offset, Some(leo - 1));
    assert_eq!(s9.coordinator_epoch, 5);
}

#[test]
fn coordinator_batches_skip_sequences_but_open_transactions() {
    let t = TestLog::new(LogConfig::default());
    append(&t, &idem(4, 3, 0, 1, true, 1)).unwrap();
    let mut offsets = idem(4, 3, -1, 1, true, 1);
    t.log.append_coordinator_batch(&mut offsets, 0).unwrap();
    let mut stale = idem(4, 2, -1, 1, true, 1);
    let e = producer_err(t.log.append_coordinator_batch(&mut stale, 0));
    assert!(matches!(e, ProducerStateError::InvalidProducerEpoch { .. }));
    // A group coordinator's TxnOffsetCommit for another producer opens a txn.
    let mut other = idem(6, 0, -1, 1, true, 1);
    let info = t.log.append_coordinator_batch(&mut other, 0).unwrap();
    let mut plain = BatchBuilder::new(0, Compression::None);
    plain.append(0, 1, Some(b"g"), Some(b"o"), 0, &[]);
    let mut plain = plain.build().unwrap().to_vec();
    t.log.append_coordinator_batch(&mut plain, 0).unwrap();
    catch_up(&t);
    assert_eq!(t.log.first_unstable_offset(), Some(0));
    t.log.append_control_marker(4, 3, true, 0, 0).unwrap();
    catch_up(&t);
    assert_eq!(t.log.first_unstable_offset(), Some(info.first_offset));
    t.log.append_control_marker(6, 0, true, 0, 0).unwrap();
    catch_up(&t);
    assert_eq!(t.log.first_unstable_offset(), None);
}

#[test]
fn aborted_transactions_are_found_across_segments() {
    let config = LogConfig {
        segment_bytes: 400,
        ..small_config()
    };
    let t = TestLog::new(config);
    // Producer p aborts a transaction spanning batches; filler rolls segments.
    let mut expected = Vec::new();
    for round in 0..6i64 {
        let pid = 100 + round;
        let first = append(&t, &idem(pid, 0, 0, 2, true, 1))
            .unwrap()
            .first_offset;
        append(&t, &idem(1, 0, (round * 3) as i32, 3, false, 1)).unwrap();
        append(&t, &idem(pid, 0, 2, 2, true, 1)).unwrap();
        let commit = round % 3 == 1;
        let marker = t
            .log
            .append_control_marker(pid, 0, commit, 0, 0)
            .unwrap()
            .first_offset;
        if !commit {
            expected.push((pid, first, marker));
        }
    }
    catch_up(&t);
    assert!(
        t.log.segment_count() > 3,
        "{} segments",
        t.log.segment_count()
    );
    assert!(files_with(&t, ".txnindex").len() >= 2);
    let leo = t.log.log_end_offset();
    for start in 0..leo {
        for upper in start + 1..=leo {
            let mut want: Vec<AbortedTxn> = expected
                .iter()
                .filter(|(_, first, last)| *last >= start && *first < upper)
                .map(|(pid, first, _)| AbortedTxn {
                    producer_id: *pid,
                    first_offset: *first,
                })
                .collect();
            let mut got = t.log.aborted_transactions(start, upper);
            want.sort_by_key(|a| a.first_offset);
            got.sort_by_key(|a| a.first_offset);
            assert_eq!(got, want, "range [{start}, {upper})");
        }
    }
    // The index survives a clean restart and a crash identically.
    let before = t.log.aborted_transactions(0, leo);
    let t = t.restart();
    assert_eq!(t.log.aborted_transactions(0, leo), before);
    let t = t.crash();
    assert_eq!(t.log.aborted_transactions(0, leo), before);
}

fn state_after_restart(crash: bool) {
    let config = LogConfig {
        segment_bytes: 500,
        ..small_config()
    };
    let t = TestLog::new(config);
    for i in 0..20 {
        append(&t, &idem(1, 0, i * 2, 2, false, 1)).unwrap();
    }
    append(&t, &idem(2, 0, 0, 1, true, 1)).unwrap();
    let open_at = t.log.log_end_offset() - 1;
    append(&t, &idem(3, 0, 0, 1, true, 1)).unwrap();
    t.log.append_control_marker(3, 0, false, 1, 0).unwrap();
    let last = append(&t, &idem(1, 0, 40, 2, false, 1)).unwrap();
    catch_up(&t);
    let states = t.log.producer_states();
    let leo = t.log.log_end_offset();
    assert!(t.log.segment_count() > 2);
    assert!(!snapshot_offsets(&t).is_empty(), "rolls take snapshots");
    let t = if crash { t.crash() } else { t.restart() };
    if !crash {
        assert!(
            snapshot_offsets(&t).contains(&leo),
            "shutdown snapshot at the log end"
        );
    }
    assert_eq!(t.log.log_end_offset(), leo);
    assert_eq!(t.log.producer_states(), states);
    assert_eq!(t.log.first_unstable_offset(), Some(open_at));
    assert_eq!(t.log.aborted_transactions(0, leo).len(), 1);
    let dup = append(&t, &idem(1, 0, 40, 2, false, 1)).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.first_offset, last.first_offset);
    assert!(matches!(
        producer_err(append(&t, &idem(1, 0, 43, 1, false, 1))),
        ProducerStateError::OutOfOrderSequence { expected: 42, .. }
    ));
    assert!(matches!(
        producer_err(append(&t, &idem(2, 0, 1, 1, false, 1))),
        ProducerStateError::InvalidTxnState { .. }
    ));
    t.log.append_control_marker(2, 0, true, 1, 0).unwrap();
    catch_up(&t);
    assert_eq!(t.log.first_unstable_offset(), None);
}

#[test]
fn producer_state_survives_a_clean_restart() {
    state_after_restart(false);
}

#[test]
fn producer_state_survives_a_crash() {
    state_after_restart(true);
}

#[test]
fn corrupt_snapshots_and_txn_indexes_are_rebuilt_from_the_log() {
    let config = LogConfig {
        segment_bytes: 500,
        ..small_config()
    };
    let t = TestLog::new(config);
    for i in 0..10 {
        append(&t, &idem(1, 0, i, 1, true, 1)).unwrap();
        if i % 3 == 2 {
            t.log.append_control_marker(1, 0, i % 2 == 0, 0, 0).unwrap();
        }
    }
    catch_up(&t);
    let states = t.log.producer_states();
    let leo = t.log.log_end_offset();
    let aborted = t.log.aborted_transactions(0, leo);
    assert!(!aborted.is_empty());
    let fuo = t.log.first_unstable_offset();
    let t = t.restart();
    let dir = t.partition_dir();
    let c = t.crash_prepare();
    // Damage every snapshot and every txn index.
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".snapshot") {
            let mut b = fs::read(&p).unwrap();
            let n = b.len();
            b[n - 1] ^= 0xff;
            fs::write(&p, b).unwrap();
        } else if name.ends_with(".txnindex") {
            fs::write(&p, [1u8; 35]).unwrap();
        }
    }
    let t = c.reopen_only();
    assert_eq!(t.log.producer_states(), states);
    assert_eq!(t.log.first_unstable_offset(), fuo);
    assert_eq!(t.log.aborted_transactions(0, leo), aborted);
    assert!(append(&t, &idem(1, 0, 9, 1, true, 1)).unwrap().duplicate);
}

#[test]
fn truncation_rebuilds_producer_state_and_the_txn_index() {
    let config = LogConfig {
        segment_bytes: 400,
        ..small_config()
    };
    let t = TestLog::new(config);
    for i in 0..12 {
        append(&t, &idem(1, 0, i, 1, false, 1)).unwrap();
    }
    let txn_first = append(&t, &idem(2, 0, 0, 1, true, 1)).unwrap().first_offset;
    let abort = t
        .log
        .append_control_marker(2, 0, false, 0, 0)
        .unwrap()
        .first_offset;
    let reopened = append(&t, &idem(2, 0, 1, 1, true, 1)).unwrap().first_offset;
    for i in 12..16 {
        append(&t, &idem(1, 0, i, 1, false, 1)).unwrap();
    }
    catch_up(&t);
    assert_eq!(t.log.first_unstable_offset(), Some(reopened));
    // Cut inside the second transaction: it is gone, the abort stays.
    t.log.truncate_to(reopened).unwrap();
    assert_eq!(t.log.first_unstable_offset(), None);
    assert_eq!(t.log.aborted_transactions(0, reopened).len(), 1);
    let p1 = t
        .log
        .producer_states()
        .into_iter()
        .find(|s| s.producer_id == 1)
        .unwrap();
    assert_eq!(p1.last_sequence, 11);
    append(&t, &idem(1, 0, 12, 1, false, 1)).unwrap();
    // Cut the abort marker: the first transaction is open again.
    t.log.truncate_to(abort).unwrap();
    assert_eq!(t.log.first_unstable_offset(), Some(txn_first));
    assert!(t.log.aborted_transactions(0, 100).is_empty());
    // Before every batch of producer 1's tail.
    t.log.truncate_to(5).unwrap();
    assert_eq!(t.log.producer_states().len(), 1);
    assert_eq!(t.log.producer_states()[0].last_sequence, 4);
    assert!(append(&t, &idem(1, 0, 4, 1, false, 1)).unwrap().duplicate);
    append(&t, &idem(1, 0, 5, 1, false, 1)).unwrap();
    // The rebuilt state is what a restart sees.
    let states = t.log.producer_states();
    let t = t.crash();
    assert_eq!(t.log.producer_states(), states);
    t.log.truncate_fully_and_start_at(100).unwrap();
    assert!(t.log.producer_states().is_empty());
    assert!(snapshot_offsets(&t).is_empty());
    append(&t, &idem(1, 0, 77, 1, false, 1)).unwrap();
}

#[test]
fn retention_removes_txn_indexes_and_snapshots_with_their_segments() {
    let config = LogConfig {
        segment_bytes: 400,
        retention_bytes: 1,
        ..small_config()
    };
    let t = TestLog::new(config);
    for i in 0..30 {
        append(&t, &idem(5, 0, i, 1, true, 1)).unwrap();
        t.log.append_control_marker(5, 0, false, 0, 0).unwrap();
    }
    catch_up(&t);
    assert!(files_with(&t, ".txnindex").len() > 3);
    assert!(snapshot_offsets(&t).len() > 3);
    let deleted = t.log.enforce_retention(0).unwrap();
    assert!(deleted > 0);
    t.manager.shutdown().unwrap();
    let first = t.log.segment_base_offsets()[0];
    for name in files_with(&t, ".txnindex") {
        let base: i64 = name.trim_end_matches(".txnindex").parse().unwrap();
        assert!(base >= first, "{name} outlived its segment");
    }
    assert!(snapshot_offsets(&t).iter().all(|o| *o >= first));
    let t = t.reopen_only();
    assert_eq!(t.log.producer_states()[0].last_sequence, 29);
    // DeleteRecords too.
    append(&t, &idem(5, 0, 30, 1, false, 1)).unwrap();
    t.log.roll().unwrap();
    append(&t, &idem(5, 0, 31, 1, false, 1)).unwrap();
    catch_up(&t);
    let start = t.log.log_end_offset() - 1;
    t.log.delete_records_before(start).unwrap();
    assert!(snapshot_offsets(&t)
        .iter()
        .all(|o| *o >= t.log.segment_base_offsets()[0]));
}

#[test]
fn the_cleaner_drops_aborted_data_and_keeps_committed_data_and_markers() {
    let config = LogConfig {
        segment_bytes: 100_000,
        cleanup_compact: true,
        cleanup_delete: false,
        ..LogConfig::default()
    };
    let t = TestLog::new(config);
    append(&t, &keyed(1, 0, 0, true, "a", "committed")).unwrap();
    append(&t, &keyed(2, 0, 0, true, "b", "aborted-b")).unwrap();
    t.log.append_control_marker(1, 0, true, 0, 0).unwrap();
    append(&t, &keyed(2, 0, 1, true, "a", "aborted-a")).unwrap();
    t.log.append_control_marker(2, 0, false, 0, 0).unwrap();
    append(&t, &keyed(3, 0, 0, false, "c", "plain")).unwrap();
    // An open transaction: nothing at or after it may be cleaned.
    append(&t, &keyed(4, 0, 0, true, "c", "undecided")).unwrap();
    append(&t, &keyed(3, 0, 1, false, "d", "after")).unwrap();
    t.log.roll().unwrap();
    append(&t, &keyed(3, 0, 2, false, "e", "active")).unwrap();
    catch_up(&t);
    let leo = t.log.log_end_offset();
    let stats = t.log.compact(0, 1 << 20).unwrap().expect("cleaned");
    assert_eq!(
        stats.next_dirty_offset, 6,
        "stops at the first unstable offset"
    );
    let mut values = Vec::new();
    let mut markers = 0;
    let mut offset = 0;
    while offset < leo {
        let r = t.log.read(offset, 1 << 20, i64::MAX, true).unwrap();
        for b in BatchIter::new(&r.records) {
            let b = b.unwrap();
            offset = b.header.next_offset();
            if b.header.is_control() {
                markers += 1;
                continue;
            }
            for rec in b.records().unwrap().iter() {
                let rec = rec.unwrap();
                values.push(String::from_utf8(rec.value.unwrap().to_vec()).unwrap());
            }
            if b.header.producer_id == 1 {
                assert!(b.header.is_transactional(), "committed data keeps its flag");
            }
        }
    }
    assert_eq!(markers, 2);
    assert_eq!(
        values,
        vec!["committed", "plain", "undecided", "after", "active"],
        "aborted data is gone and never shadowed the committed value of a"
    );
    assert_eq!(
        t.log.aborted_transactions(0, leo).len(),
        1,
        "txn index kept"
    );
    let t = t.restart();
    assert_eq!(t.log.aborted_transactions(0, leo).len(), 1);
    assert_eq!(t.log.first_unstable_offset(), Some(6));
}

#[test]
fn idle_producers_expire_unless_a_transaction_is_open() {
    let t = TestLog::new(LogConfig::default());
    append(&t, &idem(1, 0, 0, 1, false, 1_000)).unwrap();
    append(&t, &idem(2, 0, 0, 1, true, 1_000)).unwrap();
    append(&t, &idem(3, 0, 0, 1, false, 50_000)).unwrap();
    assert_eq!(t.manager.producer_id_expiration_ms(), 86_400_000);
    assert_eq!(t.manager.expire_producers(2_000), 0);
    t.manager.set_producer_id_expiration_ms(10_000);
    assert_eq!(t.manager.expire_producers(11_000), 1);
    let left: Vec<i64> = t
        .log
        .producer_states()
        .iter()
        .map(|s| s.producer_id)
        .collect();
    assert_eq!(left, vec![2, 3]);
    // An expired producer may start again at any sequence.
    append(&t, &idem(1, 0, 9, 1, false, 1)).unwrap();
}

#[test]
fn followers_track_producer_state_and_aborts() {
    let leader = TestLog::new(small_config());
    append(&leader, &idem(1, 0, 0, 2, false, 1)).unwrap();
    append(&leader, &simple_batch(2, 1)).unwrap();
    append(&leader, &idem(2, 0, 0, 1, true, 1)).unwrap();
    leader.log.append_control_marker(2, 0, false, 3, 0).unwrap();
    append(&leader, &idem(2, 0, 1, 1, true, 1)).unwrap();
    let leo = leader.log.log_end_offset();
    let follower = TestLog::new(small_config());
    // Markers carry the wall clock, so the leader rolled: copy segment by segment.
    while follower.log.log_end_offset() < leo {
        let from = follower.log.log_end_offset();
        let bytes = leader
            .log
            .read(from, 1 << 20, i64::MAX, true)
            .unwrap()
            .records;
        follower.log.append_as_follower(&bytes).unwrap();
    }
    catch_up(&leader);
    catch_up(&follower);
    assert_eq!(follower.log.producer_states(), leader.log.producer_states());
    assert_eq!(
        follower.log.first_unstable_offset(),
        leader.log.first_unstable_offset()
    );
    assert_eq!(
        follower.log.aborted_transactions(0, leo),
        leader.log.aborted_transactions(0, leo)
    );
    assert!(
        append(&follower, &idem(1, 0, 0, 2, false, 1))
            .unwrap()
            .duplicate
    );
}

/// One step of the random workload.
#[derive(Debug, Clone)]
enum Op {
    Data { pid: i64, txn: bool, n: usize },
    Retry { pid: i64 },
    Marker { pid: i64, commit: bool },
    Roll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0i64..3, any::<bool>(), 1usize..4).prop_map(|(pid, txn, n)| Op::Data { pid, txn, n }),
        1 => (0i64..3).prop_map(|pid| Op::Retry { pid }),
        2 => (0i64..3, any::<bool>()).prop_map(|(pid, commit)| Op::Marker { pid, commit }),
        1 => Just(Op::Roll),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the workload, a clean restart and a crash both come back
    /// with the same producer state, unstable offset and aborted
    /// transactions, and retries are always answered as duplicates.
    #[test]
    fn state_is_the_same_after_restart_and_crash(ops in proptest::collection::vec(op(), 1..40), crash in any::<bool>()) {
        let t = TestLog::new(LogConfig { segment_bytes: 600, ..small_config() });
        let mut next_seq = [0i32; 3];
        let mut last: [Option<(Vec<u8>, AppendInfo)>; 3] = [None, None, None];
        let mut open = [false; 3];
        for op in &ops {
            match op {
                Op::Data { pid, txn, n } => {
                    let p = *pid as usize;
                    let txn = *txn || open[p];
                    let batch = idem(*pid, 0, next_seq[p], *n, txn, 1);
                    let info = append(&t, &batch).unwrap();
                    prop_assert!(!info.duplicate);
                    next_seq[p] += *n as i32;
                    open[p] |= txn;
                    last[p] = Some((batch, info));
                }
                Op::Retry { pid } => {
                    if let Some((batch, info)) = &last[*pid as usize] {
                        let dup = append(&t, batch).unwrap();
                        prop_assert!(dup.duplicate);
                        prop_assert_eq!(dup.first_offset, info.first_offset);
                        prop_assert_eq!(dup.last_offset, info.last_offset);
                    }
                }
                Op::Marker { pid, commit } => {
                    t.log.append_control_marker(*pid, 0, *commit, 0, 0).unwrap();
                    open[*pid as usize] = false;
                    last[*pid as usize] = None;
                }
                Op::Roll => t.log.roll().unwrap(),
            }
        }
        catch_up(&t);
        let leo = t.log.log_end_offset();
        let states = t.log.producer_states();
        let fuo = t.log.first_unstable_offset();
        let aborted = t.log.aborted_transactions(0, leo);
        let t = if crash { t.crash() } else { t.restart() };
        // A crash loses the unflushed high watermark checkpoint.
        catch_up(&t);
        prop_assert_eq!(t.log.producer_states(), states);
        prop_assert_eq!(t.log.first_unstable_offset(), fuo);
        prop_assert_eq!(t.log.aborted_transactions(0, leo), aborted);
        for (p, l) in last.iter().enumerate() {
            if let Some((batch, info)) = l {
                let dup = append(&t, batch).unwrap();
                prop_assert!(dup.duplicate, "producer {}", p);
                prop_assert_eq!(dup.first_offset, info.first_offset);
            }
        }
    }
}
