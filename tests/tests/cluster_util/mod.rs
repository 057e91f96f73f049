//! Harness of the replicated-cluster fault suite (`cluster_faults.rs`): an
//! N-node cluster of real `millrace broker --config FILE` processes (one
//! KRaft-style config file per node, each node its own data dir and rack
//! `az1..azN`), faults on those processes (SIGTERM, SIGKILL, SIGSTOP and
//! SIGCONT, restart on the same ports and data dir), cluster state read the
//! way a Kafka user reads it (rdkafka metadata: leaders, ISR), a paced
//! `acks=all` workload recording every write in a [`history::History`], and
//! a reader that adds read passes to it.
//!
//! Each node's output goes to its own file, with a line from the harness
//! before every fault, so a failing run's timeline can be read from the
//! logs; the tail of every log is printed when a test panics.
//!
//! Included with `mod cluster_util;`; not a test target of its own.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

pub mod history;
pub mod netns;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use history::{History, ReadPass, ReadRecord};
use millrace_tests::{free_port, millrace_bin, signal};

/// Broker settings of the fault suite: short liveness and lag timeouts so
/// faults are detected in seconds, MSK's replication defaults for three
/// zones.
pub const FAULT_SETTINGS: &[(&str, &str)] = &[
    ("broker.session.timeout.ms", "3000"),
    ("broker.heartbeat.interval.ms", "500"),
    ("replica.lag.time.max.ms", "2000"),
    ("auto.create.topics.enable", "false"),
];

/// UTC wall-clock time as `2026-01-02T03:04:05.678Z`, matching the broker's
/// log timestamps so harness lines and broker lines can be merged.
pub fn utc_now() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Prints a timestamped line of the test's own timeline.
pub fn note(what: &str) {
    println!("{} [test] {what}", utc_now());
}

/// One broker process of the cluster.
pub struct Node {
    /// `node.id` (1-based).
    pub id: i32,
    host: String,
    port: u16,
    controller_port: u16,
    dir: PathBuf,
    log_path: PathBuf,
    netns: Option<String>,
    child: Option<Child>,
    paused: bool,
    starts: u32,
}

impl Node {
    /// `host:port` of the client listener.
    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn addr(&self) -> SocketAddr {
        format!("{}:{}", self.host, self.port).parse().unwrap()
    }

    /// Whether the process is running (paused counts as running).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Whether it runs and is not stopped with SIGSTOP.
    pub fn is_serving(&mut self) -> bool {
        !self.paused && self.is_running()
    }

    /// The pid while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the node printed, across restarts.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `n` lines of its output.
    pub fn tail(&self, n: usize) -> String {
        let text = self.output();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Appends a harness line to the node's log (the fault timeline).
    fn mark(&self, what: &str) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
        {
            let _ = writeln!(f, "{} [harness] node {}: {what}", utc_now(), self.id);
        }
        note(&format!("node {}: {what}", self.id));
    }
}

/// How to build a cluster.
pub struct ClusterSpec {
    /// Number of nodes (1 = one standalone broker without `process.roles`).
    pub nodes: usize,
    /// Extra broker properties for every node (win over the defaults).
    pub overrides: Vec<(String, String)>,
    /// Run every node in its own network namespace (see [`netns`]).
    pub netns: bool,
}

impl ClusterSpec {
    /// `nodes` nodes on loopback with [`FAULT_SETTINGS`].
    pub fn new(nodes: usize) -> ClusterSpec {
        ClusterSpec {
            nodes,
            overrides: FAULT_SETTINGS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            netns: false,
        }
    }
}

/// A running cluster of `millrace broker` processes.
pub struct Cluster {
    /// The nodes, `nodes[i].id == i + 1`.
    pub nodes: Vec<Node>,
    overrides: Vec<(String, String)>,
    net: Option<netns::Net>,
    _root: tempfile::TempDir,
}

