//! Connection-level protocol behaviour over raw TCP: version negotiation
//! (ApiVersions and its v0 fallback), UNSUPPORTED_VERSION answers, what closes
//! a connection (and only that one), and in-order answers to pipelined
//! requests.

mod common;

use std::collections::BTreeMap;

use common::wire::{self, Conn};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, MetadataRequest, ProduceRequest,
};
use millrace_tests::TestBroker;

/// The ranges the broker must advertise: Kafka 3.7's, from the codec's
/// minimum where Kafka 4.0 removed older versions (KIP-896).
fn expected_ranges() -> BTreeMap<i16, (i16, i16)> {
    [
        (ApiKey::Produce, 3, 10),
        (ApiKey::Fetch, 4, 16),
        (ApiKey::ListOffsets, 1, 8),
        (ApiKey::Metadata, 0, 12),
        (ApiKey::OffsetForLeaderEpoch, 2, 4),
        (ApiKey::ApiVersions, 0, 3),
        (ApiKey::CreateTopics, 2, 7),
        (ApiKey::DeleteTopics, 1, 6),
        (ApiKey::DeleteRecords, 0, 2),
        (ApiKey::DescribeConfigs, 1, 4),
        (ApiKey::AlterConfigs, 0, 2),
        (ApiKey::DescribeLogDirs, 1, 4),
        (ApiKey::CreatePartitions, 0, 3),
        (ApiKey::ElectLeaders, 0, 2),
        (ApiKey::IncrementalAlterConfigs, 0, 1),
        (ApiKey::AlterPartitionReassignments, 0, 0),
        (ApiKey::ListPartitionReassignments, 0, 0),
        (ApiKey::DescribeCluster, 0, 1),
        (ApiKey::OffsetCommit, 2, 9),
        (ApiKey::OffsetFetch, 1, 9),
        (ApiKey::FindCoordinator, 0, 4),
        (ApiKey::JoinGroup, 0, 9),
        (ApiKey::Heartbeat, 0, 4),
        (ApiKey::LeaveGroup, 0, 5),
        (ApiKey::SyncGroup, 0, 5),
        (ApiKey::DescribeGroups, 0, 6),
        (ApiKey::ListGroups, 0, 5),
        (ApiKey::InitProducerId, 0, 4),
        (ApiKey::AddPartitionsToTxn, 0, 4),
        (ApiKey::AddOffsetsToTxn, 0, 3),
        (ApiKey::EndTxn, 0, 3),
        (ApiKey::WriteTxnMarkers, 1, 1),
        (ApiKey::TxnOffsetCommit, 0, 3),
        (ApiKey::DeleteGroups, 0, 2),
        (ApiKey::OffsetDelete, 0, 0),
        (ApiKey::DescribeProducers, 0, 0),
        (ApiKey::DescribeTransactions, 0, 0),
        (ApiKey::ListTransactions, 0, 0),
        (ApiKey::ConsumerGroupHeartbeat, 0, 1),
        (ApiKey::ConsumerGroupDescribe, 0, 1),
    ]
    .into_iter()
    .map(|(k, min, max)| (k as i16, (min, max)))
    .collect()
}

fn advertised(response: &ApiVersionsResponse) -> BTreeMap<i16, (i16, i16)> {
    let mut out = BTreeMap::new();
    for api in &response.api_keys {
        let previous = out.insert(api.api_key, (api.min_version, api.max_version));
        assert!(previous.is_none(), "API key {} listed twice", api.api_key);
    }
    out
}

fn api_versions_request(version: i16) -> ApiVersionsRequest {
    let request = ApiVersionsRequest::default();
    if version >= 3 {
        request
            .with_client_software_name(wire::sb("millrace-tests"))
            .with_client_software_version(wire::sb("1.0.0"))
    } else {
        request
    }
}

#[test]
fn api_versions_v0_to_v3_list_the_served_ranges() {
    let broker = TestBroker::start(&[]);
    let mut conn = Conn::connect(broker.addr());
    for version in 0..=3 {
        let response = conn.call(version, &api_versions_request(version));
        assert_eq!(response.error_code, 0, "ApiVersions v{version}");
        assert_eq!(
            advertised(&response),
            expected_ranges(),
            "ApiVersions v{version}"
        );
    }
}

#[test]
fn api_versions_v3_with_invalid_software_name_is_invalid_request() {
    let broker = TestBroker::start(&[]);
    let mut conn = Conn::connect(broker.addr());
    let response = conn.call(
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(wire::sb("bad name!"))
            .with_client_software_version(wire::sb("1.0")),
    );
    assert_eq!(response.error_code, 42, "INVALID_REQUEST");
    // The connection stays usable.
    let response = conn.call(3, &api_versions_request(3));
    assert_eq!(response.error_code, 0);
}

