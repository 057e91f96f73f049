//! A minimal Kafka client for broker-to-broker requests (follower fetches,
//! OffsetForLeaderEpoch): one TCP connection, one request in flight,
//! encoded and decoded with the same `kafka-protocol` codecs the server
//! uses, so a follower speaks to its leader exactly as a Kafka broker does.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use millrace_protocol::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a peer request failed; every failure drops the connection, and the
/// caller reconnects on its next request.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// Connecting, writing or reading failed.
    #[error("peer {addr}: {source}")]
    Io {
        /// The peer.
        addr: SocketAddr,
        /// The failure.
        source: std::io::Error,
    },
    /// The peer did not answer in time.
    #[error("peer {0}: timed out")]
    Timeout(SocketAddr),
    /// The response could not be decoded (or the request encoded).
    #[error("peer {addr}: {reason}")]
    Codec {
        /// The peer.
        addr: SocketAddr,
        /// What failed.
        reason: String,
    },
}

/// A connection to one peer broker.
pub struct PeerClient {
    addr: SocketAddr,
    client_id: StrBytes,
    stream: Option<TcpStream>,
    correlation_id: i32,
    /// Largest response accepted (a fetch response can carry up to
    /// `replica.fetch.response.max.bytes` plus overhead).
    max_response_bytes: usize,
}

impl PeerClient {
    /// A client for `addr`; it connects on the first request.
    pub fn new(addr: SocketAddr, client_id: &str, max_response_bytes: usize) -> PeerClient {
        PeerClient {
            addr,
            client_id: StrBytes::from_string(client_id.to_string()),
            stream: None,
            correlation_id: 0,
            max_response_bytes,
        }
    }

    /// The peer's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the peer (the leader moved); the old connection is dropped.
    pub fn retarget(&mut self, addr: SocketAddr) {
        if addr != self.addr {
            self.addr = addr;
            self.stream = None;
        }
    }

    /// Drops the connection (the next request opens a new one), for a
    /// caller that abandoned a request whose answer would still arrive.
    pub fn disconnect(&mut self) {
        self.stream = None;
    }

    /// Sends `request` at `version` and waits up to `timeout` for its response.
    pub async fn call<Req>(
        &mut self,
        version: i16,
        request: &Req,
        timeout: Duration,
    ) -> Result<Req::Response, PeerError>
    where
        Req: Request + Encodable,
        Req::Response: Decodable,
    {
        let result = tokio::time::timeout(timeout, self.call_inner(version, request)).await;
        match result {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                self.stream = None;
                Err(PeerError::Timeout(self.addr))
            }
        }
    }

    async fn call_inner<Req>(
        &mut self,
        version: i16,
        request: &Req,
    ) -> Result<Req::Response, PeerError>
    where
        Req: Request + Encodable,
        Req::Response: Decodable,
    {
        let addr = self.addr;
        let io = |source| PeerError::Io { addr, source };
        let codec = |e: anyhow::Error| PeerError::Codec {
            addr,
            reason: e.to_string(),
        };
        let key = ApiKey::try_from(Req::KEY).map_err(|()| PeerError::Codec {
            addr,
            reason: format!("unknown api key {}", Req::KEY),
        })?;
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let header = RequestHeader::default()
            .with_request_api_key(Req::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let header_version = key.request_header_version(version);
        let mut body = BytesMut::new();
        body.put_i32(0);
        header.encode(&mut body, header_version).map_err(codec)?;
        request.encode(&mut body, version).map_err(codec)?;
        let size = i32::try_from(body.len() - 4).map_err(|e| codec(e.into()))?;
        body[..4].copy_from_slice(&size.to_be_bytes());

        if self.stream.is_none() {
            let stream = TcpStream::connect(addr).await.map_err(io)?;
            stream.set_nodelay(true).map_err(io)?;
            self.stream = Some(stream);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(PeerError::Timeout(addr));
        };
        stream.write_all(&body).await.map_err(io)?;
        let size = stream.read_i32().await.map_err(io)?;
        let size = usize::try_from(size).map_err(|_| PeerError::Codec {
            addr,
            reason: format!("negative response size {size}"),
        })?;
        if size > self.max_response_bytes {
            return Err(PeerError::Codec {
                addr,
                reason: format!(
                    "response of {size} bytes exceeds {}",
                    self.max_response_bytes
                ),
            });
        }
        let mut frame = vec![0u8; size];
        stream.read_exact(&mut frame).await.map_err(io)?;
        let mut frame = Bytes::from(frame);
        let response_header =
            ResponseHeader::decode(&mut frame, key.response_header_version(version))
                .map_err(codec)?;
        if response_header.correlation_id != correlation_id {
            return Err(PeerError::Codec {
                addr,
                reason: format!(
                    "correlation id {} where {correlation_id} was expected",
                    response_header.correlation_id
                ),
            });
        }
        let response = Req::Response::decode(&mut frame, version).map_err(codec)?;
        if frame.has_remaining() {
            tracing::debug!(%addr, left = frame.remaining(), "trailing bytes in a peer response");
        }
        Ok(response)
    }
}
