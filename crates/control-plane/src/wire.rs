//! The JSON shapes shared by several `kafka` operations, in their wire names
//! (lowerCamel `locationName`s of the botocore model; a few are not plain
//! camelCase, e.g. `brokerAZDistribution`, `dataVolumeKMSKeyId`,
//! `volumeSizeGB`). Every member is optional here so that a missing
//! required member is reported by validation with its name, not by a parse
//! error; numbers are `i64` so that out-of-range values reach validation too.
//! The same types are stored in the state database and answered back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `BrokerNodeGroupInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerNodeGroupInfo {
    /// Only `DEFAULT` exists.
    #[serde(
        rename = "brokerAZDistribution",
        skip_serializing_if = "Option::is_none"
    )]
    pub broker_az_distribution: Option<String>,
    /// Subnets the brokers are spread over, one zone each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_subnets: Option<Vec<String>>,
    /// `kafka.m5.large` and friends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Security groups (opaque strings here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<Vec<String>>,
    /// The EBS volume of each broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_info: Option<StorageInfo>,
    /// Public access and multi-VPC settings (stored, not acted on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connectivity_info: Option<serde_json::Value>,
    /// Zone ids (stored as given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_ids: Option<Vec<String>>,
}

/// `StorageInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageInfo {
    /// The EBS volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebs_storage_info: Option<EbsStorageInfo>,
}

/// `EBSStorageInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EbsStorageInfo {
    /// Provisioned storage throughput.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioned_throughput: Option<ProvisionedThroughput>,
    /// GiB per broker, 1..16384.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_size: Option<i64>,
}

/// `ProvisionedThroughput`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionedThroughput {
    /// Whether it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// MiB/s per broker volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_throughput: Option<i64>,
}

/// `EncryptionInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionInfo {
    /// The KMS key of the data volumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_at_rest: Option<EncryptionAtRest>,
    /// Client-broker and in-cluster encryption.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_in_transit: Option<EncryptionInTransit>,
}

/// `EncryptionAtRest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EncryptionAtRest {
    /// A KMS key ARN or id.
    #[serde(rename = "dataVolumeKMSKeyId", skip_serializing_if = "Option::is_none")]
    pub data_volume_kms_key_id: Option<String>,
}

/// `EncryptionInTransit`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionInTransit {
    /// `TLS`, `TLS_PLAINTEXT` or `PLAINTEXT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_broker: Option<String>,
    /// Broker-to-broker encryption; fixed at creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_cluster: Option<bool>,
}

/// `ClientAuthentication`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientAuthentication {
    /// SASL/SCRAM and SASL/IAM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl: Option<Sasl>,
    /// Mutual TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// No client authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unauthenticated: Option<Enabled>,
}

/// `Sasl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sasl {
    /// SCRAM-SHA-512.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scram: Option<Enabled>,
    /// AWS_MSK_IAM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iam: Option<Enabled>,
}

/// `Tls` (client authentication).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    /// ACM Private CA ARNs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_authority_arn_list: Option<Vec<String>>,
    /// Whether mTLS is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `{enabled}` (Scram, Iam, Unauthenticated).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Enabled {
    /// Whether it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `OpenMonitoringInfo` / `OpenMonitoring`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenMonitoring {
    /// The Prometheus exporters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<Prometheus>,
}

/// `PrometheusInfo` / `Prometheus`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prometheus {
    /// JMX exporter on port 11001.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jmx_exporter: Option<ExporterInfo>,
    /// Node exporter on port 11002.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_exporter: Option<ExporterInfo>,
}

/// `JmxExporterInfo` / `NodeExporterInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExporterInfo {
    /// Whether the exporter runs in each broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled_in_broker: Option<bool>,
}

/// `LoggingInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggingInfo {
    /// Broker log destinations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_logs: Option<BrokerLogs>,
}

/// `BrokerLogs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerLogs {
    /// CloudWatch Logs `{enabled, logGroup}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs: Option<LogDestination>,
    /// Firehose `{enabled, deliveryStream}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firehose: Option<LogDestination>,
    /// S3 `{enabled, bucket, prefix}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3: Option<LogDestination>,
}

/// One broker-log destination (the union of the three shapes' members).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogDestination {
    /// Whether logs go there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// CloudWatch Logs group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_group: Option<String>,
    /// Firehose stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_stream: Option<String>,
    /// S3 bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// S3 key prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// `ConfigurationInfo`: a configuration ARN and revision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigurationInfo {
    /// The configuration ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The revision, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
}

/// `Rebalancing`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rebalancing {
    /// `PAUSED` or `ACTIVE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// `StateInfo`: why a cluster is in its state (e.g. FAILED).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateInfo {
    /// A short code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A human message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `BrokerSoftwareInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerSoftwareInfo {
    /// The configuration the brokers run with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration_arn: Option<String>,
    /// Its revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration_revision: Option<i64>,
    /// The Kafka version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_version: Option<String>,
}

/// `BrokerEBSVolumeInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerEbsVolumeInfo {
    /// `All` (MSK updates every broker's volume together).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_broker_node_id: Option<String>,
    /// Provisioned throughput of the volumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioned_throughput: Option<ProvisionedThroughput>,
    /// The target size in GiB.
    #[serde(rename = "volumeSizeGB", skip_serializing_if = "Option::is_none")]
    pub volume_size_gb: Option<i64>,
}

/// `BrokerCountUpdateInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerCountUpdateInfo {
    /// Broker ids added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_broker_ids: Option<Vec<f64>>,
    /// Broker ids removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_broker_ids: Option<Vec<f64>>,
}

/// `MutableClusterInfo`: the source and target of a cluster operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MutableClusterInfo {
    /// Volume changes.
    #[serde(
        rename = "brokerEBSVolumeInfo",
        skip_serializing_if = "Option::is_none"
    )]
    pub broker_ebs_volume_info: Option<Vec<BrokerEbsVolumeInfo>>,
    /// Configuration changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration_info: Option<ConfigurationInfo>,
    /// Broker count changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_of_broker_nodes: Option<i64>,
    /// Monitoring level changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enhanced_monitoring: Option<String>,
    /// Open monitoring changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_monitoring: Option<OpenMonitoring>,
    /// Kafka version changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_version: Option<String>,
    /// Broker log changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging_info: Option<LoggingInfo>,
    /// Broker size changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Authentication changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_authentication: Option<ClientAuthentication>,
    /// Encryption changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_info: Option<EncryptionInfo>,
    /// Storage mode changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_mode: Option<String>,
    /// Brokers added or removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_count_update_info: Option<BrokerCountUpdateInfo>,
}

/// A tag map.
pub type Tags = BTreeMap<String, String>;
