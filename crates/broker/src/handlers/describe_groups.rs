//! DescribeGroups: state, protocol and members of classic groups.

use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves DescribeGroups v0-v6.
pub struct DescribeGroupsHandler;

impl Handler for DescribeGroupsHandler {
    const KEY: ApiKey = ApiKey::DescribeGroups;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 6;
    type Request = DescribeGroupsRequest;
    type Response = DescribeGroupsResponse;

    async fn handle(
        ctx: &RequestContext,
        request: DescribeGroupsRequest,
    ) -> Outcome<DescribeGroupsResponse> {
        Outcome::Respond(
            ctx.broker
                .coordinators()
                .group()
                .describe_groups(ctx.header.api_version, request)
                .await,
        )
    }

    fn error_response(request: &DescribeGroupsRequest, error: ErrorCode) -> DescribeGroupsResponse {
        DescribeGroupsResponse::default().with_groups(
            request
                .groups
                .iter()
                .map(|g| {
                    DescribedGroup::default()
                        .with_group_id(g.clone())
                        .with_error_code(error.code())
                })
                .collect(),
        )
    }
}
