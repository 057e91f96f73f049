//! Clusters of separate `millrace broker` processes (one KRaft config file
//! per node, brokers and controllers on loopback ports, racks
//! `use1-az1..3`), for two uses:
//!
//! - `--cluster N`: throughput and latency runs against N processes, so
//!   RF=1 and RF=3 are compared with replication going between processes
//!   as in production;
//! - `--scenario failover`: how long a Kafka user waits after a leader
//!   dies. Each round kills (SIGKILL) the leader of partition 0 of an
//!   RF=3, `min.insync.replicas=2` topic while an `acks=all` producer
//!   writes to it, and times kill -> first acknowledged write sent after
//!   the kill (which only the new leader can acknowledge); then the killed
//!   broker restarts and the round ends when every ISR is full again.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind a free port")?;
    Ok(listener.local_addr().context("local addr")?.port())
}

struct Node {
    id: i32,
    port: u16,
    controller_port: u16,
    child: Option<Child>,
}

/// A cluster of `millrace broker` processes that this tool started.
pub struct BenchCluster {
    bin: PathBuf,
    /// Data dirs, configs and outputs; removed on drop.
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    min_isr: usize,
    extra: Vec<String>,
    log_level: String,
}

impl BenchCluster {
    /// Starts `nodes` brokers (each also a controller voter) with their data
    /// under a new dir in `parent`; `min_isr` is the brokers'
    /// `min.insync.replicas` (1 for RF=1 runs, so acks=all means the one
    /// replica). Waits until all are registered.
    pub fn start(
        bin: &Path,
        parent: &Path,
        nodes: usize,
        min_isr: usize,
        extra: &[String],
        log_level: &str,
    ) -> Result<BenchCluster> {
        let dir = tempfile::Builder::new()
            .prefix("millrace-bench-cluster-")
            .tempdir_in(parent)
            .with_context(|| format!("create a data dir under {}", parent.display()))?;
        let nodes = (1..=nodes)
            .map(|i| {
                Ok(Node {
                    id: i as i32,
                    port: free_port()?,
                    controller_port: free_port()?,
                    child: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut cluster = BenchCluster {
            bin: bin.to_path_buf(),
            dir,
            nodes,
            min_isr,
            extra: extra.to_vec(),
            log_level: log_level.to_string(),
        };
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i)?;
        }
        for i in 0..cluster.nodes.len() {
            cluster.wait_listening(i, Duration::from_secs(60))?;
        }
        cluster.wait_registered(Duration::from_secs(60))?;
        Ok(cluster)
    }

    /// Every node's client address.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Pids of the running nodes.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter_map(|n| n.child.as_ref().map(Child::id))
            .collect()
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node-{}", i + 1))
    }

    fn output_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node-{}.out", i + 1))
    }

