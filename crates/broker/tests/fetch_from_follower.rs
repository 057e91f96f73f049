//! Fetch from the closest replica (KIP-392) across three brokers in three
//! racks: with `replica.selector.class` set to Kafka's
//! `RackAwareReplicaSelector`, the leader sends a consumer in another rack
//! to the in-sync follower in its own rack (`preferred_read_replica`, no
//! records), that follower serves the consumer up to its high watermark,
//! older fetch versions (no rack) still get NOT_LEADER_OR_FOLLOWER from a
//! follower, and a librdkafka consumer with `client.rack` reads everything.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use kafka_protocol::protocol::StrBytes;
use millrace_metadata::controller::CreateTopicSpec;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use support::{call, tn, wait_until, Cluster};

const TOPIC: &str = "nearby";
const RECORDS: usize = 200;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

fn fetch(rack: &str, offset: i64) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_rack_id(StrBytes::from_string(rack.to_string()))
        .with_topics(vec![FetchTopic::default()
            .with_topic(tn(TOPIC))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

fn only_partition(
    response: &FetchResponse,
) -> &kafka_protocol::messages::fetch_response::PartitionData {
    &response.responses[0].partitions[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumers_read_from_the_replica_in_their_rack() {
    let cluster = Cluster::start(
        3,
        &[(
            "replica.selector.class",
            "org.apache.kafka.common.replica.RackAwareReplicaSelector",
        )],
    )
    .await;
    // Leader on broker 1 (rack az1); followers in az2 and az3.
    let spec = CreateTopicSpec {
        name: TOPIC.into(),
        num_partitions: -1,
        replication_factor: -1,
        assignments: BTreeMap::from([(0, vec![1, 2, 3])]),
        configs: Vec::new(),
    };
    let controller = cluster.controller.clone();
    let (created, _) =
        tokio::task::spawn_blocking(move || controller.create_topics(vec![spec], false))
            .await
            .expect("create");
    assert!(created[0].is_ok(), "{created:?}");
    wait_until(
        "the partition on every broker",
        Duration::from_secs(10),
        || (1..=3).all(|id| cluster.hosted(id, TOPIC).is_some()),
    )
    .await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("acks", "all")
        .create()
        .expect("producer");
    for i in 0..RECORDS {
        let payload = format!("r-{i}");
        producer
            .send(
                FutureRecord::<(), _>::to(TOPIC)
                    .partition(0)
                    .payload(&payload),
                Duration::from_secs(15),
            )
            .await
            .expect("acks=all write");
    }
    wait_until(
        "every replica at the high watermark",
        Duration::from_secs(15),
        || {
            (1..=3).all(|id| {
                cluster
                    .hosted(id, TOPIC)
                    .is_some_and(|p| p.high_watermark() == RECORDS as i64)
            })
        },
    )
    .await;
    let addr = |id: i32| {
        cluster.brokers[id as usize - 1]
            .as_ref()
            .expect("running")
            .addresses()[0]
            .1
    };

    // The leader sends a consumer in az3 to broker 3, with no records.
    let redirected = call(addr(1), 12, &fetch("az3", 0));
    let p = only_partition(&redirected);
    assert_eq!(p.error_code, 0);
    assert_eq!(p.preferred_read_replica, BrokerId(3));
    assert!(
        p.records.as_ref().is_none_or(|r| r.is_empty()),
        "no records with a redirect"
    );
    assert_eq!(p.high_watermark, RECORDS as i64);

    // A consumer in the leader's own rack, or with no rack, reads from the leader.
    for rack in ["az1", ""] {
        let here = call(addr(1), 12, &fetch(rack, 0));
        let p = only_partition(&here);
        assert_eq!(p.preferred_read_replica, BrokerId(-1), "rack {rack:?}");
        assert!(
            p.records.as_ref().is_some_and(|r| !r.is_empty()),
            "rack {rack:?}"
        );
    }

    // The follower in az3 serves the consumer, up to its high watermark.
    let nearby = call(addr(3), 12, &fetch("az3", 0));
    let p = only_partition(&nearby);
    assert_eq!(p.error_code, 0);
    assert_eq!(p.high_watermark, RECORDS as i64);
    assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));

    // Before v11 a fetch carries no rack: followers refuse it, as Kafka's do.
    let old = call(addr(3), 10, &fetch("", 0));
    assert_eq!(only_partition(&old).error_code, NOT_LEADER_OR_FOLLOWER);

    // librdkafka follows the redirect and reads every record.
    let bootstrap = cluster.bootstrap();
    let got = support::read_from_start(&bootstrap, TOPIC, "az3", RECORDS);
    let expected: Vec<String> = (0..RECORDS).map(|i| format!("r-{i}")).collect();
    assert_eq!(got, expected);
    cluster.shutdown().await;
}
