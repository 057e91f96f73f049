//! Retention by time and size, and delayed removal of deleted segments.

#![allow(clippy::unwrap_used)]

mod util;

use std::fs;

use millrace_storage::LogConfig;
use util::*;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1_000,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    }
}

fn deleted_files(t: &TestLog) -> usize {
    fs::read_dir(t.partition_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".deleted")
        })
        .count()
}

#[test]
fn retention_by_time_deletes_old_segments_oldest_first() {
    let t = TestLog::new(LogConfig {
        retention_ms: 10_000,
        ..config()
    });
    for i in 0..40 {
        // Timestamps 0..39_000 ms.
        t.append(&sized_batch(2, 100, i * 1_000));
    }
    let segments = t.log.segment_count();
    assert!(segments > 5);
    // Nothing goes past the high watermark.
    assert_eq!(t.log.enforce_retention(45_000).unwrap(), 0);
    t.log.update_high_watermark(i64::MAX);
    let deleted = t.log.enforce_retention(45_000).unwrap();
    assert!(deleted > 0);
    assert_eq!(t.log.segment_count(), segments - deleted);
    let start = t.log.log_start_offset();
    assert_eq!(start, t.log.segment_base_offsets()[0]);
    // Every remaining non-active segment holds a record newer than 35 s.
    let first = t.read_all()[0].clone();
    assert_eq!(first.offset, start);
    assert!(deleted_files(&t) > 0, "segments renamed .deleted first");
    t.manager.shutdown().unwrap();
    assert_eq!(deleted_files(&t), 0, "removed after file.delete.delay.ms");
}

#[test]
fn retention_by_size_keeps_at_most_retention_bytes() {
    let t = TestLog::new(LogConfig {
        retention_bytes: 3_000,
        retention_ms: -1,
        ..config()
    });
    for i in 0..60 {
        t.append(&sized_batch(2, 100, i));
    }
    t.log.update_high_watermark(i64::MAX);
    let before = t.log.size_bytes();
    let deleted = t.log.enforce_retention(0).unwrap();
    assert!(deleted > 0);
    assert!(
        t.log.size_bytes() <= 3_000 + 1_000,
        "{} bytes left",
        t.log.size_bytes()
    );
    assert!(t.log.size_bytes() < before);
    assert!(t.log.size_bytes() > 3_000 - 1_000);
}

#[test]
fn expiring_everything_rolls_an_empty_segment() {
    let t = TestLog::new(LogConfig {
        retention_ms: 1_000,
        ..config()
    });
    for i in 0..10 {
        t.append(&sized_batch(1, 100, i));
    }
    t.log.update_high_watermark(i64::MAX);
    let end = t.log.log_end_offset();
    t.log.enforce_retention(1_000_000).unwrap();
    assert_eq!(t.log.segment_base_offsets(), vec![end]);
    assert_eq!(t.log.log_start_offset(), end);
    assert_eq!(t.log.log_end_offset(), end);
    assert_eq!(t.log.size_bytes(), 0);
    // An empty last segment is never deleted.
    assert_eq!(t.log.enforce_retention(2_000_000).unwrap(), 0);
    let info = t.append(&sized_batch(1, 1, 0));
    assert_eq!(info.first_offset, end);
    let t = t.restart();
    assert_eq!(t.log.log_start_offset(), end);
    assert_eq!(t.log.log_end_offset(), end + 1);
}

#[test]
fn compact_only_topics_ignore_time_and_size() {
    let t = TestLog::new(LogConfig {
        retention_ms: 1,
        retention_bytes: 1,
        cleanup_delete: false,
        cleanup_compact: true,
        ..config()
    });
    for i in 0..20 {
        t.append(&sized_batch(1, 100, i));
    }
    t.log.update_high_watermark(i64::MAX);
    assert_eq!(t.log.enforce_retention(i64::MAX / 2).unwrap(), 0);
}

#[test]
fn background_retention_thread_runs_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: 1,
        ..config()
    };
    let mut opts = options(dir.path());
    opts.retention_check_interval_ms = 20;
    opts.checkpoint_interval_ms = 20;
    let m = millrace_storage::LogManager::open(opts, move |_| config).unwrap();
    let log = m.get_or_create(&tp(), topic_id(), config).unwrap();
    for i in 0..20 {
        let mut b = sized_batch(1, 100, i);
        log.append_as_leader(&mut b, 0, None).unwrap();
    }
    log.update_high_watermark(i64::MAX);
    m.start_background_tasks();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while log.log_start_offset() < 20 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(log.log_start_offset(), 20);
    while !dir.path().join("log-start-offset-checkpoint").exists()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    m.shutdown().unwrap();
    let cp = fs::read_to_string(dir.path().join("log-start-offset-checkpoint")).unwrap();
    assert!(cp.contains("test-topic 0 20"), "{cp}");
}
