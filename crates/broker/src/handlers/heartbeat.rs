//! Heartbeat: keeps a classic group member's session alive and tells it when
//! to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves Heartbeat v0-v4.
pub struct HeartbeatHandler;

impl Handler for HeartbeatHandler {
    const KEY: ApiKey = ApiKey::Heartbeat;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    type Request = HeartbeatRequest;
    type Response = HeartbeatResponse;

    async fn handle(ctx: &RequestContext, request: HeartbeatRequest) -> Outcome<HeartbeatResponse> {
        Outcome::Respond(
            ctx.broker
                .coordinators()
                .group()
                .heartbeat(ctx.header.api_version, request)
                .await,
        )
    }

    fn error_response(_request: &HeartbeatRequest, error: ErrorCode) -> HeartbeatResponse {
        HeartbeatResponse::default().with_error_code(error.code())
    }
}
