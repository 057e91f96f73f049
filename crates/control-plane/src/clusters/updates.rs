//! The cluster update operations: UpdateClusterConfiguration,
//! UpdateBrokerCount, UpdateBrokerType, UpdateBrokerStorage, UpdateStorage,
//! UpdateClusterKafkaVersion, UpdateMonitoring and UpdateSecurity. Each one
//! validates, checks `currentVersion` and the ACTIVE state, stores a PENDING
//! operation and the cluster as UPDATING in one transaction, answers
//! `{clusterArn, clusterOperationArn}` at once, and leaves the work to the
//! engine. (RebootBroker, which takes no `currentVersion`, is in `nodes`.)

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::validation as v;
use super::{
    normalize_client_authentication, normalize_open_monitoring, stale_version, BrokerRecord,
    ClusterRecord, ClusterSettings, ClusterState,
};
use crate::api::{parse_body, AppState};
use crate::error::ApiError;
use crate::operations::{states, step_status, OperationPlan, OperationRecord, OperationStep};
use crate::store::StoreTx;
use crate::timestamps::{now_iso, now_millis};
use crate::versions;
use crate::wire::{
    BrokerCountUpdateInfo, BrokerEbsVolumeInfo, ClientAuthentication, ConfigurationInfo,
    EncryptionInfo, LoggingInfo, MutableClusterInfo, OpenMonitoring, ProvisionedThroughput,
};

/// What an update handler decided, for [`begin`] to store.
pub struct PlannedOperation {
    /// `UPDATE_BROKER_TYPE`…
    pub operation_type: &'static str,
    /// The step that does the work (between INITIALIZE and FINALIZE).
    pub work_steps: Vec<&'static str>,
    /// Settings before, as shown.
    pub source: MutableClusterInfo,
    /// Settings asked for, as shown.
    pub target: MutableClusterInfo,
    /// What the engine does.
    pub plan: OperationPlan,
    /// The state the cluster takes meanwhile.
    pub cluster_state: ClusterState,
}

/// Refuses updates unless the cluster is ACTIVE (MSK Developer Guide,
/// "Cluster states": no update while CREATING, UPDATING, HEALING,
/// MAINTENANCE, REBOOTING_BROKER, DELETING or FAILED).
pub fn require_active(c: &ClusterRecord) -> Result<(), ApiError> {
    if c.state != ClusterState::Active {
        return Err(ApiError::bad_request(
            "clusterArn",
            format!(
                "This operation can only be performed on a cluster in the ACTIVE state; the cluster is {}.",
                c.state.as_str()
            ),
        ));
    }
    Ok(())
}

