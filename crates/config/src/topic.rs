//! Kafka 3.7 topic-level configs (`LogConfig`): the table, validation of
//! CreateTopics/AlterConfigs input, and [`TopicConfig`], the fully resolved
//! typed settings of one topic (topic overrides over broker defaults).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::broker::BrokerConfig;
use crate::definition::{ConfigDef, ConfigType, ConfigValue, Importance, Validator};
use crate::error::ConfigError;

/// Kafka's `BrokerCompressionType` names, in Kafka's order.
pub const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
/// Valid `cleanup.policy` items.
pub const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];
/// Valid `message.timestamp.type` values.
pub const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];

/// `ThrottledReplicaListValidator` (Kafka 3.7): `*` or `partition:broker`
/// pairs.
pub(crate) fn check_throttled_replicas(name: &str, value: &ConfigValue) -> Result<(), String> {
    let Some(items) = value.as_list() else {
        return Ok(());
    };
    let pair_ok = |s: &str| {
        s.is_empty()
            || s.split_once(':').is_some_and(|(p, b)| {
                !p.is_empty()
                    && !b.is_empty()
                    && p.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            })
    };
    let all_pairs = items.iter().all(|s| pair_ok(s.trim()));
    let wildcard = items.iter().map(|s| s.trim()).collect::<String>() == "*";
    if all_pairs || wildcard {
        Ok(())
    } else {
        Err(format!(
            "{name} must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],..."
        ))
    }
}

/// `MetadataVersionValidator`, reduced to the syntax check: `X.Y`, `X.Y.Z`
/// or `X.Y-IVn` with a Kafka release from 0.8 to 3.7.
pub(crate) fn check_metadata_version(_name: &str, value: &ConfigValue) -> Result<(), String> {
    let s = value.as_str().unwrap_or_default();
    let (release, iv) = match s.split_once("-IV") {
        Some((r, iv)) => (r, Some(iv)),
        None => (s, None),
    };
    let parts: Vec<&str> = release.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit());
    let ok = (2..=3).contains(&parts.len())
        && parts.iter().all(numeric)
        && iv.is_none_or(|n| numeric(&n))
        && match (parts[0].parse::<u32>(), parts[1].parse::<u32>()) {
            (Ok(0), Ok(minor)) => (8..=11).contains(&minor),
            (Ok(1 | 2), Ok(minor)) => minor <= 8,
            (Ok(3), Ok(minor)) => minor <= 7,
            _ => false,
        };
    if ok {
        Ok(())
    } else {
        Err(format!("Version {s} is not a valid version"))
    }
}

const THROTTLED: Validator = Validator::Custom {
    description: "[partitionId]:[brokerId],[partitionId]:[brokerId],...",
    check: check_throttled_replicas,
};
const METADATA_VERSION: Validator = Validator::Custom {
    description: "[0.8.0, ..., 3.7-IV4]",
    check: check_metadata_version,
};

/// The MSK-only topic config used to switch tiered storage off for a topic
/// (`remote.log.msk.disable.policy=Delete`).
pub const MSK_DISABLE_POLICY: &str = "remote.log.msk.disable.policy";

