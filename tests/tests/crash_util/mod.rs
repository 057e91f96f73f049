//! Shared helpers of the crash suites (`crash_*.rs`): records that carry a
//! sequence number, an `acks=all` producer that records every delivery
//! report, a consumer that reads whole partitions by assignment, and the
//! per-partition durability check.
//!
//! Included with `mod crash_util;`; not a test target of its own.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// A seed from `CRASH_SEED`, else from the clock; printed so a failing run
/// can be repeated.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("{test}: seed {seed} (set CRASH_SEED={seed} to repeat)");
    seed
}

/// The key of record `seq`.
pub fn key_of(seq: u64) -> Vec<u8> {
    format!("seq-{seq:010}").into_bytes()
}

/// The value of record `seq`: names the sequence number, then a filler of
/// varying length whose bytes depend on `seq` (so a byte moved between
/// records is noticed).
pub fn value_of(seq: u64, filler: usize) -> Vec<u8> {
    let mut v = format!("value of record {seq}|").into_bytes();
    let len = (seq.wrapping_mul(7919) % filler.max(1) as u64) as usize;
    v.extend((0..len).map(|i| (seq as usize).wrapping_mul(31).wrapping_add(i * 7) as u8));
    v
}

/// The sequence number a key names.
pub fn seq_of(key: &[u8]) -> Option<u64> {
    std::str::from_utf8(key)
        .ok()?
        .strip_prefix("seq-")?
        .parse()
        .ok()
}

/// Creates `topic` with `partitions` partitions (replication factor 1).
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = rt
        .block_on(admin.create_topics([&new], &opts))
        .expect("create topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e:?}"));
    }
}

/// How one record's delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Acknowledged (acks=all) at this offset.
    Acked(i64),
    /// Failed; `broker_error` is true when the broker answered with an
    /// error code (the record must then not be in the log), false for
    /// local failures (connection lost, timed out: the record may or may
    /// not have been written).
    Failed {
        /// The error.
        error: String,
        /// Whether the broker itself rejected the record.
        broker_error: bool,
        /// The error code.
        code: Option<RDKafkaErrorCode>,
    },
}

/// Delivery reports, by sequence number.
#[derive(Default)]
pub struct Reports {
    /// seq -> outcome.
    pub outcomes: Mutex<HashMap<u64, Delivery>>,
    /// How many reports were acknowledgements.
    pub acked: AtomicUsize,
}

/// Producer context collecting delivery reports; the opaque is the seq.
pub struct Recorder(pub Arc<Reports>);

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let outcome = match result {
            Ok(m) => {
                self.0.acked.fetch_add(1, Ordering::Relaxed);
                Delivery::Acked(m.offset())
            }
            Err((e, _)) => Delivery::Failed {
                error: e.to_string(),
                broker_error: is_broker_error(e),
                code: e.rdkafka_error_code(),
            },
        };
        let previous = self.0.outcomes.lock().unwrap().insert(seq as u64, outcome);
        assert!(previous.is_none(), "two delivery reports for record {seq}");
    }
}

/// Whether the error is a Kafka error code the broker sent (positive
/// codes), as opposed to librdkafka's local errors (negative codes).
pub fn is_broker_error(e: &KafkaError) -> bool {
    e.rdkafka_error_code().is_some_and(|c| (c as i32) > 0)
}

/// The error code of a failed delivery, if any.
pub fn error_code(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    e.rdkafka_error_code()
}

/// A non-idempotent `acks=all` producer without retries: a record is
/// written at most once, and every record gets exactly one report.
pub fn producer(
    bootstrap: &str,
    compression: &str,
    reports: Arc<Reports>,
    extra: &[(&str, &str)],
) -> BaseProducer<Recorder> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("retries", "0")
        .set("compression.type", compression)
        .set("linger.ms", "2")
        .set("batch.num.messages", "64")
        .set("max.in.flight.requests.per.connection", "5")
        .set("message.timeout.ms", "5000")
        .set("request.timeout.ms", "4000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "200")
        .set("queue.buffering.max.messages", "2000");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config
        .create_with_context(Recorder(reports))
        .expect("producer")
}

/// Sends record `seq` to `partition`, waiting while the local queue is full.
pub fn send(
    producer: &BaseProducer<Recorder>,
    topic: &str,
    partition: i32,
    seq: u64,
    value: &[u8],
) {
    let key = key_of(seq);
    let mut record = BaseRecord::with_opaque_to(topic, seq as usize)
        .partition(partition)
        .key(&key[..])
        .payload(value);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                assert!(Instant::now() < deadline, "producer queue full for 60 s");
                record = r;
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => panic!("cannot enqueue record {seq}: {e}"),
        }
    }
}

/// Polls until every enqueued record has a delivery report.
pub fn drain(producer: &BaseProducer<Recorder>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while producer.in_flight_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} records still without a delivery report after {timeout:?}",
            producer.in_flight_count()
        );
        producer.poll(Duration::from_millis(50));
    }
    producer.poll(Duration::ZERO);
}

/// One record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// Its offset.
    pub offset: i64,
    /// Key bytes (empty for null).
    pub key: Vec<u8>,
    /// Value bytes (empty for null).
    pub value: Vec<u8>,
}

/// A consumer that reads by assignment (no group).
pub fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "millrace-crash-tests")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("check.crcs", "true")
        .set("fetch.wait.max.ms", "50")
        .create()
        .expect("consumer")
}