/// Runs `decide` on the current cluster inside one transaction; if it
/// accepts, stores the operation and the cluster's new state, and starts it.
pub fn begin(
    state: &AppState,
    cluster_arn: &str,
    current_version: Option<&String>,
    decide: impl FnOnce(&StoreTx<'_>, &ClusterRecord) -> Result<PlannedOperation, ApiError>,
) -> Result<Json<Value>, ApiError> {
    state.cluster(cluster_arn, "clusterArn")?;
    let op = state.store.transaction(|tx| {
        let mut c = tx.cluster(cluster_arn)?.ok_or_else(|| {
            ApiError::not_found("clusterArn", "The requested resource doesn't exist.")
        })?;
        if let Some(version) = current_version {
            if *version != c.current_version {
                return Err(stale_version(&c));
            }
        }
        require_active(&c)?;
        let planned = decide(tx, &c)?;
        let mut steps = vec!["INITIALIZE_UPDATE"];
        steps.extend(planned.work_steps.iter().copied());
        steps.push("FINALIZE_UPDATE");
        let op = OperationRecord {
            operation_arn: state.scope.cluster_operation(&c.name, &c.id),
            cluster_arn: c.arn.clone(),
            client_request_id: uuid::Uuid::new_v4().to_string(),
            creation_time: now_iso(),
            end_time: None,
            operation_state: if planned.operation_type == "REBOOT_NODE" {
                states::REBOOT_IN_PROGRESS.to_string()
            } else {
                states::PENDING.to_string()
            },
            operation_type: planned.operation_type.to_string(),
            operation_steps: steps
                .iter()
                .map(|s| OperationStep {
                    step_name: s.to_string(),
                    step_status: step_status::PENDING.to_string(),
                })
                .collect(),
            source_cluster_info: planned.source,
            target_cluster_info: planned.target,
            error_info: None,
            plan: planned.plan,
        };
        c.state = planned.cluster_state;
        c.active_operation_arn = Some(op.operation_arn.clone());
        tx.put_cluster(&c)?;
        tx.put_operation(&op)?;
        Ok(op)
    })?;
    tracing::info!(cluster = %op.cluster_arn, operation = %op.operation_arn, kind = %op.operation_type, "operation accepted");
    state
        .engine
        .start_operation(&op.cluster_arn, &op.operation_arn);
    Ok(Json(json!({
        "clusterArn": op.cluster_arn,
        "clusterOperationArn": op.operation_arn,
    })))
}

/// Replicas (leaders and followers) per broker, surveyed from the brokers
/// of an ACTIVE cluster. Other clusters are refused by [`begin`] anyway, so
/// their brokers are not asked.
pub async fn partition_counts(state: &AppState, arn: &str) -> HashMap<i32, usize> {
    match state.store.transaction(|tx| tx.cluster(arn)) {
        Ok(Some(c)) if c.state == ClusterState::Active => state
            .engine
            .partitions_per_broker(arn)
            .await
            .unwrap_or_default(),
        _ => HashMap::new(),
    }
}

/// Refuses an operation the guide gates on partitions per broker (MSK
/// Developer Guide, "Right-size your cluster: Number of partitions per
/// broker": configuration updates, Kafka version updates, moving to a
/// smaller broker size) while a broker hosts more than `itype` supports.
pub fn check_partition_limit(
    counts: &HashMap<i32, usize>,
    itype: &v::InstanceType,
    parameter: &str,
    what: &str,
) -> Result<(), ApiError> {
    let mut over: Vec<(i32, usize)> = counts
        .iter()
        .filter(|(_, n)| **n > itype.max_partitions as usize)
        .map(|(b, n)| (*b, *n))
        .collect();
    over.sort_unstable();
    match over.first() {
        None => Ok(()),
        Some((broker, n)) => Err(ApiError::bad_request(
            parameter,
            format!(
                "Broker {broker} hosts {n} partitions (leaders and followers); {} brokers support at most {}. {what} is not possible until the number of partitions per broker is within that limit: delete topics or partitions, or add brokers first.",
                itype.name, itype.max_partitions
            ),
        )),
    }
}

fn updating(
    operation_type: &'static str,
    work_step: &'static str,
    source: MutableClusterInfo,
    target: MutableClusterInfo,
    plan: OperationPlan,
) -> PlannedOperation {
    PlannedOperation {
        operation_type,
        work_steps: vec![work_step],
        source,
        target,
        plan,
        cluster_state: ClusterState::Updating,
    }
}

fn rolling(target: ClusterSettings) -> OperationPlan {
    OperationPlan::RollingRestart {
        target: Box::new(target),
    }
}

fn settings_only(target: ClusterSettings, storage_scaling: bool) -> OperationPlan {
    OperationPlan::SettingsOnly {
        target: Box::new(target),
        storage_scaling,
    }
}

/// Body of UpdateClusterConfiguration.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateClusterConfigurationRequest {
    /// The configuration and revision to apply.
    pub configuration_info: Option<ConfigurationInfo>,
    /// Optimistic-concurrency token.
    pub current_version: Option<String>,
}

/// UpdateClusterConfiguration: `PUT /v1/clusters/{clusterArn}/configuration`:
/// a rolling restart with the new configuration revision.
pub async fn update_cluster_configuration(
    State(state): State<AppState>,
    Path(arn): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: UpdateClusterConfigurationRequest = parse_body(&body)?;
    let version = v::required(req.current_version.as_ref(), "currentVersion")?;
    let ci = v::required(req.configuration_info.as_ref(), "configurationInfo")?.clone();
    v::required(ci.arn.as_ref(), "arn")?;
    v::required(ci.revision.as_ref(), "revision")?;
    let counts = partition_counts(&state, &arn).await;
    begin(&state, &arn, Some(version), |tx, c| {
        crate::configurations::check_usable(
            tx,
            &ci,
            &c.settings.kafka_version,
            "configurationInfo",
        )?;
        let itype = v::instance_type(c.settings.instance_type(), "instanceType")?;
        check_partition_limit(
            &counts,
            itype,
            "configurationInfo",
            "Updating the cluster configuration",
        )?;
        let mut target = c.settings.clone();
        target.configuration_info = Some(ci.clone());
        Ok(updating(
            "UPDATE_CLUSTER_CONFIGURATION",
            "UPDATE_BROKER_CONFIGURATION",
            MutableClusterInfo {
                configuration_info: c.settings.configuration_info.clone(),
                ..Default::default()
            },
            MutableClusterInfo {
                configuration_info: Some(ci.clone()),
                ..Default::default()
            },
            rolling(target),
        ))
    })
}

/// Body of UpdateBrokerCount.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateBrokerCountRequest {
    /// Optimistic-concurrency token.
    pub current_version: Option<String>,
    /// The new total.
    pub target_number_of_broker_nodes: Option<i64>,
}

