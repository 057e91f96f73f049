//! Produce: append record batches to partition leaders.
//!
//! Records are validated and stored as received (see `log_validator`); the
//! response reports, per partition, the offset of the first record or the
//! Kafka error that rejected the batch.

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use millrace_metadata::topic_name::is_internal;
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::log_validator::ProduceError;
use crate::request_context::RequestContext;
use crate::wire::{broker_id, now_ms, str_bytes};

/// Serves Produce v3-v10 (Kafka 3.7 serves v0-v10; v0-v2 carry only the
/// pre-0.11 message formats Millrace does not store).
pub struct ProduceHandler;

impl Handler for ProduceHandler {
    const KEY: ApiKey = ApiKey::Produce;
    const MIN_VERSION: i16 = 3;
    const MAX_VERSION: i16 = 10;
    type Request = ProduceRequest;
    type Response = ProduceResponse;

    async fn handle(ctx: &RequestContext, request: ProduceRequest) -> Outcome<ProduceResponse> {
        let version = ctx.header.api_version;
        let acks = request.acks;
        if !matches!(acks, -1..=1) {
            return respond_or_close(
                acks,
                Self::error_response(&request, ErrorCode::InvalidRequiredAcks),
            );
        }
        let broker = &ctx.broker;
        let now = now_ms();
        let mut leader_hints = Vec::new();
        let mut responses = Vec::with_capacity(request.topic_data.len());
        // acks=all: (topic index, partition index, partition, log end after
        // the append) to wait for before answering.
        let mut uncommitted = Vec::new();
        for (t, topic) in request.topic_data.iter().enumerate() {
            let name = topic.name.as_str();
            let mut partitions = Vec::with_capacity(topic.partition_data.len());
            for data in &topic.partition_data {
                let result = match (broker.partitions().get(name, data.index), &data.records) {
                    // Only the coordinators write to internal topics.
                    _ if is_internal(name) => Err(plain(ErrorCode::InvalidTopicException)),
                    (None, _) => Err(plain(broker.unhosted_partition_error(name, data.index))),
                    (Some(_), None) => Err(plain(ErrorCode::InvalidRecord)),
                    (Some(partition), Some(records)) => {
                        let result = partition.append_as_leader(records, acks, version, now);
                        if acks == -1 && result.is_ok() {
                            // The log end now is at or past this batch's end.
                            let end = partition.log_end_offset();
                            uncommitted.push((t, partitions.len(), partition, end));
                        }
                        result
                    }
                };
                let response = match result {
                    Ok(outcome) => PartitionProduceResponse::default()
                        .with_index(data.index)
                        .with_base_offset(outcome.base_offset)
                        .with_log_append_time_ms(outcome.log_append_time)
                        .with_log_start_offset(outcome.log_start_offset),
                    Err(mut e) => {
                        if version < 8 {
                            // Per-record errors and messages exist from v8.
                            e.record_errors.clear();
                        }
                        let mut response = error_partition(data.index, &e);
                        if e.code == ErrorCode::NotLeaderOrFollower && version >= 10 {
                            if let Some((leader, epoch)) = broker.leader_hint(name, data.index) {
                                response.current_leader = LeaderIdAndEpoch::default()
                                    .with_leader_id(broker_id(leader))
                                    .with_leader_epoch(epoch);
                                leader_hints.push(leader);
                            }
                        }
                        response
                    }
                };
                partitions.push(response);
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(topic.name.clone())
                    .with_partition_responses(partitions),
            );
        }
        // acks=all is answered once every in-sync replica has the records
        // (the high watermark passed them), as Kafka's delayed produce: an
        // answer after the local append alone would acknowledge writes a
        // new leader may not have.
        let deadline = std::time::Instant::now()
            + std::time::Duration::from_millis(request.timeout_ms.max(0) as u64);
        for (t, p, partition, end) in uncommitted {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if let Err(code) = partition.wait_committed(end, left).await {
                let index = responses[t].partition_responses[p].index;
                responses[t].partition_responses[p] = error_partition(index, &plain(code));
            }
        }
        let mut response = ProduceResponse::default().with_responses(responses);
        if version >= 10 {
            response.node_endpoints = node_endpoints(ctx, &leader_hints);
        }
        respond_or_close(acks, response)
    }

    fn error_response(request: &ProduceRequest, error: ErrorCode) -> ProduceResponse {
        let responses = request
            .topic_data
            .iter()
            .map(|topic| {
                TopicProduceResponse::default()
                    .with_name(topic.name.clone())
                    .with_partition_responses(
                        topic
                            .partition_data
                            .iter()
                            .map(|p| error_partition(p.index, &plain(error)))
                            .collect(),
                    )
            })
            .collect();
        ProduceResponse::default().with_responses(responses)
    }
}

/// acks=0 producers read no response; an error can only be signalled by
/// closing the connection, which makes the client refresh its metadata.
fn respond_or_close(acks: i16, response: ProduceResponse) -> Outcome<ProduceResponse> {
    if acks != 0 {
        return Outcome::Respond(response);
    }
    let failed = response
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.error_code != 0);
    match failed {
        Some(p) => Outcome::Close(format!(
            "acks=0 produce failed with error code {} ({:?})",
            p.error_code,
            ErrorCode::try_from_code(p.error_code)
        )),
        None => Outcome::NoResponse,
    }
}

fn plain(code: ErrorCode) -> ProduceError {
    ProduceError {
        code,
        message: None,
        record_errors: Vec::new(),
    }
}

fn error_partition(index: i32, e: &ProduceError) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(e.code.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(e.message.as_deref().map(str_bytes))
        .with_record_errors(
            e.record_errors
                .iter()
                .map(|(i, m)| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(*i)
                        .with_batch_index_error_message(m.as_deref().map(str_bytes))
                })
                .collect(),
        )
}

/// KIP-951: endpoints of the leaders named in `current_leader` hints, so the
/// client can go there without a metadata round trip.
fn node_endpoints(ctx: &RequestContext, leaders: &[i32]) -> Vec<NodeEndpoint> {
    let mut ids: Vec<i32> = leaders.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let image = ctx.broker.image();
    ids.into_iter()
        .filter_map(|id| {
            let broker = image.brokers.get(&id)?;
            let endpoint = broker.endpoint(&ctx.listener)?;
            Some(
                NodeEndpoint::default()
                    .with_node_id(broker_id(id))
                    .with_host(str_bytes(&endpoint.host))
                    .with_port(i32::from(endpoint.port))
                    .with_rack(broker.rack.as_deref().map(str_bytes)),
            )
        })
        .collect()
}
