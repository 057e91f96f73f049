//! Three voters (and an observer): election, replication, NotLeader,
//! forwarding, losing one and two voters, catch-up by snapshot.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use futures::FutureExt;
use millrace_quorum::{Quorum, QuorumConfig, QuorumError};
use tempfile::TempDir;

struct Cluster {
    voters: BTreeMap<i32, SocketAddr>,
    dirs: BTreeMap<i32, TempDir>,
    nodes: BTreeMap<i32, Arc<Quorum>>,
    tune: fn(&mut QuorumConfig),
}

impl Cluster {
    async fn start(voter_count: usize, tune: fn(&mut QuorumConfig)) -> Cluster {
        let voters = voters(voter_count);
        let mut cluster = Cluster {
            dirs: voters
                .keys()
                .map(|&id| (id, tempfile::tempdir().expect("tempdir")))
                .collect(),
            voters,
            nodes: BTreeMap::new(),
            tune,
        };
        let ids: Vec<i32> = cluster.voters.keys().copied().collect();
        for id in ids {
            cluster.start_node(id).await;
        }
        cluster
    }

    fn config(&self, id: i32) -> QuorumConfig {
        let mut config = config(id, &self.voters, self.voters[&id], self.dirs[&id].path());
        (self.tune)(&mut config);
        config
    }

    async fn start_node(&mut self, id: i32) -> Arc<Quorum> {
        let node = Quorum::start(self.config(id)).await.expect("start");
        self.nodes.insert(id, node.clone());
        node
    }

    async fn stop_node(&mut self, id: i32) {
        let node = self.nodes.remove(&id).expect("running");
        node.shutdown().await;
    }

    fn running(&self) -> Vec<&Arc<Quorum>> {
        self.nodes.values().collect()
    }

    async fn shutdown(self) {
        for node in self.nodes.values() {
            node.shutdown().await;
        }
    }
}

