//! What DescribeConfigs returns for TOPIC and BROKER resources, independent
//! of wire types: values, sources, synonyms and flags computed the way
//! Kafka's `ConfigHelper` does.
//!
//! Synonyms are ordered most specific first: the topic override, then for
//! the broker synonyms (in Kafka's synonym order within each source)
//! per-broker dynamic, cluster-default dynamic, static, default. Like Kafka,
//! the list is then cut so it starts at the config's own primary broker
//! name: for `retention.ms` with only `log.retention.hours` in play the
//! broker synonyms are therefore empty (Kafka shows `synonyms={}` there too).

use std::collections::BTreeMap;

use crate::broker::{
    broker_config_def, broker_config_defs, broker_config_synonyms, resolve_broker_config_name,
    BrokerConfig,
};
use crate::definition::ConfigType;
use crate::error::ConfigError;
use crate::topic::{resolve_values, topic_config_defs};

/// Where a reported value comes from (Kafka's `DescribeConfigsResponse.ConfigSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConfigSource {
    /// A topic-level override.
    TopicConfig,
    /// A dynamic config of this broker.
    DynamicBrokerConfig,
    /// A dynamic config of the `<default>` broker resource.
    DynamicDefaultBrokerConfig,
    /// server.properties / `--override`.
    StaticBrokerConfig,
    /// The built-in default.
    DefaultConfig,
}

impl ConfigSource {
    /// Wire id: TOPIC_CONFIG=1, DYNAMIC_BROKER_CONFIG=2,
    /// DYNAMIC_DEFAULT_BROKER_CONFIG=3, STATIC_BROKER_CONFIG=4, DEFAULT_CONFIG=5.
    pub fn id(self) -> i8 {
        match self {
            ConfigSource::TopicConfig => 1,
            ConfigSource::DynamicBrokerConfig => 2,
            ConfigSource::DynamicDefaultBrokerConfig => 3,
            ConfigSource::StaticBrokerConfig => 4,
            ConfigSource::DefaultConfig => 5,
        }
    }

    /// Kafka's enum name, as `kafka-configs.sh` prints it.
    pub fn kafka_name(self) -> &'static str {
        match self {
            ConfigSource::TopicConfig => "DYNAMIC_TOPIC_CONFIG",
            ConfigSource::DynamicBrokerConfig => "DYNAMIC_BROKER_CONFIG",
            ConfigSource::DynamicDefaultBrokerConfig => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            ConfigSource::StaticBrokerConfig => "STATIC_BROKER_CONFIG",
            ConfigSource::DefaultConfig => "DEFAULT_CONFIG",
        }
    }
}

/// One synonym of a described config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    /// The synonym's name (e.g. `log.retention.hours`).
    pub name: String,
    /// Its value at that source; `None` when sensitive.
    pub value: Option<String>,
    /// Where it is set.
    pub source: ConfigSource,
}

/// One DescribeConfigs result entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeConfigEntry {
    /// Config name.
    pub name: String,
    /// Effective value; `None` for `null` or when sensitive.
    pub value: Option<String>,
    /// Source of the effective value (the first synonym's source, else
    /// `DefaultConfig`).
    pub source: ConfigSource,
    /// Passwords (and unknown-typed configs) are sensitive.
    pub is_sensitive: bool,
    /// Whether the config cannot be changed dynamically (always `false` for
    /// topic configs).
    pub read_only: bool,
    /// The type; `None` is Kafka's UNKNOWN (wire id 0).
    pub config_type: Option<ConfigType>,
    /// One-line documentation.
    pub documentation: Option<&'static str>,
    /// Synonyms, most specific first (callers drop them unless the request
    /// asked for `include_synonyms`).
    pub synonyms: Vec<ConfigSynonym>,
}

impl DescribeConfigEntry {
    /// Wire id of the config type (0 = UNKNOWN).
    pub fn config_type_id(&self) -> i8 {
        self.config_type.map_or(0, ConfigType::describe_id)
    }
}

/// The dynamic and static layers a describe call reads synonyms from.
struct Layers<'a> {
    per_broker: &'a BTreeMap<String, String>,
    cluster_default: &'a BTreeMap<String, String>,
    static_entries: &'a BTreeMap<String, String>,
}

