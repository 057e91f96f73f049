//! Cluster operations: the asynchronous work every update starts, as
//! DescribeClusterOperation(V2) and ListClusterOperations(V2) show it
//! (state, type, steps, source and target settings, error info).

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::{paginate, AppState, QueryParams};
use crate::arn::{classify, ResourceKind};
use crate::clusters::{BrokerRecord, ClusterSettings};
use crate::error::ApiError;
use crate::wire::MutableClusterInfo;

/// Operation states as MSK shows them.
pub mod states {
    /// Accepted, not started.
    pub const PENDING: &str = "PENDING";
    /// Running.
    pub const UPDATE_IN_PROGRESS: &str = "UPDATE_IN_PROGRESS";
    /// Done.
    pub const UPDATE_COMPLETE: &str = "UPDATE_COMPLETE";
    /// Failed; see the error info.
    pub const UPDATE_FAILED: &str = "UPDATE_FAILED";
    /// A reboot is running.
    pub const REBOOT_IN_PROGRESS: &str = "REBOOT_IN_PROGRESS";
    /// A reboot is done.
    pub const REBOOT_COMPLETE: &str = "REBOOT_COMPLETE";
}

/// Step statuses.
pub mod step_status {
    /// Not started.
    pub const PENDING: &str = "PENDING";
    /// Running.
    pub const IN_PROGRESS: &str = "IN_PROGRESS";
    /// Done.
    pub const COMPLETED: &str = "COMPLETED";
    /// Failed.
    pub const FAILED: &str = "FAILED";
}

/// One step of an operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationStep {
    /// e.g. `UPDATE_APACHE_KAFKA_BINARIES`.
    pub step_name: String,
    /// PENDING, IN_PROGRESS, COMPLETED or FAILED.
    pub step_status: String,
}

/// `ErrorInfo` of a failed operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorInfo {
    /// A short code.
    pub error_code: String,
    /// What went wrong.
    pub error_string: String,
}

/// What the engine does to carry an operation out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum OperationPlan {
    /// Restart every broker, one at a time, with the target settings.
    RollingRestart {
        /// The settings after the operation.
        target: Box<ClusterSettings>,
    },
    /// Record the target settings (monitoring, storage). Brokers need no
    /// restart, except for a new volume size: they roll onto the storage
    /// cap it sets.
    SettingsOnly {
        /// The settings after the operation.
        target: Box<ClusterSettings>,
        /// Whether this is a storage scaling (starts the cool-down).
        storage_scaling: bool,
    },
    /// Start new brokers.
    AddBrokers {
        /// The settings after the operation.
        target: Box<ClusterSettings>,
        /// The brokers to add.
        brokers: Vec<BrokerRecord>,
    },
    /// Stop and remove brokers.
    RemoveBrokers {
        /// The settings after the operation.
        target: Box<ClusterSettings>,
        /// Their ids.
        broker_ids: Vec<i32>,
    },
    /// Restart one broker with unchanged settings.
    Reboot {
        /// The broker.
        broker_id: i32,
    },
}

/// A cluster operation as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationRecord {
    /// Its ARN.
    pub operation_arn: String,
    /// Its cluster.
    pub cluster_arn: String,
    /// The request id that started it.
    pub client_request_id: String,
    /// When it started.
    pub creation_time: String,
    /// When it ended.
    pub end_time: Option<String>,
    /// See [`states`].
    pub operation_state: String,
    /// e.g. `UPDATE_BROKER_TYPE`.
    pub operation_type: String,
    /// Its steps, in order.
    pub operation_steps: Vec<OperationStep>,
    /// The settings before.
    pub source_cluster_info: MutableClusterInfo,
    /// The settings asked for.
    pub target_cluster_info: MutableClusterInfo,
    /// Why it failed.
    pub error_info: Option<ErrorInfo>,
    /// What the engine does.
    pub plan: OperationPlan,
}

impl OperationRecord {
    /// Whether it has ended.
    pub fn is_finished(&self) -> bool {
        self.end_time.is_some()
    }

