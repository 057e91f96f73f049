//! Robustness of request decoding: one broker receives thousands of random
//! and mutated frames over TCP. After every case the process must still
//! run, a fresh connection must get a correct ApiVersions answer, and the
//! broker must never have panicked (not even in a connection task, which
//! would leave the process running).
//!
//! Cases (proptest, seeded; `FUZZ_SEED` repeats a run, `FUZZ_CASES` scales
//! the counts): pure random bytes; a valid size prefix with a random body;
//! a valid request header for every API key and version the codec knows
//! (plus the versions just outside each range), followed by a random body
//! or by a valid encoded request (the codec's `Default` value, or a richer
//! request for the APIs the broker serves) that is truncated or mutated;
//! oversized and negative size prefixes; and a bad frame pipelined between
//! two good requests. A deterministic sweep first sends every API key and
//! version once whole and once cut short.

#![allow(clippy::unwrap_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic},
    describe_configs_request::DescribeConfigsResource,
    fetch_request::{FetchPartition, FetchTopic},
    incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData},
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteRecordsRequest, DescribeConfigsRequest, FetchRequest, IncrementalAlterConfigsRequest,
    ListOffsetsRequest, MetadataRequest, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use millrace_protocol::records::{BatchBuilder, Compression};
use millrace_tests::TestBroker;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// Kafka's default `socket.request.max.bytes`, which the broker keeps.
const MAX_REQUEST: i32 = 104_857_600;
/// How long one case may keep its connection open.
const CASE_READ: Duration = Duration::from_millis(500);
/// Wall-clock budget of the whole suite; cases past it are skipped.
const BUDGET: Duration = Duration::from_secs(150);

macro_rules! default_requests {
    ($($key:ident => $ty:ident,)*) => {
        /// The codec's `Default` request for `key`, encoded at `version`.
        fn default_body(key: ApiKey, version: i16) -> Option<Vec<u8>> {
            #[allow(unreachable_patterns)]
            match key {
                $(ApiKey::$key => encoded(&kafka_protocol::messages::$ty::default(), version),)*
                _ => None,
            }
        }
    };
}

