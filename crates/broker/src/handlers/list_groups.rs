//! ListGroups: the groups this coordinator hosts, filtered by state (v4).

use kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves ListGroups v0-v5.
pub struct ListGroupsHandler;

impl Handler for ListGroupsHandler {
    const KEY: ApiKey = ApiKey::ListGroups;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    type Request = ListGroupsRequest;
    type Response = ListGroupsResponse;

    async fn handle(
        ctx: &RequestContext,
        request: ListGroupsRequest,
    ) -> Outcome<ListGroupsResponse> {
        Outcome::Respond(
            ctx.broker
                .coordinators()
                .group()
                .list_groups(ctx.header.api_version, request)
                .await,
        )
    }

    fn error_response(_request: &ListGroupsRequest, error: ErrorCode) -> ListGroupsResponse {
        ListGroupsResponse::default().with_error_code(error.code())
    }
}
