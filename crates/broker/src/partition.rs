//! A partition replica hosted by this broker: its log, its leadership state
//! and the high watermark consumers may read up to.
//!
//! Even with one replica a partition has a leader epoch (stamped into every
//! batch and checked against clients' `current_leader_epoch`) and a high
//! watermark (the minimum log end offset over the in-sync replicas; with an
//! ISR of one, the log end offset), so replication adds followers without
//! changing what produce and fetch see.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use millrace_protocol::records::BatchIter;
use millrace_protocol::ErrorCode;
use millrace_storage::{AbortedTxn, Log, ProducerStateError, StorageError};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::log_validator::{self, ProduceError};
use crate::topic_settings::TopicSettings;
use crate::wire::now_ms;

/// Leadership as the metadata image last described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderState {
    /// Current leader id, -1 for none.
    pub leader: i32,
    /// Current leader epoch.
    pub leader_epoch: i32,
    /// Partition epoch.
    pub partition_epoch: i32,
    /// All replicas.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
}

/// Which records a reader may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Up to the high watermark.
    ReadUncommitted,
    /// Up to the last stable offset (transactions decided).
    ReadCommitted,
    /// Up to the log end offset: a follower replicating the leader.
    Follower,
}

/// What the leader knows of one follower, from its fetches; the high
/// watermark and ISR membership are decided from it, as in Kafka's
/// `Replica` state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FollowerProgress {
    /// The follower's log end offset (its last fetch offset), -1 until it
    /// fetched under the current leader epoch.
    log_end_offset: i64,
    /// When the follower was last fully caught up with the leader.
    last_caught_up_ms: i64,
    /// When it last fetched.
    last_fetch_ms: i64,
    /// The leader's log end offset at that fetch.
    leader_end_at_last_fetch: i64,
}

/// A successful leader append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Offset of the first record appended.
    pub base_offset: i64,
    /// The LogAppendTime stamped, or -1 for CreateTime topics.
    pub log_append_time: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
}

/// What a fetch of one partition returns.
#[derive(Debug, Clone)]
pub struct PartitionRead {
    /// Whole batches starting at (or containing) the fetch offset.
    pub records: Bytes,
    /// High watermark.
    pub high_watermark: i64,
    /// Last stable offset.
    pub last_stable_offset: i64,
    /// Log start offset.
    pub log_start_offset: i64,
    /// For `read_committed`: the aborted transactions overlapping the
    /// records returned, so the consumer can drop their records.
    pub aborted_transactions: Option<Vec<AbortedTxn>>,
}

/// A replica of one partition on this broker.
pub struct Partition {
    topic: Arc<str>,
    topic_id: Uuid,
    index: i32,
    display: String,
    node_id: i32,
    log: Arc<Log>,
    leader: RwLock<LeaderState>,
    settings: RwLock<Arc<TopicSettings>>,
    new_data: Notify,
    /// Followers' progress while this broker leads.
    followers: Mutex<HashMap<i32, FollowerProgress>>,
    /// The log end offset when this broker became leader of the current
    /// epoch: a follower joins the ISR only once it has reached it.
    leader_epoch_start_offset: Mutex<i64>,
    /// An AlterPartition (ISR change) is on its way to the controller.
    isr_change_in_flight: AtomicBool,
}

impl Partition {
    /// Wraps an open log.
    pub fn new(
        topic: Arc<str>,
        topic_id: Uuid,
        index: i32,
        node_id: i32,
        log: Arc<Log>,
        leader: LeaderState,
        settings: Arc<TopicSettings>,
    ) -> Self {
        let partition = Partition {
            display: format!("{topic}-{index}"),
            topic,
            topic_id,
            index,
            node_id,
            log,
            leader: RwLock::new(leader.clone()),
            settings: RwLock::new(settings),
            new_data: Notify::new(),
            followers: Mutex::new(HashMap::new()),
            leader_epoch_start_offset: Mutex::new(0),
            isr_change_in_flight: AtomicBool::new(false),
        };
        partition.reset_followers(&leader, None);
        partition.maybe_advance_high_watermark();
        partition
    }

    /// Topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Topic id.
    pub fn topic_id(&self) -> Uuid {
        self.topic_id
    }

