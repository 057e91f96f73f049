//! Producing and consuming through librdkafka (the `rdkafka` crate): every
//! acks level and compression codec, exact round trips of keys, values,
//! headers and timestamps (CreateTime and LogAppendTime), topic-side
//! recompression, consumption by assignment from every kind of start
//! offset, several partitions, large records, watermarks, offsets for
//! times, metadata, and topic auto-creation.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::clients::{self, assign, consume, headers_of, wait};
use common::wire;
use millrace_protocol::records::BatchIter;
use millrace_tests::TestBroker;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, Timestamp, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(20);
const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// What a test record should read back as.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: i64,
}

/// `n` records exercising null keys, empty and null values, and headers
/// (including an empty and a null header value), stamped `base + i`.
fn sample_records(n: usize, base: i64) -> Vec<Expected> {
    (0..n)
        .map(|i| {
            let key = (i % 7 != 3).then(|| format!("key-{i}").into_bytes());
            let value = match i % 10 {
                4 => Some(Vec::new()),
                9 => None,
                _ => Some(format!("value-{i}-{}", "x".repeat(i % 13)).into_bytes()),
            };
            let mut headers = vec![("index".to_string(), Some(i.to_string().into_bytes()))];
            if i % 3 == 0 {
                headers.push(("empty".to_string(), Some(Vec::new())));
                headers.push(("null".to_string(), None));
            }
            Expected {
                key,
                value,
                headers,
                timestamp: base + i as i64,
            }
        })
        .collect()
}

fn owned_headers(e: &Expected) -> OwnedHeaders {
    e.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
        h.insert(Header {
            key: k,
            value: v.as_deref(),
        })
    })
}

/// Produces `records` to `topic`/`partition` with CreateTime timestamps,
/// waiting for every delivery report; returns the reported offsets.
fn produce_all(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    records: &[Expected],
) -> Vec<i64> {
    let deliveries: Vec<_> = records
        .iter()
        .map(|e| {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
                .partition(partition)
                .timestamp(e.timestamp)
                .headers(owned_headers(e));
            if let Some(k) = &e.key {
                record = record.key(&k[..]);
            }
            if let Some(v) = &e.value {
                record = record.payload(&v[..]);
            }
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueue")
        })
        .collect();
    deliveries
        .into_iter()
        .map(|d| match wait(d).expect("delivery report") {
            Ok(d) => {
                assert_eq!(d.partition, partition);
                d.offset
            }
            Err((e, _)) => panic!("delivery failed: {e}"),
        })
        .collect()
}

fn as_expected(m: &OwnedMessage) -> Expected {
    Expected {
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers: headers_of(m),
        timestamp: match m.timestamp() {
            Timestamp::CreateTime(t) => t,
            other => panic!("expected a CreateTime timestamp, got {other:?}"),
        },
    }
}

/// Reads `records.len()` messages from offset 0 and checks each one exactly.
fn assert_reads_back(broker: &TestBroker, topic: &str, records: &[Expected]) {
    let consumer = clients::consumer(broker, &[]);
    assign(&consumer, &[(topic, 0, Offset::Beginning)]);
    let messages = consume(&consumer, records.len());
    for (i, (m, e)) in messages.iter().zip(records).enumerate() {
        assert_eq!(
            m.offset(),
            i as i64,
            "{topic}: offsets are consecutive from 0"
        );
        assert_eq!(&as_expected(m), e, "{topic}: record {i}");
    }
    clients::assert_no_more(&consumer, Duration::from_millis(200));
    assert_eq!(
        consumer
            .fetch_watermarks(topic, 0, TIMEOUT)
            .expect("watermarks"),
        (0, records.len() as i64)
    );
}

