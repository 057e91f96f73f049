//! The data path over raw TCP: Produce validation errors with Kafka's codes,
//! Fetch (errors, long poll, incremental sessions, topic ids), ListOffsets and
//! OffsetForLeaderEpoch. Record batches are built with
//! `millrace_protocol::records::BatchBuilder`.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::wire::{self, now_ms, Conn};
use kafka_protocol::messages::fetch_request::{FetchTopic, ForgottenTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, MetadataRequest,
    OffsetForLeaderEpochRequest, ProduceRequest,
};
use millrace_protocol::records::{BatchIter, Compression, TimestampType};
use millrace_tests::TestBroker;

const CORRUPT_MESSAGE: i16 = 2;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_TIMESTAMP: i16 = 32;
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
const INVALID_RECORD: i16 = 87;
const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
const UNKNOWN_TOPIC_ID: i16 = 100;

fn start() -> (TestBroker, Conn) {
    let broker = TestBroker::start(&[]);
    let conn = Conn::connect(broker.addr());
    (broker, conn)
}

fn high_watermark(conn: &mut Conn, topic: &str, partition: i32) -> i64 {
    wire::fetch(conn, topic, partition, 0).high_watermark
}

#[test]
fn produce_then_fetch_returns_identical_records_at_consecutive_offsets() {
    let (_broker, mut conn) = start();
    wire::create_topic(&mut conn, "roundtrip", 1, &[]);
    let t = now_ms();
    let headers: &[(&str, &[u8])] = &[("h1", b"v1"), ("empty", b"")];
    let first = wire::batch(
        &[
            (Some(b"k0"), Some(b"v0"), headers),
            (None, Some(b"null key"), &[]),
            (Some(b"k2"), Some(b""), &[]),
            (Some(b"k3"), None, &[]),
        ],
        t,
        Compression::None,
    );
    assert_eq!(wire::produce_ok(&mut conn, "roundtrip", 0, first), 0);
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let batch = wire::batch(&[wire::kv(b"c", b"compressed"); 3], t + 100, codec);
        let base = wire::produce_ok(&mut conn, "roundtrip", 0, batch);
        assert!(base >= 4);
    }
    let data = wire::fetch(&mut conn, "roundtrip", 0, 0);
    assert_eq!(data.error_code, 0);
    assert_eq!(data.high_watermark, 16);
    assert_eq!(data.log_start_offset, 0);
    let records = wire::records_of(data.records.as_deref().unwrap_or_default());
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..16).collect::<Vec<_>>());
    assert_eq!(records[0].key.as_deref(), Some(&b"k0"[..]));
    assert_eq!(records[0].value.as_deref(), Some(&b"v0"[..]));
    assert_eq!(records[0].timestamp, t);
    assert_eq!(
        records[0].headers,
        vec![
            (b"h1".to_vec(), Some(b"v1".to_vec())),
            (b"empty".to_vec(), Some(Vec::new()))
        ]
    );
    assert_eq!(records[1].key, None);
    assert_eq!(records[1].timestamp, t + 1);
    assert_eq!(records[2].value.as_deref(), Some(&b""[..]));
    assert_eq!(records[3].value, None);
    for r in &records[4..] {
        assert_eq!(r.value.as_deref(), Some(&b"compressed"[..]));
    }
    // Fetching from the middle of a batch returns it whole (the client skips).
    let data = wire::fetch(&mut conn, "roundtrip", 0, 5);
    let records = wire::records_of(data.records.as_deref().unwrap_or_default());
    assert!(records.iter().any(|r| r.offset == 5));
    assert_eq!(records.last().map(|r| r.offset), Some(15));
}

#[test]
fn corrupted_batch_is_rejected_with_corrupt_message() {
    let (_broker, mut conn) = start();
    wire::create_topic(&mut conn, "crc", 1, &[]);
    let good = wire::simple_batch(3);
    let mut bad = good.to_vec();
    // Flip a byte of the last record: covered by the CRC (which starts at
    // the attributes, right after the CRC field).
    let last = bad.len() - 1;
    bad[last] ^= 0x5a;
    let p = wire::produce(&mut conn, "crc", 0, Bytes::from(bad));
    assert_eq!(p.error_code, CORRUPT_MESSAGE);
    assert_eq!(p.base_offset, -1);
    // Also a flipped attribute byte right after the CRC field.
    let mut bad = good.to_vec();
    bad[22] ^= 0x40;
    let p = wire::produce(&mut conn, "crc", 0, Bytes::from(bad));
    assert_eq!(p.error_code, CORRUPT_MESSAGE);
    // Nothing was appended; the intact batch still goes in at offset 0.
    assert_eq!(high_watermark(&mut conn, "crc", 0), 0);
    assert_eq!(wire::produce_ok(&mut conn, "crc", 0, good), 0);
}