default_requests!(
    Produce => ProduceRequest,
    Fetch => FetchRequest,
    ListOffsets => ListOffsetsRequest,
    Metadata => MetadataRequest,
    OffsetCommit => OffsetCommitRequest,
    OffsetFetch => OffsetFetchRequest,
    FindCoordinator => FindCoordinatorRequest,
    JoinGroup => JoinGroupRequest,
    Heartbeat => HeartbeatRequest,
    LeaveGroup => LeaveGroupRequest,
    SyncGroup => SyncGroupRequest,
    DescribeGroups => DescribeGroupsRequest,
    ListGroups => ListGroupsRequest,
    SaslHandshake => SaslHandshakeRequest,
    ApiVersions => ApiVersionsRequest,
    CreateTopics => CreateTopicsRequest,
    DeleteTopics => DeleteTopicsRequest,
    DeleteRecords => DeleteRecordsRequest,
    InitProducerId => InitProducerIdRequest,
    OffsetForLeaderEpoch => OffsetForLeaderEpochRequest,
    AddPartitionsToTxn => AddPartitionsToTxnRequest,
    AddOffsetsToTxn => AddOffsetsToTxnRequest,
    EndTxn => EndTxnRequest,
    WriteTxnMarkers => WriteTxnMarkersRequest,
    TxnOffsetCommit => TxnOffsetCommitRequest,
    DescribeAcls => DescribeAclsRequest,
    CreateAcls => CreateAclsRequest,
    DeleteAcls => DeleteAclsRequest,
    DescribeConfigs => DescribeConfigsRequest,
    AlterConfigs => AlterConfigsRequest,
    AlterReplicaLogDirs => AlterReplicaLogDirsRequest,
    DescribeLogDirs => DescribeLogDirsRequest,
    SaslAuthenticate => SaslAuthenticateRequest,
    CreatePartitions => CreatePartitionsRequest,
    CreateDelegationToken => CreateDelegationTokenRequest,
    RenewDelegationToken => RenewDelegationTokenRequest,
    ExpireDelegationToken => ExpireDelegationTokenRequest,
    DescribeDelegationToken => DescribeDelegationTokenRequest,
    DeleteGroups => DeleteGroupsRequest,
    ElectLeaders => ElectLeadersRequest,
    IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
    AlterPartitionReassignments => AlterPartitionReassignmentsRequest,
    ListPartitionReassignments => ListPartitionReassignmentsRequest,
    OffsetDelete => OffsetDeleteRequest,
    DescribeClientQuotas => DescribeClientQuotasRequest,
    AlterClientQuotas => AlterClientQuotasRequest,
    DescribeUserScramCredentials => DescribeUserScramCredentialsRequest,
    AlterUserScramCredentials => AlterUserScramCredentialsRequest,
    Vote => VoteRequest,
    BeginQuorumEpoch => BeginQuorumEpochRequest,
    EndQuorumEpoch => EndQuorumEpochRequest,
    DescribeQuorum => DescribeQuorumRequest,
    AlterPartition => AlterPartitionRequest,
    UpdateFeatures => UpdateFeaturesRequest,
    Envelope => EnvelopeRequest,
    FetchSnapshot => FetchSnapshotRequest,
    DescribeCluster => DescribeClusterRequest,
    DescribeProducers => DescribeProducersRequest,
    BrokerRegistration => BrokerRegistrationRequest,
    BrokerHeartbeat => BrokerHeartbeatRequest,
    UnregisterBroker => UnregisterBrokerRequest,
    DescribeTransactions => DescribeTransactionsRequest,
    ListTransactions => ListTransactionsRequest,
    AllocateProducerIds => AllocateProducerIdsRequest,
    ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest,
    ConsumerGroupDescribe => ConsumerGroupDescribeRequest,
    ControllerRegistration => ControllerRegistrationRequest,
    GetTelemetrySubscriptions => GetTelemetrySubscriptionsRequest,
    PushTelemetry => PushTelemetryRequest,
    AssignReplicasToDirs => AssignReplicasToDirsRequest,
    ListConfigResources => ListConfigResourcesRequest,
    DescribeTopicPartitions => DescribeTopicPartitionsRequest,
    ShareGroupHeartbeat => ShareGroupHeartbeatRequest,
    ShareGroupDescribe => ShareGroupDescribeRequest,
    ShareFetch => ShareFetchRequest,
    ShareAcknowledge => ShareAcknowledgeRequest,
    AddRaftVoter => AddRaftVoterRequest,
    RemoveRaftVoter => RemoveRaftVoterRequest,
    UpdateRaftVoter => UpdateRaftVoterRequest,
    InitializeShareGroupState => InitializeShareGroupStateRequest,
    ReadShareGroupState => ReadShareGroupStateRequest,
    WriteShareGroupState => WriteShareGroupStateRequest,
    DeleteShareGroupState => DeleteShareGroupStateRequest,
    ReadShareGroupStateSummary => ReadShareGroupStateSummaryRequest,
    DescribeShareGroupOffsets => DescribeShareGroupOffsetsRequest,
    AlterShareGroupOffsets => AlterShareGroupOffsetsRequest,
    DeleteShareGroupOffsets => DeleteShareGroupOffsetsRequest,
);

fn encoded<R: Encodable>(request: &R, version: i16) -> Option<Vec<u8>> {
    let mut buf = BytesMut::new();
    request.encode(&mut buf, version).ok()?;
    Some(buf.to_vec())
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

/// Requests richer than `Default` for the APIs the broker serves, so that
/// mutations reach the handlers and not only the outer decoding; encoded
/// at `version` where the codec can.
fn rich_body(key: ApiKey, version: i16) -> Option<Vec<u8>> {
    match key {
        ApiKey::Produce => {
            let mut batch = BatchBuilder::new(0, Compression::None);
            for i in 0..3 {
                batch.append(
                    i,
                    1_700_000_000_000 + i,
                    Some(b"key"),
                    Some(b"value"),
                    0,
                    &[],
                );
            }
            let request = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(1_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic_name("fuzz"))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch.build().unwrap()))])]);
            encoded(&request, version)
        }
        ApiKey::Fetch => {
            let request = FetchRequest::default()
                .with_max_wait_ms(10)
                .with_max_bytes(1 << 20)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(topic_name("fuzz"))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20)])]);
            encoded(&request, version)
        }
        ApiKey::Metadata => {
            let request = MetadataRequest::default()
                .with_allow_auto_topic_creation(true)
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic_name("fuzz")))
                ]));
            encoded(&request, version)
        }
        ApiKey::ListOffsets => {
            let request =
                ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic_name("fuzz"))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1)])]);
            encoded(&request, version)
        }
        ApiKey::CreateTopics => {
            let request = CreateTopicsRequest::default()
                .with_timeout_ms(1_000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(topic_name("fuzz-created"))
                    .with_num_partitions(1)
                    .with_replication_factor(1)
                    .with_configs(vec![CreatableTopicConfig::default()
                        .with_name(str_bytes("retention.ms"))
                        .with_value(Some(str_bytes("3600000")))])]);
            encoded(&request, version)
        }
        ApiKey::DescribeConfigs => {
            let request = DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(str_bytes("fuzz")),
            ]);
            encoded(&request, version)
        }
        ApiKey::DeleteRecords => {
            let request = DeleteRecordsRequest::default()
                .with_timeout_ms(1_000)
                .with_topics(vec![DeleteRecordsTopic::default()
                    .with_name(topic_name("fuzz"))
                    .with_partitions(vec![DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(0)])]);
            encoded(&request, version)
        }
        ApiKey::IncrementalAlterConfigs => {
            let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(str_bytes("fuzz"))
                    .with_configs(vec![AlterableConfig::default()
                        .with_name(str_bytes("retention.ms"))
                        .with_config_operation(0)
                        .with_value(Some(str_bytes("86400000")))]),
            ]);
            encoded(&request, version)
        }
        _ => None,
    }
}

