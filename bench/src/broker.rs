//! The broker under test: a `millrace broker` child process with its own
//! throw-away data dir, plus reading its CPU time from `/proc`.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// Finds the broker binary: `--broker-bin`, else `MILLRACE_BIN`, else
/// `millrace` next to this executable (both live in `target/release`),
/// else `target/release/millrace` under the current directory.
pub fn find_broker_bin(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Ok(p) = std::env::var("MILLRACE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join("millrace"));
        }
    }
    candidates.push(PathBuf::from("target/release/millrace"));
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        anyhow!(
            "millrace binary not found: run `cargo build --release -p millrace` \
                 or pass --broker-bin / set MILLRACE_BIN"
        )
    })
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind a free port")?;
    Ok(listener.local_addr().context("local addr")?.port())
}

/// A `millrace broker` process that we started.
pub struct Broker {
    bin: PathBuf,
    /// Removed when the broker is dropped.
    data: tempfile::TempDir,
    port: u16,
    extra: Vec<String>,
    log_level: String,
    child: Option<Child>,
}

impl Broker {
    /// Creates a fresh data dir under `parent` and starts the broker,
    /// waiting until it listens.
    pub fn start(bin: &Path, parent: &Path, extra: &[String], log_level: &str) -> Result<Broker> {
        let data = tempfile::Builder::new()
            .prefix("millrace-bench-")
            .tempdir_in(parent)
            .with_context(|| format!("create a data dir under {}", parent.display()))?;
        let mut broker = Broker {
            bin: bin.to_path_buf(),
            data,
            port: free_port()?,
            extra: extra.to_vec(),
            log_level: log_level.to_string(),
            child: None,
        };
        broker.spawn()?;
        broker.wait_listening(Duration::from_secs(60))?;
        Ok(broker)
    }

    /// `127.0.0.1:port`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The Kafka log dir (`log.dirs`).
    pub fn log_dir(&self) -> PathBuf {
        self.data.path().join("logs")
    }

    fn output_path(&self) -> PathBuf {
        self.data.path().join("broker.out")
    }

    /// The last lines the broker printed (for error messages).
    pub fn output_tail(&self) -> String {
        let text = fs::read_to_string(self.output_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The pid while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn config_text(&self) -> String {
        let mut text = format!(
            "node.id=1\n\
             listeners=PLAINTEXT://127.0.0.1:{}\n\
             log.dirs={}\n\
             default.replication.factor=1\n\
             min.insync.replicas=1\n\
             offsets.topic.replication.factor=1\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             auto.create.topics.enable=false\n",
            self.port,
            self.log_dir().display()
        );
        for kv in &self.extra {
            text.push_str(kv);
            text.push('\n');
        }
        text
    }

    /// Starts the process (does not wait). Returns the spawn instant.
    pub fn spawn(&mut self) -> Result<Instant> {
        if self.child.is_some() {
            bail!("broker already running");
        }
        let config = self.data.path().join("server.properties");
        fs::write(&config, self.config_text())
            .with_context(|| format!("write {}", config.display()))?;
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.output_path())
            .context("open broker output file")?;
        let err = out.try_clone().context("dup broker output file")?;
        let started = Instant::now();
        let child = Command::new(&self.bin)
            .arg("broker")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", &self.log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("spawn {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(started)
    }

    /// Polls until the listener accepts a TCP connection.
    pub fn wait_listening(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().context("wait for broker")? {
                    self.child = None;
                    bail!(
                        "broker exited with {status} before listening:\n{}",
                        self.output_tail()
                    );
                }
            } else {
                bail!("broker not running");
            }
            if Instant::now() > deadline {
                bail!(
                    "broker not listening after {timeout:?}:\n{}",
                    self.output_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGTERM, then waits for the exit; returns how long shutdown took.
    pub fn terminate(&mut self, timeout: Duration) -> Result<Duration> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("broker not running"))?;
        let started = Instant::now();
        signal(child.id(), libc::SIGTERM)?;
        loop {
            if let Some(status) = child.try_wait().context("wait for broker")? {
                if !status.success() {
                    bail!(
                        "broker exited with {status} on SIGTERM:\n{}",
                        self.output_tail()
                    );
                }
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                bail!("broker did not stop within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILL: a crash, nothing flushed by the broker.
    pub fn kill9(&mut self) -> Result<()> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("broker not running"))?;
        child.kill().context("SIGKILL broker")?;
        child.wait().context("reap broker")?;
        Ok(())
    }

    /// Whether the process is still alive (reaps it if not).
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_wait().context("wait for broker")? {
                self.child = None;
                bail!("broker exited with {status}:\n{}", self.output_tail());
            }
            Ok(())
        } else {
            bail!("broker not running")
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = signal(child.id(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(pid: u32, sig: i32) -> Result<()> {
    let pid = i32::try_from(pid).context("pid out of range")?;
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("kill(2)");
    }
    Ok(())
}

/// Clock ticks per second for `/proc/<pid>/stat` times.
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// utime and stime of a process (all its threads), in seconds.
pub fn cpu_times(pid: u32) -> Result<(f64, f64)> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("unexpected {path}: {text}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    let field = |i: usize| -> Result<f64> {
        let ticks = fields
            .get(i)
            .ok_or_else(|| anyhow!("short {path}"))?
            .parse::<u64>()
            .with_context(|| format!("parse {path}"))?;
        Ok(ticks as f64 / clock_ticks())
    };
    Ok((field(11)?, field(12)?))
}

fn clock_seconds(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// CPU time of this process (all threads, incl. librdkafka's), seconds.
pub fn self_cpu_seconds() -> f64 {
    clock_seconds(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// What writing fresh data into the page cache costs on this machine:
/// CPU seconds per GB (10^9 bytes) for `bytes` written in 1 MiB `write`s
/// to a new file under `dir` (removed afterwards). On VMs that hand
/// memory back to the host, first-touch of page-cache pages can be
/// expensive, and the broker pays it on every produce.
pub fn page_cache_write_cost(dir: &Path, bytes: u64) -> Result<f64> {
    use std::io::Write as _;
    let file = tempfile::Builder::new()
        .prefix("millrace-bench-pagecache-")
        .tempfile_in(dir)
        .with_context(|| format!("create a file under {}", dir.display()))?;
    let chunk = vec![0x5au8; 1 << 20];
    let mut f = file.as_file();
    let mut written = 0u64;
    let cpu0 = clock_seconds(libc::CLOCK_THREAD_CPUTIME_ID);
    while written < bytes {
        f.write_all(&chunk).context("write calibration file")?;
        written += chunk.len() as u64;
    }
    let cpu = clock_seconds(libc::CLOCK_THREAD_CPUTIME_ID) - cpu0;
    drop(file);
    Ok(cpu * 1e9 / written as f64)
}

/// Bytes in the `*.log` segment files of `topic`'s partition dirs.
pub fn topic_log_bytes(log_dir: &Path, topic: &str, partitions: i32) -> u64 {
    let mut total = 0;
    for p in 0..partitions {
        let dir = log_dir.join(format!("{topic}-{p}"));
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().ends_with(".log") {
                    total += e.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
        }
    }
    total
}

/// Peak resident set size (VmHWM) of a process, in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Bytes used under a directory (sum of file sizes).
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}
