//! Every update operation of a cluster, one after the other, while a real
//! Kafka producer (rdkafka, acks=all, idempotent) writes to a three-replica
//! topic with min.insync.replicas=2: UpdateClusterConfiguration,
//! UpdateBrokerType, UpdateClusterKafkaVersion, UpdateBrokerStorage,
//! UpdateMonitoring, UpdateSecurity, UpdateBrokerCount (3 → 6) and
//! RebootBroker, each through the AWS CLI with the cluster's current version
//! and waited to its final state. Then the topic is read back: every
//! acknowledged record is at its acknowledged offset, nothing is duplicated
//! and the producer saw no delivery failure.

mod support;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use serde_json::Value;
use support::{alive, TestControlPlane};

/// Bound of one operation, and of the cluster getting back to ACTIVE.
const WAIT: Duration = Duration::from_secs(180);
/// Bound of the whole test.
const HARD_CAP: Duration = Duration::from_secs(600);
const TOPIC: &str = "under-load";
const PARTITIONS: i32 = 3;
/// Records a second the producer is asked to write.
const RATE: u64 = 100;

/// What the producer's delivery reports said.
#[derive(Default)]
struct Deliveries {
    /// (partition, offset, value) of every acknowledged record.
    acked: Mutex<Vec<(i32, i64, u64)>>,
    /// (value, error) of every record whose delivery failed.
    failed: Mutex<Vec<(u64, String)>>,
}

impl Deliveries {
    fn acked_count(&self) -> usize {
        self.acked.lock().map(|a| a.len()).unwrap_or(0)
    }
}

struct Recorder(Arc<Deliveries>);

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, value: Box<u64>) {
        match result {
            Ok(m) => {
                if let Ok(mut acked) = self.0.acked.lock() {
                    acked.push((m.partition(), m.offset(), *value));
                }
            }
            Err((e, _)) => {
                if let Ok(mut failed) = self.0.failed.lock() {
                    failed.push((*value, e.to_string()));
                }
            }
        }
    }
}

/// Clears the producer's run flag when dropped, so that a failing test
/// stops the producer too.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Writes records `0, 1, 2, ...` (the value is the number, in decimal) at
/// `RATE` a second, round robin over the partitions, until `running` is
/// cleared; then flushes. Returns how many were handed to the producer.
fn produce(bootstrap: &str, deliveries: Arc<Deliveries>, running: &AtomicBool) -> u64 {
    let producer: ThreadedProducer<Recorder> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "300000")
        .create_with_context(Recorder(deliveries))
        .expect("producer");
    let started = Instant::now();
    let mut sent = 0u64;
    while running.load(Ordering::Relaxed) {
        let due = (started.elapsed().as_secs_f64() * RATE as f64) as u64;
        while sent < due {
            let value = sent.to_string();
            let record: BaseRecord<'_, [u8], [u8], Box<u64>> =
                BaseRecord::with_opaque_to(TOPIC, Box::new(sent))
                    .payload(value.as_bytes())
                    .partition((sent % PARTITIONS as u64) as i32);
            match producer.send(record) {
                Ok(()) => sent += 1,
                // Queue full: try again on the next round.
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Bounded: a record still unacknowledged after this is neither acked
    // nor failed, and the read-back below does not expect it.
    let _ = producer.flush(Duration::from_secs(120));
    sent
}

/// Every record of the topic: (partition, offset) → value, read from the
/// beginning up to each partition's high watermark.
fn read_back(bootstrap: &str) -> HashMap<(i32, i64), u64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "updates-under-load-check")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let mut high = HashMap::new();
    for p in 0..PARTITIONS {
        let (_, hw) = consumer
            .fetch_watermarks(TOPIC, p, Duration::from_secs(30))
            .expect("watermarks");
        high.insert(p, hw);
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .expect("assignment");
    }
    consumer.assign(&tpl).expect("assign");
    let mut next: HashMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let mut records = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while (0..PARTITIONS).any(|p| next[&p] < high[&p]) {
        assert!(
            Instant::now() < deadline,
            "read back only up to {next:?} of {high:?} within 120 s"
        );
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let value: u64 = std::str::from_utf8(m.payload().expect("a value"))
                    .expect("utf-8")
                    .parse()
                    .expect("a number");
                assert_eq!(m.topic(), TOPIC);
                records.insert((m.partition(), m.offset()), value);
                next.insert(m.partition(), m.offset() + 1);
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    records
}

/// One operation's result for the report.
struct Done {
    name: &'static str,
    state: String,
    took: Duration,
    acked_during: usize,
}

/// One operation to carry out.
struct Op<'a> {
    name: &'static str,
    /// `aws kafka` arguments, without the ARN and version.
    args: &'a [&'a str],
    /// Whether it takes `--current-version` (RebootBroker doesn't).
    with_version: bool,
    /// Its final state.
    want: &'static str,
    /// Brokers it must restart (their processes must be new afterwards).
    restarts: &'a [i64],
}

