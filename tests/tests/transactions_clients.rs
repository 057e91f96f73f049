//! Transactions through librdkafka's transactional API (issue 3
//! acceptance): a consume-transform-produce loop (`init_transactions`,
//! `begin_transaction`, `send_offsets_to_transaction` with the consumer's
//! group metadata, `commit_transaction`) killed with SIGKILL mid-stream and
//! restarted yields every input exactly once to `read_committed` readers;
//! aborted transactions are invisible to `read_committed` and visible to
//! `read_uncommitted`; an open transaction holds back the last stable
//! offset until it ends; a zombie producer is fenced; offsets sent in an
//! aborted transaction are not committed; a transaction left open past
//! `transaction.timeout.ms` is aborted by the coordinator.
//!
//! The loop runs in a child process: this test binary re-executed with
//! `MILLRACE_EOS_CHILD` set runs only [`eos_loop_child_process`], which
//! reports progress as `EOS: ...` lines on stdout.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::clients;
use common::groups::{
    self, append_sentinels, committed_offsets, enqueue, group_consumer, init_txn, is_fenced,
    read_until_sentinels, txn_producer, values_by_partition, Rec,
};
use millrace_tests::TestBroker;
use rand::Rng;
use rdkafka::consumer::Consumer;
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

// ---------------------------------------------------------------------------
// The consume-transform-produce loop (child process side)
// ---------------------------------------------------------------------------

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
}

/// Entry point of the child process; does nothing in a normal test run.
///
/// Reads `input` (as group `group`, read_committed, no auto-commit) in
/// batches of up to 100 records and, per batch, in one transaction of
/// `txn_id`: writes `out:{value}` (key = value) to the same partition of
/// `output`, sends the consumed offsets to the transaction, commits. Exits
/// once the group's committed offsets cover all `total` inputs. With
/// `MILLRACE_EOS_OPEN_AFTER=k` it instead stops after `k` committed
/// transactions with one more transaction open (its records flushed) and
/// waits to be killed.
#[test]
fn eos_loop_child_process() {
    if std::env::var("MILLRACE_EOS_CHILD").is_err() {
        return;
    }
    let bootstrap = env("MILLRACE_EOS_BOOTSTRAP");
    let input = env("MILLRACE_EOS_INPUT");
    let output = env("MILLRACE_EOS_OUTPUT");
    let group = env("MILLRACE_EOS_GROUP");
    let txn_id = env("MILLRACE_EOS_TXN_ID");
    let partitions: i32 = env("MILLRACE_EOS_PARTITIONS").parse().expect("partitions");
    let total: i64 = env("MILLRACE_EOS_TOTAL").parse().expect("total");
    let open_after: Option<usize> = std::env::var("MILLRACE_EOS_OPEN_AFTER")
        .ok()
        .map(|v| v.parse().expect("open after"));

    let (consumer, _events) = group_consumer(
        &bootstrap,
        &group,
        &[
            ("enable.auto.commit", "false"),
            ("isolation.level", "read_committed"),
        ],
    );
    let producer = txn_producer(&bootstrap, &txn_id, &[("transaction.timeout.ms", "60000")]);
    producer
        .init_transactions(T30)
        .unwrap_or_else(|e| panic!("EOS: init_transactions failed: {e}"));
    println!("EOS: initialized");
    consumer.subscribe(&[&input]).expect("subscribe");
    let mut committed = 0usize;
    let deadline = Instant::now() + Duration::from_secs(170);
    loop {
        assert!(Instant::now() < deadline, "EOS: loop ran out of time");
        let mut batch: Vec<Rec> = Vec::new();
        let mut idle = 0;
        while batch.len() < 100 && idle < 3 {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => batch.push(Rec::of(&m)),
                Some(Err(e)) => panic!("EOS: consumer error: {e}"),
                None => idle += 1,
            }
        }
        if batch.is_empty() {
            let done: i64 = committed_offsets(&bootstrap, &group, &input, partitions)
                .iter()
                .map(|o| o.unwrap_or(0))
                .sum();
            if done == total {
                println!("EOS: done after {committed} transactions");
                return;
            }
            continue;
        }
        producer
            .begin_transaction()
            .unwrap_or_else(|e| panic!("EOS: begin_transaction: {e}"));
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for r in &batch {
            enqueue(
                &producer,
                &output,
                r.partition,
                Some(&r.value),
                &format!("out:{}", r.value),
            );
            next.insert(r.partition, r.offset + 1);
        }
        if open_after == Some(committed) {
            producer.flush(T30).expect("EOS: flush open transaction");
            println!("EOS: open {}", batch.len());
            loop {
                std::thread::sleep(Duration::from_secs(1));
                assert!(Instant::now() < deadline, "EOS: never killed");
            }
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &next {
            tpl.add_partition_offset(&input, *p, Offset::Offset(*o))
                .expect("offset");
        }
        let metadata = consumer.group_metadata().expect("group metadata");
        producer
            .send_offsets_to_transaction(&tpl, &metadata, T30)
            .unwrap_or_else(|e| panic!("EOS: send_offsets_to_transaction: {e}"));
        producer
            .commit_transaction(T30)
            .unwrap_or_else(|e| panic!("EOS: commit_transaction: {e}"));
        committed += 1;
        println!("EOS: committed {committed} {}", batch.len());
    }
}

