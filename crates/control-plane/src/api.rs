//! The HTTP side: shared state, the route table (one line per `kafka`
//! operation, with the method and path of the wire reference), SigV4 on
//! every request, and the small helpers every handler uses (JSON bodies,
//! query strings, pagination).

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use base64::Engine as _;
use serde::de::DeserializeOwned;

use crate::arn::{classify, ArnScope, ResourceKind};
use crate::clusters::{self, updates, ClusterRecord};
use crate::config::ControlPlaneConfig;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorKind};
use crate::sigv4::{self, SignedRequest};
use crate::store::Store;
use crate::{bootstrap_brokers, configurations, nodes, operations, tags, versions};

/// Largest request body accepted (configurations are the big ones).
const MAX_BODY_BYTES: usize = 8 << 20;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<AppInner>,
}

/// The parts of [`AppState`].
pub struct AppInner {
    /// The configuration the server started with.
    pub config: ControlPlaneConfig,
    /// The state database.
    pub store: Arc<Store>,
    /// Region and account of ARNs.
    pub scope: ArnScope,
    /// The engine that carries out creations, deletions and operations.
    pub engine: Engine,
}

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.inner
    }
}

impl AppState {
    /// Bundles the parts.
    pub fn new(config: ControlPlaneConfig, store: Arc<Store>, engine: Engine) -> Self {
        let scope = ArnScope {
            region: config.region.clone(),
            account: config.account.clone(),
        };
        AppState {
            inner: Arc::new(AppInner {
                config,
                store,
                scope,
                engine,
            }),
        }
    }

    /// The cluster named by `arn` (a 400 if `arn` is not a cluster ARN, a
    /// 404 if there is no such cluster).
    pub fn cluster(&self, arn: &str, parameter: &str) -> Result<ClusterRecord, ApiError> {
        if classify(&self.scope, arn, parameter)? != ResourceKind::Cluster {
            return Err(ApiError::bad_request(
                parameter,
                format!("{arn} is not a cluster ARN."),
            ));
        }
        self.store
            .transaction(|tx| tx.cluster(arn))?
            .ok_or_else(|| ApiError::not_found(parameter, "The requested resource doesn't exist."))
    }
}

/// Decoded query-string members, repeated keys kept.
#[derive(Debug, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        QueryParams(sigv4::parse_query(raw))
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// One page of `items` per `maxResults` (1..100, default 100) and the
/// opaque `nextToken` (an offset) of the next page, if any.
pub fn paginate<T>(
    items: Vec<T>,
    query: &QueryParams,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let max = match query.get("maxResults") {
        None => 100,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "maxResults",
                    format!("maxResults must be an integer from 1 to 100; {s} given."),
                ))
            }
        },
    };
    let start = match query.get("nextToken") {
        None | Some("") => 0,
        Some(token) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.strip_prefix("offset:")
                    .and_then(|n| n.parse::<usize>().ok())
            })
            .filter(|n| *n <= items.len())
            .ok_or_else(|| ApiError::bad_request("nextToken", "The nextToken is not valid."))?,
    };
    let end = (start + max).min(items.len());
    let next = (end < items.len())
        .then(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{end}")));
    let page = items.into_iter().skip(start).take(end - start).collect();
    Ok((page, next))
}

/// Parses a JSON body (empty means `{}`); a malformed body or a member of
/// the wrong type is a 400 naming that member.
pub fn parse_body<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let member = path
            .rsplit('.')
            .find(|s| !s.starts_with('[') && !s.is_empty() && *s != "?")
            .unwrap_or("body")
            .to_string();
        ApiError::bad_request(
            &member,
            format!("The request body is not valid: {} (at {path}).", e.inner()),
        )
    })
}

/// Verifies SigV4 on every request before any handler runs, and stamps
/// every response with a request id.
async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = request.into_parts();
    let mut response = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Err(_) => ApiError::bad_request("body", "The request body is too large or unreadable.")
            .into_response(),
        Ok(bytes) => {
            let headers: Vec<(String, String)> = parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let signed = SignedRequest {
                method: parts.method.as_str(),
                raw_path: parts.uri.path(),
                raw_query: parts.uri.query(),
                headers,
                body: &bytes,
            };
            let verdict = sigv4::verify(&signed, &state.config.region, SystemTime::now(), |akid| {
                state.store.secret_of(akid).ok().flatten()
            });
            match verdict {
                Ok(akid) => {
                    tracing::debug!(method = %parts.method, path = %parts.uri.path(), %akid, "request");
                    next.run(Request::from_parts(parts, Body::from(bytes)))
                        .await
                }
                Err(e) => {
                    tracing::info!(method = %parts.method, path = %parts.uri.path(), error = %e, "request refused");
                    e.into_response()
                }
            }
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-RequestId", v);
    }
    response
}

