//! librdkafka clients that use the coordinators (issue 3): consumers that
//! join groups (recording every rebalance callback), consumer group members
//! running on their own threads, a paced producer thread, idempotent and
//! transactional producers, and readers that read a topic to a known end
//! under either isolation level.
//!
//! "A known end": [`append_sentinels`] writes one uniquely named record to
//! every partition, and [`read_until_sentinels`] reads until it saw all of
//! them. A `read_committed` reader can only see a sentinel once the last
//! stable offset passed it, so everything before it is decided (committed or
//! aborted); a stuck LSO fails the read at its deadline.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// One rebalance callback as a consumer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    /// Partitions assigned (the whole set, or the increment for cooperative).
    Assign(Vec<(String, i32)>),
    /// Partitions revoked.
    Revoke(Vec<(String, i32)>),
    /// A rebalance error.
    Error(String),
}

/// Shared log of rebalance callbacks.
pub type Events = Arc<Mutex<Vec<RebalanceEvent>>>;

/// A client's captured librdkafka log lines.
pub type ClientLog = Arc<Mutex<Vec<String>>>;

/// Consumer context recording rebalance callbacks (and then running the
/// default assign/unassign, incremental for cooperative protocols).
pub struct Recorder {
    /// The callbacks seen, in order.
    pub events: Events,
    /// librdkafka log lines, kept when `MILLRACE_TEST_CLIENT_DEBUG` names
    /// librdkafka debug contexts (e.g. `cgrp,fetch`); printed on failure.
    pub logs: ClientLog,
}

impl ClientContext for Recorder {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        if client_debug().is_some() {
            self.logs
                .lock()
                .expect("logs")
                .push(format!("{level:?} {fac} {log_message}"));
        }
    }
}

/// librdkafka `debug` contexts requested through `MILLRACE_TEST_CLIENT_DEBUG`.
pub fn client_debug() -> Option<String> {
    std::env::var("MILLRACE_TEST_CLIENT_DEBUG")
        .ok()
        .filter(|v| !v.is_empty())
}

fn tpl_parts(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    let mut v: Vec<(String, i32)> = tpl
        .elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect();
    v.sort();
    v
}

impl ConsumerContext for Recorder {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let event = match rebalance {
            Rebalance::Assign(tpl) => RebalanceEvent::Assign(tpl_parts(tpl)),
            Rebalance::Revoke(tpl) => RebalanceEvent::Revoke(tpl_parts(tpl)),
            Rebalance::Error(e) => RebalanceEvent::Error(e.to_string()),
        };
        self.events.lock().expect("events").push(event);
    }
}

/// A consumer that joins groups.
pub type GroupConsumer = BaseConsumer<Recorder>;

fn is_consumer_protocol(extra: &[(&str, &str)]) -> bool {
    extra
        .iter()
        .any(|(k, v)| *k == "group.protocol" && v.eq_ignore_ascii_case("consumer"))
}

/// A group consumer for `group` (not subscribed yet): earliest reset,
/// auto-commit every 500 ms, a 10 s session; `extra` overrides. With
/// `group.protocol=consumer` (KIP-848) the classic-only settings are left out.
pub fn group_consumer(
    bootstrap: &str,
    group: &str,
    extra: &[(&str, &str)],
) -> (GroupConsumer, Events) {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", format!("millrace-tests-{group}"))
        .set("broker.address.family", "v4")
        .set("log_level", "4")
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "500")
        .set("fetch.wait.max.ms", "100")
        .set("socket.timeout.ms", "10000");
    if !is_consumer_protocol(extra) {
        config
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000");
    }
    if let Some(debug) = client_debug() {
        config.set("debug", debug).set("log_level", "7");
    }
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let events: Events = Arc::default();
    let consumer = config
        .create_with_context(Recorder {
            events: events.clone(),
            logs: Arc::default(),
        })
        .expect("group consumer");
    (consumer, events)
}

