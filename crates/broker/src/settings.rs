//! The broker settings the request path reads, resolved once from the
//! `millrace-config` model (static file, overrides and dynamic configs), so
//! handlers read plain fields instead of looking properties up by name.

use std::path::PathBuf;
use std::sync::Arc;

use millrace_config::{BrokerConfig, Listener};
use millrace_metadata::MetadataImage;

/// A listener to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// Listener name.
    pub name: String,
    /// Host to bind (empty = all interfaces).
    pub host: String,
    /// Port (0 = any free port).
    pub port: u16,
    /// Kafka's security protocol id for the listener.
    pub security_protocol: i16,
}

/// Effective broker settings.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// `node.id`.
    pub node_id: i32,
    /// Client listeners to bind (controller listeners excluded).
    pub listeners: Vec<ListenerSpec>,
    /// What to advertise per listener name (host may be empty: use the bound address).
    pub advertised_listeners: Vec<ListenerSpec>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// `log.dirs`.
    pub log_dirs: Vec<PathBuf>,
    /// Where the metadata log lives (`metadata.log.dir`, else the first log dir).
    pub metadata_log_dir: PathBuf,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
    /// `socket.request.max.bytes`.
    pub socket_request_max_bytes: usize,
    /// `socket.send.buffer.bytes` (-1 = OS default).
    pub socket_send_buffer_bytes: i32,
    /// `socket.receive.buffer.bytes` (-1 = OS default).
    pub socket_receive_buffer_bytes: i32,
    /// `connections.max.idle.ms`.
    pub connections_max_idle_ms: u64,
    /// `max.incremental.fetch.session.cache.slots`.
    pub fetch_session_cache_slots: usize,
    /// `fetch.max.bytes`: cap on any fetch response.
    pub fetch_max_bytes: usize,
    /// `num.recovery.threads.per.data.dir`.
    pub recovery_threads_per_dir: usize,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// `log.flush.scheduler.interval.ms`.
    pub flush_scheduler_interval_ms: u64,
    /// `log.flush.offset.checkpoint.interval.ms`.
    pub checkpoint_interval_ms: u64,
    /// `log.cleaner.enable`.
    pub cleaner_enabled: bool,
    /// `log.cleaner.threads`.
    pub cleaner_threads: usize,
    /// `log.cleaner.backoff.ms`.
    pub cleaner_backoff_ms: u64,
    /// `log.cleaner.dedupe.buffer.size`.
    pub cleaner_dedupe_buffer_bytes: usize,
    /// `millrace.log.dirs.max.bytes` (`u64::MAX` = unlimited): the storage
    /// cap, re-read with every image since it may be changed dynamically.
    pub log_dirs_max_bytes: u64,
    /// The effective config model (static and dynamic), for DescribeConfigs
    /// and topic config resolution.
    pub model: Arc<BrokerConfig>,
}

impl BrokerSettings {
    /// Resolves the settings from the static configuration and the dynamic
    /// broker configs in `image` (cluster default, then this broker's own).
    /// Dynamic values were validated when written; should one still fail to
    /// apply, the static configuration is used and the failure logged.
    pub fn resolve(model: Arc<BrokerConfig>, image: &MetadataImage) -> BrokerSettings {
        let node_id = model.node_id();
        let effective = match model.with_dynamic(
            &image.broker_config(""),
            &image.broker_config(&node_id.to_string()),
        ) {
            Ok(effective) => Arc::new(effective),
            Err(e) => {
                tracing::error!(error = %e, "ignoring dynamic broker configs that no longer apply");
                model.clone()
            }
        };
        let c = &effective;
        let controller_names = c.controller_listener_names();
        let to_spec = |l: &Listener| ListenerSpec {
            name: l.name.clone(),
            host: l.host.clone().unwrap_or_default(),
            port: l.port,
            security_protocol: l.security_protocol.id(),
        };
        let positive = |v: i64, fallback: u64| if v > 0 { v as u64 } else { fallback };
        BrokerSettings {
            node_id,
            listeners: c
                .listeners()
                .iter()
                .filter(|l| !controller_names.contains(&l.name))
                .map(to_spec)
                .collect(),
            advertised_listeners: c.advertised_listeners().iter().map(to_spec).collect(),
            rack: c.broker_rack().map(str::to_string),
            log_dirs: c.log_dirs().to_vec(),
            metadata_log_dir: c.metadata_log_dir().to_path_buf(),
            num_partitions: c.num_partitions(),
            default_replication_factor: c.default_replication_factor().clamp(1, i16::MAX as i32)
                as i16,
            auto_create_topics_enable: c.auto_create_topics_enable(),
            delete_topic_enable: c.delete_topic_enable(),
            socket_request_max_bytes: c.socket_request_max_bytes().max(1) as usize,
            socket_send_buffer_bytes: c.socket_send_buffer_bytes(),
            socket_receive_buffer_bytes: c.socket_receive_buffer_bytes(),
            connections_max_idle_ms: positive(c.connections_max_idle_ms(), u64::MAX / 4),
            fetch_session_cache_slots: c.max_incremental_fetch_session_cache_slots().max(0)
                as usize,
            fetch_max_bytes: c.fetch_max_bytes().max(1) as usize,
            recovery_threads_per_dir: c.num_recovery_threads_per_data_dir().max(1) as usize,
            retention_check_interval_ms: positive(c.log_retention_check_interval_ms(), 300_000),
            flush_scheduler_interval_ms: positive(
                c.log_flush_scheduler_interval_ms(),
                u64::MAX / 4,
            ),
            checkpoint_interval_ms: positive(
                i64::from(c.log_flush_offset_checkpoint_interval_ms()),
                60_000,
            ),
            log_dirs_max_bytes: c.log_dirs_max_bytes().unwrap_or(u64::MAX),
            cleaner_enabled: c.log_cleaner_enable(),
            cleaner_threads: c.log_cleaner_threads().max(1) as usize,
            cleaner_backoff_ms: positive(c.log_cleaner_backoff_ms(), 15_000),
            cleaner_dedupe_buffer_bytes: c.log_cleaner_dedupe_buffer_size().max(1 << 20) as usize,
            model: effective,
        }
    }
}
