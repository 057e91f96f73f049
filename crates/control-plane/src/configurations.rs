//! MSK configurations: named, revisioned `server.properties` bodies that
//! clusters run with. CreateConfiguration, UpdateConfiguration (a new
//! revision), DescribeConfiguration, DescribeConfigurationRevision,
//! ListConfigurations, ListConfigurationRevisions and DeleteConfiguration,
//! with the guide's rules: the name pattern, the property allow-list and
//! value ranges (checked by `millrace-config`), 100 configurations per
//! account, 50 revisions per configuration, and no deletion while a cluster
//! uses it. The body is stored byte for byte and answered back in base64.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::{paginate, parse_body, AppState, QueryParams};
use crate::arn::{classify, new_resource_id, ResourceKind};
use crate::clusters::validation::required;
use crate::clusters::ClusterRecord;
use crate::error::ApiError;
use crate::store::StoreTx;
use crate::timestamps::now_iso;
use crate::wire::{ConfigurationInfo, Tags};

/// Configurations per account (MSK quota).
pub const MAX_CONFIGURATIONS: usize = 100;
/// Revisions per configuration (MSK quota).
pub const MAX_REVISIONS: usize = 50;

/// One revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRecord {
    /// From 1.
    pub revision: i64,
    /// When it was made.
    pub creation_time: String,
    /// Its description.
    pub description: Option<String>,
    /// The body exactly as received, base64.
    pub server_properties: String,
}

/// A configuration as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationRecord {
    /// Its ARN.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// Description of the configuration (its first revision's).
    pub description: String,
    /// Kafka versions it may be used with (empty: any).
    pub kafka_versions: Vec<String>,
    /// Creation time.
    pub creation_time: String,
    /// ACTIVE, DELETING or DELETE_FAILED.
    pub state: String,
    /// Every revision, oldest first.
    pub revisions: Vec<RevisionRecord>,
    /// Tags.
    #[serde(default)]
    pub tags: Tags,
}

impl ConfigurationRecord {
    fn latest(&self) -> Option<&RevisionRecord> {
        self.revisions.last()
    }

    fn revision_summary(r: &RevisionRecord) -> Value {
        let mut v = json!({"creationTime": r.creation_time, "revision": r.revision});
        if let Some(d) = &r.description {
            v["description"] = json!(d);
        }
        v
    }

    /// The `Configuration` shape of Describe and List.
    pub fn info(&self) -> Value {
        json!({
            "arn": self.arn,
            "creationTime": self.creation_time,
            "description": self.description,
            "kafkaVersions": self.kafka_versions,
            "latestRevision": self.latest().map(Self::revision_summary),
            "name": self.name,
            "state": self.state,
        })
    }

    /// The decoded body of revision `revision`.
    pub fn properties_of(&self, revision: i64) -> Option<Vec<(String, String)>> {
        let r = self.revisions.iter().find(|r| r.revision == revision)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&r.server_properties)
            .ok()?;
        millrace_config::parse_properties(&String::from_utf8_lossy(&bytes)).ok()
    }
}

