//! The coordinators across SIGKILL (issue 3 acceptance): groups and their
//! committed offsets come back intact; a transaction open at the crash is
//! aborted after its `transaction.timeout.ms`, or fenced by a new producer
//! with the same transactional.id, and read_committed readers see only
//! committed data and are not stuck (the LSO advances); members of a group
//! that was rebalancing at the crash settle and consume everything; an
//! idempotent producer writing across crashes leaves every record exactly
//! once (the broker rebuilds producer state from its log).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::clients;
use common::groups::{
    self, append_sentinels, check_idempotent_log, committed_offsets, enqueue, group_consumer,
    init_txn, read_until_sentinels, spawn_idempotent_producer, spawn_paced_producer, txn_producer,
    values_by_partition, wait_for, Consumed, Member,
};
use millrace_tests::TestBroker;
use rand::Rng;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

const T30: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn assert_no_panic(broker: &TestBroker) {
    let out = broker.output();
    assert!(!out.contains("panicked at"), "broker panicked:\n{out}");
}

/// Commits `offsets` for `group` on `topic` partitions 0.. (a consumer that
/// never joins the group: a simple commit with generation -1).
fn commit(bootstrap: &str, group: &str, topic: &str, offsets: &[i64]) {
    let (c, _) = group_consumer(bootstrap, group, &[("enable.auto.commit", "false")]);
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets.iter().enumerate() {
        tpl.add_partition_offset(topic, p as i32, Offset::Offset(*o))
            .expect("offset");
    }
    c.commit(&tpl, CommitMode::Sync)
        .unwrap_or_else(|e| panic!("commit {offsets:?} for {group}: {e}"));
}

/// Writes a committed transaction (`c-*`) and leaves a second one open
/// (`open-*`, flushed) on both partitions of `topic`; commits offsets for
/// `group`; then kills the broker and restarts it. Returns the producer
/// (already disconnected from the killed broker, dropped by the caller).
fn open_transaction_then_kill9(
    broker: &mut TestBroker,
    topic: &str,
    group: &str,
    txn_id: &str,
    txn_timeout_ms: &str,
) {
    let bootstrap = broker.bootstrap();
    clients::create_topics(broker, &[(topic, 2, &[])]);
    let producer = txn_producer(
        &bootstrap,
        txn_id,
        &[("transaction.timeout.ms", txn_timeout_ms)],
    );
    init_txn(&producer, txn_id);
    producer.begin_transaction().expect("begin");
    for i in 0..6 {
        enqueue(&producer, topic, i % 2, None, &format!("c-{i}"));
    }
    producer.commit_transaction(T30).expect("commit");
    producer.begin_transaction().expect("begin");
    for i in 0..6 {
        enqueue(&producer, topic, i % 2, None, &format!("open-{i}"));
    }
    producer.flush(T30).expect("flush open transaction");
    commit(&bootstrap, group, topic, &[2, 3]);
    broker.kill9();
    // Dropped while the broker is down: it cannot end the transaction.
    drop(producer);
    broker.restart();
}

fn expect_committed_only(bootstrap: &str, topic: &str) {
    let token = append_sentinels(bootstrap, topic, 2);
    let rc = read_until_sentinels(bootstrap, topic, 2, &token, "read_committed", READ_TIMEOUT);
    let values: Vec<&str> = rc.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(
        values,
        vec!["c-0", "c-2", "c-4", "c-1", "c-3", "c-5"],
        "read_committed after the crash sees exactly the committed transaction"
    );
    let ru = read_until_sentinels(
        bootstrap,
        topic,
        2,
        &token,
        "read_uncommitted",
        READ_TIMEOUT,
    );
    assert_eq!(
        ru.iter().filter(|r| r.value.starts_with("open-")).count(),
        6,
        "the open transaction's records are in the log (aborted): {ru:?}"
    );
}

/// The coordinator reloads the open transaction after the crash and aborts
/// it once `transaction.timeout.ms` (5 s) passed; the group's offsets and
/// the group itself survive.
#[test]
fn kill9_with_open_transaction_aborts_it_after_timeout() {
    let mut broker = TestBroker::start(&[(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "1000",
    )]);
    let topic = unique("crash-txn-timeout");
    let group = unique("crash-txn-group");
    let txn_id = unique("crash-timeout");
    open_transaction_then_kill9(&mut broker, &topic, &group, &txn_id, "5000");
    let bootstrap = broker.bootstrap();
    assert_eq!(
        committed_offsets(&bootstrap, &group, &topic, 2),
        vec![Some(2), Some(3)],
        "committed offsets after kill -9"
    );
    let started = Instant::now();
    expect_committed_only(&bootstrap, &topic);
    println!(
        "open transaction aborted {:?} after the restart",
        started.elapsed()
    );
    // The transactional id is usable again.
    let producer = txn_producer(&bootstrap, &txn_id, &[]);
    init_txn(&producer, &txn_id);
    producer.begin_transaction().expect("begin");
    enqueue(&producer, &topic, 0, None, "after");
    producer.commit_transaction(T30).expect("commit");
    let token = append_sentinels(&bootstrap, &topic, 2);
    let rc = read_until_sentinels(
        &bootstrap,
        &topic,
        2,
        &token,
        "read_committed",
        READ_TIMEOUT,
    );
    assert!(rc.iter().any(|r| r.value == "after"));
    assert_no_panic(&broker);
}

