//! SyncGroup: the leader hands out assignments, every member receives its own.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves SyncGroup v0-v5.
pub struct SyncGroupHandler;

impl Handler for SyncGroupHandler {
    const KEY: ApiKey = ApiKey::SyncGroup;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    type Request = SyncGroupRequest;
    type Response = SyncGroupResponse;

    async fn handle(ctx: &RequestContext, request: SyncGroupRequest) -> Outcome<SyncGroupResponse> {
        Outcome::Respond(
            ctx.broker
                .coordinators()
                .group()
                .sync_group(ctx.header.api_version, request)
                .await,
        )
    }

    fn error_response(_request: &SyncGroupRequest, error: ErrorCode) -> SyncGroupResponse {
        SyncGroupResponse::default().with_error_code(error.code())
    }
}
