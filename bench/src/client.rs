//! librdkafka clients: topic admin, the producer and consumer loops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

/// Client-side settings shared by every run (printed with the results).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClientSettings {
    /// `linger.ms`.
    pub linger_ms: u64,
    /// `batch.size` (bytes per partition batch).
    pub batch_size: u64,
    /// `batch.num.messages`.
    pub batch_num_messages: u64,
    /// `queue.buffering.max.messages`.
    pub queue_max_messages: u64,
    /// `queue.buffering.max.kbytes`.
    pub queue_max_kbytes: u64,
    /// `compression.type`.
    pub compression: String,
    /// `fetch.max.bytes`.
    pub fetch_max_bytes: u64,
    /// `max.partition.fetch.bytes`.
    pub max_partition_fetch_bytes: u64,
    /// `queued.max.messages.kbytes`.
    pub queued_max_kbytes: u64,
    /// `queued.min.messages`.
    pub queued_min_messages: u64,
    /// `fetch.wait.max.ms`.
    pub fetch_wait_max_ms: u64,
}

impl ClientSettings {
    /// Producer properties (besides bootstrap and acks).
    pub fn producer_props(&self) -> Vec<(&'static str, String)> {
        vec![
            ("enable.idempotence", "false".into()),
            ("linger.ms", self.linger_ms.to_string()),
            ("batch.size", self.batch_size.to_string()),
            ("batch.num.messages", self.batch_num_messages.to_string()),
            (
                "queue.buffering.max.messages",
                self.queue_max_messages.to_string(),
            ),
            (
                "queue.buffering.max.kbytes",
                self.queue_max_kbytes.to_string(),
            ),
            ("compression.type", self.compression.clone()),
            ("message.timeout.ms", "120000".into()),
        ]
    }

    /// Consumer properties (besides bootstrap).
    pub fn consumer_props(&self) -> Vec<(&'static str, String)> {
        vec![
            // librdkafka's assign() needs a group id, but with manual
            // assignment and no commits the group is never joined.
            ("group.id", "millrace-bench".into()),
            ("enable.auto.commit", "false".into()),
            ("enable.auto.offset.store", "false".into()),
            ("enable.partition.eof", "false".into()),
            ("auto.offset.reset", "earliest".into()),
            ("fetch.max.bytes", self.fetch_max_bytes.to_string()),
            (
                "max.partition.fetch.bytes",
                self.max_partition_fetch_bytes.to_string(),
            ),
            (
                "receive.message.max.bytes",
                (self.fetch_max_bytes + 1024 * 1024).to_string(),
            ),
            (
                "queued.max.messages.kbytes",
                self.queued_max_kbytes.to_string(),
            ),
            ("queued.min.messages", self.queued_min_messages.to_string()),
            ("fetch.wait.max.ms", self.fetch_wait_max_ms.to_string()),
        ]
    }
}

fn base_config(bootstrap: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("client.id", "millrace-bench");
    // MILLRACE_BENCH_DEBUG=consumer,fetch,... turns on librdkafka's debug
    // contexts, printed to stderr with timestamps.
    match std::env::var("MILLRACE_BENCH_DEBUG") {
        Ok(debug) if !debug.is_empty() => {
            cfg.set("debug", debug)
                .set_log_level(RDKafkaLogLevel::Debug);
        }
        _ => {
            cfg.set_log_level(RDKafkaLogLevel::Warning);
        }
    }
    cfg
}

/// A consumer that prints librdkafka's log lines to stderr.
pub type BenchConsumer = BaseConsumer<LogContext>;

/// Prints librdkafka log lines (warnings, or everything with
/// `MILLRACE_BENCH_DEBUG`) to stderr, with a wall-clock timestamp.
pub struct LogContext;

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        print_log(level, fac, log_message);
    }
}

fn print_log(level: RDKafkaLogLevel, fac: &str, log_message: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    eprintln!(
        "[{}.{:06} librdkafka {level:?} {fac}] {log_message}",
        now.as_secs(),
        now.subsec_micros()
    );
}

impl rdkafka::consumer::ConsumerContext for LogContext {}

/// The replication factor of the topics the bench creates
/// (`--replication-factor`; 1 unless a cluster is measured).
pub static REPLICATION_FACTOR: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1);

/// Creates `topic` (with [`REPLICATION_FACTOR`] replicas) and waits until
/// every partition has a leader.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = base_config(bootstrap)
        .create()
        .context("create admin client")?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let replicas = REPLICATION_FACTOR.load(std::sync::atomic::Ordering::Relaxed);
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replicas));
    let results = futures::executor::block_on(admin.create_topics(&[new], &opts))
        .with_context(|| format!("CreateTopics {topic}"))?;
    for r in results {
        r.map_err(|(t, e)| anyhow!("CreateTopics {t}: {e}"))?;
    }
    wait_for_leaders(bootstrap, topic, partitions, Duration::from_secs(30))
}

