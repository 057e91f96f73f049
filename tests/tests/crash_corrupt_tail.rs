//! Recovery from a damaged active segment: records are produced, the
//! broker is killed with SIGKILL (no clean-shutdown marker), the tail of
//! the active `.log` file is damaged by hand, and the broker restarted.
//! It must start, end the log at the last whole valid batch (everything
//! before readable at the same offsets), log the truncation, and continue
//! new writes from there.

#![allow(clippy::unwrap_used)]

mod crash_util;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crash_util::{Delivery, Reports};
use millrace_protocol::records::BatchIter;
use millrace_tests::TestBroker;
use rand::{Rng, SeedableRng};

const TOPIC: &str = "torn";
const FILLER: usize = 120;

/// How the tail is damaged.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Random bytes appended after the last batch.
    AppendGarbage,
    /// Zero bytes appended (as a preallocated or half-extended file has).
    AppendZeros,
    /// The file cut inside the last batch.
    TruncateLastBatch,
    /// One byte of the last batch changed (magic, CRC or CRC-covered bytes).
    FlipByteInLastBatch,
}

/// A batch of the segment file: where it is and which offsets it holds.
#[derive(Debug, Clone, Copy)]
struct BatchPos {
    position: usize,
    size: usize,
    base_offset: i64,
    next_offset: i64,
}

fn active_segment(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop()
        .unwrap_or_else(|| panic!("no .log file in {}", dir.display()))
}

fn batches(bytes: &[u8]) -> Vec<BatchPos> {
    let mut iter = BatchIter::new(bytes);
    let mut out = Vec::new();
    let mut position = 0;
    for batch in iter.by_ref() {
        let batch = batch.expect("the segment written by the broker is valid");
        batch.verify_crc().expect("valid CRC");
        out.push(BatchPos {
            position,
            size: batch.bytes.len(),
            base_offset: batch.header.base_offset,
            next_offset: batch.header.next_offset(),
        });
        position += batch.bytes.len();
    }
    assert_eq!(
        iter.position(),
        bytes.len(),
        "segment ends with whole batches"
    );
    out
}

/// Produces `count` records starting at `first_seq` in waves of `wave`
/// (each wave flushed, so the log gets many batches); returns seq -> offset.
fn produce(broker: &TestBroker, first_seq: u64, count: u64, wave: u64) -> Vec<(u64, i64)> {
    let reports = Arc::new(Reports::default());
    let producer = crash_util::producer(&broker.bootstrap(), "none", reports.clone(), &[]);
    for seq in first_seq..first_seq + count {
        crash_util::send(&producer, TOPIC, 0, seq, &crash_util::value_of(seq, FILLER));
        if (seq + 1 - first_seq).is_multiple_of(wave) {
            crash_util::drain(&producer, Duration::from_secs(30));
        }
    }
    crash_util::drain(&producer, Duration::from_secs(30));
    let mut acked: Vec<(u64, i64)> = reports
        .outcomes
        .lock()
        .unwrap()
        .iter()
        .map(|(seq, d)| match d {
            Delivery::Acked(o) => (*seq, *o),
            other => panic!("record {seq} failed on a healthy broker: {other:?}"),
        })
        .collect();
    acked.sort();
    acked
}

/// Checks the partition holds exactly `expected` (seq, offset) pairs.
fn check_log(broker: &TestBroker, expected: &[(u64, i64)]) {
    let log = crash_util::read_all(&broker.bootstrap(), TOPIC, 1).remove(0);
    assert_eq!(
        log.len(),
        expected.len(),
        "log holds {} records, expected {}",
        log.len(),
        expected.len()
    );
    for (r, &(seq, offset)) in log.iter().zip(expected) {
        assert_eq!(r.offset, offset, "record {seq}");
        assert_eq!(
            crash_util::seq_of(&r.key),
            Some(seq),
            "key at offset {offset}"
        );
        assert!(
            r.value == crash_util::value_of(seq, FILLER),
            "value of record {seq} at offset {offset} changed"
        );
    }
}

