//! Consumer groups through librdkafka (issue 3 acceptance): groups of 1 to
//! 5 members joining and leaving while a producer writes, with the range,
//! roundrobin and cooperative-sticky assignors (every produced record
//! consumed; duplicates across rebalances allowed, nothing missing);
//! committed offsets across a broker restart; static membership; the
//! initial rebalance delay; ListGroups / DescribeGroups / DeleteGroups; and
//! the KIP-848 consumer protocol (`group.protocol=consumer`).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::clients::{self, admin_opts, wait};
use common::groups::{
    self, assert_same_set, committed_offsets, group_consumer, spawn_paced_producer, wait_for,
    Consumed, Member, Rec,
};
use millrace_tests::TestBroker;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

const STABLE_TIMEOUT: Duration = Duration::from_secs(60);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Waits until `members` split all `partitions` partitions of `topic`
/// between them: each member holds at least one, no partition twice.
fn wait_stable(members: &[&Member], topic: &str, partitions: i32, cooperative: bool) {
    let want: BTreeSet<(String, i32)> = (0..partitions).map(|p| (topic.to_string(), p)).collect();
    let describe = || {
        members
            .iter()
            .map(|m| {
                format!(
                    "{}: {:?} (rebalance callbacks {:?}, consumer errors {:?})",
                    m.name,
                    m.assigned(cooperative),
                    m.events.lock().expect("events"),
                    m.errors()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    wait_for(
        STABLE_TIMEOUT,
        || {
            let mut union = BTreeSet::new();
            let mut total = 0;
            for m in members {
                let a = m.assigned(cooperative);
                if a.is_empty() {
                    return false;
                }
                total += a.len();
                union.extend(a);
            }
            union == want && total == want.len()
        },
        || {
            format!(
                "{} members to share {partitions} partitions: {}",
                members.len(),
                describe()
            )
        },
    );
    println!("stable: {}", describe());
}

/// Members join and leave (1 → 3 → 5 → 3 → 4 members) while a producer
/// writes; afterwards every produced value was consumed by someone.
fn churn(strategy: &str) {
    let cooperative = strategy == "cooperative-sticky";
    let broker = TestBroker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique(&format!("churn-{strategy}"));
    let group = unique(&format!("churn-group-{strategy}"));
    const PARTITIONS: i32 = 6;
    clients::create_topics(&broker, &[(topic.as_str(), PARTITIONS, &[])]);
    let consumed = Arc::new(Consumed::default());
    let extra = [("partition.assignment.strategy", strategy)];
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
    wait_stable(&[&m1], &topic, PARTITIONS, cooperative);
    let producer = spawn_paced_producer(
        &bootstrap,
        &topic,
        PARTITIONS,
        &format!("churn-{strategy}"),
        4000,
        40,
        Duration::from_millis(100),
    );
    let m2 = spawn("m2");
    let m3 = spawn("m3");
    wait_stable(&[&m1, &m2, &m3], &topic, PARTITIONS, cooperative);
    let m4 = spawn("m4");
    let m5 = spawn("m5");
    wait_stable(&[&m1, &m2, &m3, &m4, &m5], &topic, PARTITIONS, cooperative);
    m2.leave(CLOSE_TIMEOUT);
    m4.leave(CLOSE_TIMEOUT);
    wait_stable(&[&m1, &m3, &m5], &topic, PARTITIONS, cooperative);
    let m6 = spawn("m6");
    wait_stable(&[&m1, &m3, &m5, &m6], &topic, PARTITIONS, cooperative);

    let produced = producer.join().expect("producer thread");
    groups::wait_all_consumed(
        &consumed,
        &produced,
        &groups::GroupTopic {
            bootstrap: &bootstrap,
            group: &group,
            topic: &topic,
            partitions: PARTITIONS,
        },
        &[&m1, &m3, &m5, &m6],
        Duration::from_secs(90),
    );
    for m in [m1, m3, m5, m6] {
        m.leave(CLOSE_TIMEOUT);
    }
    assert_same_set(
        &format!("{strategy} group"),
        &produced,
        &consumed.distinct_values(),
    );
    let errors = consumed.errors.lock().expect("errors").clone();
    assert!(errors.is_empty(), "consumer errors: {errors:?}");
    println!(
        "{strategy}: {} produced, {} delivered (with duplicates), per member {:?}",
        produced.len(),
        consumed.len(),
        consumed.per_member()
    );
    // After everyone left with auto-commit, the group's offsets cover the log.
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
        ends,
        "committed offsets after every member closed"
    );
}

#[test]
fn range_group_members_join_and_leave_while_producing() {
    churn("range");
}

#[test]
fn roundrobin_group_members_join_and_leave_while_producing() {
    churn("roundrobin");
}

#[test]
fn cooperative_sticky_group_members_join_and_leave_while_producing() {
    churn("cooperative-sticky");
}

/// Offsets committed by a consumer survive a broker restart, and a new
/// consumer of the same group resumes exactly at them.
#[test]
fn committed_offsets_survive_restart_and_new_member_resumes_there() {
    let mut broker = TestBroker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique("resume");
    let group = unique("resume-group");
    clients::create_topics(&broker, &[(topic.as_str(), 3, &[])]);
    let producer = groups::plain_producer(&bootstrap, &[]);
    for p in 0..3 {
        let values: Vec<String> = (0..30).map(|i| format!("r-{p}-{i:03}")).collect();
        groups::produce_values(&producer, &topic, p, &values);
    }
    drop(producer);

    let (c, events) = group_consumer(&bootstrap, &group, &[("enable.auto.commit", "false")]);
    c.subscribe(&[&topic]).expect("subscribe");
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen < 90 {
        assert!(
            Instant::now() < deadline,
            "first consumer read {seen} of 90 records (rebalances: {:?})",
            events.lock().expect("events")
        );
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(_)) => seen += 1,
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    let commits = [10i64, 25, 30];
    let mut tpl = TopicPartitionList::new();
    for (p, o) in commits.iter().enumerate() {
        tpl.add_partition_offset(&topic, p as i32, Offset::Offset(*o))
            .expect("offset");
    }
    c.commit(&tpl, CommitMode::Sync).expect("commit offsets");
    drop(c);
    let want: Vec<Option<i64>> = commits.iter().map(|o| Some(*o)).collect();
    assert_eq!(committed_offsets(&bootstrap, &group, &topic, 3), want);

    broker.stop();
    broker.restart();
    assert_eq!(
        committed_offsets(&bootstrap, &group, &topic, 3),
        want,
        "committed offsets after a clean restart"
    );

    let (c, _events) = group_consumer(&bootstrap, &group, &[]);
    c.subscribe(&[&topic]).expect("subscribe");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < 25 {
        assert!(
            Instant::now() < deadline,
            "resumed consumer read {} of 25 records: {got:?}",
            got.len()
        );
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => got.push(Rec::of(&m)),
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    let quiet = Instant::now() + Duration::from_secs(2);
    while Instant::now() < quiet {
        if let Some(r) = c.poll(Duration::from_millis(100)) {
            panic!("unexpected extra delivery: {:?}", r.map(|m| Rec::of(&m)));
        }
    }
    got.sort();
    let expected: Vec<(i32, i64, String)> = (0..3)
        .flat_map(|p| (commits[p as usize]..30).map(move |o| (p, o, format!("r-{p}-{o:03}"))))
        .collect();
    let actual: Vec<(i32, i64, String)> = got
        .iter()
        .map(|r| (r.partition, r.offset, r.value.clone()))
        .collect();
    assert_eq!(
        actual, expected,
        "the new member resumes at the committed offsets"
    );
    drop(c); // auto-commit on close
    assert_eq!(
        committed_offsets(&bootstrap, &group, &topic, 3),
        vec![Some(30); 3]
    );
}

/// A static member (`group.instance.id`) that closes and comes back within
/// its session timeout gets its old partitions back without a rebalance:
/// the other member sees no revoke/assign, and the group keeps 2 members.
#[test]
fn static_member_rejoins_without_rebalance() {
    let broker = TestBroker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique("static");
    let group = unique("static-group");
    clients::create_topics(&broker, &[(topic.as_str(), 4, &[])]);
    let consumed = Arc::new(Consumed::default());
    let member = |name: &str, instance: &str| {
        Member::spawn(
            name,
            &bootstrap,
            &group,
            &[&topic],
            &[
                ("group.instance.id", instance),
                ("session.timeout.ms", "30000"),
                ("partition.assignment.strategy", "range"),
            ],
            consumed.clone(),
        )
    };
    let a = member("a", "instance-a");
    let b = member("b", "instance-b");
    wait_stable(&[&a, &b], &topic, 4, false);
    let a_assignment = a.assigned(false);
    let b_events_before = b.events.lock().expect("events").clone();

    a.leave(CLOSE_TIMEOUT);
    let a2 = member("a2", "instance-a");
    wait_for(
        Duration::from_secs(30),
        || !a2.assigned(false).is_empty(),
        || "the restarted static member to get an assignment".into(),
    );
    assert_eq!(
        a2.assigned(false),
        a_assignment,
        "the static member gets its old partitions back"
    );
    // Observation window: several heartbeats of `b` (1 s interval), during
    // which a rebalance would reach it.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        *b.events.lock().expect("events"),
        b_events_before,
        "the other member saw a rebalance"
    );

    let admin = clients::consumer(&broker, &[]);
    let list = admin
        .fetch_group_list(Some(&group), Duration::from_secs(20))
        .expect("describe group");
    let g = &list.groups()[0];
    assert_eq!(g.state(), "Stable");
    let mut clients_ids: Vec<&str> = g.members().iter().map(|m| m.client_id()).collect();
    clients_ids.sort();
    assert_eq!(clients_ids, vec!["member-a2", "member-b"]);

    // And the group still works: new records reach both members.
    let producer = groups::plain_producer(&bootstrap, &[]);
    let values: Vec<String> = (0..4).map(|p| format!("static-{p}")).collect();
    for (p, v) in values.iter().enumerate() {
        groups::produce_values(&producer, &topic, p as i32, std::slice::from_ref(v));
    }
    wait_for(
        Duration::from_secs(30),
        || {
            let got = consumed.distinct_values();
            values.iter().all(|v| got.contains(v))
        },
        || format!("records to reach the members: {:?}", consumed.per_member()),
    );
    a2.leave(CLOSE_TIMEOUT);
    b.leave(CLOSE_TIMEOUT);
}

/// The first member of a new group waits `group.initial.rebalance.delay.ms`
/// (3 s by default) for others, then is assigned everything.
fn single_member_group(broker: &TestBroker, expect_delay: bool) {
    let bootstrap = broker.bootstrap();
    let topic = unique("single");
    let group = unique("single-group");
    clients::create_topics(broker, &[(topic.as_str(), 2, &[])]);
    let producer = groups::plain_producer(&bootstrap, &[]);
    let values: Vec<String> = (0..10).map(|i| format!("single-{i}")).collect();
    for (i, v) in values.iter().enumerate() {
        groups::produce_values(&producer, &topic, (i % 2) as i32, std::slice::from_ref(v));
    }
    let (c, events) = group_consumer(&bootstrap, &group, &[]);
    let started = Instant::now();
    c.subscribe(&[&topic]).expect("subscribe");
    let mut got = BTreeSet::new();
    let mut assigned_after = None;
    let deadline = started + Duration::from_secs(30);
    while got.len() < values.len() {
        assert!(
            Instant::now() < deadline,
            "single member: {} of {} records after 30 s (rebalances {:?})",
            got.len(),
            values.len(),
            events.lock().expect("events")
        );
        match c.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                got.insert(Rec::of(&m).value);
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
        if assigned_after.is_none() && !groups::assigned_from_events(&events, false).is_empty() {
            assigned_after = Some(started.elapsed());
        }
    }
    let assigned_after = assigned_after.expect("assigned");
    println!(
        "single member assigned after {assigned_after:?} (initial delay expected: {expect_delay})"
    );
    assert!(
        assigned_after < Duration::from_secs(15),
        "assignment took {assigned_after:?}"
    );
    if expect_delay {
        assert!(
            assigned_after >= Duration::from_secs(2),
            "a new group should wait group.initial.rebalance.delay.ms (3 s) before its first \
             rebalance; assigned after {assigned_after:?}"
        );
    }
    assert_eq!(
        groups::assigned_from_events(&events, false),
        vec![(topic.clone(), 0), (topic.clone(), 1)]
    );
    assert_eq!(got, values.iter().cloned().collect::<BTreeSet<_>>());
}

#[test]
fn new_single_member_group_is_stable_after_initial_delay() {
    let broker = TestBroker::start(&[]);
    single_member_group(&broker, true);
}

#[test]
fn initial_rebalance_delay_zero_still_assigns() {
    let broker = TestBroker::start(&[("group.initial.rebalance.delay.ms", "0")]);
    single_member_group(&broker, false);
}

/// ListGroups and DescribeGroups show an active group (state, protocol,
/// members and their assignments); DeleteGroups refuses while members are
/// active (NON_EMPTY_GROUP) and succeeds once they left, taking the
/// committed offsets with it.
#[test]
fn list_describe_delete_groups() {
    let broker = TestBroker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique("admin");
    let group = unique("admin-group");
    clients::create_topics(&broker, &[(topic.as_str(), 4, &[])]);
    let consumed = Arc::new(Consumed::default());
    let extra = [("partition.assignment.strategy", "range")];
    let a = Member::spawn("a", &bootstrap, &group, &[&topic], &extra, consumed.clone());
    let b = Member::spawn("b", &bootstrap, &group, &[&topic], &extra, consumed.clone());
    wait_stable(&[&a, &b], &topic, 4, false);

    let reader = clients::consumer(&broker, &[]);
    let list = reader
        .fetch_group_list(Some(&group), Duration::from_secs(20))
        .expect("describe group");
    assert_eq!(list.groups().len(), 1);
    let g = &list.groups()[0];
    assert_eq!(g.name(), group);
    assert_eq!(g.state(), "Stable");
    assert_eq!(g.protocol_type(), "consumer");
    assert_eq!(g.protocol(), "range");
    assert_eq!(g.members().len(), 2);
    let mut union = Vec::new();
    for m in g.members() {
        let assignment = groups::decode_assignment(m.assignment().unwrap_or_default());
        let member = match m.client_id() {
            "member-a" => &a,
            "member-b" => &b,
            other => panic!("unexpected member client id {other}"),
        };
        assert_eq!(
            assignment,
            member.assigned(false),
            "DescribeGroups assignment of {}",
            m.client_id()
        );
        assert!(!m.id().is_empty());
        assert!(m.metadata().is_some_and(|md| !md.is_empty()));
        union.extend(assignment);
    }
    union.sort();
    assert_eq!(
        union,
        (0..4).map(|p| (topic.clone(), p)).collect::<Vec<_>>()
    );

    let all = reader
        .fetch_group_list(None, Duration::from_secs(20))
        .expect("list groups");
    assert!(
        all.groups().iter().any(|g| g.name() == group),
        "ListGroups lists {group}"
    );

    // Some offsets to delete along with the group.
    let producer = groups::plain_producer(&bootstrap, &[]);
    groups::produce_values(&producer, &topic, 0, &["x".to_string()]);
    wait_for(
        Duration::from_secs(30),
        || !consumed.is_empty(),
        || "a record to be consumed".into(),
    );

    let admin = clients::admin(&broker);
    let res = wait(admin.delete_groups(&[&group], &admin_opts())).expect("delete_groups");
    assert_eq!(
        res,
        vec![Err((group.clone(), RDKafkaErrorCode::NonEmptyGroup))],
        "deleting a group with active members"
    );
    a.leave(CLOSE_TIMEOUT);
    b.leave(CLOSE_TIMEOUT);
    assert_eq!(
        committed_offsets(&bootstrap, &group, &topic, 4)[0],
        Some(1),
        "offset committed on close"
    );
    let empty = reader
        .fetch_group_list(Some(&group), Duration::from_secs(20))
        .expect("describe group");
    assert_eq!(empty.groups()[0].state(), "Empty");
    assert!(empty.groups()[0].members().is_empty());

    let res = wait(admin.delete_groups(&[&group], &admin_opts())).expect("delete_groups");
    assert_eq!(res, vec![Ok(group.clone())], "deleting an empty group");
    assert_eq!(
        committed_offsets(&bootstrap, &group, &topic, 4),
        vec![None; 4],
        "a deleted group's offsets are gone"
    );
    let all = reader
        .fetch_group_list(None, Duration::from_secs(20))
        .expect("list groups");
    assert!(
        !all.groups().iter().any(|g| g.name() == group),
        "a deleted group is no longer listed"
    );
    let res = wait(admin.delete_groups(&[&group], &admin_opts())).expect("delete_groups");
    assert_eq!(
        res,
        vec![Err((group.clone(), RDKafkaErrorCode::GroupIdNotFound))],
        "deleting a group that does not exist"
    );
}

/// KIP-848: two consumers with `group.protocol=consumer` share the
/// partitions and consume everything; when one leaves, the other takes
/// over its partitions.
#[test]
fn kip848_consumer_protocol_group_of_two() {
    let broker = TestBroker::start(&[]);
    let bootstrap = broker.bootstrap();
    // librdkafka waits silently when the broker lacks the KIP-848 API:
    // say so at once.
    let mut conn = common::wire::Conn::connect(broker.addr());
    let versions = conn.call(2, &kafka_protocol::messages::ApiVersionsRequest::default());
    assert!(
        versions
            .api_keys
            .iter()
            .any(|k| k.api_key == kafka_protocol::messages::ApiKey::ConsumerGroupHeartbeat as i16),
        "the broker does not advertise ConsumerGroupHeartbeat (API 68) in ApiVersions, so \
         group.protocol=consumer cannot work; advertised: {:?}",
        versions
            .api_keys
            .iter()
            .map(|k| k.api_key)
            .collect::<Vec<_>>()
    );
    drop(conn);
    let topic = unique("kip848");
    let group = unique("kip848-group");
    clients::create_topics(&broker, &[(topic.as_str(), 4, &[])]);
    let consumed = Arc::new(Consumed::default());
    let extra = [("group.protocol", "consumer")];
    let a = Member::spawn("a", &bootstrap, &group, &[&topic], &extra, consumed.clone());
    let b = Member::spawn("b", &bootstrap, &group, &[&topic], &extra, consumed.clone());
    // Both members hold partitions before records flow: a member learns of
    // a revocation only at its next heartbeat (5 s by default), so records
    // written earlier could all go to the first member.
    wait_stable(&[&a, &b], &topic, 4, true);
    let producer = spawn_paced_producer(
        &bootstrap,
        &topic,
        4,
        "kip848",
        1000,
        50,
        Duration::from_millis(100),
    );
    let mut produced = producer.join().expect("producer");
    wait_for(
        Duration::from_secs(60),
        || {
            let got = consumed.distinct_values();
            produced.iter().all(|v| got.contains(v))
        },
        || {
            format!(
                "all records consumed ({} distinct, errors {:?})",
                consumed.distinct_values().len(),
                consumed.errors.lock().expect("errors")
            )
        },
    );
    assert!(
        consumed.per_member().len() == 2,
        "both members consumed: {:?}",
        consumed.per_member()
    );
    b.leave(CLOSE_TIMEOUT);
    wait_stable(&[&a], &topic, 4, true);
    let more = spawn_paced_producer(
        &bootstrap,
        &topic,
        4,
        "kip848-after",
        200,
        50,
        Duration::from_millis(50),
    );
    produced.extend(more.join().expect("producer"));
    wait_for(
        Duration::from_secs(60),
        || {
            let got = consumed.distinct_values();
            produced.iter().all(|v| got.contains(v))
        },
        || "records produced after the leave to be consumed".into(),
    );
    a.leave(CLOSE_TIMEOUT);
    assert_same_set("KIP-848 group", &produced, &consumed.distinct_values());
    let errors = consumed.errors.lock().expect("errors").clone();
    assert!(errors.is_empty(), "consumer errors: {errors:?}");
}
