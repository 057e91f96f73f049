//! A replica fetcher: one task that keeps a set of follower partitions in
//! step with their leader on one source broker (Kafka's
//! `ReplicaFetcherThread`). Each partition first reconciles its log with the
//! leader's by leader epoch (OffsetForLeaderEpoch, KIP-101/279: truncate what
//! the leader never had), then fetches from its log end offset with the
//! follower's replica id, appends what arrives with the leader's offsets and
//! epochs, and takes the leader's high watermark.

use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use millrace_protocol::records::BatchIter;
use millrace_protocol::ErrorCode;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::peer_client::PeerClient;
use super::throttle::{self, ByteRate};
use crate::broker::Broker;
use crate::partition::Partition;

/// Fetch request version followers send: topic names and replica id in
/// the body (v12 is Kafka 3.x's last before topic ids became mandatory).
const FETCH_VERSION: i16 = 12;
/// OffsetForLeaderEpoch version followers send (v3+ carries the replica id).
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
/// How long a fetcher whose every partition is held back by the
/// replication throttle waits before measuring the rate again.
const THROTTLE_BACKOFF: Duration = Duration::from_millis(100);
/// The first retry delay of a partition the leader refused. Most refusals
/// are a leader whose metadata is a few milliseconds behind ours (it does
/// not lead the partition yet, or knows an older epoch), so the partition
/// retries soon and backs off exponentially to `replica.fetch.backoff.ms`.
const PARTITION_RETRY_MIN: Duration = Duration::from_millis(25);

/// Where one follower partition is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Must reconcile with the leader before fetching (new leader epoch).
    Truncating,
    /// Fetching from the log end offset.
    Fetching,
}

/// A partition this fetcher replicates.
#[derive(Clone)]
struct Follower {
    partition: Arc<Partition>,
    leader_epoch: i32,
    phase: Phase,
    /// Refusals by the leader in a row (reset by a successful read).
    failures: u32,
    /// Sits out the rounds until then after a refusal.
    retry_at: Option<Instant>,
}

impl Follower {
    fn ready(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|at| at <= now)
    }
}

/// The partitions one fetcher task replicates, shared with the manager
/// that adds and removes them as leadership changes.
#[derive(Default)]
pub struct FetcherState {
    followers: Mutex<BTreeMap<(String, i32), Follower>>,
    /// Counts additions, so a fetch parked at the leader can tell that a
    /// partition joined after it was sent.
    generation: AtomicU64,
    changed: Notify,
}

impl FetcherState {
    /// Starts (or restarts, on a new epoch) replicating `partition`.
    pub fn add(&self, partition: Arc<Partition>, leader_epoch: i32) {
        let key = (partition.topic().to_string(), partition.index());
        let mut followers = self.followers.lock();
        let restart = followers.get(&key).is_none_or(|f| {
            f.leader_epoch != leader_epoch || !Arc::ptr_eq(&f.partition, &partition)
        });
        if restart {
            followers.insert(
                key,
                Follower {
                    partition,
                    leader_epoch,
                    phase: Phase::Truncating,
                    failures: 0,
                    retry_at: None,
                },
            );
            drop(followers);
            self.generation.fetch_add(1, Ordering::AcqRel);
            self.changed.notify_one();
        }
    }

    /// Stops replicating the partitions `keep` rejects.
    pub fn retain(&self, mut keep: impl FnMut(&(String, i32)) -> bool) {
        self.followers.lock().retain(|k, _| keep(k));
    }

    /// Whether nothing is replicated any more.
    pub fn is_empty(&self) -> bool {
        self.followers.lock().is_empty()
    }

    fn snapshot(&self) -> Vec<((String, i32), Follower)> {
        self.followers
            .lock()
            .iter()
            .map(|(k, f)| (k.clone(), f.clone()))
            .collect()
    }

    fn set_phase(&self, key: &(String, i32), epoch: i32, phase: Phase) {
        if let Some(f) = self.followers.lock().get_mut(key) {
            if f.leader_epoch == epoch {
                f.phase = phase;
                f.failures = 0;
                f.retry_at = None;
            }
        }
    }

    /// The leader refused `key` at `epoch`: it sits out the rounds for a
    /// delay that doubles with each refusal in a row, up to `max`.
    fn delay(&self, key: &(String, i32), epoch: i32, max: Duration) {
        if let Some(f) = self.followers.lock().get_mut(key) {
            if f.leader_epoch == epoch {
                f.failures = f.failures.saturating_add(1);
                let delay = PARTITION_RETRY_MIN
                    .saturating_mul(1 << (f.failures - 1).min(16))
                    .min(max.max(PARTITION_RETRY_MIN));
                f.retry_at = Some(Instant::now() + delay);
            }
        }
    }

