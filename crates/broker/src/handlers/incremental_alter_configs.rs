//! IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on topic and
//! dynamic broker configs (KIP-339). Changes are validated by the controller
//! and take effect on every partition once the new metadata is applied.

use std::time::Duration;

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use millrace_metadata::controller::{ConfigChange, ConfigOp};
use millrace_metadata::records::ConfigResourceType;
use millrace_protocol::{ApiKey, ErrorCode};

use super::describe_configs::resource_type;
use super::{Handler, Outcome};
use crate::request_context::RequestContext;
use crate::wire::str_bytes;

/// Serves IncrementalAlterConfigs v0-v1 (Kafka 3.7's range).
pub struct IncrementalAlterConfigsHandler;

/// A resource's change, or the error that rejects it before the controller.
pub type PlannedChange = Result<ConfigChange, (ErrorCode, String)>;

impl Handler for IncrementalAlterConfigsHandler {
    const KEY: ApiKey = ApiKey::IncrementalAlterConfigs;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    type Request = IncrementalAlterConfigsRequest;
    type Response = IncrementalAlterConfigsResponse;

    async fn handle(
        ctx: &RequestContext,
        request: IncrementalAlterConfigsRequest,
    ) -> Outcome<IncrementalAlterConfigsResponse> {
        let changes: Vec<PlannedChange> = request
            .resources
            .iter()
            .map(|r| {
                let mut ops = Vec::with_capacity(r.configs.len());
                for c in &r.configs {
                    let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                    let op = match c.config_operation {
                        0 => ConfigOp::Set(value),
                        1 => ConfigOp::Delete,
                        2 => ConfigOp::Append(value),
                        3 => ConfigOp::Subtract(value),
                        other => {
                            return Err((
                                ErrorCode::InvalidRequest,
                                format!("Unknown config operation {other}"),
                            ))
                        }
                    };
                    ops.push((c.name.to_string(), op));
                }
                change_for(ctx, r.resource_type, r.resource_name.as_str(), ops, false)
            })
            .collect();
        let results = apply(ctx, changes, request.validate_only).await;
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
        Outcome::Respond(IncrementalAlterConfigsResponse::default().with_responses(responses))
    }

    fn error_response(
        request: &IncrementalAlterConfigsRequest,
        error: ErrorCode,
    ) -> IncrementalAlterConfigsResponse {
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
        IncrementalAlterConfigsResponse::default().with_responses(responses)
    }
}

/// Checks the resource a change names, as both alter APIs must.
pub fn change_for(
    ctx: &RequestContext,
    kind: i8,
    name: &str,
    ops: Vec<(String, ConfigOp)>,
    replace_all: bool,
) -> PlannedChange {
    let resource_type = match kind {
        resource_type::TOPIC => ConfigResourceType::Topic,
        resource_type::BROKER => {
            if !name.is_empty()
                && name != ctx.broker.node_id().to_string()
                && name.parse::<i32>().is_err()
            {
                return Err((
                    ErrorCode::InvalidRequest,
                    format!("Invalid broker name {name}"),
                ));
            }
            ConfigResourceType::Broker
        }
        other => {
            return Err((
                ErrorCode::InvalidRequest,
                format!("Unsupported resource type {other}"),
            ))
        }
    };
    Ok(ConfigChange {
        resource_type,
        resource_name: name.to_string(),
        ops,
        replace_all,
    })
}

/// Sends the valid changes to the controller and waits until they apply here.
pub async fn apply(
    ctx: &RequestContext,
    changes: Vec<PlannedChange>,
    validate_only: bool,
) -> Vec<Result<(), (ErrorCode, String)>> {
    let valid: Vec<ConfigChange> = changes
        .iter()
        .filter_map(|c| c.as_ref().ok().cloned())
        .collect();
    let (results, offset) = ctx
        .broker
        .control(move |c| c.alter_configs(valid, validate_only))
        .await;
    if !validate_only {
        ctx.broker
            .partitions()
            .wait_applied(offset, Duration::from_secs(10))
            .await;
    }
    let mut results = results.into_iter();
    changes
        .into_iter()
        .map(|c| match c {
            Err(e) => Err(e),
            Ok(_) => match results.next() {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => Err((e.code, e.message.unwrap_or_default())),
                None => Err((ErrorCode::UnknownServerError, "missing result".into())),
            },
        })
        .collect()
}