/// An API version with a header and, where the codec can make one, a
/// valid body to mutate.
#[derive(Debug, Clone)]
struct Target {
    key: ApiKey,
    version: i16,
    /// Valid encodings of this request at this version.
    bodies: Vec<Vec<u8>>,
}

/// Every API key the codec knows, at every version of its range and the
/// versions just outside it.
fn targets() -> Vec<Target> {
    let mut out = Vec::new();
    for key in ApiKey::iter() {
        let range = key.valid_versions();
        for version in range.min - 1..=range.max + 1 {
            if version < 0 {
                continue;
            }
            let bodies: Vec<Vec<u8>> = [default_body(key, version), rich_body(key, version)]
                .into_iter()
                .flatten()
                .collect();
            out.push(Target {
                key,
                version,
                bodies,
            });
        }
    }
    out
}

/// Header bytes for `key`/`version` (the header version the codec picks).
fn header(key: ApiKey, version: i16, correlation_id: i32, client_id: Option<&str>) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(str_bytes));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    buf.to_vec()
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// A byte-level change to a valid body; positions wrap around its length.
#[derive(Debug, Clone)]
enum Mutation {
    Xor(usize, u8),
    Set(usize, u8),
    /// Overwrites 4 bytes with an interesting int (lengths, counts).
    SetI32(usize, i32),
    /// Overwrites 2 bytes with an interesting short (string lengths).
    SetI16(usize, i16),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Truncate(usize),
    Append(Vec<u8>),
}

fn interesting_i32() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(-1),
        Just(-2),
        Just(0),
        Just(1),
        Just(0x7f),
        Just(0x80),
        Just(0xffff),
        Just(i32::MAX),
        Just(i32::MIN),
        Just(MAX_REQUEST),
        Just(1 << 20),
        any::<i32>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1..=255u8).prop_map(|(i, m)| Mutation::Xor(i, m)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        2 => (any::<usize>(), interesting_i32()).prop_map(|(i, v)| Mutation::SetI32(i, v)),
        2 => (any::<usize>(), prop_oneof![Just(-1i16), Just(0), Just(i16::MAX), any::<i16>()])
            .prop_map(|(i, v)| Mutation::SetI16(i, v)),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<usize>(), 1..16usize).prop_map(|(i, n)| Mutation::Remove(i, n)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Append),
    ]
}

fn apply(body: &mut Vec<u8>, mutation: &Mutation) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match mutation {
        Mutation::Xor(i, m) if !body.is_empty() => {
            let i = at(*i, body.len());
            body[i] ^= m;
        }
        Mutation::Set(i, b) if !body.is_empty() => {
            let i = at(*i, body.len());
            body[i] = *b;
        }
        Mutation::SetI32(i, v) if body.len() >= 4 => {
            let i = at(*i, body.len() - 3);
            body[i..i + 4].copy_from_slice(&v.to_be_bytes());
        }
        Mutation::SetI16(i, v) if body.len() >= 2 => {
            let i = at(*i, body.len() - 1);
            body[i..i + 2].copy_from_slice(&v.to_be_bytes());
        }
        Mutation::Insert(i, bytes) => {
            let i = at(*i, body.len() + 1);
            body.splice(i..i, bytes.iter().copied());
        }
        Mutation::Remove(i, n) if !body.is_empty() => {
            let i = at(*i, body.len());
            let end = (i + n).min(body.len());
            body.drain(i..end);
        }
        Mutation::Truncate(i) => {
            let i = at(*i, body.len() + 1);
            body.truncate(i);
        }
        Mutation::Append(bytes) => body.extend_from_slice(bytes),
        _ => {}
    }
}

/// What follows a valid header.
#[derive(Debug, Clone)]
enum Body {
    Random(Vec<u8>),
    /// A valid body (by index), mutated.
    Mutated(usize, Vec<Mutation>),
    /// A valid body (by index) cut at a position (modulo its length).
    Truncated(usize, usize),
}

