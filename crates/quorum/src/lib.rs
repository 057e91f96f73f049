//! The KRaft-style metadata quorum: the cluster metadata log, replicated
//! across the controller voters with Raft (`openraft`), so metadata survives
//! the loss of a minority of controllers.
//!
//! # Contract
//!
//! Every metadata change is a batch of [`MetadataRecord`]s. The leader
//! [`Quorum::append`]s a batch; once a majority of voters has it on disk it
//! is committed, and every node applies it, in log order, to its
//! [`MetadataImage`] with `image.apply(offset, &record)`. Records get
//! consecutive offsets starting at 0 (blank and membership entries of the
//! Raft log take none), the same on every node, as the single-node
//! `MetadataLog` numbers them.
//!
//! - [`Quorum::start`] starts a node, or restarts it from its data dir. A
//!   node listed in [`QuorumConfig::voters`] is a voter: on first start the
//!   voters form the cluster from that list (openraft's `initialize`, which
//!   is safe to run on every voter with the same list) and campaign. Any
//!   other node is an *observer* (an openraft learner): it asks the leader
//!   to add it, then receives the log without voting.
//! - [`Quorum::append`] works on the leader only; elsewhere it answers
//!   [`QuorumError::NotLeader`] with the leader it knows of. While no leader
//!   is known it waits for one, and without a quorum it gives up after
//!   [`QuorumConfig::request_timeout_ms`] with [`QuorumError::NoQuorum`] —
//!   after which the batch may still commit later, as with any timed-out
//!   Kafka request.
//! - [`Quorum::image`] / [`Quorum::subscribe`] give the latest committed and
//!   applied image (`Controller::subscribe`'s shape); [`Quorum::leader`],
//!   [`Quorum::is_leader`], [`Quorum::watch_leader`] tell who leads.
//! - [`Quorum::forward`] sends an opaque request to the leader's handler
//!   (set with [`Quorum::set_request_handler`]): how a broker that is not
//!   the active controller hands CreateTopics and the like to the one that
//!   is.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//!
//! use futures::FutureExt;
//! use millrace_quorum::{Quorum, QuorumConfig, QuorumError};
//!
//! # async fn run(records: Vec<millrace_metadata::records::MetadataRecord>) -> Result<(), QuorumError> {
//! let voters: BTreeMap<i32, SocketAddr> = (1..=3)
//!     .map(|id| (id, SocketAddr::from(([10, 0, 0, id as u8], 9093))))
//!     .collect();
//! let config = QuorumConfig::new(1, voters, ([10, 0, 0, 1], 9093).into(), "/var/lib/millrace/quorum".into());
//! let quorum = Quorum::start(config).await?;
//! // The active controller answers what other brokers forward to it.
//! quorum.set_request_handler(Arc::new(|request| async move { request }.boxed()));
//! match quorum.append(records).await {
//!     Ok(offset) => println!("committed up to offset {offset}"),
//!     Err(QuorumError::NotLeader { leader }) => println!("ask node {leader:?}"),
//!     Err(e) => return Err(e),
//! }
//! let mut images = quorum.subscribe();
//! while images.changed().await.is_ok() {
//!     println!("metadata now at offset {}", images.borrow().offset);
//! }
//! quorum.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Durability
//!
//! Log entries, the vote and the commit point are fsynced before they are
//! acknowledged; a restarted node loads its latest snapshot and re-applies
//! the committed log after it, so it never shows an older image than it
//! showed before. After [`QuorumConfig::snapshot_max_record_bytes`] bytes of
//! records (or [`QuorumConfig::snapshot_max_interval_ms`] after the last
//! snapshot, if records arrived since) a node writes a snapshot (the records
//! of `MetadataImage::to_records`) and purges the log it covers, keeping at
//! most [`QuorumConfig::entries_kept_after_snapshot`] entries and nothing
//! the previous snapshot covered; a follower too far behind receives the
//! snapshot instead of the log.
//!
//! Files in [`QuorumConfig::data_dir`]:
//!
//! ```text
//! quorum.node   the node id the dir belongs to (another id refuses to start)
//! raft.log      checked lines "<crc32c hex> <JSON>\n": a header naming the
//!               last purged entry, then one line per Raft entry; a torn last
//!               line is cut at start, damage elsewhere refuses to start
//! vote          the vote (term, voted-for), replaced atomically
//! committed     the last known commit point, replaced atomically
//! snapshot      the latest snapshot: Raft position, membership, image
//!               offset and records, replaced atomically
//! ```
//!
//! "Replaced atomically" means written to `<name>.tmp`, fsynced, renamed,
//! and the directory fsynced; purging rewrites `raft.log` the same way.
//!
//! # Network
//!
//! One TCP listener per node ([`QuorumConfig::listen`], Kafka's CONTROLLER
//! listener) carries frames of a 4-byte big-endian length and a JSON body:
//! Raft's AppendEntries, Vote and InstallSnapshot, pre-votes, forwarded
//! requests and observer joins, one request at a time per connection. A
//! node of an older version closes the connection on a pre-vote (it does
//! not decode), which counts as a no: during a rolling upgrade the nodes
//! still on the old version elect as before. Connections are
//! kept per peer and reused; a broken one is replaced. A frame over 64 MiB
//! or one that does not decode closes its connection. There is no
//! authentication yet: only voters and observers must be able to reach the
//! listener.
//!
//! # Timing
//!
//! openraft 0.9 uses the heartbeat interval as the AppendEntries timeout,
//! so it must exceed a follower's fsync latency; the election timeout must
//! be several heartbeats so one slow heartbeat does not start an election.
//!
//! # Elections and leadership
//!
//! A follower that has not heard from its leader for
//! `election_timeout_max` (openraft's leader lease) plus a random election
//! timeout campaigns, but only after a pre-vote round in which a majority
//! says it would vote for it; a voter cut off by a partition therefore
//! never raises its term and cannot depose a healthy leader when it
//! returns. Leadership lasts the lease both ways: a leader no majority has
//! acknowledged within it stops reporting itself as leader, and a follower
//! stops naming a leader it has not heard from within it. See the
//! `election` module.

