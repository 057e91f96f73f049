//! Crash safety of acknowledged writes: the broker is killed with SIGKILL
//! while an `acks=all` producer writes, restarted, and every partition is
//! read back and checked against the delivery reports.

#![allow(clippy::unwrap_used)]

mod crash_util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crash_util::{Delivery, Reports, Sent};
use millrace_tests::TestBroker;
use rand::{Rng, SeedableRng};
use rdkafka::producer::{Producer, PurgeConfig};

const PARTITIONS: i32 = 3;
const ROUNDS: u32 = 5;
const FILLER: usize = 300;

/// Five rounds of: produce continuously with acks=all, SIGKILL the broker
/// once a seeded random number of records were acknowledged (plus a seeded
/// random delay), collect every delivery report, restart, and check all
/// partitions: every acknowledged record of every round at exactly its
/// offset with its bytes, offsets gap-free, unacknowledged records only
/// where in-flight records can be.
#[test]
fn acknowledged_records_survive_repeated_kill9() {
    let seed = crash_util::seed("acknowledged_records_survive_repeated_kill9");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut broker = TestBroker::start(&[]);
    let topic = "crash-acks";
    crash_util::create_topic(&broker.bootstrap(), topic, PARTITIONS, &[]);
    let codecs = ["none", "lz4", "zstd", "gzip", "snappy"];
    let mut sent: Vec<Sent> = vec![Sent::default(); PARTITIONS as usize];
    let mut next_seq = 0u64;
    let mut total_acked = 0usize;
    let started = Instant::now();
    for round in 0..ROUNDS {
        let target: usize = rng.random_range(300..1500);
        let extra_sends: u64 = rng.random_range(0..400);
        let codec = codecs[round as usize % codecs.len()];
        println!(
            "round {round}: kill after {target} acks + {extra_sends} more sends, compression {codec}"
        );
        let reports = Arc::new(Reports::default());
        let producer = crash_util::producer(&broker.bootstrap(), codec, reports.clone(), &[]);
        let first_seq = next_seq;
        let mut acked_in_round = 0usize;
        let mut kill_countdown: Option<u64> = None;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(
                Instant::now() < deadline,
                "round {round}: only {acked_in_round} of {target} records acknowledged in 120 s"
            );
            let seq = next_seq;
            next_seq += 1;
            let partition = (seq % PARTITIONS as u64) as i32;
            crash_util::send(
                &producer,
                topic,
                partition,
                seq,
                &crash_util::value_of(seq, FILLER),
            );
            producer.poll(Duration::ZERO);
            if kill_countdown.is_none() {
                acked_in_round = reports.acked.load(std::sync::atomic::Ordering::Relaxed);
                if acked_in_round >= target {
                    kill_countdown = Some(extra_sends);
                }
            }
            if let Some(n) = kill_countdown.as_mut() {
                if *n == 0 {
                    broker.kill9();
                    break;
                }
                *n -= 1;
            }
        }
        let in_flight = producer.in_flight_count();
        // Records still queued locally were never sent: fail them now rather
        // than waiting for message.timeout.ms. Requests already sent fail
        // on their own when the connection drops.
        producer.purge(PurgeConfig::default().queue());
        crash_util::drain(&producer, Duration::from_secs(60));
        drop(producer);
        let outcomes = std::mem::take(&mut *reports.outcomes.lock().unwrap());
        assert_eq!(
            outcomes.len() as u64,
            next_seq - first_seq,
            "round {round}: every record sent must get exactly one report"
        );
        let mut acked = 0;
        let mut failed = 0;
        for (seq, outcome) in outcomes {
            if matches!(outcome, Delivery::Acked(_)) {
                acked += 1;
            } else {
                failed += 1;
            }
            sent[(seq % PARTITIONS as u64) as usize]
                .records
                .insert(seq, (round, outcome));
        }
        total_acked += acked;
        println!(
            "round {round}: sent {} records, {acked} acknowledged, {failed} failed ({in_flight} unreported at the kill)",
            next_seq - first_seq
        );
        assert!(
            acked >= target,
            "round {round}: kill came before {target} acks"
        );

        broker.restart();
        let logs = crash_util::read_all(&broker.bootstrap(), topic, PARTITIONS);
        for (p, log) in logs.iter().enumerate() {
            let (acked, unacked) =
                crash_util::check_partition(topic, p as i32, log, &sent[p], FILLER);
            println!(
                "round {round}: {topic}-{p}: {} records, {acked} acknowledged, {unacked} written without an ack",
                log.len()
            );
        }
    }
    println!(
        "{ROUNDS} kill -9 rounds, {next_seq} records sent, {total_acked} acknowledged, in {:?}",
        started.elapsed()
    );
    assert!(total_acked >= 1_500);
    let out = broker.output();
    assert!(!out.contains("panicked at"), "broker panicked:\n{out}");
    broker.stop();
}

