//! The log manager: every partition log on this broker, across log dirs,
//! plus the background threads that keep them tidy.
//!
//! # Start-up
//!
//! For each log dir: create it if missing (a dir that cannot be used is
//! reported offline, the others go on), note whether the clean-shutdown
//! marker is there, read the four checkpoint files, remove leftover
//! `-delete` dirs, then load every `<topic>-<partition>` dir with
//! `recovery_threads_per_dir` threads. Only then is the marker removed, so a
//! crash during start-up after a clean shutdown still starts cleanly.
//!
//! # Background threads
//!
//! `log-scheduler` (delayed deletes, flushes after rolls), `log-retention`,
//! `producer-expiration` (`producer.id.expiration.ms`),
//! `log-flusher` (only if `flush_scheduler_interval_ms` is finite),
//! `log-checkpoint` and `log-cleaner-N`. They hold only a weak reference to
//! the manager and stop on [`LogManager::shutdown`].

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::background::{Background, Task};
use crate::checkpoint::{sync_dir, OffsetCheckpointFile, PartitionMetadataFile};
use crate::config::{LogConfig, LogManagerOptions, TopicPartition};
use crate::error::{Result, StorageError};
use crate::file_names::{
    delete_dir_name, is_delete_dir, parse_partition_dir, partition_dir_name,
    CLEANER_OFFSET_CHECKPOINT, CLEAN_SHUTDOWN_FILE, LOG_START_OFFSET_CHECKPOINT, METADATA_TOPIC,
    PARTITION_METADATA, RECOVERY_POINT_CHECKPOINT, REPLICATION_OFFSET_CHECKPOINT,
};
use crate::log::Log;
use crate::log_dir::DirState;
use crate::now_ms;
use crate::recovery::LoadParams;
use crate::usage::DiskUsage;

/// One partition's size, for DescribeLogDirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionUsage {
    /// The partition.
    pub topic_partition: TopicPartition,
    /// Bytes of all its segments.
    pub size_bytes: u64,
}

/// One log dir's state, for DescribeLogDirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDirUsage {
    /// The log dir.
    pub path: PathBuf,
    /// Size of the file system holding it (at most the storage cap).
    pub total_bytes: u64,
    /// Bytes an unprivileged writer may still use (at most what the
    /// storage cap leaves).
    pub usable_bytes: u64,
    /// Why the dir is offline, if it is.
    pub error: Option<String>,
    /// Partitions stored in it.
    pub partitions: Vec<PartitionUsage>,
}

/// Wakes sleeping background threads on shutdown.
#[derive(Debug, Default)]
struct Stopper {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stopper {
    /// Sleeps up to `ms`; returns whether shutdown began.
    fn sleep(&self, ms: u64) -> bool {
        let mut stopped = self.stopped.lock();
        if !*stopped {
            let ms = ms.clamp(1, 24 * 60 * 60 * 1000);
            self.wake.wait_for(&mut stopped, Duration::from_millis(ms));
        }
        *stopped
    }

    fn stop(&self) {
        *self.stopped.lock() = true;
        self.wake.notify_all();
    }

    fn is_stopped(&self) -> bool {
        *self.stopped.lock()
    }
}

/// Every partition log of the broker. `Send + Sync`; use behind `Arc`.
#[derive(Debug)]
pub struct LogManager {
    options: LogManagerOptions,
    dirs: Vec<Arc<DirState>>,
    clean_shutdown: bool,
    logs: RwLock<BTreeMap<TopicPartition, Arc<Log>>>,
    create_lock: Mutex<()>,
    checkpoint_lock: Mutex<()>,
    background: Arc<Background>,
    stopper: Arc<Stopper>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    closed: AtomicBool,
    /// `producer.id.expiration.ms`.
    producer_id_expiration_ms: AtomicI64,
    /// Segment bytes of all logs and the cap on them.
    usage: Arc<DiskUsage>,
}

/// Kafka's `producer.id.expiration.check.interval.ms` default (10 minutes).
pub const PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS: u64 = 600_000;

/// Checkpoints read from one log dir.
#[derive(Default)]
struct DirCheckpoints {
    recovery: HashMap<TopicPartition, i64>,
    log_start: HashMap<TopicPartition, i64>,
    high_watermark: HashMap<TopicPartition, i64>,
    cleaner: HashMap<TopicPartition, i64>,
}

fn read_checkpoint(dir: &Path, name: &str) -> Result<HashMap<TopicPartition, i64>> {
    match OffsetCheckpointFile::new(dir.join(name)).read() {
        Err(StorageError::Corrupt(why)) => {
            tracing::warn!(dir = %dir.display(), "ignoring corrupt checkpoint {name}: {why}");
            Ok(HashMap::new())
        }
        other => other,
    }
}

fn prepare_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    if !fs::metadata(dir)?.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    // Fail early on a read-only or broken disk.
    fs::read_dir(dir)?;
    Ok(())
}

