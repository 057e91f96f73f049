//! A controller-only node (`process.roles=controller`, KRaft's isolated
//! mode): a metadata quorum voter and a controller, with no Kafka listener,
//! no logs and no broker registration.
//!
//! Large clusters keep the controllers apart from the brokers so that a
//! broker's load (or its restart) never slows the metadata quorum. Brokers
//! (`process.roles=broker`) join the quorum as observers and forward their
//! controller requests (registration, heartbeats, CreateTopics, AlterPartition)
//! to the quorum leader, which on such a cluster is always one of these
//! nodes; the active controller fences brokers whose session expired.

use std::sync::Arc;
use std::time::Duration;

use millrace_config::broker::ProcessRole;
use millrace_config::BrokerConfig;
use millrace_metadata::{Controller, MetadataImage};
use millrace_quorum::{Quorum, QuorumMetadataStore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::{controller_config, prepare_log_dirs, BootError};
use crate::cluster_metadata;
use crate::config_bridge::MillraceConfigValidator;
use crate::settings::BrokerSettings;

/// A running controller-only node and the handle to stop it.
pub struct ControllerNode {
    node_id: i32,
    cluster_id: String,
    controller: Arc<Controller>,
    quorum: Arc<Quorum>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl ControllerNode {
    /// Whether `config` describes a controller-only node, which
    /// [`ControllerNode::start`] runs instead of a broker.
    pub fn is_controller_only(config: &BrokerConfig) -> bool {
        let roles = config.process_roles();
        roles.contains(&ProcessRole::Controller) && !roles.contains(&ProcessRole::Broker)
    }

    /// Joins (or forms) the metadata quorum as a voter on this node's
    /// CONTROLLER listener and starts the controller's periodic duties.
    pub async fn start(config: BrokerConfig) -> Result<ControllerNode, BootError> {
        if !Self::is_controller_only(&config) {
            return Err(BootError::Config(
                "a controller-only node needs process.roles=controller".into(),
            ));
        }
        let config = Arc::new(config);
        let settings = BrokerSettings::resolve(config.clone(), &MetadataImage::empty());
        let node_id = settings.node_id;
        let quorum_config = cluster_metadata::quorum_config(&config, &settings.metadata_log_dir)?
            .ok_or_else(|| {
            BootError::Config(
                "process.roles=controller needs controller.quorum.voters naming this node".into(),
            )
        })?;
        let cluster_id = cluster_metadata::cluster_id_for(&quorum_config);
        let cluster_id = prepare_log_dirs(&settings, Some(&cluster_id))?;

        let quorum = cluster_metadata::start_quorum(quorum_config).await?;
        let store = Arc::new(QuorumMetadataStore::new(
            quorum.clone(),
            tokio::runtime::Handle::current(),
        ));
        let validator = Arc::new(MillraceConfigValidator::new(config.clone()));
        let controller = Controller::with_store(store, controller_config(&settings), validator);
        cluster_metadata::serve_forwarded_requests(&quorum, controller.clone());

        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(cluster_metadata::run_session_checks(
            controller.clone(),
            Duration::from_millis(config.broker_heartbeat_interval_ms().max(1) as u64),
            Duration::from_millis(config.broker_session_timeout_ms().max(1) as u64),
            config.unclean_leader_election_enable(),
            shutdown.clone(),
        ));
        tasks.spawn(follow_dynamic_configs(
            controller.clone(),
            config,
            shutdown.clone(),
        ));
        tracing::info!(node_id, %cluster_id, "controller started");
        Ok(ControllerNode {
            node_id,
            cluster_id,
            controller,
            quorum,
            tasks,
            shutdown,
        })
    }

    /// This node's `node.id`.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The cluster id every node of this quorum shares.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The controller, for callers in this process (tests, tooling).
    pub fn controller(&self) -> &Arc<Controller> {
        &self.controller
    }

    /// The metadata quorum leader this node knows of (a voter's node id).
    pub fn quorum_leader(&self) -> Option<i32> {
        self.quorum.leader()
    }

    /// Stops the periodic duties and leaves the quorum; the quorum's files
    /// stay for the next start.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        self.quorum.shutdown().await;
    }
}

/// Keeps the controller's defaults (`num.partitions`,
/// `default.replication.factor`, `delete.topic.enable`) in step with dynamic
/// cluster-wide broker configs, as a broker does when it applies an image.
async fn follow_dynamic_configs(
    controller: Arc<Controller>,
    config: Arc<BrokerConfig>,
    shutdown: CancellationToken,
) {
    let mut images = controller.subscribe();
    loop {
        let image = images.borrow_and_update().clone();
        let settings = BrokerSettings::resolve(config.clone(), &image);
        controller.update_config(controller_config(&settings));
        tokio::select! {
            changed = images.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = shutdown.cancelled() => return,
        }
    }
}