// ---------------------------------------------------------------------------
// The parent side
// ---------------------------------------------------------------------------

struct LoopSetup {
    bootstrap: String,
    input: String,
    output: String,
    group: String,
    txn_id: String,
    partitions: i32,
    total: usize,
}

struct LoopChild {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl LoopChild {
    fn spawn(setup: &LoopSetup, open_after: Option<usize>) -> LoopChild {
        let exe = std::env::current_exe().expect("test executable");
        let mut cmd = Command::new(exe);
        cmd.args([
            "eos_loop_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MILLRACE_EOS_CHILD", "1")
        .env("MILLRACE_EOS_BOOTSTRAP", &setup.bootstrap)
        .env("MILLRACE_EOS_INPUT", &setup.input)
        .env("MILLRACE_EOS_OUTPUT", &setup.output)
        .env("MILLRACE_EOS_GROUP", &setup.group)
        .env("MILLRACE_EOS_TXN_ID", &setup.txn_id)
        .env("MILLRACE_EOS_PARTITIONS", setup.partitions.to_string())
        .env("MILLRACE_EOS_TOTAL", setup.total.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        cmd.env_remove("MILLRACE_EOS_OPEN_AFTER");
        if let Some(k) = open_after {
            cmd.env("MILLRACE_EOS_OPEN_AFTER", k.to_string());
        }
        let mut child = cmd.spawn().expect("spawn loop child");
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        LoopChild {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line starting with `prefix`; fails after `timeout` or if
    /// the child exits first.
    fn wait_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) => {
                    println!("  child: {line}");
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait();
                    panic!(
                        "loop child exited ({status:?}) before printing {prefix:?}; output:\n{}",
                        self.seen.join("\n")
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {prefix:?} from the loop child within {timeout:?}; output:\n{}",
                self.seen.join("\n")
            );
        }
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for a successful exit.
    fn finish(mut self, timeout: Duration) {
        self.wait_line("EOS: done", timeout);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.child.try_wait().expect("wait child") {
                Some(status) => {
                    while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                        self.seen.push(line);
                    }
                    assert!(
                        status.success(),
                        "loop child failed ({status}):\n{}",
                        self.seen.join("\n")
                    );
                    return;
                }
                None if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    panic!("loop child did not exit after finishing");
                }
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for LoopChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates input and output topics and writes `per_partition` inputs
/// (`in-{p}-{i}`) to each input partition; returns the inputs by partition.
fn setup_loop(
    broker: &TestBroker,
    per_partition: usize,
) -> (LoopSetup, BTreeMap<i32, Vec<String>>) {
    let partitions = 3;
    let setup = LoopSetup {
        bootstrap: broker.bootstrap(),
        input: unique("eos-in"),
        output: unique("eos-out"),
        group: unique("eos-group"),
        txn_id: unique("eos-txn"),
        partitions,
        total: per_partition * partitions as usize,
    };
    clients::create_topics(
        broker,
        &[
            (setup.input.as_str(), partitions, &[]),
            (setup.output.as_str(), partitions, &[]),
        ],
    );
    let producer = groups::plain_producer(&setup.bootstrap, &[]);
    let mut inputs = BTreeMap::new();
    for p in 0..partitions {
        let values: Vec<String> = (0..per_partition)
            .map(|i| format!("in-{p}-{i:05}"))
            .collect();
        groups::produce_values(&producer, &setup.input, p, &values);
        inputs.insert(p, values);
    }
    (setup, inputs)
}

/// The output as `read_committed` sees it is exactly one `out:` record per
/// input, in input order per partition; the group's offsets cover the
/// input. Returns how many records `read_uncommitted` sees in the output.
fn check_exactly_once(setup: &LoopSetup, inputs: &BTreeMap<i32, Vec<String>>) -> usize {
    let token = append_sentinels(&setup.bootstrap, &setup.output, setup.partitions);
    let committed = read_until_sentinels(
        &setup.bootstrap,
        &setup.output,
        setup.partitions,
        &token,
        "read_committed",
        READ_TIMEOUT,
    );
    let by_partition = values_by_partition(&committed);
    for (p, values) in inputs {
        let want: Vec<String> = values.iter().map(|v| format!("out:{v}")).collect();
        let got = by_partition.get(p).cloned().unwrap_or_default();
        if got != want {
            let counts = groups::counts(&got);
            let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(10).collect();
            let missing: Vec<_> = want
                .iter()
                .filter(|v| !counts.contains_key(v.as_str()))
                .take(10)
                .collect();
            panic!(
                "{}-{p} (read_committed): {} records for {} inputs; duplicated {dups:?}, \
                 missing {missing:?}",
                setup.output,
                got.len(),
                want.len()
            );
        }
    }
    let per_partition: Vec<Option<i64>> = inputs.values().map(|v| Some(v.len() as i64)).collect();
    assert_eq!(
        committed_offsets(
            &setup.bootstrap,
            &setup.group,
            &setup.input,
            setup.partitions
        ),
        per_partition,
        "offsets sent to the transactions are the group's committed offsets"
    );
    read_until_sentinels(
        &setup.bootstrap,
        &setup.output,
        setup.partitions,
        &token,
        "read_uncommitted",
        READ_TIMEOUT,
    )
    .len()
}

/// The loop is killed (SIGKILL) with a transaction open whose records are
/// in the log; a new instance with the same transactional.id fences it,
/// the open transaction is aborted, and the output read_committed holds
/// each input exactly once. read_uncommitted also sees the aborted records.
#[test]
fn exactly_once_loop_killed_with_open_transaction() {
    let broker = TestBroker::start(&[]);
    let (setup, inputs) = setup_loop(&broker, 200);
    let mut a = LoopChild::spawn(&setup, Some(2));
    let open = a.wait_line("EOS: open", Duration::from_secs(90));
    let open_count: usize = open
        .trim_start_matches("EOS: open ")
        .trim()
        .parse()
        .expect("count");
    a.kill9();
    let b = LoopChild::spawn(&setup, None);
    b.finish(Duration::from_secs(150));
    let uncommitted = check_exactly_once(&setup, &inputs);
    assert_eq!(
        uncommitted,
        setup.total + open_count,
        "read_uncommitted sees every committed record plus the {open_count} records of the \
         aborted transaction"
    );
}

/// Three instances of the loop are killed at random moments (right after
/// a commit plus 0-300 ms, so usually inside the next transaction); a
/// fourth finishes. read_committed output: each input exactly once.
#[test]
fn exactly_once_loop_survives_repeated_kills() {
    let broker = TestBroker::start(&[]);
    let (setup, inputs) = setup_loop(&broker, 500);
    let mut rng = rand::rng();
    for round in 0..3 {
        let mut child = LoopChild::spawn(&setup, None);
        let commits = rng.random_range(1..=3);
        for _ in 0..commits {
            child.wait_line("EOS: committed", Duration::from_secs(90));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
        println!("round {round}: killing the loop after {commits} commits");
        child.kill9();
    }
    let last = LoopChild::spawn(&setup, None);
    last.finish(Duration::from_secs(170));
    let uncommitted = check_exactly_once(&setup, &inputs);
    assert!(uncommitted >= setup.total);
}

/// Committed, aborted and committed again: read_committed sees exactly the
/// committed records (in order), read_uncommitted all of them; while a
/// transaction is open, a read_committed reader does not get past it (not
/// even to a later non-transactional record), and does once it ends.
#[test]
fn aborted_transactions_are_invisible_to_read_committed() {
    let broker = TestBroker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique("txn-visibility");
    clients::create_topics(&broker, &[(topic.as_str(), 2, &[])]);
    let txn_id = unique("visibility");
    let producer = txn_producer(&bootstrap, &txn_id, &[]);
    init_txn(&producer, &txn_id);
    let batch = |label: &str| -> Vec<(i32, String)> {
        (0..10)
            .map(|i: i32| (i % 2, format!("{label}-{i}")))
            .collect()
    };
    let mut all = Vec::new();
    let mut committed = Vec::new();
    for (label, commit) in [("c1", true), ("a1", false), ("c2", true), ("a2", false)] {
        producer.begin_transaction().expect("begin");
        for (p, v) in batch(label) {
            enqueue(&producer, &topic, p, None, &v);
        }
        if commit {
            producer.commit_transaction(T30).expect("commit");
            committed.extend(batch(label));
        } else {
            producer.flush(T30).expect("flush");
            producer.abort_transaction(T30).expect("abort");
        }
        all.extend(batch(label));
    }
    let token = append_sentinels(&bootstrap, &topic, 2);
    let by_p = |records: &[(i32, String)]| {
        let mut m: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for (p, v) in records {
            m.entry(*p).or_default().push(v.clone());
        }
        m
    };
    let rc = read_until_sentinels(
        &bootstrap,
        &topic,
        2,
        &token,
        "read_committed",
        READ_TIMEOUT,
    );
    assert_eq!(values_by_partition(&rc), by_p(&committed), "read_committed");
    let ru = read_until_sentinels(
        &bootstrap,
        &topic,
        2,
        &token,
        "read_uncommitted",
        READ_TIMEOUT,
    );
    assert_eq!(values_by_partition(&ru), by_p(&all), "read_uncommitted");
    // Each transaction ends with a control record (a marker offset the
    // consumer never returns): 5 records then a marker, four times.
    for p in 0..2 {
        let offsets: Vec<i64> = ru
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .collect();
        let want: Vec<i64> = (0..4).flat_map(|t| (t * 6)..(t * 6 + 5)).collect();
        assert_eq!(
            offsets, want,
            "partition {p}: data offsets around the markers"
        );
    }

    // An open transaction holds back the LSO.
    producer.begin_transaction().expect("begin");
    enqueue(&producer, &topic, 0, None, "open-0");
    producer.flush(T30).expect("flush");
    let plain = groups::plain_producer(&bootstrap, &[]);
    groups::produce_values(&plain, &topic, 0, &["after-open".to_string()]);
    let rc_reader = groups::assign_reader(&bootstrap, "read_committed");
    let ru_reader = groups::assign_reader(&bootstrap, "read_uncommitted");
    for r in [&rc_reader, &ru_reader] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Beginning)
            .expect("offset");
        r.assign(&tpl).expect("assign");
    }
    let read_all = |c: &rdkafka::consumer::BaseConsumer, until: Option<&str>, for_: Duration| {
        let mut out = Vec::new();
        let end = Instant::now() + for_;
        while Instant::now() < end {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                let r = Rec::of(&m);
                let stop = until == Some(r.value.as_str());
                out.push(r.value);
                if stop {
                    break;
                }
            }
        }
        out
    };
    let ru_seen = read_all(&ru_reader, Some("after-open"), T30);
    assert!(
        ru_seen.ends_with(&["open-0".to_string(), "after-open".to_string()]),
        "read_uncommitted reads past the open transaction: {ru_seen:?}"
    );
    let rc_seen = read_all(&rc_reader, None, Duration::from_secs(3));
    assert!(
        !rc_seen.iter().any(|v| v == "open-0" || v == "after-open"),
        "read_committed read past an open transaction: {rc_seen:?}"
    );
    producer.commit_transaction(T30).expect("commit");
    let rc_more = read_all(&rc_reader, Some("after-open"), T30);
    assert!(
        rc_more.ends_with(&["open-0".to_string(), "after-open".to_string()]),
        "after the commit read_committed reads on: {rc_more:?}"
    );
}

/// A second producer with the same transactional.id fences the first: the
/// first's open transaction is aborted, and its next produce/commit fails
/// with a fatal fenced error.
#[test]
fn zombie_producer_is_fenced() {
    let broker = TestBroker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique("txn-zombie");
    clients::create_topics(&broker, &[(topic.as_str(), 2, &[])]);
    let txn_id = unique("zombie");
    let zombie = txn_producer(&bootstrap, &txn_id, &[]);
    init_txn(&zombie, &txn_id);
    zombie.begin_transaction().expect("begin");
    enqueue(&zombie, &topic, 0, None, "zombie-0");
    zombie.flush(T30).expect("flush");

    let fresh = txn_producer(&bootstrap, &txn_id, &[]);
    init_txn(&fresh, &txn_id);
    fresh.begin_transaction().expect("begin");
    enqueue(&fresh, &topic, 0, None, "fresh-0");
    enqueue(&fresh, &topic, 1, None, "fresh-1");
    fresh.commit_transaction(T30).expect("fresh commit");

    // The zombie writes to a new partition (AddPartitionsToTxn) and commits.
    enqueue(&zombie, &topic, 1, None, "zombie-1");
    let err = zombie
        .commit_transaction(T30)
        .expect_err("the fenced producer's commit must fail");
    assert!(
        is_fenced(&err),
        "expected a fatal fenced error, got {err:?} ({err})"
    );
    // Not even a new transaction is possible.
    assert!(zombie.begin_transaction().is_err());

    let token = append_sentinels(&bootstrap, &topic, 2);
    let rc = read_until_sentinels(
        &bootstrap,
        &topic,
        2,
        &token,
        "read_committed",
        READ_TIMEOUT,
    );
    let values: Vec<&str> = rc.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(values, vec!["fresh-0", "fresh-1"]);
    let ru = read_until_sentinels(
        &bootstrap,
        &topic,
        2,
        &token,
        "read_uncommitted",
        READ_TIMEOUT,
    );
    assert!(
        ru.iter().any(|r| r.value == "zombie-0"),
        "the zombie's flushed record is in the log (aborted): {ru:?}"
    );
}

/// Offsets sent to an aborted transaction are not committed; sent to a
/// committed one they are.
#[test]
fn offsets_sent_to_aborted_transaction_are_not_committed() {
    let broker = TestBroker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique("txn-offsets");
    let out = unique("txn-offsets-out");
    let group = unique("txn-offsets-group");
    clients::create_topics(&broker, &[(topic.as_str(), 2, &[]), (out.as_str(), 1, &[])]);
    let plain = groups::plain_producer(&bootstrap, &[]);
    for p in 0..2 {
        let values: Vec<String> = (0..10).map(|i| format!("o-{p}-{i}")).collect();
        groups::produce_values(&plain, &topic, p, &values);
    }
    let (consumer, events) = group_consumer(&bootstrap, &group, &[("enable.auto.commit", "false")]);
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while n < 20 {
        assert!(
            Instant::now() < deadline,
            "consumed {n} of 20 (rebalances {:?})",
            events.lock().expect("events")
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(_)) => n += 1,
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    let txn_id = unique("offsets");
    let producer = txn_producer(&bootstrap, &txn_id, &[]);
    init_txn(&producer, &txn_id);
    let tpl = |a: i64, b: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(a))
            .expect("offset");
        tpl.add_partition_offset(&topic, 1, Offset::Offset(b))
            .expect("offset");
        tpl
    };
    let metadata = consumer.group_metadata().expect("group metadata");
    producer.begin_transaction().expect("begin");
    enqueue(&producer, &out, 0, None, "aborted");
    producer
        .send_offsets_to_transaction(&tpl(7, 8), &metadata, T30)
        .expect("send offsets");
    producer.abort_transaction(T30).expect("abort");
    assert_eq!(
        committed_offsets(&bootstrap, &group, &topic, 2),
        vec![None, None],
        "offsets of an aborted transaction"
    );
    producer.begin_transaction().expect("begin");
    enqueue(&producer, &out, 0, None, "committed");
    producer
        .send_offsets_to_transaction(&tpl(4, 10), &metadata, T30)
        .expect("send offsets");
    producer.commit_transaction(T30).expect("commit");
    assert_eq!(
        committed_offsets(&bootstrap, &group, &topic, 2),
        vec![Some(4), Some(10)],
        "offsets of a committed transaction"
    );
    let token = append_sentinels(&bootstrap, &out, 1);
    let rc = read_until_sentinels(&bootstrap, &out, 1, &token, "read_committed", READ_TIMEOUT);
    assert_eq!(
        rc.iter().map(|r| r.value.as_str()).collect::<Vec<_>>(),
        vec!["committed"]
    );
}

/// A transaction left open longer than its `transaction.timeout.ms` is
/// aborted by the coordinator: read_committed readers move on, and the
/// producer can no longer commit it.
#[test]
fn open_transaction_is_aborted_after_its_timeout() {
    let broker = TestBroker::start(&[(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "1000",
    )]);
    let bootstrap = broker.bootstrap();
    let topic = unique("txn-timeout");
    clients::create_topics(&broker, &[(topic.as_str(), 1, &[])]);
    let txn_id = unique("timeout");
    let producer = txn_producer(&bootstrap, &txn_id, &[("transaction.timeout.ms", "5000")]);
    init_txn(&producer, &txn_id);
    producer.begin_transaction().expect("begin");
    enqueue(&producer, &topic, 0, None, "timed-out");
    producer.flush(T30).expect("flush");
    let started = Instant::now();
    let token = append_sentinels(&bootstrap, &topic, 1);
    let rc = read_until_sentinels(
        &bootstrap,
        &topic,
        1,
        &token,
        "read_committed",
        READ_TIMEOUT,
    );
    println!(
        "LSO moved past the open transaction after {:?}",
        started.elapsed()
    );
    assert!(rc.is_empty(), "read_committed saw {rc:?}");
    let err = producer
        .commit_transaction(T30)
        .expect_err("committing a transaction the coordinator aborted must fail");
    println!("commit after the timeout: {err}");
}
