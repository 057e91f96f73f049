//! Cluster and admin APIs over raw TCP: Metadata (v0 vs v1+ topic-list
//! semantics, topic ids, auto-creation), DescribeCluster, DescribeLogDirs,
//! DeleteTopics by id, CreatePartitions and DeleteRecords errors, and
//! IncrementalAlterConfigs / DescribeConfigs with their config sources.

mod common;

use common::wire::{self, sb, tn, Conn};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeClusterRequest, DescribeConfigsRequest, DescribeConfigsResponse,
    DescribeLogDirsRequest, IncrementalAlterConfigsRequest, MetadataRequest, MetadataResponse,
};
use millrace_tests::TestBroker;
use uuid::Uuid;

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_TOPIC_ID: i16 = 100;
const MISMATCHED_ENDPOINT_TYPE: i16 = 114;
const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;

// DescribeConfigs sources.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

// Resource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

fn start(overrides: &[(&str, &str)]) -> (TestBroker, Conn) {
    let broker = TestBroker::start(overrides);
    let conn = Conn::connect(broker.addr());
    (broker, conn)
}

fn topic_names(response: &MetadataResponse) -> Vec<String> {
    let mut names: Vec<String> = response
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    names.sort();
    names
}

fn named(names: &[&str]) -> Option<Vec<MetadataRequestTopic>> {
    Some(
        names
            .iter()
            .map(|n| MetadataRequestTopic::default().with_name(Some(tn(n))))
            .collect(),
    )
}

#[test]
fn metadata_topic_list_semantics_by_version() {
    let (broker, mut conn) = start(&[("auto.create.topics.enable", "false")]);
    wire::create_topic(&mut conn, "alpha", 2, &[]);
    wire::create_topic(&mut conn, "beta", 1, &[]);

    // v0: an empty list means every topic.
    let r = conn.call(0, &MetadataRequest::default().with_topics(Some(Vec::new())));
    assert_eq!(topic_names(&r), vec!["alpha", "beta"]);
    for version in [1i16, 4, 9, 12] {
        // v1+: an empty list means none, null means all. (The
        // auto-creation flag exists from v4; it is irrelevant here.)
        let request = MetadataRequest::default().with_allow_auto_topic_creation(version < 4);
        let r = conn.call(version, &request.clone().with_topics(Some(Vec::new())));
        assert!(
            r.topics.is_empty(),
            "v{version} empty list returned {:?}",
            topic_names(&r)
        );
        let r = conn.call(version, &request.with_topics(None));
        assert_eq!(
            topic_names(&r),
            vec!["alpha", "beta"],
            "v{version} null list"
        );
        // Brokers, controller and leaders.
        assert_eq!(r.brokers.len(), 1);
        assert_eq!(r.brokers[0].node_id, BrokerId(1));
        assert_eq!(r.brokers[0].host.as_str(), "127.0.0.1");
        assert_eq!(r.brokers[0].port, i32::from(broker.addr().port()));
        assert_eq!(r.controller_id, BrokerId(1));
        let alpha = r
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some("alpha"))
            .expect("alpha");
        assert_eq!(alpha.error_code, 0);
        let mut indexes: Vec<i32> = alpha.partitions.iter().map(|p| p.partition_index).collect();
        indexes.sort();
        assert_eq!(indexes, vec![0, 1]);
        for p in &alpha.partitions {
            assert_eq!(p.error_code, 0);
            assert_eq!(p.leader_id, BrokerId(1));
            assert_eq!(p.replica_nodes, vec![BrokerId(1)]);
            assert_eq!(p.isr_nodes, vec![BrokerId(1)]);
        }
        if version >= 2 {
            assert!(r.cluster_id.as_ref().is_some_and(|c| !c.is_empty()));
        }
        if version >= 10 {
            assert!(!alpha.topic_id.is_nil());
        }
    }
    // Named topics: unknown and invalid ones get errors.
    let r = conn.call(
        9,
        &MetadataRequest::default()
            .with_topics(named(&["beta", "gamma", "bad name"]))
            .with_allow_auto_topic_creation(true),
    );
    let errors: Vec<(String, i16)> = r
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                t.error_code,
            )
        })
        .collect();
    assert_eq!(
        errors,
        vec![
            ("beta".to_string(), 0),
            ("gamma".to_string(), UNKNOWN_TOPIC_OR_PARTITION),
            ("bad name".to_string(), INVALID_TOPIC_EXCEPTION)
        ]
    );
}

