//! Elections with a pre-vote round, so a voter that was cut off cannot
//! depose a healthy leader when it comes back.
//!
//! # Why
//!
//! Left to itself, openraft 0.9 has a follower that hears no leader for its
//! election timeout campaign at once: it raises its term, saves it, and asks
//! for votes. A voter behind a network partition does that again and again,
//! and when the partition heals its higher term reaches the leader (in a
//! vote request, or in its answer to the leader's next AppendEntries) and
//! the leader steps down, although a majority was following it all along.
//! The cluster then has no metadata leader until a new election finishes.
//! Kafka's KRaft avoids this with pre-vote (KIP-996); this module does the
//! same on top of openraft.
//!
//! # How
//!
//! openraft's own election timer is off (`Config::enable_elect = false`).
//! [`election_loop`] runs the same timer instead (a follower whose vote is
//! committed waits the leader lease, `election_timeout_max`, plus a random
//! election timeout after it last heard from its leader; a candidate waits a
//! random election timeout), but when it fires the node first asks every
//! other voter whether it *would* vote for it ([`PreVoteRequest`]), without
//! changing any state anywhere. Only when a majority (itself included) says
//! yes does it start a real election (`Raft::trigger().elect()`), which is
//! the only thing that raises its term.
//!
//! A voter grants a pre-vote ([`answer_pre_vote`]) only if it would grant
//! the real vote too and it has not heard from a leader within the lease:
//!
//! - it is not a leader that a majority acknowledged within the lease;
//! - its vote is not a committed (leader's) vote refreshed within the lease
//!   (openraft refreshes it on every AppendEntries, InstallSnapshot or vote
//!   it accepts), which is also when openraft itself rejects the real vote;
//! - the proposed vote (the candidate's term + 1) is at least its own, and
//!   the candidate's log is at least as up to date as its own.
//!
//! So while a majority follows a live leader, a cut-off voter never raises
//! its term, and when it is reconnected the leader's next AppendEntries
//! simply brings it up to date.
//!
//! # Check quorum
//!
//! The other half of KRaft's behaviour is that a leader that has not heard
//! from a majority within the fetch timeout stops acting as leader.
//! openraft 0.9 keeps such a node in the Leader state (its writes and
//! `ensure_linearizable` fail without a majority, so it never commits
//! anything alone), so [`leader_has_quorum`] is what this crate checks
//! before it reports the node as leader: a majority must have acknowledged
//! it within the lease, after which the other voters may elect another.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use openraft::{BasicNode, LogId, Raft, RaftMetrics, ServerState, TokioRuntime, Vote};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::network::{Peers, Request, Response};
use crate::server::stopped;
use crate::types::{NodeId, TypeConfig};

/// "Would you vote for me?": what a real vote request would carry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PreVoteRequest {
    /// The vote the candidate would campaign with (its term + 1, itself).
    pub(crate) vote: Vote<NodeId>,
    /// The candidate's last log entry.
    pub(crate) last_log_id: Option<LogId<NodeId>>,
}

/// The answer to a [`PreVoteRequest`]; nothing changed on the voter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PreVoteResponse {
    /// Whether the voter would grant the real vote now.
    pub(crate) granted: bool,
    /// The voter's current vote, for the candidate's log.
    pub(crate) vote: Vote<NodeId>,
}

/// Whether a leader with these metrics heard from a majority of voters
/// within `lease`. `millis_since_quorum_ack` is `None` until the first
/// majority acknowledges a new leader, which is not yet proof of
/// leadership either. A single voter is its own majority (openraft reports
/// 0 ms for it).
pub(crate) fn leader_has_quorum(metrics: &RaftMetrics<NodeId, BasicNode>, lease: Duration) -> bool {
    metrics
        .millis_since_quorum_ack
        .is_some_and(|ms| u128::from(ms) <= lease.as_millis())
}

/// Decides a pre-vote on this node without changing its state.
pub(crate) async fn answer_pre_vote(
    raft: &Raft<TypeConfig>,
    lease: Duration,
    request: PreVoteRequest,
) -> PreVoteResponse {
    let state = raft
        .with_raft_state(|s| (*s.vote_ref(), s.vote_last_modified(), s.server_state))
        .await;
    let Ok((vote, refreshed, server_state)) = state else {
        // Raft stopped: this node votes for nobody.
        return PreVoteResponse {
            granted: false,
            vote: Vote::default(),
        };
    };
    let now = Instant::now();
    let reject = |why: &str| {
        tracing::debug!(candidate = %request.vote, my_vote = %vote, why, "pre-vote rejected");
        PreVoteResponse {
            granted: false,
            vote,
        }
    };
    if server_state == ServerState::Leader && leader_has_quorum(&raft.metrics().borrow(), lease) {
        return reject("this node leads with a majority behind it");
    }
    if vote.is_committed() && refreshed.is_some_and(|at| now <= at + lease) {
        return reject("heard from the leader within the lease");
    }
    if request.vote.partial_cmp(&vote).is_none() || request.vote < vote {
        return reject("the proposed vote is not above this node's vote");
    }
    let last_log_id = raft.data_metrics().borrow().last_log;
    if request.last_log_id < last_log_id {
        return reject("the candidate's log is behind this node's");
    }
    tracing::debug!(candidate = %request.vote, "pre-vote granted");
    PreVoteResponse {
        granted: true,
        vote,
    }
}