async fn unknown_operation(request: Request) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        format!(
            "No operation of the kafka API is served at {} {}.",
            request.method(),
            request.uri().path()
        ),
    )
}

/// The route table of every served `kafka` operation.
pub fn router(state: AppState) -> Router {
    Router::new()
        // Clusters
        .route(
            "/v1/clusters",
            post(clusters::create_cluster).get(clusters::list_clusters),
        )
        .route(
            "/api/v2/clusters",
            post(clusters::create_cluster_v2).get(clusters::list_clusters_v2),
        )
        .route(
            "/v1/clusters/{clusterArn}",
            get(clusters::describe_cluster).delete(clusters::delete_cluster),
        )
        .route(
            "/api/v2/clusters/{clusterArn}",
            get(clusters::describe_cluster_v2),
        )
        // Cluster updates
        .route(
            "/v1/clusters/{clusterArn}/configuration",
            put(updates::update_cluster_configuration),
        )
        .route(
            "/v1/clusters/{clusterArn}/nodes/count",
            put(updates::update_broker_count),
        )
        .route(
            "/v1/clusters/{clusterArn}/nodes/type",
            put(updates::update_broker_type),
        )
        .route(
            "/v1/clusters/{clusterArn}/nodes/storage",
            put(updates::update_broker_storage),
        )
        .route(
            "/v1/clusters/{clusterArn}/storage",
            put(updates::update_storage),
        )
        .route(
            "/v1/clusters/{clusterArn}/version",
            put(updates::update_cluster_kafka_version),
        )
        .route(
            "/v1/clusters/{clusterArn}/monitoring",
            put(updates::update_monitoring),
        )
        .route(
            "/v1/clusters/{clusterArn}/security",
            axum::routing::patch(updates::update_security),
        )
        // Nodes and bootstrap brokers
        .route("/v1/clusters/{clusterArn}/nodes", get(nodes::list_nodes))
        .route(
            "/v1/clusters/{clusterArn}/reboot-broker",
            put(nodes::reboot_broker),
        )
        .route(
            "/v1/clusters/{clusterArn}/bootstrap-brokers",
            get(bootstrap_brokers::get_bootstrap_brokers),
        )
        // Operations
        .route(
            "/v1/clusters/{clusterArn}/operations",
            get(operations::list_cluster_operations),
        )
        .route(
            "/api/v2/clusters/{clusterArn}/operations",
            get(operations::list_cluster_operations_v2),
        )
        .route(
            "/v1/operations/{clusterOperationArn}",
            get(operations::describe_cluster_operation),
        )
        .route(
            "/api/v2/operations/{clusterOperationArn}",
            get(operations::describe_cluster_operation_v2),
        )
        // Versions
        .route("/v1/kafka-versions", get(versions::list_kafka_versions))
        .route(
            "/v1/compatible-kafka-versions",
            get(versions::get_compatible_kafka_versions),
        )
        // Tags
        .route(
            "/v1/tags/{resourceArn}",
            post(tags::tag_resource)
                .get(tags::list_tags_for_resource)
                .delete(tags::untag_resource),
        )
        // Configurations
        .route(
            "/v1/configurations",
            post(configurations::create_configuration).get(configurations::list_configurations),
        )
        .route(
            "/v1/configurations/{arn}",
            get(configurations::describe_configuration)
                .put(configurations::update_configuration)
                .delete(configurations::delete_configuration),
        )
        .route(
            "/v1/configurations/{arn}/revisions",
            get(configurations::list_configuration_revisions),
        )
        .route(
            "/v1/configurations/{arn}/revisions/{revision}",
            get(configurations::describe_configuration_revision),
        )
        .fallback(unknown_operation)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .with_state(state)
}