#[test]
fn metadata_by_topic_id_and_auto_creation_flags() {
    let (_broker, mut conn) = start(&[]);
    let id = wire::create_topic(&mut conn, "known", 1, &[]);
    // v10+: by id.
    let r = conn.call(
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default()
                .with_topic_id(id)
                .with_name(None),
            MetadataRequestTopic::default()
                .with_topic_id(Uuid::new_v4())
                .with_name(None),
        ])),
    );
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[0].name.as_ref().map(|n| n.as_str()), Some("known"));
    assert_eq!(r.topics[1].error_code, UNKNOWN_TOPIC_ID);

    // v4+ honours allow_auto_topic_creation=false even when the broker allows it.
    let r = conn.call(
        9,
        &MetadataRequest::default()
            .with_topics(named(&["not-created"]))
            .with_allow_auto_topic_creation(false),
    );
    assert_eq!(r.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    let r = conn.call(9, &MetadataRequest::default().with_topics(None));
    assert_eq!(topic_names(&r), vec!["known"]);

    // ... and creates the topic (num.partitions) when allowed.
    let r = conn.call(
        9,
        &MetadataRequest::default()
            .with_topics(named(&["created"]))
            .with_allow_auto_topic_creation(true),
    );
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[0].partitions.len(), 1);
    assert_eq!(r.topics[0].partitions[0].leader_id, BrokerId(1));
    // The new topic takes records at once.
    assert_eq!(
        wire::produce_ok(&mut conn, "created", 0, wire::simple_batch(1)),
        0
    );
    // v0-v3 always allow auto-creation.
    let r = conn.call(
        1,
        &MetadataRequest::default().with_topics(named(&["old-client"])),
    );
    assert_eq!(r.topics[0].error_code, 0);
}

#[test]
fn describe_cluster_lists_this_broker() {
    let (broker, mut conn) = start(&[]);
    for version in 0i16..=1 {
        let r = conn.call(
            version,
            &DescribeClusterRequest::default()
                .with_endpoint_type(1)
                .with_include_cluster_authorized_operations(false),
        );
        assert_eq!(r.error_code, 0);
        assert!(!r.cluster_id.is_empty());
        assert_eq!(r.controller_id, BrokerId(1));
        assert_eq!(r.brokers.len(), 1);
        let b = &r.brokers[0];
        assert_eq!(b.broker_id, BrokerId(1));
        assert_eq!(b.host.as_str(), "127.0.0.1");
        assert_eq!(b.port, i32::from(broker.addr().port()));
        // The same cluster id as Metadata reports.
        let metadata = conn.call(12, &MetadataRequest::default().with_topics(None));
        assert_eq!(
            metadata.cluster_id.as_ref().map(|c| c.as_str()),
            Some(r.cluster_id.as_str())
        );
    }
    // A broker cannot describe the controller quorum (endpoint type 2);
    // an endpoint type KIP-919 does not define is unsupported.
    let r = conn.call(1, &DescribeClusterRequest::default().with_endpoint_type(2));
    assert_eq!(r.error_code, MISMATCHED_ENDPOINT_TYPE);
    assert!(r.brokers.is_empty());
    for unknown in [0i8, 3] {
        let r = conn.call(
            1,
            &DescribeClusterRequest::default().with_endpoint_type(unknown),
        );
        assert_eq!(
            r.error_code, UNSUPPORTED_ENDPOINT_TYPE,
            "endpoint type {unknown}"
        );
    }
    // The connection is still in step.
    let r = conn.call(1, &DescribeClusterRequest::default().with_endpoint_type(1));
    assert_eq!(r.error_code, 0);
}

