//! Log compaction: latest value per key, tombstones and their horizon,
//! lag and ratio rules, and compaction combined with deletion.

#![allow(clippy::unwrap_used)]

mod util;

use std::collections::BTreeMap;

use millrace_protocol::records::{BatchBuilder, BatchIter, Compression};
use millrace_storage::LogConfig;
use util::*;

fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        cleanup_delete: false,
        cleanup_compact: true,
        delete_retention_ms: 1_000,
        min_cleanable_dirty_ratio: 0.5,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    }
}

/// key -> (offset, value) of the latest record per key, computed naively.
fn latest(recs: &[Rec]) -> BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> {
    let mut m = BTreeMap::new();
    for r in recs {
        if let Some(k) = &r.key {
            m.insert(k.clone(), (r.offset, r.value.clone()));
        }
    }
    m
}

#[test]
fn keeps_only_the_latest_value_per_key() {
    let t = TestLog::new(compact_config());
    let mut written = Vec::new();
    for round in 0..10 {
        for k in 0..5 {
            let b = kv(
                &format!("key{k}"),
                Some(&format!("v{round}")),
                1_000 + round,
            );
            let info = t.append(&b);
            written.extend(expected_records(&b, info.first_offset, 0));
        }
        // A record without a key survives compaction.
        let b = batch_of(&[(None, Some(b"no-key"), 5)], Compression::None);
        let info = t.append(&b);
        written.extend(expected_records(&b, info.first_offset, 0));
    }
    t.log.roll().unwrap();
    t.log.update_high_watermark(i64::MAX);
    assert!(t.log.needs_compaction(10_000));
    let stats = t.log.compact(10_000, 1 << 20).unwrap().unwrap();
    assert!(stats.records_removed >= 45, "{stats:?}");
    assert_eq!(stats.next_dirty_offset, 60);
    let after = t.read_all();
    let keyed: Vec<&Rec> = after.iter().filter(|r| r.key.is_some()).collect();
    assert_eq!(keyed.len(), 5);
    for r in &keyed {
        assert_eq!(r.value.as_deref(), Some(&b"v9"[..]));
    }
    assert_eq!(after.iter().filter(|r| r.key.is_none()).count(), 10);
    assert_eq!(
        latest(&after),
        latest(&written),
        "same latest values at the same offsets"
    );
    // Offsets never change and stay increasing.
    assert!(after.windows(2).all(|w| w[0].offset < w[1].offset));
    assert!(after.iter().all(|r| written.contains(r)));
    assert_eq!(t.log.log_end_offset(), 60);
    assert!(!t.log.needs_compaction(10_000), "nothing dirty any more");
    // Survives a clean restart and a crash.
    let t = t.restart();
    assert_eq!(t.read_all(), after);
    let t = t.crash();
    assert_eq!(t.read_all(), after);
    for r in &after {
        let got = t.log.read(r.offset, 1, i64::MAX, true).unwrap();
        assert!(!got.records.is_empty());
    }
}