mod election;
mod files;
mod log_store;
mod network;
mod server;
mod state_machine;
mod store;
mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use millrace_metadata::records::MetadataRecord;
use millrace_metadata::MetadataImage;
use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Raft, RaftMetrics, ServerState, SnapshotPolicy};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout_at, Instant};

use crate::election::{election_loop, leader_has_quorum, ElectionSettings};
use crate::files::StoreError;
use crate::log_store::LogStore;
use crate::network::{CallError, LeaderReply, NetworkFactory, Peers, Request, Response};
use crate::server::{accept_loop, stopped, ServerContext};
use crate::state_machine::{SnapshotProbe, SnapshotTriggers, SnapshotWork, StateMachine};
use crate::types::{kafka_id, raft_id, NodeId, RecordBatch, TypeConfig};

pub use crate::store::QuorumMetadataStore;

/// Answers requests forwarded to the leader (see [`Quorum::forward`]).
pub type RequestHandler = Arc<dyn Fn(Bytes) -> BoxFuture<'static, Bytes> + Send + Sync>;

/// How one node takes part in the metadata quorum.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This node's Kafka `node.id`.
    pub node_id: i32,
    /// `controller.quorum.voters`: the voters' ids and quorum addresses
    /// (usually 1 or 3). Used to form the cluster on first start and to
    /// find the leader; afterwards the replicated membership is what counts.
    pub voters: BTreeMap<i32, SocketAddr>,
    /// Where this node's quorum listener binds (the CONTROLLER listener).
    /// An observer also gives it to the leader as its address, so an
    /// observer's `listen` must be an address the voters can dial.
    pub listen: SocketAddr,
    /// Holds the Raft log, vote, commit point and snapshot; created if missing.
    pub data_dir: PathBuf,
    /// A follower that hears no leader for a random time in
    /// `[election_timeout_min_ms, election_timeout_max_ms)` campaigns.
    /// Default 2000 to 3000: Kafka's `controller.quorum.fetch.timeout.ms`
    /// (2000, after which a follower gives up on its leader) plus up to
    /// `controller.quorum.election.backoff.max.ms` (1000).
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomised election timeout.
    pub election_timeout_max_ms: u64,
    /// How often the leader heartbeats (default 500). openraft 0.9 also
    /// uses it as the timeout of every AppendEntries, so it should cover
    /// sending, fsyncing and answering the largest batch; a slower one is
    /// retried (the follower kept it) and only delays the commit.
    pub heartbeat_interval_ms: u64,
    /// Take a snapshot once this many bytes of records (their JSON, as the
    /// log stores them) were applied since the last one: Kafka's
    /// `metadata.log.max.record.bytes.between.snapshots` (default 20 MiB).
    pub snapshot_max_record_bytes: u64,
    /// Take a snapshot this long after the last one if records arrived
    /// since: Kafka's `metadata.log.max.snapshot.interval.ms` (default one
    /// hour); 0 leaves snapshots to the byte count alone.
    pub snapshot_max_interval_ms: u64,
    /// Raft entries kept after a snapshot, so a briefly lagging follower
    /// catches up from the log rather than a whole snapshot; 0 purges
    /// everything the snapshot covers. Never more than the log since the
    /// previous snapshot is kept: a follower further behind than one
    /// snapshot interval receives the snapshot.
    pub entries_kept_after_snapshot: u64,
    /// How long [`Quorum::append`] and [`Quorum::forward`] wait for a
    /// leader and a commit before they give up.
    pub request_timeout_ms: u64,
}

