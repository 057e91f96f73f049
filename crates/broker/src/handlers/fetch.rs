//! Fetch: read record batches, long-polling until `min_bytes` arrive or
//! `max_wait_ms` passes, inside an incremental fetch session when the client
//! asks for one (KIP-227).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId};
use millrace_metadata::MetadataImage;
use millrace_protocol::{ApiKey, ErrorCode};
use tokio::time::Instant;
use uuid::Uuid;

use super::{Handler, Outcome};
use crate::fetch_session::{
    FetchContext, PartitionFetch, PartitionReport, SessionPartition, INVALID_SESSION_ID,
};
use crate::partition::{Isolation, Partition};
use crate::replication::throttle;
use crate::request_context::RequestContext;
use crate::wire::topic_name;

/// Serves Fetch v4-v16 (Kafka 3.7 serves v0-v16; v0-v3 predate the v2
/// record format).
pub struct FetchHandler;

/// The outcome of reading one partition.
struct PartitionResult {
    key: SessionPartition,
    fetch: PartitionFetch,
    error: Option<ErrorCode>,
    report: PartitionReport,
    records: Bytes,
    /// Aborted transactions overlapping `records` (read_committed only).
    aborted: Vec<millrace_storage::AbortedTxn>,
    /// KIP-392: the replica the consumer should read from instead, or -1.
    preferred_read_replica: i32,
}

/// Who reads, and so how far and from which replica.
struct Reader<'a> {
    isolation: Isolation,
    /// The follower reading, if one is.
    follower: Option<i32>,
    /// Whether this read records the follower's fetch position (the first
    /// read of a request only: waiting for data does not move it).
    record_position: bool,
    /// A consumer's fetch that may use any replica.
    consumer: Option<ConsumerFetch<'a>>,
}

/// What a consumer's fetch (v11+, which carries the client's rack) allows:
/// reading from a follower, and, with a rack-aware `replica.selector.class`,
/// being sent to a replica in its own rack (KIP-392).
#[derive(Clone, Copy)]
struct ConsumerFetch<'a> {
    /// `client.rack`, empty when the client set none.
    rack: &'a str,
    /// Whether the leader picks a same-rack replica for the client.
    rack_aware: bool,
}

impl Handler for FetchHandler {
    const KEY: ApiKey = ApiKey::Fetch;
    const MIN_VERSION: i16 = 4;
    const MAX_VERSION: i16 = 16;
    type Request = FetchRequest;
    type Response = FetchResponse;

