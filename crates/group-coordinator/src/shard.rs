//! One `__consumer_offsets` partition as this coordinator owns it: its groups
//! and offsets, the writer that appends its records in order, its timers and
//! the load that rebuilds it from the log.
//!
//! All state of a partition sits behind one mutex (Kafka runs a partition's
//! operations on one thread for the same reason: no operation sees another
//! half done). Records are queued to the writer while the lock is held, so
//! the log order is the order in which the state changed; waiting for the
//! append happens outside the lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use millrace_protocol::control::ControlType;
use millrace_protocol::records::{BatchBuilder, BatchIter, Compression};
use millrace_protocol::ErrorCode;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::classic::ClassicGroup;
use crate::consumer::ConsumerGroup;
use crate::records::{self, OffsetCommitValue, RecordKey};
use crate::timer::{TimerKey, Timers};
use crate::Ctx;

/// A record to append: key and value (`None` is a tombstone).
pub(crate) type Record = (Bytes, Option<Bytes>);
/// The outcome of an append: the base offset or the log's error.
pub(crate) type WriteResult = Result<i64, ErrorCode>;

const LOADING: u8 = 0;
const LOADED: u8 = 1;
const CLOSED: u8 = 2;

/// A group of either protocol.
pub(crate) enum Group {
    Classic(ClassicGroup),
    Consumer(ConsumerGroup),
}

/// A committed offset and where its record sits in the log (the later
/// record wins when a transactional commit is materialized).
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    pub value: OffsetCommitValue,
    pub record_offset: i64,
}

/// topic -> partition -> committed offset.
pub(crate) type OffsetMap = BTreeMap<String, BTreeMap<i32, Committed>>;

pub(crate) struct WriteReq {
    records: Vec<Record>,
    txn: Option<(i64, i16)>,
    reply: oneshot::Sender<WriteResult>,
}

/// One offsets partition.
pub(crate) struct Shard {
    pub partition: i32,
    pub epoch: i32,
    status: AtomicU8,
    pub state: Mutex<Option<ShardState>>,
    pub timers: Arc<Timers>,
}

impl Shard {
    pub(crate) fn new(partition: i32, epoch: i32) -> Arc<Shard> {
        Arc::new(Shard {
            partition,
            epoch,
            status: AtomicU8::new(LOADING),
            state: Mutex::new(None),
            timers: Arc::new(Timers::default()),
        })
    }

    pub(crate) fn is_loaded(&self) -> bool {
        self.status.load(Ordering::Acquire) == LOADED
    }

    fn is_closed(&self) -> bool {
        self.status.load(Ordering::Acquire) == CLOSED
    }

    /// Runs `f` on the loaded state; NOT_COORDINATOR or
    /// COORDINATOR_LOAD_IN_PROGRESS otherwise.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut ShardState) -> R) -> Result<R, ErrorCode> {
        match self.status.load(Ordering::Acquire) {
            LOADING => Err(ErrorCode::CoordinatorLoadInProgress),
            LOADED => {
                let mut guard = self.state.lock();
                match guard.as_mut() {
                    Some(st) => Ok(f(st)),
                    None => Err(ErrorCode::NotCoordinator),
                }
            }
            _ => Err(ErrorCode::NotCoordinator),
        }
    }

    /// Drops the partition's state: parked requests see their channels
    /// close, timers stop, the writer ends once its queue is empty.
    pub(crate) fn close(&self) {
        self.status.store(CLOSED, Ordering::Release);
        self.timers.close();
        let old = self.state.lock().take();
        drop(old);
    }

    /// Loads the partition from the log, then serves it.
    pub(crate) async fn load(self: Arc<Self>, ctx: Arc<Ctx>) {
        let started = tokio::time::Instant::now();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut st = ShardState {
            partition: self.partition,
            ctx: ctx.clone(),
            timers: self.timers.clone(),
            writer: tx,
            me: Arc::downgrade(&self),
            groups: HashMap::new(),
            offsets: HashMap::new(),
            pending_txn: HashMap::new(),
        };
        let mut offset = 0i64;
        let mut records_loaded = 0u64;
        loop {
            if self.is_closed() {
                return;
            }
            let chunk = match ctx.log.read(self.partition, offset, 1 << 20).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(partition = self.partition, error = %e, "reading __consumer_offsets failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            if offset < chunk.log_start_offset {
                offset = chunk.log_start_offset;
            }
            if offset >= chunk.high_watermark {
                break;
            }
            let before = offset;
            for batch in BatchIter::new(&chunk.records) {
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(partition = self.partition, error = %e, "corrupt batch in __consumer_offsets");
                        break;
                    }
                };
                let h = batch.header;
                if h.last_offset() < offset {
                    continue;
                }
                if h.base_offset >= chunk.high_watermark {
                    break;
                }
                offset = h.next_offset();
                let payload = match batch.records() {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(partition = self.partition, error = %e, "undecodable batch in __consumer_offsets");
                        continue;
                    }
                };
                for rec in payload.iter() {
                    let Ok(rec) = rec else {
                        break;
                    };
                    let rec_offset = h.base_offset + i64::from(rec.offset_delta);
                    records_loaded += 1;
                    if h.is_control() {
                        if let Some(kind) = rec.key.and_then(ControlType::parse_key) {
                            match kind {
                                ControlType::Commit => st.complete_txn(h.producer_id, true),
                                ControlType::Abort => st.complete_txn(h.producer_id, false),
                                ControlType::Unknown(_) => {}
                            }
                        }
                        continue;
                    }
                    let Some(key) = rec.key else { continue };
                    let txn = h.is_transactional().then_some(h.producer_id);
                    if let Err(e) = st.replay(key, rec.value, rec_offset, txn) {
                        tracing::error!(partition = self.partition, offset = rec_offset, error = %e, "skipping undecodable record");
                    }
                }
            }
            if offset == before {
                tracing::warn!(
                    partition = self.partition,
                    offset,
                    "no progress reading __consumer_offsets; stopping the load there"
                );
                break;
            }
        }
        st.after_load();
        tokio::spawn(writer_loop(self.partition, ctx.clone(), rx));
        {
            let mut guard = self.state.lock();
            if self.is_closed() {
                return;
            }
            *guard = Some(st);
            self.status.store(LOADED, Ordering::Release);
        }
        let weak = Arc::downgrade(&self);
        tokio::spawn(self.timers.clone().run(move |key| {
            let Some(shard) = weak.upgrade() else {
                return false;
            };
            let _ = shard.with(|st| st.on_timer(key));
            true
        }));
        tracing::info!(
            partition = self.partition,
            epoch = self.epoch,
            records = records_loaded,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded __consumer_offsets partition"
        );
    }
}

