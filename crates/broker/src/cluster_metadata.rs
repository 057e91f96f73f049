//! Where a node's metadata lives: its own local log (a single node, when
//! `process.roles` is not set) or the Raft metadata quorum shared by the
//! nodes of a cluster (`process.roles` with `controller.quorum.voters`).
//!
//! A combined node (`process.roles=broker,controller`, KRaft's combined
//! mode) and a controller-only node (`process.roles=controller`, see
//! [`crate::controller_node`]) run a quorum voter on their CONTROLLER
//! listener; a broker-only node (`process.roles=broker`) runs an observer,
//! which receives the log without voting. Every node holds a [`Controller`] over the replicated store; the
//! quorum leader is the active controller, and every other node forwards
//! controller requests to it through the quorum ([`Controller::serve`]
//! answers them there).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use millrace_config::broker::ProcessRole;
use millrace_config::BrokerConfig;
use millrace_metadata::Controller;
use millrace_quorum::{Quorum, QuorumConfig};
use tokio_util::sync::CancellationToken;

use crate::broker::BootError;

/// The quorum's files, beside the single-node metadata log.
const QUORUM_DIR: &str = "millrace-quorum";

/// The quorum settings of this node, or `None` for a single node with its
/// own local metadata log.
pub(crate) fn quorum_config(
    config: &BrokerConfig,
    metadata_dir: &Path,
) -> Result<Option<QuorumConfig>, BootError> {
    let roles = config.process_roles();
    if roles.is_empty() || config.controller_quorum_voters().is_empty() {
        return Ok(None);
    }
    let is_controller = roles.contains(&ProcessRole::Controller);
    let node_id = config.node_id();
    let mut voters = BTreeMap::new();
    for voter in config.controller_quorum_voters() {
        let addr = resolve(&voter.host, voter.port).map_err(|e| {
            BootError::Config(format!(
                "controller.quorum.voters: cannot resolve {}:{}: {e}",
                voter.host, voter.port
            ))
        })?;
        voters.insert(voter.id, addr);
    }
    if is_controller != voters.contains_key(&node_id) {
        return Err(BootError::Config(format!(
            "node.id {node_id} {} controller.quorum.voters but process.roles {} controller",
            if is_controller { "is not in" } else { "is in" },
            if is_controller {
                "names"
            } else {
                "does not name"
            },
        )));
    }
    let listen = if is_controller {
        let controller_names = config.controller_listener_names();
        let listener = config
            .listeners()
            .iter()
            .find(|l| controller_names.contains(&l.name))
            .ok_or_else(|| {
                BootError::Config(
                    "a controller needs a listener named in controller.listener.names".into(),
                )
            })?;
        let host = listener.host.as_deref().unwrap_or("0.0.0.0");
        resolve(host, listener.port).map_err(|e| {
            BootError::Config(format!("controller listener {host}:{}: {e}", listener.port))
        })?
    } else {
        observer_listen(config)?
    };
    let mut quorum = QuorumConfig::new(node_id, voters, listen, metadata_dir.join(QUORUM_DIR));
    // Forwarding and appends give up after this and clients retry. Kafka's
    // controller.quorum.request.timeout.ms is 2 s; 5 s leaves room for a
    // large CreateTopics batch on a slow disk while a request to a
    // controller that stopped answering still fails over quickly.
    quorum.request_timeout_ms = 5_000;
    election_timing(
        &mut quorum,
        config.controller_quorum_fetch_timeout_ms(),
        config.controller_quorum_election_backoff_max_ms(),
    );
    // Kafka's snapshot knobs; the config validates both as non-negative
    // (the byte count as at least 1).
    quorum.snapshot_max_record_bytes =
        u64::try_from(config.metadata_log_max_record_bytes_between_snapshots()).unwrap_or(1);
    quorum.snapshot_max_interval_ms =
        u64::try_from(config.metadata_log_max_snapshot_interval_ms()).unwrap_or(0);
    Ok(Some(quorum))
}

/// Sets the quorum's election timing from Kafka's knobs. An openraft 0.9
/// follower campaigns once it has heard nothing from the leader for its
/// leader lease (the maximum election timeout; within it, it also refuses
/// to vote for anyone else, and a leader that no majority acknowledged
/// within it stops leading) plus a random election timeout in `[min, max)`.
/// With `min = fetch_timeout / 2` and `max = min + backoff` a follower
/// campaigns after between `fetch_timeout + backoff` and
/// `fetch_timeout + 2 * backoff`: with Kafka's defaults 3 to 4 s after the
/// leader went silent, which bounds how long metadata changes stall when the
/// active controller dies, and a leader keeps its lease for 2 s (four
/// heartbeats) of silence, so a busy start-up does not unseat it.
fn election_timing(quorum: &mut QuorumConfig, fetch_timeout_ms: i32, backoff_max_ms: i32) {
    let min = (fetch_timeout_ms.max(4) / 2) as u64;
    let max = min + backoff_max_ms.max(1) as u64;
    quorum.election_timeout_min_ms = min;
    quorum.election_timeout_max_ms = max;
    // The leader heartbeats several times within every follower's lease;
    // openraft also uses this as each AppendEntries' timeout, hence not
    // below a few hundred milliseconds when the timeouts allow it.
    quorum.heartbeat_interval_ms = (min / 2).clamp(1, 500);
}

