//! Broker nodes: ListNodes (the brokers, their zones, subnets and
//! endpoints) and RebootBroker (one broker per call, REBOOT_NODE).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{paginate, parse_body, AppState, QueryParams};
use crate::clusters::updates::{begin, PlannedOperation};
use crate::clusters::validation::required;
use crate::clusters::ClusterState;
use crate::error::ApiError;
use crate::operations::OperationPlan;
use crate::wire::MutableClusterInfo;

/// ListNodes: `GET /v1/clusters/{clusterArn}/nodes`. Endpoints are bare
/// host names, as on MSK; each broker's ports are in the bootstrap strings.
pub async fn list_nodes(
    State(state): State<AppState>,
    Path(arn): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = QueryParams::parse(query.as_deref());
    let c = state.cluster(&arn, "clusterArn")?;
    let mut brokers = c.brokers.clone();
    brokers.sort_by_key(|b| b.broker_id);
    let nodes: Vec<Value> = brokers
        .iter()
        .map(|b| {
            json!({
                "addedToClusterTime": b.added_time,
                "instanceType": c.settings.instance_type(),
                "nodeARN": state.scope.broker(&c.name, &c.id, &b.node_uuid),
                "nodeType": "BROKER",
                "brokerNodeInfo": {
                    "attachedENIId": format!("eni-{}", &b.node_uuid.replace('-', "")[..17]),
                    "brokerId": b.broker_id as f64,
                    "clientSubnet": b.client_subnet,
                    "clientVpcIpAddress": state.config.broker_host,
                    "currentBrokerSoftwareInfo": {
                        "kafkaVersion": c.settings.kafka_version,
                        "configurationArn": c.settings.configuration_info.as_ref().and_then(|ci| ci.arn.clone()),
                        "configurationRevision": c.settings.configuration_info.as_ref().and_then(|ci| ci.revision),
                    },
                    "endpoints": [state.config.broker_host],
                },
            })
        })
        .collect();
    let (page, next) = paginate(nodes, &query)?;
    let mut out = json!({ "nodeInfoList": page });
    if let Some(next) = next {
        out["nextToken"] = next.into();
    }
    Ok(Json(out))
}

/// Body of RebootBroker.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RebootBrokerRequest {
    /// Exactly one broker id.
    pub broker_ids: Option<Vec<String>>,
}

/// RebootBroker: `PUT /v1/clusters/{clusterArn}/reboot-broker`: one broker
/// per call, on an ACTIVE cluster, which is REBOOTING_BROKER meanwhile.
pub async fn reboot_broker(
    State(state): State<AppState>,
    Path(arn): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: RebootBrokerRequest = parse_body(&body)?;
    let ids = required(req.broker_ids.as_ref(), "brokerIds")?;
    let [id] = ids.as_slice() else {
        return Err(ApiError::bad_request(
            "brokerIds",
            format!(
                "Specify exactly one broker id to reboot; {} given.",
                ids.len()
            ),
        ));
    };
    let broker_id: i32 = id
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request("brokerIds", format!("{id} is not a broker id.")))?;
    begin(&state, &arn, None, |_tx, c| {
        if !c.brokers.iter().any(|b| b.broker_id == broker_id) {
            return Err(ApiError::bad_request(
                "brokerIds",
                format!(
                    "The cluster has no broker {broker_id}. Call ListNodes for its broker ids."
                ),
            ));
        }
        Ok(PlannedOperation {
            operation_type: "REBOOT_NODE",
            work_steps: vec!["REBOOT_BROKER"],
            source: MutableClusterInfo::default(),
            target: MutableClusterInfo::default(),
            plan: OperationPlan::Reboot { broker_id },
            cluster_state: ClusterState::RebootingBroker,
        })
    })
}
