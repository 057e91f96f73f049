//! The quorum's wire protocol and its client side.
//!
//! # Frames
//!
//! Each message is a 4-byte big-endian length followed by that many bytes of
//! JSON (a [`Request`] or a [`Response`]). A connection carries one request
//! at a time: the client writes a request and reads its response before
//! sending the next, so no correlation ids are needed, and concurrent calls
//! to one peer use separate connections. Idle connections are kept per peer
//! address and reused; a failed or timed-out one is dropped. A frame larger
//! than [`MAX_FRAME_BYTES`] or that does not decode closes the connection.

use std::collections::{HashMap, HashSet};
use std::io;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::election::{PreVoteRequest, PreVoteResponse};
use crate::types::{NodeId, TypeConfig};

/// The largest frame accepted: far above any metadata batch or snapshot
/// chunk, small enough that a garbage length cannot exhaust memory.
pub(crate) const MAX_FRAME_BYTES: u32 = 64 * 1024 * 1024;

/// Idle connections kept per peer; more concurrent calls open more, and the
/// surplus is closed when they finish.
const MAX_IDLE_PER_PEER: usize = 4;

/// A request from one quorum node to another.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Raft log replication and heartbeats.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft leader election.
    Vote(VoteRequest<NodeId>),
    /// Would the receiver vote for the sender? Asked before a real
    /// election, so a voter that cannot win never raises its term (see
    /// `election`).
    PreVote(PreVoteRequest),
    /// One chunk of a snapshot for a follower whose log was purged.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// An opaque request for the leader's request handler.
    Forward(Vec<u8>),
    /// A node that is not a voter asks the leader to replicate to it.
    JoinAsObserver {
        /// The observer's Raft node id.
        node_id: NodeId,
        /// Where the leader reaches the observer's quorum listener.
        addr: String,
    },
}

/// The answer to a [`Request`], of the same kind.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    /// Answers [`Request::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// Answers [`Request::Vote`].
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Answers [`Request::PreVote`].
    PreVote(PreVoteResponse),
    /// Answers [`Request::InstallSnapshot`].
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// Answers [`Request::Forward`].
    Forwarded(LeaderReply<Vec<u8>>),
    /// Answers [`Request::JoinAsObserver`].
    Joined(LeaderReply<()>),
}

/// The answer to a request only the leader can serve.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum LeaderReply<T> {
    /// Served.
    Ok(T),
    /// This node is not the leader; here is the one it knows of.
    NotLeader {
        /// The leader's Raft node id, if known.
        leader: Option<NodeId>,
    },
    /// The leader could not serve it.
    Failed(String),
}

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// No connection could be made: the request was never sent.
    #[error("cannot connect to {addr}: {reason}")]
    Unreachable {
        /// The peer's address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The request may have been sent, but no answer came back.
    #[error("call to {addr} failed: {reason}")]
    Failed {
        /// The peer's address.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// Reads one frame; `Ok(None)` at a clean end of stream between frames.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> io::Result<Option<Vec<u8>>> {
    let mut length = [0u8; 4];
    match reader.read_exact(&mut length).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let length = u32::from_be_bytes(length);
    if length > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {length} bytes exceeds the {MAX_FRAME_BYTES}-byte limit"),
        ));
    }
    let mut body = vec![0u8; length as usize];
    reader.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// Writes `body` as one frame.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    body: &[u8],
) -> io::Result<()> {
    let length = u32::try_from(body.len())
        .ok()
        .filter(|&n| n <= MAX_FRAME_BYTES)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a {}-byte frame exceeds the limit", body.len()),
            )
        })?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(body);
    writer.write_all(&frame).await?;
    writer.flush().await
}

