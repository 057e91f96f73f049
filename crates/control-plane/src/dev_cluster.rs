//! The development cluster `millrace up` provides: three brokers over three
//! zones, made through the control plane's own CreateCluster (the same
//! validation, state and engine as `aws kafka create-cluster`), so it is an
//! ordinary cluster that the AWS CLI lists, updates and deletes. It is found
//! again by name on the next start over the same data directory, so
//! restarting `millrace up` re-adopts it instead of making another.

use std::time::Duration;

use serde_json::{json, Value};

use crate::clusters::{ClusterRecord, ClusterState};
use crate::config::ControlPlaneConfig;
use crate::kafka_health::check_api_versions;
use crate::server::RunningServer;

/// The name the development cluster is created (and found again) under.
pub const DEV_CLUSTER_NAME: &str = "millrace-dev";

/// A ready development cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevCluster {
    /// Its ARN.
    pub arn: String,
    /// The plaintext bootstrap string (GetBootstrapBrokers'
    /// `BootstrapBrokerString`).
    pub bootstrap_servers: String,
    /// Whether it existed before this start (re-adopted, not created).
    pub adopted: bool,
}

/// The CreateCluster body of the development cluster: three brokers, one
/// per zone, plaintext and unauthenticated (the only client listener the
/// brokers serve until the security work lands), the Kafka version Millrace
/// implements.
pub fn dev_cluster_request(config: &ControlPlaneConfig) -> Value {
    let mut subnets: Vec<&str> = Vec::new();
    let mut zones: Vec<&str> = Vec::new();
    for s in &config.subnets {
        if subnets.len() < 3 && !zones.contains(&s.zone_id.as_str()) {
            zones.push(&s.zone_id);
            subnets.push(&s.subnet_id);
        }
    }
    json!({
        "clusterName": DEV_CLUSTER_NAME,
        "kafkaVersion": "3.7.x.kraft",
        "numberOfBrokerNodes": subnets.len(),
        "brokerNodeGroupInfo": {
            "instanceType": "kafka.m5.large",
            "clientSubnets": subnets,
            "storageInfo": {"ebsStorageInfo": {"volumeSize": 100}}
        },
        "encryptionInfo": {
            "encryptionInTransit": {"clientBroker": "PLAINTEXT", "inCluster": false}
        },
        "clientAuthentication": {"unauthenticated": {"enabled": true}},
        "tags": {"millrace": "dev"}
    })
}

/// Finds the development cluster (or creates it), then waits until it is
/// ACTIVE and every broker of its bootstrap string answers Kafka requests.
/// A development cluster left FAILED is deleted and made again.
pub async fn ensure_dev_cluster(server: &RunningServer) -> Result<DevCluster, String> {
    let timeout = server.config().timings.broker_ready_timeout + Duration::from_secs(60);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut adopted = true;
    let arn = loop {
        match find(server)? {
            Some(c) if c.state == ClusterState::Failed => {
                tracing::warn!(cluster = %c.arn, state_info = ?c.state_info, "the development cluster FAILED; deleting it to make a new one");
                server
                    .delete_cluster(&c.arn)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Some(c) if c.state == ClusterState::Deleting => {}
            Some(c) => break c.arn,
            None => {
                adopted = false;
                let answer = server
                    .create_cluster(&dev_cluster_request(server.config()))
                    .await
                    .map_err(|e| format!("CreateCluster refused the development cluster: {e}"))?;
                let arn = answer["clusterArn"]
                    .as_str()
                    .ok_or("CreateCluster answered no clusterArn")?;
                tracing::info!(cluster = arn, "development cluster created");
                break arn.to_string();
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err("the FAILED development cluster was not deleted in time".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let bootstrap_servers = wait_ready(server, &arn, deadline).await?;
    Ok(DevCluster {
        arn,
        bootstrap_servers,
        adopted,
    })
}

fn find(server: &RunningServer) -> Result<Option<ClusterRecord>, String> {
    Ok(server
        .clusters()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|c| c.name == DEV_CLUSTER_NAME))
}

/// Waits for ACTIVE, then for every bootstrap broker to answer and for the
/// brokers to form one healthy cluster; returns the plaintext bootstrap
/// string.
async fn wait_ready(
    server: &RunningServer,
    arn: &str,
    deadline: tokio::time::Instant,
) -> Result<String, String> {
    loop {
        let c = server
            .cluster(arn)
            .map_err(|e| e.to_string())?
            .ok_or("the development cluster disappeared (deleted meanwhile?)")?;
        match c.state {
            ClusterState::Active => break,
            ClusterState::Failed => {
                let why = c
                    .state_info
                    .and_then(|s| s.message)
                    .unwrap_or_else(|| "no reason recorded".into());
                return Err(format!("the development cluster FAILED: {why}"));
            }
            ClusterState::Deleting => return Err("the development cluster is being deleted".into()),
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the development cluster is still {} after waiting",
                c.state.as_str()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bootstrap = server
        .bootstrap_brokers(arn)
        .await
        .map_err(|e| e.to_string())?;
    let servers = bootstrap["bootstrapBrokerString"]
        .as_str()
        .ok_or("the development cluster has no plaintext listener")?
        .to_string();
    // A re-adopted cluster is ACTIVE in the store while its brokers start
    // again: wait until each one answers.
    for addr in servers.split(',') {
        loop {
            match check_api_versions(addr, Duration::from_secs(2)).await {
                Ok(()) => break,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(format!("broker {addr} does not answer: {e}"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    // And that they are one cluster again, every partition fully replicated.
    server.wait_cluster_ready(arn).await?;
    Ok(servers)
}
