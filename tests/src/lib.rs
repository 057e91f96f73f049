//! Test harness: starts real `millrace` broker processes on free loopback
//! ports with throw-away data dirs, and stops them politely (SIGTERM) or
//! not (SIGKILL), so tests exercise exactly what users run.
//!
//! The binary is found through `MILLRACE_BIN`, else next to the test
//! executable's target directory (`target/<profile>/millrace`); build it
//! first (`cargo build -p millrace`), as the test script does.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of the `millrace` binary under test.
pub fn millrace_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("MILLRACE_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile> directory");
    let bin = profile_dir.join("millrace");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build -p millrace` first or set MILLRACE_BIN",
        bin.display()
    );
    bin
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A broker process under test.
pub struct TestBroker {
    /// Data directory (kept across restarts, removed on drop).
    data: tempfile::TempDir,
    port: u16,
    overrides: Vec<(String, String)>,
    child: Option<Child>,
    log_path: PathBuf,
}

impl TestBroker {
    /// Starts a single broker with the development-style settings tests
    /// expect (replication factor 1, auto-create on) plus `overrides`
    /// (later entries win).
    pub fn start(overrides: &[(&str, &str)]) -> TestBroker {
        let data = tempfile::Builder::new()
            .prefix("millrace-test-")
            .tempdir()
            .expect("temp dir");
        let log_path = data.path().join("broker.log");
        let mut broker = TestBroker {
            port: free_port(),
            overrides: overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            data,
            child: None,
            log_path,
        };
        broker.spawn();
        broker
    }

    /// The bootstrap address, `127.0.0.1:port`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The socket address of the listener.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The broker's log directory.
    pub fn log_dir(&self) -> PathBuf {
        self.data.path().join("logs")
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the broker printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn config_text(&self) -> String {
        let mut text = format!(
            "node.id=1\nlisteners=PLAINTEXT://127.0.0.1:{}\nlog.dirs={}\n\
             default.replication.factor=1\nmin.insync.replicas=1\n\
             offsets.topic.replication.factor=1\ntransaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\nauto.create.topics.enable=true\n",
            self.port,
            self.log_dir().display()
        );
        for (k, v) in &self.overrides {
            text.push_str(&format!("{k}={v}\n"));
        }
        text
    }

    fn spawn(&mut self) {
        let config = self.data.path().join("server.properties");
        std::fs::write(&config, self.config_text()).expect("write config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("broker log");
        let child = Command::new(millrace_bin())
            .arg("broker")
            .arg("--config")
            .arg(&config)
            .env(
                "RUST_LOG",
                std::env::var("MILLRACE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::from(log.try_clone().expect("log fd")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn millrace");
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(60));
    }

    /// Waits until the listener accepts connections.
    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "broker exited with {status} before listening:\n{}",
                        self.output()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "broker not listening after {timeout:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the broker with SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        assert!(
                            status.success(),
                            "broker exited with {status}:\n{}",
                            self.output()
                        );
                        return;
                    }
                    _ if Instant::now() > deadline => {
                        let _ = child.kill();
                        panic!("broker did not stop within 30 s:\n{}", self.output());
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    /// Kills the broker with SIGKILL (a crash: no flush, no marker).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port and data.
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "stop or kill the broker before restarting"
        );
        self.spawn();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Lines of the broker output containing `needle`.
    pub fn output_lines_with(&self, needle: &str) -> Vec<String> {
        BufReader::new(self.output().as_bytes())
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains(needle))
            .collect()
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- broker output ({}) ---\n{}",
                self.bootstrap(),
                self.output()
            );
        }
    }
}

#[allow(unsafe_code)]
/// Sends `sig` to a child process the test spawned.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child pid we spawned and have not reaped.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}