/// (low, high) watermarks of a partition.
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let consumer = consumer(bootstrap);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)) {
            Ok(w) => return w,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "watermarks of {topic}-{partition}: {e}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Reads every record of `topic` partitions `0..partitions`, from the log
/// start to the high watermark as the broker reports them, in log order.
pub fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> Vec<Vec<Read>> {
    let consumer = consumer(bootstrap);
    let mut ends = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (low, high) = watermarks(bootstrap, topic, p);
        assert_eq!(low, 0, "{topic}-{p}: log start moved to {low}");
        ends.push(high);
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("assignment");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out: Vec<Vec<Read>> = (0..partitions).map(|_| Vec::new()).collect();
    let done = |out: &Vec<Vec<Read>>| {
        out.iter()
            .zip(&ends)
            .all(|(recs, &end)| recs.last().map_or(0, |r| r.offset + 1) >= end)
    };
    let total: i64 = ends.iter().sum();
    let deadline = Instant::now() + Duration::from_secs(60 + (total / 2_000) as u64);
    while !done(&out) {
        assert!(
            Instant::now() < deadline,
            "reading {topic} timed out: have {:?} of {ends:?}",
            out.iter()
                .map(|r| r.last().map_or(0, |r| r.offset + 1))
                .collect::<Vec<_>>()
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            Some(Ok(m)) => {
                let p = m.partition() as usize;
                if m.offset() >= ends[p] {
                    continue;
                }
                out[p].push(Read {
                    offset: m.offset(),
                    key: m.key().unwrap_or_default().to_vec(),
                    value: m.payload().unwrap_or_default().to_vec(),
                });
            }
        }
    }
    out
}

/// What the producer side knows about the records sent to one partition.
#[derive(Debug, Default, Clone)]
pub struct Sent {
    /// seq -> (round it was sent in, outcome).
    pub records: BTreeMap<u64, (u32, Delivery)>,
}

/// Checks one partition's log against what was sent, as a user relies on
/// with `acks=all`:
///
/// - offsets run from 0 without gaps or repeats;
/// - every acknowledged record is at exactly its acknowledged offset with
///   identical key and value bytes;
/// - every record in the log is one that was sent to this partition, with
///   its exact bytes, at most once, in send order (one connection, no
///   retries: the log order is the send order);
/// - records the broker rejected with an error code are absent; records
///   whose fate is unknown (connection lost at the kill, timed out in the
///   queue) may be present, but only in their round's place: never before
///   an acknowledged record of an earlier round. Within their own round,
///   after the round's last acknowledged record ("written, not yet acked")
///   or interleaved with it as the in-flight ones.
///
/// Returns (acked, present-but-unacked) counts.
pub fn check_partition(
    topic: &str,
    partition: i32,
    log: &[Read],
    sent: &Sent,
    filler: usize,
) -> (usize, usize) {
    let tp = format!("{topic}-{partition}");
    for (i, r) in log.iter().enumerate() {
        assert_eq!(
            r.offset, i as i64,
            "{tp}: offsets are not consecutive from 0 (record #{i} has offset {})",
            r.offset
        );
    }
    let mut seen = HashSet::new();
    let mut previous: Option<(u64, u32)> = None;
    let mut unacked_present = 0;
    for r in log {
        let seq = seq_of(&r.key).unwrap_or_else(|| {
            panic!(
                "{tp}@{}: key {:?} is not one the test wrote",
                r.offset,
                String::from_utf8_lossy(&r.key)
            )
        });
        let Some((round, outcome)) = sent.records.get(&seq) else {
            panic!(
                "{tp}@{}: record {seq} was never sent to this partition",
                r.offset
            );
        };
        assert!(
            r.value == value_of(seq, filler),
            "{tp}@{}: value of record {seq} differs from what was sent",
            r.offset
        );
        assert!(
            seen.insert(seq),
            "{tp}@{}: record {seq} appears twice",
            r.offset
        );
        if let Some((prev, prev_round)) = previous {
            assert!(
                seq > prev,
                "{tp}@{}: record {seq} follows record {prev}: log order is not send order",
                r.offset
            );
            assert!(
                *round >= prev_round,
                "{tp}@{}: round order broken",
                r.offset
            );
        }
        previous = Some((seq, *round));
        match outcome {
            Delivery::Acked(offset) => assert_eq!(
                *offset, r.offset,
                "{tp}: record {seq} was acknowledged at offset {offset} but is at {}",
                r.offset
            ),
            Delivery::Failed {
                error,
                broker_error,
                ..
            } => {
                assert!(
                    !broker_error,
                    "{tp}@{}: record {seq} is in the log although the broker rejected it ({error})",
                    r.offset
                );
                unacked_present += 1;
            }
        }
    }
    let mut acked = 0;
    for (seq, (_, outcome)) in &sent.records {
        if let Delivery::Acked(offset) = outcome {
            acked += 1;
            let found = usize::try_from(*offset).ok().and_then(|o| log.get(o));
            let found_seq = found.and_then(|r| seq_of(&r.key));
            assert_eq!(
                found_seq,
                Some(*seq),
                "{tp}: acknowledged record {seq} is missing from offset {offset} (log ends at {})",
                log.len()
            );
        }
    }
    (acked, unacked_present)
}

/// `text` without ANSI colour escapes (the broker's log lines carry them).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte (0x40..=0x7e)
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}
