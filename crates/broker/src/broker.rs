//! The broker: start-up, the state every request handler shares, and
//! shutdown.
//!
//! # Start-up order, and why
//!
//! 1. **Log dirs and `meta.properties`**: refuse to start on a directory
//!    that belongs to another node or cluster before touching any data.
//! 2. **Metadata**: replay the metadata log, because topic configs decide
//!    how logs are opened (retention, compaction) and which logs are stale.
//! 3. **Logs**: open every log dir, recovering logs after an unclean
//!    shutdown, before any client can read or write.
//! 4. **Listeners are bound** (so port 0 resolves to a real port) and the
//!    broker registers its advertised endpoints.
//! 5. **Partitions** are brought in line with the image; logs of topics
//!    deleted while the broker was down are removed.
//! 6. **Background work** (retention, flush, checkpoints, cleaner) starts, then
//!    the accept loops, so the first client sees a complete broker.

use std::collections::HashMap;
use std::fs;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use millrace_config::BrokerConfig;
use millrace_metadata::controller::ControllerConfig;
use millrace_metadata::records::Endpoint;
use millrace_metadata::store::MetadataStore;
use millrace_metadata::{Controller, MetadataImage};
use millrace_protocol::ErrorCode;
use millrace_quorum::{Quorum, QuorumMetadataStore};
use millrace_storage::{LogManager, LogManagerOptions};
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster_metadata;
use crate::config_bridge::{self, MillraceConfigValidator};
use crate::coordinators::Coordinators;
use crate::fetch_session::FetchSessionCache;
use crate::partition_manager::PartitionManager;
use crate::replication::ReplicaManager;
use crate::server;
use crate::settings::BrokerSettings;
use crate::topic_settings::TopicSettings;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A log directory cannot be used.
    #[error("log directory {path}: {reason}")]
    LogDir {
        /// The directory.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Opening the logs failed.
    #[error("storage: {0}")]
    Storage(#[from] millrace_storage::StorageError),
    /// Opening the metadata log failed.
    #[error("metadata: {0}")]
    Metadata(#[from] millrace_metadata::metadata_log::MetadataLogError),
    /// A listener could not be bound.
    #[error("cannot bind listener {name} on {addr}: {source}")]
    Bind {
        /// Listener name.
        name: String,
        /// Address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// Registration with the controller failed.
    #[error("broker registration failed: {0}")]
    Register(String),
}

/// State shared by every connection and handler.
pub struct Broker {
    node_id: i32,
    cluster_id: String,
    static_config: Arc<BrokerConfig>,
    settings: RwLock<Arc<BrokerSettings>>,
    controller: Arc<Controller>,
    partitions: Arc<PartitionManager>,
    fetch_sessions: FetchSessionCache,
    topic_settings: RwLock<HashMap<String, Arc<TopicSettings>>>,
    coordinators: Coordinators,
    replication: Arc<ReplicaManager>,
    /// This node's metadata quorum voter, in a cluster.
    quorum: Option<Arc<Quorum>>,
    shutdown: CancellationToken,
}

/// Where a broker's metadata comes from when it is not its own local log.
enum Metadata {
    /// Its own controller over this store.
    Store(Arc<dyn MetadataStore>),
    /// A controller shared with other brokers in this process, and their
    /// cluster id.
    Controller {
        /// The shared controller.
        controller: Arc<Controller>,
        /// The cluster id a new log dir is formatted with.
        cluster_id: String,
    },
}

/// A started broker: its addresses and the handle to stop it.
pub struct RunningBroker {
    broker: Arc<Broker>,
    tasks: TaskTracker,
    addresses: Vec<(String, SocketAddr)>,
}

impl RunningBroker {
    /// The shared broker state.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The bound address of each client listener, by listener name.
    pub fn addresses(&self) -> &[(String, SocketAddr)] {
        &self.addresses
    }

    /// Stops accepting, lets in-flight requests finish (up to 10 s), then
    /// flushes every log and writes the clean-shutdown marker.
    pub async fn shutdown(self) -> Result<(), millrace_storage::StorageError> {
        // Controlled shutdown: leadership moves to other in-sync replicas
        // before this broker stops answering.
        let controller = self.broker.controller.clone();
        let node_id = self.broker.node_id;
        let moved = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::task::spawn_blocking(move || controller.controlled_shutdown(node_id)),
        )
        .await;
        if !matches!(moved, Ok(Ok(Ok(_)))) {
            tracing::warn!("controlled shutdown did not complete; stopping anyway");
        }
        self.broker.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still busy after 10 s; shutting storage down anyway");
        }
        self.broker.coordinators.shutdown();
        let log_manager = self.broker.partitions.log_manager().clone();
        let stored = tokio::task::spawn_blocking(move || log_manager.shutdown())
            .await
            .map_err(|e| millrace_storage::StorageError::Io {
                context: "shutdown task".into(),
                source: std::io::Error::other(e),
            });
        if let Some(quorum) = &self.broker.quorum {
            quorum.shutdown().await;
        }
        stored?
    }
}

impl Broker {
    /// Starts a broker from its configuration (see the module docs for the order).
    pub async fn start(config: BrokerConfig) -> Result<RunningBroker, BootError> {
        Broker::start_with_store(config, None).await
    }

    /// Starts a broker whose controller appends to `store` instead of the
    /// local metadata log under `metadata.log.dir`: the Raft quorum in a
    /// cluster, or (in tests) one store shared by brokers in one process.
    pub async fn start_with_store(
        config: BrokerConfig,
        store: Option<Arc<dyn MetadataStore>>,
    ) -> Result<RunningBroker, BootError> {
        Broker::start_inner(config, store.map(Metadata::Store)).await
    }

    /// Starts a broker that uses another broker's controller and joins its
    /// cluster id (brokers in one process forming a cluster: one active
    /// controller, as the quorum gives between processes).
    pub async fn start_with_controller(
        config: BrokerConfig,
        controller: Arc<Controller>,
        cluster_id: String,
    ) -> Result<RunningBroker, BootError> {
        Broker::start_inner(
            config,
            Some(Metadata::Controller {
                controller,
                cluster_id,
            }),
        )
        .await
    }

    async fn start_inner(
        config: BrokerConfig,
        metadata: Option<Metadata>,
    ) -> Result<RunningBroker, BootError> {
        if crate::ControllerNode::is_controller_only(&config) {
            return Err(BootError::Config(
                "process.roles=controller is a controller-only node: start it as a \
                 ControllerNode (millrace broker --config does), not as a broker"
                    .into(),
            ));
        }
        let config = Arc::new(config);
        let settings = Arc::new(BrokerSettings::resolve(
            config.clone(),
            &MetadataImage::empty(),
        ));
        let node_id = settings.node_id;

        // 1. Log dirs and meta.properties.
        let quorum_config = match metadata {
            None => cluster_metadata::quorum_config(&config, &settings.metadata_log_dir)?,
            Some(_) => None,
        };
        let joined_cluster = match &metadata {
            Some(Metadata::Controller { cluster_id, .. }) => Some(cluster_id.clone()),
            _ => quorum_config.as_ref().map(cluster_metadata::cluster_id_for),
        };
        let cluster_id = prepare_log_dirs(&settings, joined_cluster.as_deref())?;

        // 2. Metadata.
        let validator = Arc::new(MillraceConfigValidator::new(config.clone()));
        let mut quorum = None;
        let controller = match (metadata, quorum_config) {
            (Some(Metadata::Controller { controller, .. }), _) => controller,
            (Some(Metadata::Store(store)), _) => {
                Controller::with_store(store, controller_config(&settings), validator)
            }
            (None, Some(quorum_config)) => {
                let node = cluster_metadata::start_quorum(quorum_config).await?;
                let store = Arc::new(QuorumMetadataStore::new(
                    node.clone(),
                    tokio::runtime::Handle::current(),
                ));
                let controller =
                    Controller::with_store(store, controller_config(&settings), validator);
                cluster_metadata::serve_forwarded_requests(&node, controller.clone());
                quorum = Some(node);
                controller
            }
            (None, None) => Controller::open(
                &settings.metadata_log_dir,
                controller_config(&settings),
                validator,
            )?,
        };
        let image = controller.image();
        let settings = Arc::new(BrokerSettings::resolve(config.clone(), &image));

        // 3. Logs.
        let topic_settings = config_bridge::all_topic_settings(&settings, &image);
        let log_manager = {
            let options = LogManagerOptions {
                log_dirs: settings.log_dirs.clone(),
                recovery_threads_per_dir: settings.recovery_threads_per_dir,
                retention_check_interval_ms: settings.retention_check_interval_ms,
                flush_scheduler_interval_ms: settings.flush_scheduler_interval_ms,
                checkpoint_interval_ms: settings.checkpoint_interval_ms,
                cleaner_enabled: settings.cleaner_enabled,
                cleaner_threads: settings.cleaner_threads,
                cleaner_backoff_ms: settings.cleaner_backoff_ms,
                cleaner_dedupe_buffer_bytes: settings.cleaner_dedupe_buffer_bytes,
                default_config: config_bridge::default_log_config(&settings),
                max_bytes: settings.log_dirs_max_bytes,
            };
            let by_topic = topic_settings.clone();
            let default_log = options.default_config;
            tokio::task::spawn_blocking(move || {
                LogManager::open(options, move |tp| {
                    by_topic
                        .get(&tp.topic)
                        .map_or_else(|| default_log, |s| s.log)
                })
            })
            .await
            .map_err(|e| BootError::Config(format!("log recovery task failed: {e}")))??
        };

        log_manager.set_producer_id_expiration_ms(i64::from(config.producer_id_expiration_ms()));

        // 4. Listeners and registration.
        let mut bound = Vec::new();
        for listener in &settings.listeners {
            let addr = resolve(&listener.host, listener.port).map_err(|e| BootError::Bind {
                name: listener.name.clone(),
                addr: format!("{}:{}", listener.host, listener.port),
                source: e,
            })?;
            let socket = server::bind(&listener.name, addr)
                .await
                .map_err(|e| BootError::Bind {
                    name: listener.name.clone(),
                    addr: addr.to_string(),
                    source: e,
                })?;
            bound.push(socket);
        }
        let mut endpoints = Vec::new();
        let mut addresses = Vec::new();
        for socket in &bound {
            let local = socket.local_addr().map_err(|e| BootError::Bind {
                name: socket.name.to_string(),
                addr: "?".into(),
                source: e,
            })?;
            addresses.push((socket.name.to_string(), local));
            let advertised = settings
                .advertised_listeners
                .iter()
                .find(|a| a.name == *socket.name);
            let (host, port, protocol) = match advertised {
                Some(a) => (
                    if a.host.is_empty() {
                        advertised_host(local)
                    } else {
                        a.host.clone()
                    },
                    if a.port == 0 { local.port() } else { a.port },
                    a.security_protocol,
                ),
                None => (advertised_host(local), local.port(), 0),
            };
            endpoints.push(Endpoint {
                name: socket.name.to_string(),
                host,
                port,
                security_protocol: protocol,
            });
        }
        let registered = register(&controller, node_id, endpoints, settings.rack.clone()).await?;
        // Everything committed before the registration must be here before
        // partitions are reconciled with the image, or logs of topics this
        // node has not heard of yet would look deleted.
        let caught_up = wait_for_offset(&controller, registered, REGISTRATION_TIMEOUT).await;

        // 5. Partitions.
        let broker = Arc::new_cyclic(|weak| Broker {
            node_id,
            cluster_id,
            coordinators: Coordinators::new(weak.clone(), &config),
            replication: Arc::new(ReplicaManager::new(weak.clone(), &config)),
            static_config: config,
            fetch_sessions: FetchSessionCache::new(settings.fetch_session_cache_slots),
            settings: RwLock::new(settings),
            partitions: Arc::new(PartitionManager::new(node_id, log_manager.clone())),
            controller,
            topic_settings: RwLock::new(HashMap::new()),
            quorum,
            shutdown: CancellationToken::new(),
        });
        if !caught_up {
            tracing::warn!(
                registered,
                "metadata not caught up with the registration; keeping every local log until it is"
            );
        }
        broker.apply_image(&broker.controller.image(), caught_up);

        // 6. Background work and accept loops.
        log_manager.start_background_tasks();
        let tasks = TaskTracker::new();
        tasks.spawn(broker.replication.clone().run_isr_upkeep());
        tasks.spawn(broker.clone().run_liveness());
        {
            let broker = broker.clone();
            let mut images = broker.controller.subscribe();
            let shutdown = broker.shutdown.clone();
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        changed = images.changed() => {
                            if changed.is_err() {
                                break;
                            }
                            let image = images.borrow_and_update().clone();
                            let b = broker.clone();
                            let _ = tokio::task::spawn_blocking(move || b.apply_image(&image, false)).await;
                        }
                        () = shutdown.cancelled() => break,
                    }
                }
            });
        }
        for socket in bound {
            tasks.spawn(server::accept_loop(socket, broker.clone(), tasks.clone()));
        }
        tracing::info!(node_id, cluster_id = %broker.cluster_id, "broker started");
        Ok(RunningBroker {
            broker,
            tasks,
            addresses,
        })
    }

    /// Recomputes settings from a new image and applies it to the partitions.
    fn apply_image(&self, image: &MetadataImage, remove_strays: bool) {
        let settings = Arc::new(BrokerSettings::resolve(self.static_config.clone(), image));
        let topic_settings = config_bridge::all_topic_settings(&settings, image);
        self.controller.update_config(controller_config(&settings));
        // A dynamic change of millrace.log.dirs.max.bytes applies here.
        self.partitions
            .log_manager()
            .set_max_bytes(settings.log_dirs_max_bytes);
        *self.settings.write() = settings.clone();
        *self.topic_settings.write() = topic_settings.clone();
        let fallback = Arc::new(config_bridge::topic_settings(&settings, image, ""));
        self.partitions.apply(
            image,
            &|topic| {
                topic_settings
                    .get(topic)
                    .cloned()
                    .unwrap_or_else(|| fallback.clone())
            },
            remove_strays,
        );
        self.replication.sync(&self.partitions.all(), self.node_id);
        self.coordinators.sync_leadership(image, self.node_id);
        self.partitions.mark_applied(image.offset);
    }

    /// Heartbeats to the controller every `broker.heartbeat.interval.ms`,
    /// and, as the controller, fences brokers whose session
    /// (`broker.session.timeout.ms`) expired so their leaderships move.
    async fn run_liveness(self: Arc<Self>) {
        let interval =
            Duration::from_millis(self.static_config.broker_heartbeat_interval_ms().max(1) as u64);
        let session =
            Duration::from_millis(self.static_config.broker_session_timeout_ms().max(1) as u64);
        let unclean = self.static_config.unclean_leader_election_enable();
        // The session check runs apart from the heartbeat: a heartbeat
        // forwarded to a controller that stopped answering can hang for the
        // quorum's request timeout, and a node that has just become the
        // active controller must start fencing without waiting for it.
        let checker = tokio::spawn(cluster_metadata::run_session_checks(
            self.controller.clone(),
            interval,
            session,
            unclean,
            self.shutdown.clone(),
        ));
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = self.shutdown.cancelled() => break,
            }
            let controller = self.controller.clone();
            let node_id = self.node_id;
            let beat =
                tokio::task::spawn_blocking(move || controller.broker_heartbeat(node_id)).await;
            match beat {
                Ok(Err(e)) => tracing::warn!(error = %e, "heartbeat failed"),
                Ok(Ok(_)) => {}
                Err(e) => tracing::warn!(error = %e, "heartbeat task failed"),
            }
        }
        let _ = checker.await;
    }

    /// The group and transaction coordinators hosted here.
    pub fn coordinators(&self) -> &Coordinators {
        &self.coordinators
    }

    /// `node.id`.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The cluster id from `meta.properties`.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Current effective settings.
    pub fn config(&self) -> Arc<BrokerSettings> {
        self.settings.read().clone()
    }

    /// The static configuration the broker started with.
    pub fn static_config(&self) -> &Arc<BrokerConfig> {
        &self.static_config
    }

    /// The latest metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.controller.image()
    }

    /// The metadata controller.
    pub fn controller(&self) -> &Arc<Controller> {
        &self.controller
    }

    /// Runs a controller operation on a blocking thread: it may wait for a
    /// quorum commit or for the active controller on another node.
    pub async fn control<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&Controller) -> T + Send + 'static,
    ) -> T {
        let controller = self.controller.clone();
        match tokio::task::spawn_blocking(move || operation(&controller)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Blocking tasks are only cancelled when the runtime shuts
            // down, which drops this task too.
            Err(_) => std::future::pending().await,
        }
    }

    /// Replica fetchers, ISR upkeep and the replication quotas.
    pub fn replication(&self) -> &Arc<ReplicaManager> {
        &self.replication
    }

    /// Hosted partitions.
    pub fn partitions(&self) -> &Arc<PartitionManager> {
        &self.partitions
    }

    /// Fetch sessions.
    pub fn fetch_sessions(&self) -> &FetchSessionCache {
        &self.fetch_sessions
    }

    /// Cancelled when the broker shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The error for a partition this broker does not host: the topic or
    /// partition does not exist, or another broker leads it.
    pub fn unhosted_partition_error(&self, topic: &str, partition: i32) -> ErrorCode {
        match self.image().topic(topic) {
            Some(t) if t.partitions.contains_key(&partition) => ErrorCode::NotLeaderOrFollower,
            _ => ErrorCode::UnknownTopicOrPartition,
        }
    }

    /// Current leader and epoch of a partition, for KIP-951 hints.
    pub fn leader_hint(&self, topic: &str, partition: i32) -> Option<(i32, i32)> {
        let image = self.image();
        let p = image.topic(topic)?.partitions.get(&partition)?;
        (p.leader >= 0).then_some((p.leader, p.leader_epoch))
    }
}

