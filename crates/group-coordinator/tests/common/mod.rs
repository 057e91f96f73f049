//! An in-memory `__consumer_offsets` and helpers shared by the tests.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use millrace_group_coordinator::records::{encode_consumer_subscription, RecordKey};
use millrace_group_coordinator::*;
use millrace_protocol::records::{set_base_offset, BatchIter};
use parking_lot::Mutex;

/// Batches per partition; appends patch the base offset like a log.
#[derive(Default)]
pub struct FakeLog {
    pub batches: Mutex<HashMap<i32, Vec<(i64, Bytes)>>>,
    pub fail_appends: AtomicBool,
    /// While set, reads never finish (a load that stays in progress).
    pub block_reads: AtomicBool,
}

impl FakeLog {
    pub fn next_offset(&self, partition: i32) -> i64 {
        let b = self.batches.lock();
        b.get(&partition)
            .and_then(|v| v.last())
            .map_or(0, |(_, batch)| {
                let h = BatchIter::new(batch).next().unwrap().unwrap().header;
                h.next_offset()
            })
    }

    /// Appends a batch built elsewhere (markers in tests).
    pub fn append_raw(&self, partition: i32, batch: Bytes) -> i64 {
        let base = self.next_offset(partition);
        let mut b = BytesMut::from(&batch[..]);
        set_base_offset(&mut b, base);
        self.batches
            .lock()
            .entry(partition)
            .or_default()
            .push((base, b.freeze()));
        base
    }

    /// Every (key, value) record appended to `partition`, in order.
    pub fn records(&self, partition: i32) -> Vec<(RecordKey, Option<Bytes>)> {
        let mut out = Vec::new();
        for (_, batch) in self
            .batches
            .lock()
            .get(&partition)
            .cloned()
            .unwrap_or_default()
        {
            for b in BatchIter::new(&batch) {
                let b = b.unwrap();
                if b.header.is_control() {
                    continue;
                }
                for r in b.records().unwrap().iter() {
                    let r = r.unwrap();
                    if let Some(k) = RecordKey::decode(r.key.unwrap()).unwrap() {
                        out.push((k, r.value.map(Bytes::copy_from_slice)));
                    }
                }
            }
        }
        out
    }
}

impl OffsetsLog for FakeLog {
    fn append(&self, partition: i32, batch: Bytes) -> BoxFuture<Result<i64, ErrorCode>> {
        let r = if self.fail_appends.load(Ordering::SeqCst) {
            Err(ErrorCode::NotEnoughReplicas)
        } else {
            Ok(self.append_raw(partition, batch))
        };
        Box::pin(async move { r })
    }

    fn read(
        &self,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> BoxFuture<Result<LogChunk, ErrorCode>> {
        let blocked = self.block_reads.load(Ordering::SeqCst);
        let hw = self.next_offset(partition);
        let mut out = BytesMut::new();
        for (_, batch) in self
            .batches
            .lock()
            .get(&partition)
            .cloned()
            .unwrap_or_default()
        {
            let h = BatchIter::new(&batch).next().unwrap().unwrap().header;
            if h.last_offset() < offset {
                continue;
            }
            if !out.is_empty() && out.len() + batch.len() > max_bytes {
                break;
            }
            out.extend_from_slice(&batch);
        }
        Box::pin(async move {
            if blocked {
                std::future::pending::<()>().await;
            }
            Ok(LogChunk {
                records: out.freeze(),
                log_start_offset: 0,
                high_watermark: hw,
            })
        })
    }
}

pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn config() -> GroupCoordinatorConfig {
    GroupCoordinatorConfig {
        offsets_topic_partitions: 1,
        ..GroupCoordinatorConfig::default()
    }
}

/// A coordinator over `log` that leads partition 0 (the only one), loaded.
pub async fn coordinator_on(
    log: Arc<FakeLog>,
    cfg: GroupCoordinatorConfig,
) -> Arc<GroupCoordinator> {
    let c = GroupCoordinator::new(cfg, log);
    c.on_elected(0, 1);
    wait_loaded(&c).await;
    c
}

pub async fn coordinator() -> (Arc<GroupCoordinator>, Arc<FakeLog>) {
    let log = Arc::new(FakeLog::default());
    (coordinator_on(log.clone(), config()).await, log)
}

pub async fn wait_loaded(c: &GroupCoordinator) {
    for _ in 0..1000 {
        if c.is_loaded(0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("partition never loaded");
}

pub fn client(id: &str) -> ClientInfo {
    ClientInfo {
        client_id: id.to_string(),
        client_host: "/127.0.0.1".to_string(),
    }
}

pub fn join_req(
    group: &str,
    member: &str,
    instance: Option<&str>,
    topics: &[&str],
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_member_id(sb(member))
        .with_group_instance_id(instance.map(sb))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(30_000)
        .with_protocol_type(sb("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(sb("range"))
            .with_metadata(encode_consumer_subscription(topics))])
}

/// Joins as a new dynamic member with the KIP-394 round trip (v5).
pub async fn join_new(
    c: &Arc<GroupCoordinator>,
    group: &str,
    client_id: &str,
) -> JoinGroupResponse {
    let first = c
        .join_group(client(client_id), 5, join_req(group, "", None, &["t"]))
        .await;
    assert_eq!(first.error_code, ErrorCode::MemberIdRequired.code());
    assert!(first.member_id.starts_with(&format!("{client_id}-")));
    c.join_group(
        client(client_id),
        5,
        join_req(group, &first.member_id, None, &["t"]),
    )
    .await
}

pub fn spawn_join(
    c: &Arc<GroupCoordinator>,
    client_id: &str,
    version: i16,
    req: JoinGroupRequest,
) -> tokio::task::JoinHandle<JoinGroupResponse> {
    let c = c.clone();
    let client_id = client_id.to_string();
    tokio::spawn(async move { c.join_group(client(&client_id), version, req).await })
}

pub fn sync_req(
    group: &str,
    generation: i32,
    member: &str,
    assignments: &[(&str, &[u8])],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id(generation)
        .with_member_id(sb(member))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(sb(m))
                        .with_assignment(Bytes::copy_from_slice(a))
                })
                .collect(),
        )
}

pub async fn heartbeat(c: &GroupCoordinator, group: &str, generation: i32, member: &str) -> i16 {
    c.heartbeat(
        3,
        HeartbeatRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_generation_id(generation)
            .with_member_id(sb(member)),
    )
    .await
    .error_code
}

pub async fn describe(
    c: &GroupCoordinator,
    group: &str,
) -> describe_groups_response::DescribedGroup {
    c.describe_groups(
        5,
        DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(group))]),
    )
    .await
    .groups
    .remove(0)
}

/// Encodes a response at `version`, as the broker will.
pub fn encodes<T: Encodable>(msg: &T, version: i16) {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("response does not encode at v{version}: {e}"));
}