#[test]
fn tombstones_live_until_the_delete_horizon() {
    let t = TestLog::new(compact_config());
    t.append(&kv("a", Some("1"), 10));
    t.append(&kv("b", Some("1"), 10));
    t.append(&kv("a", None, 20)); // tombstone for a
    for i in 0..20 {
        t.append(&kv("c", Some(&format!("{i}")), 30));
    }
    t.log.roll().unwrap();
    t.log.update_high_watermark(i64::MAX);
    let now = 100_000;
    t.log.compact(now, 1 << 20).unwrap().unwrap();
    let recs = t.read_all();
    let a: Vec<&Rec> = recs
        .iter()
        .filter(|r| r.key.as_deref() == Some(b"a"))
        .collect();
    assert_eq!(a.len(), 1);
    assert_eq!(
        a[0].value, None,
        "the tombstone is kept, the value it deletes is not"
    );
    assert_eq!(a[0].timestamp, 20, "record timestamps survive the rewrite");
    // Its batch now carries the delete horizon (KIP-534).
    let r = t.log.read(a[0].offset, 1, i64::MAX, true).unwrap();
    let batch = BatchIter::new(&r.records).next().unwrap().unwrap();
    assert!(batch.header.has_delete_horizon());
    assert_eq!(batch.header.base_timestamp, now + 1_000);
    // Before the horizon another pass keeps it; after it, it goes.
    assert!(!t.log.needs_compaction(now + 500));
    t.log.compact(now + 500, 1 << 20).unwrap();
    assert!(t.read_all().iter().any(|r| r.key.as_deref() == Some(b"a")));
    assert!(
        t.log.needs_compaction(now + 1_000),
        "expired tombstones make the log cleanable"
    );
    t.log.compact(now + 1_000, 1 << 20).unwrap();
    let recs = t.read_all();
    assert!(!recs.iter().any(|r| r.key.as_deref() == Some(b"a")));
    assert_eq!(
        recs.iter()
            .filter(|r| r.key.as_deref() == Some(b"b"))
            .count(),
        1
    );
    assert_eq!(
        recs.iter()
            .filter(|r| r.key.as_deref() == Some(b"c"))
            .count(),
        1
    );
}

#[test]
fn rewritten_batches_keep_producer_fields_and_last_offset() {
    let t = TestLog::new(compact_config());
    let mut b = BatchBuilder::new(0, Compression::Zstd).producer(77, 3, 100);
    b.append(0, 1, Some(b"x"), Some(b"old"), 0, &[]);
    b.append(1, 2, Some(b"y"), Some(b"keep"), 0, &[]);
    b.append(2, 3, Some(b"z"), Some(b"old"), 0, &[]);
    t.append(&b.build().unwrap());
    t.append(&kv("x", Some("new"), 4));
    t.append(&kv("z", Some("new"), 5));
    t.log.roll().unwrap();
    t.log.update_high_watermark(i64::MAX);
    t.log.compact(10, 1 << 20).unwrap().unwrap();
    let r = t.log.read(0, 1 << 20, i64::MAX, true).unwrap();
    let first = BatchIter::new(&r.records).next().unwrap().unwrap();
    first.verify_crc().unwrap();
    let h = first.header;
    assert_eq!((h.base_offset, h.last_offset(), h.records_count), (0, 2, 1));
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (77, 3, 100)
    );
    assert_eq!(h.compression().unwrap(), Compression::Zstd);
}

#[test]
fn ratio_and_lag_decide_when_to_clean() {
    let config = LogConfig {
        min_cleanable_dirty_ratio: 0.9,
        ..compact_config()
    };
    let t = TestLog::new(config);
    for i in 0..30 {
        t.append(&kv(&format!("k{}", i % 3), Some("v"), 1_000));
    }
    t.log.roll().unwrap();
    t.log.update_high_watermark(i64::MAX);
    t.log.compact(2_000, 1 << 20).unwrap().unwrap();
    // A little new dirt: below the 0.9 ratio.
    t.append(&kv("k0", Some("w"), 1_000));
    t.log.roll().unwrap();
    t.log.update_high_watermark(i64::MAX);
    assert!(t.log.dirty_ratio(2_000) > 0.0);
    assert!(!t.log.needs_compaction(2_000));
    // max.compaction.lag.ms forces it once the dirty data is old enough.
    t.log.update_config(LogConfig {
        max_compaction_lag_ms: 5_000,
        ..config
    });
    assert!(!t.log.needs_compaction(5_500));
    assert!(t.log.needs_compaction(6_001));
    // min.compaction.lag.ms keeps young segments out of reach.
    t.log.update_config(LogConfig {
        min_cleanable_dirty_ratio: 0.0,
        min_compaction_lag_ms: 10_000,
        ..config
    });
    assert!(!t.log.needs_compaction(2_000));
    assert_eq!(t.log.compact(2_000, 1 << 20).unwrap(), None);
    assert!(t.log.needs_compaction(20_000));
    t.log.compact(20_000, 1 << 20).unwrap().unwrap();
    let k0: Vec<Rec> = t
        .read_all()
        .into_iter()
        .filter(|r| r.key.as_deref() == Some(b"k0"))
        .collect();
    assert_eq!(k0.len(), 1);
    assert_eq!(k0[0].value.as_deref(), Some(&b"w"[..]));
}

