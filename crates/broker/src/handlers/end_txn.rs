//! EndTxn: commits or aborts a producer's transaction.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves EndTxn v0-v3.
pub struct EndTxnHandler;

impl Handler for EndTxnHandler {
    const KEY: ApiKey = ApiKey::EndTxn;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 3;
    type Request = EndTxnRequest;
    type Response = EndTxnResponse;

    async fn handle(ctx: &RequestContext, request: EndTxnRequest) -> Outcome<EndTxnResponse> {
        Outcome::Respond(
            ctx.broker
                .coordinators()
                .txn()
                .end_txn(ctx.header.api_version, request)
                .await,
        )
    }

    fn error_response(_request: &EndTxnRequest, error: ErrorCode) -> EndTxnResponse {
        EndTxnResponse::default().with_error_code(error.code())
    }
}