fn build_topic_defs() -> Vec<ConfigDef> {
    use ConfigType::*;
    use Importance::*;
    let long_max = "9223372036854775807";
    vec![
        ConfigDef::new("cleanup.policy", List, Medium, "Retention policy for old segments: delete, compact, or both.")
            .default_value_of("delete")
            .validate(Validator::list_of(CLEANUP_POLICIES))
            .with_synonyms(&["log.cleanup.policy"]),
        ConfigDef::new("compression.type", String, Medium, "Final compression type of the topic; producer keeps the producer's codec.")
            .default_value_of("producer")
            .validate(Validator::one_of(COMPRESSION_TYPES))
            .with_synonyms(&["compression.type"]),
        ConfigDef::new("delete.retention.ms", Long, Medium, "How long delete tombstones are kept for compacted topics.")
            .default_value_of("86400000")
            .validate(Validator::at_least(0))
            .with_synonyms(&["log.cleaner.delete.retention.ms"]),
        ConfigDef::new("file.delete.delay.ms", Long, Medium, "Time to wait before deleting a file from the filesystem.")
            .default_value_of("60000")
            .validate(Validator::at_least(0))
            .with_synonyms(&["log.segment.delete.delay.ms"]),
        ConfigDef::new("flush.messages", Long, Medium, "Number of messages after which an fsync of the log is forced.")
            .default_value_of(long_max)
            .validate(Validator::at_least(1))
            .with_synonyms(&["log.flush.interval.messages"]),
        ConfigDef::new("flush.ms", Long, Medium, "Time after which an fsync of the log is forced.")
            .default_value_of(long_max)
            .validate(Validator::at_least(0))
            .with_synonyms(&["log.flush.interval.ms", "log.flush.scheduler.interval.ms"]),
        ConfigDef::new("follower.replication.throttled.replicas", List, Medium, "Replicas whose log replication is throttled on the follower side, or *.")
            .default_value_of("")
            .validate(THROTTLED),
        ConfigDef::new("index.interval.bytes", Int, Medium, "How often (in bytes) an entry is added to the offset index.")
            .default_value_of("4096")
            .validate(Validator::at_least(0))
            .with_synonyms(&["log.index.interval.bytes"]),
        ConfigDef::new("leader.replication.throttled.replicas", List, Medium, "Replicas whose log replication is throttled on the leader side, or *.")
            .default_value_of("")
            .validate(THROTTLED),
        ConfigDef::new("local.retention.bytes", Long, Medium, "Max bytes of local log segments before deletion; -2 means use retention.bytes.")
            .default_value_of("-2")
            .validate(Validator::at_least(-2))
            .with_synonyms(&["log.local.retention.bytes", "local.retention.bytes"]),
        ConfigDef::new("local.retention.ms", Long, Medium, "Max age of local log segments before deletion; -2 means use retention.ms.")
            .default_value_of("-2")
            .validate(Validator::at_least(-2))
            .with_synonyms(&["log.local.retention.ms", "local.retention.ms"]),
        ConfigDef::new("max.compaction.lag.ms", Long, Medium, "Maximum time a message remains ineligible for compaction.")
            .default_value_of(long_max)
            .validate(Validator::at_least(1))
            .with_synonyms(&["log.cleaner.max.compaction.lag.ms"]),
        ConfigDef::new("max.message.bytes", Int, Medium, "Largest record batch size allowed by the topic.")
            .default_value_of("1048588")
            .validate(Validator::at_least(0))
            .with_synonyms(&["message.max.bytes"]),
        ConfigDef::new("message.downconversion.enable", Boolean, Low, "Whether the broker down-converts records for old consumers.")
            .default_value_of("true")
            .with_synonyms(&["log.message.downconversion.enable"]),
        ConfigDef::new("message.format.version", String, Medium, "Deprecated: message format version; ignored with inter.broker.protocol.version 3.0 or later.")
            .default_value_of("3.0-IV1")
            .validate(METADATA_VERSION)
            .with_synonyms(&["log.message.format.version"]),
        ConfigDef::new("message.timestamp.after.max.ms", Long, Medium, "Max allowed amount a CreateTime timestamp may be ahead of the broker clock.")
            .default_value_of(long_max)
            .validate(Validator::at_least(0))
            .with_synonyms(&["log.message.timestamp.after.max.ms"]),
        ConfigDef::new("message.timestamp.before.max.ms", Long, Medium, "Max allowed amount a CreateTime timestamp may be behind the broker clock.")
            .default_value_of(long_max)
            .validate(Validator::at_least(0))
            .with_synonyms(&["log.message.timestamp.before.max.ms"]),
        ConfigDef::new("message.timestamp.difference.max.ms", Long, Medium, "Deprecated: max difference between a CreateTime timestamp and the broker clock.")
            .default_value_of(long_max)
            .validate(Validator::at_least(0))
            .with_synonyms(&["log.message.timestamp.difference.max.ms"]),
        ConfigDef::new("message.timestamp.type", String, Medium, "Whether record timestamps are CreateTime or LogAppendTime.")
            .default_value_of("CreateTime")
            .validate(Validator::one_of(TIMESTAMP_TYPES))
            .with_synonyms(&["log.message.timestamp.type"]),
        ConfigDef::new("min.cleanable.dirty.ratio", Double, Medium, "Dirty-to-total log ratio above which the cleaner compacts the log.")
            .default_value_of("0.5")
            .validate(Validator::between(0, 1))
            .with_synonyms(&["log.cleaner.min.cleanable.ratio"]),
        ConfigDef::new("min.compaction.lag.ms", Long, Medium, "Minimum time a message remains uncompacted in the log.")
            .default_value_of("0")
            .validate(Validator::at_least(0))
            .with_synonyms(&["log.cleaner.min.compaction.lag.ms"]),
        ConfigDef::new("min.insync.replicas", Int, Medium, "Minimum in-sync replicas needed to acknowledge an acks=all write.")
            .default_value_of("1")
            .validate(Validator::at_least(1))
            .with_synonyms(&["min.insync.replicas"]),
        ConfigDef::new("preallocate", Boolean, Medium, "Whether to preallocate the file on disk when creating a new log segment.")
            .default_value_of("false")
            .with_synonyms(&["log.preallocate"]),
        ConfigDef::new(MSK_DISABLE_POLICY, String, Medium, "Amazon MSK extension: set to Delete with remote.storage.enable=false to turn tiered storage off.")
            .validate(Validator::one_of_ignore_case(&["Delete"])),
        ConfigDef::new("remote.storage.enable", Boolean, Medium, "Whether tiered (remote) storage is enabled for the topic.")
            .default_value_of("false"),
        ConfigDef::new("retention.bytes", Long, Medium, "Max partition size before old segments are discarded; -1 means no limit.")
            .default_value_of("-1")
            .with_synonyms(&["log.retention.bytes"]),
        ConfigDef::new("retention.ms", Long, Medium, "Max age of a log segment before it is discarded; -1 means no time limit.")
            .default_value_of("604800000")
            .validate(Validator::at_least(-1))
            .with_synonyms(&["log.retention.ms", "log.retention.minutes", "log.retention.hours"]),
        ConfigDef::new("segment.bytes", Int, Medium, "Segment file size of the log.")
            .default_value_of("1073741824")
            .validate(Validator::at_least(14))
            .with_synonyms(&["log.segment.bytes"]),
        ConfigDef::new("segment.index.bytes", Int, Medium, "Size of the index that maps offsets to file positions.")
            .default_value_of("10485760")
            .validate(Validator::at_least(4))
            .with_synonyms(&["log.index.size.max.bytes"]),
        ConfigDef::new("segment.jitter.ms", Long, Medium, "Max random jitter subtracted from segment.ms to avoid thundering rolls.")
            .default_value_of("0")
            .validate(Validator::at_least(0))
            .with_synonyms(&["log.roll.jitter.ms", "log.roll.jitter.hours"]),
        ConfigDef::new("segment.ms", Long, Medium, "Time after which the active segment is rolled even if not full.")
            .default_value_of("604800000")
            .validate(Validator::at_least(1))
            .with_synonyms(&["log.roll.ms", "log.roll.hours"]),
        ConfigDef::new("unclean.leader.election.enable", Boolean, Medium, "Whether out-of-sync replicas may become leader as a last resort.")
            .default_value_of("false")
            .with_synonyms(&["unclean.leader.election.enable"]),
    ]
}