    /// The leader served `key` at `epoch`: no delay any more.
    fn served(&self, key: &(String, i32), epoch: i32) {
        if let Some(f) = self.followers.lock().get_mut(key) {
            if f.leader_epoch == epoch && f.retry_at.is_some() {
                f.failures = 0;
                f.retry_at = None;
            }
        }
    }

    /// The earliest future time a delayed partition may be tried again.
    fn next_retry(&self) -> Option<Instant> {
        let now = Instant::now();
        self.followers
            .lock()
            .values()
            .filter_map(|f| f.retry_at)
            .filter(|&at| at > now)
            .min()
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Completes once a partition was added (or restarted on a new epoch)
    /// after `generation`.
    async fn added_since(&self, generation: u64) {
        loop {
            let changed = self.changed.notified();
            if self.generation() > generation {
                return;
            }
            changed.await;
        }
    }
}

/// Settings a fetcher reads once, from the broker's configuration.
#[derive(Debug, Clone)]
pub struct FetcherSettings {
    /// `replica.fetch.wait.max.ms`.
    pub wait_max_ms: i32,
    /// `replica.fetch.min.bytes`.
    pub min_bytes: i32,
    /// `replica.fetch.max.bytes` (per partition).
    pub partition_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`.
    pub response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`.
    pub backoff: Duration,
    /// `replica.socket.timeout.ms`.
    pub socket_timeout: Duration,
    /// `inter.broker.listener.name`.
    pub listener: String,
}

/// What the follower-side replication throttle needs for one round: the
/// throttled replicas (topic configs in the image), the rate
/// (`follower.replication.throttled.rate`) and the broker-wide meter.
struct FollowerThrottle {
    image: Arc<millrace_metadata::MetadataImage>,
    rate: i64,
    quota: Arc<ByteRate>,
}

/// Runs one fetcher until `state` is empty and the broker shuts down or the
/// manager drops it. `quota` meters throttled replication traffic across
/// all of this broker's fetchers.
pub async fn run(
    broker: Weak<Broker>,
    leader_id: i32,
    fetcher_id: usize,
    state: Arc<FetcherState>,
    settings: FetcherSettings,
    quota: Arc<ByteRate>,
) {
    let mut client: Option<PeerClient> = None;
    loop {
        let Some(b) = broker.upgrade() else { return };
        let shutdown = b.shutdown_token();
        if shutdown.is_cancelled() {
            return;
        }
        let node_id = b.node_id();
        let addr = leader_address(&b, leader_id, &settings.listener);
        let throttle = FollowerThrottle {
            image: b.image(),
            rate: b.config().model.follower_replication_throttled_rate(),
            quota: quota.clone(),
        };
        drop(b);
        if state.is_empty() {
            tokio::select! {
                () = state.changed.notified() => continue,
                () = shutdown.cancelled() => return,
            }
        }
        let Some(addr) = addr else {
            tracing::debug!(leader_id, "leader has no inter-broker endpoint yet");
            backoff(&shutdown, settings.backoff).await;
            continue;
        };
        let peer = client.get_or_insert_with(|| {
            PeerClient::new(
                addr,
                &format!("broker-{node_id}-fetcher-{fetcher_id}"),
                settings.response_max_bytes as usize + (1 << 20),
            )
        });
        peer.retarget(addr);
        let outcome = tokio::select! {
            r = fetch_round(peer, node_id, &state, &settings, &throttle) => r,
            () = shutdown.cancelled() => return,
        };
        if let Err(reason) = outcome {
            tracing::debug!(leader_id, %reason, "replica fetch failed; backing off");
            backoff(&shutdown, settings.backoff).await;
        }
    }
}

async fn backoff(shutdown: &tokio_util::sync::CancellationToken, delay: Duration) {
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = shutdown.cancelled() => {}
    }
}

