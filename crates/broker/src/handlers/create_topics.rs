//! CreateTopics: validated by the controller with Kafka's rules, then
//! answered once this broker hosts the new partitions.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use millrace_metadata::controller::CreateTopicSpec;
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::config_bridge;
use crate::request_context::RequestContext;
use crate::wire::str_bytes;

/// Serves CreateTopics v2-v7 (Kafka 3.7 serves v0-v7; v0-v1 were removed by KIP-896).
pub struct CreateTopicsHandler;

impl Handler for CreateTopicsHandler {
    const KEY: ApiKey = ApiKey::CreateTopics;
    const MIN_VERSION: i16 = 2;
    const MAX_VERSION: i16 = 7;
    type Request = CreateTopicsRequest;
    type Response = CreateTopicsResponse;

    async fn handle(
        ctx: &RequestContext,
        request: CreateTopicsRequest,
    ) -> Outcome<CreateTopicsResponse> {
        let version = ctx.header.api_version;
        let broker = &ctx.broker;
        let specs: Vec<CreateTopicSpec> = request
            .topics
            .iter()
            .map(|t| CreateTopicSpec {
                name: t.name.to_string(),
                num_partitions: t.num_partitions,
                replication_factor: t.replication_factor,
                assignments: t
                    .assignments
                    .iter()
                    .map(|a| {
                        (
                            a.partition_index,
                            a.broker_ids.iter().map(|b| b.0).collect(),
                        )
                    })
                    .collect::<BTreeMap<i32, Vec<i32>>>(),
                configs: t
                    .configs
                    .iter()
                    .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                    .collect(),
            })
            .collect();
        let validate_only = request.validate_only;
        let (results, offset) = broker
            .control(move |c| c.create_topics(specs, validate_only))
            .await;
        if !request.validate_only {
            broker
                .partitions()
                .wait_applied(
                    offset,
                    Duration::from_millis(request.timeout_ms.max(0) as u64),
                )
                .await;
        }
        let topics = request
            .topics
            .iter()
            .zip(results)
            .map(|(t, result)| match result {
                Ok(created) => {
                    let mut out = CreatableTopicResult::default()
                        .with_name(t.name.clone())
                        .with_topic_id(created.topic_id)
                        .with_num_partitions(created.num_partitions)
                        .with_replication_factor(created.replication_factor);
                    if version >= 5 {
                        let configs = config_bridge::describe_topic(broker, &created.configs, None)
                            .into_iter()
                            .map(|c| {
                                CreatableTopicConfigs::default()
                                    .with_name(str_bytes(&c.name))
                                    .with_value(c.value.as_deref().map(str_bytes))
                                    .with_read_only(c.read_only)
                                    .with_config_source(c.source.id())
                                    .with_is_sensitive(c.is_sensitive)
                            })
                            .collect();
                        out = out.with_configs(Some(configs));
                    }
                    out
                }
                Err(e) => CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(e.code_i16())
                    .with_error_message(e.message.as_deref().map(str_bytes))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            })
            .collect();
        Outcome::Respond(CreateTopicsResponse::default().with_topics(topics))
    }

    fn error_response(request: &CreateTopicsRequest, error: ErrorCode) -> CreateTopicsResponse {
        let topics = request
            .topics
            .iter()
            .map(|t| {
                CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(error.code())
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
            })
            .collect();
        CreateTopicsResponse::default().with_topics(topics)
    }
}
