//! Property tests: random operation sequences against a model, and crash
//! points (files cut at a random byte, garbage after it) followed by
//! recovery. Case counts are bounded so the suite stays fast.

#![allow(clippy::unwrap_used)]

mod util;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;

use millrace_protocol::records::BatchIter;
use millrace_storage::{LogConfig, StorageError};
use proptest::prelude::*;
use rand::{rngs::StdRng, SeedableRng};
use util::*;

#[derive(Debug, Clone)]
enum Op {
    Append { batches: usize, epoch_bump: bool },
    Roll,
    Read { at: u16, max_bytes: u16 },
    Retention { age: u16 },
    Compact,
    Truncate { back: u8 },
    DeleteRecords { fraction: u8 },
    Restart,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..4, any::<bool>()).prop_map(|(batches, epoch_bump)| Op::Append { batches, epoch_bump }),
        1 => Just(Op::Roll),
        3 => (any::<u16>(), any::<u16>()).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => any::<u16>().prop_map(|age| Op::Retention { age }),
        1 => Just(Op::Compact),
        1 => any::<u8>().prop_map(|back| Op::Truncate { back }),
        1 => any::<u8>().prop_map(|fraction| Op::DeleteRecords { fraction }),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
    ]
}

/// The model: batches by base offset, each with its records.
#[derive(Debug, Default, Clone)]
struct Model {
    batches: BTreeMap<i64, (i64, Vec<Rec>)>,
    log_start: i64,
    log_end: i64,
}

impl Model {
    fn records(&self) -> Vec<Rec> {
        self.batches
            .values()
            .flat_map(|(_, r)| r.iter().cloned())
            .filter(|r| r.offset >= self.log_start)
            .collect()
    }

    fn from_log(t: &TestLog) -> Model {
        let mut m = Model {
            log_start: t.log.log_start_offset(),
            log_end: t.log.log_end_offset(),
            ..Model::default()
        };
        let mut offset = m.log_start;
        while offset < m.log_end {
            let r = t.log.read(offset, 1 << 20, i64::MAX, true).unwrap();
            if r.records.is_empty() {
                break;
            }
            for b in BatchIter::new(&r.records) {
                let b = b.unwrap();
                let mut one = b.bytes.to_vec();
                let recs = decode(&one);
                one.clear();
                m.batches
                    .insert(b.header.base_offset, (b.header.last_offset(), recs));
                offset = b.header.next_offset();
            }
        }
        m
    }
}

fn latest_per_key(recs: &[Rec]) -> BTreeMap<Vec<u8>, Rec> {
    let mut m = BTreeMap::new();
    for r in recs {
        if let Some(k) = &r.key {
            m.insert(k.clone(), r.clone());
        }
    }
    m
}

fn check(t: &TestLog, model: &Model) {
    assert_eq!(t.log.log_end_offset(), model.log_end);
    assert_eq!(t.log.log_start_offset(), model.log_start);
    assert_eq!(t.read_all(), model.records());
    // Every batch is found from every offset it holds (indexes consistent).
    for (base, (last, _)) in &model.batches {
        for offset in [*base, *last] {
            if offset < model.log_start {
                continue;
            }
            let r = t.log.read(offset, 1, i64::MAX, true).unwrap();
            let first = BatchIter::new(&r.records).next().unwrap().unwrap();
            assert!(first.header.base_offset <= offset && offset <= first.header.last_offset());
        }
    }
}