impl QuorumConfig {
    /// A configuration with Kafka-like timing defaults.
    pub fn new(
        node_id: i32,
        voters: BTreeMap<i32, SocketAddr>,
        listen: SocketAddr,
        data_dir: PathBuf,
    ) -> QuorumConfig {
        QuorumConfig {
            node_id,
            voters,
            listen,
            data_dir,
            election_timeout_min_ms: 2000,
            election_timeout_max_ms: 3000,
            heartbeat_interval_ms: 500,
            snapshot_max_record_bytes: 20 * 1024 * 1024,
            snapshot_max_interval_ms: 3_600_000,
            entries_kept_after_snapshot: 1000,
            request_timeout_ms: 10_000,
        }
    }

    /// Whether this node votes (else it is an observer).
    pub fn is_voter(&self) -> bool {
        self.voters.contains_key(&self.node_id)
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    fn snapshot_triggers(&self) -> SnapshotTriggers {
        SnapshotTriggers {
            max_record_bytes: self.snapshot_max_record_bytes,
            max_interval: (self.snapshot_max_interval_ms > 0)
                .then(|| Duration::from_millis(self.snapshot_max_interval_ms)),
            entries_kept: self.entries_kept_after_snapshot,
        }
    }

    /// openraft's leader lease: how long a voter that heard from the leader
    /// refuses to vote for another (`election_timeout_max`).
    fn lease(&self) -> Duration {
        Duration::from_millis(self.election_timeout_max_ms)
    }

    fn validate(&self) -> Result<(NodeId, BTreeMap<NodeId, String>), QuorumError> {
        let invalid = |reason: String| Err(QuorumError::Config(reason));
        let Some(id) = raft_id(self.node_id) else {
            return invalid(format!("node id {} is negative", self.node_id));
        };
        if self.voters.is_empty() {
            return invalid("no voters configured".into());
        }
        let mut voters = BTreeMap::new();
        for (&voter, addr) in &self.voters {
            let Some(voter_id) = raft_id(voter) else {
                return invalid(format!("voter id {voter} is negative"));
            };
            voters.insert(voter_id, addr.to_string());
        }
        if !self.is_voter() && self.listen.ip().is_unspecified() {
            return invalid(format!(
                "an observer's listen address ({}) is what voters dial; it cannot be unspecified",
                self.listen
            ));
        }
        if self.election_timeout_min_ms >= self.election_timeout_max_ms
            || self.heartbeat_interval_ms == 0
            || self.heartbeat_interval_ms >= self.election_timeout_min_ms
        {
            return invalid(format!(
                "need 0 < heartbeat ({}) < election timeout min ({}) < max ({})",
                self.heartbeat_interval_ms,
                self.election_timeout_min_ms,
                self.election_timeout_max_ms
            ));
        }
        Ok((id, voters))
    }

    fn raft_config(&self) -> Result<openraft::Config, QuorumError> {
        let config = openraft::Config {
            cluster_name: "millrace-metadata".into(),
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            heartbeat_interval: self.heartbeat_interval_ms,
            // Covers sending and installing a whole snapshot chunk.
            install_snapshot_timeout: self.election_timeout_max_ms.max(5_000),
            // Elections start from `election::election_loop`, after a
            // pre-vote round.
            enable_elect: false,
            // Snapshots follow record bytes and time, not entries, and the
            // log is purged by `snapshot_loop` as the state machine says.
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: u64::MAX,
            purge_batch_size: 1,
            ..Default::default()
        };
        config
            .validate()
            .map_err(|e| QuorumError::Config(e.to_string()))
    }
}

/// Why a quorum operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    /// Only the leader appends; this is the leader this node knows of.
    #[error("not the metadata quorum leader (leader: {leader:?})")]
    NotLeader {
        /// The leader's node id, if one is known.
        leader: Option<i32>,
    },
    /// No leader with a majority behind it committed the batch in time. The
    /// batch may still commit later if it reached the leader's log.
    #[error("no metadata quorum: not committed within {waited:?}")]
    NoQuorum {
        /// How long the append waited.
        waited: Duration,
    },
    /// No leader could be reached in time to forward a request.
    #[error("no reachable metadata quorum leader within {waited:?}")]
    NoLeader {
        /// How long forwarding waited.
        waited: Duration,
    },
    /// The leader refused a forwarded request (for instance, no handler).
    #[error("the metadata quorum leader failed the request: {0}")]
    Remote(String),
    /// A forwarded request was sent but its answer was lost; the leader may
    /// or may not have served it.
    #[error("metadata quorum network: {0}")]
    Network(String),
    /// The configuration cannot work.
    #[error("invalid metadata quorum config: {0}")]
    Config(String),
    /// The data dir could not be read or written, or is corrupt.
    #[error("metadata quorum storage: {0}")]
    Storage(String),
    /// The listener could not bind.
    #[error("metadata quorum listener {addr}: {reason}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The node is shut down, or Raft stopped after a fatal (storage) error.
    #[error("metadata quorum stopped: {0}")]
    Stopped(String),
}

