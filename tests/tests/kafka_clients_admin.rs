//! Admin operations through librdkafka's Admin API (the `rdkafka` crate):
//! topic creation (partitions, configs, explicit assignment, validate-only)
//! and its errors, deletion, partition growth, DescribeConfigs sources,
//! AlterConfigs and IncrementalAlterConfigs (taking effect on produce), and
//! DeleteRecords.

mod common;

use std::time::Duration;

use common::clients::{self, admin_opts, wait};
use millrace_tests::TestBroker;
use rdkafka::admin::{
    AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(20);

/// Partition count of `topic` per metadata, `None` if it does not exist.
fn partition_count(broker: &TestBroker, topic: &str) -> Option<usize> {
    let consumer = clients::consumer(broker, &[]);
    let metadata = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .expect("metadata");
    let t = &metadata.topics()[0];
    match t.error() {
        None => Some(t.partitions().len()),
        Some(_) => None,
    }
}

fn topic_names(broker: &TestBroker) -> Vec<String> {
    let consumer = clients::consumer(broker, &[]);
    let metadata = consumer.fetch_metadata(None, TIMEOUT).expect("metadata");
    // A consumer with a group id looks its coordinator up at once, which
    // creates Kafka's internal __consumer_offsets: list user topics only.
    let mut names: Vec<String> = metadata
        .topics()
        .iter()
        .filter(|t| !t.name().starts_with("__"))
        .map(|t| t.name().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn create_topics_with_partitions_configs_and_assignment() {
    let broker = TestBroker::start(&[("auto.create.topics.enable", "false")]);
    let admin = clients::admin(&broker);
    let topics = [
        NewTopic::new("three", 3, TopicReplication::Fixed(1))
            .set("retention.ms", "3600000")
            .set("cleanup.policy", "compact"),
        NewTopic::new("assigned", 2, TopicReplication::Variable(&[&[1], &[1]])),
        NewTopic::new("defaults", -1, TopicReplication::Fixed(-1)),
    ];
    let results = wait(admin.create_topics(&topics, &admin_opts())).expect("create_topics");
    let results: Vec<_> = results.into_iter().collect();
    assert_eq!(
        results,
        vec![
            Ok("three".to_string()),
            Ok("assigned".to_string()),
            Ok("defaults".to_string())
        ]
    );

    let consumer = clients::consumer(&broker, &[]);
    let metadata = consumer.fetch_metadata(None, TIMEOUT).expect("metadata");
    let mut seen: Vec<(String, usize)> = metadata
        .topics()
        .iter()
        .filter(|t| !t.name().starts_with("__"))
        .map(|t| {
            assert!(t.error().is_none(), "{}: {:?}", t.name(), t.error());
            for p in t.partitions() {
                assert_eq!(p.leader(), 1);
                assert_eq!(p.replicas(), &[1]);
                assert_eq!(p.isr(), &[1]);
            }
            (t.name().to_string(), t.partitions().len())
        })
        .collect();
    seen.sort();
    // num.partitions is 1 (MSK's default) when the request leaves it out.
    assert_eq!(
        seen,
        vec![
            ("assigned".into(), 2),
            ("defaults".into(), 1),
            ("three".into(), 3)
        ]
    );

    let described =
        wait(admin.describe_configs(&[ResourceSpecifier::Topic("three")], &admin_opts()))
            .expect("describe_configs");
    let config = described
        .into_iter()
        .next()
        .expect("one result")
        .expect("topic configs");
    let retention = config.get("retention.ms").expect("retention.ms");
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    let policy = config.get("cleanup.policy").expect("cleanup.policy");
    assert_eq!(policy.value.as_deref(), Some("compact"));
    assert_eq!(policy.source, ConfigSource::DynamicTopic);
}

#[test]
fn validate_only_creates_nothing() {
    let broker = TestBroker::start(&[("auto.create.topics.enable", "false")]);
    let admin = clients::admin(&broker);
    let opts = admin_opts().validate_only(true);
    let results = wait(admin.create_topics(
        &[NewTopic::new("checked", 4, TopicReplication::Fixed(1))],
        &opts,
    ))
    .expect("create_topics");
    assert_eq!(results, vec![Ok("checked".to_string())]);
    // Validation still applies.
    let results = wait(admin.create_topics(
        &[NewTopic::new("checked", 4, TopicReplication::Fixed(3))],
        &opts,
    ))
    .expect("create_topics");
    assert_eq!(
        results,
        vec![Err((
            "checked".to_string(),
            RDKafkaErrorCode::InvalidReplicationFactor
        ))]
    );
    assert!(topic_names(&broker).is_empty());
    assert_eq!(partition_count(&broker, "checked"), None);
}

#[test]
fn create_topics_errors() {
    let broker = TestBroker::start(&[("auto.create.topics.enable", "false")]);
    clients::create_topics(&broker, &[("exists", 1, &[])]);
    let admin = clients::admin(&broker);
    let long_name = "x".repeat(250);
    let topics = [
        NewTopic::new("exists", 1, TopicReplication::Fixed(1)),
        NewTopic::new("bad name!", 1, TopicReplication::Fixed(1)),
        NewTopic::new(&long_name, 1, TopicReplication::Fixed(1)),
        NewTopic::new("zero-partitions", 0, TopicReplication::Fixed(1)),
        NewTopic::new("three-replicas", 1, TopicReplication::Fixed(3)),
        NewTopic::new("bad-policy", 1, TopicReplication::Fixed(1)).set("cleanup.policy", "shred"),
        NewTopic::new("bad-number", 1, TopicReplication::Fixed(1)).set("retention.ms", "soon"),
        NewTopic::new("unknown-config", 1, TopicReplication::Fixed(1)).set("no.such.config", "1"),
        NewTopic::new("unknown-broker", 1, TopicReplication::Variable(&[&[7]])),
    ];
    let results = wait(admin.create_topics(&topics, &admin_opts())).expect("create_topics");
    let codes: Vec<(String, RDKafkaErrorCode)> = results
        .into_iter()
        .map(|r| r.expect_err("every creation must fail"))
        .map(|(name, code)| (name.chars().take(20).collect(), code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("exists".into(), RDKafkaErrorCode::TopicAlreadyExists),
            ("bad name!".into(), RDKafkaErrorCode::InvalidTopic),
            ("x".repeat(20), RDKafkaErrorCode::InvalidTopic),
            (
                "zero-partitions".into(),
                RDKafkaErrorCode::InvalidPartitions
            ),
            (
                "three-replicas".into(),
                RDKafkaErrorCode::InvalidReplicationFactor
            ),
            ("bad-policy".into(), RDKafkaErrorCode::InvalidConfig),
            ("bad-number".into(), RDKafkaErrorCode::InvalidConfig),
            ("unknown-config".into(), RDKafkaErrorCode::InvalidConfig),
            (
                "unknown-broker".into(),
                RDKafkaErrorCode::InvalidReplicaAssignment
            ),
        ]
    );
    assert_eq!(topic_names(&broker), vec!["exists"]);
}

#[test]
fn delete_topics_and_recreate() {
    let broker = TestBroker::start(&[("auto.create.topics.enable", "false")]);
    clients::create_topics(&broker, &[("doomed", 2, &[]), ("kept", 1, &[])]);
    let producer = clients::producer(&broker, &[]);
    for i in 0..5 {
        clients::send(
            &producer,
            FutureRecord::to("doomed")
                .partition(0)
                .payload(&b"x"[..])
                .key(&format!("{i}").into_bytes()[..]),
        );
    }
    let admin = clients::admin(&broker);
    let results = wait(admin.delete_topics(&["doomed", "never-existed"], &admin_opts()))
        .expect("delete_topics");
    assert_eq!(
        results,
        vec![
            Ok("doomed".to_string()),
            Err((
                "never-existed".to_string(),
                RDKafkaErrorCode::UnknownTopicOrPartition
            ))
        ]
    );
    assert_eq!(topic_names(&broker), vec!["kept"]);

    // Re-created under the same name, the topic starts empty.
    clients::create_topics(&broker, &[("doomed", 1, &[])]);
    let consumer = clients::consumer(&broker, &[]);
    assert_eq!(
        consumer
            .fetch_watermarks("doomed", 0, TIMEOUT)
            .expect("watermarks"),
        (0, 0)
    );
}

#[test]
fn create_partitions_grows_a_topic() {
    let broker = TestBroker::start(&[("auto.create.topics.enable", "false")]);
    clients::create_topics(&broker, &[("growing", 1, &[])]);
    let admin = clients::admin(&broker);
    let results = wait(admin.create_partitions(&[NewPartitions::new("growing", 3)], &admin_opts()))
        .expect("create_partitions");
    assert_eq!(results, vec![Ok("growing".to_string())]);
    assert_eq!(partition_count(&broker, "growing"), Some(3));

    let producer = clients::producer(&broker, &[]);
    let (partition, offset) = clients::send(
        &producer,
        FutureRecord::to("growing")
            .partition(2)
            .key(&b"k"[..])
            .payload(&b"v"[..]),
    );
    assert_eq!((partition, offset), (2, 0));

    let results = wait(admin.create_partitions(
        &[
            NewPartitions::new("growing", 2),
            NewPartitions::new("growing-not", 4),
        ],
        &admin_opts(),
    ))
    .expect("create_partitions");
    assert_eq!(
        results,
        vec![
            Err(("growing".to_string(), RDKafkaErrorCode::InvalidPartitions)),
            Err((
                "growing-not".to_string(),
                RDKafkaErrorCode::UnknownTopicOrPartition
            )),
        ]
    );
    // validate_only leaves the topic alone.
    let results = wait(admin.create_partitions(
        &[NewPartitions::new("growing", 6)],
        &admin_opts().validate_only(true),
    ))
    .expect("create_partitions");
    assert_eq!(results, vec![Ok("growing".to_string())]);
    assert_eq!(partition_count(&broker, "growing"), Some(3));
}

#[test]
fn describe_configs_reports_sources() {
    let broker = TestBroker::start(&[("log.retention.ms", "86400000")]);
    clients::create_topics(&broker, &[("described", 1, &[("segment.ms", "600000")])]);
    let admin = clients::admin(&broker);
    let results = wait(admin.describe_configs(
        &[
            ResourceSpecifier::Topic("described"),
            ResourceSpecifier::Broker(1),
        ],
        &admin_opts(),
    ))
    .expect("describe_configs");
    let mut results = results.into_iter();
    let topic = results.next().expect("topic").expect("topic configs");
    let broker_configs = results.next().expect("broker").expect("broker configs");

    let entry = |r: &rdkafka::admin::ConfigResource, name: &str| {
        let e = r
            .get(name)
            .unwrap_or_else(|| panic!("{name} not described"));
        (e.value.clone(), format!("{:?}", e.source))
    };
    // A topic override, a value inherited from the broker's static
    // configuration, and a plain default.
    assert_eq!(
        entry(&topic, "segment.ms"),
        (Some("600000".into()), "DynamicTopic".into())
    );
    assert_eq!(
        entry(&topic, "retention.ms"),
        (Some("86400000".into()), "StaticBroker".into())
    );
    assert_eq!(
        entry(&topic, "min.insync.replicas"),
        (Some("1".into()), "StaticBroker".into())
    );
    assert_eq!(
        entry(&topic, "cleanup.policy"),
        (Some("delete".into()), "Default".into())
    );
    assert!(topic.get("cleanup.policy").is_some_and(|e| e.is_default));
    assert!(topic.get("segment.ms").is_some_and(|e| !e.is_default));
    assert!(
        topic.entries.len() > 20,
        "{} topic configs",
        topic.entries.len()
    );

    assert_eq!(
        entry(&broker_configs, "log.retention.ms"),
        (Some("86400000".into()), "StaticBroker".into())
    );
    assert_eq!(
        entry(&broker_configs, "auto.create.topics.enable"),
        (Some("true".into()), "StaticBroker".into())
    );
    assert_eq!(
        entry(&broker_configs, "background.threads"),
        (Some("10".into()), "Default".into())
    );

    // (The `rdkafka` crate drops per-resource errors of DescribeConfigs and
    // AlterConfigs, so their error codes are checked in protocol_admin.rs.)
}

#[test]
fn alter_configs_replaces_the_topic_overrides() {
    let broker = TestBroker::start(&[]);
    clients::create_topics(
        &broker,
        &[(
            "altered",
            1,
            &[("retention.ms", "3600000"), ("segment.ms", "600000")],
        )],
    );
    let admin = clients::admin(&broker);
    // Legacy AlterConfigs sets the complete override set.
    let change =
        AlterConfig::new(ResourceSpecifier::Topic("altered")).set("retention.ms", "7200000");
    let results = wait(admin.alter_configs(&[change], &admin_opts())).expect("alter_configs");
    assert!(results[0].is_ok(), "{results:?}");
    let described =
        wait(admin.describe_configs(&[ResourceSpecifier::Topic("altered")], &admin_opts()))
            .expect("describe_configs");
    let config = described
        .into_iter()
        .next()
        .expect("result")
        .expect("configs");
    let retention = config.get("retention.ms").expect("retention.ms");
    assert_eq!(retention.value.as_deref(), Some("7200000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    let segment = config.get("segment.ms").expect("segment.ms");
    assert_eq!(
        segment.value.as_deref(),
        Some("604800000"),
        "the dropped override is back to the default"
    );
    assert_eq!(segment.source, ConfigSource::Default);

    // A rejected change leaves the configs as they were.
    let bad = AlterConfig::new(ResourceSpecifier::Topic("altered")).set("retention.ms", "forever");
    wait(admin.alter_configs(&[bad], &admin_opts())).expect("alter_configs");
    let described =
        wait(admin.describe_configs(&[ResourceSpecifier::Topic("altered")], &admin_opts()))
            .expect("describe_configs");
    let config = described
        .into_iter()
        .next()
        .expect("result")
        .expect("configs");
    assert_eq!(
        config
            .get("retention.ms")
            .and_then(|e| e.value.clone())
            .as_deref(),
        Some("7200000")
    );
}

/// librdkafka's IncrementalAlterConfigs, which the `rdkafka` crate does not
/// wrap, called through its C API.
mod incremental {
    use std::ffi::{CStr, CString};
    use std::ptr;

    use rdkafka::admin::AdminClient;
    use rdkafka::bindings as rd;
    use rdkafka::client::DefaultClientContext;
    use rdkafka::error::RDKafkaErrorCode;

    pub use rd::rd_kafka_AlterConfigOpType_t as Op;

    /// Applies `ops` (name, operation, value) to topic `topic`; returns the
    /// resource's error code and message.
    #[allow(unsafe_code)]
    pub fn alter_topic(
        admin: &AdminClient<DefaultClientContext>,
        topic: &str,
        ops: &[(&str, Op, Option<&str>)],
    ) -> (RDKafkaErrorCode, Option<String>) {
        let rk = admin.inner().native_ptr();
        let name = CString::new(topic).expect("topic name");
        // SAFETY: plain librdkafka C API use on a live client; every object
        // created here is destroyed before returning, and the request copies
        // the resources it is given.
        unsafe {
            let queue = rd::rd_kafka_queue_new(rk);
            let options = rd::rd_kafka_AdminOptions_new(
                rk,
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
            );
            let mut errstr = [0 as std::os::raw::c_char; 256];
            let err = rd::rd_kafka_AdminOptions_set_request_timeout(
                options,
                20_000,
                errstr.as_mut_ptr(),
                errstr.len(),
            );
            assert_eq!(err, rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR);
            let resource = rd::rd_kafka_ConfigResource_new(
                rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
                name.as_ptr(),
            );
            for (key, op, value) in ops {
                let key = CString::new(*key).expect("config name");
                let value = value.map(|v| CString::new(v).expect("config value"));
                let error = rd::rd_kafka_ConfigResource_add_incremental_config(
                    resource,
                    key.as_ptr(),
                    *op,
                    value.as_ref().map_or(ptr::null(), |v| v.as_ptr()),
                );
                if !error.is_null() {
                    let message = CStr::from_ptr(rd::rd_kafka_error_string(error))
                        .to_string_lossy()
                        .into_owned();
                    rd::rd_kafka_error_destroy(error);
                    panic!("add_incremental_config: {message}");
                }
            }
            let mut resources = [resource];
            rd::rd_kafka_IncrementalAlterConfigs(rk, resources.as_mut_ptr(), 1, options, queue);
            let event = rd::rd_kafka_queue_poll(queue, 30_000);
            assert!(
                !event.is_null(),
                "no IncrementalAlterConfigs result within 30 s"
            );
            let top = rd::rd_kafka_event_error(event);
            let outcome = if top != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                let message = CStr::from_ptr(rd::rd_kafka_event_error_string(event))
                    .to_string_lossy()
                    .into_owned();
                (RDKafkaErrorCode::from(top), Some(message))
            } else {
                let result = rd::rd_kafka_event_IncrementalAlterConfigs_result(event);
                assert!(!result.is_null(), "wrong event type");
                let mut n = 0usize;
                let list = rd::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut n);
                assert_eq!(n, 1);
                let r = *list;
                let code = rd::rd_kafka_ConfigResource_error(r);
                let message = rd::rd_kafka_ConfigResource_error_string(r);
                let message = (!message.is_null())
                    .then(|| CStr::from_ptr(message).to_string_lossy().into_owned());
                (RDKafkaErrorCode::from(code), message)
            };
            rd::rd_kafka_event_destroy(event);
            rd::rd_kafka_ConfigResource_destroy(resource);
            rd::rd_kafka_AdminOptions_destroy(options);
            rd::rd_kafka_queue_destroy(queue);
            outcome
        }
    }
}

#[test]
fn incremental_alter_configs_take_effect_on_produce() {
    use incremental::Op;
    let broker = TestBroker::start(&[]);
    clients::create_topics(&broker, &[("limited", 1, &[])]);
    let admin = clients::admin(&broker);
    let producer = clients::producer(&broker, &[("compression.type", "none"), ("linger.ms", "0")]);
    let big = vec![7u8; 8 * 1024];
    let send_big = |producer: &rdkafka::producer::FutureProducer| {
        let record = FutureRecord::to("limited")
            .partition(0)
            .key(&b"big"[..])
            .payload(&big[..]);
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| e)
            .expect("enqueue");
        wait(delivery)
            .expect("delivery report")
            .map(|d| d.offset)
            .map_err(|(e, _)| e)
    };
    assert!(send_big(&producer).is_ok());

    let (code, message) = incremental::alter_topic(
        &admin,
        "limited",
        &[
            (
                "max.message.bytes",
                Op::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
                Some("2048"),
            ),
            (
                "cleanup.policy",
                Op::RD_KAFKA_ALTER_CONFIG_OP_TYPE_APPEND,
                Some("compact"),
            ),
        ],
    );
    assert_eq!(code, RDKafkaErrorCode::NoError, "{message:?}");
    match send_big(&producer) {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {}
        other => panic!("expected MessageSizeTooLarge, got {other:?}"),
    }
    // Small records still go in; the APPEND made the topic compacted, so
    // they need keys, as they have.
    let (_, offset) = clients::send(
        &producer,
        FutureRecord::to("limited")
            .partition(0)
            .key(&b"small"[..])
            .payload(&b"ok"[..]),
    );
    assert_eq!(offset, 1);
    let described =
        wait(admin.describe_configs(&[ResourceSpecifier::Topic("limited")], &admin_opts()))
            .expect("describe_configs");
    let config = described
        .into_iter()
        .next()
        .expect("result")
        .expect("configs");
    assert_eq!(
        config
            .get("cleanup.policy")
            .and_then(|e| e.value.clone())
            .as_deref(),
        Some("delete,compact")
    );

    // DELETE restores the default and the large record fits again.
    let (code, message) = incremental::alter_topic(
        &admin,
        "limited",
        &[(
            "max.message.bytes",
            Op::RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE,
            None,
        )],
    );
    assert_eq!(code, RDKafkaErrorCode::NoError, "{message:?}");
    assert_eq!(send_big(&producer), Ok(2), "large record after DELETE");

    // Errors come back per resource.
    let (code, _) = incremental::alter_topic(
        &admin,
        "limited",
        &[(
            "max.message.bytes",
            Op::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
            Some("big"),
        )],
    );
    assert_eq!(code, RDKafkaErrorCode::InvalidConfig);
    let (code, _) = incremental::alter_topic(
        &admin,
        "limited",
        &[(
            "retention.ms",
            Op::RD_KAFKA_ALTER_CONFIG_OP_TYPE_APPEND,
            Some("1"),
        )],
    );
    assert_eq!(
        code,
        RDKafkaErrorCode::InvalidConfig,
        "APPEND to a non-list config"
    );
    let (code, _) = incremental::alter_topic(
        &admin,
        "absent",
        &[(
            "retention.ms",
            Op::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
            Some("1"),
        )],
    );
    assert_eq!(code, RDKafkaErrorCode::UnknownTopicOrPartition);
}

#[test]
fn delete_records_moves_the_low_watermark() {
    let broker = TestBroker::start(&[]);
    clients::create_topics(&broker, &[("trimmed", 2, &[])]);
    let producer = clients::producer(&broker, &[]);
    for i in 0..10 {
        let key = format!("k{i}");
        clients::send(
            &producer,
            FutureRecord::to("trimmed")
                .partition(0)
                .key(key.as_bytes())
                .payload(&b"v"[..]),
        );
    }
    let admin = clients::admin(&broker);
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("trimmed", 0, Offset::Offset(4))
        .expect("offset");
    offsets
        .add_partition_offset("trimmed", 1, Offset::Offset(3))
        .expect("offset");
    let result = wait(admin.delete_records(&offsets, &admin_opts())).expect("delete_records");
    let p0 = result.find_partition("trimmed", 0).expect("partition 0");
    assert!(p0.error().is_ok(), "{:?}", p0.error());
    assert_eq!(p0.offset(), Offset::Offset(4));
    // Partition 1 is empty: offset 3 is past its high watermark.
    let p1 = result.find_partition("trimmed", 1).expect("partition 1");
    assert_eq!(
        p1.error(),
        Err(KafkaError::OffsetFetch(RDKafkaErrorCode::OffsetOutOfRange))
    );

    let consumer = clients::consumer(&broker, &[]);
    assert_eq!(
        consumer
            .fetch_watermarks("trimmed", 0, TIMEOUT)
            .expect("watermarks"),
        (4, 10)
    );

    // An offset before the low watermark is out of range now.
    let strict = clients::consumer(&broker, &[("auto.offset.reset", "error")]);
    clients::assign(&strict, &[("trimmed", 0, Offset::Offset(2))]);
    let deadline = std::time::Instant::now() + clients::OP_TIMEOUT;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no out-of-range error"
        );
        match strict.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Ok(m)) => panic!("read offset {} below the low watermark", m.offset()),
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => break,
            Some(Err(e)) => panic!("unexpected error {e:?}"),
        }
    }
    // From the beginning, the first record is the one at the low watermark.
    let reader = clients::consumer(&broker, &[]);
    clients::assign(&reader, &[("trimmed", 0, Offset::Beginning)]);
    let messages = clients::consume(&reader, 6);
    let offsets: Vec<i64> = messages.iter().map(|m| m.offset()).collect();
    assert_eq!(offsets, (4..10).collect::<Vec<_>>());
    assert_eq!(messages[0].key(), Some(&b"k4"[..]));
}
