//! One voter: appends, restarts, kill-style crashes and snapshots.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::time::Duration;

use common::*;
use millrace_metadata::records::MetadataRecord;
use millrace_quorum::Quorum;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_survive_a_restart_with_the_same_image() {
    bounded(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().expect("tempdir");
        let voters = voters(1);
        let listen = voters[&1];
        let node = Quorum::start(config(1, &voters, listen, dir.path()))
            .await
            .expect("start");
        agreed_leader(&[&node]).await;
        assert_eq!(node.image().offset, -1);
        assert_eq!(
            node.append(vec![record("a"), record("bb")])
                .await
                .expect("append"),
            1
        );
        assert_eq!(node.append(vec![record("ccc")]).await.expect("append"), 2);
        assert_eq!(node.append(vec![]).await.expect("empty batch"), 2);
        let before = node.image();
        assert_eq!(before.offset, 2);
        assert_eq!(before.broker_config("").len(), 3);
        node.shutdown().await;

        let node = Quorum::start(config(1, &voters, listen, dir.path()))
            .await
            .expect("restart");
        // The committed state is back before any election.
        assert_same_image(&before, &node.image());
        agreed_leader(&[&node]).await;
        assert_eq!(node.append(vec![record("dddd")]).await.expect("append"), 3);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_belongs_to_one_node() {
    bounded(Duration::from_secs(30), async {
        let dir = tempfile::tempdir().expect("tempdir");
        let voters = voters(2);
        let node = Quorum::start(config(1, &voters, voters[&1], dir.path()))
            .await
            .expect("start");
        node.shutdown().await;
        let other = Quorum::start(config(2, &voters, voters[&2], dir.path())).await;
        assert!(matches!(
            other,
            Err(millrace_quorum::QuorumError::Config(_))
        ));
    })
    .await;
}

/// Runs a node on its own runtime so that dropping the runtime abandons
/// every task mid-flight, as `kill -9` would (nothing graceful runs).
fn crash_and_restart(corrupt_tail: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let voters = voters(1);
    let listen = voters[&1];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let before = runtime.block_on(async {
        let node = Quorum::start(config(1, &voters, listen, dir.path()))
            .await
            .expect("start");
        agreed_leader(&[&node]).await;
        for i in 0..20 {
            node.append(vec![record(&format!("r{i}")), record(&format!("s{i}"))])
                .await
                .expect("append");
        }
        // An append in flight when the process dies may or may not survive;
        // everything acknowledged before it must.
        let in_flight = node.clone();
        tokio::spawn(async move {
            let _ = in_flight.append(vec![record("in-flight")]).await;
        });
        node.image()
    });
    runtime.shutdown_background();
    if corrupt_tail {
        let mut log = OpenOptions::new()
            .append(true)
            .open(dir.path().join("raft.log"))
            .expect("log");
        log.write_all(b"1234abcd {\"Entry\":{\"log_id\":{\"leader_")
            .expect("torn write");
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let node = Quorum::start(config(1, &voters, listen, dir.path()))
            .await
            .expect("restart after crash");
        let after = node.image();
        assert!(after.offset >= before.offset);
        for i in 0..20 {
            assert!(after.broker_config("").contains_key(&format!("r{i}")));
            assert!(after.broker_config("").contains_key(&format!("s{i}")));
        }
        agreed_leader(&[&node]).await;
        let next = node.append(vec![record("after")]).await.expect("append");
        assert_eq!(next, node.image().offset);
        assert!(next > before.offset);
        node.shutdown().await;
    });
}

#[test]
fn nothing_acknowledged_is_lost_when_the_process_is_killed() {
    crash_and_restart(false);
}

#[test]
fn a_torn_log_tail_after_a_kill_is_cut_at_restart() {
    crash_and_restart(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_purge_the_log_and_restart_rebuilds_from_snapshot_and_tail() {
    bounded(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().expect("tempdir");
        let voters = voters(1);
        let listen = voters[&1];
        let mut cfg = config(1, &voters, listen, dir.path());
        // Every five records of "k0".."k9".
        cfg.snapshot_max_record_bytes = 5 * record_bytes("k0");
        cfg.entries_kept_after_snapshot = 0;
        let node = Quorum::start(cfg.clone()).await.expect("start");
        agreed_leader(&[&node]).await;
        for i in 0..12 {
            node.append(vec![record(&format!("k{i}"))])
                .await
                .expect("append");
        }
        eventually("a snapshot and a purge", || {
            let status = node.status();
            status.snapshot_offset >= Some(9) && status.purged_index.is_some()
        })
        .await;
        // Two more records after the snapshot: the tail replayed at restart.
        node.append(vec![record("tail-1"), record("tail-2")])
            .await
            .expect("append");
        let snapshot_offset = node.status().snapshot_offset.expect("snapshot");
        assert!(snapshot_offset < 13, "the tail is not in the snapshot");
        // The log file holds only what the snapshot does not cover: its
        // entries are exactly those after the purge point.
        eventually("the log file to match the purge point", || {
            let status = node.status();
            let log = fs::read_to_string(dir.path().join("raft.log")).expect("log");
            let entries_in_file = log.lines().count() as u64 - 1;
            match (status.last_log_index, status.purged_index) {
                (Some(last), Some(purged)) => entries_in_file == last - purged,
                _ => false,
            }
        })
        .await;
        let log = fs::read_to_string(dir.path().join("raft.log")).expect("log");
        assert!(
            !log.contains("\"k0\""),
            "purged records are gone from the log"
        );
        assert!(log.contains("tail-2"));
        let before = node.image();
        node.shutdown().await;

        let node = Quorum::start(cfg).await.expect("restart");
        assert_same_image(&before, &node.image());
        assert_eq!(node.status().snapshot_offset, Some(snapshot_offset));
        agreed_leader(&[&node]).await;
        let next = node.append(vec![record("more")]).await.expect("append");
        assert_eq!(next, before.offset + 1);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_restores_every_kind_of_record() {
    bounded(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().expect("tempdir");
        let voters = voters(1);
        let mut cfg = config(1, &voters, voters[&1], dir.path());
        // Any record asks for a snapshot.
        cfg.snapshot_max_record_bytes = 1;
        cfg.entries_kept_after_snapshot = 0;
        let node = Quorum::start(cfg.clone()).await.expect("start");
        agreed_leader(&[&node]).await;
        let topic_id = uuid::Uuid::new_v4();
        node.append(vec![
            MetadataRecord::RegisterBroker {
                broker_id: 1,
                incarnation_id: uuid::Uuid::new_v4(),
                endpoints: vec![],
                rack: Some("az1".into()),
            },
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id,
            },
            MetadataRecord::Partition {
                topic_id,
                partition_id: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 4,
                partition_epoch: 2,
            },
            MetadataRecord::ProducerIds {
                broker_id: 1,
                next_producer_id: 1000,
            },
        ])
        .await
        .expect("append");
        eventually("a snapshot", || node.status().snapshot_offset == Some(3)).await;
        let before = node.image();
        node.shutdown().await;
        let node = Quorum::start(cfg).await.expect("restart");
        assert_same_image(&before, &node.image());
        assert_eq!(node.image().topic("t").expect("topic").partitions.len(), 1);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_id_zero_works_and_forward_without_a_handler_is_refused() {
    bounded(Duration::from_secs(30), async {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = free_addrs(1)[0];
        let voters = [(0, addr)].into_iter().collect();
        let cfg = config(0, &voters, addr, dir.path());
        let node = Quorum::start(cfg.clone()).await.expect("start");
        assert_eq!(agreed_leader(&[&node]).await, 0);
        assert_eq!(node.append(vec![record("z")]).await.expect("append"), 0);
        assert!(matches!(
            node.forward(bytes::Bytes::from_static(b"x")).await,
            Err(millrace_quorum::QuorumError::Remote(_))
        ));
        node.shutdown().await;
        let node = Quorum::start(cfg).await.expect("restart");
        assert_eq!(node.image().offset, 0);
        assert_eq!(agreed_leader(&[&node]).await, 0);
        assert_eq!(node.append(vec![record("zz")]).await.expect("append"), 1);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_the_connection_and_the_node_keeps_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    bounded(Duration::from_secs(30), async {
        let dir = tempfile::tempdir().expect("tempdir");
        let voters = voters(1);
        let listen = voters[&1];
        let node = Quorum::start(config(1, &voters, listen, dir.path()))
            .await
            .expect("start");
        agreed_leader(&[&node]).await;
        let garbage: [&[u8]; 4] = [
            // A length far above the frame limit.
            &[0xff, 0xff, 0xff, 0xff, 1, 2, 3],
            // A well-framed body that is not JSON.
            &[0, 0, 0, 3, b'a', b'b', b'c'],
            // JSON, but no known request.
            b"\x00\x00\x00\x0e{\"Nope\":[1,2]}",
            // A truncated frame, then the client hangs up.
            &[0, 0, 0, 9, b'{'],
        ];
        for bytes in garbage {
            let mut stream = tokio::net::TcpStream::connect(listen)
                .await
                .expect("connect");
            stream.write_all(bytes).await.expect("write");
            if bytes.len() == 5 {
                continue;
            }
            let mut buf = [0u8; 16];
            let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
                .await
                .expect("closed in time");
            assert!(
                matches!(read, Ok(0) | Err(_)),
                "connection closed: {read:?}"
            );
        }
        assert_eq!(node.append(vec![record("still")]).await.expect("append"), 0);
        node.shutdown().await;
    })
    .await;
}