/// The partitions currently assigned according to `events` (applies
/// assigns and revokes in order; works for eager and cooperative).
pub fn assigned_from_events(events: &Events, cooperative: bool) -> Vec<(String, i32)> {
    let mut current: std::collections::BTreeSet<(String, i32)> = Default::default();
    for e in events.lock().expect("events").iter() {
        match e {
            RebalanceEvent::Assign(p) => {
                if !cooperative {
                    current.clear();
                }
                current.extend(p.iter().cloned());
            }
            RebalanceEvent::Revoke(p) => {
                if cooperative {
                    for x in p {
                        current.remove(x);
                    }
                } else {
                    current.clear();
                }
            }
            RebalanceEvent::Error(_) => {}
        }
    }
    current.into_iter().collect()
}

/// One consumed record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rec {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key as text (lossy), if any.
    pub key: Option<String>,
    /// Value as text (lossy), empty for null.
    pub value: String,
}

impl Rec {
    /// From a consumed message.
    pub fn of<M: Message>(m: &M) -> Rec {
        Rec {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            value: m
                .payload()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default(),
        }
    }
}

/// What the members of a group consumed, shared between member threads.
#[derive(Default)]
pub struct Consumed {
    /// Every record delivered to any member, with the member's name.
    pub records: Mutex<Vec<(String, Rec)>>,
    /// Consumer errors (poll returned an error), with the member's name.
    pub errors: Mutex<Vec<(String, String)>>,
    /// Every member's librdkafka log (see [`client_debug`]), by name.
    pub logs: Mutex<Vec<(String, ClientLog)>>,
}

impl Consumed {
    /// Distinct values consumed so far.
    pub fn distinct_values(&self) -> std::collections::BTreeSet<String> {
        self.records
            .lock()
            .expect("records")
            .iter()
            .map(|(_, r)| r.value.clone())
            .collect()
    }

    /// How many records (with duplicates) were delivered.
    pub fn len(&self) -> usize {
        self.records.lock().expect("records").len()
    }

    /// Whether nothing was delivered yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records per member name.
    pub fn per_member(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (m, _) in self.records.lock().expect("records").iter() {
            *out.entry(m.clone()).or_insert(0) += 1;
        }
        out
    }
}

/// A group member polling on its own thread until stopped.
pub struct Member {
    /// Its name (also its client.id suffix).
    pub name: String,
    /// Its rebalance callbacks.
    pub events: Events,
    /// Its librdkafka log lines (see [`client_debug`]).
    pub logs: ClientLog,
    consumed: Arc<Consumed>,
    stop: Arc<AtomicBool>,
    done: mpsc::Receiver<()>,
    handle: Option<JoinHandle<()>>,
}

