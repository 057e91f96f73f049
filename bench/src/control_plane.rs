//! `millrace-bench control-plane`: the MSK control plane's figures, measured
//! from outside like any AWS SDK user would:
//!
//! - time from CreateCluster to ACTIVE, for each `--brokers` count
//!   (3 and 6 by default);
//! - a rolling configuration update (UpdateClusterConfiguration) of the
//!   3-broker cluster while a producer writes with acks=all at a fixed
//!   rate: how long the operation takes from the request to
//!   UPDATE_COMPLETE, and what the producer saw meanwhile (records
//!   acknowledged, delivery failures, worst delivery latency, and whether
//!   every acknowledged record reads back).
//!
//! It starts `millrace up --no-dev-cluster` on a free port with a throw-away
//! data directory, reads the printed `export` lines, and sends SigV4-signed
//! REST requests (signed by `aws-sigv4`, the AWS SDK's signer) over plain
//! HTTP/1.1. Prints figures; asserts nothing.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use serde_json::{json, Value};

/// Runs the control-plane benchmark when the first argument is
/// `control-plane`; `None` leaves the command line to the load generator.
pub fn main_if_asked() -> Option<std::process::ExitCode> {
    if std::env::args().nth(1).as_deref() != Some("control-plane") {
        return None;
    }
    let args = Args::parse_from(std::env::args().skip(1));
    Some(match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("millrace-bench control-plane: {e:#}");
            std::process::ExitCode::FAILURE
        }
    })
}