impl From<StoreError> for QuorumError {
    fn from(e: StoreError) -> QuorumError {
        QuorumError::Storage(e.to_string())
    }
}

/// A snapshot of this node's view of the quorum (what Kafka's DescribeQuorum
/// reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// The leader, if known.
    pub leader: Option<i32>,
    /// The current Raft term (Kafka's leader epoch of the metadata log).
    pub term: u64,
    /// Whether this node is the leader.
    pub is_leader: bool,
    /// Voters of the replicated membership.
    pub voters: BTreeSet<i32>,
    /// Observers (openraft learners) of the replicated membership.
    pub observers: BTreeSet<i32>,
    /// Index of the last Raft entry in this node's log.
    pub last_log_index: Option<u64>,
    /// Index of the last Raft entry applied to the image.
    pub applied_index: Option<u64>,
    /// Index of the last Raft entry purged after a snapshot.
    pub purged_index: Option<u64>,
    /// Metadata offset the latest local snapshot covers.
    pub snapshot_offset: Option<i64>,
}

/// A running quorum node. Share it as `Arc<Quorum>`; stop it with
/// [`Quorum::shutdown`] (dropping it leaves the Raft tasks running).
pub struct Quorum {
    config: QuorumConfig,
    id: NodeId,
    view: LeaderView,
    raft: Raft<TypeConfig>,
    image_tx: watch::Sender<Arc<MetadataImage>>,
    leader_rx: watch::Receiver<Option<i32>>,
    handler: Arc<RwLock<Option<RequestHandler>>>,
    peers: Arc<Peers>,
    snapshots: SnapshotProbe,
    shutdown_tx: watch::Sender<bool>,
    shut_down: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

const NODE_FILE: &str = "quorum.node";

/// Identifies the node a data dir belongs to.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct NodeFile {
    node_id: i32,
}

