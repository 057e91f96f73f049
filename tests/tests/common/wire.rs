//! A raw Kafka protocol client over a blocking TCP socket: requests are
//! encoded with the `kafka-protocol` codecs and framed by hand, so tests
//! control every byte the broker sees (versions, correlation ids, garbage).
//!
//! Every socket read and write has a timeout, so a broker that never answers
//! fails the test instead of hanging it.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, FetchRequest, ProduceRequest, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use millrace_protocol::records::{BatchBuilder, BatchIter, Compression};
use uuid::Uuid;

/// How long any single socket read or write may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// A `StrBytes` from a `&str`.
pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A `TopicName` from a `&str`.
pub fn tn(s: &str) -> TopicName {
    TopicName(sb(s))
}

/// One connection to the broker.
pub struct Conn {
    stream: TcpStream,
    next_correlation: i32,
}

impl Conn {
    /// Connects with read and write timeouts set.
    pub fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to broker");
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .expect("write timeout");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream,
            next_correlation: 1,
        }
    }

    /// The next correlation id this connection will use.
    pub fn next_correlation(&mut self) -> i32 {
        let id = self.next_correlation;
        self.next_correlation += 1;
        id
    }

    /// Encodes a whole request frame (size, header, body) for `R` at `version`.
    pub fn frame<R: Request>(version: i16, correlation_id: i32, request: &R) -> Vec<u8> {
        Self::frame_mismatched(version, version, correlation_id, request)
    }

    /// Like [`Conn::frame`], but the header names `header_version` while the
    /// body is encoded at `body_version` (a client newer than the codec).
    pub fn frame_mismatched<R: Request>(
        header_version: i16,
        body_version: i16,
        correlation_id: i32,
        request: &R,
    ) -> Vec<u8> {
        let key = api_key::<R>();
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(header_version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(sb("millrace-tests")))
            .encode(&mut body, key.request_header_version(body_version))
            .expect("encode request header");
        request
            .encode(&mut body, body_version)
            .expect("encode request body");
        let mut out = Vec::with_capacity(4 + body.len());
        out.put_i32(body.len() as i32);
        out.extend_from_slice(&body);
        out
    }

    /// Sends `request` at `version`; returns its correlation id.
    pub fn send<R: Request>(&mut self, version: i16, request: &R) -> i32 {
        let correlation_id = self.next_correlation();
        let frame = Self::frame(version, correlation_id, request);
        self.write_raw(&frame);
        correlation_id
    }

    /// Writes bytes as they are.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to broker");
        self.stream.flush().expect("flush");
    }

    /// Reads one response frame (without its size prefix).
    pub fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = i32::from_be_bytes(size);
        assert!(size >= 4, "response frame size {size}");
        let mut body = vec![0u8; size as usize];
        self.stream.read_exact(&mut body)?;
        Ok(Bytes::from(body))
    }

    /// Reads the response to a request of API `key` sent at `request_version`,
    /// decoding the body at `body_version` (they differ only for the
    /// ApiVersions fallback). Returns the correlation id and the body.
    pub fn receive_as<T: Decodable>(
        &mut self,
        key: ApiKey,
        request_version: i16,
        body_version: i16,
    ) -> (i32, T) {
        let mut frame = self
            .read_frame()
            .unwrap_or_else(|e| panic!("reading the {key:?} v{request_version} response: {e}"));
        let header =
            ResponseHeader::decode(&mut frame, key.response_header_version(request_version))
                .expect("decode response header");
        let body = T::decode(&mut frame, body_version)
            .unwrap_or_else(|e| panic!("decode {key:?} v{body_version} response: {e:#}"));
        assert_eq!(
            frame.remaining(),
            0,
            "{key:?} v{body_version} response has {} trailing bytes",
            frame.remaining()
        );
        (header.correlation_id, body)
    }

    /// Reads the response to the request with `correlation_id`.
    pub fn receive<R: Request>(&mut self, version: i16, correlation_id: i32) -> R::Response {
        let (got, body) = self.receive_as::<R::Response>(api_key::<R>(), version, version);
        assert_eq!(got, correlation_id, "responses out of order");
        body
    }

    /// Sends a request and reads its response.
    pub fn call<R: Request>(&mut self, version: i16, request: &R) -> R::Response {
        let correlation_id = self.send(version, request);
        self.receive::<R>(version, correlation_id)
    }

    /// Asserts the broker closed this connection (EOF or reset) without
    /// sending anything more.
    pub fn assert_closed(&mut self) {
        let mut buf = [0u8; 64];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!(
                "expected a closed connection, read {n} bytes: {:?}",
                &buf[..n]
            ),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {}
            Err(e) => panic!("expected a closed connection, got {e} ({:?})", e.kind()),
        }
    }
}

/// The API key of request type `R`.
pub fn api_key<R: Request>() -> ApiKey {
    ApiKey::try_from(R::KEY).expect("known API key")
}

