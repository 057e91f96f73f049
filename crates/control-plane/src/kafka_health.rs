//! The broker health check: a Kafka ApiVersions (v0) request over TCP,
//! answered with error code 0. It proves the process accepts connections
//! and serves the Kafka protocol, which is what clients need. A Metadata
//! request ([`describe_cluster`]) tells the rest: which brokers the cluster
//! has registered, its controller, and every partition's replicas and ISR.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const API_VERSIONS_KEY: i16 = 18;
const CORRELATION_ID: i32 = 0x4d52_4350; // "MRCP"
const CLIENT_ID: &str = "millrace-control-plane";

/// Sends ApiVersions v0 to `addr` and checks the answer, within `timeout`.
pub async fn check_api_versions(addr: &str, timeout: Duration) -> Result<(), String> {
    tokio::time::timeout(timeout, exchange(addr))
        .await
        .map_err(|_| format!("no ApiVersions answer from {addr} within {timeout:?}"))?
}

async fn exchange(addr: &str) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let mut body = Vec::new();
    body.extend_from_slice(&API_VERSIONS_KEY.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&CORRELATION_ID.to_be_bytes());
    body.extend_from_slice(&(CLIENT_ID.len() as i16).to_be_bytes());
    body.extend_from_slice(CLIENT_ID.as_bytes());
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream
        .write_all(&frame)
        .await
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let size = stream
        .read_i32()
        .await
        .map_err(|e| format!("read from {addr}: {e}"))?;
    if !(6..=1 << 20).contains(&size) {
        return Err(format!("{addr} answered a frame of {size} bytes"));
    }
    let mut response = vec![0u8; size as usize];
    stream
        .read_exact(&mut response)
        .await
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let correlation = i32::from_be_bytes([response[0], response[1], response[2], response[3]]);
    let error_code = i16::from_be_bytes([response[4], response[5]]);
    if correlation != CORRELATION_ID {
        return Err(format!("{addr} answered correlation id {correlation}"));
    }
    if error_code != 0 {
        return Err(format!(
            "{addr} answered ApiVersions with error {error_code}"
        ));
    }
    Ok(())
}

/// What one broker's Metadata answer says about its cluster: which brokers
/// are registered and unfenced (Kafka leaves fenced brokers out), whether
/// a controller is known, and every partition's replicas and ISR.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// The Kafka cluster id the broker belongs to.
    pub cluster_id: Option<String>,
    /// The controller it names (-1: none).
    pub controller_id: i32,
    /// Node ids of the live brokers it lists.
    pub brokers: Vec<i32>,
    /// Every partition: (topic, partition, replicas, in-sync replicas).
    pub partitions: Vec<PartitionView>,
}

/// One partition of a [`ClusterView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Assigned replicas.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
}

impl ClusterView {
    /// Replicas (leaders and followers) hosted by `node_id`: what the
    /// guide's partitions-per-broker limits count.
    pub fn partitions_on(&self, node_id: i32) -> usize {
        self.partitions
            .iter()
            .filter(|p| p.replicas.contains(&node_id))
            .count()
    }

    /// Partitions whose ISR is smaller than their replica set.
    pub fn under_replicated(&self) -> usize {
        self.partitions
            .iter()
            .filter(|p| p.isr.len() < p.replicas.len())
            .count()
    }
}

/// Sends Metadata v12 for every topic to `addr` and summarises the answer,
/// within `timeout`.
pub async fn describe_cluster(addr: &str, timeout: Duration) -> Result<ClusterView, String> {
    tokio::time::timeout(timeout, metadata_exchange(addr))
        .await
        .map_err(|_| format!("no Metadata answer from {addr} within {timeout:?}"))?
}

async fn metadata_exchange(addr: &str) -> Result<ClusterView, String> {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::{
        ApiKey, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

    const VERSION: i16 = 12;
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(VERSION)
        .with_correlation_id(CORRELATION_ID)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let request = MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false);
    let mut body = BytesMut::new();
    header
        .encode(&mut body, MetadataRequest::header_version(VERSION))
        .map_err(|e| format!("encode Metadata: {e}"))?;
    request
        .encode(&mut body, VERSION)
        .map_err(|e| format!("encode Metadata: {e}"))?;
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream
        .write_all(&frame)
        .await
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let size = stream
        .read_i32()
        .await
        .map_err(|e| format!("read from {addr}: {e}"))?;
    if !(4..=64 << 20).contains(&size) {
        return Err(format!("{addr} answered a frame of {size} bytes"));
    }
    let mut response = vec![0u8; size as usize];
    stream
        .read_exact(&mut response)
        .await
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let mut buf = Bytes::from(response);
    let header = ResponseHeader::decode(&mut buf, MetadataResponse::header_version(VERSION))
        .map_err(|e| format!("{addr} answered an undecodable Metadata header: {e}"))?;
    if header.correlation_id != CORRELATION_ID {
        return Err(format!(
            "{addr} answered correlation id {}",
            header.correlation_id
        ));
    }
    let answer = MetadataResponse::decode(&mut buf, VERSION)
        .map_err(|e| format!("{addr} answered an undecodable Metadata response: {e}"))?;
    Ok(ClusterView {
        cluster_id: answer.cluster_id.map(|c| c.to_string()),
        controller_id: answer.controller_id.0,
        brokers: answer.brokers.iter().map(|b| b.node_id.0).collect(),
        partitions: answer
            .topics
            .iter()
            .flat_map(|t| {
                let topic = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                t.partitions.iter().map(move |p| PartitionView {
                    topic: topic.clone(),
                    partition: p.partition_index,
                    replicas: p.replica_nodes.iter().map(|r| r.0).collect(),
                    isr: p.isr_nodes.iter().map(|r| r.0).collect(),
                })
            })
            .collect(),
    })
}