impl Quorum {
    /// Starts (or restarts from `data_dir`) this node. Voters campaign; a
    /// node not in `voters` is an observer that only replicates. Returns once
    /// the node serves: its image already holds everything it had committed
    /// before a restart.
    pub async fn start(config: QuorumConfig) -> Result<Arc<Quorum>, QuorumError> {
        let (id, voters) = config.validate()?;
        let raft_config = config.raft_config()?;
        let (snapshot_tx, snapshot_rx) = mpsc::unbounded_channel();
        let dir = config.data_dir.clone();
        let node_id = config.node_id;
        let triggers = config.snapshot_triggers();
        let (log_store, state_machine) = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir).map_err(files::io_error(&dir))?;
            match files::read_checked::<NodeFile>(&dir.join(NODE_FILE))? {
                Some(NodeFile { node_id: owner }) if owner != node_id => {
                    return Err(QuorumError::Config(format!(
                        "{} belongs to node {owner}, not {node_id}",
                        dir.display()
                    )))
                }
                Some(_) => {}
                None => files::write_checked(&dir, NODE_FILE, &NodeFile { node_id })?,
            }
            let log_store = LogStore::open(&dir)?;
            let state_machine = StateMachine::open(&dir, triggers, snapshot_tx)?;
            Ok::<_, QuorumError>((log_store, state_machine))
        })
        .await
        .map_err(|e| QuorumError::Storage(e.to_string()))??;
        let image_tx = state_machine.image_sender();
        let snapshots = state_machine.snapshot_probe();
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| QuorumError::Listen {
                addr: config.listen,
                reason: e.to_string(),
            })?;
        // Port 0 (an observer without a controller listener of its own):
        // what the leader dials is the port actually bound.
        let mut config = config;
        if config.listen.port() == 0 {
            if let Ok(bound) = listener.local_addr() {
                config.listen.set_port(bound.port());
            }
        }
        let peers = Arc::new(Peers::default());
        let network = NetworkFactory {
            peers: peers.clone(),
            retry_backoff: Duration::from_millis(config.heartbeat_interval_ms),
        };
        let raft = Raft::new(id, Arc::new(raft_config), network, log_store, state_machine)
            .await
            .map_err(|e| QuorumError::Storage(e.to_string()))?;
        if config.is_voter() {
            let members: BTreeMap<NodeId, BasicNode> = voters
                .iter()
                .map(|(&voter, addr)| (voter, BasicNode::new(addr)))
                .collect();
            match raft.initialize(members).await {
                Ok(()) => tracing::info!(voters = ?voters, "metadata quorum formed"),
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => {
                    let _ = raft.shutdown().await;
                    return Err(QuorumError::Config(e.to_string()));
                }
            }
        }

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (leader_tx, leader_rx) = watch::channel(None);
        let handler = Arc::new(RwLock::new(None));
        let context = Arc::new(ServerContext {
            raft: raft.clone(),
            node_id: id,
            voters,
            handler: handler.clone(),
            request_timeout: config.request_timeout(),
            lease: config.lease(),
        });
        let view = LeaderView {
            lease: config.lease(),
            silent: Arc::new(AtomicBool::new(false)),
        };
        let mut tasks = vec![
            tokio::spawn(accept_loop(listener, context, shutdown_rx.clone())),
            tokio::spawn(leader_loop(
                raft.clone(),
                view.clone(),
                leader_tx,
                shutdown_rx.clone(),
            )),
            tokio::spawn(election_loop(
                raft.clone(),
                peers.clone(),
                ElectionSettings {
                    id,
                    lease: config.lease(),
                    tick: Duration::from_millis(config.heartbeat_interval_ms),
                    round_timeout: Duration::from_millis(config.election_timeout_min_ms),
                    leader_silent: view.silent.clone(),
                },
                shutdown_rx.clone(),
            )),
            tokio::spawn(snapshot_loop(
                raft.clone(),
                snapshot_rx,
                snapshots.clone(),
                config.snapshot_triggers().max_interval,
                shutdown_rx.clone(),
            )),
        ];
        let quorum = Arc::new(Quorum {
            config,
            id,
            view,
            raft,
            image_tx,
            leader_rx,
            handler,
            peers,
            snapshots,
            shutdown_tx,
            shut_down: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
        });
        if !quorum.config.is_voter() {
            tasks.push(tokio::spawn(observer_join_loop(
                Arc::downgrade(&quorum),
                shutdown_rx,
            )));
        }
        *quorum.tasks.lock() = tasks;
        tracing::info!(
            node_id = quorum.config.node_id,
            listen = %quorum.config.listen,
            voter = quorum.config.is_voter(),
            offset = quorum.image().offset,
            "metadata quorum node started"
        );
        Ok(quorum)
    }

    /// This node's id.
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// Appends one batch atomically, on the leader only. Resolves once the
    /// batch is committed and applied here (so [`Quorum::image`] shows it)
    /// with the offset of its last record (for an empty batch, of the last
    /// record before it).
    pub async fn append(&self, records: Vec<MetadataRecord>) -> Result<i64, QuorumError> {
        let waited = self.config.request_timeout();
        let deadline = Instant::now() + waited;
        match self.wait_for_leader(deadline).await? {
            Some(leader) if leader == self.id => {}
            Some(leader) => {
                return Err(QuorumError::NotLeader {
                    leader: kafka_id(leader),
                })
            }
            None => return Err(QuorumError::NoQuorum { waited }),
        }
        let written = timeout_at(deadline, self.raft.client_write(RecordBatch { records })).await;
        match written {
            Err(_) => Err(QuorumError::NoQuorum { waited }),
            Ok(Ok(response)) => Ok(response.data.last_offset),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                Err(QuorumError::NotLeader {
                    leader: forward.leader_id.and_then(kafka_id),
                })
            }
            Ok(Err(RaftError::APIError(e))) => Err(QuorumError::Stopped(e.to_string())),
            Ok(Err(RaftError::Fatal(e))) => Err(QuorumError::Stopped(e.to_string())),
        }
    }

    /// Waits until some leader is known or `deadline` passes (`Ok(None)`).
    async fn wait_for_leader(&self, deadline: Instant) -> Result<Option<NodeId>, QuorumError> {
        let mut metrics = self.raft.metrics();
        loop {
            if let Some(leader) = self.view.known_leader(&metrics.borrow_and_update()) {
                return Ok(Some(leader));
            }
            match timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(QuorumError::Stopped("raft stopped".into())),
                Err(_) => return Ok(None),
            }
        }
    }

    /// On the leader: confirms leadership with a majority and waits until
    /// everything committed so far (earlier leaders' entries included) is
    /// applied, then returns the image. What the active controller must
    /// validate a change against, so a fresh leader never decides on an
    /// image older than the log.
    pub async fn linearizable_image(&self) -> Result<Arc<MetadataImage>, QuorumError> {
        let waited = self.config.request_timeout();
        match tokio::time::timeout(waited, self.raft.ensure_linearizable()).await {
            Err(_) => Err(QuorumError::NoQuorum { waited }),
            Ok(Ok(_)) => Ok(self.image()),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward)))) => {
                Err(QuorumError::NotLeader {
                    leader: forward.leader_id.and_then(kafka_id),
                })
            }
            Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)))) => {
                Err(QuorumError::NoQuorum { waited })
            }
            Ok(Err(RaftError::Fatal(e))) => Err(QuorumError::Stopped(e.to_string())),
        }
    }

    /// The latest committed-and-applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image_tx.borrow().clone()
    }

    /// A receiver that sees every image applied from now on.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image_tx.subscribe()
    }

    /// The current leader, if known.
    pub fn leader(&self) -> Option<i32> {
        *self.leader_rx.borrow()
    }

    /// Whether this node is the leader now.
    pub fn is_leader(&self) -> bool {
        self.view.known_leader(&self.raft.metrics().borrow()) == Some(self.id)
    }

    /// A receiver of leader changes (`None` while an election runs).
    pub fn watch_leader(&self) -> watch::Receiver<Option<i32>> {
        self.leader_rx.clone()
    }

    /// This node's view of the quorum.
    pub fn status(&self) -> QuorumStatus {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        QuorumStatus {
            leader: metrics.current_leader.and_then(kafka_id),
            term: metrics.current_term,
            is_leader: self.view.known_leader(&metrics) == Some(self.id),
            voters: voters.iter().filter_map(|&id| kafka_id(id)).collect(),
            observers: membership
                .nodes()
                .filter(|(id, _)| !voters.contains(id))
                .filter_map(|(&id, _)| kafka_id(id))
                .collect(),
            last_log_index: metrics.last_log_index,
            applied_index: metrics.last_applied.map(|l| l.index),
            purged_index: metrics.purged.map(|l| l.index),
            snapshot_offset: self.snapshots.offset(),
        }
    }

    /// Sends `request` to the leader's request handler and returns its
    /// answer; on the leader itself the handler runs here. While no leader
    /// is known, or the one known is unreachable or has stepped down, it
    /// retries until [`QuorumConfig::request_timeout_ms`] passes
    /// ([`QuorumError::NoLeader`]). A request that reached the leader is
    /// never sent twice: if its answer is lost, [`QuorumError::Network`].
    pub async fn forward(&self, request: Bytes) -> Result<Bytes, QuorumError> {
        let waited = self.config.request_timeout();
        let deadline = Instant::now() + waited;
        let retry = Duration::from_millis(self.config.heartbeat_interval_ms);
        let mut hint: Option<NodeId> = None;
        let body = request.to_vec();
        loop {
            let leader = match hint.take() {
                Some(leader) => Some(leader),
                None => self.wait_for_leader(deadline).await?,
            };
            let Some(leader) = leader else {
                return Err(QuorumError::NoLeader { waited });
            };
            if leader == self.id {
                let handler = self.handler.read().clone();
                return match handler {
                    Some(handler) => Ok(handler(request).await),
                    None => Err(QuorumError::Remote(
                        "the leader has no request handler registered".into(),
                    )),
                };
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Some(addr) = self.address_of(leader) else {
                return Err(QuorumError::Config(format!(
                    "no address known for leader {leader}"
                )));
            };
            match self
                .peers
                .call(&addr, &Request::Forward(body.clone()), remaining)
                .await
            {
                Ok(Response::Forwarded(LeaderReply::Ok(answer))) => return Ok(Bytes::from(answer)),
                Ok(Response::Forwarded(LeaderReply::Failed(reason))) => {
                    return Err(QuorumError::Remote(reason))
                }
                Ok(Response::Forwarded(LeaderReply::NotLeader { leader: newer })) => {
                    hint = newer.filter(|&n| n != leader);
                }
                Ok(other) => {
                    return Err(QuorumError::Network(format!(
                        "{addr} answered a forward with {other:?}"
                    )))
                }
                Err(e @ CallError::Unreachable { .. }) => {
                    tracing::debug!(error = %e, "leader unreachable; retrying");
                }
                Err(e @ CallError::Failed { .. }) => {
                    return Err(QuorumError::Network(e.to_string()))
                }
            }
            if Instant::now() >= deadline {
                return Err(QuorumError::NoLeader { waited });
            }
            if hint.is_none() {
                sleep_until(deadline.min(Instant::now() + retry)).await;
            }
        }
    }

    /// Registers the handler that answers forwarded requests while this
    /// node leads (replacing any earlier one).
    pub fn set_request_handler(&self, handler: RequestHandler) {
        *self.handler.write() = Some(handler);
    }

    /// Fault injection: makes this node behave as if the network between
    /// it and `peers` were cut (`cut == true`) or heals it. Every quorum
    /// request this node sends to them fails as unreachable, unsent; cut
    /// the other direction on the peers too for a full partition. Running
    /// clusters never call it; it exists so partition tests drive the real
    /// Raft, pre-vote and forwarding code over real sockets.
    pub fn cut_off(&self, peers: &[i32], cut: bool) {
        let addrs: Vec<String> = peers
            .iter()
            .filter_map(|&peer| raft_id(peer))
            .filter_map(|peer| self.address_of(peer))
            .collect();
        self.peers.set_cut_off(&addrs, cut);
        tracing::warn!(?peers, cut, "metadata quorum fault injection");
    }

    /// Where node `id`'s quorum listener is: the replicated membership
    /// first, then the configured voters.
    fn address_of(&self, id: NodeId) -> Option<String> {
        let from_membership = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .map(|node| node.addr.clone());
        from_membership.or_else(|| {
            kafka_id(id)
                .and_then(|k| self.config.voters.get(&k))
                .map(|addr| addr.to_string())
        })
    }

    /// Stops this node: the listener closes, Raft stops, background tasks
    /// end. Everything acknowledged is already on disk. Idempotent.
    pub async fn shutdown(&self) {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = self.shutdown_tx.send(true);
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not stop cleanly");
        }
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for task in tasks {
            let _ = task.await;
        }
        self.peers.close_all();
        tracing::info!(
            node_id = self.config.node_id,
            "metadata quorum node stopped"
        );
    }
}

