//! The engine: carries out what the API accepted. Creation (CREATING →
//! ACTIVE, or FAILED with a reason), deletion, every cluster operation
//! (rolling restarts one broker at a time, waiting for health before the
//! next; broker additions and removals; reboots), and a supervisor that
//! replaces brokers that die or stop answering (ACTIVE → HEALING → ACTIVE).
//! All progress is written to the store as it happens, so a restarted
//! control plane resumes creations and deletions, fails interrupted
//! operations cleanly, and starts the brokers of every live cluster again.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clusters::{
    new_current_version, BrokerRecord, ClusterRecord, ClusterSettings, ClusterState,
};
use crate::config::ControlPlaneConfig;
use crate::configurations::revision_properties;
use crate::error::ApiError;
use crate::kafka_health::{describe_cluster, ClusterView};
use crate::operations::{states, step_status, ErrorInfo, OperationPlan, OperationRecord};
use crate::provisioner::{
    endpoint, BrokerHealth, BrokerPorts, BrokerSpec, ClusterSpec, ListenerKind, Provisioner,
};
use crate::store::{Store, StoreTx};
use crate::timestamps::{now_iso, now_millis};
use crate::wire::StateInfo;

/// Every port assigned to a broker of any cluster, or to a broker an
/// operation is about to add.
pub fn ports_in_use(tx: &StoreTx<'_>) -> Result<HashSet<u16>, ApiError> {
    let mut taken = HashSet::new();
    let mut add = |p: &BrokerPorts| {
        taken.extend([
            p.plaintext,
            p.tls,
            p.sasl_scram,
            p.sasl_iam,
            p.replication,
            p.controller,
        ]);
    };
    for c in tx.clusters()? {
        c.brokers.iter().for_each(|b| add(&b.ports));
        if let Some(op) = c
            .active_operation_arn
            .as_deref()
            .map(|a| tx.operation(a))
            .transpose()?
            .flatten()
        {
            if let OperationPlan::AddBrokers { brokers, .. } = &op.plan {
                brokers.iter().for_each(|b| add(&b.ports));
            }
        }
    }
    Ok(taken)
}

/// Six free loopback ports for a new broker from `range`, none in `taken`
/// (which they are added to). The range should lie below the kernel's
/// ephemeral ports (32768 and up on Linux), so that a port kept for a
/// stopped broker is not handed to some outgoing connection meanwhile. The
/// scan starts at a random place so that two control planes on one machine
/// rarely race for the same ports; each port is checked by binding it, and
/// all six are held while choosing.
pub fn allocate_ports(
    taken: &mut HashSet<u16>,
    range: &RangeInclusive<u16>,
) -> Result<BrokerPorts, ApiError> {
    use rand::Rng;
    let (low, high) = (*range.start() as u32, *range.end() as u32);
    if high < low + 6 {
        return Err(ApiError::internal("the broker port range is too small"));
    }
    let size = high - low + 1;
    let start = rand::rng().random_range(0..size);
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for i in 0..size {
        if ports.len() == 6 {
            break;
        }
        let port = (low + (start + i) % size) as u16;
        if taken.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            taken.insert(port);
            ports.push(port);
            held.push(listener);
        }
    }
    if ports.len() < 6 {
        return Err(ApiError::internal(
            "no free ports left in the broker port range",
        ));
    }
    Ok(BrokerPorts {
        plaintext: ports[0],
        tls: ports[1],
        sasl_scram: ports[2],
        sasl_iam: ports[3],
        replication: ports[4],
        controller: ports[5],
    })
}

/// Carries out creations, deletions and operations, and supervises brokers.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    store: Arc<Store>,
    provisioner: Arc<dyn Provisioner>,
    config: ControlPlaneConfig,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The creation or operation task working on each cluster, so that a
    /// deletion can stop it before removing the brokers.
    cluster_work: Mutex<HashMap<String, JoinHandle<()>>>,
    shutdown: watch::Sender<bool>,
}

impl Engine {
    /// An engine over `store`, running brokers through `provisioner`.
    pub fn new(
        store: Arc<Store>,
        provisioner: Arc<dyn Provisioner>,
        config: ControlPlaneConfig,
    ) -> Self {
        let (shutdown, _) = watch::channel(false);
        Engine {
            inner: Arc::new(EngineInner {
                store,
                provisioner,
                config,
                tasks: Mutex::new(Vec::new()),
                cluster_work: Mutex::new(HashMap::new()),
                shutdown,
            }),
        }
    }

    fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(f);
        let mut tasks = self.inner.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    /// Spawns work on one cluster (creation, operation), tracked so that a
    /// deletion can cancel it.
    fn spawn_cluster_work(
        &self,
        cluster_arn: &str,
        f: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let handle = tokio::spawn(f);
        let mut work = self.inner.cluster_work.lock();
        work.retain(|_, h| !h.is_finished());
        work.insert(cluster_arn.to_string(), handle);
    }

