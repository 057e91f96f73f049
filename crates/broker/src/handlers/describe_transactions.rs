//! DescribeTransactions: the coordinator's view of transactional ids (KIP-664).

use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves DescribeTransactions v0.
pub struct DescribeTransactionsHandler;

impl Handler for DescribeTransactionsHandler {
    const KEY: ApiKey = ApiKey::DescribeTransactions;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    type Request = DescribeTransactionsRequest;
    type Response = DescribeTransactionsResponse;

    async fn handle(
        ctx: &RequestContext,
        request: DescribeTransactionsRequest,
    ) -> Outcome<DescribeTransactionsResponse> {
        Outcome::Respond(
            ctx.broker
                .coordinators()
                .txn()
                .describe_transactions(ctx.header.api_version, request)
                .await,
        )
    }

    fn error_response(
        request: &DescribeTransactionsRequest,
        error: ErrorCode,
    ) -> DescribeTransactionsResponse {
        DescribeTransactionsResponse::default().with_transaction_states(
            request
                .transactional_ids
                .iter()
                .map(|id| {
                    TransactionState::default()
                        .with_transactional_id(id.clone())
                        .with_error_code(error.code())
                })
                .collect(),
        )
    }
}