#[test]
fn old_magic_batch_is_rejected_as_unsupported_for_message_format() {
    // Millrace stores only message format v2: a v0/v1 message set is
    // UNSUPPORTED_FOR_MESSAGE_FORMAT (43), as the broker-core issue
    // requires. (Kafka 3.7 answers INVALID_RECORD; docs/protocol.md records
    // the difference.)
    let (_broker, mut conn) = start();
    wire::create_topic(&mut conn, "magic", 1, &[]);
    let mut old = wire::simple_batch(1).to_vec();
    old[16] = 1; // magic byte
    let p = wire::produce(&mut conn, "magic", 0, Bytes::from(old.clone()));
    assert_eq!(
        p.error_code, UNSUPPORTED_FOR_MESSAGE_FORMAT,
        "{:?}",
        p.error_message
    );
    // A magic byte no message format has is a corrupt batch.
    old[16] = 3;
    let p = wire::produce(&mut conn, "magic", 0, Bytes::from(old));
    assert_eq!(p.error_code, CORRUPT_MESSAGE, "{:?}", p.error_message);
    assert_eq!(high_watermark(&mut conn, "magic", 0), 0);
}

#[test]
fn batch_over_max_message_bytes_is_message_too_large() {
    let (_broker, mut conn) = start();
    wire::create_topic(&mut conn, "small", 1, &[("max.message.bytes", "1000")]);
    let big = vec![b'x'; 2000];
    let batch = wire::batch(
        &[(Some(b"k"), Some(&big), &[])],
        now_ms(),
        Compression::None,
    );
    let p = wire::produce(&mut conn, "small", 0, batch);
    assert_eq!(p.error_code, MESSAGE_TOO_LARGE);
    // A batch under the limit is accepted.
    let small = vec![b'x'; 500];
    let batch = wire::batch(
        &[(Some(b"k"), Some(&small), &[])],
        now_ms(),
        Compression::None,
    );
    assert_eq!(wire::produce_ok(&mut conn, "small", 0, batch), 0);
}

#[test]
fn null_key_into_compacted_topic_is_invalid_record_with_record_errors() {
    let (_broker, mut conn) = start();
    wire::create_topic(&mut conn, "compacted", 1, &[("cleanup.policy", "compact")]);
    let batch = wire::batch(
        &[
            (Some(b"a"), Some(b"1"), &[]),
            (None, Some(b"2"), &[]),
            (Some(b"c"), Some(b"3"), &[]),
        ],
        now_ms(),
        Compression::None,
    );
    let p = wire::produce(&mut conn, "compacted", 0, batch);
    assert_eq!(p.error_code, INVALID_RECORD);
    assert_eq!(p.record_errors.len(), 1, "{:?}", p.record_errors);
    assert_eq!(p.record_errors[0].batch_index, 1);
    assert!(p.error_message.is_some());
    // Older versions carry no record errors but the same code.
    let batch = wire::batch(&[(None, Some(b"2"), &[])], now_ms(), Compression::None);
    let p = wire::produce_at(&mut conn, 7, "compacted", 0, batch);
    assert_eq!(p.error_code, INVALID_RECORD);
    assert!(p.record_errors.is_empty());
    assert_eq!(high_watermark(&mut conn, "compacted", 0), 0);
    // Keyed records are fine.
    let batch = wire::batch(
        &[(Some(b"a"), Some(b"1"), &[])],
        now_ms(),
        Compression::None,
    );
    assert_eq!(wire::produce_ok(&mut conn, "compacted", 0, batch), 0);
}