/// UpdateBrokerCount: `PUT /v1/clusters/{clusterArn}/nodes/count`. Up: new
/// brokers spread evenly over the zones. Down: one broker per zone per
/// step, the highest ids, on M5/M7g clusters with Kafka 2.8.1 or later.
pub async fn update_broker_count(
    State(state): State<AppState>,
    Path(arn): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: UpdateBrokerCountRequest = parse_body(&body)?;
    let version = v::required(req.current_version.as_ref(), "currentVersion")?;
    v::required(
        req.target_number_of_broker_nodes.as_ref(),
        "targetNumberOfBrokerNodes",
    )?;
    let counts = partition_counts(&state, &arn).await;
    begin(&state, &arn, Some(version), |tx, c| {
        let zones = c.zone_count();
        let target_count = v::broker_count(
            req.target_number_of_broker_nodes.as_ref(),
            zones,
            &c.settings.kafka_version,
            "targetNumberOfBrokerNodes",
        )?;
        let current = c.settings.number_of_broker_nodes;
        if target_count == current {
            return Err(ApiError::bad_request(
                "targetNumberOfBrokerNodes",
                format!("The cluster already has {current} broker nodes."),
            ));
        }
        let mut target = c.settings.clone();
        target.number_of_broker_nodes = target_count;
        let source_info = MutableClusterInfo {
            number_of_broker_nodes: Some(current),
            ..Default::default()
        };
        if target_count > current {
            let account_total: i64 = tx
                .clusters()?
                .iter()
                .map(|c| c.settings.number_of_broker_nodes)
                .sum();
            if account_total - current + target_count > v::MAX_BROKERS_PER_ACCOUNT {
                return Err(ApiError::bad_request(
                    "targetNumberOfBrokerNodes",
                    format!(
                        "The account would exceed {} brokers.",
                        v::MAX_BROKERS_PER_ACCOUNT
                    ),
                ));
            }
            let brokers = new_brokers(&state, tx, c, target_count)?;
            let ids: Vec<f64> = brokers.iter().map(|b| b.broker_id as f64).collect();
            Ok(updating(
                "INCREASE_BROKER_COUNT",
                "ADD_BROKERS",
                source_info,
                MutableClusterInfo {
                    number_of_broker_nodes: Some(target_count),
                    broker_count_update_info: Some(BrokerCountUpdateInfo {
                        created_broker_ids: Some(ids),
                        deleted_broker_ids: None,
                    }),
                    ..Default::default()
                },
                OperationPlan::AddBrokers {
                    target: Box::new(target),
                    brokers,
                },
            ))
        } else {
            let itype = v::instance_type(c.settings.instance_type(), "instanceType")?;
            if itype.family == v::Family::T3 {
                return Err(ApiError::bad_request(
                    "targetNumberOfBrokerNodes",
                    "Brokers can be removed only from clusters of M5 or M7g brokers.",
                ));
            }
            let source_version = &c.settings.kafka_version;
            if !versions::at_least(source_version, "2.8.1") {
                return Err(ApiError::bad_request(
                    "targetNumberOfBrokerNodes",
                    format!("Brokers can be removed only from clusters on Apache Kafka 2.8.1 or later; the cluster uses {source_version}."),
                ));
            }
            let per_zone = ((current - target_count) / zones as i64) as usize;
            let removed = brokers_to_remove(c, per_zone);
            // MSK Developer Guide, "Prepare to remove brokers by removing
            // all partitions": the brokers removed must host none.
            let holding: Vec<String> = removed
                .iter()
                .filter_map(|id| {
                    counts
                        .get(id)
                        .filter(|n| **n > 0)
                        .map(|n| format!("broker {id} ({n})"))
                })
                .collect();
            if !holding.is_empty() {
                return Err(ApiError::bad_request(
                    "targetNumberOfBrokerNodes",
                    format!(
                        "The brokers to remove still host partitions: {}. Move every partition off them (kafka-reassign-partitions.sh) first.",
                        holding.join(", ")
                    ),
                ));
            }
            let ids: Vec<f64> = removed.iter().map(|id| *id as f64).collect();
            Ok(updating(
                "DECREASE_BROKER_COUNT",
                "REMOVE_BROKERS",
                source_info,
                MutableClusterInfo {
                    number_of_broker_nodes: Some(target_count),
                    broker_count_update_info: Some(BrokerCountUpdateInfo {
                        created_broker_ids: None,
                        deleted_broker_ids: Some(ids),
                    }),
                    ..Default::default()
                },
                OperationPlan::RemoveBrokers {
                    target: Box::new(target),
                    broker_ids: removed,
                },
            ))
        }
    })
}