fn no_tuning(_: &mut QuorumConfig) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_replicates_to_every_voter_with_identical_offsets() {
    bounded(Duration::from_secs(90), async {
        let cluster = Cluster::start(3, no_tuning).await;
        let nodes = cluster.running();
        let leader_id = agreed_leader(&nodes).await;
        let leader = &cluster.nodes[&leader_id];

        let mut last = -1;
        for i in 0..10 {
            let batch = vec![record(&format!("a{i}")), record(&format!("b{i}"))];
            let offset = leader.append(batch).await.expect("append on the leader");
            assert_eq!(offset, last + 2, "records get consecutive offsets");
            last = offset;
        }
        // The leader's image shows the batch as soon as append returns.
        assert_eq!(leader.image().offset, last);
        for node in &nodes {
            caught_up(node, last).await;
            assert_same_image(&leader.image(), &node.image());
        }

        // A follower refuses appends and names the leader.
        let follower = nodes
            .iter()
            .find(|n| n.node_id() != leader_id)
            .expect("a follower");
        assert_eq!(
            follower.append(vec![record("nope")]).await,
            Err(QuorumError::NotLeader {
                leader: Some(leader_id)
            })
        );
        assert!(!follower.is_leader());
        assert_eq!(*follower.watch_leader().borrow(), Some(leader_id));
        let status = follower.status();
        assert_eq!(status.voters, [1, 2, 3].into_iter().collect());
        assert!(status.observers.is_empty());
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_reaches_the_leaders_handler() {
    bounded(Duration::from_secs(90), async {
        let cluster = Cluster::start(3, no_tuning).await;
        let nodes = cluster.running();
        for node in &nodes {
            let id = node.node_id();
            node.set_request_handler(Arc::new(move |request: Bytes| {
                async move {
                    let mut answer = format!("node {id} got ").into_bytes();
                    answer.extend_from_slice(&request);
                    Bytes::from(answer)
                }
                .boxed()
            }));
        }
        let leader_id = agreed_leader(&nodes).await;
        for node in &nodes {
            let answer = node
                .forward(Bytes::from_static(b"create topic"))
                .await
                .expect("forward");
            assert_eq!(
                answer,
                Bytes::from(format!("node {leader_id} got create topic")),
                "forwarded from node {}",
                node.node_id()
            );
        }
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_leader_elects_another_and_the_restarted_node_catches_up_by_snapshot() {
    bounded(Duration::from_secs(120), async {
        // Small snapshots and nothing kept after them: while a node is
        // down, the log it would need is purged.
        let mut cluster = Cluster::start(3, |c| {
            c.snapshot_max_record_bytes = 4 * record_bytes("while-down-0");
            c.entries_kept_after_snapshot = 0;
        })
        .await;
        let old_leader = agreed_leader(&cluster.running()).await;
        let first = append_anywhere(&cluster.running(), vec![record("before")]).await;
        for node in cluster.running() {
            caught_up(node, first).await;
        }
        let stopped_at = cluster.nodes[&old_leader].status().last_log_index;
        cluster.stop_node(old_leader).await;

        let new_leader = agreed_leader(&cluster.running()).await;
        assert_ne!(new_leader, old_leader);
        let mut last = first;
        for i in 0..12 {
            last =
                append_anywhere(&cluster.running(), vec![record(&format!("while-down-{i}"))]).await;
        }
        assert_eq!(last, first + 12);
        let leader = cluster.nodes[&new_leader].clone();
        eventually("the leader to purge past the stopped node's log", || {
            leader.status().purged_index > stopped_at
        })
        .await;

        let restarted = cluster.start_node(old_leader).await;
        caught_up(&restarted, last).await;
        assert_same_image(&leader.image(), &restarted.image());
        assert!(
            restarted.status().snapshot_offset.is_some(),
            "the restarted node holds a snapshot"
        );
        // And it keeps following.
        let more = append_anywhere(&cluster.running(), vec![record("after")]).await;
        caught_up(&restarted, more).await;
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_two_voters_stops_appends_until_one_returns() {
    bounded(Duration::from_secs(120), async {
        let mut cluster = Cluster::start(3, |c| c.request_timeout_ms = 1_500).await;
        let leader_id = agreed_leader(&cluster.running()).await;
        let committed = append_anywhere(&cluster.running(), vec![record("committed")]).await;
        let followers: Vec<i32> = cluster
            .voters
            .keys()
            .copied()
            .filter(|&id| id != leader_id)
            .collect();
        for &id in &followers {
            caught_up(&cluster.nodes[&id], committed).await;
            cluster.stop_node(id).await;
        }
        let leader = cluster.nodes[&leader_id].clone();

        let started = Instant::now();
        let refused = leader.append(vec![record("no quorum")]).await;
        let waited = started.elapsed();
        assert!(
            matches!(refused, Err(QuorumError::NoQuorum { .. })),
            "{refused:?}"
        );
        assert!(
            waited >= Duration::from_millis(1_400) && waited < Duration::from_millis(4_000),
            "gave up after {waited:?}"
        );
        // What was committed stays readable.
        assert_eq!(leader.image().offset, committed);
        assert!(leader.image().broker_config("").contains_key("committed"));

        cluster.start_node(followers[0]).await;
        let restored = append_anywhere(&cluster.running(), vec![record("restored")]).await;
        assert!(restored > committed);
        for node in cluster.running() {
            caught_up(node, restored).await;
            assert!(node.image().broker_config("").contains_key("restored"));
        }
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_alone_reports_no_quorum() {
    bounded(Duration::from_secs(90), async {
        let mut cluster = Cluster::start(3, |c| c.request_timeout_ms = 1_500).await;
        let leader_id = agreed_leader(&cluster.running()).await;
        let committed = append_anywhere(&cluster.running(), vec![record("x")]).await;
        let ids: Vec<i32> = cluster.voters.keys().copied().collect();
        let survivor = *ids.iter().find(|&&id| id != leader_id).expect("follower");
        caught_up(&cluster.nodes[&survivor], committed).await;
        for id in ids.into_iter().filter(|&id| id != survivor) {
            cluster.stop_node(id).await;
        }
        let survivor = cluster.nodes[&survivor].clone();
        // Until its election timeout the survivor may still name the old
        // leader; after it, no leader is known and appends time out.
        eventually("the survivor to lose its leader", || {
            survivor.leader().is_none()
        })
        .await;
        let refused = survivor.append(vec![record("y")]).await;
        assert!(
            matches!(refused, Err(QuorumError::NoQuorum { .. })),
            "{refused:?}"
        );
        let forwarded = survivor.forward(Bytes::from_static(b"ping")).await;
        assert!(
            matches!(forwarded, Err(QuorumError::NoLeader { .. })),
            "{forwarded:?}"
        );
        assert_eq!(survivor.image().offset, committed);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_receives_every_record_without_voting() {
    bounded(Duration::from_secs(120), async {
        let cluster = Cluster::start(3, no_tuning).await;
        let leader_id = agreed_leader(&cluster.running()).await;
        let leader = cluster.nodes[&leader_id].clone();
        leader.set_request_handler(Arc::new(|request: Bytes| async move { request }.boxed()));
        let before = append_anywhere(&cluster.running(), vec![record("before-join")]).await;

        let observer_dir = tempfile::tempdir().expect("tempdir");
        let observer_addr = free_addrs(1)[0];
        let observer_config = config(100, &cluster.voters, observer_addr, observer_dir.path());
        assert!(!observer_config.is_voter());
        let observer = Quorum::start(observer_config.clone())
            .await
            .expect("observer");
        caught_up(&observer, before).await;

        let mut last = before;
        for i in 0..5 {
            last = append_anywhere(&cluster.running(), vec![record(&format!("after-{i}"))]).await;
        }
        caught_up(&observer, last).await;
        assert_same_image(&leader.image(), &observer.image());
        assert!(!observer.is_leader());
        assert_eq!(observer.leader(), Some(leader_id));
        assert_eq!(
            observer.append(vec![record("from observer")]).await,
            Err(QuorumError::NotLeader {
                leader: Some(leader_id)
            })
        );
        assert_eq!(
            observer
                .forward(Bytes::from_static(b"echo"))
                .await
                .expect("forward"),
            Bytes::from_static(b"echo")
        );
        let status = leader.status();
        assert_eq!(status.observers, [100].into_iter().collect());
        assert_eq!(status.voters, [1, 2, 3].into_iter().collect());

        // A restarted observer resumes from its own log.
        observer.shutdown().await;
        let more = append_anywhere(&cluster.running(), vec![record("while-observer-down")]).await;
        let observer = Quorum::start(observer_config)
            .await
            .expect("observer restart");
        assert!(observer.image().offset >= last);
        caught_up(&observer, more).await;
        assert_same_image(&leader.image(), &observer.image());
        observer.shutdown().await;
        cluster.shutdown().await;
    })
    .await;
}

/// KRaft's largest user operation, 10,000 partitions, is one batch of about
/// 1.7 MB of JSON. openraft 0.9 times every AppendEntries out after the
/// heartbeat interval, and each retry costs the same encoding and decoding
/// again, so the interval must cover the largest batch: in a debug build on
/// a busy two-core machine one attempt takes a few hundred milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_partition_batch_replicates() {
    bounded(Duration::from_secs(120), async {
        let cluster = Cluster::start(3, |c| {
            c.heartbeat_interval_ms = 1_000;
            c.election_timeout_min_ms = 3_000;
            c.election_timeout_max_ms = 4_500;
            c.request_timeout_ms = 30_000;
        })
        .await;
        agreed_leader(&cluster.running()).await;
        let topic_id = uuid::Uuid::new_v4();
        let mut batch = vec![millrace_metadata::records::MetadataRecord::Topic {
            name: "big".into(),
            topic_id,
        }];
        // KRaft's largest user operation: 10,000 partitions in one batch.
        for partition_id in 0..10_000 {
            batch.push(millrace_metadata::records::MetadataRecord::Partition {
                topic_id,
                partition_id,
                replicas: vec![1, 2, 3],
                isr: vec![1, 2, 3],
                leader: 1 + partition_id % 3,
                leader_epoch: 0,
                partition_epoch: 0,
            });
        }
        let offset = append_anywhere(&cluster.running(), batch).await;
        for node in cluster.running() {
            caught_up(node, offset).await;
            assert_eq!(
                node.image().topic("big").expect("topic").partitions.len(),
                10_000
            );
        }
        cluster.shutdown().await;
    })
    .await;
}
