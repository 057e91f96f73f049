//! The leader epoch history of one partition (Kafka's `LeaderEpochFileCache`).
//!
//! Each entry says "epoch E started at offset O". Followers use it through
//! OffsetForLeaderEpoch to find where their log diverges from the leader's.
//! The history lives in memory and in `leader-epoch-checkpoint` (format in
//! [`crate::checkpoint`]); every change is written through before the caller
//! goes on, so after a crash the file never claims an epoch the log lacks
//! without recovery being able to truncate it.

use crate::checkpoint::{EpochEntry, LeaderEpochCheckpointFile};
use crate::error::Result;

/// In-memory epoch history backed by its checkpoint file.
#[derive(Debug)]
pub(crate) struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
    file: LeaderEpochCheckpointFile,
}

impl LeaderEpochCache {
    /// Loads the history from `file` (missing file = empty history).
    pub(crate) fn load(file: LeaderEpochCheckpointFile) -> Result<LeaderEpochCache> {
        let mut entries = file.read()?;
        // Keep the invariant (strictly increasing epochs and offsets) even if
        // the file was edited by hand.
        entries.dedup_by(|b, a| b.epoch <= a.epoch || b.start_offset < a.start_offset);
        Ok(LeaderEpochCache { entries, file })
    }

    /// The entries, oldest first.
    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// Replaces the entries (used to roll back a failed append).
    pub(crate) fn restore(&mut self, entries: Vec<EpochEntry>) {
        self.entries = entries;
    }

    /// Records that `epoch` starts at `start_offset`. Returns whether the
    /// history changed (the caller then calls [`LeaderEpochCache::flush`]).
    ///
    /// As in Kafka, entries with an epoch >= `epoch` or a start offset >=
    /// `start_offset` are removed first, keeping both columns increasing.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if let Some(last) = self.entries.last() {
            if last.epoch == epoch && last.start_offset <= start_offset {
                return false;
            }
        }
        self.entries
            .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// The newest epoch.
    pub(crate) fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Kafka's `endOffsetFor`: the largest epoch <= `requested` and the start
    /// offset of the next epoch after it (or `log_end_offset` when
    /// `requested` is the latest epoch). `None` for an undefined answer.
    pub(crate) fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        if requested < 0 {
            return None;
        }
        if self.latest_epoch() == Some(requested) {
            return Some((requested, log_end_offset));
        }
        let higher = self.entries.iter().find(|e| e.epoch > requested)?;
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            None => Some((requested, higher.start_offset)),
            Some(floor) => Some((floor.epoch, higher.start_offset)),
        }
    }

    /// The epoch of the leader that appended `offset`.
    pub(crate) fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .map(|e| e.epoch)
    }

    /// Removes entries starting at or after `end_offset` (log truncation).
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        before != self.entries.len()
    }

    /// Drops history before `start_offset` (log start moved forward): the
    /// entry covering `start_offset` is kept and moved to start there.
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let Some(floor) = self
            .entries
            .iter()
            .rposition(|e| e.start_offset <= start_offset)
        else {
            return false;
        };
        let changed = floor > 0 || self.entries[floor].start_offset != start_offset;
        self.entries.drain(..floor);
        self.entries[0].start_offset = start_offset;
        changed
    }

    /// Forgets everything (the log was emptied and restarted).
    pub(crate) fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    /// Writes the checkpoint.
    pub(crate) fn flush(&self) -> Result<()> {
        self.file.write(&self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> (tempfile::TempDir, LeaderEpochCache) {
        let dir = tempfile::tempdir().unwrap();
        let file = LeaderEpochCheckpointFile::new(dir.path().join("leader-epoch-checkpoint"));
        let cache = LeaderEpochCache::load(file).unwrap();
        (dir, cache)
    }

    fn e(epoch: i32, start_offset: i64) -> EpochEntry {
        EpochEntry {
            epoch,
            start_offset,
        }
    }

    #[test]
    fn assign_keeps_epochs_and_offsets_increasing() {
        let (_d, mut c) = cache();
        assert!(c.assign(1, 0));
        assert!(!c.assign(1, 5), "same epoch later is not a new entry");
        assert!(c.assign(2, 10));
        assert!(c.assign(4, 20));
        assert_eq!(c.entries(), &[e(1, 0), e(2, 10), e(4, 20)]);
        // A lower epoch at a later offset drops the higher entries (divergence).
        assert!(c.assign(3, 25));
        assert_eq!(c.entries(), &[e(1, 0), e(2, 10), e(3, 25)]);
        // A higher epoch at an earlier offset drops entries at or after it.
        assert!(c.assign(5, 10));
        assert_eq!(c.entries(), &[e(1, 0), e(5, 10)]);
        assert!(!c.assign(-1, 30));
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let (_d, mut c) = cache();
        c.assign(1, 0);
        c.assign(3, 10);
        c.assign(6, 20);
        assert_eq!(c.end_offset_for(6, 30), Some((6, 30)));
        assert_eq!(c.end_offset_for(3, 30), Some((3, 20)));
        assert_eq!(
            c.end_offset_for(4, 30),
            Some((3, 20)),
            "unknown epoch: floor epoch, next start"
        );
        assert_eq!(
            c.end_offset_for(0, 30),
            Some((0, 0)),
            "older than all: requested, first start"
        );
        assert_eq!(c.end_offset_for(7, 30), None, "newer than all: undefined");
        assert_eq!(c.end_offset_for(-1, 30), None);
        assert_eq!(c.epoch_for_offset(15), Some(3));
        assert_eq!(c.epoch_for_offset(20), Some(6));
        assert_eq!(c.epoch_for_offset(-5), None);
    }

    #[test]
    fn truncation_from_both_ends() {
        let (dir, mut c) = cache();
        c.assign(1, 0);
        c.assign(3, 10);
        c.assign(6, 20);
        assert!(c.truncate_from_end(20));
        assert_eq!(c.entries(), &[e(1, 0), e(3, 10)]);
        assert!(c.truncate_from_start(12));
        assert_eq!(c.entries(), &[e(3, 12)]);
        assert!(!c.truncate_from_start(5));
        c.flush().unwrap();
        let file = LeaderEpochCheckpointFile::new(dir.path().join("leader-epoch-checkpoint"));
        assert_eq!(LeaderEpochCache::load(file).unwrap().entries(), &[e(3, 12)]);
        assert!(c.clear());
        assert_eq!(c.latest_epoch(), None);
    }
}
