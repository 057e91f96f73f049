//! The whole life of clusters through the real AWS CLI against a real
//! control plane whose brokers are real `millrace broker` processes:
//! configurations with revisions, CreateClusterV2 and CreateCluster from the
//! guide's JSON examples, ACTIVE, bootstrap brokers that answer Kafka
//! requests, describe/list with pagination, nodes, tags, an update operation
//! to UPDATE_COMPLETE, a reboot, a broker killed with SIGKILL and healed,
//! and deletion.

mod support;

use std::time::Duration;

use millrace_control_plane::kafka_health::check_api_versions;
use serde_json::Value;
use support::{alive, TestControlPlane};

const WAIT: Duration = Duration::from_secs(60);

fn write(cp: &TestControlPlane, name: &str, text: &str) -> String {
    let path = cp.dir.join(name);
    std::fs::write(&path, text).expect("write input file");
    path.display().to_string()
}

async fn assert_kafka_answers(bootstrap: &str) {
    for addr in bootstrap.split(',') {
        check_api_versions(addr, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("broker {addr} does not answer Kafka: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_lifecycle_with_the_aws_cli() {
    let started = std::time::Instant::now();
    let mut cp = TestControlPlane::start(|_| {}).await;

    // Versions.
    let versions = cp.aws(&["list-kafka-versions"]).await.ok();
    let list = versions["KafkaVersions"].as_array().expect("KafkaVersions");
    assert!(list
        .iter()
        .any(|v| v["Version"] == "3.5.1" && v["Status"] == "ACTIVE"));
    assert!(list
        .iter()
        .any(|v| v["Version"] == "1.1.1" && v["Status"] == "DEPRECATED"));

    // A configuration with two revisions (guide: create-configuration with
    // fileb://, update-configuration).
    let props1 = "auto.create.topics.enable = true\nlog.roll.ms = 604800000\n";
    let file1 = write(&cp, "config1.properties", props1);
    let created = cp
        .aws(&[
            "create-configuration",
            "--name",
            "ExampleConfigurationName",
            "--description",
            "Example configuration description.",
            "--kafka-versions",
            "2.8.1",
            "3.5.1",
            "--server-properties",
            &format!("fileb://{file1}"),
        ])
        .await
        .ok();
    let config_arn = created["Arn"].as_str().expect("Arn").to_string();
    assert!(config_arn.starts_with(
        "arn:aws:kafka:us-east-1:123456789012:configuration/ExampleConfigurationName/"
    ));
    assert_eq!(created["LatestRevision"]["Revision"], 1);
    assert_eq!(created["State"], "ACTIVE");
    let props2 = "auto.create.topics.enable = true\nnum.partitions = 3\n";
    let file2 = write(&cp, "config2.properties", props2);
    let updated = cp
        .aws(&[
            "update-configuration",
            "--arn",
            &config_arn,
            "--description",
            "Example configuration revision description.",
            "--server-properties",
            &format!("fileb://{file2}"),
        ])
        .await
        .ok();
    assert_eq!(updated["LatestRevision"]["Revision"], 2);
    let rev1 = cp
        .aws(&[
            "describe-configuration-revision",
            "--arn",
            &config_arn,
            "--revision",
            "1",
        ])
        .await
        .ok();
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rev1["ServerProperties"].as_str().expect("ServerProperties"))
        .expect("base64");
    assert_eq!(
        decoded,
        props1.as_bytes(),
        "revision 1 round-trips byte for byte"
    );
    let revisions = cp
        .aws(&["list-configuration-revisions", "--arn", &config_arn])
        .await
        .ok();
    assert_eq!(revisions["Revisions"].as_array().map(Vec::len), Some(2));
    let described = cp
        .aws(&["describe-configuration", "--arn", &config_arn])
        .await
        .ok();
    assert_eq!(
        described["KafkaVersions"],
        serde_json::json!(["2.8.1", "3.5.1"])
    );

    // CreateClusterV2 with the guide's cluster-creation.json (subnet ids of
    // this control plane).
    let v2_json = write(
        &cp,
        "cluster-creation.json",
        r#"{
  "Provisioned": {
    "BrokerNodeGroupInfo":{
      "InstanceType":"kafka.m5.4xlarge",
      "ClientSubnets":["subnet-00000000000000001","subnet-00000000000000002"],
      "SecurityGroups":["sg-0123456789abcdef0"],
      "StorageInfo": {"EbsStorageInfo": {"VolumeSize": 10,
        "ProvisionedThroughput": {"Enabled": true, "VolumeThroughput": 250}}}
    },
    "EncryptionInfo": {"EncryptionInTransit": {"InCluster": false, "ClientBroker": "PLAINTEXT"}},
    "KafkaVersion":"2.8.1",
    "NumberOfBrokerNodes": 2
  },
  "ClusterName": "provisioned-throughput-example",
  "Tags": {"env": "test"}
}"#,
    );
    let a = cp
        .aws(&[
            "create-cluster-v2",
            "--cli-input-json",
            &format!("file://{v2_json}"),
        ])
        .await
        .ok();
    assert_eq!(a["State"], "CREATING");
    assert_eq!(a["ClusterType"], "PROVISIONED");
    let a_arn = a["ClusterArn"].as_str().expect("ClusterArn").to_string();
    assert!(a_arn.starts_with(
        "arn:aws:kafka:us-east-1:123456789012:cluster/provisioned-throughput-example/"
    ));
    assert!(a_arn.ends_with("-1"));

    // CreateCluster (v1) with the guide's brokernodegroupinfo.json and a
    // custom configuration (configuration.json).
    let bngi = write(
        &cp,
        "brokernodegroupinfo.json",
        r#"{"InstanceType": "kafka.m5.large", "ClientSubnets": ["subnet-00000000000000001", "subnet-00000000000000002"], "SecurityGroups": ["Security-Group-ID"]}"#,
    );
    let ci = write(
        &cp,
        "configuration.json",
        &format!(r#"{{"Arn": "{config_arn}", "Revision": 1}}"#),
    );
    let b = cp
        .aws(&[
            "create-cluster",
            "--cluster-name",
            "CustomConfigExampleCluster",
            "--broker-node-group-info",
            &format!("file://{bngi}"),
            "--kafka-version",
            "2.8.1",
            "--number-of-broker-nodes",
            "2",
            "--enhanced-monitoring",
            "PER_TOPIC_PER_BROKER",
            "--configuration-info",
            &format!("file://{ci}"),
        ])
        .await
        .ok();
    assert_eq!(b["State"], "CREATING");
    let b_arn = b["ClusterArn"].as_str().expect("ClusterArn").to_string();

    // The bootstrap brokers are not there while CREATING.
    let early = cp
        .aws(&["get-bootstrap-brokers", "--cluster-arn", &b_arn])
        .await;
    if early.code != 0 {
        assert_eq!(early.error_code(), "ConflictException");
    }

    let a_info = cp.wait_cluster_state(&a_arn, "ACTIVE", WAIT).await;
    let b_info = cp.wait_cluster_state(&b_arn, "ACTIVE", WAIT).await;
    assert_eq!(a_info["NumberOfBrokerNodes"], 2);
    assert_eq!(a_info["CurrentBrokerSoftwareInfo"]["KafkaVersion"], "2.8.1");
    assert_eq!(
        a_info["EncryptionInfo"]["EncryptionInTransit"]["ClientBroker"],
        "PLAINTEXT"
    );
    assert_eq!(
        a_info["BrokerNodeGroupInfo"]["StorageInfo"]["EbsStorageInfo"]["ProvisionedThroughput"]
            ["VolumeThroughput"],
        250
    );
    assert_eq!(a_info["Tags"]["env"], "test");
    assert!(a_info["CreationTime"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z') && t.contains('T')));
    assert_eq!(b_info["EnhancedMonitoring"], "PER_TOPIC_PER_BROKER");
    assert_eq!(
        b_info["CurrentBrokerSoftwareInfo"]["ConfigurationArn"],
        config_arn.as_str()
    );
    assert_eq!(
        b_info["CurrentBrokerSoftwareInfo"]["ConfigurationRevision"],
        1
    );
    // MSK's defaults: TLS to clients, unauthenticated, AWS-managed key.
    assert_eq!(
        b_info["EncryptionInfo"]["EncryptionInTransit"]["ClientBroker"],
        "TLS"
    );
    assert_eq!(
        b_info["ClientAuthentication"]["Unauthenticated"]["Enabled"],
        true
    );
    assert!(
        b_info["EncryptionInfo"]["EncryptionAtRest"]["DataVolumeKMSKeyId"]
            .as_str()
            .is_some_and(|k| k.starts_with("arn:aws:kms:us-east-1:123456789012:key/"))
    );
    let v2 = cp
        .aws(&["describe-cluster-v2", "--cluster-arn", &a_arn])
        .await
        .ok();
    assert_eq!(v2["ClusterInfo"]["ClusterType"], "PROVISIONED");
    assert_eq!(v2["ClusterInfo"]["Provisioned"]["NumberOfBrokerNodes"], 2);

    // Bootstrap brokers: only the listener kinds the security settings enable.
    let a_boot = cp
        .aws(&["get-bootstrap-brokers", "--cluster-arn", &a_arn])
        .await
        .ok();
    let a_plain = a_boot["BootstrapBrokerString"]
        .as_str()
        .expect("plaintext string")
        .to_string();
    assert_eq!(a_plain.split(',').count(), 2);
    assert!(a_boot.get("BootstrapBrokerStringTls").is_none());
    assert_kafka_answers(&a_plain).await;
    let b_boot = cp
        .aws(&["get-bootstrap-brokers", "--cluster-arn", &b_arn])
        .await
        .ok();
    assert!(b_boot.get("BootstrapBrokerString").is_none());
    assert!(b_boot["BootstrapBrokerStringTls"].as_str().is_some());
    // Broker configuration: racks are zone ids, the custom configuration is applied.
    let b1_props =
        std::fs::read_to_string(cp.broker_dir(&b_arn, 1).join("server.properties")).expect("props");
    assert!(b1_props.contains("broker.rack=use1-az1"));
    assert!(b1_props.contains("log.roll.ms=604800000"));
    let b2_props =
        std::fs::read_to_string(cp.broker_dir(&b_arn, 2).join("server.properties")).expect("props");
    assert!(b2_props.contains("broker.rack=use1-az2"));

    // Lists: name filter, pagination (the CLI follows nextToken by itself).
    let all = cp.aws(&["list-clusters-v2", "--page-size", "1"]).await.ok();
    assert_eq!(all["ClusterInfoList"].as_array().map(Vec::len), Some(2));
    let first = cp
        .aws(&["list-clusters", "--max-results", "1", "--no-paginate"])
        .await
        .ok();
    assert_eq!(first["ClusterInfoList"].as_array().map(Vec::len), Some(1));
    let token = first["NextToken"].as_str().expect("NextToken").to_string();
    let second = cp
        .aws(&[
            "list-clusters",
            "--max-results",
            "1",
            "--next-token",
            &token,
            "--no-paginate",
        ])
        .await
        .ok();
    assert_eq!(second["ClusterInfoList"][0]["ClusterArn"], b_arn.as_str());
    assert!(second.get("NextToken").is_none());
    let filtered = cp
        .aws(&["list-clusters", "--cluster-name-filter", "Custom"])
        .await
        .ok();
    assert_eq!(
        filtered["ClusterInfoList"].as_array().map(Vec::len),
        Some(1)
    );
    let serverless = cp
        .aws(&["list-clusters-v2", "--cluster-type-filter", "SERVERLESS"])
        .await
        .ok();
    assert_eq!(
        serverless["ClusterInfoList"].as_array().map(Vec::len),
        Some(0)
    );

    // Nodes.
    let nodes = cp.aws(&["list-nodes", "--cluster-arn", &a_arn]).await.ok();
    let nodes = nodes["NodeInfoList"]
        .as_array()
        .expect("NodeInfoList")
        .clone();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["BrokerNodeInfo"]["BrokerId"], 1.0);
    assert_eq!(
        nodes[1]["BrokerNodeInfo"]["ClientSubnet"],
        "subnet-00000000000000002"
    );
    assert_eq!(nodes[0]["NodeType"], "BROKER");

    // Tags.
    assert_eq!(
        cp.aws(&[
            "tag-resource",
            "--resource-arn",
            &a_arn,
            "--tags",
            "team=data,Owner=me"
        ])
        .await
        .code,
        0
    );
    assert_eq!(
        cp.aws(&[
            "untag-resource",
            "--resource-arn",
            &a_arn,
            "--tag-keys",
            "env",
            "team"
        ])
        .await
        .code,
        0
    );
    let tags = cp
        .aws(&["list-tags-for-resource", "--resource-arn", &a_arn])
        .await
        .ok();
    assert_eq!(tags["Tags"], serde_json::json!({"Owner": "me"}));

    // UpdateClusterConfiguration: a rolling restart onto revision 2.
    let version_before = a_info["CurrentVersion"]
        .as_str()
        .expect("CurrentVersion")
        .to_string();
    let ci2 = write(
        &cp,
        "configuration2.json",
        &format!(r#"{{"Arn": "{config_arn}", "Revision": 2}}"#),
    );
    let pid_before = cp.broker_pid(&a_arn, 1).expect("broker 1 pid");
    let op = cp
        .aws(&[
            "update-cluster-configuration",
            "--cluster-arn",
            &a_arn,
            "--configuration-info",
            &format!("file://{ci2}"),
            "--current-version",
            &version_before,
        ])
        .await
        .ok();
    let op_arn = op["ClusterOperationArn"]
        .as_str()
        .expect("ClusterOperationArn")
        .to_string();
    assert!(op_arn.contains(":cluster-operation/provisioned-throughput-example/"));
    // While it runs, no other update is accepted.
    let concurrent = cp
        .aws(&[
            "update-monitoring",
            "--cluster-arn",
            &a_arn,
            "--current-version",
            &version_before,
            "--enhanced-monitoring",
            "PER_BROKER",
        ])
        .await;
    assert_eq!(concurrent.error_code(), "BadRequestException");
    let done = cp.wait_operation(&op_arn, WAIT).await;
    assert_eq!(done["OperationState"], "UPDATE_COMPLETE", "{done}");
    assert_eq!(done["OperationType"], "UPDATE_CLUSTER_CONFIGURATION");
    assert_eq!(
        done["TargetClusterInfo"]["ConfigurationInfo"]["Revision"],
        2
    );
    let steps = done["OperationSteps"].as_array().expect("steps");
    assert!(steps
        .iter()
        .all(|s| s["StepInfo"]["StepStatus"] == "COMPLETED"));
    let a_after = cp.wait_cluster_state(&a_arn, "ACTIVE", WAIT).await;
    let version_after = a_after["CurrentVersion"]
        .as_str()
        .expect("CurrentVersion")
        .to_string();
    assert_ne!(
        version_after, version_before,
        "a completed update rotates currentVersion"
    );
    assert_eq!(
        a_after["CurrentBrokerSoftwareInfo"]["ConfigurationRevision"],
        2
    );
    let a1_props =
        std::fs::read_to_string(cp.broker_dir(&a_arn, 1).join("server.properties")).expect("props");
    assert!(a1_props.contains("num.partitions=3"));
    assert_ne!(
        cp.broker_pid(&a_arn, 1),
        Some(pid_before),
        "broker 1 was restarted"
    );
    assert_kafka_answers(&a_plain).await;
    // The old version is stale now.
    let stale = cp
        .aws(&[
            "update-monitoring",
            "--cluster-arn",
            &a_arn,
            "--current-version",
            &version_before,
            "--enhanced-monitoring",
            "PER_BROKER",
        ])
        .await;
    assert_eq!(stale.error_code(), "BadRequestException");
    assert!(stale.stderr.contains("current version"), "{}", stale.stderr);

    // RebootBroker.
    let pid2 = cp.broker_pid(&a_arn, 2).expect("broker 2 pid");
    let reboot = cp
        .aws(&[
            "reboot-broker",
            "--cluster-arn",
            &a_arn,
            "--broker-ids",
            "2",
        ])
        .await
        .ok();
    let reboot_arn = reboot["ClusterOperationArn"]
        .as_str()
        .expect("op")
        .to_string();
    let rebooted = cp.wait_operation(&reboot_arn, WAIT).await;
    assert_eq!(rebooted["OperationState"], "REBOOT_COMPLETE");
    assert_eq!(rebooted["OperationType"], "REBOOT_NODE");
    let pid2_new = cp.broker_pid(&a_arn, 2).expect("broker 2 pid");
    assert_ne!(pid2_new, pid2);
    assert!(!alive(pid2));

    // kill -9 a broker: HEALING, then ACTIVE with a new process on the same port.
    let status = std::process::Command::new("kill")
        .args(["-9", &pid2_new.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = std::time::Instant::now() + WAIT;
    let mut saw_healing = false;
    loop {
        match cp.stored_state(&a_arn).as_deref() {
            Some("HEALING") => saw_healing = true,
            Some("ACTIVE") if saw_healing => break,
            _ => {}
        }
        assert!(std::time::Instant::now() < deadline, "cluster did not heal");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let healed_pid = cp.broker_pid(&a_arn, 2).expect("replacement pid");
    assert_ne!(healed_pid, pid2_new);
    assert_kafka_answers(&a_plain).await;
    cp.wait_cluster_state(&a_arn, "ACTIVE", WAIT).await;

    // Operations of the cluster, newest first; v2 shapes.
    let ops = cp
        .aws(&["list-cluster-operations", "--cluster-arn", &a_arn])
        .await
        .ok();
    let ops = ops["ClusterOperationInfoList"]
        .as_array()
        .expect("list")
        .clone();
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[0]["OperationType"], "REBOOT_NODE");
    let v2op = cp
        .aws(&[
            "describe-cluster-operation-v2",
            "--cluster-operation-arn",
            &op_arn,
        ])
        .await
        .ok();
    assert_eq!(
        v2op["ClusterOperationInfo"]["Provisioned"]["TargetClusterInfo"]["ConfigurationInfo"]
            ["Revision"],
        2
    );
    let v2ops = cp
        .aws(&["list-cluster-operations-v2", "--cluster-arn", &a_arn])
        .await
        .ok();
    assert_eq!(
        v2ops["ClusterOperationInfoList"].as_array().map(Vec::len),
        Some(2)
    );

    // A configuration in use can't be deleted.
    let in_use = cp
        .aws(&["delete-configuration", "--arn", &config_arn])
        .await;
    assert_eq!(in_use.error_code(), "BadRequestException");

    // Delete both clusters: brokers stop, data goes, then NotFound.
    let pids: Vec<u32> = [1, 2]
        .iter()
        .filter_map(|id| cp.broker_pid(&a_arn, *id))
        .chain([1, 2].iter().filter_map(|id| cp.broker_pid(&b_arn, *id)))
        .collect();
    assert_eq!(pids.len(), 4);
    for arn in [&a_arn, &b_arn] {
        let del = cp.aws(&["delete-cluster", "--cluster-arn", arn]).await.ok();
        assert_eq!(del["State"], "DELETING");
    }
    for arn in [&a_arn, &b_arn] {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let r = cp.aws(&["describe-cluster", "--cluster-arn", arn]).await;
            if r.code != 0 {
                assert_eq!(r.error_code(), "NotFoundException");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "cluster not deleted");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    for pid in pids {
        assert!(
            !alive(pid),
            "broker process {pid} still runs after deletion"
        );
    }
    assert!(!cp.broker_dir(&a_arn, 1).exists());
    let gone = cp.aws(&["list-clusters"]).await.ok();
    assert_eq!(gone["ClusterInfoList"], Value::Array(vec![]));
    assert_eq!(
        cp.aws(&["delete-configuration", "--arn", &config_arn])
            .await
            .ok()["State"],
        "DELETING"
    );

    cp.stop().await;
    eprintln!("lifecycle took {:?}", started.elapsed());
}