#[test]
fn describe_log_dirs_reports_partition_sizes() {
    let (broker, mut conn) = start(&[]);
    wire::create_topic(&mut conn, "sized", 2, &[]);
    wire::create_topic(&mut conn, "other", 1, &[]);
    for _ in 0..5 {
        wire::produce_ok(&mut conn, "sized", 0, wire::simple_batch(10));
    }
    let log_dir = broker.log_dir();
    for version in 1i16..=4 {
        let r = conn.call(
            version,
            &DescribeLogDirsRequest::default().with_topics(None),
        );
        assert_eq!(r.error_code, 0);
        assert_eq!(r.results.len(), 1);
        let dir = &r.results[0];
        assert_eq!(dir.error_code, 0);
        assert_eq!(
            std::fs::canonicalize(dir.log_dir.as_str()).expect("log dir exists"),
            std::fs::canonicalize(&log_dir).expect("log dir")
        );
        let sized = dir
            .topics
            .iter()
            .find(|t| t.name.as_str() == "sized")
            .expect("sized topic listed");
        let mut sizes: Vec<(i32, i64)> = sized
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.partition_size))
            .collect();
        sizes.sort();
        assert_eq!(sizes.len(), 2);
        assert!(sizes[0].1 > 5 * 10 * 4, "partition 0 size {}", sizes[0].1);
        assert_eq!(sizes[1].1, 0, "partition 1 is empty");
        assert!(dir.topics.iter().any(|t| t.name.as_str() == "other"));
        if version >= 4 {
            assert!(dir.total_bytes > 0);
            assert!(dir.usable_bytes > 0 && dir.usable_bytes <= dir.total_bytes);
        }
    }
    // Asking for one partition returns just that one.
    let r = conn.call(
        4,
        &DescribeLogDirsRequest::default().with_topics(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(tn("sized"))
                .with_partitions(vec![0]),
        ])),
    );
    let topics = &r.results[0].topics;
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].partitions.len(), 1);
    assert_eq!(topics[0].partitions[0].partition_index, 0);
}

#[test]
fn delete_topics_by_name_and_by_id() {
    let (_broker, mut conn) = start(&[("auto.create.topics.enable", "false")]);
    let id = wire::create_topic(&mut conn, "by-id", 1, &[]);
    wire::create_topic(&mut conn, "by-name", 1, &[]);
    wire::produce_ok(&mut conn, "by-id", 0, wire::simple_batch(3));

    let unknown = Uuid::new_v4();
    let r = conn.call(
        6,
        &DeleteTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![
                DeleteTopicState::default().with_topic_id(id),
                DeleteTopicState::default().with_topic_id(unknown),
                DeleteTopicState::default()
                    .with_name(Some(tn("by-name")))
                    .with_topic_id(id),
            ]),
    );
    assert_eq!(r.responses.len(), 3);
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(
        r.responses[0].name.as_ref().map(|n| n.as_str()),
        Some("by-id")
    );
    assert_eq!(r.responses[0].topic_id, id);
    assert_eq!(r.responses[1].error_code, UNKNOWN_TOPIC_ID);
    // Both a name and an id: invalid.
    assert_eq!(r.responses[2].error_code, INVALID_REQUEST);

    let r = conn.call(
        4,
        &DeleteTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topic_names(vec![tn("by-name"), tn("never-was")]),
    );
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(r.responses[1].error_code, UNKNOWN_TOPIC_OR_PARTITION);

    let r = conn.call(12, &MetadataRequest::default().with_topics(None));
    assert!(r.topics.is_empty(), "left: {:?}", topic_names(&r));
    let p = wire::produce(&mut conn, "by-id", 0, wire::simple_batch(1));
    assert_eq!(p.error_code, UNKNOWN_TOPIC_OR_PARTITION);

    // A topic re-created under the same name starts empty with a new id.
    let new_id = wire::create_topic(&mut conn, "by-id", 1, &[]);
    assert_ne!(new_id, id);
    let data = wire::fetch(&mut conn, "by-id", 0, 0);
    assert_eq!(data.high_watermark, 0);
}

fn grow(topic: &str, count: i32, assignments: Option<Vec<Vec<i32>>>) -> CreatePartitionsTopic {
    CreatePartitionsTopic::default()
        .with_name(tn(topic))
        .with_count(count)
        .with_assignments(assignments.map(|list| {
            list.into_iter()
                .map(|ids| {
                    CreatePartitionsAssignment::default()
                        .with_broker_ids(ids.into_iter().map(BrokerId).collect())
                })
                .collect()
        }))
}

