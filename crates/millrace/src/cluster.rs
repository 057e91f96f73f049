//! `millrace cluster`: a local multi-broker cluster in one command.
//!
//! Brokers 1..N listen on consecutive loopback ports, each with its own
//! data directory and an availability zone as its rack (zones round-robin,
//! as MSK spreads brokers), with MSK's replication defaults (three replicas,
//! `min.insync.replicas=2`, capped by the broker count). Until the Raft
//! quorum is wired in, the brokers run in this one process and share one
//! controller over a metadata log in `<data-dir>/metadata`; replication
//! between them is real (followers fetch from leaders over TCP).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use millrace_broker::{Broker, RunningBroker};
use millrace_config::{parse_override, BrokerConfig};
use millrace_metadata::store::{LocalMetadataStore, MetadataStore};

/// What `millrace cluster` was asked for.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Number of brokers.
    pub brokers: u16,
    /// Number of availability zones (racks).
    pub racks: u16,
    /// Where every broker's data and the metadata log live.
    pub data_dir: PathBuf,
    /// Port of broker 1; broker N listens on `base_port + N - 1`.
    pub base_port: u16,
    /// `key=value` overrides applied to every broker.
    pub overrides: Vec<String>,
}

/// The server.properties entries of broker `node_id`.
fn broker_entries(spec: &ClusterSpec, node_id: u16) -> Result<Vec<(String, String)>, String> {
    let replicas = spec.brokers.min(3);
    let min_isr = if replicas >= 3 { 2 } else { 1 };
    let zone = (node_id - 1) % spec.racks.max(1) + 1;
    let port = u32::from(spec.base_port) + u32::from(node_id) - 1;
    let port = u16::try_from(port).map_err(|_| format!("port {port} is out of range"))?;
    let mut entries: Vec<(String, String)> = [
        ("node.id", node_id.to_string()),
        ("listeners", format!("PLAINTEXT://127.0.0.1:{port}")),
        (
            "log.dirs",
            spec.data_dir
                .join(format!("broker-{node_id}"))
                .display()
                .to_string(),
        ),
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

/// Starts every broker, prints the bootstrap servers, and runs until
/// SIGINT/SIGTERM, then stops them one by one (controlled shutdown).
pub async fn run(spec: ClusterSpec, stop: impl std::future::Future<Output = ()>) -> ExitCode {
    if spec.brokers == 0 || spec.racks == 0 {
        eprintln!("millrace: --brokers and --racks must be at least 1");
        return ExitCode::from(2);
    }
    let mut configs = Vec::new();
    for node_id in 1..=spec.brokers {
        let loaded = broker_entries(&spec, node_id)
            .and_then(|e| BrokerConfig::from_entries(&e).map_err(|e| e.to_string()));
        match loaded {
            Ok((config, _)) => configs.push(config),
            Err(message) => {
                eprintln!("millrace: broker {node_id}: {message}");
                return ExitCode::from(2);
            }
        }
    }
    let running = match start_all(&spec.data_dir, configs).await {
        Ok(running) => running,
        Err(message) => {
            tracing::error!("cannot start the cluster: {message}");
            return ExitCode::FAILURE;
        }
    };
    let bootstrap: Vec<String> = running
        .iter()
        .filter_map(|r| r.addresses().first().map(|(_, a)| a.to_string()))
        .collect();
    for r in &running {
        if let Some((name, addr)) = r.addresses().first() {
            println!(
                "Millrace broker {} listening: {name} {addr}",
                r.broker().node_id()
            );
        }
    }
    println!("Bootstrap servers: {}", bootstrap.join(","));
    stop.await;
    tracing::info!("shutting down the cluster");
    let mut code = ExitCode::SUCCESS;
    for r in running {
        if let Err(e) = r.shutdown().await {
            tracing::error!("unclean shutdown: {e}");
            code = ExitCode::FAILURE;
        }
    }
    code
}

async fn start_all(
    data_dir: &Path,
    configs: Vec<BrokerConfig>,
) -> Result<Vec<RunningBroker>, String> {
    let store: Arc<dyn MetadataStore> =
        Arc::new(LocalMetadataStore::open(&data_dir.join("metadata")).map_err(|e| e.to_string())?);
    let mut running: Vec<RunningBroker> = Vec::new();
    for config in configs {
        let started = match running.first() {
            None => Broker::start_with_store(config, Some(store.clone())).await,
            Some(first) => {
                Broker::start_with_controller(
                    config,
                    first.broker().controller().clone(),
                    first.broker().cluster_id().to_string(),
                )
                .await
            }
        };
        match started {
            Ok(r) => running.push(r),
            Err(e) => {
                for r in running {
                    let _ = r.shutdown().await;
                }
                return Err(e.to_string());
            }
        }
    }
    Ok(running)
}
