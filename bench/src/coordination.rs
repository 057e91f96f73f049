//! Group and transaction figures: how long a new consumer group of 1 and of
//! 10 members takes to become stable (every member assigned), how long a
//! synchronous offset commit takes, and transactional produce throughput
//! (1000 records per transaction) next to a plain idempotent producer.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Serialize;

use crate::client::{self, Percentiles};

/// Results of the coordination scenarios.
#[derive(Debug, Clone, Serialize)]
pub struct CoordinationReport {
    /// `(members, seconds from the first subscribe to every member assigned)`.
    pub group_stable_seconds: Vec<(usize, f64)>,
    /// Synchronous commit latency of a group member, milliseconds.
    pub commit_latency_ms: Percentiles,
    /// Commits measured.
    pub commits: usize,
    /// Value size of the produce runs.
    pub value_size: usize,
    /// Records per transaction.
    pub records_per_transaction: usize,
    /// Transactional producer: records per second (committed).
    pub transactional_records_per_s: f64,
    /// Transactions committed.
    pub transactions: u64,
    /// Idempotent (non-transactional) producer: records per second.
    pub idempotent_records_per_s: f64,
}

fn config(bootstrap: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("client.id", "millrace-bench");
    cfg
}

/// Runs every coordination measurement against `bootstrap`.
pub fn run(bootstrap: &str, tag: u32, records: u64, limit: Duration) -> Result<CoordinationReport> {
    let mut group_stable_seconds = Vec::new();
    for members in [1usize, 10] {
        let topic = format!("bench-g{members}-{tag}");
        client::create_topic(bootstrap, &topic, 10)?;
        let group = format!("bench-group-{members}-{tag}");
        let (seconds, consumers) = time_to_stable(bootstrap, &topic, &group, members)?;
        eprintln!("group of {members}: stable after {seconds:.2} s");
        group_stable_seconds.push((members, seconds));
        drop(consumers);
    }

    let topic = format!("bench-commit-{tag}");
    client::create_topic(bootstrap, &topic, 1)?;
    let (_, mut consumers) = time_to_stable(bootstrap, &topic, &format!("bench-commit-{tag}"), 1)?;
    let member = consumers.pop().context("no consumer")?;
    let commits = 2000;
    let mut latencies = Vec::with_capacity(commits);
    for i in 0..commits {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(i as i64 + 1))?;
        let start = Instant::now();
        member.commit(&tpl, CommitMode::Sync)?;
        latencies.push(start.elapsed().as_micros() as u32);
        let _ = member.poll(Duration::ZERO);
    }
    let commit_latency_ms = client::percentiles(latencies);
    eprintln!(
        "commit: p50 {:.2} ms, p99 {:.2} ms over {commits} synchronous commits",
        commit_latency_ms.p50, commit_latency_ms.p99
    );
    drop(member);

    let value_size = 100;
    let per_txn = 1000;
    let topic = format!("bench-txn-{tag}");
    client::create_topic(bootstrap, &topic, 1)?;
    let (transactions, txn_rate) =
        transactional(bootstrap, &topic, value_size, per_txn, records, limit)?;
    eprintln!("transactional: {txn_rate:.0} rec/s ({transactions} transactions of {per_txn})");
    let topic = format!("bench-idem-{tag}");
    client::create_topic(bootstrap, &topic, 1)?;
    let idem_rate = idempotent(bootstrap, &topic, value_size, records, limit)?;
    eprintln!("idempotent: {idem_rate:.0} rec/s");

    Ok(CoordinationReport {
        group_stable_seconds,
        commit_latency_ms,
        commits,
        value_size,
        records_per_transaction: per_txn,
        transactional_records_per_s: txn_rate,
        transactions,
        idempotent_records_per_s: idem_rate,
    })
}

/// Subscribes `members` consumers to `topic` in a new group and polls them
/// until every one has partitions; returns the time that took.
fn time_to_stable(
    bootstrap: &str,
    topic: &str,
    group: &str,
    members: usize,
) -> Result<(f64, Vec<BaseConsumer>)> {
    let start = Instant::now();
    let mut consumers = Vec::with_capacity(members);
    for _ in 0..members {
        let consumer: BaseConsumer = config(bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "30000")
            .set("partition.assignment.strategy", "range")
            .create()
            .context("create group consumer")?;
        consumer.subscribe(&[topic])?;
        consumers.push(consumer);
    }
    let deadline = start + Duration::from_secs(120);
    loop {
        for c in &consumers {
            let _ = c.poll(Duration::from_millis(5));
        }
        let assigned = consumers
            .iter()
            .all(|c| c.assignment().map(|a| a.count() > 0).unwrap_or(false));
        if assigned {
            return Ok((start.elapsed().as_secs_f64(), consumers));
        }
        if Instant::now() > deadline {
            bail!("group {group} of {members} not stable after 120 s");
        }
    }
}

fn send_all(producer: &BaseProducer, topic: &str, value: &[u8], count: usize) -> Result<()> {
    for _ in 0..count {
        let mut record = BaseRecord::<(), [u8]>::to(topic).payload(value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

fn transactional(
    bootstrap: &str,
    topic: &str,
    value_size: usize,
    per_txn: usize,
    records: u64,
    limit: Duration,
) -> Result<(u64, f64)> {
    let producer: BaseProducer = config(bootstrap)
        .set("transactional.id", format!("bench-txn-{topic}"))
        .set("linger.ms", "5")
        .create()
        .context("create transactional producer")?;
    producer.init_transactions(Duration::from_secs(30))?;
    let value = vec![0x5au8; value_size];
    let start = Instant::now();
    let mut sent = 0u64;
    let mut transactions = 0u64;
    while sent < records && start.elapsed() < limit {
        producer.begin_transaction()?;
        send_all(&producer, topic, &value, per_txn)?;
        // rdkafka's commit_transaction flushes by polling in steps of up to
        // 100 ms; serving delivery reports here first keeps that client
        // artifact out of the figure.
        while producer.in_flight_count() > 0 && start.elapsed() < limit * 2 {
            producer.poll(Duration::from_millis(1));
        }
        producer.commit_transaction(Duration::from_secs(60))?;
        sent += per_txn as u64;
        transactions += 1;
    }
    Ok((transactions, sent as f64 / start.elapsed().as_secs_f64()))
}

fn idempotent(
    bootstrap: &str,
    topic: &str,
    value_size: usize,
    records: u64,
    limit: Duration,
) -> Result<f64> {
    let producer: BaseProducer = config(bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .context("create idempotent producer")?;
    let value = vec![0x5au8; value_size];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < records && start.elapsed() < limit {
        send_all(&producer, topic, &value, 1000)?;
        sent += 1000;
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(sent as f64 / start.elapsed().as_secs_f64())
}
