//! The cluster rules of the MSK Developer Guide, checked before anything is
//! stored: names, subnets and zones, broker counts, broker sizes, storage
//! and provisioned throughput, the authentication × encryption matrix,
//! monitoring and logging. Each refusal names the lowerCamel member at
//! fault in `invalidParameter`.

use crate::config::ControlPlaneConfig;
use crate::error::ApiError;
use crate::versions;
use crate::wire::{
    BrokerLogs, ClientAuthentication, EncryptionInfo, LogDestination, LoggingInfo, OpenMonitoring,
    ProvisionedThroughput,
};

/// Broker size families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Burstable `kafka.t3.small`.
    T3,
    /// `kafka.m5.*`.
    M5,
    /// Graviton `kafka.m7g.*`.
    M7g,
}

/// One broker size (MSK Developer Guide, "Broker sizes", "Provisioned
/// storage throughput", "Right-size your cluster").
#[derive(Debug, Clone, Copy)]
pub struct InstanceType {
    /// `kafka.m5.large`…
    pub name: &'static str,
    /// Its family.
    pub family: Family,
    /// vCPUs.
    pub vcpus: u32,
    /// Recommended maximum partitions (leaders and followers) per broker.
    pub max_partitions: u32,
    /// Maximum provisioned storage throughput in MiB/s, when eligible.
    pub max_throughput: Option<i64>,
}

const fn it(
    name: &'static str,
    family: Family,
    vcpus: u32,
    max_partitions: u32,
    max_throughput: Option<i64>,
) -> InstanceType {
    InstanceType {
        name,
        family,
        vcpus,
        max_partitions,
        max_throughput,
    }
}

/// Every broker size MSK offers for provisioned clusters.
pub const INSTANCE_TYPES: &[InstanceType] = &[
    it("kafka.t3.small", Family::T3, 2, 300, None),
    it("kafka.m5.large", Family::M5, 2, 1000, None),
    it("kafka.m5.xlarge", Family::M5, 4, 1000, None),
    it("kafka.m5.2xlarge", Family::M5, 8, 2000, None),
    it("kafka.m5.4xlarge", Family::M5, 16, 4000, Some(593)),
    it("kafka.m5.8xlarge", Family::M5, 32, 4000, Some(850)),
    it("kafka.m5.12xlarge", Family::M5, 48, 4000, Some(1000)),
    it("kafka.m5.16xlarge", Family::M5, 64, 4000, Some(1000)),
    it("kafka.m5.24xlarge", Family::M5, 96, 4000, Some(1000)),
    it("kafka.m7g.large", Family::M7g, 2, 1000, None),
    it("kafka.m7g.xlarge", Family::M7g, 4, 1000, None),
    it("kafka.m7g.2xlarge", Family::M7g, 8, 2000, Some(312)),
    it("kafka.m7g.4xlarge", Family::M7g, 16, 4000, Some(625)),
    it("kafka.m7g.8xlarge", Family::M7g, 32, 4000, Some(1000)),
    it("kafka.m7g.12xlarge", Family::M7g, 48, 4000, Some(1000)),
    it("kafka.m7g.16xlarge", Family::M7g, 64, 4000, Some(1000)),
];

/// Versions M7g brokers run (the guide's list; `3.7.x` covers its KRaft
/// variant).
const M7G_VERSIONS: &[&str] = &[
    "2.8.2.tiered",
    "3.3.2",
    "3.4.0",
    "3.5.1",
    "3.6.0",
    "3.7.x",
    "3.7.x.kraft",
];

/// Minimum and default provisioned throughput, MiB/s.
pub const MIN_PROVISIONED_THROUGHPUT: i64 = 250;
/// Largest EBS volume, GiB.
pub const MAX_VOLUME_GIB: i64 = 16384;
/// Brokers per cluster, ZooKeeper mode.
pub const MAX_BROKERS_ZOOKEEPER: i64 = 30;
/// Brokers per cluster, KRaft mode.
pub const MAX_BROKERS_KRAFT: i64 = 60;
/// Brokers per account (per region).
pub const MAX_BROKERS_PER_ACCOUNT: i64 = 90;