    async fn handle(ctx: &RequestContext, request: FetchRequest) -> Outcome<FetchResponse> {
        let version = ctx.header.api_version;
        let broker = &ctx.broker;
        let image = broker.image();
        let uses_ids = version >= 13;
        let requested = resolve_requested(&image, &request, uses_ids);
        let forgotten = request
            .forgotten_topics_data
            .iter()
            .flat_map(|t| {
                let (id, name) = resolve_topic(&image, uses_ids, t.topic_id, t.topic.as_str());
                t.partitions.iter().map(move |&p| SessionPartition {
                    topic_id: id,
                    topic: name.clone(),
                    partition: p,
                })
            })
            .collect();
        let context = broker.fetch_sessions().new_context(
            request.session_id,
            request.session_epoch,
            requested,
            forgotten,
        );
        let (partitions, session) = match context {
            FetchContext::Error(code) => {
                return Outcome::Respond(
                    FetchResponse::default()
                        .with_error_code(code.code())
                        .with_session_id(INVALID_SESSION_ID),
                )
            }
            FetchContext::Sessionless(p) => (p, Session::None),
            FetchContext::FullWithNewSession(p) => (p, Session::New),
            FetchContext::Incremental {
                session_id,
                partitions,
            } => (partitions, Session::Incremental(session_id)),
        };
        // A broker replicating this one names itself (Kafka's replica id):
        // it reads up to the log end offset and its position moves the
        // high watermark and the ISR.
        let replica_id = if version >= 15 {
            request.replica_state.replica_id.0
        } else {
            request.replica_id.0
        };
        let follower = (replica_id >= 0).then_some(replica_id);
        let isolation = if follower.is_some() {
            Isolation::Follower
        } else if request.isolation_level == 1 {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        };
        let max_bytes = (request.max_bytes.max(0) as usize).min(broker.config().fetch_max_bytes);
        let min_bytes = request.min_bytes.max(0) as usize;
        let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
        let hosted: Vec<Option<Arc<Partition>>> = partitions
            .iter()
            .map(|(key, _)| broker.partitions().get(&key.topic, key.partition))
            .collect();
        let shutdown = broker.shutdown_token();
        let rack_aware = broker
            .static_config()
            .replica_selector_class()
            .is_some_and(|c| c.ends_with("RackAwareReplicaSelector"));
        let consumer = (follower.is_none() && version >= 11).then_some(ConsumerFetch {
            rack: request.rack_id.as_str(),
            rack_aware,
        });

        // A follower's position is recorded by the first read only: waiting
        // for data does not move it.
        let mut first_read = true;
        let results = loop {
            // Listen before reading, so an append between the read and the
            // wait still wakes us.
            let mut wakeups: Vec<Pin<Box<tokio::sync::futures::Notified<'_>>>> = hosted
                .iter()
                .flatten()
                .map(|p| {
                    let mut n = Box::pin(p.notified());
                    n.as_mut().enable();
                    n
                })
                .collect();
            let results = read_all(
                ctx,
                &image,
                &partitions,
                &hosted,
                max_bytes,
                Reader {
                    isolation,
                    follower,
                    record_position: std::mem::take(&mut first_read),
                    consumer,
                },
            );
            let bytes: usize = results.iter().map(|r| r.records.len()).sum();
            let any_error = results
                .iter()
                .any(|r| r.error.is_some() || r.preferred_read_replica >= 0);
            if bytes >= min_bytes || any_error || Instant::now() >= deadline {
                break results;
            }
            if wakeups.is_empty() {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = shutdown.cancelled() => {}
                }
                break read_all(
                    ctx,
                    &image,
                    &partitions,
                    &hosted,
                    max_bytes,
                    Reader {
                        isolation,
                        follower,
                        record_position: std::mem::take(&mut first_read),
                        consumer,
                    },
                );
            }
            tokio::select! {
                _ = select_all(wakeups.drain(..)) => {}
                () = tokio::time::sleep_until(deadline) => {}
                () = shutdown.cancelled() => break results,
            }
        };

        let (session_id, include) = match session {
            Session::None => (INVALID_SESSION_ID, vec![true; results.len()]),
            Session::New => {
                let entries: Vec<_> = results
                    .iter()
                    .map(|r| (r.key.clone(), r.fetch.clone(), r.report))
                    .collect();
                (
                    broker.fetch_sessions().create_session(&entries),
                    vec![true; results.len()],
                )
            }
            Session::Incremental(id) => {
                let reports: Vec<_> = results
                    .iter()
                    .map(|r| {
                        (
                            r.key.clone(),
                            r.report,
                            !r.records.is_empty() || r.error.is_some(),
                        )
                    })
                    .collect();
                (
                    id,
                    broker.fetch_sessions().complete_incremental(id, &reports),
                )
            }
        };
        let read_committed = isolation == Isolation::ReadCommitted;
        let mut topics: Vec<FetchableTopicResponse> = Vec::new();
        for (result, included) in results.into_iter().zip(include) {
            if !included {
                continue;
            }
            let data = PartitionData::default()
                .with_partition_index(result.key.partition)
                .with_error_code(result.error.map_or(0, |e| e.code()))
                .with_high_watermark(result.report.high_watermark)
                .with_last_stable_offset(result.report.last_stable_offset)
                .with_log_start_offset(result.report.log_start_offset)
                .with_aborted_transactions(read_committed.then(|| {
                    result
                        .aborted
                        .iter()
                        .map(|a| {
                            AbortedTransaction::default()
                                .with_producer_id(ProducerId(a.producer_id))
                                .with_first_offset(a.first_offset)
                        })
                        .collect()
                }))
                .with_preferred_read_replica(kafka_protocol::messages::BrokerId(
                    result.preferred_read_replica,
                ))
                .with_records(Some(result.records));
            let same_topic = topics.last().is_some_and(|t| {
                if uses_ids {
                    t.topic_id == result.key.topic_id
                } else {
                    t.topic.as_str() == result.key.topic
                }
            });
            if !same_topic {
                topics.push(
                    FetchableTopicResponse::default()
                        .with_topic(topic_name(&result.key.topic))
                        .with_topic_id(result.key.topic_id),
                );
            }
            if let Some(topic) = topics.last_mut() {
                topic.partitions.push(data);
            }
        }
        Outcome::Respond(
            FetchResponse::default()
                .with_session_id(session_id)
                .with_responses(topics),
        )
    }

    fn error_response(_request: &FetchRequest, error: ErrorCode) -> FetchResponse {
        FetchResponse::default()
            .with_error_code(error.code())
            .with_session_id(INVALID_SESSION_ID)
    }
}