/// Deletes `topic` (best effort: the data dir is thrown away anyway).
pub fn delete_topic(bootstrap: &str, topic: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = base_config(bootstrap)
        .create()
        .context("create admin client")?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures::executor::block_on(admin.delete_topics(&[topic], &opts))
        .with_context(|| format!("DeleteTopics {topic}"))?;
    for r in results {
        r.map_err(|(t, e)| anyhow!("DeleteTopics {t}: {e}"))?;
    }
    Ok(())
}

fn wait_for_leaders(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<()> {
    let consumer: BenchConsumer = base_config(bootstrap)
        .create_with_context(LogContext)
        .context("create metadata client")?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            let ready = md.topics().iter().any(|t| {
                t.name() == topic
                    && t.error().is_none()
                    && t.partitions().len() == partitions as usize
                    && t.partitions()
                        .iter()
                        .all(|p| p.leader() >= 0 && p.error().is_none())
            });
            if ready {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("topic {topic} has no leaders after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Collects delivery reports: per-record latency and counts.
struct DeliveryStats {
    /// Reference for the nanosecond timestamps carried as delivery opaques.
    origin: Instant,
    latencies_us: Mutex<Vec<u32>>,
    delivered: AtomicU64,
    failed: AtomicU64,
    /// Nanoseconds after `origin` of the latest delivery report.
    last_ns: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for DeliveryStats {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        print_log(level, fac, log_message);
    }
}

impl ProducerContext for DeliveryStats {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let now_ns = self.origin.elapsed().as_nanos() as u64;
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                let us = now_ns.saturating_sub(sent_ns as u64) / 1000;
                if let Ok(mut v) = self.latencies_us.lock() {
                    v.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
        self.last_ns.store(now_ns, Ordering::Relaxed);
    }
}

/// What one produce phase did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProduceResult {
    /// Records handed to librdkafka.
    pub sent: u64,
    /// Records acknowledged by the broker.
    pub delivered: u64,
    /// Records that failed (timeout, broker error).
    pub failed: u64,
    /// First delivery error, if any.
    pub first_error: Option<String>,
    /// From the first send to the last delivery report, in seconds.
    pub seconds: f64,
    /// Whether the time limit (not the record count) ended the sending.
    pub hit_time_limit: bool,
    /// Delivery latency percentiles in milliseconds: p50, p99, p99.9, max.
    pub latency_ms: Percentiles,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
}

/// Percentiles of microsecond samples.
pub fn percentiles(mut us: Vec<u32>) -> Percentiles {
    if us.is_empty() {
        return Percentiles::default();
    }
    us.sort_unstable();
    let at = |q: f64| -> f64 {
        let idx = ((us.len() as f64 * q).ceil() as usize).clamp(1, us.len()) - 1;
        f64::from(us[idx]) / 1000.0
    };
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: at(1.0),
    }
}

/// How to pace the sends.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// As fast as librdkafka accepts (polling when its queue is full).
    Flat,
    /// A fixed rate in records per second; latency is measured from each
    /// record's scheduled send time (no coordinated omission).
    Rate(f64),
}

/// Produces up to `records` values of `value_size` bytes to `topic`,
/// for at most `limit`, then waits for every delivery report.
#[allow(clippy::too_many_arguments)]
pub fn produce(
    bootstrap: &str,
    settings: &ClientSettings,
    acks: &str,
    topic: &str,
    value_size: usize,
    records: u64,
    limit: Duration,
    pace: Pace,
) -> Result<ProduceResult> {
    let origin = Instant::now();
    let stats = DeliveryStats {
        origin,
        latencies_us: Mutex::new(Vec::with_capacity(records.min(50_000_000) as usize)),
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        last_ns: AtomicU64::new(0),
        first_error: Mutex::new(None),
    };
    let mut cfg = base_config(bootstrap);
    cfg.set("acks", acks);
    for (k, v) in settings.producer_props() {
        cfg.set(k, v);
    }
    let producer: BaseProducer<DeliveryStats> =
        cfg.create_with_context(stats).context("create producer")?;

    // A pool of pseudo-random (incompressible) values, used round-robin.
    let pool = value_pool(value_size, 64);

    // Connect and fetch metadata before the clock starts.
    producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("producer metadata")?;

    let start = Instant::now();
    let start_ns = start.duration_since(origin).as_nanos() as u64;
    let deadline = start + limit;
    let mut sent: u64 = 0;
    let mut hit_time_limit = false;
    while sent < records {
        let now = Instant::now();
        if now >= deadline {
            hit_time_limit = true;
            break;
        }
        let due = match pace {
            Pace::Flat => records,
            Pace::Rate(rate) => {
                let due = (now.duration_since(start).as_secs_f64() * rate) as u64 + 1;
                if sent >= due {
                    // Ahead of schedule: serve delivery reports meanwhile.
                    producer.poll(Duration::from_micros(200));
                    continue;
                }
                due.min(records)
            }
        };
        // Send a burst (at most 1024 between clock checks).
        let burst_end = due.min(sent + 1024);
        while sent < burst_end {
            let sent_ns = match pace {
                Pace::Flat => origin.elapsed().as_nanos() as u64,
                Pace::Rate(rate) => start_ns + (sent as f64 * 1e9 / rate) as u64,
            };
            let value = &pool[(sent % pool.len() as u64) as usize];
            let record: BaseRecord<'_, [u8], [u8], usize> =
                BaseRecord::with_opaque_to(topic, sent_ns as usize).payload(value.as_slice());
            match producer.send(record) {
                Ok(()) => {
                    sent += 1;
                    if sent % 64 == 0 {
                        producer.poll(Duration::ZERO);
                    }
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e).context("produce"),
            }
        }
    }
    // Wait for the outstanding delivery reports.
    let flush_deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let ctx = producer.context();
        let done = ctx.delivered.load(Ordering::Relaxed) + ctx.failed.load(Ordering::Relaxed);
        if done >= sent {
            break;
        }
        if Instant::now() > flush_deadline {
            bail!("{} records still undelivered after 150 s", sent - done);
        }
        producer.poll(Duration::from_millis(10));
    }
    let ctx = producer.context();
    let last_ns = ctx.last_ns.load(Ordering::Relaxed);
    let seconds = last_ns.saturating_sub(start_ns) as f64 / 1e9;
    let latencies = ctx
        .latencies_us
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    let first_error = ctx.first_error.lock().ok().and_then(|e| e.clone());
    Ok(ProduceResult {
        sent,
        delivered: ctx.delivered.load(Ordering::Relaxed),
        failed: ctx.failed.load(Ordering::Relaxed),
        first_error,
        seconds,
        hit_time_limit,
        latency_ms: percentiles(latencies),
    })
}