    /// The directory of a cluster's brokers.
    fn cluster_dir(&self, cluster_id: &str) -> PathBuf {
        self.inner.config.data_dir.join("clusters").join(cluster_id)
    }

    /// What the provisioner needs to run `brokers` of `c` with `settings`.
    fn spec_with(
        &self,
        tx: &StoreTx<'_>,
        c: &ClusterRecord,
        settings: &ClusterSettings,
        brokers: &[BrokerRecord],
    ) -> Result<ClusterSpec, ApiError> {
        let cluster_dir = self.cluster_dir(&c.id);
        Ok(ClusterSpec {
            cluster_arn: c.arn.clone(),
            cluster_id: c.id.clone(),
            cluster_dir: cluster_dir.clone(),
            kafka_version: settings.kafka_version.clone(),
            instance_type: settings.instance_type().to_string(),
            zone_count: settings.subnets().len(),
            client_listeners: settings.client_listeners(),
            properties: revision_properties(tx, settings.configuration_info.as_ref())?,
            volume_size_gib: settings.volume_size(),
            brokers: brokers
                .iter()
                .map(|b| BrokerSpec {
                    node_id: b.broker_id,
                    zone_id: b.zone_id.clone(),
                    host: self.inner.config.broker_host.clone(),
                    ports: b.ports,
                    data_dir: cluster_dir.join(format!("broker-{}", b.broker_id)),
                })
                .collect(),
        })
    }

    fn load(&self, arn: &str) -> Result<Option<(ClusterRecord, ClusterSpec)>, ApiError> {
        self.inner.store.transaction(|tx| {
            let Some(c) = tx.cluster(arn)? else {
                return Ok(None);
            };
            let spec = self.spec_with(tx, &c, &c.settings, &c.brokers)?;
            Ok(Some((c, spec)))
        })
    }

