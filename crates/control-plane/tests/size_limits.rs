//! Broker size as a profile, with real brokers and the AWS CLI: the size's
//! thread counts are in every broker's configuration; the guide's
//! partitions-per-broker limit refuses configuration and Kafka version
//! updates while a broker hosts more partitions than its size supports, and
//! accepts them again once it doesn't; a broker count decrease is refused
//! while the brokers it would remove host partitions.

mod support;

use std::time::Duration;

use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, DeleteTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;
use support::{kafka, TestControlPlane};

const WAIT: Duration = Duration::from_secs(90);

/// Creates `topic` with `partitions` partitions, every one on `broker` alone.
async fn create_topic_on(addr: &str, topic: &str, partitions: i32, broker: i32) {
    let assignments = (0..partitions)
        .map(|p| {
            CreatableReplicaAssignment::default()
                .with_partition_index(p)
                .with_broker_ids(vec![BrokerId(broker)])
        })
        .collect();
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(assignments)]);
    let answer = kafka(addr, 5, &request).await;
    assert_eq!(
        answer.topics[0].error_code, 0,
        "CreateTopics {topic}: {answer:?}"
    );
}

async fn delete_topic(addr: &str, topic: &str) {
    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topic_names(vec![TopicName(StrBytes::from_string(topic.to_string()))]);
    let answer = kafka(addr, 4, &request).await;
    assert_eq!(
        answer.responses[0].error_code, 0,
        "DeleteTopics {topic}: {answer:?}"
    );
}