#[derive(Debug, Clone)]
enum Case {
    /// Random bytes, no framing at all.
    Raw(Vec<u8>),
    /// A correct size prefix and a random payload.
    RandomFrame(Vec<u8>),
    /// A valid header for `targets[target]` and a body; the size prefix is
    /// off by `size_delta` (0 most of the time).
    Request {
        target: usize,
        correlation_id: i32,
        client_id: Option<String>,
        body: Body,
        size_delta: i32,
    },
    /// A size prefix above `socket.request.max.bytes`.
    Oversized(i32, Vec<u8>),
    /// A size within the limit but far more than is sent.
    Undersupplied(i32, Vec<u8>),
    /// A negative size prefix.
    Negative(i32, Vec<u8>),
    /// ApiVersions, then a bad request, then Metadata, in one write.
    Pipelined(Box<Case>),
}

/// Which bodies follow valid headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bodies {
    /// Random, mutated and truncated bodies.
    All,
    /// Only valid bodies cut short: they never declare an array longer
    /// than the request (see `ARRAY_PREALLOCATION`).
    TruncatedOnly,
}

fn body_strategy(bodies: Bodies) -> BoxedStrategy<Body> {
    let truncated = (any::<usize>(), any::<usize>()).prop_map(|(i, c)| Body::Truncated(i, c));
    match bodies {
        Bodies::All => prop_oneof![
            2 => proptest::collection::vec(any::<u8>(), 0..256).prop_map(Body::Random),
            6 => (any::<usize>(), proptest::collection::vec(mutation(), 1..6))
                .prop_map(|(i, m)| Body::Mutated(i, m)),
            2 => truncated,
        ]
        .boxed(),
        Bodies::TruncatedOnly => truncated.boxed(),
    }
}

fn request_strategy(targets: usize, bodies: Bodies) -> impl Strategy<Value = Case> {
    (
        0..targets,
        any::<i32>(),
        proptest::option::of("[a-z0-9._-]{0,12}"),
        body_strategy(bodies),
        prop_oneof![8 => Just(0i32), 1 => -8..0i32, 1 => 1..8i32],
    )
        .prop_map(
            |(target, correlation_id, client_id, body, size_delta)| Case::Request {
                target,
                correlation_id,
                client_id,
                body,
                size_delta,
            },
        )
}

fn case_strategy(targets: usize, bodies: Bodies) -> impl Strategy<Value = Case> {
    let tail = || proptest::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        2 => proptest::collection::vec(any::<u8>(), 0..2048).prop_map(Case::Raw),
        2 => proptest::collection::vec(any::<u8>(), 0..1024).prop_map(Case::RandomFrame),
        12 => request_strategy(targets, bodies),
        1 => (MAX_REQUEST + 1..=i32::MAX, tail()).prop_map(|(s, t)| Case::Oversized(s, t)),
        1 => (1024..=MAX_REQUEST, tail()).prop_map(|(s, t)| Case::Undersupplied(s, t)),
        1 => (i32::MIN..0, tail()).prop_map(|(s, t)| Case::Negative(s, t)),
        2 => request_strategy(targets, bodies).prop_map(|c| Case::Pipelined(Box::new(c))),
    ]
}

/// The bytes a request case sends, and the correlation id a response to
/// it must carry.
fn request_bytes(
    target: &Target,
    correlation_id: i32,
    client_id: Option<&str>,
    body: &Body,
    size_delta: i32,
) -> Vec<u8> {
    let mut payload = header(target.key, target.version, correlation_id, client_id);
    let valid = |i: usize| -> Option<&Vec<u8>> {
        (!target.bodies.is_empty()).then(|| &target.bodies[i % target.bodies.len()])
    };
    match body {
        Body::Random(bytes) => payload.extend_from_slice(bytes),
        Body::Mutated(i, mutations) => {
            let mut b = valid(*i).cloned().unwrap_or_default();
            for m in mutations {
                apply(&mut b, m);
            }
            payload.extend_from_slice(&b);
        }
        Body::Truncated(i, cut) => {
            let b = valid(*i).cloned().unwrap_or_default();
            let cut = if b.is_empty() { 0 } else { cut % b.len() };
            payload.extend_from_slice(&b[..cut]);
        }
    }
    let size = (payload.len() as i32).saturating_add(size_delta).max(0);
    let mut out = size.to_be_bytes().to_vec();
    out.extend_from_slice(&payload);
    out
}

