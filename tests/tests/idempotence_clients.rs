//! Idempotent producers through librdkafka (issue 3 acceptance): with
//! `enable.idempotence=true`, a producer whose connections are cut again
//! and again mid-stream (by a proxy the broker advertises), or whose
//! responses are lost after the broker applied the requests, retries, and
//! the log holds every record exactly once, in order per partition, at the
//! offset its delivery report named.

mod common;

use std::time::Duration;

use common::clients;
use common::groups::{
    self, append_sentinels, check_idempotent_log, read_until_sentinels, spawn_idempotent_producer,
    values_by_partition,
};
use common::proxy::Proxy;
use millrace_tests::TestBroker;

const PARTITIONS: i32 = 3;

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn broker_behind_proxy() -> (TestBroker, Proxy) {
    let proxy = Proxy::bind();
    let broker = TestBroker::start(&[("advertised.listeners", &proxy.advertised_listeners())]);
    proxy.set_upstream(broker.addr());
    (broker, proxy)
}

/// `cuts` rounds of trouble while a paced idempotent producer writes:
/// `lose` rounds swallow responses (requests applied, answers lost) before
/// cutting, the others cut every connection outright.
fn produce_through_trouble(cuts: usize, lose: bool) {
    let (broker, proxy) = broker_behind_proxy();
    let topic = unique("idem-cuts");
    clients::create_topics(&broker, &[(topic.as_str(), PARTITIONS, &[])]);
    let producer = spawn_idempotent_producer(
        proxy.address(),
        PARTITIONS,
        topic.clone(),
        "idem".into(),
        6000,
        100,
        Duration::from_millis(40),
    );
    wait_accepting(&proxy);
    for round in 0..cuts {
        std::thread::sleep(Duration::from_millis(300));
        if lose && round % 2 == 0 {
            proxy.lose_responses(true);
            std::thread::sleep(Duration::from_millis(100));
            proxy.cut_all();
            proxy.lose_responses(false);
        } else {
            proxy.cut_all();
        }
    }
    let sent = producer.join().expect("producer thread");
    println!(
        "{} connections accepted, {} cut, {} closed on a lost response",
        proxy.accepted(),
        proxy.cut_count(),
        proxy.lost_response_count()
    );
    assert!(
        proxy.cut_count() + proxy.lost_response_count() >= cuts,
        "the proxy broke fewer connections ({} cut, {} lost responses) than the {cuts} rounds \
         intended: the producer finished early?",
        proxy.cut_count(),
        proxy.lost_response_count()
    );
    if lose {
        assert!(
            proxy.lost_response_count() > 0,
            "no response was lost: the test did not exercise retries of applied requests"
        );
    }
    check_idempotent_log(&proxy.address(), &topic, PARTITIONS, &sent);
    drop(broker);
}

fn wait_accepting(proxy: &Proxy) {
    groups::wait_for(
        Duration::from_secs(30),
        || proxy.accepted() >= 1,
        || "the producer to connect through the proxy".into(),
    );
}

#[test]
fn idempotent_producer_through_connection_cuts_writes_each_record_once_in_order() {
    produce_through_trouble(8, false);
}

#[test]
fn idempotent_producer_retrying_lost_responses_writes_each_record_once_in_order() {
    produce_through_trouble(8, true);
}

/// Without trouble: an idempotent producer's records arrive exactly once,
/// in order, over several partitions (and a second producer instance
/// gets its own producer id and writes alongside).
#[test]
fn idempotent_producers_write_in_order() {
    let broker = TestBroker::start(&[]);
    let topic = unique("idem-plain");
    clients::create_topics(&broker, &[(topic.as_str(), PARTITIONS, &[])]);
    let a = spawn_idempotent_producer(
        broker.bootstrap(),
        PARTITIONS,
        topic.clone(),
        "a".into(),
        3000,
        500,
        Duration::from_millis(1),
    );
    let b = spawn_idempotent_producer(
        broker.bootstrap(),
        PARTITIONS,
        topic.clone(),
        "b".into(),
        3000,
        500,
        Duration::from_millis(1),
    );
    let sent_a = a.join().expect("producer a");
    let sent_b = b.join().expect("producer b");
    groups::assert_all_delivered(&sent_a);
    groups::assert_all_delivered(&sent_b);
    // Interleaving between the two producers is arbitrary: check each
    // producer's subsequence.
    let token = append_sentinels(&broker.bootstrap(), &topic, PARTITIONS);
    let log = read_until_sentinels(
        &broker.bootstrap(),
        &topic,
        PARTITIONS,
        &token,
        "read_uncommitted",
        Duration::from_secs(60),
    );
    let by_partition = values_by_partition(&log);
    for sent in [&sent_a, &sent_b] {
        for (p, records) in sent {
            let prefix = records[0].0.split('-').next().expect("prefix").to_string() + "-";
            let want: Vec<&String> = records.iter().map(|(v, _)| v).collect();
            let got: Vec<&String> = by_partition
                .get(p)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter(|v| v.starts_with(&prefix))
                .collect();
            assert_eq!(got, want, "{topic}-{p}: records of producer {prefix}");
            assert!(records.iter().all(|(_, o)| o.is_ok()));
        }
    }
}