/// How this node decides whom to name as leader.
#[derive(Clone)]
struct LeaderView {
    /// openraft's leader lease (see `QuorumConfig::lease`).
    lease: Duration,
    /// Kept up by the election loop: whether the leader this node follows
    /// has been silent for the lease.
    silent: Arc<AtomicBool>,
}

impl LeaderView {
    /// The leader per these metrics, if its leadership is established.
    /// Leadership lasts the lease both ways (check quorum, see
    /// `election`): this node counts as leader only while a majority
    /// acknowledged it within the lease, so a leader cut off from the
    /// other voters stops acting as one before they may elect another; and
    /// a follower stops naming a leader it has not heard from within it.
    fn known_leader(&self, metrics: &RaftMetrics<NodeId, BasicNode>) -> Option<NodeId> {
        let leader = metrics.current_leader?;
        if leader == metrics.id {
            if metrics.state != ServerState::Leader || !leader_has_quorum(metrics, self.lease) {
                return None;
            }
        } else if self.silent.load(Ordering::Acquire) {
            return None;
        }
        Some(leader)
    }
}

/// Publishes leader changes from openraft's metrics.
async fn leader_loop(
    raft: Raft<TypeConfig>,
    view: LeaderView,
    leader_tx: watch::Sender<Option<i32>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut metrics = raft.metrics();
    loop {
        let (leader, term) = {
            let m = metrics.borrow_and_update();
            (view.known_leader(&m).and_then(kafka_id), m.current_term)
        };
        let changed = leader_tx.send_if_modified(|current| {
            let changed = *current != leader;
            *current = leader;
            changed
        });
        if changed {
            match leader {
                Some(leader) => tracing::info!(leader, term, "metadata quorum leader elected"),
                None => tracing::info!(term, "metadata quorum has no leader"),
            }
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            () = stopped(&mut shutdown) => return,
        }
    }
}