/// After SIGTERM the broker leaves the clean-shutdown marker, so the next
/// start loads every log without recovery; all data is still there.
#[test]
fn clean_shutdown_restarts_without_recovery() {
    let mut broker = TestBroker::start(&[]);
    let topic = "crash-clean";
    crash_util::create_topic(&broker.bootstrap(), topic, 2, &[]);
    let reports = Arc::new(Reports::default());
    let producer = crash_util::producer(&broker.bootstrap(), "none", reports.clone(), &[]);
    let mut sent = vec![Sent::default(); 2];
    for seq in 0..2_000u64 {
        crash_util::send(
            &producer,
            topic,
            (seq % 2) as i32,
            seq,
            &crash_util::value_of(seq, 100),
        );
        producer.poll(Duration::ZERO);
    }
    crash_util::drain(&producer, Duration::from_secs(60));
    drop(producer);
    for (seq, outcome) in reports.outcomes.lock().unwrap().drain() {
        assert!(
            matches!(outcome, Delivery::Acked(_)),
            "record {seq} failed on a healthy broker: {outcome:?}"
        );
        sent[(seq % 2) as usize].records.insert(seq, (0, outcome));
    }

    broker.stop();
    assert!(
        broker.log_dir().join(".kafka_cleanshutdown").exists(),
        "clean shutdown left no marker in {}",
        broker.log_dir().display()
    );
    let before = broker.output().len();
    broker.restart();
    let logs = crash_util::read_all(&broker.bootstrap(), topic, 2);
    for (p, log) in logs.iter().enumerate() {
        assert_eq!(log.len(), 1_000, "{topic}-{p}");
        let (acked, unacked) = crash_util::check_partition(topic, p as i32, log, &sent[p], 100);
        assert_eq!((acked, unacked), (1_000, 0));
    }
    let restart_output = crash_util::strip_ansi(&broker.output()[before..]);
    let loaded: Vec<&str> = restart_output
        .lines()
        .filter(|l| l.contains("loaded log") && l.contains(topic))
        .collect();
    assert_eq!(
        loaded.len(),
        2,
        "one load line per partition:\n{restart_output}"
    );
    for line in &loaded {
        assert!(
            line.contains("clean_shutdown=true"),
            "not a clean start: {line}"
        );
    }
    for needle in [
        "recovery cut",
        "recovery found",
        "torn",
        "rebuilding",
        "clean_shutdown=false",
    ] {
        assert!(
            !restart_output.contains(needle),
            "a clean restart must not recover (found {needle:?}):\n{restart_output}"
        );
    }
    // The marker is consumed at start, so a crash now is seen as unclean.
    assert!(!broker.log_dir().join(".kafka_cleanshutdown").exists());
    broker.stop();
}