impl Cluster {
    /// Writes every node's config and starts them all, then waits until
    /// every node accepts connections and the cluster lists all of them.
    pub fn start(spec: ClusterSpec) -> Cluster {
        let root = tempfile::Builder::new()
            .prefix("millrace-faults-")
            .tempdir()
            .expect("temp dir");
        let net = spec.netns.then(|| netns::Net::create(spec.nodes));
        let nodes = (1..=spec.nodes)
            .map(|i| {
                let dir = root.path().join(format!("node-{i}"));
                std::fs::create_dir_all(&dir).unwrap();
                let (host, port, controller_port, ns) = match &net {
                    Some(net) => (net.address(i), 9092, 9093, Some(net.namespace(i))),
                    None => ("127.0.0.1".to_string(), free_port(), free_port(), None),
                };
                Node {
                    id: i as i32,
                    host,
                    port,
                    controller_port,
                    log_path: root.path().join(format!("node-{i}.log")),
                    dir,
                    netns: ns,
                    child: None,
                    paused: false,
                    starts: 0,
                }
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            overrides: spec.overrides,
            net,
            _root: root,
        };
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i);
        }
        for i in 0..cluster.nodes.len() {
            cluster.wait_listening(i, Duration::from_secs(60));
        }
        cluster.wait_brokers_registered(Duration::from_secs(60));
        note(&format!(
            "cluster of {} node(s) up: {}",
            cluster.nodes.len(),
            cluster.bootstrap()
        ));
        cluster
    }

    /// Every node's client address (what a client is configured with).
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(Node::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node with `node.id` `id`.
    pub fn node(&mut self, id: i32) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    fn config_text(&self, i: usize) -> String {
        let n = self.nodes.len();
        let node = &self.nodes[i];
        let rf = n.min(3);
        let min_isr = if n >= 3 { 2 } else { 1 };
        let mut text = format!("node.id={}\n", node.id);
        if n > 1 {
            let voters = self
                .nodes
                .iter()
                .map(|v| format!("{}@{}:{}", v.id, v.host, v.controller_port))
                .collect::<Vec<_>>()
                .join(",");
            text.push_str(&format!(
                "process.roles=broker,controller\n\
                 controller.quorum.voters={voters}\n\
                 listeners=PLAINTEXT://{h}:{p},CONTROLLER://{h}:{c}\n\
                 controller.listener.names=CONTROLLER\n\
                 listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
                 inter.broker.listener.name=PLAINTEXT\n",
                h = node.host,
                p = node.port,
                c = node.controller_port
            ));
        } else {
            text.push_str(&format!(
                "listeners=PLAINTEXT://{}:{}\n",
                node.host, node.port
            ));
        }
        text.push_str(&format!(
            "broker.rack=az{}\n\
             log.dirs={}\n\
             default.replication.factor={rf}\n\
             min.insync.replicas={min_isr}\n\
             offsets.topic.replication.factor={rf}\n\
             transaction.state.log.replication.factor={rf}\n\
             transaction.state.log.min.isr={min_isr}\n",
            (i % 3) + 1,
            node.dir.join("data").display()
        ));
        for (k, v) in &self.overrides {
            text.push_str(&format!("{k}={v}\n"));
        }
        text
    }

    fn spawn(&mut self, i: usize) {
        let config_path = self.nodes[i].dir.join("server.properties");
        std::fs::write(&config_path, self.config_text(i)).unwrap();
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "node {} already running", node.id);
        node.starts += 1;
        node.mark(&format!("start #{}", node.starts));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_path)
            .unwrap();
        let mut command = match &node.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(millrace_bin());
                c
            }
            None => Command::new(millrace_bin()),
        };
        let child = command
            .arg("broker")
            .arg("--config")
            .arg(&config_path)
            .env(
                "RUST_LOG",
                std::env::var("MILLRACE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn millrace broker");
        node.child = Some(child);
        node.paused = false;
    }

    fn wait_listening(&mut self, i: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let node = &mut self.nodes[i];
        loop {
            if TcpStream::connect_timeout(&node.addr(), Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = node.child.as_mut().map(Child::try_wait) {
                panic!("node {} exited with {status} before listening", node.id);
            }
            assert!(
                Instant::now() < deadline,
                "node {} not listening after {timeout:?}",
                node.id
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every serving node's metadata lists every node that
    /// runs (registered and not fenced).
    pub fn wait_brokers_registered(&mut self, timeout: Duration) {
        let want: Vec<i32> = self.running_ids();
        let deadline = Instant::now() + timeout;
        loop {
            let views = self.views(None);
            let ok = !views.is_empty()
                && views.iter().all(|(_, v)| match v {
                    Ok(m) => want.iter().all(|id| m.brokers.contains(id)),
                    Err(_) => false,
                });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "brokers {want:?} not all registered after {timeout:?}: {views:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn running_ids(&mut self) -> Vec<i32> {
        self.nodes
            .iter_mut()
            .filter_map(|n| n.is_running().then_some(n.id))
            .collect()
    }

    /// Ids of nodes that run and are not paused.
    pub fn serving_ids(&mut self) -> Vec<i32> {
        self.nodes
            .iter_mut()
            .filter_map(|n| n.is_serving().then_some(n.id))
            .collect()
    }

    /// SIGTERM and wait for a clean exit (controlled shutdown).
    pub fn stop(&mut self, id: i32) -> Duration {
        let node = self.node(id);
        node.mark("SIGTERM");
        let mut child = node.child.take().expect("node running");
        let started = Instant::now();
        signal(child.id(), libc::SIGTERM);
        let deadline = started + Duration::from_secs(40);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "node {id} exited with {status} on SIGTERM"
                );
                node.mark(&format!("stopped cleanly after {:?}", started.elapsed()));
                return started.elapsed();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node {id} did not stop within 40 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (a crash: nothing flushed, no controlled shutdown).
    pub fn kill9(&mut self, id: i32) {
        let node = self.node(id);
        node.mark("SIGKILL");
        let mut child = node.child.take().expect("node running");
        child.kill().unwrap();
        child.wait().unwrap();
        node.paused = false;
    }

    /// SIGSTOP: the process is frozen (sockets stay open, nothing answers).
    pub fn pause(&mut self, id: i32) {
        let node = self.node(id);
        node.mark("SIGSTOP");
        signal(node.pid().expect("node running"), libc::SIGSTOP);
        node.paused = true;
    }

    /// SIGCONT after [`Cluster::pause`].
    pub fn resume(&mut self, id: i32) {
        let node = self.node(id);
        node.mark("SIGCONT");
        signal(node.pid().expect("node running"), libc::SIGCONT);
        node.paused = false;
    }

    /// Starts a stopped or killed node again on its ports and data dir, and
    /// waits until it listens and is registered again.
    pub fn restart(&mut self, id: i32) {
        let i = (id - 1) as usize;
        self.spawn(i);
        self.wait_listening(i, Duration::from_secs(60));
        self.wait_brokers_registered(Duration::from_secs(60));
        self.node(id).mark("listening and registered");
    }

    /// Cuts node `id` off from the other nodes (netns clusters only).
    pub fn isolate(&mut self, id: i32) {
        self.node(id).mark("partitioned away from the other nodes");
        self.net
            .as_mut()
            .expect("isolate needs a netns cluster")
            .isolate(id as usize);
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        note("partition healed");
        for n in &self.nodes {
            n.mark("partition healed");
        }
        self.net.as_mut().expect("netns cluster").heal();
    }

    /// Creates `topic` through the admin API, then waits until every
    /// partition has a leader and a full ISR in every node's metadata.
    pub fn create_topic(
        &mut self,
        topic: &str,
        partitions: i32,
        rf: i32,
        configs: &[(&str, &str)],
    ) {
        let admin: AdminClient<DefaultClientContext> = quiet_config(&self.bootstrap())
            .create()
            .expect("admin client");
        let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(rf));
        for (k, v) in configs {
            new = new.set(k, v);
        }
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let results = rt
            .block_on(admin.create_topics([&new], &opts))
            .expect("create topics");
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e:?}"));
        }
        note(&format!(
            "created {topic}: {partitions} partitions, RF={rf}"
        ));
        self.wait_fully_replicated(Duration::from_secs(60));
    }

    /// Metadata as each serving node (or only `only`) reports it, asked of
    /// that node alone.
    pub fn views(&mut self, only: Option<&[i32]>) -> Vec<(i32, Result<View, String>)> {
        let ids: Vec<i32> = match only {
            Some(ids) => ids.to_vec(),
            None => self.serving_ids(),
        };
        ids.into_iter()
            .map(|id| (id, view_from(&self.node(id).bootstrap())))
            .collect()
    }

    /// The leader of `topic`-`partition` that the serving nodes agree on
    /// (or only `only`), waiting up to `timeout` for a leader they agree
    /// on that is not `not`.
    pub fn wait_leader(
        &mut self,
        topic: &str,
        partition: i32,
        not: Option<i32>,
        only: Option<&[i32]>,
        timeout: Duration,
    ) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            let views = self.views(only);
            let leaders: Vec<Option<i32>> = views
                .iter()
                .map(|(_, v)| {
                    v.as_ref()
                        .ok()
                        .and_then(|m| m.partitions.get(&(topic.to_string(), partition)))
                        .map(|p| p.leader)
                })
                .collect();
            if let Some(Some(first)) = leaders.first() {
                if *first >= 0 && Some(*first) != not && leaders.iter().all(|l| *l == Some(*first))
                {
                    return *first;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader of {topic}-{partition} (other than {not:?}) within {timeout:?}: {views:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until, in the metadata of every serving node, every partition
    /// of every topic has a leader and an ISR equal to its replicas
    /// (under-replicated partitions = 0), and every running node is listed.
    pub fn wait_fully_replicated(&mut self, timeout: Duration) -> Duration {
        let started = Instant::now();
        let deadline = started + timeout;
        let want = self.running_ids();
        loop {
            let views = self.views(None);
            let problems: Vec<String> = views
                .iter()
                .flat_map(|(id, v)| match v {
                    Err(e) => vec![format!("node {id}: {e}")],
                    Ok(m) => m
                        .under_replicated(&want)
                        .into_iter()
                        .map(|p| format!("node {id}: {p}"))
                        .collect(),
                })
                .collect();
            if problems.is_empty() && !views.is_empty() {
                note(&format!(
                    "under-replicated partitions = 0 (after {:?})",
                    started.elapsed()
                ));
                return started.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "under-replicated partitions did not return to 0 within {timeout:?}:\n{}",
                problems.join("\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                if node.paused {
                    signal(child.id(), libc::SIGCONT);
                }
                let _ = child.kill();
                let _ = child.wait();
            }
            if panicking {
                eprintln!(
                    "--- node {} ({}), last 80 lines of {} ---\n{}",
                    node.id,
                    node.bootstrap(),
                    node.log_path.display(),
                    node.tail(80)
                );
            }
        }
        if panicking && std::env::var_os("MILLRACE_KEEP_FAULT_LOGS").is_some() {
            let keep =
                std::env::temp_dir().join(format!("millrace-fault-logs-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&keep);
            for node in &self.nodes {
                let _ = std::fs::copy(&node.log_path, keep.join(format!("node-{}.log", node.id)));
            }
            eprintln!("node logs kept in {}", keep.display());
        }
    }
}

/// A librdkafka config with `bootstrap` and librdkafka's own logging kept
/// to errors (a cluster under faults makes it chatty).
pub fn quiet_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set_log_level(RDKafkaLogLevel::Error)
        .set("log_level", "3");
    c
}

/// One partition in a metadata response.
#[derive(Debug, Clone)]
pub struct PartitionView {
    /// Leader id (-1: none).
    pub leader: i32,
    /// Replica ids.
    pub replicas: Vec<i32>,
    /// In-sync replica ids.
    pub isr: Vec<i32>,
}

/// One node's metadata.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Broker ids listed.
    pub brokers: Vec<i32>,
    /// (topic, partition) -> state.
    pub partitions: BTreeMap<(String, i32), PartitionView>,
}

impl View {
    /// What keeps this view from "under-replicated partitions = 0 and every
    /// node in `want` listed".
    pub fn under_replicated(&self, want: &[i32]) -> Vec<String> {
        let mut out = Vec::new();
        for id in want {
            if !self.brokers.contains(id) {
                out.push(format!(
                    "broker {id} not listed (brokers {:?})",
                    self.brokers
                ));
            }
        }
        for ((t, p), v) in &self.partitions {
            let mut isr = v.isr.clone();
            let mut replicas = v.replicas.clone();
            isr.sort_unstable();
            replicas.sort_unstable();
            if v.leader < 0 || isr != replicas {
                out.push(format!(
                    "{t}-{p}: leader {} replicas {:?} isr {:?}",
                    v.leader, v.replicas, v.isr
                ));
            }
        }
        out
    }
}

/// Metadata for all topics from the broker at `bootstrap` alone (a fresh
/// client, so its first request goes to that broker).
pub fn view_from(bootstrap: &str) -> Result<View, String> {
    let client: BaseConsumer = quiet_config(bootstrap)
        .set("socket.connection.setup.timeout.ms", "2000")
        .create()
        .map_err(|e| e.to_string())?;
    let m = client
        .fetch_metadata(None, Duration::from_secs(3))
        .map_err(|e| e.to_string())?;
    let mut view = View {
        brokers: m.brokers().iter().map(|b| b.id()).collect(),
        ..View::default()
    };
    view.brokers.sort_unstable();
    for t in m.topics() {
        if let Some(e) = t.error() {
            return Err(format!("topic {}: error {e:?}", t.name()));
        }
        for p in t.partitions() {
            view.partitions.insert(
                (t.name().to_string(), p.id()),
                PartitionView {
                    leader: p.leader(),
                    replicas: p.replicas().to_vec(),
                    isr: p.isr().to_vec(),
                },
            );
        }
    }
    Ok(view)
}

/// A producer of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterKind {
    /// `enable.idempotence=true` (retries forever within the timeout).
    Idempotent,
    /// `enable.idempotence=false`, `retries=0`. Still at-least-once, as
    /// against Apache Kafka: librdkafka resends a batch answered
    /// NOT_LEADER_OR_FOLLOWER without counting a retry (it takes the error
    /// to mean "not written", rdkafka_request.c), but a leader that loses
    /// its leadership while an acks=all append waits for the ISR answers
    /// exactly that after the append. So its records may be duplicated,
    /// never lost.
    Plain,
}

struct WriterShared {
    history: Arc<History>,
    /// Per partition: the highest workload sequence number acknowledged.
    max_acked_seq: Vec<AtomicI64>,
    /// Next sequence number (shared by every writer).
    next_seq: AtomicU64,
    stop: AtomicBool,
}

struct Recorder {
    shared: Arc<WriterShared>,
}

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = Box<(String, u64)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (value, seq) = *opaque;
        match result {
            Ok(m) => {
                self.shared.history.acked(&value, m.partition(), m.offset());
                self.shared.max_acked_seq[m.partition() as usize]
                    .fetch_max(seq as i64, Ordering::SeqCst);
            }
            Err((e, _)) => self.shared.history.failed(&value, &error_kind(e)),
        }
    }
}

/// A short name of a delivery error (for failure tallies).
pub fn error_kind(e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => e.to_string(),
    }
}

