//! ListPartitionReassignments (KIP-455): the reassignments in progress,
//! with the replicas each is adding and removing.

use std::collections::BTreeMap;

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use millrace_metadata::reassignment::TopicPartitions;
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;
use crate::wire::{broker_id, str_bytes, topic_name};

/// Serves ListPartitionReassignments v0 (Kafka 3.7's range).
pub struct ListPartitionReassignmentsHandler;

impl Handler for ListPartitionReassignmentsHandler {
    const KEY: ApiKey = ApiKey::ListPartitionReassignments;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    type Request = ListPartitionReassignmentsRequest;
    type Response = ListPartitionReassignmentsResponse;

    async fn handle(
        ctx: &RequestContext,
        request: ListPartitionReassignmentsRequest,
    ) -> Outcome<ListPartitionReassignmentsResponse> {
        let wanted = request.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| TopicPartitions {
                    topic: t.name.to_string(),
                    partitions: t.partition_indexes.clone(),
                })
                .collect()
        });
        let controller = ctx.broker.controller().clone();
        let listed =
            tokio::task::spawn_blocking(move || controller.list_partition_reassignments(wanted))
                .await;
        let ongoing = match listed {
            Ok(Ok(ongoing)) => ongoing,
            Ok(Err(e)) => {
                return Outcome::Respond(
                    ListPartitionReassignmentsResponse::default()
                        .with_error_code(e.code_i16())
                        .with_error_message(e.message.as_deref().map(str_bytes)),
                )
            }
            Err(_) => {
                return Outcome::Respond(Self::error_response(
                    &request,
                    ErrorCode::UnknownServerError,
                ))
            }
        };
        let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
        for r in ongoing {
            let ids = |list: &[i32]| list.iter().map(|&b| broker_id(b)).collect();
            by_topic.entry(r.topic.clone()).or_default().push(
                OngoingPartitionReassignment::default()
                    .with_partition_index(r.partition)
                    .with_replicas(ids(&r.replicas))
                    .with_adding_replicas(ids(&r.adding_replicas))
                    .with_removing_replicas(ids(&r.removing_replicas)),
            );
        }
        let topics = by_topic
            .into_iter()
            .map(|(name, partitions)| {
                OngoingTopicReassignment::default()
                    .with_name(topic_name(&name))
                    .with_partitions(partitions)
            })
            .collect();
        Outcome::Respond(ListPartitionReassignmentsResponse::default().with_topics(topics))
    }

    fn error_response(
        _request: &ListPartitionReassignmentsRequest,
        error: ErrorCode,
    ) -> ListPartitionReassignmentsResponse {
        ListPartitionReassignmentsResponse::default().with_error_code(error.code())
    }
}