#[test]
fn create_time_outside_the_allowed_window_is_invalid_timestamp() {
    let (_broker, mut conn) = start();
    wire::create_topic(
        &mut conn,
        "window",
        1,
        &[
            ("message.timestamp.before.max.ms", "3600000"),
            ("message.timestamp.after.max.ms", "3600000"),
        ],
    );
    let two_hours = 2 * 3_600_000;
    for ts in [now_ms() - two_hours, now_ms() + two_hours] {
        let batch = wire::batch(&[(Some(b"k"), Some(b"v"), &[])], ts, Compression::None);
        let p = wire::produce(&mut conn, "window", 0, batch);
        assert_eq!(p.error_code, INVALID_TIMESTAMP, "timestamp {ts}");
        assert_eq!(p.record_errors.len(), 1);
        assert_eq!(p.record_errors[0].batch_index, 0);
    }
    assert_eq!(high_watermark(&mut conn, "window", 0), 0);
    let batch = wire::batch(
        &[(Some(b"k"), Some(b"v"), &[])],
        now_ms() - 60_000,
        Compression::None,
    );
    assert_eq!(wire::produce_ok(&mut conn, "window", 0, batch), 0);
}

#[test]
fn produce_to_unknown_topic_or_partition() {
    let broker = TestBroker::start(&[("auto.create.topics.enable", "false")]);
    let mut conn = Conn::connect(broker.addr());
    wire::create_topic(&mut conn, "one", 1, &[]);
    let p = wire::produce(&mut conn, "missing", 0, wire::simple_batch(1));
    assert_eq!(p.error_code, UNKNOWN_TOPIC_OR_PARTITION);
    let p = wire::produce(&mut conn, "one", 5, wire::simple_batch(1));
    assert_eq!(p.error_code, UNKNOWN_TOPIC_OR_PARTITION);
}

#[test]
fn failed_acks_zero_produce_closes_the_connection() {
    let (broker, mut conn) = start();
    wire::create_topic(&mut conn, "acks0", 1, &[("max.message.bytes", "100")]);
    // A good acks=0 produce gets no response; the next request's answer comes first.
    let request = wire::produce_request("acks0", 0, wire::simple_batch(1), 0);
    conn.write_raw(&Conn::frame(9, 500, &request));
    let data = wire::fetch(&mut conn, "acks0", 0, 0);
    assert_eq!(data.high_watermark, 1);
    // A failing one cannot be answered: the broker closes the connection.
    let big = vec![b'x'; 500];
    let batch = wire::batch(&[(None, Some(&big), &[])], now_ms(), Compression::None);
    let request = wire::produce_request("acks0", 0, batch, 0);
    conn.write_raw(&Conn::frame(9, 501, &request));
    conn.assert_closed();
    let mut other = Conn::connect(broker.addr());
    assert_eq!(high_watermark(&mut other, "acks0", 0), 1);
}

