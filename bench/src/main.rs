//! `millrace-bench`: a librdkafka load generator for Millrace.
//!
//! Starts its own broker (or uses `--bootstrap`), then for every
//! combination of value size, partition count and acks: produces as fast
//! as librdkafka accepts and reads everything back by assignment
//! (`throughput`), produces at a fixed rate (`latency`), and finally
//! measures restart time after SIGKILL and SIGTERM on a filled log dir
//! (`restart`). Prints figures; asserts nothing. See `bench/README.md`.

mod broker;
mod client;
mod control_plane;
mod coordination;
mod failover;
mod report;
mod restart;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

use crate::broker::Broker;
use crate::client::{ClientSettings, Pace};
use crate::report::{LatencyRow, Output, Phase, ThroughputRow};

/// Load generator for a Millrace (Kafka-compatible) broker.
#[derive(Debug, Parser)]
#[command(name = "millrace-bench", version, about)]
struct Args {
    /// Records per produce phase (a phase also ends at --duration).
    #[arg(long, default_value_t = 5_000_000)]
    records: u64,
    /// Time limit of each produce and each consume phase, in seconds.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Value sizes in bytes (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', default_values_t = [100usize, 1024])]
    value_size: Vec<usize>,
    /// Partition counts (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', default_values_t = [1i32, 16])]
    partitions: Vec<i32>,
    /// Producer acks settings (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', default_values = ["1", "all"],
          value_parser = ["0", "1", "all", "-1"])]
    acks: Vec<String>,
    /// Scenarios to run (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', default_values = ["throughput", "latency", "restart", "coordination"])]
    scenario: Vec<Scenario>,
    /// Use a running broker instead of starting one (no restart scenario;
    /// broker CPU only with --broker-pid).
    #[arg(long, value_name = "HOST:PORT")]
    bootstrap: Option<String>,
    /// Pid of the --bootstrap broker, to read its CPU time from /proc.
    #[arg(long, requires = "bootstrap")]
    broker_pid: Option<u32>,
    /// Replication factor of the topics created (more than 1 needs a
    /// cluster: --cluster, or `millrace cluster` and --bootstrap).
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
    /// Start this many separate broker processes (each also a controller
    /// voter) instead of one broker, for the throughput and latency runs;
    /// their min.insync.replicas is 2 with --replication-factor 3, else 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9))]
    cluster: u32,
    /// Leader kills of the failover scenario.
    #[arg(long, default_value_t = 10)]
    failover_rounds: u32,
    /// The millrace binary [default: MILLRACE_BIN, else target/release/millrace].
    #[arg(long, value_name = "FILE")]
    broker_bin: Option<PathBuf>,
    /// Where to create the broker's throw-away data dirs [default: $TMPDIR].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Extra broker property, `key=value` (repeatable).
    #[arg(long = "broker-prop", value_name = "KEY=VALUE")]
    broker_props: Vec<String>,
    /// RUST_LOG of the broker we start.
    #[arg(long, default_value = "info")]
    broker_log: String,
    /// Also print one JSON object per result on stdout (the table then goes
    /// to stderr).
    #[arg(long)]
    json: bool,
    /// Producer compression.type.
    #[arg(long, default_value = "none",
          value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    compression: String,
    /// Producer linger.ms.
    #[arg(long, default_value_t = 10)]
    linger_ms: u64,
    /// Producer batch.size in bytes (Kafka's default max.message.bytes is
    /// 1048588, so larger batches are rejected).
    #[arg(long, default_value_t = 1_000_000)]
    batch_size: u64,
    /// Producer queue.buffering.max.messages.
    #[arg(long, default_value_t = 1_000_000)]
    queue_max_messages: u64,
    /// Producer queue.buffering.max.kbytes.
    #[arg(long, default_value_t = 1 << 20)]
    queue_max_kbytes: u64,
    /// Rate of the fixed-rate latency run, records per second.
    #[arg(long, default_value_t = 50_000.0)]
    latency_rate: f64,
    /// Producer linger.ms for the fixed-rate latency run (the batching
    /// delay is a floor under every latency figure).
    #[arg(long, default_value_t = 1)]
    latency_linger_ms: u64,
    /// Length of the fixed-rate latency run, in seconds.
    #[arg(long, default_value_t = 5.0)]
    latency_duration: f64,
    /// How much to write before the restart measurement (e.g. 2GiB, 500MiB).
    #[arg(long, default_value = "2GiB", value_parser = parse_size)]
    restart_bytes: u64,
    /// Value size used to fill the log dir for the restart measurement.
    #[arg(long, default_value_t = 1024)]
    restart_value_size: usize,
    /// Partitions of the restart topic.
    #[arg(long, default_value_t = 1)]
    restart_partitions: i32,
    /// Time limit for filling the log dir, in seconds.
    #[arg(long, default_value_t = 180.0)]
    restart_fill_duration: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Produce as fast as possible, then consume everything.
    Throughput,
    /// Produce at --latency-rate and report delivery latency.
    Latency,
    /// Fill a log dir, then time restarts after kill -9 and SIGTERM.
    Restart,
    /// Consumer groups (time to stable for 1 and 10 members), commit
    /// latency, and transactional vs idempotent produce throughput.
    Coordination,
    /// On its own 3-process cluster: kill -9 the leader of an RF=3
    /// partition under acks=all load, --failover-rounds times; time to the
    /// first acknowledged write on the new leader.
    Failover,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().map_err(|e| format!("{s}: {e}"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1u64,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown unit {other:?} in {s}")),
    };
    Ok((num * mult as f64) as u64)
}

