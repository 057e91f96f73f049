//! Append, read, timestamps, epochs, truncation and DeleteRecords.

#![allow(clippy::unwrap_used)]

mod util;

use millrace_protocol::records::{BatchIter, Compression, TimestampType};
use millrace_storage::{LogConfig, StorageError, TimestampAndOffset};
use util::*;

fn headers(bytes: &[u8]) -> Vec<(i64, i64)> {
    BatchIter::new(bytes)
        .map(|b| {
            let h = b.unwrap().header;
            (h.base_offset, h.last_offset())
        })
        .collect()
}

#[test]
fn leader_append_assigns_offsets_epochs_and_append_time() {
    let t = TestLog::new(LogConfig::default());
    let mut two = simple_batch(3, 1_000);
    two.extend(simple_batch(2, 2_000));
    let info = t.log.append_as_leader(&mut two, 5, None).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 4));
    assert_eq!(info.batch_count, 2);
    assert_eq!(info.max_timestamp, 2_001);
    assert_eq!(info.offset_of_max_timestamp, 4);
    assert_eq!(
        headers(&two),
        vec![(0, 2), (3, 4)],
        "offsets patched in place"
    );
    let mut three = simple_batch(1, 5);
    let info = t.log.append_as_leader(&mut three, 6, Some(99_000)).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (5, 5));
    assert_eq!(t.log.log_end_offset(), 6);
    let recs = t.read_all();
    assert_eq!(recs.len(), 6);
    assert_eq!(
        recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );
    assert_eq!(recs[0].epoch, 5);
    assert_eq!(recs[5].epoch, 6);
    assert_eq!(recs[5].timestamp, 99_000);
    let read = t.log.read(5, 1000, i64::MAX, false).unwrap();
    let batch = BatchIter::new(&read.records).next().unwrap().unwrap();
    batch.verify_crc().unwrap();
    assert_eq!(batch.header.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(t.log.latest_epoch(), Some(6));
    assert_eq!(t.log.epoch_entries(), vec![(5, 0), (6, 5)]);
    assert_eq!(t.log.end_offset_for_epoch(5), Some((5, 5)));
    assert_eq!(t.log.end_offset_for_epoch(6), Some((6, 6)));
    assert_eq!(t.log.epoch_for_offset(4), Some(5));
}