impl Member {
    /// Starts a member of `group` subscribed to `topics`.
    pub fn spawn(
        name: &str,
        bootstrap: &str,
        group: &str,
        topics: &[&str],
        extra: &[(&str, &str)],
        consumed: Arc<Consumed>,
    ) -> Member {
        let mut extra: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        extra.push(("client.id".into(), format!("member-{name}")));
        // Offsets are stored only for records the member recorded: the
        // rdkafka crate's `BaseConsumer::drop` polls (and discards) messages
        // until the consumer is closed, and with automatic offset storage
        // the final commit on close would cover records nobody processed.
        if !extra.iter().any(|(k, _)| k == "enable.auto.offset.store") {
            extra.insert(0, ("enable.auto.offset.store".into(), "false".into()));
        }
        let store_offsets = extra
            .iter()
            .rev()
            .find(|(k, _)| k == "enable.auto.offset.store")
            .is_some_and(|(_, v)| v == "false");
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let (consumer, events) = {
            let borrowed: Vec<(&str, &str)> = extra
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            group_consumer(bootstrap, group, &borrowed)
        };
        let logs = consumer.context().logs.clone();
        consumed
            .logs
            .lock()
            .expect("logs")
            .push((name.to_string(), logs.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, done) = mpsc::channel();
        let shared = consumed.clone();
        let handle = {
            let stop = stop.clone();
            let name = name.to_string();
            std::thread::Builder::new()
                .name(format!("member-{name}"))
                .spawn(move || {
                    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
                    consumer.subscribe(&refs).expect("subscribe");
                    while !stop.load(Ordering::SeqCst) {
                        match consumer.poll(Duration::from_millis(100)) {
                            None => {}
                            Some(Ok(m)) => {
                                consumed
                                    .records
                                    .lock()
                                    .expect("records")
                                    .push((name.clone(), Rec::of(&m)));
                                if store_offsets {
                                    // Fails only if the partition was revoked
                                    // meanwhile: its new owner re-reads it.
                                    let _ = consumer.store_offset_from_message(&m);
                                }
                            }
                            Some(Err(e)) => consumed
                                .errors
                                .lock()
                                .expect("errors")
                                .push((name.clone(), e.to_string())),
                        }
                    }
                    // Dropping closes the consumer: final commit, LeaveGroup.
                    drop(consumer);
                    let _ = tx.send(());
                })
                .expect("spawn member")
        };
        Member {
            name: name.to_string(),
            events,
            logs,
            consumed: shared,
            stop,
            done,
            handle: Some(handle),
        }
    }

    /// Current assignment according to the callbacks.
    pub fn assigned(&self, cooperative: bool) -> Vec<(String, i32)> {
        assigned_from_events(&self.events, cooperative)
    }

    /// The consumer errors this member got (last 10).
    pub fn errors(&self) -> Vec<String> {
        let all: Vec<String> = self
            .consumed
            .errors
            .lock()
            .expect("errors")
            .iter()
            .filter(|(m, _)| *m == self.name)
            .map(|(_, e)| e.clone())
            .collect();
        all[all.len().saturating_sub(10)..].to_vec()
    }

    /// Number of Assign callbacks so far.
    pub fn assign_count(&self) -> usize {
        self.events
            .lock()
            .expect("events")
            .iter()
            .filter(|e| matches!(e, RebalanceEvent::Assign(_)))
            .count()
    }

    /// Stops polling and closes the consumer (leaves the group); fails if
    /// closing takes longer than `timeout`.
    pub fn leave(mut self, timeout: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        self.done
            .recv_timeout(timeout)
            .unwrap_or_else(|_| panic!("member {} did not close within {timeout:?}", self.name));
        if let Some(h) = self.handle.take() {
            h.join().expect("member thread");
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Bounded: a member that cannot close is left behind (detached).
        let _ = self.done.recv_timeout(Duration::from_secs(30));
    }
}

/// Polls `cond` every 50 ms until it holds; panics with `what()` after `timeout`.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {}",
            what()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plain (non-idempotent, acks=all) producer.
pub fn plain_producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("log_level", "4")
        .set("enable.idempotence", "false")
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "5");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("producer")
}

/// A transactional producer with `transactional.id` = `txn_id` (not yet
/// initialized); `extra` overrides.
pub fn txn_producer(bootstrap: &str, txn_id: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("log_level", "4")
        .set("transactional.id", txn_id)
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "5");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    // librdkafka refuses message.timeout.ms > transaction.timeout.ms.
    if let Some((_, t)) = extra.iter().find(|(k, _)| *k == "transaction.timeout.ms") {
        if t.parse::<u64>().is_ok_and(|t| t < 30_000) {
            config.set("message.timeout.ms", *t);
        }
    }
    config.create().expect("transactional producer")
}

/// Enqueues one record (value and optional key) to `topic`/`partition`.
pub fn enqueue(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    key: Option<&str>,
    value: &str,
) {
    let mut record: FutureRecord<'_, str, str> =
        FutureRecord::to(topic).partition(partition).payload(value);
    if let Some(k) = key {
        record = record.key(k);
    }
    // The delivery future is not needed: flush/commit_transaction wait.
    drop(
        producer
            .send_result(record)
            .map_err(|(e, _)| e)
            .expect("enqueue record"),
    );
}

/// Sends `values` to `topic`/`partition` and waits for every delivery
/// (acks); returns their offsets.
pub fn produce_values(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    values: &[String],
) -> Vec<i64> {
    let futures: Vec<_> = values
        .iter()
        .map(|v| {
            producer
                .send_result(
                    FutureRecord::<str, str>::to(topic)
                        .partition(partition)
                        .payload(v),
                )
                .map_err(|(e, _)| e)
                .expect("enqueue")
        })
        .collect();
    futures
        .into_iter()
        .map(
            |f| match super::clients::wait(f).expect("delivery report") {
                Ok(d) => d.offset,
                Err((e, _)) => panic!("delivery to {topic}-{partition} failed: {e}"),
            },
        )
        .collect()
}