fn api_versions_frame(correlation_id: i32) -> Vec<u8> {
    let mut payload = header(ApiKey::ApiVersions, 3, correlation_id, Some("fuzz"));
    let mut body = BytesMut::new();
    ApiVersionsRequest::default()
        .with_client_software_name(str_bytes("millrace-fuzz"))
        .with_client_software_version(str_bytes("1.0"))
        .encode(&mut body, 3)
        .unwrap();
    payload.extend_from_slice(&body);
    framed(&payload)
}

fn metadata_frame(correlation_id: i32) -> Vec<u8> {
    let mut payload = header(ApiKey::Metadata, 12, correlation_id, Some("fuzz"));
    let mut body = BytesMut::new();
    MetadataRequest::default()
        .with_topics(Some(vec![]))
        .encode(&mut body, 12)
        .unwrap();
    payload.extend_from_slice(&body);
    framed(&payload)
}

/// Splits complete response frames off `bytes`: (correlation id, body).
fn responses(bytes: &[u8]) -> Result<Vec<(i32, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 4 {
        let size = i32::from_be_bytes(rest[..4].try_into().unwrap());
        if size < 4 {
            return Err(format!("response frame of size {size}"));
        }
        let size = size as usize;
        if rest.len() < 4 + size {
            break;
        }
        let frame = &rest[4..4 + size];
        out.push((
            i32::from_be_bytes(frame[..4].try_into().unwrap()),
            frame[4..].to_vec(),
        ));
        rest = &rest[4 + size..];
    }
    Ok(out)
}

/// Sends `bytes` on a new connection, half-closes it, and reads what comes
/// back until the broker closes or `CASE_READ` passes.
fn exchange(broker: &TestBroker, bytes: &[u8]) -> Result<Vec<u8>, String> {
    exchange_for(broker, bytes, CASE_READ)
}

/// [`exchange`] waiting up to `wait` for the broker to close.
fn exchange_for(broker: &TestBroker, bytes: &[u8], wait: Duration) -> Result<Vec<u8>, String> {
    let mut stream = TcpStream::connect_timeout(&broker.addr(), Duration::from_secs(5))
        .map_err(|e| format!("the broker does not accept connections: {e}"))?;
    stream.set_nodelay(true).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // The broker may close early (a bad size prefix): a failed write is fine.
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + wait;
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(_) => break,
        }
    }
    Ok(received)
}

/// A fresh connection gets a well-formed, successful ApiVersions v3 answer.
fn check_api_versions(broker: &TestBroker, correlation_id: i32) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&broker.addr(), Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(&api_versions_frame(correlation_id))
        .map_err(|e| format!("write: {e}"))?;
    let mut size = [0u8; 4];
    stream
        .read_exact(&mut size)
        .map_err(|e| format!("read size: {e}"))?;
    let size = i32::from_be_bytes(size);
    if !(4..1 << 20).contains(&size) {
        return Err(format!("ApiVersions response size {size}"));
    }
    let mut frame = vec![0u8; size as usize];
    stream
        .read_exact(&mut frame)
        .map_err(|e| format!("read body: {e}"))?;
    let got = i32::from_be_bytes(frame[..4].try_into().unwrap());
    if got != correlation_id {
        return Err(format!("correlation id {got}, sent {correlation_id}"));
    }
    let mut body = Bytes::copy_from_slice(&frame[4..]);
    let response =
        ApiVersionsResponse::decode(&mut body, 3).map_err(|e| format!("decode: {e:#}"))?;
    if response.error_code != 0 {
        return Err(format!("ApiVersions error code {}", response.error_code));
    }
    let own = response
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .ok_or("ApiVersions missing from its own answer")?;
    if !(own.min_version == 0 && own.max_version >= 3) {
        return Err(format!(
            "ApiVersions range {}..{}",
            own.min_version, own.max_version
        ));
    }
    if !response
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Produce as i16)
    {
        return Err("Produce missing from ApiVersions".into());
    }
    Ok(())
}

/// The fuzzing session: one broker, the targets, and how much of the
/// broker's output was already checked for panics.
struct Session {
    broker: TestBroker,
    targets: Vec<Target>,
    output_checked: usize,
    cases: u64,
    started: Instant,
    /// Set once the broker died: every later case fails with this message
    /// (shrinking cannot help once the process is gone).
    fatal: Option<String>,
}

impl Session {
    fn over_budget(&self) -> bool {
        self.started.elapsed() > BUDGET
    }

    /// Runs one case and every check after it.
    fn run(&mut self, case: &Case) -> Result<(), String> {
        if let Some(fatal) = &self.fatal {
            return Err(fatal.clone());
        }
        self.cases += 1;
        let result = self.run_checks(case);
        if result.is_err() && !self.still_running() {
            let (bytes, _) = self.case_bytes(case);
            let fatal = format!(
                "the broker died\ncase: {case:?}\nbytes: {}\nits last output:\n{}",
                hex(&bytes),
                self.new_output()
            );
            self.fatal = Some(fatal.clone());
            return Err(fatal);
        }
        result
    }

