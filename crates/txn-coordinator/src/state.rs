//! Transaction states and the metadata kept per transactional id.
//!
//! Mirrors Kafka's `TransactionState`/`TransactionMetadata`: a change is first
//! *prepared* (the target becomes the pending state, which blocks every other
//! change), then written to the log, then *completed* in memory. Keeping the
//! two steps apart is what lets the coordinator answer CONCURRENT_TRANSACTIONS
//! instead of interleaving two writers.

use crate::{ErrorCode, TopicPartition};
use std::collections::BTreeSet;

/// No producer id (Kafka's `RecordBatch.NO_PRODUCER_ID`).
pub const NO_PRODUCER_ID: i64 = -1;
/// No producer epoch (Kafka's `RecordBatch.NO_PRODUCER_EPOCH`).
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// The state of one transactional id, with Kafka's ids (persisted in the
/// log) and names (printed by DescribeTransactions/ListTransactions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    /// No transaction in progress; a producer id and epoch are assigned.
    Empty,
    /// Partitions were added; records may be in flight.
    Ongoing,
    /// EndTxn(commit) was persisted; commit markers are being written.
    PrepareCommit,
    /// EndTxn(abort) was persisted; abort markers are being written.
    PrepareAbort,
    /// All commit markers were written.
    CompleteCommit,
    /// All abort markers were written.
    CompleteAbort,
    /// The transactional id expired and is being removed.
    Dead,
    /// The producer epoch is being bumped before a coordinator-side abort.
    PrepareEpochFence,
}

