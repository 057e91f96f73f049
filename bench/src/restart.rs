//! Restart time: fill a log dir, then crash (SIGKILL) and restart, then
//! stop cleanly (SIGTERM) and restart, timing how long the broker takes to
//! listen, to answer Metadata and to serve the first Fetch.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use crate::broker::{dir_size, Broker};
use crate::client::{self, ClientSettings, Pace, ProduceResult};

/// One restart measurement.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestartResult {
    /// `kill9` or `clean`.
    pub kind: &'static str,
    /// Bytes in the log dir before the restart.
    pub data_bytes: u64,
    /// Records in the topic (sum of high watermarks) before the stop.
    pub records_before: i64,
    /// Records in the topic after the restart.
    pub records_after: i64,
    /// SIGTERM to exit, in milliseconds (clean only).
    pub shutdown_ms: Option<f64>,
    /// Spawn to accepting TCP connections, in milliseconds.
    pub listen_ms: f64,
    /// Spawn to a Metadata response with leaders for every partition.
    pub metadata_ms: f64,
    /// Spawn to the first record fetched (the last record of the log).
    pub first_fetch_ms: f64,
}

/// The fill phase and the two restarts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestartReport {
    /// What filling the log dir did.
    pub fill: ProduceResult,
    /// Value size used to fill.
    pub value_size: usize,
    /// Partitions of the filled topic.
    pub partitions: i32,
    /// The restarts, in the order run.
    pub restarts: Vec<RestartResult>,
}

const TOPIC: &str = "bench-restart";

/// Runs the whole restart scenario on `broker` (which it stops and starts).
pub fn run(
    broker: &mut Broker,
    settings: &ClientSettings,
    bytes: u64,
    value_size: usize,
    partitions: i32,
    fill_limit: Duration,
) -> Result<RestartReport> {
    let bootstrap = broker.bootstrap();
    client::create_topic(&bootstrap, TOPIC, partitions)?;
    let records = bytes.div_ceil(value_size as u64);
    eprintln!(
        "restart: filling {} MiB ({records} records of {value_size} B, acks=1)...",
        bytes >> 20
    );
    let fill = client::produce(
        &bootstrap,
        settings,
        "1",
        TOPIC,
        value_size,
        records,
        fill_limit,
        Pace::Flat,
    )?;
    eprintln!(
        "restart: filled {} records in {:.1} s",
        fill.delivered, fill.seconds
    );
    let mut restarts = Vec::new();

    // Crash first: the tail since the last recovery-point checkpoint is
    // what a real crash leaves behind, so recovery has real work to do.
    let before = high_watermarks(&bootstrap, settings, partitions)?;
    let data_bytes = dir_size(&broker.log_dir());
    broker.kill9()?;
    let mut r = measure(broker, settings, partitions)?;
    r.kind = "kill9";
    r.data_bytes = data_bytes;
    r.records_before = before.iter().sum();
    eprintln!(
        "restart: after kill -9: listening {:.0} ms, metadata {:.0} ms, first fetch {:.0} ms",
        r.listen_ms, r.metadata_ms, r.first_fetch_ms
    );
    restarts.push(r);

    let before = high_watermarks(&bootstrap, settings, partitions)?;
    let data_bytes = dir_size(&broker.log_dir());
    let shutdown = broker.terminate(Duration::from_secs(300))?;
    let mut r = measure(broker, settings, partitions)?;
    r.kind = "clean";
    r.data_bytes = data_bytes;
    r.records_before = before.iter().sum();
    r.shutdown_ms = Some(shutdown.as_secs_f64() * 1e3);
    eprintln!(
        "restart: after SIGTERM ({:.0} ms to stop): listening {:.0} ms, metadata {:.0} ms, first fetch {:.0} ms",
        shutdown.as_secs_f64() * 1e3,
        r.listen_ms,
        r.metadata_ms,
        r.first_fetch_ms
    );
    restarts.push(r);

    Ok(RestartReport {
        fill,
        value_size,
        partitions,
        restarts,
    })
}

fn high_watermarks(
    bootstrap: &str,
    settings: &ClientSettings,
    partitions: i32,
) -> Result<Vec<i64>> {
    let consumer = client::consumer(bootstrap, settings)?;
    watermarks(&consumer, partitions)
}

fn watermarks(consumer: &client::BenchConsumer, partitions: i32) -> Result<Vec<i64>> {
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(TOPIC, p, Duration::from_secs(30))
                .map(|(_, high)| high)
                .with_context(|| format!("watermarks of {TOPIC}-{p}"))
        })
        .collect()
}

fn measure(
    broker: &mut Broker,
    settings: &ClientSettings,
    partitions: i32,
) -> Result<RestartResult> {
    let spawned = broker.spawn()?;
    broker.wait_listening(Duration::from_secs(600))?;
    let listen = spawned.elapsed();

    let bootstrap = broker.bootstrap();
    let consumer = client::consumer(&bootstrap, settings)?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(md) = consumer.fetch_metadata(Some(TOPIC), Duration::from_millis(500)) {
            let ready = md.topics().iter().any(|t| {
                t.name() == TOPIC
                    && t.error().is_none()
                    && t.partitions().len() == partitions as usize
                    && t.partitions()
                        .iter()
                        .all(|p| p.leader() >= 0 && p.error().is_none())
            });
            if ready {
                break;
            }
        }
        broker.check_alive()?;
        if Instant::now() > deadline {
            bail!("no metadata for {TOPIC} 300 s after restart");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let metadata = spawned.elapsed();

    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(TOPIC, p, Offset::OffsetTail(1))
            .context("build assignment")?;
    }
    consumer.assign(&tpl).context("assign")?;
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => break,
            Some(Err(e)) => eprintln!("restart: fetch error (retrying): {e}"),
            None => {}
        }
        broker.check_alive()?;
        if Instant::now() > deadline {
            bail!("no record fetched 300 s after restart");
        }
    }
    let first_fetch = spawned.elapsed();
    let after = watermarks(&consumer, partitions)?;

    Ok(RestartResult {
        kind: "",
        data_bytes: 0,
        records_before: 0,
        records_after: after.iter().sum(),
        shutdown_ms: None,
        listen_ms: listen.as_secs_f64() * 1e3,
        metadata_ms: metadata.as_secs_f64() * 1e3,
        first_fetch_ms: first_fetch.as_secs_f64() * 1e3,
    })
}