/// How long a starting node keeps trying to register: in a cluster the
/// quorum may still be forming (other nodes starting) or electing.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(300);

/// Registers this broker with the active controller and sends its first
/// heartbeat (which unfences a broker fenced when it stopped and re-elects
/// it where it is the only choice), retrying until the quorum answers.
/// Returns the registration's commit offset.
async fn register(
    controller: &Arc<Controller>,
    node_id: i32,
    endpoints: Vec<Endpoint>,
    rack: Option<String>,
) -> Result<i64, BootError> {
    let deadline = tokio::time::Instant::now() + REGISTRATION_TIMEOUT;
    loop {
        let c = controller.clone();
        let (endpoints, rack) = (endpoints.clone(), rack.clone());
        let attempt = tokio::task::spawn_blocking(move || {
            let offset = c.register_broker(node_id, endpoints, rack)?;
            let beat = c.broker_heartbeat(node_id)?;
            Ok::<_, millrace_metadata::ApiError>(beat.unwrap_or(offset).max(offset))
        })
        .await
        .map_err(|e| BootError::Register(e.to_string()))?;
        match attempt {
            Ok(offset) => return Ok(offset),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "registration with the controller failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(BootError::Register(e.to_string())),
        }
    }
}

/// Waits until this node's image reaches `offset`; false on timeout.
async fn wait_for_offset(controller: &Controller, offset: i64, timeout: Duration) -> bool {
    let mut images = controller.subscribe();
    let reached = async {
        loop {
            if images.borrow_and_update().offset >= offset {
                return true;
            }
            if images.changed().await.is_err() {
                return false;
            }
        }
    };
    tokio::time::timeout(timeout, reached)
        .await
        .unwrap_or(false)
}

