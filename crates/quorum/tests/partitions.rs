//! Network partitions between three voters, cut with the quorum's
//! fault-injection hook (`Quorum::cut_off`) so everything else runs over
//! real sockets: a voter cut off and healed must not disturb the leader
//! (pre-vote), and a leader cut off from the majority must stop leading
//! (check quorum).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use millrace_quorum::{Quorum, QuorumError};
use tempfile::TempDir;

struct Cluster {
    _dirs: Vec<TempDir>,
    nodes: BTreeMap<i32, Arc<Quorum>>,
    election_timeout_max: Duration,
}

impl Cluster {
    async fn start() -> Cluster {
        let voters = voters(3);
        let mut dirs = Vec::new();
        let mut nodes = BTreeMap::new();
        let mut election_timeout_max = Duration::ZERO;
        for (&id, &addr) in &voters {
            let dir = tempfile::tempdir().expect("tempdir");
            let config = config(id, &voters, addr, dir.path());
            election_timeout_max = Duration::from_millis(config.election_timeout_max_ms);
            nodes.insert(id, Quorum::start(config).await.expect("start"));
            dirs.push(dir);
        }
        Cluster {
            _dirs: dirs,
            nodes,
            election_timeout_max,
        }
    }

    fn all(&self) -> Vec<&Arc<Quorum>> {
        self.nodes.values().collect()
    }

    fn others(&self, id: i32) -> Vec<i32> {
        self.nodes.keys().copied().filter(|&n| n != id).collect()
    }

    /// Cuts (or heals) every link between `id` and the other nodes, both ways.
    fn partition(&self, id: i32, cut: bool) {
        let others = self.others(id);
        self.nodes[&id].cut_off(&others, cut);
        for other in others {
            self.nodes[&other].cut_off(&[id], cut);
        }
    }

    async fn shutdown(self) {
        for node in self.nodes.values() {
            node.shutdown().await;
        }
    }
}

/// What a writer that kept appending on one node saw.
struct Writes {
    committed: u64,
    failures: Vec<QuorumError>,
}

/// Appends one record after another on `node` until `stop` is set.
fn keep_writing(node: Arc<Quorum>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Writes> {
    tokio::spawn(async move {
        let mut writes = Writes {
            committed: 0,
            failures: Vec::new(),
        };
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            match node.append(vec![record(&format!("write-{n}"))]).await {
                Ok(_) => writes.committed += 1,
                Err(e) => writes.failures.push(e),
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        writes
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_cut_off_and_healed_does_not_disturb_the_leader() {
    bounded(Duration::from_secs(120), async {
        let cluster = Cluster::start().await;
        let leader_id = agreed_leader(&cluster.all()).await;
        let leader = cluster.nodes[&leader_id].clone();
        let term = leader.status().term;
        let cut_id = cluster.others(leader_id)[0];
        let cut = cluster.nodes[&cut_id].clone();
        let first = append_anywhere(&cluster.all(), vec![record("before")]).await;
        caught_up(&cut, first).await;

        let stop = Arc::new(AtomicBool::new(false));
        let writer = keep_writing(leader.clone(), stop.clone());

        // Cut off for several election timeouts: long enough that, without
        // pre-vote, it campaigns (and raises its term) again and again.
        cluster.partition(cut_id, true);
        tokio::time::sleep(cluster.election_timeout_max * 5).await;
        assert_eq!(
            cut.status().term,
            term,
            "the cut-off voter raised its term without a majority's pre-vote"
        );
        let during = leader.image().offset;
        assert!(during > first, "the leader kept committing without it");

        cluster.partition(cut_id, false);
        caught_up(&cut, during).await;
        // Several more election timeouts after the heal, in which a
        // disturbed leader would have stepped down.
        tokio::time::sleep(cluster.election_timeout_max * 3).await;
        stop.store(true, Ordering::SeqCst);
        let writes = writer.await.expect("writer");

        assert!(
            writes.failures.is_empty(),
            "appends on the leader failed: {:?}",
            writes.failures
        );
        assert!(writes.committed > 0);
        let status = leader.status();
        assert_eq!(status.term, term, "the leader's term changed");
        assert!(status.is_leader, "node {leader_id} is no longer the leader");
        for node in cluster.all() {
            assert_eq!(node.leader(), Some(leader_id));
            assert_eq!(node.status().term, term);
        }
        let last = leader.image().offset;
        for node in cluster.all() {
            caught_up(node, last).await;
            assert_same_image(&leader.image(), &node.image());
        }
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_majority_stops_leading_and_follows_after_the_heal() {
    bounded(Duration::from_secs(120), async {
        let cluster = Cluster::start().await;
        let old_id = agreed_leader(&cluster.all()).await;
        let old = cluster.nodes[&old_id].clone();
        let first = append_anywhere(&cluster.all(), vec![record("before")]).await;

        cluster.partition(old_id, true);
        eventually("the cut-off leader to stop leading", || !old.is_leader()).await;
        let rest: Vec<&Arc<Quorum>> = cluster
            .others(old_id)
            .iter()
            .map(|id| &cluster.nodes[id])
            .collect();
        let new_id = agreed_leader(&rest).await;
        assert_ne!(new_id, old_id);
        let committed = append_anywhere(&rest, vec![record("majority")]).await;
        assert!(committed > first);
        match old.append(vec![record("minority")]).await {
            Err(QuorumError::NotLeader { .. } | QuorumError::NoQuorum { .. }) => {}
            other => panic!("the cut-off old leader answered {other:?}"),
        }

        cluster.partition(old_id, false);
        let leader = agreed_leader(&cluster.all()).await;
        let last = append_anywhere(&cluster.all(), vec![record("after")]).await;
        for node in cluster.all() {
            caught_up(node, last).await;
            assert_same_image(&cluster.nodes[&leader].image(), &node.image());
        }
        // The minority's write never committed anywhere.
        assert!(!old.image().broker_config("").contains_key("minority"));
        cluster.shutdown().await;
    })
    .await;
}