#[test]
fn api_versions_above_v3_is_answered_in_v0_with_unsupported_version() {
    let broker = TestBroker::start(&[]);
    let mut conn = Conn::connect(broker.addr());
    for version in [4i16, 5] {
        // A newer client encodes its request at v4/v5; the broker cannot
        // parse it but must answer in v0, which every client can read.
        let correlation = conn.next_correlation();
        conn.write_raw(&Conn::frame_mismatched(
            version,
            3,
            correlation,
            &api_versions_request(3),
        ));
        let (got, response) =
            conn.receive_as::<ApiVersionsResponse>(ApiKey::ApiVersions, version, 0);
        assert_eq!(got, correlation);
        assert_eq!(
            response.error_code, 35,
            "UNSUPPORTED_VERSION for v{version}"
        );
        assert_eq!(advertised(&response), expected_ranges());
    }
    // The client then retries at a version both know, on the same connection.
    let response = conn.call(3, &api_versions_request(3));
    assert_eq!(response.error_code, 0);
}

#[test]
fn unsupported_versions_inside_the_codec_range_get_unsupported_version() {
    let broker = TestBroker::start(&[]);
    let mut conn = Conn::connect(broker.addr());
    wire::create_topic(&mut conn, "versions", 1, &[]);

    // Produce v11 (Kafka 3.8+) is one above what the broker serves.
    let produce = wire::produce_request("versions", 0, wire::simple_batch(1), -1);
    let response = conn.call::<ProduceRequest>(11, &produce);
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, 35, "Produce v11 partition error");
    // Nothing was appended.
    let data = wire::fetch(&mut conn, "versions", 0, 0);
    assert_eq!(data.high_watermark, 0);

    // Fetch v17 likewise; the answer is a top-level error.
    let fetch = wire::fetch_request("versions", 0, 0, 0, 0);
    let response = conn.call::<FetchRequest>(17, &fetch);
    assert_eq!(response.error_code, 35, "Fetch v17 error");
    assert!(response.responses.is_empty());

    // The connection keeps working at served versions.
    let response = conn.call(12, &MetadataRequest::default().with_topics(None));
    assert!(response
        .topics
        .iter()
        .any(|t| t.name.as_ref().map(|n| n.as_str()) == Some("versions")));
}

#[test]
fn versions_kafka_4_removed_close_the_connection() {
    // Produce v2 and Fetch v3 (KIP-896) cannot be decoded: no answer is
    // possible, so the connection closes and the broker keeps serving.
    let broker = TestBroker::start(&[]);
    let mut conn = Conn::connect(broker.addr());
    let produce = wire::produce_request("t", 0, wire::simple_batch(1), 1);
    conn.write_raw(&Conn::frame_mismatched(2, 3, 1, &produce));
    conn.assert_closed();
    let mut conn = Conn::connect(broker.addr());
    let fetch = wire::fetch_request("t", 0, 0, 0, 0);
    conn.write_raw(&Conn::frame_mismatched(3, 4, 1, &fetch));
    conn.assert_closed();
    assert_broker_serves(&broker);
}

/// Asserts a second, untouched connection still gets answers.
fn assert_broker_serves(broker: &TestBroker) {
    let mut other = Conn::connect(broker.addr());
    let response = other.call(3, &api_versions_request(3));
    assert_eq!(response.error_code, 0);
}

#[test]
fn unknown_api_key_closes_only_that_connection() {
    let broker = TestBroker::start(&[]);
    let mut bystander = Conn::connect(broker.addr());
    assert_eq!(bystander.call(3, &api_versions_request(3)).error_code, 0);

    let mut conn = Conn::connect(broker.addr());
    // API key 9999, version 0, correlation id 7, no client id.
    let mut frame = Vec::new();
    frame.extend_from_slice(&10i32.to_be_bytes());
    frame.extend_from_slice(&9999i16.to_be_bytes());
    frame.extend_from_slice(&0i16.to_be_bytes());
    frame.extend_from_slice(&7i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    conn.write_raw(&frame);
    conn.assert_closed();

    assert_eq!(bystander.call(3, &api_versions_request(3)).error_code, 0);
    assert_broker_serves(&broker);
}

#[test]
fn an_api_the_broker_does_not_serve_closes_the_connection() {
    // Envelope is a valid Kafka API that only KRaft controllers serve
    // (absent from a broker's ApiVersions); like Kafka for an API a
    // listener does not expose, the broker closes the connection.
    let broker = TestBroker::start(&[]);
    let mut conn = Conn::connect(broker.addr());
    let advertised = advertised(&conn.call(3, &api_versions_request(3)));
    assert!(!advertised.contains_key(&(ApiKey::Envelope as i16)));
    let request = kafka_protocol::messages::EnvelopeRequest::default();
    conn.send(0, &request);
    conn.assert_closed();
    assert_broker_serves(&broker);
}

#[test]
fn oversized_frame_closes_only_that_connection() {
    let broker = TestBroker::start(&[("socket.request.max.bytes", "10000")]);
    let mut bystander = Conn::connect(broker.addr());
    let mut conn = Conn::connect(broker.addr());
    // The size prefix alone announces too much: the broker must not wait
    // for (or buffer) the body.
    conn.write_raw(&20_000i32.to_be_bytes());
    conn.assert_closed();

    // A request just under the limit is still served.
    let topics: Vec<_> = (0..50)
        .map(|i| {
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(wire::tn(&format!("no-such-topic-{i:03}"))))
        })
        .collect();
    let request = MetadataRequest::default()
        .with_topics(Some(topics))
        .with_allow_auto_topic_creation(false);
    let frame = Conn::frame(12, 99, &request);
    assert!(frame.len() < 10_000);
    bystander.write_raw(&frame);
    let (correlation, response) = bystander
        .receive_as::<kafka_protocol::messages::MetadataResponse>(ApiKey::Metadata, 12, 12);
    assert_eq!(correlation, 99);
    assert_eq!(response.topics.len(), 50);
    assert!(response.topics.iter().all(|t| t.error_code == 3));
    assert_broker_serves(&broker);
}