    /// Whether the process runs; a process on its way out is given a
    /// moment to exit first.
    fn still_running(&mut self) -> bool {
        std::thread::sleep(Duration::from_millis(200));
        self.broker.is_running()
    }

    fn run_checks(&mut self, case: &Case) -> Result<(), String> {
        let (bytes, expected_ids) = self.case_bytes(case);
        let received = exchange(&self.broker, &bytes)?;
        if !self.broker.is_running() {
            return Err("the broker died".into());
        }
        let new_output = self.new_output();
        if new_output.contains("panicked at") {
            return Err(format!(
                "the broker panicked:\n{new_output}\ncase: {case:?}\nbytes: {}",
                hex(&bytes)
            ));
        }
        if let Some((expected, misframed_tail)) = expected_ids {
            let frames = responses(&received).map_err(|e| format!("{e}; case {case:?}"))?;
            if !misframed_tail && frames.len() > expected.len() {
                return Err(format!(
                    "{} responses to {} requests; case {case:?}",
                    frames.len(),
                    expected.len()
                ));
            }
            // Answers come in request order; a request may go unanswered
            // (acks=0 Produce, or the connection closed at a bad one).
            let checked = if misframed_tail {
                frames.len().min(1)
            } else {
                frames.len()
            };
            let mut pending = expected.iter();
            for (got, _) in &frames[..checked] {
                if !pending.any(|want| want == got) {
                    return Err(format!(
                        "response with correlation id {got}, expected one of {expected:?} in order; case {case:?}"
                    ));
                }
            }
            if matches!(case, Case::Pipelined(_)) {
                // The good request before the bad one is always answered.
                let first = frames.first().ok_or_else(|| {
                    format!("no answer to the ApiVersions request before a bad one; case {case:?}")
                })?;
                if first.0 != -7 {
                    return Err(format!(
                        "first answer has correlation id {}, not the ApiVersions request's; case {case:?}",
                        first.0
                    ));
                }
                let mut body = Bytes::from(first.1.clone());
                let response = ApiVersionsResponse::decode(&mut body, 3)
                    .map_err(|e| format!("pipelined ApiVersions answer: {e:#}"))?;
                if response.error_code != 0 {
                    return Err(format!(
                        "pipelined ApiVersions error {}",
                        response.error_code
                    ));
                }
            }
        }
        let id = (self.cases % i32::MAX as u64) as i32;
        check_api_versions(&self.broker, id).map_err(|e| {
            format!(
                "ApiVersions failed after a case: {e}\ncase: {case:?}\nbytes: {}\n{}",
                hex(&bytes),
                self.new_output()
            )
        })
    }

    /// The bytes of a case and, when they start with well-formed requests,
    /// the correlation ids responses may carry, in order, and whether
    /// misframed bytes follow them (answers to which cannot be predicted).
    fn case_bytes(&self, case: &Case) -> (Vec<u8>, Option<(Vec<i32>, bool)>) {
        match case {
            Case::Raw(b) => (b.clone(), None),
            Case::RandomFrame(b) => (framed(b), None),
            Case::Request {
                target,
                correlation_id,
                client_id,
                body,
                size_delta,
            } => {
                let t = &self.targets[*target];
                let bytes =
                    request_bytes(t, *correlation_id, client_id.as_deref(), body, *size_delta);
                // With a wrong size prefix the frame boundary is wrong, so
                // what follows is not a request of ours.
                let ids = (*size_delta == 0).then(|| (vec![*correlation_id], false));
                (bytes, ids)
            }
            Case::Oversized(size, tail)
            | Case::Undersupplied(size, tail)
            | Case::Negative(size, tail) => {
                let mut b = size.to_be_bytes().to_vec();
                b.extend_from_slice(tail);
                (b, Some((vec![], false)))
            }
            Case::Pipelined(inner) => {
                let (bad, _) = self.case_bytes(inner);
                let mut b = api_versions_frame(-7);
                b.extend_from_slice(&bad);
                b.extend_from_slice(&metadata_frame(-8));
                let ids = match inner.as_ref() {
                    Case::Request {
                        correlation_id,
                        size_delta: 0,
                        ..
                    } => Some((vec![-7, *correlation_id, -8], false)),
                    _ => Some((vec![-7], true)),
                };
                (b, ids)
            }
        }
    }

