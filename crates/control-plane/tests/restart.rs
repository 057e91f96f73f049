//! A control plane that stops and starts again on the same state: clusters,
//! credentials and operations are reloaded, brokers are started again on
//! their ports, an operation cut off by the stop is failed cleanly (the
//! cluster keeps its previous settings), and a creation cut off resumes.

mod support;

use std::time::Duration;

use millrace_control_plane::kafka_health::check_api_versions;
use serde_json::json;
use support::{alive, TestControlPlane};

const WAIT: Duration = Duration::from_secs(60);

fn slow_rolling(c: &mut millrace_control_plane::ControlPlaneConfig) {
    c.timings.rolling_restart_pause = Duration::from_secs(30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_restart_and_interrupted_work_is_settled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cp = TestControlPlane::start_in(dir.path(), slow_rolling).await;
    let body = json!({
        "clusterName": "durable",
        "kafkaVersion": "3.6.0",
        "numberOfBrokerNodes": 2,
        "brokerNodeGroupInfo": {"instanceType": "kafka.m5.large",
            "clientSubnets": ["subnet-00000000000000001", "subnet-00000000000000002"]},
        "encryptionInfo": {"encryptionInTransit": {"clientBroker": "PLAINTEXT"}},
        "tags": {"keep": "me"}
    });
    let created = cp
        .send(cp.request("POST", "/v1/clusters", &body.to_string()))
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let arn = created.body["clusterArn"]
        .as_str()
        .expect("arn")
        .to_string();
    let info = cp.wait_cluster_state(&arn, "ACTIVE", WAIT).await;
    let version = info["CurrentVersion"]
        .as_str()
        .expect("version")
        .to_string();
    let bootstrap = cp
        .aws(&["get-bootstrap-brokers", "--cluster-arn", &arn])
        .await
        .ok()["BootstrapBrokerString"]
        .as_str()
        .expect("bootstrap")
        .to_string();

    // An update that will still be running when the control plane stops.
    let op = cp
        .aws(&[
            "update-broker-type",
            "--cluster-arn",
            &arn,
            "--current-version",
            &version,
            "--target-instance-type",
            "kafka.m5.xlarge",
        ])
        .await
        .ok();
    let op_arn = op["ClusterOperationArn"].as_str().expect("op").to_string();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let op = cp
            .aws(&[
                "describe-cluster-operation",
                "--cluster-operation-arn",
                &op_arn,
            ])
            .await
            .ok();
        let steps = op["ClusterOperationInfo"]["OperationSteps"].clone();
        if op["ClusterOperationInfo"]["OperationState"] == "UPDATE_IN_PROGRESS"
            && steps[1]["StepInfo"]["StepStatus"] == "IN_PROGRESS"
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "operation did not start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And a second cluster still being created.
    let second = cp
        .send(
            cp.request(
                "POST",
                "/v1/clusters",
                &json!({
                    "clusterName": "late",
                    "kafkaVersion": "3.5.1",
                    "numberOfBrokerNodes": 2,
                    "brokerNodeGroupInfo": {"instanceType": "kafka.m5.large",
                        "clientSubnets": ["subnet-00000000000000002", "subnet-00000000000000003"]}
                })
                .to_string(),
            ),
        )
        .await;
    assert_eq!(second.status, 200);
    let second_arn = second.body["clusterArn"].as_str().expect("arn").to_string();

    let pids: Vec<u32> = [1, 2]
        .iter()
        .filter_map(|id| cp.broker_pid(&arn, *id))
        .collect();
    assert_eq!(pids.len(), 2);
    let key = cp.credential.clone();
    cp.stop().await;
    for pid in &pids {
        assert!(
            !alive(*pid),
            "broker {pid} still runs after the control plane stopped"
        );
    }

    let mut cp = TestControlPlane::start_in(dir.path(), slow_rolling).await;
    assert_eq!(cp.credential, key, "the root key is kept");

    // The interrupted operation failed cleanly; the cluster kept its settings.
    let op = cp
        .aws(&[
            "describe-cluster-operation",
            "--cluster-operation-arn",
            &op_arn,
        ])
        .await
        .ok();
    let op = &op["ClusterOperationInfo"];
    assert_eq!(op["OperationState"], "UPDATE_FAILED", "{op}");
    assert_eq!(op["ErrorInfo"]["ErrorCode"], "INTERRUPTED");
    assert!(op.get("EndTime").is_some());
    let info = cp.wait_cluster_state(&arn, "ACTIVE", WAIT).await;
    assert_eq!(
        info["BrokerNodeGroupInfo"]["InstanceType"],
        "kafka.m5.large"
    );
    assert_eq!(
        info["CurrentVersion"],
        version.as_str(),
        "a failed operation does not rotate currentVersion"
    );
    assert_eq!(info["Tags"]["keep"], "me");
    assert!(info.get("ActiveOperationArn").is_none());

    // Its brokers run again, on the same ports.
    let after = cp
        .aws(&["get-bootstrap-brokers", "--cluster-arn", &arn])
        .await
        .ok();
    assert_eq!(after["BootstrapBrokerString"], bootstrap.as_str());
    let deadline = std::time::Instant::now() + WAIT;
    for addr in bootstrap.split(',') {
        while check_api_versions(addr, Duration::from_secs(2))
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "broker {addr} did not come back"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // The creation cut off by the stop resumed.
    cp.wait_cluster_state(&second_arn, "ACTIVE", WAIT).await;

    // And the cluster is updatable again.
    let retry = cp
        .aws(&[
            "update-monitoring",
            "--cluster-arn",
            &arn,
            "--current-version",
            &version,
            "--enhanced-monitoring",
            "PER_BROKER",
        ])
        .await
        .ok();
    let done = cp
        .wait_operation(retry["ClusterOperationArn"].as_str().expect("op"), WAIT)
        .await;
    assert_eq!(done["OperationState"], "UPDATE_COMPLETE");
    let ops = cp
        .aws(&["list-cluster-operations", "--cluster-arn", &arn])
        .await
        .ok();
    assert_eq!(
        ops["ClusterOperationInfoList"].as_array().map(Vec::len),
        Some(2)
    );

    for a in [&arn, &second_arn] {
        cp.aws(&["delete-cluster", "--cluster-arn", a]).await.ok();
    }
    let deadline = std::time::Instant::now() + WAIT;
    while cp.stored_state(&arn).is_some() || cp.stored_state(&second_arn).is_some() {
        assert!(std::time::Instant::now() < deadline, "clusters not deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cp.stop().await;
}
