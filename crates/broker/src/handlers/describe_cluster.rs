//! DescribeCluster: the brokers, the controller and the cluster id, for the
//! Admin client (KIP-700).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::authorized_operations::{self, NOT_REQUESTED};
use crate::request_context::RequestContext;
use crate::wire::{broker_id, str_bytes};

/// Serves DescribeCluster v0-v1 (Kafka 3.7's range).
pub struct DescribeClusterHandler;

/// `endpoint_type` asking for broker endpoints.
const BROKERS: i8 = 1;
/// `endpoint_type` asking for controller endpoints.
const CONTROLLERS: i8 = 2;

impl Handler for DescribeClusterHandler {
    const KEY: ApiKey = ApiKey::DescribeCluster;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    type Request = DescribeClusterRequest;
    type Response = DescribeClusterResponse;

    async fn handle(
        ctx: &RequestContext,
        request: DescribeClusterRequest,
    ) -> Outcome<DescribeClusterResponse> {
        let broker = &ctx.broker;
        if ctx.header.api_version >= 1 && request.endpoint_type != BROKERS {
            // Brokers answer for brokers; controllers answer for themselves.
            // As Kafka's `AuthHelper`: a known type sent to the wrong kind of
            // endpoint is MISMATCHED, an unknown type UNSUPPORTED.
            let (code, message) = if request.endpoint_type == CONTROLLERS {
                (
                    ErrorCode::MismatchedEndpointType,
                    "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER".to_string(),
                )
            } else {
                (
                    ErrorCode::UnsupportedEndpointType,
                    format!("Unsupported endpoint type {}", request.endpoint_type),
                )
            };
            return Outcome::Respond(
                Self::error_response(&request, code).with_error_message(Some(str_bytes(&message))),
            );
        }
        let image = broker.image();
        let brokers = image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter_map(|b| {
                let endpoint = b.endpoint(&ctx.listener)?;
                Some(
                    DescribeClusterBroker::default()
                        .with_broker_id(broker_id(b.id))
                        .with_host(str_bytes(&endpoint.host))
                        .with_port(i32::from(endpoint.port))
                        .with_rack(b.rack.as_deref().map(str_bytes)),
                )
            })
            .collect();
        Outcome::Respond(
            DescribeClusterResponse::default()
                .with_endpoint_type(BROKERS)
                .with_cluster_id(str_bytes(broker.cluster_id()))
                .with_controller_id(broker_id(broker.node_id()))
                .with_brokers(brokers)
                .with_cluster_authorized_operations(
                    if request.include_cluster_authorized_operations {
                        authorized_operations::cluster()
                    } else {
                        NOT_REQUESTED
                    },
                ),
        )
    }

    fn error_response(
        _request: &DescribeClusterRequest,
        error: ErrorCode,
    ) -> DescribeClusterResponse {
        DescribeClusterResponse::default()
            .with_error_code(error.code())
            .with_controller_id(broker_id(-1))
            .with_cluster_authorized_operations(NOT_REQUESTED)
    }
}