/// With a long transaction timeout (10 min), the transaction open at the
/// crash ends when a new producer with the same transactional.id calls
/// init_transactions (fencing the old epoch), well before the timeout.
#[test]
fn kill9_with_open_transaction_new_producer_fences_it() {
    let mut broker = TestBroker::start(&[]);
    let topic = unique("crash-txn-fence");
    let group = unique("crash-fence-group");
    let txn_id = unique("crash-fence");
    open_transaction_then_kill9(&mut broker, &topic, &group, &txn_id, "600000");
    let bootstrap = broker.bootstrap();
    let producer = txn_producer(&bootstrap, &txn_id, &[("transaction.timeout.ms", "600000")]);
    init_txn(&producer, &txn_id);
    expect_committed_only(&bootstrap, &topic);
    producer.begin_transaction().expect("begin");
    enqueue(&producer, &topic, 1, None, "after-fence");
    producer.commit_transaction(T30).expect("commit");
    let token = append_sentinels(&bootstrap, &topic, 2);
    let rc = read_until_sentinels(
        &bootstrap,
        &topic,
        2,
        &token,
        "read_committed",
        READ_TIMEOUT,
    );
    assert_eq!(
        values_by_partition(&rc)
            .get(&1)
            .cloned()
            .unwrap_or_default(),
        vec!["c-1", "c-3", "c-5", "after-fence"]
    );
    assert_eq!(
        committed_offsets(&bootstrap, &group, &topic, 2),
        vec![Some(2), Some(3)]
    );
    assert_no_panic(&broker);
}

/// Many commits of increasing offsets, then SIGKILL right after the last
/// acknowledged one: after the restart the group's offsets are the last
/// ones committed, the group is listed, and a new member resumes there.
#[test]
fn committed_offsets_survive_kill9() {
    let mut broker = TestBroker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique("crash-offsets");
    let group = unique("crash-offsets-group");
    clients::create_topics(&broker, &[(topic.as_str(), 2, &[])]);
    let producer = groups::plain_producer(&bootstrap, &[]);
    for p in 0..2 {
        let values: Vec<String> = (0..60).map(|i| format!("k-{p}-{i:03}")).collect();
        groups::produce_values(&producer, &topic, p, &values);
    }
    let (c, _) = group_consumer(&bootstrap, &group, &[("enable.auto.commit", "false")]);
    for i in 1..=50i64 {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(i))
            .expect("offset");
        tpl.add_partition_offset(&topic, 1, Offset::Offset(i / 2))
            .expect("offset");
        c.commit(&tpl, CommitMode::Sync).expect("commit");
    }
    broker.kill9();
    drop(c);
    broker.restart();
    assert_eq!(
        committed_offsets(&bootstrap, &group, &topic, 2),
        vec![Some(50), Some(25)],
        "the last acknowledged commit wins after kill -9"
    );
    let reader = clients::consumer(&broker, &[]);
    let list = reader
        .fetch_group_list(None, Duration::from_secs(20))
        .expect("list groups");
    assert!(
        list.groups().iter().any(|g| g.name() == group),
        "{group} listed after kill -9"
    );
    let (c, events) = group_consumer(&bootstrap, &group, &[]);
    c.subscribe(&[&topic]).expect("subscribe");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < 10 + 35 {
        assert!(
            Instant::now() < deadline,
            "read {} of 45 (rebalances {:?})",
            got.len(),
            events.lock().expect("events")
        );
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => got.push(groups::Rec::of(&m)),
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    let by_p = values_by_partition(&got);
    assert_eq!(by_p[&0].first().map(String::as_str), Some("k-0-050"));
    assert_eq!(by_p[&1].first().map(String::as_str), Some("k-1-025"));
    assert_eq!((by_p[&0].len(), by_p[&1].len()), (10, 35));
    assert_no_panic(&broker);
}