#[test]
fn read_semantics_mid_batch_max_bytes_min_one_and_max_offset() {
    let t = TestLog::new(LogConfig::default());
    for i in 0..10 {
        t.append(&simple_batch(5, i * 100)); // batches [0..4], [5..9], …
    }
    let one = simple_batch(5, 0).len();
    // Starting mid-batch returns the whole batch containing the offset.
    let r = t.log.read(7, 10 * one, i64::MAX, false).unwrap();
    assert_eq!(headers(&r.records)[0], (5, 9));
    assert_eq!(r.log_end_offset, 50);
    // max_bytes cuts at whole batches.
    let r = t.log.read(0, 2 * one + one / 2, i64::MAX, false).unwrap();
    assert_eq!(headers(&r.records), vec![(0, 4), (5, 9)]);
    // Too small for one batch: nothing, unless min_one_batch (KIP-74).
    assert!(t
        .log
        .read(0, one - 1, i64::MAX, false)
        .unwrap()
        .records
        .is_empty());
    let r = t.log.read(0, 1, i64::MAX, true).unwrap();
    assert_eq!(headers(&r.records), vec![(0, 4)]);
    // max_offset: never a batch whose base offset is >= it.
    let r = t.log.read(0, 100 * one, 10, false).unwrap();
    assert_eq!(headers(&r.records), vec![(0, 4), (5, 9)]);
    let r = t.log.read(0, 100 * one, 11, false).unwrap();
    assert_eq!(
        headers(&r.records).len(),
        3,
        "batch [10..14] starts below 11"
    );
    assert!(t
        .log
        .read(10, 100 * one, 10, true)
        .unwrap()
        .records
        .is_empty());
    // The log end is an empty read; beyond it is out of range.
    assert!(t
        .log
        .read(50, 100, i64::MAX, true)
        .unwrap()
        .records
        .is_empty());
    assert!(matches!(
        t.log.read(51, 100, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange {
            offset: 51,
            log_start_offset: 0,
            log_end_offset: 50
        })
    ));
    assert!(matches!(
        t.log.read(-1, 100, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn reads_span_rolled_segments_and_use_the_index() {
    let config = LogConfig {
        segment_bytes: 2_000,
        index_interval_bytes: 100,
        ..LogConfig::default()
    };
    let t = TestLog::new(config);
    let mut expected = Vec::new();
    for i in 0..200i64 {
        let b = simple_batch(2, i);
        let info = t.append(&b);
        expected.extend(expected_records(&b, info.first_offset, 0));
    }
    assert!(
        t.log.segment_count() > 5,
        "{} segments",
        t.log.segment_count()
    );
    // Every segment's base offset is the base offset of its first batch.
    for base in t.log.segment_base_offsets() {
        let r = t.log.read(base, 1, i64::MAX, true).unwrap();
        assert_eq!(headers(&r.records)[0].0, base);
    }
    assert_eq!(t.read_all(), expected);
    for offset in 0..400 {
        let r = t.log.read(offset, 1, i64::MAX, true).unwrap();
        let (base, last) = headers(&r.records)[0];
        assert!(base <= offset && offset <= last);
    }
}

#[test]
fn segments_roll_on_time_index_capacity() {
    let config = LogConfig {
        segment_ms: 1_000,
        ..LogConfig::default()
    };
    let t = TestLog::new(config);
    t.append(&simple_batch(1, 10_000));
    t.append(&simple_batch(1, 10_500));
    assert_eq!(t.log.segment_count(), 1);
    t.append(&simple_batch(1, 11_001)); // 1001 ms after the first batch
    assert_eq!(t.log.segment_base_offsets(), vec![0, 2]);
    // A full index rolls too: 16 bytes hold two offset entries.
    let config = LogConfig {
        segment_index_bytes: 16,
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let t = TestLog::new(config);
    for i in 0..10 {
        t.append(&simple_batch(1, i));
    }
    assert!(t.log.segment_count() >= 3, "{}", t.log.segment_count());
    assert_eq!(t.read_all().len(), 10);
}

#[test]
fn multi_batch_append_splits_across_a_roll() {
    let config = LogConfig {
        segment_bytes: 300,
        ..LogConfig::default()
    };
    let t = TestLog::new(config);
    let mut many = Vec::new();
    for i in 0..6 {
        many.extend(sized_batch(1, 100, i));
    }
    let info = t.log.append_as_leader(&mut many, 0, None).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 5));
    assert!(t.log.segment_count() >= 3);
    assert_eq!(t.read_all().len(), 6);
    assert_eq!(t.log.size_bytes(), many.len() as u64);
}

#[test]
fn timestamp_lookup_across_compressed_batches() {
    let t = TestLog::new(LogConfig {
        segment_bytes: 1_000,
        index_interval_bytes: 1,
        ..LogConfig::default()
    });
    // Timestamps are not monotonic across batches.
    let stamps = [
        [100, 105, 110],
        [90, 95, 99],
        [200, 150, 250],
        [240, 260, 300],
    ];
    for (i, ts) in stamps.iter().enumerate() {
        let codec = CODECS[i % CODECS.len()];
        let vals: Vec<String> = ts.iter().map(|t| format!("v{t}")).collect();
        let recs: Vec<RecSpec<'_>> = ts
            .iter()
            .zip(&vals)
            .map(|(t, v)| (None, Some(v.as_bytes()), *t))
            .collect();
        let mut b = batch_of(&recs, codec);
        t.log.append_as_leader(&mut b, i as i32, None).unwrap();
    }
    let find = |ts| t.log.offset_for_timestamp(ts).unwrap();
    assert_eq!(
        find(0),
        Some(TimestampAndOffset {
            timestamp: 100,
            offset: 0,
            leader_epoch: Some(0)
        })
    );
    assert_eq!(find(101).map(|x| x.offset), Some(1));
    assert_eq!(find(111).map(|x| (x.timestamp, x.offset)), Some((200, 6)));
    assert_eq!(
        find(201).map(|x| (x.timestamp, x.offset, x.leader_epoch)),
        Some((250, 8, Some(2)))
    );
    assert_eq!(find(255).map(|x| (x.timestamp, x.offset)), Some((260, 10)));
    assert_eq!(find(301), None);
    let max = t.log.max_timestamp_and_offset().unwrap().unwrap();
    assert_eq!(
        (max.timestamp, max.offset, max.leader_epoch),
        (300, 11, Some(3))
    );
    // Same answers after a clean restart (indexes loaded lazily from disk).
    let t = t.restart();
    assert_eq!(
        t.log.offset_for_timestamp(201).unwrap().map(|x| x.offset),
        Some(8)
    );
    assert_eq!(
        t.log.max_timestamp_and_offset().unwrap().map(|x| x.offset),
        Some(11)
    );
}

#[test]
fn max_timestamp_picks_the_first_record_with_it() {
    let t = TestLog::new(LogConfig::default());
    assert_eq!(t.log.max_timestamp_and_offset().unwrap(), None);
    t.append(&batch_of(
        &[
            (None, Some(b"a"), 5),
            (None, Some(b"b"), 9),
            (None, Some(b"c"), 9),
        ],
        Compression::Lz4,
    ));
    t.append(&batch_of(&[(None, Some(b"d"), 9)], Compression::None));
    assert_eq!(
        t.log.max_timestamp_and_offset().unwrap().map(|x| x.offset),
        Some(1)
    );
}

#[test]
fn delete_records_moves_the_start_and_drops_segments() {
    let t = TestLog::new(LogConfig {
        segment_bytes: 500,
        ..LogConfig::default()
    });
    for i in 0..30 {
        t.append(&simple_batch(3, i));
    }
    let segments = t.log.segment_count();
    assert!(
        matches!(
            t.log.delete_records_before(10),
            Err(StorageError::OffsetOutOfRange { .. })
        ),
        "beyond the high watermark"
    );
    assert_eq!(
        t.log.update_high_watermark(1_000),
        90,
        "clamped to the log end"
    );
    assert_eq!(t.log.delete_records_before(40).unwrap(), 40);
    assert_eq!(t.log.log_start_offset(), 40);
    assert!(t.log.segment_count() < segments);
    assert!(t.log.segment_base_offsets()[0] <= 40);
    assert!(matches!(
        t.log.read(39, 100, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    let r = t.log.read(40, 1, i64::MAX, true).unwrap();
    assert_eq!(headers(&r.records)[0], (39, 41), "the batch holding 40");
    assert_eq!(
        t.log.delete_records_before(20).unwrap(),
        40,
        "never backwards"
    );
    let t = t.restart();
    assert_eq!(t.log.log_start_offset(), 40, "log start checkpointed");
    assert_eq!(t.log.high_watermark(), 90, "high watermark checkpointed");
    assert_eq!(t.read_all().first().map(|r| r.offset), Some(40));
}

#[test]
fn truncation_drops_data_and_epochs() {
    let t = TestLog::new(LogConfig {
        segment_bytes: 400,
        ..LogConfig::default()
    });
    for i in 0..20 {
        let mut b = simple_batch(2, i);
        t.log
            .append_as_leader(&mut b, (i / 5) as i32, None)
            .unwrap();
    }
    assert_eq!(t.log.log_end_offset(), 40);
    t.log.update_high_watermark(40);
    t.log.truncate_to(22).unwrap();
    assert_eq!(t.log.log_end_offset(), 22);
    assert_eq!(t.log.high_watermark(), 22);
    assert_eq!(t.log.latest_epoch(), Some(2));
    assert_eq!(t.log.epoch_entries(), vec![(0, 0), (1, 10), (2, 20)]);
    assert_eq!(t.read_all().last().map(|r| r.offset), Some(21));
    t.log.truncate_to(100).unwrap(); // no-op
    assert_eq!(t.log.log_end_offset(), 22);
    // Appending continues at the new end, in a new epoch.
    let mut b = simple_batch(3, 0);
    let info = t.log.append_as_leader(&mut b, 7, None).unwrap();
    assert_eq!(info.first_offset, 22);
    assert_eq!(t.log.end_offset_for_epoch(2), Some((2, 22)));
    assert_eq!(t.log.end_offset_for_epoch(5), Some((2, 22)));
    let t = t.restart();
    assert_eq!(t.log.log_end_offset(), 25);
    assert_eq!(t.read_all().len(), 25);
    t.log.truncate_fully_and_start_at(1_000).unwrap();
    assert_eq!(
        (t.log.log_start_offset(), t.log.log_end_offset()),
        (1_000, 1_000)
    );
    assert_eq!(t.log.segment_base_offsets(), vec![1_000]);
    assert_eq!(t.log.latest_epoch(), None);
    let info = t.append(&simple_batch(1, 0));
    assert_eq!(info.first_offset, 1_000);
    let t = t.restart();
    assert_eq!(
        (t.log.log_start_offset(), t.log.log_end_offset()),
        (1_000, 1_001)
    );
}

#[test]
fn follower_append_keeps_offsets_and_rejects_going_backwards() {
    let leader = TestLog::new(LogConfig::default());
    for e in 0..3 {
        let mut b = simple_batch(4, e);
        leader
            .log
            .append_as_leader(&mut b, e as i32 + 1, None)
            .unwrap();
    }
    let all = leader.log.read(0, 1 << 20, i64::MAX, true).unwrap().records;
    let follower = TestLog::new(LogConfig::default());
    let info = follower.log.append_as_follower(&all).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 11));
    assert_eq!(follower.log.epoch_entries(), vec![(1, 0), (2, 4), (3, 8)]);
    assert_eq!(follower.read_all(), leader.read_all());
    assert!(matches!(
        follower.log.append_as_follower(&all),
        Err(StorageError::InvalidOffset(_))
    ));
    // Offsets may skip forward (a compacted leader).
    let mut later = simple_batch(1, 0);
    millrace_protocol::records::set_base_offset(&mut later, 20);
    follower.log.append_as_follower(&later).unwrap();
    assert_eq!(follower.log.log_end_offset(), 21);
}

#[test]
fn high_watermark_is_clamped() {
    let t = TestLog::new(LogConfig::default());
    t.append(&simple_batch(5, 0));
    assert_eq!(t.log.update_high_watermark(3), 3);
    assert_eq!(t.log.update_high_watermark(-4), 0);
    assert_eq!(t.log.update_high_watermark(99), 5);
}

#[test]
fn manager_picks_dirs_checks_topic_ids_and_deletes() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let mut opts = options(a.path());
    opts.log_dirs.push(b.path().to_path_buf());
    let config = LogConfig::default();
    let m = millrace_storage::LogManager::open(opts.clone(), |_| config).unwrap();
    assert!(!m.was_clean_shutdown());
    let id = uuid::Uuid::new_v4();
    for p in 0..4 {
        m.get_or_create(&millrace_storage::TopicPartition::new("t", p), id, config)
            .unwrap();
    }
    let usage = m.dir_usage();
    assert_eq!(usage.len(), 2);
    assert_eq!(usage[0].partitions.len(), 2, "spread over dirs");
    assert_eq!(usage[1].partitions.len(), 2);
    assert!(usage[0].total_bytes > 0 && usage[0].usable_bytes > 0);
    let tp0 = millrace_storage::TopicPartition::new("t", 0);
    assert!(matches!(
        m.get_or_create(&tp0, uuid::Uuid::new_v4(), config),
        Err(StorageError::TopicIdMismatch { .. })
    ));
    let log = m.get(&tp0).unwrap();
    let text = std::fs::read_to_string(log.dir().join("partition.metadata")).unwrap();
    assert!(text.starts_with("version: 0\ntopic_id: "), "{text}");
    let dir = log.dir().to_path_buf();
    m.delete(&tp0).unwrap();
    assert!(m.get(&tp0).is_none());
    assert!(!dir.exists());
    let parent = dir.parent().unwrap();
    let renamed: Vec<String> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-delete"))
        .collect();
    assert_eq!(renamed.len(), 1);
    assert!(renamed[0].starts_with("t-0."), "{renamed:?}");
    m.shutdown().unwrap();
    assert!(a.path().join(".kafka_cleanshutdown").exists());
    let cp = std::fs::read_to_string(a.path().join("recovery-point-offset-checkpoint")).unwrap();
    assert!(cp.starts_with("0\n"), "{cp}");
    let m = millrace_storage::LogManager::open(opts, |_| config).unwrap();
    assert!(m.was_clean_shutdown());
    assert!(
        !a.path().join(".kafka_cleanshutdown").exists(),
        "marker removed at start"
    );
    assert_eq!(m.logs().len(), 3);
    let leftovers = std::fs::read_dir(parent)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("-delete")
        })
        .count();
    assert_eq!(leftovers, 0, "delete dirs removed by shutdown");
    m.shutdown().unwrap();
}

#[test]
fn concurrent_reads_never_see_partial_batches() {
    let t = TestLog::new(LogConfig {
        segment_bytes: 20_000,
        ..LogConfig::default()
    });
    let log = t.log.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let log = log.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let end = log.log_end_offset();
                    let start = if end > 0 { end / 2 } else { 0 };
                    let r = log.read(start, 8_192, i64::MAX, true).unwrap();
                    for b in BatchIter::new(&r.records) {
                        b.unwrap().verify_crc().unwrap();
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for i in 0..2_000 {
        t.append(&sized_batch(3, 50, i));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert_eq!(t.log.log_end_offset(), 6_000);
}

#[test]
fn an_existing_unloaded_partition_dir_is_opened_not_overwritten() {
    let a = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let m = millrace_storage::LogManager::open(options(a.path()), |_| config).unwrap();
    let log = m.get_or_create(&tp(), topic_id(), config).unwrap();
    log.append_as_leader(&mut simple_batch(3, 0), 0, None)
        .unwrap();
    m.shutdown().unwrap();
    drop(log);
    drop(m);
    // A manager over another dir set that does not know the partition yet.
    let other = tempfile::tempdir().unwrap();
    let m = millrace_storage::LogManager::open(options(other.path()), |_| config).unwrap();
    std::fs::rename(
        a.path().join("test-topic-0"),
        other.path().join("test-topic-0"),
    )
    .unwrap();
    assert!(matches!(
        m.get_or_create(&tp(), uuid::Uuid::new_v4(), config),
        Err(StorageError::TopicIdMismatch { .. })
    ));
    let log = m.get_or_create(&tp(), topic_id(), config).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    m.shutdown().unwrap();
}

#[test]
fn flush_messages_advances_the_recovery_point_on_append() {
    let t = TestLog::new(LogConfig {
        flush_messages: 1,
        ..LogConfig::default()
    });
    for i in 0..5 {
        t.append(&simple_batch(2, i));
        assert_eq!(t.log.recovery_point(), t.log.log_end_offset());
    }
    let t = TestLog::new(LogConfig::default());
    t.append(&simple_batch(2, 0));
    assert_eq!(
        t.log.recovery_point(),
        0,
        "the page cache is trusted by default"
    );
    t.log.flush().unwrap();
    assert_eq!(t.log.recovery_point(), 2);
}

#[test]
fn preallocated_segments_are_trimmed_and_recovered() {
    let config = LogConfig {
        preallocate: true,
        segment_bytes: 64 * 1024,
        ..LogConfig::default()
    };
    let t = TestLog::new(config);
    let mut expected = Vec::new();
    for i in 0..100 {
        let b = sized_batch(2, 300, i);
        let info = t.append(&b);
        expected.extend(expected_records(&b, info.first_offset, 0));
    }
    assert!(t.log.segment_count() > 1);
    let t = t.crash();
    assert_eq!(
        t.read_all(),
        expected,
        "zeros after the data are cut by recovery"
    );
    let t = t.restart();
    assert_eq!(t.read_all(), expected);
    let info = t.append(&simple_batch(1, 0));
    assert_eq!(info.first_offset, 200);
}

#[test]
fn reads_racing_truncation_retry_instead_of_failing() {
    let t = TestLog::new(LogConfig {
        segment_bytes: 3_000,
        ..LogConfig::default()
    });
    for i in 0..200 {
        t.append(&sized_batch(2, 30, i));
    }
    let log = t.log.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let log = log.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let end = log.log_end_offset();
                let offset = (n as i64 * 7) % end.max(1);
                match log.read(offset, 4_096, i64::MAX, true) {
                    Ok(r) => {
                        for b in BatchIter::new(&r.records) {
                            b.unwrap().verify_crc().unwrap();
                        }
                    }
                    Err(StorageError::OffsetOutOfRange { .. }) => {}
                    Err(e) => panic!("read failed: {e}"),
                }
                let _ = log.offset_for_timestamp(100).unwrap();
                n += 1;
            }
            n
        })
    };
    for round in 0..30 {
        let end = log.log_end_offset();
        log.truncate_to(end - 40 - round).unwrap();
        for i in 0..25 {
            t.append(&sized_batch(2, 30, i));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert!(t.manager.offline_dirs().is_empty());
    // Mid-batch truncation targets drop whole batches, leaving offset gaps;
    // the log end survives a crash all the same.
    let end = t.log.log_end_offset();
    let t = t.crash();
    assert_eq!(t.log.log_end_offset(), end);
    let all = t.read_all();
    assert!(all.windows(2).all(|w| w[0].offset < w[1].offset));
    assert!(all.last().unwrap().offset < end);
}