    /// Partition index.
    pub fn index(&self) -> i32 {
        self.index
    }

    /// The underlying log.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// The leadership state.
    pub fn leader_state(&self) -> LeaderState {
        self.leader.read().clone()
    }

    /// The topic's effective settings.
    pub fn settings(&self) -> Arc<TopicSettings> {
        self.settings.read().clone()
    }

    /// Applies new leadership from the metadata image.
    pub fn update_leader_state(&self, state: LeaderState) {
        let previous = {
            let mut current = self.leader.write();
            if *current == state {
                return;
            }
            std::mem::replace(&mut *current, state.clone())
        };
        if previous.partition_epoch != state.partition_epoch {
            self.isr_change_in_flight.store(false, Ordering::Release);
        }
        self.reset_followers(&state, Some(&previous));
        self.maybe_advance_high_watermark();
        self.new_data.notify_waiters();
    }

    /// The partition left this broker (deleted, or reassigned elsewhere):
    /// from now on it leads nothing, which fails its waiting requests with
    /// NOT_LEADER_OR_FOLLOWER.
    pub fn resign(&self) {
        let state = self.leader_state();
        self.update_leader_state(LeaderState {
            leader: -1,
            isr: Vec::new(),
            ..state
        });
    }

    /// Starts follower tracking afresh when this broker becomes leader (or
    /// the epoch changes), and follows replica-set changes otherwise.
    fn reset_followers(&self, state: &LeaderState, previous: Option<&LeaderState>) {
        let mut followers = self.followers.lock();
        if state.leader != self.node_id {
            followers.clear();
            return;
        }
        let now = now_ms();
        let new_term = previous
            .is_none_or(|p| p.leader != self.node_id || p.leader_epoch != state.leader_epoch);
        if new_term {
            followers.clear();
            *self.leader_epoch_start_offset.lock() = self.log.log_end_offset();
        }
        followers.retain(|id, _| state.replicas.contains(id));
        for &replica in &state.replicas {
            if replica != self.node_id {
                // Kafka counts every follower caught up at the start of a
                // term, so the ISR is not shrunk before it could fetch.
                followers.entry(replica).or_insert(FollowerProgress {
                    log_end_offset: -1,
                    last_caught_up_ms: now,
                    last_fetch_ms: now,
                    leader_end_at_last_fetch: -1,
                });
            }
        }
    }

