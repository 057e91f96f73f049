//! The transaction coordinator: Kafka 3.7's `TransactionCoordinator`,
//! `TransactionStateManager` and marker channel folded into one type.
//!
//! All metadata sits behind one mutex that is never held across an await.
//! A change is prepared under the lock (which marks it pending and so blocks
//! concurrent changes to the same transactional id), appended to
//! `__transaction_state` without the lock, and applied under the lock again
//! only if the partition is still led with the same coordinator epoch.

use crate::format::{build_batch, decode_chunk, LogEntry};
use crate::producer_ids::ProducerIdManager;
use crate::state::{epoch_exhausted, Transit, TxnMetadata, TxnState, NO_PRODUCER_EPOCH};
use crate::{
    system_clock, Clock, ErrorCode, MarkerRequest, MarkerWriter, ProducerIdSource, TopicPartition,
    TransactionLog, TxnCoordinatorConfig,
};
use kafka_protocol::messages::add_offsets_to_txn_request::AddOffsetsToTxnRequest;
use kafka_protocol::messages::add_offsets_to_txn_response::AddOffsetsToTxnResponse;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnTopic,
};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResponse, AddPartitionsToTxnResult,
    AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_request::DescribeTransactionsRequest;
use kafka_protocol::messages::describe_transactions_response::{
    self as describe, DescribeTransactionsResponse,
};
use kafka_protocol::messages::end_txn_request::EndTxnRequest;
use kafka_protocol::messages::end_txn_response::EndTxnResponse;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use kafka_protocol::messages::list_transactions_request::ListTransactionsRequest;
use kafka_protocol::messages::list_transactions_response::{
    self as list, ListTransactionsResponse,
};
use kafka_protocol::messages::{TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use millrace_protocol::control::coordinator_partition;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The `__consumer_offsets` topic, whose group partition AddOffsetsToTxn adds.
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";

/// One `__transaction_state` partition this coordinator leads.
struct TxnPartition {
    /// Leader epoch given at election: the coordinator epoch.
    epoch: i32,
    /// Replay finished; requests are served.
    loaded: bool,
    txns: HashMap<String, TxnMetadata>,
}

/// Everything after a PrepareCommit/PrepareAbort has been persisted that
/// the marker task needs.
struct MarkerJob {
    transactional_id: String,
    coordinator_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    complete: Transit,
}

/// Kafka's transaction coordinator for the `__transaction_state` partitions
/// this broker leads; shared behind an `Arc` by the request handlers and its
/// own background tasks.
pub struct TransactionCoordinator {
    config: TxnCoordinatorConfig,
    log: Arc<dyn TransactionLog>,
    ids: ProducerIdManager,
    markers: Arc<dyn MarkerWriter>,
    clock: Clock,
    partitions: Mutex<HashMap<i32, TxnPartition>>,
    me: Weak<TransactionCoordinator>,
    shut_down: AtomicBool,
    timers_started: AtomicBool,
}

/// Kafka answers clients older than KIP-588 with INVALID_PRODUCER_EPOCH
/// instead of PRODUCER_FENCED, which they do not know.
fn compat(error: ErrorCode, old_client: bool) -> ErrorCode {
    if old_client && error == ErrorCode::ProducerFenced {
        ErrorCode::InvalidProducerEpoch
    } else {
        error
    }
}

fn code(result: &Result<(), ErrorCode>) -> i16 {
    match result {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}

/// How Kafka maps log append failures to what the client sees.
fn map_append_error(e: ErrorCode) -> ErrorCode {
    match e {
        ErrorCode::UnknownTopicOrPartition
        | ErrorCode::NotEnoughReplicas
        | ErrorCode::NotEnoughReplicasAfterAppend
        | ErrorCode::RequestTimedOut => ErrorCode::CoordinatorNotAvailable,
        ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => ErrorCode::NotCoordinator,
        ErrorCode::MessageTooLarge | ErrorCode::RecordListTooLarge => ErrorCode::UnknownServerError,
        other => other,
    }
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl TransactionCoordinator {
    /// Builds a coordinator that leads no partition yet; call
    /// [`on_elected`](Self::on_elected) as `__transaction_state` leadership
    /// arrives. Background timers start here when a tokio runtime is
    /// running, otherwise at the first election.
    pub fn new(
        config: TxnCoordinatorConfig,
        log: Arc<dyn TransactionLog>,
        ids: Arc<dyn ProducerIdSource>,
        markers: Arc<dyn MarkerWriter>,
    ) -> Arc<Self> {
        Self::with_clock(config, log, ids, markers, system_clock())
    }

    /// Like [`new`](Self::new) with an injected clock, so timeouts and
    /// expiry are testable without waiting.
    pub fn with_clock(
        config: TxnCoordinatorConfig,
        log: Arc<dyn TransactionLog>,
        ids: Arc<dyn ProducerIdSource>,
        markers: Arc<dyn MarkerWriter>,
        clock: Clock,
    ) -> Arc<Self> {
        let me = Arc::new_cyclic(|me| TransactionCoordinator {
            config,
            log,
            ids: ProducerIdManager::new(ids),
            markers,
            clock,
            partitions: Mutex::new(HashMap::new()),
            me: me.clone(),
            shut_down: AtomicBool::new(false),
            timers_started: AtomicBool::new(false),
        });
        me.ensure_timers();
        me
    }

    /// The `__transaction_state` partition owning `transactional_id`
    /// (Kafka's `abs(hashCode) % partitions`), for FindCoordinator.
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        coordinator_partition(transactional_id, self.config.transaction_state_partitions)
    }

    /// Leadership of `partition` arrived with leader epoch `epoch` (the
    /// coordinator epoch): replay it in the background. Until the replay
    /// ends its transactional ids answer COORDINATOR_LOAD_IN_PROGRESS; after
    /// it, transactions found in PrepareCommit/PrepareAbort get their
    /// markers written. Must be called inside a tokio runtime.
    pub fn on_elected(self: &Arc<Self>, partition: i32, epoch: i32) {
        if self.shut_down.load(Ordering::Acquire) {
            return;
        }
        self.ensure_timers();
        {
            let mut partitions = self.partitions.lock();
            if let Some(p) = partitions.get(&partition) {
                if p.epoch >= epoch {
                    return;
                }
            }
            partitions.insert(
                partition,
                TxnPartition {
                    epoch,
                    loaded: false,
                    txns: HashMap::new(),
                },
            );
        }
        let me = self.clone();
        tokio::spawn(async move { me.load(partition, epoch).await });
    }

    /// Leadership of `partition` was lost at `epoch`: forget its state;
    /// its transactional ids answer NOT_COORDINATOR and in-flight marker
    /// work for it stops.
    pub fn on_resigned(&self, partition: i32, epoch: i32) {
        let mut partitions = self.partitions.lock();
        if partitions.get(&partition).is_some_and(|p| p.epoch <= epoch) {
            partitions.remove(&partition);
        }
    }

    /// Whether `partition` is led here and fully replayed.
    pub fn is_loaded(&self, partition: i32) -> bool {
        self.partitions
            .lock()
            .get(&partition)
            .is_some_and(|p| p.loaded)
    }

    /// Stops serving: every request answers NOT_COORDINATOR and the
    /// background tasks end.
    pub fn shutdown(&self) {
        self.shut_down.store(true, Ordering::Release);
        self.partitions.lock().clear();
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    fn backoff(&self) -> Duration {
        Duration::from_millis(self.config.marker_retry_backoff_ms.max(1))
    }

    fn ensure_timers(&self) {
        if tokio::runtime::Handle::try_current().is_err()
            || self.timers_started.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let weak = self.me.clone();
        let every = Duration::from_millis(
            self.config
                .abort_timed_out_transaction_cleanup_interval_ms
                .max(1),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(me) = weak.upgrade() else { break };
                if me.is_shut_down() {
                    break;
                }
                me.abort_timed_out_transactions().await;
            }
        });
        let weak = self.me.clone();
        let every = Duration::from_millis(
            self.config
                .remove_expired_transaction_cleanup_interval_ms
                .max(1),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(me) = weak.upgrade() else { break };
                if me.is_shut_down() {
                    break;
                }
                me.remove_expired_transactional_ids().await;
            }
        });
    }

    /// Runs `f` on the transactional id's metadata (absent: `None`) with the
    /// coordinator epoch, or fails with NOT_COORDINATOR /
    /// COORDINATOR_LOAD_IN_PROGRESS as Kafka's `getTransactionState` does.
    fn with_txn<R>(
        &self,
        transactional_id: &str,
        f: impl FnOnce(i32, Option<&mut TxnMetadata>) -> R,
    ) -> Result<R, ErrorCode> {
        let partition = self.partition_for(transactional_id);
        let mut partitions = self.partitions.lock();
        if self.is_shut_down() {
            return Err(ErrorCode::NotCoordinator);
        }
        let p = partitions
            .get_mut(&partition)
            .ok_or(ErrorCode::NotCoordinator)?;
        if !p.loaded {
            return Err(ErrorCode::CoordinatorLoadInProgress);
        }
        Ok(f(p.epoch, p.txns.get_mut(transactional_id)))
    }

    /// Appends a prepared transition and applies it once committed. On
    /// failure the pending state is cleared unless `keep_pending_on_error`
    /// (the completion writes, which are retried).
    async fn persist(
        &self,
        transactional_id: &str,
        coordinator_epoch: i32,
        transit: &Transit,
        keep_pending_on_error: bool,
    ) -> Result<(), ErrorCode> {
        self.with_txn(transactional_id, |epoch, m| {
            if epoch != coordinator_epoch || m.is_none() {
                Err(ErrorCode::NotCoordinator)
            } else {
                Ok(())
            }
        })??;
        let value = (transit.state != TxnState::Dead).then_some(transit);
        let batch = build_batch(transactional_id, value, self.now()).map_err(|e| {
            tracing::error!(error = %e, "cannot encode transaction log record");
            ErrorCode::UnknownServerError
        })?;
        let partition = self.partition_for(transactional_id);
        let appended = self
            .log
            .append(partition, batch)
            .await
            .map(|_| ())
            .map_err(map_append_error);
        let applied = self.with_txn(transactional_id, |epoch, m| {
            let m = match m {
                Some(m) if epoch == coordinator_epoch => m,
                _ => return Err(ErrorCode::NotCoordinator),
            };
            match appended {
                Ok(()) => {
                    if transit.state != TxnState::Dead {
                        m.complete(transit);
                    }
                    Ok(())
                }
                Err(e) => {
                    if !keep_pending_on_error {
                        m.pending = None;
                    }
                    Err(e)
                }
            }
        })?;
        if applied.is_ok() && transit.state == TxnState::Dead {
            let mut partitions = self.partitions.lock();
            if let Some(p) = partitions.get_mut(&partition) {
                if p.epoch == coordinator_epoch
                    && p.txns
                        .get(transactional_id)
                        .is_some_and(|m| m.pending == Some(TxnState::Dead))
                {
                    p.txns.remove(transactional_id);
                }
            }
        }
        applied
    }

    // ---------------------------------------------------------------- loading

    async fn load(self: Arc<Self>, partition: i32, epoch: i32) {
        let still_loading = || {
            !self.is_shut_down()
                && self
                    .partitions
                    .lock()
                    .get(&partition)
                    .is_some_and(|p| p.epoch == epoch && !p.loaded)
        };
        let mut loaded: HashMap<String, Transit> = HashMap::new();
        let mut offset = 0i64;
        let mut max_bytes = self.config.load_buffer_size.max(1024);
        let mut skipped_total = 0usize;
        loop {
            if !still_loading() {
                return;
            }
            let chunk = match self.log.read(partition, offset, max_bytes).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(partition, offset, error = %e, "transaction log read failed; retrying");
                    tokio::time::sleep(self.backoff()).await;
                    continue;
                }
            };
            if offset >= chunk.high_watermark {
                break;
            }
            if chunk.records.is_empty() && offset < chunk.log_start_offset {
                offset = chunk.log_start_offset;
                continue;
            }
            let (entries, next, skipped) = decode_chunk(&chunk.records);
            skipped_total += skipped;
            for entry in entries {
                match entry {
                    LogEntry::Value(id, t) if t.state != TxnState::Dead => {
                        loaded.insert(id, t);
                    }
                    LogEntry::Value(id, _) | LogEntry::Tombstone(id) => {
                        loaded.remove(&id);
                    }
                }
            }
            match next {
                Some(n) if n > offset => offset = n,
                _ if !chunk.records.is_empty() => {
                    // A batch larger than the buffer: ask for more.
                    max_bytes = max_bytes.saturating_mul(2);
                }
                _ => tokio::time::sleep(self.backoff()).await,
            }
        }
        if skipped_total > 0 {
            tracing::warn!(
                partition,
                skipped = skipped_total,
                "skipped undecodable transaction log records"
            );
        }
        let mut jobs = Vec::new();
        {
            let mut partitions = self.partitions.lock();
            let Some(p) = partitions.get_mut(&partition) else {
                return;
            };
            if p.epoch != epoch || p.loaded || self.is_shut_down() {
                return;
            }
            let now = self.now();
            for (id, t) in loaded {
                let mut m = TxnMetadata::from_transit(id.clone(), t);
                if matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                    let commit = m.state == TxnState::PrepareCommit;
                    if let Ok(complete) = m.prepare_complete(now) {
                        jobs.push(MarkerJob {
                            transactional_id: id.clone(),
                            coordinator_epoch: epoch,
                            producer_id: m.producer_id,
                            producer_epoch: m.producer_epoch,
                            commit,
                            complete,
                        });
                    }
                }
                p.txns.insert(id, m);
            }
            p.loaded = true;
            tracing::info!(
                partition,
                epoch,
                transactions = p.txns.len(),
                "loaded transaction state"
            );
        }
        for job in jobs {
            let me = self.clone();
            tokio::spawn(async move { me.run_markers(job).await });
        }
    }

    // ---------------------------------------------------------------- markers

    /// Writes the markers of a transaction whose PrepareCommit/PrepareAbort
    /// is persisted, retrying failed partitions, then persists
    /// CompleteCommit/CompleteAbort. Stops when the partition moves away.
    async fn run_markers(self: Arc<Self>, job: MarkerJob) {
        let id = job.transactional_id.as_str();
        let base = self.backoff();
        let mut backoff = base;
        let valid = |epoch: i32, m: &TxnMetadata| {
            epoch == job.coordinator_epoch
                && m.pending == Some(job.complete.state)
                && m.producer_id == job.producer_id
                && m.producer_epoch == job.producer_epoch
        };
        loop {
            if self.is_shut_down() {
                return;
            }
            let remaining = match self.with_txn(id, |epoch, m| match m {
                Some(m) if valid(epoch, m) => {
                    Some(m.partitions.iter().cloned().collect::<Vec<_>>())
                }
                _ => None,
            }) {
                Ok(Some(r)) => r,
                _ => {
                    tracing::debug!(
                        transactional_id = id,
                        "stopping marker writes: transaction moved"
                    );
                    return;
                }
            };
            if remaining.is_empty() {
                break;
            }
            let results = self
                .markers
                .write_markers(MarkerRequest {
                    producer_id: job.producer_id,
                    producer_epoch: job.producer_epoch,
                    commit: job.commit,
                    coordinator_epoch: job.coordinator_epoch,
                    partitions: remaining.clone(),
                })
                .await;
            let answers: HashMap<TopicPartition, Result<(), ErrorCode>> =
                results.into_iter().collect();
            let mut done = Vec::new();
            let mut retry = false;
            let mut abort = false;
            for tp in remaining {
                match answers.get(&tp) {
                    Some(Ok(())) => done.push(tp),
                    Some(Err(ErrorCode::UnknownTopicOrPartition)) => {
                        tracing::info!(transactional_id = id, topic = %tp.topic, partition = tp.partition,
                            "dropping marker for a partition that no longer exists");
                        done.push(tp);
                    }
                    Some(Err(ErrorCode::UnsupportedForMessageFormat)) => {
                        tracing::warn!(transactional_id = id, topic = %tp.topic, partition = tp.partition,
                            "partition does not support markers; skipping it");
                        done.push(tp);
                    }
                    Some(Err(
                        e @ (ErrorCode::InvalidProducerEpoch
                        | ErrorCode::TransactionCoordinatorFenced),
                    )) => {
                        tracing::error!(transactional_id = id, topic = %tp.topic, partition = tp.partition,
                            error = %e, "marker rejected; this coordinator is stale, stopping");
                        abort = true;
                    }
                    Some(Err(e)) => {
                        tracing::debug!(transactional_id = id, topic = %tp.topic, partition = tp.partition,
                            error = %e, "marker write failed; will retry");
                        retry = true;
                    }
                    None => retry = true,
                }
            }
            let _ = self.with_txn(id, |epoch, m| {
                if let Some(m) = m.filter(|m| valid(epoch, m)) {
                    for tp in &done {
                        m.partitions.remove(tp);
                    }
                }
            });
            if abort {
                return;
            }
            if retry {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(base * 10);
            } else {
                backoff = base;
            }
        }
        let mut backoff = base;
        loop {
            if self.is_shut_down() {
                return;
            }
            match self
                .persist(id, job.coordinator_epoch, &job.complete, true)
                .await
            {
                Ok(()) => return,
                Err(ErrorCode::NotCoordinator | ErrorCode::CoordinatorLoadInProgress) => return,
                Err(e) => {
                    tracing::warn!(transactional_id = id, error = %e,
                        "writing transaction completion failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(base * 10);
                }
            }
        }
    }

    // ---------------------------------------------------------- InitProducerId

    /// InitProducerId: a fresh producer id for idempotent producers, or the
    /// bumped epoch (KIP-360 rules) of a transactional id, aborting its open
    /// transaction first.
    pub async fn init_producer_id(
        &self,
        version: i16,
        req: InitProducerIdRequest,
    ) -> InitProducerIdResponse {
        let mut resp = InitProducerIdResponse::default();
        match self.handle_init(&req).await {
            Ok((pid, epoch)) => {
                resp.producer_id = pid.into();
                resp.producer_epoch = epoch;
            }
            Err(e) => {
                resp.error_code = compat(e, version < 4).code();
                resp.producer_id = (-1).into();
                resp.producer_epoch = NO_PRODUCER_EPOCH;
            }
        }
        resp
    }

    async fn handle_init(&self, req: &InitProducerIdRequest) -> Result<(i64, i16), ErrorCode> {
        let Some(txn_id) = req.transactional_id.as_ref() else {
            return Ok((self.ids.next_id().await?, 0));
        };
        let txn_id = txn_id.as_str();
        if txn_id.is_empty() {
            return Err(ErrorCode::InvalidRequest);
        }
        let timeout = req.transaction_timeout_ms;
        if timeout <= 0 || timeout > self.config.transaction_max_timeout_ms {
            return Err(ErrorCode::InvalidTransactionTimeout);
        }
        let expected = match (req.producer_id.0, req.producer_epoch) {
            (-1, -1) => None,
            (-1, _) | (_, -1) => return Err(ErrorCode::InvalidRequest),
            (pid, epoch) => Some((pid, epoch)),
        };
        if !self.with_txn(txn_id, |_, m| m.is_some())? {
            let pid = self.ids.next_id().await?;
            let now = self.now();
            let partition = self.partition_for(txn_id);
            let mut partitions = self.partitions.lock();
            match partitions.get_mut(&partition) {
                Some(p) if p.loaded && !self.is_shut_down() => {
                    p.txns
                        .entry(txn_id.to_string())
                        .or_insert_with(|| TxnMetadata::new(txn_id.to_string(), pid, timeout, now));
                }
                Some(_) => return Err(ErrorCode::CoordinatorLoadInProgress),
                None => return Err(ErrorCode::NotCoordinator),
            }
        }
        enum Step {
            Transit(i32, Transit),
            NeedProducerId,
        }
        let mut rotated: Option<i64> = None;
        loop {
            let now = self.now();
            let step = self.with_txn(txn_id, |epoch, m| {
                let m = m.ok_or(ErrorCode::NotCoordinator)?;
                if m.pending_in_progress() {
                    return Err(ErrorCode::ConcurrentTransactions);
                }
                if let Some((pid, e)) = expected {
                    let valid = m.producer_epoch == NO_PRODUCER_EPOCH
                        || pid == m.producer_id
                        || (pid == m.last_producer_id && epoch_exhausted(e));
                    if !valid {
                        return Err(ErrorCode::ProducerFenced);
                    }
                }
                match m.state {
                    TxnState::PrepareCommit | TxnState::PrepareAbort => {
                        Err(ErrorCode::ConcurrentTransactions)
                    }
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                        if epoch_exhausted(m.producer_epoch)
                            && expected.is_none_or(|(_, e)| e == m.producer_epoch)
                        {
                            match rotated {
                                Some(pid) => Ok(Step::Transit(
                                    epoch,
                                    m.prepare_producer_id_rotation(
                                        pid,
                                        timeout,
                                        now,
                                        expected.is_some(),
                                    )?,
                                )),
                                None => Ok(Step::NeedProducerId),
                            }
                        } else {
                            Ok(Step::Transit(
                                epoch,
                                m.prepare_increment_epoch(timeout, expected.map(|x| x.1), now)?,
                            ))
                        }
                    }
                    // Abort first; the client retries on CONCURRENT_TRANSACTIONS
                    // and then gets a second bump.
                    TxnState::Ongoing => Ok(Step::Transit(epoch, m.prepare_fence_epoch(now)?)),
                    TxnState::Dead | TxnState::PrepareEpochFence => {
                        Err(ErrorCode::UnknownServerError)
                    }
                }
            })??;
            match step {
                Step::NeedProducerId => rotated = Some(self.ids.next_id().await?),
                Step::Transit(coordinator_epoch, transit) => {
                    if transit.state == TxnState::PrepareEpochFence {
                        self.end_transaction(
                            txn_id,
                            transit.producer_id,
                            transit.producer_epoch,
                            false,
                            false,
                        )
                        .await?;
                        return Err(ErrorCode::ConcurrentTransactions);
                    }
                    self.persist(txn_id, coordinator_epoch, &transit, false)
                        .await?;
                    return Ok((transit.producer_id, transit.producer_epoch));
                }
            }
        }
    }

    // ------------------------------------------------------ AddPartitionsToTxn

    /// AddPartitionsToTxn: the v0-v3 client form, and the v4+ batched form
    /// (including `verify_only`, which only checks membership).
    pub async fn add_partitions_to_txn(
        &self,
        version: i16,
        req: AddPartitionsToTxnRequest,
    ) -> AddPartitionsToTxnResponse {
        let mut resp = AddPartitionsToTxnResponse::default();
        if version < 4 {
            let partitions = topic_partitions(&req.v3_and_below_topics);
            let result = self
                .handle_add_partitions(
                    req.v3_and_below_transactional_id.as_str(),
                    req.v3_and_below_producer_id.0,
                    req.v3_and_below_producer_epoch,
                    &partitions,
                )
                .await
                .map_err(|e| compat(e, version < 2));
            resp.results_by_topic_v3_and_below = topic_results(&partitions, |_| code(&result));
        } else {
            let results = futures::future::join_all(req.transactions.iter().map(|t| async move {
                let partitions = topic_partitions(&t.topics);
                let id = t.transactional_id.as_str();
                let per_partition: Result<BTreeMap<TopicPartition, i16>, ErrorCode> = if t
                    .verify_only
                {
                    self.verify_partitions(id, t.producer_id.0, t.producer_epoch, &partitions)
                } else {
                    self.handle_add_partitions(id, t.producer_id.0, t.producer_epoch, &partitions)
                        .await
                        .map(|()| partitions.iter().map(|tp| (tp.clone(), 0)).collect())
                };
                let mut r = AddPartitionsToTxnResult::default();
                r.transactional_id = t.transactional_id.clone();
                r.topic_results = topic_results(&partitions, |tp| match &per_partition {
                    Ok(map) => map.get(tp).copied().unwrap_or(0),
                    Err(e) => e.code(),
                });
                r
            }))
            .await;
            resp.results_by_transaction = results;
        }
        resp
    }

    async fn handle_add_partitions(
        &self,
        txn_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &BTreeSet<TopicPartition>,
    ) -> Result<(), ErrorCode> {
        if txn_id.is_empty() {
            return Err(ErrorCode::InvalidRequest);
        }
        let now = self.now();
        let prepared = self.with_txn(txn_id, |epoch, m| {
            let m = m.ok_or(ErrorCode::InvalidProducerIdMapping)?;
            if m.producer_id != producer_id {
                Err(ErrorCode::InvalidProducerIdMapping)
            } else if m.producer_epoch != producer_epoch {
                Err(ErrorCode::ProducerFenced)
            } else if m.pending_in_progress()
                || matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
            {
                Err(ErrorCode::ConcurrentTransactions)
            } else if m.state == TxnState::Ongoing && partitions.is_subset(&m.partitions) {
                Ok(None)
            } else {
                Ok(Some((epoch, m.prepare_add_partitions(partitions, now)?)))
            }
        })??;
        match prepared {
            None => Ok(()),
            Some((epoch, transit)) => self.persist(txn_id, epoch, &transit, false).await,
        }
    }

    fn verify_partitions(
        &self,
        txn_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &BTreeSet<TopicPartition>,
    ) -> Result<BTreeMap<TopicPartition, i16>, ErrorCode> {
        if txn_id.is_empty() {
            return Err(ErrorCode::InvalidRequest);
        }
        self.with_txn(txn_id, |_, m| {
            let m = m.ok_or(ErrorCode::InvalidProducerIdMapping)?;
            if m.producer_id != producer_id {
                Err(ErrorCode::InvalidProducerIdMapping)
            } else if m.producer_epoch != producer_epoch {
                Err(ErrorCode::ProducerFenced)
            } else if matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                Err(ErrorCode::ConcurrentTransactions)
            } else {
                Ok(partitions
                    .iter()
                    .map(|tp| {
                        let code = if m.partitions.contains(tp) {
                            0
                        } else {
                            ErrorCode::InvalidTxnState.code()
                        };
                        (tp.clone(), code)
                    })
                    .collect())
            }
        })?
    }

    // --------------------------------------------------------- AddOffsetsToTxn

    /// AddOffsetsToTxn: adds the group's `__consumer_offsets` partition, so
    /// the group's transactional offset commits get a marker too.
    pub async fn add_offsets_to_txn(
        &self,
        version: i16,
        req: AddOffsetsToTxnRequest,
    ) -> AddOffsetsToTxnResponse {
        let partition =
            coordinator_partition(req.group_id.as_str(), self.config.offsets_topic_partitions);
        let partitions = BTreeSet::from([TopicPartition::new(CONSUMER_OFFSETS_TOPIC, partition)]);
        let result = self
            .handle_add_partitions(
                req.transactional_id.as_str(),
                req.producer_id.0,
                req.producer_epoch,
                &partitions,
            )
            .await
            .map_err(|e| compat(e, version < 2));
        let mut resp = AddOffsetsToTxnResponse::default();
        resp.error_code = code(&result);
        resp
    }

    // ------------------------------------------------------------------ EndTxn

    /// EndTxn: persists PrepareCommit/PrepareAbort, answers, and leaves the
    /// markers and the completion to a background task.
    pub async fn end_txn(&self, version: i16, req: EndTxnRequest) -> EndTxnResponse {
        let result = self
            .end_transaction(
                req.transactional_id.as_str(),
                req.producer_id.0,
                req.producer_epoch,
                req.committed,
                true,
            )
            .await
            .map_err(|e| compat(e, version < 2));
        let mut resp = EndTxnResponse::default();
        resp.error_code = code(&result);
        resp.producer_id = req.producer_id;
        resp.producer_epoch = req.producer_epoch;
        resp
    }

    async fn end_transaction(
        &self,
        txn_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        from_client: bool,
    ) -> Result<(), ErrorCode> {
        let result = self
            .end_transaction_inner(txn_id, producer_id, producer_epoch, commit, from_client)
            .await;
        if result.is_err() && !from_client {
            // Never leave a fence bump pending when the abort never started.
            let _ = self.with_txn(txn_id, |_, m| {
                if let Some(m) = m.filter(|m| m.pending == Some(TxnState::PrepareEpochFence)) {
                    m.pending = None;
                }
            });
        }
        result
    }

    async fn end_transaction_inner(
        &self,
        txn_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        from_client: bool,
    ) -> Result<(), ErrorCode> {
        if txn_id.is_empty() {
            return Err(ErrorCode::InvalidRequest);
        }
        let now = self.now();
        let mut is_epoch_fence = false;
        let prepared = self.with_txn(txn_id, |epoch, m| {
            let m = m.ok_or(ErrorCode::InvalidProducerIdMapping)?;
            let fencing = m.pending == Some(TxnState::PrepareEpochFence);
            if m.producer_id != producer_id {
                return Err(ErrorCode::InvalidProducerIdMapping);
            }
            if (from_client && producer_epoch != m.producer_epoch)
                || producer_epoch < m.producer_epoch
            {
                return Err(ErrorCode::ProducerFenced);
            }
            if m.pending_in_progress() && !fencing {
                return Err(ErrorCode::ConcurrentTransactions);
            }
            let invalid = || {
                tracing::debug!(
                    transactional_id = txn_id,
                    state = m.state.name(),
                    commit,
                    "EndTxn in an invalid state"
                );
                Err(ErrorCode::InvalidTxnState)
            };
            match m.state {
                TxnState::Ongoing => {
                    if fencing && (commit || from_client) {
                        return Err(ErrorCode::ConcurrentTransactions);
                    }
                    let next = if commit {
                        TxnState::PrepareCommit
                    } else {
                        TxnState::PrepareAbort
                    };
                    if fencing {
                        is_epoch_fence = true;
                        m.pending = None;
                        m.producer_epoch = producer_epoch;
                        m.last_producer_epoch = NO_PRODUCER_EPOCH;
                    }
                    Ok(Some((epoch, m.prepare_abort_or_commit(next, now)?)))
                }
                TxnState::CompleteCommit if commit => Ok(None),
                TxnState::CompleteAbort if !commit => Ok(None),
                TxnState::PrepareCommit if commit => Err(ErrorCode::ConcurrentTransactions),
                TxnState::PrepareAbort if !commit => Err(ErrorCode::ConcurrentTransactions),
                TxnState::Dead | TxnState::PrepareEpochFence => Err(ErrorCode::UnknownServerError),
                _ => invalid(),
            }
        })??;
        let Some((coordinator_epoch, transit)) = prepared else {
            return Ok(());
        };
        if let Err(e) = self
            .persist(txn_id, coordinator_epoch, &transit, false)
            .await
        {
            if is_epoch_fence {
                let _ = self.with_txn(txn_id, |epoch, m| {
                    if let Some(m) = m.filter(|_| epoch == coordinator_epoch) {
                        m.has_failed_epoch_fence = true;
                    }
                });
            }
            return Err(e);
        }
        let job = self.with_txn(txn_id, |epoch, m| {
            let m = match m {
                Some(m) if epoch == coordinator_epoch => m,
                _ => return Err(ErrorCode::NotCoordinator),
            };
            if m.producer_id != producer_id {
                return Err(ErrorCode::InvalidProducerIdMapping);
            }
            if m.producer_epoch != transit.producer_epoch {
                return Err(ErrorCode::ProducerFenced);
            }
            if m.pending_in_progress() {
                return Err(ErrorCode::ConcurrentTransactions);
            }
            let expected = if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            };
            if m.state != expected {
                return Err(ErrorCode::InvalidTxnState);
            }
            Ok(MarkerJob {
                transactional_id: txn_id.to_string(),
                coordinator_epoch,
                producer_id: m.producer_id,
                producer_epoch: m.producer_epoch,
                commit,
                complete: m.prepare_complete(now)?,
            })
        })??;
        match self.me.upgrade() {
            Some(me) => {
                tokio::spawn(async move { me.run_markers(job).await });
            }
            None => return Err(ErrorCode::NotCoordinator),
        }
        Ok(())
    }

    // ----------------------------------------------------------------- timers

    /// Aborts Ongoing transactions older than their timeout, bumping the
    /// epoch first so the zombie producer is fenced. The background timer
    /// calls this every `abort_timed_out_transaction_cleanup_interval_ms`.
    pub async fn abort_timed_out_transactions(&self) {
        let now = self.now();
        let candidates: Vec<(String, i64)> = {
            let partitions = self.partitions.lock();
            partitions
                .values()
                .filter(|p| p.loaded)
                .flat_map(|p| p.txns.values())
                .filter(|m| {
                    !m.pending_in_progress()
                        && m.state == TxnState::Ongoing
                        && m.start_ms + i64::from(m.timeout_ms) < now
                })
                .map(|m| (m.transactional_id.clone(), m.producer_id))
                .collect()
        };
        futures::future::join_all(candidates.into_iter().map(|(id, pid)| async move {
            let fence = self.with_txn(&id, |_, m| match m {
                Some(m)
                    if m.producer_id == pid
                        && !m.pending_in_progress()
                        && m.state == TxnState::Ongoing =>
                {
                    m.prepare_fence_epoch(now).ok()
                }
                _ => None,
            });
            if let Ok(Some(t)) = fence {
                match self
                    .end_transaction(&id, t.producer_id, t.producer_epoch, false, false)
                    .await
                {
                    Ok(()) => tracing::info!(transactional_id = %id, producer_id = pid,
                        epoch = t.producer_epoch, "aborting timed-out transaction"),
                    Err(e) => tracing::warn!(transactional_id = %id, error = %e,
                        "could not abort timed-out transaction"),
                }
            }
        }))
        .await;
    }

    /// Removes transactional ids idle for `transactional_id_expiration_ms`
    /// in Empty/CompleteCommit/CompleteAbort, writing a tombstone for each.
    /// The background timer calls this every
    /// `remove_expired_transaction_cleanup_interval_ms`.
    pub async fn remove_expired_transactional_ids(&self) {
        let now = self.now();
        let cutoff = now.saturating_sub(self.config.transactional_id_expiration_ms);
        let expired: Vec<(String, i32, Transit)> = {
            let mut partitions = self.partitions.lock();
            let mut out = Vec::new();
            for p in partitions.values_mut().filter(|p| p.loaded) {
                for m in p.txns.values_mut() {
                    if m.state.expiration_allowed()
                        && !m.pending_in_progress()
                        && m.last_update_ms <= cutoff
                    {
                        if let Ok(t) = m.prepare_dead(now) {
                            out.push((m.transactional_id.clone(), p.epoch, t));
                        }
                    }
                }
            }
            out
        };
        futures::future::join_all(expired.into_iter().map(|(id, epoch, t)| async move {
            match self.persist(&id, epoch, &t, false).await {
                Ok(()) => tracing::info!(transactional_id = %id, "expired transactional id"),
                Err(e) => tracing::warn!(transactional_id = %id, error = %e,
                    "could not expire transactional id"),
            }
        }))
        .await;
    }

    // ------------------------------------------------------------ admin APIs

    /// DescribeTransactions (KIP-664): state, producer, timeout and the
    /// partitions still in each transaction.
    pub async fn describe_transactions(
        &self,
        _version: i16,
        req: DescribeTransactionsRequest,
    ) -> DescribeTransactionsResponse {
        let mut resp = DescribeTransactionsResponse::default();
        for id in req.transactional_ids {
            let mut s = describe::TransactionState::default();
            s.transactional_id = id.clone();
            s.producer_id = (-1).into();
            s.producer_epoch = NO_PRODUCER_EPOCH;
            s.transaction_start_time_ms = -1;
            if id.is_empty() {
                s.error_code = ErrorCode::InvalidRequest.code();
                resp.transaction_states.push(s);
                continue;
            }
            let found = self.with_txn(id.as_str(), |_, m| {
                m.filter(|m| m.pending != Some(TxnState::Dead) && m.state != TxnState::Dead)
                    .map(|m| m.clone())
            });
            match found {
                Err(e) => s.error_code = e.code(),
                Ok(None) => s.error_code = ErrorCode::TransactionalIdNotFound.code(),
                Ok(Some(m)) => {
                    s.transaction_state = StrBytes::from_static_str(m.state.name());
                    s.transaction_timeout_ms = m.timeout_ms;
                    s.transaction_start_time_ms = m.start_ms;
                    s.producer_id = m.producer_id.into();
                    s.producer_epoch = m.producer_epoch;
                    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                    for tp in &m.partitions {
                        by_topic.entry(&tp.topic).or_default().push(tp.partition);
                    }
                    s.topics = by_topic
                        .into_iter()
                        .map(|(topic, partitions)| {
                            let mut t = describe::TopicData::default();
                            t.topic = TopicName(str_bytes(topic));
                            t.partitions = partitions;
                            t
                        })
                        .collect();
                }
            }
            resp.transaction_states.push(s);
        }
        resp
    }

    /// ListTransactions (KIP-664): every transactional id of the partitions
    /// led here, filtered by state, producer id and (v1+) minimum duration.
    /// The v2 transactional id pattern is not supported and is ignored.
    pub async fn list_transactions(
        &self,
        version: i16,
        req: ListTransactionsRequest,
    ) -> ListTransactionsResponse {
        let mut resp = ListTransactionsResponse::default();
        if self.is_shut_down() {
            resp.error_code = ErrorCode::CoordinatorNotAvailable.code();
            return resp;
        }
        let mut states = Vec::new();
        for name in &req.state_filters {
            match TxnState::from_name(name.as_str()) {
                Some(s) => states.push(s),
                None => resp.unknown_state_filters.push(name.clone()),
            }
        }
        let pids: BTreeSet<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
        let duration = if version >= 1 {
            req.duration_filter
        } else {
            -1
        };
        let now = self.now();
        let partitions = self.partitions.lock();
        if partitions.values().any(|p| !p.loaded) {
            resp.error_code = ErrorCode::CoordinatorLoadInProgress.code();
            return resp;
        }
        let mut out: Vec<&TxnMetadata> = partitions
            .values()
            .flat_map(|p| p.txns.values())
            .filter(|m| {
                m.state != TxnState::Dead
                    && (pids.is_empty() || pids.contains(&m.producer_id))
                    && (req.state_filters.is_empty() || states.contains(&m.state))
                    && (duration < 0 || now - m.start_ms > duration)
            })
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        resp.transaction_states = out
            .into_iter()
            .map(|m| {
                let mut s = list::TransactionState::default();
                s.transactional_id = TransactionalId(str_bytes(&m.transactional_id));
                s.producer_id = m.producer_id.into();
                s.transaction_state = StrBytes::from_static_str(m.state.name());
                s
            })
            .collect();
        resp
    }
}

fn topic_partitions(topics: &[AddPartitionsToTxnTopic]) -> BTreeSet<TopicPartition> {
    topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(t.name.as_str(), *p))
        })
        .collect()
}

fn topic_results(
    partitions: &BTreeSet<TopicPartition>,
    code_for: impl Fn(&TopicPartition) -> i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut by_topic: BTreeMap<&str, Vec<AddPartitionsToTxnPartitionResult>> = BTreeMap::new();
    for tp in partitions {
        let mut r = AddPartitionsToTxnPartitionResult::default();
        r.partition_index = tp.partition;
        r.partition_error_code = code_for(tp);
        by_topic.entry(&tp.topic).or_default().push(r);
    }
    by_topic
        .into_iter()
        .map(|(topic, results)| {
            let mut t = AddPartitionsToTxnTopicResult::default();
            t.name = TopicName(str_bytes(topic));
            t.results_by_partition = results;
            t
        })
        .collect()
}
