//! Partition reassignment (KIP-455) and leader election (KIP-460) across
//! brokers in one process that share one metadata store: real sockets, a
//! real producer and consumer (rdkafka), and the admin requests as raw
//! Kafka protocol (rdkafka's AdminClient has no reassignment calls).
//!
//! Shows: a partition moves to two new brokers while an acks=all producer
//! keeps writing, ListPartitionReassignments reports the move while the
//! follower throttle holds the new replicas back, and afterwards every
//! acknowledged record is read from the new replicas, whose logs are
//! byte-identical, while the old replicas' logs are gone; a cancelled move
//! reverts; Kafka's error codes for bad requests; preferred election (by
//! request and automatically) gives leadership back to the first replica;
//! unclean election takes a live replica outside the ISR.

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ElectLeadersRequest, ElectLeadersResponse,
    IncrementalAlterConfigsRequest, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use support::{call, tn, wait_until, Cluster};

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
const ELECTION_NOT_NEEDED: i16 = 84;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;

/// AlterPartitionReassignments for one partition; returns its error code.
fn reassign(addr: SocketAddr, topic: &str, partition: i32, replicas: Option<&[i32]>) -> i16 {
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(tn(topic))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(partition)
                .with_replicas(
                    replicas.map(|r| r.iter().map(|&b| BrokerId(b)).collect()),
                )])]);
    let response = call(addr, 0, &request);
    assert_eq!(response.error_code, NONE);
    assert_eq!(response.responses.len(), 1);
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.partition_index, partition);
    p.error_code
}

fn list_reassignments(
    addr: SocketAddr,
    topics: Option<&[&str]>,
) -> ListPartitionReassignmentsResponse {
    use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
    let request = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| {
                    ListPartitionReassignmentsTopics::default()
                        .with_name(tn(t))
                        .with_partition_indexes(vec![0])
                })
                .collect()
        }));
    let response = call(addr, 0, &request);
    assert_eq!(response.error_code, NONE);
    response
}

fn elect(
    addr: SocketAddr,
    version: i16,
    election_type: i8,
    topics: Option<&[&str]>,
) -> ElectLeadersResponse {
    let request = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_timeout_ms(10_000)
        .with_topic_partitions(topics.map(|ts| {
            ts.iter()
                .map(|t| {
                    TopicPartitions::default()
                        .with_topic(tn(t))
                        .with_partitions(vec![0])
                })
                .collect()
        }));
    call(addr, version, &request)
}

fn election_error(response: &ElectLeadersResponse, topic: &str) -> Option<i16> {
    response
        .replica_election_results
        .iter()
        .find(|t| t.topic.as_str() == topic)
        .and_then(|t| t.partition_result.iter().find(|p| p.partition_id == 0))
        .map(|p| p.error_code)
}

/// IncrementalAlterConfigs SET (`Some`) or DELETE (`None`) on one resource
/// (2 = topic, 4 = broker).
fn alter_config(addr: SocketAddr, resource_type: i8, name: &str, configs: &[(&str, Option<&str>)]) {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_config_operation(if v.is_some() { 0 } else { 1 })
                            .with_value(v.map(|v| StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            ),
    ]);
    let response = call(addr, 1, &request);
    assert_eq!(response.responses[0].error_code, NONE, "{response:?}");
}

async fn create_topic(cluster: &Cluster, topic: &str, replicas: &[i32]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .create()
        .expect("admin");
    let created = admin
        .create_topics(
            &[NewTopic::new(
                topic,
                1,
                TopicReplication::Variable(&[replicas]),
            )],
            &AdminOptions::new(),
        )
        .await
        .expect("create_topics");
    assert!(created[0].is_ok(), "{created:?}");
    wait_until(
        "every replica hosts the topic",
        Duration::from_secs(10),
        || replicas.iter().all(|&r| cluster.hosted(r, topic).is_some()),
    )
    .await;
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        // Batches well below the follower fetch size, so throttled
        // replication moves in small steps.
        .set("batch.size", "16384")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer")
}

