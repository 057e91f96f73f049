//! Restart after clean shutdown and crash recovery.

#![allow(clippy::unwrap_used)]

mod util;

use std::fs::{self, OpenOptions};
use std::time::Instant;

use millrace_storage::LogConfig;
use util::*;

fn segment_files(t: &TestLog, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(t.partition_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn fill(t: &TestLog, batches: usize) -> Vec<Rec> {
    let mut expected = Vec::new();
    for i in 0..batches {
        let b = sized_batch(3, 40, i as i64 * 10);
        let info = t.append(&b);
        expected.extend(expected_records(&b, info.first_offset, 0));
    }
    expected
}

#[test]
fn clean_restart_keeps_everything_and_is_marked_clean() {
    let t = TestLog::new(LogConfig {
        index_interval_bytes: 256,
        ..LogConfig::default()
    });
    let expected = fill(&t, 100);
    t.log.update_high_watermark(150);
    let t = t.restart();
    assert!(t.manager.was_clean_shutdown());
    assert_eq!(t.log.log_end_offset(), 300);
    assert_eq!(t.log.high_watermark(), 150);
    assert_eq!(t.read_all(), expected);
    // Appends continue in the old active segment.
    let active = *t.log.segment_base_offsets().last().unwrap();
    t.append(&sized_batch(1, 1, 0));
    assert_eq!(*t.log.segment_base_offsets().last().unwrap(), active);
    assert_eq!(t.log.log_end_offset(), 301);
}

#[test]
fn clean_restart_of_a_large_log_does_not_scan_data() {
    let config = LogConfig {
        segment_bytes: 8 << 20,
        ..LogConfig::default()
    };
    let t = TestLog::new(config);
    let batch = sized_batch(16, 1024, 0);
    let n = (64 << 20) / batch.len();
    for _ in 0..n {
        t.append(&batch);
    }
    let end = t.log.log_end_offset();
    let mut t = t;
    let mut elapsed = std::time::Duration::MAX;
    for _ in 0..3 {
        t.manager.shutdown().unwrap();
        let started = Instant::now();
        t = t.reopen_only();
        elapsed = elapsed.min(started.elapsed());
    }
    assert_eq!(t.log.log_end_offset(), end);
    assert!(t.log.segment_count() >= 8);
    // Compare with a full recovery of the same log (no recovery point
    // checkpoint: every batch is validated), which does scan the data.
    let t = t.crash_prepare();
    fs::remove_file(t.dir.path().join("recovery-point-offset-checkpoint")).unwrap();
    let started = Instant::now();
    let t = t.reopen_only();
    let recovery = started.elapsed();
    assert_eq!(t.log.log_end_offset(), end);
    println!("clean open {elapsed:?}, full recovery {recovery:?}");
    assert!(
        elapsed * 5 < recovery,
        "clean open took {elapsed:?}, full recovery {recovery:?}"
    );
    let r = t.log.read(end / 2, 1, i64::MAX, true).unwrap();
    assert!(!r.records.is_empty());
}

#[test]
fn crash_recovery_cuts_a_torn_tail() {
    let t = TestLog::new(small_config());
    let expected = fill(&t, 60);
    let logs = segment_files(&t, ".log");
    let last = logs.last().unwrap().clone();
    let t = t.crash_prepare();
    let len = fs::metadata(&last).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let t = t.reopen_only();
    assert!(!t.manager.was_clean_shutdown());
    let got = t.read_all();
    assert_eq!(got.len(), expected.len() - 3, "the torn batch is gone");
    assert_eq!(got, expected[..got.len()]);
    assert_eq!(t.log.log_end_offset(), got.last().unwrap().offset + 1);
    let info = t.append(&sized_batch(1, 1, 0));
    assert_eq!(info.first_offset, got.len() as i64);
}

#[test]
fn crash_recovery_stops_at_a_corrupt_batch_and_drops_later_segments() {
    let t = TestLog::new(small_config());
    let expected = fill(&t, 120);
    let logs = segment_files(&t, ".log");
    assert!(logs.len() >= 4);
    let t = t.crash_prepare();
    // Flip a byte inside the second segment's second batch.
    let victim = &logs[1];
    let mut bytes = fs::read(victim).unwrap();
    let first_len = millrace_protocol::records::BatchHeader::parse(&bytes)
        .unwrap()
        .size();
    bytes[first_len + 70] ^= 0xff;
    fs::write(victim, &bytes).unwrap();
    let t = t.reopen_only();
    let got = t.read_all();
    assert_eq!(got, expected[..got.len()]);
    let second_base = got.iter().filter(|r| r.offset >= 0).count();
    assert!(second_base < expected.len());
    assert_eq!(
        t.log.segment_count(),
        2,
        "segments after the corruption are deleted"
    );
    assert_eq!(segment_files(&t, ".log").len(), 2);
}

#[test]
fn epoch_entries_past_the_recovered_end_are_dropped() {
    let t = TestLog::new(LogConfig::default());
    for e in 0..4 {
        let mut b = simple_batch(2, e);
        t.log.append_as_leader(&mut b, e as i32, None).unwrap();
    }
    assert_eq!(t.log.epoch_entries(), vec![(0, 0), (1, 2), (2, 4), (3, 6)]);
    let log_file = segment_files(&t, ".log")[0].clone();
    let t = t.crash_prepare();
    let len = fs::metadata(&log_file).unwrap().len();
    let one = simple_batch(2, 0).len() as u64;
    OpenOptions::new()
        .write(true)
        .open(&log_file)
        .unwrap()
        .set_len(len - one - 3)
        .unwrap();
    let t = t.reopen_only();
    assert_eq!(t.log.log_end_offset(), 4);
    assert_eq!(t.log.epoch_entries(), vec![(0, 0), (1, 2)]);
    let text = fs::read_to_string(t.partition_dir().join("leader-epoch-checkpoint")).unwrap();
    assert_eq!(text, "0\n2\n0 0\n1 2\n");
}

#[test]
fn bad_index_files_are_rebuilt_after_a_clean_shutdown() {
    let t = TestLog::new(small_config());
    let expected = fill(&t, 100);
    t.manager.shutdown().unwrap();
    let indexes = segment_files(&t, ".index");
    fs::write(&indexes[0], [1u8; 13]).unwrap(); // not a multiple of 8
    fs::remove_file(&indexes[1]).unwrap();
    let timeindexes = segment_files(&t, ".timeindex");
    fs::write(&timeindexes[2], [0xffu8; 24]).unwrap(); // points past the segment
    let t = t.reopen_only();
    assert!(t.manager.was_clean_shutdown());
    assert_eq!(t.read_all(), expected);
    for r in expected.iter().step_by(7) {
        let got = t.log.read(r.offset, 1, i64::MAX, true).unwrap();
        assert!(!got.records.is_empty());
    }
    assert_eq!(
        t.log.offset_for_timestamp(200).unwrap().map(|x| x.offset),
        Some(60)
    );
}

#[test]
fn leftover_transition_files_are_cleaned_up() {
    let t = TestLog::new(small_config());
    let expected = fill(&t, 20);
    t.manager.shutdown().unwrap();
    let pdir = t.partition_dir();
    for junk in [
        "00000000000000000000.log.cleaned",
        "00000000000000000000.index.cleaned",
        "00000000000000000003.log.deleted",
        "00000000000000000003.timeindex.deleted",
        "00000000000000000009.index.swap",
        "00000000000000099999.index",
        "leader-epoch-checkpoint.tmp",
    ] {
        fs::write(pdir.join(junk), b"junk").unwrap();
    }
    let gone = t
        .path()
        .join("test-topic-1.0123456789abcdef0123456789abcdef-delete");
    fs::create_dir(&gone).unwrap();
    fs::write(gone.join("00000000000000000000.log"), b"x").unwrap();
    fs::write(t.path().join("meta.properties"), b"version=1\n").unwrap();
    let t = t.reopen_only();
    assert_eq!(t.read_all(), expected);
    let names: Vec<String> = fs::read_dir(&pdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for n in &names {
        assert!(
            !n.contains(".cleaned")
                && !n.contains(".deleted")
                && !n.contains(".swap")
                && !n.ends_with(".tmp"),
            "{n} left over"
        );
        assert_ne!(n, "00000000000000099999.index");
    }
    t.manager.shutdown().unwrap();
    assert!(!gone.exists(), "-delete dir removed");
    assert!(
        t.path().join("meta.properties").exists(),
        "meta.properties untouched"
    );
}

#[test]
fn recovery_starts_at_the_checkpointed_recovery_point() {
    let t = TestLog::new(small_config());
    fill(&t, 40);
    t.log.flush().unwrap();
    let rp = t.log.recovery_point();
    assert_eq!(rp, t.log.log_end_offset());
    t.manager.checkpoint().unwrap();
    let cp = fs::read_to_string(t.path().join("recovery-point-offset-checkpoint")).unwrap();
    assert_eq!(cp, format!("0\n1\ntest-topic 0 {rp}\n"));
    let expected2 = fill(&t, 10);
    let t = t.crash();
    let got = t.read_all();
    assert_eq!(got.len(), 150);
    assert_eq!(&got[120..], &expected2[..]);
}
