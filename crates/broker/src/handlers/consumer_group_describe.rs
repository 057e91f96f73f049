//! ConsumerGroupDescribe: members, epochs and assignments of KIP-848
//! consumer groups (DescribeGroups covers classic groups).

use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// `MemberType` of a member that joined with ConsumerGroupHeartbeat
/// (0 is a classic-protocol member inside a consumer group).
const CONSUMER_MEMBER: i8 = 1;

/// Serves ConsumerGroupDescribe v0-v1 (v1 reports each member's protocol
/// type; every member here speaks the consumer protocol).
pub struct ConsumerGroupDescribeHandler;

impl Handler for ConsumerGroupDescribeHandler {
    const KEY: ApiKey = ApiKey::ConsumerGroupDescribe;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    type Request = ConsumerGroupDescribeRequest;
    type Response = ConsumerGroupDescribeResponse;

    async fn handle(
        ctx: &RequestContext,
        request: ConsumerGroupDescribeRequest,
    ) -> Outcome<ConsumerGroupDescribeResponse> {
        let version = ctx.header.api_version;
        let mut response = ctx
            .broker
            .coordinators()
            .group()
            .consumer_group_describe(version, request)
            .await;
        if version >= 1 {
            for member in response
                .groups
                .iter_mut()
                .flat_map(|g| g.members.iter_mut())
            {
                member.member_type = CONSUMER_MEMBER;
            }
        }
        Outcome::Respond(response)
    }

    fn error_response(
        request: &ConsumerGroupDescribeRequest,
        error: ErrorCode,
    ) -> ConsumerGroupDescribeResponse {
        ConsumerGroupDescribeResponse::default().with_groups(
            request
                .group_ids
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
