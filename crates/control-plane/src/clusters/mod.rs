//! Provisioned clusters: their stored record, and CreateCluster(V2),
//! DescribeCluster(V2), ListClusters(V2) and DeleteCluster. Updates are in
//! [`updates`], the rules in [`validation`].

pub mod updates;
pub mod validation;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::{paginate, parse_body, AppState, QueryParams};
use crate::arn::new_resource_id;
use crate::error::ApiError;
use crate::provisioner::{BrokerPorts, ListenerKind};
use crate::tags::validate_new_tags;
use crate::timestamps::now_iso;
use crate::wire::{
    BrokerNodeGroupInfo, BrokerSoftwareInfo, ClientAuthentication, ConfigurationInfo,
    EbsStorageInfo, Enabled, EncryptionAtRest, EncryptionInTransit, EncryptionInfo, ExporterInfo,
    LoggingInfo, OpenMonitoring, Prometheus, Rebalancing, Sasl, StateInfo, StorageInfo, Tags, Tls,
};

/// The cluster states of the MSK Developer Guide ("Cluster states").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClusterState {
    /// Serving; every operation allowed.
    Active,
    /// Being created; nothing allowed but describe and delete.
    Creating,
    /// Being deleted.
    Deleting,
    /// Creation or deletion failed; only delete allowed.
    Failed,
    /// A broker is being replaced; no updates.
    Healing,
    /// Routine maintenance; no updates.
    Maintenance,
    /// A broker is rebooting; no updates.
    RebootingBroker,
    /// A user update runs; no further updates.
    Updating,
}

impl ClusterState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterState::Active => "ACTIVE",
            ClusterState::Creating => "CREATING",
            ClusterState::Deleting => "DELETING",
            ClusterState::Failed => "FAILED",
            ClusterState::Healing => "HEALING",
            ClusterState::Maintenance => "MAINTENANCE",
            ClusterState::RebootingBroker => "REBOOTING_BROKER",
            ClusterState::Updating => "UPDATING",
        }
    }

    /// Whether the cluster has running brokers to report.
    pub fn has_brokers(self) -> bool {
        !matches!(
            self,
            ClusterState::Creating | ClusterState::Deleting | ClusterState::Failed
        )
    }
}

/// The settings users choose (at creation and through updates), with MSK's
/// defaults filled in so that Describe answers them as MSK does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSettings {
    /// Broker size, subnets, security groups, storage.
    pub broker_node_group_info: BrokerNodeGroupInfo,
    /// Total brokers.
    pub number_of_broker_nodes: i64,
    /// Kafka version.
    pub kafka_version: String,
    /// The MSK configuration brokers run with, if not the default.
    pub configuration_info: Option<ConfigurationInfo>,
    /// Authentication methods.
    pub client_authentication: ClientAuthentication,
    /// Encryption at rest and in transit.
    pub encryption_info: EncryptionInfo,
    /// CloudWatch monitoring level.
    pub enhanced_monitoring: String,
    /// Prometheus exporters.
    pub open_monitoring: OpenMonitoring,
    /// Broker log delivery.
    pub logging_info: Option<LoggingInfo>,
    /// `LOCAL` or `TIERED`.
    pub storage_mode: String,
    /// Intelligent rebalancing (stored).
    pub rebalancing: Option<Rebalancing>,
}

impl ClusterSettings {
    /// The broker size.
    pub fn instance_type(&self) -> &str {
        self.broker_node_group_info
            .instance_type
            .as_deref()
            .unwrap_or("kafka.m5.large")
    }

    /// The EBS volume size per broker, GiB.
    pub fn volume_size(&self) -> i64 {
        self.ebs().and_then(|e| e.volume_size).unwrap_or(1000)
    }

    /// The EBS settings.
    pub fn ebs(&self) -> Option<&EbsStorageInfo> {
        self.broker_node_group_info
            .storage_info
            .as_ref()
            .and_then(|s| s.ebs_storage_info.as_ref())
    }

    /// The client subnets, one per zone.
    pub fn subnets(&self) -> Vec<String> {
        self.broker_node_group_info
            .client_subnets
            .clone()
            .unwrap_or_default()
    }

