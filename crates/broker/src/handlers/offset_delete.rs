//! OffsetDelete: removes committed offsets of topics a group no longer reads.

use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves OffsetDelete v0.
pub struct OffsetDeleteHandler;

impl Handler for OffsetDeleteHandler {
    const KEY: ApiKey = ApiKey::OffsetDelete;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    type Request = OffsetDeleteRequest;
    type Response = OffsetDeleteResponse;

    async fn handle(
        ctx: &RequestContext,
        request: OffsetDeleteRequest,
    ) -> Outcome<OffsetDeleteResponse> {
        Outcome::Respond(
            ctx.broker
                .coordinators()
                .group()
                .offset_delete(ctx.header.api_version, request)
                .await,
        )
    }

    fn error_response(_request: &OffsetDeleteRequest, error: ErrorCode) -> OffsetDeleteResponse {
        OffsetDeleteResponse::default().with_error_code(error.code())
    }
}
