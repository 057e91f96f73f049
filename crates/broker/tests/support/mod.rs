//! Shared by the broker's multi-broker tests: brokers 1..=n in one process
//! over one metadata store (real sockets between them), and raw Kafka
//! requests for the APIs rdkafka's AdminClient lacks.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use millrace_broker::{Broker, RunningBroker};
use millrace_config::BrokerConfig;
use millrace_metadata::image::PartitionRegistration;
use millrace_metadata::store::{LocalMetadataStore, MetadataStore};
use millrace_metadata::Controller;

/// `replica.lag.time.max.ms` of test brokers.
pub const LAG_MS: u64 = 1500;

/// Brokers 1..=n in one process over one metadata store.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn MetadataStore>,
    pub controller: Arc<Controller>,
    pub cluster_id: String,
    pub brokers: Vec<Option<RunningBroker>>,
    pub ports: Vec<u16>,
    pub extra: Vec<(String, String)>,
}

pub fn config(
    dir: &std::path::Path,
    node_id: i32,
    port: u16,
    extra: &[(String, String)],
) -> BrokerConfig {
    let mut entries: Vec<(String, String)> = [
        ("node.id", node_id.to_string()),
        ("listeners", format!("PLAINTEXT://127.0.0.1:{port}")),
        (
            "log.dirs",
            dir.join(format!("broker-{node_id}")).display().to_string(),
        ),
        ("broker.rack", format!("az{node_id}")),
        ("replica.lag.time.max.ms", LAG_MS.to_string()),
        ("replica.fetch.wait.max.ms", "200".to_string()),
        ("replica.fetch.backoff.ms", "100".to_string()),
        // Small follower fetches, so the throttle meters in fine steps.
        ("replica.fetch.max.bytes", "32768".to_string()),
        ("min.insync.replicas", "1".to_string()),
        ("auto.leader.rebalance.enable", "false".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    entries.extend(extra.iter().cloned());
    BrokerConfig::from_entries(&entries).expect("config").0
}

impl Cluster {
    pub async fn start(n: i32, extra: &[(&str, &str)]) -> Cluster {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let extra: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn MetadataStore> =
            Arc::new(LocalMetadataStore::open(&dir.path().join("metadata")).expect("store"));
        let first = Broker::start_with_store(config(dir.path(), 1, 0, &extra), Some(store.clone()))
            .await
            .expect("broker 1 starts");
        let controller = first.broker().controller().clone();
        let cluster_id = first.broker().cluster_id().to_string();
        let mut cluster = Cluster {
            dir,
            store,
            controller,
            cluster_id,
            brokers: vec![Some(first)],
            ports: Vec::new(),
            extra,
        };
        for id in 2..=n {
            let b = cluster.start_broker(id, 0).await;
            cluster.brokers.push(Some(b));
        }
        cluster.ports = cluster
            .brokers
            .iter()
            .flatten()
            .map(|b| b.addresses()[0].1.port())
            .collect();
        cluster
    }

    pub async fn start_broker(&self, id: i32, port: u16) -> RunningBroker {
        Broker::start_with_controller(
            config(self.dir.path(), id, port, &self.extra),
            self.controller.clone(),
            self.cluster_id.clone(),
        )
        .await
        .expect("broker starts")
    }

    pub async fn stop(&mut self, id: i32) {
        let b = self.brokers[id as usize - 1].take().expect("running");
        b.shutdown().await.expect("shutdown");
    }

    pub async fn restart(&mut self, id: i32) {
        let b = self.start_broker(id, self.ports[id as usize - 1]).await;
        self.brokers[id as usize - 1] = Some(b);
    }

    pub fn addr(&self) -> SocketAddr {
        self.brokers
            .iter()
            .flatten()
            .next()
            .expect("a broker")
            .addresses()[0]
            .1
    }

    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .flatten()
            .map(|b| b.addresses()[0].1.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn partition(&self, topic: &str) -> PartitionRegistration {
        self.store
            .image()
            .topic(topic)
            .and_then(|t| t.partitions.get(&0).cloned())
            .expect("partition 0")
    }

    pub fn hosted(
        &self,
        id: i32,
        topic: &str,
    ) -> Option<Arc<millrace_broker::partition::Partition>> {
        self.brokers[id as usize - 1]
            .as_ref()
            .and_then(|b| b.broker().partitions().get(topic, 0))
    }

    pub async fn shutdown(mut self) {
        for b in self.brokers.iter_mut() {
            if let Some(b) = b.take() {
                b.shutdown().await.expect("shutdown");
            }
        }
    }
}

pub async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends one request over a fresh connection and reads its response.
pub fn call<R: Request + Encodable>(addr: SocketAddr, version: i16, request: &R) -> R::Response
where
    R::Response: Decodable,
{
    tokio::task::block_in_place(|| {
        let key = ApiKey::try_from(R::KEY).expect("api key");
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("reassignment-test")))
            .encode(&mut body, key.request_header_version(version))
            .expect("encode header");
        request.encode(&mut body, version).expect("encode body");
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        stream.write_all(&frame).expect("write");
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).expect("response size");
        let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
        stream.read_exact(&mut response).expect("response");
        let mut response = bytes::Bytes::from(response);
        let header = ResponseHeader::decode(&mut response, key.response_header_version(version))
            .expect("response header");
        assert_eq!(header.correlation_id, 7);
        let decoded = R::Response::decode(&mut response, version).expect("response body");
        assert_eq!(response.remaining(), 0, "trailing bytes");
        decoded
    })
}

pub fn tn(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Reads partition 0 of `topic` from the start with librdkafka until
/// `count` records arrived (or 30 s passed) and returns their payloads;
/// `rack` is the consumer's `client.rack` (KIP-392), empty for none. The
/// client blocks, so the runtime is told.
pub fn read_from_start(bootstrap: &str, topic: &str, rack: &str, count: usize) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
    tokio::task::block_in_place(|| {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "broker-test-reader")
            .set("enable.auto.commit", "false");
        if !rack.is_empty() {
            config.set("client.rack", rack);
        }
        let consumer: BaseConsumer = config.create().expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .expect("tpl");
        consumer.assign(&tpl).expect("assign");
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.len() < count && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
            }
        }
        got
    })
}
