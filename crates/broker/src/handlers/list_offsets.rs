//! ListOffsets: earliest, latest, max-timestamp and by-timestamp offsets.

use std::collections::HashSet;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::partition::storage_error_code;
use crate::request_context::RequestContext;

/// `timestamp` asking for the next offset to be written (high watermark or LSO).
pub const LATEST_TIMESTAMP: i64 = -1;
/// `timestamp` asking for the log start offset.
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// `timestamp` asking for the record with the largest timestamp (KIP-734, v7+).
pub const MAX_TIMESTAMP: i64 = -3;
/// `timestamp` asking for the earliest offset still on local disk (KIP-405, v8+).
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;

/// Serves ListOffsets v1-v8 (Kafka 3.7 serves v0-v8; v0's multi-offset form
/// was removed by KIP-896).
pub struct ListOffsetsHandler;

/// One partition's answer: (timestamp, offset, leader epoch).
type Found = (i64, i64, i32);

impl Handler for ListOffsetsHandler {
    const KEY: ApiKey = ApiKey::ListOffsets;
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 8;
    type Request = ListOffsetsRequest;
    type Response = ListOffsetsResponse;

    async fn handle(
        ctx: &RequestContext,
        request: ListOffsetsRequest,
    ) -> Outcome<ListOffsetsResponse> {
        let broker = &ctx.broker;
        // The leader epoch field exists from v4.
        let with_epoch = ctx.header.api_version >= 4;
        let read_committed = request.isolation_level == 1;
        let consumer = request.replica_id.0 < 0;
        let mut seen = HashSet::new();
        let duplicates: HashSet<(String, i32)> = request
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.name.to_string(), p.partition_index))
            })
            .filter(|k| !seen.insert(k.clone()))
            .collect();
        let topics = request
            .topics
            .iter()
            .map(|topic| {
                let name = topic.name.as_str();
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let result: Result<Found, ErrorCode> = if duplicates
                            .contains(&(name.to_string(), p.partition_index))
                        {
                            Err(ErrorCode::InvalidRequest)
                        } else {
                            match broker.partitions().get(name, p.partition_index) {
                                None => {
                                    Err(broker.unhosted_partition_error(name, p.partition_index))
                                }
                                Some(partition) => partition
                                    .check_leader(p.current_leader_epoch)
                                    .and_then(|()| {
                                        lookup(&partition, p.timestamp, read_committed, consumer)
                                    }),
                            }
                        };
                        match result {
                            Ok((timestamp, offset, epoch)) => {
                                ListOffsetsPartitionResponse::default()
                                    .with_partition_index(p.partition_index)
                                    .with_timestamp(timestamp)
                                    .with_offset(offset)
                                    .with_leader_epoch(if with_epoch { epoch } else { -1 })
                            }
                            Err(code) => error_partition(p.partition_index, code),
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        Outcome::Respond(ListOffsetsResponse::default().with_topics(topics))
    }

    fn error_response(request: &ListOffsetsRequest, error: ErrorCode) -> ListOffsetsResponse {
        let topics = request
            .topics
            .iter()
            .map(|t| {
                ListOffsetsTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| error_partition(p.partition_index, error))
                            .collect(),
                    )
            })
            .collect();
        ListOffsetsResponse::default().with_topics(topics)
    }
}

fn error_partition(index: i32, code: ErrorCode) -> ListOffsetsPartitionResponse {
    ListOffsetsPartitionResponse::default()
        .with_partition_index(index)
        .with_error_code(code.code())
        .with_timestamp(-1)
        .with_offset(-1)
        .with_leader_epoch(-1)
}

fn lookup(
    partition: &crate::partition::Partition,
    timestamp: i64,
    read_committed: bool,
    consumer: bool,
) -> Result<Found, ErrorCode> {
    let log = partition.log();
    let name = format!("{}-{}", partition.topic(), partition.index());
    // Consumers never learn of offsets they could not fetch.
    let fetchable = if !consumer {
        partition.log_end_offset()
    } else if read_committed {
        partition.last_stable_offset()
    } else {
        partition.high_watermark()
    };
    let epoch_at = |offset: i64| log.epoch_for_offset(offset).unwrap_or(-1);
    match timestamp {
        LATEST_TIMESTAMP => Ok((-1, fetchable, log.latest_epoch().unwrap_or(-1))),
        EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => {
            let start = partition.log_start_offset();
            Ok((-1, start, epoch_at(start)))
        }
        MAX_TIMESTAMP => match log.max_timestamp_and_offset() {
            Ok(Some(found)) if found.offset < fetchable => Ok((
                found.timestamp,
                found.offset,
                found.leader_epoch.unwrap_or(-1),
            )),
            Ok(_) => Ok((-1, -1, -1)),
            Err(e) => Err(storage_error_code(&name, &e)),
        },
        ts if ts >= 0 => match log.offset_for_timestamp(ts) {
            Ok(Some(found)) if found.offset < fetchable => Ok((
                found.timestamp,
                found.offset,
                found.leader_epoch.unwrap_or(-1),
            )),
            Ok(_) => Ok((-1, -1, -1)),
            Err(e) => Err(storage_error_code(&name, &e)),
        },
        _ => Err(ErrorCode::InvalidRequest),
    }
}