    fn new_output(&mut self) -> String {
        let out = self.broker.output();
        let new = out
            .get(self.output_checked..)
            .unwrap_or_default()
            .to_string();
        self.output_checked = out.len();
        new
    }
}

fn hex(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(512)];
    let mut s: String = shown.iter().map(|b| format!("{b:02x}")).collect();
    if bytes.len() > shown.len() {
        s.push_str(&format!("… ({} bytes)", bytes.len()));
    }
    s
}

fn seed() -> u64 {
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("fuzz_frames: seed {seed} (set FUZZ_SEED={seed} to repeat)");
    seed
}

fn create_fuzz_topic(broker: &TestBroker) {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name("fuzz"))
            .with_num_partitions(2)
            .with_replication_factor(1)]);
    let mut payload = header(ApiKey::CreateTopics, 5, 1, Some("fuzz"));
    let mut body = BytesMut::new();
    request.encode(&mut body, 5).unwrap();
    payload.extend_from_slice(&body);
    let received = exchange(broker, &framed(&payload)).unwrap();
    let frames = responses(&received).unwrap();
    assert_eq!(frames.len(), 1, "CreateTopics answered");
    let mut body = Bytes::from(frames[0].1.clone());
    // CreateTopics v5 is flexible: response header v1 (one tagged-field byte).
    assert_eq!(body[0], 0);
    let _ = bytes::Buf::get_u8(&mut body);
    let response = CreateTopicsResponse::decode(&mut body, 5).unwrap();
    assert_eq!(response.topics[0].error_code, 0, "{response:?}");
}

