//! In-memory fakes of the three broker traits plus request helpers.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::add_offsets_to_txn_request::AddOffsetsToTxnRequest;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnTopic,
};
use kafka_protocol::messages::describe_transactions_request::DescribeTransactionsRequest;
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::end_txn_request::EndTxnRequest;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::{GroupId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use millrace_protocol::records::{set_base_offset, BatchIter};
use millrace_txn_coordinator::format::{decode_chunk, LogEntry};
use millrace_txn_coordinator::{
    BoxFuture, Clock, ErrorCode, LogChunk, MarkerRequest, MarkerWriter, ProducerIdBlock,
    ProducerIdSource, TopicPartition, TransactionCoordinator, TransactionLog, TxnCoordinatorConfig,
};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
pub struct MemLog {
    pub parts: Mutex<HashMap<i32, Vec<Bytes>>>,
    pub fail_next_appends: AtomicUsize,
    pub hold_reads: AtomicBool,
    pub appends: AtomicUsize,
}

impl MemLog {
    /// Appends a batch directly (to seed a log before election).
    pub fn push(&self, partition: i32, batch: Bytes) -> i64 {
        let mut parts = self.parts.lock();
        let log = parts.entry(partition).or_default();
        let offset = log.len() as i64;
        let mut b = BytesMut::from(&batch[..]);
        set_base_offset(&mut b, offset);
        log.push(b.freeze());
        offset
    }

    /// Every decoded entry of a partition, in order.
    pub fn entries(&self, partition: i32) -> Vec<LogEntry> {
        let parts = self.parts.lock();
        let mut out = Vec::new();
        for b in parts.get(&partition).into_iter().flatten() {
            let (e, _, skipped) = decode_chunk(b);
            assert_eq!(skipped, 0);
            out.extend(e);
        }
        out
    }
}

impl TransactionLog for MemLog {
    fn append(&self, partition: i32, batch: Bytes) -> BoxFuture<Result<i64, ErrorCode>> {
        let result = if self
            .fail_next_appends
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            Err(ErrorCode::NotEnoughReplicas)
        } else {
            assert_eq!(BatchIter::new(&batch).count(), 1);
            self.appends.fetch_add(1, Ordering::SeqCst);
            Ok(self.push(partition, batch))
        };
        Box::pin(async move { result })
    }

    fn read(
        &self,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> BoxFuture<Result<LogChunk, ErrorCode>> {
        if self.hold_reads.load(Ordering::SeqCst) {
            return Box::pin(async { Err(ErrorCode::NotLeaderOrFollower) });
        }
        let parts = self.parts.lock();
        let log = parts.get(&partition).cloned().unwrap_or_default();
        let mut records = BytesMut::new();
        for b in log.iter().skip(offset.max(0) as usize) {
            if !records.is_empty() && records.len() + b.len() > max_bytes {
                break;
            }
            records.extend_from_slice(b);
        }
        let chunk = LogChunk {
            records: records.freeze(),
            log_start_offset: 0,
            high_watermark: log.len() as i64,
        };
        Box::pin(async move { Ok(chunk) })
    }
}

pub struct MemIds {
    pub block_len: i64,
    pub calls: AtomicUsize,
}

impl ProducerIdSource for MemIds {
    fn allocate_block(&self) -> BoxFuture<Result<ProducerIdBlock, ErrorCode>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) as i64;
        let block = ProducerIdBlock {
            first_id: 1000 * (n + 1),
            len: self.block_len,
        };
        Box::pin(async move { Ok(block) })
    }
}

#[derive(Default)]
pub struct MemMarkers {
    pub requests: Mutex<Vec<MarkerRequest>>,
    /// Partition -> how many more times it fails with NOT_LEADER_OR_FOLLOWER.
    pub failures: Mutex<HashMap<TopicPartition, usize>>,
    pub unknown: Mutex<HashSet<TopicPartition>>,
    pub blocked: AtomicBool,
}

