//! The EBS volume size as a real limit, with real brokers, the AWS CLI and
//! a real Kafka client (confluent-kafka): every broker is started with
//! `millrace.log.dirs.max.bytes` = `volumeSize` GiB and reports it in
//! DescribeConfigs; UpdateBrokerStorage and UpdateStorage roll the brokers
//! onto the larger cap. (Filling a broker up to its cap is tested at the
//! broker level, `tests/tests/storage_cap.rs`; a GiB is too much to fill.)

mod support;

use std::time::Duration;

use support::TestControlPlane;

const WAIT: Duration = Duration::from_secs(120);
const GIB: i64 = 1 << 30;

/// What each broker reports for `millrace.log.dirs.max.bytes`, asked with
/// confluent-kafka's AdminClient.describe_configs, by broker id.
async fn reported_caps(bootstrap: &str, ids: &[i64]) -> Vec<(i64, i64)> {
    let python = std::env::var("MILLRACE_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = r#"
import sys
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
for broker in sys.argv[2:]:
    res = ConfigResource(ResourceType.BROKER, broker)
    configs = admin.describe_configs([res], request_timeout=30)[res].result(timeout=30)
    print(broker, configs["millrace.log.dirs.max.bytes"].value)
"#;
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg("-c").arg(script).arg(bootstrap);
    for id in ids {
        cmd.arg(id.to_string());
    }
    let out = cmd.output().await.expect("python runs");
    assert!(
        out.status.success(),
        "describe_configs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (id, value) = l.split_once(' ').expect("id value");
            (
                id.parse().expect("broker id"),
                value.parse().expect("a number"),
            )
        })
        .collect()
}

fn written_cap(cp: &TestControlPlane, arn: &str, id: i64) -> String {
    let text = std::fs::read_to_string(cp.broker_dir(arn, id).join("server.properties"))
        .expect("server.properties");
    text.lines()
        .find_map(|l| l.strip_prefix("millrace.log.dirs.max.bytes="))
        .expect("the cap is written")
        .to_string()
}

async fn check_caps(cp: &TestControlPlane, arn: &str, bootstrap: &str, gib: i64) {
    let ids = [1, 2];
    for id in ids {
        assert_eq!(written_cap(cp, arn, id), (gib * GIB).to_string());
    }
    assert_eq!(
        reported_caps(bootstrap, &ids).await,
        vec![(1, gib * GIB), (2, gib * GIB)],
        "the brokers run with a {gib} GiB cap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_size_is_each_brokers_storage_cap_and_storage_updates_raise_it() {
    let cp = TestControlPlane::start(|c| c.timings.storage_scaling_cooldown = Duration::ZERO).await;
    let bngi = cp.dir.join("bngi.json");
    std::fs::write(
        &bngi,
        r#"{"InstanceType": "kafka.m5.large", "ClientSubnets": ["subnet-00000000000000001", "subnet-00000000000000002"], "StorageInfo": {"EbsStorageInfo": {"VolumeSize": 1}}}"#,
    )
    .expect("write");
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
            "capped",
            "--broker-node-group-info",
            &format!("file://{}", bngi.display()),
            "--kafka-version",
            "3.5.1",
            "--number-of-broker-nodes",
            "2",
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
    let bootstrap = boot["BootstrapBrokerString"]
        .as_str()
        .expect("plaintext")
        .to_string();
    check_caps(&cp, &arn, &bootstrap, 1).await;

    // UpdateBrokerStorage: 1 → 2 GiB, every broker restarted onto it.
    let pid1 = cp.broker_pid(&arn, 1).expect("pid");
    let op = cp
        .run_update(
            &arn,
            &[
                "update-broker-storage",
                "--target-broker-ebs-volume-info",
                "KafkaBrokerNodeId=All,VolumeSizeGB=2",
            ],
            WAIT,
        )
        .await;
    assert_eq!(op["OperationType"], "UPDATE_BROKER_STORAGE");
    assert_ne!(cp.broker_pid(&arn, 1), Some(pid1), "broker 1 restarted");
    check_caps(&cp, &arn, &bootstrap, 2).await;

    // UpdateStorage: 2 → 3 GiB.
    let op = cp
        .run_update(&arn, &["update-storage", "--volume-size-gb", "3"], WAIT)
        .await;
    assert_eq!(op["OperationType"], "UPDATE_STORAGE");
    check_caps(&cp, &arn, &bootstrap, 3).await;
    let info = cp.wait_cluster_state(&arn, "ACTIVE", WAIT).await;
    assert_eq!(
        info["BrokerNodeGroupInfo"]["StorageInfo"]["EbsStorageInfo"]["VolumeSize"],
        3
    );

    cp.aws(&["delete-cluster", "--cluster-arn", &arn])
        .await
        .ok();
}
