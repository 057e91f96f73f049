//! DescribeConfigs: topic and broker configs with their sources, synonyms,
//! types and documentation.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use millrace_config::DescribeConfigEntry;
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::config_bridge;
use crate::request_context::RequestContext;
use crate::wire::str_bytes;

/// Serves DescribeConfigs v1-v4 (Kafka 3.7 serves v0-v4; v0 was removed by KIP-896).
pub struct DescribeConfigsHandler;

/// Kafka's `ConfigResource.Type` ids.
pub mod resource_type {
    /// A topic.
    pub const TOPIC: i8 = 2;
    /// A broker (or `""`, the cluster-wide default).
    pub const BROKER: i8 = 4;
    /// A broker's loggers.
    pub const BROKER_LOGGER: i8 = 8;
}

impl Handler for DescribeConfigsHandler {
    const KEY: ApiKey = ApiKey::DescribeConfigs;
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 4;
    type Request = DescribeConfigsRequest;
    type Response = DescribeConfigsResponse;

    async fn handle(
        ctx: &RequestContext,
        request: DescribeConfigsRequest,
    ) -> Outcome<DescribeConfigsResponse> {
        let broker = &ctx.broker;
        let version = ctx.header.api_version;
        let results = request
            .resources
            .iter()
            .map(|resource| {
                let name = resource.resource_name.to_string();
                let keys: Option<Vec<String>> = resource
                    .configuration_keys
                    .as_ref()
                    .map(|k| k.iter().map(|s| s.to_string()).collect());
                let entries = match resource.resource_type {
                    resource_type::TOPIC => match broker.image().topic(&name) {
                        Some(_) => {
                            let overrides = broker.image().topic_config(&name);
                            Ok(config_bridge::describe_topic(broker, &overrides, keys.as_deref()))
                        }
                        None => Err((
                            ErrorCode::UnknownTopicOrPartition,
                            format!("Topic {name} does not exist."),
                        )),
                    },
                    resource_type::BROKER => {
                        if name.is_empty() {
                            Ok(config_bridge::describe_broker_configs(broker, false, keys.as_deref()))
                        } else if name == broker.node_id().to_string() {
                            Ok(config_bridge::describe_broker_configs(broker, true, keys.as_deref()))
                        } else {
                            Err((
                                ErrorCode::InvalidRequest,
                                format!(
                                    "Unexpected broker id, expected {} or empty string, but received {name}",
                                    broker.node_id()
                                ),
                            ))
                        }
                    }
                    other => Err((
                        ErrorCode::InvalidRequest,
                        format!("Unsupported resource type {other}"),
                    )),
                };
                let result = DescribeConfigsResult::default()
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name.clone());
                match entries {
                    Ok(entries) => result.with_configs(
                        entries
                            .iter()
                            .map(|e| {
                                entry(e, request.include_synonyms, version >= 3 && request.include_documentation)
                            })
                            .collect(),
                    ),
                    Err((code, message)) => result
                        .with_error_code(code.code())
                        .with_error_message(Some(str_bytes(&message))),
                }
            })
            .collect();
        Outcome::Respond(DescribeConfigsResponse::default().with_results(results))
    }

    fn error_response(
        request: &DescribeConfigsRequest,
        error: ErrorCode,
    ) -> DescribeConfigsResponse {
        let results = request
            .resources
            .iter()
            .map(|r| {
                DescribeConfigsResult::default()
                    .with_error_code(error.code())
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone())
            })
            .collect();
        DescribeConfigsResponse::default().with_results(results)
    }
}

fn entry(
    e: &DescribeConfigEntry,
    synonyms: bool,
    documentation: bool,
) -> DescribeConfigsResourceResult {
    let value = if e.is_sensitive {
        None
    } else {
        e.value.as_deref()
    };
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(&e.name))
        .with_value(value.map(str_bytes))
        .with_read_only(e.read_only)
        .with_config_source(e.source.id())
        .with_is_sensitive(e.is_sensitive)
        .with_config_type(e.config_type_id())
        .with_documentation(if documentation {
            e.documentation.map(str_bytes)
        } else {
            None
        })
        .with_synonyms(if synonyms {
            e.synonyms
                .iter()
                .map(|s| {
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(&s.name))
                        .with_value(if e.is_sensitive {
                            None
                        } else {
                            s.value.as_deref().map(str_bytes)
                        })
                        .with_source(s.source.id())
                })
                .collect()
        } else {
            Vec::new()
        })
}