impl LogManager {
    /// Opens every log dir and loads every partition found (recovering those
    /// after an unclean shutdown). A dir that fails is reported offline
    /// (see [`LogManager::offline_dirs`]) and the others are used; it is an
    /// error only if no dir is usable.
    pub fn open(
        options: LogManagerOptions,
        config_for: impl Fn(&TopicPartition) -> LogConfig,
    ) -> Result<Arc<LogManager>> {
        if options.log_dirs.is_empty() {
            return Err(StorageError::InvalidOffset("no log dirs configured".into()));
        }
        let background = Background::new();
        let dirs: Vec<Arc<DirState>> = options
            .log_dirs
            .iter()
            .map(|p| Arc::new(DirState::new(p.clone())))
            .collect();
        let mut all_clean = true;
        let mut logs = BTreeMap::new();
        for dir in &dirs {
            if let Err(e) = prepare_dir(dir.path()) {
                dir.mark_offline(format!("cannot use log dir: {e}"));
                all_clean = false;
                continue;
            }
            let clean = dir.path().join(CLEAN_SHUTDOWN_FILE).exists();
            all_clean &= clean;
            match Self::load_dir(&options, dir, clean, &config_for, &background) {
                Ok(loaded) => {
                    for log in loaded {
                        let tp = log.topic_partition().clone();
                        if let Some(other) = logs.get(&tp) {
                            let other: &Arc<Log> = other;
                            return Err(StorageError::Corrupt(format!(
                                "{tp} exists in both {} and {}",
                                other.log_dir().display(),
                                log.log_dir().display()
                            )));
                        }
                        logs.insert(tp, log);
                    }
                }
                Err(e) => {
                    dir.mark_offline(format!("loading logs failed: {e}"));
                    continue;
                }
            }
            let marker = dir.path().join(CLEAN_SHUTDOWN_FILE);
            if clean {
                if let Err(e) = fs::remove_file(&marker).and_then(|_| sync_dir(dir.path())) {
                    dir.mark_offline(format!("cannot remove {}: {e}", marker.display()));
                }
            }
        }
        if dirs.iter().all(|d| d.is_offline()) {
            let reasons: Vec<String> = dirs
                .iter()
                .map(|d| format!("{}: {}", d.path().display(), d.error().unwrap_or_default()))
                .collect();
            return Err(StorageError::Io {
                context: "opening the log dirs".into(),
                source: io::Error::other(format!("no usable log dir ({})", reasons.join("; "))),
            });
        }
        let usage = Arc::new(DiskUsage::default());
        usage.set_cap(options.max_bytes);
        for log in logs.values() {
            log.attach_usage(usage.clone());
        }
        Ok(Arc::new(LogManager {
            usage,
            options,
            dirs,
            clean_shutdown: all_clean,
            logs: RwLock::new(logs),
            create_lock: Mutex::new(()),
            checkpoint_lock: Mutex::new(()),
            background,
            stopper: Arc::new(Stopper::default()),
            threads: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            producer_id_expiration_ms: AtomicI64::new(
                crate::producer_state::DEFAULT_PRODUCER_ID_EXPIRATION_MS,
            ),
        }))
    }

