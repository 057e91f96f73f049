//! How the engine gets brokers: the [`Provisioner`] trait, what it is given
//! ([`ClusterSpec`], [`BrokerSpec`]) and what it reports. The real
//! implementation, [`ProcessProvisioner`], runs each broker as a `millrace
//! broker` child process on loopback ports.

mod process;
mod properties;

use std::path::PathBuf;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

pub use process::ProcessProvisioner;
pub use properties::{broker_serves, kraft_quorum_properties, render_server_properties};

/// The kinds of listener an MSK broker has, each on its own port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ListenerKind {
    /// Plaintext clients (MSK port 9092).
    Plaintext,
    /// TLS clients, unauthenticated or mTLS (9094).
    Tls,
    /// SASL/SCRAM over TLS (9096).
    SaslScram,
    /// SASL/IAM over TLS (9098).
    SaslIam,
    /// Broker-to-broker traffic.
    Replication,
    /// The KRaft controller quorum.
    Controller,
}

impl ListenerKind {
    /// The Kafka listener name MSK gives it.
    pub fn listener_name(self) -> &'static str {
        match self {
            ListenerKind::Plaintext => "CLIENT",
            ListenerKind::Tls => "CLIENT_SECURE",
            ListenerKind::SaslScram => "CLIENT_SASL_SCRAM",
            ListenerKind::SaslIam => "CLIENT_IAM",
            ListenerKind::Replication => "REPLICATION",
            ListenerKind::Controller => "CONTROLLER",
        }
    }

    /// The Kafka security protocol of the listener.
    pub fn security_protocol(self) -> &'static str {
        match self {
            ListenerKind::Plaintext | ListenerKind::Replication | ListenerKind::Controller => {
                "PLAINTEXT"
            }
            ListenerKind::Tls => "SSL",
            ListenerKind::SaslScram | ListenerKind::SaslIam => "SASL_SSL",
        }
    }
}

/// The loopback ports of one broker, one per listener kind. Allocated once
/// when the broker is added and kept for its life, so that clients find a
/// replaced broker where it was (MSK keeps broker addresses on recovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerPorts {
    /// Plaintext client port.
    pub plaintext: u16,
    /// TLS client port.
    pub tls: u16,
    /// SASL/SCRAM client port.
    pub sasl_scram: u16,
    /// SASL/IAM client port.
    pub sasl_iam: u16,
    /// Inter-broker port.
    pub replication: u16,
    /// Controller-quorum port.
    pub controller: u16,
}

impl BrokerPorts {
    /// The port of listener `kind`.
    pub fn port(&self, kind: ListenerKind) -> u16 {
        match kind {
            ListenerKind::Plaintext => self.plaintext,
            ListenerKind::Tls => self.tls,
            ListenerKind::SaslScram => self.sasl_scram,
            ListenerKind::SaslIam => self.sasl_iam,
            ListenerKind::Replication => self.replication,
            ListenerKind::Controller => self.controller,
        }
    }
}

/// One broker to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSpec {
    /// Kafka `node.id` (MSK broker id, from 1).
    pub node_id: i32,
    /// Availability-zone id, written as `broker.rack`.
    pub zone_id: String,
    /// Host it listens on and advertises.
    pub host: String,
    /// Its ports.
    pub ports: BrokerPorts,
    /// Its own directory: `server.properties`, logs, and the Kafka data.
    pub data_dir: PathBuf,
}

/// One cluster as the provisioner sees it: who its brokers are and what
/// every broker's configuration holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// The cluster ARN (for logs).
    pub cluster_arn: String,
    /// The `{uuid}-{n}` id, unique across clusters.
    pub cluster_id: String,
    /// The cluster's directory, holding every broker directory.
    pub cluster_dir: PathBuf,
    /// The Kafka version (recorded in each `server.properties`).
    pub kafka_version: String,
    /// The broker size (recorded in each `server.properties`).
    pub instance_type: String,
    /// How many zones the brokers are spread over.
    pub zone_count: usize,
    /// The client listener kinds the security settings enable.
    pub client_listeners: Vec<ListenerKind>,
    /// The cluster-wide properties of its MSK configuration revision.
    pub properties: Vec<(String, String)>,
    /// Each broker's EBS volume size in GiB (`volumeSize`): the storage
    /// cap its broker enforces (`millrace.log.dirs.max.bytes`).
    pub volume_size_gib: i64,
    /// Every broker.
    pub brokers: Vec<BrokerSpec>,
}

impl ClusterSpec {
    /// The broker with `node_id`.
    pub fn broker(&self, node_id: i32) -> Option<&BrokerSpec> {
        self.brokers.iter().find(|b| b.node_id == node_id)
    }
}

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerHealth {
    /// The broker process runs and answers Kafka requests.
    Healthy,
    /// No process runs for this broker.
    NotRunning,
    /// The process runs but did not answer (the reason).
    Unresponsive(String),
}

/// A broker that stopped without being asked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerExit {
    /// Its cluster's id.
    pub cluster_id: String,
    /// Its node id.
    pub node_id: i32,
    /// How it ended (exit status or signal).
    pub status: String,
}

/// Why provisioning failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProvisionError(pub String);

/// Runs the brokers of clusters. The engine decides *what* runs (ids,
/// zones, ports, properties); the provisioner makes it so and reports back.
/// Methods return boxed futures so that the engine can hold any
/// implementation behind `Arc<dyn Provisioner>`.
pub trait Provisioner: Send + Sync + 'static {
    /// Starts every broker of `spec` that is not running (creating its data
    /// directory and `server.properties` first).
    fn create_brokers<'a>(
        &'a self,
        spec: &'a ClusterSpec,
    ) -> BoxFuture<'a, Result<(), ProvisionError>>;

    /// Stops broker `node_id` (if running) and starts it again with the
    /// settings in `spec`: rolling updates, reboots and healing.
    fn restart_broker<'a>(
        &'a self,
        spec: &'a ClusterSpec,
        node_id: i32,
    ) -> BoxFuture<'a, Result<(), ProvisionError>>;

    /// Stops broker `node_id` and deletes its data (broker count decrease).
    fn remove_broker<'a>(
        &'a self,
        spec: &'a ClusterSpec,
        node_id: i32,
    ) -> BoxFuture<'a, Result<(), ProvisionError>>;

    /// Stops every broker of the cluster, keeping their data (control-plane
    /// shutdown).
    fn stop_cluster<'a>(
        &'a self,
        spec: &'a ClusterSpec,
    ) -> BoxFuture<'a, Result<(), ProvisionError>>;

    /// Stops every broker of the cluster and deletes all its data.
    fn delete_cluster<'a>(
        &'a self,
        spec: &'a ClusterSpec,
    ) -> BoxFuture<'a, Result<(), ProvisionError>>;

    /// Checks broker `node_id`: its process, then a Kafka request.
    fn check_broker<'a>(
        &'a self,
        spec: &'a ClusterSpec,
        node_id: i32,
    ) -> BoxFuture<'a, BrokerHealth>;

    /// Brokers that stop on their own are announced here.
    fn subscribe_exits(&self) -> broadcast::Receiver<BrokerExit>;

    /// The `host:port` each listener of broker `node_id` really serves
    /// (client, replication and controller listeners alike).
    fn broker_endpoints(&self, spec: &ClusterSpec, node_id: i32) -> Vec<(ListenerKind, String)>;
}

/// `host:port` of broker `b`'s listener `kind`: what bootstrap strings list.
pub fn endpoint(b: &BrokerSpec, kind: ListenerKind) -> String {
    format!("{}:{}", b.host, b.ports.port(kind))
}
