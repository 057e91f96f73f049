//! WriteTxnMarkers: the transaction coordinator asks a partition leader to
//! write commit or abort markers (broker to broker; a single broker writes
//! its markers directly, see `coordinators`).

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::coordinators::write_marker;
use crate::request_context::RequestContext;

/// Serves WriteTxnMarkers v1 (Kafka 3.7 serves v0-v1; the codec carries v1).
pub struct WriteTxnMarkersHandler;

impl Handler for WriteTxnMarkersHandler {
    const KEY: ApiKey = ApiKey::WriteTxnMarkers;
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 1;
    type Request = WriteTxnMarkersRequest;
    type Response = WriteTxnMarkersResponse;

    async fn handle(
        ctx: &RequestContext,
        request: WriteTxnMarkersRequest,
    ) -> Outcome<WriteTxnMarkersResponse> {
        let group = ctx.broker.coordinators().group().clone();
        let mut markers = Vec::with_capacity(request.markers.len());
        for marker in &request.markers {
            let mut topics = Vec::with_capacity(marker.topics.len());
            for topic in &marker.topics {
                let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
                for &index in &topic.partition_indexes {
                    let result = write_marker(
                        &ctx.broker,
                        Some(&group),
                        topic.name.as_str(),
                        index,
                        marker.producer_id.0,
                        marker.producer_epoch,
                        marker.transaction_result,
                        marker.coordinator_epoch,
                    )
                    .await;
                    partitions.push(
                        WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(index)
                            .with_error_code(result.err().map_or(0, |e| e.code())),
                    );
                }
                topics.push(
                    WritableTxnMarkerTopicResult::default()
                        .with_name(topic.name.clone())
                        .with_partitions(partitions),
                );
            }
            markers.push(
                WritableTxnMarkerResult::default()
                    .with_producer_id(marker.producer_id)
                    .with_topics(topics),
            );
        }
        Outcome::Respond(WriteTxnMarkersResponse::default().with_markers(markers))
    }

    fn error_response(
        request: &WriteTxnMarkersRequest,
        error: ErrorCode,
    ) -> WriteTxnMarkersResponse {
        WriteTxnMarkersResponse::default().with_markers(
            request
                .markers
                .iter()
                .map(|m| {
                    WritableTxnMarkerResult::default()
                        .with_producer_id(m.producer_id)
                        .with_topics(
                            m.topics
                                .iter()
                                .map(|t| {
                                    WritableTxnMarkerTopicResult::default()
                                        .with_name(t.name.clone())
                                        .with_partitions(
                                            t.partition_indexes
                                                .iter()
                                                .map(|&i| {
                                                    WritableTxnMarkerPartitionResult::default()
                                                        .with_partition_index(i)
                                                        .with_error_code(error.code())
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }
}
