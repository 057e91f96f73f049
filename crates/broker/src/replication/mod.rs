//! Replication: followers pull from their leaders, and leaders keep the ISR.
//!
//! - [`fetcher`]: a task per (leader broker, fetcher id) that replicates the
//!   partitions this broker follows on that leader (`num.replica.fetchers`
//!   tasks per leader; a partition's fetcher is chosen by hash).
//! - [`peer_client`]: the broker-to-broker Kafka client they use.
//! - [`ReplicaManager`]: follows each new metadata image (start, move or stop
//!   fetchers), and, as leader, periodically asks the controller to shrink
//!   the ISR by followers that stopped catching up within
//!   `replica.lag.time.max.ms` or to expand it by followers that caught up
//!   (AlterPartition).
//!
//! The leader side of the protocol (follower positions, the high watermark
//! as the minimum log end offset over the ISR) lives in
//! [`crate::partition::Partition`].

pub mod fetcher;
pub mod peer_client;
pub mod throttle;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use millrace_config::BrokerConfig;
use millrace_metadata::controller::AlterPartitionSpec;
use parking_lot::Mutex;

use crate::broker::Broker;
use crate::partition::Partition;
use fetcher::{FetcherSettings, FetcherState};
use throttle::ByteRate;

/// Fetchers and ISR upkeep for one broker.
pub struct ReplicaManager {
    broker: Weak<Broker>,
    settings: FetcherSettings,
    fetchers_per_leader: usize,
    lag_max_ms: i64,
    fetchers: Mutex<HashMap<FetcherKey, Arc<FetcherState>>>,
    /// Throttled follower traffic of all fetchers (one quota per broker,
    /// as Kafka's follower `ReplicationQuotaManager`).
    follower_quota: Arc<ByteRate>,
    /// Throttled traffic this broker serves as leader to followers
    /// (`leader.replication.throttled.rate`).
    leader_quota: ByteRate,
    /// `auto.leader.rebalance.enable`, `leader.imbalance.check.interval.seconds`
    /// and `leader.imbalance.per.broker.percentage`.
    rebalance: Option<(Duration, i32)>,
}

/// A fetcher is named by its source (leader) broker and its index among
/// that broker's `num.replica.fetchers`.
type FetcherKey = (i32, usize);

impl ReplicaManager {
    /// The leader-side replication quota: what this broker sends, as
    /// leader, to followers its topics' `leader.replication.throttled.replicas`
    /// name while they are out of the ISR.
    pub fn leader_quota(&self) -> &ByteRate {
        &self.leader_quota
    }

    /// A manager for `broker`, configured from its static configuration.
    pub fn new(broker: Weak<Broker>, config: &BrokerConfig) -> ReplicaManager {
        ReplicaManager {
            broker,
            settings: FetcherSettings {
                wait_max_ms: config.replica_fetch_wait_max_ms(),
                min_bytes: config.replica_fetch_min_bytes().max(1),
                partition_max_bytes: config.replica_fetch_max_bytes(),
                response_max_bytes: config.replica_fetch_response_max_bytes(),
                backoff: Duration::from_millis(config.replica_fetch_backoff_ms().max(1) as u64),
                socket_timeout: Duration::from_millis(
                    config.replica_socket_timeout_ms().max(1) as u64
                ),
                listener: config.inter_broker_listener_name().to_string(),
            },
            fetchers_per_leader: config.num_replica_fetchers().max(1) as usize,
            lag_max_ms: config.replica_lag_time_max_ms().max(1),
            fetchers: Mutex::new(HashMap::new()),
            follower_quota: Arc::new(ByteRate::default()),
            leader_quota: ByteRate::default(),
            rebalance: config.auto_leader_rebalance_enable().then(|| {
                (
                    Duration::from_secs(
                        config.leader_imbalance_check_interval_seconds().max(1) as u64
                    ),
                    config.leader_imbalance_per_broker_percentage(),
                )
            }),
        }
    }

