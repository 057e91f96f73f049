//! The broker's storage cap, `millrace.log.dirs.max.bytes` (what the
//! control plane sets from MSK's EBS `volumeSize`): a broker capped at a
//! few MiB is filled by a real producer until it answers
//! KAFKA_STORAGE_ERROR, as on a full disk. Every acknowledged record must
//! stay readable, and writes must succeed again, without a restart, each
//! time space is freed: by DeleteRecords, by deleting a topic, and by
//! raising the cap (a dynamic per-broker config). After a restart the
//! broker counts what is on disk and still holds everything acknowledged.

#![allow(clippy::unwrap_used)]

mod crash_util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crash_util::{Delivery, Reports, Sent};
use millrace_tests::TestBroker;
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::TopicPartitionList;

const CAP: u64 = 4 << 20;
const KEEP: &str = "keep";
const KEEP_PARTITIONS: i32 = 2;
const FILLER: usize = 4_000;

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)))
}

/// Sends `count` records to `topic` (round-robin over `partitions`) and
/// waits for every report; returns the outcomes by seq.
fn wave(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    first_seq: u64,
    count: u64,
) -> Vec<(u64, Delivery)> {
    let reports = Arc::new(Reports::default());
    let producer = crash_util::producer(bootstrap, "none", reports.clone(), &[]);
    for seq in first_seq..first_seq + count {
        let partition = (seq % partitions as u64) as i32;
        crash_util::send(
            &producer,
            topic,
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

/// Every record either acknowledged or refused with KAFKA_STORAGE_ERROR;
/// returns how many were refused.
fn refused(outcomes: &[(u64, Delivery)]) -> usize {
    let mut n = 0;
    for (seq, d) in outcomes {
        if let Delivery::Failed { error, code, .. } = d {
            assert_eq!(
                *code,
                Some(RDKafkaErrorCode::KafkaStorageError),
                "record {seq} failed with {error}, expected KafkaStorageError"
            );
            n += 1;
        }
    }
    n
}

fn all_acked(outcomes: &[(u64, Delivery)], what: &str, broker: &TestBroker) {
    for (seq, d) in outcomes {
        assert!(
            matches!(d, Delivery::Acked(_)),
            "record {seq} failed {what}: {d:?}\n{}",
            broker.output()
        );
    }
}

/// The producer-side record of what went to `keep`.
struct Keep {
    sent: Vec<Sent>,
    next_seq: u64,
    round: u32,
}

impl Keep {
    fn record(&mut self, outcomes: &[(u64, Delivery)]) {
        for (seq, d) in outcomes {
            self.sent[(seq % KEEP_PARTITIONS as u64) as usize]
                .records
                .insert(*seq, (self.round, d.clone()));
        }
        self.round += 1;
    }

    fn send(&mut self, bootstrap: &str, count: u64) -> Vec<(u64, Delivery)> {
        let outcomes = wave(bootstrap, KEEP, KEEP_PARTITIONS, self.next_seq, count);
        self.next_seq += count;
        self.record(&outcomes);
        outcomes
    }

    /// Produces until the broker refuses for lack of space.
    fn fill(&mut self, bootstrap: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let start = self.next_seq;
        loop {
            assert!(
                Instant::now() < deadline && self.next_seq - start < 20_000,
                "no KAFKA_STORAGE_ERROR after {} records under a {CAP}-byte cap",
                self.next_seq - start
            );
            let outcomes = self.send(bootstrap, 100);
            if refused(&outcomes) > 0 {
                return;
            }
        }
    }

    /// Reads `keep` back and checks it against every report; returns the
    /// acknowledged count.
    fn check(&self, bootstrap: &str) -> usize {
        let logs = crash_util::read_all(bootstrap, KEEP, KEEP_PARTITIONS);
        let mut total = 0;
        for (p, log) in logs.iter().enumerate() {
            let (acked, unacked) =
                crash_util::check_partition(KEEP, p as i32, log, &self.sent[p], FILLER);
            assert_eq!(
                unacked, 0,
                "{KEEP}-{p}: records written although not acknowledged"
            );
            total += acked;
        }
        total
    }
}

/// Fills `topic` (one partition) with about `bytes` of acknowledged records.
fn ballast(bootstrap: &str, topic: &str, bytes: usize, broker: &TestBroker) -> i64 {
    // Values average FILLER / 2 bytes.
    let count = (bytes / (FILLER / 2)) as u64;
    let outcomes = wave(bootstrap, topic, 1, 1_000_000, count);
    all_acked(&outcomes, &format!("filling {topic}"), broker);
    crash_util::watermarks(bootstrap, topic, 0).1
}

#[test]
fn storage_cap_refuses_writes_keeps_data_and_recovers_when_space_is_freed() {
    let cap = CAP.to_string();
    let mut broker = TestBroker::start(&[("millrace.log.dirs.max.bytes", cap.as_str())]);
    let bootstrap = broker.bootstrap();
    crash_util::create_topic(&bootstrap, "trim", 1, &[("segment.bytes", "262144")]);
    crash_util::create_topic(&bootstrap, "ballast", 1, &[("segment.bytes", "1048576")]);
    crash_util::create_topic(
        &bootstrap,
        KEEP,
        KEEP_PARTITIONS,
        &[("segment.bytes", "1048576")],
    );
    let trim_end = ballast(&bootstrap, "trim", 1_500_000, &broker);
    ballast(&bootstrap, "ballast", 1_500_000, &broker);

    let mut keep = Keep {
        sent: vec![Sent::default(); KEEP_PARTITIONS as usize],
        next_seq: 0,
        round: 0,
    };
    keep.fill(&bootstrap);
    let acked = keep.check(&bootstrap);
    assert!(acked > 0);
    println!(
        "cap reached after {} records to {KEEP}: {acked} acknowledged",
        keep.next_seq
    );
    // Still at the cap: writes either fit or are refused the same way.
    let outcomes = keep.send(&bootstrap, 20);
    println!("at the cap: {} of 20 more refused", refused(&outcomes));
    keep.check(&bootstrap);

    // 1. DeleteRecords frees the segments below the new log start.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trim", 0, rdkafka::Offset::Offset(trim_end))
        .unwrap();
    let deleted = block_on(admin(&bootstrap).delete_records(&tpl, &options())).unwrap();
    for e in deleted.elements() {
        assert!(e.error().is_ok(), "DeleteRecords: {:?}", e.error());
    }
    let outcomes = keep.send(&bootstrap, 100);
    all_acked(&outcomes, "after DeleteRecords freed space", &broker);
    keep.fill(&bootstrap);

    // 2. Deleting a topic frees its bytes.
    let results = block_on(admin(&bootstrap).delete_topics(&["ballast"], &options())).unwrap();
    for r in results {
        r.unwrap();
    }
    let outcomes = keep.send(&bootstrap, 100);
    all_acked(&outcomes, "after deleting a topic freed space", &broker);
    keep.fill(&bootstrap);

    // 3. A larger cap, set dynamically for this broker, applies at once.
    let raised = (CAP * 4).to_string();
    let alter = AlterConfig::new(ResourceSpecifier::Broker(1))
        .set("millrace.log.dirs.max.bytes", raised.as_str());
    let results = block_on(admin(&bootstrap).alter_configs([&alter], &options())).unwrap();
    for r in results {
        r.unwrap();
    }
    let outcomes = keep.send(&bootstrap, 100);
    all_acked(&outcomes, "after the cap was raised", &broker);
    let acked_total = keep.check(&bootstrap);
    println!("{acked_total} records acknowledged and readable");

    let out = crash_util::strip_ansi(&broker.output());
    assert!(
        !out.contains("goes offline"),
        "the cap must not take the log dir offline:\n{out}"
    );
    assert!(!out.contains("panicked at"), "broker panicked:\n{out}");

    // After a restart the broker counts its logs again: everything is
    // there, and the (dynamic) raised cap still leaves room.
    broker.stop();
    broker.restart();
    assert_eq!(keep.check(&bootstrap), acked_total);
    let outcomes = keep.send(&bootstrap, 20);
    all_acked(&outcomes, "after the restart", &broker);
    broker.stop();
}
