//! Keyed timers of one offsets partition.
//!
//! Kafka's coordinator schedules every deadline (heartbeats, join and sync
//! phases, KIP-848 session and revocation timeouts, offset expiry) under a
//! key, and scheduling a key again replaces its previous deadline. One tokio
//! task per partition sleeps until the earliest deadline, so thousands of
//! members cost map entries, not tasks, and closing the partition stops every
//! timer at once. Tokio time is used so tests can pause and advance it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What a timer is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum TimerKey {
    /// A classic member's (or pending member's) session.
    Heartbeat(String, String),
    /// The join phase of a classic group's rebalance.
    Join(String),
    /// Members that have not sent SyncGroup after the join phase.
    Sync(String),
    /// A KIP-848 member's session.
    ConsumerSession(String, String),
    /// A KIP-848 member that must revoke partitions within its rebalance timeout.
    ConsumerRevocation(String, String),
    /// The periodic offset expiry of the partition.
    OffsetExpiry,
}

#[derive(Default)]
struct Inner {
    by_key: HashMap<TimerKey, (Instant, u64)>,
    queue: BTreeMap<(Instant, u64), TimerKey>,
    seq: u64,
    closed: bool,
}

/// The timers of one partition.
#[derive(Default)]
pub(crate) struct Timers {
    inner: Mutex<Inner>,
    notify: Notify,
}

impl Timers {
    /// Schedules `key` to fire after `delay`, replacing an earlier schedule.
    pub(crate) fn schedule(&self, key: TimerKey, delay: Duration) {
        let deadline = Instant::now() + delay;
        let mut inner = self.inner.lock();
        if inner.closed {
            return;
        }
        inner.seq += 1;
        let seq = inner.seq;
        if let Some(old) = inner.by_key.insert(key.clone(), (deadline, seq)) {
            inner.queue.remove(&old);
        }
        inner.queue.insert((deadline, seq), key);
        drop(inner);
        self.notify.notify_one();
    }

    /// Schedules after `ms` milliseconds (negative means now).
    pub(crate) fn schedule_ms(&self, key: TimerKey, ms: i64) {
        self.schedule(key, Duration::from_millis(ms.max(0) as u64));
    }

    /// Cancels `key`.
    pub(crate) fn cancel(&self, key: &TimerKey) {
        let mut inner = self.inner.lock();
        if let Some(old) = inner.by_key.remove(key) {
            inner.queue.remove(&old);
        }
    }

    /// Whether `key` is scheduled.
    pub(crate) fn is_scheduled(&self, key: &TimerKey) -> bool {
        self.inner.lock().by_key.contains_key(key)
    }

    /// Stops every timer; the task ends.
    pub(crate) fn close(&self) {
        let mut inner = self.inner.lock();
        inner.closed = true;
        inner.by_key.clear();
        inner.queue.clear();
        drop(inner);
        self.notify.notify_one();
    }

    fn next(&self) -> Result<Option<Instant>, ()> {
        let inner = self.inner.lock();
        if inner.closed {
            return Err(());
        }
        Ok(inner.queue.keys().next().map(|(d, _)| *d))
    }

    fn pop_due(&self, now: Instant) -> Vec<TimerKey> {
        let mut inner = self.inner.lock();
        let mut due = Vec::new();
        while let Some(entry) = inner.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            inner.by_key.remove(&key);
            due.push(key);
        }
        due
    }

    /// Runs the timers until closed, calling `fire` for each due key.
    pub(crate) async fn run(self: Arc<Self>, mut fire: impl FnMut(TimerKey) -> bool) {
        loop {
            let next = match self.next() {
                Ok(n) => n,
                Err(()) => return,
            };
            let sleep = async {
                match next {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = sleep => {
                    for key in self.pop_due(Instant::now()) {
                        if !fire(key) {
                            return;
                        }
                    }
                }
                _ = self.notify.notified() => {}
            }
        }
    }
}
