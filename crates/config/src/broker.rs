//! Kafka broker configs: the table Millrace understands (Kafka 3.7 names,
//! types, validators and dynamic update modes, with Amazon MSK's default
//! configuration taking precedence over Kafka's defaults), and
//! [`BrokerConfig`], the typed start-up configuration with dynamic-override
//! support.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::definition::{ConfigDef, ConfigType, ConfigValue, Importance, UpdateMode, Validator};
use crate::error::ConfigError;
use crate::properties::parse_properties;
use crate::topic::{
    check_metadata_version, topic_config_defs, TopicConfig, CLEANUP_POLICIES, COMPRESSION_TYPES,
    TIMESTAMP_TYPES,
};

/// Kafka's default `listener.security.protocol.map`.
pub const DEFAULT_LISTENER_SECURITY_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

/// Kafka's security protocols (`org.apache.kafka.common.security.auth.SecurityProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecurityProtocol {
    /// Unauthenticated, unencrypted.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL over plaintext.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`).
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Kafka's wire id (PLAINTEXT=0, SSL=1, SASL_PLAINTEXT=2, SASL_SSL=3).
    pub fn id(self) -> i16 {
        match self {
            SecurityProtocol::Plaintext => 0,
            SecurityProtocol::Ssl => 1,
            SecurityProtocol::SaslPlaintext => 2,
            SecurityProtocol::SaslSsl => 3,
        }
    }

    /// `SecurityProtocol.forName`: case-insensitive.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }
}

/// One parsed `listeners`/`advertised.listeners` entry (Kafka's `EndPoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Listener name, upper-cased as Kafka normalises it (`PLAINTEXT`).
    pub name: String,
    /// Host; `None` when empty in the config, meaning "all interfaces" for
    /// `listeners` and "this machine's canonical host name" for advertised
    /// listeners. IPv6 addresses are stored without brackets.
    pub host: Option<String>,
    /// Port (0 = ephemeral).
    pub port: u16,
    /// Protocol from `listener.security.protocol.map`.
    pub security_protocol: SecurityProtocol,
}

impl Listener {
    /// Kafka's `EndPoint.connectionString`: `NAME://host:port`, IPv6 in
    /// brackets, `NAME://:port` without a host.
    pub fn connection_string(&self) -> String {
        match &self.host {
            None => format!("{}://:{}", self.name, self.port),
            Some(h) if h.contains(':') => format!("{}://[{}]:{}", self.name, h, self.port),
            Some(h) => format!("{}://{}:{}", self.name, h, self.port),
        }
    }

    /// Parses one endpoint like Kafka's `EndPoint.createEndPoint`
    /// (`^(.*)://\[?([0-9a-zA-Z\-%._:]*)\]?:(-?[0-9]+)$`).
    pub fn parse(
        s: &str,
        protocol_map: &BTreeMap<String, SecurityProtocol>,
    ) -> Result<Listener, String> {
        let unparsable = || format!("Unable to parse {s} to a broker endpoint");
        let (name, rest) = s.rsplit_once("://").ok_or_else(unparsable)?;
        let (host_part, port) = rest.rsplit_once(':').ok_or_else(unparsable)?;
        let port_ok = {
            let digits = port.strip_prefix('-').unwrap_or(port);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        };
        if !port_ok {
            return Err(unparsable());
        }
        let host = host_part.strip_prefix('[').unwrap_or(host_part);
        let host = host.strip_suffix(']').unwrap_or(host);
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-%._:".contains(&b))
        {
            return Err(unparsable());
        }
        let port: i64 = port.parse().map_err(|_| unparsable())?;
        let port = u16::try_from(port).map_err(|_| unparsable())?;
        let name = name.to_ascii_uppercase();
        let security_protocol = *protocol_map
            .get(&name)
            .ok_or_else(|| format!("No security protocol defined for listener {name}"))?;
        Ok(Listener {
            name,
            host: (!host.is_empty()).then(|| host.to_string()),
            port,
            security_protocol,
        })
    }
}

/// A KRaft role from `process.roles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProcessRole {
    /// Serves clients and hosts partitions.
    Broker,
    /// Member of the metadata quorum.
    Controller,
}

/// One `controller.quorum.voters` entry: `id@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    /// Node id of the voter.
    pub id: i32,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