/// Writes one sentinel record to each of `partitions` partitions of `topic`
/// (non-transactionally) and returns its value.
pub fn append_sentinels(bootstrap: &str, topic: &str, partitions: i32) -> String {
    let token = format!("__END__{}", uuid::Uuid::new_v4().simple());
    let producer = plain_producer(bootstrap, &[]);
    for p in 0..partitions {
        produce_values(&producer, topic, p, std::slice::from_ref(&token));
    }
    token
}

/// A consumer by assignment with `isolation.level` = `isolation`.
pub fn assign_reader(bootstrap: &str, isolation: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("log_level", "4")
        .set("group.id", "millrace-tests-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("isolation.level", isolation)
        .create()
        .expect("reader")
}

/// Reads every partition of `topic` from the beginning until the sentinel
/// `token` was seen on each, with `isolation.level` = `isolation`; returns
/// the records before the sentinels (other sentinels excluded), by
/// partition then offset. Fails after `timeout` naming the partitions whose
/// sentinel never arrived (for `read_committed`: a stuck LSO).
pub fn read_until_sentinels(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    token: &str,
    isolation: &str,
    timeout: Duration,
) -> Vec<Rec> {
    let consumer = assign_reader(bootstrap, isolation);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("offset");
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut pending: std::collections::BTreeSet<i32> = (0..partitions).collect();
    let mut out = Vec::new();
    while !pending.is_empty() {
        if Instant::now() > deadline {
            let hw: Vec<_> = pending
                .iter()
                .map(|p| {
                    (
                        p,
                        consumer.fetch_watermarks(topic, *p, Duration::from_secs(5)),
                    )
                })
                .collect();
            panic!(
                "{isolation} reader of {topic}: no sentinel on partitions {pending:?} after \
                 {timeout:?} (watermarks {hw:?}); read {} records so far, last ones: {:?}",
                out.len(),
                out.iter().rev().take(5).collect::<Vec<_>>()
            );
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => {
                let r = Rec::of(&m);
                if r.value == token {
                    pending.remove(&r.partition);
                } else if !r.value.starts_with("__END__") && pending.contains(&r.partition) {
                    out.push(r);
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => panic!("{isolation} reader of {topic}: consumer error: {e}"),
        }
    }
    out.sort();
    out
}

/// Values of `records` grouped by partition, in offset order.
pub fn values_by_partition(records: &[Rec]) -> BTreeMap<i32, Vec<String>> {
    let mut out: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for r in records {
        out.entry(r.partition)
            .or_default()
            .push((r.offset, r.value.clone()));
    }
    out.into_iter()
        .map(|(p, mut v)| {
            v.sort();
            (p, v.into_iter().map(|(_, s)| s).collect())
        })
        .collect()
}

/// Committed offsets of `group` for `topic` partitions `0..partitions`
/// (`None` where nothing is committed), asked by a consumer of that group
/// that does not join it.
pub fn committed_offsets(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("log_level", "4")
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("committed offsets of {group}: {e}"));
    (0..partitions)
        .map(|p| {
            match got
                .find_partition(topic, p)
                .expect("partition in result")
                .offset()
            {
                Offset::Offset(o) => Some(o),
                _ => None,
            }
        })
        .collect()
}

/// Produces `count` records named `{prefix}-{i:06}` to `topic`, record `i`
/// to partition `i % partitions`, `per_tick` records then a `tick` pause,
/// on a thread; the handle returns the values (all acknowledged).
pub fn spawn_paced_producer(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    prefix: &str,
    count: usize,
    per_tick: usize,
    tick: Duration,
) -> JoinHandle<Vec<String>> {
    let bootstrap = bootstrap.to_string();
    let topic = topic.to_string();
    let prefix = prefix.to_string();
    std::thread::Builder::new()
        .name(format!("producer-{topic}"))
        .spawn(move || {
            let producer = plain_producer(&bootstrap, &[("message.timeout.ms", "60000")]);
            let mut values = Vec::with_capacity(count);
            let mut futures = Vec::with_capacity(count);
            for i in 0..count {
                let value = format!("{prefix}-{i:06}");
                let f = producer
                    .send_result(
                        FutureRecord::<str, str>::to(&topic)
                            .partition((i % partitions as usize) as i32)
                            .payload(&value),
                    )
                    .map_err(|(e, _)| e)
                    .expect("enqueue");
                futures.push(f);
                values.push(value);
                if (i + 1) % per_tick == 0 {
                    std::thread::sleep(tick);
                }
            }
            for (i, f) in futures.into_iter().enumerate() {
                match super::clients::wait(f).expect("delivery report") {
                    Ok(_) => {}
                    Err((e, _)) => panic!("delivery of {} failed: {e}", values[i]),
                }
            }
            values
        })
        .expect("spawn producer")
}

/// Decodes a ConsumerProtocolAssignment (as DescribeGroups returns a
/// member's assignment): the assigned `(topic, partition)` pairs.
pub fn decode_assignment(bytes: &[u8]) -> Vec<(String, i32)> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> &'a [u8] {
        assert!(b.len() >= n, "assignment truncated");
        let (h, t) = b.split_at(n);
        *b = t;
        h
    }
    fn i16_(b: &mut &[u8]) -> i16 {
        i16::from_be_bytes(take(b, 2).try_into().expect("2 bytes"))
    }
    fn i32_(b: &mut &[u8]) -> i32 {
        i32::from_be_bytes(take(b, 4).try_into().expect("4 bytes"))
    }
    let mut b = bytes;
    if b.is_empty() {
        return Vec::new();
    }
    let _version = i16_(&mut b);
    let topics = i32_(&mut b);
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = i16_(&mut b);
        let topic = String::from_utf8_lossy(take(&mut b, len as usize)).into_owned();
        let n = i32_(&mut b);
        for _ in 0..n.max(0) {
            out.push((topic.clone(), i32_(&mut b)));
        }
    }
    out.sort();
    out
}

