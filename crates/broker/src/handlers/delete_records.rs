//! DeleteRecords: advance a partition's log start offset, making everything
//! before it unreadable and letting whole segments go.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::partition::storage_error_code;
use crate::request_context::RequestContext;

/// Serves DeleteRecords v0-v2 (Kafka 3.7's range).
pub struct DeleteRecordsHandler;

/// `offset` meaning "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

impl Handler for DeleteRecordsHandler {
    const KEY: ApiKey = ApiKey::DeleteRecords;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    type Request = DeleteRecordsRequest;
    type Response = DeleteRecordsResponse;

    async fn handle(
        ctx: &RequestContext,
        request: DeleteRecordsRequest,
    ) -> Outcome<DeleteRecordsResponse> {
        let broker = &ctx.broker;
        let topics = request
            .topics
            .iter()
            .map(|topic| {
                let name = topic.name.as_str();
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let result = match broker.partitions().get(name, p.partition_index) {
                            None => Err(broker.unhosted_partition_error(name, p.partition_index)),
                            Some(partition) => partition.check_leader(-1).and_then(|()| {
                                // Kafka's `deleteRecordsOnLeader`: only topics
                                // whose cleanup.policy includes delete.
                                if !partition.settings().log.cleanup_delete {
                                    return Err(ErrorCode::PolicyViolation);
                                }
                                let hw = partition.high_watermark();
                                let target = if p.offset == HIGH_WATERMARK {
                                    hw
                                } else {
                                    p.offset
                                };
                                if target < 0 || target > hw {
                                    return Err(ErrorCode::OffsetOutOfRange);
                                }
                                partition.log().delete_records_before(target).map_err(|e| {
                                    storage_error_code(&format!("{name}-{}", p.partition_index), &e)
                                })
                            }),
                        };
                        match result {
                            Ok(low_watermark) => DeleteRecordsPartitionResult::default()
                                .with_partition_index(p.partition_index)
                                .with_low_watermark(low_watermark),
                            Err(code) => error_partition(p.partition_index, code),
                        }
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        Outcome::Respond(DeleteRecordsResponse::default().with_topics(topics))
    }

    fn error_response(request: &DeleteRecordsRequest, error: ErrorCode) -> DeleteRecordsResponse {
        let topics = request
            .topics
            .iter()
            .map(|t| {
                DeleteRecordsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| error_partition(p.partition_index, error))
                            .collect(),
                    )
            })
            .collect();
        DeleteRecordsResponse::default().with_topics(topics)
    }
}

fn error_partition(index: i32, code: ErrorCode) -> DeleteRecordsPartitionResult {
    DeleteRecordsPartitionResult::default()
        .with_partition_index(index)
        .with_low_watermark(-1)
        .with_error_code(code.code())
}
