//! Fault tests of a replicated cluster of separate `millrace broker`
//! processes (three nodes, each broker and controller, racks az1..az3),
//! under a paced `acks=all` load from an idempotent and a non-idempotent
//! librdkafka producer. Every test ends with the history check (nothing
//! acknowledged lost, nothing read that was never sent, no duplicates, no
//! offset read with two values) and under-replicated partitions back at 0.
//!
//! - kill -9 the leader of a partition, 20 rounds, restarting it each time;
//! - SIGSTOP a leader past `broker.session.timeout.ms`, then SIGCONT;
//! - rolling restart (SIGTERM, start) of every broker in turn;
//! - a network partition (namespaces, needs root) cutting the leader off
//!   from the other brokers while clients still reach it.
//!
//! Each test is bounded: every wait has a deadline, and the fault counts
//! are fixed. The node logs carry `[harness]` lines at every fault; the
//! tails are printed when a test fails (`MILLRACE_KEEP_FAULT_LOGS=1` keeps
//! the whole files).

mod cluster_util;

#[allow(dead_code)]
#[path = "common/wire.rs"]
mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_util::history::History;
use cluster_util::{note, percentile, read_pass, Cluster, ClusterSpec, Workload, WriterKind};
use millrace_protocol::records::Compression;

const PARTITIONS: i32 = 3;
/// Records per second per writer.
const RATE: u32 = 150;
const WRITERS: &[WriterKind] = &[WriterKind::Idempotent, WriterKind::Plain];
/// broker.session.timeout.ms of [`cluster_util::FAULT_SETTINGS`].
const SESSION_TIMEOUT: Duration = Duration::from_secs(3);
/// How long writes may take to resume on another leader after one stops
/// answering before the test calls the cluster stuck. A liveness bound, not
/// a performance claim (tests do not assert on timings): the failover time
/// itself is printed here and measured by `millrace-bench --scenario
/// failover`. Expected: the session timeout, plus a metadata quorum election
/// and a forwarded request's timeout when the stopped broker was also the
/// active controller, on a debug build sharing two cores with other tests.
const FAILOVER_BOUND: Duration = Duration::from_secs(45);

/// A three-node cluster with the fault topic (RF=3, min.insync.replicas=2)
/// and the workload running, every partition already taking writes.
fn setup(spec: ClusterSpec, topic: &str) -> (Cluster, Arc<History>, Workload) {
    let mut cluster = Cluster::start(spec);
    cluster.create_topic(topic, PARTITIONS, 3, &[("min.insync.replicas", "2")]);
    let history = Arc::new(History::new());
    let load = Workload::start(
        &cluster.bootstrap(),
        topic,
        PARTITIONS,
        WRITERS,
        RATE,
        history.clone(),
    );
    let started = Instant::now();
    for p in 0..PARTITIONS {
        load.wait_acked_since(0, p, started, Duration::from_secs(30));
    }
    (cluster, history, load)
}

/// Stops the load, reads everything once more and checks the history;
/// requires at least `min_acked` acknowledged writes (so a run where the
/// cluster took nothing cannot pass).
fn finish(
    mut cluster: Cluster,
    history: &History,
    load: Workload,
    topic: &str,
    what: &str,
    min_acked: usize,
) {
    load.finish();
    cluster.wait_fully_replicated(Duration::from_secs(60));
    read_pass(&cluster.bootstrap(), topic, PARTITIONS, "final", history);
    let summary = history.assert_ok(what);
    println!("{what}: failures by kind: {:?}", history.failure_kinds());
    assert!(
        summary.acked >= min_acked,
        "{what}: only {} writes acknowledged (expected at least {min_acked})",
        summary.acked
    );
}

fn print_times(what: &str, times: &mut [Duration]) {
    times.sort_unstable();
    println!(
        "{what}: n={} p50={:?} max={:?} all={times:?}",
        times.len(),
        percentile(times, 0.5),
        times.last().copied().unwrap_or_default()
    );
}

