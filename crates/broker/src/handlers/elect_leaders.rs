//! ElectLeaders (KIP-460): move leadership back to the preferred replica,
//! or, when no in-sync replica is live, to any live replica (unclean).

use std::time::Duration;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use millrace_metadata::reassignment::{ElectionType, TopicPartitions};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;
use crate::wire::{str_bytes, topic_name};

/// Serves ElectLeaders v0-v2 (Kafka 3.7's range).
pub struct ElectLeadersHandler;

impl Handler for ElectLeadersHandler {
    const KEY: ApiKey = ApiKey::ElectLeaders;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    type Request = ElectLeadersRequest;
    type Response = ElectLeadersResponse;

    async fn handle(
        ctx: &RequestContext,
        request: ElectLeadersRequest,
    ) -> Outcome<ElectLeadersResponse> {
        // v0 has no election type: it always meant the preferred replica.
        let Some(election) = ElectionType::from_wire(request.election_type) else {
            return Outcome::Respond(Self::error_response(&request, ErrorCode::InvalidRequest));
        };
        let partitions = request.topic_partitions.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| TopicPartitions {
                    topic: t.topic.to_string(),
                    partitions: t.partitions.clone(),
                })
                .collect()
        });
        let broker = &ctx.broker;
        let controller = broker.controller().clone();
        let outcome =
            tokio::task::spawn_blocking(move || controller.elect_leaders(election, partitions))
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
        let replica_election_results = results
            .into_iter()
            .map(|topic| {
                ReplicaElectionResult::default()
                    .with_topic(topic_name(&topic.topic))
                    .with_partition_result(
                        topic
                            .partitions
                            .into_iter()
                            .map(|(index, result)| {
                                let out = PartitionResult::default().with_partition_id(index);
                                match result {
                                    Ok(()) => out,
                                    Err(e) => out
                                        .with_error_code(e.code_i16())
                                        .with_error_message(e.message.as_deref().map(str_bytes)),
                                }
                            })
                            .collect(),
                    )
            })
            .collect();
        Outcome::Respond(
            ElectLeadersResponse::default().with_replica_election_results(replica_election_results),
        )
    }

    fn error_response(request: &ElectLeadersRequest, error: ErrorCode) -> ElectLeadersResponse {
        let results = request
            .topic_partitions
            .iter()
            .flatten()
            .map(|t| {
                ReplicaElectionResult::default()
                    .with_topic(t.topic.clone())
                    .with_partition_result(
                        t.partitions
                            .iter()
                            .map(|&p| {
                                PartitionResult::default()
                                    .with_partition_id(p)
                                    .with_error_code(error.code())
                            })
                            .collect(),
                    )
            })
            .collect();
        ElectLeadersResponse::default()
            .with_error_code(error.code())
            .with_replica_election_results(results)
    }
}