    fn load_dir(
        options: &LogManagerOptions,
        dir: &Arc<DirState>,
        clean: bool,
        config_for: &impl Fn(&TopicPartition) -> LogConfig,
        background: &Arc<Background>,
    ) -> Result<Vec<Arc<Log>>> {
        let path = dir.path();
        let checkpoints = DirCheckpoints {
            recovery: read_checkpoint(path, RECOVERY_POINT_CHECKPOINT)?,
            log_start: read_checkpoint(path, LOG_START_OFFSET_CHECKPOINT)?,
            high_watermark: read_checkpoint(path, REPLICATION_OFFSET_CHECKPOINT)?,
            cleaner: read_checkpoint(path, CLEANER_OFFSET_CHECKPOINT)?,
        };
        let mut jobs = Vec::new();
        let entries =
            fs::read_dir(path).map_err(|e| StorageError::io("listing the log dir", path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io("listing the log dir", path, e))?;
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_dir {
                continue;
            }
            if is_delete_dir(&name) {
                background.schedule(Task::DeleteDir {
                    due_ms: 0,
                    path: entry.path(),
                });
                continue;
            }
            let Some(tp) = parse_partition_dir(&name) else {
                continue;
            };
            if tp.topic == METADATA_TOPIC {
                continue;
            }
            let config = config_for(&tp);
            jobs.push(LoadParams {
                recovery_point: checkpoints.recovery.get(&tp).copied(),
                log_start_offset: checkpoints.log_start.get(&tp).copied(),
                high_watermark: checkpoints.high_watermark.get(&tp).copied(),
                cleaner_offset: checkpoints.cleaner.get(&tp).copied(),
                dir: entry.path(),
                tp,
                config,
                dir_state: dir.clone(),
                background: background.clone(),
                clean_shutdown: clean,
            });
        }
        let threads = options
            .recovery_threads_per_dir
            .max(1)
            .min(jobs.len().max(1));
        let queue = Mutex::new(jobs);
        let results: Mutex<Vec<Result<Arc<Log>>>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let Some(job) = queue.lock().pop() else {
                        break;
                    };
                    let loaded = Log::load(job);
                    results.lock().push(loaded);
                });
            }
        });
        results.into_inner().into_iter().collect()
    }

    /// Whether every log dir had the clean-shutdown marker at start-up.
    pub fn was_clean_shutdown(&self) -> bool {
        self.clean_shutdown
    }

    /// The configured log dirs.
    pub fn log_dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path().to_path_buf()).collect()
    }

    /// Log dirs that failed, with the reason.
    pub fn offline_dirs(&self) -> Vec<(PathBuf, String)> {
        self.dirs
            .iter()
            .filter(|d| d.is_offline())
            .map(|d| (d.path().to_path_buf(), d.error().unwrap_or_default()))
            .collect()
    }

    /// The log of `tp`, if this broker has one.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Log>> {
        self.logs.read().get(tp).cloned()
    }

    /// All logs.
    pub fn logs(&self) -> Vec<Arc<Log>> {
        self.logs.read().values().cloned().collect()
    }

    /// The log of `tp`, created in the online dir with the fewest partitions
    /// if missing. An existing log with another topic id is
    /// [`StorageError::TopicIdMismatch`]; a nil id on either side matches.
    pub fn get_or_create(
        &self,
        tp: &TopicPartition,
        topic_id: uuid::Uuid,
        config: LogConfig,
    ) -> Result<Arc<Log>> {
        let _g = self.create_lock.lock();
        if let Some(log) = self.get(tp) {
            let existing = log.topic_id();
            if existing.is_nil() && !topic_id.is_nil() {
                PartitionMetadataFile::new(log.dir().join(PARTITION_METADATA)).write(topic_id)?;
                log.set_topic_id(topic_id);
            } else if existing != topic_id && !topic_id.is_nil() {
                return Err(StorageError::TopicIdMismatch {
                    topic_partition: tp.clone(),
                    existing,
                    requested: topic_id,
                });
            }
            return Ok(log);
        }
        let counts: HashMap<PathBuf, usize> = {
            let logs = self.logs.read();
            let mut counts = HashMap::new();
            for log in logs.values() {
                *counts.entry(log.log_dir().to_path_buf()).or_insert(0) += 1;
            }
            counts
        };
        let Some(dir) = self
            .dirs
            .iter()
            .filter(|d| !d.is_offline())
            .min_by_key(|d| counts.get(d.path()).copied().unwrap_or(0))
        else {
            return Err(StorageError::LogDirOffline(
                self.dirs[0].path().to_path_buf(),
            ));
        };
        let partition_dir = dir.path().join(partition_dir_name(tp));
        let log = if partition_dir.exists() {
            // Left by an earlier run but not loaded (e.g. created after
            // start-up by another process): open it rather than overwrite it.
            Log::load(LoadParams {
                tp: tp.clone(),
                dir: partition_dir,
                config,
                dir_state: dir.clone(),
                background: self.background.clone(),
                clean_shutdown: false,
                recovery_point: None,
                log_start_offset: None,
                high_watermark: None,
                cleaner_offset: None,
            })
            .and_then(|log| {
                let existing = log.topic_id();
                if !existing.is_nil() && !topic_id.is_nil() && existing != topic_id {
                    return Err(StorageError::TopicIdMismatch {
                        topic_partition: tp.clone(),
                        existing,
                        requested: topic_id,
                    });
                }
                if existing.is_nil() && !topic_id.is_nil() {
                    PartitionMetadataFile::new(log.dir().join(PARTITION_METADATA))
                        .write(topic_id)?;
                    log.set_topic_id(topic_id);
                }
                Ok(log)
            })
        } else {
            Log::create_new(
                tp.clone(),
                partition_dir,
                topic_id,
                config,
                dir.clone(),
                self.background.clone(),
            )
        };
        let log = match log {
            Err(e) if e.is_disk_failure() => {
                dir.mark_offline(format!("creating {tp}: {e}"));
                return Err(e);
            }
            other => other?,
        };
        log.attach_usage(self.usage.clone());
        self.logs.write().insert(tp.clone(), log.clone());
        tracing::info!(log = %tp, dir = %dir.path().display(), "created log");
        Ok(log)
    }

    /// Deletes a partition: renames its dir to `<tp>.<uuid>-delete` and
    /// removes it after `file.delete.delay.ms` in the background. Unknown
    /// partitions are a no-op.
    pub fn delete(&self, tp: &TopicPartition) -> Result<()> {
        let _g = self.create_lock.lock();
        let Some(log) = self.logs.write().remove(tp) else {
            return Ok(());
        };
        let _append = log.append_lock();
        log.mark_deleted();
        // Its bytes stop counting against the cap now, not when the
        // renamed dir is removed after file.delete.delay.ms.
        log.detach_usage();
        let from = log.dir().to_path_buf();
        let to = log
            .log_dir()
            .join(delete_dir_name(tp, uuid::Uuid::new_v4()));
        let result = fs::rename(&from, &to)
            .and_then(|_| sync_dir(log.log_dir()))
            .map_err(|e| {
                StorageError::io(
                    format!("renaming {} for deletion", from.display()),
                    log.log_dir(),
                    e,
                )
            });
        if let Err(e) = &result {
            if e.is_disk_failure() {
                log.dir_state().mark_offline(format!("deleting {tp}: {e}"));
            }
        }
        result?;
        self.background.schedule(Task::DeleteDir {
            due_ms: now_ms().saturating_add(log.config().file_delete_delay_ms.max(0)),
            path: to,
        });
        tracing::info!(log = %tp, "deleted log");
        Ok(())
    }

    /// The running total of segment bytes and the storage cap.
    pub fn disk_usage(&self) -> &Arc<DiskUsage> {
        &self.usage
    }

    /// Changes `millrace.log.dirs.max.bytes` at runtime (a dynamic broker
    /// config); appends refused at the old cap succeed once under the new.
    pub fn set_max_bytes(&self, cap: u64) {
        if self.usage.cap() != cap {
            tracing::info!(cap, used = self.usage.used(), "storage cap changed");
            self.usage.set_cap(cap);
        }
    }

    /// Writes the recovery point, log start offset, high watermark and
    /// cleaner checkpoints of every online dir.
    pub fn checkpoint(&self) -> Result<()> {
        let _g = self.checkpoint_lock.lock();
        let logs = self.logs();
        let mut first_err = None;
        for dir in self.dirs.iter().filter(|d| !d.is_offline()) {
            let mine: Vec<&Arc<Log>> = logs
                .iter()
                .filter(|l| l.log_dir() == dir.path() && !l.is_deleted())
                .collect();
            let entries = |f: &dyn Fn(&Log) -> Option<i64>| -> Vec<(TopicPartition, i64)> {
                mine.iter()
                    .filter_map(|l| f(l).map(|o| (l.topic_partition().clone(), o)))
                    .collect()
            };
            let files: [(&str, Vec<(TopicPartition, i64)>); 4] = [
                (
                    RECOVERY_POINT_CHECKPOINT,
                    entries(&|l| Some(l.recovery_point())),
                ),
                (
                    LOG_START_OFFSET_CHECKPOINT,
                    entries(&|l| Some(l.log_start_offset())),
                ),
                (
                    REPLICATION_OFFSET_CHECKPOINT,
                    entries(&|l| Some(l.high_watermark())),
                ),
                (
                    CLEANER_OFFSET_CHECKPOINT,
                    entries(&|l| {
                        let o = l.first_dirty_offset.load(Ordering::Acquire);
                        (o >= 0).then_some(o)
                    }),
                ),
            ];
            for (name, entries) in files {
                if let Err(e) = OffsetCheckpointFile::new(dir.path().join(name)).write(&entries) {
                    if e.is_disk_failure() {
                        dir.mark_offline(format!("writing {name}: {e}"));
                    }
                    first_err.get_or_insert(e);
                    break;
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// One retention pass over every log (the retention thread's work).
    /// Returns the number of segments deleted.
    pub fn run_retention_once(&self, now_ms: i64) -> usize {
        let mut deleted = 0;
        for log in self.logs() {
            if log.dir_state().is_offline() {
                continue;
            }
            match log.enforce_retention(now_ms) {
                Ok(n) => deleted += n,
                Err(e) => tracing::warn!(log = %log.topic_partition(), "retention failed: {e}"),
            }
        }
        deleted
    }

    /// Sets `producer.id.expiration.ms` (Kafka's default, one day, until
    /// set): how long a producer without an open transaction keeps its
    /// idempotence state after its last append. A setter rather than a
    /// `LogManagerOptions` field so existing option literals keep compiling.
    pub fn set_producer_id_expiration_ms(&self, ms: i64) {
        self.producer_id_expiration_ms.store(ms, Ordering::Release);
    }

    /// The current `producer.id.expiration.ms`.
    pub fn producer_id_expiration_ms(&self) -> i64 {
        self.producer_id_expiration_ms.load(Ordering::Acquire)
    }

    /// Removes expired producer ids from every log (Kafka's periodic
    /// producer expiration check; the `producer-expiration` thread runs it
    /// every ten minutes). Returns how many producers were removed.
    pub fn expire_producers(&self, now_ms: i64) -> usize {
        let ms = self.producer_id_expiration_ms();
        self.logs()
            .iter()
            .filter(|l| !l.dir_state().is_offline() && !l.is_deleted())
            .map(|l| l.expire_producers(now_ms, ms))
            .sum()
    }

    /// One cleaner pass: compacts every log that needs it. Returns the
    /// number of logs compacted.
    pub fn run_cleaner_once(&self, now_ms: i64) -> usize {
        let mut logs: Vec<(f64, Arc<Log>)> = self
            .logs()
            .into_iter()
            .filter(|l| !l.dir_state().is_offline() && l.needs_compaction(now_ms))
            .map(|l| (l.dirty_ratio(now_ms), l))
            .collect();
        logs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut cleaned = 0;
        for (_, log) in logs {
            if self.stopper.is_stopped() {
                break;
            }
            match log.compact(now_ms, self.options.cleaner_dedupe_buffer_bytes) {
                Ok(Some(_)) => cleaned += 1,
                Ok(None) => {}
                Err(e) => tracing::warn!(log = %log.topic_partition(), "compaction failed: {e}"),
            }
        }
        cleaned
    }

    /// The filthiest log no other cleaner thread holds, compacted once.
    fn clean_filthiest(&self, now_ms: i64) -> bool {
        let mut candidates: Vec<(f64, Arc<Log>)> = self
            .logs()
            .into_iter()
            .filter(|l| !l.dir_state().is_offline() && l.needs_compaction(now_ms))
            .map(|l| (l.dirty_ratio(now_ms), l))
            .collect();
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (_, log) in candidates {
            if log.cleaning.is_locked() {
                continue;
            }
            return match log.compact(now_ms, self.options.cleaner_dedupe_buffer_bytes) {
                Ok(Some(_)) => {
                    if let Err(e) = self.checkpoint() {
                        tracing::warn!("checkpoint after cleaning failed: {e}");
                    }
                    true
                }
                Ok(None) => false,
                Err(e) => {
                    tracing::warn!(log = %log.topic_partition(), "compaction failed: {e}");
                    false
                }
            };
        }
        false
    }

    fn flush_due(&self, now_ms: i64) {
        for log in self.logs() {
            let flush_ms = log.config().flush_ms;
            if now_ms.saturating_sub(log.last_flush_ms()) >= flush_ms
                && !log.dir_state().is_offline()
            {
                if let Err(e) = log.flush() {
                    tracing::warn!(log = %log.topic_partition(), "scheduled flush failed: {e}");
                }
            }
        }
    }

    fn spawn(self: &Arc<Self>, name: String, interval_ms: u64, work: fn(&LogManager)) {
        let weak: Weak<LogManager> = Arc::downgrade(self);
        let stopper = self.stopper.clone();
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || loop {
                if stopper.sleep(interval_ms) {
                    break;
                }
                let Some(manager) = weak.upgrade() else {
                    break;
                };
                work(&manager);
            });
        match handle {
            Ok(h) => self.threads.lock().push(h),
            Err(e) => tracing::error!("cannot start {name}: {e}"),
        }
    }

    /// Starts the retention, flush, checkpoint, scheduler and cleaner
    /// threads. They stop on [`LogManager::shutdown`].
    pub fn start_background_tasks(self: &Arc<Self>) {
        let o = &self.options;
        self.spawn("log-scheduler".into(), 100, |m| {
            m.background.run_due(now_ms(), false)
        });
        self.spawn("log-retention".into(), o.retention_check_interval_ms, |m| {
            m.run_retention_once(now_ms());
        });
        if o.flush_scheduler_interval_ms < i64::MAX as u64 {
            self.spawn("log-flusher".into(), o.flush_scheduler_interval_ms, |m| {
                m.flush_due(now_ms())
            });
        }
        self.spawn(
            "producer-expiration".into(),
            PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS,
            |m| {
                m.expire_producers(now_ms());
            },
        );
        self.spawn("log-checkpoint".into(), o.checkpoint_interval_ms, |m| {
            if let Err(e) = m.checkpoint() {
                tracing::warn!("checkpoint failed: {e}");
            }
        });
        if o.cleaner_enabled {
            for i in 0..o.cleaner_threads.max(1) {
                let weak: Weak<LogManager> = Arc::downgrade(self);
                let stopper = self.stopper.clone();
                let backoff = o.cleaner_backoff_ms;
                let handle = std::thread::Builder::new()
                    .name(format!("log-cleaner-{i}"))
                    .spawn(move || loop {
                        let worked = match weak.upgrade() {
                            Some(m) => m.clean_filthiest(now_ms()),
                            None => break,
                        };
                        if !worked && stopper.sleep(backoff) {
                            break;
                        }
                        if stopper.is_stopped() {
                            break;
                        }
                    });
                match handle {
                    Ok(h) => self.threads.lock().push(h),
                    Err(e) => tracing::error!("cannot start a cleaner thread: {e}"),
                }
            }
        }
    }

    /// Stops the threads, flushes and closes every log, writes the
    /// checkpoints, runs pending deletions, then writes the clean-shutdown
    /// marker in every dir that had no error. Idempotent.
    pub fn shutdown(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.stopper.stop();
        self.background.notify();
        let threads: Vec<JoinHandle<()>> = self.threads.lock().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
        let mut first_err = None;
        for log in self.logs() {
            if let Err(e) = log.close() {
                tracing::error!(log = %log.topic_partition(), "closing failed: {e}");
                first_err.get_or_insert(e);
            }
        }
        if let Err(e) = self.checkpoint() {
            first_err.get_or_insert(e);
        }
        self.background.run_due(now_ms(), true);
        if first_err.is_none() {
            for dir in self.dirs.iter().filter(|d| !d.is_offline()) {
                let marker = dir.path().join(CLEAN_SHUTDOWN_FILE);
                let written = fs::File::create(&marker)
                    .and_then(|f| f.sync_all())
                    .and_then(|_| sync_dir(dir.path()));
                if let Err(e) = written {
                    first_err.get_or_insert(StorageError::io(
                        "writing the clean-shutdown marker",
                        dir.path(),
                        e,
                    ));
                }
            }
        }
        tracing::info!("log manager shut down");
        first_err.map_or(Ok(()), Err)
    }

    /// Takes a log dir offline (the broker learned of a disk failure some
    /// other way); its logs then fail every operation.
    pub fn mark_dir_offline(&self, dir: &Path, reason: &str) {
        if let Some(d) = self.dirs.iter().find(|d| d.path() == dir) {
            d.mark_offline(reason.to_string());
        }
    }

    /// Per-dir capacity and partition sizes (DescribeLogDirs).
    pub fn dir_usage(&self) -> Vec<LogDirUsage> {
        let logs = self.logs();
        self.dirs
            .iter()
            .map(|dir| {
                let (total_bytes, usable_bytes, stat_err) = match rustix::fs::statvfs(dir.path()) {
                    Ok(s) => {
                        let unit = if s.f_frsize > 0 {
                            s.f_frsize
                        } else {
                            s.f_bsize
                        };
                        (
                            s.f_blocks.saturating_mul(unit),
                            s.f_bavail.saturating_mul(unit),
                            None,
                        )
                    }
                    Err(e) => (0, 0, Some(format!("statvfs failed: {e}"))),
                };
                // Under a storage cap the broker's "disk" is the cap: report
                // no more room than it leaves (MSK's volume size).
                let cap = self.usage.cap();
                let (total_bytes, usable_bytes) = if cap == crate::usage::UNLIMITED {
                    (total_bytes, usable_bytes)
                } else {
                    (
                        total_bytes.min(cap),
                        usable_bytes.min(cap.saturating_sub(self.usage.used())),
                    )
                };
                let partitions = if dir.is_offline() {
                    Vec::new()
                } else {
                    logs.iter()
                        .filter(|l| l.log_dir() == dir.path())
                        .map(|l| PartitionUsage {
                            topic_partition: l.topic_partition().clone(),
                            size_bytes: l.size_bytes(),
                        })
                        .collect()
                };
                LogDirUsage {
                    path: dir.path().to_path_buf(),
                    total_bytes,
                    usable_bytes,
                    error: dir.error().or(stat_err),
                    partitions,
                }
            })
            .collect()
    }
}

impl Drop for LogManager {
    /// Dropping without [`LogManager::shutdown`] is a crash as far as the
    /// disk is concerned (no marker, no final flush), but the background
    /// threads are told to stop so they do not linger.
    fn drop(&mut self) {
        self.stopper.stop();
        self.background.notify();
    }
}
