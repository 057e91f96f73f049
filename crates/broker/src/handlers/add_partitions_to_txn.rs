//! AddPartitionsToTxn: partitions a transaction is about to write to, so the
//! coordinator knows where to send its markers.

use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves AddPartitionsToTxn v0-v4.
pub struct AddPartitionsToTxnHandler;

impl Handler for AddPartitionsToTxnHandler {
    const KEY: ApiKey = ApiKey::AddPartitionsToTxn;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    type Request = AddPartitionsToTxnRequest;
    type Response = AddPartitionsToTxnResponse;

    async fn handle(
        ctx: &RequestContext,
        request: AddPartitionsToTxnRequest,
    ) -> Outcome<AddPartitionsToTxnResponse> {
        Outcome::Respond(
            ctx.broker
                .coordinators()
                .txn()
                .add_partitions_to_txn(ctx.header.api_version, request)
                .await,
        )
    }

    fn error_response(
        _request: &AddPartitionsToTxnRequest,
        error: ErrorCode,
    ) -> AddPartitionsToTxnResponse {
        AddPartitionsToTxnResponse::default().with_error_code(error.code())
    }
}