/// New brokers to reach `target_count`: ids after the highest ever used,
/// spread round-robin over the cluster's subnets.
fn new_brokers(
    state: &AppState,
    tx: &StoreTx<'_>,
    c: &ClusterRecord,
    target_count: i64,
) -> Result<Vec<BrokerRecord>, ApiError> {
    let subnets = c.settings.subnets();
    let mut taken = crate::engine::ports_in_use(tx)?;
    let first = c.brokers.iter().map(|b| b.broker_id).max().unwrap_or(0) + 1;
    let now = now_iso();
    let mut out = Vec::new();
    for i in 0..(target_count - c.settings.number_of_broker_nodes) as usize {
        let id = first + i as i32;
        let subnet = subnets[(id as usize - 1) % subnets.len()].clone();
        out.push(BrokerRecord {
            broker_id: id,
            zone_id: c
                .brokers
                .iter()
                .find(|b| b.client_subnet == subnet)
                .map(|b| b.zone_id.clone())
                .unwrap_or_default(),
            client_subnet: subnet,
            ports: crate::engine::allocate_ports(&mut taken, &state.config.broker_ports)?,
            added_time: now.clone(),
            node_uuid: uuid::Uuid::new_v4().to_string(),
        });
    }
    Ok(out)
}

/// The `per_zone` highest broker ids of every zone.
fn brokers_to_remove(c: &ClusterRecord, per_zone: usize) -> Vec<i32> {
    let mut ids = Vec::new();
    for subnet in c.settings.subnets() {
        let mut in_zone: Vec<i32> = c
            .brokers
            .iter()
            .filter(|b| b.client_subnet == subnet)
            .map(|b| b.broker_id)
            .collect();
        in_zone.sort_unstable_by(|a, b| b.cmp(a));
        ids.extend(in_zone.into_iter().take(per_zone));
    }
    ids.sort_unstable();
    ids
}

/// Body of UpdateBrokerType.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateBrokerTypeRequest {
    /// Optimistic-concurrency token.
    pub current_version: Option<String>,
    /// The new broker size.
    pub target_instance_type: Option<String>,
}

/// UpdateBrokerType: `PUT /v1/clusters/{clusterArn}/nodes/type`: a rolling
/// restart onto the new size. M5 or T3 may move to M7g and M7g to M5; no
/// T3 with tiered storage.
pub async fn update_broker_type(
    State(state): State<AppState>,
    Path(arn): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: UpdateBrokerTypeRequest = parse_body(&body)?;
    let version = v::required(req.current_version.as_ref(), "currentVersion")?;
    let name = v::required(req.target_instance_type.as_ref(), "targetInstanceType")?;
    let to = v::instance_type(name, "targetInstanceType")?;
    let counts = partition_counts(&state, &arn).await;
    begin(&state, &arn, Some(version), |_tx, c| {
        let from = v::instance_type(c.settings.instance_type(), "instanceType")?;
        if from.name == to.name {
            return Err(ApiError::bad_request(
                "targetInstanceType",
                format!("The cluster's brokers are already {}.", to.name),
            ));
        }
        if to.max_partitions < from.max_partitions {
            check_partition_limit(
                &counts,
                to,
                "targetInstanceType",
                &format!("Moving to the smaller broker size {}", to.name),
            )?;
        }
        if from.family == v::Family::M7g && to.family == v::Family::T3 {
            return Err(ApiError::bad_request(
                "targetInstanceType",
                "M7g brokers can be changed to M5 sizes only.",
            ));
        }
        v::check_family_version(to, &c.settings.kafka_version, "targetInstanceType")?;
        if c.settings.storage_mode == "TIERED" && to.family == v::Family::T3 {
            return Err(ApiError::bad_request(
                "targetInstanceType",
                "Tiered storage is not available for kafka.t3.small brokers.",
            ));
        }
        if let Some(pt) = c
            .settings
            .ebs()
            .and_then(|e| e.provisioned_throughput.as_ref())
        {
            v::provisioned_throughput(pt, to, c.settings.volume_size())
                .map_err(|e| e.with_parameter("targetInstanceType"))?;
        }
        let mut target = c.settings.clone();
        target.broker_node_group_info.instance_type = Some(to.name.to_string());
        Ok(updating(
            "UPDATE_BROKER_TYPE",
            "UPDATE_BROKER_TYPE",
            MutableClusterInfo {
                instance_type: Some(from.name.to_string()),
                ..Default::default()
            },
            MutableClusterInfo {
                instance_type: Some(to.name.to_string()),
                ..Default::default()
            },
            rolling(target),
        ))
    })
}

/// `targetBrokerEBSVolumeInfo`: a list per the API model; the guide's
/// example passes a single object, which is accepted too.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum VolumeInfoList {
    /// The modelled list form.
    Many(Vec<BrokerEbsVolumeInfo>),
    /// The guide's single-object form.
    One(BrokerEbsVolumeInfo),
}

