//! `millrace cluster`: a local multi-broker cluster in one command.
//!
//! It does exactly what an operator does by hand: writes one Kafka KRaft
//! `server.properties` per node under `<data-dir>/broker-N/` (combined
//! broker and controller, `controller.quorum.voters` naming every node, a
//! CONTROLLER listener, the zone as `broker.rack`, MSK's replication
//! defaults of three replicas and `min.insync.replicas=2`, capped by the
//! broker count) and runs `millrace broker --config` for each as a child
//! process. Broker N takes client port `BASE_PORT + N - 1` and controller
//! port `BASE_PORT + 100 + N - 1`, and logs to `<data-dir>/broker-N/broker.log`.
//! A second run on the same data dir restarts the same cluster.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use millrace_config::{parse_override, BrokerConfig};
use tokio::process::{Child, Command};

/// Controller listeners sit this far above the client listeners.
const CONTROLLER_PORT_OFFSET: u32 = 100;

/// How long a node may take to start (recovery, then the quorum forming
/// while its peers start).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a node may take to stop cleanly before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// What `millrace cluster` was asked for.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Number of brokers.
    pub brokers: u16,
    /// Number of availability zones (racks).
    pub racks: u16,
    /// Where every broker's data lives.
    pub data_dir: PathBuf,
    /// Port of broker 1; broker N listens on `base_port + N - 1`.
    pub base_port: u16,
    /// `key=value` overrides applied to every broker.
    pub overrides: Vec<String>,
}

impl ClusterSpec {
    fn client_port(&self, node_id: u16) -> Result<u16, String> {
        port(u32::from(self.base_port) + u32::from(node_id) - 1)
    }

    fn controller_port(&self, node_id: u16) -> Result<u16, String> {
        port(u32::from(self.base_port) + CONTROLLER_PORT_OFFSET + u32::from(node_id) - 1)
    }

    fn node_dir(&self, node_id: u16) -> PathBuf {
        self.data_dir.join(format!("broker-{node_id}"))
    }
}

fn port(value: u32) -> Result<u16, String> {
    u16::try_from(value).map_err(|_| format!("port {value} is out of range"))
}