impl TxnState {
    /// The `transaction_status` byte Kafka writes to the log.
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    /// Decodes a `transaction_status` byte; `None` for ids Kafka never wrote.
    pub fn from_id(id: i8) -> Option<TxnState> {
        Some(match id {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name Kafka's admin APIs print.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Parses an admin state filter (exact Kafka names).
    pub fn from_name(name: &str) -> Option<TxnState> {
        [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::PrepareAbort,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
            TxnState::Dead,
            TxnState::PrepareEpochFence,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    /// States a transition into `self` may start from (Kafka's
    /// `validPreviousStates`).
    fn valid_previous(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[Ongoing, PrepareEpochFence],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteCommit, CompleteAbort],
            PrepareEpochFence => &[Ongoing],
        }
    }

    /// Whether an idle transactional id in this state may be expired.
    pub fn expiration_allowed(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// Whether `epoch` can no longer be bumped (Kafka keeps `Short.MaxValue`
/// for the coordinator's own fence bump).
pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// A prepared (not yet persisted) version of a transaction's metadata; it is
/// exactly what gets written to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transit {
    /// Producer id after the transition.
    pub producer_id: i64,
    /// Producer id before it (differs after an id rotation).
    pub last_producer_id: i64,
    /// Producer epoch after the transition.
    pub producer_epoch: i16,
    /// The epoch a retrying KIP-360 producer may still present.
    pub last_producer_epoch: i16,
    /// Transaction timeout.
    pub timeout_ms: i32,
    /// Target state.
    pub state: TxnState,
    /// Partitions in the transaction.
    pub partitions: BTreeSet<TopicPartition>,
    /// When the transaction started, or -1.
    pub start_ms: i64,
    /// When this transition was prepared.
    pub last_update_ms: i64,
}

/// What the coordinator knows about one transactional id.
#[derive(Debug, Clone)]
pub struct TxnMetadata {
    /// The transactional id.
    pub transactional_id: String,
    /// Current producer id.
    pub producer_id: i64,
    /// Previous producer id (see [`Transit::last_producer_id`]).
    pub last_producer_id: i64,
    /// Current producer epoch.
    pub producer_epoch: i16,
    /// Previous producer epoch, for KIP-360 retries; not persisted (as in Kafka 3.7).
    pub last_producer_epoch: i16,
    /// Transaction timeout.
    pub timeout_ms: i32,
    /// Current state.
    pub state: TxnState,
    /// Partitions in the transaction (those still lacking a marker while
    /// markers are written).
    pub partitions: BTreeSet<TopicPartition>,
    /// Start of the current transaction, or -1.
    pub start_ms: i64,
    /// Last persisted change.
    pub last_update_ms: i64,
    /// The state being written, if any; blocks other transitions.
    pub pending: Option<TxnState>,
    /// A fence bump failed to persist; do not bump again on the retry.
    pub has_failed_epoch_fence: bool,
}

impl TxnMetadata {
    /// Metadata for a transactional id seen for the first time (epoch -1
    /// until the first InitProducerId is persisted).
    pub fn new(transactional_id: String, producer_id: i64, timeout_ms: i32, now: i64) -> Self {
        TxnMetadata {
            transactional_id,
            producer_id,
            last_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now,
            pending: None,
            has_failed_epoch_fence: false,
        }
    }

    /// Rebuilds metadata from a log value (last epoch and id unknown, as in Kafka).
    pub fn from_transit(transactional_id: String, t: Transit) -> Self {
        TxnMetadata {
            transactional_id,
            producer_id: t.producer_id,
            last_producer_id: NO_PRODUCER_ID,
            producer_epoch: t.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: t.timeout_ms,
            state: t.state,
            partitions: if t.state == TxnState::Empty {
                BTreeSet::new()
            } else {
                t.partitions
            },
            start_ms: t.start_ms,
            last_update_ms: t.last_update_ms,
            pending: None,
            has_failed_epoch_fence: false,
        }
    }

    /// Whether a transition is being written.
    pub fn pending_in_progress(&self) -> bool {
        self.pending.is_some()
    }

    /// Prepares a transition, marking it pending. Fails (an internal error)
    /// when another transition is pending or the move is illegal, which the
    /// callers' checks rule out.
    #[allow(clippy::too_many_arguments)]
    fn prepare(
        &mut self,
        state: TxnState,
        producer_id: i64,
        producer_epoch: i16,
        last_producer_epoch: i16,
        timeout_ms: i32,
        partitions: BTreeSet<TopicPartition>,
        start_ms: i64,
        now: i64,
    ) -> Result<Transit, ErrorCode> {
        if self.pending.is_some()
            || (state != TxnState::Dead && producer_epoch < 0)
            || !state.valid_previous().contains(&self.state)
        {
            tracing::error!(
                transactional_id = %self.transactional_id,
                from = self.state.name(),
                to = state.name(),
                pending = ?self.pending,
                "illegal transaction state transition"
            );
            return Err(ErrorCode::UnknownServerError);
        }
        self.pending = Some(state);
        Ok(Transit {
            producer_id,
            last_producer_id: self.producer_id,
            producer_epoch,
            last_producer_epoch,
            timeout_ms,
            state,
            partitions,
            start_ms,
            last_update_ms: now,
        })
    }

    /// InitProducerId on an idle transactional id: bump the epoch (KIP-360
    /// rules when the client presents its current epoch).
    pub fn prepare_increment_epoch(
        &mut self,
        timeout_ms: i32,
        expected_epoch: Option<i16>,
        now: i64,
    ) -> Result<Transit, ErrorCode> {
        if epoch_exhausted(self.producer_epoch) {
            return Err(ErrorCode::UnknownServerError);
        }
        let bumped = self.producer_epoch + 1;
        let (next, last) = match expected_epoch {
            None => (bumped, NO_PRODUCER_EPOCH),
            Some(e) if self.producer_epoch == NO_PRODUCER_EPOCH || e == self.producer_epoch => {
                (bumped, self.producer_epoch)
            }
            // A retry of a bump whose answer was lost: hand out the same epoch.
            Some(e) if e == self.last_producer_epoch => {
                (self.producer_epoch, self.last_producer_epoch)
            }
            Some(_) => return Err(ErrorCode::ProducerFenced),
        };
        self.prepare(
            TxnState::Empty,
            self.producer_id,
            next,
            last,
            timeout_ms,
            BTreeSet::new(),
            -1,
            now,
        )
    }

    /// InitProducerId when the epoch is exhausted: move to a new producer id.
    pub fn prepare_producer_id_rotation(
        &mut self,
        new_producer_id: i64,
        timeout_ms: i32,
        now: i64,
        record_last_epoch: bool,
    ) -> Result<Transit, ErrorCode> {
        let last = if record_last_epoch {
            self.producer_epoch
        } else {
            NO_PRODUCER_EPOCH
        };
        self.prepare(
            TxnState::Empty,
            new_producer_id,
            0,
            last,
            timeout_ms,
            BTreeSet::new(),
            -1,
            now,
        )
    }

    /// Bumps the epoch ahead of a coordinator-side abort so the zombie
    /// producer is fenced. A bump whose write failed is reused, never repeated.
    pub fn prepare_fence_epoch(&mut self, now: i64) -> Result<Transit, ErrorCode> {
        if self.producer_epoch == i16::MAX {
            return Err(ErrorCode::UnknownServerError);
        }
        let bumped = if self.has_failed_epoch_fence {
            self.producer_epoch
        } else {
            self.producer_epoch + 1
        };
        self.prepare(
            TxnState::PrepareEpochFence,
            self.producer_id,
            bumped,
            NO_PRODUCER_EPOCH,
            self.timeout_ms,
            self.partitions.clone(),
            self.start_ms,
            now,
        )
    }

    /// AddPartitionsToTxn: join partitions, starting a transaction if idle.
    pub fn prepare_add_partitions(
        &mut self,
        added: &BTreeSet<TopicPartition>,
        now: i64,
    ) -> Result<Transit, ErrorCode> {
        let start = match self.state {
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => now,
            _ => self.start_ms,
        };
        let partitions = self.partitions.union(added).cloned().collect();
        self.prepare(
            TxnState::Ongoing,
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.timeout_ms,
            partitions,
            start,
            now,
        )
    }

    /// EndTxn: move to PrepareCommit or PrepareAbort.
    pub fn prepare_abort_or_commit(
        &mut self,
        state: TxnState,
        now: i64,
    ) -> Result<Transit, ErrorCode> {
        self.prepare(
            state,
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.timeout_ms,
            self.partitions.clone(),
            self.start_ms,
            now,
        )
    }

    /// After the markers: CompleteCommit/CompleteAbort with no partitions.
    pub fn prepare_complete(&mut self, now: i64) -> Result<Transit, ErrorCode> {
        let state = if self.state == TxnState::PrepareCommit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        self.has_failed_epoch_fence = false;
        self.prepare(
            state,
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.timeout_ms,
            BTreeSet::new(),
            self.start_ms,
            now,
        )
    }

    /// Expiry: the id is about to be tombstoned.
    pub fn prepare_dead(&mut self, now: i64) -> Result<Transit, ErrorCode> {
        self.prepare(
            TxnState::Dead,
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.timeout_ms,
            BTreeSet::new(),
            self.start_ms,
            now,
        )
    }

    /// Applies a persisted transition and clears the pending state.
    pub fn complete(&mut self, t: &Transit) {
        match t.state {
            TxnState::Ongoing => {
                self.start_ms = t.start_ms;
                self.partitions.extend(t.partitions.iter().cloned());
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                self.start_ms = t.start_ms;
                self.partitions.clear();
            }
            _ => {}
        }
        self.producer_id = t.producer_id;
        self.last_producer_id = t.last_producer_id;
        self.producer_epoch = t.producer_epoch;
        self.last_producer_epoch = t.last_producer_epoch;
        self.timeout_ms = t.timeout_ms;
        self.last_update_ms = t.last_update_ms;
        self.pending = None;
        self.state = t.state;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_round_trip() {
        for id in 0..8 {
            let s = TxnState::from_id(id).expect("known id");
            assert_eq!(s.id(), id);
            assert_eq!(TxnState::from_name(s.name()), Some(s));
        }
        assert_eq!(TxnState::from_id(8), None);
        assert_eq!(TxnState::from_name("ongoing"), None);
    }

    #[test]
    fn illegal_transition_is_refused() {
        let mut m = TxnMetadata::new("t".into(), 1, 1000, 0);
        m.producer_epoch = 0;
        assert!(m
            .prepare_abort_or_commit(TxnState::PrepareCommit, 1)
            .is_err());
        assert!(m.pending.is_none());
        let t = m.prepare_add_partitions(&BTreeSet::new(), 1).expect("add");
        assert!(
            m.prepare_dead(1).is_err(),
            "pending blocks other transitions"
        );
        m.complete(&t);
        assert_eq!(m.state, TxnState::Ongoing);
        assert_eq!(m.start_ms, 1);
    }

    #[test]
    fn kip360_epoch_rules() {
        let mut m = TxnMetadata::new("t".into(), 1, 1000, 0);
        m.producer_epoch = 5;
        m.last_producer_epoch = 4;
        let t = m.prepare_increment_epoch(10, Some(5), 1).expect("bump");
        assert_eq!((t.producer_epoch, t.last_producer_epoch), (6, 5));
        m.pending = None;
        let t = m.prepare_increment_epoch(10, Some(4), 1).expect("retry");
        assert_eq!((t.producer_epoch, t.last_producer_epoch), (5, 4));
        m.pending = None;
        assert_eq!(
            m.prepare_increment_epoch(10, Some(3), 1),
            Err(ErrorCode::ProducerFenced)
        );
    }
}