/// Paced `acks=all` producers writing unique values round-robin over the
/// partitions of a topic, recording everything in a [`History`].
pub struct Workload {
    shared: Arc<WriterShared>,
    threads: Vec<JoinHandle<()>>,
    partitions: i32,
}

impl Workload {
    /// Starts one thread per writer kind, each sending `rate` records per
    /// second to `topic` through `bootstrap` until [`Workload::finish`].
    pub fn start(
        bootstrap: &str,
        topic: &str,
        partitions: i32,
        writers: &[WriterKind],
        rate: u32,
        history: Arc<History>,
    ) -> Workload {
        let shared = Arc::new(WriterShared {
            history,
            max_acked_seq: (0..partitions).map(|_| AtomicI64::new(-1)).collect(),
            next_seq: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let threads = writers
            .iter()
            .enumerate()
            .map(|(w, &kind)| {
                let shared = shared.clone();
                let bootstrap = bootstrap.to_string();
                let topic = topic.to_string();
                std::thread::Builder::new()
                    .name(format!("writer-{w}"))
                    .spawn(move || {
                        writer_loop(&bootstrap, &topic, partitions, w, kind, rate, &shared)
                    })
                    .unwrap()
            })
            .collect();
        Workload {
            shared,
            threads,
            partitions,
        }
    }

    /// A mark: records sent from now on have a sequence number at or above
    /// it.
    pub fn mark(&self) -> u64 {
        self.shared.next_seq.load(Ordering::SeqCst)
    }

    /// Whether a record sent after `mark` to `partition` was acknowledged.
    pub fn acked_since(&self, mark: u64, partition: i32) -> bool {
        self.shared.max_acked_seq[partition as usize].load(Ordering::SeqCst) >= mark as i64
    }

    /// Waits until a record sent after `mark` to `partition` is
    /// acknowledged; returns how long that took from `since`.
    pub fn wait_acked_since(
        &self,
        mark: u64,
        partition: i32,
        since: Instant,
        timeout: Duration,
    ) -> Duration {
        let deadline = since + timeout;
        while !self.acked_since(mark, partition) {
            assert!(
                Instant::now() < deadline,
                "no acks=all write to partition {partition} acknowledged within {timeout:?}: \
                 the producer did not continue (failures so far: {:?})",
                self.shared.history.failure_kinds()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        since.elapsed()
    }

    /// Whether a record sent after `mark` was acknowledged on every partition.
    pub fn all_acked_since(&self, mark: u64) -> bool {
        (0..self.partitions).all(|p| self.acked_since(mark, p))
    }

    /// Stops the writers and waits until every record has its delivery
    /// report (bounded by the producers' message timeout).
    pub fn finish(self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().expect("writer thread panicked");
        }
    }
}

fn writer_loop(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    w: usize,
    kind: WriterKind,
    rate: u32,
    shared: &Arc<WriterShared>,
) {
    let mut config = quiet_config(bootstrap);
    config
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "20000")
        .set("request.timeout.ms", "5000")
        .set("socket.connection.setup.timeout.ms", "3000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .set("retry.backoff.ms", "100")
        .set("topic.metadata.refresh.interval.ms", "2000")
        .set("queue.buffering.max.messages", "20000");
    match kind {
        WriterKind::Idempotent => config.set("enable.idempotence", "true"),
        WriterKind::Plain => config
            .set("enable.idempotence", "false")
            .set("retries", "0")
            .set("max.in.flight.requests.per.connection", "5"),
    };
    let producer: BaseProducer<Recorder> = config
        .create_with_context(Recorder {
            shared: shared.clone(),
        })
        .expect("producer");
    let writer = format!("{kind:?}-{w}").to_lowercase();
    if kind == WriterKind::Plain {
        shared.history.at_least_once(&writer);
    }
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut next = Instant::now();
    let mut i = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        let seq = shared.next_seq.fetch_add(1, Ordering::SeqCst);
        let partition = (i % partitions as u64) as i32;
        i += 1;
        let value = format!("{writer}:{seq:09}");
        shared.history.sent(&value, partition, &writer);
        let mut record: BaseRecord<'_, (), String, Box<(String, u64)>> =
            BaseRecord::with_opaque_to(topic, Box::new((value.clone(), seq)))
                .partition(partition)
                .payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    shared
                        .history
                        .failed(&value, &format!("enqueue: {}", error_kind(&e)));
                    break;
                }
            }
        }
        producer.poll(Duration::ZERO);
        next += interval;
        let now = Instant::now();
        if next > now {
            // Serve delivery reports while pacing.
            producer.poll(next - now);
        } else if now - next > Duration::from_secs(1) {
            next = now;
        }
    }
    // Every record gets a report within message.timeout.ms.
    let deadline = Instant::now() + Duration::from_secs(40);
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        producer.poll(Duration::from_millis(50));
    }
    producer.poll(Duration::ZERO);
    assert_eq!(
        producer.in_flight_count(),
        0,
        "{writer}: records without a delivery report 40 s after the workload stopped"
    );
}