#[test]
fn create_partitions_grows_and_rejects_bad_requests() {
    let (_broker, mut conn) = start(&[]);
    wire::create_topic(&mut conn, "grow", 2, &[]);
    let call = |conn: &mut Conn, topics: Vec<CreatePartitionsTopic>, validate_only: bool| {
        conn.call(
            3,
            &CreatePartitionsRequest::default()
                .with_topics(topics)
                .with_timeout_ms(10_000)
                .with_validate_only(validate_only),
        )
        .results
        .iter()
        .map(|r| r.error_code)
        .collect::<Vec<_>>()
    };
    let partitions = |conn: &mut Conn| {
        conn.call(
            12,
            &MetadataRequest::default().with_topics(named(&["grow"])),
        )
        .topics[0]
            .partitions
            .len()
    };
    // Fewer or as many partitions as now, unknown topic, wrong assignments.
    assert_eq!(
        call(
            &mut conn,
            vec![grow("grow", 1, None), grow("grow-2", 3, None),],
            false
        ),
        vec![INVALID_PARTITIONS, UNKNOWN_TOPIC_OR_PARTITION]
    );
    assert_eq!(
        call(&mut conn, vec![grow("grow", 2, None)], false),
        vec![INVALID_PARTITIONS]
    );
    assert_eq!(
        call(&mut conn, vec![grow("grow", 4, Some(vec![vec![1]]))], false),
        vec![INVALID_REPLICA_ASSIGNMENT],
        "one assignment for two new partitions"
    );
    assert_eq!(
        call(
            &mut conn,
            vec![grow("grow", 3, Some(vec![vec![42]]))],
            false
        ),
        vec![INVALID_REPLICA_ASSIGNMENT],
        "unknown broker"
    );
    // validate_only checks but changes nothing.
    assert_eq!(call(&mut conn, vec![grow("grow", 5, None)], true), vec![0]);
    assert_eq!(partitions(&mut conn), 2);
    assert_eq!(
        call(
            &mut conn,
            vec![grow("grow", 4, Some(vec![vec![1], vec![1]]))],
            false
        ),
        vec![0]
    );
    assert_eq!(partitions(&mut conn), 4);
    assert_eq!(
        wire::produce_ok(&mut conn, "grow", 3, wire::simple_batch(2)),
        0
    );
}

fn delete_records(conn: &mut Conn, topic: &str, partition: i32, offset: i64) -> (i16, i64) {
    let r = conn.call(
        2,
        &DeleteRecordsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(tn(topic))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(offset)])]),
    );
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

#[test]
fn delete_records_moves_the_log_start_and_rejects_offsets_past_the_high_watermark() {
    let (_broker, mut conn) = start(&[]);
    wire::create_topic(&mut conn, "trim", 1, &[]);
    for _ in 0..4 {
        wire::produce_ok(&mut conn, "trim", 0, wire::simple_batch(5));
    }
    assert_eq!(
        delete_records(&mut conn, "trim", 0, 21),
        (OFFSET_OUT_OF_RANGE, -1)
    );
    assert_eq!(delete_records(&mut conn, "trim", 0, 7), (0, 7));
    // Moving backwards is a no-op that reports the current low watermark.
    assert_eq!(delete_records(&mut conn, "trim", 0, 3), (0, 7));
    let data = wire::fetch(&mut conn, "trim", 0, 7);
    assert_eq!(data.log_start_offset, 7);
    let records = wire::records_of(data.records.as_deref().unwrap_or_default());
    assert!(records.iter().any(|r| r.offset == 7));
    let data = wire::fetch(&mut conn, "trim", 0, 6);
    assert_eq!(data.error_code, OFFSET_OUT_OF_RANGE);
    // -1: up to the high watermark.
    assert_eq!(delete_records(&mut conn, "trim", 0, -1), (0, 20));
    assert_eq!(
        delete_records(&mut conn, "missing", 0, 0).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    // Producing continues after the trimmed range.
    assert_eq!(
        wire::produce_ok(&mut conn, "trim", 0, wire::simple_batch(1)),
        20
    );
}

fn alter(name: &str, op: i8, value: Option<&str>) -> AlterableConfig {
    AlterableConfig::default()
        .with_name(sb(name))
        .with_config_operation(op)
        .with_value(value.map(sb))
}

fn incremental(
    conn: &mut Conn,
    resource_type: i8,
    resource: &str,
    configs: Vec<AlterableConfig>,
    validate_only: bool,
) -> i16 {
    let r = conn.call(
        1,
        &IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(sb(resource))
                .with_configs(configs)]),
    );
    r.responses[0].error_code
}

