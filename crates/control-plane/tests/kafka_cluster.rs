//! A cluster made with `aws kafka create-cluster` is one Kafka cluster
//! once ACTIVE: every broker's Metadata lists all three brokers under one
//! cluster id, a three-replica topic has all replicas in sync, and a
//! rebooted broker comes back into every ISR before REBOOT_COMPLETE.

mod support;

use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use millrace_control_plane::kafka_health::describe_cluster;
use support::{kafka, TestControlPlane};

const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_form_one_kafka_cluster() {
    let cp = TestControlPlane::start(|_| {}).await;
    let bngi = cp.dir.join("bngi.json");
    std::fs::write(&bngi, r#"{"InstanceType": "kafka.m5.large", "ClientSubnets": ["subnet-00000000000000001", "subnet-00000000000000002", "subnet-00000000000000003"]}"#).expect("write");
    let enc = cp.dir.join("enc.json");
    std::fs::write(
        &enc,
        r#"{"EncryptionInTransit": {"ClientBroker": "PLAINTEXT", "InCluster": true}}"#,
    )
    .expect("write");
    let created = cp
        .aws(&[
            "create-cluster",
            "--cluster-name",
            "quorum",
            "--broker-node-group-info",
            &format!("file://{}", bngi.display()),
            "--kafka-version",
            "3.7.x.kraft",
            "--number-of-broker-nodes",
            "3",
            "--encryption-info",
            &format!("file://{}", enc.display()),
        ])
        .await
        .ok();
    let arn = created["ClusterArn"].as_str().expect("arn").to_string();
    cp.wait_cluster_state(&arn, "ACTIVE", WAIT).await;
    let boot = cp
        .aws(&["get-bootstrap-brokers", "--cluster-arn", &arn])
        .await
        .ok();
    let brokers: Vec<String> = boot["BootstrapBrokerString"]
        .as_str()
        .expect("plaintext")
        .split(',')
        .map(str::to_string)
        .collect();
    assert_eq!(brokers.len(), 3);

    // ACTIVE means: every broker lists all three, under one cluster id.
    let mut ids = Vec::new();
    for addr in &brokers {
        let view = describe_cluster(addr, Duration::from_secs(5))
            .await
            .expect("Metadata");
        let mut listed = view.brokers.clone();
        listed.sort_unstable();
        assert_eq!(listed, vec![1, 2, 3], "{addr} lists {listed:?}");
        assert!(view.controller_id >= 0, "{addr} knows a controller");
        ids.push(view.cluster_id.clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one cluster id: {ids:?}");

    // A three-replica topic, every replica in sync.
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("rf3")))
            .with_num_partitions(3)
            .with_replication_factor(3)]);
    let answer = kafka(&brokers[0], 5, &request).await;
    assert_eq!(answer.topics[0].error_code, 0, "{answer:?}");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let view = describe_cluster(&brokers[1], Duration::from_secs(5))
            .await
            .expect("Metadata");
        let rf3: Vec<_> = view
            .partitions
            .iter()
            .filter(|p| p.topic == "rf3")
            .collect();
        if rf3.len() == 3
            && rf3
                .iter()
                .all(|p| p.replicas.len() == 3 && p.isr.len() == 3)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rf3 never fully in sync: {rf3:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A reboot ends only once the broker is back in every ISR.
    let op = cp
        .aws(&["reboot-broker", "--cluster-arn", &arn, "--broker-ids", "2"])
        .await
        .ok();
    let done = cp
        .wait_operation(op["ClusterOperationArn"].as_str().expect("op"), WAIT)
        .await;
    assert_eq!(done["OperationState"], "REBOOT_COMPLETE", "{done}");
    let view = describe_cluster(&brokers[0], Duration::from_secs(5))
        .await
        .expect("Metadata");
    assert_eq!(view.under_replicated(), 0, "{:?}", view.partitions);
    assert!(view.brokers.contains(&2));
}