/// Counts of each value in `values`.
pub fn counts<'a>(values: impl IntoIterator<Item = &'a String>) -> HashMap<&'a str, usize> {
    let mut out = HashMap::new();
    for v in values {
        *out.entry(v.as_str()).or_insert(0) += 1;
    }
    out
}

/// Asserts `got` (possibly with duplicates) covers exactly the set `want`:
/// nothing missing, nothing unexpected. Reports the first few differences.
pub fn assert_same_set(what: &str, want: &[String], got: &std::collections::BTreeSet<String>) {
    let want_set: std::collections::BTreeSet<String> = want.iter().cloned().collect();
    let missing: Vec<_> = want_set.difference(got).take(20).collect();
    let unexpected: Vec<_> = got.difference(&want_set).take(20).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "{what}: {} of {} records missing (first: {missing:?}), {} unexpected (first: {unexpected:?})",
        want_set.difference(got).count(),
        want_set.len(),
        got.difference(&want_set).count()
    );
}

/// Whether a Kafka error is librdkafka's fatal "fenced" kind.
pub fn is_fenced(e: &KafkaError) -> bool {
    use rdkafka::error::RDKafkaErrorCode as C;
    match e {
        KafkaError::Transaction(t) => {
            t.is_fatal()
                && matches!(
                    t.code(),
                    C::Fenced | C::ProducerFenced | C::InvalidProducerEpoch
                )
        }
        _ => false,
    }
}

/// Checks the producer can use transactions: `init_transactions` within 30 s.
pub fn init_txn(producer: &FutureProducer, txn_id: &str) {
    producer
        .init_transactions(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("init_transactions({txn_id}): {e}"));
}

// ---------------------------------------------------------------------------
// Idempotent producers
// ---------------------------------------------------------------------------

pub fn idempotent_producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("log_level", "4")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "120000")
        .set("linger.ms", "2")
        .set("batch.num.messages", "50")
        .set("socket.timeout.ms", "10000")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "200");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("idempotent producer")
}