#[test]
fn garbage_bytes_close_only_that_connection() {
    let broker = TestBroker::start(&[]);
    let mut bystander = Conn::connect(broker.addr());

    // A plausible size followed by bytes that are no request header.
    let mut conn = Conn::connect(broker.addr());
    let mut frame = 6i32.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]);
    conn.write_raw(&frame);
    conn.assert_closed();

    // Text (an HTTP request) where a frame was expected.
    let mut conn = Conn::connect(broker.addr());
    conn.write_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    conn.assert_closed();

    // A valid header whose body does not decode.
    let mut conn = Conn::connect(broker.addr());
    let mut frame = Vec::new();
    let body: &[u8] = &[0xff, 0xff, 0xff, 0x00];
    let header_len = 2 + 2 + 4 + 2;
    frame.extend_from_slice(&((header_len + body.len()) as i32).to_be_bytes());
    frame.extend_from_slice(&(ApiKey::Metadata as i16).to_be_bytes());
    frame.extend_from_slice(&1i16.to_be_bytes());
    frame.extend_from_slice(&5i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    frame.extend_from_slice(body);
    conn.write_raw(&frame);
    conn.assert_closed();

    // A negative size.
    let mut conn = Conn::connect(broker.addr());
    conn.write_raw(&(-5i32).to_be_bytes());
    conn.assert_closed();

    assert_eq!(bystander.call(3, &api_versions_request(3)).error_code, 0);
    assert_broker_serves(&broker);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let broker = TestBroker::start(&[]);
    let mut conn = Conn::connect(broker.addr());
    wire::create_topic(&mut conn, "pipeline", 1, &[]);

    // 50 requests of different APIs written back to back before reading.
    enum Sent {
        Versions(i32),
        Metadata(i32),
        Produce(i32),
    }
    let mut all = Vec::new();
    let mut bytes = Vec::new();
    for i in 0..50 {
        let correlation = conn.next_correlation();
        match i % 3 {
            0 => {
                bytes.extend(Conn::frame(3, correlation, &api_versions_request(3)));
                all.push(Sent::Versions(correlation));
            }
            1 => {
                let request = MetadataRequest::default()
                    .with_topics(Some(vec![
                        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(wire::tn("pipeline"))),
                    ]))
                    .with_allow_auto_topic_creation(false);
                bytes.extend(Conn::frame(12, correlation, &request));
                all.push(Sent::Metadata(correlation));
            }
            _ => {
                let request = wire::produce_request("pipeline", 0, wire::simple_batch(1), 1);
                bytes.extend(Conn::frame(9, correlation, &request));
                all.push(Sent::Produce(correlation));
            }
        }
    }
    conn.write_raw(&bytes);

    let mut next_offset = 0;
    for sent in all {
        match sent {
            Sent::Versions(c) => {
                let r = conn.receive::<ApiVersionsRequest>(3, c);
                assert_eq!(r.error_code, 0);
            }
            Sent::Metadata(c) => {
                let r = conn.receive::<MetadataRequest>(12, c);
                assert_eq!(r.topics.len(), 1);
                assert_eq!(r.topics[0].error_code, 0);
            }
            Sent::Produce(c) => {
                let r = conn.receive::<ProduceRequest>(9, c);
                let p = &r.responses[0].partition_responses[0];
                assert_eq!(p.error_code, 0);
                // Produce requests were appended in the order they were sent.
                assert_eq!(p.base_offset, next_offset);
                next_offset += 1;
            }
        }
    }
    assert_eq!(next_offset, 16);
}