fn describe(
    conn: &mut Conn,
    resource_type: i8,
    resource: &str,
    keys: &[&str],
) -> DescribeConfigsResponse {
    conn.call(
        4,
        &DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(sb(resource))
                .with_configuration_keys(Some(keys.iter().map(|k| sb(k)).collect()))]),
    )
}

/// (value, source) of one config of one resource.
fn config(conn: &mut Conn, resource_type: i8, resource: &str, key: &str) -> (Option<String>, i8) {
    let r = describe(conn, resource_type, resource, &[key]);
    assert_eq!(
        r.results[0].error_code, 0,
        "{:?}",
        r.results[0].error_message
    );
    let entry = r.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .unwrap_or_else(|| panic!("{key} not described"));
    (
        entry.value.as_ref().map(|v| v.to_string()),
        entry.config_source,
    )
}

#[test]
fn incremental_alter_configs_set_delete_append_subtract() {
    let (_broker, mut conn) = start(&[("log.retention.ms", "86400000")]);
    wire::create_topic(&mut conn, "cfg", 1, &[]);

    // Sources before any override.
    assert_eq!(
        config(&mut conn, TOPIC, "cfg", "retention.ms"),
        (Some("86400000".into()), STATIC_BROKER_CONFIG)
    );
    assert_eq!(
        config(&mut conn, TOPIC, "cfg", "cleanup.policy"),
        (Some("delete".into()), DEFAULT_CONFIG)
    );

    // SET.
    assert_eq!(
        incremental(
            &mut conn,
            TOPIC,
            "cfg",
            vec![alter("retention.ms", 0, Some("1234567"))],
            false
        ),
        0
    );
    assert_eq!(
        config(&mut conn, TOPIC, "cfg", "retention.ms"),
        (Some("1234567".into()), DYNAMIC_TOPIC_CONFIG)
    );
    // Synonyms list the override first, then the broker's static value.
    let r = describe(&mut conn, TOPIC, "cfg", &["retention.ms"]);
    let synonyms: Vec<(String, i8)> = r.results[0].configs[0]
        .synonyms
        .iter()
        .map(|s| (s.name.to_string(), s.source))
        .collect();
    assert_eq!(
        synonyms.first(),
        Some(&("retention.ms".to_string(), DYNAMIC_TOPIC_CONFIG))
    );
    assert!(
        synonyms.contains(&("log.retention.ms".to_string(), STATIC_BROKER_CONFIG)),
        "{synonyms:?}"
    );

    // APPEND and SUBTRACT on a list config.
    assert_eq!(
        incremental(
            &mut conn,
            TOPIC,
            "cfg",
            vec![alter("cleanup.policy", 2, Some("compact"))],
            false
        ),
        0
    );
    assert_eq!(
        config(&mut conn, TOPIC, "cfg", "cleanup.policy"),
        (Some("delete,compact".into()), DYNAMIC_TOPIC_CONFIG)
    );
    assert_eq!(
        incremental(
            &mut conn,
            TOPIC,
            "cfg",
            vec![alter("cleanup.policy", 3, Some("delete"))],
            false
        ),
        0
    );
    assert_eq!(
        config(&mut conn, TOPIC, "cfg", "cleanup.policy"),
        (Some("compact".into()), DYNAMIC_TOPIC_CONFIG)
    );

    // DELETE falls back to the broker's value; SET/DELETE of others untouched.
    assert_eq!(
        incremental(
            &mut conn,
            TOPIC,
            "cfg",
            vec![alter("retention.ms", 1, None)],
            false
        ),
        0
    );
    assert_eq!(
        config(&mut conn, TOPIC, "cfg", "retention.ms"),
        (Some("86400000".into()), STATIC_BROKER_CONFIG)
    );
    assert_eq!(
        config(&mut conn, TOPIC, "cfg", "cleanup.policy"),
        (Some("compact".into()), DYNAMIC_TOPIC_CONFIG)
    );

    // validate_only changes nothing.
    assert_eq!(
        incremental(
            &mut conn,
            TOPIC,
            "cfg",
            vec![alter("retention.ms", 0, Some("5"))],
            true
        ),
        0
    );
    assert_eq!(
        config(&mut conn, TOPIC, "cfg", "retention.ms").1,
        STATIC_BROKER_CONFIG
    );

    // Errors: bad value, unknown name, unknown topic, unknown operation.
    assert_eq!(
        incremental(
            &mut conn,
            TOPIC,
            "cfg",
            vec![alter("retention.ms", 0, Some("soon"))],
            false
        ),
        INVALID_CONFIG
    );
    assert_eq!(
        incremental(
            &mut conn,
            TOPIC,
            "cfg",
            vec![alter("no.such.config", 0, Some("1"))],
            false
        ),
        INVALID_CONFIG
    );
    assert_eq!(
        incremental(
            &mut conn,
            TOPIC,
            "nope",
            vec![alter("retention.ms", 0, Some("1"))],
            false
        ),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        incremental(
            &mut conn,
            TOPIC,
            "cfg",
            vec![alter("retention.ms", 9, Some("1"))],
            false
        ),
        INVALID_REQUEST
    );
    assert_eq!(
        config(&mut conn, TOPIC, "cfg", "retention.ms").1,
        STATIC_BROKER_CONFIG
    );
}