fn parse_voter(entry: &str) -> Result<QuorumVoter, String> {
    let (id, addr) = entry
        .split_once('@')
        .filter(|(_, a)| !a.contains('@'))
        .ok_or_else(|| format!("Invalid format: {entry}"))?;
    let id: i32 = id
        .trim()
        .parse()
        .map_err(|_| format!("Failed to parse node id {id}"))?;
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("Failed to parse host name from entry {entry}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("Failed to parse host name from entry {entry}"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("Failed to parse port from entry {entry}"))?;
    Ok(QuorumVoter {
        id,
        host: host.to_string(),
        port,
    })
}

fn check_quorum_voters(_name: &str, value: &ConfigValue) -> Result<(), String> {
    value
        .as_list()
        .unwrap_or_default()
        .iter()
        .try_for_each(|e| parse_voter(e).map(|_| ()))
}

fn check_protocol_map(_name: &str, value: &ConfigValue) -> Result<(), String> {
    parse_protocol_map(value.as_str().unwrap_or_default()).map(|_| ())
}

/// `CoreUtils.parseCsvMap` + `getSecurityProtocol`.
fn parse_protocol_map(s: &str) -> Result<BTreeMap<String, SecurityProtocol>, String> {
    let mut map = BTreeMap::new();
    for entry in split_csv(s) {
        let (name, proto) = entry
            .rsplit_once(':')
            .ok_or_else(|| format!("Error parsing configuration property 'listener.security.protocol.map': '{entry}' is not of the form LISTENER_NAME:SECURITY_PROTOCOL"))?;
        let protocol = SecurityProtocol::from_name(proto.trim()).ok_or_else(|| {
            format!(
                "Invalid security protocol `{}` defined in listener.security.protocol.map",
                proto.trim()
            )
        })?;
        map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    Ok(map)
}

/// `CoreUtils.parseCsvList`: split on commas, trim, drop empty items.
fn split_csv(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// Security configs Kafka only lets you update dynamically with a listener
/// prefix (`SslConfigs.RECONFIGURABLE_CONFIGS`).
const LISTENER_PREFIX_ONLY: &[&str] = &[
    "ssl.key.password",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.keystore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.type",
];

fn build_broker_defs() -> Vec<ConfigDef> {
    use ConfigType::*;
    use Importance::*;
    use UpdateMode::{ClusterWide as CW, PerBroker as PB, ReadOnly as RO};
    let long_max = "9223372036854775807";
    let int_max = "2147483647";
    let d = ConfigDef::new;
    vec![
        // ---- Node identity and KRaft ----
        d("node.id", Int, High, "Node id of this server in the cluster; required (broker.id is its synonym).")
            .default_value_of("-1").mode(RO),
        d("broker.id", Int, High, "Broker id of this server; must equal node.id when both are set.")
            .default_value_of("-1").mode(RO),
        d("process.roles", List, High, "KRaft roles of this process: broker, controller, or both; empty means ZooKeeper mode.")
            .default_value_of("").validate(Validator::list_of(&["broker", "controller"])).mode(RO),
        d("controller.quorum.voters", List, High, "KRaft voters as id@host:port entries.")
            .default_value_of("")
            .validate(Validator::Custom { description: "list of id@host:port", check: check_quorum_voters })
            .mode(RO),
        d("controller.listener.names", String, High, "Comma-separated listener names used by the KRaft controller.").mode(RO),
        d("metadata.log.dir", String, High, "Directory of the KRaft metadata log; defaults to the first log directory.").mode(RO),
        d("metadata.log.max.record.bytes.between.snapshots", Long, High, "A controller writes a metadata snapshot (and purges the log it covers) after this many bytes of new metadata records.")
            .default_value_of("20971520").validate(Validator::at_least(1)).mode(RO),
        d("metadata.log.max.snapshot.interval.ms", Long, High, "A controller writes a metadata snapshot this long after the last one if new records arrived since; 0 disables the time trigger.")
            .default_value_of("3600000").validate(Validator::at_least(0)).mode(RO),
        d("broker.heartbeat.interval.ms", Int, Medium, "How often a broker heartbeats to the active controller.")
            .default_value_of("2000").validate(Validator::at_least(1)).mode(RO),
        d("broker.session.timeout.ms", Int, Medium, "A broker that has not heartbeated for this long is fenced: its leaderships move to other in-sync replicas.")
            .default_value_of("9000").validate(Validator::at_least(1)).mode(RO),
        d("controller.quorum.fetch.timeout.ms", Int, High, "A quorum voter that hears nothing from the leader for this long starts an election.")
            .default_value_of("2000").validate(Validator::at_least(1)).mode(RO),
        d("controller.quorum.election.backoff.max.ms", Int, High, "Upper bound of the random delay before a voter starts an election, so two voters rarely campaign at once.")
            .default_value_of("1000").validate(Validator::at_least(0)).mode(RO),
        d("broker.rack", String, Medium, "Rack (MSK: Availability Zone) of the broker, used for rack-aware placement.").mode(RO),

        // ---- Listeners ----
        // `listeners` is read-only as on Amazon MSK ("you can set
        // advertised.listeners, but not listeners"); Kafka itself allows
        // per-broker updates.
        d("listeners", String, High, "Comma-separated URIs the broker listens on (NAME://host:port); empty host binds all interfaces.")
            .default_value_of("PLAINTEXT://:9092").mode(RO),
        d("advertised.listeners", String, High, "Listeners published to clients; defaults to listeners minus controller listeners.").mode(PB),
        d("listener.security.protocol.map", String, Low, "Map of listener name to security protocol (NAME:PROTOCOL,...).")
            .default_value_of(DEFAULT_LISTENER_SECURITY_PROTOCOL_MAP)
            .validate(Validator::Custom { description: "NAME:PROTOCOL,...", check: check_protocol_map })
            .mode(PB),
        d("inter.broker.listener.name", String, Medium, "Listener used between brokers; defaults to security.inter.broker.protocol's name.").mode(RO),
        d("security.inter.broker.protocol", String, Medium, "Security protocol between brokers; exclusive with inter.broker.listener.name.")
            .default_value_of("PLAINTEXT")
            .validate(Validator::one_of(&["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]))
            .mode(RO),

        // ---- Socket server ----
        d("socket.send.buffer.bytes", Int, High, "SO_SNDBUF of server sockets; -1 uses the OS default.")
            .default_value_of("102400").mode(RO),
        d("socket.receive.buffer.bytes", Int, High, "SO_RCVBUF of server sockets; -1 uses the OS default.")
            .default_value_of("102400").mode(RO),
        d("socket.request.max.bytes", Int, High, "Maximum number of bytes in a socket request.")
            .default_value_of("104857600").validate(Validator::at_least(1)).mode(RO),
        d("connections.max.idle.ms", Long, Medium, "Idle connections are closed after this many milliseconds.")
            .default_value_of("600000").mode(RO),
        d("max.connections", Int, Medium, "Maximum connections allowed on the broker at any time.")
            .default_value_of(int_max).validate(Validator::at_least(0)).mode(CW),
        d("max.connections.per.ip", Int, Medium, "Maximum connections allowed from each IP address.")
            .default_value_of(int_max).validate(Validator::at_least(0)).mode(CW),
        d("max.connections.per.ip.overrides", String, Medium, "Per-IP or hostname overrides of max.connections.per.ip (host:count,...).")
            .default_value_of("").mode(CW),
        d("max.connection.creation.rate", Int, Medium, "Maximum connection creation rate per second.")
            .default_value_of(int_max).validate(Validator::at_least(0)).mode(CW),
        d("queued.max.requests", Int, High, "Requests queued for the I/O threads before network threads stop reading.")
            .default_value_of("500").validate(Validator::at_least(1)).mode(RO),
        d("queued.max.request.bytes", Long, Medium, "Bytes of queued requests before no more are read; -1 means no limit.")
            .default_value_of("-1").mode(RO),
        d("request.timeout.ms", Int, High, "How long a client-side request may wait for a response.")
            .default_value_of("30000").mode(RO),

        // ---- Threads ----
        d("num.network.threads", Int, High, "Threads that receive requests and send responses.")
            .default_value_of("3").validate(Validator::at_least(1)).mode(CW),
        d("num.io.threads", Int, High, "Threads that process requests, including disk I/O.")
            .default_value_of("8").validate(Validator::at_least(1)).mode(CW),
        d("background.threads", Int, High, "Threads for background processing tasks.")
            .default_value_of("10").validate(Validator::at_least(1)).mode(CW),
        d("num.recovery.threads.per.data.dir", Int, High, "Threads per data directory for log recovery at startup and flushing at shutdown.")
            .default_value_of("1").validate(Validator::at_least(1)).mode(CW),
        d("num.replica.fetchers", Int, High, "Fetcher threads used to replicate records from each source broker.")
            .default_value_of("1").mode(CW),

        // ---- Topic defaults and log ----
        d("num.partitions", Int, Medium, "Default number of partitions per topic.")
            .default_value_of("1").validate(Validator::at_least(1)).mode(RO),
        d("default.replication.factor", Int, Medium, "Default replication factor of automatically created topics.")
            .default_value_of("1").mode(RO),
        d("min.insync.replicas", Int, High, "Minimum in-sync replicas that must acknowledge an acks=all write.")
            .default_value_of("1").validate(Validator::at_least(1)).mode(CW),
        d("auto.create.topics.enable", Boolean, High, "Whether topics are created automatically on first use.")
            .default_value_of("true").mode(RO),
        d("delete.topic.enable", Boolean, High, "Whether topics can be deleted.")
            .default_value_of("true").mode(RO),
        d("message.max.bytes", Int, High, "Largest record batch size allowed (topic override: max.message.bytes).")
            .default_value_of("1048588").validate(Validator::at_least(0)).mode(CW),
        d("log.dirs", String, High, "Comma-separated directories for log data; overrides log.dir.").mode(RO),
        d("log.dir", String, High, "Directory for log data, used when log.dirs is not set.")
            .default_value_of("/tmp/kafka-logs").mode(RO),
        // Millrace's own: the disk size an MSK broker has (EBS volumeSize),
        // enforced by the broker itself. Per-broker dynamic, like a volume
        // that grows while the broker runs.
        d("millrace.log.dirs.max.bytes", Long, High, "Bytes of log segments all log dirs of this broker may hold; appends past it fail with KAFKA_STORAGE_ERROR as on a full disk. -1 means no limit.")
            .default_value_of("-1").validate(Validator::at_least(-1)).mode(PB),
        d("log.segment.bytes", Int, High, "Maximum size of a single log segment file.")
            .default_value_of("1073741824").validate(Validator::at_least(14)).mode(CW),
        d("log.roll.ms", Long, High, "Maximum time before a new segment is rolled; overrides log.roll.hours.")
            .mode(CW).with_synonyms(&["log.roll.ms", "log.roll.hours"]),
        d("log.roll.hours", Int, High, "Maximum time in hours before a new segment is rolled.")
            .default_value_of("168").validate(Validator::at_least(1)).mode(CW)
            .with_synonyms(&["log.roll.ms", "log.roll.hours"]),
        d("log.roll.jitter.ms", Long, High, "Maximum jitter subtracted from the roll time; overrides log.roll.jitter.hours.")
            .mode(CW).with_synonyms(&["log.roll.jitter.ms", "log.roll.jitter.hours"]),
        d("log.roll.jitter.hours", Int, High, "Maximum jitter in hours subtracted from the roll time.")
            .default_value_of("0").validate(Validator::at_least(0)).mode(CW)
            .with_synonyms(&["log.roll.jitter.ms", "log.roll.jitter.hours"]),
        d("log.retention.ms", Long, High, "How long logs are kept; overrides minutes and hours; -1 means no limit.")
            .mode(CW).with_synonyms(&["log.retention.ms", "log.retention.minutes", "log.retention.hours"]),
        d("log.retention.minutes", Int, High, "How long logs are kept in minutes; overrides log.retention.hours.")
            .mode(CW).with_synonyms(&["log.retention.ms", "log.retention.minutes", "log.retention.hours"]),
        d("log.retention.hours", Int, High, "How long logs are kept in hours.")
            .default_value_of("168").mode(CW)
            .with_synonyms(&["log.retention.ms", "log.retention.minutes", "log.retention.hours"]),
        d("log.retention.bytes", Long, High, "Maximum size of a partition's log before old segments are deleted; -1 means no limit.")
            .default_value_of("-1").mode(CW),
        d("log.retention.check.interval.ms", Long, Medium, "How often the log cleaner checks for deletable segments.")
            .default_value_of("300000").validate(Validator::at_least(1)).mode(RO),
        d("log.cleanup.policy", List, Medium, "Default cleanup policy for segments beyond the retention window: delete, compact.")
            .default_value_of("delete").validate(Validator::list_of(CLEANUP_POLICIES)).mode(CW),
        d("log.cleaner.enable", Boolean, Medium, "Whether the log cleaner (compaction) runs.")
            .default_value_of("true").mode(RO),
        d("log.cleaner.threads", Int, Medium, "Background threads for log cleaning.")
            .default_value_of("1").validate(Validator::at_least(0)).mode(CW),
        d("log.cleaner.io.max.bytes.per.second", Double, Medium, "I/O throttle of the log cleaner, read plus write.")
            .default_value_of("1.7976931348623157E308").mode(CW),
        d("log.cleaner.dedupe.buffer.size", Long, Medium, "Memory used for log deduplication across all cleaner threads.")
            .default_value_of("134217728").mode(CW),
        d("log.cleaner.io.buffer.size", Int, Medium, "I/O buffer memory across all cleaner threads.")
            .default_value_of("524288").validate(Validator::at_least(0)).mode(CW),
        d("log.cleaner.io.buffer.load.factor", Double, Medium, "Load factor of the cleaner's dedupe buffer.")
            .default_value_of("0.9").mode(CW),
        d("log.cleaner.backoff.ms", Long, Medium, "Sleep time of the cleaner when there is nothing to clean.")
            .default_value_of("15000").validate(Validator::at_least(0)).mode(CW),
        d("log.cleaner.min.cleanable.ratio", Double, Medium, "Minimum dirty ratio for a log to be eligible for cleaning.")
            .default_value_of("0.5").validate(Validator::between(0, 1)).mode(CW),
        d("log.cleaner.delete.retention.ms", Long, Medium, "How long delete tombstones are retained in compacted logs.")
            .default_value_of("86400000").validate(Validator::at_least(0)).mode(CW),
        d("log.cleaner.min.compaction.lag.ms", Long, Medium, "Minimum time a message remains uncompacted.")
            .default_value_of("0").validate(Validator::at_least(0)).mode(CW),
        d("log.cleaner.max.compaction.lag.ms", Long, Medium, "Maximum time a message remains ineligible for compaction.")
            .default_value_of(long_max).validate(Validator::at_least(1)).mode(CW),
        d("log.index.size.max.bytes", Int, Medium, "Maximum size of an offset index in bytes.")
            .default_value_of("10485760").validate(Validator::at_least(4)).mode(CW),
        d("log.index.interval.bytes", Int, Medium, "Bytes between entries added to the offset index.")
            .default_value_of("4096").validate(Validator::at_least(0)).mode(CW),
        d("log.flush.interval.messages", Long, High, "Messages accumulated on a partition before they are flushed.")
            .default_value_of(long_max).validate(Validator::at_least(1)).mode(CW),
        d("log.flush.interval.ms", Long, High, "Maximum time a message stays in memory before a flush; falls back to log.flush.scheduler.interval.ms.")
            .mode(CW).with_synonyms(&["log.flush.interval.ms", "log.flush.scheduler.interval.ms"]),
        d("log.flush.scheduler.interval.ms", Long, High, "How often the log flusher checks whether a log needs flushing.")
            .default_value_of(long_max).mode(RO),
        d("log.flush.offset.checkpoint.interval.ms", Int, High, "How often the last-flush checkpoint (recovery point) is written.")
            .default_value_of("60000").validate(Validator::at_least(0)).mode(RO),
        d("log.flush.start.offset.checkpoint.interval.ms", Int, High, "How often the log start offset checkpoint is written.")
            .default_value_of("60000").validate(Validator::at_least(0)).mode(RO),
        d("log.segment.delete.delay.ms", Long, High, "Time to wait before deleting a segment file from the filesystem.")
            .default_value_of("60000").validate(Validator::at_least(0)).mode(CW),
        d("log.preallocate", Boolean, Medium, "Whether to preallocate the file when creating a new segment.")
            .default_value_of("false").mode(CW),
        d("log.message.format.version", String, Medium, "Deprecated: message format version appended to logs.")
            .default_value_of("3.0-IV1")
            .validate(Validator::Custom { description: "[0.8.0, ..., 3.7-IV4]", check: check_metadata_version })
            .mode(CW),
        d("log.message.timestamp.type", String, Medium, "Whether record timestamps are CreateTime or LogAppendTime.")
            .default_value_of("CreateTime").validate(Validator::one_of(TIMESTAMP_TYPES)).mode(CW),
        d("log.message.timestamp.difference.max.ms", Long, Medium, "Deprecated: max difference between a CreateTime timestamp and the broker clock.")
            .default_value_of(long_max).validate(Validator::at_least(0)).mode(CW),
        d("log.message.timestamp.before.max.ms", Long, Medium, "Max amount a CreateTime timestamp may be behind the broker clock.")
            .default_value_of(long_max).validate(Validator::at_least(0)).mode(CW),
        d("log.message.timestamp.after.max.ms", Long, Medium, "Max amount a CreateTime timestamp may be ahead of the broker clock.")
            .default_value_of(long_max).validate(Validator::at_least(0)).mode(CW),
        d("log.message.downconversion.enable", Boolean, Low, "Whether records are down-converted for old consumers.")
            .default_value_of("true").mode(CW),
        d("compression.type", String, High, "Final compression type of topics; producer keeps the producer's codec.")
            .default_value_of("producer").validate(Validator::one_of(COMPRESSION_TYPES)).mode(CW),
        d("create.topic.policy.class.name", Class, Low, "CreateTopicPolicy class used to validate topic creation (not loaded by Millrace).").mode(RO),
        d("alter.config.policy.class.name", Class, Low, "AlterConfigPolicy class used to validate config changes (not loaded by Millrace).").mode(RO),

        // ---- Tiered storage ----
        d("log.local.retention.ms", Long, Medium, "Default local-tier retention time; -2 means use log.retention.ms.")
            .default_value_of("-2").validate(Validator::at_least(-2)).mode(CW),
        d("log.local.retention.bytes", Long, Medium, "Default local-tier retention size; -2 means use log.retention.bytes.")
            .default_value_of("-2").validate(Validator::at_least(-2)).mode(CW),
        d("local.retention.ms", Long, Medium, "Amazon MSK alias of log.local.retention.ms (listed in MSK's default configuration).")
            .default_value_of("-2").validate(Validator::at_least(-2)).mode(RO),
        d("local.retention.bytes", Long, Medium, "Amazon MSK alias of log.local.retention.bytes (listed in MSK's default configuration).")
            .default_value_of("-2").validate(Validator::at_least(-2)).mode(RO),
        d("remote.storage.enable", Boolean, Medium, "Amazon MSK: whether the cluster is tiered-storage enabled; topics still opt in per topic.")
            .default_value_of("false").mode(RO),
        d("remote.log.msk.disable.policy", String, Medium, "Amazon MSK: policy applied when tiered storage is disabled on a topic (Delete).")
            .validate(Validator::one_of_ignore_case(&["Delete"])).mode(RO),
        d("remote.log.storage.system.enable", Boolean, Medium, "Whether tiered storage functionality is enabled in the broker.")
            .default_value_of("false").mode(RO),
        d("remote.log.storage.manager.class.name", String, Medium, "RemoteStorageManager implementation (not loaded by Millrace).").mode(RO),
        d("remote.log.metadata.manager.class.name", String, Medium, "RemoteLogMetadataManager implementation (not loaded by Millrace).")
            .default_value_of("org.apache.kafka.server.log.remote.metadata.storage.TopicBasedRemoteLogMetadataManager").mode(RO),
        d("remote.log.manager.thread.pool.size", Int, Medium, "Threads that copy segments to and expire them from remote storage.")
            .default_value_of("10").validate(Validator::at_least(1)).mode(RO),
        d("remote.log.manager.task.interval.ms", Long, Low, "Interval of the remote log manager's copy and expiry tasks.")
            .default_value_of("30000").validate(Validator::at_least(1)).mode(RO),
        d("remote.log.reader.threads", Int, Medium, "Threads that read from remote storage to serve fetches.")
            .default_value_of("10").validate(Validator::at_least(1)).mode(RO),
        d("remote.log.reader.max.pending.tasks", Int, Medium, "Maximum queued remote read tasks.")
            .default_value_of("100").validate(Validator::at_least(1)).mode(RO),
        d("remote.log.index.file.cache.total.size.bytes", Long, Low, "Total size of the cache of remote index files.")
            .default_value_of("1073741824").validate(Validator::at_least(1)).mode(CW),

        // ---- Replication ----
        d("replica.lag.time.max.ms", Long, High, "A follower that has not caught up for this long is removed from the ISR.")
            .default_value_of("30000").mode(RO),
        d("replica.socket.timeout.ms", Int, High, "Socket timeout of replica fetch requests.")
            .default_value_of("30000").mode(RO),
        d("replica.socket.receive.buffer.bytes", Int, High, "Socket receive buffer of replica fetch connections.")
            .default_value_of("65536").mode(RO),
        d("replica.fetch.max.bytes", Int, Medium, "Bytes a follower tries to fetch per partition (not an absolute maximum).")
            .default_value_of("1048576").validate(Validator::at_least(0)).mode(RO),
        d("replica.fetch.wait.max.ms", Int, High, "Maximum wait of a follower fetch request.")
            .default_value_of("500").mode(RO),
        d("replica.fetch.min.bytes", Int, High, "Minimum bytes expected in a follower fetch response.")
            .default_value_of("1").mode(RO),
        d("replica.fetch.backoff.ms", Int, Medium, "Sleep time after a follower fetch error.")
            .default_value_of("1000").validate(Validator::at_least(0)).mode(RO),
        d("replica.fetch.response.max.bytes", Int, Medium, "Maximum bytes expected for a whole follower fetch response.")
            .default_value_of("10485760").validate(Validator::at_least(0)).mode(RO),
        d("replica.high.watermark.checkpoint.interval.ms", Long, High, "How often the high watermark is saved to disk.")
            .default_value_of("5000").mode(RO),
        d("replica.selector.class", String, Medium, "ReplicaSelector used to choose a preferred read replica (e.g. RackAwareReplicaSelector).").mode(RO),
        d("unclean.leader.election.enable", Boolean, High, "Whether out-of-sync replicas may become leader as a last resort.")
            .default_value_of("false").mode(CW),
        d("auto.leader.rebalance.enable", Boolean, High, "Whether leadership is moved back to preferred replicas automatically.")
            .default_value_of("true").mode(RO),
        d("leader.imbalance.per.broker.percentage", Int, High, "Leader imbalance percentage per broker that triggers a rebalance.")
            .default_value_of("10").mode(RO),
        d("leader.imbalance.check.interval.seconds", Long, High, "How often the controller checks leader imbalance.")
            .default_value_of("300").validate(Validator::at_least(1)).mode(RO),
        d("controlled.shutdown.enable", Boolean, Medium, "Whether leadership is moved away before a broker shuts down.")
            .default_value_of("true").mode(RO),
        d("leader.replication.throttled.rate", Long, Medium, "Dynamic-only: leader-side replication throttle in bytes/s for throttled replicas.")
            .default_value_of(long_max).validate(Validator::at_least(0)).mode(CW),
        d("follower.replication.throttled.rate", Long, Medium, "Dynamic-only: follower-side replication throttle in bytes/s for throttled replicas.")
            .default_value_of(long_max).validate(Validator::at_least(0)).mode(CW),
        d("replica.alter.log.dirs.io.max.bytes.per.second", Long, Medium, "Dynamic-only: throttle in bytes/s for moving replicas between log dirs.")
            .default_value_of(long_max).validate(Validator::at_least(0)).mode(CW),

        // ---- Fetch sessions ----
        d("max.incremental.fetch.session.cache.slots", Int, Medium, "Maximum number of incremental fetch sessions kept.")
            .default_value_of("1000").validate(Validator::at_least(0)).mode(RO),
        d("fetch.max.bytes", Int, Medium, "Maximum bytes returned for a consumer fetch request.")
            .default_value_of("57671680").validate(Validator::at_least(1024)).mode(RO),

        // ---- Group coordinator ----
        d("group.initial.rebalance.delay.ms", Int, Medium, "Time the coordinator waits for more members before the first rebalance.")
            .default_value_of("3000").mode(RO),
        d("group.min.session.timeout.ms", Int, Medium, "Minimum session timeout allowed for consumers.")
            .default_value_of("6000").mode(RO),
        d("group.max.session.timeout.ms", Int, Medium, "Maximum session timeout allowed for consumers.")
            .default_value_of("1800000").mode(RO),
        d("group.max.size", Int, Medium, "Maximum number of members in a consumer group.")
            .default_value_of(int_max).validate(Validator::at_least(1)).mode(RO),
        d("group.consumer.session.timeout.ms", Int, Medium, "Session timeout of KIP-848 consumer group members.")
            .default_value_of("45000").validate(Validator::at_least(1)).mode(RO),
        d("group.consumer.heartbeat.interval.ms", Int, Medium, "Heartbeat interval the coordinator gives KIP-848 consumer group members.")
            .default_value_of("5000").validate(Validator::at_least(1)).mode(RO),
        d("group.consumer.max.size", Int, Medium, "Maximum number of members in a KIP-848 consumer group.")
            .default_value_of(int_max).validate(Validator::at_least(1)).mode(RO),
        d("group.consumer.assignors", List, Medium, "Server-side assignors of KIP-848 consumer groups (uniform, range); the first is the default.")
            .default_value_of("uniform,range").mode(RO),
        d("offsets.topic.num.partitions", Int, High, "Partitions of the __consumer_offsets topic.")
            .default_value_of("50").validate(Validator::at_least(1)).mode(RO),
        d("offsets.topic.replication.factor", Short, High, "Replication factor of __consumer_offsets; creation fails until enough brokers exist.")
            .default_value_of("3").validate(Validator::at_least(1)).mode(RO),
        d("offsets.topic.segment.bytes", Int, High, "Segment size of __consumer_offsets.")
            .default_value_of("104857600").validate(Validator::at_least(1)).mode(RO),
        d("offsets.topic.compression.codec", Int, High, "Compression codec id used for __consumer_offsets.")
            .default_value_of("0").mode(RO),
        d("offsets.load.buffer.size", Int, High, "Batch size for reading offsets segments into the cache.")
            .default_value_of("5242880").validate(Validator::at_least(1)).mode(RO),
        d("offset.metadata.max.bytes", Int, High, "Maximum size of the metadata string of an offset commit.")
            .default_value_of("4096").mode(RO),
        d("offsets.retention.minutes", Int, High, "How long offsets of an empty group are kept.")
            .default_value_of("10080").validate(Validator::at_least(1)).mode(RO),
        d("offsets.retention.check.interval.ms", Long, High, "How often stale offsets are checked for.")
            .default_value_of("600000").validate(Validator::at_least(1)).mode(RO),
        d("offsets.commit.timeout.ms", Int, High, "Offset commits wait this long for replication of the offsets topic.")
            .default_value_of("5000").validate(Validator::at_least(1)).mode(RO),
        d("offsets.commit.required.acks", Short, High, "Acks required before an offset commit is accepted.")
            .default_value_of("-1").mode(RO),

        // ---- Transactions ----
        d("transaction.max.timeout.ms", Int, High, "Maximum transaction timeout a producer may request.")
            .default_value_of("900000").validate(Validator::at_least(1)).mode(RO),
        d("transaction.state.log.num.partitions", Int, High, "Partitions of the __transaction_state topic.")
            .default_value_of("50").validate(Validator::at_least(1)).mode(RO),
        d("transaction.state.log.replication.factor", Short, High, "Replication factor of __transaction_state.")
            .default_value_of("3").validate(Validator::at_least(1)).mode(RO),
        d("transaction.state.log.min.isr", Int, High, "min.insync.replicas of __transaction_state.")
            .default_value_of("2").validate(Validator::at_least(1)).mode(RO),
        d("transaction.state.log.segment.bytes", Int, High, "Segment size of __transaction_state.")
            .default_value_of("104857600").validate(Validator::at_least(1)).mode(RO),
        d("transaction.state.log.load.buffer.size", Int, High, "Batch size for reading transaction log segments into the cache.")
            .default_value_of("5242880").validate(Validator::at_least(1)).mode(RO),
        d("transactional.id.expiration.ms", Int, High, "Time without status updates after which a transactional id expires.")
            .default_value_of("604800000").validate(Validator::at_least(1)).mode(RO),
        d("transaction.abort.timed.out.transaction.cleanup.interval.ms", Int, Low, "How often timed-out transactions are rolled back.")
            .default_value_of("10000").validate(Validator::at_least(1)).mode(RO),
        d("transaction.remove.expired.transaction.cleanup.interval.ms", Int, Low, "How often expired transactional ids are removed.")
            .default_value_of("3600000").validate(Validator::at_least(1)).mode(RO),
        d("producer.id.expiration.ms", Int, Low, "Time after the last write before a producer id's state expires.")
            .default_value_of("86400000").validate(Validator::at_least(1)).mode(CW),

        // ---- Authorization ----
        d("authorizer.class.name", String, Low, "Authorizer class; empty disables authorization.")
            .default_value_of("").mode(RO),
        d("allow.everyone.if.no.acl.found", Boolean, Medium, "Whether a resource without matching ACLs is open to everyone.")
            .default_value_of("false").mode(RO),
        d("super.users", String, Medium, "Semicolon-separated principals (User:name) that bypass ACLs.").mode(RO),

        // ---- ZooKeeper ----
        d("zookeeper.connect", String, High, "ZooKeeper connection string (host:port,...[/chroot]); unused by Millrace.").mode(RO),
        d("zookeeper.session.timeout.ms", Int, High, "ZooKeeper session timeout.")
            .default_value_of("18000").mode(RO),
        d("zookeeper.connection.timeout.ms", Int, High, "Max wait to connect to ZooKeeper; defaults to zookeeper.session.timeout.ms.").mode(RO),
        d("zookeeper.set.acl", Boolean, High, "Whether the broker uses secure ACLs on ZooKeeper nodes.")
            .default_value_of("false").mode(RO),

        // ---- SSL / SASL (per listener when set dynamically) ----
        d("ssl.keystore.type", String, Medium, "File format of the key store.").default_value_of("JKS").mode(PB),
        d("ssl.keystore.location", String, High, "Location of the key store file.").mode(PB),
        d("ssl.keystore.password", Password, High, "Password of the key store file.").mode(PB),
        d("ssl.key.password", Password, High, "Password of the private key in the key store.").mode(PB),
        d("ssl.truststore.type", String, Medium, "File format of the trust store.").default_value_of("JKS").mode(PB),
        d("ssl.truststore.location", String, High, "Location of the trust store file.").mode(PB),
        d("ssl.truststore.password", Password, High, "Password of the trust store file.").mode(PB),
        d("ssl.client.auth", String, Medium, "Whether TLS client authentication is required, requested or off.")
            .default_value_of("none").validate(Validator::one_of(&["required", "requested", "none"])).mode(PB),
        d("ssl.enabled.protocols", List, Medium, "TLS protocols enabled for connections.")
            .default_value_of("TLSv1.2,TLSv1.3").mode(PB),
        d("ssl.protocol", String, Medium, "TLS protocol used to create the SSLContext.")
            .default_value_of("TLSv1.3").mode(PB),
        d("ssl.endpoint.identification.algorithm", String, Low, "Endpoint identification algorithm used to validate server host names.")
            .default_value_of("https").mode(PB),
        d("sasl.enabled.mechanisms", List, Medium, "SASL mechanisms enabled on the server.")
            .default_value_of("GSSAPI").mode(PB),
        d("sasl.mechanism.inter.broker.protocol", String, Medium, "SASL mechanism used between brokers.")
            .default_value_of("GSSAPI").mode(PB),
        d("sasl.jaas.config", Password, Medium, "JAAS login context for SASL connections.").mode(PB),
    ]
}

/// All broker configs Millrace understands, sorted by name. Defaults are
/// MSK's where the MSK default configuration sets the property
/// (`defaults/msk-default.properties`), Kafka 3.7's otherwise.
pub fn broker_config_defs() -> &'static [ConfigDef] {
    static DEFS: OnceLock<Vec<ConfigDef>> = OnceLock::new();
    DEFS.get_or_init(|| {
        let mut defs = build_broker_defs();
        defs.sort_by_key(|d| d.name);
        for (key, value) in crate::msk::msk_default_entries() {
            if let Some(def) = defs.iter_mut().find(|d| d.name == key.as_str()) {
                def.default = Some(Cow::Owned(value.clone()));
            }
        }
        defs
    })
}

/// Looks up a broker config by exact name (no listener prefix handling; see
/// [`resolve_broker_config_name`]).
pub fn broker_config_def(name: &str) -> Option<&'static ConfigDef> {
    let defs = broker_config_defs();
    defs.binary_search_by_key(&name, |d| d.name)
        .ok()
        .map(|i| &defs[i])
}

/// Resolves a broker config name, including Kafka's per-listener form
/// `listener.name.<listener>.<config>` (and
/// `listener.name.<listener>.<mechanism>.sasl.*`): returns the definition
/// that governs its type, validation and update mode.
pub fn resolve_broker_config_name(name: &str) -> Option<&'static ConfigDef> {
    broker_config_def(name).or_else(|| listener_base_def(name))
}

/// Base definition of a `listener.name.<l>.<config>` key.
fn listener_base_def(name: &str) -> Option<&'static ConfigDef> {
    let rest = name.strip_prefix("listener.name.")?;
    let (listener, base) = rest.split_once('.')?;
    if listener.is_empty() {
        return None;
    }
    broker_config_def(base).or_else(|| {
        let (_mechanism, sasl) = base.split_once('.')?;
        broker_config_def(sasl).filter(|d| d.name.starts_with("sasl."))
    })
}

/// Kafka's `DynamicBrokerConfig.brokerConfigSynonyms`: the names resolved
/// together with `name`, most preferred first (always contains `name`; a
/// listener-prefixed config is followed by its base config).
pub fn broker_config_synonyms(name: &str) -> Vec<String> {
    if let Some(def) = broker_config_def(name) {
        if !def.synonyms.is_empty() {
            return def.synonyms.iter().map(|s| s.to_string()).collect();
        }
        return vec![name.to_string()];
    }
    match listener_base_def(name) {
        Some(def) => vec![name.to_string(), def.name.to_string()],
        None => vec![name.to_string()],
    }
}

/// Validates a dynamic broker config update (IncrementalAlterConfigs /
/// AlterConfigs on a BROKER resource) like Kafka's
/// `DynamicBrokerConfig.validateConfigs`: names must be known, configs must
/// not be read-only (`Cannot update these configs dynamically: Set(listeners)`),
/// SSL store configs need a listener prefix, values must parse and validate,
/// and per-broker configs cannot be set at the cluster default
/// (`per_broker == false`, the `<default>` resource). A `None` value is a
/// deletion: only its name is checked.
///
/// Cross-config rules (e.g. listeners) are checked by applying the candidate
/// maps with [`BrokerConfig::with_dynamic`].
pub fn validate_dynamic_update(
    updates: &[(String, Option<String>)],
    per_broker: bool,
) -> Result<(), ConfigError> {
    for (name, _) in updates {
        if resolve_broker_config_name(name).is_none() {
            return Err(ConfigError::UnknownBrokerConfig(name.clone()));
        }
    }
    let set: Vec<(&String, &String, &ConfigDef)> = updates
        .iter()
        .filter_map(|(n, v)| {
            let v = v.as_ref()?;
            Some((n, v, resolve_broker_config_name(n)?))
        })
        .collect();
    let read_only: Vec<String> = set
        .iter()
        .filter(|(_, _, d)| !d.is_dynamic())
        .map(|(n, _, _)| n.to_string())
        .collect();
    if !read_only.is_empty() {
        return Err(ConfigError::NotDynamic(read_only));
    }
    let unprefixed: Vec<String> = set
        .iter()
        .filter(|(n, _, _)| LISTENER_PREFIX_ONLY.contains(&n.as_str()))
        .map(|(n, _, _)| n.to_string())
        .collect();
    if !unprefixed.is_empty() {
        return Err(ConfigError::ListenerPrefixRequired(unprefixed));
    }
    for (name, value, def) in &set {
        parse_as(def, name, value)?;
    }
    if !per_broker {
        let per_broker_only: Vec<String> = set
            .iter()
            .filter(|(_, _, d)| d.update_mode == Some(UpdateMode::PerBroker))
            .map(|(n, _, _)| n.to_string())
            .collect();
        if !per_broker_only.is_empty() {
            return Err(ConfigError::PerBrokerOnly(per_broker_only));
        }
    }
    Ok(())
}

/// Parses a value with `def`'s rules but reports errors under `name` (used
/// for listener-prefixed keys).
fn parse_as(def: &ConfigDef, name: &str, raw: &str) -> Result<ConfigValue, ConfigError> {
    def.parse(raw).map_err(|e| match e {
        ConfigError::InvalidValue { value, reason, .. } if name != def.name => {
            ConfigError::InvalidValue {
                name: name.to_string(),
                value,
                reason,
            }
        }
        other => other,
    })
}

/// Applies one dynamic layer on top of lower layers, removing the lower
/// layers' synonyms of every key set here first (Kafka's `overrideProps`), so
/// e.g. a dynamic `log.retention.hours` beats a static `log.retention.ms`.
fn overlay(effective: &mut BTreeMap<String, String>, layer: &BTreeMap<String, String>) {
    for key in layer.keys() {
        if let Some(def) = broker_config_def(key) {
            for syn in def.synonyms {
                effective.remove(*syn);
            }
        }
    }
    for (k, v) in layer {
        effective.insert(k.clone(), v.clone());
    }
}

/// The broker's configuration: static entries (server.properties plus
/// `--override`s) optionally combined with dynamic overrides, parsed into
/// typed values. Built by [`BrokerConfig::from_entries`]; apply dynamic
/// overrides with [`BrokerConfig::with_dynamic`].
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    static_entries: BTreeMap<String, String>,
    dynamic_default: BTreeMap<String, String>,
    dynamic_per_broker: BTreeMap<String, String>,
    effective: BTreeMap<String, String>,
    values: BTreeMap<&'static str, Option<ConfigValue>>,
    topic_defaults: BTreeMap<&'static str, ConfigValue>,
    log_defaults: TopicConfig,
    node_id: i32,
    process_roles: Vec<ProcessRole>,
    controller_quorum_voters: Vec<QuorumVoter>,
    controller_listener_names: Vec<String>,
    listener_security_protocol_map: BTreeMap<String, SecurityProtocol>,
    listeners: Vec<Listener>,
    advertised_listeners: Vec<Listener>,
    inter_broker_listener_name: String,
    log_dirs: Vec<PathBuf>,
    metadata_log_dir: PathBuf,
    super_users: Vec<String>,
}

fn listeners_error(prop: &str, listeners: &str, reason: &str) -> ConfigError {
    ConfigError::invalid(
        prop,
        format!("Error creating broker listeners from '{listeners}': {reason}"),
    )
}

fn parse_listener_list(
    prop: &str,
    s: &str,
    map: &BTreeMap<String, SecurityProtocol>,
    require_distinct_ports: bool,
) -> Result<Vec<Listener>, ConfigError> {
    let listeners = split_csv(s)
        .iter()
        .map(|e| Listener::parse(e, map))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| listeners_error(prop, s, &reason))?;
    let names: BTreeSet<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
    if names.len() != listeners.len() {
        return Err(ConfigError::invalid(
            prop,
            format!("Each listener must have a different name, {prop}: {s}"),
        ));
    }
    if require_distinct_ports {
        let non_zero: Vec<u16> = listeners
            .iter()
            .map(|l| l.port)
            .filter(|p| *p != 0)
            .collect();
        let distinct: BTreeSet<u16> = non_zero.iter().copied().collect();
        if distinct.len() != non_zero.len() {
            return Err(ConfigError::invalid(
                prop,
                format!("Each listener must have a different port, {prop}: {s}"),
            ));
        }
    }
    Ok(listeners)
}