impl MarkerWriter for MemMarkers {
    fn write_markers(
        &self,
        request: MarkerRequest,
    ) -> BoxFuture<Vec<(TopicPartition, Result<(), ErrorCode>)>> {
        let blocked = self.blocked.load(Ordering::SeqCst);
        let mut failures = self.failures.lock();
        let unknown = self.unknown.lock();
        let out = request
            .partitions
            .iter()
            .map(|tp| {
                let r = if blocked {
                    Err(ErrorCode::NotLeaderOrFollower)
                } else if unknown.contains(tp) {
                    Err(ErrorCode::UnknownTopicOrPartition)
                } else if let Some(n) = failures.get_mut(tp).filter(|n| **n > 0) {
                    *n -= 1;
                    Err(ErrorCode::NotLeaderOrFollower)
                } else {
                    Ok(())
                };
                (tp.clone(), r)
            })
            .collect();
        self.requests.lock().push(request);
        Box::pin(async move { out })
    }
}

pub struct Env {
    pub coord: Arc<TransactionCoordinator>,
    pub log: Arc<MemLog>,
    pub ids: Arc<MemIds>,
    pub markers: Arc<MemMarkers>,
    pub time: Arc<AtomicI64>,
    pub config: TxnCoordinatorConfig,
}

pub fn test_config() -> TxnCoordinatorConfig {
    TxnCoordinatorConfig {
        transaction_state_partitions: 1,
        offsets_topic_partitions: 50,
        // Timers effectively off: tests drive them by hand.
        abort_timed_out_transaction_cleanup_interval_ms: 3_600_000,
        remove_expired_transaction_cleanup_interval_ms: 3_600_000,
        marker_retry_backoff_ms: 2,
        ..TxnCoordinatorConfig::default()
    }
}

impl Env {
    pub fn new(config: TxnCoordinatorConfig) -> Env {
        Env::with_log(config, Arc::new(MemLog::default()))
    }

    pub fn with_log(config: TxnCoordinatorConfig, log: Arc<MemLog>) -> Env {
        let ids = Arc::new(MemIds {
            block_len: 10,
            calls: AtomicUsize::new(0),
        });
        let markers = Arc::new(MemMarkers::default());
        let time = Arc::new(AtomicI64::new(1_000_000));
        let t = time.clone();
        let clock: Clock = Arc::new(move || t.load(Ordering::SeqCst));
        let coord = TransactionCoordinator::with_clock(
            config.clone(),
            log.clone(),
            ids.clone(),
            markers.clone(),
            clock,
        );
        Env {
            coord,
            log,
            ids,
            markers,
            time,
            config,
        }
    }

    /// A second coordinator over the same log (a new leader).
    pub fn successor(&self) -> Env {
        let env = Env::with_log(self.config.clone(), self.log.clone());
        env.time.store(self.now(), Ordering::SeqCst);
        env
    }

    pub fn now(&self) -> i64 {
        self.time.load(Ordering::SeqCst)
    }

    pub fn advance(&self, ms: i64) {
        self.time.fetch_add(ms, Ordering::SeqCst);
    }

    pub async fn elect(&self, partition: i32, epoch: i32) {
        self.coord.on_elected(partition, epoch);
        wait_until(|| self.coord.is_loaded(partition)).await;
    }

    pub async fn init(&self, txn: Option<&str>, timeout_ms: i32) -> (i16, i64, i16) {
        self.init_v(4, txn, timeout_ms, -1, -1).await
    }

    pub async fn init_v(
        &self,
        version: i16,
        txn: Option<&str>,
        timeout_ms: i32,
        pid: i64,
        epoch: i16,
    ) -> (i16, i64, i16) {
        let mut req = InitProducerIdRequest::default();
        req.transactional_id = txn.map(|t| TransactionalId(s(t)));
        req.transaction_timeout_ms = timeout_ms;
        req.producer_id = pid.into();
        req.producer_epoch = epoch;
        let r = self.coord.init_producer_id(version, req).await;
        (r.error_code, r.producer_id.0, r.producer_epoch)
    }