async fn writer_loop(partition: i32, ctx: Arc<Ctx>, mut rx: mpsc::UnboundedReceiver<WriteReq>) {
    let mut carry: Option<WriteReq> = None;
    loop {
        let first = match carry.take() {
            Some(r) => r,
            None => match rx.recv().await {
                Some(r) => r,
                None => return,
            },
        };
        let txn = first.txn;
        let mut reqs = vec![first];
        if txn.is_none() {
            let mut count = reqs[0].records.len();
            while count < 1000 {
                match rx.try_recv() {
                    Ok(r) if r.txn.is_none() => {
                        count += r.records.len();
                        reqs.push(r);
                    }
                    Ok(r) => {
                        carry = Some(r);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        let now = ctx.clock.now_ms();
        let mut builder = BatchBuilder::new(0, Compression::None);
        if let Some((pid, epoch)) = txn {
            builder = builder.producer(pid, epoch, -1).transaction(true, false);
        }
        let mut starts = Vec::with_capacity(reqs.len());
        let mut n = 0i64;
        for r in &reqs {
            starts.push(n);
            for (k, v) in &r.records {
                builder.append(n, now, Some(k), v.as_deref(), 0, &[]);
                n += 1;
            }
        }
        let result = match builder.build() {
            Ok(batch) => ctx.log.append(partition, batch).await,
            Err(e) => {
                tracing::error!(partition, error = %e, "could not build a __consumer_offsets batch");
                Err(ErrorCode::UnknownServerError)
            }
        };
        for (r, start) in reqs.into_iter().zip(starts) {
            let _ = r.reply.send(result.map(|base| base + start));
        }
    }
}

/// The state of one loaded partition.
pub(crate) struct ShardState {
    pub partition: i32,
    pub ctx: Arc<Ctx>,
    pub timers: Arc<Timers>,
    writer: mpsc::UnboundedSender<WriteReq>,
    me: Weak<Shard>,
    pub groups: HashMap<String, Group>,
    /// group -> committed offsets.
    pub offsets: HashMap<String, OffsetMap>,
    /// producer id -> group -> pending transactional offsets.
    pub pending_txn: HashMap<i64, HashMap<String, OffsetMap>>,
}

impl ShardState {
    /// Wall-clock milliseconds (tokio-time based, so paused tests move it).
    pub(crate) fn now(&self) -> i64 {
        self.ctx.clock.now_ms()
    }

    /// Queues records for the log; the receiver resolves when committed.
    pub(crate) fn write(
        &self,
        records: Vec<Record>,
        txn: Option<(i64, i16)>,
    ) -> oneshot::Receiver<WriteResult> {
        let (tx, rx) = oneshot::channel();
        if records.is_empty() {
            let _ = tx.send(Ok(-1));
            return rx;
        }
        let _ = self.writer.send(WriteReq {
            records,
            txn,
            reply: tx,
        });
        rx
    }

    /// Runs `f` on this partition's state once `write` completes (unless
    /// the partition was given up meanwhile).
    pub(crate) fn after_write(
        &self,
        write: oneshot::Receiver<WriteResult>,
        f: impl FnOnce(&mut ShardState, WriteResult) + Send + 'static,
    ) {
        let me = self.me.clone();
        tokio::spawn(async move {
            let res = write.await.unwrap_or(Err(ErrorCode::NotCoordinator));
            if let Some(shard) = me.upgrade() {
                let _ = shard.with(|st| f(st, res));
            }
        });
    }

    pub(crate) fn on_timer(&mut self, key: TimerKey) {
        match key {
            TimerKey::Heartbeat(g, m) => self.on_heartbeat_timer(&g, &m),
            TimerKey::Join(g) => self.on_join_timer(&g),
            TimerKey::Sync(g) => self.on_sync_timer(&g),
            TimerKey::ConsumerSession(g, m) => self.on_consumer_session_timer(&g, &m),
            TimerKey::ConsumerRevocation(g, m) => self.on_consumer_revocation_timer(&g, &m),
            TimerKey::OffsetExpiry => {
                self.expire_offsets();
                let interval = self.ctx.config.offsets_retention_check_interval_ms;
                self.timers.schedule_ms(TimerKey::OffsetExpiry, interval);
            }
        }
    }

    /// Applies one record read from the log.
    pub(crate) fn replay(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        record_offset: i64,
        txn_producer: Option<i64>,
    ) -> Result<(), records::DecodeError> {
        let Some(key) = RecordKey::decode(key)? else {
            return Ok(());
        };
        match key {
            RecordKey::OffsetCommit {
                group,
                topic,
                partition,
            } => {
                let value = value.map(OffsetCommitValue::decode).transpose()?;
                match (txn_producer, value) {
                    (Some(pid), Some(v)) => {
                        self.pending_txn
                            .entry(pid)
                            .or_default()
                            .entry(group)
                            .or_default()
                            .entry(topic)
                            .or_default()
                            .insert(
                                partition,
                                Committed {
                                    value: v,
                                    record_offset,
                                },
                            );
                    }
                    (Some(_), None) => {}
                    (None, Some(v)) => self.put_offset(&group, &topic, partition, v, record_offset),
                    (None, None) => self.remove_offset(&group, &topic, partition),
                }
            }
            RecordKey::GroupMetadata { group } => match value {
                Some(v) => {
                    let v = records::GroupMetadataValue::decode(v)?;
                    let g = ClassicGroup::from_record(&group, v);
                    self.groups.insert(group, Group::Classic(g));
                }
                None => {
                    if matches!(self.groups.get(&group), Some(Group::Classic(_))) {
                        self.groups.remove(&group);
                    }
                }
            },
            other => self.replay_consumer(other, value)?,
        }
        Ok(())
    }

    fn after_load(&mut self) {
        // Offsets without group metadata belong to an Empty group with no
        // protocol (a "simple" consumer's group), as in Kafka.
        let now = self.now();
        let orphan: Vec<String> = self
            .offsets
            .keys()
            .chain(self.pending_txn.values().flat_map(|g| g.keys()))
            .filter(|g| !self.groups.contains_key(*g))
            .cloned()
            .collect();
        for g in orphan {
            let mut group = ClassicGroup::new(&g, now);
            group.state_timestamp = None;
            self.groups.insert(g, Group::Classic(group));
        }
        self.classic_after_load();
        self.consumer_after_load();
        let interval = self.ctx.config.offsets_retention_check_interval_ms;
        self.timers.schedule_ms(TimerKey::OffsetExpiry, interval);
    }

    pub(crate) fn put_offset(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
        value: OffsetCommitValue,
        record_offset: i64,
    ) {
        let slot = self
            .offsets
            .entry(group.to_string())
            .or_default()
            .entry(topic.to_string())
            .or_default()
            .entry(partition);
        match slot {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                if e.get().record_offset <= record_offset {
                    e.insert(Committed {
                        value,
                        record_offset,
                    });
                }
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(Committed {
                    value,
                    record_offset,
                });
            }
        }
    }

    pub(crate) fn remove_offset(&mut self, group: &str, topic: &str, partition: i32) {
        if let Some(g) = self.offsets.get_mut(group) {
            if let Some(t) = g.get_mut(topic) {
                t.remove(&partition);
                if t.is_empty() {
                    g.remove(topic);
                }
            }
            if g.is_empty() {
                self.offsets.remove(group);
            }
        }
    }

    /// A transaction marker for `producer_id`: commit materializes its
    /// pending offsets (a later plain commit of the same partition wins),
    /// abort drops them.
    pub(crate) fn complete_txn(&mut self, producer_id: i64, commit: bool) {
        let Some(groups) = self.pending_txn.remove(&producer_id) else {
            return;
        };
        if !commit {
            return;
        }
        for (group, topics) in groups {
            for (topic, parts) in topics {
                for (p, c) in parts {
                    self.put_offset(&group, &topic, p, c.value, c.record_offset);
                }
            }
        }
    }

    /// Whether a transactional commit for this partition is pending.
    pub(crate) fn has_pending_txn(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.pending_txn.values().any(|g| {
            g.get(group)
                .and_then(|t| t.get(topic))
                .is_some_and(|p| p.contains_key(&partition))
        })
    }

    pub(crate) fn has_pending_txn_for_group(&self, group: &str) -> bool {
        self.pending_txn.values().any(|g| g.contains_key(group))
    }
}