fn main() -> std::process::ExitCode {
    if let Some(code) = control_plane::main_if_asked() {
        return code;
    }
    let args = Args::parse();
    client::REPLICATION_FACTOR.store(
        args.replication_factor,
        std::sync::atomic::Ordering::Relaxed,
    );
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("millrace-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Samples the CPU time of the broker, of this process and of the whole
/// machine, so a phase can report what each used.
struct CpuSample {
    at: Instant,
    broker: Option<(f64, f64)>,
    client: f64,
    machine: f64,
}

impl CpuSample {
    fn take(broker_pid: Option<u32>) -> Result<CpuSample> {
        Ok(CpuSample {
            at: Instant::now(),
            broker: broker_pid.map(broker::cpu_times).transpose()?,
            client: broker::self_cpu_seconds(),
            machine: machine_busy_seconds().unwrap_or(0.0),
        })
    }

    fn phase(&self, end: &CpuSample, records: u64) -> Phase {
        let wall = end.at.duration_since(self.at).as_secs_f64();
        let (user, sys) = match (self.broker, end.broker) {
            (Some(a), Some(b)) => (Some(b.0 - a.0), Some(b.1 - a.1)),
            _ => (None, None),
        };
        let broker = user.zip(sys).map(|(u, s)| u + s);
        let client = end.client - self.client;
        let machine = end.machine - self.machine;
        let per_m = |cpu: f64| {
            if records > 0 {
                cpu * 1e6 / records as f64
            } else {
                0.0
            }
        };
        Phase {
            wall_seconds: wall,
            broker_cpu_seconds: broker,
            broker_user_seconds: user,
            broker_sys_seconds: sys,
            broker_cpu_s_per_million: broker.map(per_m),
            broker_cores: broker.map(|b| b / wall.max(1e-9)),
            client_cpu_seconds: client,
            client_cpu_s_per_million: per_m(client),
            other_cores: ((machine - client - broker.unwrap_or(0.0)) / wall.max(1e-9)).max(0.0),
        }
    }
}

/// Busy CPU time of the whole machine (all cores) from /proc/stat.
fn machine_busy_seconds() -> Result<f64> {
    let text = std::fs::read_to_string("/proc/stat").context("read /proc/stat")?;
    let line = text.lines().next().unwrap_or_default();
    // cpu user nice system idle iowait irq softirq steal ...
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    if v.len() < 8 {
        bail!("unexpected /proc/stat: {line}");
    }
    let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    Ok(busy as f64 / broker::clock_ticks())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn run(args: &Args) -> Result<()> {
    let settings = ClientSettings {
        linger_ms: args.linger_ms,
        batch_size: args.batch_size,
        batch_num_messages: 1_000_000,
        queue_max_messages: args.queue_max_messages,
        queue_max_kbytes: args.queue_max_kbytes,
        compression: args.compression.clone(),
        fetch_max_bytes: 50 << 20,
        max_partition_fetch_bytes: 10 << 20,
        queued_max_kbytes: 1 << 20,
        queued_min_messages: 1_000_000,
        fetch_wait_max_ms: 100,
    };
    let mut out = Output::new(args.json);
    let limit = Duration::from_secs_f64(args.duration);
    let data_parent = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let wants = |s: Scenario| args.scenario.contains(&s);
    let needs_broker =
        wants(Scenario::Throughput) || wants(Scenario::Latency) || wants(Scenario::Coordination);
    let broker_bin =
        if args.bootstrap.is_none() || wants(Scenario::Restart) || wants(Scenario::Failover) {
            Some(broker::find_broker_bin(args.broker_bin.as_deref())?)
        } else {
            None
        };

    let params = serde_json::json!({
        "records": args.records,
        "duration_s": args.duration,
        "value_sizes": args.value_size,
        "partitions": args.partitions,
        "acks": args.acks,
        "replication_factor": args.replication_factor,
        "scenarios": args.scenario.iter().map(|s| format!("{s:?}").to_lowercase()).collect::<Vec<_>>(),
        "bootstrap": args.bootstrap,
        "broker_props": args.broker_props,
        "latency_rate": args.latency_rate,
        "latency_duration_s": args.latency_duration,
        "latency_linger_ms": args.latency_linger_ms,
        "restart_bytes": args.restart_bytes,
        "restart_value_size": args.restart_value_size,
        "restart_partitions": args.restart_partitions,
        "cluster": args.cluster,
        "failover_rounds": args.failover_rounds,
    });

    let calibration_bytes = 256u64 << 20;
    let page_cache_before = broker::page_cache_write_cost(&data_parent, calibration_bytes)
        .map_err(|e| eprintln!("page-cache calibration failed: {e:#}"))
        .ok();
    out.settings(
        &settings,
        params,
        broker_bin.as_deref(),
        &load_average(),
        page_cache_before,
    );

    if needs_broker {
        let mut own = None;
        let mut own_cluster = None;
        let target = match &args.bootstrap {
            Some(b) => Target {
                bootstrap: b.clone(),
                pid: args.broker_pid,
                log_dir: None,
                settings: &settings,
            },
            None if args.cluster > 1 => {
                let bin = broker_bin.as_deref().context("no broker binary")?;
                let min_isr = if args.replication_factor >= 3 { 2 } else { 1 };
                let c = failover::BenchCluster::start(
                    bin,
                    &data_parent,
                    args.cluster as usize,
                    min_isr,
                    &args.broker_props,
                    &args.broker_log,
                )?;
                eprintln!(
                    "started {} broker processes (pids {:?}) on {}",
                    args.cluster,
                    c.pids(),
                    c.bootstrap()
                );
                let target = Target {
                    bootstrap: c.bootstrap(),
                    // No broker CPU figure: it would need every process.
                    pid: None,
                    log_dir: None,
                    settings: &settings,
                };
                own_cluster = Some(c);
                target
            }
            None => {
                let bin = broker_bin.as_deref().context("no broker binary")?;
                let b = Broker::start(bin, &data_parent, &args.broker_props, &args.broker_log)?;
                eprintln!(
                    "started {} (pid {}) on {} with data in {}",
                    bin.display(),
                    b.pid().unwrap_or(0),
                    b.bootstrap(),
                    b.log_dir().display()
                );
                let target = Target {
                    bootstrap: b.bootstrap(),
                    pid: b.pid(),
                    log_dir: Some(b.log_dir()),
                    settings: &settings,
                };
                own = Some(b);
                target
            }
        };
        let tag = std::process::id();
        for &value_size in &args.value_size {
            for &partitions in &args.partitions {
                for acks in &args.acks {
                    let case = Case {
                        label: format!("{value_size}B p{partitions} acks={acks}"),
                        value_size,
                        partitions,
                        acks,
                    };
                    if wants(Scenario::Throughput) {
                        let topic = format!("bench-t-{value_size}-{partitions}-{acks}-{tag}");
                        let row = throughput(&target, &case, &topic, args.records, limit)?;
                        out.throughput(row);
                        check(&mut own)?;
                    }
                    if wants(Scenario::Latency) {
                        let topic = format!("bench-l-{value_size}-{partitions}-{acks}-{tag}");
                        let row = latency(
                            &target,
                            &case,
                            &topic,
                            args.latency_rate,
                            args.latency_duration,
                            args.latency_linger_ms,
                        )?;
                        out.latency(row);
                        check(&mut own)?;
                    }
                }
            }
        }
        if wants(Scenario::Coordination) {
            let report =
                coordination::run(&target.bootstrap, tag, args.records.min(2_000_000), limit)?;
            out.coordination(report);
            check(&mut own)?;
        }
        if let Some(pid) = target.pid {
            out.broker_peak_rss(broker::peak_rss_mib(pid));
        }
        if let Some(mut b) = own {
            b.terminate(Duration::from_secs(120))?;
        }
        if let Some(mut c) = own_cluster {
            c.terminate(Duration::from_secs(120))?;
        }
    }

    if wants(Scenario::Failover) {
        let bin = broker_bin.as_deref().context("no broker binary")?;
        let report = failover::run(
            bin,
            &data_parent,
            &args.broker_props,
            &args.broker_log,
            args.failover_rounds,
        )?;
        failover::print(&report, args.json);
    }

    if wants(Scenario::Restart) {
        if args.bootstrap.is_some() {
            eprintln!(
                "restart scenario skipped: it needs a broker this tool starts (no --bootstrap)"
            );
        } else {
            let bin = broker_bin.as_deref().context("no broker binary")?;
            let mut b = Broker::start(bin, &data_parent, &args.broker_props, &args.broker_log)?;
            let report = restart::run(
                &mut b,
                &settings,
                args.restart_bytes,
                args.restart_value_size,
                args.restart_partitions,
                Duration::from_secs_f64(args.restart_fill_duration),
            )?;
            out.restart(report);
            b.terminate(Duration::from_secs(300))?;
        }
    }

    let page_cache_after = broker::page_cache_write_cost(&data_parent, calibration_bytes).ok();
    out.finish(&load_average(), page_cache_after);
    Ok(())
}

/// The broker the runs talk to.
struct Target<'a> {
    bootstrap: String,
    pid: Option<u32>,
    /// Known when this tool started the broker.
    log_dir: Option<PathBuf>,
    settings: &'a ClientSettings,
}

/// One combination of value size, partitions and acks.
struct Case<'a> {
    label: String,
    value_size: usize,
    partitions: i32,
    acks: &'a str,
}

fn check(own: &mut Option<Broker>) -> Result<()> {
    match own {
        Some(b) => b.check_alive(),
        None => Ok(()),
    }
}

fn throughput(
    target: &Target<'_>,
    case: &Case<'_>,
    topic: &str,
    records: u64,
    limit: Duration,
) -> Result<ThroughputRow> {
    let (bootstrap, pid, settings) = (target.bootstrap.as_str(), target.pid, target.settings);
    let label = &case.label;
    client::create_topic(bootstrap, topic, case.partitions)?;
    let load = load_average();
    eprintln!("{label}: producing up to {records} records for up to {limit:?} (load {load})...");
    let c0 = CpuSample::take(pid)?;
    let produced = client::produce(
        bootstrap,
        settings,
        case.acks,
        topic,
        case.value_size,
        records,
        limit,
        Pace::Flat,
    )?;
    let c1 = CpuSample::take(pid)?;
    let log_bytes_per_record = target.log_dir.as_ref().and_then(|dir| {
        let bytes = broker::topic_log_bytes(dir, topic, case.partitions);
        (produced.delivered > 0).then(|| bytes as f64 / produced.delivered as f64)
    });
    eprintln!("{label}: consuming {} records...", produced.delivered);
    let consumed = client::consume(
        bootstrap,
        settings,
        topic,
        case.partitions,
        produced.delivered,
        limit,
    )?;
    let c2 = CpuSample::take(pid)?;
    if let Err(e) = client::delete_topic(bootstrap, topic) {
        eprintln!("{label}: could not delete {topic}: {e:#}");
    }
    let produce_phase = c0.phase(&c1, produced.delivered);
    let consume_phase = c1.phase(&c2, consumed.records);
    Ok(ThroughputRow::new(
        label,
        case.value_size,
        case.partitions,
        case.acks,
        &settings.compression,
        load,
        produced,
        produce_phase,
        log_bytes_per_record,
        consumed,
        consume_phase,
    ))
}

fn latency(
    target: &Target<'_>,
    case: &Case<'_>,
    topic: &str,
    rate: f64,
    seconds: f64,
    linger_ms: u64,
) -> Result<LatencyRow> {
    let (bootstrap, pid) = (target.bootstrap.as_str(), target.pid);
    let settings = &ClientSettings {
        linger_ms,
        ..target.settings.clone()
    };
    let label = &case.label;
    client::create_topic(bootstrap, topic, case.partitions)?;
    let records = (rate * seconds).ceil() as u64;
    eprintln!("{label}: {records} records at {rate} rec/s...");
    let c0 = CpuSample::take(pid)?;
    let produced = client::produce(
        bootstrap,
        settings,
        case.acks,
        topic,
        case.value_size,
        records,
        Duration::from_secs_f64(seconds * 2.0 + 5.0),
        Pace::Rate(rate),
    )?;
    let c1 = CpuSample::take(pid)?;
    if let Err(e) = client::delete_topic(bootstrap, topic) {
        eprintln!("{label}: could not delete {topic}: {e:#}");
    }
    let phase = c0.phase(&c1, produced.delivered);
    Ok(LatencyRow::new(
        label,
        case.value_size,
        case.partitions,
        case.acks,
        rate,
        linger_ms,
        produced,
        phase,
    ))
}
