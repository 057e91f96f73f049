//! FindCoordinator: which broker coordinates a group or a transactional id.
//!
//! The coordinator is the leader of the key's partition of the internal
//! topic (`__consumer_offsets` for groups, `__transaction_state` for
//! transactions), found with Kafka's hash so keys land where Kafka puts them.
//! The topic is created on first use, as Kafka does.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use millrace_protocol::control::coordinator_partition;
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::coordinators::{ensure_internal_topic, OFFSETS_TOPIC, TXN_STATE_TOPIC};
use crate::request_context::RequestContext;
use crate::wire::{broker_id, str_bytes};

/// Serves FindCoordinator v0-v4 (batched keys from v4, KIP-699).
pub struct FindCoordinatorHandler;

/// `key_type` of a consumer group.
const GROUP: i8 = 0;
/// `key_type` of a transactional id.
const TRANSACTION: i8 = 1;

impl Handler for FindCoordinatorHandler {
    const KEY: ApiKey = ApiKey::FindCoordinator;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    type Request = FindCoordinatorRequest;
    type Response = FindCoordinatorResponse;

    async fn handle(
        ctx: &RequestContext,
        request: FindCoordinatorRequest,
    ) -> Outcome<FindCoordinatorResponse> {
        let version = ctx.header.api_version;
        if version >= 4 {
            let mut coordinators = Vec::with_capacity(request.coordinator_keys.len());
            for key in &request.coordinator_keys {
                coordinators.push(find(ctx, request.key_type, key).await);
            }
            return Outcome::Respond(
                FindCoordinatorResponse::default().with_coordinators(coordinators),
            );
        }
        let found = find(ctx, request.key_type, &request.key).await;
        Outcome::Respond(
            FindCoordinatorResponse::default()
                .with_error_code(found.error_code)
                .with_error_message(found.error_message)
                .with_node_id(found.node_id)
                .with_host(found.host)
                .with_port(found.port),
        )
    }

    fn error_response(
        request: &FindCoordinatorRequest,
        error: ErrorCode,
    ) -> FindCoordinatorResponse {
        FindCoordinatorResponse::default()
            .with_error_code(error.code())
            .with_node_id(broker_id(-1))
            .with_port(-1)
            .with_coordinators(
                request
                    .coordinator_keys
                    .iter()
                    .map(|k| failed(k, error, None))
                    .collect(),
            )
    }
}

async fn find(ctx: &RequestContext, key_type: i8, key: &StrBytes) -> Coordinator {
    let (topic, partitions) = match key_type {
        GROUP => (
            OFFSETS_TOPIC,
            ctx.broker.static_config().offsets_topic_num_partitions(),
        ),
        TRANSACTION => {
            if key.is_empty() {
                return failed(
                    key,
                    ErrorCode::InvalidRequest,
                    Some("empty transactional id"),
                );
            }
            (
                TXN_STATE_TOPIC,
                ctx.broker
                    .static_config()
                    .transaction_state_log_num_partitions(),
            )
        }
        other => {
            return failed(
                key,
                ErrorCode::InvalidRequest,
                Some(&format!("unknown coordinator key type {other}")),
            )
        }
    };
    if !ensure_internal_topic(&ctx.broker, topic).await {
        return failed(key, ErrorCode::CoordinatorNotAvailable, None);
    }
    let index = coordinator_partition(key.as_str(), partitions);
    let image = ctx.broker.image();
    let endpoint = image
        .topic(topic)
        .and_then(|t| t.partitions.get(&index))
        .filter(|p| p.leader >= 0)
        .and_then(|p| {
            let broker = image.brokers.get(&p.leader)?;
            let endpoint = broker.endpoint(&ctx.listener)?;
            Some((p.leader, endpoint.host.clone(), endpoint.port))
        });
    match endpoint {
        Some((leader, host, port)) => Coordinator::default()
            .with_key(key.clone())
            .with_node_id(broker_id(leader))
            .with_host(str_bytes(&host))
            .with_port(i32::from(port)),
        None => failed(key, ErrorCode::CoordinatorNotAvailable, None),
    }
}

fn failed(key: &StrBytes, error: ErrorCode, message: Option<&str>) -> Coordinator {
    Coordinator::default()
        .with_key(key.clone())
        .with_node_id(broker_id(-1))
        .with_port(-1)
        .with_error_code(error.code())
        .with_error_message(message.map(str_bytes))
}