async fn exchange(stream: &mut TcpStream, request: &[u8]) -> io::Result<Response> {
    write_frame(stream, request).await?;
    let body = read_frame(stream)
        .await?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"))?;
    serde_json::from_slice(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Connections to peers, kept for reuse and keyed by address.
#[derive(Default)]
pub(crate) struct Peers {
    idle: Mutex<HashMap<String, Vec<TcpStream>>>,
    /// Addresses this node behaves as if it cannot reach (fault
    /// injection, see `Quorum::cut_off`): calls to them fail unsent.
    cut_off: Mutex<HashSet<String>>,
}

impl Peers {
    /// Sends `request` to `addr` and waits for its response, for at most
    /// `timeout`. An idle connection is reused if one is kept; if it turns
    /// out dead (the peer restarted), the request is sent once more on a
    /// fresh connection.
    pub(crate) async fn call(
        &self,
        addr: &str,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let deadline = Instant::now() + timeout;
        let failed = |reason: String| CallError::Failed {
            addr: addr.to_string(),
            reason,
        };
        if self.cut_off.lock().contains(addr) {
            return Err(CallError::Unreachable {
                addr: addr.to_string(),
                reason: "cut off by fault injection".into(),
            });
        }
        let body = serde_json::to_vec(request).map_err(|e| failed(e.to_string()))?;
        let reused = self.idle.lock().get_mut(addr).and_then(Vec::pop);
        if let Some(mut stream) = reused {
            match timeout_at(deadline, exchange(&mut stream, &body)).await {
                Ok(Ok(response)) => {
                    self.keep(addr, stream);
                    return Ok(response);
                }
                Ok(Err(e)) => {
                    tracing::debug!(addr, error = %e, "kept connection failed; reconnecting");
                }
                Err(_) => return Err(failed(format!("no answer within {timeout:?}"))),
            }
        }
        let mut stream = match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                return Err(CallError::Unreachable {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(CallError::Unreachable {
                    addr: addr.to_string(),
                    reason: format!("connect timed out after {timeout:?}"),
                })
            }
        };
        let _ = stream.set_nodelay(true);
        match timeout_at(deadline, exchange(&mut stream, &body)).await {
            Ok(Ok(response)) => {
                self.keep(addr, stream);
                Ok(response)
            }
            Ok(Err(e)) => Err(failed(e.to_string())),
            Err(_) => Err(failed(format!("no answer within {timeout:?}"))),
        }
    }

    fn keep(&self, addr: &str, stream: TcpStream) {
        let mut idle = self.idle.lock();
        let streams = idle.entry(addr.to_string()).or_default();
        if streams.len() < MAX_IDLE_PER_PEER {
            streams.push(stream);
        }
    }

    /// Makes calls to `addrs` fail as unreachable (`cut == true`) or work
    /// again, dropping the connections kept to them.
    pub(crate) fn set_cut_off(&self, addrs: &[String], cut: bool) {
        let mut cut_off = self.cut_off.lock();
        let mut idle = self.idle.lock();
        for addr in addrs {
            if cut {
                cut_off.insert(addr.clone());
                idle.remove(addr);
            } else {
                cut_off.remove(addr);
            }
        }
    }

    /// Closes every kept connection (at shutdown).
    pub(crate) fn close_all(&self) {
        self.idle.lock().clear();
    }
}

/// Creates openraft's per-target network clients over the shared [`Peers`].
pub(crate) struct NetworkFactory {
    pub(crate) peers: Arc<Peers>,
    /// How long replication to an unreachable peer waits before retrying.
    pub(crate) retry_backoff: Duration,
}

/// openraft's client for one target node.
pub(crate) struct PeerClient {
    target: NodeId,
    addr: String,
    peers: Arc<Peers>,
    retry_backoff: Duration,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            peers: self.peers.clone(),
            retry_backoff: self.retry_backoff,
        }
    }
}

impl PeerClient {
    async fn call<E: std::error::Error>(
        &self,
        request: Request,
        option: &RPCOption,
    ) -> Result<Response, RPCError<NodeId, BasicNode, E>> {
        self.peers
            .call(&self.addr, &request, option.hard_ttl())
            .await
            .map_err(|e| match e {
                CallError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                CallError::Failed { .. } => RPCError::Network(NetworkError::new(&e)),
            })
    }

    fn unexpected<E: std::error::Error>(
        &self,
        response: &Response,
    ) -> RPCError<NodeId, BasicNode, E> {
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} answered with an unexpected {response:?}", self.addr),
        );
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.call(Request::AppendEntries(rpc), &option).await? {
            Response::AppendEntries(result) => {
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self.call(Request::InstallSnapshot(rpc), &option).await? {
            Response::InstallSnapshot(result) => {
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.call(Request::Vote(rpc), &option).await? {
            Response::Vote(result) => {
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(&other)),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.retry_backoff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_lengths_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_frame(&mut a, b"hello").await.expect("write");
        assert_eq!(
            read_frame(&mut b).await.expect("read"),
            Some(b"hello".to_vec())
        );
        a.write_all(&(MAX_FRAME_BYTES + 1).to_be_bytes())
            .await
            .expect("write");
        let err = read_frame(&mut b).await.expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        drop(a);
        let (a, mut b) = tokio::io::duplex(16);
        drop(a);
        assert_eq!(read_frame(&mut b).await.expect("eof"), None);
    }
}