/// Reads every partition of `topic` from the earliest offset to the high
/// watermark (asked when the pass starts) and adds the pass to `history`.
pub fn read_pass(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    label: &str,
    history: &History,
) -> usize {
    let consumer: BaseConsumer = quiet_config(bootstrap)
        .set("group.id", "millrace-fault-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("check.crcs", "true")
        .set("fetch.wait.max.ms", "50")
        .create()
        .expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ends = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (low, high) = loop {
            match consumer.fetch_watermarks(topic, p, Duration::from_secs(5)) {
                Ok(w) => break w,
                Err(e) => {
                    assert!(Instant::now() < deadline, "watermarks of {topic}-{p}: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        };
        assert_eq!(low, 0, "{topic}-{p}: log start moved to {low}");
        ends.insert(p, high);
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut next: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
    let mut records = Vec::new();
    let done = |next: &BTreeMap<i32, i64>| next.iter().all(|(p, n)| *n >= ends[p]);
    while !done(&next) {
        assert!(
            Instant::now() < deadline,
            "read pass '{label}' of {topic} timed out: at {next:?} of {ends:?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => note(&format!(
                "read pass '{label}': consumer error {e} (retrying)"
            )),
            Some(Ok(m)) => {
                let p = m.partition();
                if m.offset() >= ends[&p] {
                    next.insert(p, ends[&p]);
                    continue;
                }
                next.insert(p, m.offset() + 1);
                records.push(ReadRecord {
                    partition: p,
                    offset: m.offset(),
                    value: String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string(),
                });
            }
        }
    }
    let n = records.len();
    note(&format!("read pass '{label}': {n} records, ends {ends:?}"));
    history.read(ReadPass {
        label: label.to_string(),
        ends,
        records,
    });
    n
}

/// Percentile of sorted durations.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}