#[test]
fn legacy_alter_configs_replaces_all_overrides_and_reports_errors() {
    use kafka_protocol::messages::alter_configs_request::{
        AlterConfigsResource as Resource, AlterableConfig as Config,
    };
    use kafka_protocol::messages::AlterConfigsRequest;
    let (_broker, mut conn) = start(&[]);
    wire::create_topic(
        &mut conn,
        "legacy",
        1,
        &[("retention.ms", "3600000"), ("segment.ms", "600000")],
    );
    let alter = |conn: &mut Conn,
                 version: i16,
                 topic: &str,
                 configs: &[(&str, &str)],
                 validate_only: bool| {
        let r = conn.call(
            version,
            &AlterConfigsRequest::default()
                .with_validate_only(validate_only)
                .with_resources(vec![Resource::default()
                    .with_resource_type(TOPIC)
                    .with_resource_name(sb(topic))
                    .with_configs(
                        configs
                            .iter()
                            .map(|(k, v)| {
                                Config::default().with_name(sb(k)).with_value(Some(sb(v)))
                            })
                            .collect(),
                    )]),
        );
        r.responses[0].error_code
    };
    assert_eq!(
        alter(
            &mut conn,
            0,
            "legacy",
            &[("retention.ms", "7200000")],
            false
        ),
        0
    );
    assert_eq!(
        config(&mut conn, TOPIC, "legacy", "retention.ms"),
        (Some("7200000".into()), DYNAMIC_TOPIC_CONFIG)
    );
    // segment.ms was not in the request: its override is gone.
    assert_eq!(
        config(&mut conn, TOPIC, "legacy", "segment.ms"),
        (Some("604800000".into()), DEFAULT_CONFIG)
    );
    for version in 0i16..=2 {
        assert_eq!(
            alter(
                &mut conn,
                version,
                "legacy",
                &[("retention.ms", "forever")],
                false
            ),
            INVALID_CONFIG
        );
        assert_eq!(
            alter(
                &mut conn,
                version,
                "legacy",
                &[("no.such.config", "1")],
                false
            ),
            INVALID_CONFIG
        );
        assert_eq!(
            alter(
                &mut conn,
                version,
                "absent",
                &[("retention.ms", "1")],
                false
            ),
            UNKNOWN_TOPIC_OR_PARTITION
        );
        assert_eq!(
            alter(&mut conn, version, "legacy", &[("retention.ms", "5")], true),
            0
        );
    }
    assert_eq!(
        config(&mut conn, TOPIC, "legacy", "retention.ms").0,
        Some("7200000".into())
    );
}