    /// Records a follower's fetch at `fetch_offset` (its log end offset) and
    /// advances the high watermark if the ISR now holds more.
    pub fn record_follower_fetch(
        &self,
        replica_id: i32,
        fetch_offset: i64,
    ) -> Result<(), ErrorCode> {
        if !self.is_leader() {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        let now = now_ms();
        let leader_end = self.log.log_end_offset();
        {
            let mut followers = self.followers.lock();
            // Only replicas are tracked: a fetch from any other broker is
            // refused, as Kafka does.
            let Some(progress) = followers.get_mut(&replica_id) else {
                return Err(ErrorCode::NotLeaderOrFollower);
            };
            if fetch_offset >= leader_end {
                progress.last_caught_up_ms = now;
            } else if progress.leader_end_at_last_fetch >= 0
                && fetch_offset >= progress.leader_end_at_last_fetch
            {
                progress.last_caught_up_ms = progress.last_caught_up_ms.max(progress.last_fetch_ms);
            }
            progress.log_end_offset = fetch_offset;
            progress.last_fetch_ms = now;
            progress.leader_end_at_last_fetch = leader_end;
        }
        self.maybe_advance_high_watermark();
        Ok(())
    }

    /// The ISR this leader wants now, if it differs from the current one and
    /// no change is already in flight: followers that have not caught up for
    /// `lag_max_ms` leave, followers that reached the high watermark and the
    /// start of this leader's epoch join (Kafka's `maybeShrinkIsr` /
    /// `maybeExpandIsr`). Marks the change in flight; the caller sends it to
    /// the controller and calls [`Partition::isr_change_failed`] if refused.
    pub fn wanted_isr_change(&self, lag_max_ms: i64) -> Option<LeaderState> {
        let state = self.leader.read().clone();
        if state.leader != self.node_id || self.isr_change_in_flight.load(Ordering::Acquire) {
            return None;
        }
        let now = now_ms();
        let high_watermark = self.high_watermark();
        let epoch_start = *self.leader_epoch_start_offset.lock();
        let followers = self.followers.lock();
        // In replica order (preferred leader first), as Kafka lists the ISR.
        let isr: Vec<i32> = state
            .replicas
            .iter()
            .copied()
            .filter(|r| {
                if *r == self.node_id {
                    return true;
                }
                let Some(p) = followers.get(r) else {
                    return false;
                };
                let caught_up = now - p.last_caught_up_ms <= lag_max_ms;
                if state.isr.contains(r) {
                    caught_up
                } else {
                    caught_up
                        && p.log_end_offset >= high_watermark
                        && p.log_end_offset >= epoch_start
                }
            })
            .collect();
        drop(followers);
        if isr.len() == state.isr.len() && isr.iter().all(|r| state.isr.contains(r)) {
            return None;
        }
        self.isr_change_in_flight.store(true, Ordering::Release);
        Some(LeaderState { isr, ..state })
    }

    /// The controller refused (or never answered) an ISR change: allow the
    /// next attempt.
    pub fn isr_change_failed(&self) {
        self.isr_change_in_flight.store(false, Ordering::Release);
    }

    /// Applies changed topic configs (retention, segment size, …).
    pub fn update_settings(&self, settings: Arc<TopicSettings>) {
        self.log.update_config(settings.log);
        *self.settings.write() = settings;
    }

    /// Whether this broker leads the partition.
    pub fn is_leader(&self) -> bool {
        self.leader.read().leader == self.node_id
    }

    /// Whether `replica` is in the ISR.
    pub fn in_sync(&self, replica: i32) -> bool {
        self.leader.read().isr.contains(&replica)
    }

    /// Whether this broker holds a replica of the partition (leader or follower).
    pub fn is_replica(&self) -> bool {
        self.leader.read().replicas.contains(&self.node_id)
    }

    /// This broker's id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// As leader: the in-sync followers that hold everything up to the high
    /// watermark, which a consumer may be sent to (KIP-392).
    pub fn readable_followers(&self) -> Vec<i32> {
        let state = self.leader.read();
        if state.leader != self.node_id {
            return Vec::new();
        }
        let high_watermark = self.high_watermark();
        let followers = self.followers.lock();
        state
            .isr
            .iter()
            .copied()
            .filter(|&r| r != self.node_id)
            .filter(|r| {
                followers
                    .get(r)
                    .is_some_and(|p| p.log_end_offset >= high_watermark)
            })
            .collect()
    }

    /// Checks a client's `current_leader_epoch` (-1 = not checked), as Kafka
    /// does for Fetch, ListOffsets and OffsetForLeaderEpoch.
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), ErrorCode> {
        let epoch = self.leader.read().leader_epoch;
        match current_leader_epoch {
            -1 => Ok(()),
            e if e < epoch => Err(ErrorCode::FencedLeaderEpoch),
            e if e > epoch => Err(ErrorCode::UnknownLeaderEpoch),
            _ => Ok(()),
        }
    }

    /// Checks that this broker leads and the client's epoch is current.
    pub fn check_leader(&self, current_leader_epoch: i32) -> Result<(), ErrorCode> {
        if !self.is_leader() {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        self.check_leader_epoch(current_leader_epoch)
    }

    /// High watermark.
    pub fn high_watermark(&self) -> i64 {
        self.log.high_watermark()
    }

    /// Last stable offset: the high watermark, or the first offset of the
    /// oldest undecided transaction if that is lower.
    pub fn last_stable_offset(&self) -> i64 {
        self.log.last_stable_offset()
    }

    /// Log start offset.
    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    /// Log end offset.
    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// A future that completes on the next append or leadership change.
    /// Create it *before* reading so no wake-up is missed.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.new_data.notified()
    }