/// kill -9 of the leader of partition 0, 20 times: each time a new leader
/// is elected from the ISR and the acks=all producers continue on it, the
/// killed broker restarts on its data dir and rejoins every ISR, and no
/// acknowledged write is lost.
#[test]
fn kill9_leader_twenty_rounds() {
    let topic = "faults-kill9";
    let (mut cluster, history, load) = setup(ClusterSpec::new(3), topic);
    let started = Instant::now();
    let mut failovers = Vec::new();
    for round in 1..=20 {
        let leader = cluster.wait_leader(topic, 0, None, None, Duration::from_secs(30));
        let mark = load.mark();
        let t0 = Instant::now();
        cluster.kill9(leader);
        let new_leader = cluster.wait_leader(topic, 0, Some(leader), None, FAILOVER_BOUND);
        let failover = load.wait_acked_since(mark, 0, t0, FAILOVER_BOUND);
        note(&format!(
            "round {round}: killed leader {leader}, new leader {new_leader}, \
             first acks=all write on it after {failover:?}"
        ));
        failovers.push(failover);
        cluster.restart(leader);
        cluster.wait_fully_replicated(Duration::from_secs(60));
        if round % 5 == 0 {
            read_pass(
                &cluster.bootstrap(),
                topic,
                PARTITIONS,
                &format!("after round {round}"),
                &history,
            );
        }
    }
    print_times("kill -9 leader -> first acked write", &mut failovers);
    println!("20 rounds took {:?}", started.elapsed());
    finish(cluster, &history, load, topic, "kill -9 x20", 2_000);
}

/// SIGSTOP of a leader for twice the session timeout: the controller
/// fences it (it leaves the metadata) and elects another leader, writes
/// continue; after SIGCONT the frozen broker learns it was replaced, drops
/// what it must, catches up and rejoins every ISR. Two rounds (leaders of
/// partitions 0 and 1).
#[test]
fn sigstop_leader_past_session_timeout() {
    let topic = "faults-sigstop";
    let (mut cluster, history, load) = setup(ClusterSpec::new(3), topic);
    for (round, partition) in [(1, 0), (2, 1)] {
        let leader = cluster.wait_leader(topic, partition, None, None, Duration::from_secs(30));
        let mark = load.mark();
        let t0 = Instant::now();
        cluster.pause(leader);
        let new_leader = cluster.wait_leader(topic, partition, Some(leader), None, FAILOVER_BOUND);
        let failover = load.wait_acked_since(mark, partition, t0, FAILOVER_BOUND);
        // The frozen broker is fenced: the others no longer list it.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let views = cluster.views(None);
            if views
                .iter()
                .all(|(_, v)| v.as_ref().is_ok_and(|m| !m.brokers.contains(&leader)))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "frozen broker {leader} still listed 20 s after SIGSTOP: {views:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        note(&format!(
            "round {round}: froze leader {leader} of partition {partition}; new leader \
             {new_leader}, first acked write after {failover:?}, fenced after {:?}",
            t0.elapsed()
        ));
        let frozen_for = SESSION_TIMEOUT * 2;
        if let Some(rest) = frozen_for.checked_sub(t0.elapsed()) {
            std::thread::sleep(rest);
        }
        cluster.resume(leader);
        let back = Instant::now();
        cluster.wait_brokers_registered(Duration::from_secs(30));
        let rejoined = cluster.wait_fully_replicated(Duration::from_secs(60));
        assert!(
            cluster.node(leader).is_running(),
            "broker {leader} exited after SIGCONT"
        );
        note(&format!(
            "round {round}: broker {leader} resumed, all ISRs full again {:?} after SIGCONT \
             (wait {rejoined:?})",
            back.elapsed()
        ));
        read_pass(
            &cluster.bootstrap(),
            topic,
            PARTITIONS,
            &format!("after round {round}"),
            &history,
        );
    }
    finish(cluster, &history, load, topic, "SIGSTOP", 1_000);
}