/// Has openraft build a snapshot whenever the state machine asks for one,
/// and, with a snapshot interval, when the interval has passed since the
/// last snapshot with records after it but none arrive to ask (the state
/// machine only looks when it applies records).
async fn snapshot_loop(
    raft: Raft<TypeConfig>,
    mut wanted: mpsc::UnboundedReceiver<SnapshotWork>,
    snapshots: SnapshotProbe,
    interval: Option<Duration>,
    mut shutdown: watch::Receiver<bool>,
) {
    // A tenth of the interval late at most, and no busier than 10 Hz.
    let check_every =
        interval.map(|i| (i / 10).clamp(Duration::from_millis(100), Duration::from_secs(60)));
    loop {
        let check = async {
            match check_every {
                Some(every) => tokio::time::sleep(every).await,
                None => std::future::pending().await,
            }
        };
        let work = tokio::select! {
            request = wanted.recv() => match request {
                Some(work) => Some(work),
                None => return,
            },
            () = check => snapshots.due_by_time().then_some(SnapshotWork::Build),
            () = stopped(&mut shutdown) => return,
        };
        let done = match work {
            None => Ok(()),
            Some(SnapshotWork::Build) => raft.trigger().snapshot().await,
            Some(SnapshotWork::PurgeUpTo(upto)) => {
                // The state machine asks as it finishes building; openraft
                // purges only what it already knows a snapshot covers.
                let mut metrics = raft.metrics();
                let known = metrics.wait_for(|m| m.snapshot.is_some_and(|s| s.index >= upto));
                tokio::select! {
                    _ = tokio::time::timeout(Duration::from_secs(10), known) => {}
                    () = stopped(&mut shutdown) => return,
                }
                raft.trigger().purge_log(upto).await
            }
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, ?work, "metadata snapshot task stops: raft stopped");
            return;
        }
    }
}