/// The size named `name`, or a 400 naming `parameter`.
pub fn instance_type(name: &str, parameter: &str) -> Result<&'static InstanceType, ApiError> {
    INSTANCE_TYPES
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| {
            ApiError::bad_request(
                parameter,
                format!(
                    "The broker type {name} is not supported. Supported broker types: {}.",
                    INSTANCE_TYPES
                        .iter()
                        .map(|t| t.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
}

/// A required member, or a 400 saying it is missing.
pub fn required<'a, T>(value: Option<&'a T>, parameter: &str) -> Result<&'a T, ApiError> {
    value.ok_or_else(|| {
        ApiError::bad_request(parameter, format!("The parameter {parameter} is required."))
    })
}

/// Cluster names: 1 to 64 letters, digits and hyphens, starting with a
/// letter or digit.
pub fn cluster_name(name: Option<&String>) -> Result<String, ApiError> {
    let name = required(name, "clusterName")?;
    let valid_chars = name
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_alphanumeric() || (i > 0 && c == '-'));
    if name.is_empty() || name.len() > 64 || !valid_chars {
        return Err(ApiError::bad_request(
            "clusterName",
            format!(
                "The cluster name {name:?} is not valid. Use 1 to 64 letters, digits and hyphens, starting with a letter or digit."
            ),
        ));
    }
    Ok(name.clone())
}

/// The Kafka version of a new cluster: known, and still taking new clusters.
pub fn kafka_version_for_create(version: Option<&String>) -> Result<String, ApiError> {
    let version = required(version, "kafkaVersion")?;
    let info = versions::find(version).ok_or_else(|| {
        ApiError::bad_request(
            "kafkaVersion",
            format!("Unsupported Kafka version {version}. Call ListKafkaVersions for the supported versions."),
        )
    })?;
    if !info.creatable {
        return Err(ApiError::bad_request(
            "kafkaVersion",
            format!("You can't create new clusters with Apache Kafka version {version}."),
        ));
    }
    Ok(version.clone())
}