fn damaged_tail_is_cut(damage: Damage) {
    let seed = crash_util::seed(&format!("damaged tail {damage:?}"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut broker = TestBroker::start(&[]);
    crash_util::create_topic(&broker.bootstrap(), TOPIC, 1, &[]);
    let acked = produce(&broker, 0, 400, 40);
    assert_eq!(
        acked.iter().map(|a| a.1).collect::<Vec<_>>(),
        (0..400).collect::<Vec<i64>>(),
        "one producer on a fresh partition gets offsets 0.."
    );
    broker.kill9();

    let segment = active_segment(&broker.log_dir().join(format!("{TOPIC}-0")));
    let mut bytes = std::fs::read(&segment).unwrap();
    let whole = batches(&bytes);
    assert!(
        whole.len() >= 5,
        "expected several batches, got {}",
        whole.len()
    );
    let last = *whole.last().unwrap();
    assert_eq!(last.next_offset, 400);
    assert_eq!(last.position + last.size, bytes.len());
    let (kept_bytes, log_end) = match damage {
        Damage::AppendGarbage => {
            let n = rng.random_range(1..300);
            bytes.extend((0..n).map(|_| rng.random::<u8>()));
            (last.position + last.size, last.next_offset)
        }
        Damage::AppendZeros => {
            bytes.extend(std::iter::repeat_n(0u8, 4096));
            (last.position + last.size, last.next_offset)
        }
        Damage::TruncateLastBatch => {
            let cut = rng.random_range(1..last.size);
            bytes.truncate(last.position + cut);
            println!(
                "cutting the last batch ({} bytes) after {cut} bytes",
                last.size
            );
            (last.position, last.base_offset)
        }
        Damage::FlipByteInLastBatch => {
            // From the magic byte on: the magic, the CRC and what it covers.
            // (The base offset and leader epoch are outside the CRC, as in
            // Kafka, and the length is checked by framing.)
            let at = last.position + rng.random_range(16..last.size);
            let mask = rng.random_range(1..=255u8);
            println!(
                "xoring byte {} of the last batch with {mask:#04x}",
                at - last.position
            );
            bytes[at] ^= mask;
            (last.position, last.base_offset)
        }
    };
    let damaged_len = bytes.len();
    std::fs::write(&segment, &bytes).unwrap();
    println!(
        "{damage:?}: segment of {} bytes now {damaged_len}; expecting {kept_bytes} bytes kept, log end {log_end}",
        last.position + last.size
    );

    let before = broker.output().len();
    broker.restart();
    let output = crash_util::strip_ansi(&broker.output()[before..]);
    let cut_lines: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("recovery cut a torn or corrupt tail"))
        .collect();
    assert_eq!(
        cut_lines.len(),
        1,
        "the truncation must be logged:\n{output}"
    );
    let cut = cut_lines[0];
    assert!(
        cut.contains(&format!("bytes={}", damaged_len - kept_bytes))
            && cut.contains(&format!("kept={kept_bytes}")),
        "truncation logged with the wrong sizes: {cut}"
    );
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len() as usize,
        kept_bytes,
        "the segment file is cut at the last whole valid batch"
    );
    assert_eq!(
        crash_util::watermarks(&broker.bootstrap(), TOPIC, 0),
        (0, log_end)
    );
    let mut expected: Vec<(u64, i64)> = acked.into_iter().filter(|a| a.1 < log_end).collect();
    check_log(&broker, &expected);

    // New writes continue at the recovered end, without a gap.
    let more = produce(&broker, 1_000, 100, 25);
    assert_eq!(more.first().map(|m| m.1), Some(log_end));
    expected.extend(more);
    check_log(&broker, &expected);

    // And the repaired log survives a clean restart unchanged.
    broker.stop();
    broker.restart();
    check_log(&broker, &expected);
    let out = broker.output();
    assert!(!out.contains("panicked at"), "broker panicked:\n{out}");
    broker.stop();
}

#[test]
fn garbage_after_the_last_batch_is_cut() {
    damaged_tail_is_cut(Damage::AppendGarbage);
}

#[test]
fn zeros_after_the_last_batch_are_cut() {
    damaged_tail_is_cut(Damage::AppendZeros);
}

#[test]
fn a_half_written_last_batch_is_cut() {
    damaged_tail_is_cut(Damage::TruncateLastBatch);
}

#[test]
fn a_last_batch_with_a_flipped_byte_is_cut() {
    damaged_tail_is_cut(Damage::FlipByteInLastBatch);
}
