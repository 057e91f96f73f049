//! DescribeLogDirs: each log directory with the size of every partition in
//! it and (v4+) the disk's total and usable bytes.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};
use millrace_protocol::{ApiKey, ErrorCode};

use super::{Handler, Outcome};
use crate::request_context::RequestContext;
use crate::wire::{str_bytes, topic_name};

/// Serves DescribeLogDirs v1-v4 (Kafka 3.7 serves v0-v4; v0 was removed by KIP-896).
pub struct DescribeLogDirsHandler;

impl Handler for DescribeLogDirsHandler {
    const KEY: ApiKey = ApiKey::DescribeLogDirs;
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 4;
    type Request = DescribeLogDirsRequest;
    type Response = DescribeLogDirsResponse;

    async fn handle(
        ctx: &RequestContext,
        request: DescribeLogDirsRequest,
    ) -> Outcome<DescribeLogDirsResponse> {
        let wanted: Option<HashSet<(String, i32)>> = request.topics.as_ref().map(|topics| {
            topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(move |&p| (t.topic.to_string(), p)))
                .collect()
        });
        let usage = ctx.broker.partitions().log_manager().dir_usage();
        let results = usage
            .into_iter()
            .map(|dir| {
                let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
                for usage in &dir.partitions {
                    let tp = &usage.topic_partition;
                    if wanted
                        .as_ref()
                        .is_some_and(|w| !w.contains(&(tp.topic.clone(), tp.partition)))
                    {
                        continue;
                    }
                    by_topic.entry(tp.topic.clone()).or_default().push(
                        DescribeLogDirsPartition::default()
                            .with_partition_index(tp.partition)
                            .with_partition_size(usage.size_bytes as i64)
                            .with_offset_lag(0),
                    );
                }
                let error = if dir.error.is_some() {
                    ErrorCode::KafkaStorageError.code()
                } else {
                    0
                };
                DescribeLogDirsResult::default()
                    .with_error_code(error)
                    .with_log_dir(str_bytes(&dir.path.to_string_lossy()))
                    .with_topics(
                        by_topic
                            .into_iter()
                            .map(|(name, partitions)| {
                                DescribeLogDirsTopic::default()
                                    .with_name(topic_name(&name))
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    )
                    .with_total_bytes(dir.total_bytes as i64)
                    .with_usable_bytes(dir.usable_bytes as i64)
            })
            .collect();
        Outcome::Respond(DescribeLogDirsResponse::default().with_results(results))
    }

    fn error_response(
        _request: &DescribeLogDirsRequest,
        error: ErrorCode,
    ) -> DescribeLogDirsResponse {
        DescribeLogDirsResponse::default().with_error_code(error.code())
    }
}
