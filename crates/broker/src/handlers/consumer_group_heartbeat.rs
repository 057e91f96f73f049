//! ConsumerGroupHeartbeat: the KIP-848 consumer protocol, where one
//! heartbeat carries a member's subscription and owned partitions and the
//! coordinator answers with its target assignment (no JoinGroup/SyncGroup).

use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{client_info, Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves ConsumerGroupHeartbeat v0-v1 (v1 is what clients use since
/// KIP-848 became generally available; it adds the topic regex field).
pub struct ConsumerGroupHeartbeatHandler;

impl Handler for ConsumerGroupHeartbeatHandler {
    const KEY: ApiKey = ApiKey::ConsumerGroupHeartbeat;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    type Request = ConsumerGroupHeartbeatRequest;
    type Response = ConsumerGroupHeartbeatResponse;

    async fn handle(
        ctx: &RequestContext,
        request: ConsumerGroupHeartbeatRequest,
    ) -> Outcome<ConsumerGroupHeartbeatResponse> {
        Outcome::Respond(
            ctx.broker
                .coordinators()
                .group()
                .consumer_group_heartbeat_with_client(
                    client_info(ctx),
                    ctx.header.api_version,
                    request,
                )
                .await,
        )
    }

    fn error_response(
        _request: &ConsumerGroupHeartbeatRequest,
        error: ErrorCode,
    ) -> ConsumerGroupHeartbeatResponse {
        ConsumerGroupHeartbeatResponse::default().with_error_code(error.code())
    }
}
