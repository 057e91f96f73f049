//! TxnOffsetCommit: offsets committed inside a transaction; they become
//! visible when the transaction's marker commits them.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves TxnOffsetCommit v0-v3.
pub struct TxnOffsetCommitHandler;

impl Handler for TxnOffsetCommitHandler {
    const KEY: ApiKey = ApiKey::TxnOffsetCommit;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 3;
    type Request = TxnOffsetCommitRequest;
    type Response = TxnOffsetCommitResponse;

    async fn handle(
        ctx: &RequestContext,
        request: TxnOffsetCommitRequest,
    ) -> Outcome<TxnOffsetCommitResponse> {
        Outcome::Respond(
            ctx.broker
                .coordinators()
                .group()
                .txn_offset_commit(ctx.header.api_version, request)
                .await,
        )
    }

    fn error_response(
        request: &TxnOffsetCommitRequest,
        error: ErrorCode,
    ) -> TxnOffsetCommitResponse {
        TxnOffsetCommitResponse::default().with_topics(
            request
                .topics
                .iter()
                .map(|t| {
                    TxnOffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    TxnOffsetCommitResponsePartition::default()
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