/// Body of UpdateBrokerStorage.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateBrokerStorageRequest {
    /// Optimistic-concurrency token.
    pub current_version: Option<String>,
    /// The volume change.
    #[serde(rename = "targetBrokerEBSVolumeInfo")]
    pub target_broker_ebs_volume_info: Option<VolumeInfoList>,
}

/// The volume size / throughput change shared by UpdateBrokerStorage and
/// UpdateStorage: larger only, at most 16384 GiB, not within the cool-down
/// of the previous scaling.
fn storage_target(
    state: &AppState,
    c: &ClusterRecord,
    volume: Option<i64>,
    throughput: Option<&ProvisionedThroughput>,
    volume_parameter: &str,
) -> Result<ClusterSettings, ApiError> {
    let mut target = c.settings.clone();
    let itype = v::instance_type(c.settings.instance_type(), "instanceType")?;
    let mut ebs = target.ebs().cloned().unwrap_or_default();
    if let Some(size) = volume {
        let current = c.settings.volume_size();
        if size <= current {
            return Err(ApiError::bad_request(
                volume_parameter,
                format!("Broker storage can only be increased: the volumes are {current} GiB, {size} GiB requested."),
            ));
        }
        v::volume_size(size, volume_parameter)?;
        let cooldown = state.config.timings.storage_scaling_cooldown;
        if let Some(last) = c.last_storage_scaling_ms {
            let elapsed = now_millis() - last;
            if elapsed < cooldown.as_millis() as i64 {
                return Err(ApiError::bad_request(
                    volume_parameter,
                    format!(
                        "Broker storage was scaled {}s ago; wait at least {}s between storage scaling operations.",
                        elapsed / 1000,
                        cooldown.as_secs()
                    ),
                ));
            }
        }
        ebs.volume_size = Some(size);
    }
    if let Some(pt) = throughput {
        v::provisioned_throughput(pt, itype, ebs.volume_size.unwrap_or(1000))?;
        ebs.provisioned_throughput = Some(pt.clone());
    }
    target.broker_node_group_info.storage_info = Some(crate::wire::StorageInfo {
        ebs_storage_info: Some(ebs),
    });
    Ok(target)
}

/// UpdateBrokerStorage: `PUT /v1/clusters/{clusterArn}/nodes/storage`.
/// `kafkaBrokerNodeId` must be `All`: MSK scales every broker together.
pub async fn update_broker_storage(
    State(state): State<AppState>,
    Path(arn): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: UpdateBrokerStorageRequest = parse_body(&body)?;
    let version = v::required(req.current_version.as_ref(), "currentVersion")?;
    let list = match v::required(
        req.target_broker_ebs_volume_info.as_ref(),
        "targetBrokerEBSVolumeInfo",
    )? {
        VolumeInfoList::Many(l) => l.clone(),
        VolumeInfoList::One(one) => vec![one.clone()],
    };
    let [info] = list.as_slice() else {
        return Err(ApiError::bad_request(
            "targetBrokerEBSVolumeInfo",
            "Specify exactly one volume update, for KafkaBrokerNodeId All.",
        ));
    };
    if info.kafka_broker_node_id.as_deref() != Some("All") {
        return Err(ApiError::bad_request(
            "kafkaBrokerNodeId",
            "kafkaBrokerNodeId must be All: storage is updated for all brokers together.",
        ));
    }
    if info.volume_size_gb.is_none() && info.provisioned_throughput.is_none() {
        return Err(ApiError::bad_request(
            "volumeSizeGB",
            "Specify volumeSizeGB or provisionedThroughput.",
        ));
    }
    let info = info.clone();
    begin(&state, &arn, Some(version), |_tx, c| {
        let target = storage_target(
            &state,
            c,
            info.volume_size_gb,
            info.provisioned_throughput.as_ref(),
            "volumeSizeGB",
        )?;
        Ok(updating(
            "UPDATE_BROKER_STORAGE",
            "UPDATE_BROKER_STORAGE",
            MutableClusterInfo {
                broker_ebs_volume_info: Some(vec![BrokerEbsVolumeInfo {
                    kafka_broker_node_id: Some("All".into()),
                    volume_size_gb: Some(c.settings.volume_size()),
                    provisioned_throughput: c
                        .settings
                        .ebs()
                        .and_then(|e| e.provisioned_throughput.clone()),
                }]),
                ..Default::default()
            },
            MutableClusterInfo {
                broker_ebs_volume_info: Some(vec![info.clone()]),
                ..Default::default()
            },
            settings_only(target, info.volume_size_gb.is_some()),
        ))
    })
}

