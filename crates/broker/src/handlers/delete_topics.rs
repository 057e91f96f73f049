//! DeleteTopics: by name (all versions) or by topic id (v6+).

use std::time::Duration;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use millrace_metadata::controller::TopicRef;
use millrace_protocol::{ApiKey, ErrorCode};
use uuid::Uuid;

use super::{Handler, Outcome};
use crate::request_context::RequestContext;
use crate::wire::{str_bytes, topic_name};

/// Serves DeleteTopics v1-v6 (Kafka 3.7 serves v0-v6; v0 was removed by KIP-896).
pub struct DeleteTopicsHandler;

/// The topics a request names, in order, whatever its version.
fn requested(request: &DeleteTopicsRequest, version: i16) -> Vec<(Option<String>, Uuid)> {
    if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.to_string()), Uuid::nil()))
            .collect()
    }
}

impl Handler for DeleteTopicsHandler {
    const KEY: ApiKey = ApiKey::DeleteTopics;
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 6;
    type Request = DeleteTopicsRequest;
    type Response = DeleteTopicsResponse;

    async fn handle(
        ctx: &RequestContext,
        request: DeleteTopicsRequest,
    ) -> Outcome<DeleteTopicsResponse> {
        let version = ctx.header.api_version;
        let broker = &ctx.broker;
        let topics = requested(&request, version);
        let mut refs = Vec::new();
        let mut invalid = Vec::new();
        for (name, id) in &topics {
            match (name, id.is_nil()) {
                (Some(_), false) => invalid.push(true),
                (Some(n), true) => {
                    invalid.push(false);
                    refs.push(TopicRef::Name(n.clone()));
                }
                (None, false) => {
                    invalid.push(false);
                    refs.push(TopicRef::Id(*id));
                }
                (None, true) => invalid.push(true),
            }
        }
        let (results, offset) = broker.control(move |c| c.delete_topics(refs)).await;
        let deleted: Vec<String> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().map(|d| d.name.clone()))
            .collect();
        if !deleted.is_empty() {
            // Kafka forgets the committed offsets of deleted topics.
            broker
                .coordinators()
                .group()
                .on_topics_deleted(deleted)
                .await;
        }
        broker
            .partitions()
            .wait_applied(
                offset,
                Duration::from_millis(request.timeout_ms.max(0) as u64),
            )
            .await;
        let mut results = results.into_iter();
        let responses = topics
            .into_iter()
            .zip(invalid)
            .map(|((name, id), invalid)| {
                let base = DeletableTopicResult::default()
                    .with_name(name.as_deref().map(topic_name))
                    .with_topic_id(id);
                if invalid {
                    return base
                        .with_error_code(ErrorCode::InvalidRequest.code())
                        .with_error_message(Some(str_bytes(
                            "A topic must be named by exactly one of its name or its id.",
                        )));
                }
                match results.next() {
                    Some(Ok(deleted)) => base
                        .with_name(Some(topic_name(&deleted.name)))
                        .with_topic_id(deleted.id),
                    Some(Err(e)) => base
                        .with_error_code(e.code_i16())
                        .with_error_message(e.message.as_deref().map(str_bytes)),
                    None => base.with_error_code(ErrorCode::UnknownServerError.code()),
                }
            })
            .collect();
        Outcome::Respond(DeleteTopicsResponse::default().with_responses(responses))
    }

    fn error_response(request: &DeleteTopicsRequest, error: ErrorCode) -> DeleteTopicsResponse {
        let mut responses: Vec<DeletableTopicResult> = request
            .topics
            .iter()
            .map(|t| {
                DeletableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_topic_id(t.topic_id)
                    .with_error_code(error.code())
            })
            .collect();
        responses.extend(request.topic_names.iter().map(|n| {
            DeletableTopicResult::default()
                .with_name(Some(n.clone()))
                .with_error_code(error.code())
        }));
        DeleteTopicsResponse::default().with_responses(responses)
    }
}