    /// The client listener kinds these settings enable, in bootstrap order.
    pub fn client_listeners(&self) -> Vec<ListenerKind> {
        let client_broker = self
            .encryption_info
            .encryption_in_transit
            .as_ref()
            .and_then(|t| t.client_broker.as_deref())
            .unwrap_or("TLS");
        let (scram, iam, tls, unauthenticated) =
            validation::auth_methods(&self.client_authentication);
        let mut kinds = Vec::new();
        if client_broker != "TLS" {
            kinds.push(ListenerKind::Plaintext);
        }
        if client_broker != "PLAINTEXT" && (tls || unauthenticated) {
            kinds.push(ListenerKind::Tls);
        }
        if scram {
            kinds.push(ListenerKind::SaslScram);
        }
        if iam {
            kinds.push(ListenerKind::SaslIam);
        }
        kinds
    }
}

/// One broker of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerRecord {
    /// MSK broker id = Kafka `node.id`.
    pub broker_id: i32,
    /// The subnet (and so zone) it was placed in.
    pub client_subnet: String,
    /// Its zone id (`broker.rack`).
    pub zone_id: String,
    /// Its ports, kept for life.
    pub ports: BrokerPorts,
    /// When it joined the cluster.
    pub added_time: String,
    /// The id in its node ARN.
    pub node_uuid: String,
}

/// A cluster as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRecord {
    /// Its ARN.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// The `{uuid}-{n}` part of its ARN.
    pub id: String,
    /// Creation time, ISO-8601.
    pub creation_time: String,
    /// Its state.
    pub state: ClusterState,
    /// Why it is in that state, when it matters (FAILED).
    pub state_info: Option<StateInfo>,
    /// The optimistic-concurrency token every update must present.
    pub current_version: String,
    /// The operation now running, if any.
    pub active_operation_arn: Option<String>,
    /// User settings.
    pub settings: ClusterSettings,
    /// Tags.
    pub tags: Tags,
    /// Its brokers.
    pub brokers: Vec<BrokerRecord>,
    /// When storage was last scaled (ms since epoch), for the cool-down.
    pub last_storage_scaling_ms: Option<i64>,
}

/// A fresh optimistic-concurrency token in MSK's style (`K3AEGXETSR30VB`).
pub fn new_current_version() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..13)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect();
    format!("K{tail}")
}

impl ClusterRecord {
    fn software_info(&self) -> BrokerSoftwareInfo {
        let ci = self.settings.configuration_info.as_ref();
        BrokerSoftwareInfo {
            configuration_arn: ci.and_then(|c| c.arn.clone()),
            configuration_revision: ci.and_then(|c| c.revision),
            kafka_version: Some(self.settings.kafka_version.clone()),
        }
    }

    fn provisioned_members(&self) -> serde_json::Map<String, Value> {
        let s = &self.settings;
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: Value| {
            if !v.is_null() {
                m.insert(k.to_string(), v);
            }
        };
        put("brokerNodeGroupInfo", json!(s.broker_node_group_info));
        put("numberOfBrokerNodes", json!(s.number_of_broker_nodes));
        put("currentBrokerSoftwareInfo", json!(self.software_info()));
        put("clientAuthentication", json!(s.client_authentication));
        put("encryptionInfo", json!(s.encryption_info));
        put("enhancedMonitoring", json!(s.enhanced_monitoring));
        put("openMonitoring", json!(s.open_monitoring));
        put("loggingInfo", json!(s.logging_info));
        put("storageMode", json!(s.storage_mode));
        put("rebalancing", json!(s.rebalancing));
        put("customerActionStatus", json!("NONE"));
        m
    }

    fn common_members(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("clusterArn".into(), json!(self.arn));
        m.insert("clusterName".into(), json!(self.name));
        m.insert("creationTime".into(), json!(self.creation_time));
        m.insert("currentVersion".into(), json!(self.current_version));
        m.insert("state".into(), json!(self.state.as_str()));
        if let Some(si) = &self.state_info {
            m.insert("stateInfo".into(), json!(si));
        }
        if let Some(op) = &self.active_operation_arn {
            m.insert("activeOperationArn".into(), json!(op));
        }
        m.insert("tags".into(), json!(self.tags));
        m
    }