/// Creates a topic through CreateTopics v7; returns its id.
pub fn create_topic(
    conn: &mut Conn,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Uuid {
    let topic = CreatableTopic::default()
        .with_name(tn(name))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(sb(k))
                        .with_value(Some(sb(v)))
                })
                .collect(),
        );
    let response = conn.call(
        7,
        &CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(10_000),
    );
    let result = &response.topics[0];
    assert_eq!(
        result.error_code, 0,
        "creating {name}: {:?}",
        result.error_message
    );
    result.topic_id
}

/// A record for [`batch`]: key, value, headers.
pub type TestRecord<'a> = (
    Option<&'a [u8]>,
    Option<&'a [u8]>,
    &'a [(&'a str, &'a [u8])],
);

/// A keyed record without headers.
pub fn kv<'a>(key: &'a [u8], value: &'a [u8]) -> TestRecord<'a> {
    (Some(key), Some(value), &[])
}

/// Encodes record headers as a v2 record carries them.
pub fn encode_headers(headers: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in headers {
        millrace_protocol::records::put_varint(&mut out, k.len() as i32);
        out.extend_from_slice(k.as_bytes());
        millrace_protocol::records::put_varint(&mut out, v.len() as i32);
        out.extend_from_slice(v);
    }
    out
}

/// Builds a v2 batch (base offset 0) whose record `i` has timestamp
/// `timestamp + i`.
pub fn batch(records: &[TestRecord<'_>], timestamp: i64, compression: Compression) -> Bytes {
    let mut builder = BatchBuilder::new(0, compression);
    for (i, (key, value, headers)) in records.iter().enumerate() {
        builder.append(
            i as i64,
            timestamp + i as i64,
            *key,
            *value,
            headers.len() as i32,
            &encode_headers(headers),
        );
    }
    builder.build().expect("build batch")
}

/// A batch of `n` keyed records `k<i>`/`v<i>` stamped now.
pub fn simple_batch(n: usize) -> Bytes {
    let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    let values: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
    let records: Vec<TestRecord<'_>> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes()), &[][..]))
        .collect();
    batch(&records, now_ms(), Compression::None)
}

/// A Produce request of one batch to one partition.
pub fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(tn(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

/// Produces one batch with acks=all at Produce v9; returns the partition result.
pub fn produce(
    conn: &mut Conn,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> PartitionProduceResponse {
    produce_at(conn, 9, topic, partition, records)
}

/// Produces one batch with acks=all at `version`; returns the partition result.
pub fn produce_at(
    conn: &mut Conn,
    version: i16,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> PartitionProduceResponse {
    let response = conn.call(version, &produce_request(topic, partition, records, -1));
    assert_eq!(response.responses.len(), 1);
    assert_eq!(response.responses[0].partition_responses.len(), 1);
    response.responses[0].partition_responses[0].clone()
}

/// Produces and asserts success; returns the base offset.
pub fn produce_ok(conn: &mut Conn, topic: &str, partition: i32, records: Bytes) -> i64 {
    let p = produce(conn, topic, partition, records);
    assert_eq!(
        p.error_code, 0,
        "produce to {topic}-{partition}: {:?}",
        p.error_message
    );
    p.base_offset
}

/// One fetch partition entry.
pub fn fetch_partition(partition: i32, offset: i64) -> FetchPartition {
    FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(offset)
        .with_current_leader_epoch(-1)
        .with_last_fetched_epoch(-1)
        .with_log_start_offset(-1)
        .with_partition_max_bytes(1 << 20)
}

/// A sessionless Fetch request by topic name (v4-v12) for one partition.
pub fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(50 << 20)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(tn(topic))
            .with_partitions(vec![fetch_partition(partition, offset)])])
}

/// Fetches one partition at Fetch v12 without waiting; returns its data.
pub fn fetch(conn: &mut Conn, topic: &str, partition: i32, offset: i64) -> PartitionData {
    let response = conn.call(12, &fetch_request(topic, partition, offset, 0, 0));
    assert_eq!(response.error_code, 0);
    assert_eq!(response.responses.len(), 1);
    assert_eq!(response.responses[0].partitions.len(), 1);
    response.responses[0].partitions[0].clone()
}

/// A record read back from fetched bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    /// Absolute offset.
    pub offset: i64,
    /// Absolute timestamp.
    pub timestamp: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Decodes every record in `bytes` (whole batches), checking each CRC.
pub fn records_of(bytes: &[u8]) -> Vec<ReadRecord> {
    let mut out = Vec::new();
    for batch in BatchIter::new(bytes) {
        let batch = batch.expect("whole batch");
        batch.verify_crc().expect("batch CRC");
        let header = batch.header;
        let log_append =
            header.timestamp_type() == millrace_protocol::records::TimestampType::LogAppendTime;
        let payload = batch.records().expect("records");
        for record in payload.iter() {
            let record = record.expect("record");
            out.push(ReadRecord {
                offset: header.base_offset + i64::from(record.offset_delta),
                timestamp: if log_append {
                    header.max_timestamp
                } else {
                    header.base_timestamp + record.timestamp_delta
                },
                key: record.key.map(<[u8]>::to_vec),
                value: record.value.map(<[u8]>::to_vec),
                headers: record
                    .header_pairs()
                    .expect("headers")
                    .into_iter()
                    .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                    .collect(),
            });
        }
    }
    out
}