fn round_trip_every_codec(acks: &str) {
    let broker = TestBroker::start(&[]);
    let topics: Vec<String> = CODECS.iter().map(|c| format!("acks-{acks}-{c}")).collect();
    let specs: Vec<clients::TopicSpec<'_>> =
        topics.iter().map(|t| (t.as_str(), 1, &[][..])).collect();
    clients::create_topics(&broker, &specs);
    let base = now_ms() - 60_000;
    let records = sample_records(40, base);
    for (codec, topic) in CODECS.iter().zip(&topics) {
        let producer = clients::producer(
            &broker,
            &[
                ("acks", acks),
                ("compression.type", codec),
                ("linger.ms", "50"),
            ],
        );
        let offsets = produce_all(&producer, topic, 0, &records);
        if acks != "0" {
            // With acks the delivery report carries the offset assigned.
            assert_eq!(
                offsets,
                (0..records.len() as i64).collect::<Vec<_>>(),
                "{topic}"
            );
        }
        assert_reads_back(&broker, topic, &records);
        // The batches on disk are in the producer's codec (no topic codec).
        // lz4 is checked by `librdkafka_sends_lz4_compressed_batches`.
        // (librdkafka sends a batch uncompressed when compressing it would
        // make it larger: a lone small record may be stored as None.)
        if *codec != "lz4" {
            let stored = stored_codecs(&broker, topic);
            assert!(stored.contains(&codec_name(codec)), "{topic}: {stored:?}");
            assert!(
                stored
                    .iter()
                    .all(|c| *c == codec_name(codec) || c == "None"),
                "{topic}: {stored:?}"
            );
        }
    }
}

/// The codec names of the batches stored in partition 0 of `topic`.
fn stored_codecs(broker: &TestBroker, topic: &str) -> Vec<String> {
    let mut conn = wire::Conn::connect(broker.addr());
    let data = wire::fetch(&mut conn, topic, 0, 0);
    let raw = data.records.unwrap_or_default();
    let codecs: std::collections::BTreeSet<String> = BatchIter::new(&raw)
        .map(|b| {
            format!(
                "{:?}",
                b.expect("batch").header.compression().expect("codec")
            )
        })
        .collect();
    codecs.into_iter().collect()
}

fn codec_name(codec: &str) -> String {
    match codec {
        "none" => "None",
        "gzip" => "Gzip",
        "snappy" => "Snappy",
        "lz4" => "Lz4",
        _ => "Zstd",
    }
    .to_string()
}

/// librdkafka derives "the broker supports LZ4" from FindCoordinator being
/// listed in ApiVersions (rdkafka_feature.c, a proxy for Kafka >= 0.8.2).
/// Until consumer groups (FindCoordinator) are served, an lz4 producer sends
/// its batches uncompressed; records still round-trip (checked above).
#[test]
#[ignore = "BUG: librdkafka sends lz4 batches uncompressed because the broker does not advertise FindCoordinator (consumer groups not built yet)"]
fn librdkafka_sends_lz4_compressed_batches() {
    let broker = TestBroker::start(&[]);
    clients::create_topics(&broker, &[("lz4", 1, &[])]);
    let producer = clients::producer(&broker, &[("compression.type", "lz4"), ("linger.ms", "50")]);
    let records = sample_records(40, now_ms());
    produce_all(&producer, "lz4", 0, &records);
    assert_eq!(stored_codecs(&broker, "lz4"), vec![codec_name("lz4")]);
    assert_reads_back(&broker, "lz4", &records);
}

#[test]
fn acks_0_every_codec_round_trips() {
    round_trip_every_codec("0");
}

#[test]
fn acks_1_every_codec_round_trips() {
    round_trip_every_codec("1");
}

#[test]
fn acks_all_every_codec_round_trips() {
    round_trip_every_codec("all");
}

#[test]
fn log_append_time_topic_stamps_records() {
    let broker = TestBroker::start(&[]);
    clients::create_topics(
        &broker,
        &[(
            "appended",
            1,
            &[("message.timestamp.type", "LogAppendTime")],
        )],
    );
    let producer = clients::producer(&broker, &[("compression.type", "lz4")]);
    let records = sample_records(10, 1_000);
    let before = now_ms();
    produce_all(&producer, "appended", 0, &records);
    let after = now_ms();
    let consumer = clients::consumer(&broker, &[]);
    assign(&consumer, &[("appended", 0, Offset::Beginning)]);
    let messages = consume(&consumer, records.len());
    for (m, e) in messages.iter().zip(&records) {
        match m.timestamp() {
            Timestamp::LogAppendTime(t) => assert!(
                (before..=after).contains(&t),
                "append time {t} outside [{before}, {after}]"
            ),
            other => panic!("expected LogAppendTime, got {other:?}"),
        }
        // Everything but the timestamp is as produced.
        assert_eq!(m.key(), e.key.as_deref());
        assert_eq!(m.payload(), e.value.as_deref());
        assert_eq!(headers_of(m), e.headers);
    }
}

