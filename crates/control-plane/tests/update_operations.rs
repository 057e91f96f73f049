//! The other update operations end to end with the AWS CLI and real
//! brokers: UpdateBrokerCount up (new brokers start, spread over the zones)
//! and down (one broker per zone removed, its process and data gone),
//! UpdateClusterKafkaVersion (three steps), UpdateSecurity (new listeners,
//! new bootstrap strings, rolling restart), UpdateMonitoring and
//! UpdateStorage; a broker that stops answering (SIGSTOP) is replaced; and
//! routine maintenance restarts every broker while refusing updates.

mod support;

use std::time::Duration;

use millrace_control_plane::kafka_health::check_api_versions;
use serde_json::Value;
use support::{alive, TestControlPlane};

const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_count_version_security_monitoring_and_storage_updates() {
    let cp = TestControlPlane::start(|c| c.timings.storage_scaling_cooldown = Duration::ZERO).await;
    let bngi = cp.dir.join("bngi.json");
    std::fs::write(&bngi, r#"{"InstanceType": "kafka.m5.large", "ClientSubnets": ["subnet-00000000000000001", "subnet-00000000000000002"]}"#).expect("write");
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
            "grows",
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

    // Expand to 4 brokers: ids 3 and 4, one more in each zone.
    let up = cp
        .run_update(
            &arn,
            &[
                "update-broker-count",
                "--target-number-of-broker-nodes",
                "4",
            ],
            WAIT,
        )
        .await;
    assert_eq!(up["OperationType"], "INCREASE_BROKER_COUNT");
    assert_eq!(up["SourceClusterInfo"]["NumberOfBrokerNodes"], 2);
    assert_eq!(
        up["TargetClusterInfo"]["BrokerCountUpdateInfo"]["CreatedBrokerIds"],
        serde_json::json!([3.0, 4.0])
    );
    let nodes = cp.aws(&["list-nodes", "--cluster-arn", &arn]).await.ok();
    let nodes = nodes["NodeInfoList"].as_array().expect("nodes").clone();
    assert_eq!(nodes.len(), 4);
    assert_eq!(
        nodes[2]["BrokerNodeInfo"]["ClientSubnet"],
        "subnet-00000000000000001"
    );
    assert_eq!(
        nodes[3]["BrokerNodeInfo"]["ClientSubnet"],
        "subnet-00000000000000002"
    );
    let b3 = std::fs::read_to_string(cp.broker_dir(&arn, 3).join("server.properties"))
        .expect("broker 3 config");
    assert!(b3.contains("broker.rack=use1-az1"));
    let pid4 = cp.broker_pid(&arn, 4).expect("broker 4 runs");
    assert!(alive(pid4));
    let boot = cp
        .aws(&["get-bootstrap-brokers", "--cluster-arn", &arn])
        .await
        .ok();
    let plain = boot["BootstrapBrokerString"]
        .as_str()
        .expect("plaintext")
        .to_string();
    assert_eq!(
        plain.split(',').count(),
        3,
        "bootstrap strings list three brokers"
    );
    for addr in plain.split(',') {
        check_api_versions(addr, Duration::from_secs(5))
            .await
            .expect("broker answers");
    }

    // Shrink back to 2: one broker per zone goes, the highest ids.
    let down = cp
        .run_update(
            &arn,
            &[
                "update-broker-count",
                "--target-number-of-broker-nodes",
                "2",
            ],
            WAIT,
        )
        .await;
    assert_eq!(down["OperationType"], "DECREASE_BROKER_COUNT");
    assert_eq!(
        down["TargetClusterInfo"]["BrokerCountUpdateInfo"]["DeletedBrokerIds"],
        serde_json::json!([3.0, 4.0])
    );
    assert!(!alive(pid4), "removed broker still runs");
    assert!(
        !cp.broker_dir(&arn, 4).exists(),
        "removed broker's data remains"
    );
    let nodes = cp.aws(&["list-nodes", "--cluster-arn", &arn]).await.ok();
    assert_eq!(nodes["NodeInfoList"].as_array().map(Vec::len), Some(2));

    // Kafka version upgrade: the guide's three steps.
    let compatible = cp
        .aws(&["get-compatible-kafka-versions", "--cluster-arn", &arn])
        .await
        .ok();
    let targets = compatible["CompatibleKafkaVersions"][0]["TargetVersions"]
        .as_array()
        .expect("targets")
        .clone();
    assert!(targets.contains(&Value::from("3.6.0")));
    let upgraded = cp
        .run_update(
            &arn,
            &[
                "update-cluster-kafka-version",
                "--target-kafka-version",
                "3.6.0",
            ],
            WAIT,
        )
        .await;
    let steps: Vec<&str> = upgraded["OperationSteps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["StepName"].as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "INITIALIZE_UPDATE",
            "UPDATE_APACHE_KAFKA_BINARIES",
            "FINALIZE_UPDATE"
        ]
    );
    assert_eq!(upgraded["SourceClusterInfo"]["KafkaVersion"], "3.5.1");
    let info = cp.wait_cluster_state(&arn, "ACTIVE", WAIT).await;
    assert_eq!(info["CurrentBrokerSoftwareInfo"]["KafkaVersion"], "3.6.0");

    // Security: PLAINTEXT → TLS_PLAINTEXT adds the TLS listener (rolling).
    let pid1 = cp.broker_pid(&arn, 1).expect("pid");
    let enc2 = cp.dir.join("enc2.json");
    std::fs::write(
        &enc2,
        r#"{"EncryptionInTransit": {"ClientBroker": "TLS_PLAINTEXT"}}"#,
    )
    .expect("write");
    let sec = cp
        .run_update(
            &arn,
            &[
                "update-security",
                "--encryption-info",
                &format!("file://{}", enc2.display()),
            ],
            WAIT,
        )
        .await;
    assert_eq!(sec["OperationType"], "UPDATE_SECURITY");
    assert_ne!(
        cp.broker_pid(&arn, 1),
        Some(pid1),
        "brokers were restarted for the new listener"
    );
    let boot = cp
        .aws(&["get-bootstrap-brokers", "--cluster-arn", &arn])
        .await
        .ok();
    assert!(boot["BootstrapBrokerString"].is_string());
    assert!(boot["BootstrapBrokerStringTls"].is_string());
    // Restating the current settings is accepted and restarts nothing.
    let pid1 = cp.broker_pid(&arn, 1).expect("pid");
    cp.run_update(
        &arn,
        &[
            "update-security",
            "--encryption-info",
            &format!("file://{}", enc2.display()),
        ],
        WAIT,
    )
    .await;
    assert_eq!(cp.broker_pid(&arn, 1), Some(pid1));

    // Monitoring and storage.
    let om = cp.dir.join("om.json");
    std::fs::write(&om, r#"{"Prometheus": {"JmxExporter": {"EnabledInBroker": true}, "NodeExporter": {"EnabledInBroker": false}}}"#).expect("write");
    let mon = cp
        .run_update(
            &arn,
            &[
                "update-monitoring",
                "--enhanced-monitoring",
                "PER_BROKER",
                "--open-monitoring",
                &format!("file://{}", om.display()),
            ],
            WAIT,
        )
        .await;
    assert_eq!(mon["OperationType"], "UPDATE_MONITORING");
    let storage = cp
        .run_update(&arn, &["update-storage", "--volume-size-gb", "1500"], WAIT)
        .await;
    assert_eq!(storage["OperationType"], "UPDATE_STORAGE");
    let info = cp.wait_cluster_state(&arn, "ACTIVE", WAIT).await;
    assert_eq!(info["EnhancedMonitoring"], "PER_BROKER");
    assert_eq!(
        info["OpenMonitoring"]["Prometheus"]["JmxExporter"]["EnabledInBroker"],
        true
    );
    assert_eq!(
        info["BrokerNodeGroupInfo"]["StorageInfo"]["EbsStorageInfo"]["VolumeSize"],
        1500
    );
    let ops = cp
        .aws(&["list-cluster-operations-v2", "--cluster-arn", &arn])
        .await
        .ok();
    assert_eq!(
        ops["ClusterOperationInfoList"].as_array().map(Vec::len),
        Some(7)
    );

    cp.aws(&["delete-cluster", "--cluster-arn", &arn])
        .await
        .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresponsive_broker_is_replaced() {
    let cp = TestControlPlane::start(|c| {
        c.timings.broker_stop_timeout = Duration::from_secs(2);
        c.timings.unhealthy_checks_before_healing = 2;
        c.timings.rolling_restart_pause = Duration::from_secs(1);
    })
    .await;
    let bngi = cp.dir.join("bngi.json");
    std::fs::write(&bngi, r#"{"InstanceType": "kafka.t3.small", "ClientSubnets": ["subnet-00000000000000001", "subnet-00000000000000002", "subnet-00000000000000003"]}"#).expect("write");
    let created = cp
        .aws(&[
            "create-cluster",
            "--cluster-name",
            "frozen",
            "--broker-node-group-info",
            &format!("file://{}", bngi.display()),
            "--kafka-version",
            "3.5.1",
            "--number-of-broker-nodes",
            "3",
        ])
        .await
        .ok();
    let arn = created["ClusterArn"].as_str().expect("arn").to_string();
    cp.wait_cluster_state(&arn, "ACTIVE", WAIT).await;
    let pid = cp.broker_pid(&arn, 3).expect("pid");
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let deadline = std::time::Instant::now() + WAIT;
    let mut saw_healing = false;
    loop {
        match cp.stored_state(&arn).as_deref() {
            Some("HEALING") => saw_healing = true,
            Some("ACTIVE") if saw_healing => break,
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the frozen broker was not replaced"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(pid), "the frozen process was not stopped");
    let new_pid = cp.broker_pid(&arn, 3).expect("replacement");
    assert_ne!(new_pid, pid);
    cp.aws(&["delete-cluster", "--cluster-arn", &arn])
        .await
        .ok();
}
