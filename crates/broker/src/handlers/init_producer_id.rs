//! InitProducerId: a producer id (and epoch) for idempotent and transactional
//! producers; for a transactional id it fences older instances.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves InitProducerId v0-v4.
pub struct InitProducerIdHandler;

impl Handler for InitProducerIdHandler {
    const KEY: ApiKey = ApiKey::InitProducerId;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    type Request = InitProducerIdRequest;
    type Response = InitProducerIdResponse;

    async fn handle(
        ctx: &RequestContext,
        request: InitProducerIdRequest,
    ) -> Outcome<InitProducerIdResponse> {
        Outcome::Respond(
            ctx.broker
                .coordinators()
                .txn()
                .init_producer_id(ctx.header.api_version, request)
                .await,
        )
    }

    fn error_response(
        _request: &InitProducerIdRequest,
        error: ErrorCode,
    ) -> InitProducerIdResponse {
        InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    }
}
