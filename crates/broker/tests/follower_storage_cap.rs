//! A follower at its storage cap (`millrace.log.dirs.max.bytes`, set on it
//! alone as a dynamic per-broker config): the leader goes on accepting
//! writes, the follower refuses to append what it fetches, stays a prefix
//! of the leader's log byte for byte (nothing partial, nothing corrupt) and
//! leaves the ISR; once its cap is raised it catches up by itself, with the
//! same bytes as the leader, and rejoins the ISR.

mod support;

use std::time::Duration;

use rdkafka::admin::TopicReplication;
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use support::{wait_until, Cluster};

const TOPIC: &str = "capped";
const FOLLOWER_CAP: u64 = 64 * 1024;

fn admin(cluster: &Cluster) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .create()
        .expect("admin")
}

async fn set_cap(cluster: &Cluster, broker: i32, cap: &str) {
    let alter =
        AlterConfig::new(ResourceSpecifier::Broker(broker)).set("millrace.log.dirs.max.bytes", cap);
    let results = admin(cluster)
        .alter_configs([&alter], &AdminOptions::new())
        .await
        .expect("alter_configs");
    for r in results {
        r.expect("cap set");
    }
}

/// The follower's whole log, read from its storage, and the leader's log
/// up to the same offset: they must be the same bytes.
fn same_prefix(cluster: &Cluster, leader: i32, follower: i32) -> (i64, i64) {
    let l = cluster.hosted(leader, TOPIC).expect("leader hosts");
    let f = cluster.hosted(follower, TOPIC).expect("follower hosts");
    let f_end = f.log().log_end_offset();
    let l_end = l.log().log_end_offset();
    assert!(f_end <= l_end, "follower {f_end} ahead of leader {l_end}");
    let f_bytes = f
        .log()
        .read(0, usize::MAX / 2, f_end, true)
        .expect("follower reads")
        .records;
    let l_bytes = l
        .log()
        .read(0, usize::MAX / 2, f_end, true)
        .expect("leader reads")
        .records;
    assert!(
        f_bytes == l_bytes,
        "the follower's log ({} bytes to offset {f_end}) is not the leader's ({} bytes)",
        f_bytes.len(),
        l_bytes.len()
    );
    (f_end, l_end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_at_its_cap_keeps_a_clean_prefix_and_catches_up_once_raised() {
    let cluster = Cluster::start(2, &[]).await;
    let created = admin(&cluster)
        .create_topics(
            &[NewTopic::new(
                TOPIC,
                1,
                TopicReplication::Variable(&[&[1, 2]]),
            )],
            &AdminOptions::new(),
        )
        .await
        .expect("create_topics");
    assert!(created[0].is_ok(), "{created:?}");
    wait_until(
        "both replicas host the topic",
        Duration::from_secs(10),
        || cluster.hosted(1, TOPIC).is_some() && cluster.hosted(2, TOPIC).is_some(),
    )
    .await;
    let (leader, follower) = (1, 2);
    assert_eq!(cluster.partition(TOPIC).leader, leader);
    set_cap(&cluster, follower, &FOLLOWER_CAP.to_string()).await;

    // acks=1: the leader answers alone, so it keeps accepting what the
    // follower can no longer hold.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("acks", "1")
        .set("linger.ms", "5")
        .set("batch.size", "16384")
        .create()
        .expect("producer");
    let value = "v".repeat(1000);
    for i in 0..400 {
        producer
            .send(
                FutureRecord::<(), _>::to(TOPIC)
                    .partition(0)
                    .payload(&format!("{i:05}{value}")),
                Duration::from_secs(30),
            )
            .await
            .expect("the leader accepts");
    }

    wait_until(
        "the follower to leave the ISR",
        Duration::from_secs(30),
        || cluster.partition(TOPIC).isr == vec![leader],
    )
    .await;
    let (f_end, l_end) = same_prefix(&cluster, leader, follower);
    assert!(f_end < l_end, "the follower stopped short of the leader");
    let f_log = cluster.hosted(follower, TOPIC).expect("hosted");
    assert!(
        f_log.log().size_bytes() <= FOLLOWER_CAP,
        "the follower holds {} bytes under a {FOLLOWER_CAP}-byte cap",
        f_log.log().size_bytes()
    );

    // Raised: it catches up with identical bytes and rejoins the ISR.
    set_cap(&cluster, follower, "-1").await;
    wait_until(
        "the follower to catch up and rejoin the ISR",
        Duration::from_secs(30),
        || cluster.partition(TOPIC).isr.len() == 2 && f_log.log().log_end_offset() == l_end,
    )
    .await;
    let (f_end, l_end) = same_prefix(&cluster, leader, follower);
    assert_eq!(f_end, l_end);
    cluster.shutdown().await;
}
