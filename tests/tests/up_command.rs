//! `millrace up`, black-box: the real binary on free ports with a temporary
//! data directory. Its printed `export` lines alone point the real AWS CLI
//! at it (`list-clusters-v2` shows the ACTIVE development cluster,
//! `get-bootstrap-brokers` answers what it printed); a replicated topic
//! takes acks=all writes through the printed bootstrap servers and gives
//! them back; SIGTERM stops every broker; a second `millrace up` over the
//! same data directory re-adopts the same cluster with its data.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use millrace_tests::{free_port, millrace_bin};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// How long the development cluster may take to become ACTIVE.
const READY: Duration = Duration::from_secs(120);
const TOPIC: &str = "up-command";
const RECORDS: usize = 200;

/// The AWS CLI: `$MILLRACE_AWS_CLI` (set by scripts/test.sh), else the
/// repository's `.venv`, else `aws` on PATH.
fn aws_cli() -> PathBuf {
    if let Ok(p) = std::env::var("MILLRACE_AWS_CLI") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/aws");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("aws")
}

/// A running `millrace up` and what it printed.
struct Up {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    log_path: PathBuf,
}

impl Up {
    fn start(data_dir: &Path, port: u16, log_path: PathBuf) -> Up {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("log file");
        let mut child = Command::new(millrace_bin())
            .args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn millrace up");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let lines = stdout.clone();
        let pipe = child.stdout.take().expect("stdout pipe");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().expect("lines").push(line);
            }
        });
        Up {
            child,
            stdout,
            log_path,
        }
    }

    fn printed(&self) -> Vec<String> {
        self.stdout.lock().expect("lines").clone()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The value of the first stdout line starting with `prefix`, waiting
    /// for it.
    fn wait_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.printed().iter().find(|l| l.starts_with(prefix)) {
                return line[prefix.len()..].to_string();
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "millrace up exited ({status}) before printing {prefix:?}\nstdout: {:?}\nlog:\n{}",
                    self.printed(),
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {prefix:?} line after {timeout:?}\nstdout: {:?}\nlog:\n{}",
                self.printed(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then the exit status within a minute.
    fn stop(mut self) -> std::process::ExitStatus {
        millrace_tests::signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "millrace up did not stop after SIGTERM\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            millrace_tests::signal(self.child.id(), libc::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

/// Runs `aws kafka <args> --output text` with nothing but the `export`
/// lines `millrace up` printed (no config files, no other AWS variables).
fn aws_text(exports: &[(String, String)], dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(aws_cli());
    cmd.arg("kafka")
        .args(args)
        .args(["--output", "text"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_PAGER", "")
        .current_dir(dir);
    for (k, v) in exports {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the AWS CLI");
    assert!(
        out.status.success(),
        "aws kafka {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The `export NAME=value` lines printed so far.
fn exports_of(up: &Up) -> Vec<(String, String)> {
    up.printed()
        .iter()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The pids in every `broker.pid` under the data directory.
fn broker_pids(data_dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(clusters) = std::fs::read_dir(data_dir.join("clusters")) else {
        return pids;
    };
    for cluster in clusters.flatten() {
        for broker in std::fs::read_dir(cluster.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(text) = std::fs::read_to_string(broker.path().join("broker.pid")) {
                if let Ok(pid) = text.trim().parse() {
                    pids.push(pid);
                }
            }
        }
    }
    pids
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn consume_all(bootstrap: &str) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "up-command")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < RECORDS && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
    }
    got
}

#[test]
fn up_serves_the_aws_cli_and_a_dev_cluster_that_survives_a_restart() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data_dir = temp.path().join("data");
    let port = free_port();
    let started = Instant::now();
    let mut up = Up::start(&data_dir, port, temp.path().join("up.log"));

    // The export lines come first, then the cluster once it is ACTIVE.
    let arn = up.wait_line("Cluster ARN: ", READY);
    let bootstrap = up.wait_line("Bootstrap servers: ", READY);
    eprintln!("dev cluster ACTIVE after {:?}", started.elapsed());
    let printed = up.printed();
    let exports = exports_of(&up);
    let names: Vec<&str> = exports.iter().map(|(k, _)| k.as_str()).collect();
    for name in [
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(names.contains(&name), "{name} not exported: {printed:?}");
    }
    let last_export = printed
        .iter()
        .rposition(|l| l.starts_with("export "))
        .expect("exports");
    let arn_line = printed
        .iter()
        .position(|l| l.starts_with("Cluster ARN: "))
        .expect("arn line");
    assert!(last_export < arn_line, "exports first: {printed:?}");
    assert!(exports.contains(&(
        "AWS_ENDPOINT_URL".to_string(),
        format!("http://127.0.0.1:{port}")
    )));
    assert!(
        arn.starts_with("arn:aws:kafka:us-east-1:123456789012:cluster/millrace-dev/"),
        "{arn}"
    );
    assert_eq!(bootstrap.split(',').count(), 3, "{bootstrap}");

    // The real AWS CLI, configured by the exports alone.
    let listed = aws_text(
        &exports,
        temp.path(),
        &[
            "list-clusters-v2",
            "--query",
            "ClusterInfoList[].[ClusterArn,State,Provisioned.NumberOfBrokerNodes]",
        ],
    );
    assert_eq!(listed, format!("{arn}\tACTIVE\t3"));
    let from_cli = aws_text(
        &exports,
        temp.path(),
        &[
            "get-bootstrap-brokers",
            "--cluster-arn",
            &arn,
            "--query",
            "BootstrapBrokerString",
        ],
    );
    assert_eq!(from_cli, bootstrap);
    let zones = aws_text(
        &exports,
        temp.path(),
        &[
            "list-nodes",
            "--cluster-arn",
            &arn,
            "--query",
            "NodeInfoList[].BrokerNodeInfo.ClientSubnet",
        ],
    );
    let mut subnets: Vec<&str> = zones.split_whitespace().collect();
    subnets.dedup();
    assert_eq!(subnets.len(), 3, "three brokers in three subnets: {zones}");

    // One Kafka cluster behind the bootstrap servers: a three-replica topic
    // takes acks=all writes and gives them back.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let created = runtime
        .block_on(admin.create_topics(
            &[NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .expect("CreateTopics");
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
    let metadata = admin
        .inner()
        .fetch_metadata(Some(TOPIC), Duration::from_secs(10))
        .expect("metadata");
    assert_eq!(metadata.brokers().len(), 3, "Metadata lists three brokers");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer");
    let sent: Vec<String> = (0..RECORDS).map(|i| format!("up-{i}")).collect();
    runtime.block_on(async {
        for value in &sent {
            producer
                .send(
                    FutureRecord::<(), _>::to(TOPIC).payload(value).partition(0),
                    Duration::from_secs(60),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("acks=all write");
        }
    });
    drop(producer);
    drop(admin);
    assert_eq!(consume_all(&bootstrap), sent);

    // SIGTERM: every broker stops, and so does `millrace up`, cleanly.
    let pids = broker_pids(&data_dir);
    assert_eq!(pids.len(), 3, "three broker pid files");
    assert!(pids.iter().all(|p| alive(*p)));
    let status = up.stop();
    assert!(status.success(), "millrace up exited with {status}");
    for pid in &pids {
        assert!(
            !alive(*pid),
            "broker {pid} still runs after millrace up stopped"
        );
    }

    // A second start over the same data re-adopts the same cluster.
    let mut again = Up::start(&data_dir, port, temp.path().join("up2.log"));
    assert_eq!(again.wait_line("Cluster ARN: ", READY), arn);
    assert_eq!(again.wait_line("Bootstrap servers: ", READY), bootstrap);
    let exports2 = exports_of(&again);
    assert_eq!(
        exports2, exports,
        "the same endpoint and root key after a restart"
    );
    let listed = aws_text(
        &exports2,
        temp.path(),
        &[
            "list-clusters-v2",
            "--query",
            "ClusterInfoList[].ClusterArn",
        ],
    );
    assert_eq!(listed, arn, "one cluster, not a second one");
    assert_eq!(
        consume_all(&bootstrap),
        sent,
        "the data survived the restart"
    );
    let status = again.stop();
    assert!(status.success(), "second millrace up exited with {status}");
}
