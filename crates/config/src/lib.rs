//! # Layout
//!
//! `millrace-config` is Apache Kafka's configuration model for Millrace: the
//! broker reads its start-up config with it, answers DescribeConfigs,
//! validates AlterConfigs / IncrementalAlterConfigs / CreateTopics configs,
//! and the MSK control plane validates MSK configurations (server.properties
//! bodies) with it. It knows nothing about sockets or the wire protocol.
//!
//! | module | what it holds |
//! |---|---|
//! | [`properties`] | `java.util.Properties.load`-exact parser for `.properties` text |
//! | [`definition`] | [`ConfigDef`], [`ConfigType`], [`ConfigValue`], [`Validator`], [`UpdateMode`]: one property and how a string becomes a typed value |
//! | [`broker`] | the broker config table and [`BrokerConfig`] (typed accessors, synonyms, listeners, dynamic overrides) |
//! | [`topic`] | the Kafka 3.7 topic config table, [`validate_topic_configs`], [`TopicConfig`] |
//! | [`describe`] | DescribeConfigs entries (values, sources, synonyms) for topics and brokers |
//! | [`msk`] | the MSK default configuration (`defaults/msk-default.properties`) and MSK configuration validation |
//! | [`error`] | [`ConfigError`], with Kafka's message texts |
//!
//! Defaults: where Amazon MSK's default configuration sets a property (e.g.
//! `auto.create.topics.enable=false`, `default.replication.factor=3`,
//! `min.insync.replicas=2`) that value is Millrace's default; everything else
//! uses Apache Kafka 3.7's default. The MSK values live only in the shipped
//! properties file, compiled in with `include_str!`.

pub mod broker;
pub mod definition;
pub mod describe;
pub mod error;
pub mod msk;
pub mod properties;
pub mod topic;

pub use broker::{
    broker_config_def, broker_config_defs, broker_config_synonyms, resolve_broker_config_name,
    validate_dynamic_update, BrokerConfig, Listener, ProcessRole, QuorumVoter, SecurityProtocol,
};
pub use definition::{
    ConfigDef, ConfigType, ConfigValue, Importance, Password, UpdateMode, Validator,
};
pub use describe::{
    describe_broker, describe_broker_default, describe_topic, ConfigSource, ConfigSynonym,
    DescribeConfigEntry,
};
pub use error::ConfigError;
pub use msk::{msk_default_entries, validate_msk_configuration, MSK_DEFAULT_PROPERTIES};
pub use properties::{parse_override, parse_properties};
pub use topic::{
    topic_config_def, topic_config_defs, topic_config_synonyms, validate_topic_configs,
    CleanupPolicy, CompressionType, ThrottledReplicas, TimestampType, TopicConfig,
};
