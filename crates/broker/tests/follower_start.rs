//! A partition that a follower starts replicating while its fetcher's
//! long poll is parked at the leader must not wait for that poll to end.
//!
//! With `replica.fetch.wait.max.ms` far above the producer's delivery
//! timeout, a follower that only picked the new partition up after its
//! parked fetch returned would hold every acks=all write to a new topic (or
//! to a partition whose leader just moved) for the whole wait. Kafka's own
//! fetcher does wait; Millrace abandons the parked fetch instead, so a new
//! RF=3 topic takes acks=all writes at once.

mod support;

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use support::{wait_until, Cluster};

/// Far longer than the producer below waits for a delivery.
const PARKED_FETCH_MS: &str = "25000";

async fn create_topic(admin: &AdminClient<DefaultClientContext>, name: &str) {
    let results = admin
        .create_topics(
            &[NewTopic::new(name, 1, TopicReplication::Fixed(3))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics");
    for result in results {
        result.expect("topic created");
    }
}

async fn produce(producer: &FutureProducer, topic: &str, count: usize) {
    for i in 0..count {
        let payload = format!("{topic}-{i}");
        producer
            .send(
                FutureRecord::<(), _>::to(topic)
                    .partition(0)
                    .payload(&payload),
                Duration::from_secs(5),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("acks=all write {i} to {topic}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replicated_topic_takes_acks_all_writes_while_fetches_are_parked() {
    let cluster = Cluster::start(
        3,
        &[
            ("replica.fetch.wait.max.ms", PARKED_FETCH_MS),
            ("replica.socket.timeout.ms", "30000"),
            ("replica.lag.time.max.ms", "30000"),
            ("min.insync.replicas", "3"),
        ],
    )
    .await;
    let bootstrap = cluster.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        // A write the followers do not take within this fails the test.
        .set("message.timeout.ms", "5000")
        .create()
        .expect("producer");

    // One topic per leader, written once, so each follower has a fetcher
    // per leader with a fetch parked at it for the next 25 s.
    for i in 0..3 {
        let topic = format!("warm-{i}");
        create_topic(&admin, &topic).await;
        produce(&producer, &topic, 3).await;
    }
    // Let every fetcher park its next fetch.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // New topics join fetchers whose fetches are parked: every acks=all
    // write must still be acknowledged well inside the 5 s delivery timeout.
    for i in 0..3 {
        let topic = format!("late-{i}");
        create_topic(&admin, &topic).await;
        produce(&producer, &topic, 10).await;
        let partition = cluster.partition(&topic);
        assert_eq!(partition.isr.len(), 3, "{topic}: every replica in sync");
        for &replica in &partition.replicas {
            wait_until(
                &format!("{topic} on broker {replica}"),
                Duration::from_secs(5),
                || {
                    cluster
                        .hosted(replica, &topic)
                        .is_some_and(|p| p.log_end_offset() >= 10)
                },
            )
            .await;
        }
    }
    drop(producer);
    cluster.shutdown().await;
}
