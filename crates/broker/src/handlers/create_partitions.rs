//! CreatePartitions: grow a topic's partition count.

use std::time::Duration;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use millrace_metadata::controller::PartitionGrowth;
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;
use crate::wire::str_bytes;

/// Serves CreatePartitions v0-v3 (Kafka 3.7's range).
pub struct CreatePartitionsHandler;

impl Handler for CreatePartitionsHandler {
    const KEY: ApiKey = ApiKey::CreatePartitions;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 3;
    type Request = CreatePartitionsRequest;
    type Response = CreatePartitionsResponse;

    async fn handle(
        ctx: &RequestContext,
        request: CreatePartitionsRequest,
    ) -> Outcome<CreatePartitionsResponse> {
        let broker = &ctx.broker;
        let growths = request
            .topics
            .iter()
            .map(|t| PartitionGrowth {
                topic: t.name.to_string(),
                count: t.count,
                assignments: t.assignments.as_ref().map(|list| {
                    list.iter()
                        .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                        .collect()
                }),
            })
            .collect();
        let validate_only = request.validate_only;
        let (results, offset) = broker
            .control(move |c| c.create_partitions(growths, validate_only))
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
        let results = request
            .topics
            .iter()
            .zip(results)
            .map(|(t, r)| {
                let out = CreatePartitionsTopicResult::default().with_name(t.name.clone());
                match r {
                    Ok(()) => out,
                    Err(e) => out
                        .with_error_code(e.code_i16())
                        .with_error_message(e.message.as_deref().map(str_bytes)),
                }
            })
            .collect();
        Outcome::Respond(CreatePartitionsResponse::default().with_results(results))
    }

    fn error_response(
        request: &CreatePartitionsRequest,
        error: ErrorCode,
    ) -> CreatePartitionsResponse {
        let results = request
            .topics
            .iter()
            .map(|t| {
                CreatePartitionsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(error.code())
            })
            .collect();
        CreatePartitionsResponse::default().with_results(results)
    }
}