/// What one producer run sent: per partition, (value, delivery outcome).
pub type Sent = BTreeMap<i32, Vec<(String, Result<i64, String>)>>;

/// Produces `count` records (`{prefix}-{p}-{i}`) round-robin over the
/// partitions, `per_tick` then a `tick` pause, on a thread, and waits for
/// every delivery report.
pub fn spawn_idempotent_producer(
    bootstrap: String,
    partitions: i32,
    topic: String,
    prefix: String,
    count: usize,
    per_tick: usize,
    tick: Duration,
) -> std::thread::JoinHandle<Sent> {
    std::thread::spawn(move || {
        let producer = idempotent_producer(&bootstrap, &[]);
        let mut pending = Vec::with_capacity(count);
        for i in 0..count {
            let p = (i % partitions as usize) as i32;
            let value = format!("{prefix}-{p}-{i:06}");
            let f = producer
                .send_result(
                    FutureRecord::<str, str>::to(&topic)
                        .partition(p)
                        .payload(&value),
                )
                .map_err(|(e, _)| e)
                .expect("enqueue");
            pending.push((p, value, f));
            if (i + 1) % per_tick == 0 {
                std::thread::sleep(tick);
            }
        }
        let mut sent = Sent::new();
        let deadline = Instant::now() + Duration::from_secs(150);
        for (p, value, f) in pending {
            assert!(Instant::now() < deadline, "deliveries still pending");
            let outcome = match super::clients::wait(f) {
                Ok(Ok(d)) => Ok(d.offset),
                Ok(Err((e, _))) => Err(e.to_string()),
                Err(_) => Err("canceled".to_string()),
            };
            sent.entry(p).or_default().push((value, outcome));
        }
        // A fatal producer error (e.g. InitProducerId refused) fails every
        // record with a local purge code: name the cause in each failure.
        if let Some((code, reason)) = producer.client().fatal_error() {
            for records in sent.values_mut() {
                for (_, o) in records.iter_mut() {
                    if let Err(e) = o {
                        *e = format!("{e} [producer fatal error {code:?}: {reason}]");
                    }
                }
            }
        }
        let _ = producer.flush(Duration::from_secs(10));
        sent
    })
}

/// Every record was acknowledged (reports the first failures otherwise).
pub fn assert_all_delivered(sent: &Sent) {
    let total: usize = sent.values().map(Vec::len).sum();
    let failed: Vec<_> = sent
        .values()
        .flatten()
        .filter(|(_, o)| o.is_err())
        .collect();
    assert!(
        failed.is_empty(),
        "an idempotent producer with retries must deliver everything; {} of {total} failed, \
         first: {:?}",
        failed.len(),
        failed.iter().take(5).collect::<Vec<_>>()
    );
}

/// Every record acknowledged, and each partition holds exactly the sent
/// values in order, each at its reported offset.
pub fn check_idempotent_log(bootstrap: &str, topic: &str, partitions: i32, sent: &Sent) {
    assert_all_delivered(sent);
    let token = append_sentinels(bootstrap, topic, partitions);
    let log = read_until_sentinels(
        bootstrap,
        topic,
        partitions,
        &token,
        "read_uncommitted",
        Duration::from_secs(60),
    );
    let by_partition = values_by_partition(&log);
    for (p, records) in sent {
        let want: Vec<&String> = records.iter().map(|(v, _)| v).collect();
        let got: Vec<&String> = by_partition
            .get(p)
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        if got != want {
            let counts = counts(got.iter().copied());
            let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(10).collect();
            let first_diff = got.iter().zip(&want).position(|(a, b)| a != b);
            panic!(
                "{topic}-{p}: log holds {} records, {} sent; duplicated: {dups:?}; first \
                 difference at index {first_diff:?} (log {:?} vs sent {:?})",
                got.len(),
                want.len(),
                first_diff.and_then(|i| got.get(i)),
                first_diff.and_then(|i| want.get(i)),
            );
        }
        // The delivery reports name each record's offset (a retried batch
        // that was a duplicate reports the original batch's offsets).
        let offsets: BTreeMap<&String, i64> = log
            .iter()
            .filter(|r| r.partition == *p)
            .map(|r| (&r.value, r.offset))
            .collect();
        for (v, o) in records {
            assert_eq!(
                o.as_ref().ok(),
                offsets.get(v),
                "{topic}-{p}: reported offset of {v}"
            );
        }
    }
}

