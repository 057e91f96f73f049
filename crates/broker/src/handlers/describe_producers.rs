//! DescribeProducers: the idempotent and transactional producers a partition
//! leader tracks (KIP-664), used by `kafka-transactions.sh` to find hanging
//! transactions.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves DescribeProducers v0 (Kafka 3.7's range).
pub struct DescribeProducersHandler;

impl Handler for DescribeProducersHandler {
    const KEY: ApiKey = ApiKey::DescribeProducers;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    type Request = DescribeProducersRequest;
    type Response = DescribeProducersResponse;

    async fn handle(
        ctx: &RequestContext,
        request: DescribeProducersRequest,
    ) -> Outcome<DescribeProducersResponse> {
        let broker = &ctx.broker;
        let topics = request
            .topics
            .iter()
            .map(|topic| {
                let name = topic.name.as_str();
                let partitions = topic
                    .partition_indexes
                    .iter()
                    .map(|&index| {
                        let response = PartitionResponse::default().with_partition_index(index);
                        let partition = match broker.partitions().get(name, index) {
                            Some(p) if p.is_leader() => p,
                            Some(_) => {
                                return response
                                    .with_error_code(ErrorCode::NotLeaderOrFollower.code())
                            }
                            None => {
                                return response.with_error_code(
                                    broker.unhosted_partition_error(name, index).code(),
                                )
                            }
                        };
                        let producers = partition
                            .log()
                            .producer_states()
                            .into_iter()
                            .map(|p| {
                                ProducerState::default()
                                    .with_producer_id(ProducerId(p.producer_id))
                                    .with_producer_epoch(i32::from(p.producer_epoch))
                                    .with_last_sequence(p.last_sequence)
                                    .with_last_timestamp(p.last_timestamp)
                                    .with_coordinator_epoch(p.coordinator_epoch)
                                    .with_current_txn_start_offset(
                                        p.current_txn_start_offset.unwrap_or(-1),
                                    )
                            })
                            .collect();
                        response.with_active_producers(producers)
                    })
                    .collect();
                TopicResponse::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        Outcome::Respond(DescribeProducersResponse::default().with_topics(topics))
    }

    fn error_response(
        request: &DescribeProducersRequest,
        error: ErrorCode,
    ) -> DescribeProducersResponse {
        DescribeProducersResponse::default().with_topics(
            request
                .topics
                .iter()
                .map(|t| {
                    TopicResponse::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|&i| {
                                    PartitionResponse::default()
                                        .with_partition_index(i)
                                        .with_error_code(error.code())
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }
}