fn run_ops(seed: u64, ops: Vec<Op>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let config = LogConfig {
        segment_bytes: 2_048,
        index_interval_bytes: 200,
        cleanup_compact: seed.is_multiple_of(2),
        retention_ms: 50_000,
        delete_retention_ms: 100,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    };
    let mut t = TestLog::new(config);
    let mut model = Model::default();
    let mut epoch = 0;
    let mut clock = 0i64;
    for op in ops {
        clock += 1_000;
        if std::env::var("PROP_DEBUG").is_ok() {
            eprintln!(
                "{op:?} model start {} end {} log start {} end {} segs {:?}",
                model.log_start,
                model.log_end,
                t.log.log_start_offset(),
                t.log.log_end_offset(),
                t.log.segment_base_offsets()
            );
        }
        match op {
            Op::Append {
                batches,
                epoch_bump,
            } => {
                if epoch_bump {
                    epoch += 1;
                }
                let mut bytes = Vec::new();
                let mut parts = Vec::new();
                for _ in 0..batches {
                    let b = random_batch(&mut rng, 8, clock);
                    parts.push(b.clone());
                    bytes.extend(b);
                }
                let info = t.log.append_as_leader(&mut bytes, epoch, None).unwrap();
                assert_eq!(info.first_offset, model.log_end);
                let mut next = model.log_end;
                for p in parts {
                    let recs = expected_records(&p, next, epoch);
                    let last = next
                        + i64::from(
                            millrace_protocol::records::BatchHeader::parse(&p)
                                .unwrap()
                                .last_offset_delta,
                        );
                    model.batches.insert(next, (last, recs));
                    next = last + 1;
                }
                model.log_end = next;
                assert_eq!(info.last_offset, next - 1);
                assert_eq!(t.log.latest_epoch(), Some(epoch));
            }
            Op::Roll => t.log.roll().unwrap(),
            Op::Read { at, max_bytes } => {
                let span = (model.log_end - model.log_start + 1).max(1);
                let offset = model.log_start + i64::from(at) % span;
                let r = t
                    .log
                    .read(offset, usize::from(max_bytes), i64::MAX, false)
                    .unwrap();
                let mut expect_base = None;
                for b in BatchIter::new(&r.records) {
                    let b = b.unwrap();
                    b.verify_crc().unwrap();
                    let (last, recs) = &model.batches[&b.header.base_offset];
                    assert_eq!(*last, b.header.last_offset());
                    assert_eq!(&decode(b.bytes), recs);
                    if let Some(e) = expect_base {
                        assert_eq!(b.header.base_offset, e, "batches are contiguous");
                    } else {
                        assert!(
                            b.header.last_offset() >= offset
                                && b.header.base_offset <= offset.max(b.header.base_offset)
                        );
                    }
                    expect_base = model
                        .batches
                        .range(b.header.base_offset + 1..)
                        .next()
                        .map(|(k, _)| *k);
                }
                assert!(r.records.len() <= usize::from(max_bytes));
            }
            Op::Retention { age } => {
                t.log.update_high_watermark(i64::MAX);
                t.log
                    .enforce_retention(clock + i64::from(age) * 10)
                    .unwrap();
                model.log_start = t.log.log_start_offset();
                let first_base = t.log.segment_base_offsets()[0];
                model.batches.retain(|base, _| *base >= first_base);
                // Retention only removes whole batches below the new start.
                check(&t, &model);
            }
            Op::Compact => {
                t.log.update_high_watermark(i64::MAX);
                let before = model.records();
                t.log.compact(clock, 1 << 20).unwrap();
                let after = Model::from_log(&t);
                let got = after.records();
                // A subset of what was there, offsets untouched…
                for r in &got {
                    assert!(before.contains(r), "{r:?} was not written");
                }
                // …null keys all kept…
                let nulls = |v: &[Rec]| v.iter().filter(|r| r.key.is_none()).count();
                assert_eq!(nulls(&got), nulls(&before));
                // …and the latest record per key kept, unless it was an expired tombstone.
                let (lb, la) = (latest_per_key(&before), latest_per_key(&got));
                for (k, r) in &lb {
                    match la.get(k) {
                        Some(x) => assert_eq!(x, r),
                        None => assert!(r.value.is_none(), "latest value of {k:?} lost"),
                    }
                }
                assert_eq!(after.log_end, model.log_end);
                model = after;
            }
            Op::Truncate { back } => {
                let target = (model.log_end - i64::from(back)).max(model.log_start);
                t.log.truncate_to(target).unwrap();
                if target < model.log_end {
                    model.batches.retain(|_, (last, _)| *last < target);
                    model.log_end = target;
                    model.log_start = model.log_start.min(target);
                }
                check(&t, &model);
            }
            Op::DeleteRecords { fraction } => {
                t.log.update_high_watermark(i64::MAX);
                let target =
                    model.log_start + (model.log_end - model.log_start) * i64::from(fraction) / 255;
                let start = t.log.delete_records_before(target).unwrap();
                // The broker checkpoints after DeleteRecords so the new start
                // survives a crash (Kafka only checkpoints periodically).
                t.manager.checkpoint().unwrap();
                model.log_start = start;
                let first_base = t.log.segment_base_offsets()[0];
                model.batches.retain(|base, _| *base >= first_base);
                check(&t, &model);
                let beyond = t.log.high_watermark() + 1;
                assert!(matches!(
                    t.log.delete_records_before(beyond),
                    Err(StorageError::OffsetOutOfRange { .. })
                ));
            }
            Op::Restart => {
                t = t.restart();
                check(&t, &model);
            }
            Op::Crash => {
                // Nothing was torn: a process crash keeps every written byte.
                // As in Kafka, a log start offset moved by DeleteRecords since
                // the last checkpoint falls back to the first segment's base.
                t = t.crash();
                let start = t.log.log_start_offset();
                assert!(start <= model.log_start);
                assert_eq!(start, t.log.segment_base_offsets()[0].max(start));
                model.log_start = start;
                check(&t, &model);
            }
        }
    }
    check(&t, &model);
    t.manager.shutdown().unwrap();
}

