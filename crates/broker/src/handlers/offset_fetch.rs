//! OffsetFetch: a group's committed positions (batched groups from v8).

use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves OffsetFetch v1-v9.
pub struct OffsetFetchHandler;

impl Handler for OffsetFetchHandler {
    const KEY: ApiKey = ApiKey::OffsetFetch;
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 9;
    type Request = OffsetFetchRequest;
    type Response = OffsetFetchResponse;

    async fn handle(
        ctx: &RequestContext,
        request: OffsetFetchRequest,
    ) -> Outcome<OffsetFetchResponse> {
        Outcome::Respond(
            ctx.broker
                .coordinators()
                .group()
                .offset_fetch(ctx.header.api_version, request)
                .await,
        )
    }

    fn error_response(request: &OffsetFetchRequest, error: ErrorCode) -> OffsetFetchResponse {
        OffsetFetchResponse::default()
            .with_error_code(error.code())
            .with_groups(
                request
                    .groups
                    .iter()
                    .map(|g| {
                        OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(error.code())
                    })
                    .collect(),
            )
    }
}
