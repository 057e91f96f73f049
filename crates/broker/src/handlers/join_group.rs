//! JoinGroup: a member joins (or rejoins) a classic group; the response waits
//! until the join phase of the rebalance completes.

use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::client_info;
use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves JoinGroup v0-v9.
pub struct JoinGroupHandler;

impl Handler for JoinGroupHandler {
    const KEY: ApiKey = ApiKey::JoinGroup;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 9;
    type Request = JoinGroupRequest;
    type Response = JoinGroupResponse;

    async fn handle(ctx: &RequestContext, request: JoinGroupRequest) -> Outcome<JoinGroupResponse> {
        Outcome::Respond(
            ctx.broker
                .coordinators()
                .group()
                .join_group(client_info(ctx), ctx.header.api_version, request)
                .await,
        )
    }

    fn error_response(_request: &JoinGroupRequest, error: ErrorCode) -> JoinGroupResponse {
        JoinGroupResponse::default()
            .with_error_code(error.code())
            .with_generation_id(-1)
    }
}
