//! OffsetCommit: stores a group's consumed positions in `__consumer_offsets`.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves OffsetCommit v2-v9.
pub struct OffsetCommitHandler;

impl Handler for OffsetCommitHandler {
    const KEY: ApiKey = ApiKey::OffsetCommit;
    const MIN_VERSION: i16 = 2;
    const MAX_VERSION: i16 = 9;
    type Request = OffsetCommitRequest;
    type Response = OffsetCommitResponse;

    async fn handle(
        ctx: &RequestContext,
        request: OffsetCommitRequest,
    ) -> Outcome<OffsetCommitResponse> {
        Outcome::Respond(
            ctx.broker
                .coordinators()
                .group()
                .offset_commit(ctx.header.api_version, request)
                .await,
        )
    }

    fn error_response(request: &OffsetCommitRequest, error: ErrorCode) -> OffsetCommitResponse {
        OffsetCommitResponse::default().with_topics(
            request
                .topics
                .iter()
                .map(|t| {
                    OffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(error.code())
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }
}
