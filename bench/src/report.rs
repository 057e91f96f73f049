//! Results: JSON lines as they come (with `--json`) and tables at the end.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::client::{ClientSettings, ConsumeResult, ProduceResult};
use crate::coordination::CoordinationReport;
use crate::restart::RestartReport;

/// CPU and wall time of one phase.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// Wall-clock length of the phase (incl. client setup), seconds.
    pub wall_seconds: f64,
    /// Broker utime+stime during the phase (None without a broker pid).
    pub broker_cpu_seconds: Option<f64>,
    /// Of which user time.
    pub broker_user_seconds: Option<f64>,
    /// Of which system (kernel) time.
    pub broker_sys_seconds: Option<f64>,
    /// Broker CPU seconds per million records (= µs per record).
    pub broker_cpu_s_per_million: Option<f64>,
    /// Broker CPU seconds / wall seconds.
    pub broker_cores: Option<f64>,
    /// This process' (the librdkafka client's) CPU seconds.
    pub client_cpu_seconds: f64,
    /// Client CPU seconds per million records.
    pub client_cpu_s_per_million: f64,
    /// Busy cores on the machine used by neither broker nor client (noise).
    pub other_cores: f64,
}

/// One produce-then-consume run.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputRow {
    #[serde(rename = "type")]
    kind: &'static str,
    label: String,
    value_size: usize,
    partitions: i32,
    acks: String,
    compression: String,
    load_average: String,
    produce: ProduceResult,
    produce_records_per_s: f64,
    produce_mb_per_s: f64,
    produce_phase: Phase,
    /// Bytes of `.log` segment files per record produced (own broker only).
    log_bytes_per_record: Option<f64>,
    consume: ConsumeResult,
    consume_records_per_s: f64,
    consume_mb_per_s: f64,
    consume_phase: Phase,
}

impl ThroughputRow {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        label: &str,
        value_size: usize,
        partitions: i32,
        acks: &str,
        compression: &str,
        load_average: String,
        produce: ProduceResult,
        produce_phase: Phase,
        log_bytes_per_record: Option<f64>,
        consume: ConsumeResult,
        consume_phase: Phase,
    ) -> ThroughputRow {
        let rate = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        let produce_records_per_s = rate(produce.delivered, produce.seconds);
        let produce_mb_per_s = rate(produce.delivered * value_size as u64, produce.seconds) / 1e6;
        let consume_records_per_s = rate(consume.records, consume.seconds);
        let consume_mb_per_s = rate(consume.bytes, consume.seconds) / 1e6;
        ThroughputRow {
            kind: "throughput",
            label: label.to_string(),
            value_size,
            partitions,
            acks: acks.to_string(),
            compression: compression.to_string(),
            load_average,
            produce,
            produce_records_per_s,
            produce_mb_per_s,
            produce_phase,
            log_bytes_per_record,
            consume,
            consume_records_per_s,
            consume_mb_per_s,
            consume_phase,
        }
    }
}

/// One fixed-rate produce run.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRow {
    #[serde(rename = "type")]
    kind: &'static str,
    label: String,
    value_size: usize,
    partitions: i32,
    acks: String,
    target_rate: f64,
    achieved_rate: f64,
    linger_ms: u64,
    produce: ProduceResult,
    phase: Phase,
}

impl LatencyRow {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        label: &str,
        value_size: usize,
        partitions: i32,
        acks: &str,
        target_rate: f64,
        linger_ms: u64,
        produce: ProduceResult,
        phase: Phase,
    ) -> LatencyRow {
        let achieved_rate = if produce.seconds > 0.0 {
            produce.delivered as f64 / produce.seconds
        } else {
            0.0
        };
        LatencyRow {
            kind: "latency",
            label: label.to_string(),
            value_size,
            partitions,
            acks: acks.to_string(),
            target_rate,
            achieved_rate,
            linger_ms,
            produce,
            phase,
        }
    }
}

/// Collects results and prints them.
pub struct Output {
    json: bool,
    header: String,
    throughput: Vec<ThroughputRow>,
    latency: Vec<LatencyRow>,
    restart: Option<RestartReport>,
    coordination: Option<CoordinationReport>,
    peak_rss: Option<f64>,
}

