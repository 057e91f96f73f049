//! The state of one log dir that its logs share: online or offline.
//!
//! Kafka takes a whole disk offline on the first I/O error other than a
//! full disk, since a failing disk cannot be trusted for any of its
//! partitions; the broker then reports `KAFKA_STORAGE_ERROR` for them and
//! the controller moves leadership away.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

/// Shared liveness of one log dir.
#[derive(Debug)]
pub(crate) struct DirState {
    path: PathBuf,
    offline: AtomicBool,
    error: Mutex<Option<String>>,
}

impl DirState {
    /// An online dir.
    pub(crate) fn new(path: PathBuf) -> DirState {
        DirState {
            path,
            offline: AtomicBool::new(false),
            error: Mutex::new(None),
        }
    }

    /// The log dir path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the dir failed.
    pub(crate) fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    /// Why the dir is offline.
    pub(crate) fn error(&self) -> Option<String> {
        self.error.lock().clone()
    }

    /// Takes the dir offline, remembering the first reason.
    pub(crate) fn mark_offline(&self, reason: String) {
        let mut err = self.error.lock();
        if err.is_none() {
            tracing::error!(dir = %self.path.display(), "log dir goes offline: {reason}");
            *err = Some(reason);
        }
        self.offline.store(true, Ordering::Release);
    }
}
