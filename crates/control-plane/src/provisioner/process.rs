//! [`ProcessProvisioner`]: each broker is a `millrace broker --config
//! <data_dir>/server.properties` child process, its output appended to
//! `<data_dir>/broker.log` and its pid in `<data_dir>/broker.pid`. A watcher
//! task per process reports exits nobody asked for, which the engine heals.
//! A pid file left by a control plane that died is used to stop the orphan
//! before its broker is started again, so ports are never held twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::Mutex;
use tokio::process::{Child, Command};
use tokio::sync::{broadcast, oneshot, watch};

use super::{
    render_server_properties, BrokerExit, BrokerHealth, BrokerSpec, ClusterSpec, ListenerKind,
    ProvisionError, Provisioner,
};
use crate::kafka_health::check_api_versions;

type BrokerKey = (String, i32);

struct RunningBroker {
    pid: u32,
    stop: Option<oneshot::Sender<oneshot::Sender<()>>>,
    exited: watch::Receiver<bool>,
}

/// Runs brokers as local child processes of the `millrace` binary.
pub struct ProcessProvisioner {
    binary: PathBuf,
    stop_timeout: Duration,
    check_timeout: Duration,
    running: Arc<Mutex<HashMap<BrokerKey, RunningBroker>>>,
    exits: broadcast::Sender<BrokerExit>,
}

impl ProcessProvisioner {
    /// Brokers run `binary`; a stopped broker gets `stop_timeout` after
    /// SIGTERM before it is killed.
    pub fn new(binary: impl Into<PathBuf>, stop_timeout: Duration) -> Self {
        let (exits, _) = broadcast::channel(256);
        ProcessProvisioner {
            binary: binary.into(),
            stop_timeout,
            check_timeout: Duration::from_secs(3),
            running: Arc::new(Mutex::new(HashMap::new())),
            exits,
        }
    }

    /// The pid of a running broker (tests use it to kill one).
    pub fn pid_of(&self, cluster_id: &str, node_id: i32) -> Option<u32> {
        let running = self.running.lock();
        running
            .get(&(cluster_id.to_string(), node_id))
            .filter(|r| !*r.exited.borrow())
            .map(|r| r.pid)
    }

    fn is_running(&self, key: &BrokerKey) -> bool {
        let running = self.running.lock();
        running.get(key).is_some_and(|r| !*r.exited.borrow())
    }

    async fn start(
        &self,
        cluster: &ClusterSpec,
        broker: &BrokerSpec,
    ) -> Result<(), ProvisionError> {
        let key = (cluster.cluster_id.clone(), broker.node_id);
        let fail = |what: &str, e: std::io::Error| {
            ProvisionError(format!(
                "broker {} of {}: {what}: {e}",
                broker.node_id, cluster.cluster_arn
            ))
        };
        tokio::fs::create_dir_all(&broker.data_dir)
            .await
            .map_err(|e| fail("create data directory", e))?;
        let config_path = broker.data_dir.join("server.properties");
        let tmp = broker.data_dir.join("server.properties.tmp");
        tokio::fs::write(&tmp, render_server_properties(cluster, broker))
            .await
            .map_err(|e| fail("write server.properties", e))?;
        tokio::fs::rename(&tmp, &config_path)
            .await
            .map_err(|e| fail("write server.properties", e))?;
        let pid_path = broker.data_dir.join("broker.pid");
        stop_orphan(&pid_path, &config_path, self.stop_timeout).await;

        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(broker.data_dir.join("broker.log"))
            .map_err(|e| fail("open broker.log", e))?;
        let log_err = log.try_clone().map_err(|e| fail("open broker.log", e))?;
        // From spawn to handing the child to its watcher there is no await
        // point, so a cancelled caller can't leave an untracked process; and
        // a child dropped unwatched is killed rather than orphaned.
        let child = Command::new(&self.binary)
            .arg("broker")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true)
            // Its own process group: a Ctrl-C in the terminal reaches only
            // the control plane, which then stops its brokers in order (a
            // broker stopping by itself would be healed meanwhile).
            .process_group(0)
            .spawn()
            .map_err(|e| fail(&format!("run {}", self.binary.display()), e))?;
        let pid = child.id().unwrap_or(0);
        if let Err(e) = std::fs::write(&pid_path, format!("{pid}\n")) {
            tracing::warn!(error = %e, "cannot write broker.pid");
        }
        tracing::info!(cluster = %cluster.cluster_arn, broker = broker.node_id, pid, "broker started");