#[test]
fn compaction_never_passes_the_high_watermark_or_active_segment() {
    let t = TestLog::new(compact_config());
    for i in 0..40 {
        t.append(&kv("same", Some(&format!("{i}")), 1));
    }
    // High watermark at 0: nothing is cleanable.
    assert_eq!(t.log.compact(10, 1 << 20).unwrap(), None);
    t.log.update_high_watermark(i64::MAX);
    t.log.compact(10, 1 << 20).unwrap().unwrap();
    let recs = t.read_all();
    let active_base = *t.log.segment_base_offsets().last().unwrap();
    // Everything in the active segment is untouched.
    assert_eq!(
        recs.iter().filter(|r| r.offset >= active_base).count() as i64,
        40 - active_base
    );
    assert_eq!(recs.iter().filter(|r| r.offset < active_base).count(), 1);
}

#[test]
fn small_dedupe_buffer_cleans_in_several_passes() {
    let t = TestLog::new(compact_config());
    for round in 0..4 {
        for k in 0..50 {
            t.append(&kv(&format!("k{k}"), Some(&format!("r{round}")), 1));
        }
    }
    t.log.roll().unwrap();
    t.log.update_high_watermark(i64::MAX);
    let mut passes = 0;
    while t.log.needs_compaction(10) && passes < 50 {
        // 24 bytes per entry, 90% full: 27 keys per pass.
        t.log.compact(10, 24 * 30).unwrap();
        passes += 1;
    }
    assert!(passes > 1, "{passes}");
    // The last dirty pass covers everything: one more pass finishes the job.
    t.log.compact(10, 1 << 20).unwrap();
    let recs = t.read_all();
    assert_eq!(recs.len(), 50);
    assert!(recs.iter().all(|r| r.value.as_deref() == Some(&b"r3"[..])));
}

#[test]
fn compact_and_delete_does_both() {
    let t = TestLog::new(LogConfig {
        cleanup_delete: true,
        retention_ms: 1_000,
        ..compact_config()
    });
    for i in 0..30 {
        t.append(&kv(&format!("k{}", i % 2), Some("v"), i * 100));
    }
    t.log.roll().unwrap();
    t.log.update_high_watermark(i64::MAX);
    t.log.compact(5_000, 1 << 20).unwrap().unwrap();
    assert_eq!(t.read_all().len(), 2);
    // Compaction left empty segments behind; retention removes them too.
    t.log.enforce_retention(1_000_000).unwrap();
    assert_eq!(t.read_all().len(), 0);
    assert_eq!(t.log.log_start_offset(), 30);
}

#[test]
fn cleaner_thread_compacts_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_cleanable_dirty_ratio: 0.1,
        ..compact_config()
    };
    let mut opts = options(dir.path());
    opts.cleaner_enabled = true;
    opts.cleaner_backoff_ms = 10;
    let m = millrace_storage::LogManager::open(opts, move |_| config).unwrap();
    let log = m.get_or_create(&tp(), topic_id(), config).unwrap();
    for i in 0..50 {
        let mut b = kv(&format!("k{}", i % 5), Some("v"), 1);
        log.append_as_leader(&mut b, 0, None).unwrap();
    }
    log.roll().unwrap();
    log.update_high_watermark(i64::MAX);
    m.start_background_tasks();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while read_all(&log).len() > 5 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(read_all(&log).len(), 5);
    m.shutdown().unwrap();
    let cp = std::fs::read_to_string(dir.path().join("cleaner-offset-checkpoint")).unwrap();
    assert!(cp.contains("test-topic 0 50"), "{cp}");
}
