//! Metadata: brokers, topics, partitions and leaders, from the local
//! metadata image; creates missing topics when `auto.create.topics.enable`
//! allows it.

use std::time::Duration;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
use millrace_metadata::controller::CreateTopicSpec;
use millrace_metadata::image::TopicImage;
use millrace_metadata::{topic_name as names, MetadataImage};
use millrace_protocol::{ApiKey, ErrorCode};
use uuid::Uuid;

use super::{Handler, Outcome};
use crate::authorized_operations::{self, NOT_REQUESTED};
use crate::coordinators::ensure_internal_topic;
use crate::request_context::RequestContext;
use crate::wire::{broker_id, str_bytes, topic_name};

/// Serves Metadata v0-v12 (Kafka 3.7's range).
pub struct MetadataHandler;

impl Handler for MetadataHandler {
    const KEY: ApiKey = ApiKey::Metadata;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 12;
    type Request = MetadataRequest;
    type Response = MetadataResponse;

    async fn handle(ctx: &RequestContext, request: MetadataRequest) -> Outcome<MetadataResponse> {
        let version = ctx.header.api_version;
        let broker = &ctx.broker;
        let mut image = broker.image();
        // v0: an empty list means all topics; v1+: null means all, empty means none.
        let wanted = match &request.topics {
            None => None,
            Some(list) if list.is_empty() && version == 0 => None,
            Some(list) => Some(list.clone()),
        };
        let allow_auto_create = version < 4 || request.allow_auto_topic_creation;
        let mut topics = Vec::new();
        match wanted {
            None => {
                for topic in image.topics_sorted() {
                    topics.push(topic_metadata(
                        &image,
                        topic,
                        request.include_topic_authorized_operations,
                    ));
                }
            }
            Some(list) => {
                // Auto-create first, so the response below shows the new topics.
                let missing: Vec<String> = list
                    .iter()
                    .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
                    .filter(|n| image.topic(n).is_none() && names::validate(n).is_ok())
                    .collect();
                // Internal topics are created with their own partition counts
                // and compaction, as Kafka's AutoTopicCreationManager does.
                let (internal, missing): (Vec<String>, Vec<String>) =
                    missing.into_iter().partition(|n| names::is_internal(n));
                if !internal.is_empty() && allow_auto_create {
                    for name in &internal {
                        ensure_internal_topic(broker, name).await;
                    }
                    image = broker.image();
                }
                let mut creation_errors = std::collections::HashMap::new();
                if !missing.is_empty()
                    && allow_auto_create
                    && broker.config().auto_create_topics_enable
                {
                    let specs = missing
                        .iter()
                        .map(|name| CreateTopicSpec {
                            name: name.clone(),
                            num_partitions: -1,
                            replication_factor: -1,
                            ..Default::default()
                        })
                        .collect();
                    let (results, offset) =
                        broker.control(move |c| c.create_topics(specs, false)).await;
                    for (name, result) in missing.iter().zip(results) {
                        if let Err(e) = result {
                            if e.code != ErrorCode::TopicAlreadyExists {
                                tracing::info!(topic = %name, error = %e, "auto-creation failed");
                                creation_errors.insert(name.clone(), e.code);
                            }
                        }
                    }
                    broker
                        .partitions()
                        .wait_applied(offset, Duration::from_secs(10))
                        .await;
                    image = broker.image();
                }
                for requested in &list {
                    let response = match (&requested.name, requested.topic_id) {
                        (Some(name), _) => match image.topic(name.as_str()) {
                            Some(topic) => topic_metadata(
                                &image,
                                topic,
                                request.include_topic_authorized_operations,
                            ),
                            None => {
                                let code = if names::validate(name.as_str()).is_err() {
                                    ErrorCode::InvalidTopicException
                                } else {
                                    match creation_errors.get(name.as_str()) {
                                        Some(&ErrorCode::InvalidReplicationFactor) => {
                                            ErrorCode::InvalidReplicationFactor
                                        }
                                        _ => ErrorCode::UnknownTopicOrPartition,
                                    }
                                };
                                error_topic(Some(name.to_string()), Uuid::nil(), code)
                            }
                        },
                        (None, id) => match image.topic_by_id(&id) {
                            Some(topic) if !id.is_nil() => topic_metadata(
                                &image,
                                topic,
                                request.include_topic_authorized_operations,
                            ),
                            _ => error_topic(None, id, ErrorCode::UnknownTopicId),
                        },
                    };
                    topics.push(response);
                }
            }
        }
        // Fenced brokers are left out, as KRaft does: clients must not pick
        // them for anything.
        let brokers = image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter_map(|b| {
                let endpoint = b.endpoint(&ctx.listener)?;
                Some(
                    MetadataResponseBroker::default()
                        .with_node_id(broker_id(b.id))
                        .with_host(str_bytes(&endpoint.host))
                        .with_port(i32::from(endpoint.port))
                        .with_rack(b.rack.as_deref().map(str_bytes)),
                )
            })
            .collect();
        let cluster_operations = if request.include_cluster_authorized_operations {
            authorized_operations::cluster()
        } else {
            NOT_REQUESTED
        };
        Outcome::Respond(
            MetadataResponse::default()
                .with_brokers(brokers)
                .with_cluster_id(Some(str_bytes(broker.cluster_id())))
                .with_controller_id(broker_id(broker.node_id()))
                .with_topics(topics)
                .with_cluster_authorized_operations(cluster_operations),
        )
    }

    fn error_response(request: &MetadataRequest, error: ErrorCode) -> MetadataResponse {
        let topics = request
            .topics
            .iter()
            .flatten()
            .map(|t| error_topic(t.name.as_ref().map(|n| n.to_string()), t.topic_id, error))
            .collect();
        MetadataResponse::default().with_topics(topics)
    }
}

fn error_topic(name: Option<String>, id: Uuid, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(name.as_deref().map(topic_name))
        .with_topic_id(id)
        .with_topic_authorized_operations(NOT_REQUESTED)
}

fn topic_metadata(
    image: &MetadataImage,
    topic: &TopicImage,
    include_ops: bool,
) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|(&index, p)| {
            let offline: Vec<_> = p
                .replicas
                .iter()
                .filter(|r| !image.is_live(**r))
                .map(|&r| broker_id(r))
                .collect();
            let error = if p.leader < 0 {
                ErrorCode::LeaderNotAvailable.code()
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(index)
                .with_leader_id(broker_id(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().map(|&r| broker_id(r)).collect())
                .with_isr_nodes(p.isr.iter().map(|&r| broker_id(r)).collect())
                .with_offline_replicas(offline)
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(topic.id)
        .with_is_internal(names::is_internal(&topic.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(if include_ops {
            authorized_operations::topic()
        } else {
            NOT_REQUESTED
        })
}