fn value_pool(size: usize, count: usize) -> Vec<Vec<u8>> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count)
        .map(|_| {
            (0..size)
                .map(|_| {
                    // xorshift64*
                    state ^= state >> 12;
                    state ^= state << 25;
                    state ^= state >> 27;
                    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
                })
                .collect()
        })
        .collect()
}

/// What one consume phase did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConsumeResult {
    /// Records read.
    pub records: u64,
    /// From assignment to the first record, in milliseconds.
    pub first_record_ms: f64,
    /// Value bytes read.
    pub bytes: u64,
    /// From assignment to the last record, in seconds.
    pub seconds: f64,
    /// Whether the time limit ended the phase before everything was read.
    pub hit_time_limit: bool,
    /// Consumer errors seen (each is retried by librdkafka).
    pub errors: u64,
    /// First consumer error, if any.
    pub first_error: Option<String>,
}

/// Builds a consumer (no group: partitions are assigned by hand).
pub fn consumer(bootstrap: &str, settings: &ClientSettings) -> Result<BenchConsumer> {
    let mut cfg = base_config(bootstrap);
    for (k, v) in settings.consumer_props() {
        cfg.set(k, v);
    }
    cfg.create_with_context(LogContext)
        .context("create consumer")
}

/// Reads all partitions of `topic` from the beginning until `expected`
/// records arrived or `limit` passed.
pub fn consume(
    bootstrap: &str,
    settings: &ClientSettings,
    topic: &str,
    partitions: i32,
    expected: u64,
    limit: Duration,
) -> Result<ConsumeResult> {
    let consumer = consumer(bootstrap, settings)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .context("build assignment")?;
    }
    // Learn the leaders before the clock starts: assigning a partition
    // whose leader librdkafka does not know yet defers its offset lookup
    // by a 500 ms retry timer, which is client start-up, not broker speed.
    consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("consumer metadata")?;
    let start = Instant::now();
    consumer.assign(&tpl).context("assign")?;
    let deadline = start + limit;
    let mut result = ConsumeResult::default();
    while result.records < expected {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                if result.records == 0 {
                    result.first_record_ms = start.elapsed().as_secs_f64() * 1e3;
                }
                result.records += 1;
                result.bytes += m.payload_len() as u64;
                if result.records % 1024 == 0 && Instant::now() > deadline {
                    break;
                }
            }
            Some(Err(e)) => {
                result.errors += 1;
                result.first_error.get_or_insert_with(|| e.to_string());
                if Instant::now() > deadline {
                    break;
                }
            }
            None => {
                if Instant::now() > deadline {
                    break;
                }
            }
        }
    }
    result.seconds = start.elapsed().as_secs_f64();
    result.hit_time_limit = result.records < expected;
    Ok(result)
}