/// Body of UpdateStorage.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStorageRequest {
    /// Optimistic-concurrency token.
    pub current_version: Option<String>,
    /// Provisioned throughput on or off.
    pub provisioned_throughput: Option<ProvisionedThroughput>,
    /// `LOCAL` or `TIERED`.
    pub storage_mode: Option<String>,
    /// New volume size.
    #[serde(rename = "volumeSizeGB")]
    pub volume_size_gb: Option<i64>,
}

/// UpdateStorage: `PUT /v1/clusters/{clusterArn}/storage`: volume size,
/// provisioned throughput, or the switch to tiered storage (which needs a
/// tiered-capable version and `log.cleanup.policy=delete`).
pub async fn update_storage(
    State(state): State<AppState>,
    Path(arn): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: UpdateStorageRequest = parse_body(&body)?;
    let version = v::required(req.current_version.as_ref(), "currentVersion")?;
    if req.provisioned_throughput.is_none()
        && req.storage_mode.is_none()
        && req.volume_size_gb.is_none()
    {
        return Err(ApiError::bad_request(
            "storageMode",
            "Specify at least one of provisionedThroughput, storageMode and volumeSizeGB.",
        ));
    }
    begin(&state, &arn, Some(version), |tx, c| {
        let mut target = storage_target(
            &state,
            c,
            req.volume_size_gb,
            req.provisioned_throughput.as_ref(),
            "volumeSizeGB",
        )?;
        let mut source = MutableClusterInfo::default();
        let mut shown = MutableClusterInfo::default();
        if let Some(mode) = &req.storage_mode {
            let itype = v::instance_type(c.settings.instance_type(), "instanceType")?;
            v::storage_mode(mode, itype, &c.settings.kafka_version)?;
            if c.settings.storage_mode == "TIERED" && mode == "LOCAL" {
                return Err(ApiError::bad_request(
                    "storageMode",
                    "Tiered storage can't be turned off for a whole cluster; disable it per topic.",
                ));
            }
            if mode == "TIERED" {
                let policy =
                    crate::configurations::effective_property(tx, c, "log.cleanup.policy")?;
                if policy.as_deref().is_some_and(|p| p.trim() != "delete") {
                    return Err(ApiError::bad_request(
                        "storageMode",
                        "Tiered storage requires the cluster's log.cleanup.policy to be delete.",
                    ));
                }
            }
            target.storage_mode = mode.clone();
            source.storage_mode = Some(c.settings.storage_mode.clone());
            shown.storage_mode = Some(mode.clone());
        }
        if req.volume_size_gb.is_some() || req.provisioned_throughput.is_some() {
            source.broker_ebs_volume_info = Some(vec![BrokerEbsVolumeInfo {
                kafka_broker_node_id: Some("All".into()),
                volume_size_gb: Some(c.settings.volume_size()),
                provisioned_throughput: c
                    .settings
                    .ebs()
                    .and_then(|e| e.provisioned_throughput.clone()),
            }]);
            shown.broker_ebs_volume_info = Some(vec![BrokerEbsVolumeInfo {
                kafka_broker_node_id: Some("All".into()),
                volume_size_gb: req.volume_size_gb,
                provisioned_throughput: req.provisioned_throughput.clone(),
            }]);
        }
        Ok(updating(
            "UPDATE_STORAGE",
            "UPDATE_BROKER_STORAGE",
            source,
            shown,
            settings_only(target, req.volume_size_gb.is_some()),
        ))
    })
}

/// Body of UpdateClusterKafkaVersion.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateClusterKafkaVersionRequest {
    /// A configuration to switch to at the same time.
    pub configuration_info: Option<ConfigurationInfo>,
    /// Optimistic-concurrency token.
    pub current_version: Option<String>,
    /// The new version.
    pub target_kafka_version: Option<String>,
}

