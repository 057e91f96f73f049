//! Leader-append throughput of one partition log, for 1 KiB and 16 KiB
//! plain batches and 1 KiB / 16 KiB idempotent batches (producer id set,
//! sequence advanced and CRC recomputed before every append, so the
//! producer-state validation runs on each). Run with `cargo run --release -p millrace-storage --example
//! append_bench`; each size runs for about two seconds in a temp dir (set
//! `APPEND_BENCH_DIR` to measure another disk).

use std::time::{Duration, Instant};

use millrace_protocol::records::{BatchBuilder, Compression};
use millrace_storage::{LogConfig, LogManager, LogManagerOptions, TopicPartition};

/// A batch of about `size` bytes: 1 KiB values, or one record for small sizes.
fn batch(size: usize, idempotent: bool) -> Vec<u8> {
    let per_record = size.min(1024);
    let records = (size / per_record).max(1);
    let value = vec![b'x'; per_record.saturating_sub(80 / records + 10)];
    let mut b = BatchBuilder::new(0, Compression::None);
    if idempotent {
        b = b.producer(1000, 0, 0);
    }
    for i in 0..records {
        b.append(i as i64, 1_700_000_000_000, None, Some(&value), 0, &[]);
    }
    b.build().map(|b| b.to_vec()).unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::var_os("APPEND_BENCH_DIR").map(std::path::PathBuf::from);
    let dir = match &base {
        Some(p) => tempfile::tempdir_in(p)?,
        None => tempfile::tempdir()?,
    };
    let config = LogConfig::default();
    let options = LogManagerOptions {
        log_dirs: vec![dir.path().to_path_buf()],
        cleaner_enabled: false,
        ..LogManagerOptions::default()
    };
    let manager = LogManager::open(options, move |_| config)?;
    manager.start_background_tasks();
    println!("log dir: {}", dir.path().display());
    let runs = [
        (1024usize, false),
        (16 * 1024, false),
        (1024, true),
        (16 * 1024, true),
    ];
    for (i, (size, idempotent)) in runs.into_iter().enumerate() {
        let tp = TopicPartition::new("bench", i as i32);
        let log = manager.get_or_create(&tp, uuid::Uuid::new_v4(), config)?;
        let mut buf = batch(size, idempotent);
        let records = i32::from_be_bytes([buf[57], buf[58], buf[59], buf[60]]);
        let mut seq = 0i32;
        let started = Instant::now();
        let mut batches = 0u64;
        let mut bytes = 0u64;
        while started.elapsed() < Duration::from_secs(2) {
            for _ in 0..256 {
                if idempotent {
                    // base_sequence, then the CRC over attributes onward.
                    buf[53..57].copy_from_slice(&seq.to_be_bytes());
                    let crc = crc32c::crc32c(&buf[21..]);
                    buf[17..21].copy_from_slice(&crc.to_be_bytes());
                    seq = seq.wrapping_add(records);
                }
                log.append_as_leader(&mut buf, 0, None)?;
                batches += 1;
                bytes += buf.len() as u64;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{:>6} B {} batches: {:>9.1} MB/s {:>10.0} batches/s ({} batches, {} segments)",
            buf.len(),
            if idempotent {
                "idempotent"
            } else {
                "plain     "
            },
            bytes as f64 / secs / 1e6,
            batches as f64 / secs,
            batches,
            log.segment_count()
        );
    }
    manager.shutdown()?;
    Ok(())
}