    /// The v1 `ClusterOperationInfo`.
    pub fn info_v1(&self) -> Value {
        let mut v = json!({
            "operationArn": self.operation_arn,
            "clusterArn": self.cluster_arn,
            "clientRequestId": self.client_request_id,
            "creationTime": self.creation_time,
            "operationState": self.operation_state,
            "operationType": self.operation_type,
            "operationSteps": self.steps_json(),
            "sourceClusterInfo": self.source_cluster_info,
            "targetClusterInfo": self.target_cluster_info,
        });
        self.add_end(&mut v);
        v
    }

    fn steps_json(&self) -> Value {
        self.operation_steps
            .iter()
            .map(|s| json!({"stepName": s.step_name, "stepInfo": {"stepStatus": s.step_status}}))
            .collect()
    }

    fn add_end(&self, v: &mut Value) {
        if let Some(end) = &self.end_time {
            v["endTime"] = json!(end);
        }
        if let Some(e) = &self.error_info {
            v["errorInfo"] = json!(e);
        }
    }

    /// The v2 `ClusterOperationV2`.
    pub fn info_v2(&self) -> Value {
        let mut v = self.summary_v2();
        v["provisioned"] = json!({
            "operationSteps": self.steps_json(),
            "sourceClusterInfo": self.source_cluster_info,
            "targetClusterInfo": self.target_cluster_info,
        });
        if let Some(e) = &self.error_info {
            v["errorInfo"] = json!(e);
        }
        v
    }

    /// The v2 `ClusterOperationV2Summary`.
    pub fn summary_v2(&self) -> Value {
        let mut v = json!({
            "operationArn": self.operation_arn,
            "clusterArn": self.cluster_arn,
            "clusterType": "PROVISIONED",
            "startTime": self.creation_time,
            "operationState": self.operation_state,
            "operationType": self.operation_type,
        });
        if let Some(end) = &self.end_time {
            v["endTime"] = json!(end);
        }
        v
    }
}

fn operation(state: &AppState, arn: &str) -> Result<OperationRecord, ApiError> {
    if classify(&state.scope, arn, "clusterOperationArn")? != ResourceKind::ClusterOperation {
        return Err(ApiError::bad_request(
            "clusterOperationArn",
            format!("{arn} is not a cluster operation ARN."),
        ));
    }
    state
        .store
        .transaction(|tx| tx.operation(arn))?
        .ok_or_else(|| {
            ApiError::not_found(
                "clusterOperationArn",
                "The requested resource doesn't exist.",
            )
        })
}

/// DescribeClusterOperation: `GET /v1/operations/{clusterOperationArn}`.
pub async fn describe_cluster_operation(
    State(state): State<AppState>,
    Path(arn): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let op = operation(&state, &arn)?;
    Ok(Json(json!({ "clusterOperationInfo": op.info_v1() })))
}

/// DescribeClusterOperationV2: `GET /api/v2/operations/{clusterOperationArn}`.
pub async fn describe_cluster_operation_v2(
    State(state): State<AppState>,
    Path(arn): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let op = operation(&state, &arn)?;
    Ok(Json(json!({ "clusterOperationInfo": op.info_v2() })))
}

fn list(state: &AppState, arn: &str) -> Result<Vec<OperationRecord>, ApiError> {
    state.cluster(arn, "clusterArn")?;
    state.store.transaction(|tx| tx.operations_of(arn))
}

/// ListClusterOperations: `GET /v1/clusters/{clusterArn}/operations`.
pub async fn list_cluster_operations(
    State(state): State<AppState>,
    Path(arn): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = QueryParams::parse(query.as_deref());
    let items: Vec<Value> = list(&state, &arn)?
        .iter()
        .map(OperationRecord::info_v1)
        .collect();
    let (page, next) = paginate(items, &query)?;
    let mut out = json!({ "clusterOperationInfoList": page });
    if let Some(next) = next {
        out["nextToken"] = next.into();
    }
    Ok(Json(out))
}

/// ListClusterOperationsV2: `GET /api/v2/clusters/{clusterArn}/operations`.
pub async fn list_cluster_operations_v2(
    State(state): State<AppState>,
    Path(arn): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = QueryParams::parse(query.as_deref());
    let items: Vec<Value> = list(&state, &arn)?
        .iter()
        .map(OperationRecord::summary_v2)
        .collect();
    let (page, next) = paginate(items, &query)?;
    let mut out = json!({ "clusterOperationInfoList": page });
    if let Some(next) = next {
        out["nextToken"] = next.into();
    }
    Ok(Json(out))
}