    /// Brings fetchers in line with the hosted partitions' leadership: every
    /// partition this broker follows (leader elsewhere, this broker a
    /// replica) is replicated by exactly one fetcher on its leader.
    pub fn sync(&self, partitions: &[Arc<Partition>], node_id: i32) {
        let mut wanted: HashMap<FetcherKey, Vec<(Arc<Partition>, i32)>> = HashMap::new();
        for p in partitions {
            let state = p.leader_state();
            if state.leader < 0 || state.leader == node_id {
                continue;
            }
            let id = self.fetcher_id(p.topic(), p.index());
            wanted
                .entry((state.leader, id))
                .or_default()
                .push((p.clone(), state.leader_epoch));
        }
        let mut fetchers = self.fetchers.lock();
        for (key, state) in fetchers.iter() {
            let keep: Vec<(String, i32)> = wanted
                .get(key)
                .map(|v| {
                    v.iter()
                        .map(|(p, _)| (p.topic().to_string(), p.index()))
                        .collect()
                })
                .unwrap_or_default();
            state.retain(|k| keep.contains(k));
        }
        for (key, list) in wanted {
            let state = fetchers.entry(key).or_insert_with(|| {
                let state = Arc::new(FetcherState::default());
                tokio::spawn(fetcher::run(
                    self.broker.clone(),
                    key.0,
                    key.1,
                    state.clone(),
                    self.settings.clone(),
                    self.follower_quota.clone(),
                ));
                state
            });
            for (partition, epoch) in list {
                state.add(partition, epoch);
            }
        }
    }

    fn fetcher_id(&self, topic: &str, partition: i32) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (topic, partition).hash(&mut h);
        (h.finish() as usize) % self.fetchers_per_leader
    }

    /// Runs the ISR upkeep until the broker shuts down: every half
    /// `replica.lag.time.max.ms` (Kafka's isr-expiration schedule), each led
    /// partition whose wanted ISR differs from the committed one asks the
    /// controller to change it. The preferred-leader rebalance
    /// (`auto.leader.rebalance.enable`) runs from the same loop every
    /// `leader.imbalance.check.interval.seconds`; the controller only acts
    /// where it is the active one.
    pub async fn run_isr_upkeep(self: Arc<Self>) {
        let mut period = Duration::from_millis((self.lag_max_ms / 2).clamp(50, 5000) as u64);
        if let Some((interval, _)) = self.rebalance {
            period = period.min(interval);
        }
        let mut last_rebalance = Instant::now();
        loop {
            let Some(broker) = self.broker.upgrade() else {
                return;
            };
            let shutdown = broker.shutdown_token();
            if let Some((interval, percentage)) = self.rebalance {
                if last_rebalance.elapsed() >= interval {
                    last_rebalance = Instant::now();
                    let controller = broker.controller().clone();
                    tokio::spawn(async move {
                        let result = tokio::task::spawn_blocking(move || {
                            controller.balance_partition_leaders(percentage)
                        })
                        .await;
                        if let Ok(Err(e)) = result {
                            tracing::info!(error = %e, "preferred leader rebalance failed");
                        }
                    });
                }
            }
            for partition in broker.partitions().all() {
                if let Some(wanted) = partition.wanted_isr_change(self.lag_max_ms) {
                    let spec = AlterPartitionSpec {
                        topic_id: partition.topic_id(),
                        partition: partition.index(),
                        leader_id: wanted.leader,
                        leader_epoch: wanted.leader_epoch,
                        partition_epoch: wanted.partition_epoch,
                        new_isr: wanted.isr.clone(),
                    };
                    let controller = broker.controller().clone();
                    let p = partition.clone();
                    tokio::spawn(async move {
                        let result =
                            tokio::task::spawn_blocking(move || controller.alter_partition(spec))
                                .await;
                        match result {
                            Ok(Ok(_)) => {
                                tracing::info!(
                                    partition = %format!("{}-{}", p.topic(), p.index()),
                                    isr = ?wanted.isr,
                                    "ISR changed"
                                );
                            }
                            Ok(Err(e)) => {
                                tracing::info!(
                                    partition = %format!("{}-{}", p.topic(), p.index()),
                                    error = %e,
                                    "ISR change refused"
                                );
                                p.isr_change_failed();
                            }
                            Err(_) => p.isr_change_failed(),
                        }
                    });
                }
            }
            drop(broker);
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}