        let (stop_tx, stop_rx) = oneshot::channel();
        let (exited_tx, exited_rx) = watch::channel(false);
        self.running.lock().insert(
            key.clone(),
            RunningBroker {
                pid,
                stop: Some(stop_tx),
                exited: exited_rx,
            },
        );
        tokio::spawn(watch_broker(
            child,
            key,
            pid_path,
            stop_rx,
            exited_tx,
            self.exits.clone(),
            self.stop_timeout,
        ));
        Ok(())
    }

    async fn stop(&self, cluster_id: &str, node_id: i32) {
        let entry = self
            .running
            .lock()
            .get_mut(&(cluster_id.to_string(), node_id))
            .and_then(|r| r.stop.take().map(|s| (s, r.exited.clone())));
        if let Some((stop, mut exited)) = entry {
            let (ack_tx, ack_rx) = oneshot::channel();
            if stop.send(ack_tx).is_ok() {
                let _ = ack_rx.await;
            }
            let _ = exited.wait_for(|e| *e).await;
        }
        self.running
            .lock()
            .remove(&(cluster_id.to_string(), node_id));
    }
}

/// Waits for the child to end, either on its own (announced as an exit) or
/// because it was asked to stop (SIGTERM, then SIGKILL after the timeout).
async fn watch_broker(
    mut child: Child,
    key: BrokerKey,
    pid_path: PathBuf,
    stop: oneshot::Receiver<oneshot::Sender<()>>,
    exited: watch::Sender<bool>,
    exits: broadcast::Sender<BrokerExit>,
    stop_timeout: Duration,
) {
    tokio::select! {
        status = child.wait() => {
            let status = match status {
                Ok(s) => s.to_string(),
                Err(e) => format!("unknown ({e})"),
            };
            tracing::warn!(cluster = %key.0, broker = key.1, %status, "broker exited");
            let _ = tokio::fs::remove_file(&pid_path).await;
            let _ = exited.send(true);
            let _ = exits.send(BrokerExit { cluster_id: key.0, node_id: key.1, status });
        }
        ack = stop => {
            if let Some(pid) = child.id() {
                signal(pid, "TERM").await;
            }
            if tokio::time::timeout(stop_timeout, child.wait()).await.is_err() {
                tracing::warn!(cluster = %key.0, broker = key.1, "broker did not stop in time: killed");
                let _ = child.kill().await;
            }
            let _ = tokio::fs::remove_file(&pid_path).await;
            let _ = exited.send(true);
            if let Ok(ack) = ack {
                let _ = ack.send(());
            }
        }
    }
}