    fn output_tail(&self, i: usize) -> String {
        let text = fs::read_to_string(self.output_path(i)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn config_text(&self, i: usize) -> String {
        let n = self.nodes.len();
        let node = &self.nodes[i];
        let voters = self
            .nodes
            .iter()
            .map(|v| format!("{}@127.0.0.1:{}", v.id, v.controller_port))
            .collect::<Vec<_>>()
            .join(",");
        let rf = n.min(3);
        let mut text = format!(
            "node.id={id}\n\
             process.roles=broker,controller\n\
             controller.quorum.voters={voters}\n\
             listeners=PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}\n\
             controller.listener.names=CONTROLLER\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             inter.broker.listener.name=PLAINTEXT\n\
             broker.rack=use1-az{rack}\n\
             log.dirs={dir}\n\
             default.replication.factor={rf}\n\
             min.insync.replicas={min_isr}\n\
             offsets.topic.replication.factor={rf}\n\
             transaction.state.log.replication.factor={rf}\n\
             transaction.state.log.min.isr={min_isr}\n\
             auto.create.topics.enable=false\n",
            id = node.id,
            p = node.port,
            c = node.controller_port,
            rack = i % 3 + 1,
            dir = self.node_dir(i).join("logs").display(),
            min_isr = self.min_isr.min(rf),
        );
        for kv in &self.extra {
            text.push_str(kv);
            text.push('\n');
        }
        text
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let dir = self.node_dir(i);
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let config = dir.join("server.properties");
        fs::write(&config, self.config_text(i))
            .with_context(|| format!("write {}", config.display()))?;
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.output_path(i))
            .context("open node output file")?;
        let err = out.try_clone().context("dup node output file")?;
        let child = Command::new(&self.bin)
            .arg("broker")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", &self.log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("spawn {}", self.bin.display()))?;
        self.nodes[i].child = Some(child);
        Ok(())
    }

    fn wait_listening(&mut self, i: usize, timeout: Duration) -> Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.nodes[i].port));
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.nodes[i].child.as_mut() {
                if let Some(status) = child.try_wait().context("wait for node")? {
                    self.nodes[i].child = None;
                    bail!(
                        "node {} exited with {status} before listening:\n{}",
                        i + 1,
                        self.output_tail(i)
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "node {} not listening after {timeout:?}:\n{}",
                    i + 1,
                    self.output_tail(i)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn running(&self) -> Vec<i32> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.id)
            .collect()
    }

    fn wait_registered(&self, timeout: Duration) -> Result<()> {
        let want = self.running();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(m) = metadata(&self.bootstrap(), None) {
                if want.iter().all(|id| m.brokers.contains(id)) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("brokers {want:?} not all registered after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every partition of `topic` has a leader and a full ISR
    /// and every running node is registered.
    pub fn wait_in_sync(&self, topic: &str, timeout: Duration) -> Result<()> {
        let want = self.running();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(m) = metadata(&self.bootstrap(), Some(topic)) {
                let all = want.iter().all(|id| m.brokers.contains(id));
                if all
                    && !m.partitions.is_empty()
                    && m.partitions
                        .iter()
                        .all(|p| p.leader >= 0 && p.isr.len() == p.replicas.len())
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("{topic} not fully in sync after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL of node `id`.
    pub fn kill9(&mut self, id: i32) -> Result<()> {
        let node = self
            .nodes
            .get_mut((id - 1) as usize)
            .ok_or_else(|| anyhow!("no node {id}"))?;
        let mut child = node
            .child
            .take()
            .ok_or_else(|| anyhow!("node {id} not running"))?;
        child.kill().context("SIGKILL node")?;
        child.wait().context("reap node")?;
        Ok(())
    }

    /// Starts node `id` again on its ports and data dir.
    pub fn restart(&mut self, id: i32) -> Result<()> {
        let i = (id - 1) as usize;
        self.spawn(i)?;
        self.wait_listening(i, Duration::from_secs(60))?;
        self.wait_registered(Duration::from_secs(60))
    }

    /// SIGTERM to every node, waiting for each to exit cleanly.
    pub fn terminate(&mut self, timeout: Duration) -> Result<()> {
        for n in &self.nodes {
            if let Some(child) = n.child.as_ref() {
                signal(child.id(), libc::SIGTERM)?;
            }
        }
        let deadline = Instant::now() + timeout;
        for i in 0..self.nodes.len() {
            while let Some(child) = self.nodes[i].child.as_mut() {
                if let Some(status) = child.try_wait().context("wait for node")? {
                    self.nodes[i].child = None;
                    if !status.success() {
                        bail!(
                            "node {} exited with {status} on SIGTERM:\n{}",
                            i + 1,
                            self.output_tail(i)
                        );
                    }
                } else if Instant::now() > deadline {
                    bail!("node {} did not stop within {timeout:?}", i + 1);
                } else {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        Ok(())
    }
}

impl Drop for BenchCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut child) = n.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn signal(pid: u32, sig: i32) -> Result<()> {
    let pid = i32::try_from(pid).context("pid out of range")?;
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("kill(2)");
    }
    Ok(())
}

struct PartitionState {
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

struct Metadata {
    brokers: Vec<i32>,
    partitions: Vec<PartitionState>,
}

fn client_config(bootstrap: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("client.id", "millrace-bench-failover")
        .set_log_level(RDKafkaLogLevel::Error)
        .set("log_level", "3");
    cfg
}

/// Metadata from a fresh client (no cached view survives a kill).
fn metadata(bootstrap: &str, topic: Option<&str>) -> Result<Metadata> {
    let client: BaseConsumer = client_config(bootstrap)
        .create()
        .context("metadata client")?;
    let m = client
        .fetch_metadata(topic, Duration::from_secs(3))
        .context("metadata")?;
    let partitions = m
        .topics()
        .iter()
        .filter(|t| topic.is_some_and(|name| t.name() == name))
        .flat_map(|t| t.partitions())
        .map(|p| PartitionState {
            leader: p.leader(),
            replicas: p.replicas().to_vec(),
            isr: p.isr().to_vec(),
        })
        .collect();
    Ok(Metadata {
        brokers: m.brokers().iter().map(|b| b.id()).collect(),
        partitions,
    })
}

fn leader_of_p0(bootstrap: &str, topic: &str, not: Option<i32>, timeout: Duration) -> Result<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(m) = metadata(bootstrap, Some(topic)) {
            if let Some(p) = m.partitions.first() {
                if p.leader >= 0 && Some(p.leader) != not {
                    return Ok(p.leader);
                }
            }
        }
        if Instant::now() > deadline {
            bail!("no leader of {topic}-0 other than {not:?} after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One kill of a leader.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailoverRound {
    /// The leader killed.
    pub killed: i32,
    /// The leader elected after it.
    pub new_leader: i32,
    /// SIGKILL -> first acknowledged acks=all write sent after the kill.
    pub first_ack_ms: f64,
    /// Restart of the killed broker -> every ISR full again.
    pub rejoin_ms: f64,
}

/// All rounds, with the summary figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailoverReport {
    /// The rounds, in order.
    pub rounds: Vec<FailoverRound>,
    /// Median of `first_ack_ms`.
    pub p50_ms: f64,
    /// Maximum of `first_ack_ms`.
    pub max_ms: f64,
}

/// Times kill -> first write acknowledged, from the delivery callbacks:
/// the opaque of each record is the nanosecond (since `origin`) it was
/// sent; after a kill at `kill_ns`, the first report of a record sent at
/// or after it stores its time in `first_ack_ns`.
struct Timer {
    origin: Instant,
    kill_ns: AtomicU64,
    first_ack_ns: AtomicU64,
    acked: AtomicU64,
}

impl Timer {
    fn delivered(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        if result.is_err() {
            return;
        }
        let now = self.origin.elapsed().as_nanos() as u64;
        self.acked.fetch_add(1, Ordering::Relaxed);
        let kill = self.kill_ns.load(Ordering::SeqCst);
        if kill > 0 && sent_ns as u64 >= kill {
            let _ = self
                .first_ack_ns
                .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
        }
    }
}

/// Runs `rounds` leader kills on a new 3-node cluster; `extra` broker
/// properties apply to every node (e.g. a shorter
/// `broker.session.timeout.ms`, which bounds detection of a dead leader).
pub fn run(
    bin: &Path,
    parent: &Path,
    extra: &[String],
    log_level: &str,
    rounds: u32,
) -> Result<FailoverReport> {
    let mut cluster = BenchCluster::start(bin, parent, 3, 2, extra, log_level)?;
    let bootstrap = cluster.bootstrap();
    eprintln!("failover: 3-process cluster on {bootstrap}");
    let topic = "bench-failover";
    let admin: AdminClient<DefaultClientContext> =
        client_config(&bootstrap).create().context("admin client")?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
    for r in
        futures::executor::block_on(admin.create_topics(&[new], &opts)).context("CreateTopics")?
    {
        r.map_err(|(t, e)| anyhow!("CreateTopics {t}: {e}"))?;
    }
    cluster.wait_in_sync(topic, Duration::from_secs(60))?;

    let timer = Arc::new(Timer {
        origin: Instant::now(),
        kill_ns: AtomicU64::new(0),
        first_ack_ns: AtomicU64::new(0),
        acked: AtomicU64::new(0),
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer_thread = {
        let (timer, stop, bootstrap) = (timer.clone(), stop.clone(), bootstrap.clone());
        std::thread::spawn(move || -> Result<()> {
            let producer: BaseProducer<TimerRef> = client_config(&bootstrap)
                .set("acks", "all")
                .set("enable.idempotence", "true")
                .set("linger.ms", "0")
                .set("message.timeout.ms", "60000")
                .set("request.timeout.ms", "5000")
                .set("reconnect.backoff.ms", "20")
                .set("reconnect.backoff.max.ms", "200")
                .set("retry.backoff.ms", "20")
                .set("retry.backoff.max.ms", "200")
                .create_with_context(TimerRef(timer.clone()))
                .context("producer")?;
            // One record per millisecond.
            while !stop.load(Ordering::SeqCst) {
                let sent_ns = timer.origin.elapsed().as_nanos() as usize;
                let record: BaseRecord<'_, [u8], [u8], usize> =
                    BaseRecord::with_opaque_to(topic, sent_ns)
                        .partition(0)
                        .payload(&b"failover-probe"[..]);
                // A full queue just skips this tick.
                let _ = producer.send(record);
                producer.poll(Duration::from_millis(1));
            }
            let _ = producer.flush(Duration::from_secs(60));
            Ok(())
        })
    };
    let result = (|| -> Result<Vec<FailoverRound>> {
        let warm = Instant::now() + Duration::from_secs(30);
        while timer.acked.load(Ordering::Relaxed) < 100 {
            if Instant::now() > warm {
                bail!("the producer got no acknowledgements in 30 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut out = Vec::new();
        for round in 1..=rounds {
            let leader = leader_of_p0(&bootstrap, topic, None, Duration::from_secs(30))?;
            timer.first_ack_ns.store(0, Ordering::SeqCst);
            let kill_ns = timer.origin.elapsed().as_nanos() as u64;
            timer.kill_ns.store(kill_ns, Ordering::SeqCst);
            cluster.kill9(leader)?;
            let deadline = Instant::now() + Duration::from_secs(120);
            let first_ack_ns = loop {
                let v = timer.first_ack_ns.load(Ordering::SeqCst);
                if v > 0 {
                    break v;
                }
                if Instant::now() > deadline {
                    bail!("round {round}: no write acknowledged within 120 s of killing {leader}");
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            let new_leader =
                leader_of_p0(&bootstrap, topic, Some(leader), Duration::from_secs(30))?;
            let restarted = Instant::now();
            cluster.restart(leader)?;
            cluster.wait_in_sync(topic, Duration::from_secs(120))?;
            let r = FailoverRound {
                killed: leader,
                new_leader,
                first_ack_ms: (first_ack_ns - kill_ns) as f64 / 1e6,
                rejoin_ms: restarted.elapsed().as_secs_f64() * 1e3,
            };
            eprintln!(
                "failover round {round}: killed {}, new leader {}, first acks=all write after {:.0} ms, \
                 restarted broker back in sync after {:.0} ms",
                r.killed, r.new_leader, r.first_ack_ms, r.rejoin_ms
            );
            out.push(r);
        }
        Ok(out)
    })();
    stop.store(true, Ordering::SeqCst);
    let produced = producer_thread
        .join()
        .map_err(|_| anyhow!("producer thread panicked"))?;
    let rounds = result?;
    produced?;
    cluster.terminate(Duration::from_secs(60))?;
    let mut times: Vec<f64> = rounds.iter().map(|r| r.first_ack_ms).collect();
    times.sort_by(f64::total_cmp);
    let p50 = times
        .get(times.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0);
    let max = times.last().copied().unwrap_or(0.0);
    Ok(FailoverReport {
        rounds,
        p50_ms: p50,
        max_ms: max,
    })
}

/// The producer's context: shares the [`Timer`] with the main thread.
struct TimerRef(Arc<Timer>);

impl ClientContext for TimerRef {}

impl ProducerContext for TimerRef {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        self.0.delivered(result, sent_ns);
    }
}

/// Prints the failover figures: a table (stderr with `--json`, else
/// stdout) and, with `--json`, one `"type": "failover"` object on stdout.
pub fn print(report: &FailoverReport, json: bool) {
    let mut table = String::from(
        "\nfailover (kill -9 of the leader of an RF=3 partition, acks=all)\n\
         round  killed  new leader  first ack (ms)  back in sync (ms)\n",
    );
    for (i, r) in report.rounds.iter().enumerate() {
        table.push_str(&format!(
            "{:>5}  {:>6}  {:>10}  {:>14.0}  {:>17.0}\n",
            i + 1,
            r.killed,
            r.new_leader,
            r.first_ack_ms,
            r.rejoin_ms
        ));
    }
    table.push_str(&format!(
        "kill -9 -> first acknowledged write on the new leader: p50 {:.0} ms, max {:.0} ms ({} rounds)\n",
        report.p50_ms,
        report.max_ms,
        report.rounds.len()
    ));
    if json {
        eprint!("{table}");
        let mut value = serde_json::to_value(report).unwrap_or_default();
        if let Some(obj) = value.as_object_mut() {
            obj.insert("type".into(), "failover".into());
        }
        println!("{value}");
    } else {
        print!("{table}");
    }
}