/// Kafka's `ConfigHelper.configSynonyms`.
fn config_synonyms(
    name: &str,
    synonyms: &[String],
    sensitive: bool,
    layers: &Layers<'_>,
) -> Vec<ConfigSynonym> {
    let mut out = Vec::new();
    let mut add = |map: &BTreeMap<String, String>, source: ConfigSource| {
        for s in synonyms {
            if let Some(v) = map.get(s) {
                out.push(ConfigSynonym {
                    name: s.clone(),
                    value: (!sensitive).then(|| v.clone()),
                    source,
                });
            }
        }
    };
    add(layers.per_broker, ConfigSource::DynamicBrokerConfig);
    add(
        layers.cluster_default,
        ConfigSource::DynamicDefaultBrokerConfig,
    );
    add(layers.static_entries, ConfigSource::StaticBrokerConfig);
    for s in synonyms {
        if let Some(default) = broker_config_def(s).and_then(|d| d.default_value()) {
            out.push(ConfigSynonym {
                name: s.clone(),
                value: (!sensitive).then(|| default.to_string()),
                source: ConfigSource::DefaultConfig,
            });
        }
    }
    let start = out.iter().position(|s| s.name == name).unwrap_or(out.len());
    out.split_off(start)
}

fn wanted(names: Option<&[String]>, name: &str) -> bool {
    names.is_none_or(|n| n.iter().any(|x| x == name))
}

/// DescribeConfigs for a TOPIC resource: every topic config (sorted by
/// name, filtered by `names` when given) with its resolved value, source and
/// synonyms. `topic_overrides` are the topic's stored configs; the dynamic
/// maps are the `<default>` and this broker's dynamic broker configs.
pub fn describe_topic(
    topic_overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
    dynamic_cluster_default: &BTreeMap<String, String>,
    dynamic_per_broker: &BTreeMap<String, String>,
    names: Option<&[String]>,
) -> Result<Vec<DescribeConfigEntry>, ConfigError> {
    let values = resolve_values(
        topic_overrides,
        broker,
        dynamic_cluster_default,
        dynamic_per_broker,
    )?;
    let layers = Layers {
        per_broker: dynamic_per_broker,
        cluster_default: dynamic_cluster_default,
        static_entries: broker.static_entries(),
    };
    let mut out = Vec::new();
    for def in topic_config_defs() {
        if !wanted(names, def.name) {
            continue;
        }
        let value = values.get(def.name).map(|v| v.to_kafka_string());
        let mut synonyms = Vec::new();
        if topic_overrides.contains_key(def.name) {
            synonyms.push(ConfigSynonym {
                name: def.name.to_string(),
                value: value.clone(),
                source: ConfigSource::TopicConfig,
            });
        }
        if let Some(primary) = def.synonyms.first() {
            synonyms.extend(config_synonyms(
                primary,
                &broker_config_synonyms(primary),
                false,
                &layers,
            ));
        }
        out.push(DescribeConfigEntry {
            name: def.name.to_string(),
            value,
            source: synonyms
                .first()
                .map_or(ConfigSource::DefaultConfig, |s| s.source),
            is_sensitive: def.is_sensitive(),
            read_only: false,
            config_type: Some(def.config_type),
            documentation: Some(def.documentation),
            synonyms,
        });
    }
    Ok(out)
}

/// DescribeConfigs for this broker's BROKER resource (`resourceName` = its
/// node id): every broker config plus any set `listener.name.*` keys, with
/// effective values after the dynamic layers, sources and synonyms.
pub fn describe_broker(
    broker: &BrokerConfig,
    dynamic_cluster_default: &BTreeMap<String, String>,
    dynamic_per_broker: &BTreeMap<String, String>,
    names: Option<&[String]>,
) -> Result<Vec<DescribeConfigEntry>, ConfigError> {
    let effective = broker.with_dynamic(dynamic_cluster_default, dynamic_per_broker)?;
    let layers = Layers {
        per_broker: dynamic_per_broker,
        cluster_default: dynamic_cluster_default,
        static_entries: broker.static_entries(),
    };
    let mut all_names: Vec<String> = broker_config_defs()
        .iter()
        .map(|d| d.name.to_string())
        .collect();
    all_names.extend(
        effective
            .effective_entries()
            .keys()
            .filter(|k| broker_config_def(k).is_none())
            .cloned(),
    );
    all_names.sort();
    let mut out = Vec::new();
    for name in all_names {
        if !wanted(names, &name) {
            continue;
        }
        let def = resolve_broker_config_name(&name);
        let sensitive = def.is_none_or(|d| d.is_sensitive());
        let synonyms = config_synonyms(&name, &broker_config_synonyms(&name), sensitive, &layers);
        out.push(DescribeConfigEntry {
            value: if sensitive {
                None
            } else {
                effective.value_string(&name)
            },
            source: synonyms
                .first()
                .map_or(ConfigSource::DefaultConfig, |s| s.source),
            is_sensitive: sensitive,
            read_only: !def.is_some_and(|d| d.is_dynamic()),
            config_type: def.map(|d| d.config_type),
            documentation: def.map(|d| d.documentation),
            synonyms,
            name,
        });
    }
    Ok(out)
}