fn leader_address(broker: &Broker, leader_id: i32, listener: &str) -> Option<SocketAddr> {
    let image = broker.image();
    let registration = image.brokers.get(&leader_id)?;
    let endpoint = registration
        .endpoint(listener)
        .or_else(|| registration.endpoints.first())?;
    (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .ok()?
        .next()
}

/// One round: reconcile partitions that need it, then one fetch for the
/// rest. An error means the leader could not be reached.
async fn fetch_round(
    peer: &mut PeerClient,
    node_id: i32,
    state: &FetcherState,
    settings: &FetcherSettings,
    throttle: &FollowerThrottle,
) -> Result<(), String> {
    let generation = state.generation();
    let now = Instant::now();
    let followers = state.snapshot();
    let truncating: Vec<_> = followers
        .iter()
        .filter(|(_, f)| f.phase == Phase::Truncating && f.ready(now))
        .collect();
    if !truncating.is_empty() {
        reconcile(peer, node_id, state, &truncating, settings).await?;
    }
    // Kafka's `shouldFollowerThrottle`: a throttled replica outside the
    // ISR sits out the rounds while the quota is exceeded.
    let exceeded = throttle.quota.exceeded(throttle.rate);
    let mut throttled: HashSet<(String, i32)> = HashSet::new();
    let mut held_back = false;
    let fetching: Vec<_> = state
        .snapshot()
        .into_iter()
        .filter(|(_, f)| f.phase == Phase::Fetching && f.ready(now))
        .filter(|((topic, index), f)| {
            let in_sync = f.partition.leader_state().isr.contains(&node_id);
            if in_sync
                || !throttle::is_throttled(
                    &throttle.image,
                    "follower.replication.throttled.replicas",
                    topic,
                    *index,
                    node_id,
                )
            {
                return true;
            }
            throttled.insert((topic.clone(), *index));
            held_back |= exceeded;
            !exceeded
        })
        .collect();
    if fetching.is_empty() {
        // Nothing to fetch now: wait for the throttle, the next delayed
        // partition, or a new one, rather than spin.
        let mut until = state.next_retry();
        if held_back {
            let throttle_end = Instant::now() + THROTTLE_BACKOFF;
            until = Some(until.map_or(throttle_end, |at| at.min(throttle_end)));
        }
        let until = until.unwrap_or_else(|| Instant::now() + settings.backoff);
        tokio::select! {
            () = tokio::time::sleep_until(until) => {}
            () = state.added_since(generation) => {}
        }
        return Ok(());
    }
    let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for ((topic, index), f) in &fetching {
        topics.entry(topic.as_str()).or_default().push(
            FetchPartition::default()
                .with_partition(*index)
                .with_current_leader_epoch(f.leader_epoch)
                .with_fetch_offset(f.partition.log_end_offset())
                .with_last_fetched_epoch(f.partition.log().latest_epoch().unwrap_or(-1))
                .with_log_start_offset(f.partition.log_start_offset())
                .with_partition_max_bytes(settings.partition_max_bytes),
        );
    }
    // A refused partition sitting out its delay is retried when the delay
    // ends: the leader must not park this fetch past that.
    let wait_max_ms = match state.next_retry() {
        Some(at) => {
            let until_retry = at.saturating_duration_since(Instant::now()).as_millis();
            settings
                .wait_max_ms
                .min(i32::try_from(until_retry).unwrap_or(i32::MAX))
        }
        None => settings.wait_max_ms,
    };
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(node_id))
        .with_max_wait_ms(wait_max_ms)
        .with_min_bytes(settings.min_bytes)
        .with_max_bytes(settings.response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let timeout = settings.socket_timeout + Duration::from_millis(wait_max_ms.max(0) as u64);
    // A partition that joins while this fetch is parked at the leader
    // (a new topic, a new leader epoch after a failover) would otherwise
    // wait out `replica.fetch.wait.max.ms` before its first fetch, and
    // every acks=all write to it with it. Abandon the parked fetch instead:
    // its connection is dropped, since the answer would still arrive on it.
    let response = {
        let call = peer.call(FETCH_VERSION, &request, timeout);
        tokio::select! {
            r = call => Some(r),
            () = state.added_since(generation) => None,
        }
    };
    let Some(response) = response else {
        peer.disconnect();
        return Ok(());
    };
    let response = response.map_err(|e| e.to_string())?;
    if response.error_code != 0 {
        return Err(format!("fetch error {}", response.error_code));
    }
    for topic in &response.responses {
        for p in &topic.partitions {
            let key = (topic.topic.to_string(), p.partition_index);
            let Some((_, follower)) = fetching.iter().find(|(k, _)| *k == key) else {
                continue;
            };
            let partition = &follower.partition;
            let error = (p.error_code != 0).then(|| ErrorCode::try_from_code(p.error_code));
            match error {
                None => {
                    let records = p.records.clone().unwrap_or_default();
                    let whole = whole_batches(&records);
                    if throttled.contains(&key) {
                        throttle.quota.record(whole as u64);
                    }
                    // Only a partition that sat out a refusal has a delay
                    // to clear; the others skip the state lock.
                    if follower.retry_at.is_some() {
                        state.served(&key, follower.leader_epoch);
                    }
                    match partition.append_as_follower(&records[..whole], p.high_watermark) {
                        Ok(()) => {}
                        // Full disk or storage cap: nothing was written and
                        // the log agrees with the leader; fetch again later.
                        Err(ErrorCode::KafkaStorageError) => {
                            tracing::debug!(partition = %format!("{}-{}", key.0, key.1), "follower append refused for lack of space; backing off");
                            state.delay(&key, follower.leader_epoch, settings.backoff);
                        }
                        Err(code) => {
                            tracing::warn!(partition = %format!("{}-{}", key.0, key.1), ?code, "follower append failed; reconciling with the leader");
                            state.set_phase(&key, follower.leader_epoch, Phase::Truncating);
                        }
                    }
                }
                Some(Some(ErrorCode::OffsetOutOfRange)) => {
                    if partition.log_end_offset() < p.log_start_offset {
                        // The leader deleted what we would fetch next: start
                        // over at its log start (Kafka's
                        // truncateFullyAndStartAt).
                        if let Err(e) = partition
                            .log()
                            .truncate_fully_and_start_at(p.log_start_offset)
                        {
                            tracing::error!(partition = %format!("{}-{}", key.0, key.1), error = %e, "cannot reset follower log");
                        }
                    } else {
                        state.set_phase(&key, follower.leader_epoch, Phase::Truncating);
                    }
                }
                Some(code) => {
                    let code = code.map_or(p.error_code, |c| c.code());
                    // Leadership moved or our epoch is stale: wait for the
                    // metadata that says so.
                    tracing::debug!(partition = %format!("{}-{}", key.0, key.1), ?code, "follower fetch error");
                    state.delay(&key, follower.leader_epoch, settings.backoff);
                }
            }
        }
    }
    Ok(())
}

/// Truncates each partition to the point where its log agrees with the
/// leader's, by leader epoch, then lets it fetch.
async fn reconcile(
    peer: &mut PeerClient,
    node_id: i32,
    state: &FetcherState,
    truncating: &[&((String, i32), Follower)],
    settings: &FetcherSettings,
) -> Result<(), String> {
    let mut topics: BTreeMap<&str, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
    for ((topic, index), f) in truncating.iter().map(|e| (&e.0, &e.1)) {
        match f.partition.log().latest_epoch() {
            // Nothing in the log: nothing to reconcile.
            None => state.set_phase(&(topic.clone(), *index), f.leader_epoch, Phase::Fetching),
            Some(epoch) => topics.entry(topic.as_str()).or_default().push(
                OffsetForLeaderPartition::default()
                    .with_partition(*index)
                    .with_current_leader_epoch(f.leader_epoch)
                    .with_leader_epoch(epoch),
            ),
        }
    }
    if topics.is_empty() {
        return Ok(());
    }
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(node_id))
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response = peer
        .call(
            OFFSET_FOR_LEADER_EPOCH_VERSION,
            &request,
            settings.socket_timeout,
        )
        .await
        .map_err(|e| e.to_string())?;
    for topic in &response.topics {
        for p in &topic.partitions {
            let key = (topic.topic.to_string(), p.partition);
            let Some(entry) = truncating.iter().find(|e| e.0 == key) else {
                continue;
            };
            let follower = &entry.1;
            if p.error_code != 0 {
                tracing::debug!(partition = %format!("{}-{}", key.0, key.1), error = p.error_code, "OffsetForLeaderEpoch refused");
                state.delay(&key, follower.leader_epoch, settings.backoff);
                continue;
            }
            let log = follower.partition.log();
            let target = if p.leader_epoch < 0 || p.end_offset < 0 {
                // The leader knows no epoch at or below ours: keep what is
                // committed.
                follower.partition.high_watermark()
            } else {
                let ours = log
                    .end_offset_for_epoch(p.leader_epoch)
                    .map_or(log.log_end_offset(), |(_, end)| end);
                p.end_offset.min(ours)
            };
            if target < log.log_end_offset() {
                tracing::info!(
                    partition = %format!("{}-{}", key.0, key.1),
                    from = log.log_end_offset(),
                    to = target,
                    "truncating follower log to the leader's epoch history"
                );
                if let Err(e) = log.truncate_to(target) {
                    tracing::error!(partition = %format!("{}-{}", key.0, key.1), error = %e, "follower truncation failed");
                    continue;
                }
            }
            state.set_phase(&key, follower.leader_epoch, Phase::Fetching);
        }
    }
    Ok(())
}

/// The length of the whole batches at the front of `records` (a response
/// may end in a partial batch when it hit its size limit).
fn whole_batches(records: &[u8]) -> usize {
    let mut end = 0usize;
    for batch in BatchIter::new(records) {
        match batch {
            Ok(b) => end += b.header.size(),
            Err(_) => break,
        }
    }
    end.min(records.len())
}