#[test]
fn topic_compression_recompresses_but_records_are_identical() {
    let broker = TestBroker::start(&[]);
    clients::create_topics(&broker, &[("gzipped", 1, &[("compression.type", "gzip")])]);
    let base = now_ms() - 5_000;
    let records = sample_records(30, base);
    for (i, codec) in ["none", "lz4", "zstd"].iter().enumerate() {
        let producer = clients::producer(&broker, &[("compression.type", codec)]);
        let chunk = &records[i * 10..(i + 1) * 10];
        let offsets = produce_all(&producer, "gzipped", 0, chunk);
        assert_eq!(
            offsets,
            (i as i64 * 10..(i as i64 + 1) * 10).collect::<Vec<_>>()
        );
    }
    assert_reads_back(&broker, "gzipped", &records);
}

#[test]
fn assign_from_beginning_end_offset_and_timestamp() {
    let broker = TestBroker::start(&[]);
    clients::create_topics(&broker, &[("positions", 1, &[])]);
    let producer = clients::producer(&broker, &[]);
    let base = now_ms() - 100_000;
    let records: Vec<Expected> = (0..20)
        .map(|i| Expected {
            key: Some(format!("k{i}").into_bytes()),
            value: Some(format!("v{i}").into_bytes()),
            headers: vec![],
            timestamp: base + i * 10,
        })
        .collect();
    produce_all(&producer, "positions", 0, &records);

    let first_offset = |offset: Offset| {
        let consumer = clients::consumer(&broker, &[]);
        assign(&consumer, &[("positions", 0, offset)]);
        consume(&consumer, 1)[0].offset()
    };
    assert_eq!(first_offset(Offset::Beginning), 0);
    assert_eq!(first_offset(Offset::Offset(7)), 7);
    assert_eq!(first_offset(Offset::OffsetTail(3)), 17);

    // From an offset found by timestamp: the first record at or after it.
    let consumer = clients::consumer(&broker, &[]);
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset("positions", 0, Offset::Offset(base + 55))
        .expect("timestamp");
    let found = consumer
        .offsets_for_times(query, TIMEOUT)
        .expect("offsets_for_times");
    let found = found.find_partition("positions", 0).expect("partition");
    assert_eq!(found.offset(), Offset::Offset(6));
    assign(&consumer, &[("positions", 0, found.offset())]);
    let m = &consume(&consumer, 1)[0];
    assert_eq!(
        (m.offset(), m.timestamp()),
        (6, Timestamp::CreateTime(base + 60))
    );

    // From the end: nothing old, then exactly what is produced afterwards.
    let tail = clients::consumer(&broker, &[]);
    assign(&tail, &[("positions", 0, Offset::End)]);
    clients::assert_no_more(&tail, Duration::from_millis(500));
    let more: Vec<Expected> = (20..22)
        .map(|i| Expected {
            key: Some(format!("k{i}").into_bytes()),
            value: Some(format!("v{i}").into_bytes()),
            headers: vec![],
            timestamp: base + i * 10,
        })
        .collect();
    produce_all(&producer, "positions", 0, &more);
    let got: Vec<(i64, Expected)> = consume(&tail, 2)
        .iter()
        .map(|m| (m.offset(), as_expected(m)))
        .collect();
    assert_eq!(got, vec![(20, more[0].clone()), (21, more[1].clone())]);
}

#[test]
fn several_partitions_keep_per_partition_order() {
    let broker = TestBroker::start(&[]);
    clients::create_topics(&broker, &[("spread", 4, &[])]);
    let producer = clients::producer(&broker, &[("compression.type", "snappy")]);
    let deliveries: Vec<_> = (0..200)
        .map(|i| {
            let key = format!("key-{}", i % 16);
            let value = format!("{i}");
            let record = FutureRecord::to("spread")
                .key(key.as_bytes())
                .payload(value.as_bytes());
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueue")
        })
        .collect();
    let mut placed = Vec::new();
    for d in deliveries {
        let d = wait(d)
            .expect("report")
            .map_err(|(e, _)| e)
            .expect("delivered");
        placed.push((d.partition, d.offset));
    }
    let consumer = clients::consumer(&broker, &[]);
    let assignment: Vec<(&str, i32, Offset)> =
        (0..4).map(|p| ("spread", p, Offset::Beginning)).collect();
    assign(&consumer, &assignment);
    let messages = consume(&consumer, 200);
    let mut used = std::collections::BTreeSet::new();
    let mut next = [0i64; 4];
    let mut last_of_key: std::collections::HashMap<Vec<u8>, (i32, i64)> = Default::default();
    for m in &messages {
        let p = m.partition() as usize;
        used.insert(p);
        assert_eq!(m.offset(), next[p], "partition {p} in order without gaps");
        next[p] += 1;
        let i: usize = std::str::from_utf8(m.payload().expect("value"))
            .expect("utf8")
            .parse()
            .expect("index");
        assert_eq!(
            placed[i],
            (m.partition(), m.offset()),
            "record {i} where its delivery report said"
        );
        let key = m.key().expect("key").to_vec();
        if let Some((p0, v0)) = last_of_key.insert(key, (m.partition(), i as i64)) {
            assert_eq!(p0, m.partition(), "one key, one partition");
            assert!(v0 < i as i64, "records of a key in produce order");
        }
    }
    assert!(used.len() > 1, "16 keys all landed in one partition");
    for p in 0..4 {
        let (low, high) = consumer
            .fetch_watermarks("spread", p, TIMEOUT)
            .expect("watermarks");
        assert_eq!((low, high), (0, next[p as usize]));
    }
}