/// UpdateClusterKafkaVersion: `PUT /v1/clusters/{clusterArn}/version`:
/// upgrade only, to a version GetCompatibleKafkaVersions lists, as a rolling
/// restart in three steps.
pub async fn update_cluster_kafka_version(
    State(state): State<AppState>,
    Path(arn): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: UpdateClusterKafkaVersionRequest = parse_body(&body)?;
    let version = v::required(req.current_version.as_ref(), "currentVersion")?;
    let target_version =
        v::required(req.target_kafka_version.as_ref(), "targetKafkaVersion")?.clone();
    if let Some(ci) = &req.configuration_info {
        v::required(ci.arn.as_ref(), "arn")?;
        v::required(ci.revision.as_ref(), "revision")?;
    }
    let counts = partition_counts(&state, &arn).await;
    begin(&state, &arn, Some(version), |tx, c| {
        let source = &c.settings.kafka_version;
        if !versions::compatible_targets(source).contains(&target_version.as_str()) {
            return Err(ApiError::bad_request(
                "targetKafkaVersion",
                format!(
                    "The cluster can't be updated from Apache Kafka {source} to {target_version}. Compatible versions: {}.",
                    versions::compatible_targets(source).join(", ")
                ),
            ));
        }
        let itype = v::instance_type(c.settings.instance_type(), "instanceType")?;
        v::check_family_version(itype, &target_version, "targetKafkaVersion")?;
        check_partition_limit(
            &counts,
            itype,
            "targetKafkaVersion",
            "Updating the Apache Kafka version",
        )?;
        if c.settings.storage_mode == "TIERED"
            && !versions::supports_tiered_storage(&target_version)
        {
            return Err(ApiError::bad_request(
                "targetKafkaVersion",
                "A tiered-storage cluster can only move to a tiered-capable version.",
            ));
        }
        let mut target = c.settings.clone();
        target.kafka_version = target_version.clone();
        if let Some(ci) = &req.configuration_info {
            crate::configurations::check_usable(tx, ci, &target_version, "configurationInfo")?;
            target.configuration_info = Some(ci.clone());
        }
        Ok(PlannedOperation {
            operation_type: "UPDATE_CLUSTER_KAFKA_VERSION",
            work_steps: vec!["UPDATE_APACHE_KAFKA_BINARIES"],
            source: MutableClusterInfo {
                kafka_version: Some(source.clone()),
                configuration_info: req
                    .configuration_info
                    .as_ref()
                    .and(c.settings.configuration_info.clone()),
                ..Default::default()
            },
            target: MutableClusterInfo {
                kafka_version: Some(target_version.clone()),
                configuration_info: req.configuration_info.clone(),
                ..Default::default()
            },
            plan: rolling(target),
            cluster_state: ClusterState::Updating,
        })
    })
}

/// Body of UpdateMonitoring.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateMonitoringRequest {
    /// Optimistic-concurrency token.
    pub current_version: Option<String>,
    /// CloudWatch level.
    pub enhanced_monitoring: Option<String>,
    /// Prometheus exporters.
    pub open_monitoring: Option<OpenMonitoring>,
    /// Broker logs.
    pub logging_info: Option<LoggingInfo>,
}

/// UpdateMonitoring: `PUT /v1/clusters/{clusterArn}/monitoring`.
pub async fn update_monitoring(
    State(state): State<AppState>,
    Path(arn): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: UpdateMonitoringRequest = parse_body(&body)?;
    let version = v::required(req.current_version.as_ref(), "currentVersion")?;
    if req.enhanced_monitoring.is_none()
        && req.open_monitoring.is_none()
        && req.logging_info.is_none()
    {
        return Err(ApiError::bad_request(
            "enhancedMonitoring",
            "Specify at least one of enhancedMonitoring, openMonitoring and loggingInfo.",
        ));
    }
    if let Some(level) = &req.enhanced_monitoring {
        v::enhanced_monitoring(level)?;
    }
    if let Some(om) = &req.open_monitoring {
        v::open_monitoring(om)?;
    }
    if let Some(li) = &req.logging_info {
        v::logging_info(li)?;
    }
    begin(&state, &arn, Some(version), |_tx, c| {
        let mut target = c.settings.clone();
        let mut source = MutableClusterInfo::default();
        let mut shown = MutableClusterInfo::default();
        if let Some(level) = &req.enhanced_monitoring {
            source.enhanced_monitoring = Some(c.settings.enhanced_monitoring.clone());
            shown.enhanced_monitoring = Some(level.clone());
            target.enhanced_monitoring = level.clone();
        }
        if let Some(om) = &req.open_monitoring {
            source.open_monitoring = Some(c.settings.open_monitoring.clone());
            let om = normalize_open_monitoring(om);
            shown.open_monitoring = Some(om.clone());
            target.open_monitoring = om;
        }
        if let Some(li) = &req.logging_info {
            source.logging_info = c.settings.logging_info.clone();
            shown.logging_info = Some(li.clone());
            target.logging_info = Some(li.clone());
        }
        Ok(updating(
            "UPDATE_MONITORING",
            "UPDATE_MONITORING",
            source,
            shown,
            settings_only(target, false),
        ))
    })
}

/// Body of UpdateSecurity.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateSecurityRequest {
    /// New authentication settings.
    pub client_authentication: Option<ClientAuthentication>,
    /// Optimistic-concurrency token.
    pub current_version: Option<String>,
    /// New encryption settings (only client-broker may change).
    pub encryption_info: Option<EncryptionInfo>,
}

