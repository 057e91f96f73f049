//! Replication across three brokers in one process that share one metadata
//! store (the seam the Raft quorum fills between processes): real sockets,
//! a real Kafka client, followers that fetch from their leader.
//!
//! Shows: acks=all writes reach every replica with identical bytes and the
//! high watermark; consumers read them; a stopped follower leaves the ISR
//! and acks=all writes go on while the ISR holds `min.insync.replicas`;
//! below it they fail with NOT_ENOUGH_REPLICAS; restarted followers catch up
//! and rejoin the ISR; when the leader stops, an in-sync follower takes over
//! and nothing acknowledged is lost or duplicated.

mod support;

use std::sync::Arc;
use std::time::Duration;

use millrace_broker::{Broker, RunningBroker};
use millrace_config::BrokerConfig;
use millrace_metadata::store::{LocalMetadataStore, MetadataStore};
use millrace_metadata::Controller;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use support::wait_until;

const TOPIC: &str = "replicated";
const LAG_MS: u64 = 1500;

/// Where a test broker gets its metadata: the first one opens the store,
/// the others share its controller.
enum Metadata {
    Store(Arc<dyn MetadataStore>),
    Controller(Arc<Controller>, String),
}

/// Starts broker `node_id` on `port` (0 picks one; a restarted broker takes
/// its old port back, as a real one keeps its address).
async fn start_broker(
    dir: &std::path::Path,
    node_id: i32,
    port: u16,
    metadata: Metadata,
) -> RunningBroker {
    let entries: Vec<(String, String)> = [
        ("node.id", node_id.to_string()),
        ("listeners", format!("PLAINTEXT://127.0.0.1:{port}")),
        (
            "log.dirs",
            dir.join(format!("broker-{node_id}")).display().to_string(),
        ),
        ("broker.rack", format!("az{node_id}")),
        ("replica.lag.time.max.ms", LAG_MS.to_string()),
        ("replica.fetch.wait.max.ms", "200".to_string()),
        ("replica.fetch.backoff.ms", "100".to_string()),
        ("min.insync.replicas", "2".to_string()),
        ("group.initial.rebalance.delay.ms", "0".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let (config, _) = BrokerConfig::from_entries(&entries).expect("config");
    match metadata {
        Metadata::Store(store) => Broker::start_with_store(config, Some(store)).await,
        Metadata::Controller(c, cluster_id) => {
            Broker::start_with_controller(config, c, cluster_id).await
        }
    }
    .expect("broker starts")
}

fn address(running: &RunningBroker) -> String {
    running.addresses()[0].1.to_string()
}

async fn produce(producer: &FutureProducer, count: usize, tag: &str) -> Result<(), KafkaError> {
    for i in 0..count {
        let payload = format!("{tag}-{i}");
        producer
            .send(
                FutureRecord::<(), _>::to(TOPIC)
                    .partition(0)
                    .payload(&payload),
                Duration::from_secs(15),
            )
            .await
            .map_err(|(e, _)| e)?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_follow_the_leader_and_the_isr_tracks_them() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn MetadataStore> =
        Arc::new(LocalMetadataStore::open(&dir.path().join("metadata")).expect("store"));
    let first = start_broker(dir.path(), 1, 0, Metadata::Store(store.clone())).await;
    let controller = first.broker().controller().clone();
    let cluster_id = first.broker().cluster_id().to_string();
    let mut brokers = vec![Some(first)];
    for id in 2..=3 {
        brokers.push(Some(
            start_broker(
                dir.path(),
                id,
                0,
                Metadata::Controller(controller.clone(), cluster_id.clone()),
            )
            .await,
        ));
    }
    let ports: Vec<u16> = brokers
        .iter()
        .flatten()
        .map(|b| b.addresses()[0].1.port())
        .collect();
    let bootstrap = brokers
        .iter()
        .flatten()
        .map(address)
        .collect::<Vec<_>>()
        .join(",");

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin");
    let created = admin
        .create_topics(
            &[NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3))],
            &AdminOptions::new(),
        )
        .await
        .expect("create_topics");
    assert!(created[0].is_ok(), "{created:?}");

    let registration = store
        .image()
        .topic(TOPIC)
        .and_then(|t| t.partitions.get(&0).cloned())
        .expect("partition 0");
    assert_eq!(registration.replicas.len(), 3);
    assert_eq!(registration.isr.len(), 3);
    let leader = registration.leader;
    let partition_on = |b: &RunningBroker| b.broker().partitions().get(TOPIC, 0);

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .create()
        .expect("producer");
    produce(&producer, 500, "a").await.expect("acks=all writes");

    // Every replica holds the same 500 records, committed.
    wait_until(
        "every replica at offset 500 with HW 500",
        Duration::from_secs(20),
        || {
            brokers.iter().flatten().all(|b| {
                partition_on(b)
                    .is_some_and(|p| p.log_end_offset() == 500 && p.high_watermark() == 500)
            })
        },
    )
    .await;
    let contents: Vec<bytes::Bytes> = brokers
        .iter()
        .flatten()
        .map(|b| {
            let p = partition_on(b).expect("hosted");
            p.log()
                .read(0, 64 << 20, p.log_end_offset(), true)
                .expect("read")
                .records
        })
        .collect();
    assert!(contents[0].len() > 500 * 3);
    assert_eq!(
        contents[0], contents[1],
        "follower bytes differ from the leader's"
    );
    assert_eq!(
        contents[0], contents[2],
        "follower bytes differ from the leader's"
    );

    // A consumer reads them.
    let expected: Vec<String> = (0..500).map(|i| format!("a-{i}")).collect();
    assert_eq!(
        support::read_from_start(&bootstrap, TOPIC, "", expected.len()),
        expected
    );

    // Stop one follower: it leaves the ISR and acks=all goes on with two.
    let followers: Vec<usize> = (0..3).filter(|&i| i as i32 + 1 != leader).collect();
    let stopped = brokers[followers[0]].take().expect("running");
    stopped.shutdown().await.expect("shutdown");
    produce(&producer, 100, "b")
        .await
        .expect("acks=all with one follower down");
    let isr_of = |store: &Arc<dyn MetadataStore>| {
        store
            .image()
            .topic(TOPIC)
            .and_then(|t| t.partitions.get(&0).map(|p| p.isr.clone()))
            .unwrap_or_default()
    };
    wait_until(
        "the ISR to drop the stopped follower",
        Duration::from_secs(20),
        || isr_of(&store).len() == 2,
    )
    .await;
    assert!(!isr_of(&store).contains(&(followers[0] as i32 + 1)));

    // Stop the second: the ISR shrinks to the leader and acks=all is refused.
    let stopped = brokers[followers[1]].take().expect("running");
    stopped.shutdown().await.expect("shutdown");
    wait_until(
        "the ISR to shrink to the leader",
        Duration::from_secs(20),
        || isr_of(&store) == vec![leader],
    )
    .await;
    let strict: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "3000")
        .set("retries", "0")
        .create()
        .expect("producer");
    let refused = produce(&strict, 1, "c").await;
    assert!(
        matches!(
            refused,
            Err(KafkaError::MessageProduction(
                RDKafkaErrorCode::NotEnoughReplicas
            ))
        ),
        "{refused:?}"
    );

    // Both followers come back, catch up and rejoin the ISR.
    for &i in &followers {
        brokers[i] = Some(
            start_broker(
                dir.path(),
                i as i32 + 1,
                ports[i],
                Metadata::Controller(controller.clone(), cluster_id.clone()),
            )
            .await,
        );
    }
    wait_until(
        "the ISR to take both followers back",
        Duration::from_secs(30),
        || isr_of(&store).len() == 3,
    )
    .await;

    // The leader stops (controlled shutdown): leadership moves to an
    // in-sync follower and acks=all writes go on there.
    let old_leader = leader as usize - 1;
    let stopped = brokers[old_leader].take().expect("running");
    stopped.shutdown().await.expect("shutdown");
    let new_leader = store
        .image()
        .topic(TOPIC)
        .and_then(|t| t.partitions.get(&0).map(|p| p.leader))
        .unwrap_or(-1);
    assert!(
        new_leader > 0 && new_leader != leader,
        "leader after shutdown: {new_leader}"
    );
    if let Err(e) = produce(&producer, 100, "c").await {
        let states: Vec<String> = brokers
            .iter()
            .flatten()
            .map(|b| {
                let p = partition_on(b).expect("hosted");
                format!(
                    "broker {}: {:?} leo {} hw {}",
                    b.broker().node_id(),
                    p.leader_state(),
                    p.log_end_offset(),
                    p.high_watermark()
                )
            })
            .collect();
        panic!("acks=all on the new leader: {e:?}; replicas: {states:#?}");
    }

    // Everything acknowledged is there once, in order.
    let expected: Vec<String> = (0..500)
        .map(|i| format!("a-{i}"))
        .chain((0..100).map(|i| format!("b-{i}")))
        .chain((0..100).map(|i| format!("c-{i}")))
        .collect();
    assert_eq!(
        support::read_from_start(&bootstrap, TOPIC, "", expected.len()),
        expected
    );

    // Clients first, then the brokers.
    drop((producer, strict, admin));
    for b in brokers.into_iter().flatten() {
        b.shutdown().await.expect("shutdown");
    }
}