#[test]
fn large_records_round_trip() {
    let broker = TestBroker::start(&[]);
    clients::create_topics(&broker, &[("large", 1, &[])]);
    let size = 900 * 1024;
    let values: Vec<Vec<u8>> = (0..4u32)
        .map(|n| {
            // Poorly compressible, different per record.
            let mut x = 0x9e37_79b9u32.wrapping_mul(n + 1);
            (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect()
        })
        .collect();
    for (codec, chunk) in ["none", "zstd"].iter().zip(values.chunks(2)) {
        let producer =
            clients::producer(&broker, &[("compression.type", codec), ("linger.ms", "0")]);
        for v in chunk {
            clients::send(
                &producer,
                FutureRecord::to("large")
                    .partition(0)
                    .key(&b"big"[..])
                    .payload(&v[..]),
            );
        }
    }
    let consumer = clients::consumer(&broker, &[]);
    assign(&consumer, &[("large", 0, Offset::Beginning)]);
    let messages = consume(&consumer, values.len());
    for (i, (m, v)) in messages.iter().zip(&values).enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(m.payload().map(<[u8]>::len), Some(size));
        assert!(m.payload() == Some(&v[..]), "record {i} differs");
    }
}

#[test]
fn watermarks_and_offsets_for_times() {
    let broker = TestBroker::start(&[]);
    clients::create_topics(&broker, &[("marks", 2, &[])]);
    let consumer = clients::consumer(&broker, &[]);
    assert_eq!(
        consumer
            .fetch_watermarks("marks", 0, TIMEOUT)
            .expect("watermarks"),
        (0, 0)
    );
    let producer = clients::producer(&broker, &[]);
    let base = now_ms() - 50_000;
    let records: Vec<Expected> = (0..5)
        .map(|i| Expected {
            key: None,
            value: Some(vec![b'v'; 10]),
            headers: vec![],
            timestamp: base + i * 1_000,
        })
        .collect();
    produce_all(&producer, "marks", 0, &records);
    assert_eq!(
        consumer
            .fetch_watermarks("marks", 0, TIMEOUT)
            .expect("watermarks"),
        (0, 5)
    );
    assert_eq!(
        consumer
            .fetch_watermarks("marks", 1, TIMEOUT)
            .expect("watermarks"),
        (0, 0)
    );

    let lookup = |partition: i32, timestamp: i64| {
        let mut query = TopicPartitionList::new();
        query
            .add_partition_offset("marks", partition, Offset::Offset(timestamp))
            .expect("timestamp");
        let found = consumer
            .offsets_for_times(query, TIMEOUT)
            .expect("offsets_for_times");
        let p = found.find_partition("marks", partition).expect("partition");
        p.error().expect("no partition error");
        p.offset()
    };
    assert_eq!(lookup(0, 0), Offset::Offset(0));
    assert_eq!(lookup(0, base), Offset::Offset(0));
    assert_eq!(lookup(0, base + 1), Offset::Offset(1));
    assert_eq!(lookup(0, base + 4_000), Offset::Offset(4));
    // After the last record: the end (-1).
    assert_eq!(lookup(0, base + 4_001), Offset::End);
    assert_eq!(lookup(1, base), Offset::End);
}

