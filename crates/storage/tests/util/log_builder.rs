//! A `LogManager` over a temp dir holding one partition, with helpers to
//! restart it cleanly or "crash" it (drop without shutdown).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use millrace_storage::{Log, LogConfig, LogManager, LogManagerOptions, TopicPartition};

use super::random_batch::{decode, Rec};

/// The partition every fixture log uses.
pub fn tp() -> TopicPartition {
    TopicPartition::new("test-topic", 0)
}

/// A fixed topic id.
pub fn topic_id() -> uuid::Uuid {
    uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0)
}

/// Manager options for tests: one dir, no cleaner threads.
pub fn options(dir: &Path) -> LogManagerOptions {
    LogManagerOptions {
        log_dirs: vec![dir.to_path_buf()],
        recovery_threads_per_dir: 1,
        cleaner_enabled: false,
        cleaner_dedupe_buffer_bytes: 1 << 20,
        ..LogManagerOptions::default()
    }
}

/// A config with small segments so tests roll often.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    }
}

/// A temp log dir with a manager and one log.
pub struct TestLog {
    pub dir: tempfile::TempDir,
    pub manager: Arc<LogManager>,
    pub log: Arc<Log>,
    pub config: LogConfig,
}

impl TestLog {
    /// A fresh, empty log with `config`.
    pub fn new(config: LogConfig) -> TestLog {
        let dir = tempfile::tempdir().expect("tempdir");
        let manager = LogManager::open(options(dir.path()), move |_| config).expect("open manager");
        let log = manager
            .get_or_create(&tp(), topic_id(), config)
            .expect("create log");
        TestLog {
            dir,
            manager,
            log,
            config,
        }
    }

    /// The log dir.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The partition dir.
    pub fn partition_dir(&self) -> PathBuf {
        self.dir.path().join(tp().to_string())
    }

    /// Clean restart: shutdown, then open again.
    pub fn restart(self) -> TestLog {
        self.manager.shutdown().expect("shutdown");
        self.reopen_only()
    }

    /// Crash: drop the manager without shutdown, then open again.
    pub fn crash(self) -> TestLog {
        self.reopen_only()
    }

    /// Opens the dir again without shutting the old manager down.
    pub fn reopen_only(self) -> TestLog {
        let TestLog {
            dir,
            manager,
            log,
            config,
        } = self;
        drop(log);
        drop(manager);
        let manager = LogManager::open(options(dir.path()), move |_| config).expect("reopen");
        let log = manager.get(&tp()).expect("log after reopen");
        TestLog {
            dir,
            manager,
            log,
            config,
        }
    }

    /// Appends one batch as leader in epoch 0.
    pub fn append(&self, batch: &[u8]) -> millrace_storage::AppendInfo {
        let mut bytes = batch.to_vec();
        self.log
            .append_as_leader(&mut bytes, 0, None)
            .expect("append")
    }

    /// Every record of the log, read batch by batch from the log start.
    pub fn read_all(&self) -> Vec<Rec> {
        read_all(&self.log)
    }
}

/// Every record of `log` from its start, via `Log::read`.
pub fn read_all(log: &Log) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let r = log.read(offset, 64 * 1024, i64::MAX, true).expect("read");
        if r.records.is_empty() {
            break;
        }
        let recs = decode(&r.records);
        let Some(last) = millrace_protocol::records::BatchIter::new(&r.records)
            .filter_map(Result::ok)
            .last()
        else {
            break;
        };
        out.extend(recs.into_iter().filter(|r| r.offset >= offset));
        offset = last.header.next_offset();
    }
    out
}

impl TestLog {
    /// Drops the manager without shutdown (a crash) but keeps the dir, so
    /// a test can damage files before [`TestLog::reopen_only`].
    pub fn crash_prepare(self) -> CrashedLog {
        let TestLog {
            dir,
            manager,
            log,
            config,
        } = self;
        drop(log);
        drop(manager);
        CrashedLog { dir, config }
    }
}

/// A log dir whose manager "crashed".
pub struct CrashedLog {
    pub dir: tempfile::TempDir,
    pub config: LogConfig,
}

impl CrashedLog {
    /// Opens the dir again.
    pub fn reopen_only(self) -> TestLog {
        let CrashedLog { dir, config } = self;
        let manager = LogManager::open(options(dir.path()), move |_| config).expect("reopen");
        let log = manager.get(&tp()).expect("log after reopen");
        TestLog {
            dir,
            manager,
            log,
            config,
        }
    }
}
