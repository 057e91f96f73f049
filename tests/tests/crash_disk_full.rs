//! A full disk: `log.dirs` on a small tmpfs, filled by producing until the
//! broker answers KAFKA_STORAGE_ERROR. Nothing acknowledged may be lost,
//! reads must keep working while the disk is full, and once space is freed
//! writes must succeed again (a full disk is not a failed disk: the log dir
//! stays online).
//!
//! Needs root and a working `mount -t tmpfs`; otherwise the test prints why
//! and passes without checking anything.

#![allow(clippy::unwrap_used)]

mod crash_util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crash_util::{Delivery, Reports, Sent};
use millrace_tests::TestBroker;
use rdkafka::error::RDKafkaErrorCode;

const TOPIC: &str = "fill";
const PARTITIONS: i32 = 2;
const TMPFS_SIZE: &str = "16m";
const BALLAST: usize = 6 << 20;
const FILLER: usize = 4_000;

/// A tmpfs mounted for the test; unmounted on drop, whatever happened.
struct Tmpfs {
    _parent: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let parent = tempfile::Builder::new()
            .prefix("millrace-tmpfs-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let path = parent.path().join("mnt");
        std::fs::create_dir(&path).map_err(|e| format!("mkdir: {e}"))?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            _parent: parent,
            path,
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        for attempt in 0..20 {
            let ok = Command::new("umount")
                .arg(&self.path)
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            if attempt < 19 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // Still busy: detach it so nothing stays mounted.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Sends `count` records round-robin over the partitions and waits for
/// every report; returns the outcomes by seq.
fn wave(bootstrap: &str, first_seq: u64, count: u64) -> Vec<(u64, Delivery)> {
    let reports = Arc::new(Reports::default());
    let producer = crash_util::producer(bootstrap, "none", reports.clone(), &[]);
    for seq in first_seq..first_seq + count {
        let partition = (seq % PARTITIONS as u64) as i32;
        crash_util::send(
            &producer,
            TOPIC,
            partition,
            seq,
            &crash_util::value_of(seq, FILLER),
        );
        producer.poll(Duration::ZERO);
    }
    crash_util::drain(&producer, Duration::from_secs(30));
    let mut out: Vec<(u64, Delivery)> = reports.outcomes.lock().unwrap().drain().collect();
    out.sort_by_key(|o| o.0);
    assert_eq!(out.len() as u64, count);
    out
}

fn record(sent: &mut [Sent], round: u32, outcomes: &[(u64, Delivery)]) {
    for (seq, d) in outcomes {
        sent[(seq % PARTITIONS as u64) as usize]
            .records
            .insert(*seq, (round, d.clone()));
    }
}

fn check_all(bootstrap: &str, sent: &[Sent]) -> usize {
    let logs = crash_util::read_all(bootstrap, TOPIC, PARTITIONS);
    let mut total = 0;
    for (p, log) in logs.iter().enumerate() {
        let (acked, unacked) = crash_util::check_partition(TOPIC, p as i32, log, &sent[p], FILLER);
        assert_eq!(
            unacked, 0,
            "{TOPIC}-{p}: records written although not acknowledged"
        );
        total += acked;
    }
    total
}

#[test]
fn full_disk_rejects_writes_keeps_data_and_recovers_when_space_is_freed() {
    if !is_root() {
        println!("SKIPPED: mounting a tmpfs needs root");
        return;
    }
    let tmpfs = match Tmpfs::mount(TMPFS_SIZE) {
        Ok(t) => t,
        Err(why) => {
            println!("SKIPPED: {why}");
            return;
        }
    };
    // Space to give back later: a file of our own on the same tmpfs.
    let ballast = tmpfs.path().join("ballast");
    std::fs::write(&ballast, vec![0x5au8; BALLAST]).unwrap();
    let log_dir = tmpfs.path().join("logs");
    let mut broker = TestBroker::start(&[("log.dirs", log_dir.to_str().unwrap())]);
    let bootstrap = broker.bootstrap();
    crash_util::create_topic(
        &bootstrap,
        TOPIC,
        PARTITIONS,
        &[("segment.bytes", "1048576")],
    );

    // Fill the disk.
    let mut sent = vec![Sent::default(); PARTITIONS as usize];
    let mut next_seq = 0u64;
    let mut storage_errors = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while storage_errors == 0 {
        assert!(
            Instant::now() < deadline && next_seq < 20_000,
            "no KAFKA_STORAGE_ERROR after {next_seq} records on a {TMPFS_SIZE} tmpfs"
        );
        let outcomes = wave(&bootstrap, next_seq, 100);
        next_seq += 100;
        for (seq, d) in &outcomes {
            if let Delivery::Failed { error, code, .. } = d {
                assert_eq!(
                    *code,
                    Some(RDKafkaErrorCode::KafkaStorageError),
                    "record {seq} failed with {error}, expected KafkaStorageError"
                );
                storage_errors += 1;
            }
        }
        record(&mut sent, 0, &outcomes);
    }
    let acked_when_full = check_all(&bootstrap, &sent);
    println!(
        "disk full after {next_seq} records: {acked_when_full} acknowledged, {storage_errors} rejected with KAFKA_STORAGE_ERROR"
    );
    assert!(acked_when_full > 0);

    // Still (nearly) full: a write either fits in what is left or fails
    // with KAFKA_STORAGE_ERROR, never anything else; reads keep working.
    let outcomes = wave(&bootstrap, next_seq, 20);
    next_seq += 20;
    for (seq, d) in &outcomes {
        if let Delivery::Failed { error, code, .. } = d {
            assert_eq!(
                *code,
                Some(RDKafkaErrorCode::KafkaStorageError),
                "record {seq}: {error}"
            );
        }
    }
    println!(
        "still full: {} of 20 more records rejected",
        outcomes
            .iter()
            .filter(|(_, d)| matches!(d, Delivery::Failed { .. }))
            .count()
    );
    record(&mut sent, 1, &outcomes);
    check_all(&bootstrap, &sent);

    // Free space: writes succeed again, continuing the same logs.
    std::fs::remove_file(&ballast).unwrap();
    let outcomes = wave(&bootstrap, next_seq, 200);
    for (seq, d) in &outcomes {
        assert!(
            matches!(d, Delivery::Acked(_)),
            "record {seq} failed after space was freed: {d:?}\n{}",
            broker.output()
        );
    }
    record(&mut sent, 2, &outcomes);
    let acked_total = check_all(&bootstrap, &sent);
    println!("after freeing {BALLAST} bytes: {acked_total} records acknowledged and readable");

    let out = crash_util::strip_ansi(&broker.output());
    assert!(
        !out.contains("goes offline"),
        "a full disk must not take the log dir offline:\n{out}"
    );
    assert!(!out.contains("panicked at"), "broker panicked:\n{out}");

    // The logs that hit ENOSPC restart cleanly with everything in them.
    broker.stop();
    broker.restart();
    assert_eq!(check_all(&bootstrap, &sent), acked_total);
    broker.stop();
    drop(broker);
    drop(tmpfs);
}
