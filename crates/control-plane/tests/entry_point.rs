//! The entry point the `millrace` binary calls: [`run`] serves until its
//! shutdown future completes, and the `export` lines it prints are enough
//! for the AWS CLI to reach it with no other settings.

mod support;

use std::time::Duration;

use millrace_control_plane::{run, Server};
use support::{aws_cli, fast_config};

/// Runs `aws kafka list-clusters` with only the variables of `exports`.
async fn list_clusters_with(exports: &str, dir: &std::path::Path) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(aws_cli());
    cmd.args(["kafka", "list-clusters", "--output", "json"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .current_dir(dir);
    for line in exports.lines() {
        let (k, v) = line
            .strip_prefix("export ")
            .and_then(|l| l.split_once('='))
            .unwrap_or_else(|| panic!("not an export line: {line}"));
        cmd.env(k, v);
    }
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("aws finished")
        .expect("aws runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printed_exports_point_the_cli_at_the_control_plane() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::new(fast_config(dir.path()))
        .start()
        .await
        .expect("starts");
    let exports = server.env_exports();
    assert!(exports.contains(&format!(
        "export AWS_ENDPOINT_URL=http://{}\n",
        server.addr()
    )));
    assert!(exports.contains("export AWS_REGION=us-east-1\n"));
    let out = list_clusters_with(&exports, dir.path()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["ClusterInfoList"], serde_json::json!([]));
    server.shutdown().await;

    // `run` on a fixed port: serves until the shutdown future completes.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut config = fast_config(dir.path());
    config.listen = ([127, 0, 0, 1], port).into();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(run(config, async {
        let _ = stopped.await;
    }));
    let root = millrace_control_plane::store::Store::open(&dir.path().join("control-plane.sqlite"))
        .map(|s| s.root_credential())
        .expect("store")
        .expect("root key");
    let exports =
        millrace_control_plane::env_exports(([127, 0, 0, 1], port).into(), "us-east-1", &root);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = list_clusters_with(&exports, dir.path()).await;
        if out.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run() never served: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.send(()).expect("run still waits");
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("run returned after shutdown")
        .expect("task")
        .expect("run ok");
}