/// What the election timer needs.
pub(crate) struct ElectionSettings {
    /// This node's Raft id.
    pub(crate) id: NodeId,
    /// How long a leader's authority lasts after it was last heard from
    /// (`election_timeout_max`, openraft's leader lease).
    pub(crate) lease: Duration,
    /// How often the timer looks (the heartbeat interval).
    pub(crate) tick: Duration,
    /// How long one pre-vote round waits for answers.
    pub(crate) round_timeout: Duration,
    /// Set while this node follows a leader it has not heard from within
    /// the lease (see `known_leader`).
    pub(crate) leader_silent: Arc<AtomicBool>,
}

/// The election timer of a voter: campaigns (after a pre-vote round) when
/// the leader has been silent for long enough. Runs until shutdown; on a
/// node that is not a voter it only watches.
pub(crate) async fn election_loop(
    raft: Raft<TypeConfig>,
    peers: Arc<Peers>,
    settings: ElectionSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let random_timeout = |raft: &Raft<TypeConfig>| {
        Duration::from_millis(raft.config().new_rand_election_timeout::<TokioRuntime>())
    };
    let mut timeout = random_timeout(&raft);
    // No campaign before one election timeout after start (or after the
    // last attempt): a leader, if there is one, is heard from first.
    let mut last_attempt = Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(settings.tick) => {}
            () = stopped(&mut shutdown) => return,
        }
        let (state, voters, addrs) = {
            let metrics = raft.metrics();
            let metrics = metrics.borrow();
            let membership = metrics.membership_config.membership();
            let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
            let addrs: Vec<(NodeId, String)> = voters
                .iter()
                .filter(|&&v| v != settings.id)
                .filter_map(|&v| membership.get_node(&v).map(|n| (v, n.addr.clone())))
                .collect();
            (metrics.state, voters, addrs)
        };
        let Ok((vote, refreshed)) = raft
            .with_raft_state(|s| (*s.vote_ref(), s.vote_last_modified()))
            .await
        else {
            return;
        };
        let now = Instant::now();
        // A follower (or observer) whose leader has been silent for the
        // lease no longer names it: its leader may have been replaced.
        let silent = state != ServerState::Leader
            && vote.is_committed()
            && refreshed.is_none_or(|at| now > at + settings.lease);
        settings.leader_silent.store(silent, Ordering::Release);
        if state == ServerState::Leader || !voters.contains(&settings.id) {
            last_attempt = now;
            continue;
        }
        if voters.len() == 1 {
            // The only voter is its own majority and elects at once, as
            // openraft does; a campaign already running finishes by itself.
            if state != ServerState::Candidate && raft.trigger().elect().await.is_err() {
                return;
            }
            continue;
        }
        // As openraft's own timer: a committed vote (a leader this node
        // followed) is given the lease before the election timeout runs;
        // and attempts are an election timeout apart.
        let wait = if vote.is_committed() {
            settings.lease + timeout
        } else {
            timeout
        };
        let due = refreshed
            .map_or(now, |at| at + wait)
            .max(last_attempt + timeout);
        if now < due {
            continue;
        }
        last_attempt = now;
        timeout = random_timeout(&raft);
        let proposed = Vote::new(vote.leader_id().get_term() + 1, settings.id);
        let request = PreVoteRequest {
            vote: proposed,
            last_log_id: raft.data_metrics().borrow().last_log,
        };
        let granted = pre_vote_round(&peers, &addrs, &request, settings.round_timeout).await;
        // Itself included.
        let majority = voters.len() / 2 + 1;
        if granted + 1 >= majority {
            tracing::info!(
                term = proposed.leader_id().get_term(),
                granted = granted + 1,
                voters = voters.len(),
                "pre-vote won; campaigning for metadata quorum leader"
            );
            if raft.trigger().elect().await.is_err() {
                return;
            }
        } else {
            tracing::info!(
                term = proposed.leader_id().get_term(),
                granted = granted + 1,
                voters = voters.len(),
                "pre-vote lost; not campaigning"
            );
        }
    }
}

/// Asks every other voter at once; returns how many granted.
async fn pre_vote_round(
    peers: &Peers,
    voters: &[(NodeId, String)],
    request: &PreVoteRequest,
    timeout: Duration,
) -> usize {
    let calls = voters.iter().map(|(id, addr)| async move {
        let answer = peers
            .call(addr, &Request::PreVote(request.clone()), timeout)
            .await;
        match answer {
            Ok(Response::PreVote(response)) => {
                tracing::debug!(voter = id, granted = response.granted, their_vote = %response.vote, "pre-vote answer");
                response.granted
            }
            Ok(other) => {
                tracing::debug!(voter = id, ?other, "unexpected pre-vote answer");
                false
            }
            Err(e) => {
                tracing::debug!(voter = id, error = %e, "pre-vote not answered");
                false
            }
        }
    });
    join_all(calls)
        .await
        .into_iter()
        .filter(|&granted| granted)
        .count()
}