/// Three members, a producer writing, a fourth member joining: the broker
/// is killed in the middle of that rebalance and restarted. The members
/// (same client instances) settle, consume every record, and the committed
/// offsets never went backwards.
#[test]
fn kill9_during_rebalance_keeps_group_and_offsets() {
    let mut broker = TestBroker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique("crash-rebalance");
    let group = unique("crash-rebalance-group");
    const PARTITIONS: i32 = 6;
    clients::create_topics(&broker, &[(topic.as_str(), PARTITIONS, &[])]);
    let consumed = Arc::new(Consumed::default());
    let extra = [("partition.assignment.strategy", "range")];
    let spawn = |name: &str| {
        Member::spawn(
            name,
            &bootstrap,
            &group,
            &[&topic],
            &extra,
            consumed.clone(),
        )
    };
    let m1 = spawn("m1");
    let m2 = spawn("m2");
    let m3 = spawn("m3");
    wait_until_split(&[&m1, &m2, &m3], &topic, PARTITIONS);
    let producer = spawn_paced_producer(
        &bootstrap,
        &topic,
        PARTITIONS,
        "crash-rebalance",
        3000,
        50,
        Duration::from_millis(100),
    );
    wait_for(
        Duration::from_secs(30),
        || consumed.len() > 300,
        || "members to consume some records".into(),
    );
    let m4 = spawn("m4");
    std::thread::sleep(Duration::from_millis(rand::rng().random_range(200..1500)));
    let before = committed_offsets(&bootstrap, &group, &topic, PARTITIONS);
    broker.kill9();
    std::thread::sleep(Duration::from_millis(500));
    broker.restart();
    let after = committed_offsets(&bootstrap, &group, &topic, PARTITIONS);
    for (p, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(
            a >= b,
            "partition {p}: committed offset went back from {b:?} to {a:?} across kill -9"
        );
    }
    wait_until_split(&[&m1, &m2, &m3, &m4], &topic, PARTITIONS);
    let produced = producer.join().expect("producer");
    wait_for(
        Duration::from_secs(90),
        || {
            let got = consumed.distinct_values();
            produced.iter().all(|v| got.contains(v))
        },
        || {
            format!(
                "all {} records consumed after the crash ({} distinct)",
                produced.len(),
                consumed.distinct_values().len()
            )
        },
    );
    for m in [m1, m2, m3, m4] {
        m.leave(Duration::from_secs(30));
    }
    groups::assert_same_set(
        "group across kill -9",
        &produced,
        &consumed.distinct_values(),
    );
    println!(
        "consumer errors around the crash: {:?}",
        consumed.errors.lock().expect("errors")
    );
    let ends: Vec<Option<i64>> = (0..PARTITIONS as usize)
        .map(|p| {
            Some(
                produced
                    .len()
                    .saturating_sub(p)
                    .div_ceil(PARTITIONS as usize) as i64,
            )
        })
        .collect();
    assert_eq!(
        committed_offsets(&bootstrap, &group, &topic, PARTITIONS),
        ends
    );
    assert_no_panic(&broker);
}

fn wait_until_split(members: &[&Member], topic: &str, partitions: i32) {
    let want: Vec<(String, i32)> = (0..partitions).map(|p| (topic.to_string(), p)).collect();
    wait_for(
        Duration::from_secs(90),
        || {
            let mut all = Vec::new();
            for m in members {
                let a = m.assigned(false);
                if a.is_empty() {
                    return false;
                }
                all.extend(a);
            }
            all.sort();
            all == want
        },
        || {
            members
                .iter()
                .map(|m| format!("{}: {:?}", m.name, m.assigned(false)))
                .collect::<Vec<_>>()
                .join("; ")
        },
    );
}

/// An idempotent producer writes while the broker is killed twice; records
/// in flight at a crash are retried after the restart and must not be
/// duplicated (producer state rebuilt from the log): every record exactly
/// once, in order, at its reported offset.
#[test]
fn kill9_idempotent_producer_retries_are_deduplicated() {
    let mut broker = TestBroker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique("crash-idem");
    clients::create_topics(&broker, &[(topic.as_str(), 3, &[])]);
    let producer = spawn_idempotent_producer(
        bootstrap.clone(),
        3,
        topic.clone(),
        "crash-idem".into(),
        8000,
        100,
        Duration::from_millis(50),
    );
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(rand::rng().random_range(700..1500)));
        broker.kill9();
        std::thread::sleep(Duration::from_millis(300));
        broker.restart();
    }
    let sent = producer.join().expect("producer");
    check_idempotent_log(&bootstrap, &topic, 3, &sent);
    assert_no_panic(&broker);
}