enum Session {
    None,
    New,
    Incremental(i32),
}

/// Topic id and name of a request topic: by id from v13, by name before.
fn resolve_topic(image: &MetadataImage, uses_ids: bool, id: Uuid, name: &str) -> (Uuid, String) {
    if uses_ids {
        let name = image
            .topic_by_id(&id)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        (id, name)
    } else {
        (Uuid::nil(), name.to_string())
    }
}

fn resolve_requested(
    image: &MetadataImage,
    request: &FetchRequest,
    uses_ids: bool,
) -> Vec<(SessionPartition, PartitionFetch)> {
    request
        .topics
        .iter()
        .flat_map(|topic| {
            let (id, name) = resolve_topic(image, uses_ids, topic.topic_id, topic.topic.as_str());
            topic.partitions.iter().map(move |p| {
                (
                    SessionPartition {
                        topic_id: id,
                        topic: name.clone(),
                        partition: p.partition,
                    },
                    PartitionFetch {
                        fetch_offset: p.fetch_offset,
                        max_bytes: p.partition_max_bytes,
                        current_leader_epoch: p.current_leader_epoch,
                        log_start_offset: p.log_start_offset,
                    },
                )
            })
        })
        .collect()
}

/// Reads every partition in order within the response budget; the first
/// partition that returns data may exceed its limits by one batch (KIP-74).
fn read_all(
    ctx: &RequestContext,
    image: &MetadataImage,
    partitions: &[(SessionPartition, PartitionFetch)],
    hosted: &[Option<Arc<Partition>>],
    max_bytes: usize,
    reader: Reader<'_>,
) -> Vec<PartitionResult> {
    let Reader {
        isolation,
        follower,
        record_position,
        consumer,
    } = reader;
    let mut remaining = max_bytes;
    let mut min_one = true;
    partitions
        .iter()
        .zip(hosted)
        .map(|((key, fetch), partition)| {
            let mut result = PartitionResult {
                key: key.clone(),
                fetch: fetch.clone(),
                error: None,
                report: PartitionReport {
                    high_watermark: -1,
                    last_stable_offset: -1,
                    log_start_offset: -1,
                },
                records: Bytes::new(),
                aborted: Vec::new(),
                preferred_read_replica: -1,
            };
            let Some(partition) = partition else {
                result.error = Some(missing_partition_error(ctx, image, key));
                return result;
            };
            // Consumers that send their rack (v11+) may read from any
            // replica, up to its high watermark (KIP-392); everyone else
            // only from the leader.
            let checked = match consumer {
                Some(_) if partition.is_replica() => {
                    partition.check_leader_epoch(fetch.current_leader_epoch)
                }
                _ => partition.check_leader(fetch.current_leader_epoch),
            };
            if let Err(code) = checked {
                result.error = Some(code);
                return result;
            }
            if let Some(replica) = consumer.and_then(|c| preferred_replica(image, partition, c)) {
                result.preferred_read_replica = replica;
                result.report = PartitionReport {
                    high_watermark: partition.high_watermark(),
                    last_stable_offset: partition.last_stable_offset(),
                    log_start_offset: partition.log_start_offset(),
                };
                return result;
            }
            if let Some(replica_id) = follower.filter(|_| record_position) {
                if let Err(code) = partition.record_follower_fetch(replica_id, fetch.fetch_offset) {
                    result.error = Some(code);
                    return result;
                }
            }
            // Leader-side replication throttle (KIP-73): a follower outside
            // the ISR that the topic throttles gets nothing while the
            // broker's throttled traffic is over the rate.
            let throttled = follower.is_some_and(|replica| {
                !partition.in_sync(replica)
                    && throttle::is_throttled(
                        image,
                        "leader.replication.throttled.replicas",
                        &key.topic,
                        key.partition,
                        replica,
                    )
            });
            // The rate is read only for a throttled follower: this is the
            // replication hot path.
            if throttled
                && ctx.broker.replication().leader_quota().exceeded(
                    ctx.broker
                        .config()
                        .model
                        .leader_replication_throttled_rate(),
                )
            {
                result.report = PartitionReport {
                    high_watermark: partition.high_watermark(),
                    last_stable_offset: partition.last_stable_offset(),
                    log_start_offset: partition.log_start_offset(),
                };
                return result;
            }
            let limit = (fetch.max_bytes.max(0) as usize).min(remaining);
            result.report = PartitionReport {
                high_watermark: partition.high_watermark(),
                last_stable_offset: partition.last_stable_offset(),
                log_start_offset: partition.log_start_offset(),
            };
            if limit == 0 && !min_one {
                return result;
            }
            match partition.read(fetch.fetch_offset, limit, min_one, isolation) {
                Ok(read) => {
                    result.report = PartitionReport {
                        high_watermark: read.high_watermark,
                        last_stable_offset: read.last_stable_offset,
                        log_start_offset: read.log_start_offset,
                    };
                    if throttled {
                        ctx.broker
                            .replication()
                            .leader_quota()
                            .record(read.records.len() as u64);
                    }
                    if !read.records.is_empty() {
                        min_one = false;
                        remaining = remaining.saturating_sub(read.records.len());
                    }
                    result.records = read.records;
                    result.aborted = read.aborted_transactions.unwrap_or_default();
                }
                Err(code) => result.error = Some(code),
            }
            result
        })
        .collect()
}

/// Kafka's `RackAwareReplicaSelector`, on the leader: a live in-sync
/// follower in the client's rack that holds everything up to the high
/// watermark, when the leader is not in that rack itself.
fn preferred_replica(
    image: &MetadataImage,
    partition: &Partition,
    consumer: ConsumerFetch<'_>,
) -> Option<i32> {
    if !consumer.rack_aware || consumer.rack.is_empty() || !partition.is_leader() {
        return None;
    }
    let rack_of = |id: i32| image.brokers.get(&id).and_then(|b| b.rack.as_deref());
    if rack_of(partition.node_id()) == Some(consumer.rack) {
        return None;
    }
    partition
        .readable_followers()
        .into_iter()
        .find(|&r| rack_of(r) == Some(consumer.rack) && image.is_live(r))
}

fn missing_partition_error(
    ctx: &RequestContext,
    image: &MetadataImage,
    key: &SessionPartition,
) -> ErrorCode {
    if !key.topic_id.is_nil() && key.topic.is_empty() {
        return ErrorCode::UnknownTopicId;
    }
    match image.topic(&key.topic) {
        Some(_) => ctx
            .broker
            .unhosted_partition_error(&key.topic, key.partition),
        None => ErrorCode::UnknownTopicOrPartition,
    }
}