/// Every broker in turn is stopped with SIGTERM (controlled shutdown: its
/// leaderships move first) and started again, under load: writes to every
/// partition continue while it is down, and it rejoins every ISR before the
/// next one goes.
#[test]
fn rolling_restart_under_load() {
    let topic = "faults-rolling";
    let (mut cluster, history, load) = setup(ClusterSpec::new(3), topic);
    let mut gaps = Vec::new();
    for id in 1..=3 {
        let mark = load.mark();
        let t0 = Instant::now();
        let took = cluster.stop(id);
        let deadline = t0 + Duration::from_secs(20);
        while !load.all_acked_since(mark) {
            assert!(
                Instant::now() < deadline,
                "with broker {id} stopped, acks=all writes did not continue on every partition \
                 within 20 s (failures: {:?})",
                history.failure_kinds()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        gaps.push(t0.elapsed());
        note(&format!(
            "broker {id}: controlled shutdown took {took:?}; writes on every partition \
             continued {:?} after SIGTERM",
            t0.elapsed()
        ));
        cluster.restart(id);
        let rejoined = cluster.wait_fully_replicated(Duration::from_secs(60));
        note(&format!(
            "broker {id}: back in every ISR {rejoined:?} after restart"
        ));
        read_pass(
            &cluster.bootstrap(),
            topic,
            PARTITIONS,
            &format!("after restarting {id}"),
            &history,
        );
    }
    print_times("SIGTERM -> writes acked on every partition", &mut gaps);
    finish(cluster, &history, load, topic, "rolling restart", 1_000);
}

/// Produces one record straight to `node` with acks=all and a 3 s timeout;
/// the record is in the history as in flight (and failed unless
/// acknowledged). Returns the partition error code.
fn probe_produce(
    cluster: &mut Cluster,
    history: &History,
    node: i32,
    topic: &str,
    value: &str,
) -> i16 {
    history.sent(value, 0, "probe");
    let addr = cluster.node(node).bootstrap().parse().unwrap();
    let mut conn = wire::Conn::connect(addr);
    let records = wire::batch(
        &[(None, Some(value.as_bytes()), &[])],
        wire::now_ms(),
        Compression::None,
    );
    let request = wire::produce_request(topic, 0, records, -1).with_timeout_ms(3_000);
    let response = conn.call(9, &request);
    let p = &response.responses[0].partition_responses[0];
    if p.error_code == 0 {
        history.acked(value, 0, p.base_offset);
    } else {
        history.failed(value, &format!("probe error {}", p.error_code));
    }
    p.error_code
}

/// The leader of partition 0 is cut off from the other two brokers (each
/// broker in its own network namespace; the test client still reaches all
/// three). The majority elects a new leader and keeps taking acks=all
/// writes; the cut-off leader acknowledges no acks=all write (probed right
/// after the cut, while it still believes it leads, and again later); after
/// healing it rejoins, and nothing acknowledged is lost.
#[test]
fn network_partition_of_the_leader() {
    let topic = "faults-netns";
    let mut spec = ClusterSpec::new(3);
    spec.netns = true;
    let (mut cluster, history, load) = setup(spec, topic);
    let leader = cluster.wait_leader(topic, 0, None, None, Duration::from_secs(30));
    let others: Vec<i32> = (1..=3).filter(|&i| i != leader).collect();
    let mark = load.mark();
    let t0 = Instant::now();
    cluster.isolate(leader);

    let code = probe_produce(&mut cluster, &history, leader, topic, "probe:cut-off-1");
    note(&format!(
        "probe to the cut-off leader {leader} right after the cut: error {code}"
    ));
    assert_ne!(
        code, 0,
        "the cut-off leader {leader} acknowledged an acks=all write with min.insync.replicas=2"
    );

    let new_leader = cluster.wait_leader(topic, 0, Some(leader), Some(&others), FAILOVER_BOUND);
    let failover = load.wait_acked_since(mark, 0, t0, FAILOVER_BOUND);
    note(&format!(
        "majority side: new leader {new_leader} of partition 0, first acked write {failover:?} \
         after the cut"
    ));
    let code = probe_produce(&mut cluster, &history, leader, topic, "probe:cut-off-2");
    note(&format!(
        "second probe to the cut-off broker {leader}: error {code}"
    ));
    assert_ne!(
        code,
        0,
        "the cut-off broker {leader} acknowledged an acks=all write {:?} after the cut",
        t0.elapsed()
    );
    let majority: String = others
        .iter()
        .map(|&i| cluster.node(i).bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    read_pass(
        &majority,
        topic,
        PARTITIONS,
        "during the partition",
        &history,
    );
    if let Some(rest) = (SESSION_TIMEOUT * 3).checked_sub(t0.elapsed()) {
        std::thread::sleep(rest);
    }
    cluster.heal();
    let healed = Instant::now();
    cluster.wait_brokers_registered(Duration::from_secs(30));
    cluster.wait_fully_replicated(Duration::from_secs(60));
    note(&format!(
        "healed: broker {leader} back in every ISR after {:?}",
        healed.elapsed()
    ));
    finish(cluster, &history, load, topic, "network partition", 1_000);
}