/// Whether brokers of `t` may run Kafka `version` (M7g only on the guide's
/// versions).
pub fn check_family_version(
    t: &InstanceType,
    version: &str,
    parameter: &str,
) -> Result<(), ApiError> {
    if t.family == Family::M7g && !M7G_VERSIONS.contains(&version) {
        return Err(ApiError::bad_request(
            parameter,
            format!(
                "{} brokers require Apache Kafka version {}; the cluster uses {version}.",
                t.name,
                M7G_VERSIONS.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The client subnets of a new cluster: 2 or 3 known subnets (exactly 2 in
/// us-west-1), each in a different zone. Returns their zones.
pub fn client_subnets(
    config: &ControlPlaneConfig,
    subnets: Option<&Vec<String>>,
) -> Result<Vec<String>, ApiError> {
    let subnets = required(subnets, "clientSubnets")?;
    let (min, max) = if config.region == "us-west-1" {
        (2, 2)
    } else {
        (2, 3)
    };
    if subnets.len() < min || subnets.len() > max {
        let allowed = if min == max {
            format!("exactly {min}")
        } else {
            format!("{min} or {max}")
        };
        return Err(ApiError::bad_request(
            "clientSubnets",
            format!(
                "Specify {allowed} client subnets, each in a different Availability Zone; {} given.",
                subnets.len()
            ),
        ));
    }
    let mut zones: Vec<String> = Vec::new();
    for subnet in subnets {
        let zone = config.zone_of(subnet).ok_or_else(|| {
            ApiError::bad_request(
                "clientSubnets",
                format!(
                    "The subnet {subnet} does not exist. Known subnets: {}.",
                    config
                        .subnets
                        .iter()
                        .map(|s| s.subnet_id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        if zones.iter().any(|z| z == zone) {
            return Err(ApiError::bad_request(
                "clientSubnets",
                format!("The subnets must be in different Availability Zones; two are in {zone}."),
            ));
        }
        zones.push(zone.to_string());
    }
    Ok(zones)
}

/// The broker count: at least one per zone, a multiple of the zone count,
/// and within the per-cluster limit of the metadata mode.
pub fn broker_count(
    count: Option<&i64>,
    zone_count: usize,
    version: &str,
    parameter: &str,
) -> Result<i64, ApiError> {
    let count = *required(count, parameter)?;
    let max = if versions::is_kraft(version) {
        MAX_BROKERS_KRAFT
    } else {
        MAX_BROKERS_ZOOKEEPER
    };
    if count < 1 || count > max {
        return Err(ApiError::bad_request(
            parameter,
            format!("The number of broker nodes must be between 1 and {max} for Kafka version {version}; {count} given."),
        ));
    }
    if zone_count > 0 && count % zone_count as i64 != 0 {
        return Err(ApiError::bad_request(
            parameter,
            format!("The number of broker nodes must be a multiple of the number of Availability Zones ({zone_count}); {count} given."),
        ));
    }
    Ok(count)
}

/// A volume size in GiB: 1 to 16384.
pub fn volume_size(size: i64, parameter: &str) -> Result<i64, ApiError> {
    if !(1..=MAX_VOLUME_GIB).contains(&size) {
        return Err(ApiError::bad_request(
            parameter,
            format!("The volume size must be between 1 and {MAX_VOLUME_GIB} GiB; {size} given."),
        ));
    }
    Ok(size)
}

/// Provisioned throughput: only on eligible sizes, with volumes of at least
/// 10 GiB, between 250 MiB/s and the size's maximum.
pub fn provisioned_throughput(
    pt: &ProvisionedThroughput,
    t: &InstanceType,
    volume_gib: i64,
) -> Result<(), ApiError> {
    if pt.enabled != Some(true) {
        if pt.volume_throughput.is_some() && pt.enabled.is_none() {
            return Err(ApiError::bad_request(
                "enabled",
                "Set provisionedThroughput.enabled to true to provision storage throughput.",
            ));
        }
        return Ok(());
    }
    let Some(max) = t.max_throughput else {
        return Err(ApiError::bad_request(
            "provisionedThroughput",
            format!(
                "Provisioned storage throughput is not available for {}; use kafka.m5.4xlarge or larger, or kafka.m7g.2xlarge or larger.",
                t.name
            ),
        ));
    };
    if volume_gib < 10 {
        return Err(ApiError::bad_request(
            "volumeSize",
            "Provisioned storage throughput requires volumes of at least 10 GiB.",
        ));
    }
    let value = pt.volume_throughput.unwrap_or(MIN_PROVISIONED_THROUGHPUT);
    if !(MIN_PROVISIONED_THROUGHPUT..=max).contains(&value) {
        return Err(ApiError::bad_request(
            "volumeThroughput",
            format!(
                "The storage throughput of {} must be between {MIN_PROVISIONED_THROUGHPUT} and {max} MiB/s; {value} given.",
                t.name
            ),
        ));
    }
    Ok(())
}

/// `LOCAL` or `TIERED`; tiered needs a tiered-capable version and no t3.
pub fn storage_mode(mode: &str, t: &InstanceType, version: &str) -> Result<(), ApiError> {
    match mode {
        "LOCAL" => Ok(()),
        "TIERED" => {
            if t.family == Family::T3 {
                return Err(ApiError::bad_request(
                    "storageMode",
                    "Tiered storage is not available for kafka.t3.small brokers.",
                ));
            }
            if !versions::supports_tiered_storage(version) {
                return Err(ApiError::bad_request(
                    "storageMode",
                    format!("Tiered storage requires Apache Kafka 3.6.0 or later, or 2.8.2.tiered; the cluster uses {version}."),
                ));
            }
            Ok(())
        }
        other => Err(ApiError::bad_request(
            "storageMode",
            format!("The storage mode must be LOCAL or TIERED; {other} given."),
        )),
    }
}

/// `DEFAULT`, `PER_BROKER`, `PER_TOPIC_PER_BROKER` or `PER_TOPIC_PER_PARTITION`.
pub fn enhanced_monitoring(level: &str) -> Result<(), ApiError> {
    const LEVELS: &[&str] = &[
        "DEFAULT",
        "PER_BROKER",
        "PER_TOPIC_PER_BROKER",
        "PER_TOPIC_PER_PARTITION",
    ];
    if LEVELS.contains(&level) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "enhancedMonitoring",
            format!(
                "The monitoring level must be one of {}; {level} given.",
                LEVELS.join(", ")
            ),
        ))
    }
}

/// Open monitoring: `prometheus` is required, each exporter's
/// `enabledInBroker` too, and both can't be off at the same time.
pub fn open_monitoring(om: &OpenMonitoring) -> Result<(), ApiError> {
    let p = required(om.prometheus.as_ref(), "prometheus")?;
    let jmx = p.jmx_exporter.as_ref().map(|e| e.enabled_in_broker);
    let node = p.node_exporter.as_ref().map(|e| e.enabled_in_broker);
    for (name, v) in [("jmxExporter", jmx), ("nodeExporter", node)] {
        if v == Some(None) {
            return Err(ApiError::bad_request(
                "enabledInBroker",
                format!("The parameter {name}.enabledInBroker is required."),
            ));
        }
    }
    if jmx.flatten() != Some(true) && node.flatten() != Some(true) {
        return Err(ApiError::bad_request(
            "openMonitoring",
            "If you specify open monitoring, the JMX exporter and the node exporter can't both be disabled.",
        ));
    }
    Ok(())
}

/// Broker log delivery: `brokerLogs` required; each destination needs
/// `enabled`, and an enabled one its target name.
pub fn logging_info(li: &LoggingInfo) -> Result<(), ApiError> {
    let logs: &BrokerLogs = required(li.broker_logs.as_ref(), "brokerLogs")?;
    let check = |d: Option<&LogDestination>,
                 what: &str,
                 target: &str,
                 get: fn(&LogDestination) -> Option<&String>| {
        let Some(d) = d else { return Ok(()) };
        let enabled = *required(d.enabled.as_ref(), "enabled")?;
        if enabled && get(d).is_none_or(|s| s.is_empty()) {
            return Err(ApiError::bad_request(
                target,
                format!("{what} broker logs are enabled but {target} is not set."),
            ));
        }
        Ok(())
    };
    check(
        logs.cloud_watch_logs.as_ref(),
        "CloudWatch Logs",
        "logGroup",
        |d| d.log_group.as_ref(),
    )?;
    check(logs.firehose.as_ref(), "Firehose", "deliveryStream", |d| {
        d.delivery_stream.as_ref()
    })?;
    check(logs.s3.as_ref(), "S3", "bucket", |d| d.bucket.as_ref())?;
    Ok(())
}

fn enabled(v: Option<&crate::wire::Enabled>) -> bool {
    v.and_then(|e| e.enabled) == Some(true)
}

/// Whether SASL/SCRAM, SASL/IAM, mTLS and unauthenticated access are on.
pub fn auth_methods(ca: &ClientAuthentication) -> (bool, bool, bool, bool) {
    let scram = enabled(ca.sasl.as_ref().and_then(|s| s.scram.as_ref()));
    let iam = enabled(ca.sasl.as_ref().and_then(|s| s.iam.as_ref()));
    let tls = ca.tls.as_ref().and_then(|t| t.enabled) == Some(true);
    let unauthenticated = enabled(ca.unauthenticated.as_ref());
    (scram, iam, tls, unauthenticated)
}

/// The authentication × encryption matrix (MSK Developer Guide, "Update
/// security"): at least one method; unauthenticated allows any client-broker
/// setting; mTLS needs TLS or TLS_PLAINTEXT; SASL needs TLS; every
/// authenticated method needs in-cluster encryption; mTLS needs CA ARNs.
pub fn security(ca: &ClientAuthentication, enc: &EncryptionInfo) -> Result<(), ApiError> {
    let transit = enc.encryption_in_transit.clone().unwrap_or_default();
    let client_broker = transit.client_broker.as_deref().unwrap_or("TLS");
    if !["TLS", "TLS_PLAINTEXT", "PLAINTEXT"].contains(&client_broker) {
        return Err(ApiError::bad_request(
            "clientBroker",
            format!("clientBroker must be TLS, TLS_PLAINTEXT or PLAINTEXT; {client_broker} given."),
        ));
    }
    let in_cluster = transit.in_cluster.unwrap_or(true);
    if let Some(at_rest) = &enc.encryption_at_rest {
        let key = required(
            at_rest.data_volume_kms_key_id.as_ref(),
            "dataVolumeKMSKeyId",
        )?;
        if key.is_empty() || (key.starts_with("arn:") && !key.starts_with("arn:aws:kms:")) {
            return Err(ApiError::bad_request(
                "dataVolumeKMSKeyId",
                format!("{key} is not a KMS key ARN or id."),
            ));
        }
    }
    let (scram, iam, tls, unauthenticated) = auth_methods(ca);
    if !(scram || iam || tls || unauthenticated) {
        return Err(ApiError::bad_request(
            "clientAuthentication",
            "Enable at least one client authentication method.",
        ));
    }
    if tls {
        let cas = ca
            .tls
            .as_ref()
            .and_then(|t| t.certificate_authority_arn_list.as_ref());
        match cas {
            Some(list) if !list.is_empty() => {
                if let Some(bad) = list.iter().find(|a| !a.starts_with("arn:aws:acm-pca:")) {
                    return Err(ApiError::bad_request(
                        "certificateAuthorityArnList",
                        format!("{bad} is not an AWS Private CA ARN."),
                    ));
                }
            }
            _ => {
                return Err(ApiError::bad_request(
                    "certificateAuthorityArnList",
                    "TLS client authentication requires at least one AWS Private CA ARN.",
                ))
            }
        }
        if client_broker == "PLAINTEXT" {
            return Err(ApiError::bad_request(
                "clientBroker",
                "TLS client authentication requires client-broker encryption TLS or TLS_PLAINTEXT.",
            ));
        }
    }
    if (scram || iam) && client_broker != "TLS" {
        return Err(ApiError::bad_request(
            "clientBroker",
            "SASL/SCRAM and IAM client authentication require client-broker encryption TLS.",
        ));
    }
    if (scram || iam || tls) && !in_cluster {
        return Err(ApiError::bad_request(
            "inCluster",
            "SASL/SCRAM, IAM and TLS client authentication require encryption between brokers (inCluster true).",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Enabled, EncryptionInTransit, Sasl};

    fn enc(cb: &str, in_cluster: bool) -> EncryptionInfo {
        EncryptionInfo {
            encryption_at_rest: None,
            encryption_in_transit: Some(EncryptionInTransit {
                client_broker: Some(cb.into()),
                in_cluster: Some(in_cluster),
            }),
        }
    }

    #[test]
    fn security_matrix() {
        let on = Some(Enabled {
            enabled: Some(true),
        });
        let unauth = ClientAuthentication {
            unauthenticated: on.clone(),
            ..Default::default()
        };
        let iam = ClientAuthentication {
            sasl: Some(Sasl {
                iam: on.clone(),
                scram: None,
            }),
            ..Default::default()
        };
        assert!(security(&unauth, &enc("PLAINTEXT", false)).is_ok());
        assert!(security(&iam, &enc("TLS", true)).is_ok());
        assert_eq!(
            security(&iam, &enc("PLAINTEXT", true))
                .unwrap_err()
                .invalid_parameter
                .as_deref(),
            Some("clientBroker")
        );
        assert_eq!(
            security(&iam, &enc("TLS", false))
                .unwrap_err()
                .invalid_parameter
                .as_deref(),
            Some("inCluster")
        );
        assert!(security(&ClientAuthentication::default(), &enc("TLS", true)).is_err());
    }
}