/// All topic-level configs Millrace understands (Kafka 3.7's `LogConfig`
/// plus MSK's `remote.log.msk.disable.policy`), sorted by name.
pub fn topic_config_defs() -> &'static [ConfigDef] {
    static DEFS: OnceLock<Vec<ConfigDef>> = OnceLock::new();
    DEFS.get_or_init(|| {
        let mut defs = build_topic_defs();
        defs.sort_by_key(|d| d.name);
        defs
    })
}

/// Looks up a topic config by name.
pub fn topic_config_def(name: &str) -> Option<&'static ConfigDef> {
    let defs = topic_config_defs();
    defs.binary_search_by_key(&name, |d| d.name)
        .ok()
        .map(|i| &defs[i])
}

/// The broker configs that supply a topic config's default, most preferred
/// first (empty when the broker has none, e.g. `remote.storage.enable`).
pub fn topic_config_synonyms(name: &str) -> &'static [&'static str] {
    topic_config_def(name).map(|d| d.synonyms).unwrap_or(&[])
}

/// Validates CreateTopics / AlterConfigs input for a topic like Kafka's
/// `LogConfig.validate`: every name must be a topic config (`Unknown topic
/// config name: x`), every value must parse and validate, and
/// `min.compaction.lag.ms` must not exceed `max.compaction.lag.ms`.
///
/// A `None` value (a reset/delete) only has its name checked; CreateTopics
/// callers must reject `None` themselves (Kafka: `Null value not supported
/// for topic configs`).
pub fn validate_topic_configs(configs: &[(String, Option<String>)]) -> Result<(), ConfigError> {
    let mut parsed: BTreeMap<&'static str, ConfigValue> = BTreeMap::new();
    for (name, value) in configs {
        let def =
            topic_config_def(name).ok_or_else(|| ConfigError::UnknownTopicConfig(name.clone()))?;
        if let Some(raw) = value {
            parsed.insert(def.name, def.parse(raw)?);
        }
    }
    let lag = |name: &str| -> Option<i64> {
        match parsed.get(name) {
            Some(v) => v.as_i64(),
            None => topic_config_def(name)
                .and_then(|d| d.parsed_default().ok().flatten())
                .and_then(|v| v.as_i64()),
        }
    };
    check_compaction_lag(lag("min.compaction.lag.ms"), lag("max.compaction.lag.ms"))
}

fn check_compaction_lag(min: Option<i64>, max: Option<i64>) -> Result<(), ConfigError> {
    match (min, max) {
        (Some(min), Some(max)) if min > max => Err(ConfigError::Invalid {
            name: Some("min.compaction.lag.ms".to_string()),
            message: format!(
                "conflict topic config setting min.compaction.lag.ms ({min}) > max.compaction.lag.ms ({max})"
            ),
        }),
        _ => Ok(()),
    }
}

/// A topic's `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleanupPolicy {
    /// Old segments are deleted by time/size retention.
    pub delete: bool,
    /// The log is compacted by key.
    pub compact: bool,
}

/// A topic's `compression.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    /// Store batches uncompressed.
    Uncompressed,
    /// Recompress with zstd.
    Zstd,
    /// Recompress with lz4.
    Lz4,
    /// Recompress with snappy.
    Snappy,
    /// Recompress with gzip.
    Gzip,
    /// Keep whatever the producer used.
    Producer,
}

impl CompressionType {
    /// Parses Kafka's name (case-insensitive, as `LogConfig` lower-cases it).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "uncompressed" => CompressionType::Uncompressed,
            "zstd" => CompressionType::Zstd,
            "lz4" => CompressionType::Lz4,
            "snappy" => CompressionType::Snappy,
            "gzip" => CompressionType::Gzip,
            "producer" => CompressionType::Producer,
            _ => return None,
        })
    }

    /// Kafka's name.
    pub fn as_str(self) -> &'static str {
        match self {
            CompressionType::Uncompressed => "uncompressed",
            CompressionType::Zstd => "zstd",
            CompressionType::Lz4 => "lz4",
            CompressionType::Snappy => "snappy",
            CompressionType::Gzip => "gzip",
            CompressionType::Producer => "producer",
        }
    }
}

/// A topic's `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Keep the producer's timestamp.
    CreateTime,
    /// Overwrite with the broker's append time.
    LogAppendTime,
}

