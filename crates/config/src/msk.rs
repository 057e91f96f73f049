//! Amazon MSK specifics: the MSK default configuration (compiled in from
//! `defaults/msk-default.properties`, the single source of MSK defaults for
//! the broker table) and validation of custom MSK configuration bodies
//! (`server.properties` text) for the control plane.

use std::sync::OnceLock;

use crate::broker::broker_config_def;
use crate::definition::ConfigValue;
use crate::error::ConfigError;
use crate::properties::parse_properties;

/// The MSK default configuration (non-tiered, 3-AZ) as shipped in
/// `defaults/msk-default.properties`.
pub const MSK_DEFAULT_PROPERTIES: &str = include_str!("../defaults/msk-default.properties");

/// The parsed MSK default configuration, in file order. Used by
/// [`crate::broker::broker_config_defs`] to override Kafka's defaults.
pub fn msk_default_entries() -> &'static [(String, String)] {
    static ENTRIES: OnceLock<Vec<(String, String)>> = OnceLock::new();
    ENTRIES.get_or_init(|| parse_properties(MSK_DEFAULT_PROPERTIES).unwrap_or_default())
}

/// Properties a custom MSK configuration may set (MSK Developer Guide,
/// "Custom MSK configurations"). Any other key is rejected by
/// [`validate_msk_configuration`].
pub const MSK_CUSTOMIZABLE_PROPERTIES: &[&str] = &[
    "allow.everyone.if.no.acl.found",
    "auto.create.topics.enable",
    "compression.type",
    "connections.max.idle.ms",
    "default.replication.factor",
    "delete.topic.enable",
    "group.initial.rebalance.delay.ms",
    "group.max.session.timeout.ms",
    "group.min.session.timeout.ms",
    "leader.imbalance.per.broker.percentage",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleanup.policy",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.message.timestamp.difference.max.ms",
    "log.message.timestamp.type",
    "log.retention.bytes",
    "log.retention.hours",
    "log.retention.minutes",
    "log.retention.ms",
    "log.roll.ms",
    "log.segment.bytes",
    "max.incremental.fetch.session.cache.slots",
    "message.max.bytes",
    "min.insync.replicas",
    "num.io.threads",
    "num.network.threads",
    "num.partitions",
    "num.recovery.threads.per.data.dir",
    "num.replica.fetchers",
    "offsets.retention.minutes",
    "offsets.topic.replication.factor",
    "replica.fetch.max.bytes",
    "replica.fetch.response.max.bytes",
    "replica.lag.time.max.ms",
    "replica.selector.class",
    "replica.socket.receive.buffer.bytes",
    "socket.receive.buffer.bytes",
    "socket.request.max.bytes",
    "socket.send.buffer.bytes",
    "transaction.max.timeout.ms",
    "transaction.state.log.min.isr",
    "transaction.state.log.replication.factor",
    "transactional.id.expiration.ms",
    "unclean.leader.election.enable",
    "zookeeper.connection.timeout.ms",
    "zookeeper.session.timeout.ms",
];

/// Whether a custom MSK configuration may set `name`.
pub fn is_msk_customizable(name: &str) -> bool {
    MSK_CUSTOMIZABLE_PROPERTIES.contains(&name)
}

/// Ranges MSK documents on top of Kafka's own validators (inclusive).
const MSK_RANGES: &[(&str, Option<i64>, Option<i64>)] = &[
    ("replica.lag.time.max.ms", Some(10_000), Some(30_000)),
    ("zookeeper.connection.timeout.ms", Some(6_000), Some(18_000)),
    ("zookeeper.session.timeout.ms", Some(6_000), Some(18_000)),
    ("socket.receive.buffer.bytes", Some(-1), None),
    ("socket.send.buffer.bytes", Some(-1), None),
    ("log.flush.interval.ms", Some(0), None),
    ("log.roll.ms", Some(1), None),
];

