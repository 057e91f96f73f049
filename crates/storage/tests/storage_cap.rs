//! The broker-wide storage cap (`LogManagerOptions::max_bytes`, the
//! broker's `millrace.log.dirs.max.bytes`): appends past it are refused
//! without writing anything, leader and follower alike, and the running
//! total follows every way bytes leave a log, so room comes back by itself.

#![allow(clippy::unwrap_used)]

mod util;

use millrace_storage::{Log, LogConfig, LogManager, StorageError, TopicPartition};
use util::*;

/// The bytes the logs hold, summed the slow way.
fn held(m: &LogManager) -> u64 {
    m.logs().iter().map(|l| l.size_bytes()).sum()
}

fn segment_bytes_on_disk(log: &Log) -> u64 {
    std::fs::read_dir(log.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

fn append(log: &Log, batch: &[u8]) -> Result<i64, StorageError> {
    let mut b = batch.to_vec();
    let info = log.append_as_leader(&mut b, 0, None)?;
    log.update_high_watermark(info.last_offset + 1);
    Ok(info.last_offset + 1)
}

#[test]
fn the_cap_refuses_appends_and_every_way_of_freeing_space_gives_room_back() {
    let dir = tempfile::tempdir().unwrap();
    let batch = sized_batch(4, 1_000, 1);
    let size = batch.len() as u64;
    let config = LogConfig {
        segment_bytes: size * 3,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    };
    let mut opts = options(dir.path());
    opts.max_bytes = size * 20 + size / 2;
    let m = LogManager::open(opts.clone(), move |_| config).unwrap();
    let a = m
        .get_or_create(&TopicPartition::new("a", 0), topic_id(), config)
        .unwrap();
    let b = m
        .get_or_create(&TopicPartition::new("b", 0), topic_id(), config)
        .unwrap();

    // Fill both logs until the cap refuses.
    let mut appended = 0;
    loop {
        let log = if appended % 2 == 0 { &a } else { &b };
        match append(log, &batch) {
            Ok(_) => appended += 1,
            Err(StorageError::CapReached { used, cap, .. }) => {
                assert_eq!(cap, size * 20 + size / 2);
                assert_eq!(used, size * 20);
                break;
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
        assert!(appended <= 20, "the cap never refused");
    }
    assert_eq!(appended, 20);
    assert_eq!(m.disk_usage().used(), held(&m));
    let (a_end, b_end) = (a.log_end_offset(), b.log_end_offset());
    // Refused means untouched: the other log too, and on disk.
    assert!(matches!(
        append(&b, &batch),
        Err(StorageError::CapReached { .. })
    ));
    assert_eq!((a.log_end_offset(), b.log_end_offset()), (a_end, b_end));
    assert_eq!(segment_bytes_on_disk(&a), a.size_bytes());
    assert_eq!(read_all(&a).len() as i64, a_end);
    assert!(m.offline_dirs().is_empty(), "the cap is not a failed disk");
    let dirs = m.dir_usage();
    assert_eq!(
        dirs[0].total_bytes,
        size * 20 + size / 2,
        "the cap is the disk"
    );
    assert_eq!(dirs[0].usable_bytes, size / 2);

    // A follower at the cap keeps its log as it was.
    let f = m
        .get_or_create(&TopicPartition::new("f", 0), topic_id(), config)
        .unwrap();
    assert!(matches!(
        f.append_as_follower(&batch),
        Err(StorageError::CapReached { .. })
    ));
    assert_eq!(f.log_end_offset(), 0);
    assert_eq!(f.size_bytes(), 0);

    // DeleteRecords: whole segments below the new start go.
    let before = m.disk_usage().used();
    a.delete_records_before(a_end).unwrap();
    assert!(m.disk_usage().used() < before);
    assert_eq!(m.disk_usage().used(), held(&m));
    f.append_as_follower(&batch).unwrap();
    assert_eq!(f.log_end_offset(), 4);

    // Retention by size.
    let mut retained = config;
    retained.retention_bytes = 0;
    b.update_config(retained);
    b.enforce_retention(i64::MAX / 2).unwrap();
    assert_eq!(m.disk_usage().used(), held(&m));

    // Truncation (a follower reconciling with a new leader).
    let f_end = append(&f, &batch).unwrap();
    f.truncate_to(f_end - 4).unwrap();
    assert_eq!(m.disk_usage().used(), held(&m));

    // Deleting a partition.
    m.delete(&TopicPartition::new("f", 0)).unwrap();
    assert_eq!(m.disk_usage().used(), held(&m));

    // Fill again, then raise the cap: appends go on where they stopped.
    while append(&a, &batch).is_ok() {}
    let end = a.log_end_offset();
    m.set_max_bytes(opts.max_bytes * 2);
    assert_eq!(append(&a, &batch).unwrap(), end + 4);
    let total = m.disk_usage().used();
    assert_eq!(total, held(&m));

    // Reopened, the manager counts what is on disk.
    drop((a, b));
    m.shutdown().unwrap();
    drop(m);
    let m = LogManager::open(opts, move |_| config).unwrap();
    assert_eq!(m.disk_usage().used(), total);
    assert_eq!(m.disk_usage().used(), held(&m));
    let a = m.get(&TopicPartition::new("a", 0)).unwrap();
    assert!(
        matches!(append(&a, &batch), Err(StorageError::CapReached { .. })),
        "the configured cap applies again after a restart"
    );
    m.shutdown().unwrap();
}
