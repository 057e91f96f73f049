//! LeaveGroup: members (batched from v3) leave a classic group at once instead
//! of waiting for their session to expire.

use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves LeaveGroup v0-v5.
pub struct LeaveGroupHandler;

impl Handler for LeaveGroupHandler {
    const KEY: ApiKey = ApiKey::LeaveGroup;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    type Request = LeaveGroupRequest;
    type Response = LeaveGroupResponse;

    async fn handle(
        ctx: &RequestContext,
        request: LeaveGroupRequest,
    ) -> Outcome<LeaveGroupResponse> {
        Outcome::Respond(
            ctx.broker
                .coordinators()
                .group()
                .leave_group(ctx.header.api_version, request)
                .await,
        )
    }

    fn error_response(_request: &LeaveGroupRequest, error: ErrorCode) -> LeaveGroupResponse {
        LeaveGroupResponse::default().with_error_code(error.code())
    }
}