async fn produce(producer: &FutureProducer, topic: &str, payloads: impl Iterator<Item = String>) {
    let payloads: Vec<String> = payloads.collect();
    let sends: Vec<_> = payloads
        .iter()
        .map(|p| {
            producer.send(
                FutureRecord::<(), _>::to(topic).partition(0).payload(p),
                Duration::from_secs(30),
            )
        })
        .collect();
    for s in futures::future::join_all(sends).await {
        s.expect("acks=all write");
    }
}

fn log_bytes(p: &millrace_broker::partition::Partition) -> bytes::Bytes {
    p.log()
        .read(0, 256 << 20, p.log_end_offset(), true)
        .expect("read")
        .records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_moves_to_new_brokers_under_acks_all_load_with_nothing_lost() {
    let cluster = Cluster::start(4, &[]).await;
    let addr = cluster.addr();
    let topic = "moving";
    create_topic(&cluster, topic, &[1, 2]).await;

    // 3000 records of ~200 bytes: ~700 kB the new replicas must copy.
    let load = producer(&cluster.bootstrap());
    let pad = "x".repeat(180);
    produce(&load, topic, (0..3000).map(|i| format!("pre-{i}-{pad}"))).await;

    // Throttle the incoming replicas to 100 kB/s: the move takes seconds.
    let rate = 100_000;
    alter_config(
        addr,
        4,
        "",
        &[("follower.replication.throttled.rate", Some("100000"))],
    );
    alter_config(
        addr,
        2,
        topic,
        &[("follower.replication.throttled.replicas", Some("0:3,0:4"))],
    );

    // Keep writing with acks=all during the whole move.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let producer = producer(&cluster.bootstrap());
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let payload = format!("live-{i}");
                let sent = producer
                    .send(
                        FutureRecord::<(), _>::to("moving")
                            .partition(0)
                            .payload(&payload),
                        Duration::from_secs(30),
                    )
                    .await;
                if sent.is_ok() {
                    acked.push(payload);
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    assert_eq!(reassign(addr, topic, 0, Some(&[3, 4])), NONE);
    let p = cluster.partition(topic);
    assert_eq!(
        p.replicas,
        vec![3, 4, 1, 2],
        "target first, then the replicas leaving"
    );
    assert_eq!(p.adding_replicas, vec![3, 4]);
    assert_eq!(p.removing_replicas, vec![1, 2]);

    // Listed while in progress, for all topics and for this one.
    for filter in [None, Some(&[topic][..])] {
        let listed = list_reassignments(addr, filter);
        assert_eq!(listed.topics.len(), 1, "{listed:?}");
        let ongoing = &listed.topics[0].partitions[0];
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
        assert_eq!(ids(&ongoing.replicas), vec![3, 4, 1, 2]);
        assert_eq!(ids(&ongoing.adding_replicas), vec![3, 4]);
        assert_eq!(ids(&ongoing.removing_replicas), vec![1, 2]);
    }

    // The throttle holds the new replicas back: after 1.5 s each has
    // copied at most about rate × 2.5 s (the first second is measured as a
    // whole second) plus one fetch.
    wait_until("the new replicas to exist", Duration::from_secs(5), || {
        cluster.hosted(3, topic).is_some() && cluster.hosted(4, topic).is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(started.elapsed())).await;
    let leader_bytes = log_bytes(
        &cluster
            .hosted(1, topic)
            .or(cluster.hosted(2, topic))
            .expect("old replica"),
    )
    .len();
    for id in [3, 4] {
        let copied = log_bytes(&cluster.hosted(id, topic).expect("new replica")).len();
        assert!(
            copied < leader_bytes && copied as f64 <= rate as f64 * 2.5 + 32768.0 * 2.0,
            "broker {id} copied {copied} of {leader_bytes} bytes within 1.5 s at {rate} B/s"
        );
    }
    assert!(cluster.partition(topic).is_reassigning());

    // Lift the throttle (as the reassignment tool does once done): the
    // new replicas catch up, join the ISR, and the controller completes.
    alter_config(
        addr,
        4,
        "",
        &[("follower.replication.throttled.rate", None)],
    );
    wait_until(
        "the reassignment to complete",
        Duration::from_secs(60),
        || !cluster.partition(topic).is_reassigning(),
    )
    .await;
    let p = cluster.partition(topic);
    assert_eq!(p.replicas, vec![3, 4]);
    assert!(p.isr.iter().all(|r| [3, 4].contains(r)), "{p:?}");
    assert!([3, 4].contains(&p.leader), "{p:?}");
    assert!(list_reassignments(addr, None).topics.is_empty());
    wait_until(
        "the old replicas to drop their logs",
        Duration::from_secs(10),
        || cluster.hosted(1, topic).is_none() && cluster.hosted(2, topic).is_none(),
    )
    .await;
    for id in [1, 2] {
        assert!(
            !cluster
                .dir
                .path()
                .join(format!("broker-{id}/{topic}-0"))
                .exists(),
            "broker {id} still has the log directory"
        );
    }

    // Writes went on; stop them and read everything back from the new replicas.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.expect("writer");
    assert!(
        acked.len() > 50,
        "only {} live writes acknowledged",
        acked.len()
    );
    let total = 3000 + acked.len();
    let read = support::read_from_start(&cluster.bootstrap(), topic, "", total);
    let read_set: HashSet<&String> = read.iter().collect();
    assert_eq!(read_set.len(), read.len(), "duplicates in the log");
    for i in 0..3000 {
        assert!(read_set.contains(&format!("pre-{i}-{pad}")), "pre-{i} lost");
    }
    for a in &acked {
        assert!(read_set.contains(a), "acknowledged {a} lost");
    }
    wait_until("both new replicas at the same end", Duration::from_secs(10), || {
        let (a, b) = (cluster.hosted(3, topic), cluster.hosted(4, topic));
        matches!((a, b), (Some(a), Some(b)) if a.log_end_offset() == b.log_end_offset() && a.high_watermark() == a.log_end_offset())
    })
    .await;
    let (a, b) = (
        cluster.hosted(3, topic).expect("3"),
        cluster.hosted(4, topic).expect("4"),
    );
    assert_eq!(log_bytes(&a), log_bytes(&b), "the new replicas differ");
    drop(load);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reassignment_is_cancelled_and_bad_ones_are_refused() {
    let cluster = Cluster::start(4, &[]).await;
    let addr = cluster.addr();
    let topic = "cancelled";
    create_topic(&cluster, topic, &[1, 2]).await;
    let load = producer(&cluster.bootstrap());
    produce(
        &load,
        topic,
        (0..500).map(|i| format!("r-{i}-{}", "y".repeat(200))),
    )
    .await;

    // Errors as Kafka answers them.
    assert_eq!(
        reassign(addr, "nope", 0, Some(&[1])),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        reassign(addr, topic, 5, Some(&[1])),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        reassign(addr, topic, 0, Some(&[])),
        INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(
        reassign(addr, topic, 0, Some(&[3, 3])),
        INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(
        reassign(addr, topic, 0, Some(&[3, 9])),
        INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(reassign(addr, topic, 0, None), NO_REASSIGNMENT_IN_PROGRESS);

    // A move the throttle keeps from finishing (1 kB/s for ~100 kB).
    alter_config(
        addr,
        4,
        "",
        &[("follower.replication.throttled.rate", Some("1000"))],
    );
    alter_config(
        addr,
        2,
        topic,
        &[("follower.replication.throttled.replicas", Some("*"))],
    );
    assert_eq!(reassign(addr, topic, 0, Some(&[3, 4])), NONE);
    wait_until("the new replicas to exist", Duration::from_secs(5), || {
        cluster.hosted(3, topic).is_some() && cluster.hosted(4, topic).is_some()
    })
    .await;
    assert_eq!(list_reassignments(addr, Some(&[topic])).topics.len(), 1);

    // Cancel: back to the original replicas; the added ones drop their logs.
    assert_eq!(reassign(addr, topic, 0, None), NONE);
    let p = cluster.partition(topic);
    assert_eq!(p.replicas, vec![1, 2]);
    assert!(!p.is_reassigning());
    assert!(p.isr.iter().all(|r| [1, 2].contains(r)));
    assert!(list_reassignments(addr, None).topics.is_empty());
    wait_until(
        "the added replicas to drop their logs",
        Duration::from_secs(10),
        || cluster.hosted(3, topic).is_none() && cluster.hosted(4, topic).is_none(),
    )
    .await;
    assert_eq!(reassign(addr, topic, 0, None), NO_REASSIGNMENT_IN_PROGRESS);

    // A reassignment within the ISR (dropping one replica) completes at once.
    alter_config(
        addr,
        4,
        "",
        &[("follower.replication.throttled.rate", None)],
    );
    wait_until("both replicas in sync", Duration::from_secs(20), || {
        cluster.partition(topic).isr.len() == 2
    })
    .await;
    assert_eq!(reassign(addr, topic, 0, Some(&[2])), NONE);
    let p = cluster.partition(topic);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![2], vec![2], 2),
        "{p:?}"
    );
    let read = support::read_from_start(&cluster.bootstrap(), topic, "", 500);
    assert_eq!(read.len(), 500);
    drop(load);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_election_gives_leadership_back_to_the_first_replica() {
    let mut cluster = Cluster::start(3, &[]).await;
    let topic = "preferred";
    create_topic(&cluster, topic, &[1, 2, 3]).await;
    assert_eq!(cluster.partition(topic).leader, 1);
    wait_until("a full ISR", Duration::from_secs(10), || {
        cluster.partition(topic).isr.len() == 3
    })
    .await;

    // Broker 1 restarts: leadership moves away and stays away.
    cluster.stop(1).await;
    let moved = cluster.partition(topic).leader;
    assert!(moved == 2 || moved == 3, "leader {moved}");
    cluster.restart(1).await;
    wait_until("broker 1 back in the ISR", Duration::from_secs(20), || {
        cluster.partition(topic).isr.contains(&1)
    })
    .await;
    let addr = cluster.addr();
    assert_eq!(cluster.partition(topic).leader, moved);

    // All partitions (null list): only the one that moved is reported.
    let response = elect(addr, 2, 0, None);
    assert_eq!(response.error_code, NONE);
    assert_eq!(election_error(&response, topic), Some(NONE), "{response:?}");
    assert_eq!(cluster.partition(topic).leader, 1);
    let response = elect(addr, 2, 0, None);
    assert!(
        response
            .replica_election_results
            .iter()
            .all(|t| t.partition_result.is_empty()),
        "nothing to elect: {response:?}"
    );
    // Named: ELECTION_NOT_NEEDED, and unknown partitions (v0 and v1 too).
    for version in 0..=2 {
        let response = elect(addr, version, 0, Some(&[topic, "nope"]));
        assert_eq!(election_error(&response, topic), Some(ELECTION_NOT_NEEDED));
        assert_eq!(
            election_error(&response, "nope"),
            Some(UNKNOWN_TOPIC_OR_PARTITION)
        );
    }
    // Producing works on the re-elected leader.
    let load = producer(&cluster.bootstrap());
    produce(&load, topic, (0..10).map(|i| format!("p-{i}"))).await;
    drop(load);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_rebalance_moves_leadership_back_by_itself() {
    let mut cluster = Cluster::start(
        3,
        &[
            ("auto.leader.rebalance.enable", "true"),
            ("leader.imbalance.check.interval.seconds", "1"),
            ("leader.imbalance.per.broker.percentage", "10"),
        ],
    )
    .await;
    let topic = "rebalanced";
    create_topic(&cluster, topic, &[1, 2, 3]).await;
    wait_until("a full ISR", Duration::from_secs(10), || {
        cluster.partition(topic).isr.len() == 3
    })
    .await;
    cluster.stop(1).await;
    assert_ne!(cluster.partition(topic).leader, 1);
    cluster.restart(1).await;
    wait_until("broker 1 to lead again", Duration::from_secs(30), || {
        let p = cluster.partition(topic);
        p.leader == 1 && p.isr.contains(&1)
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclean_election_takes_a_live_replica_outside_the_isr() {
    let mut cluster = Cluster::start(3, &[]).await;
    let topic = "unclean";
    create_topic(&cluster, topic, &[1, 2]).await;
    let load = producer(&cluster.bootstrap());
    produce(&load, topic, (0..20).map(|i| format!("u-{i}"))).await;
    drop(load);

    // The follower stops and leaves the ISR; then the leader stops too.
    cluster.stop(2).await;
    wait_until(
        "the ISR to shrink to the leader",
        Duration::from_secs(20),
        || cluster.partition(topic).isr == vec![1],
    )
    .await;
    cluster.stop(1).await;
    cluster.restart(2).await;
    let addr = cluster.addr();
    let p = cluster.partition(topic);
    assert_eq!(p.isr, vec![1], "{p:?}");
    assert!(p.leader == 1 || p.leader == -1, "{p:?}");

    // The preferred replica is down; the clean choice does not exist.
    let response = elect(addr, 1, 0, Some(&[topic]));
    assert_eq!(
        election_error(&response, topic),
        Some(PREFERRED_LEADER_NOT_AVAILABLE)
    );

    // Unclean: broker 2 (live, outside the ISR) leads with an ISR of itself.
    let response = elect(addr, 2, 1, Some(&[topic]));
    assert_eq!(election_error(&response, topic), Some(NONE), "{response:?}");
    let p = cluster.partition(topic);
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2]), "{p:?}");
    let response = elect(addr, 2, 1, Some(&[topic]));
    assert_eq!(election_error(&response, topic), Some(ELECTION_NOT_NEEDED));
    wait_until("broker 2 to lead", Duration::from_secs(10), || {
        cluster.hosted(2, topic).is_some_and(|p| p.is_leader())
    })
    .await;
    let load = producer(&cluster.bootstrap());
    produce(&load, topic, (0..5).map(|i| format!("after-{i}"))).await;
    drop(load);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_side_throttle_holds_a_new_replica_back() {
    let cluster = Cluster::start(2, &[]).await;
    let addr = cluster.addr();
    let topic = "leader-throttled";
    create_topic(&cluster, topic, &[1]).await;
    let p = producer(&cluster.bootstrap());
    // ~200 kB in 16 kB batches.
    produce(
        &p,
        topic,
        (0..200).map(|i| format!("{i:04}-{}", "x".repeat(1000))),
    )
    .await;
    let end = cluster.hosted(1, topic).expect("leader").log_end_offset();

    // 1 kB/s on the leader for every replica of the topic out of the ISR.
    alter_config(
        addr,
        4,
        "",
        &[("leader.replication.throttled.rate", Some("1000"))],
    );
    alter_config(
        addr,
        2,
        topic,
        &[("leader.replication.throttled.replicas", Some("*"))],
    );
    assert_eq!(reassign(addr, topic, 0, Some(&[1, 2])), NONE);
    wait_until("the new replica to exist", Duration::from_secs(5), || {
        cluster.hosted(2, topic).is_some()
    })
    .await;
    // The first fetch is served whole (at most replica.fetch.max.bytes,
    // 32 kB); after it the rate is far above 1 kB/s, so the leader sends
    // nothing more for tens of seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let copied = cluster
        .hosted(2, topic)
        .expect("new replica")
        .log_end_offset();
    assert!(
        copied < end / 2,
        "copied {copied} of {end} under a 1 kB/s leader throttle"
    );
    assert!(cluster.partition(topic).is_reassigning());

    // Lifting it lets the new replica catch up and the move complete.
    alter_config(addr, 4, "", &[("leader.replication.throttled.rate", None)]);
    wait_until("the move to complete", Duration::from_secs(30), || {
        let p = cluster.partition(topic);
        !p.is_reassigning() && p.isr.len() == 2
    })
    .await;
    assert_eq!(
        cluster.hosted(2, topic).expect("replica").log_end_offset(),
        end
    );
    cluster.shutdown().await;
}