#[test]
fn topic_codec_recompresses_and_log_append_time_is_stamped() {
    let (_broker, mut conn) = start();
    wire::create_topic(&mut conn, "gz", 1, &[("compression.type", "gzip")]);
    wire::create_topic(
        &mut conn,
        "lat",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    );

    let headers: &[(&str, &[u8])] = &[("h", b"x")];
    let records = [
        (Some(&b"k1"[..]), Some(&b"v1"[..]), headers),
        (None, Some(&b"v2"[..]), &[][..]),
    ];
    let t = now_ms() - 1_000;
    wire::produce_ok(
        &mut conn,
        "gz",
        0,
        wire::batch(&records, t, Compression::Lz4),
    );
    let data = wire::fetch(&mut conn, "gz", 0, 0);
    let raw = data.records.clone().unwrap_or_default();
    let batch = BatchIter::new(&raw)
        .next()
        .expect("one batch")
        .expect("batch");
    assert_eq!(
        batch.header.compression().expect("codec"),
        Compression::Gzip
    );
    let read = wire::records_of(&raw);
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(read[0].headers, vec![(b"h".to_vec(), Some(b"x".to_vec()))]);
    assert_eq!(read[0].timestamp, t);
    assert_eq!(read[1].key, None);
    assert_eq!(read[1].value.as_deref(), Some(&b"v2"[..]));
    assert_eq!(read[1].timestamp, t + 1);

    let before = now_ms();
    let p = wire::produce(
        &mut conn,
        "lat",
        0,
        wire::batch(&records, 1_000, Compression::None),
    );
    let after = now_ms();
    assert_eq!(p.error_code, 0);
    assert!(
        (before..=after).contains(&p.log_append_time_ms),
        "log append time {} not within [{before}, {after}]",
        p.log_append_time_ms
    );
    let data = wire::fetch(&mut conn, "lat", 0, 0);
    let raw = data.records.clone().unwrap_or_default();
    let batch = BatchIter::new(&raw)
        .next()
        .expect("one batch")
        .expect("batch");
    batch.verify_crc().expect("CRC after stamping");
    assert_eq!(batch.header.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(batch.header.max_timestamp, p.log_append_time_ms);
    // CreateTime topics answer -1.
    let p = wire::produce(&mut conn, "gz", 0, wire::simple_batch(1));
    assert_eq!(p.log_append_time_ms, -1);
}

#[test]
fn fetch_outside_the_log_is_offset_out_of_range() {
    let (_broker, mut conn) = start();
    wire::create_topic(&mut conn, "range", 1, &[]);
    wire::produce_ok(&mut conn, "range", 0, wire::simple_batch(5));
    let data = wire::fetch(&mut conn, "range", 0, 6);
    assert_eq!(data.error_code, OFFSET_OUT_OF_RANGE);
    assert_eq!(data.high_watermark, 5);
    // At the log end is not an error: just nothing yet.
    let data = wire::fetch(&mut conn, "range", 0, 5);
    assert_eq!(data.error_code, 0);
    assert!(data.records.as_ref().is_none_or(|r| r.is_empty()));
    let data = wire::fetch(&mut conn, "range", 0, -5);
    assert_eq!(data.error_code, OFFSET_OUT_OF_RANGE);
    // Unknown topic and partition.
    let response = conn.call(12, &wire::fetch_request("nope", 0, 0, 0, 0));
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    let response = conn.call(12, &wire::fetch_request("range", 3, 0, 0, 0));
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
}

#[test]
fn long_poll_returns_when_a_record_arrives() {
    let broker = TestBroker::start(&[]);
    let mut conn = Conn::connect(broker.addr());
    wire::create_topic(&mut conn, "poll", 1, &[]);
    let addr = broker.addr();
    // max_wait is longer than the socket read timeout: a broker that ignored
    // the append and waited out max_wait fails the read instead of passing.
    let waiter = std::thread::spawn(move || {
        let mut conn = Conn::connect(addr);
        conn.call(12, &wire::fetch_request("poll", 0, 0, 60_000, 1))
    });
    // Give the fetch a moment to park (not needed for correctness: an
    // earlier append simply satisfies it at once).
    std::thread::sleep(Duration::from_millis(300));
    let mut producer = Conn::connect(broker.addr());
    wire::produce_ok(&mut producer, "poll", 0, wire::simple_batch(1));
    let response = waiter.join().expect("fetch thread");
    assert_eq!(response.error_code, 0);
    let data = &response.responses[0].partitions[0];
    assert_eq!(data.error_code, 0);
    assert_eq!(data.high_watermark, 1);
    let records = wire::records_of(data.records.as_deref().unwrap_or_default());
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key.as_deref(), Some(&b"k0"[..]));
}

#[test]
fn long_poll_returns_empty_after_max_wait() {
    let (_broker, mut conn) = start();
    wire::create_topic(&mut conn, "quiet", 1, &[]);
    wire::produce_ok(&mut conn, "quiet", 0, wire::simple_batch(2));
    let response = conn.call(12, &wire::fetch_request("quiet", 0, 2, 300, 1));
    assert_eq!(response.error_code, 0);
    let data = &response.responses[0].partitions[0];
    assert_eq!(data.error_code, 0);
    assert_eq!(data.high_watermark, 2);
    assert!(data.records.as_ref().is_none_or(|r| r.is_empty()));
    // The connection is still in step afterwards.
    let data = wire::fetch(&mut conn, "quiet", 0, 0);
    assert_eq!(
        wire::records_of(data.records.as_deref().unwrap_or_default()).len(),
        2
    );
}

fn session_fetch(
    session_id: i32,
    epoch: i32,
    partitions: &[(i32, i64)],
    forgotten: &[i32],
) -> FetchRequest {
    let topics = if partitions.is_empty() {
        Vec::new()
    } else {
        vec![FetchTopic::default()
            .with_topic(wire::tn("sess"))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&(p, o)| wire::fetch_partition(p, o))
                    .collect(),
            )]
    };
    let forgotten = if forgotten.is_empty() {
        Vec::new()
    } else {
        vec![ForgottenTopic::default()
            .with_topic(wire::tn("sess"))
            .with_partitions(forgotten.to_vec())]
    };
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_session_id(session_id)
        .with_session_epoch(epoch)
        .with_topics(topics)
        .with_forgotten_topics_data(forgotten)
}

