//! Test harness: a real control plane on an ephemeral loopback port with
//! its state in a temporary directory, brokers run by the real
//! `ProcessProvisioner` from the real `millrace` binary, and clients that
//! are the real AWS CLI and botocore's signer (`signed_request.py`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use millrace_control_plane::{ControlPlaneConfig, Credential, RunningServer, Server};
use serde_json::{json, Value};

/// The `millrace` binary: `$MILLRACE_BIN`, or next to the test's target
/// directory (`target/debug/millrace`, built by `cargo build -p millrace`).
pub fn millrace_bin() -> PathBuf {
    if let Ok(p) = std::env::var("MILLRACE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let debug = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/debug directory");
    let bin = debug.join("millrace");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p millrace` (or set MILLRACE_BIN)",
        bin.display()
    );
    bin
}

/// The AWS CLI: `$MILLRACE_AWS_CLI`, `aws` on PATH, or pyenv's shim.
pub fn aws_cli() -> PathBuf {
    if let Ok(p) = std::env::var("MILLRACE_AWS_CLI") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("aws"))
            .find(|p| p.exists())
    });
    let cli = on_path.unwrap_or_else(|| PathBuf::from("/root/.pyenv/shims/aws"));
    assert!(
        cli.exists(),
        "the AWS CLI is not installed (pip install awscli)"
    );
    cli
}

/// Timings that make tests run in seconds.
pub fn fast_config(dir: &Path) -> ControlPlaneConfig {
    let mut config = ControlPlaneConfig::new(dir);
    config.listen = "127.0.0.1:0".parse().expect("address");
    config.broker_binary = millrace_bin();
    config.timings.health_check_interval = Duration::from_millis(300);
    config.timings.broker_ready_timeout = Duration::from_secs(30);
    config.timings.broker_stop_timeout = Duration::from_secs(10);
    config.timings.unhealthy_checks_before_healing = 3;
    config.timings.storage_scaling_cooldown = Duration::from_secs(3600);
    config
}

/// What the AWS CLI did.
#[derive(Debug)]
pub struct CliResult {
    /// Exit code (0 ok, 254/255 errors).
    pub code: i32,
    /// stdout parsed as JSON (Null when empty).
    pub json: Value,
    /// stderr.
    pub stderr: String,
}

impl CliResult {
    /// The JSON output, asserting success.
    pub fn ok(self) -> Value {
        assert_eq!(self.code, 0, "aws failed: {}", self.stderr);
        self.json
    }

    /// The error code the CLI printed, asserting failure.
    pub fn error_code(&self) -> String {
        assert_ne!(self.code, 0, "aws succeeded unexpectedly: {}", self.json);
        let start = self.stderr.find("An error occurred (").map(|i| i + 19);
        start
            .and_then(|s| {
                self.stderr[s..]
                    .find(')')
                    .map(|e| self.stderr[s..s + e].to_string())
            })
            .unwrap_or_else(|| panic!("no error code in: {}", self.stderr))
    }
}

/// What a raw HTTP request got back.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// `x-amzn-ErrorType` up to the first `:`.
    pub error_type: Option<String>,
    /// The body as JSON (Null when empty).
    pub body: Value,
}

impl RawResponse {
    /// `invalidParameter` of an error body.
    pub fn invalid_parameter(&self) -> Option<&str> {
        self.body.get("invalidParameter").and_then(Value::as_str)
    }
}

/// A running control plane and its directory.
pub struct TestControlPlane {
    pub server: Option<RunningServer>,
    pub dir: PathBuf,
    pub credential: Credential,
    pub endpoint: String,
    _tempdir: Option<tempfile::TempDir>,
}

impl TestControlPlane {
    /// Starts one in a fresh temporary directory.
    pub async fn start(tune: impl FnOnce(&mut ControlPlaneConfig)) -> Self {
        let tempdir = tempfile::tempdir().expect("tempdir");
        let mut me = Self::start_in(tempdir.path(), tune).await;
        me._tempdir = Some(tempdir);
        me
    }

    /// Starts one over the state in `dir`.
    pub async fn start_in(dir: &Path, tune: impl FnOnce(&mut ControlPlaneConfig)) -> Self {
        let mut config = fast_config(dir);
        tune(&mut config);
        let server = Server::new(config)
            .start()
            .await
            .expect("control plane starts");
        let credential = server.root_credential().clone();
        let endpoint = format!("http://{}", server.addr());
        TestControlPlane {
            server: Some(server),
            dir: dir.to_path_buf(),
            credential,
            endpoint,
            _tempdir: None,
        }
    }

    /// Stops it (brokers too), keeping the directory.
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// Runs `aws kafka <args>` against it with its root credentials.
    pub async fn aws(&self, args: &[&str]) -> CliResult {
        self.aws_as(
            &self.credential.access_key_id,
            &self.credential.secret_access_key,
            args,
        )
        .await
    }

    /// Runs `aws kafka <args>` with the given credentials.
    pub async fn aws_as(&self, key: &str, secret: &str, args: &[&str]) -> CliResult {
        let output = tokio::process::Command::new(aws_cli())
            .arg("kafka")
            .args(args)
            .args([
                "--endpoint-url",
                &self.endpoint,
                "--region",
                "us-east-1",
                "--output",
                "json",
            ])
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_RETRY_MODE", "standard")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_PAGER", "")
            .current_dir(&self.dir)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(60), output)
            .await
            .expect("aws finished within 60 s")
            .expect("aws runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        CliResult {
            code: output.status.code().unwrap_or(-1),
            json: if stdout.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&stdout)
                    .unwrap_or_else(|e| panic!("aws printed non-JSON ({e}): {stdout}"))
            },
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// A request description for `signed_request.py`, signed by botocore
    /// with the root key.
    pub fn request(&self, method: &str, path: &str, body: &str) -> Value {
        json!({
            "method": method,
            "url": format!("{}{}", self.endpoint, path),
            "body": body,
            "region": "us-east-1",
            "access_key": self.credential.access_key_id,
            "secret": self.credential.secret_access_key,
        })
    }

    /// Sends requests (see [`Self::request`]) through `signed_request.py`.
    pub async fn send_all(&self, requests: &[Value]) -> Vec<RawResponse> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/signed_request.py");
        let python = std::env::var("MILLRACE_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = tokio::process::Command::new(python)
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        {
            use tokio::io::AsyncWriteExt;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin
                .write_all(Value::Array(requests.to_vec()).to_string().as_bytes())
                .await
                .expect("write requests");
        }
        let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("signed_request.py finished")
            .expect("signed_request.py ran");
        assert!(
            output.status.success(),
            "signed_request.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let out: Vec<Value> =
            serde_json::from_slice(&output.stdout).expect("JSON from signed_request.py");
        out.into_iter()
            .map(|r| RawResponse {
                status: r["status"].as_u64().unwrap_or(0) as u16,
                error_type: r["headers"]["x-amzn-errortype"]
                    .as_str()
                    .map(|s| s.split(':').next().unwrap_or(s).to_string()),
                body: serde_json::from_str(r["body"].as_str().unwrap_or("")).unwrap_or(Value::Null),
            })
            .collect()
    }

    /// Sends one request.
    pub async fn send(&self, request: Value) -> RawResponse {
        self.send_all(&[request]).await.remove(0)
    }

    /// Every row of every table of the state database, as text.
    pub fn db_snapshot(&self) -> Vec<String> {
        let db = rusqlite::Connection::open(self.dir.join("control-plane.sqlite"))
            .expect("open state db");
        let mut rows = Vec::new();
        for table in ["credentials", "clusters", "operations", "configurations"] {
            let mut st = db
                .prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))
                .expect("select");
            let n = st.column_count();
            let mut q = st.query([]).expect("query");
            while let Some(row) = q.next().expect("row") {
                let cols: Vec<String> = (0..n)
                    .map(|i| match row.get_ref(i).expect("column") {
                        rusqlite::types::ValueRef::Text(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                        other => format!("{other:?}"),
                    })
                    .collect();
                rows.push(format!("{table}: {}", cols.join(" | ")));
            }
        }
        rows
    }

    /// A cluster's state as stored (fast enough to poll for short states).
    pub fn stored_state(&self, arn: &str) -> Option<String> {
        let db = rusqlite::Connection::open(self.dir.join("control-plane.sqlite")).ok()?;
        let record: String = db
            .query_row("SELECT record FROM clusters WHERE arn = ?1", [arn], |r| {
                r.get(0)
            })
            .ok()?;
        serde_json::from_str::<Value>(&record).ok()?["state"]
            .as_str()
            .map(str::to_string)
    }

    /// Polls DescribeCluster (through the CLI) until the state is `want`.
    pub async fn wait_cluster_state(&self, arn: &str, want: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let info = self
                .aws(&["describe-cluster", "--cluster-arn", arn])
                .await
                .ok();
            let state = info["ClusterInfo"]["State"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if state == want {
                return info["ClusterInfo"].clone();
            }
            assert!(
                state != "FAILED" || want == "FAILED",
                "cluster FAILED: {}",
                info["ClusterInfo"]["StateInfo"]
            );
            assert!(
                Instant::now() < deadline,
                "cluster still {state}, not {want}, after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Runs one update operation with the AWS CLI (`args` plus the
    /// cluster's ARN and current version) once the cluster is ACTIVE, waits
    /// for UPDATE_COMPLETE and ACTIVE again, checks that the version
    /// rotated, and returns the finished operation.
    pub async fn run_update(&self, arn: &str, args: &[&str], timeout: Duration) -> Value {
        let info = self.wait_cluster_state(arn, "ACTIVE", timeout).await;
        let version = info["CurrentVersion"]
            .as_str()
            .expect("version")
            .to_string();
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--cluster-arn", arn, "--current-version", &version]);
        let op = self.aws(&full).await.ok();
        let done = self
            .wait_operation(op["ClusterOperationArn"].as_str().expect("op arn"), timeout)
            .await;
        assert_eq!(done["OperationState"], "UPDATE_COMPLETE", "{done}");
        let after = self.wait_cluster_state(arn, "ACTIVE", timeout).await;
        assert_ne!(after["CurrentVersion"], version.as_str());
        done
    }

    /// Polls DescribeClusterOperation until the operation has ended.
    pub async fn wait_operation(&self, op_arn: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let info = self
                .aws(&[
                    "describe-cluster-operation",
                    "--cluster-operation-arn",
                    op_arn,
                ])
                .await
                .ok();
            let op = info["ClusterOperationInfo"].clone();
            if op.get("EndTime").is_some() {
                return op;
            }
            assert!(
                Instant::now() < deadline,
                "operation still {} after {timeout:?}",
                op["OperationState"]
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The pid of a broker, from its pid file.
    pub fn broker_pid(&self, cluster_arn: &str, broker_id: i64) -> Option<u32> {
        let id = cluster_arn.rsplit('/').next()?;
        let path = self
            .dir
            .join("clusters")
            .join(id)
            .join(format!("broker-{broker_id}"))
            .join("broker.pid");
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    /// A broker's data directory.
    pub fn broker_dir(&self, cluster_arn: &str, broker_id: i64) -> PathBuf {
        let id = cluster_arn.rsplit('/').next().unwrap_or_default();
        self.dir
            .join("clusters")
            .join(id)
            .join(format!("broker-{broker_id}"))
    }
}

/// Whether a process runs.
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

/// URI-encodes an ARN for a path, as the SDKs do.
pub fn enc(arn: &str) -> String {
    millrace_control_plane::sigv4::uri_encode(arn, false)
}

/// One Kafka request to `addr` at `version`, answered.
pub async fn kafka<R: kafka_protocol::protocol::Request>(
    addr: &str,
    version: i16,
    request: &R,
) -> R::Response {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::{RequestHeader, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("control-plane-test")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, R::header_version(version))
        .expect("encode header");
    request.encode(&mut body, version).expect("encode request");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(&(body.len() as i32).to_be_bytes())
        .await
        .expect("write");
    stream.write_all(&body).await.expect("write");
    let size = stream.read_i32().await.expect("read size");
    let mut response = vec![0u8; size as usize];
    stream.read_exact(&mut response).await.expect("read");
    let mut buf = Bytes::from(response);
    ResponseHeader::decode(&mut buf, R::Response::header_version(version)).expect("header");
    R::Response::decode(&mut buf, version).expect("response")
}