    /// The flat `ClusterInfo` of DescribeCluster and ListClusters.
    pub fn cluster_info(&self) -> Value {
        let mut m = self.common_members();
        m.extend(self.provisioned_members());
        Value::Object(m)
    }

    /// The `Cluster` of DescribeClusterV2 and ListClustersV2.
    pub fn cluster_v2(&self) -> Value {
        let mut m = self.common_members();
        m.insert("clusterType".into(), json!("PROVISIONED"));
        m.insert(
            "provisioned".into(),
            Value::Object(self.provisioned_members()),
        );
        Value::Object(m)
    }

    /// The number of distinct zones its brokers are in.
    pub fn zone_count(&self) -> usize {
        self.settings.subnets().len()
    }
}

/// The body of CreateCluster, and of CreateClusterV2's `provisioned` (which
/// lacks the name and tags).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateClusterRequest {
    /// Broker layout.
    pub broker_node_group_info: Option<BrokerNodeGroupInfo>,
    /// Rebalancing.
    pub rebalancing: Option<Rebalancing>,
    /// Authentication.
    pub client_authentication: Option<ClientAuthentication>,
    /// Name (v1 only).
    pub cluster_name: Option<String>,
    /// Configuration.
    pub configuration_info: Option<ConfigurationInfo>,
    /// Encryption.
    pub encryption_info: Option<EncryptionInfo>,
    /// Monitoring level.
    pub enhanced_monitoring: Option<String>,
    /// Prometheus.
    pub open_monitoring: Option<OpenMonitoring>,
    /// Kafka version.
    pub kafka_version: Option<String>,
    /// Broker logs.
    pub logging_info: Option<LoggingInfo>,
    /// Broker count.
    pub number_of_broker_nodes: Option<i64>,
    /// Tags (v1 only).
    pub tags: Option<Tags>,
    /// Storage mode.
    pub storage_mode: Option<String>,
}

/// The body of CreateClusterV2.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateClusterV2Request {
    /// Name.
    pub cluster_name: Option<String>,
    /// Tags.
    pub tags: Option<Tags>,
    /// A provisioned cluster.
    pub provisioned: Option<CreateClusterRequest>,
    /// A serverless cluster (not offered).
    pub serverless: Option<Value>,
}

