//! A full disk (ENOSPC on a small tmpfs) and a failing disk (offline dirs).

#![allow(clippy::unwrap_used)]

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use millrace_storage::{LogConfig, LogManager, StorageError, TopicPartition};
use util::*;

/// A small tmpfs mounted for one test and unmounted on drop.
struct Tmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        // SAFETY-free check for root: `id -u` avoids unsafe libc calls.
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| format!("id: {e}"))?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("not running as root".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().to_path_buf();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(Tmpfs { _dir: dir, path })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn fill_until_full(log: &millrace_storage::Log, batch: &[u8]) -> usize {
    for n in 0..100_000 {
        let mut b = batch.to_vec();
        match log.append_as_leader(&mut b, 0, None) {
            Ok(_) => {}
            Err(StorageError::NoSpace { .. }) => return n,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    panic!("the disk never filled");
}

fn segment_bytes_on_disk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

#[test]
fn a_full_disk_fails_the_append_and_leaves_the_log_as_it_was() {
    let fs = match Tmpfs::mount("2m") {
        Ok(fs) => fs,
        Err(why) => {
            println!("skipping the full-disk test: {why}");
            return;
        }
    };
    for segment_bytes in [64 * 1024 * 1024, 100 * 1024] {
        let root = fs.path.join(format!("case-{segment_bytes}"));
        let ballast = fs.path.join(format!("ballast-{segment_bytes}"));
        std::fs::write(&ballast, vec![0u8; 256 * 1024]).unwrap();
        let config = LogConfig {
            segment_bytes,
            index_interval_bytes: 512,
            ..LogConfig::default()
        };
        let m = LogManager::open(options(&root), move |_| config).unwrap();
        let log = m.get_or_create(&tp(), topic_id(), config).unwrap();
        let batch = sized_batch(4, 3_000, 1);
        let appended = fill_until_full(&log, &batch);
        assert!(appended > 0);
        let end = log.log_end_offset();
        assert_eq!(end, appended as i64 * 4);
        assert_eq!(
            segment_bytes_on_disk(log.dir()),
            log.size_bytes(),
            "partial write cut back"
        );
        assert_eq!(log.size_bytes(), (appended * batch.len()) as u64);
        assert!(
            m.offline_dirs().is_empty(),
            "a full disk is not a failed disk"
        );
        // Everything acknowledged is still readable.
        let all = read_all(&log);
        assert_eq!(all.len() as i64, end);
        // A new epoch's checkpoint cannot be written either: still nothing changes.
        let mut b = batch.clone();
        assert!(matches!(
            log.append_as_leader(&mut b, 9, None),
            Err(StorageError::NoSpace { .. })
        ));
        assert_eq!(log.latest_epoch(), Some(0));
        assert_eq!(log.log_end_offset(), end);
        // Free space: the next append works and lands right after the old end.
        std::fs::remove_file(&ballast).unwrap();
        let mut b = batch.clone();
        let info = log.append_as_leader(&mut b, 1, None).unwrap();
        assert_eq!(info.first_offset, end);
        assert_eq!(log.latest_epoch(), Some(1));
        drop(log);
        m.shutdown().unwrap();
        let m = LogManager::open(options(&root), move |_| config).unwrap();
        let log = m.get(&tp()).unwrap();
        assert_eq!(log.log_end_offset(), end + 4);
        assert_eq!(read_all(&log).len() as i64, end + 4);
        m.shutdown().unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }
}

#[test]
fn an_io_error_takes_the_dir_offline_and_spares_the_others() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let mut opts = options(a.path());
    opts.log_dirs.push(b.path().to_path_buf());
    let config = LogConfig::default();
    let m = LogManager::open(opts.clone(), move |_| config).unwrap();
    let t0 = TopicPartition::new("t", 0);
    let t1 = TopicPartition::new("t", 1);
    let log0 = m.get_or_create(&t0, topic_id(), config).unwrap();
    let log1 = m.get_or_create(&t1, topic_id(), config).unwrap();
    assert_ne!(log0.log_dir(), log1.log_dir());
    let mut batch = simple_batch(2, 0);
    log0.append_as_leader(&mut batch, 0, None).unwrap();
    // The disk "fails": the partition dir vanishes under the log.
    std::fs::remove_dir_all(log0.dir()).unwrap();
    let err = log0.roll().unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    let failed = log0.log_dir().to_path_buf();
    assert!(
        matches!(log0.append_as_leader(&mut simple_batch(1, 0), 0, None), Err(StorageError::LogDirOffline(p)) if p == failed)
    );
    assert!(matches!(
        log0.read(0, 100, i64::MAX, true),
        Err(StorageError::LogDirOffline(_))
    ));
    assert_eq!(m.offline_dirs().len(), 1);
    assert_eq!(m.offline_dirs()[0].0, failed);
    let usage = m.dir_usage();
    let bad = usage.iter().find(|u| u.path == failed).unwrap();
    assert!(bad.error.is_some());
    // The other dir keeps working and takes new partitions.
    log1.append_as_leader(&mut simple_batch(1, 0), 0, None)
        .unwrap();
    let t2 = TopicPartition::new("t", 2);
    let log2 = m.get_or_create(&t2, topic_id(), config).unwrap();
    assert_eq!(log2.log_dir(), log1.log_dir());
    m.shutdown().unwrap();
    assert!(!failed.join(".kafka_cleanshutdown").exists());
    assert!(log1.log_dir().join(".kafka_cleanshutdown").exists());
}

#[test]
fn an_unusable_dir_at_start_up_is_offline_but_the_broker_starts() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let not_a_dir = a.path().join("file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let mut opts = options(&not_a_dir);
    opts.log_dirs.push(b.path().to_path_buf());
    let m = LogManager::open(opts, |_| LogConfig::default()).unwrap();
    assert_eq!(m.offline_dirs().len(), 1);
    let log = m
        .get_or_create(&tp(), topic_id(), LogConfig::default())
        .unwrap();
    assert_eq!(log.log_dir(), b.path());
    // With no usable dir at all, open fails.
    assert!(LogManager::open(options(&not_a_dir), |_| LogConfig::default()).is_err());
}