/// Cuts the log at byte `cut` of its concatenated segments, removing the
/// segments after it (they did not exist yet when the torn write happened:
/// the process-crash model), optionally leaving garbage after the cut as a
/// torn write can.
fn tear(t: &CrashedLog, cut: u64, garbage: &[u8]) {
    let pdir = t.dir.path().join(tp().to_string());
    let mut logs: Vec<_> = fs::read_dir(&pdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    let mut pos = 0u64;
    let mut torn = false;
    for log in logs {
        let len = fs::metadata(&log).unwrap().len();
        if torn {
            // A kill -9 model: segments after the torn write did not exist yet.
            for ext in ["log", "index", "timeindex"] {
                let _ = fs::remove_file(log.with_extension(ext));
            }
        } else if pos + len > cut {
            let f = OpenOptions::new().write(true).open(&log).unwrap();
            f.set_len(cut - pos).unwrap();
            let mut f = OpenOptions::new().append(true).open(&log).unwrap();
            f.write_all(garbage).unwrap();
            torn = true;
        }
        pos += len;
    }
}

fn run_crash(seed: u64, batches: usize, flush_at: usize, cut_permille: u16, mut garbage: Vec<u8>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let config = LogConfig {
        segment_bytes: 1_500,
        index_interval_bytes: 128,
        ..LogConfig::default()
    };
    let t = TestLog::new(config);
    let mut written: Vec<(u64, u64, Vec<Rec>, i64)> = Vec::new(); // byte range, records, base
    let mut bytes_total = 0u64;
    let mut flushed_bytes = 0u64;
    let mut all_bytes = Vec::new();
    for i in 0..batches {
        let b = random_batch(&mut rng, 5, i as i64 * 10);
        let mut copy = b.clone();
        let epoch = (i / 3) as i32;
        let info = t.log.append_as_leader(&mut copy, epoch, None).unwrap();
        all_bytes.extend_from_slice(&copy);
        let recs = expected_records(&b, info.first_offset, epoch);
        written.push((
            bytes_total,
            bytes_total + b.len() as u64,
            recs,
            info.first_offset,
        ));
        bytes_total += b.len() as u64;
        if i + 1 == flush_at {
            t.log.flush().unwrap();
            t.manager.checkpoint().unwrap();
            flushed_bytes = bytes_total;
        }
    }
    let crashed = t.crash_prepare();
    let cut = flushed_bytes + (bytes_total - flushed_bytes) * u64::from(cut_permille) / 1000;
    // Garbage that happens to repeat the lost bytes would rebuild the
    // batch exactly; make the first garbage byte differ.
    if let (Some(g), Some(orig)) = (garbage.first_mut(), all_bytes.get(cut as usize)) {
        if g == orig {
            *g ^= 0xff;
        }
    }
    tear(&crashed, cut, &garbage);
    let t = crashed.reopen_only();
    let survivors: Vec<&(u64, u64, Vec<Rec>, i64)> = written
        .iter()
        .filter(|(_, end, _, _)| *end <= cut)
        .collect();
    let expected: Vec<Rec> = survivors
        .iter()
        .flat_map(|(_, _, r, _)| r.iter().cloned())
        .collect();
    // Exactly the whole batches before the cut: a prefix, offsets unchanged,
    // every fsynced batch present.
    let got = t.read_all();
    if got != expected {
        let offs = |v: &[Rec]| v.iter().map(|r| r.offset).collect::<Vec<_>>();
        panic!(
            "cut {cut} of {bytes_total}: got {:?} expected {:?} segs {:?} leo {}",
            offs(&got),
            offs(&expected),
            t.log.segment_base_offsets(),
            t.log.log_end_offset()
        );
    }
    assert!(
        flush_at > batches || survivors.len() >= flush_at,
        "fsynced batches lost"
    );
    let end = survivors.last().map_or(0, |(_, _, r, base)| {
        r.last().map_or(*base, |x| x.offset) + 1
    });
    let end = if survivors.is_empty() {
        0
    } else {
        end.max(survivors.last().map(|s| s.3).unwrap_or(0))
    };
    assert!(t.log.log_end_offset() >= end);
    assert_eq!(
        t.log.log_end_offset(),
        written
            .get(survivors.len())
            .map_or(t.log.log_end_offset(), |w| w.3)
    );
    for (_, _, recs, base) in &survivors {
        let r = t.log.read(*base, 1, i64::MAX, true).unwrap();
        let first = BatchIter::new(&r.records).next().unwrap().unwrap();
        assert_eq!(first.header.base_offset, *base);
        if let Some(last) = recs.last() {
            let r = t.log.read(last.offset, 1, i64::MAX, true).unwrap();
            assert_eq!(
                BatchIter::new(&r.records)
                    .next()
                    .unwrap()
                    .unwrap()
                    .header
                    .base_offset,
                *base
            );
        }
    }
    // Epochs past the end are gone; the log takes appends where it ends.
    if let Some(latest) = t.log.latest_epoch() {
        let start = t.log.epoch_entries().last().unwrap().1;
        assert!(
            start < t.log.log_end_offset() || t.log.log_end_offset() == 0,
            "epoch {latest} starts at {start}"
        );
    }
    let leo = t.log.log_end_offset();
    let info = t.append(&simple_batch(1, 0));
    assert_eq!(info.first_offset, leo);
    let t = t.restart();
    assert_eq!(t.log.log_end_offset(), leo + 1);
    t.manager.shutdown().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_match_the_model(seed in any::<u64>(), ops in proptest::collection::vec(op(), 1..30)) {
        run_ops(seed, ops);
    }

    #[test]
    fn crash_at_a_random_byte_recovers_a_prefix(
        seed in any::<u64>(),
        batches in 1usize..40,
        flush_at in 0usize..40,
        cut_permille in 0u16..=1000,
        garbage in prop_oneof![Just(Vec::new()), Just(vec![0u8; 100]), proptest::collection::vec(any::<u8>(), 1..200)],
    ) {
        run_crash(seed, batches, flush_at, cut_permille, garbage);
    }
}