/// Partitions in a fetch response with their record counts.
fn partitions_of(response: &FetchResponse) -> Vec<(i32, usize)> {
    response
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            assert_eq!(p.error_code, 0);
            let n = wire::records_of(p.records.as_deref().unwrap_or_default()).len();
            (p.partition_index, n)
        })
        .collect()
}

#[test]
fn incremental_fetch_sessions() {
    let (_broker, mut conn) = start();
    wire::create_topic(&mut conn, "sess", 3, &[]);
    for p in 0..3 {
        wire::produce_ok(&mut conn, "sess", p, wire::simple_batch(1));
    }
    // Epoch 0: a full fetch that opens a session.
    let full = conn.call(12, &session_fetch(0, 0, &[(0, 0), (1, 0), (2, 0)], &[]));
    assert_eq!(full.error_code, 0);
    let session = full.session_id;
    assert_ne!(session, 0, "no session was opened");
    assert_eq!(partitions_of(&full), vec![(0, 1), (1, 1), (2, 1)]);

    // Epoch 1: the client moves its offsets past what it read; nothing
    // changed since, so no partition is returned.
    let r = conn.call(
        12,
        &session_fetch(session, 1, &[(0, 1), (1, 1), (2, 1)], &[]),
    );
    assert_eq!((r.error_code, r.session_id), (0, session));
    assert_eq!(partitions_of(&r), vec![]);

    // New data on partition 1 only: epoch 2 lists no partition at all and
    // gets exactly partition 1 with its new record.
    wire::produce_ok(&mut conn, "sess", 1, wire::simple_batch(2));
    let r = conn.call(12, &session_fetch(session, 2, &[], &[]));
    assert_eq!(r.error_code, 0);
    assert_eq!(partitions_of(&r), vec![(1, 2)]);

    // Wrong epoch and unknown session id are top-level errors.
    let r = conn.call(12, &session_fetch(session, 7, &[], &[]));
    assert_eq!(r.error_code, INVALID_FETCH_SESSION_EPOCH);
    let unknown = if session == i32::MAX { 1 } else { session + 1 };
    let r = conn.call(12, &session_fetch(unknown, 1, &[], &[]));
    assert_eq!(r.error_code, FETCH_SESSION_ID_NOT_FOUND);

    // The session survives a wrong-epoch request: epoch 3 works, and a
    // forgotten partition is no longer fetched.
    wire::produce_ok(&mut conn, "sess", 0, wire::simple_batch(1));
    wire::produce_ok(&mut conn, "sess", 2, wire::simple_batch(1));
    let r = conn.call(12, &session_fetch(session, 3, &[(1, 3)], &[2]));
    assert_eq!(r.error_code, 0);
    assert_eq!(partitions_of(&r), vec![(0, 1)]);

    // Epoch -1 closes the session; that fetch is a full sessionless one.
    let r = conn.call(12, &session_fetch(session, -1, &[(0, 0)], &[]));
    assert_eq!(r.error_code, 0);
    assert_eq!(r.session_id, 0);
    assert_eq!(partitions_of(&r), vec![(0, 2)]);
    let r = conn.call(12, &session_fetch(session, 4, &[], &[]));
    assert_eq!(r.error_code, FETCH_SESSION_ID_NOT_FOUND);
}

#[test]
fn fetch_by_topic_id_from_v13() {
    let (_broker, mut conn) = start();
    let id = wire::create_topic(&mut conn, "ids", 1, &[]);
    wire::produce_ok(&mut conn, "ids", 0, wire::simple_batch(3));
    for version in [13i16, 16] {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic_id(id)
                .with_partitions(vec![wire::fetch_partition(0, 0)])]);
        let r = conn.call(version, &request);
        assert_eq!(r.error_code, 0);
        assert_eq!(r.responses.len(), 1);
        assert_eq!(r.responses[0].topic_id, id);
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        assert_eq!(
            wire::records_of(p.records.as_deref().unwrap_or_default()).len(),
            3
        );

        let unknown = uuid::Uuid::new_v4();
        let request = request.with_topics(vec![FetchTopic::default()
            .with_topic_id(unknown)
            .with_partitions(vec![wire::fetch_partition(0, 0)])]);
        let r = conn.call(version, &request);
        assert_eq!(r.responses[0].topic_id, unknown);
        assert_eq!(r.responses[0].partitions[0].error_code, UNKNOWN_TOPIC_ID);
    }
}