#[test]
fn describe_configs_of_broker_and_unknown_resources() {
    let (_broker, mut conn) = start(&[]);
    // Set in the broker's properties file: static.
    assert_eq!(
        config(&mut conn, BROKER, "1", "auto.create.topics.enable"),
        (Some("true".into()), STATIC_BROKER_CONFIG)
    );
    assert_eq!(
        config(&mut conn, BROKER, "1", "num.partitions").0,
        Some("1".into())
    );
    // Not set anywhere: Kafka's default.
    assert_eq!(
        config(&mut conn, BROKER, "1", "background.threads"),
        (Some("10".into()), DEFAULT_CONFIG)
    );
    // All configs when no keys are named.
    let r = conn.call(
        4,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(sb("1"))
            .with_configuration_keys(None)]),
    );
    assert!(
        r.results[0].configs.len() > 100,
        "{} broker configs",
        r.results[0].configs.len()
    );
    let r = describe(&mut conn, TOPIC, "missing", &["retention.ms"]);
    assert_eq!(r.results[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    let r = describe(&mut conn, BROKER, "7", &["num.partitions"]);
    assert_eq!(r.results[0].error_code, INVALID_REQUEST);
}

#[test]
fn delete_records_on_a_compact_only_topic_is_a_policy_violation() {
    const POLICY_VIOLATION: i16 = 44;
    let (_broker, mut conn) = start(&[]);
    wire::create_topic(
        &mut conn,
        "compact-only",
        1,
        &[("cleanup.policy", "compact")],
    );
    wire::create_topic(
        &mut conn,
        "both",
        1,
        &[("cleanup.policy", "compact,delete")],
    );
    let keyed = || {
        wire::batch(
            &[wire::kv(b"k", b"v"); 3],
            wire::now_ms(),
            millrace_protocol::records::Compression::None,
        )
    };
    wire::produce_ok(&mut conn, "compact-only", 0, keyed());
    wire::produce_ok(&mut conn, "both", 0, keyed());
    assert_eq!(
        delete_records(&mut conn, "compact-only", 0, 2),
        (POLICY_VIOLATION, -1)
    );
    assert_eq!(
        wire::fetch(&mut conn, "compact-only", 0, 0).log_start_offset,
        0
    );
    assert_eq!(delete_records(&mut conn, "both", 0, 2), (0, 2));
}

#[test]
fn create_topics_raw_errors_and_configs_in_the_response() {
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic,
    };
    use kafka_protocol::messages::CreateTopicsRequest;
    let (_broker, mut conn) = start(&[]);
    let both = CreatableTopic::default()
        .with_name(tn("both-ways"))
        .with_num_partitions(2)
        .with_replication_factor(1)
        .with_assignments(vec![CreatableReplicaAssignment::default()
            .with_partition_index(0)
            .with_broker_ids(vec![BrokerId(1)])]);
    let gap = CreatableTopic::default()
        .with_name(tn("gap"))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![CreatableReplicaAssignment::default()
            .with_partition_index(1)
            .with_broker_ids(vec![BrokerId(1)])]);
    let fine = CreatableTopic::default()
        .with_name(tn("fine"))
        .with_num_partitions(2)
        .with_replication_factor(1);
    let r = conn.call(
        7,
        &CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![both, gap, fine.clone()]),
    );
    let codes: Vec<i16> = r.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![INVALID_REQUEST, INVALID_REPLICA_ASSIGNMENT, 0]);
    let created = &r.topics[2];
    assert_eq!((created.num_partitions, created.replication_factor), (2, 1));
    assert!(!created.topic_id.is_nil());
    // v5+: the new topic's configs with their sources.
    let configs = created.configs.as_ref().expect("configs from v5");
    let policy = configs
        .iter()
        .find(|c| c.name.as_str() == "cleanup.policy")
        .expect("cleanup.policy");
    assert_eq!(policy.value.as_ref().map(|v| v.as_str()), Some("delete"));
    assert_eq!(policy.config_source, DEFAULT_CONFIG);
    // Creating it again: TOPIC_ALREADY_EXISTS (36) with a message.
    let r = conn.call(
        7,
        &CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![fine]),
    );
    assert_eq!(r.topics[0].error_code, 36);
    assert!(r.topics[0].error_message.is_some());
}