/// Validates a create request and fills in MSK's defaults. Checks that need
/// the store (name, configuration, account quota) come later.
fn settings_from_request(
    state: &AppState,
    req: &CreateClusterRequest,
) -> Result<(ClusterSettings, Vec<String>), ApiError> {
    use validation as v;
    let kafka_version = v::kafka_version_for_create(req.kafka_version.as_ref())?;
    let mut bngi = v::required(req.broker_node_group_info.as_ref(), "brokerNodeGroupInfo")?.clone();
    let type_name = v::required(bngi.instance_type.as_ref(), "instanceType")?;
    let itype = v::instance_type(type_name, "instanceType")?;
    v::check_family_version(itype, &kafka_version, "instanceType")?;
    let zones = v::client_subnets(&state.config, bngi.client_subnets.as_ref())?;
    let count = v::broker_count(
        req.number_of_broker_nodes.as_ref(),
        zones.len(),
        &kafka_version,
        "numberOfBrokerNodes",
    )?;
    match bngi.broker_az_distribution.as_deref() {
        None | Some("DEFAULT") => bngi.broker_az_distribution = Some("DEFAULT".into()),
        Some(other) => {
            return Err(ApiError::bad_request(
                "brokerAZDistribution",
                format!("brokerAZDistribution must be DEFAULT; {other} given."),
            ))
        }
    }
    if let Some(groups) = &bngi.security_groups {
        if groups.iter().any(|g| g.is_empty()) || groups.len() > 5 {
            return Err(ApiError::bad_request(
                "securityGroups",
                "Specify between 1 and 5 non-empty security group ids.",
            ));
        }
    }
    let mut ebs = bngi
        .storage_info
        .as_ref()
        .and_then(|s| s.ebs_storage_info.clone())
        .unwrap_or_default();
    let size = v::volume_size(ebs.volume_size.unwrap_or(1000), "volumeSize")?;
    ebs.volume_size = Some(size);
    if let Some(pt) = &ebs.provisioned_throughput {
        v::provisioned_throughput(pt, itype, size)?;
    }
    bngi.storage_info = Some(StorageInfo {
        ebs_storage_info: Some(ebs),
    });

    let storage_mode = req.storage_mode.clone().unwrap_or_else(|| "LOCAL".into());
    v::storage_mode(&storage_mode, itype, &kafka_version)?;
    let enhanced_monitoring = req
        .enhanced_monitoring
        .clone()
        .unwrap_or_else(|| "DEFAULT".into());
    v::enhanced_monitoring(&enhanced_monitoring)?;
    let open_monitoring = match &req.open_monitoring {
        Some(om) => {
            v::open_monitoring(om)?;
            normalize_open_monitoring(om)
        }
        None => normalize_open_monitoring(&OpenMonitoring::default()),
    };
    if let Some(li) = &req.logging_info {
        v::logging_info(li)?;
    }
    let client_authentication = normalize_client_authentication(req.client_authentication.as_ref());
    let encryption_info = normalize_encryption(state, req.encryption_info.as_ref());
    v::security(&client_authentication, &encryption_info)?;
    if let Some(r) = &req.rebalancing {
        if !matches!(r.status.as_deref(), Some("PAUSED") | Some("ACTIVE")) {
            return Err(ApiError::bad_request(
                "status",
                "rebalancing.status must be PAUSED or ACTIVE.",
            ));
        }
    }
    if let Some(ci) = &req.configuration_info {
        v::required(ci.arn.as_ref(), "arn")?;
        v::required(ci.revision.as_ref(), "revision")?;
    }
    Ok((
        ClusterSettings {
            broker_node_group_info: bngi,
            number_of_broker_nodes: count,
            kafka_version,
            configuration_info: req.configuration_info.clone(),
            client_authentication,
            encryption_info,
            enhanced_monitoring,
            open_monitoring,
            logging_info: req.logging_info.clone(),
            storage_mode,
            rebalancing: req.rebalancing.clone(),
        },
        zones,
    ))
}

/// Both exporters answered explicitly, as MSK describes them.
pub fn normalize_open_monitoring(om: &OpenMonitoring) -> OpenMonitoring {
    let p = om.prometheus.clone().unwrap_or_default();
    let on = |e: Option<ExporterInfo>| ExporterInfo {
        enabled_in_broker: Some(e.and_then(|e| e.enabled_in_broker) == Some(true)),
    };
    OpenMonitoring {
        prometheus: Some(Prometheus {
            jmx_exporter: Some(on(p.jmx_exporter)),
            node_exporter: Some(on(p.node_exporter)),
        }),
    }
}

/// Every method answered explicitly; no settings means unauthenticated.
pub fn normalize_client_authentication(ca: Option<&ClientAuthentication>) -> ClientAuthentication {
    let flag = |e: Option<&Enabled>, default: bool| {
        Some(Enabled {
            enabled: Some(e.and_then(|e| e.enabled).unwrap_or(default)),
        })
    };
    let given = ca.is_some();
    let ca = ca.cloned().unwrap_or_default();
    let sasl = ca.sasl.clone().unwrap_or_default();
    let tls = ca.tls.clone().unwrap_or_default();
    ClientAuthentication {
        sasl: Some(Sasl {
            scram: flag(sasl.scram.as_ref(), false),
            iam: flag(sasl.iam.as_ref(), false),
        }),
        tls: Some(Tls {
            certificate_authority_arn_list: Some(
                tls.certificate_authority_arn_list
                    .clone()
                    .unwrap_or_default(),
            ),
            enabled: Some(tls.enabled == Some(true)),
        }),
        unauthenticated: flag(ca.unauthenticated.as_ref(), !given),
    }
}

/// MSK's encryption defaults: an AWS-managed key at rest, TLS between
/// clients and brokers, and encryption between brokers.
fn normalize_encryption(state: &AppState, enc: Option<&EncryptionInfo>) -> EncryptionInfo {
    let enc = enc.cloned().unwrap_or_default();
    let transit = enc.encryption_in_transit.unwrap_or_default();
    EncryptionInfo {
        encryption_at_rest: Some(enc.encryption_at_rest.unwrap_or(EncryptionAtRest {
            data_volume_kms_key_id: Some(state.scope.default_kms_key()),
        })),
        encryption_in_transit: Some(EncryptionInTransit {
            client_broker: Some(transit.client_broker.unwrap_or_else(|| "TLS".into())),
            in_cluster: Some(transit.in_cluster.unwrap_or(true)),
        }),
    }
}