fn list_offsets(
    conn: &mut Conn,
    version: i16,
    topic: &str,
    timestamp: i64,
) -> (i16, i64, i64, i32) {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(wire::tn(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_current_leader_epoch(-1)
                .with_timestamp(timestamp)])]);
    let r = conn.call(version, &request);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp, p.leader_epoch)
}

#[test]
fn list_offsets_earliest_latest_max_timestamp_and_by_timestamp() {
    let (_broker, mut conn) = start();
    wire::create_topic(&mut conn, "lo", 1, &[]);
    let base = now_ms() - 60_000;
    // Timestamps by offset: not monotonic, the largest at offset 3.
    let stamps = [0, 10, 20, 50, 30, 40];
    for pair in stamps.chunks(2) {
        let mut builder = millrace_protocol::records::BatchBuilder::new(0, Compression::None);
        for (i, ts) in pair.iter().enumerate() {
            builder.append(i as i64, base + ts, Some(b"k"), Some(b"v"), 0, &[]);
        }
        wire::produce_ok(&mut conn, "lo", 0, builder.build().expect("batch"));
    }
    let epoch = {
        let metadata = conn.call(
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(wire::tn("lo"))),
            ])),
        );
        metadata.topics[0].partitions[0].leader_epoch
    };
    assert!(epoch >= 0);
    for version in [1i16, 4, 7, 8] {
        let (err, offset, _, _) = list_offsets(&mut conn, version, "lo", -2);
        assert_eq!((err, offset), (0, 0), "earliest v{version}");
        let (err, offset, _, leader_epoch) = list_offsets(&mut conn, version, "lo", -1);
        assert_eq!((err, offset), (0, 6), "latest v{version}");
        if version >= 4 {
            assert_eq!(leader_epoch, epoch);
        }
        // The first offset whose timestamp is at or after the target.
        let (err, offset, ts, _) = list_offsets(&mut conn, version, "lo", base + 25);
        assert_eq!(
            (err, offset, ts),
            (0, 3, base + 50),
            "by timestamp v{version}"
        );
        let (err, offset, ts, _) = list_offsets(&mut conn, version, "lo", base);
        assert_eq!((err, offset, ts), (0, 0, base));
        // After every record: no offset.
        let (err, offset, ts, _) = list_offsets(&mut conn, version, "lo", base + 51);
        assert_eq!(
            (err, offset, ts),
            (0, -1, -1),
            "beyond the last timestamp v{version}"
        );
    }
    // KIP-734: the record with the largest timestamp (v7+).
    let (err, offset, ts, _) = list_offsets(&mut conn, 7, "lo", -3);
    assert_eq!((err, offset, ts), (0, 3, base + 50));
    let (err, _, _, _) = list_offsets(&mut conn, 7, "missing", -1);
    assert_eq!(err, UNKNOWN_TOPIC_OR_PARTITION);
}

#[test]
fn offset_for_leader_epoch_of_the_current_epoch_is_the_log_end() {
    let (_broker, mut conn) = start();
    wire::create_topic(&mut conn, "ofle", 1, &[]);
    wire::produce_ok(&mut conn, "ofle", 0, wire::simple_batch(4));
    wire::produce_ok(&mut conn, "ofle", 0, wire::simple_batch(3));
    for version in 2i16..=4 {
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(wire::tn("ofle"))
                    .with_partitions(vec![OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(-1)
                        .with_leader_epoch(0)]),
                OffsetForLeaderTopic::default()
                    .with_topic(wire::tn("missing"))
                    .with_partitions(vec![OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(-1)
                        .with_leader_epoch(0)]),
            ]);
        let r = conn.call(version, &request);
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0, "v{version}");
        assert_eq!((p.leader_epoch, p.end_offset), (0, 7), "v{version}");
        let p = &r.topics[1].partitions[0];
        assert_eq!(p.error_code, UNKNOWN_TOPIC_OR_PARTITION);
        assert_eq!((p.leader_epoch, p.end_offset), (-1, -1));
    }
}