/// Runs `aws kafka <args> --cluster-arn ARN [--current-version V]` on an
/// ACTIVE cluster, waits for the operation to end and the cluster to be
/// ACTIVE again, and asserts the operation's final state.
async fn operate(
    cp: &TestControlPlane,
    arn: &str,
    op: Op<'_>,
    deliveries: &Deliveries,
) -> (Value, Done) {
    let Op {
        name,
        args,
        with_version,
        want,
        restarts,
    } = op;
    let info = cp.wait_cluster_state(arn, "ACTIVE", WAIT).await;
    let version = info["CurrentVersion"]
        .as_str()
        .expect("CurrentVersion")
        .to_string();
    let mut full: Vec<&str> = args.to_vec();
    full.extend(["--cluster-arn", arn]);
    if with_version {
        full.extend(["--current-version", &version]);
    }
    let pids_before: Vec<Option<u32>> = restarts.iter().map(|&b| cp.broker_pid(arn, b)).collect();
    let acked_before = deliveries.acked_count();
    let started = Instant::now();
    let op = cp.aws(&full).await.ok();
    let op_arn = op["ClusterOperationArn"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: no ClusterOperationArn in {op}"))
        .to_string();
    let done = cp.wait_operation(&op_arn, WAIT).await;
    let took = started.elapsed();
    let after = cp.wait_cluster_state(arn, "ACTIVE", WAIT).await;
    let state = done["OperationState"].as_str().unwrap_or("").to_string();
    eprintln!(
        "{name}: {state} in {:.1} s ({} records acknowledged meanwhile)",
        took.as_secs_f64(),
        deliveries.acked_count() - acked_before
    );
    assert_eq!(state, want, "{name}: {done}");
    if with_version {
        assert_ne!(
            after["CurrentVersion"],
            version.as_str(),
            "{name}: a completed update rotates CurrentVersion"
        );
    }
    // The brokers it has to restart were restarted: new processes.
    for (&b, before) in restarts.iter().zip(pids_before) {
        let after = cp.broker_pid(arn, b);
        assert!(
            after.is_some_and(alive) && after != before,
            "{name}: broker {b} was not restarted ({before:?} → {after:?})"
        );
    }
    let report = Done {
        name,
        state,
        took,
        acked_during: deliveries.acked_count() - acked_before,
    };
    (after, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_update_operation_under_an_acks_all_producer_loses_nothing() {
    let mut cp = TestControlPlane::start(|c| {
        c.timings.storage_scaling_cooldown = Duration::ZERO;
        c.timings.broker_ready_timeout = Duration::from_secs(60);
    })
    .await;
    let running = Arc::new(AtomicBool::new(true));
    let outcome = tokio::time::timeout(
        HARD_CAP,
        AssertUnwindSafe(scenario(&cp, running.clone())).catch_unwind(),
    )
    .await;
    running.store(false, Ordering::Relaxed);
    // Brokers stop whether the scenario passed, failed or ran out of time.
    cp.stop().await;
    match outcome {
        Err(_) => panic!("the test did not finish within {HARD_CAP:?}"),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Ok(Ok(())) => {}
    }
}

async fn scenario(cp: &TestControlPlane, running: Arc<AtomicBool>) {
    let test_started = Instant::now();
    let file = |name: &str, text: &str| {
        let path = cp.dir.join(name);
        std::fs::write(&path, text).expect("write input file");
        format!("file://{}", path.display())
    };
    let bngi = file(
        "bngi.json",
        r#"{"InstanceType": "kafka.m5.large",
            "ClientSubnets": ["subnet-00000000000000001", "subnet-00000000000000002", "subnet-00000000000000003"],
            "StorageInfo": {"EbsStorageInfo": {"VolumeSize": 100}}}"#,
    );
    let enc = file(
        "enc.json",
        r#"{"EncryptionInTransit": {"ClientBroker": "PLAINTEXT", "InCluster": true}}"#,
    );
    let created = cp
        .aws(&[
            "create-cluster",
            "--cluster-name",
            "under-load",
            "--broker-node-group-info",
            &bngi,
            "--kafka-version",
            "3.5.1",
            "--number-of-broker-nodes",
            "3",
            "--encryption-info",
            &enc,
        ])
        .await
        .ok();
    let arn = created["ClusterArn"].as_str().expect("arn").to_string();
    cp.wait_cluster_state(&arn, "ACTIVE", WAIT).await;
    eprintln!(
        "create-cluster → ACTIVE in {:.1} s",
        test_started.elapsed().as_secs_f64()
    );
    let boot = cp
        .aws(&["get-bootstrap-brokers", "--cluster-arn", &arn])
        .await
        .ok();
    let bootstrap = boot["BootstrapBrokerString"]
        .as_str()
        .expect("plaintext bootstrap string")
        .to_string();

    // The topic: three replicas, two of them needed for a write.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let created = admin
        .create_topics(
            &[NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(3))
                .set("min.insync.replicas", "2")],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("CreateTopics");
    for r in created {
        r.unwrap_or_else(|(t, e)| panic!("CreateTopics {t}: {e}"));
    }
    drop(admin);

    // The producer, for the whole test.
    let deliveries = Arc::new(Deliveries::default());
    let _stop_producer = StopOnDrop(running.clone());
    let producer = {
        let (bootstrap, deliveries, running) =
            (bootstrap.clone(), deliveries.clone(), running.clone());
        std::thread::spawn(move || produce(&bootstrap, deliveries, &running))
    };
    // Under way before the first operation.
    let deadline = Instant::now() + WAIT;
    while deliveries.acked_count() < 50 {
        assert!(
            Instant::now() < deadline,
            "the producer got nothing acknowledged: {:?}",
            deliveries.failed.lock().map(|f| f.first().cloned())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut report = Vec::new();

    // UpdateClusterConfiguration onto a configuration made for it.
    let props = file(
        "config.properties",
        "auto.create.topics.enable=false\nlog.retention.hours=48\nnum.io.threads=8\n",
    );
    let config = cp
        .aws(&[
            "create-configuration",
            "--name",
            "under-load-config",
            "--kafka-versions",
            "3.5.1",
            "3.6.0",
            "--server-properties",
            &props.replacen("file://", "fileb://", 1),
        ])
        .await
        .ok();
    let config_arn = config["Arn"].as_str().expect("configuration Arn");
    let ci = file(
        "configuration-info.json",
        &format!(r#"{{"Arn": "{config_arn}", "Revision": 1}}"#),
    );
    let (info, done) = operate(
        cp,
        &arn,
        Op {
            name: "UpdateClusterConfiguration",
            args: &["update-cluster-configuration", "--configuration-info", &ci],
            with_version: true,
            want: "UPDATE_COMPLETE",
            restarts: &[1, 2, 3],
        },
        &deliveries,
    )
    .await;
    assert_eq!(
        info["CurrentBrokerSoftwareInfo"]["ConfigurationRevision"],
        1
    );
    report.push(done);

    // UpdateBrokerType.
    let (info, done) = operate(
        cp,
        &arn,
        Op {
            name: "UpdateBrokerType",
            args: &[
                "update-broker-type",
                "--target-instance-type",
                "kafka.m5.xlarge",
            ],
            with_version: true,
            want: "UPDATE_COMPLETE",
            restarts: &[1, 2, 3],
        },
        &deliveries,
    )
    .await;
    assert_eq!(
        info["BrokerNodeGroupInfo"]["InstanceType"],
        "kafka.m5.xlarge"
    );
    report.push(done);

    // UpdateClusterKafkaVersion, to a version the cluster may move to.
    let compatible = cp
        .aws(&["get-compatible-kafka-versions", "--cluster-arn", &arn])
        .await
        .ok();
    let targets = compatible["CompatibleKafkaVersions"][0]["TargetVersions"]
        .as_array()
        .expect("TargetVersions")
        .clone();
    assert!(
        targets.contains(&Value::from("3.6.0")),
        "3.5.1 upgrades to 3.6.0: {compatible}"
    );
    let (info, done) = operate(
        cp,
        &arn,
        Op {
            name: "UpdateClusterKafkaVersion",
            args: &[
                "update-cluster-kafka-version",
                "--target-kafka-version",
                "3.6.0",
            ],
            with_version: true,
            want: "UPDATE_COMPLETE",
            restarts: &[1, 2, 3],
        },
        &deliveries,
    )
    .await;
    assert_eq!(info["CurrentBrokerSoftwareInfo"]["KafkaVersion"], "3.6.0");
    report.push(done);

    // UpdateBrokerStorage: grow.
    let (info, done) = operate(
        cp,
        &arn,
        Op {
            name: "UpdateBrokerStorage",
            args: &[
                "update-broker-storage",
                "--target-broker-ebs-volume-info",
                "KafkaBrokerNodeId=All,VolumeSizeGB=200",
            ],
            with_version: true,
            want: "UPDATE_COMPLETE",
            restarts: &[],
        },
        &deliveries,
    )
    .await;
    assert_eq!(
        info["BrokerNodeGroupInfo"]["StorageInfo"]["EbsStorageInfo"]["VolumeSize"],
        200
    );
    report.push(done);

    // UpdateMonitoring.
    let (info, done) = operate(
        cp,
        &arn,
        Op {
            name: "UpdateMonitoring",
            args: &[
                "update-monitoring",
                "--enhanced-monitoring",
                "PER_TOPIC_PER_BROKER",
            ],
            with_version: true,
            want: "UPDATE_COMPLETE",
            restarts: &[],
        },
        &deliveries,
    )
    .await;
    assert_eq!(info["EnhancedMonitoring"], "PER_TOPIC_PER_BROKER");
    report.push(done);

    // UpdateSecurity: PLAINTEXT → TLS_PLAINTEXT (the plaintext listener
    // the producer uses stays).
    let enc2 = file(
        "enc2.json",
        r#"{"EncryptionInTransit": {"ClientBroker": "TLS_PLAINTEXT"}}"#,
    );
    let (info, done) = operate(
        cp,
        &arn,
        Op {
            name: "UpdateSecurity",
            args: &["update-security", "--encryption-info", &enc2],
            with_version: true,
            want: "UPDATE_COMPLETE",
            restarts: &[1, 2, 3],
        },
        &deliveries,
    )
    .await;
    assert_eq!(
        info["EncryptionInfo"]["EncryptionInTransit"]["ClientBroker"],
        "TLS_PLAINTEXT"
    );
    report.push(done);

    // UpdateBrokerCount: 3 → 6.
    let (info, done) = operate(
        cp,
        &arn,
        Op {
            name: "UpdateBrokerCount",
            args: &[
                "update-broker-count",
                "--target-number-of-broker-nodes",
                "6",
            ],
            with_version: true,
            want: "UPDATE_COMPLETE",
            restarts: &[],
        },
        &deliveries,
    )
    .await;
    assert_eq!(info["NumberOfBrokerNodes"], 6);
    for b in 4..=6 {
        assert!(
            cp.broker_pid(&arn, b).is_some_and(alive),
            "added broker {b} runs"
        );
    }
    report.push(done);

    // RebootBroker: one that holds a replica of every partition.
    let (_, done) = operate(
        cp,
        &arn,
        Op {
            name: "RebootBroker",
            args: &["reboot-broker", "--broker-ids", "2"],
            with_version: false,
            want: "REBOOT_COMPLETE",
            restarts: &[2],
        },
        &deliveries,
    )
    .await;
    report.push(done);

    // A little more after the last operation, then stop the producer.
    let acked_at_end = deliveries.acked_count();
    let deadline = Instant::now() + WAIT;
    while deliveries.acked_count() < acked_at_end + 50 {
        assert!(
            Instant::now() < deadline,
            "the producer stalled after the operations"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.store(false, Ordering::Relaxed);
    let sent = tokio::task::spawn_blocking(move || producer.join())
        .await
        .expect("join")
        .expect("the producer thread panicked");

    let records = {
        let bootstrap = bootstrap.clone();
        tokio::task::spawn_blocking(move || read_back(&bootstrap))
            .await
            .expect("the read-back panicked")
    };
    let acked = deliveries.acked.lock().expect("acked").clone();
    let failed = deliveries.failed.lock().expect("failed").clone();
    eprintln!(
        "producer: {sent} sent, {} acknowledged, {} failed; {} records read back; {:.1} s in all",
        acked.len(),
        failed.len(),
        records.len(),
        test_started.elapsed().as_secs_f64()
    );
    for d in &report {
        eprintln!(
            "  {:<28} {:<16} {:>6.1} s  {:>6} acked meanwhile",
            d.name,
            d.state,
            d.took.as_secs_f64(),
            d.acked_during
        );
    }

    // Every acknowledged record is where the broker said it wrote it.
    let mut lost = Vec::new();
    for &(partition, offset, value) in &acked {
        match records.get(&(partition, offset)) {
            Some(&v) if v == value => {}
            found => lost.push((partition, offset, value, found.copied())),
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged records are not at their offset; first (partition, offset, value, found): {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );
    // Nothing appears twice unless its first delivery was reported failed,
    // and everything read was sent.
    let failed_values: std::collections::HashSet<u64> = failed.iter().map(|(v, _)| *v).collect();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for &value in records.values() {
        assert!(value < sent, "read a value never sent: {value}");
        *seen.entry(value).or_default() += 1;
    }
    let duplicated: Vec<u64> = seen
        .iter()
        .filter(|&(v, &n)| n > 1 && !failed_values.contains(v))
        .map(|(v, _)| *v)
        .collect();
    assert!(
        duplicated.is_empty(),
        "values written more than once: {:?}",
        &duplicated[..duplicated.len().min(10)]
    );
    // The idempotent producer never gave up on a record.
    assert!(
        failed.is_empty(),
        "{} delivery failures; first: {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(
        acked.len() as u64,
        sent,
        "every record sent was acknowledged"
    );

    let ops = cp
        .aws(&["list-cluster-operations-v2", "--cluster-arn", &arn])
        .await
        .ok();
    let ops = ops["ClusterOperationInfoList"]
        .as_array()
        .expect("operations")
        .clone();
    assert_eq!(ops.len(), report.len(), "{ops:?}");

    cp.aws(&["delete-cluster", "--cluster-arn", &arn])
        .await
        .ok();
}
