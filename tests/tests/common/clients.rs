//! librdkafka clients (through the `rdkafka` crate) configured the way these
//! suites need them: no consumer group (consumption by assignment), no
//! idempotence, and every wait bounded.

use std::future::Future;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use millrace_tests::TestBroker;

/// Upper bound for any single client operation.
pub const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a future to completion on this thread, failing after [`OP_TIMEOUT`].
pub fn wait<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(async { tokio::time::timeout(OP_TIMEOUT, future).await })
        .expect("client operation timed out")
}

fn base_config(broker: &TestBroker) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap())
        .set("client.id", "millrace-tests")
        .set("broker.address.family", "v4")
        .set("log_level", "4");
    config
}

/// An admin client.
pub fn admin(broker: &TestBroker) -> AdminClient<DefaultClientContext> {
    base_config(broker).create().expect("admin client")
}

/// Admin options with bounded timeouts.
pub fn admin_opts() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(20)))
        .operation_timeout(Some(Duration::from_secs(20)))
}

/// A producer without idempotence; `extra` settings override the defaults.
pub fn producer(broker: &TestBroker, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = base_config(broker);
    config
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "20000")
        .set("linger.ms", "5");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("producer")
}

/// A consumer that reads by assignment: `assign`, never `subscribe`, with
/// explicit start offsets and no commits, so it never needs the group
/// coordinator the broker does not have yet. (librdkafka only accepts
/// `assign` with a `group.id` set.)
pub fn consumer(broker: &TestBroker, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = base_config(broker);
    config
        .set("group.id", "millrace-tests-assign")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("consumer")
}

/// A topic to create: name, partitions, configs.
pub type TopicSpec<'a> = (&'a str, i32, &'a [(&'a str, &'a str)]);

/// Creates topics with replication factor 1 and asserts every creation
/// succeeded.
pub fn create_topics(broker: &TestBroker, topics: &[TopicSpec<'_>]) {
    let admin = admin(broker);
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions, configs)| {
            let mut t = NewTopic::new(name, *partitions, TopicReplication::Fixed(1));
            for (k, v) in configs.iter() {
                t = t.set(k, v);
            }
            t
        })
        .collect();
    let results = wait(admin.create_topics(&new, &admin_opts())).expect("create_topics");
    for r in results {
        r.unwrap_or_else(|(name, code)| panic!("creating {name}: {code:?}"));
    }
}

/// Sends one record and waits for its delivery report; returns (partition, offset).
pub fn send(producer: &FutureProducer, record: FutureRecord<'_, [u8], [u8]>) -> (i32, i64) {
    let delivery = producer
        .send_result(record)
        .map_err(|(e, _)| e)
        .expect("enqueue record");
    let delivered = wait(delivery).expect("delivery report");
    match delivered {
        Ok(d) => (d.partition, d.offset),
        Err((e, _)) => panic!("delivery failed: {e}"),
    }
}

/// Assigns `(topic, partition, offset)` triples.
pub fn assign(consumer: &BaseConsumer, parts: &[(&str, i32, Offset)]) {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, offset) in parts {
        tpl.add_partition_offset(topic, *partition, *offset)
            .expect("offset");
    }
    consumer.assign(&tpl).expect("assign");
}

/// Polls until `n` messages arrived (fails on a consumer error or after
/// [`OP_TIMEOUT`]).
pub fn consume(consumer: &BaseConsumer, n: usize) -> Vec<OwnedMessage> {
    let deadline = Instant::now() + OP_TIMEOUT;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {n} messages before the deadline",
            out.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(e)) => panic!("consumer error after {} messages: {e}", out.len()),
        }
    }
    out
}

/// Polls for `quiet` and asserts no message (and no error) arrives.
pub fn assert_no_more(consumer: &BaseConsumer, quiet: Duration) {
    let until = Instant::now() + quiet;
    while Instant::now() < until {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => panic!(
                "unexpected message at {}-{} offset {}",
                m.topic(),
                m.partition(),
                m.offset()
            ),
            Some(Err(e)) => panic!("unexpected consumer error: {e}"),
        }
    }
}

/// The headers of a message as owned pairs.
pub fn headers_of(m: &OwnedMessage) -> Vec<(String, Option<Vec<u8>>)> {
    m.headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default()
}