    /// Waits until broker `node_id` answers, within the ready timeout.
    async fn wait_healthy(&self, spec: &ClusterSpec, node_id: i32) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + self.inner.config.timings.broker_ready_timeout;
        loop {
            let health = self.inner.provisioner.check_broker(spec, node_id).await;
            if health == BrokerHealth::Healthy {
                return Ok(());
            }
            if health == BrokerHealth::NotRunning {
                // It was started and has exited again: waiting won't help.
                return Err(format!(
                    "broker {node_id} exited after it was started{}",
                    last_log_line(spec, node_id)
                        .map(|l| format!(": {l}"))
                        .unwrap_or_default()
                ));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "broker {node_id} did not become healthy within {:?}: {health:?}",
                    self.inner.config.timings.broker_ready_timeout
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Every broker's view of the cluster (Metadata over its replication
    /// listener), or why one could not be had.
    async fn cluster_views(&self, spec: &ClusterSpec) -> Result<Vec<(i32, ClusterView)>, String> {
        let mut views = Vec::new();
        for b in &spec.brokers {
            let addr = endpoint(b, ListenerKind::Replication);
            let view = describe_cluster(&addr, std::time::Duration::from_secs(5))
                .await
                .map_err(|e| format!("broker {}: {e}", b.node_id))?;
            views.push((b.node_id, view));
        }
        Ok(views)
    }

    /// Waits until the brokers of `spec` form one healthy Kafka cluster
    /// (see [`readiness`]): what ACTIVE promises, and what a rolling
    /// restart waits for before it takes the next broker down.
    async fn wait_cluster_ready(&self, spec: &ClusterSpec) -> Result<(), String> {
        let timeout = self.inner.config.timings.broker_ready_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let why = match self.cluster_views(spec).await {
                Ok(views) => match readiness(spec, &views) {
                    Readiness::Ready => return Ok(()),
                    Readiness::Standalone => {
                        tracing::debug!(cluster = %spec.cluster_arn, "brokers run standalone (no shared metadata quorum): nothing to wait for");
                        return Ok(());
                    }
                    Readiness::Waiting(why) => why,
                },
                Err(e) => e,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "the brokers did not form a healthy cluster within {timeout:?}: {why}"
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// Waits until the brokers of cluster `arn` form one healthy Kafka
    /// cluster (see [`readiness`]).
    pub async fn wait_ready(&self, arn: &str) -> Result<(), String> {
        let (_, spec) = self
            .load(arn)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no cluster {arn}"))?;
        self.wait_cluster_ready(&spec).await
    }

    /// Replicas each broker of cluster `arn` hosts now, by broker id (each
    /// broker asked about itself). Brokers that don't answer are left out.
    pub async fn partitions_per_broker(&self, arn: &str) -> Result<HashMap<i32, usize>, ApiError> {
        let Some((_, spec)) = self.load(arn)? else {
            return Ok(HashMap::new());
        };
        let mut counts = HashMap::new();
        for b in &spec.brokers {
            let addr = endpoint(b, ListenerKind::Replication);
            match describe_cluster(&addr, std::time::Duration::from_secs(5)).await {
                Ok(view) => {
                    counts.insert(b.node_id, view.partitions_on(b.node_id));
                }
                Err(e) => {
                    tracing::warn!(cluster = arn, broker = b.node_id, error = %e, "cannot count the broker's partitions")
                }
            }
        }
        Ok(counts)
    }

    /// Starts creating a cluster stored as CREATING.
    pub fn start_creation(&self, arn: &str) {
        let engine = self.clone();
        let arn = arn.to_string();
        let key = arn.clone();
        self.spawn_cluster_work(&key, async move { engine.create(&arn).await });
    }

    async fn create(&self, arn: &str) {
        let (c, spec) = match self.load(arn) {
            Ok(Some(loaded)) => loaded,
            Ok(None) => return,
            Err(e) => return tracing::error!(cluster = arn, error = %e, "cannot load cluster"),
        };
        if c.state != ClusterState::Creating {
            return;
        }
        let mut result = self
            .inner
            .provisioner
            .create_brokers(&spec)
            .await
            .map_err(|e| e.0);
        if result.is_ok() {
            for b in &spec.brokers {
                result = self.wait_healthy(&spec, b.node_id).await;
                if result.is_err() {
                    break;
                }
            }
        }
        if result.is_ok() {
            result = self.wait_cluster_ready(&spec).await;
        }
        if let Err(e) = &result {
            tracing::error!(cluster = arn, error = %e, "cluster creation failed");
            let _ = self.inner.provisioner.stop_cluster(&spec).await;
        }
        let stored = self.inner.store.transaction(|tx| {
            let Some(mut c) = tx.cluster(arn)? else {
                return Ok(());
            };
            if c.state != ClusterState::Creating {
                return Ok(());
            }
            match &result {
                Ok(()) => c.state = ClusterState::Active,
                Err(e) => {
                    c.state = ClusterState::Failed;
                    c.state_info = Some(StateInfo {
                        code: Some("BROKER_START_FAILED".into()),
                        message: Some(format!("The cluster could not be created: {e}")),
                    });
                }
            }
            tx.put_cluster(&c)
        });
        if let Err(e) = stored {
            tracing::error!(cluster = arn, error = %e, "cannot record creation result");
        } else if result.is_ok() {
            tracing::info!(cluster = arn, "cluster ACTIVE");
        }
    }

    /// Starts deleting a cluster stored as DELETING.
    pub fn start_deletion(&self, arn: &str) {
        let engine = self.clone();
        let arn = arn.to_string();
        self.spawn(async move { engine.delete(&arn).await });
    }

    async fn delete(&self, arn: &str) {
        // Whatever was still being done to the cluster stops first, so that
        // nothing starts a broker of a cluster being removed.
        let running = self.inner.cluster_work.lock().remove(arn);
        if let Some(work) = running {
            work.abort();
            let _ = work.await;
        }
        let (_, spec) = match self.load(arn) {
            Ok(Some(loaded)) => loaded,
            Ok(None) => return,
            Err(e) => return tracing::error!(cluster = arn, error = %e, "cannot load cluster"),
        };
        let result = self.inner.provisioner.delete_cluster(&spec).await;
        let stored = self.inner.store.transaction(|tx| match &result {
            Ok(()) => tx.delete_cluster(arn),
            Err(e) => {
                let Some(mut c) = tx.cluster(arn)? else {
                    return Ok(());
                };
                c.state = ClusterState::Failed;
                c.state_info = Some(StateInfo {
                    code: Some("DELETE_FAILED".into()),
                    message: Some(format!("The cluster could not be deleted: {e}")),
                });
                tx.put_cluster(&c)
            }
        });
        match stored {
            Ok(()) if result.is_ok() => tracing::info!(cluster = arn, "cluster deleted"),
            Ok(()) => {}
            Err(e) => tracing::error!(cluster = arn, error = %e, "cannot record deletion"),
        }
    }

    /// Starts carrying out a stored operation.
    pub fn start_operation(&self, cluster_arn: &str, operation_arn: &str) {
        let engine = self.clone();
        let arn = operation_arn.to_string();
        self.spawn_cluster_work(cluster_arn, async move { engine.run_operation(&arn).await });
    }

    /// Updates the stored operation with `f`.
    fn update_operation(&self, arn: &str, f: impl FnOnce(&mut OperationRecord)) {
        let result = self.inner.store.transaction(|tx| {
            if let Some(mut op) = tx.operation(arn)? {
                f(&mut op);
                tx.put_operation(&op)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::error!(operation = arn, error = %e, "cannot record operation progress");
        }
    }

    fn set_step(&self, arn: &str, index: usize, status: &str) {
        self.update_operation(arn, |op| {
            if let Some(step) = op.operation_steps.get_mut(index) {
                step.step_status = status.to_string();
            }
        });
    }

    async fn run_operation(&self, op_arn: &str) {
        let loaded = self.inner.store.transaction(|tx| {
            let Some(op) = tx.operation(op_arn)? else {
                return Ok(None);
            };
            let Some(c) = tx.cluster(&op.cluster_arn)? else {
                return Ok(None);
            };
            let current = self.spec_with(tx, &c, &c.settings, &c.brokers)?;
            let target = match &op.plan {
                OperationPlan::RollingRestart { target }
                | OperationPlan::SettingsOnly { target, .. }
                | OperationPlan::RemoveBrokers { target, .. } => {
                    Some(self.spec_with(tx, &c, target, &c.brokers)?)
                }
                OperationPlan::AddBrokers { target, brokers } => {
                    let all: Vec<BrokerRecord> = c.brokers.iter().chain(brokers).cloned().collect();
                    Some(self.spec_with(tx, &c, target, &all)?)
                }
                OperationPlan::Reboot { .. } => None,
            };
            Ok(Some((op, c, current, target)))
        });
        let (op, c, current, target) = match loaded {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                return tracing::error!(operation = op_arn, error = %e, "cannot load operation")
            }
        };
        if op.is_finished() {
            return;
        }
        let is_reboot = matches!(op.plan, OperationPlan::Reboot { .. });
        self.update_operation(op_arn, |op| {
            if !is_reboot {
                op.operation_state = states::UPDATE_IN_PROGRESS.into();
            }
            if let Some(s) = op.operation_steps.first_mut() {
                s.step_status = step_status::COMPLETED.into();
            }
            if let Some(s) = op.operation_steps.get_mut(1) {
                s.step_status = step_status::IN_PROGRESS.into();
            }
        });
        let work_step = 1;
        let result = self.carry_out(&op, &c, &current, target.as_ref()).await;
        let finalize_step = op.operation_steps.len().saturating_sub(1);
        match &result {
            Ok(()) => {
                self.set_step(op_arn, work_step, step_status::COMPLETED);
                self.set_step(op_arn, finalize_step, step_status::IN_PROGRESS);
            }
            Err(_) => self.set_step(op_arn, work_step, step_status::FAILED),
        }
        let stored = self.inner.store.transaction(|tx| {
            let Some(mut c) = tx.cluster(&op.cluster_arn)? else {
                return Ok(());
            };
            let Some(mut stored_op) = tx.operation(op_arn)? else {
                return Ok(());
            };
            let now = now_iso();
            match &result {
                Ok(()) => {
                    match &op.plan {
                        OperationPlan::RollingRestart { target } => c.settings = (**target).clone(),
                        OperationPlan::SettingsOnly {
                            target,
                            storage_scaling,
                        } => {
                            c.settings = (**target).clone();
                            if *storage_scaling {
                                c.last_storage_scaling_ms = Some(now_millis());
                            }
                        }
                        OperationPlan::AddBrokers { target, brokers } => {
                            c.settings = (**target).clone();
                            c.brokers.extend(brokers.iter().cloned());
                        }
                        OperationPlan::RemoveBrokers { target, broker_ids } => {
                            c.settings = (**target).clone();
                            c.brokers.retain(|b| !broker_ids.contains(&b.broker_id));
                        }
                        OperationPlan::Reboot { .. } => {}
                    }
                    if !is_reboot {
                        c.current_version = new_current_version();
                    }
                    for s in &mut stored_op.operation_steps {
                        s.step_status = step_status::COMPLETED.into();
                    }
                    stored_op.operation_state = if is_reboot {
                        states::REBOOT_COMPLETE.into()
                    } else {
                        states::UPDATE_COMPLETE.into()
                    };
                }
                Err(e) => {
                    stored_op.operation_state = states::UPDATE_FAILED.into();
                    stored_op.error_info = Some(ErrorInfo {
                        error_code: "BROKER_UNHEALTHY".into(),
                        error_string: e.clone(),
                    });
                }
            }
            stored_op.end_time = Some(now);
            c.state = ClusterState::Active;
            c.active_operation_arn = None;
            tx.put_operation(&stored_op)?;
            tx.put_cluster(&c)
        });
        match (&result, stored) {
            (_, Err(e)) => {
                tracing::error!(operation = op_arn, error = %e, "cannot record operation result")
            }
            (Ok(()), Ok(())) => tracing::info!(operation = op_arn, "operation complete"),
            (Err(e), Ok(())) => tracing::warn!(operation = op_arn, error = %e, "operation failed"),
        }
    }

    /// Restarts every broker of `c`, one at a time and only while no
    /// partition is short of a replica, onto `target`; on a failure the
    /// brokers already moved go back to `current`.
    async fn rolling_restart(
        &self,
        c: &ClusterRecord,
        current: &ClusterSpec,
        target: &ClusterSpec,
    ) -> Result<(), String> {
        let provisioner = &self.inner.provisioner;
        let pause = self.inner.config.timings.rolling_restart_pause;
        let mut ids: Vec<i32> = c.brokers.iter().map(|b| b.broker_id).collect();
        ids.sort_unstable();
        // No broker goes down while a partition is short of a replica.
        self.wait_cluster_ready(current).await?;
        let mut restarted = Vec::new();
        for id in ids {
            restarted.push(id);
            let step = async {
                provisioner
                    .restart_broker(target, id)
                    .await
                    .map_err(|e| e.0)?;
                self.wait_healthy(target, id).await?;
                // Back in every ISR before the next one goes down.
                self.wait_cluster_ready(target).await
            };
            if let Err(e) = step.await {
                // Put the brokers already moved back on the old settings.
                for back in &restarted {
                    let _ = provisioner.restart_broker(current, *back).await;
                }
                return Err(e);
            }
            tokio::time::sleep(pause).await;
        }
        Ok(())
    }

    /// Does the broker work of an operation.
    async fn carry_out(
        &self,
        op: &OperationRecord,
        c: &ClusterRecord,
        current: &ClusterSpec,
        target: Option<&ClusterSpec>,
    ) -> Result<(), String> {
        let provisioner = &self.inner.provisioner;
        match (&op.plan, target) {
            (OperationPlan::RollingRestart { .. }, Some(target)) => {
                self.rolling_restart(c, current, target).await
            }
            // A larger EBS volume raises the storage cap each broker
            // enforces, read from its server.properties at start: the
            // brokers roll onto it. Throughput alone changes nothing there.
            (OperationPlan::SettingsOnly { .. }, Some(target))
                if target.volume_size_gib != current.volume_size_gib =>
            {
                self.rolling_restart(c, current, target).await
            }
            (OperationPlan::SettingsOnly { .. }, _) => Ok(()),
            (OperationPlan::AddBrokers { brokers, .. }, Some(target)) => {
                let added = async {
                    provisioner.create_brokers(target).await.map_err(|e| e.0)?;
                    for b in brokers {
                        self.wait_healthy(target, b.broker_id).await?;
                    }
                    self.wait_cluster_ready(target).await
                };
                if let Err(e) = added.await {
                    for b in brokers {
                        let _ = provisioner.remove_broker(target, b.broker_id).await;
                    }
                    return Err(e);
                }
                Ok(())
            }
            (OperationPlan::RemoveBrokers { broker_ids, .. }, _) => {
                for id in broker_ids {
                    provisioner
                        .remove_broker(current, *id)
                        .await
                        .map_err(|e| e.0)?;
                }
                Ok(())
            }
            (OperationPlan::Reboot { broker_id }, _) => {
                provisioner
                    .restart_broker(current, *broker_id)
                    .await
                    .map_err(|e| e.0)?;
                self.wait_healthy(current, *broker_id).await?;
                self.wait_cluster_ready(current).await
            }
            _ => Err("the operation's target could not be prepared".into()),
        }
    }

    /// Starts routine maintenance (MSK's patching): the cluster is
    /// MAINTENANCE, refusing updates, while every broker is restarted in
    /// turn and waited for, then ACTIVE again. Returns false, doing
    /// nothing, unless the cluster is ACTIVE.
    pub fn start_maintenance(&self, arn: &str) -> Result<bool, ApiError> {
        let started = self.inner.store.transaction(|tx| {
            let Some(mut c) = tx.cluster(arn)? else {
                return Ok(false);
            };
            if c.state != ClusterState::Active {
                return Ok(false);
            }
            c.state = ClusterState::Maintenance;
            tx.put_cluster(&c)?;
            Ok(true)
        })?;
        if started {
            let engine = self.clone();
            let key = arn.to_string();
            let arn = arn.to_string();
            self.spawn_cluster_work(&key, async move { engine.maintain(&arn).await });
        }
        Ok(started)
    }

    async fn maintain(&self, arn: &str) {
        let Ok(Some((_, spec))) = self.load(arn) else {
            return;
        };
        for b in &spec.brokers {
            let restarted = async {
                self.inner
                    .provisioner
                    .restart_broker(&spec, b.node_id)
                    .await
                    .map_err(|e| e.0)?;
                self.wait_healthy(&spec, b.node_id).await?;
                self.wait_cluster_ready(&spec).await
            };
            if let Err(e) = restarted.await {
                tracing::warn!(cluster = arn, broker = b.node_id, error = %e, "maintenance restart failed; the supervisor will heal the broker");
            }
            tokio::time::sleep(self.inner.config.timings.rolling_restart_pause).await;
        }
        let _ = self.inner.store.transaction(|tx| {
            let Some(mut c) = tx.cluster(arn)? else {
                return Ok(());
            };
            if c.state == ClusterState::Maintenance {
                c.state = ClusterState::Active;
                tx.put_cluster(&c)?;
            }
            Ok(())
        });
        tracing::info!(cluster = arn, "maintenance done");
    }

    /// Reconciles the stored state with reality after a start: resumes
    /// creations and deletions, fails operations a previous run left
    /// unfinished (undoing half-added brokers), starts the brokers of every
    /// live cluster, and starts the supervisor.
    pub async fn resume(&self) -> Result<(), ApiError> {
        let clusters = self.inner.store.transaction(|tx| tx.clusters())?;
        for c in clusters {
            match c.state {
                ClusterState::Creating => self.start_creation(&c.arn),
                ClusterState::Deleting => self.start_deletion(&c.arn),
                ClusterState::Failed => {}
                ClusterState::Updating | ClusterState::RebootingBroker => {
                    self.fail_interrupted(&c).await?;
                    self.restart_cluster(&c.arn);
                }
                ClusterState::Active | ClusterState::Healing | ClusterState::Maintenance => {
                    self.restart_cluster(&c.arn)
                }
            }
        }
        let engine = self.clone();
        self.spawn(async move { engine.supervise().await });
        Ok(())
    }

    async fn fail_interrupted(&self, c: &ClusterRecord) -> Result<(), ApiError> {
        let op = match &c.active_operation_arn {
            Some(a) => self.inner.store.transaction(|tx| tx.operation(a))?,
            None => None,
        };
        if let Some(op) = &op {
            if let OperationPlan::AddBrokers { target, brokers } = &op.plan {
                let all: Vec<BrokerRecord> = c.brokers.iter().chain(brokers).cloned().collect();
                let spec = self
                    .inner
                    .store
                    .transaction(|tx| self.spec_with(tx, c, target, &all))?;
                for b in brokers {
                    let _ = self
                        .inner
                        .provisioner
                        .remove_broker(&spec, b.broker_id)
                        .await;
                }
            }
        }
        self.inner.store.transaction(|tx| {
            if let Some(op) = &op {
                let mut op = op.clone();
                op.operation_state = states::UPDATE_FAILED.into();
                op.end_time = Some(now_iso());
                for s in &mut op.operation_steps {
                    if s.step_status == step_status::IN_PROGRESS {
                        s.step_status = step_status::FAILED.into();
                    }
                }
                op.error_info = Some(ErrorInfo {
                    error_code: "INTERRUPTED".into(),
                    error_string: "The control plane restarted while the operation ran; the cluster keeps its previous settings.".into(),
                });
                tx.put_operation(&op)?;
            }
            let Some(mut c) = tx.cluster(&c.arn)? else { return Ok(()) };
            c.state = ClusterState::Active;
            c.active_operation_arn = None;
            tx.put_cluster(&c)
        })
    }

    /// Starts every broker of a live cluster (after a control-plane start).
    fn restart_cluster(&self, arn: &str) {
        let engine = self.clone();
        let arn = arn.to_string();
        self.spawn(async move {
            let Ok(Some((_, spec))) = engine.load(&arn) else { return };
            if let Err(e) = engine.inner.provisioner.create_brokers(&spec).await {
                tracing::error!(cluster = %arn, error = %e, "cannot start brokers");
                return;
            }
            for b in &spec.brokers {
                if let Err(e) = engine.wait_healthy(&spec, b.node_id).await {
                    tracing::warn!(cluster = %arn, error = %e, "broker not healthy after start; the supervisor will heal it");
                    return;
                }
            }
            let _ = engine.inner.store.transaction(|tx| {
                let Some(mut c) = tx.cluster(&arn)? else { return Ok(()) };
                if matches!(c.state, ClusterState::Healing | ClusterState::Maintenance) {
                    c.state = ClusterState::Active;
                    tx.put_cluster(&c)?;
                }
                Ok(())
            });
        });
    }

    /// Checks every broker of every ACTIVE or HEALING cluster at each
    /// health-check interval (and at once when a broker exits), and
    /// replaces the dead and the unresponsive.
    async fn supervise(&self) {
        let mut exits = self.inner.provisioner.subscribe_exits();
        let mut shutdown = self.inner.shutdown.subscribe();
        let mut failures: HashMap<(String, i32), u32> = HashMap::new();
        let interval = self.inner.config.timings.health_check_interval;
        let threshold = self
            .inner
            .config
            .timings
            .unhealthy_checks_before_healing
            .max(1);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = exits.recv() => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            let Ok(clusters) = self.inner.store.transaction(|tx| tx.clusters()) else {
                continue;
            };
            for c in clusters {
                if !matches!(c.state, ClusterState::Active | ClusterState::Healing) {
                    continue;
                }
                let Ok(Some((_, spec))) = self.load(&c.arn) else {
                    continue;
                };
                for b in &spec.brokers {
                    let key = (c.arn.clone(), b.node_id);
                    let heal = match self.inner.provisioner.check_broker(&spec, b.node_id).await {
                        BrokerHealth::Healthy => {
                            failures.remove(&key);
                            false
                        }
                        BrokerHealth::NotRunning => true,
                        BrokerHealth::Unresponsive(reason) => {
                            let n = failures.entry(key.clone()).or_insert(0);
                            *n += 1;
                            tracing::warn!(cluster = %c.arn, broker = b.node_id, %reason, checks = *n, "broker unresponsive");
                            *n >= threshold
                        }
                    };
                    if heal {
                        failures.remove(&key);
                        self.heal(&c.arn, &spec, b.node_id).await;
                    }
                }
                if c.state == ClusterState::Healing {
                    self.finish_healing(&c.arn, &spec).await;
                }
            }
        }
    }

    /// Replaces one broker: same id, ports and data directory.
    async fn heal(&self, arn: &str, spec: &ClusterSpec, node_id: i32) {
        let marked = self.inner.store.transaction(|tx| {
            let Some(mut c) = tx.cluster(arn)? else {
                return Ok(false);
            };
            match c.state {
                ClusterState::Active => {
                    c.state = ClusterState::Healing;
                    tx.put_cluster(&c)?;
                    Ok(true)
                }
                ClusterState::Healing => Ok(true),
                _ => Ok(false),
            }
        });
        if !matches!(marked, Ok(true)) {
            return;
        }
        tracing::warn!(cluster = arn, broker = node_id, "replacing broker");
        let result = async {
            self.inner
                .provisioner
                .restart_broker(spec, node_id)
                .await
                .map_err(|e| e.0)?;
            self.wait_healthy(spec, node_id).await?;
            self.wait_cluster_ready(spec).await
        }
        .await;
        if let Err(e) = result {
            tracing::error!(cluster = arn, broker = node_id, error = %e, "broker replacement failed; retrying at the next check");
            return;
        }
        self.finish_healing(arn, spec).await;
    }

    /// HEALING → ACTIVE once every broker answers.
    async fn finish_healing(&self, arn: &str, spec: &ClusterSpec) {
        for b in &spec.brokers {
            if self.inner.provisioner.check_broker(spec, b.node_id).await != BrokerHealth::Healthy {
                return;
            }
        }
        let _ = self.inner.store.transaction(|tx| {
            let Some(mut c) = tx.cluster(arn)? else {
                return Ok(());
            };
            if c.state == ClusterState::Healing {
                c.state = ClusterState::Active;
                tx.put_cluster(&c)?;
                tracing::info!(cluster = arn, "cluster healed");
            }
            Ok(())
        });
    }

    /// Stops the engine's tasks and every broker, keeping all state: the
    /// next start resumes from the store.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        let mut tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.inner.tasks.lock());
        tasks.extend(self.inner.cluster_work.lock().drain().map(|(_, h)| h));
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        let specs = self.inner.store.transaction(|tx| {
            tx.clusters()?
                .iter()
                .map(|c| self.spec_with(tx, c, &c.settings, &c.brokers))
                .collect::<Result<Vec<_>, _>>()
        });
        if let Ok(specs) = specs {
            for spec in specs {
                let _ = self.inner.provisioner.stop_cluster(&spec).await;
            }
        }
    }
}

/// The last line of broker `node_id`'s `broker.log` (why it stopped),
/// without terminal colours.
fn last_log_line(spec: &ClusterSpec, node_id: i32) -> Option<String> {
    let b = spec.broker(node_id)?;
    let text = std::fs::read(b.data_dir.join("broker.log")).ok()?;
    let text = String::from_utf8_lossy(&text);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let mut plain = String::new();
    let mut in_escape = false;
    for c in line.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    Some(plain.trim().to_string())
}

/// Whether the brokers of a cluster form one healthy Kafka cluster, from
/// every broker's Metadata answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// One cluster id; every broker lists every broker of the cluster
    /// (registered and unfenced); a controller is known; no partition is
    /// under-replicated.
    Ready,
    /// Each broker is alone in its own Kafka cluster: brokers that do not
    /// (yet) share a metadata quorum. Nothing to wait for.
    Standalone,
    /// Not yet, and why.
    Waiting(String),
}

/// Judges `views` (broker id, its Metadata answer) for the brokers of
/// `spec`.
pub fn readiness(spec: &ClusterSpec, views: &[(i32, ClusterView)]) -> Readiness {
    let ids: Vec<i32> = spec.brokers.iter().map(|b| b.node_id).collect();
    if views.len() < ids.len() {
        return Readiness::Waiting(format!("{} of {} brokers answered", views.len(), ids.len()));
    }
    let alone = |(id, v): &(i32, ClusterView)| v.brokers == [*id];
    let mut cluster_ids: Vec<&Option<String>> = views.iter().map(|(_, v)| &v.cluster_id).collect();
    cluster_ids.sort();
    cluster_ids.dedup();
    if ids.len() > 1 && views.iter().all(alone) && cluster_ids.len() == views.len() {
        return Readiness::Standalone;
    }
    if cluster_ids.len() > 1 {
        return Readiness::Waiting(format!(
            "the brokers report {} different cluster ids",
            cluster_ids.len()
        ));
    }
    for (id, view) in views {
        let missing: Vec<i32> = ids
            .iter()
            .copied()
            .filter(|b| !view.brokers.contains(b))
            .collect();
        if !missing.is_empty() {
            return Readiness::Waiting(format!(
                "broker {id} does not list brokers {missing:?} as registered and unfenced"
            ));
        }
        if view.controller_id < 0 {
            return Readiness::Waiting(format!("broker {id} knows no active controller"));
        }
        let urp = view.under_replicated();
        if urp > 0 {
            return Readiness::Waiting(format!(
                "broker {id} sees {urp} under-replicated partitions"
            ));
        }
    }
    Readiness::Ready
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka_health::PartitionView;

    fn spec(ids: &[i32]) -> ClusterSpec {
        ClusterSpec {
            cluster_arn: "arn".into(),
            cluster_id: "id-1".into(),
            cluster_dir: "/d".into(),
            kafka_version: "3.7.x.kraft".into(),
            instance_type: "kafka.m5.large".into(),
            zone_count: 3,
            client_listeners: vec![ListenerKind::Plaintext],
            properties: Vec::new(),
            volume_size_gib: 1000,
            brokers: ids
                .iter()
                .map(|id| BrokerSpec {
                    node_id: *id,
                    zone_id: format!("use1-az{id}"),
                    host: "127.0.0.1".into(),
                    ports: BrokerPorts {
                        plaintext: 1,
                        tls: 2,
                        sasl_scram: 3,
                        sasl_iam: 4,
                        replication: 5,
                        controller: 6,
                    },
                    data_dir: "/d".into(),
                })
                .collect(),
        }
    }

    fn view(cluster: &str, brokers: &[i32], isr: &[i32]) -> ClusterView {
        ClusterView {
            cluster_id: Some(cluster.into()),
            controller_id: 1,
            brokers: brokers.to_vec(),
            partitions: vec![PartitionView {
                topic: "t".into(),
                partition: 0,
                replicas: vec![1, 2, 3],
                isr: isr.to_vec(),
            }],
        }
    }

    #[test]
    fn readiness_of_a_quorum_cluster() {
        let s = spec(&[1, 2, 3]);
        let all = [1, 2, 3];
        let ready: Vec<(i32, ClusterView)> =
            all.iter().map(|id| (*id, view("c", &all, &all))).collect();
        assert_eq!(readiness(&s, &ready), Readiness::Ready);

        // A restarted broker not yet back in the ISR.
        let behind: Vec<(i32, ClusterView)> = all
            .iter()
            .map(|id| (*id, view("c", &all, &[1, 2])))
            .collect();
        assert!(
            matches!(readiness(&s, &behind), Readiness::Waiting(w) if w.contains("under-replicated"))
        );

        // Broker 3 fenced or not yet registered.
        let missing: Vec<(i32, ClusterView)> = all
            .iter()
            .map(|id| (*id, view("c", &[1, 2], &all)))
            .collect();
        assert!(matches!(readiness(&s, &missing), Readiness::Waiting(w) if w.contains("[3]")));

        // One broker not yet caught up: it knows only itself, same cluster.
        let mut lonely = ready.clone();
        lonely[2].1.brokers = vec![3];
        assert!(matches!(readiness(&s, &lonely), Readiness::Waiting(_)));

        // No controller elected.
        let mut leaderless = ready.clone();
        leaderless[0].1.controller_id = -1;
        assert!(
            matches!(readiness(&s, &leaderless), Readiness::Waiting(w) if w.contains("controller"))
        );

        // A broker that did not answer.
        assert!(matches!(readiness(&s, &ready[..2]), Readiness::Waiting(_)));
    }

    #[test]
    fn standalone_brokers_are_recognised() {
        let s = spec(&[1, 2, 3]);
        let alone: Vec<(i32, ClusterView)> = [1, 2, 3]
            .iter()
            .map(|id| (*id, view(&format!("c{id}"), &[*id], &[*id])))
            .collect();
        assert_eq!(readiness(&s, &alone), Readiness::Standalone);
        // Alone but sharing a cluster id: a quorum still forming.
        let forming: Vec<(i32, ClusterView)> = [1, 2, 3]
            .iter()
            .map(|id| (*id, view("c", &[*id], &[1, 2, 3])))
            .collect();
        assert!(matches!(readiness(&s, &forming), Readiness::Waiting(_)));
    }
}