#[test]
fn produce_v3_to_v10_all_append() {
    let (_broker, mut conn) = start();
    wire::create_topic(&mut conn, "versions", 1, &[]);
    let mut expected = 0;
    for version in 3i16..=10 {
        let codec = if version >= 7 {
            Compression::Zstd
        } else {
            Compression::Snappy
        };
        let batch = wire::batch(&[wire::kv(b"k", b"v"); 2], now_ms(), codec);
        let r =
            conn.call::<ProduceRequest>(version, &wire::produce_request("versions", 0, batch, 1));
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "Produce v{version}");
        assert_eq!(p.base_offset, expected, "Produce v{version}");
        expected += 2;
    }
    // zstd before Produce v7 is refused (UNSUPPORTED_COMPRESSION_TYPE).
    let batch = wire::batch(
        &[(Some(b"k"), Some(b"v"), &[])],
        now_ms(),
        Compression::Zstd,
    );
    let r = conn.call::<ProduceRequest>(6, &wire::produce_request("versions", 0, batch, 1));
    assert_eq!(r.responses[0].partition_responses[0].error_code, 76);
    for version in 4i16..=16 {
        let mut request = wire::fetch_request("versions", 0, 0, 0, 0);
        if version >= 13 {
            let id = conn
                .call(12, &MetadataRequest::default().with_topics(None))
                .topics
                .iter()
                .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some("versions"))
                .map(|t| t.topic_id)
                .expect("topic id");
            request.topics[0].topic_id = id;
        }
        let r = conn.call(version, &request);
        assert_eq!(r.error_code, 0, "Fetch v{version}");
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "Fetch v{version}");
        let records = wire::records_of(p.records.as_deref().unwrap_or_default());
        assert_eq!(records.len() as i64, expected, "Fetch v{version}");
    }
}

#[test]
fn fetch_size_limits_return_whole_batches_and_at_least_one() {
    let (_broker, mut conn) = start();
    wire::create_topic(&mut conn, "sizes", 2, &[]);
    let value = vec![b'v'; 10_000];
    for p in 0..2 {
        for _ in 0..3 {
            let batch = wire::batch(&[wire::kv(b"k", &value)], now_ms(), Compression::None);
            wire::produce_ok(&mut conn, "sizes", p, batch);
        }
    }
    let request = |partition_max: i32, max_bytes: i32| {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_bytes(max_bytes)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(wire::tn("sizes"))
                .with_partitions(vec![
                    wire::fetch_partition(0, 0).with_partition_max_bytes(partition_max),
                    wire::fetch_partition(1, 0).with_partition_max_bytes(partition_max),
                ])])
    };
    let counts = |r: &FetchResponse| -> Vec<usize> {
        r.responses[0]
            .partitions
            .iter()
            .map(|p| {
                assert_eq!(p.error_code, 0);
                wire::records_of(p.records.as_deref().unwrap_or_default()).len()
            })
            .collect()
    };
    // A partition limit below one batch still returns that first batch of
    // the first partition (KIP-74), whole; the second gets nothing.
    let r = conn.call(12, &request(1, 1 << 20));
    assert_eq!(counts(&r), vec![1, 0]);
    // Partition limits of two batches each.
    let r = conn.call(12, &request(25_000, 1 << 20));
    assert_eq!(counts(&r), vec![2, 2]);
    // A response limit that the first partition uses up.
    let r = conn.call(12, &request(1 << 20, 25_000));
    let c = counts(&r);
    assert!(c[0] >= 1 && c[0] <= 3, "{c:?}");
    assert!(
        c.iter().sum::<usize>() <= 3,
        "response over max_bytes: {c:?}"
    );
    // Everything without limits.
    let r = conn.call(12, &request(1 << 20, 1 << 20));
    assert_eq!(counts(&r), vec![3, 3]);
}

#[test]
fn leader_epoch_checks_on_fetch_list_offsets_and_offset_for_leader_epoch() {
    const UNKNOWN_LEADER_EPOCH: i16 = 75;
    let (_broker, mut conn) = start();
    wire::create_topic(&mut conn, "epochs", 1, &[]);
    wire::produce_ok(&mut conn, "epochs", 0, wire::simple_batch(2));
    let epoch = conn
        .call(
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(wire::tn("epochs"))),
            ])),
        )
        .topics[0]
        .partitions[0]
        .leader_epoch;
    for (current, expected) in [(epoch, 0), (epoch + 1, UNKNOWN_LEADER_EPOCH)] {
        let mut request = wire::fetch_request("epochs", 0, 0, 0, 0);
        request.topics[0].partitions[0].current_leader_epoch = current;
        let r = conn.call(12, &request);
        assert_eq!(
            r.responses[0].partitions[0].error_code, expected,
            "Fetch, epoch {current}"
        );

        let r = conn.call(
            7,
            &ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(wire::tn("epochs"))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_current_leader_epoch(current)
                        .with_timestamp(-1)])]),
        );
        assert_eq!(
            r.topics[0].partitions[0].error_code, expected,
            "ListOffsets, epoch {current}"
        );

        let r = conn.call(
            4,
            &OffsetForLeaderEpochRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![OffsetForLeaderTopic::default()
                    .with_topic(wire::tn("epochs"))
                    .with_partitions(vec![OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(current)
                        .with_leader_epoch(epoch)])]),
        );
        assert_eq!(
            r.topics[0].partitions[0].error_code, expected,
            "OffsetForLeaderEpoch, epoch {current}"
        );
    }
    // An epoch newer than any in the log has no end offset.
    let r = conn.call(
        4,
        &OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(wire::tn("epochs"))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(-1)
                    .with_leader_epoch(epoch + 5)])]),
    );
    let p = &r.topics[0].partitions[0];
    assert_eq!((p.error_code, p.leader_epoch, p.end_offset), (0, -1, -1));
}