/// A broker killed with a few hundred MB of unflushed data recovers on
/// restart and serves all of it: reads at the start, the middle and the
/// end, and new writes continue at the old end.
#[test]
fn restart_after_kill9_with_hundreds_of_mb() {
    const RECORD: usize = 256 * 1024;
    const RECORDS: u64 = 1_200; // 300 MiB
    let mut broker = TestBroker::start(&[]);
    let topic = "crash-big";
    crash_util::create_topic(
        &broker.bootstrap(),
        topic,
        1,
        // The default 1 GiB segments: all of it is in the active segment,
        // which recovery must scan in full.
        &[("max.message.bytes", "4194304")],
    );
    let reports = Arc::new(Reports::default());
    let producer = crash_util::producer(
        &broker.bootstrap(),
        "none",
        reports.clone(),
        &[
            ("message.max.bytes", "4000000"),
            ("batch.size", "2000000"),
            ("message.timeout.ms", "60000"),
            ("request.timeout.ms", "30000"),
        ],
    );
    let big_value = |seq: u64| {
        let mut v = seq.to_be_bytes().to_vec();
        v.resize(RECORD, (seq % 251) as u8);
        v
    };
    let started = Instant::now();
    for seq in 0..RECORDS {
        crash_util::send(&producer, topic, 0, seq, &big_value(seq));
        producer.poll(Duration::ZERO);
    }
    crash_util::drain(&producer, Duration::from_secs(240));
    drop(producer);
    let mut offsets = vec![-1i64; RECORDS as usize];
    for (seq, outcome) in reports.outcomes.lock().unwrap().drain() {
        match outcome {
            Delivery::Acked(o) => offsets[seq as usize] = o,
            other => panic!("record {seq} failed on a healthy broker: {other:?}"),
        }
    }
    println!(
        "produced {} MiB in {:?}",
        (RECORDS * RECORD as u64) >> 20,
        started.elapsed()
    );
    let bytes_on_disk: u64 = std::fs::read_dir(broker.log_dir().join(format!("{topic}-0")))
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(
        bytes_on_disk >= RECORDS * RECORD as u64,
        "only {bytes_on_disk} bytes on disk"
    );

    broker.kill9();
    let before = broker.output().len();
    let restart = Instant::now();
    broker.restart();
    println!(
        "restart after kill -9 with {} MiB took {:?}",
        bytes_on_disk >> 20,
        restart.elapsed()
    );
    let restart_output = crash_util::strip_ansi(&broker.output()[before..]);
    let loaded = restart_output
        .lines()
        .find(|l| l.contains("loaded log") && l.contains(topic))
        .unwrap_or_else(|| panic!("no load line for {topic}:\n{restart_output}"));
    println!("{loaded}");
    assert!(
        loaded.contains("clean_shutdown=false"),
        "the restart after kill -9 must recover: {loaded}"
    );
    assert_eq!(
        crash_util::watermarks(&broker.bootstrap(), topic, 0),
        (0, RECORDS as i64)
    );

    // Spot-check reads across the whole log.
    let consumer = crash_util::consumer(&broker.bootstrap());
    for seq in [0, 1, RECORDS / 3, RECORDS / 2, RECORDS - 2, RECORDS - 1] {
        let offset = offsets[seq as usize];
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, rdkafka::Offset::Offset(offset))
            .unwrap();
        rdkafka::consumer::Consumer::assign(&consumer, &tpl).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let m = loop {
            assert!(Instant::now() < deadline, "no record at offset {offset}");
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => break m,
                Some(Err(e)) => panic!("reading offset {offset}: {e}"),
                None => {}
            }
        };
        use rdkafka::Message;
        assert_eq!(m.offset(), offset);
        assert_eq!(m.key(), Some(&crash_util::key_of(seq)[..]));
        assert!(
            m.payload() == Some(&big_value(seq)[..]),
            "value of record {seq} at {offset}"
        );
    }
    drop(consumer);

    // New writes continue at the old end.
    let reports = Arc::new(Reports::default());
    let producer = crash_util::producer(&broker.bootstrap(), "none", reports.clone(), &[]);
    crash_util::send(&producer, topic, 0, RECORDS, b"after the crash");
    crash_util::drain(&producer, Duration::from_secs(30));
    assert_eq!(
        reports.outcomes.lock().unwrap().get(&RECORDS),
        Some(&Delivery::Acked(RECORDS as i64))
    );
    drop(producer);
    broker.stop();
}