/// `leader/follower.replication.throttled.replicas`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ThrottledReplicas {
    /// No replica is throttled (the default, empty list).
    #[default]
    None,
    /// `*`: every replica is throttled.
    All,
    /// Explicit `(partition, broker)` pairs.
    Replicas(Vec<(i32, i32)>),
}

impl ThrottledReplicas {
    fn from_list(items: &[String]) -> Self {
        let joined: String = items.iter().map(|s| s.trim()).collect();
        if joined == "*" {
            return ThrottledReplicas::All;
        }
        let pairs: Vec<(i32, i32)> = items
            .iter()
            .filter_map(|s| {
                let (p, b) = s.trim().split_once(':')?;
                Some((p.parse().ok()?, b.parse().ok()?))
            })
            .collect();
        if pairs.is_empty() {
            ThrottledReplicas::None
        } else {
            ThrottledReplicas::Replicas(pairs)
        }
    }
}

/// The fully resolved, typed configuration of one topic: what the log layer,
/// the produce path and the cleaner read. Built by [`TopicConfig::resolve`];
/// the broker-wide defaults are [`BrokerConfig::log_defaults`].
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `compression.type`.
    pub compression_type: CompressionType,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// `file.delete.delay.ms`.
    pub file_delete_delay_ms: i64,
    /// `flush.messages`.
    pub flush_messages: i64,
    /// `flush.ms`.
    pub flush_ms: i64,
    /// `follower.replication.throttled.replicas`.
    pub follower_replication_throttled_replicas: ThrottledReplicas,
    /// `leader.replication.throttled.replicas`.
    pub leader_replication_throttled_replicas: ThrottledReplicas,
    /// `index.interval.bytes`.
    pub index_interval_bytes: i32,
    /// `local.retention.bytes` as configured (-2 = same as retention.bytes);
    /// see [`TopicConfig::effective_local_retention_bytes`].
    pub local_retention_bytes: i64,
    /// `local.retention.ms` as configured (-2 = same as retention.ms); see
    /// [`TopicConfig::effective_local_retention_ms`].
    pub local_retention_ms: i64,
    /// `max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
    /// `max.message.bytes`: largest record batch accepted.
    pub max_message_bytes: i32,
    /// `message.downconversion.enable`.
    pub message_downconversion_enable: bool,
    /// `message.format.version` (deprecated, informational).
    pub message_format_version: String,
    /// `message.timestamp.type`.
    pub message_timestamp_type: TimestampType,
    /// `message.timestamp.difference.max.ms` (deprecated in 3.6).
    pub message_timestamp_difference_max_ms: i64,
    /// Effective `message.timestamp.before.max.ms`: when left at its default
    /// (i64::MAX), Kafka 3.7 uses `message.timestamp.difference.max.ms`.
    pub message_timestamp_before_max_ms: i64,
    /// Effective `message.timestamp.after.max.ms` (same fallback).
    pub message_timestamp_after_max_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `preallocate`.
    pub preallocate: bool,
    /// `remote.storage.enable`.
    pub remote_storage_enable: bool,
    /// MSK's `remote.log.msk.disable.policy` (`Some("Delete")` or `None`).
    pub remote_log_msk_disable_policy: Option<String>,
    /// `retention.bytes`; negative means no size limit.
    pub retention_bytes: i64,
    /// `retention.ms`; -1 means no time limit.
    pub retention_ms: i64,
    /// `segment.bytes`.
    pub segment_bytes: i32,
    /// `segment.index.bytes`.
    pub segment_index_bytes: i32,
    /// `segment.jitter.ms`.
    pub segment_jitter_ms: i64,
    /// `segment.ms`.
    pub segment_ms: i64,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election_enable: bool,
}

/// Typed view over a name → value map, falling back to the table default.
pub(crate) struct ValueMap<'a>(pub(crate) &'a BTreeMap<&'static str, ConfigValue>);

impl ValueMap<'_> {
    fn get(&self, name: &str) -> Option<ConfigValue> {
        self.0
            .get(name)
            .cloned()
            .or_else(|| topic_config_def(name).and_then(|d| d.parsed_default().ok().flatten()))
    }
    fn i64(&self, name: &str) -> i64 {
        self.get(name).and_then(|v| v.as_i64()).unwrap_or_default()
    }
    fn i32(&self, name: &str) -> i32 {
        self.get(name).and_then(|v| v.as_i32()).unwrap_or_default()
    }
    fn f64(&self, name: &str) -> f64 {
        self.get(name).and_then(|v| v.as_f64()).unwrap_or_default()
    }
    fn bool(&self, name: &str) -> bool {
        self.get(name).and_then(|v| v.as_bool()).unwrap_or_default()
    }
    fn string(&self, name: &str) -> Option<String> {
        self.get(name).and_then(|v| v.as_str().map(str::to_string))
    }
    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .and_then(|v| v.as_list().map(<[String]>::to_vec))
            .unwrap_or_default()
    }
}