#[test]
fn produce_errors_are_per_partition() {
    let (_broker, mut conn) = start();
    wire::create_topic(&mut conn, "good", 1, &[]);
    wire::create_topic(&mut conn, "keyed", 1, &[("cleanup.policy", "compact")]);
    let unkeyed = wire::batch(&[(None, Some(b"v"), &[])], now_ms(), Compression::None);
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            kafka_protocol::messages::produce_request::TopicProduceData::default()
                .with_name(wire::tn("good"))
                .with_partition_data(vec![
                    kafka_protocol::messages::produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(wire::simple_batch(2))),
                ]),
            kafka_protocol::messages::produce_request::TopicProduceData::default()
                .with_name(wire::tn("keyed"))
                .with_partition_data(vec![
                    kafka_protocol::messages::produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(unkeyed)),
                ]),
        ]);
    let r = conn.call(9, &request);
    let by_topic: Vec<(String, i16, i64)> = r
        .responses
        .iter()
        .map(|t| {
            let p = &t.partition_responses[0];
            (t.name.to_string(), p.error_code, p.base_offset)
        })
        .collect();
    assert_eq!(
        by_topic,
        vec![
            ("good".to_string(), 0, 0),
            ("keyed".to_string(), INVALID_RECORD, -1)
        ]
    );
    assert_eq!(high_watermark(&mut conn, "good", 0), 2);
}

#[test]
fn acks_all_needs_min_insync_replicas() {
    const NOT_ENOUGH_REPLICAS: i16 = 19;
    let (_broker, mut conn) = start();
    wire::create_topic(&mut conn, "isr", 1, &[("min.insync.replicas", "2")]);
    let r = conn.call::<ProduceRequest>(
        9,
        &wire::produce_request("isr", 0, wire::simple_batch(1), -1),
    );
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        NOT_ENOUGH_REPLICAS
    );
    assert_eq!(high_watermark(&mut conn, "isr", 0), 0);
    // acks=1 does not wait for other replicas.
    let r = conn.call::<ProduceRequest>(
        9,
        &wire::produce_request("isr", 0, wire::simple_batch(1), 1),
    );
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(high_watermark(&mut conn, "isr", 0), 1);
}

#[test]
fn long_poll_wakes_for_any_requested_partition_and_returns_partial_data_at_max_wait() {
    let broker = TestBroker::start(&[]);
    let mut conn = Conn::connect(broker.addr());
    wire::create_topic(&mut conn, "multi", 2, &[]);
    let addr = broker.addr();
    let waiter = std::thread::spawn(move || {
        let mut conn = Conn::connect(addr);
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(60_000)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(wire::tn("multi"))
                .with_partitions(vec![
                    wire::fetch_partition(0, 0),
                    wire::fetch_partition(1, 0),
                ])]);
        conn.call(12, &request)
    });
    std::thread::sleep(Duration::from_millis(300));
    wire::produce_ok(&mut conn, "multi", 1, wire::simple_batch(2));
    let response = waiter.join().expect("fetch thread");
    let got: Vec<(i32, usize)> = response.responses[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                wire::records_of(p.records.as_deref().unwrap_or_default()).len(),
            )
        })
        .collect();
    assert_eq!(got, vec![(0, 0), (1, 2)]);

    // min_bytes never reached: at max_wait the broker returns what it has.
    let r = conn.call(12, &wire::fetch_request("multi", 1, 0, 300, 1 << 20));
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(
        wire::records_of(p.records.as_deref().unwrap_or_default()).len(),
        2
    );
}
