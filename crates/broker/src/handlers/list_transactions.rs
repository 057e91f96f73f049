//! ListTransactions: transactional ids known to this coordinator, filtered by
//! state and producer id (KIP-664).

use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves ListTransactions v0.
pub struct ListTransactionsHandler;

impl Handler for ListTransactionsHandler {
    const KEY: ApiKey = ApiKey::ListTransactions;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    type Request = ListTransactionsRequest;
    type Response = ListTransactionsResponse;

    async fn handle(
        ctx: &RequestContext,
        request: ListTransactionsRequest,
    ) -> Outcome<ListTransactionsResponse> {
        Outcome::Respond(
            ctx.broker
                .coordinators()
                .txn()
                .list_transactions(ctx.header.api_version, request)
                .await,
        )
    }

    fn error_response(
        _request: &ListTransactionsRequest,
        error: ErrorCode,
    ) -> ListTransactionsResponse {
        ListTransactionsResponse::default().with_error_code(error.code())
    }
}