/// Creates a plaintext cluster and waits for ACTIVE; its ARN and the
/// plaintext bootstrap string.
async fn cluster(cp: &TestControlPlane, name: &str, size: &str, brokers: &str) -> (String, String) {
    let bngi = cp.dir.join(format!("{name}-bngi.json"));
    std::fs::write(&bngi, format!(r#"{{"InstanceType": "{size}", "ClientSubnets": ["subnet-00000000000000001", "subnet-00000000000000002"]}}"#)).expect("write");
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
            name,
            "--broker-node-group-info",
            &format!("file://{}", bngi.display()),
            "--kafka-version",
            "3.5.1",
            "--number-of-broker-nodes",
            brokers,
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
    let plain = boot["BootstrapBrokerString"]
        .as_str()
        .expect("plaintext")
        .to_string();
    (arn, plain)
}

async fn version_of(cp: &TestControlPlane, arn: &str) -> String {
    let info = cp.wait_cluster_state(arn, "ACTIVE", WAIT).await;
    info["CurrentVersion"]
        .as_str()
        .expect("version")
        .to_string()
}

/// The address of broker `id` (its plaintext port, from ListNodes' order
/// and the bootstrap string's: broker 1 is first in both).
fn first(bootstrap: &str) -> String {
    bootstrap.split(',').next().expect("a broker").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_per_broker_limits_gate_updates_and_size_sets_threads() {
    let cp = TestControlPlane::start(|_| {}).await;
    let (arn, bootstrap) = cluster(&cp, "small", "kafka.t3.small", "2").await;

    // The broker size's thread counts (t3.small: 2 vCPUs → the minimums).
    let props = std::fs::read_to_string(cp.broker_dir(&arn, 1).join("server.properties"))
        .expect("server.properties");
    for line in [
        "num.io.threads=8",
        "num.network.threads=5",
        "num.replica.fetchers=2",
    ] {
        assert!(props.contains(line), "{line} missing:\n{props}");
    }

    // 301 partitions on broker 1: over kafka.t3.small's 300.
    let broker1 = first(&bootstrap);
    create_topic_on(&broker1, "crowded", 301, 1).await;
    let config = cp.dir.join("config.properties");
    std::fs::write(&config, "auto.create.topics.enable=true\n").expect("write");
    let created = cp
        .aws(&[
            "create-configuration",
            "--name",
            "limits",
            "--kafka-versions",
            "3.5.1",
            "--server-properties",
            &format!("fileb://{}", config.display()),
        ])
        .await
        .ok();
    let config_arn = created["Arn"].as_str().expect("config arn").to_string();
    let ci = cp.dir.join("ci.json");
    std::fs::write(&ci, format!(r#"{{"Arn": "{config_arn}", "Revision": 1}}"#)).expect("write");
    let version = version_of(&cp, &arn).await;
    let refused = cp
        .aws(&[
            "update-cluster-configuration",
            "--cluster-arn",
            &arn,
            "--configuration-info",
            &format!("file://{}", ci.display()),
            "--current-version",
            &version,
        ])
        .await;
    assert_eq!(refused.error_code(), "BadRequestException");
    assert!(
        refused.stderr.contains("Broker 1 hosts 301 partitions") && refused.stderr.contains("300"),
        "{}",
        refused.stderr
    );
    let refused = cp
        .aws(&[
            "update-cluster-kafka-version",
            "--cluster-arn",
            &arn,
            "--target-kafka-version",
            "3.6.0",
            "--current-version",
            &version,
        ])
        .await;
    assert_eq!(refused.error_code(), "BadRequestException");
    assert!(
        refused.stderr.contains("301 partitions"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        cp.stored_state(&arn).as_deref(),
        Some("ACTIVE"),
        "nothing started"
    );

    // Within the limit again: the configuration update goes through.
    delete_topic(&broker1, "crowded").await;
    let deadline = std::time::Instant::now() + WAIT;
    let op = loop {
        let attempt = cp
            .aws(&[
                "update-cluster-configuration",
                "--cluster-arn",
                &arn,
                "--configuration-info",
                &format!("file://{}", ci.display()),
                "--current-version",
                &version,
            ])
            .await;
        if attempt.code == 0 {
            break attempt.json;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still refused: {}",
            attempt.stderr
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let done = cp
        .wait_operation(op["ClusterOperationArn"].as_str().expect("op"), WAIT)
        .await;
    assert_eq!(done["OperationState"], "UPDATE_COMPLETE", "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_holding_partitions_are_not_removed() {
    let cp = TestControlPlane::start(|_| {}).await;
    let (arn, _) = cluster(&cp, "shrinks", "kafka.m5.large", "4").await;
    // Broker 3 (removed first when going from 4 to 2) hosts a partition.
    let nodes = cp.aws(&["list-nodes", "--cluster-arn", &arn]).await.ok();
    let ids: Vec<f64> = nodes["NodeInfoList"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["BrokerNodeInfo"]["BrokerId"].as_f64())
        .collect();
    assert_eq!(ids, vec![1.0, 2.0, 3.0, 4.0]);
    let props = std::fs::read_to_string(cp.broker_dir(&arn, 3).join("server.properties"))
        .expect("server.properties");
    let port = props
        .lines()
        .find_map(|l| l.strip_prefix("listeners=CLIENT://127.0.0.1:"))
        .and_then(|rest| rest.split(',').next())
        .expect("broker 3's client port")
        .to_string();
    let broker3 = format!("127.0.0.1:{port}");
    create_topic_on(&broker3, "on-three", 1, 3).await;

    let version = version_of(&cp, &arn).await;
    let shrink = |version: String| {
        let arn = arn.clone();
        let cp = &cp;
        async move {
            cp.aws(&[
                "update-broker-count",
                "--cluster-arn",
                &arn,
                "--target-number-of-broker-nodes",
                "2",
                "--current-version",
                &version,
            ])
            .await
        }
    };
    let refused = shrink(version.clone()).await;
    assert_eq!(refused.error_code(), "BadRequestException");
    assert!(
        refused.stderr.contains("broker 3 (1)"),
        "{}",
        refused.stderr
    );
    assert_eq!(cp.stored_state(&arn).as_deref(), Some("ACTIVE"));

    delete_topic(&broker3, "on-three").await;
    let deadline = std::time::Instant::now() + WAIT;
    let op: Value = loop {
        let attempt = shrink(version.clone()).await;
        if attempt.code == 0 {
            break attempt.json;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still refused: {}",
            attempt.stderr
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let done = cp
        .wait_operation(op["ClusterOperationArn"].as_str().expect("op"), WAIT)
        .await;
    assert_eq!(done["OperationState"], "UPDATE_COMPLETE", "{done}");
    assert_eq!(
        done["TargetClusterInfo"]["BrokerCountUpdateInfo"]["DeletedBrokerIds"],
        serde_json::json!([3.0, 4.0])
    );
}