impl BrokerConfig {
    /// Builds the configuration from ordered `(key, value)` entries: the
    /// server.properties entries followed by `--override` entries (a later
    /// entry for the same key wins). Unknown keys are ignored with a warning
    /// (`Unknown property 'foo' is ignored`); invalid values fail with an
    /// error naming the property.
    pub fn from_entries(
        entries: &[(String, String)],
    ) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let mut warnings = Vec::new();
        let mut static_entries = BTreeMap::new();
        for (key, value) in entries {
            if resolve_broker_config_name(key).is_some() {
                static_entries.insert(key.clone(), value.clone());
            } else if !warnings
                .iter()
                .any(|w: &String| w.contains(&format!("'{key}'")))
            {
                warnings.push(format!("Unknown property '{key}' is ignored"));
            }
        }
        let config = BrokerConfig::build(static_entries, BTreeMap::new(), BTreeMap::new())?;
        Ok((config, warnings))
    }

    /// Parses server.properties text and appends `--override` entries, then
    /// calls [`BrokerConfig::from_entries`].
    pub fn from_properties(
        text: &str,
        overrides: &[(String, String)],
    ) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let mut entries = parse_properties(text)?;
        entries.extend(overrides.iter().cloned());
        BrokerConfig::from_entries(&entries)
    }

    /// The effective configuration given dynamic overrides: `cluster_default`
    /// (the `<default>` broker resource) over the static entries, then
    /// `per_broker` over both, with Kafka's synonym removal between layers.
    /// Replaces any dynamic layers `self` already had. Unknown keys in the
    /// layers are ignored (they were rejected when written).
    pub fn with_dynamic(
        &self,
        cluster_default: &BTreeMap<String, String>,
        per_broker: &BTreeMap<String, String>,
    ) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::build(
            self.static_entries.clone(),
            cluster_default.clone(),
            per_broker.clone(),
        )
    }

    /// The effective value of broker config `name` (as DescribeConfigs would
    /// show it) given dynamic overrides; `None` for `null`.
    pub fn effective_value(
        &self,
        name: &str,
        cluster_default: &BTreeMap<String, String>,
        per_broker: &BTreeMap<String, String>,
    ) -> Result<Option<String>, ConfigError> {
        Ok(self
            .with_dynamic(cluster_default, per_broker)?
            .value_string(name))
    }

    fn build(
        static_entries: BTreeMap<String, String>,
        dynamic_default: BTreeMap<String, String>,
        dynamic_per_broker: BTreeMap<String, String>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut effective = static_entries.clone();
        overlay(&mut effective, &dynamic_default);
        overlay(&mut effective, &dynamic_per_broker);

        let mut values = BTreeMap::new();
        for def in broker_config_defs() {
            let value = match effective.get(def.name) {
                Some(raw) => Some(def.parse(raw)?),
                None => def.parsed_default()?,
            };
            values.insert(def.name, value);
        }
        for (key, raw) in &effective {
            if broker_config_def(key).is_none() {
                if let Some(def) = listener_base_def(key) {
                    parse_as(def, key, raw)?;
                }
            }
        }

        let get = |name: &str| values.get(name).and_then(Option::as_ref);
        let int = |name: &str| get(name).and_then(ConfigValue::as_i32).unwrap_or(-1);
        let string = |name: &str| get(name).and_then(ConfigValue::as_str).map(str::to_string);
        let list = |name: &str| {
            get(name)
                .and_then(ConfigValue::as_list)
                .map(<[String]>::to_vec)
                .unwrap_or_default()
        };

        // node.id / broker.id
        let node_id = match (int("node.id"), int("broker.id")) {
            (n, b) if n >= 0 && b >= 0 && n != b => {
                return Err(ConfigError::invalid(
                    "node.id",
                    "You must set `node.id` to the same value as `broker.id`.",
                ))
            }
            (n, _) if n >= 0 => n,
            (_, b) if b >= 0 => b,
            _ => {
                return Err(ConfigError::invalid(
                    "node.id",
                    "Missing required configuration `node.id` (or its synonym `broker.id`) which has no default value.",
                ))
            }
        };

        // process.roles
        let roles_raw = list("process.roles");
        let mut process_roles = Vec::new();
        for role in &roles_raw {
            let role = match role.as_str() {
                "broker" => ProcessRole::Broker,
                _ => ProcessRole::Controller,
            };
            if process_roles.contains(&role) {
                return Err(ConfigError::invalid(
                    "process.roles",
                    format!(
                        "Duplicate role names found in `process.roles`: [{}]",
                        roles_raw.join(", ")
                    ),
                ));
            }
            process_roles.push(role);
        }
        let is_kraft = !process_roles.is_empty();
        let has_broker = !is_kraft || process_roles.contains(&ProcessRole::Broker);
        let has_controller = process_roles.contains(&ProcessRole::Controller);

        let controller_quorum_voters = list("controller.quorum.voters")
            .iter()
            .map(|e| parse_voter(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::invalid("controller.quorum.voters", e))?;
        let controller_listener_names: Vec<String> =
            split_csv(&string("controller.listener.names").unwrap_or_default())
                .into_iter()
                .map(|n| n.to_ascii_uppercase())
                .collect();

        // listener.security.protocol.map
        let map_raw = string("listener.security.protocol.map").unwrap_or_default();
        let mut protocol_map = parse_protocol_map(&map_raw)
            .map_err(|e| ConfigError::invalid("listener.security.protocol.map", e))?;
        if !effective.contains_key("listener.security.protocol.map") {
            protocol_map
                .entry("CONTROLLER".to_string())
                .or_insert(SecurityProtocol::Plaintext);
            for name in &controller_listener_names {
                protocol_map
                    .entry(name.clone())
                    .or_insert(SecurityProtocol::Plaintext);
            }
        }

        // listeners / advertised.listeners
        let listeners_raw = string("listeners").unwrap_or_default();
        let listeners = parse_listener_list("listeners", &listeners_raw, &protocol_map, true)?;
        let advertised_explicit = string("advertised.listeners");
        let advertised_listeners = match &advertised_explicit {
            Some(s) => parse_listener_list("advertised.listeners", s, &protocol_map, false)?,
            None => listeners
                .iter()
                .filter(|l| !controller_listener_names.contains(&l.name))
                .cloned()
                .collect(),
        };
        if advertised_listeners
            .iter()
            .any(|l| l.host.as_deref() == Some("0.0.0.0"))
        {
            return Err(ConfigError::invalid(
                "advertised.listeners",
                "advertised.listeners cannot use the nonroutable meta-address 0.0.0.0. Use a routable IP address.",
            ));
        }
        let listener_names: BTreeSet<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
        let advertised_names: Vec<&str> = advertised_listeners
            .iter()
            .map(|l| l.name.as_str())
            .collect();

        // inter.broker.listener.name
        let ibl_explicit = string("inter.broker.listener.name");
        if ibl_explicit.is_some() && effective.contains_key("security.inter.broker.protocol") {
            return Err(ConfigError::invalid(
                "inter.broker.listener.name",
                "Only one of inter.broker.listener.name and security.inter.broker.protocol should be set.",
            ));
        }
        let inter_broker_listener_name = match ibl_explicit {
            Some(n) => n.to_ascii_uppercase(),
            None => {
                string("security.inter.broker.protocol").unwrap_or_else(|| "PLAINTEXT".to_string())
            }
        };

        // KRaft rules (Kafka 3.7 KafkaConfig.validateValues)
        let voter_ids = || {
            let ids: Vec<String> = controller_quorum_voters
                .iter()
                .map(|v| v.id.to_string())
                .collect();
            format!("Set({})", ids.join(", "))
        };
        let votes = controller_quorum_voters.iter().any(|v| v.id == node_id);
        if is_kraft {
            if controller_quorum_voters.is_empty() {
                return Err(ConfigError::invalid(
                    "controller.quorum.voters",
                    "If using process.roles, controller.quorum.voters must contain a parseable set of voters.",
                ));
            }
            if has_broker
                && advertised_names
                    .iter()
                    .any(|n| controller_listener_names.iter().any(|c| c == n))
            {
                return Err(ConfigError::invalid(
                    "advertised.listeners",
                    "The advertised.listeners config must not contain KRaft controller listeners from controller.listener.names when process.roles contains the broker role because Kafka clients that send requests via advertised listeners do not send requests to KRaft controllers -- they only send requests to KRaft brokers.",
                ));
            }
            if has_controller {
                if !votes {
                    return Err(ConfigError::invalid(
                        "controller.quorum.voters",
                        format!("If process.roles contains the 'controller' role, the node id {node_id} must be included in the set of voters controller.quorum.voters={}", voter_ids()),
                    ));
                }
                if !controller_listener_names
                    .iter()
                    .any(|c| listener_names.contains(c.as_str()))
                {
                    return Err(ConfigError::invalid(
                        "controller.listener.names",
                        "controller.listener.names must contain at least one value appearing in the 'listeners' configuration when running the KRaft controller role",
                    ));
                }
                if !controller_listener_names
                    .iter()
                    .all(|c| listener_names.contains(c.as_str()))
                {
                    return Err(ConfigError::invalid(
                        "controller.listener.names",
                        "controller.listener.names must only contain values appearing in the 'listeners' configuration when running the KRaft controller role",
                    ));
                }
            } else {
                if votes {
                    return Err(ConfigError::invalid(
                        "controller.quorum.voters",
                        format!("If process.roles contains just the 'broker' role, the node id {node_id} must not be included in the set of voters controller.quorum.voters={}", voter_ids()),
                    ));
                }
                if controller_listener_names.is_empty() {
                    return Err(ConfigError::invalid(
                        "controller.listener.names",
                        "controller.listener.names must contain at least one value when running KRaft with just the broker role",
                    ));
                }
                if controller_listener_names
                    .iter()
                    .any(|c| listener_names.contains(c.as_str()))
                {
                    return Err(ConfigError::invalid(
                        "controller.listener.names",
                        "controller.listener.names must not contain a value appearing in the 'listeners' configuration when running KRaft with just the broker role",
                    ));
                }
                if let Some(missing) = controller_listener_names
                    .iter()
                    .find(|c| !protocol_map.contains_key(c.as_str()))
                {
                    return Err(ConfigError::invalid(
                        "controller.listener.names",
                        format!("Controller listener with name {missing} defined in controller.listener.names not found in listener.security.protocol.map"),
                    ));
                }
            }
            if !has_broker && advertised_explicit.is_some() {
                return Err(ConfigError::invalid(
                    "advertised.listeners",
                    "The advertised.listeners config must be empty when process.roles=controller",
                ));
            }
        }
        if has_broker {
            if advertised_listeners.is_empty() {
                return Err(ConfigError::invalid(
                    "advertised.listeners",
                    "There must be at least one advertised listener. Perhaps all listeners appear in controller.listener.names?",
                ));
            }
            if !advertised_names.contains(&inter_broker_listener_name.as_str()) {
                return Err(ConfigError::invalid(
                    "inter.broker.listener.name",
                    format!(
                        "inter.broker.listener.name must be a listener name defined in advertised.listeners. The valid options based on currently configured listeners are {}",
                        advertised_names.join(",")
                    ),
                ));
            }
            if !advertised_names.iter().all(|n| listener_names.contains(n)) {
                return Err(ConfigError::invalid(
                    "advertised.listeners",
                    format!(
                        "advertised.listeners listener names must be equal to or a subset of the ones defined in listeners. Found {}. The valid options based on the current configuration are {}",
                        advertised_names.join(","),
                        listener_names.iter().copied().collect::<Vec<_>>().join(",")
                    ),
                ));
            }
        }

        // log.dirs > log.dir
        let dirs_raw = string("log.dirs")
            .or_else(|| string("log.dir"))
            .unwrap_or_default();
        let log_dirs: Vec<PathBuf> = split_csv(&dirs_raw)
            .into_iter()
            .map(PathBuf::from)
            .collect();
        let Some(first_dir) = log_dirs.first().cloned() else {
            return Err(ConfigError::invalid(
                "log.dirs",
                "At least one log directory must be defined via log.dirs or log.dir.",
            ));
        };
        let metadata_log_dir = string("metadata.log.dir")
            .map(PathBuf::from)
            .unwrap_or(first_dir);

        let super_users = string("super.users")
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();

        values.insert("node.id", Some(ConfigValue::Int(node_id)));
        values.insert("broker.id", Some(ConfigValue::Int(node_id)));
        let topic_defaults = topic_defaults_from(&values, &effective);
        let log_defaults = TopicConfig::from_values(&topic_defaults);

        Ok(BrokerConfig {
            static_entries,
            dynamic_default,
            dynamic_per_broker,
            effective,
            values,
            topic_defaults,
            log_defaults,
            node_id,
            process_roles,
            controller_quorum_voters,
            controller_listener_names,
            listener_security_protocol_map: protocol_map,
            listeners,
            advertised_listeners,
            inter_broker_listener_name,
            log_dirs,
            metadata_log_dir,
            super_users,
        })
    }

    // ---------------------------------------------------------------- raw --

    /// The statically set known entries (server.properties + overrides), as
    /// written; DescribeConfigs reports these as `STATIC_BROKER_CONFIG`.
    pub fn static_entries(&self) -> &BTreeMap<String, String> {
        &self.static_entries
    }

    /// The cluster-wide dynamic layer applied by
    /// [`BrokerConfig::with_dynamic`] (empty for a static config).
    pub fn dynamic_cluster_default(&self) -> &BTreeMap<String, String> {
        &self.dynamic_default
    }

    /// The per-broker dynamic layer applied by [`BrokerConfig::with_dynamic`].
    pub fn dynamic_per_broker(&self) -> &BTreeMap<String, String> {
        &self.dynamic_per_broker
    }

    /// All explicitly set entries after merging the layers.
    pub fn effective_entries(&self) -> &BTreeMap<String, String> {
        &self.effective
    }

    /// The typed value of a table config (`None` for `null` or unknown).
    pub fn get(&self, name: &str) -> Option<&ConfigValue> {
        self.values.get(name).and_then(Option::as_ref)
    }

    /// The value as DescribeConfigs shows it (`None` for `null`); also
    /// answers listener-prefixed keys that are set.
    pub fn value_string(&self, name: &str) -> Option<String> {
        match self.values.get(name) {
            Some(v) => v.as_ref().map(ConfigValue::to_kafka_string),
            None => self.effective.get(name).cloned(),
        }
    }

    fn i32_of(&self, name: &str) -> i32 {
        self.get(name)
            .and_then(ConfigValue::as_i32)
            .unwrap_or_default()
    }

    fn i64_of(&self, name: &str) -> i64 {
        self.get(name)
            .and_then(ConfigValue::as_i64)
            .unwrap_or_default()
    }

    fn bool_of(&self, name: &str) -> bool {
        self.get(name)
            .and_then(ConfigValue::as_bool)
            .unwrap_or_default()
    }

    fn str_of(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(ConfigValue::as_str)
    }

    /// Topic-config-named broker defaults (after synonym resolution).
    pub(crate) fn topic_default_values(&self) -> &BTreeMap<&'static str, ConfigValue> {
        &self.topic_defaults
    }

    // ------------------------------------------------------------ identity --

    /// `node.id` (or `broker.id`; Kafka requires them to agree).
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// `process.roles`; empty means ZooKeeper-style (no KRaft roles).
    pub fn process_roles(&self) -> &[ProcessRole] {
        &self.process_roles
    }

    /// Whether `process.roles` is set (KRaft mode).
    pub fn is_kraft(&self) -> bool {
        !self.process_roles.is_empty()
    }

    /// Parsed `controller.quorum.voters`.
    pub fn controller_quorum_voters(&self) -> &[QuorumVoter] {
        &self.controller_quorum_voters
    }

    /// `controller.listener.names`, upper-cased.
    pub fn controller_listener_names(&self) -> &[String] {
        &self.controller_listener_names
    }

    /// `broker.rack` (MSK: the broker's Availability Zone id).
    pub fn broker_rack(&self) -> Option<&str> {
        self.str_of("broker.rack")
    }

    // ----------------------------------------------------------- listeners --

    /// Parsed `listeners`.
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// Parsed `advertised.listeners`, defaulting (as Kafka does) to
    /// `listeners` without the controller listeners.
    pub fn advertised_listeners(&self) -> &[Listener] {
        &self.advertised_listeners
    }

    /// Effective `listener.security.protocol.map` (Kafka's default plus
    /// `CONTROLLER:PLAINTEXT` and the controller listener names when not set
    /// explicitly).
    pub fn listener_security_protocol_map(&self) -> &BTreeMap<String, SecurityProtocol> {
        &self.listener_security_protocol_map
    }

    /// The listener used between brokers.
    pub fn inter_broker_listener_name(&self) -> &str {
        &self.inter_broker_listener_name
    }

    // ---------------------------------------------------------------- log --

    /// `log.dirs`, falling back to `log.dir`.
    pub fn log_dirs(&self) -> &[PathBuf] {
        &self.log_dirs
    }

    /// `millrace.log.dirs.max.bytes`: the storage cap, `None` when unlimited
    /// (-1).
    pub fn log_dirs_max_bytes(&self) -> Option<u64> {
        u64::try_from(self.i64_of("millrace.log.dirs.max.bytes")).ok()
    }

    /// `metadata.log.dir`, falling back to the first log dir.
    pub fn metadata_log_dir(&self) -> &Path {
        &self.metadata_log_dir
    }

    /// The topic configuration a topic without overrides gets: every
    /// `log.*` default after synonym resolution (retention, segment, flush,
    /// cleaner, timestamps, compression, min ISR ...).
    pub fn log_defaults(&self) -> &TopicConfig {
        &self.log_defaults
    }

    /// Effective `log.retention.ms` (ms > minutes > hours; negative = -1).
    pub fn log_retention_ms(&self) -> i64 {
        self.log_defaults.retention_ms
    }

    /// `log.retention.bytes`.
    pub fn log_retention_bytes(&self) -> i64 {
        self.log_defaults.retention_bytes
    }

    /// Effective segment roll time (`log.roll.ms` > `log.roll.hours`).
    pub fn log_segment_ms(&self) -> i64 {
        self.log_defaults.segment_ms
    }

    /// Effective roll jitter (`log.roll.jitter.ms` > `.hours`).
    pub fn log_roll_jitter_ms(&self) -> i64 {
        self.log_defaults.segment_jitter_ms
    }

    /// `log.segment.bytes`.
    pub fn log_segment_bytes(&self) -> i32 {
        self.log_defaults.segment_bytes
    }

    /// Effective flush interval (`log.flush.interval.ms`, falling back to
    /// `log.flush.scheduler.interval.ms`).
    pub fn log_flush_interval_ms(&self) -> i64 {
        self.log_defaults.flush_ms
    }

    /// `log.flush.interval.messages`.
    pub fn log_flush_interval_messages(&self) -> i64 {
        self.log_defaults.flush_messages
    }

    /// `log.flush.scheduler.interval.ms`.
    pub fn log_flush_scheduler_interval_ms(&self) -> i64 {
        self.i64_of("log.flush.scheduler.interval.ms")
    }

    /// `log.flush.offset.checkpoint.interval.ms`.
    pub fn log_flush_offset_checkpoint_interval_ms(&self) -> i32 {
        self.i32_of("log.flush.offset.checkpoint.interval.ms")
    }

    /// `log.flush.start.offset.checkpoint.interval.ms`.
    pub fn log_flush_start_offset_checkpoint_interval_ms(&self) -> i32 {
        self.i32_of("log.flush.start.offset.checkpoint.interval.ms")
    }

    /// `log.retention.check.interval.ms`.
    pub fn log_retention_check_interval_ms(&self) -> i64 {
        self.i64_of("log.retention.check.interval.ms")
    }

    /// `log.cleaner.enable`.
    pub fn log_cleaner_enable(&self) -> bool {
        self.bool_of("log.cleaner.enable")
    }

    /// `log.cleaner.threads`.
    pub fn log_cleaner_threads(&self) -> i32 {
        self.i32_of("log.cleaner.threads")
    }

    /// `log.cleaner.backoff.ms`.
    pub fn log_cleaner_backoff_ms(&self) -> i64 {
        self.i64_of("log.cleaner.backoff.ms")
    }

    /// `log.cleaner.dedupe.buffer.size`.
    pub fn log_cleaner_dedupe_buffer_size(&self) -> i64 {
        self.i64_of("log.cleaner.dedupe.buffer.size")
    }

    /// `remote.log.storage.system.enable`.
    pub fn remote_log_storage_system_enable(&self) -> bool {
        self.bool_of("remote.log.storage.system.enable")
    }

    // --------------------------------------------------------- topic rules --

    /// `num.partitions`.
    pub fn num_partitions(&self) -> i32 {
        self.i32_of("num.partitions")
    }

    /// `default.replication.factor`.
    pub fn default_replication_factor(&self) -> i32 {
        self.i32_of("default.replication.factor")
    }

    /// `min.insync.replicas`.
    pub fn min_insync_replicas(&self) -> i32 {
        self.i32_of("min.insync.replicas")
    }

    /// `auto.create.topics.enable`.
    pub fn auto_create_topics_enable(&self) -> bool {
        self.bool_of("auto.create.topics.enable")
    }

    /// `delete.topic.enable`.
    pub fn delete_topic_enable(&self) -> bool {
        self.bool_of("delete.topic.enable")
    }

    /// `message.max.bytes`.
    pub fn message_max_bytes(&self) -> i32 {
        self.i32_of("message.max.bytes")
    }

    /// `unclean.leader.election.enable`.
    pub fn unclean_leader_election_enable(&self) -> bool {
        self.bool_of("unclean.leader.election.enable")
    }

    /// `compression.type`.
    pub fn compression_type(&self) -> crate::topic::CompressionType {
        self.log_defaults.compression_type
    }

    // ------------------------------------------------------------ network --

    /// `socket.request.max.bytes`.
    pub fn socket_request_max_bytes(&self) -> i32 {
        self.i32_of("socket.request.max.bytes")
    }

    /// `socket.send.buffer.bytes` (-1 = OS default).
    pub fn socket_send_buffer_bytes(&self) -> i32 {
        self.i32_of("socket.send.buffer.bytes")
    }

    /// `socket.receive.buffer.bytes` (-1 = OS default).
    pub fn socket_receive_buffer_bytes(&self) -> i32 {
        self.i32_of("socket.receive.buffer.bytes")
    }

    /// `connections.max.idle.ms`.
    pub fn connections_max_idle_ms(&self) -> i64 {
        self.i64_of("connections.max.idle.ms")
    }

    /// `queued.max.requests`.
    pub fn queued_max_requests(&self) -> i32 {
        self.i32_of("queued.max.requests")
    }

    /// `request.timeout.ms`.
    pub fn request_timeout_ms(&self) -> i32 {
        self.i32_of("request.timeout.ms")
    }

    /// `max.connections`.
    pub fn max_connections(&self) -> i32 {
        self.i32_of("max.connections")
    }

    /// `max.connections.per.ip`.
    pub fn max_connections_per_ip(&self) -> i32 {
        self.i32_of("max.connections.per.ip")
    }

    /// `max.incremental.fetch.session.cache.slots`.
    pub fn max_incremental_fetch_session_cache_slots(&self) -> i32 {
        self.i32_of("max.incremental.fetch.session.cache.slots")
    }

    /// `fetch.max.bytes`.
    pub fn fetch_max_bytes(&self) -> i32 {
        self.i32_of("fetch.max.bytes")
    }

    // ------------------------------------------------------------ threads --

    /// `num.network.threads`.
    pub fn num_network_threads(&self) -> i32 {
        self.i32_of("num.network.threads")
    }

    /// `num.io.threads`.
    pub fn num_io_threads(&self) -> i32 {
        self.i32_of("num.io.threads")
    }

    /// `background.threads`.
    pub fn background_threads(&self) -> i32 {
        self.i32_of("background.threads")
    }

    /// `num.recovery.threads.per.data.dir`.
    pub fn num_recovery_threads_per_data_dir(&self) -> i32 {
        self.i32_of("num.recovery.threads.per.data.dir")
    }

    /// `num.replica.fetchers`.
    pub fn num_replica_fetchers(&self) -> i32 {
        self.i32_of("num.replica.fetchers")
    }

    // -------------------------------------------------------- replication --

    /// `replica.lag.time.max.ms`.
    pub fn replica_lag_time_max_ms(&self) -> i64 {
        self.i64_of("replica.lag.time.max.ms")
    }

    /// `replica.fetch.max.bytes`.
    pub fn replica_fetch_max_bytes(&self) -> i32 {
        self.i32_of("replica.fetch.max.bytes")
    }

    /// `replica.fetch.response.max.bytes`.
    pub fn replica_fetch_response_max_bytes(&self) -> i32 {
        self.i32_of("replica.fetch.response.max.bytes")
    }

    /// `replica.fetch.wait.max.ms`.
    pub fn replica_fetch_wait_max_ms(&self) -> i32 {
        self.i32_of("replica.fetch.wait.max.ms")
    }

    /// `replica.fetch.min.bytes`.
    pub fn replica_fetch_min_bytes(&self) -> i32 {
        self.i32_of("replica.fetch.min.bytes")
    }

    /// `replica.fetch.backoff.ms`.
    pub fn replica_fetch_backoff_ms(&self) -> i32 {
        self.i32_of("replica.fetch.backoff.ms")
    }

    /// `replica.socket.timeout.ms`.
    pub fn replica_socket_timeout_ms(&self) -> i32 {
        self.i32_of("replica.socket.timeout.ms")
    }

    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub fn transaction_abort_timed_out_transaction_cleanup_interval_ms(&self) -> i32 {
        self.i32_of("transaction.abort.timed.out.transaction.cleanup.interval.ms")
    }

    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub fn transaction_remove_expired_transaction_cleanup_interval_ms(&self) -> i32 {
        self.i32_of("transaction.remove.expired.transaction.cleanup.interval.ms")
    }

    /// `replica.selector.class` (e.g. RackAwareReplicaSelector).
    pub fn replica_selector_class(&self) -> Option<&str> {
        self.str_of("replica.selector.class")
    }

    /// `auto.leader.rebalance.enable`.
    pub fn auto_leader_rebalance_enable(&self) -> bool {
        self.bool_of("auto.leader.rebalance.enable")
    }

    /// `leader.imbalance.per.broker.percentage`.
    pub fn leader_imbalance_per_broker_percentage(&self) -> i32 {
        self.i32_of("leader.imbalance.per.broker.percentage")
    }

    /// `leader.imbalance.check.interval.seconds`.
    pub fn leader_imbalance_check_interval_seconds(&self) -> i64 {
        self.i64_of("leader.imbalance.check.interval.seconds")
    }

    /// `leader.replication.throttled.rate` (bytes/s).
    pub fn leader_replication_throttled_rate(&self) -> i64 {
        self.i64_of("leader.replication.throttled.rate")
    }

    /// `follower.replication.throttled.rate` (bytes/s).
    pub fn follower_replication_throttled_rate(&self) -> i64 {
        self.i64_of("follower.replication.throttled.rate")
    }

    // -------------------------------------------------------------- groups --

    /// `group.initial.rebalance.delay.ms`.
    pub fn group_initial_rebalance_delay_ms(&self) -> i32 {
        self.i32_of("group.initial.rebalance.delay.ms")
    }

    /// `group.min.session.timeout.ms`.
    pub fn group_min_session_timeout_ms(&self) -> i32 {
        self.i32_of("group.min.session.timeout.ms")
    }

    /// `group.max.session.timeout.ms`.
    pub fn group_max_session_timeout_ms(&self) -> i32 {
        self.i32_of("group.max.session.timeout.ms")
    }

    /// `group.max.size`.
    pub fn group_max_size(&self) -> i32 {
        self.i32_of("group.max.size")
    }

    /// `group.consumer.session.timeout.ms`.
    pub fn group_consumer_session_timeout_ms(&self) -> i32 {
        self.i32_of("group.consumer.session.timeout.ms")
    }

    /// `group.consumer.heartbeat.interval.ms`.
    pub fn group_consumer_heartbeat_interval_ms(&self) -> i32 {
        self.i32_of("group.consumer.heartbeat.interval.ms")
    }

    /// `group.consumer.max.size`.
    pub fn group_consumer_max_size(&self) -> i32 {
        self.i32_of("group.consumer.max.size")
    }

    /// `group.consumer.assignors` as short names; Kafka's class names
    /// (`...assignor.UniformAssignor`) are accepted too.
    pub fn group_consumer_assignors(&self) -> Vec<String> {
        self.get("group.consumer.assignors")
            .and_then(ConfigValue::as_list)
            .map(|names| {
                names
                    .iter()
                    .map(|n| match n.rsplit('.').next().unwrap_or(n) {
                        "UniformAssignor" => "uniform".to_string(),
                        "RangeAssignor" => "range".to_string(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `metadata.log.max.record.bytes.between.snapshots`: how many bytes of
    /// metadata records trigger the next metadata snapshot.
    pub fn metadata_log_max_record_bytes_between_snapshots(&self) -> i64 {
        self.i64_of("metadata.log.max.record.bytes.between.snapshots")
    }

    /// `metadata.log.max.snapshot.interval.ms`: the longest a metadata
    /// snapshot waits for new records once some arrived (0: no limit).
    pub fn metadata_log_max_snapshot_interval_ms(&self) -> i64 {
        self.i64_of("metadata.log.max.snapshot.interval.ms")
    }

    /// `broker.heartbeat.interval.ms`.
    pub fn broker_heartbeat_interval_ms(&self) -> i32 {
        self.i32_of("broker.heartbeat.interval.ms")
    }

    /// `broker.session.timeout.ms`.
    pub fn broker_session_timeout_ms(&self) -> i32 {
        self.i32_of("broker.session.timeout.ms")
    }

    /// `controller.quorum.fetch.timeout.ms`.
    pub fn controller_quorum_fetch_timeout_ms(&self) -> i32 {
        self.i32_of("controller.quorum.fetch.timeout.ms")
    }

    /// `controller.quorum.election.backoff.max.ms`.
    pub fn controller_quorum_election_backoff_max_ms(&self) -> i32 {
        self.i32_of("controller.quorum.election.backoff.max.ms")
    }

    /// `offsets.topic.num.partitions`.
    pub fn offsets_topic_num_partitions(&self) -> i32 {
        self.i32_of("offsets.topic.num.partitions")
    }

    /// `offsets.topic.replication.factor`.
    pub fn offsets_topic_replication_factor(&self) -> i16 {
        self.get("offsets.topic.replication.factor")
            .and_then(ConfigValue::as_i16)
            .unwrap_or(3)
    }

    /// `offsets.topic.segment.bytes`.
    pub fn offsets_topic_segment_bytes(&self) -> i32 {
        self.i32_of("offsets.topic.segment.bytes")
    }

    /// `offsets.retention.minutes`.
    pub fn offsets_retention_minutes(&self) -> i32 {
        self.i32_of("offsets.retention.minutes")
    }

    /// `offsets.retention.minutes` in milliseconds.
    pub fn offsets_retention_ms(&self) -> i64 {
        i64::from(self.offsets_retention_minutes()) * 60_000
    }

    /// `offsets.retention.check.interval.ms`.
    pub fn offsets_retention_check_interval_ms(&self) -> i64 {
        self.i64_of("offsets.retention.check.interval.ms")
    }

    /// `offsets.commit.timeout.ms`.
    pub fn offsets_commit_timeout_ms(&self) -> i32 {
        self.i32_of("offsets.commit.timeout.ms")
    }

    /// `offset.metadata.max.bytes`.
    pub fn offset_metadata_max_bytes(&self) -> i32 {
        self.i32_of("offset.metadata.max.bytes")
    }

    // -------------------------------------------------------- transactions --

    /// `transaction.max.timeout.ms`.
    pub fn transaction_max_timeout_ms(&self) -> i32 {
        self.i32_of("transaction.max.timeout.ms")
    }

    /// `transaction.state.log.num.partitions`.
    pub fn transaction_state_log_num_partitions(&self) -> i32 {
        self.i32_of("transaction.state.log.num.partitions")
    }

    /// `transaction.state.log.replication.factor`.
    pub fn transaction_state_log_replication_factor(&self) -> i16 {
        self.get("transaction.state.log.replication.factor")
            .and_then(ConfigValue::as_i16)
            .unwrap_or(3)
    }

    /// `transaction.state.log.min.isr`.
    pub fn transaction_state_log_min_isr(&self) -> i32 {
        self.i32_of("transaction.state.log.min.isr")
    }

    /// `transaction.state.log.segment.bytes`.
    pub fn transaction_state_log_segment_bytes(&self) -> i32 {
        self.i32_of("transaction.state.log.segment.bytes")
    }

    /// `transactional.id.expiration.ms`.
    pub fn transactional_id_expiration_ms(&self) -> i32 {
        self.i32_of("transactional.id.expiration.ms")
    }

    /// `producer.id.expiration.ms`.
    pub fn producer_id_expiration_ms(&self) -> i32 {
        self.i32_of("producer.id.expiration.ms")
    }

    // ----------------------------------------------------------------- acl --

    /// `allow.everyone.if.no.acl.found` (MSK default: true).
    pub fn allow_everyone_if_no_acl_found(&self) -> bool {
        self.bool_of("allow.everyone.if.no.acl.found")
    }

    /// `authorizer.class.name` (empty = no authorizer).
    pub fn authorizer_class_name(&self) -> &str {
        self.str_of("authorizer.class.name").unwrap_or_default()
    }

    /// `super.users`, split on `;`.
    pub fn super_users(&self) -> &[String] {
        &self.super_users
    }

    // ----------------------------------------------------------- zookeeper --

    /// `zookeeper.connect`.
    pub fn zookeeper_connect(&self) -> Option<&str> {
        self.str_of("zookeeper.connect")
    }

    /// `zookeeper.session.timeout.ms`.
    pub fn zookeeper_session_timeout_ms(&self) -> i32 {
        self.i32_of("zookeeper.session.timeout.ms")
    }

    /// `zookeeper.connection.timeout.ms`, falling back to the session timeout.
    pub fn zookeeper_connection_timeout_ms(&self) -> i32 {
        self.get("zookeeper.connection.timeout.ms")
            .and_then(ConfigValue::as_i32)
            .unwrap_or_else(|| self.zookeeper_session_timeout_ms())
    }

    /// `zookeeper.set.acl`.
    pub fn zookeeper_set_acl(&self) -> bool {
        self.bool_of("zookeeper.set.acl")
    }
}

/// Multiplier from a broker synonym's unit to milliseconds.
fn unit_factor(name: &str) -> i64 {
    if name.ends_with(".hours") {
        3_600_000
    } else if name.ends_with(".minutes") {
        60_000
    } else {
        1
    }
}

/// Kafka's `KafkaConfig.extractLogConfigMap`: the broker's value for each
/// topic config, after synonym resolution. The first synonym that is set
/// explicitly wins; otherwise the first one with a non-null default.
fn topic_defaults_from(
    values: &BTreeMap<&'static str, Option<ConfigValue>>,
    effective: &BTreeMap<String, String>,
) -> BTreeMap<&'static str, ConfigValue> {
    let mut out = BTreeMap::new();
    for def in topic_config_defs() {
        let from_broker = def
            .synonyms
            .iter()
            .find(|s| effective.contains_key(**s))
            .or_else(|| {
                def.synonyms
                    .iter()
                    .find(|s| values.get(**s).is_some_and(Option::is_some))
            })
            .and_then(|s| {
                let v = values.get(*s)?.as_ref()?;
                Some(match def.config_type {
                    ConfigType::Long => {
                        let n = v.as_i64()?.saturating_mul(unit_factor(s));
                        let n = if def.name == "retention.ms" && n < 0 {
                            -1
                        } else {
                            n
                        };
                        ConfigValue::Long(n)
                    }
                    ConfigType::Int => ConfigValue::Int(v.as_i32()?),
                    _ => v.clone(),
                })
            });
        let value = from_broker.or_else(|| def.parsed_default().ok().flatten());
        if let Some(v) = value {
            out.insert(def.name, v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn cfg(pairs: &[(&str, &str)]) -> BrokerConfig {
        let mut e = entries(&[("node.id", "1")]);
        e.extend(entries(pairs));
        BrokerConfig::from_entries(&e).unwrap().0
    }

    fn err(pairs: &[(&str, &str)]) -> ConfigError {
        let mut e = entries(&[("node.id", "1")]);
        e.extend(entries(pairs));
        BrokerConfig::from_entries(&e).unwrap_err()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn upd(pairs: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect()
    }

    #[test]
    fn required_configs_are_in_the_table() {
        let required = [
            "node.id",
            "broker.id",
            "process.roles",
            "controller.quorum.voters",
            "controller.listener.names",
            "listeners",
            "advertised.listeners",
            "listener.security.protocol.map",
            "inter.broker.listener.name",
            "broker.rack",
            "broker.heartbeat.interval.ms",
            "broker.session.timeout.ms",
            "log.dirs",
            "log.dir",
            "num.partitions",
            "default.replication.factor",
            "min.insync.replicas",
            "auto.create.topics.enable",
            "delete.topic.enable",
            "message.max.bytes",
            "socket.request.max.bytes",
            "socket.send.buffer.bytes",
            "socket.receive.buffer.bytes",
            "connections.max.idle.ms",
            "num.network.threads",
            "num.io.threads",
            "num.recovery.threads.per.data.dir",
            "num.replica.fetchers",
            "replica.lag.time.max.ms",
            "replica.fetch.max.bytes",
            "replica.fetch.response.max.bytes",
            "replica.selector.class",
            "unclean.leader.election.enable",
            "auto.leader.rebalance.enable",
            "leader.imbalance.per.broker.percentage",
            "leader.imbalance.check.interval.seconds",
            "log.segment.bytes",
            "log.roll.ms",
            "log.roll.hours",
            "log.roll.jitter.ms",
            "log.roll.jitter.hours",
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
            "log.retention.bytes",
            "log.retention.check.interval.ms",
            "log.cleanup.policy",
            "log.cleaner.enable",
            "log.cleaner.threads",
            "log.cleaner.backoff.ms",
            "log.cleaner.delete.retention.ms",
            "log.cleaner.min.cleanable.ratio",
            "log.cleaner.min.compaction.lag.ms",
            "log.cleaner.max.compaction.lag.ms",
            "log.cleaner.dedupe.buffer.size",
            "log.index.interval.bytes",
            "log.index.size.max.bytes",
            "log.flush.interval.messages",
            "log.flush.interval.ms",
            "log.flush.scheduler.interval.ms",
            "log.flush.offset.checkpoint.interval.ms",
            "log.flush.start.offset.checkpoint.interval.ms",
            "log.segment.delete.delay.ms",
            "log.preallocate",
            "log.message.timestamp.type",
            "log.message.timestamp.difference.max.ms",
            "log.message.timestamp.before.max.ms",
            "log.message.timestamp.after.max.ms",
            "compression.type",
            "max.incremental.fetch.session.cache.slots",
            "fetch.max.bytes",
            "group.initial.rebalance.delay.ms",
            "group.min.session.timeout.ms",
            "group.max.session.timeout.ms",
            "group.max.size",
            "group.consumer.session.timeout.ms",
            "group.consumer.heartbeat.interval.ms",
            "group.consumer.max.size",
            "group.consumer.assignors",
            "offsets.topic.num.partitions",
            "offsets.topic.replication.factor",
            "offsets.topic.segment.bytes",
            "offsets.retention.minutes",
            "offsets.retention.check.interval.ms",
            "offsets.commit.timeout.ms",
            "transaction.max.timeout.ms",
            "transaction.state.log.num.partitions",
            "transaction.state.log.replication.factor",
            "transaction.state.log.min.isr",
            "transactional.id.expiration.ms",
            "producer.id.expiration.ms",
            "allow.everyone.if.no.acl.found",
            "authorizer.class.name",
            "super.users",
            "queued.max.requests",
            "request.timeout.ms",
            "metadata.log.dir",
            "metadata.log.max.record.bytes.between.snapshots",
            "metadata.log.max.snapshot.interval.ms",
            "zookeeper.connect",
            "zookeeper.session.timeout.ms",
            "zookeeper.connection.timeout.ms",
            "zookeeper.set.acl",
            "local.retention.ms",
            "local.retention.bytes",
            "remote.log.storage.system.enable",
            "remote.storage.enable",
            "remote.log.msk.disable.policy",
            "remote.log.reader.threads",
            "replica.socket.receive.buffer.bytes",
        ];
        for name in required {
            assert!(broker_config_def(name).is_some(), "{name}");
        }
        for def in broker_config_defs() {
            assert!(def.update_mode.is_some(), "{}", def.name);
            def.parsed_default()
                .unwrap_or_else(|e| panic!("default of {}: {e}", def.name));
            assert!(!def.documentation.is_empty());
            assert!(!def.documentation.contains('\n'));
            for syn in def.synonyms {
                assert!(broker_config_def(syn).is_some(), "{syn}");
            }
        }
    }

    #[test]
    fn msk_and_kafka_defaults() {
        let c = cfg(&[]);
        assert_eq!(c.node_id(), 1);
        assert!(!c.auto_create_topics_enable());
        assert_eq!(c.default_replication_factor(), 3);
        assert_eq!(c.min_insync_replicas(), 2);
        assert_eq!(c.num_io_threads(), 8);
        assert_eq!(c.num_network_threads(), 5);
        assert_eq!(c.num_replica_fetchers(), 2);
        assert_eq!(c.socket_send_buffer_bytes(), 102_400);
        assert_eq!(c.socket_receive_buffer_bytes(), 102_400);
        assert_eq!(c.socket_request_max_bytes(), 104_857_600);
        assert!(c.unclean_leader_election_enable());
        assert_eq!(c.log_segment_bytes(), 1_073_741_824);
        assert_eq!(
            c.log_defaults().message_timestamp_difference_max_ms,
            i64::MAX
        );
        assert_eq!(c.replica_lag_time_max_ms(), 30_000);
        assert!(c.allow_everyone_if_no_acl_found());
        // Kafka 3.7 defaults where MSK is silent.
        assert_eq!(c.num_partitions(), 1);
        assert_eq!(c.message_max_bytes(), 1_048_588);
        assert_eq!(c.fetch_max_bytes(), 57_671_680);
        assert_eq!(c.max_incremental_fetch_session_cache_slots(), 1000);
        assert_eq!(c.log_retention_ms(), 168 * 3_600_000);
        assert_eq!(c.log_segment_ms(), 168 * 3_600_000);
        assert_eq!(c.log_flush_interval_ms(), i64::MAX);
        assert_eq!(c.offsets_topic_replication_factor(), 3);
        assert_eq!(c.offsets_topic_num_partitions(), 50);
        assert_eq!(c.transaction_state_log_min_isr(), 2);
        assert_eq!(c.group_min_session_timeout_ms(), 6000);
        assert_eq!(c.log_dirs(), [PathBuf::from("/tmp/kafka-logs")]);
        assert_eq!(c.metadata_log_dir(), Path::new("/tmp/kafka-logs"));
        assert_eq!(c.zookeeper_connection_timeout_ms(), 18_000);
        assert!(c.delete_topic_enable());
        assert_eq!(c.broker_rack(), None);
        assert_eq!(c.authorizer_class_name(), "");
        // The describe value for a null default is None; for MSK defaults it
        // is MSK's value; Kafka's own default is kept on the def.
        assert_eq!(c.value_string("log.retention.ms"), None);
        assert_eq!(c.value_string("num.network.threads").as_deref(), Some("5"));
        let def = broker_config_def("num.network.threads").unwrap();
        assert_eq!(def.default_value(), Some("5"));
        assert_eq!(def.kafka_default, Some("3"));
        assert_eq!(
            c.value_string("log.cleaner.io.max.bytes.per.second")
                .as_deref(),
            Some("1.7976931348623157E308")
        );
    }

    #[test]
    fn retention_synonym_precedence() {
        assert_eq!(
            cfg(&[("log.retention.hours", "2")]).log_retention_ms(),
            7_200_000
        );
        assert_eq!(
            cfg(&[("log.retention.hours", "2"), ("log.retention.minutes", "3")]).log_retention_ms(),
            180_000
        );
        assert_eq!(
            cfg(&[
                ("log.retention.hours", "2"),
                ("log.retention.minutes", "3"),
                ("log.retention.ms", "4")
            ])
            .log_retention_ms(),
            4
        );
        assert_eq!(cfg(&[("log.retention.ms", "-5")]).log_retention_ms(), -1);
        assert_eq!(cfg(&[("log.retention.hours", "-1")]).log_retention_ms(), -1);
    }

    #[test]
    fn roll_jitter_flush_and_dirs_synonyms() {
        let c = cfg(&[("log.roll.hours", "1"), ("log.roll.jitter.hours", "2")]);
        assert_eq!(c.log_segment_ms(), 3_600_000);
        assert_eq!(c.log_roll_jitter_ms(), 7_200_000);
        let c = cfg(&[
            ("log.roll.hours", "1"),
            ("log.roll.ms", "10"),
            ("log.roll.jitter.hours", "2"),
            ("log.roll.jitter.ms", "5"),
        ]);
        assert_eq!(c.log_segment_ms(), 10);
        assert_eq!(c.log_roll_jitter_ms(), 5);
        let c = cfg(&[("log.flush.scheduler.interval.ms", "3000")]);
        assert_eq!(c.log_flush_interval_ms(), 3000);
        let c = cfg(&[
            ("log.flush.scheduler.interval.ms", "3000"),
            ("log.flush.interval.ms", "100"),
        ]);
        assert_eq!(c.log_flush_interval_ms(), 100);
        assert_eq!(c.log_flush_scheduler_interval_ms(), 3000);
        let c = cfg(&[("log.dir", "/a"), ("log.dirs", "/b, /c")]);
        assert_eq!(c.log_dirs(), [PathBuf::from("/b"), PathBuf::from("/c")]);
        let c = cfg(&[("log.dir", "/a"), ("metadata.log.dir", "/m")]);
        assert_eq!(c.log_dirs(), [PathBuf::from("/a")]);
        assert_eq!(c.metadata_log_dir(), Path::new("/m"));
        assert_eq!(
            err(&[("log.dirs", " , ")]).to_string(),
            "At least one log directory must be defined via log.dirs or log.dir."
        );
    }

    #[test]
    fn node_id_and_broker_id() {
        let (c, _) = BrokerConfig::from_entries(&entries(&[("broker.id", "7")])).unwrap();
        assert_eq!(c.node_id(), 7);
        assert_eq!(c.value_string("node.id").as_deref(), Some("7"));
        let e = BrokerConfig::from_entries(&entries(&[("broker.id", "7"), ("node.id", "8")]))
            .unwrap_err();
        assert_eq!(e.property(), Some("node.id"));
        let e = BrokerConfig::from_entries(&[]).unwrap_err();
        assert_eq!(e.property(), Some("node.id"));
        assert!(
            BrokerConfig::from_entries(&entries(&[("broker.id", "7"), ("node.id", "7")])).is_ok()
        );
    }

    #[test]
    fn later_entries_win_and_unknown_keys_warn() {
        let (c, warnings) = BrokerConfig::from_entries(&entries(&[
            ("node.id", "1"),
            ("num.partitions", "3"),
            ("foo.bar", "x"),
            ("num.partitions", "5"),
            ("foo.bar", "y"),
            ("listener.name.plaintext.max.connections", "10"),
        ]))
        .unwrap();
        assert_eq!(c.num_partitions(), 5);
        assert_eq!(
            warnings,
            vec!["Unknown property 'foo.bar' is ignored".to_string()]
        );
        assert_eq!(
            c.static_entries().get("num.partitions").map(String::as_str),
            Some("5")
        );
        assert!(!c.static_entries().contains_key("foo.bar"));
        assert_eq!(
            c.value_string("listener.name.plaintext.max.connections")
                .as_deref(),
            Some("10")
        );
    }

    #[test]
    fn invalid_values_name_the_property() {
        let e = err(&[("num.partitions", "abc")]);
        assert_eq!(
            e.to_string(),
            "Invalid value abc for configuration num.partitions: Not a number of type INT"
        );
        assert_eq!(e.property(), Some("num.partitions"));
        assert_eq!(
            err(&[("num.partitions", "0")]).to_string(),
            "Invalid value 0 for configuration num.partitions: Value must be at least 1"
        );
        assert_eq!(
            err(&[("log.segment.bytes", "13")]).to_string(),
            "Invalid value 13 for configuration log.segment.bytes: Value must be at least 14"
        );
        assert_eq!(
            err(&[("compression.type", "brotli")]).to_string(),
            "Invalid value brotli for configuration compression.type: String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"
        );
        assert_eq!(
            err(&[("log.cleanup.policy", "delete,x")]).to_string(),
            "Invalid value x for configuration log.cleanup.policy: String must be one of: compact, delete"
        );
        assert_eq!(
            err(&[("log.message.timestamp.type", "Now")]).to_string(),
            "Invalid value Now for configuration log.message.timestamp.type: String must be one of: CreateTime, LogAppendTime"
        );
        assert_eq!(
            err(&[("auto.create.topics.enable", "maybe")]).property(),
            Some("auto.create.topics.enable")
        );
        assert_eq!(
            err(&[("log.cleaner.min.cleanable.ratio", "2")]).property(),
            Some("log.cleaner.min.cleanable.ratio")
        );
        assert_eq!(
            err(&[("listener.name.plaintext.max.connections", "-1")]).property(),
            Some("listener.name.plaintext.max.connections")
        );
    }

    #[test]
    fn listener_parsing() {
        let c = cfg(&[(
            "listeners",
            "PLAINTEXT://127.0.0.1:9092, ssl://:9093,SASL_SSL://[::1]:9094",
        )]);
        let l = c.listeners();
        assert_eq!(l.len(), 3);
        assert_eq!(
            l[0],
            Listener {
                name: "PLAINTEXT".into(),
                host: Some("127.0.0.1".into()),
                port: 9092,
                security_protocol: SecurityProtocol::Plaintext
            }
        );
        assert_eq!(l[1].name, "SSL");
        assert_eq!(l[1].host, None);
        assert_eq!(l[1].security_protocol, SecurityProtocol::Ssl);
        assert_eq!(l[2].host.as_deref(), Some("::1"));
        assert_eq!(l[2].connection_string(), "SASL_SSL://[::1]:9094");
        assert_eq!(l[1].connection_string(), "SSL://:9093");
        // Advertised defaults to listeners.
        assert_eq!(c.advertised_listeners(), l);
        assert_eq!(c.inter_broker_listener_name(), "PLAINTEXT");
        let m = c.listener_security_protocol_map();
        assert_eq!(m.get("CONTROLLER"), Some(&SecurityProtocol::Plaintext));
        assert_eq!(
            m.get("SASL_PLAINTEXT"),
            Some(&SecurityProtocol::SaslPlaintext)
        );
    }

    #[test]
    fn listener_errors() {
        let e = err(&[("listeners", "CLIENT://:9092")]);
        assert_eq!(
            e.to_string(),
            "Error creating broker listeners from 'CLIENT://:9092': No security protocol defined for listener CLIENT"
        );
        assert_eq!(e.property(), Some("listeners"));
        assert_eq!(
            err(&[("listeners", "PLAINTEXT://:9092,SSL://:9092")]).to_string(),
            "Each listener must have a different port, listeners: PLAINTEXT://:9092,SSL://:9092"
        );
        assert_eq!(
            err(&[("listeners", "PLAINTEXT://:9092,PLAINTEXT://:9093")]).to_string(),
            "Each listener must have a different name, listeners: PLAINTEXT://:9092,PLAINTEXT://:9093"
        );
        assert_eq!(
            err(&[("listeners", "PLAINTEXT://host")]).to_string(),
            "Error creating broker listeners from 'PLAINTEXT://host': Unable to parse PLAINTEXT://host to a broker endpoint"
        );
        assert!(err(&[("listeners", "PLAINTEXT://:70000")])
            .to_string()
            .contains("Unable to parse"));
        assert!(err(&[("listeners", "PLAINTEXT://h*st:1")])
            .to_string()
            .contains("Unable to parse"));
        // Port 0 may repeat.
        assert_eq!(
            cfg(&[("listeners", "PLAINTEXT://:0,SSL://:0")])
                .listeners()
                .len(),
            2
        );
        assert_eq!(
            err(&[("advertised.listeners", "PLAINTEXT://0.0.0.0:9092")]).to_string(),
            "advertised.listeners cannot use the nonroutable meta-address 0.0.0.0. Use a routable IP address."
        );
        assert_eq!(
            err(&[("listener.security.protocol.map", "PLAINTEXT:FOO")]).property(),
            Some("listener.security.protocol.map")
        );
        assert!(err(&[("advertised.listeners", "SSL://h:9093")])
            .to_string()
            .starts_with("inter.broker.listener.name must be a listener name defined in advertised.listeners"));
    }

    #[test]
    fn custom_listener_names() {
        let c = cfg(&[
            ("listeners", "CLIENT://:9092,REPLICATION://:9093"),
            (
                "advertised.listeners",
                "CLIENT://b-1.example:9092,REPLICATION://b-1-int:9093",
            ),
            (
                "listener.security.protocol.map",
                "CLIENT:SASL_SSL,REPLICATION:PLAINTEXT",
            ),
            ("inter.broker.listener.name", "replication"),
        ]);
        assert_eq!(c.inter_broker_listener_name(), "REPLICATION");
        assert_eq!(
            c.advertised_listeners()[0].host.as_deref(),
            Some("b-1.example")
        );
        assert_eq!(
            c.advertised_listeners()[0].security_protocol,
            SecurityProtocol::SaslSsl
        );
        // Explicit map: no implicit CONTROLLER entry.
        assert!(!c
            .listener_security_protocol_map()
            .contains_key("CONTROLLER"));
        assert!(err(&[
            ("listeners", "CLIENT://:9092"),
            ("listener.security.protocol.map", "CLIENT:PLAINTEXT"),
            ("inter.broker.listener.name", "CLIENT"),
            ("security.inter.broker.protocol", "PLAINTEXT"),
        ])
        .to_string()
        .starts_with("Only one of"));
    }

    #[test]
    fn kraft_combined_mode() {
        let c = cfg(&[
            ("process.roles", "broker,controller"),
            ("controller.quorum.voters", "1@localhost:9093"),
            ("controller.listener.names", "CONTROLLER"),
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
        ]);
        assert!(c.is_kraft());
        assert_eq!(
            c.process_roles(),
            [ProcessRole::Broker, ProcessRole::Controller]
        );
        assert_eq!(
            c.controller_quorum_voters(),
            [QuorumVoter {
                id: 1,
                host: "localhost".into(),
                port: 9093
            }]
        );
        // Controller listeners are not advertised.
        assert_eq!(c.advertised_listeners().len(), 1);
        assert_eq!(c.advertised_listeners()[0].name, "PLAINTEXT");
        assert_eq!(
            err(&[("process.roles", "broker")]).to_string(),
            "If using process.roles, controller.quorum.voters must contain a parseable set of voters."
        );
        assert!(err(&[
            ("process.roles", "broker,broker"),
            ("controller.quorum.voters", "2@h:1")
        ])
        .to_string()
        .starts_with("Duplicate role names"));
        assert_eq!(
            err(&[("process.roles", "brokers")]).property(),
            Some("process.roles")
        );
        assert_eq!(
            err(&[("controller.quorum.voters", "1-localhost:9093")]).to_string(),
            "Invalid value [1-localhost:9093] for configuration controller.quorum.voters: Invalid format: 1-localhost:9093"
        );
        // Broker-only: controller listener must not be in listeners.
        let c = cfg(&[
            ("process.roles", "broker"),
            ("controller.quorum.voters", "3000@ctl:9093"),
            ("controller.listener.names", "CONTROLLER"),
        ]);
        assert_eq!(c.listeners().len(), 1);
        assert!(err(&[
            ("process.roles", "broker"),
            ("controller.quorum.voters", "1@ctl:9093"),
            ("controller.listener.names", "CONTROLLER"),
        ])
        .to_string()
        .contains("must not be included in the set of voters controller.quorum.voters=Set(1)"));
    }

    #[test]
    fn metadata_snapshot_settings_have_kafkas_defaults_and_ranges() {
        let c = cfg(&[]);
        assert_eq!(
            c.metadata_log_max_record_bytes_between_snapshots(),
            20_971_520
        );
        assert_eq!(c.metadata_log_max_snapshot_interval_ms(), 3_600_000);
        let c = cfg(&[
            ("metadata.log.max.record.bytes.between.snapshots", "4096"),
            ("metadata.log.max.snapshot.interval.ms", "0"),
        ]);
        assert_eq!(c.metadata_log_max_record_bytes_between_snapshots(), 4096);
        assert_eq!(c.metadata_log_max_snapshot_interval_ms(), 0);
        assert_eq!(
            err(&[("metadata.log.max.record.bytes.between.snapshots", "0")]).property(),
            Some("metadata.log.max.record.bytes.between.snapshots")
        );
        assert_eq!(
            err(&[("metadata.log.max.snapshot.interval.ms", "-1")]).property(),
            Some("metadata.log.max.snapshot.interval.ms")
        );
    }

    #[test]
    fn dynamic_update_validation() {
        assert_eq!(
            validate_dynamic_update(&upd(&[("listeners", "PLAINTEXT://:9092")]), true)
                .unwrap_err()
                .to_string(),
            "Cannot update these configs dynamically: Set(listeners)"
        );
        assert_eq!(
            validate_dynamic_update(
                &upd(&[("num.partitions", "3"), ("broker.rack", "a")]),
                false
            )
            .unwrap_err()
            .to_string(),
            "Cannot update these configs dynamically: Set(broker.rack, num.partitions)"
        );
        assert_eq!(
            validate_dynamic_update(&upd(&[("nope", "1")]), true)
                .unwrap_err()
                .to_string(),
            "Unknown broker config name: nope"
        );
        assert_eq!(
            validate_dynamic_update(&upd(&[("log.retention.ms", "x")]), false)
                .unwrap_err()
                .to_string(),
            "Invalid value x for configuration log.retention.ms: Not a number of type LONG"
        );
        assert_eq!(
            validate_dynamic_update(&upd(&[("advertised.listeners", "PLAINTEXT://h:9092")]), false)
                .unwrap_err()
                .to_string(),
            "Cannot update these configs at default cluster level, broker id must be specified: Set(advertised.listeners)"
        );
        assert!(validate_dynamic_update(
            &upd(&[("advertised.listeners", "PLAINTEXT://h:9092")]),
            true
        )
        .is_ok());
        assert_eq!(
            validate_dynamic_update(&upd(&[("ssl.keystore.password", "x")]), true)
                .unwrap_err()
                .to_string(),
            "These security configs can be dynamically updated only per-listener using the listener prefix: Set(ssl.keystore.password)"
        );
        assert!(validate_dynamic_update(
            &upd(&[("listener.name.ssl.ssl.keystore.password", "x")]),
            true
        )
        .is_ok());
        assert!(validate_dynamic_update(
            &upd(&[
                ("log.retention.ms", "1000"),
                ("min.insync.replicas", "1"),
                ("num.io.threads", "16"),
                ("leader.replication.throttled.rate", "1000000"),
                ("listener.name.client.max.connections", "3000"),
            ]),
            false
        )
        .is_ok());
        // Deletions only check the name.
        assert!(validate_dynamic_update(&[("listeners".to_string(), None)], true).is_ok());
    }

    #[test]
    fn dynamic_layers_and_effective_values() {
        let c = cfg(&[("log.retention.ms", "1000"), ("num.io.threads", "4")]);
        let default = map(&[("num.io.threads", "16"), ("log.retention.hours", "1")]);
        let per_broker = map(&[("num.io.threads", "32")]);
        assert_eq!(
            c.effective_value("num.io.threads", &default, &map(&[]))
                .unwrap()
                .as_deref(),
            Some("16")
        );
        assert_eq!(
            c.effective_value("num.io.threads", &default, &per_broker)
                .unwrap()
                .as_deref(),
            Some("32")
        );
        let e = c.with_dynamic(&default, &per_broker).unwrap();
        assert_eq!(e.num_io_threads(), 32);
        // The dynamic hours removed the static .ms synonym.
        assert_eq!(e.log_retention_ms(), 3_600_000);
        assert_eq!(e.value_string("log.retention.ms"), None);
        assert_eq!(e.static_entries(), c.static_entries());
        assert_eq!(e.dynamic_cluster_default(), &default);
        // Dynamic listeners are re-validated.
        assert!(c
            .with_dynamic(&map(&[]), &map(&[("advertised.listeners", "FOO://h:1")]))
            .is_err());
        let e = c
            .with_dynamic(
                &map(&[]),
                &map(&[("advertised.listeners", "PLAINTEXT://b-1:9092")]),
            )
            .unwrap();
        assert_eq!(e.advertised_listeners()[0].host.as_deref(), Some("b-1"));
    }

    #[test]
    fn properties_text_and_overrides() {
        let text = "node.id=2\n# comment\nlisteners=PLAINTEXT://:19092\nnum.partitions=4\nlog.dirs=/data/a,\\\n  /data/b\n";
        let (c, w) = BrokerConfig::from_properties(
            text,
            &entries(&[("num.partitions", "6"), ("broker.rack", "use1-az1")]),
        )
        .unwrap();
        assert!(w.is_empty());
        assert_eq!(c.node_id(), 2);
        assert_eq!(c.num_partitions(), 6);
        assert_eq!(c.broker_rack(), Some("use1-az1"));
        assert_eq!(c.listeners()[0].port, 19092);
        assert_eq!(c.log_dirs().len(), 2);
    }

    #[test]
    fn listener_prefixed_synonyms() {
        assert_eq!(
            broker_config_synonyms("listener.name.client.max.connections"),
            vec!["listener.name.client.max.connections", "max.connections"]
        );
        assert_eq!(
            broker_config_synonyms("listener.name.client.plain.sasl.jaas.config"),
            vec![
                "listener.name.client.plain.sasl.jaas.config",
                "sasl.jaas.config"
            ]
        );
        assert_eq!(
            broker_config_synonyms("log.retention.hours"),
            vec![
                "log.retention.ms",
                "log.retention.minutes",
                "log.retention.hours"
            ]
        );
        assert_eq!(
            broker_config_synonyms("num.io.threads"),
            vec!["num.io.threads"]
        );
        assert!(resolve_broker_config_name("listener.name..max.connections").is_none());
    }
}