    /// Validates and appends a Produce request's records as leader.
    pub fn append_as_leader(
        &self,
        records: &Bytes,
        required_acks: i16,
        api_version: i16,
        now_ms: i64,
    ) -> Result<AppendOutcome, ProduceError> {
        let settings = self.settings();
        let (leader_epoch, isr_len) = {
            let state = self.leader.read();
            if state.leader != self.node_id {
                return Err(code_only(ErrorCode::NotLeaderOrFollower));
            }
            (state.leader_epoch, state.isr.len())
        };
        if required_acks == -1 && (isr_len as i32) < settings.min_insync_replicas {
            return Err(ProduceError {
                code: ErrorCode::NotEnoughReplicas,
                message: Some(format!(
                    "The size of the current ISR {isr_len} is insufficient to satisfy the min.isr requirement of {} for partition {}",
                    settings.min_insync_replicas, self.display
                )),
                record_errors: Vec::new(),
            });
        }
        let mut validated = log_validator::validate(
            records,
            api_version,
            &settings.validation,
            &self.display,
            now_ms,
        )?;
        let info = self
            .log
            .append_as_leader(
                &mut validated.records,
                leader_epoch,
                validated.log_append_time,
            )
            .map_err(|e| storage_produce_error(&self.display, e))?;
        if info.duplicate {
            // A retry of a batch already in the log: Kafka answers with the
            // original offset and writes nothing.
            return Ok(AppendOutcome {
                base_offset: info.first_offset,
                log_append_time: -1,
                log_start_offset: info.log_start_offset,
            });
        }
        self.maybe_advance_high_watermark();
        self.new_data.notify_waiters();
        Ok(AppendOutcome {
            base_offset: info.first_offset,
            log_append_time: validated.log_append_time.unwrap_or(-1),
            log_start_offset: info.log_start_offset,
        })
    }

    /// Appends a batch a coordinator built (group metadata, offsets,
    /// transaction state) as leader; returns its base offset and the offset
    /// after it, which the coordinator waits to see committed.
    pub fn append_coordinator_batch(&self, batch: &Bytes) -> Result<(i64, i64), ErrorCode> {
        let leader_epoch = self.leader_epoch_if_leader()?;
        let mut records = batch.to_vec();
        let info = self
            .log
            .append_coordinator_batch(&mut records, leader_epoch)
            .map_err(|e| storage_error_code(&self.display, &e))?;
        self.maybe_advance_high_watermark();
        self.new_data.notify_waiters();
        Ok((info.first_offset, info.last_offset + 1))
    }

    /// Writes a transaction marker (commit or abort) for `producer_id`, as
    /// the transaction coordinator asks through WriteTxnMarkers.
    pub fn append_txn_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<i64, ErrorCode> {
        let leader_epoch = self.leader_epoch_if_leader()?;
        let info = self
            .log
            .append_control_marker(
                producer_id,
                producer_epoch,
                commit,
                coordinator_epoch,
                leader_epoch,
            )
            .map_err(|e| storage_error_code(&self.display, &e))?;
        self.maybe_advance_high_watermark();
        self.new_data.notify_waiters();
        Ok(info.last_offset + 1)
    }

