//! Helpers for the quorum tests: real nodes on loopback ports, tempdirs and
//! bounded waits.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use millrace_metadata::records::{ConfigResourceType, MetadataRecord};
use millrace_metadata::MetadataImage;
use millrace_quorum::{Quorum, QuorumConfig, QuorumError};

/// Upper bound for any single wait in these tests.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// `n` loopback addresses that were free a moment ago. Ports come from
/// below Linux's ephemeral range, so outgoing connections of other tests
/// cannot take them between this check and the node's bind.
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let mut held = Vec::new();
    let mut addrs = Vec::new();
    while addrs.len() < n {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_usize(addrs.len());
        let port = 20_000 + (hasher.finish() % 12_000) as u16;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        if let Ok(listener) = TcpListener::bind(addr) {
            held.push(listener);
            addrs.push(addr);
        }
    }
    addrs
}

/// A voter set on fresh loopback addresses, ids 1..=n.
pub fn voters(n: usize) -> BTreeMap<i32, SocketAddr> {
    free_addrs(n)
        .into_iter()
        .enumerate()
        .map(|(i, addr)| (i as i32 + 1, addr))
        .collect()
}

/// A config with timings fast enough for tests but slack enough for a
/// loaded two-core machine.
pub fn config(
    node_id: i32,
    voters: &BTreeMap<i32, SocketAddr>,
    listen: SocketAddr,
    dir: &Path,
) -> QuorumConfig {
    let mut config = QuorumConfig::new(node_id, voters.clone(), listen, dir.to_path_buf());
    config.heartbeat_interval_ms = 100;
    config.election_timeout_min_ms = 600;
    config.election_timeout_max_ms = 1200;
    config.request_timeout_ms = 5_000;
    config
}

/// One config record; `name` makes records distinguishable.
pub fn record(name: &str) -> MetadataRecord {
    MetadataRecord::Config {
        resource_type: ConfigResourceType::Broker,
        resource_name: String::new(),
        name: name.into(),
        value: Some(name.len().to_string()),
    }
}

/// How many bytes `record(name)` counts for the snapshot trigger (its JSON).
pub fn record_bytes(name: &str) -> u64 {
    serde_json::to_vec(&record(name)).expect("encode").len() as u64
}

/// Polls `check` until it holds, failing the test after [`PATIENCE`].
pub async fn eventually<F: FnMut() -> bool>(what: &str, mut check: F) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a test body with an overall time limit.
pub async fn bounded<F: Future<Output = ()>>(limit: Duration, body: F) {
    tokio::time::timeout(limit, body)
        .await
        .expect("test exceeded its time limit");
}

/// Waits until every node agrees on one leader among them and returns it.
pub async fn agreed_leader(nodes: &[&Arc<Quorum>]) -> i32 {
    let mut agreed = None;
    eventually("an agreed leader", || {
        let leaders: Vec<Option<i32>> = nodes.iter().map(|n| n.leader()).collect();
        let first = leaders[0];
        let holds = first.is_some()
            && leaders.iter().all(|l| *l == first)
            && nodes.iter().filter(|n| n.is_leader()).count() == 1;
        if holds {
            agreed = first;
        }
        holds
    })
    .await;
    agreed.expect("leader")
}

/// Appends on whichever of `nodes` leads, retrying through elections.
pub async fn append_anywhere(nodes: &[&Arc<Quorum>], records: Vec<MetadataRecord>) -> i64 {
    let start = Instant::now();
    loop {
        for node in nodes {
            if node.is_leader() {
                match node.append(records.clone()).await {
                    Ok(offset) => return offset,
                    Err(QuorumError::NotLeader { .. } | QuorumError::NoQuorum { .. }) => {}
                    Err(e) => panic!("append failed: {e}"),
                }
            }
        }
        assert!(start.elapsed() < PATIENCE, "no leader accepted the append");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts two images hold the same state at the same offset.
pub fn assert_same_image(a: &MetadataImage, b: &MetadataImage) {
    assert_eq!(a.offset, b.offset, "offsets differ");
    assert_eq!(a.brokers, b.brokers);
    assert_eq!(a.topics_by_id, b.topics_by_id);
    assert_eq!(a.topic_ids_by_name, b.topic_ids_by_name);
    assert_eq!(a.topic_configs, b.topic_configs);
    assert_eq!(a.broker_configs, b.broker_configs);
    assert_eq!(a.next_producer_id, b.next_producer_id);
}

/// Waits until `node`'s image reaches `offset`.
pub async fn caught_up(node: &Arc<Quorum>, offset: i64) {
    let mut images = node.subscribe();
    let reached =
        tokio::time::timeout(PATIENCE, images.wait_for(|image| image.offset >= offset)).await;
    assert!(
        matches!(reached, Ok(Ok(_))),
        "node {} stayed at offset {} below {offset}",
        node.node_id(),
        node.image().offset
    );
}