/// Sends a signal with `kill(1)` (the crate forbids `unsafe`, so no libc).
async fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Stops a broker left running by an earlier control plane, if the pid in
/// `pid_path` still runs with this broker's config file.
async fn stop_orphan(pid_path: &Path, config_path: &Path, timeout: Duration) {
    let Ok(text) = tokio::fs::read_to_string(pid_path).await else {
        return;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return;
    };
    let cmdline = tokio::fs::read(format!("/proc/{pid}/cmdline"))
        .await
        .unwrap_or_default();
    let config = config_path.display().to_string();
    if !String::from_utf8_lossy(&cmdline).contains(&config) {
        return;
    }
    tracing::warn!(pid, config = %config, "stopping a broker left by an earlier control plane");
    signal(pid, "TERM").await;
    let deadline = tokio::time::Instant::now() + timeout;
    while process_alive(pid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if process_alive(pid) {
        signal(pid, "KILL").await;
        while process_alive(pid) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Provisioner for ProcessProvisioner {
    fn create_brokers<'a>(
        &'a self,
        spec: &'a ClusterSpec,
    ) -> BoxFuture<'a, Result<(), ProvisionError>> {
        async move {
            for broker in &spec.brokers {
                if !self.is_running(&(spec.cluster_id.clone(), broker.node_id)) {
                    self.start(spec, broker).await?;
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn restart_broker<'a>(
        &'a self,
        spec: &'a ClusterSpec,
        node_id: i32,
    ) -> BoxFuture<'a, Result<(), ProvisionError>> {
        async move {
            let broker = spec.broker(node_id).ok_or_else(|| {
                ProvisionError(format!(
                    "cluster {} has no broker {node_id}",
                    spec.cluster_arn
                ))
            })?;
            self.stop(&spec.cluster_id, node_id).await;
            self.start(spec, broker).await
        }
        .boxed()
    }

    fn remove_broker<'a>(
        &'a self,
        spec: &'a ClusterSpec,
        node_id: i32,
    ) -> BoxFuture<'a, Result<(), ProvisionError>> {
        async move {
            self.stop(&spec.cluster_id, node_id).await;
            if let Some(b) = spec.broker(node_id) {
                remove_dir(&b.data_dir).await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn stop_cluster<'a>(
        &'a self,
        spec: &'a ClusterSpec,
    ) -> BoxFuture<'a, Result<(), ProvisionError>> {
        async move {
            let stops = spec
                .brokers
                .iter()
                .map(|b| self.stop(&spec.cluster_id, b.node_id));
            futures::future::join_all(stops).await;
            Ok(())
        }
        .boxed()
    }

    fn delete_cluster<'a>(
        &'a self,
        spec: &'a ClusterSpec,
    ) -> BoxFuture<'a, Result<(), ProvisionError>> {
        async move {
            self.stop_cluster(spec).await?;
            // Brokers removed earlier may have left ids not in the spec.
            let ids: Vec<i32> = self
                .running
                .lock()
                .keys()
                .filter(|(c, _)| *c == spec.cluster_id)
                .map(|(_, id)| *id)
                .collect();
            for id in ids {
                self.stop(&spec.cluster_id, id).await;
            }
            remove_dir(&spec.cluster_dir).await
        }
        .boxed()
    }

    fn check_broker<'a>(
        &'a self,
        spec: &'a ClusterSpec,
        node_id: i32,
    ) -> BoxFuture<'a, BrokerHealth> {
        async move {
            if !self.is_running(&(spec.cluster_id.clone(), node_id)) {
                return BrokerHealth::NotRunning;
            }
            let Some(b) = spec.broker(node_id) else {
                return BrokerHealth::NotRunning;
            };
            let addr = super::endpoint(b, ListenerKind::Replication);
            match check_api_versions(&addr, self.check_timeout).await {
                Ok(()) => BrokerHealth::Healthy,
                Err(e) => BrokerHealth::Unresponsive(e),
            }
        }
        .boxed()
    }

    fn subscribe_exits(&self) -> broadcast::Receiver<BrokerExit> {
        self.exits.subscribe()
    }

    fn broker_endpoints(&self, spec: &ClusterSpec, node_id: i32) -> Vec<(ListenerKind, String)> {
        let Some(b) = spec.broker(node_id) else {
            return Vec::new();
        };
        let voter = super::properties::is_voter(spec, b);
        super::properties::opened_listeners(spec)
            .into_iter()
            .filter(|k| voter || *k != ListenerKind::Controller)
            .map(|k| (k, super::endpoint(b, k)))
            .collect()
    }
}

async fn remove_dir(dir: &Path) -> Result<(), ProvisionError> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ProvisionError(format!("remove {}: {e}", dir.display()))),
    }
}