fn check_msk_range(name: &str, value: &ConfigValue) -> Result<(), ConfigError> {
    let Some((_, min, max)) = MSK_RANGES.iter().find(|(n, _, _)| *n == name) else {
        return Ok(());
    };
    let Some(n) = value.as_i64() else {
        return Ok(());
    };
    if let Some(min) = min.filter(|m| n < *m) {
        return Err(ConfigError::invalid_value(
            name,
            n.to_string(),
            format!("Value must be at least {min}"),
        ));
    }
    if let Some(max) = max.filter(|m| n > *m) {
        return Err(ConfigError::invalid_value(
            name,
            n.to_string(),
            format!("Value must be no more than {max}"),
        ));
    }
    Ok(())
}

/// Validates the body of a custom MSK configuration (CreateConfiguration /
/// UpdateConfiguration `ServerProperties`, already base64-decoded): parses it
/// as Java properties, rejects keys outside [`MSK_CUSTOMIZABLE_PROPERTIES`],
/// and checks every value with Kafka's validator plus MSK's documented
/// ranges. Returns the entries in file order.
///
/// The wording of the "not allowed" error is Millrace's own: the guide does
/// not quote MSK's message.
pub fn validate_msk_configuration(
    server_properties: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let entries = parse_properties(server_properties)?;
    for (name, raw) in &entries {
        let def = broker_config_def(name)
            .filter(|_| is_msk_customizable(name))
            .ok_or_else(|| {
                ConfigError::invalid(
                    name.as_str(),
                    format!("The configuration property {name} is not supported by Amazon MSK."),
                )
            })?;
        let value = def.parse(raw)?;
        check_msk_range(name, &value)?;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::broker_config_defs;

    #[test]
    fn shipped_defaults_are_known_broker_configs() {
        let entries = parse_properties(MSK_DEFAULT_PROPERTIES).unwrap();
        assert!(entries.len() >= 20);
        assert_eq!(entries.len(), msk_default_entries().len());
        for (key, value) in &entries {
            let def = broker_config_def(key)
                .unwrap_or_else(|| panic!("{key} is not a known broker config"));
            def.parse(value)
                .unwrap_or_else(|e| panic!("MSK default {key}={value}: {e}"));
            // And the table really uses the shipped value as its default.
            assert_eq!(def.default_value(), Some(value.as_str()), "{key}");
        }
    }

    #[test]
    fn code_and_file_agree_on_headline_defaults() {
        let get = |k: &str| {
            msk_default_entries()
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("auto.create.topics.enable"), Some("false"));
        assert_eq!(get("default.replication.factor"), Some("3"));
        assert_eq!(get("min.insync.replicas"), Some("2"));
        assert_eq!(get("num.network.threads"), Some("5"));
        assert_eq!(get("unclean.leader.election.enable"), Some("true"));
        assert_eq!(
            get("log.message.timestamp.difference.max.ms"),
            Some("9223372036854775807")
        );
        // Configs MSK does not list keep Kafka's default.
        for def in broker_config_defs() {
            if get(def.name).is_none() {
                assert_eq!(def.default_value(), def.kafka_default, "{}", def.name);
            }
        }
    }

    #[test]
    fn custom_configuration_validation() {
        let ok = "auto.create.topics.enable = true\nlog.retention.hours=48\nreplica.lag.time.max.ms=10000\n";
        assert_eq!(validate_msk_configuration(ok).unwrap().len(), 3);
        for name in MSK_CUSTOMIZABLE_PROPERTIES {
            assert!(broker_config_def(name).is_some(), "{name}");
        }
        let e = validate_msk_configuration("listeners=PLAINTEXT://:9092").unwrap_err();
        assert_eq!(e.property(), Some("listeners"));
        assert_eq!(
            validate_msk_configuration("replica.lag.time.max.ms=5000")
                .unwrap_err()
                .to_string(),
            "Invalid value 5000 for configuration replica.lag.time.max.ms: Value must be at least 10000"
        );
        assert_eq!(
            validate_msk_configuration("zookeeper.session.timeout.ms=20000")
                .unwrap_err()
                .to_string(),
            "Invalid value 20000 for configuration zookeeper.session.timeout.ms: Value must be no more than 18000"
        );
        assert!(validate_msk_configuration("num.partitions=0").is_err());
        assert!(validate_msk_configuration("socket.send.buffer.bytes=-1").is_ok());
        assert!(validate_msk_configuration("socket.send.buffer.bytes=-2").is_err());
    }
}