/// Decodes and validates a `serverProperties` blob; returns it re-encoded.
fn server_properties(blob: Option<&String>) -> Result<String, ApiError> {
    let blob = required(blob, "serverProperties")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob.trim())
        .map_err(|e| {
            ApiError::bad_request(
                "serverProperties",
                format!("serverProperties is not valid base64: {e}"),
            )
        })?;
    let text = String::from_utf8(bytes.clone()).map_err(|_| {
        ApiError::bad_request("serverProperties", "serverProperties must be UTF-8 text.")
    })?;
    millrace_config::validate_msk_configuration(&text)
        .map_err(|e| ApiError::bad_request("serverProperties", e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn configuration_name(name: Option<&String>) -> Result<String, ApiError> {
    let name = required(name, "name")?;
    let valid = name
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_alphanumeric() || (i > 0 && c == '-'));
    if name.is_empty() || !valid {
        return Err(ApiError::bad_request(
            "name",
            format!("The configuration name {name:?} is not valid: it must match ^[0-9A-Za-z][0-9A-Za-z-]{{0,}}$."),
        ));
    }
    Ok(name.clone())
}

fn lookup(state: &AppState, tx: &StoreTx<'_>, arn: &str) -> Result<ConfigurationRecord, ApiError> {
    if classify(&state.scope, arn, "arn")? != ResourceKind::Configuration {
        return Err(ApiError::bad_request(
            "arn",
            format!("{arn} is not a configuration ARN."),
        ));
    }
    tx.configuration(arn)?
        .ok_or_else(|| ApiError::not_found("arn", "The requested resource doesn't exist."))
}

/// Checks that a cluster on `kafka_version` may use configuration `ci`.
pub fn check_usable(
    tx: &StoreTx<'_>,
    ci: &ConfigurationInfo,
    kafka_version: &str,
    parameter: &str,
) -> Result<(), ApiError> {
    let arn = required(ci.arn.as_ref(), "arn")?;
    let revision = *required(ci.revision.as_ref(), "revision")?;
    let c = tx.configuration(arn)?.ok_or_else(|| {
        ApiError::bad_request(
            parameter,
            format!("The configuration {arn} does not exist."),
        )
    })?;
    if c.state != "ACTIVE" {
        return Err(ApiError::bad_request(
            parameter,
            format!("The configuration {arn} is {}.", c.state),
        ));
    }
    if !c.revisions.iter().any(|r| r.revision == revision) {
        return Err(ApiError::bad_request(
            "revision",
            format!("The configuration {arn} has no revision {revision}."),
        ));
    }
    if !c.kafka_versions.is_empty() && !c.kafka_versions.iter().any(|v| v == kafka_version) {
        return Err(ApiError::bad_request(
            parameter,
            format!(
                "The configuration {arn} supports Apache Kafka {}, not {kafka_version}.",
                c.kafka_versions.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The properties of configuration revision `ci` (empty when none).
pub fn revision_properties(
    tx: &StoreTx<'_>,
    ci: Option<&ConfigurationInfo>,
) -> Result<Vec<(String, String)>, ApiError> {
    let Some((arn, revision)) = ci.and_then(|c| Some((c.arn.as_ref()?, c.revision?))) else {
        return Ok(Vec::new());
    };
    Ok(tx
        .configuration(arn)?
        .and_then(|c| c.properties_of(revision))
        .unwrap_or_default())
}

/// The value the cluster's configuration gives `key`, if any.
pub fn effective_property(
    tx: &StoreTx<'_>,
    c: &ClusterRecord,
    key: &str,
) -> Result<Option<String>, ApiError> {
    Ok(
        revision_properties(tx, c.settings.configuration_info.as_ref())?
            .into_iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v),
    )
}

/// Body of CreateConfiguration.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateConfigurationRequest {
    /// Description.
    pub description: Option<String>,
    /// Kafka versions it applies to.
    pub kafka_versions: Option<Vec<String>>,
    /// Name.
    pub name: Option<String>,
    /// The body, base64.
    pub server_properties: Option<String>,
}

/// CreateConfiguration: `POST /v1/configurations`.
pub async fn create_configuration(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: CreateConfigurationRequest = parse_body(&body)?;
    let name = configuration_name(req.name.as_ref())?;
    let properties = server_properties(req.server_properties.as_ref())?;
    let kafka_versions = req.kafka_versions.clone().unwrap_or_default();
    if let Some(bad) = kafka_versions
        .iter()
        .find(|v| crate::versions::find(v).is_none())
    {
        return Err(ApiError::bad_request(
            "kafkaVersions",
            format!("Unsupported Kafka version {bad}."),
        ));
    }
    let record = state.store.transaction(|tx| {
        if tx.configuration_name_taken(&name)? {
            return Err(ApiError::conflict(
                "name",
                format!("A configuration named {name} already exists."),
            ));
        }
        if tx.configurations()?.len() >= MAX_CONFIGURATIONS {
            return Err(ApiError::bad_request(
                "name",
                format!(
                    "The account already has the maximum of {MAX_CONFIGURATIONS} configurations."
                ),
            ));
        }
        let now = now_iso();
        let record = ConfigurationRecord {
            arn: state.scope.configuration(&name, &new_resource_id()),
            name: name.clone(),
            description: req.description.clone().unwrap_or_default(),
            kafka_versions: kafka_versions.clone(),
            creation_time: now.clone(),
            state: "ACTIVE".into(),
            revisions: vec![RevisionRecord {
                revision: 1,
                creation_time: now,
                description: req.description.clone(),
                server_properties: properties.clone(),
            }],
            tags: Tags::new(),
        };
        tx.put_configuration(&record)?;
        Ok(record)
    })?;
    Ok(Json(json!({
        "arn": record.arn,
        "creationTime": record.creation_time,
        "latestRevision": record.latest().map(ConfigurationRecord::revision_summary),
        "name": record.name,
        "state": record.state,
    })))
}

/// Body of UpdateConfiguration.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateConfigurationRequest {
    /// Description of the new revision.
    pub description: Option<String>,
    /// The body, base64.
    pub server_properties: Option<String>,
}

/// UpdateConfiguration: `PUT /v1/configurations/{arn}`: a new revision.
pub async fn update_configuration(
    State(state): State<AppState>,
    Path(arn): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: UpdateConfigurationRequest = parse_body(&body)?;
    let properties = server_properties(req.server_properties.as_ref())?;
    let record = state.store.transaction(|tx| {
        let mut c = lookup(&state, tx, &arn)?;
        if c.state != "ACTIVE" && c.state != "DELETE_FAILED" {
            return Err(ApiError::bad_request(
                "arn",
                format!("The configuration is {}.", c.state),
            ));
        }
        if c.revisions.len() >= MAX_REVISIONS {
            return Err(ApiError::bad_request(
                "arn",
                format!("The configuration already has the maximum of {MAX_REVISIONS} revisions."),
            ));
        }
        let next = c.latest().map_or(1, |r| r.revision + 1);
        c.revisions.push(RevisionRecord {
            revision: next,
            creation_time: now_iso(),
            description: req.description.clone(),
            server_properties: properties.clone(),
        });
        c.state = "ACTIVE".into();
        tx.put_configuration(&c)?;
        Ok(c)
    })?;
    Ok(Json(json!({
        "arn": record.arn,
        "latestRevision": record.latest().map(ConfigurationRecord::revision_summary),
    })))
}

/// DescribeConfiguration: `GET /v1/configurations/{arn}`.
pub async fn describe_configuration(
    State(state): State<AppState>,
    Path(arn): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = state.store.transaction(|tx| lookup(&state, tx, &arn))?;
    Ok(Json(c.info()))
}

/// DescribeConfigurationRevision: `GET /v1/configurations/{arn}/revisions/{revision}`.
pub async fn describe_configuration_revision(
    State(state): State<AppState>,
    Path((arn, revision)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let revision: i64 = revision.parse().map_err(|_| {
        ApiError::bad_request("revision", format!("{revision} is not a revision number."))
    })?;
    let c = state.store.transaction(|tx| lookup(&state, tx, &arn))?;
    let r = c
        .revisions
        .iter()
        .find(|r| r.revision == revision)
        .ok_or_else(|| ApiError::not_found("revision", "The requested resource doesn't exist."))?;
    let mut out = json!({
        "arn": c.arn,
        "creationTime": r.creation_time,
        "revision": r.revision,
        "serverProperties": r.server_properties,
    });
    if let Some(d) = &r.description {
        out["description"] = json!(d);
    }
    Ok(Json(out))
}

/// ListConfigurations: `GET /v1/configurations`.
pub async fn list_configurations(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = QueryParams::parse(query.as_deref());
    let all: Vec<Value> = state
        .store
        .transaction(|tx| tx.configurations())?
        .iter()
        .map(ConfigurationRecord::info)
        .collect();
    let (page, next) = paginate(all, &query)?;
    let mut out = json!({ "configurations": page });
    if let Some(next) = next {
        out["nextToken"] = next.into();
    }
    Ok(Json(out))
}

/// ListConfigurationRevisions: `GET /v1/configurations/{arn}/revisions`.
pub async fn list_configuration_revisions(
    State(state): State<AppState>,
    Path(arn): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = QueryParams::parse(query.as_deref());
    let c = state.store.transaction(|tx| lookup(&state, tx, &arn))?;
    let all: Vec<Value> = c
        .revisions
        .iter()
        .map(ConfigurationRecord::revision_summary)
        .collect();
    let (page, next) = paginate(all, &query)?;
    let mut out = json!({ "revisions": page });
    if let Some(next) = next {
        out["nextToken"] = next.into();
    }
    Ok(Json(out))
}

/// DeleteConfiguration: `DELETE /v1/configurations/{arn}`: refused while a
/// cluster uses the configuration (or an operation is moving one onto it).
pub async fn delete_configuration(
    State(state): State<AppState>,
    Path(arn): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = state.store.transaction(|tx| {
        let c = lookup(&state, tx, &arn)?;
        for cluster in tx.clusters()? {
            let uses = |ci: Option<&ConfigurationInfo>| {
                ci.and_then(|ci| ci.arn.as_deref()) == Some(arn.as_str())
            };
            let mut in_use = uses(cluster.settings.configuration_info.as_ref());
            if let Some(op_arn) = &cluster.active_operation_arn {
                if let Some(op) = tx.operation(op_arn)? {
                    in_use |= uses(op.target_cluster_info.configuration_info.as_ref());
                }
            }
            if in_use {
                return Err(ApiError::bad_request(
                    "arn",
                    format!(
                        "The configuration is in use by cluster {}; it can't be deleted.",
                        cluster.arn
                    ),
                ));
            }
        }
        tx.delete_configuration(&arn)?;
        Ok(c)
    })?;
    Ok(Json(json!({ "arn": c.arn, "state": "DELETING" })))
}
