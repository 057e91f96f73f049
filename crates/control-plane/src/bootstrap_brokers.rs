//! GetBootstrapBrokers: one comma-separated `host:port` string per listener
//! kind the cluster's security settings enable (plaintext, TLS, SASL/SCRAM,
//! SASL/IAM), listing up to three brokers from different zones, as MSK does.
//! A cluster without running brokers (CREATING, DELETING, FAILED) answers
//! 409 ConflictException.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use crate::api::AppState;
use crate::clusters::ClusterRecord;
use crate::error::ApiError;
use crate::provisioner::ListenerKind;

/// The brokers a bootstrap string lists: the first broker of each zone,
/// then more in id order, up to three.
fn bootstrap_brokers(c: &ClusterRecord) -> Vec<&crate::clusters::BrokerRecord> {
    let mut sorted: Vec<_> = c.brokers.iter().collect();
    sorted.sort_by_key(|b| b.broker_id);
    let mut picked: Vec<&crate::clusters::BrokerRecord> = Vec::new();
    for b in &sorted {
        if picked.len() < 3 && !picked.iter().any(|p| p.zone_id == b.zone_id) {
            picked.push(b);
        }
    }
    for b in &sorted {
        if picked.len() < 3 && !picked.iter().any(|p| p.broker_id == b.broker_id) {
            picked.push(b);
        }
    }
    picked
}

/// The wire member holding the string of each kind.
fn member(kind: ListenerKind) -> Option<&'static str> {
    match kind {
        ListenerKind::Plaintext => Some("bootstrapBrokerString"),
        ListenerKind::Tls => Some("bootstrapBrokerStringTls"),
        ListenerKind::SaslScram => Some("bootstrapBrokerStringSaslScram"),
        ListenerKind::SaslIam => Some("bootstrapBrokerStringSaslIam"),
        ListenerKind::Replication | ListenerKind::Controller => None,
    }
}

/// GetBootstrapBrokers: `GET /v1/clusters/{clusterArn}/bootstrap-brokers`.
pub async fn get_bootstrap_brokers(
    State(state): State<AppState>,
    Path(arn): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = state.cluster(&arn, "clusterArn")?;
    if !c.state.has_brokers() {
        return Err(ApiError::conflict(
            "clusterArn",
            format!(
                "The cluster is {}; its bootstrap brokers are available once it is ACTIVE.",
                c.state.as_str()
            ),
        ));
    }
    let brokers = bootstrap_brokers(&c);
    let mut out = serde_json::Map::new();
    for kind in c.settings.client_listeners() {
        if let Some(name) = member(kind) {
            let s = brokers
                .iter()
                .map(|b| format!("{}:{}", state.config.broker_host, b.ports.port(kind)))
                .collect::<Vec<_>>()
                .join(",");
            out.insert(name.into(), json!(s));
        }
    }
    Ok(Json(Value::Object(out)))
}