    /// Init that retries CONCURRENT_TRANSACTIONS like a client.
    pub async fn init_retrying(&self, txn: &str, timeout_ms: i32) -> (i64, i16) {
        for _ in 0..2000 {
            let (err, pid, epoch) = self.init(Some(txn), timeout_ms).await;
            if err == 0 {
                return (pid, epoch);
            }
            assert_eq!(err, ErrorCode::ConcurrentTransactions.code());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("init never succeeded");
    }

    /// AddPartitionsToTxn v3; returns the per-partition codes.
    pub async fn add(&self, txn: &str, pid: i64, epoch: i16, tps: &[(&str, i32)]) -> Vec<i16> {
        self.add_v(3, txn, pid, epoch, tps).await
    }

    pub async fn add_v(
        &self,
        version: i16,
        txn: &str,
        pid: i64,
        epoch: i16,
        tps: &[(&str, i32)],
    ) -> Vec<i16> {
        let mut req = AddPartitionsToTxnRequest::default();
        req.v3_and_below_transactional_id = TransactionalId(s(txn));
        req.v3_and_below_producer_id = pid.into();
        req.v3_and_below_producer_epoch = epoch;
        req.v3_and_below_topics = topics(tps);
        let r = self.coord.add_partitions_to_txn(version, req).await;
        r.results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| {
                t.results_by_partition
                    .iter()
                    .map(|p| p.partition_error_code)
            })
            .collect()
    }

    pub async fn add_offsets(
        &self,
        version: i16,
        txn: &str,
        pid: i64,
        epoch: i16,
        group: &str,
    ) -> i16 {
        let mut req = AddOffsetsToTxnRequest::default();
        req.transactional_id = TransactionalId(s(txn));
        req.producer_id = pid.into();
        req.producer_epoch = epoch;
        req.group_id = GroupId(s(group));
        self.coord.add_offsets_to_txn(version, req).await.error_code
    }

    pub async fn end(&self, txn: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
        self.end_v(3, txn, pid, epoch, commit).await
    }

    pub async fn end_v(&self, version: i16, txn: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
        let mut req = EndTxnRequest::default();
        req.transactional_id = TransactionalId(s(txn));
        req.producer_id = pid.into();
        req.producer_epoch = epoch;
        req.committed = commit;
        self.coord.end_txn(version, req).await.error_code
    }

    pub async fn describe(&self, txn: &str) -> TransactionState {
        let mut req = DescribeTransactionsRequest::default();
        req.transactional_ids = vec![TransactionalId(s(txn))];
        let mut r = self.coord.describe_transactions(0, req).await;
        r.transaction_states.remove(0)
    }

    pub async fn state(&self, txn: &str) -> String {
        self.describe(txn)
            .await
            .transaction_state
            .as_str()
            .to_string()
    }

    pub async fn wait_state(&self, txn: &str, state: &str) {
        for _ in 0..2500 {
            if self.state(txn).await == state {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("{txn} never reached {state}; now {}", self.state(txn).await);
    }
}

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn topics(tps: &[(&str, i32)]) -> Vec<AddPartitionsToTxnTopic> {
    let mut by: Vec<(String, Vec<i32>)> = Vec::new();
    for (t, p) in tps {
        match by.iter_mut().find(|(n, _)| n == t) {
            Some((_, ps)) => ps.push(*p),
            None => by.push((t.to_string(), vec![*p])),
        }
    }
    by.into_iter()
        .map(|(t, ps)| {
            let mut topic = AddPartitionsToTxnTopic::default();
            topic.name = TopicName(s(&t));
            topic.partitions = ps;
            topic
        })
        .collect()
}

pub async fn wait_until(mut f: impl FnMut() -> bool) {
    for _ in 0..2500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("condition never became true");
}

pub fn tp(t: &str, p: i32) -> TopicPartition {
    TopicPartition::new(t, p)
}
