//! OffsetForLeaderEpoch: the end offset of a leader epoch, which lets a
//! consumer (KIP-320) or a follower detect and truncate a diverged log.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves OffsetForLeaderEpoch v2-v4 (Kafka 3.7 serves v0-v4; v0-v1 lack
/// the leader epoch in the response and were removed by KIP-896).
pub struct OffsetForLeaderEpochHandler;

impl Handler for OffsetForLeaderEpochHandler {
    const KEY: ApiKey = ApiKey::OffsetForLeaderEpoch;
    const MIN_VERSION: i16 = 2;
    const MAX_VERSION: i16 = 4;
    type Request = OffsetForLeaderEpochRequest;
    type Response = OffsetForLeaderEpochResponse;

    async fn handle(
        ctx: &RequestContext,
        request: OffsetForLeaderEpochRequest,
    ) -> Outcome<OffsetForLeaderEpochResponse> {
        let broker = &ctx.broker;
        let topics = request
            .topics
            .iter()
            .map(|topic| {
                let name = topic.topic.as_str();
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let result = match broker.partitions().get(name, p.partition) {
                            None => Err(broker.unhosted_partition_error(name, p.partition)),
                            Some(partition) => partition
                                .check_leader(p.current_leader_epoch)
                                .map(|()| partition.log().end_offset_for_epoch(p.leader_epoch)),
                        };
                        match result {
                            Ok(Some((epoch, end_offset))) => EpochEndOffset::default()
                                .with_partition(p.partition)
                                .with_leader_epoch(epoch)
                                .with_end_offset(end_offset),
                            Ok(None) => error_partition(p.partition, 0),
                            Err(code) => error_partition(p.partition, code.code()),
                        }
                    })
                    .collect();
                OffsetForLeaderTopicResult::default()
                    .with_topic(topic.topic.clone())
                    .with_partitions(partitions)
            })
            .collect();
        Outcome::Respond(OffsetForLeaderEpochResponse::default().with_topics(topics))
    }

    fn error_response(
        request: &OffsetForLeaderEpochRequest,
        error: ErrorCode,
    ) -> OffsetForLeaderEpochResponse {
        let topics = request
            .topics
            .iter()
            .map(|t| {
                OffsetForLeaderTopicResult::default()
                    .with_topic(t.topic.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| error_partition(p.partition, error.code()))
                            .collect(),
                    )
            })
            .collect();
        OffsetForLeaderEpochResponse::default().with_topics(topics)
    }
}

/// Kafka's "undefined" answer (-1, -1), with an error code when there is one.
fn error_partition(partition: i32, code: i16) -> EpochEndOffset {
    EpochEndOffset::default()
        .with_partition(partition)
        .with_error_code(code)
        .with_leader_epoch(-1)
        .with_end_offset(-1)
}