/// UpdateSecurity: `PATCH /v1/clusters/{clusterArn}/security`. Only the
/// client-broker encryption, the authentication methods and the mTLS CAs
/// may change, never in-cluster encryption or the at-rest key; the result
/// must satisfy the security matrix. Restating the current settings is
/// accepted and changes nothing.
pub async fn update_security(
    State(state): State<AppState>,
    Path(arn): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: UpdateSecurityRequest = parse_body(&body)?;
    let version = v::required(req.current_version.as_ref(), "currentVersion")?;
    if req.client_authentication.is_none() && req.encryption_info.is_none() {
        return Err(ApiError::bad_request(
            "clientAuthentication",
            "Specify clientAuthentication, encryptionInfo or both.",
        ));
    }
    begin(&state, &arn, Some(version), |_tx, c| {
        let mut target = c.settings.clone();
        if let Some(enc) = &req.encryption_info {
            let current = c.settings.encryption_info.clone();
            let cur_transit = current.encryption_in_transit.clone().unwrap_or_default();
            if enc.encryption_at_rest.is_some()
                && enc.encryption_at_rest != current.encryption_at_rest
            {
                return Err(ApiError::bad_request(
                    "encryptionAtRest",
                    "Encryption at rest can't be changed after the cluster is created.",
                ));
            }
            let mut transit = cur_transit.clone();
            if let Some(t) = &enc.encryption_in_transit {
                if t.in_cluster.is_some() && t.in_cluster != cur_transit.in_cluster {
                    return Err(ApiError::bad_request(
                        "inCluster",
                        "Encryption between brokers (inCluster) can't be changed after the cluster is created.",
                    ));
                }
                if let Some(cb) = &t.client_broker {
                    transit.client_broker = Some(cb.clone());
                }
            }
            target.encryption_info.encryption_in_transit = Some(transit);
        }
        if let Some(ca) = &req.client_authentication {
            target.client_authentication =
                merge_client_authentication(&c.settings.client_authentication, ca);
        }
        v::security(&target.client_authentication, &target.encryption_info)?;
        let changed = target.client_listeners() != c.settings.client_listeners();
        let plan = if changed {
            rolling(target)
        } else {
            settings_only(target, false)
        };
        Ok(updating(
            "UPDATE_SECURITY",
            "UPDATE_BROKER_SECURITY",
            MutableClusterInfo {
                client_authentication: req
                    .client_authentication
                    .as_ref()
                    .map(|_| c.settings.client_authentication.clone()),
                encryption_info: req
                    .encryption_info
                    .as_ref()
                    .map(|_| c.settings.encryption_info.clone()),
                ..Default::default()
            },
            MutableClusterInfo {
                client_authentication: req.client_authentication.clone(),
                encryption_info: req.encryption_info.clone(),
                ..Default::default()
            },
            plan,
        ))
    })
}

/// The methods named in `change` replace the current ones; the rest stay.
fn merge_client_authentication(
    current: &ClientAuthentication,
    change: &ClientAuthentication,
) -> ClientAuthentication {
    let mut merged = current.clone();
    if let Some(sasl) = &change.sasl {
        let mut s = merged.sasl.clone().unwrap_or_default();
        if sasl.scram.is_some() {
            s.scram = sasl.scram.clone();
        }
        if sasl.iam.is_some() {
            s.iam = sasl.iam.clone();
        }
        merged.sasl = Some(s);
    }
    if let Some(tls) = &change.tls {
        let mut t = merged.tls.clone().unwrap_or_default();
        if tls.enabled.is_some() {
            t.enabled = tls.enabled;
        }
        if tls.certificate_authority_arn_list.is_some() {
            t.certificate_authority_arn_list = tls.certificate_authority_arn_list.clone();
        }
        merged.tls = Some(t);
    }
    if change.unauthenticated.is_some() {
        merged.unauthenticated = change.unauthenticated.clone();
    }
    normalize_client_authentication(Some(&merged))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_limits_of_the_guide() {
        let t3 = v::instance_type("kafka.t3.small", "x").expect("t3");
        let m5 = v::instance_type("kafka.m5.2xlarge", "x").expect("m5");
        let counts: HashMap<i32, usize> = [(1, 300), (2, 301), (3, 2000)].into_iter().collect();
        let err = check_partition_limit(&counts, t3, "configurationInfo", "Updating")
            .expect_err("over 300");
        assert_eq!(err.invalid_parameter.as_deref(), Some("configurationInfo"));
        assert!(
            err.message.contains("Broker 2 hosts 301 partitions"),
            "{}",
            err.message
        );
        assert!(check_partition_limit(&counts, m5, "x", "Updating").is_ok());
        let at_limit: HashMap<i32, usize> = [(1, 300)].into_iter().collect();
        assert!(check_partition_limit(&at_limit, t3, "x", "Updating").is_ok());
    }
}
