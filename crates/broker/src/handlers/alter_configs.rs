//! AlterConfigs (the legacy, whole-set form): the given configs replace
//! every existing override of the resource.

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use millrace_metadata::controller::{ConfigChange, ConfigOp};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;
use crate::wire::str_bytes;

/// Serves AlterConfigs v0-v2 (Kafka 3.7's range).
pub struct AlterConfigsHandler;

impl Handler for AlterConfigsHandler {
    const KEY: ApiKey = ApiKey::AlterConfigs;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    type Request = AlterConfigsRequest;
    type Response = AlterConfigsResponse;

    async fn handle(
        ctx: &RequestContext,
        request: AlterConfigsRequest,
    ) -> Outcome<AlterConfigsResponse> {
        let changes: Vec<Result<ConfigChange, (ErrorCode, String)>> = request
            .resources
            .iter()
            .map(|r| {
                let ops = r
                    .configs
                    .iter()
                    .map(|c| {
                        let op = match &c.value {
                            Some(v) => ConfigOp::Set(v.to_string()),
                            None => ConfigOp::Delete,
                        };
                        (c.name.to_string(), op)
                    })
                    .collect();
                super::incremental_alter_configs::change_for(
                    ctx,
                    r.resource_type,
                    r.resource_name.as_str(),
                    ops,
                    true,
                )
            })
            .collect();
        let results =
            super::incremental_alter_configs::apply(ctx, changes, request.validate_only).await;
        let responses = request
            .resources
            .iter()
            .zip(results)
            .map(|(r, result)| {
                let out = AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone());
                match result {
                    Ok(()) => out,
                    Err((code, message)) => out
                        .with_error_code(code.code())
                        .with_error_message(Some(str_bytes(&message))),
                }
            })
            .collect();
        Outcome::Respond(AlterConfigsResponse::default().with_responses(responses))
    }

    fn error_response(request: &AlterConfigsRequest, error: ErrorCode) -> AlterConfigsResponse {
        let responses = request
            .resources
            .iter()
            .map(|r| {
                AlterConfigsResourceResponse::default()
                    .with_error_code(error.code())
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone())
            })
            .collect();
        AlterConfigsResponse::default().with_responses(responses)
    }
}
