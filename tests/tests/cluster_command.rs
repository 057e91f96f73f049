//! `millrace cluster`: one command starts a replicated local cluster (one
//! process per node, forming a Raft metadata quorum) that
//! real clients use; topics get MSK's three replicas across the zones, every
//! replica is in sync, acks=all writes are read back, and SIGTERM stops
//! every broker cleanly.

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use millrace_tests::millrace_bin;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// A base port whose three client ports and three controller ports
/// (`base + 100 …`, where `millrace cluster` puts them) are free now.
fn free_port_run() -> u16 {
    for _ in 0..50 {
        let base = millrace_tests::free_port();
        if base < 65_000
            && (0..3)
                .flat_map(|i| [base + i, base + 100 + i])
                .all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        {
            return base;
        }
    }
    panic!("no free client and controller ports");
}

/// Starts `millrace cluster` with three brokers on `base`, its data under
/// `data/data` and its output in `data/cluster.log`.
fn spawn_cluster(data: &std::path::Path, base: u16) -> std::process::Child {
    let log = std::fs::File::create(data.join("cluster.log")).expect("log");
    Command::new(millrace_bin())
        .args(["cluster", "--brokers", "3", "--racks", "3", "--base-port"])
        .arg(base.to_string())
        .arg("--data-dir")
        .arg(data.join("data"))
        .stdout(Stdio::from(log.try_clone().expect("log fd")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn millrace cluster")
}

#[test]
fn cluster_command_runs_three_replicating_brokers() {
    let data = tempfile::tempdir().expect("tempdir");
    let base = free_port_run();
    let log_path = data.path().join("cluster.log");
    let mut child = spawn_cluster(data.path(), base);
    // The command's output, then each node's log (where a node says why it
    // stopped).
    let data_dir = data.path().join("data");
    let printed = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let output = || {
        let mut text = printed();
        for n in 1..=3 {
            let node_log = data_dir.join(format!("broker-{n}")).join("broker.log");
            if let Ok(node) = std::fs::read_to_string(node_log) {
                let tail: Vec<&str> = node.lines().rev().take(30).collect();
                text.push_str(&format!("\n--- broker {n} (last lines) ---\n"));
                for line in tail.into_iter().rev() {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        text
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !printed().contains("Bootstrap servers:")
        || !(0..3).all(|i| TcpStream::connect(("127.0.0.1", base + i)).is_ok())
    {
        assert!(Instant::now() < deadline, "cluster not up:\n{}", output());
        assert!(
            child.try_wait().ok().flatten().is_none(),
            "cluster exited:\n{}",
            output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let bootstrap = (0..3)
        .map(|i| format!("127.0.0.1:{}", base + i))
        .collect::<Vec<_>>()
        .join(",");
    assert!(
        printed().contains(&format!("Bootstrap servers: {bootstrap}")),
        "{}",
        output()
    );
    // Each node is its own process, started from a Kafka KRaft config an
    // operator could run by hand.
    for n in 1..=3 {
        let config = std::fs::read_to_string(
            data.path()
                .join("data")
                .join(format!("broker-{n}"))
                .join("server.properties"),
        )
        .expect("node config");
        assert!(
            config.contains("process.roles=broker,controller"),
            "{config}"
        );
        assert!(config.contains(&format!("node.id={n}")), "{config}");
    }

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .create()
        .expect("producer");
    for i in 0..300 {
        let payload = format!("r-{i}");
        producer
            .send(
                BaseRecord::<(), _>::to("spread")
                    .payload(&payload)
                    .partition(0),
            )
            .expect("enqueue");
    }
    producer.flush(Duration::from_secs(60)).expect("flush");

    let metadata = producer
        .client()
        .fetch_metadata(Some("spread"), Duration::from_secs(10))
        .expect("metadata");
    assert_eq!(metadata.brokers().len(), 3);
    let partition = &metadata.topics()[0].partitions()[0];
    let mut replicas = partition.replicas().to_vec();
    replicas.sort_unstable();
    assert_eq!(
        replicas,
        vec![1, 2, 3],
        "auto-created topics get three replicas"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = producer
            .client()
            .fetch_metadata(Some("spread"), Duration::from_secs(10))
            .expect("metadata");
        if m.topics()[0].partitions()[0].isr().len() == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "replicas never all in sync");
        std::thread::sleep(Duration::from_millis(200));
    }

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "cluster-command")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("spread", 0, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 300 && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
        }
    }
    let expected: Vec<String> = (0..300).map(|i| format!("r-{i}")).collect();
    assert_eq!(got, expected);
    drop(consumer);
    drop(producer);

    millrace_tests::signal(child.id(), libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "cluster did not stop:\n{}",
            output()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "cluster exited with {status}:\n{}",
        output()
    );
}

/// The pids of the live `millrace broker` processes whose config is under
/// `data_dir` (what `millrace cluster` started there).
fn node_pids(data_dir: &std::path::Path) -> Vec<u32> {
    let needle = data_dir.display().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // A zombie (state Z, after the ')' ending the command name) is gone.
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if cmdline.contains(" broker --config ") && cmdline.contains(&needle) && !zombie {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn nodes_stop_when_the_cluster_command_is_killed() {
    let data = tempfile::tempdir().expect("tempdir");
    let base = free_port_run();
    let mut child = spawn_cluster(data.path(), base);
    let data_dir = data.path().join("data");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(0..3).all(|i| TcpStream::connect(("127.0.0.1", base + i)).is_ok()) {
        assert!(Instant::now() < deadline, "cluster not up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let nodes = node_pids(&data_dir);
    assert_eq!(nodes.len(), 3, "one process per node: {nodes:?}");

    // SIGKILL: the command gets no chance to stop its nodes itself.
    child.kill().expect("kill millrace cluster");
    child.wait().expect("reap millrace cluster");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = node_pids(&data_dir);
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            for pid in &left {
                millrace_tests::signal(*pid, libc::SIGKILL);
            }
            panic!("nodes {left:?} outlived the killed millrace cluster");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // They stopped cleanly (SIGTERM's path), so nothing still holds a port.
    for i in 0..3 {
        assert!(
            TcpStream::connect(("127.0.0.1", base + i)).is_err(),
            "port {} still answers",
            base + i
        );
    }
}