impl TopicConfig {
    /// Builds the typed view from topic-config-named values; missing names
    /// take the Kafka topic default.
    pub(crate) fn from_values(values: &BTreeMap<&'static str, ConfigValue>) -> TopicConfig {
        let v = ValueMap(values);
        let policy = v.list("cleanup.policy");
        let has = |p: &str| policy.iter().any(|x| x.eq_ignore_ascii_case(p));
        let difference = v.i64("message.timestamp.difference.max.ms");
        let fallback = |x: i64| if x == i64::MAX { difference } else { x };
        TopicConfig {
            cleanup_policy: CleanupPolicy {
                delete: has("delete"),
                compact: has("compact"),
            },
            compression_type: v
                .string("compression.type")
                .and_then(|s| CompressionType::from_name(&s))
                .unwrap_or(CompressionType::Producer),
            delete_retention_ms: v.i64("delete.retention.ms"),
            file_delete_delay_ms: v.i64("file.delete.delay.ms"),
            flush_messages: v.i64("flush.messages"),
            flush_ms: v.i64("flush.ms"),
            follower_replication_throttled_replicas: ThrottledReplicas::from_list(
                &v.list("follower.replication.throttled.replicas"),
            ),
            leader_replication_throttled_replicas: ThrottledReplicas::from_list(
                &v.list("leader.replication.throttled.replicas"),
            ),
            index_interval_bytes: v.i32("index.interval.bytes"),
            local_retention_bytes: v.i64("local.retention.bytes"),
            local_retention_ms: v.i64("local.retention.ms"),
            max_compaction_lag_ms: v.i64("max.compaction.lag.ms"),
            max_message_bytes: v.i32("max.message.bytes"),
            message_downconversion_enable: v.bool("message.downconversion.enable"),
            message_format_version: v.string("message.format.version").unwrap_or_default(),
            message_timestamp_type: match v.string("message.timestamp.type").as_deref() {
                Some("LogAppendTime") => TimestampType::LogAppendTime,
                _ => TimestampType::CreateTime,
            },
            message_timestamp_difference_max_ms: difference,
            message_timestamp_before_max_ms: fallback(v.i64("message.timestamp.before.max.ms")),
            message_timestamp_after_max_ms: fallback(v.i64("message.timestamp.after.max.ms")),
            min_cleanable_dirty_ratio: v.f64("min.cleanable.dirty.ratio"),
            min_compaction_lag_ms: v.i64("min.compaction.lag.ms"),
            min_insync_replicas: v.i32("min.insync.replicas"),
            preallocate: v.bool("preallocate"),
            remote_storage_enable: v.bool("remote.storage.enable"),
            remote_log_msk_disable_policy: v.string(MSK_DISABLE_POLICY),
            retention_bytes: v.i64("retention.bytes"),
            retention_ms: v.i64("retention.ms"),
            segment_bytes: v.i32("segment.bytes"),
            segment_index_bytes: v.i32("segment.index.bytes"),
            segment_jitter_ms: v.i64("segment.jitter.ms"),
            segment_ms: v.i64("segment.ms"),
            unclean_leader_election_enable: v.bool("unclean.leader.election.enable"),
        }
    }

