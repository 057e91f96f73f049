//! The quorum listener: serves Raft RPCs from the leader and candidates,
//! forwarded requests and observer joins from other nodes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Raft, ServerState};
use parking_lot::RwLock;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::election::{answer_pre_vote, leader_has_quorum};
use crate::network::{read_frame, write_frame, LeaderReply, Request, Response};
use crate::types::{NodeId, TypeConfig};
use crate::RequestHandler;

/// What serving a connection needs from the quorum.
pub(crate) struct ServerContext {
    pub(crate) raft: Raft<TypeConfig>,
    pub(crate) node_id: NodeId,
    /// Voter ids and addresses from the configuration; voters never join as
    /// observers.
    pub(crate) voters: BTreeMap<NodeId, String>,
    pub(crate) handler: Arc<RwLock<Option<RequestHandler>>>,
    /// Bounds how long the leader waits to commit an observer's membership.
    pub(crate) request_timeout: Duration,
    /// How long a leader's authority lasts after it was last heard from
    /// (see `election`).
    pub(crate) lease: Duration,
}

/// Resolves once `shutdown` turns true or its sender is gone.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// Accepts connections until shutdown, serving each on its own task.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    context: Arc<ServerContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let context = context.clone();
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        serve_connection(stream, context, shutdown).await;
                        tracing::trace!(%peer, "quorum connection closed");
                    });
                }
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "quorum listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = stopped(&mut shutdown) => return,
        }
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    context: Arc<ServerContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut stream) => frame,
            () = stopped(&mut shutdown) => return,
        };
        let body = match frame {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "closing a quorum connection after a bad frame");
                return;
            }
        };
        let request: Request = match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(e) => {
                tracing::warn!(error = %e, "closing a quorum connection after an undecodable request");
                return;
            }
        };
        let response = tokio::select! {
            response = handle(&context, request) => response,
            () = stopped(&mut shutdown) => return,
        };
        let body = match serde_json::to_vec(&response) {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode a quorum response");
                return;
            }
        };
        if let Err(e) = write_frame(&mut stream, &body).await {
            tracing::debug!(error = %e, "quorum response not delivered");
            return;
        }
    }
}

async fn handle(context: &ServerContext, request: Request) -> Response {
    match request {
        Request::AppendEntries(rpc) => {
            Response::AppendEntries(context.raft.append_entries(rpc).await)
        }
        Request::Vote(rpc) => Response::Vote(context.raft.vote(rpc).await),
        Request::PreVote(rpc) => {
            Response::PreVote(answer_pre_vote(&context.raft, context.lease, rpc).await)
        }
        Request::InstallSnapshot(rpc) => {
            Response::InstallSnapshot(context.raft.install_snapshot(rpc).await)
        }
        Request::Forward(body) => Response::Forwarded(serve_forwarded(context, body).await),
        Request::JoinAsObserver { node_id, addr } => {
            Response::Joined(admit_observer(context, node_id, addr).await)
        }
    }
}

/// The leader this node knows of, or `None` if it is the leader itself
/// (with a majority behind it within the lease: a leader cut off from the
/// others sends the caller looking for the one they elected).
fn redirect_unless_leader<T>(context: &ServerContext) -> Option<LeaderReply<T>> {
    let metrics = context.raft.metrics();
    let metrics = metrics.borrow();
    if metrics.state == ServerState::Leader
        && metrics.current_leader == Some(context.node_id)
        && leader_has_quorum(&metrics, context.lease)
    {
        None
    } else {
        Some(LeaderReply::NotLeader {
            leader: metrics.current_leader.filter(|&id| id != context.node_id),
        })
    }
}

async fn serve_forwarded(context: &ServerContext, body: Vec<u8>) -> LeaderReply<Vec<u8>> {
    if let Some(reply) = redirect_unless_leader(context) {
        return reply;
    }
    let handler = context.handler.read().clone();
    match handler {
        Some(handler) => LeaderReply::Ok(handler(Bytes::from(body)).await.to_vec()),
        None => LeaderReply::Failed("the leader has no request handler registered".into()),
    }
}

async fn admit_observer(context: &ServerContext, node_id: NodeId, addr: String) -> LeaderReply<()> {
    if context.voters.contains_key(&node_id) {
        return LeaderReply::Failed(format!(
            "node {node_id} is a voter and cannot join as an observer"
        ));
    }
    if let Some(reply) = redirect_unless_leader(context) {
        return reply;
    }
    let node = BasicNode::new(addr);
    let known = context
        .raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .get_node(&node_id)
        .cloned();
    if known.as_ref() == Some(&node) {
        return LeaderReply::Ok(());
    }
    let timeout = context.request_timeout;
    match known {
        // A restarted observer may listen on a new address: replace it
        // (safe for a learner, which never votes).
        Some(_) => {
            tracing::info!(node_id, addr = %node.addr, "a metadata observer moved");
            let nodes = std::collections::BTreeMap::from([(node_id, node)]);
            let change = context
                .raft
                .change_membership(ChangeMembers::SetNodes(nodes), false);
            membership_reply(tokio::time::timeout(timeout, change).await, timeout)
        }
        None => {
            tracing::info!(node_id, addr = %node.addr, "adding a metadata observer");
            let add = context.raft.add_learner(node_id, node, false);
            membership_reply(tokio::time::timeout(timeout, add).await, timeout)
        }
    }
}

/// A membership change's outcome, bounded by a timeout.
type MembershipOutcome<T> = Result<
    Result<T, RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>>,
    tokio::time::error::Elapsed,
>;

/// What an observer hears about its membership change.
fn membership_reply<T>(
    outcome: MembershipOutcome<T>,
    timeout: std::time::Duration,
) -> LeaderReply<()> {
    match outcome {
        Ok(Ok(_)) => LeaderReply::Ok(()),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
            LeaderReply::NotLeader {
                leader: forward.leader_id,
            }
        }
        Ok(Err(e)) => LeaderReply::Failed(e.to_string()),
        Err(_) => LeaderReply::Failed(format!(
            "the membership change was not committed within {timeout:?}"
        )),
    }
}