/// DescribeConfigs for the cluster-default BROKER resource (empty
/// `resourceName`, shown as `<default>`): only the configs set at that level,
/// with synonyms limited to `DynamicDefaultBrokerConfig`.
pub fn describe_broker_default(
    dynamic_cluster_default: &BTreeMap<String, String>,
    names: Option<&[String]>,
) -> Vec<DescribeConfigEntry> {
    let empty = BTreeMap::new();
    let layers = Layers {
        per_broker: &empty,
        cluster_default: dynamic_cluster_default,
        static_entries: &empty,
    };
    dynamic_cluster_default
        .iter()
        .filter(|(name, _)| wanted(names, name))
        .map(|(name, value)| {
            let def = resolve_broker_config_name(name);
            let sensitive = def.is_none_or(|d| d.is_sensitive());
            let synonyms: Vec<ConfigSynonym> =
                config_synonyms(name, &broker_config_synonyms(name), sensitive, &layers)
                    .into_iter()
                    .filter(|s| s.source == ConfigSource::DynamicDefaultBrokerConfig)
                    .collect();
            DescribeConfigEntry {
                name: name.clone(),
                value: (!sensitive).then(|| value.clone()),
                source: synonyms
                    .first()
                    .map_or(ConfigSource::DefaultConfig, |s| s.source),
                is_sensitive: sensitive,
                read_only: !def.is_some_and(|d| d.is_dynamic()),
                config_type: def.map(|d| d.config_type),
                documentation: def.map(|d| d.documentation),
                synonyms,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn broker(pairs: &[(&str, &str)]) -> BrokerConfig {
        let mut e = vec![("node.id".to_string(), "1".to_string())];
        e.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        BrokerConfig::from_entries(&e).unwrap().0
    }

    fn syn(name: &str, value: &str, source: ConfigSource) -> ConfigSynonym {
        ConfigSynonym {
            name: name.into(),
            value: Some(value.into()),
            source,
        }
    }

    fn find<'a>(entries: &'a [DescribeConfigEntry], name: &str) -> &'a DescribeConfigEntry {
        entries.iter().find(|e| e.name == name).unwrap()
    }

    #[test]
    fn source_ids() {
        assert_eq!(ConfigSource::TopicConfig.id(), 1);
        assert_eq!(ConfigSource::DynamicBrokerConfig.id(), 2);
        assert_eq!(ConfigSource::DynamicDefaultBrokerConfig.id(), 3);
        assert_eq!(ConfigSource::StaticBrokerConfig.id(), 4);
        assert_eq!(ConfigSource::DefaultConfig.id(), 5);
    }

    #[test]
    fn topic_sources_and_synonyms() {
        let b = broker(&[("log.segment.bytes", "2000000")]);
        let default = map(&[("log.segment.bytes", "3000000")]);
        let per_broker = map(&[("log.segment.bytes", "4000000")]);
        let overrides = map(&[("segment.bytes", "5000000")]);
        let entries = describe_topic(&overrides, &b, &default, &per_broker, None).unwrap();
        let e = find(&entries, "segment.bytes");
        assert_eq!(e.value.as_deref(), Some("5000000"));
        assert_eq!(e.source, ConfigSource::TopicConfig);
        assert!(!e.read_only && !e.is_sensitive);
        assert_eq!(e.config_type, Some(ConfigType::Int));
        assert_eq!(
            e.synonyms,
            vec![
                syn("segment.bytes", "5000000", ConfigSource::TopicConfig),
                syn(
                    "log.segment.bytes",
                    "4000000",
                    ConfigSource::DynamicBrokerConfig
                ),
                syn(
                    "log.segment.bytes",
                    "3000000",
                    ConfigSource::DynamicDefaultBrokerConfig
                ),
                syn(
                    "log.segment.bytes",
                    "2000000",
                    ConfigSource::StaticBrokerConfig
                ),
                syn(
                    "log.segment.bytes",
                    "1073741824",
                    ConfigSource::DefaultConfig
                ),
            ]
        );

        // Without the topic override the per-broker dynamic value wins.
        let entries = describe_topic(&map(&[]), &b, &default, &per_broker, None).unwrap();
        let e = find(&entries, "segment.bytes");
        assert_eq!(e.value.as_deref(), Some("4000000"));
        assert_eq!(e.source, ConfigSource::DynamicBrokerConfig);

        // Nothing set anywhere: DEFAULT_CONFIG with the broker default synonym.
        let entries = describe_topic(&map(&[]), &broker(&[]), &map(&[]), &map(&[]), None).unwrap();
        let e = find(&entries, "max.message.bytes");
        assert_eq!(e.value.as_deref(), Some("1048588"));
        assert_eq!(e.source, ConfigSource::DefaultConfig);
        assert_eq!(
            e.synonyms,
            vec![syn(
                "message.max.bytes",
                "1048588",
                ConfigSource::DefaultConfig
            )]
        );
        // MSK default shows up as the default.
        let e = find(&entries, "min.insync.replicas");
        assert_eq!(e.value.as_deref(), Some("2"));
        assert_eq!(
            e.synonyms,
            vec![syn("min.insync.replicas", "2", ConfigSource::DefaultConfig)]
        );
        // No broker synonym at all.
        let e = find(&entries, "remote.storage.enable");
        assert_eq!(e.value.as_deref(), Some("false"));
        assert_eq!(e.source, ConfigSource::DefaultConfig);
        assert!(e.synonyms.is_empty());
        assert_eq!(entries.len(), topic_config_defs().len());
    }

    #[test]
    fn topic_retention_synonyms_follow_kafka() {
        // Only the hours default in play: Kafka cuts the list at
        // log.retention.ms, so no synonyms are reported.
        let entries = describe_topic(&map(&[]), &broker(&[]), &map(&[]), &map(&[]), None).unwrap();
        let e = find(&entries, "retention.ms");
        assert_eq!(e.value.as_deref(), Some("604800000"));
        assert_eq!(e.source, ConfigSource::DefaultConfig);
        assert!(e.synonyms.is_empty());

        // log.retention.ms set statically: it heads the list, then the
        // lower-precedence hours default.
        let b = broker(&[("log.retention.ms", "1000"), ("log.retention.minutes", "5")]);
        let entries = describe_topic(&map(&[]), &b, &map(&[]), &map(&[]), None).unwrap();
        let e = find(&entries, "retention.ms");
        assert_eq!(e.value.as_deref(), Some("1000"));
        assert_eq!(e.source, ConfigSource::StaticBrokerConfig);
        assert_eq!(
            e.synonyms,
            vec![
                syn("log.retention.ms", "1000", ConfigSource::StaticBrokerConfig),
                syn(
                    "log.retention.minutes",
                    "5",
                    ConfigSource::StaticBrokerConfig
                ),
                syn("log.retention.hours", "168", ConfigSource::DefaultConfig),
            ]
        );

        // Dynamic per-broker log.retention.ms plus a topic override.
        let entries = describe_topic(
            &map(&[("retention.ms", "-1")]),
            &b,
            &map(&[("log.retention.hours", "1")]),
            &map(&[("log.retention.ms", "42")]),
            None,
        )
        .unwrap();
        let e = find(&entries, "retention.ms");
        assert_eq!(e.value.as_deref(), Some("-1"));
        assert_eq!(
            e.synonyms,
            vec![
                syn("retention.ms", "-1", ConfigSource::TopicConfig),
                syn("log.retention.ms", "42", ConfigSource::DynamicBrokerConfig),
                syn(
                    "log.retention.hours",
                    "1",
                    ConfigSource::DynamicDefaultBrokerConfig
                ),
                syn("log.retention.ms", "1000", ConfigSource::StaticBrokerConfig),
                syn(
                    "log.retention.minutes",
                    "5",
                    ConfigSource::StaticBrokerConfig
                ),
                syn("log.retention.hours", "168", ConfigSource::DefaultConfig),
            ]
        );
    }

    #[test]
    fn broker_entries() {
        let b = broker(&[
            ("num.io.threads", "4"),
            ("ssl.keystore.password", "secret"),
            ("listener.name.plaintext.max.connections", "100"),
        ]);
        let default = map(&[("num.io.threads", "16")]);
        let per_broker = map(&[("num.io.threads", "32")]);
        let entries = describe_broker(&b, &default, &per_broker, None).unwrap();

        let e = find(&entries, "num.io.threads");
        assert_eq!(e.value.as_deref(), Some("32"));
        assert_eq!(e.source, ConfigSource::DynamicBrokerConfig);
        assert!(!e.read_only);
        assert_eq!(
            e.synonyms,
            vec![
                syn("num.io.threads", "32", ConfigSource::DynamicBrokerConfig),
                syn(
                    "num.io.threads",
                    "16",
                    ConfigSource::DynamicDefaultBrokerConfig
                ),
                syn("num.io.threads", "4", ConfigSource::StaticBrokerConfig),
                syn("num.io.threads", "8", ConfigSource::DefaultConfig),
            ]
        );

        let e = find(&entries, "listeners");
        assert!(e.read_only);
        assert_eq!(e.value.as_deref(), Some("PLAINTEXT://:9092"));
        assert_eq!(e.source, ConfigSource::DefaultConfig);

        let e = find(&entries, "ssl.keystore.password");
        assert!(e.is_sensitive);
        assert_eq!(e.value, None);
        assert_eq!(e.source, ConfigSource::StaticBrokerConfig);
        assert_eq!(e.synonyms[0].value, None);
        assert_eq!(e.config_type_id(), 9);

        let e = find(&entries, "node.id");
        assert_eq!(e.value.as_deref(), Some("1"));
        assert_eq!(e.source, ConfigSource::StaticBrokerConfig);

        // A null-valued synonym config: value None, synonyms cut at its name.
        let e = find(&entries, "log.retention.ms");
        assert_eq!(e.value, None);
        assert!(e.synonyms.is_empty());
        let e = find(&entries, "log.retention.hours");
        assert_eq!(e.value.as_deref(), Some("168"));
        assert_eq!(
            e.synonyms,
            vec![syn(
                "log.retention.hours",
                "168",
                ConfigSource::DefaultConfig
            )]
        );

        let e = find(&entries, "listener.name.plaintext.max.connections");
        assert_eq!(e.value.as_deref(), Some("100"));
        assert_eq!(
            e.synonyms,
            vec![
                syn(
                    "listener.name.plaintext.max.connections",
                    "100",
                    ConfigSource::StaticBrokerConfig
                ),
                syn("max.connections", "2147483647", ConfigSource::DefaultConfig),
            ]
        );

        // Filter by requested names; unknown names are silently skipped.
        let wanted = vec!["num.io.threads".to_string(), "nope".to_string()];
        let entries = describe_broker(&b, &default, &per_broker, Some(&wanted)).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, "num.io.threads");
    }

    #[test]
    fn broker_default_resource() {
        let default = map(&[
            ("log.retention.ms", "1000"),
            ("listener.name.ssl.ssl.key.password", "pw"),
        ]);
        let entries = describe_broker_default(&default, None);
        assert_eq!(entries.len(), 2);
        let e = find(&entries, "log.retention.ms");
        assert_eq!(e.value.as_deref(), Some("1000"));
        assert_eq!(e.source, ConfigSource::DynamicDefaultBrokerConfig);
        assert_eq!(
            e.synonyms,
            vec![syn(
                "log.retention.ms",
                "1000",
                ConfigSource::DynamicDefaultBrokerConfig
            )]
        );
        let e = find(&entries, "listener.name.ssl.ssl.key.password");
        assert!(e.is_sensitive);
        assert_eq!(e.value, None);
        let wanted = vec!["log.retention.ms".to_string()];
        assert_eq!(describe_broker_default(&default, Some(&wanted)).len(), 1);
    }

    #[test]
    fn topic_filter() {
        let wanted = vec!["cleanup.policy".to_string(), "retention.ms".to_string()];
        let entries =
            describe_topic(&map(&[]), &broker(&[]), &map(&[]), &map(&[]), Some(&wanted)).unwrap();
        assert_eq!(
            entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            vec!["cleanup.policy", "retention.ms"]
        );
        assert!(matches!(
            describe_topic(
                &map(&[("x", "1")]),
                &broker(&[]),
                &map(&[]),
                &map(&[]),
                None
            ),
            Err(ConfigError::UnknownTopicConfig(_))
        ));
    }
}
