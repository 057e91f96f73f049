//! The broker-wide storage cap (`millrace.log.dirs.max.bytes`): a running
//! total of the record bytes held by every log of the manager, and the
//! limit appends must stay under.
//!
//! It stands in for the size of a disk (MSK's EBS `volumeSize`), so the
//! broker refuses writes the way it does on a full disk, without walking
//! directories: each log adds what it appends and gives back what leaves
//! it (retention, DeleteRecords, truncation, compaction, deletion).
//! Only the `.log` segment bytes are counted; indexes, checkpoints and
//! files waiting out `file.delete.delay.ms` are not.

use std::sync::atomic::{AtomicU64, Ordering};

/// No cap: the default.
pub const UNLIMITED: u64 = u64::MAX;

/// Shared by the manager and its logs.
#[derive(Debug)]
pub struct DiskUsage {
    used: AtomicU64,
    cap: AtomicU64,
}

impl Default for DiskUsage {
    fn default() -> Self {
        DiskUsage {
            used: AtomicU64::new(0),
            cap: AtomicU64::new(UNLIMITED),
        }
    }
}

impl DiskUsage {
    /// Bytes held by the logs now (including appends in flight).
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// The cap; [`UNLIMITED`] when none is set.
    pub fn cap(&self) -> u64 {
        self.cap.load(Ordering::Acquire)
    }

    /// Changes the cap; takes effect on the next append. A cap below what
    /// is held refuses appends until enough is freed.
    pub fn set_cap(&self, cap: u64) {
        self.cap.store(cap, Ordering::Release);
    }

    /// Claims `bytes` for an append if they fit under the cap; the append
    /// keeps them on success and gives them back with [`DiskUsage::release`]
    /// on failure. Claims are atomic, so concurrent appends to different
    /// partitions can never overshoot the cap together.
    pub(crate) fn try_reserve(&self, bytes: u64) -> bool {
        let cap = self.cap();
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= cap)
            })
            .is_ok()
    }

    /// Gives back bytes claimed or held.
    pub(crate) fn release(&self, bytes: u64) {
        // Saturating, so an accounting slip can never wrap into "full".
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    /// Counts bytes that exist whatever the cap says (logs opened at
    /// start-up, replaced segments growing after compaction rounding).
    pub(crate) fn add(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_cap_and_release_frees() {
        let u = DiskUsage::default();
        assert!(u.try_reserve(1 << 40), "unlimited by default");
        u.release(1 << 40);
        u.set_cap(100);
        assert!(u.try_reserve(60));
        assert!(!u.try_reserve(41), "61 + 60 > 100");
        assert!(u.try_reserve(40));
        assert_eq!(u.used(), 100);
        u.release(50);
        assert!(u.try_reserve(50));
        u.release(1000);
        assert_eq!(u.used(), 0, "never wraps below zero");
    }
}
