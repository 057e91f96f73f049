//! AlterPartitionReassignments (KIP-455): move partitions to new replica
//! sets, or cancel a move in progress. The move itself happens as the new
//! replicas catch up (see `millrace_metadata::reassignment`).

use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};
use millrace_metadata::reassignment::ReassignmentSpec;
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;
use crate::wire::str_bytes;

/// Serves AlterPartitionReassignments v0 (Kafka 3.7's range).
pub struct AlterPartitionReassignmentsHandler;

impl Handler for AlterPartitionReassignmentsHandler {
    const KEY: ApiKey = ApiKey::AlterPartitionReassignments;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    type Request = AlterPartitionReassignmentsRequest;
    type Response = AlterPartitionReassignmentsResponse;

    async fn handle(
        ctx: &RequestContext,
        request: AlterPartitionReassignmentsRequest,
    ) -> Outcome<AlterPartitionReassignmentsResponse> {
        let specs: Vec<ReassignmentSpec> = request
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| ReassignmentSpec {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    replicas: p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                })
            })
            .collect();
        let broker = &ctx.broker;
        let controller = broker.controller().clone();
        let unclean = broker.config().model.unclean_leader_election_enable();
        let outcome = tokio::task::spawn_blocking(move || {
            controller.alter_partition_reassignments(specs, unclean)
        })
        .await;
        let Ok((results, offset)) = outcome else {
            return Outcome::Respond(Self::error_response(
                &request,
                ErrorCode::UnknownServerError,
            ));
        };
        broker
            .partitions()
            .wait_applied(
                offset,
                Duration::from_millis(request.timeout_ms.max(0) as u64),
            )
            .await;
        let mut results = results.into_iter();
        let responses = request
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let out = ReassignablePartitionResponse::default()
                            .with_partition_index(p.partition_index);
                        match results.next() {
                            Some(Ok(())) => out,
                            Some(Err(e)) => out
                                .with_error_code(e.code_i16())
                                .with_error_message(e.message.as_deref().map(str_bytes)),
                            None => out.with_error_code(ErrorCode::UnknownServerError.code()),
                        }
                    })
                    .collect();
                ReassignableTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        Outcome::Respond(AlterPartitionReassignmentsResponse::default().with_responses(responses))
    }

    fn error_response(
        request: &AlterPartitionReassignmentsRequest,
        error: ErrorCode,
    ) -> AlterPartitionReassignmentsResponse {
        let responses = request
            .topics
            .iter()
            .map(|t| {
                ReassignableTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                ReassignablePartitionResponse::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(error.code())
                            })
                            .collect(),
                    )
            })
            .collect();
        AlterPartitionReassignmentsResponse::default()
            .with_error_code(error.code())
            .with_responses(responses)
    }
}