/// Stores a new cluster (CREATING) and starts its creation.
fn create(
    state: &AppState,
    name: Option<&String>,
    tags: Option<&Tags>,
    req: &CreateClusterRequest,
) -> Result<ClusterRecord, ApiError> {
    let name = validation::cluster_name(name)?;
    let tags = tags.cloned().unwrap_or_default();
    validate_new_tags(&Tags::new(), &tags)?;
    let (settings, zones) = settings_from_request(state, req)?;
    let subnets = settings.subnets();
    let record = state.store.transaction(|tx| {
        if tx.cluster_name_taken(&name)? {
            return Err(ApiError::conflict(
                "clusterName",
                format!("A cluster named {name} already exists."),
            ));
        }
        let existing: i64 = tx
            .clusters()?
            .iter()
            .map(|c| c.settings.number_of_broker_nodes)
            .sum();
        if existing + settings.number_of_broker_nodes > validation::MAX_BROKERS_PER_ACCOUNT {
            return Err(ApiError::bad_request(
                "numberOfBrokerNodes",
                format!(
                    "The account would have {} brokers; the limit is {}.",
                    existing + settings.number_of_broker_nodes,
                    validation::MAX_BROKERS_PER_ACCOUNT
                ),
            ));
        }
        if let Some(ci) = &settings.configuration_info {
            crate::configurations::check_usable(
                tx,
                ci,
                &settings.kafka_version,
                "configurationInfo",
            )?;
        }
        let id = new_resource_id();
        let now = now_iso();
        let mut taken = crate::engine::ports_in_use(tx)?;
        let mut brokers = Vec::new();
        for i in 0..settings.number_of_broker_nodes as usize {
            let ports = crate::engine::allocate_ports(&mut taken, &state.config.broker_ports)?;
            brokers.push(BrokerRecord {
                broker_id: i as i32 + 1,
                client_subnet: subnets[i % subnets.len()].clone(),
                zone_id: zones[i % zones.len()].clone(),
                ports,
                added_time: now.clone(),
                node_uuid: uuid::Uuid::new_v4().to_string(),
            });
        }
        let record = ClusterRecord {
            arn: state.scope.cluster(&name, &id),
            name: name.clone(),
            id,
            creation_time: now,
            state: ClusterState::Creating,
            state_info: None,
            current_version: new_current_version(),
            active_operation_arn: None,
            settings: settings.clone(),
            tags: tags.clone(),
            brokers,
            last_storage_scaling_ms: None,
        };
        tx.put_cluster(&record)?;
        Ok(record)
    })?;
    tracing::info!(cluster = %record.arn, "cluster created");
    state.engine.start_creation(&record.arn);
    Ok(record)
}

/// CreateCluster: `POST /v1/clusters`.
pub async fn create_cluster(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: CreateClusterRequest = parse_body(&body)?;
    let c = create(&state, req.cluster_name.as_ref(), req.tags.as_ref(), &req)?;
    Ok(Json(json!({
        "clusterArn": c.arn, "clusterName": c.name, "state": c.state.as_str()
    })))
}

/// CreateClusterV2: `POST /api/v2/clusters` (provisioned clusters).
pub async fn create_cluster_v2(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: CreateClusterV2Request = parse_body(&body)?;
    if req.serverless.is_some() {
        return Err(ApiError::bad_request(
            "serverless",
            "Serverless clusters are not offered by this control plane; create a provisioned cluster.",
        ));
    }
    let provisioned = validation::required(req.provisioned.as_ref(), "provisioned")?;
    if provisioned.cluster_name.is_some() || provisioned.tags.is_some() {
        return Err(ApiError::bad_request(
            "provisioned",
            "clusterName and tags belong at the top level of CreateClusterV2.",
        ));
    }
    let c = create(
        &state,
        req.cluster_name.as_ref(),
        req.tags.as_ref(),
        provisioned,
    )?;
    Ok(Json(json!({
        "clusterArn": c.arn, "clusterName": c.name, "state": c.state.as_str(),
        "clusterType": "PROVISIONED"
    })))
}

