//! Deferred work the log hands to the manager's scheduler thread: removing
//! `.deleted` files after `file.delete.delay.ms`, removing `-delete`
//! partition directories, and fsyncing a segment after it was rolled.
//!
//! Tasks queue up even when no scheduler thread runs (a manager whose
//! background tasks were never started); shutdown then runs them all.

use std::path::PathBuf;
use std::sync::{Arc, Weak};

use parking_lot::{Condvar, Mutex};

use crate::log::Log;

/// One deferred task.
#[derive(Debug)]
pub(crate) enum Task {
    /// Remove these files once `due_ms` has passed.
    DeleteFiles {
        /// Wall-clock time after which the files may go.
        due_ms: i64,
        /// Files to remove.
        paths: Vec<PathBuf>,
    },
    /// Remove a renamed partition directory once `due_ms` has passed.
    DeleteDir {
        /// Wall-clock time after which the directory may go.
        due_ms: i64,
        /// The `-delete` directory.
        path: PathBuf,
    },
    /// fsync a log up to an offset (the segments before a roll).
    Flush {
        /// The log (skipped if dropped meanwhile).
        log: Weak<Log>,
        /// Flush everything below this offset.
        up_to: i64,
    },
}

/// The queue of deferred tasks, shared by all logs of a manager.
#[derive(Debug, Default)]
pub(crate) struct Background {
    queue: Mutex<Vec<Task>>,
    wake: Condvar,
}

impl Background {
    /// A new, empty queue.
    pub(crate) fn new() -> Arc<Background> {
        Arc::new(Background::default())
    }

    /// Queues a task and wakes the scheduler.
    pub(crate) fn schedule(&self, task: Task) {
        self.queue.lock().push(task);
        self.wake.notify_all();
    }

    /// Wakes the scheduler (on shutdown).
    pub(crate) fn notify(&self) {
        self.wake.notify_all();
    }

    /// Runs tasks that are due at `now_ms`, or every task when `all`.
    pub(crate) fn run_due(&self, now_ms: i64, all: bool) {
        let due: Vec<Task> = {
            let mut q = self.queue.lock();
            let (due, keep): (Vec<Task>, Vec<Task>) = q.drain(..).partition(|t| match t {
                Task::DeleteFiles { due_ms, .. } | Task::DeleteDir { due_ms, .. } => {
                    all || *due_ms <= now_ms
                }
                Task::Flush { .. } => true,
            });
            *q = keep;
            due
        };
        for task in due {
            match task {
                Task::DeleteFiles { paths, .. } => {
                    for p in paths {
                        if let Err(e) = std::fs::remove_file(&p) {
                            if e.kind() != std::io::ErrorKind::NotFound {
                                tracing::warn!(path = %p.display(), "could not remove deleted file: {e}");
                            }
                        }
                    }
                }
                Task::DeleteDir { path, .. } => {
                    if let Err(e) = std::fs::remove_dir_all(&path) {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            tracing::warn!(path = %path.display(), "could not remove deleted partition: {e}");
                        }
                    }
                }
                Task::Flush { log, up_to } => {
                    if let Some(log) = log.upgrade() {
                        if let Err(e) = log.flush_up_to(up_to) {
                            tracing::warn!(log = %log.topic_partition(), "flush after roll failed: {e}");
                        }
                    }
                }
            }
        }
    }
}