/// A group consuming a topic, as [`wait_all_consumed`] needs to know.
#[derive(Clone, Copy)]
pub struct GroupTopic<'a> {
    /// Bootstrap servers.
    pub bootstrap: &'a str,
    /// The group.
    pub group: &'a str,
    /// The topic.
    pub topic: &'a str,
    /// Its partition count.
    pub partitions: i32,
}

/// Waits until every value of `produced` was consumed by a member of
/// `group`; on timeout fails with what is missing and where: each missing
/// value's partition and offset in the log, per partition the offsets the
/// members consumed, the log end and the group's committed offset, the
/// members' assignments and consumer errors.
pub fn wait_all_consumed(
    consumed: &Consumed,
    produced: &[String],
    at: &GroupTopic<'_>,
    members: &[&Member],
    timeout: Duration,
) {
    let GroupTopic {
        bootstrap,
        group,
        topic,
        partitions,
    } = *at;
    let deadline = Instant::now() + timeout;
    loop {
        let got = consumed.distinct_values();
        if produced.iter().all(|v| got.contains(v)) {
            return;
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = consumed.distinct_values();
    let missing: std::collections::BTreeSet<&String> =
        produced.iter().filter(|v| !got.contains(*v)).collect();
    let token = append_sentinels(bootstrap, topic, partitions);
    let log = read_until_sentinels(
        bootstrap,
        topic,
        partitions,
        &token,
        "read_uncommitted",
        Duration::from_secs(30),
    );
    let missing_at: Vec<(i32, i64, &str)> = log
        .iter()
        .filter(|r| missing.contains(&r.value))
        .map(|r| (r.partition, r.offset, r.value.as_str()))
        .collect();
    let committed = committed_offsets(bootstrap, group, topic, partitions);
    let mut per_partition = String::new();
    for p in 0..partitions {
        let mut offsets: Vec<(i64, String)> = consumed
            .records
            .lock()
            .expect("records")
            .iter()
            .filter(|(_, r)| r.partition == p)
            .map(|(m, r)| (r.offset, m.clone()))
            .collect();
        offsets.sort();
        offsets.dedup_by_key(|(o, _)| *o);
        // Consumed offset ranges and who consumed them (a gap or a change
        // of member starts a new range).
        let mut ranges: Vec<(i64, i64, String)> = Vec::new();
        for (o, m) in &offsets {
            match ranges.last_mut() {
                Some((_, end, who)) if *end + 1 == *o && who == m => *end = *o,
                _ => ranges.push((*o, *o, m.clone())),
            }
        }
        let end = log.iter().filter(|r| r.partition == p).count();
        per_partition.push_str(&format!(
            "\n  partition {p}: log has {end} records, consumed offset ranges {ranges:?}, \
             committed {:?}",
            committed[p as usize]
        ));
    }
    let gap_partitions: std::collections::BTreeSet<i32> =
        missing_at.iter().map(|(p, _, _)| *p).collect();
    for (name, logs) in consumed.logs.lock().expect("logs").iter() {
        for line in logs.lock().expect("logs").iter() {
            let interesting = gap_partitions
                .iter()
                .any(|p| line.contains(&format!("[{p}]")) && line.contains("offset"));
            if interesting || line.contains("OffsetCommit") || line.contains("OFFSETFETCH") {
                eprintln!("{name} log: {line}");
            }
        }
    }
    let assignments: Vec<String> = members
        .iter()
        .map(|m| format!("{}: {:?}", m.name, assigned_from_events(&m.events, true)))
        .collect();
    panic!(
        "after {timeout:?}, {} of {} produced records were never consumed by group {group}; \
         missing (partition, offset, value), first 30: {:?}{per_partition}\n  assignments \
         (per callbacks): {assignments:?}\n  consumer errors: {:?}",
        missing.len(),
        produced.len(),
        missing_at.iter().take(30).collect::<Vec<_>>(),
        consumed.errors.lock().expect("errors")
    );
}