    /// Resolves a topic's configuration like Kafka's `LogConfig.fromProps`:
    /// topic overrides win; everything else comes from the broker's log
    /// defaults after applying the dynamic cluster-wide and per-broker
    /// overrides (and Kafka's synonym rules, e.g. `log.retention.ms` over
    /// `.minutes` over `.hours`). The two maps are authoritative: they
    /// replace any dynamic layers `broker` was built with.
    pub fn resolve(
        topic_overrides: &BTreeMap<String, String>,
        broker: &BrokerConfig,
        dynamic_cluster_default: &BTreeMap<String, String>,
        dynamic_per_broker: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, ConfigError> {
        let values = resolve_values(
            topic_overrides,
            broker,
            dynamic_cluster_default,
            dynamic_per_broker,
        )?;
        Ok(TopicConfig::from_values(&values))
    }

    /// `retention.ms` as a limit: `None` when unlimited (negative).
    pub fn retention_ms_limit(&self) -> Option<i64> {
        (self.retention_ms >= 0).then_some(self.retention_ms)
    }

    /// `retention.bytes` as a limit: `None` when unlimited (negative).
    pub fn retention_bytes_limit(&self) -> Option<i64> {
        (self.retention_bytes >= 0).then_some(self.retention_bytes)
    }

    /// Local-tier time retention with Kafka's rule: -2 means `retention.ms`.
    pub fn effective_local_retention_ms(&self) -> i64 {
        if self.local_retention_ms == -2 {
            self.retention_ms
        } else {
            self.local_retention_ms
        }
    }

    /// Local-tier size retention with Kafka's rule: -2 means
    /// `retention.bytes`.
    pub fn effective_local_retention_bytes(&self) -> i64 {
        if self.local_retention_bytes == -2 {
            self.retention_bytes
        } else {
            self.local_retention_bytes
        }
    }

    /// Kafka's `LogConfig.maxSegmentMs`: compacted topics roll at least every
    /// `max.compaction.lag.ms`.
    pub fn max_segment_ms(&self) -> i64 {
        if self.cleanup_policy.compact && self.max_compaction_lag_ms > 0 {
            self.max_compaction_lag_ms.min(self.segment_ms)
        } else {
            self.segment_ms
        }
    }

    /// Kafka 3.7's checks for topics with `remote.storage.enable=true`
    /// (`validateTopicLogConfigValues`): tiered storage must be enabled on
    /// the broker, the topic must not be compacted, and local retention must
    /// not exceed total retention.
    pub fn check_remote_storage(
        &self,
        remote_log_storage_system_enable: bool,
    ) -> Result<(), ConfigError> {
        check_compaction_lag(
            Some(self.min_compaction_lag_ms),
            Some(self.max_compaction_lag_ms),
        )?;
        if !self.remote_storage_enable {
            return Ok(());
        }
        if !remote_log_storage_system_enable {
            return Err(ConfigError::Invalid {
                name: Some("remote.storage.enable".to_string()),
                message: "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage.".to_string(),
            });
        }
        if self.cleanup_policy.compact {
            return Err(ConfigError::Invalid {
                name: Some("cleanup.policy".to_string()),
                message: "Remote log storage is unsupported for the compacted topics".to_string(),
            });
        }
        check_local_retention(
            "local.retention.bytes",
            self.local_retention_bytes,
            "retention.bytes",
            self.retention_bytes,
            self.retention_bytes > -1,
        )?;
        check_local_retention(
            "local.retention.ms",
            self.local_retention_ms,
            "retention.ms",
            self.retention_ms,
            self.retention_ms != -1,
        )
    }
}

fn check_local_retention(
    local_name: &str,
    local: i64,
    total_name: &str,
    total: i64,
    total_limited: bool,
) -> Result<(), ConfigError> {
    if total_limited && local != -2 {
        if local == -1 {
            return Err(ConfigError::invalid_value(
                local_name,
                local.to_string(),
                format!("Value must not be -1 as {total_name} value is set as {total}."),
            ));
        }
        if local > total {
            return Err(ConfigError::invalid_value(
                local_name,
                local.to_string(),
                format!("Value must not be more than {total_name} property value: {total}"),
            ));
        }
    }
    Ok(())
}

/// Topic-config-named values for a topic: broker defaults (after dynamic
/// overrides) with the parsed topic overrides on top.
pub(crate) fn resolve_values(
    topic_overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
    dynamic_cluster_default: &BTreeMap<String, String>,
    dynamic_per_broker: &BTreeMap<String, String>,
) -> Result<BTreeMap<&'static str, ConfigValue>, ConfigError> {
    let effective;
    let broker = if dynamic_cluster_default.is_empty()
        && dynamic_per_broker.is_empty()
        && broker.dynamic_cluster_default().is_empty()
        && broker.dynamic_per_broker().is_empty()
    {
        broker
    } else {
        effective = broker.with_dynamic(dynamic_cluster_default, dynamic_per_broker)?;
        &effective
    };
    let mut values = broker.topic_default_values().clone();
    for (name, raw) in topic_overrides {
        let def =
            topic_config_def(name).ok_or_else(|| ConfigError::UnknownTopicConfig(name.clone()))?;
        values.insert(def.name, def.parse(raw)?);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(extra: &[(&str, &str)]) -> BrokerConfig {
        let mut entries = vec![("node.id".to_string(), "1".to_string())];
        entries.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        BrokerConfig::from_entries(&entries).unwrap().0
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn cfgs(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    }

    #[test]
    fn table_has_kafka_37_topic_configs() {
        let expected = [
            "cleanup.policy",
            "compression.type",
            "delete.retention.ms",
            "file.delete.delay.ms",
            "flush.messages",
            "flush.ms",
            "follower.replication.throttled.replicas",
            "index.interval.bytes",
            "leader.replication.throttled.replicas",
            "local.retention.bytes",
            "local.retention.ms",
            "max.compaction.lag.ms",
            "max.message.bytes",
            "message.downconversion.enable",
            "message.format.version",
            "message.timestamp.after.max.ms",
            "message.timestamp.before.max.ms",
            "message.timestamp.difference.max.ms",
            "message.timestamp.type",
            "min.cleanable.dirty.ratio",
            "min.compaction.lag.ms",
            "min.insync.replicas",
            "preallocate",
            "remote.storage.enable",
            "retention.bytes",
            "retention.ms",
            "segment.bytes",
            "segment.index.bytes",
            "segment.jitter.ms",
            "segment.ms",
            "unclean.leader.election.enable",
        ];
        for name in expected {
            assert!(topic_config_def(name).is_some(), "{name}");
        }
        // Every default parses and every synonym is a broker config.
        for def in topic_config_defs() {
            def.parsed_default().unwrap();
            assert!(def.update_mode.is_none());
            for syn in def.synonyms {
                assert!(
                    crate::broker::broker_config_def(syn).is_some(),
                    "{} synonym {syn}",
                    def.name
                );
            }
        }
        assert_eq!(
            topic_config_synonyms("retention.ms"),
            [
                "log.retention.ms",
                "log.retention.minutes",
                "log.retention.hours"
            ]
        );
        assert_eq!(
            topic_config_synonyms("segment.ms"),
            ["log.roll.ms", "log.roll.hours"]
        );
        assert_eq!(
            topic_config_synonyms("max.message.bytes"),
            ["message.max.bytes"]
        );
        assert_eq!(
            topic_config_synonyms("flush.ms"),
            ["log.flush.interval.ms", "log.flush.scheduler.interval.ms"]
        );
        assert_eq!(
            topic_config_synonyms("cleanup.policy"),
            ["log.cleanup.policy"]
        );
        assert_eq!(
            topic_config_synonyms("delete.retention.ms"),
            ["log.cleaner.delete.retention.ms"]
        );
        assert!(topic_config_synonyms("remote.storage.enable").is_empty());
    }

    #[test]
    fn validate_rejects_unknown_and_bad_values() {
        assert!(validate_topic_configs(&cfgs(&[
            ("retention.ms", Some("-1")),
            ("cleanup.policy", Some("compact,delete")),
            ("compression.type", Some("zstd")),
            ("segment.bytes", Some("14")),
            ("min.cleanable.dirty.ratio", Some("0.1")),
            ("leader.replication.throttled.replicas", Some("0:1,1:2")),
            ("follower.replication.throttled.replicas", Some("*")),
            ("message.format.version", Some("2.8")),
            ("remote.log.msk.disable.policy", Some("DELETE")),
            ("retention.bytes", None),
        ]))
        .is_ok());
        assert_eq!(
            validate_topic_configs(&cfgs(&[("foo", Some("1"))]))
                .unwrap_err()
                .to_string(),
            "Unknown topic config name: foo"
        );
        assert_eq!(
            validate_topic_configs(&cfgs(&[("segment.bytes", Some("13"))]))
                .unwrap_err()
                .to_string(),
            "Invalid value 13 for configuration segment.bytes: Value must be at least 14"
        );
        assert_eq!(
            validate_topic_configs(&cfgs(&[("retention.ms", Some("-2"))]))
                .unwrap_err()
                .to_string(),
            "Invalid value -2 for configuration retention.ms: Value must be at least -1"
        );
        assert_eq!(
            validate_topic_configs(&cfgs(&[("min.cleanable.dirty.ratio", Some("1.5"))]))
                .unwrap_err()
                .to_string(),
            "Invalid value 1.5 for configuration min.cleanable.dirty.ratio: Value must be no more than 1"
        );
        assert_eq!(
            validate_topic_configs(&cfgs(&[("compression.type", Some("brotli"))]))
                .unwrap_err()
                .to_string(),
            "Invalid value brotli for configuration compression.type: String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"
        );
        assert_eq!(
            validate_topic_configs(&cfgs(&[("cleanup.policy", Some("delete,purge"))]))
                .unwrap_err()
                .to_string(),
            "Invalid value purge for configuration cleanup.policy: String must be one of: compact, delete"
        );
        assert_eq!(
            validate_topic_configs(&cfgs(&[("message.timestamp.type", Some("createtime"))]))
                .unwrap_err()
                .to_string(),
            "Invalid value createtime for configuration message.timestamp.type: String must be one of: CreateTime, LogAppendTime"
        );
        assert_eq!(
            validate_topic_configs(&cfgs(&[("leader.replication.throttled.replicas", Some("0-1"))]))
                .unwrap_err()
                .to_string(),
            "Invalid value [0-1] for configuration leader.replication.throttled.replicas: leader.replication.throttled.replicas must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],..."
        );
        assert!(validate_topic_configs(&cfgs(&[("message.format.version", Some("9.9"))])).is_err());
        assert_eq!(
            validate_topic_configs(&cfgs(&[
                ("min.compaction.lag.ms", Some("10")),
                ("max.compaction.lag.ms", Some("5"))
            ]))
            .unwrap_err()
            .to_string(),
            "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)"
        );
        let err = validate_topic_configs(&cfgs(&[("flush.messages", Some("0"))])).unwrap_err();
        assert_eq!(err.property(), Some("flush.messages"));
    }

    #[test]
    fn resolve_uses_msk_and_kafka_defaults() {
        let b = broker(&[]);
        let t = TopicConfig::resolve(&map(&[]), &b, &map(&[]), &map(&[])).unwrap();
        assert_eq!(t.retention_ms, 604_800_000);
        assert_eq!(t.retention_ms_limit(), Some(604_800_000));
        assert_eq!(t.retention_bytes, -1);
        assert_eq!(t.retention_bytes_limit(), None);
        assert_eq!(t.segment_ms, 604_800_000);
        assert_eq!(t.segment_bytes, 1_073_741_824);
        assert_eq!(t.max_message_bytes, 1_048_588);
        // MSK defaults.
        assert_eq!(t.min_insync_replicas, 2);
        assert!(t.unclean_leader_election_enable);
        assert_eq!(t.local_retention_ms, -2);
        assert_eq!(t.effective_local_retention_ms(), 604_800_000);
        assert_eq!(
            t.cleanup_policy,
            CleanupPolicy {
                delete: true,
                compact: false
            }
        );
        assert_eq!(t.compression_type, CompressionType::Producer);
        assert_eq!(t.flush_ms, i64::MAX);
        assert_eq!(t.message_timestamp_type, TimestampType::CreateTime);
        assert_eq!(t.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(
            t.follower_replication_throttled_replicas,
            ThrottledReplicas::None
        );
        assert_eq!(&t, b.log_defaults());
    }

    #[test]
    fn resolve_overrides_and_broker_synonyms() {
        let b = broker(&[
            ("log.retention.hours", "1"),
            ("log.roll.hours", "2"),
            ("log.cleanup.policy", "compact"),
            ("compression.type", "lz4"),
            ("log.flush.scheduler.interval.ms", "5000"),
        ]);
        let t = TopicConfig::resolve(&map(&[]), &b, &map(&[]), &map(&[])).unwrap();
        assert_eq!(t.retention_ms, 3_600_000);
        assert_eq!(t.segment_ms, 7_200_000);
        assert_eq!(t.flush_ms, 5000);
        assert!(t.cleanup_policy.compact && !t.cleanup_policy.delete);
        assert_eq!(t.compression_type, CompressionType::Lz4);

        let overrides = map(&[
            ("retention.ms", "-1"),
            ("cleanup.policy", "delete,compact"),
            ("segment.bytes", "1048576"),
            ("leader.replication.throttled.replicas", "0:1, 1:2"),
            ("follower.replication.throttled.replicas", "*"),
        ]);
        let t = TopicConfig::resolve(&overrides, &b, &map(&[]), &map(&[])).unwrap();
        assert_eq!(t.retention_ms, -1);
        assert_eq!(t.retention_ms_limit(), None);
        assert!(t.cleanup_policy.compact && t.cleanup_policy.delete);
        assert_eq!(t.segment_bytes, 1_048_576);
        assert_eq!(
            t.leader_replication_throttled_replicas,
            ThrottledReplicas::Replicas(vec![(0, 1), (1, 2)])
        );
        assert_eq!(
            t.follower_replication_throttled_replicas,
            ThrottledReplicas::All
        );
        // Still the broker's value where not overridden.
        assert_eq!(t.segment_ms, 7_200_000);

        assert!(matches!(
            TopicConfig::resolve(&map(&[("nope", "1")]), &b, &map(&[]), &map(&[])),
            Err(ConfigError::UnknownTopicConfig(_))
        ));
    }

    #[test]
    fn resolve_applies_dynamic_layers() {
        let b = broker(&[("log.retention.ms", "1000")]);
        // Cluster default sets hours: removes the static .ms synonym.
        let t = TopicConfig::resolve(
            &map(&[]),
            &b,
            &map(&[("log.retention.hours", "2"), ("log.segment.bytes", "2000")]),
            &map(&[]),
        )
        .unwrap();
        assert_eq!(t.retention_ms, 7_200_000);
        assert_eq!(t.segment_bytes, 2000);
        // Per-broker beats cluster default.
        let t = TopicConfig::resolve(
            &map(&[]),
            &b,
            &map(&[("log.retention.hours", "2")]),
            &map(&[("log.retention.minutes", "3")]),
        )
        .unwrap();
        assert_eq!(t.retention_ms, 180_000);
        // Topic override beats all.
        let t = TopicConfig::resolve(
            &map(&[("retention.ms", "5")]),
            &b,
            &map(&[("log.retention.hours", "2")]),
            &map(&[("log.retention.minutes", "3")]),
        )
        .unwrap();
        assert_eq!(t.retention_ms, 5);
    }

    #[test]
    fn timestamp_difference_is_fallback_for_before_after() {
        let b = broker(&[]);
        let t = TopicConfig::resolve(
            &map(&[("message.timestamp.difference.max.ms", "1000")]),
            &b,
            &map(&[]),
            &map(&[]),
        )
        .unwrap();
        assert_eq!(t.message_timestamp_before_max_ms, 1000);
        assert_eq!(t.message_timestamp_after_max_ms, 1000);
        let t = TopicConfig::resolve(
            &map(&[
                ("message.timestamp.difference.max.ms", "1000"),
                ("message.timestamp.after.max.ms", "50"),
            ]),
            &b,
            &map(&[]),
            &map(&[]),
        )
        .unwrap();
        assert_eq!(t.message_timestamp_before_max_ms, 1000);
        assert_eq!(t.message_timestamp_after_max_ms, 50);
        // Broker-level difference also feeds the fallback.
        let b = broker(&[("log.message.timestamp.difference.max.ms", "77")]);
        assert_eq!(b.log_defaults().message_timestamp_before_max_ms, 77);
    }

    #[test]
    fn remote_storage_checks() {
        let b = broker(&[]);
        let resolve = |pairs: &[(&str, &str)]| {
            TopicConfig::resolve(&map(pairs), &b, &map(&[]), &map(&[])).unwrap()
        };
        let t = resolve(&[("remote.storage.enable", "true")]);
        assert_eq!(
            t.check_remote_storage(false).unwrap_err().to_string(),
            "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage."
        );
        assert!(t.check_remote_storage(true).is_ok());
        let t = resolve(&[
            ("remote.storage.enable", "true"),
            ("cleanup.policy", "compact"),
        ]);
        assert!(t.check_remote_storage(true).is_err());
        let t = resolve(&[
            ("remote.storage.enable", "true"),
            ("retention.ms", "1000"),
            ("local.retention.ms", "2000"),
        ]);
        assert_eq!(
            t.check_remote_storage(true).unwrap_err().to_string(),
            "Invalid value 2000 for configuration local.retention.ms: Value must not be more than retention.ms property value: 1000"
        );
        let t = resolve(&[
            ("remote.storage.enable", "true"),
            ("local.retention.bytes", "-1"),
            ("retention.bytes", "10"),
        ]);
        assert_eq!(
            t.check_remote_storage(true).unwrap_err().to_string(),
            "Invalid value -1 for configuration local.retention.bytes: Value must not be -1 as retention.bytes value is set as 10."
        );
    }
}