/// Broker kernel CPU seconds per million records.
fn sys_per_m(phase: &Phase, records: u64) -> Option<f64> {
    phase
        .broker_sys_seconds
        .filter(|_| records > 0)
        .map(|s| s * 1e6 / records as f64)
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.prec$}"))
}

impl Output {
    pub fn new(json: bool) -> Output {
        Output {
            json,
            header: String::new(),
            throughput: Vec::new(),
            latency: Vec::new(),
            restart: None,
            coordination: None,
            peak_rss: None,
        }
    }

    fn emit<T: Serialize>(&self, value: &T) {
        if self.json {
            match serde_json::to_string(value) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("cannot serialise a result: {e}"),
            }
        }
    }

    /// Records the settings (printed first in the table and as JSON).
    pub fn settings(
        &mut self,
        settings: &ClientSettings,
        params: serde_json::Value,
        broker_bin: Option<&Path>,
        load: &str,
        page_cache_s_per_gb: Option<f64>,
    ) {
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        self.emit(&serde_json::json!({
            "type": "settings",
            "client": settings,
            "params": params,
            "broker_bin": broker_bin.map(|p| p.display().to_string()),
            "cpus": cpus,
            "load_average": load,
            "librdkafka": rdkafka::util::get_rdkafka_version().1,
            "page_cache_write_cpu_s_per_gb": page_cache_s_per_gb,
        }));
        let mut h = String::new();
        let _ = writeln!(
            h,
            "millrace-bench: librdkafka {}, {cpus} CPUs, load average at start {load}",
            rdkafka::util::get_rdkafka_version().1
        );
        let _ = writeln!(h, "  run:      {params}");
        let _ = writeln!(
            h,
            "  machine:  writing new data into the page cache costs {} CPU-s per GB (256 MiB in 1 MiB writes, before the runs)",
            opt(page_cache_s_per_gb, 2)
        );
        let _ = writeln!(
            h,
            "  producer: acks per row, enable.idempotence=false, linger.ms={}, batch.size={}, batch.num.messages={}, \
             queue.buffering.max.messages={}, queue.buffering.max.kbytes={}, compression.type={}; \
             one thread sending as fast as librdkafka accepts (polls on QueueFull), values are random bytes, no key, \
             default (sticky) partitioner",
            settings.linger_ms,
            settings.batch_size,
            settings.batch_num_messages,
            settings.queue_max_messages,
            settings.queue_max_kbytes,
            settings.compression
        );
        let _ = writeln!(
            h,
            "  consumer: assign() all partitions from the beginning (group.id set for librdkafka, never joined, no commits); fetch.max.bytes={}, max.partition.fetch.bytes={}, \
             queued.max.messages.kbytes={}, queued.min.messages={}, fetch.wait.max.ms={}",
            settings.fetch_max_bytes,
            settings.max_partition_fetch_bytes,
            settings.queued_max_kbytes,
            settings.queued_min_messages,
            settings.fetch_wait_max_ms
        );
        self.header = h;
    }

    pub fn throughput(&mut self, row: ThroughputRow) {
        self.emit(&row);
        eprintln!(
            "{}: produced {:.0} rec/s ({:.1} MB/s, p99 {:.1} ms, broker {} s/M), consumed {:.0} rec/s ({:.1} MB/s, broker {} s/M)",
            row.label,
            row.produce_records_per_s,
            row.produce_mb_per_s,
            row.produce.latency_ms.p99,
            opt(row.produce_phase.broker_cpu_s_per_million, 2),
            row.consume_records_per_s,
            row.consume_mb_per_s,
            opt(row.consume_phase.broker_cpu_s_per_million, 2),
        );
        self.throughput.push(row);
    }

    pub fn latency(&mut self, row: LatencyRow) {
        self.emit(&row);
        eprintln!(
            "{}: at {:.0} rec/s: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
            row.label,
            row.achieved_rate,
            row.produce.latency_ms.p50,
            row.produce.latency_ms.p99,
            row.produce.latency_ms.p999
        );
        self.latency.push(row);
    }

    pub fn restart(&mut self, report: RestartReport) {
        self.emit(&serde_json::json!({ "type": "restart", "report": &report }));
        self.restart = Some(report);
    }

    pub fn coordination(&mut self, report: CoordinationReport) {
        self.emit(&serde_json::json!({ "type": "coordination", "report": &report }));
        self.coordination = Some(report);
    }

    pub fn broker_peak_rss(&mut self, mib: Option<f64>) {
        self.peak_rss = mib;
        if let Some(mib) = mib {
            self.emit(&serde_json::json!({ "type": "broker_memory", "peak_rss_mib": mib }));
        }
    }

    /// Prints the tables (stdout, or stderr with `--json`).
    pub fn finish(&self, load: &str, page_cache_s_per_gb: Option<f64>) {
        self.emit(&serde_json::json!({
            "type": "end",
            "load_average": load,
            "page_cache_write_cpu_s_per_gb": page_cache_s_per_gb,
        }));
        let mut t = String::new();
        let _ = writeln!(t);
        t.push_str(&self.header);
        if !self.throughput.is_empty() {
            let _ = writeln!(t, "\nPRODUCE (as fast as possible; latency = send() to delivery report, includes queueing in librdkafka)");
            let _ = writeln!(
                t,
                "{:<22} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} | {:>9} {:>6} {:>9} {:>6} {:>5}",
                "scenario",
                "records",
                "rec/s",
                "MB/s",
                "p50 ms",
                "p99 ms",
                "p999 ms",
                "brk s/M",
                "brk c",
                "cli s/M",
                "oth c",
                "err"
            );
            for r in &self.throughput {
                let _ = writeln!(
                    t,
                    "{:<22} {:>9} {:>10.0} {:>8.1} {:>8.2} {:>8.2} {:>8.2} | {:>9} {:>8} {:>6} {:>9.2} {:>6.2} {:>6} {:>5}{}",
                    r.label,
                    r.produce.delivered,
                    r.produce_records_per_s,
                    r.produce_mb_per_s,
                    r.produce.latency_ms.p50,
                    r.produce.latency_ms.p99,
                    r.produce.latency_ms.p999,
                    opt(r.produce_phase.broker_cpu_s_per_million, 3),
                    opt(sys_per_m(&r.produce_phase, r.produce.delivered), 3),
                    opt(r.produce_phase.broker_cores, 2),
                    r.produce_phase.client_cpu_s_per_million,
                    r.produce_phase.other_cores,
                    opt(r.log_bytes_per_record, 1),
                    r.produce.failed,
                    if r.produce.hit_time_limit { "  (time limit)" } else { "" }
                );
            }
            let _ = writeln!(
                t,
                "\nCONSUME (assign() every partition from offset 0, read everything produced)"
            );
            let _ = writeln!(
                t,
                "{:<22} {:>9} {:>10} {:>8} | {:>9} {:>6} {:>9} {:>6} {:>5}",
                "scenario",
                "records",
                "rec/s",
                "MB/s",
                "brk s/M",
                "brk c",
                "cli s/M",
                "oth c",
                "err"
            );
            for r in &self.throughput {
                let _ = writeln!(
                    t,
                    "{:<22} {:>9} {:>10.0} {:>8.1} | {:>9} {:>8} {:>6} {:>9.2} {:>6.2} {:>5}{}",
                    r.label,
                    r.consume.records,
                    r.consume_records_per_s,
                    r.consume_mb_per_s,
                    opt(r.consume_phase.broker_cpu_s_per_million, 3),
                    opt(sys_per_m(&r.consume_phase, r.consume.records), 3),
                    opt(r.consume_phase.broker_cores, 2),
                    r.consume_phase.client_cpu_s_per_million,
                    r.consume_phase.other_cores,
                    r.consume.errors,
                    if r.consume.hit_time_limit {
                        "  (time limit: not all read)"
                    } else {
                        ""
                    }
                );
            }
        }
        if !self.latency.is_empty() {
            let _ = writeln!(
                t,
                "\nLATENCY (fixed rate, producer linger.ms={}; from each record's scheduled send time to its delivery report)",
                self.latency[0].linger_ms
            );
            let _ = writeln!(
                t,
                "{:<22} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} | {:>9} {:>6} {:>5}",
                "scenario",
                "records",
                "rec/s",
                "p50 ms",
                "p99 ms",
                "p999 ms",
                "max ms",
                "brk s/M",
                "brk c",
                "err"
            );
            for r in &self.latency {
                let l = &r.produce.latency_ms;
                let _ = writeln!(
                    t,
                    "{:<22} {:>9} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} | {:>9} {:>6} {:>5}",
                    r.label,
                    r.produce.delivered,
                    r.achieved_rate,
                    l.p50,
                    l.p99,
                    l.p999,
                    l.max,
                    opt(r.phase.broker_cpu_s_per_million, 3),
                    opt(r.phase.broker_cores, 2),
                    r.produce.failed
                );
            }
        }
        if let Some(c) = &self.coordination {
            let _ = writeln!(t, "\nGROUPS AND TRANSACTIONS (librdkafka, range assignor, default group.initial.rebalance.delay.ms)");
            for (members, seconds) in &c.group_stable_seconds {
                let _ = writeln!(
                    t,
                    "  new group of {members:>2}: every member assigned after {seconds:.2} s"
                );
            }
            let _ = writeln!(
                t,
                "  synchronous commit: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} commits)",
                c.commit_latency_ms.p50,
                c.commit_latency_ms.p99,
                c.commit_latency_ms.max,
                c.commits
            );
            let _ = writeln!(
                t,
                "  produce {} B, 1 partition: transactional {:.0} rec/s ({} txns of {}), idempotent {:.0} rec/s",
                c.value_size,
                c.transactional_records_per_s,
                c.transactions,
                c.records_per_transaction,
                c.idempotent_records_per_s
            );
        }
        if let Some(rep) = &self.restart {
            let _ = writeln!(
                t,
                "\nRESTART ({} partition(s), filled with {} records of {} B in {:.1} s; times from spawn)",
                rep.partitions, rep.fill.delivered, rep.value_size, rep.fill.seconds
            );
            let _ = writeln!(
                t,
                "{:<8} {:>10} {:>12} {:>12} {:>12} {:>11} {:>12} {:>14}",
                "stop",
                "data MiB",
                "recs before",
                "recs after",
                "shutdown ms",
                "listen ms",
                "metadata ms",
                "1st fetch ms"
            );
            for r in &rep.restarts {
                let _ = writeln!(
                    t,
                    "{:<8} {:>10.0} {:>12} {:>12} {:>12} {:>11.0} {:>12.0} {:>14.0}",
                    r.kind,
                    r.data_bytes as f64 / (1 << 20) as f64,
                    r.records_before,
                    r.records_after,
                    opt(r.shutdown_ms, 0),
                    r.listen_ms,
                    r.metadata_ms,
                    r.first_fetch_ms
                );
            }
        }
        let _ = writeln!(t);
        if let Some(mib) = self.peak_rss {
            let _ = writeln!(
                t,
                "broker peak RSS during throughput/latency runs: {mib:.0} MiB"
            );
        }
        let _ = writeln!(
            t,
            "page-cache write cost after the runs: {} CPU-s per GB (the broker pays roughly B/rec x this per record \
             in its pwrite() calls)",
            opt(page_cache_s_per_gb, 2)
        );
        let _ = writeln!(
            t,
            "s/M = CPU seconds per million records = µs of CPU per record ((sys) = the kernel part of brk s/M); \
             c = cores busy (CPU s / wall s); brk = broker process, cli = this client (librdkafka), \
             oth = everything else on the machine (noise: other processes); B/rec = bytes of .log segment per record; \
             MB = 10^6 bytes of values. Load average at end: {load}"
        );
        if self.json {
            eprint!("{t}");
        } else {
            print!("{t}");
        }
    }
}
