//! AddOffsetsToTxn: adds a group's offsets partition to a transaction before
//! TxnOffsetCommit.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves AddOffsetsToTxn v0-v3.
pub struct AddOffsetsToTxnHandler;

impl Handler for AddOffsetsToTxnHandler {
    const KEY: ApiKey = ApiKey::AddOffsetsToTxn;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 3;
    type Request = AddOffsetsToTxnRequest;
    type Response = AddOffsetsToTxnResponse;

    async fn handle(
        ctx: &RequestContext,
        request: AddOffsetsToTxnRequest,
    ) -> Outcome<AddOffsetsToTxnResponse> {
        Outcome::Respond(
            ctx.broker
                .coordinators()
                .txn()
                .add_offsets_to_txn(ctx.header.api_version, request)
                .await,
        )
    }

    fn error_response(
        _request: &AddOffsetsToTxnRequest,
        error: ErrorCode,
    ) -> AddOffsetsToTxnResponse {
        AddOffsetsToTxnResponse::default().with_error_code(error.code())
    }
}
