//! DeleteGroups: removes empty groups and their offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves DeleteGroups v0-v2.
pub struct DeleteGroupsHandler;

impl Handler for DeleteGroupsHandler {
    const KEY: ApiKey = ApiKey::DeleteGroups;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    type Request = DeleteGroupsRequest;
    type Response = DeleteGroupsResponse;

    async fn handle(
        ctx: &RequestContext,
        request: DeleteGroupsRequest,
    ) -> Outcome<DeleteGroupsResponse> {
        Outcome::Respond(
            ctx.broker
                .coordinators()
                .group()
                .delete_groups(ctx.header.api_version, request)
                .await,
        )
    }

    fn error_response(request: &DeleteGroupsRequest, error: ErrorCode) -> DeleteGroupsResponse {
        DeleteGroupsResponse::default().with_results(
            request
                .groups_names
                .iter()
                .map(|g| {
                    DeletableGroupResult::default()
                        .with_group_id(g.clone())
                        .with_error_code(error.code())
                })
                .collect(),
        )
    }
}