/// The MSK control plane's figures: time to ACTIVE, rolling update time.
#[derive(Debug, Parser)]
#[command(name = "millrace-bench control-plane")]
struct Args {
    /// Broker counts to time CreateCluster → ACTIVE for (multiples of 3:
    /// the clusters span three zones).
    #[arg(long, value_delimiter = ',', default_values_t = [3i64, 6])]
    brokers: Vec<i64>,
    /// Records per second the producer writes during the rolling update.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Value size of those records, bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Skip the rolling configuration update.
    #[arg(long)]
    no_rolling_update: bool,
    /// The millrace binary [default: MILLRACE_BIN, else next to the bench].
    #[arg(long, value_name = "FILE")]
    millrace_bin: Option<PathBuf>,
    /// Where the control plane's throw-away data directory goes
    /// [default: $TMPDIR].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn run(args: &Args) -> Result<()> {
    let bin = crate::broker::find_broker_bin(args.millrace_bin.as_deref())?;
    let parent = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let data = tempfile::Builder::new()
        .prefix("millrace-bench-cp-")
        .tempdir_in(&parent)
        .context("create the data directory")?;
    let mut up = Up::start(&bin, data.path())?;
    let api = up.api.clone();
    eprintln!(
        "control plane at {} (data in {})",
        api.endpoint,
        data.path().display()
    );
    let result = measure(args, &api);
    up.stop();
    let report = result?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn measure(args: &Args, api: &Api) -> Result<Value> {
    let tag = std::process::id();
    let mut creations = Vec::new();
    let mut three = None;
    for &n in &args.brokers {
        let name = format!("bench-{n}-brokers-{tag}");
        let (arn, took) = match create_and_wait(api, &name, n) {
            Ok(created) => created,
            Err(e) => {
                eprintln!("{n} brokers: {e:#}");
                creations.push(json!({"brokers": n, "error": format!("{e:#}")}));
                continue;
            }
        };
        eprintln!(
            "{n} brokers: CreateCluster → ACTIVE in {:.2} s",
            took.as_secs_f64()
        );
        creations.push(json!({"brokers": n, "create_to_active_s": took.as_secs_f64()}));
        if n == 3 && three.is_none() {
            three = Some(arn);
        } else {
            api.call("DELETE", &format!("/v1/clusters/{}", enc(&arn)), None)?;
        }
    }
    let mut report = json!({"create_to_active": creations});
    if !args.no_rolling_update {
        let arn = match three {
            Some(arn) => arn,
            None => create_and_wait(api, &format!("bench-rolling-{tag}"), 3)?.0,
        };
        report["rolling_configuration_update"] = rolling_update(args, api, &arn, tag)?;
        api.call("DELETE", &format!("/v1/clusters/{}", enc(&arn)), None)?;
    }
    Ok(report)
}

/// CreateCluster with `n` brokers over three zones; returns the ARN and
/// the time from sending the request to DescribeCluster answering ACTIVE
/// (polled every 50 ms).
fn create_and_wait(api: &Api, name: &str, n: i64) -> Result<(String, Duration)> {
    let body = json!({
        "clusterName": name,
        "kafkaVersion": "3.7.x.kraft",
        "numberOfBrokerNodes": n,
        "brokerNodeGroupInfo": {
            "instanceType": "kafka.m5.large",
            "clientSubnets": ["subnet-00000000000000001", "subnet-00000000000000002", "subnet-00000000000000003"],
            "storageInfo": {"ebsStorageInfo": {"volumeSize": 100}}
        },
        "encryptionInfo": {"encryptionInTransit": {"clientBroker": "PLAINTEXT", "inCluster": false}}
    });
    let started = Instant::now();
    let created = api.call("POST", "/v1/clusters", Some(&body))?;
    let arn = created["clusterArn"]
        .as_str()
        .ok_or_else(|| anyhow!("CreateCluster answered no clusterArn: {created}"))?
        .to_string();
    loop {
        let info = api.call("GET", &format!("/v1/clusters/{}", enc(&arn)), None)?;
        match info["clusterInfo"]["state"].as_str() {
            Some("ACTIVE") => return Ok((arn, started.elapsed())),
            Some("FAILED") => {
                let why = info["clusterInfo"]["stateInfo"].clone();
                api.call("DELETE", &format!("/v1/clusters/{}", enc(&arn)), None)?;
                bail!("{name} FAILED: {why}")
            }
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("{name} not ACTIVE after 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// UpdateClusterConfiguration of the cluster at `arn` with a producer
/// running; the figures of the operation and of the producer.
fn rolling_update(args: &Args, api: &Api, arn: &str, tag: u32) -> Result<Value> {
    let props = "auto.create.topics.enable=true\nlog.retention.hours=24\n";
    let config = api.call(
        "POST",
        "/v1/configurations",
        Some(&json!({
            "name": format!("bench-config-{tag}"),
            "kafkaVersions": ["3.7.x.kraft"],
            "serverProperties": base64(props.as_bytes()),
        })),
    )?;
    let config_arn = config["arn"]
        .as_str()
        .ok_or_else(|| anyhow!("CreateConfiguration answered no arn: {config}"))?
        .to_string();
    let bootstrap = api.call(
        "GET",
        &format!("/v1/clusters/{}/bootstrap-brokers", enc(arn)),
        None,
    )?;
    let mut bootstrap = bootstrap["bootstrapBrokerString"]
        .as_str()
        .ok_or_else(|| anyhow!("no plaintext bootstrap string: {bootstrap}"))?
        .to_string();

    // One Kafka cluster (three brokers in Metadata) gets a three-replica
    // topic; brokers that don't share a metadata quorum yet each are their
    // own cluster, so the producer then talks to the first one alone.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .context("admin client")?;
    let listed = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .context("Metadata")?
        .brokers()
        .len();
    let replicas = if listed >= 3 {
        3
    } else {
        bootstrap = bootstrap.split(',').next().unwrap_or_default().to_string();
        eprintln!(
            "the brokers don't form one cluster yet (Metadata lists {listed}); producing to {bootstrap} with one replica"
        );
        1
    };
    let topic = format!("bench-rolling-{tag}");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .context("admin client")?;
    let created = futures::executor::block_on(admin.create_topics(
        &[NewTopic::new(&topic, 1, TopicReplication::Fixed(replicas))],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ))
    .context("CreateTopics")?;
    for r in created {
        r.map_err(|(t, e)| anyhow!("CreateTopics {t}: {e}"))?;
    }

    let stats = Arc::new(Deliveries::default());
    let running = Arc::new(AtomicBool::new(true));
    let producer_thread = {
        let (stats, running, bootstrap, topic) = (
            stats.clone(),
            running.clone(),
            bootstrap.clone(),
            topic.clone(),
        );
        let (rate, size) = (args.rate, args.value_size);
        std::thread::spawn(move || produce(&bootstrap, &topic, rate, size, &stats, &running))
    };
    std::thread::sleep(Duration::from_secs(2));

    let info = api.call("GET", &format!("/v1/clusters/{}", enc(arn)), None)?;
    let version = info["clusterInfo"]["currentVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let acked_before = stats.acked.load(Ordering::Relaxed);
    let started = Instant::now();
    let op = api.call(
        "PUT",
        &format!("/v1/clusters/{}/configuration", enc(arn)),
        Some(&json!({
            "configurationInfo": {"arn": config_arn, "revision": 1},
            "currentVersion": version,
        })),
    )?;
    let op_arn = op["clusterOperationArn"]
        .as_str()
        .ok_or_else(|| anyhow!("no clusterOperationArn: {op}"))?
        .to_string();
    let state = loop {
        let op = api.call("GET", &format!("/v1/operations/{}", enc(&op_arn)), None)?;
        let state = op["clusterOperationInfo"]["operationState"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if state == "UPDATE_COMPLETE" || state == "UPDATE_FAILED" {
            break state;
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!("the rolling update did not end in 15 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = started.elapsed();
    let acked_during = stats.acked.load(Ordering::Relaxed) - acked_before;
    std::thread::sleep(Duration::from_secs(2));
    running.store(false, Ordering::Relaxed);
    let sent = producer_thread
        .join()
        .map_err(|_| anyhow!("the producer thread panicked"))??;
    let acked = stats.acked.load(Ordering::Relaxed);
    let failed = stats.failed.load(Ordering::Relaxed);
    let read_back = count_records(&bootstrap, &topic, acked)?;
    eprintln!(
        "rolling configuration update of 3 brokers: {state} in {:.2} s; producer: {sent} sent, {acked} acked ({acked_during} during the update), {failed} failed, worst delivery {} ms; {read_back} read back",
        took.as_secs_f64(),
        stats.worst_us.load(Ordering::Relaxed) / 1000
    );
    Ok(json!({
        "brokers": 3,
        "operation_state": state,
        "request_to_end_s": took.as_secs_f64(),
        "producer": {
            "rate_per_s": args.rate,
            "value_size": args.value_size,
            "replicas": replicas,
            "acks": "all",
            "sent": sent,
            "acked": acked,
            "acked_during_update": acked_during,
            "failed": failed,
            "first_error": stats.first_error.lock().map(|e| e.clone()).unwrap_or_default(),
            "worst_delivery_ms": stats.worst_us.load(Ordering::Relaxed) as f64 / 1000.0,
            "read_back": read_back,
        }
    }))
}

/// What the producer's delivery reports said.
#[derive(Default)]
struct Deliveries {
    acked: AtomicU64,
    failed: AtomicU64,
    worst_us: AtomicU64,
    first_error: Mutex<Option<String>>,
}

struct Counting(Arc<Deliveries>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: Box<Instant>) {
        let us = sent_at.elapsed().as_micros() as u64;
        self.0.worst_us.fetch_max(us, Ordering::Relaxed);
        match result {
            Ok(_) => {
                self.0.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.0.first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// Produces `rate` records a second with acks=all (idempotent, so a retry
/// never duplicates) until `running` is cleared, then flushes; returns how
/// many were sent.
fn produce(
    bootstrap: &str,
    topic: &str,
    rate: u64,
    value_size: usize,
    stats: &Arc<Deliveries>,
    running: &AtomicBool,
) -> Result<u64> {
    let producer: ThreadedProducer<Counting> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "300000")
        .create_with_context(Counting(stats.clone()))
        .context("producer")?;
    let value = vec![b'x'; value_size];
    let started = Instant::now();
    let mut sent = 0u64;
    while running.load(Ordering::Relaxed) {
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            let record: BaseRecord<'_, [u8], [u8], Box<Instant>> =
                BaseRecord::with_opaque_to(topic, Box::new(Instant::now()))
                    .payload(value.as_slice())
                    .partition(0);
            match producer.send(record) {
                Ok(()) => sent += 1,
                Err((e, _)) => {
                    if let Ok(mut first) = stats.first_error.lock() {
                        first.get_or_insert_with(|| format!("enqueue: {e}"));
                    }
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    producer
        .flush(Duration::from_secs(300))
        .context("flush the producer")?;
    Ok(sent)
}

/// Reads the topic from the beginning: how many records it holds (stops
/// once `expected` are read or nothing more comes for 5 s).
fn count_records(bootstrap: &str, topic: &str, expected: u64) -> Result<u64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "millrace-bench-control-plane")
        .set("enable.auto.commit", "false")
        .create()
        .context("consumer")?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .context("assignment")?;
    consumer.assign(&tpl).context("assign")?;
    let mut read = 0u64;
    let mut last = Instant::now();
    while read < expected && last.elapsed() < Duration::from_secs(5) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            if m.payload().is_some() {
                read += 1;
                last = Instant::now();
            }
        }
    }
    Ok(read)
}

/// A `millrace up --no-dev-cluster` child process.
struct Up {
    child: Child,
    api: Api,
}

impl Up {
    fn start(bin: &std::path::Path, data_dir: &std::path::Path) -> Result<Up> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("a free port")?
            .port();
        let log = std::fs::File::create(data_dir.join("up.log")).context("up.log")?;
        let mut child = Command::new(bin)
            .args([
                "up",
                "--no-dev-cluster",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("run {} up", bin.display()))?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut exports = HashMap::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.context("read millrace up's output")?;
            if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
                exports.insert(k.to_string(), v.to_string());
            }
            if exports.contains_key("AWS_SECRET_ACCESS_KEY") {
                break;
            }
        }
        let get = |k: &str| {
            exports.get(k).cloned().ok_or_else(|| {
                anyhow!(
                    "millrace up printed no {k} (see {}/up.log)",
                    data_dir.display()
                )
            })
        };
        let api = Api {
            endpoint: get("AWS_ENDPOINT_URL")?,
            region: get("AWS_REGION")?,
            key: get("AWS_ACCESS_KEY_ID")?,
            secret: get("AWS_SECRET_ACCESS_KEY")?,
        };
        Ok(Up { child, api })
    }

    /// SIGTERM (brokers stop cleanly), then wait.
    fn stop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.stop();
        }
    }
}

/// The REST API of one control plane, with its root key.
#[derive(Clone)]
struct Api {
    endpoint: String,
    region: String,
    key: String,
    secret: String,
}

impl Api {
    /// One SigV4-signed request; the JSON answer, or an error naming the
    /// AWS error code.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        use aws_sigv4::sign::v4::SigningParams;

        let host = self
            .endpoint
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("endpoint {} is not http://", self.endpoint))?
            .trim_end_matches('/')
            .to_string();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let url = format!("http://{host}{path}");
        let mut headers = vec![
            ("host".to_string(), host.clone()),
            ("content-type".to_string(), "application/json".to_string()),
        ];
        let identity = aws_credential_types::Credentials::new(
            &self.key,
            &self.secret,
            None,
            None,
            "millrace-bench",
        )
        .into();
        let params = SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("kafka")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .context("signing parameters")?
            .into();
        let signable = SignableRequest::new(
            method,
            &url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body.as_bytes()),
        )
        .context("signable request")?;
        let (instructions, _) = sign(signable, &params).context("sign")?.into_parts();
        for (name, value) in instructions.headers() {
            headers.push((name.to_string(), value.to_string()));
        }

        let mut stream = TcpStream::connect(&host).with_context(|| format!("connect {host}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut request = format!("{method} {path} HTTP/1.1\r\n");
        for (k, v) in &headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ));
        stream.write_all(request.as_bytes())?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let text = String::from_utf8_lossy(&response);
        let (head, payload) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| anyhow!("{method} {path}: no HTTP response"))?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("{method} {path}: bad status line"))?;
        let json: Value = if payload.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(payload)
                .with_context(|| format!("{method} {path}: not JSON: {payload}"))?
        };
        if !(200..300).contains(&status) {
            bail!("{method} {path}: HTTP {status}: {json}");
        }
        Ok(json)
    }
}

/// An ARN as one path segment, as the SDKs encode it.
fn enc(arn: &str) -> String {
    let mut out = String::new();
    for b in arn.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Standard base64 (the `serverProperties` blob).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