/// Keeps an observer in the replicated membership: while it is not there,
/// asks the leader (or, not knowing it, each voter in turn) to add it.
async fn observer_join_loop(quorum: std::sync::Weak<Quorum>, mut shutdown: watch::Receiver<bool>) {
    let mut next_voter = 0usize;
    loop {
        let Some(q) = quorum.upgrade() else { return };
        let retry = Duration::from_millis(q.config.heartbeat_interval_ms);
        let mut metrics = q.raft.metrics();
        // A member at another address (a restart on a new port) joins
        // again, so the leader replicates to where it listens now.
        let listen = q.config.listen.to_string();
        let member = metrics
            .borrow_and_update()
            .membership_config
            .membership()
            .get_node(&q.id)
            .is_some_and(|node| node.addr == listen);
        if member {
            drop(q);
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                () = stopped(&mut shutdown) => return,
            }
            continue;
        }
        let target = match q.view.known_leader(&metrics.borrow()) {
            Some(leader) => q.address_of(leader),
            None => {
                let voters: Vec<String> = q.config.voters.values().map(|a| a.to_string()).collect();
                next_voter = (next_voter + 1) % voters.len().max(1);
                voters.get(next_voter).cloned()
            }
        };
        if let Some(addr) = target {
            let join = Request::JoinAsObserver {
                node_id: q.id,
                addr: q.config.listen.to_string(),
            };
            match q.peers.call(&addr, &join, q.config.request_timeout()).await {
                Ok(Response::Joined(LeaderReply::Ok(()))) => {
                    tracing::info!(leader = %addr, "joined the metadata quorum as an observer");
                }
                Ok(Response::Joined(LeaderReply::NotLeader {
                    leader: Some(leader),
                })) => {
                    if let Some(addr) = q.address_of(leader) {
                        let _ = q.peers.call(&addr, &join, q.config.request_timeout()).await;
                    }
                }
                Ok(other) => tracing::debug!(?other, %addr, "observer join not accepted yet"),
                Err(e) => tracing::debug!(error = %e, "observer join failed"),
            }
        }
        drop(q);
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            () = stopped(&mut shutdown) => return,
        }
    }
}