/// Runs the sweep, then `cases` random cases (scaled by `FUZZ_CASES`,
/// default 20000) against one broker.
fn fuzz(bodies: Bodies) {
    let scale: u32 = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let seed = seed();
    let broker = TestBroker::start(&[]);
    create_fuzz_topic(&broker);
    let targets = targets();
    let with_bodies = targets.iter().filter(|t| !t.bodies.is_empty()).count();
    println!(
        "{} API keys, {} key/version targets ({with_bodies} with a valid body to mutate)",
        ApiKey::iter().count(),
        targets.len()
    );
    let mut session = Session {
        broker,
        targets,
        output_checked: 0,
        cases: 0,
        started: Instant::now(),
        fatal: None,
    };
    check_api_versions(&session.broker, 1).expect("ApiVersions before fuzzing");

    // Deterministic sweep: every key and version, whole (every valid body)
    // and cut short.
    for i in 0..session.targets.len() {
        let whole = (0..session.targets[i].bodies.len().max(1)).map(|b| Body::Mutated(b, vec![]));
        let cut = [
            Body::Truncated(0, usize::MAX),
            Body::Truncated(1, usize::MAX),
        ];
        for body in whole.chain(cut) {
            let case = Case::Request {
                target: i,
                correlation_id: i as i32,
                client_id: Some("sweep".into()),
                body,
                size_delta: 0,
            };
            if let Err(e) = session.run(&case) {
                panic!("sweep: {e}");
            }
        }
    }
    let swept = session.cases;
    println!("sweep: {swept} cases in {:?}", session.started.elapsed());

    let config = Config {
        cases: scale,
        failure_persistence: None,
        max_shrink_iters: 200,
        max_shrink_time: 30_000,
        ..Config::default()
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = case_strategy(session.targets.len(), bodies);
    let session = std::cell::RefCell::new(session);
    let result = runner.run(&strategy, |case| {
        let mut session = session.borrow_mut();
        if session.over_budget() {
            return Ok(());
        }
        session.run(&case).map_err(TestCaseError::fail)
    });
    let mut session = session.into_inner();
    let elapsed = session.started.elapsed();
    println!(
        "fuzz_frames: {} cases ({} random) in {elapsed:?}{}",
        session.cases,
        session.cases - swept,
        if session.over_budget() {
            " (stopped at the time budget)"
        } else {
            ""
        }
    );
    if let Some(fatal) = &session.fatal {
        panic!("{fatal}");
    }
    if let Err(e) = result {
        panic!("{e}");
    }
    let out = session.broker.output();
    assert!(!out.contains("panicked at"), "the broker panicked:\n{out}");
    assert!(session.broker.is_running());
    session.broker.stop();
}

/// Every header, framing and size-prefix case, with valid bodies cut short.
#[test]
fn malformed_frames_and_headers_never_take_the_broker_down() {
    fuzz(Bodies::TruncatedOnly);
}

/// What the broker must survive: kafka-protocol 0.18 sizes an array's Vec
/// from the declared length before decoding it (`millrace`'s allocator turns
/// such a request into an address-space reservation instead of an abort).
const ARRAY_PREALLOCATION: &str = "a request declaring a huge array length \
    must be rejected without the broker aborting on the allocation";

/// Also random and mutated bodies after valid headers.
#[test]
fn random_and_mutated_bodies_never_take_the_broker_down() {
    fuzz(Bodies::All);
}

/// The smallest reproduction: Metadata v4 declaring i32::MAX topics.
#[test]
fn a_huge_declared_array_length_is_rejected_without_aborting() {
    let broker = TestBroker::start(&[]);
    let mut payload = header(ApiKey::Metadata, 4, 42, Some("fuzz"));
    payload.extend_from_slice(&i32::MAX.to_be_bytes());
    payload.push(1); // allow_auto_topic_creation
    let mut session = Session {
        broker,
        targets: vec![],
        output_checked: 0,
        cases: 0,
        started: Instant::now(),
        fatal: None,
    };
    let case = Case::RandomFrame(payload);
    if let Err(e) = session.run(&case) {
        panic!("{ARRAY_PREALLOCATION}\n{e}");
    }
    session.broker.stop();
}

/// Sends one request on a new connection and returns the response body
/// (after the response header).
fn round_trip<R: Encodable>(broker: &TestBroker, key: ApiKey, version: i16, request: &R) -> Bytes {
    let mut payload = header(key, version, 77, Some("fuzz"));
    let mut body = BytesMut::new();
    request.encode(&mut body, version).unwrap();
    payload.extend_from_slice(&body);
    let received = exchange_for(broker, &framed(&payload), Duration::from_secs(60)).unwrap();
    let frames = responses(&received).unwrap();
    assert_eq!(frames.len(), 1, "one answer to {key:?} v{version}");
    assert_eq!(frames[0].0, 77);
    let mut body = Bytes::from(frames[0].1.clone());
    if key.response_header_version(version) >= 1 {
        assert_eq!(bytes::Buf::get_u8(&mut body), 0, "no tagged fields");
    }
    body
}

/// Peak resident memory of a process, from /proc (Linux), in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A snappy-compressed batch whose blocks declare 4 GiB of uncompressed
/// data in a few bytes is rejected as corrupt without the broker
/// allocating what they claim (the snappy decoder sizes and zeroes its
/// output from the declared length before reading any data).
#[test]
fn snappy_length_headers_do_not_make_the_broker_allocate_them() {
    let broker = TestBroker::start(&[]);
    create_fuzz_topic(&broker);
    let pid = broker.pid().unwrap();
    let before = peak_rss(pid);
    // One xerial-framed block and one raw block, each claiming 4 GiB - 1.
    let claim = [0xff, 0xff, 0xff, 0xff, 0x0f];
    let mut framed_block = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
    framed_block.extend_from_slice(&(claim.len() as u32).to_be_bytes());
    framed_block.extend_from_slice(&claim);
    for section in [framed_block, claim.to_vec()] {
        let mut batch = Vec::new();
        batch.extend_from_slice(&0i64.to_be_bytes());
        batch.extend_from_slice(&((49 + section.len()) as i32).to_be_bytes());
        batch.extend_from_slice(&(-1i32).to_be_bytes());
        batch.push(2);
        batch.extend_from_slice(&[0; 4]);
        batch.extend_from_slice(&2i16.to_be_bytes()); // snappy
        batch.extend_from_slice(&0i32.to_be_bytes());
        batch.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        batch.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        batch.extend_from_slice(&(-1i64).to_be_bytes());
        batch.extend_from_slice(&(-1i16).to_be_bytes());
        batch.extend_from_slice(&(-1i32).to_be_bytes());
        batch.extend_from_slice(&1i32.to_be_bytes());
        batch.extend_from_slice(&section);
        let crc = millrace_protocol::records::BatchIter::new(&batch)
            .next()
            .unwrap()
            .unwrap()
            .computed_crc();
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name("fuzz"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch)))])]);
        let mut body = round_trip(&broker, ApiKey::Produce, 9, &request);
        let response = kafka_protocol::messages::ProduceResponse::decode(&mut body, 9).unwrap();
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(
            partition.error_code,
            kafka_protocol::error::ResponseError::CorruptMessage.code(),
            "{partition:?}"
        );
    }
    let mut broker = broker;
    assert!(broker.is_running());
    check_api_versions(&broker, 5).unwrap();
    if let (Some(before), Some(after)) = (before, peak_rss(pid)) {
        println!(
            "broker peak RSS: {} MiB before, {} MiB after",
            before >> 20,
            after >> 20
        );
        assert!(
            after < before + (512 << 20),
            "the broker's peak memory grew from {} MiB to {} MiB on two tiny batches",
            before >> 20,
            after >> 20
        );
    }
    broker.stop();
}