/// The server.properties entries of broker `node_id`.
fn broker_entries(spec: &ClusterSpec, node_id: u16) -> Result<Vec<(String, String)>, String> {
    let replicas = spec.brokers.min(3);
    let min_isr = if replicas >= 3 { 2 } else { 1 };
    let zone = (node_id - 1) % spec.racks.max(1) + 1;
    let mut voters = Vec::new();
    for n in 1..=spec.brokers {
        voters.push(format!("{n}@127.0.0.1:{}", spec.controller_port(n)?));
    }
    let data = spec.node_dir(node_id).join("data");
    let mut entries: Vec<(String, String)> = [
        ("node.id", node_id.to_string()),
        ("process.roles", "broker,controller".to_string()),
        ("controller.quorum.voters", voters.join(",")),
        (
            "listeners",
            format!(
                "PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                spec.client_port(node_id)?,
                spec.controller_port(node_id)?
            ),
        ),
        ("controller.listener.names", "CONTROLLER".to_string()),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".to_string(),
        ),
        ("inter.broker.listener.name", "PLAINTEXT".to_string()),
        ("log.dirs", data.display().to_string()),
        ("broker.rack", format!("use1-az{zone}")),
        ("default.replication.factor", replicas.to_string()),
        ("min.insync.replicas", min_isr.to_string()),
        ("offsets.topic.replication.factor", replicas.to_string()),
        (
            "transaction.state.log.replication.factor",
            replicas.to_string(),
        ),
        ("transaction.state.log.min.isr", min_isr.to_string()),
        ("auto.create.topics.enable", "true".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for o in &spec.overrides {
        entries.push(parse_override(o).map_err(|e| e.to_string())?);
    }
    Ok(entries)
}

/// One node's child process.
struct Node {
    node_id: u16,
    child: Child,
    log: PathBuf,
    client_port: u16,
}

/// Writes every node's config, starts the nodes, prints the bootstrap
/// servers once every node serves, and runs until `stop`, then stops them
/// (each does a controlled shutdown).
pub async fn run(spec: ClusterSpec, stop: impl std::future::Future<Output = ()>) -> ExitCode {
    if spec.brokers == 0 || spec.racks == 0 {
        eprintln!("millrace: --brokers and --racks must be at least 1");
        return ExitCode::from(2);
    }
    let mut configs = Vec::new();
    for node_id in 1..=spec.brokers {
        let checked = broker_entries(&spec, node_id).and_then(|entries| {
            BrokerConfig::from_entries(&entries).map_err(|e| e.to_string())?;
            Ok(entries)
        });
        match checked {
            Ok(entries) => configs.push((node_id, entries)),
            Err(message) => {
                eprintln!("millrace: broker {node_id}: {message}");
                return ExitCode::from(2);
            }
        }
    }
    let mut nodes = Vec::new();
    for (node_id, entries) in configs {
        match start_node(&spec, node_id, &entries).await {
            Ok(node) => nodes.push(node),
            Err(message) => {
                tracing::error!("cannot start broker {node_id}: {message}");
                stop_all(nodes).await;
                return ExitCode::FAILURE;
            }
        }
    }
    if let Err(message) = wait_started(&mut nodes).await {
        tracing::error!("the cluster did not start: {message}");
        stop_all(nodes).await;
        return ExitCode::FAILURE;
    }
    for node in &nodes {
        println!(
            "Millrace broker {} listening: PLAINTEXT 127.0.0.1:{} (log: {})",
            node.node_id,
            node.client_port,
            node.log.display()
        );
    }
    let bootstrap: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.client_port))
        .collect();
    println!("Bootstrap servers: {}", bootstrap.join(","));
    stop.await;
    tracing::info!("shutting down the cluster");
    if stop_all(nodes).await {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn start_node(
    spec: &ClusterSpec,
    node_id: u16,
    entries: &[(String, String)],
) -> Result<Node, String> {
    let dir = spec.node_dir(node_id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let config = dir.join("server.properties");
    let mut text = format!("# Written by `millrace cluster` for broker {node_id}.\n");
    for (k, v) in entries {
        text.push_str(&format!("{k}={v}\n"));
    }
    std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
    let log = dir.join("broker.log");
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let child = Command::new(exe)
        .arg("broker")
        .arg("--config")
        .arg(&config)
        .env(
            crate::boot::EXIT_WITH_PARENT_ENV,
            std::process::id().to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| format!("cannot start a broker process: {e}"))?;
    Ok(Node {
        node_id,
        child,
        log,
        client_port: spec.client_port(node_id)?,
    })
}

/// Waits until every node has printed that it listens (it does once it has
/// registered with the quorum and recovered its logs).
async fn wait_started(nodes: &mut [Node]) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    for node in nodes.iter_mut() {
        let ready = format!("Millrace broker {} listening", node.node_id);
        loop {
            if read_log(&node.log).contains(&ready) {
                break;
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                return Err(format!(
                    "broker {} exited ({status}); see {}",
                    node.node_id,
                    node.log.display()
                ));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "broker {} not serving after {START_TIMEOUT:?}; see {}",
                    node.node_id,
                    node.log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Stops every node in reverse order: SIGTERM, then SIGKILL after
/// [`STOP_TIMEOUT`]. True when each stopped cleanly.
async fn stop_all(nodes: Vec<Node>) -> bool {
    let mut clean = true;
    for mut node in nodes.into_iter().rev() {
        if let Some(pid) = node.child.id() {
            // The crate forbids `unsafe`, so no libc::kill.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
        match tokio::time::timeout(STOP_TIMEOUT, node.child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => {
                tracing::error!(broker = node.node_id, %status, "broker stopped uncleanly");
                clean = false;
            }
            Ok(Err(e)) => {
                tracing::error!(broker = node.node_id, error = %e, "cannot wait for broker");
                clean = false;
            }
            Err(_) => {
                tracing::error!(broker = node.node_id, "broker did not stop in time: killed");
                let _ = node.child.kill().await;
                clean = false;
            }
        }
    }
    clean
}