#[test]
fn metadata_lists_brokers_topics_and_leaders() {
    let broker = TestBroker::start(&[("auto.create.topics.enable", "false")]);
    clients::create_topics(&broker, &[("meta-a", 3, &[]), ("meta-b", 1, &[])]);
    let consumer = clients::consumer(&broker, &[]);
    let metadata = consumer.fetch_metadata(None, TIMEOUT).expect("metadata");
    let brokers: Vec<(i32, String, i32)> = metadata
        .brokers()
        .iter()
        .map(|b| (b.id(), b.host().to_string(), b.port()))
        .collect();
    assert_eq!(
        brokers,
        vec![(1, "127.0.0.1".to_string(), i32::from(broker.addr().port()))]
    );
    let mut topics: Vec<(String, Vec<(i32, i32)>)> = metadata
        .topics()
        .iter()
        .filter(|t| !t.name().starts_with("__"))
        .map(|t| {
            assert!(t.error().is_none());
            let mut parts: Vec<(i32, i32)> = t
                .partitions()
                .iter()
                .map(|p| (p.id(), p.leader()))
                .collect();
            parts.sort();
            (t.name().to_string(), parts)
        })
        .collect();
    topics.sort();
    assert_eq!(
        topics,
        vec![
            ("meta-a".to_string(), vec![(0, 1), (1, 1), (2, 1)]),
            ("meta-b".to_string(), vec![(0, 1)])
        ]
    );
    let one = consumer
        .fetch_metadata(Some("meta-b"), TIMEOUT)
        .expect("metadata");
    assert_eq!(one.topics().len(), 1);
    assert_eq!(one.topics()[0].name(), "meta-b");
    let missing = consumer
        .fetch_metadata(Some("meta-missing"), TIMEOUT)
        .expect("metadata");
    assert_eq!(
        missing.topics()[0].error().map(RDKafkaErrorCode::from),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition)
    );
}

#[test]
fn auto_create_on_produce_and_metadata() {
    let broker = TestBroker::start(&[
        ("auto.create.topics.enable", "true"),
        ("num.partitions", "2"),
    ]);
    let producer = clients::producer(&broker, &[]);
    let (partition, offset) = clients::send(
        &producer,
        FutureRecord::to("auto-produced")
            .partition(1)
            .key(&b"k"[..])
            .payload(&b"v"[..]),
    );
    assert_eq!((partition, offset), (1, 0));

    // A metadata request that allows auto-creation creates the topic.
    let metadata = producer
        .client()
        .fetch_metadata(Some("auto-meta"), TIMEOUT)
        .expect("metadata");
    let t = &metadata.topics()[0];
    assert!(t.error().is_none(), "{:?}", t.error());
    assert_eq!(t.partitions().len(), 2);

    // A consumer's (allow.auto.create.topics=false) does not.
    let consumer = clients::consumer(&broker, &[]);
    let metadata = consumer
        .fetch_metadata(Some("auto-not"), TIMEOUT)
        .expect("metadata");
    assert!(metadata.topics()[0].error().is_some());

    let all = consumer.fetch_metadata(None, TIMEOUT).expect("metadata");
    // The consumer's group coordinator lookup may have created Kafka's
    // internal __consumer_offsets; only user topics are checked here.
    let mut names: Vec<&str> = all
        .topics()
        .iter()
        .map(|t| t.name())
        .filter(|n| !n.starts_with("__"))
        .collect();
    names.sort();
    assert_eq!(names, vec!["auto-meta", "auto-produced"]);
    let reader = clients::consumer(&broker, &[]);
    assign(&reader, &[("auto-produced", 1, Offset::Beginning)]);
    assert_eq!(consume(&reader, 1)[0].payload(), Some(&b"v"[..]));
}

#[test]
fn auto_create_disabled_refuses_unknown_topics() {
    let broker = TestBroker::start(&[("auto.create.topics.enable", "false")]);
    let producer = clients::producer(
        &broker,
        &[
            ("topic.metadata.propagation.max.ms", "500"),
            ("message.timeout.ms", "10000"),
        ],
    );
    let record = FutureRecord::to("not-created")
        .key(&b"k"[..])
        .payload(&b"v"[..]);
    let delivery = producer
        .send_result(record)
        .map_err(|(e, _)| e)
        .expect("enqueue");
    match wait(delivery).expect("delivery report") {
        Err((KafkaError::MessageProduction(code), _)) => assert!(
            matches!(
                code,
                RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic
            ),
            "unexpected error {code:?}"
        ),
        other => panic!("produce to a missing topic succeeded: {other:?}"),
    }
    let metadata = producer
        .client()
        .fetch_metadata(Some("not-created"), TIMEOUT)
        .expect("metadata");
    assert_eq!(
        metadata.topics()[0].error().map(RDKafkaErrorCode::from),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition)
    );
    let all = producer
        .client()
        .fetch_metadata(None, TIMEOUT)
        .expect("metadata");
    assert!(all.topics().is_empty());
}