    /// Waits until the high watermark reaches `offset` (the append is
    /// committed to every in-sync replica) or `timeout` passes.
    pub async fn wait_committed(
        &self,
        offset: i64,
        timeout: std::time::Duration,
    ) -> Result<(), ErrorCode> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notified();
            if self.high_watermark() >= offset {
                // As Kafka's delayed produce: committed, but the ISR that
                // committed it is smaller than min.insync.replicas.
                let isr = self.leader.read().isr.len() as i32;
                if isr < self.settings().min_insync_replicas {
                    return Err(ErrorCode::NotEnoughReplicasAfterAppend);
                }
                return Ok(());
            }
            if !self.is_leader() {
                return Err(ErrorCode::NotLeaderOrFollower);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(ErrorCode::RequestTimedOut);
            }
        }
    }

    fn leader_epoch_if_leader(&self) -> Result<i32, ErrorCode> {
        let state = self.leader.read();
        if state.leader != self.node_id {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        Ok(state.leader_epoch)
    }

    /// Reads for a consumer (or, later, a follower).
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        isolation: Isolation,
    ) -> Result<PartitionRead, ErrorCode> {
        let high_watermark = self.high_watermark();
        let last_stable_offset = self.last_stable_offset();
        let limit = match isolation {
            Isolation::ReadUncommitted => high_watermark,
            Isolation::ReadCommitted => last_stable_offset,
            Isolation::Follower => self.log.log_end_offset(),
        };
        let read = self
            .log
            .read(fetch_offset, max_bytes, limit, min_one_batch)
            .map_err(|e| storage_error_code(&self.display, &e))?;
        let aborted_transactions =
            (isolation == Isolation::ReadCommitted).then(|| match end_offset_of(&read.records) {
                Some(end) => self.log.aborted_transactions(fetch_offset, end),
                None => Vec::new(),
            });
        Ok(PartitionRead {
            records: read.records,
            high_watermark,
            last_stable_offset,
            log_start_offset: read.log_start_offset,
            aborted_transactions,
        })
    }

    /// As leader, advances the high watermark to the smallest log end
    /// offset over the ISR (never backwards); a follower of the ISR that has
    /// not fetched in this epoch holds it where it is.
    fn maybe_advance_high_watermark(&self) {
        let state = self.leader.read();
        if state.leader != self.node_id {
            return;
        }
        let mut candidate = self.log.log_end_offset();
        // With only this broker in the ISR (every RF=1 append) there is no
        // follower to consult.
        if state.isr.iter().any(|&r| r != self.node_id) {
            let followers = self.followers.lock();
            for replica in state.isr.iter().filter(|&&r| r != self.node_id) {
                match followers.get(replica) {
                    Some(p) if p.log_end_offset >= 0 => candidate = candidate.min(p.log_end_offset),
                    _ => return,
                }
            }
        }
        if candidate > self.log.high_watermark() {
            self.log.update_high_watermark(candidate);
            self.new_data.notify_waiters();
        }
    }

    /// As follower, appends batches fetched from the leader (offsets and
    /// epochs as the leader assigned them) and takes the leader's high
    /// watermark, capped at what this replica holds.
    pub fn append_as_follower(
        &self,
        records: &[u8],
        leader_high_watermark: i64,
    ) -> Result<(), ErrorCode> {
        if !records.is_empty() {
            self.log
                .append_as_follower(records)
                .map_err(|e| storage_error_code(&self.display, &e))?;
        }
        let high_watermark = leader_high_watermark.min(self.log.log_end_offset());
        if high_watermark != self.log.high_watermark() {
            self.log.update_high_watermark(high_watermark);
        }
        self.new_data.notify_waiters();
        Ok(())
    }
}

/// The offset after the last batch in `records` (whole batches from the log).
fn end_offset_of(records: &[u8]) -> Option<i64> {
    BatchIter::new(records)
        .map_while(Result::ok)
        .last()
        .map(|b| b.header.next_offset())
}

fn code_only(code: ErrorCode) -> ProduceError {
    ProduceError {
        code,
        message: None,
        record_errors: Vec::new(),
    }
}

/// Maps a storage failure to the Kafka error code a client should see.
pub fn storage_error_code(partition: &str, e: &StorageError) -> ErrorCode {
    match e {
        StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        StorageError::InvalidOffset(_) => ErrorCode::OffsetOutOfRange,
        StorageError::Producer(p) => match p {
            ProducerStateError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequenceNumber,
            ProducerStateError::InvalidProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
            ProducerStateError::UnknownProducerId { .. } => ErrorCode::UnknownProducerId,
            ProducerStateError::InvalidTxnState { .. } => ErrorCode::InvalidTxnState,
            ProducerStateError::CoordinatorFenced { .. } => ErrorCode::TransactionCoordinatorFenced,
        },
        // A full disk (or the storage cap) is the operator's to fix and
        // changes nothing on disk: a warning, not an error.
        StorageError::NoSpace { .. } | StorageError::CapReached { .. } => {
            tracing::warn!(partition, error = %e, "write refused");
            ErrorCode::KafkaStorageError
        }
        other => {
            tracing::error!(partition, error = %other, "storage error");
            ErrorCode::KafkaStorageError
        }
    }
}

fn storage_produce_error(partition: &str, e: StorageError) -> ProduceError {
    ProduceError {
        code: storage_error_code(partition, &e),
        message: Some(e.to_string()),
        record_errors: Vec::new(),
    }
}