/// Where a broker-only node (a quorum observer, which receives the log but
/// does not vote) listens for the leader's replication: an ephemeral port
/// on the address its brokers reach it at (the advertised host of its first
/// listener, else that listener's own host), since Kafka gives such a node
/// no controller listener.
fn observer_listen(config: &BrokerConfig) -> Result<SocketAddr, BootError> {
    let listener = config
        .listeners()
        .first()
        .ok_or_else(|| BootError::Config("a broker needs at least one listener".into()))?;
    let advertised = config
        .advertised_listeners()
        .iter()
        .find(|a| a.name == listener.name)
        .and_then(|a| a.host.clone());
    let host = advertised
        .or_else(|| listener.host.clone())
        .filter(|h| !h.is_empty() && h != "0.0.0.0" && h != "::")
        .ok_or_else(|| {
            BootError::Config(format!(
                "listener {} binds every interface: set its host (or an advertised host) \
                 so the metadata quorum can reach this broker",
                listener.name
            ))
        })?;
    resolve(&host, 0).map_err(|e| BootError::Config(format!("{host}: {e}")))
}

/// The cluster id every node of a quorum formats with, without a format
/// step: derived from the voter set, so nodes started from the same
/// `controller.quorum.voters` agree. Kafka's 22-character base64 form.
pub(crate) fn cluster_id_for(config: &QuorumConfig) -> String {
    let voters: Vec<String> = config
        .voters
        .iter()
        .map(|(id, addr)| format!("{id}@{addr}"))
        .collect();
    let id = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("millrace:cluster:{}", voters.join(",")).as_bytes(),
    );
    crate::broker::base64_uuid(id)
}

/// Starts this node's quorum voter.
pub(crate) async fn start_quorum(config: QuorumConfig) -> Result<Arc<Quorum>, BootError> {
    Quorum::start(config)
        .await
        .map_err(|e| BootError::Config(format!("metadata quorum: {e}")))
}

/// Makes `controller` answer the requests other nodes forward to this one
/// while it leads the quorum.
pub(crate) fn serve_forwarded_requests(quorum: &Quorum, controller: Arc<Controller>) {
    quorum.set_request_handler(Arc::new(move |request| {
        let controller = controller.clone();
        async move {
            tokio::task::spawn_blocking(move || controller.serve(&request))
                .await
                .map(bytes::Bytes::from)
                .unwrap_or_default()
        }
        .boxed()
    }));
}

/// As the active controller, fences every `interval` the brokers whose
/// session (`broker.session.timeout.ms`) expired, until `shutdown`. Every
/// node with a controller runs it; only the active controller acts. It runs
/// apart from heartbeats: a heartbeat forwarded to a controller that stopped
/// answering can hang for the quorum's request timeout, and a node that has
/// just become the active controller must start fencing without waiting.
pub(crate) async fn run_session_checks(
    controller: Arc<Controller>,
    interval: Duration,
    session: Duration,
    unclean: bool,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
        let c = controller.clone();
        let fenced =
            tokio::task::spawn_blocking(move || c.fence_expired_brokers(session, unclean)).await;
        if let Ok(Err(e)) = fenced {
            tracing::warn!(error = %e, "session check failed");
        }
    }
}

fn resolve(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{host} has no address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(fetch: i32, backoff: i32) -> (u64, u64, u64) {
        let mut q = QuorumConfig::new(
            1,
            BTreeMap::from([(1, "127.0.0.1:1".parse().expect("addr"))]),
            "127.0.0.1:1".parse().expect("addr"),
            std::path::PathBuf::from("/nonexistent"),
        );
        election_timing(&mut q, fetch, backoff);
        (
            q.heartbeat_interval_ms,
            q.election_timeout_min_ms,
            q.election_timeout_max_ms,
        )
    }

    #[test]
    fn kafka_defaults_campaign_between_three_and_four_seconds() {
        let (heartbeat, min, max) = timing(2000, 1000);
        assert_eq!((heartbeat, min, max), (500, 1000, 2000));
        // Lease (= max) plus the random timeout.
        assert_eq!((max + min, max + max), (3000, 4000));
    }

    #[test]
    fn any_setting_gives_a_timing_openraft_accepts() {
        for (fetch, backoff) in [(1, 0), (4, 0), (10, 1), (300, 0), (60_000, 10_000)] {
            let (heartbeat, min, max) = timing(fetch, backoff);
            assert!(
                0 < heartbeat && heartbeat < min && min < max,
                "{fetch} {backoff}"
            );
        }
    }

    fn combined_node(extra: &[(&str, &str)]) -> BrokerConfig {
        let mut entries: Vec<(String, String)> = [
            ("node.id", "1"),
            ("process.roles", "broker,controller"),
            ("controller.quorum.voters", "1@127.0.0.1:19093"),
            ("controller.listener.names", "CONTROLLER"),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
            ),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            ),
            ("inter.broker.listener.name", "PLAINTEXT"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        entries.push(("log.dirs".into(), "/tmp/unused".into()));
        BrokerConfig::from_entries(&entries)
            .expect("valid config")
            .0
    }

    #[test]
    fn kafkas_snapshot_settings_reach_the_quorum() {
        let dir = Path::new("/tmp/unused");
        let defaults = quorum_config(&combined_node(&[]), dir)
            .expect("config")
            .expect("a quorum node");
        assert_eq!(defaults.snapshot_max_record_bytes, 20_971_520);
        assert_eq!(defaults.snapshot_max_interval_ms, 3_600_000);
        let tuned = quorum_config(
            &combined_node(&[
                ("metadata.log.max.record.bytes.between.snapshots", "4096"),
                ("metadata.log.max.snapshot.interval.ms", "0"),
            ]),
            dir,
        )
        .expect("config")
        .expect("a quorum node");
        assert_eq!(tuned.snapshot_max_record_bytes, 4096);
        assert_eq!(tuned.snapshot_max_interval_ms, 0);
        assert_eq!(tuned.data_dir, dir.join(QUORUM_DIR));
    }
}