/// DescribeCluster: `GET /v1/clusters/{clusterArn}`.
pub async fn describe_cluster(
    State(state): State<AppState>,
    Path(arn): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = state.cluster(&arn, "clusterArn")?;
    Ok(Json(json!({ "clusterInfo": c.cluster_info() })))
}

/// DescribeClusterV2: `GET /api/v2/clusters/{clusterArn}`.
pub async fn describe_cluster_v2(
    State(state): State<AppState>,
    Path(arn): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = state.cluster(&arn, "clusterArn")?;
    Ok(Json(json!({ "clusterInfo": c.cluster_v2() })))
}

fn filtered_clusters(
    state: &AppState,
    query: &QueryParams,
) -> Result<Vec<ClusterRecord>, ApiError> {
    let prefix = query.get("clusterNameFilter").unwrap_or("");
    if let Some(t) = query.get("clusterTypeFilter") {
        if t != "PROVISIONED" && t != "SERVERLESS" {
            return Err(ApiError::bad_request(
                "clusterTypeFilter",
                format!("clusterTypeFilter must be PROVISIONED or SERVERLESS; {t} given."),
            ));
        }
        if t == "SERVERLESS" {
            return Ok(Vec::new());
        }
    }
    let all = state.store.transaction(|tx| tx.clusters())?;
    Ok(all
        .into_iter()
        .filter(|c| c.name.starts_with(prefix))
        .collect())
}

/// ListClusters: `GET /v1/clusters` (name prefix filter, pagination).
pub async fn list_clusters(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = QueryParams::parse(query.as_deref());
    let infos: Vec<Value> = filtered_clusters(&state, &query)?
        .iter()
        .map(ClusterRecord::cluster_info)
        .collect();
    let (page, next) = paginate(infos, &query)?;
    let mut out = json!({ "clusterInfoList": page });
    if let Some(next) = next {
        out["nextToken"] = next.into();
    }
    Ok(Json(out))
}

/// ListClustersV2: `GET /api/v2/clusters` (name and type filters, pagination).
pub async fn list_clusters_v2(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = QueryParams::parse(query.as_deref());
    let infos: Vec<Value> = filtered_clusters(&state, &query)?
        .iter()
        .map(ClusterRecord::cluster_v2)
        .collect();
    let (page, next) = paginate(infos, &query)?;
    let mut out = json!({ "clusterInfoList": page });
    if let Some(next) = next {
        out["nextToken"] = next.into();
    }
    Ok(Json(out))
}

/// DeleteCluster: `DELETE /v1/clusters/{clusterArn}[?currentVersion=]`.
/// Allowed in every state but DELETING (FAILED clusters too); a given
/// `currentVersion` must match.
pub async fn delete_cluster(
    State(state): State<AppState>,
    Path(arn): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = QueryParams::parse(query.as_deref());
    state.cluster(&arn, "clusterArn")?;
    let c = state.store.transaction(|tx| {
        let mut c = tx.cluster(&arn)?.ok_or_else(|| {
            ApiError::not_found("clusterArn", "The requested resource doesn't exist.")
        })?;
        if let Some(v) = query.get("currentVersion") {
            if v != c.current_version {
                return Err(stale_version(&c));
            }
        }
        if c.state == ClusterState::Deleting {
            return Err(ApiError::bad_request(
                "clusterArn",
                "The cluster is already being deleted.",
            ));
        }
        c.state = ClusterState::Deleting;
        c.state_info = None;
        tx.put_cluster(&c)?;
        Ok(c)
    })?;
    state.engine.start_deletion(&c.arn);
    Ok(Json(
        json!({ "clusterArn": c.arn, "state": c.state.as_str() }),
    ))
}

/// The refusal of an update that presents an outdated `currentVersion`.
pub fn stale_version(c: &ClusterRecord) -> ApiError {
    ApiError::bad_request(
        "currentVersion",
        format!(
            "The current version you specified does not match the current version of cluster {}. Describe the cluster to get its current version.",
            c.name
        ),
    )
}