pub(crate) fn controller_config(settings: &BrokerSettings) -> ControllerConfig {
    ControllerConfig {
        default_num_partitions: settings.num_partitions,
        default_replication_factor: settings.default_replication_factor,
        delete_topic_enable: settings.delete_topic_enable,
    }
}

fn resolve(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{host} resolves to no address")))
}

/// The host to advertise for a listener bound to `local` with no advertised
/// host: the bound IP, or this machine's hostname when bound to all
/// interfaces (as Kafka does).
fn advertised_host(local: SocketAddr) -> String {
    if local.ip().is_unspecified() {
        fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into())
    } else {
        local.ip().to_string()
    }
}

/// Creates the log dirs and checks (or writes) `meta.properties` in each:
/// every dir must belong to this node and to one cluster. Returns the
/// cluster id.
pub(crate) fn prepare_log_dirs(
    settings: &BrokerSettings,
    joined: Option<&str>,
) -> Result<String, BootError> {
    let mut dirs: Vec<&Path> = settings.log_dirs.iter().map(|p| p.as_path()).collect();
    if !dirs.contains(&settings.metadata_log_dir.as_path()) {
        dirs.push(&settings.metadata_log_dir);
    }
    let mut cluster_id: Option<String> = None;
    let mut missing = Vec::new();
    for dir in &dirs {
        let err = |reason: String| BootError::LogDir {
            path: dir.display().to_string(),
            reason,
        };
        fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        let meta = dir.join("meta.properties");
        match fs::read_to_string(&meta) {
            Ok(text) => {
                let entries = millrace_config::properties::parse_properties(&text)
                    .map_err(|e| err(format!("unreadable meta.properties: {e}")))?;
                let get = |k: &str| {
                    entries
                        .iter()
                        .rev()
                        .find(|(key, _)| key == k)
                        .map(|(_, v)| v.clone())
                };
                if let Some(stored) = get("node.id") {
                    if stored != settings.node_id.to_string() {
                        return Err(err(format!(
                            "stored node.id {stored} does not match the configured node.id {}",
                            settings.node_id
                        )));
                    }
                }
                let stored_cluster = get("cluster.id")
                    .ok_or_else(|| err("meta.properties has no cluster.id".into()))?;
                match &cluster_id {
                    Some(c) if *c != stored_cluster => {
                        return Err(err(format!(
                        "cluster.id {stored_cluster} does not match {c} found in another log dir"
                    )))
                    }
                    _ => cluster_id = Some(stored_cluster),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(meta),
            Err(e) => return Err(err(e.to_string())),
        }
    }
    let cluster_id = cluster_id
        .or_else(|| joined.map(str::to_string))
        .unwrap_or_else(new_cluster_id);
    for meta in missing {
        let text = format!(
            "#\n#Written by Millrace\nversion=1\nnode.id={}\ncluster.id={cluster_id}\ndirectory.id={}\n",
            settings.node_id,
            base64_uuid(uuid::Uuid::new_v4())
        );
        let tmp = meta.with_extension("properties.tmp");
        fs::write(&tmp, text)
            .and_then(|()| fs::rename(&tmp, &meta))
            .map_err(|e| BootError::LogDir {
                path: meta.display().to_string(),
                reason: e.to_string(),
            })?;
    }
    Ok(cluster_id)
}

/// A new cluster id in Kafka's form: a random UUID, base64url without padding.
fn new_cluster_id() -> String {
    base64_uuid(uuid::Uuid::new_v4())
}

pub(crate) fn base64_uuid(id: uuid::Uuid) -> String {
    millrace_protocol::uuid_text::encode(id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_look_like_kafkas() {
        let id = base64_uuid(uuid::Uuid::nil());
        assert_eq!(id, "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(new_cluster_id().len(), 22);
    }
}
