//! Incremental fetch sessions (KIP-227).
//!
//! A consumer fetching hundreds of partitions would otherwise resend every
//! partition on every fetch and get every partition back. With a session the
//! broker remembers the partitions and their fetch offsets; the client sends
//! only what changed and the broker answers only with partitions that have
//! something new (records, a moved high watermark, log start or last stable
//! offset, or an error).
//!
//! Request forms, by `(session_id, session_epoch)`:
//!
//! | session id | epoch | meaning |
//! |-----------:|------:|---------|
//! | 0 | -1 | sessionless full fetch |
//! | 0 | 0  | full fetch that opens a new session |
//! | n | -1 | close session n; this fetch is sessionless and full |
//! | n | k>0 | incremental fetch in session n at epoch k |

use std::collections::HashMap;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use millrace_protocol::ErrorCode;
use parking_lot::Mutex;
use rand::Rng;
use uuid::Uuid;

/// Session id meaning "no session".
pub const INVALID_SESSION_ID: i32 = 0;
/// Epoch of a fetch that opens a session.
pub const INITIAL_EPOCH: i32 = 0;
/// Epoch of a sessionless fetch or one that closes its session.
pub const FINAL_EPOCH: i32 = -1;
/// A session idle this long may be evicted to make room for a new one
/// (Kafka's `minEvictableTime`).
const EVICTABLE_AFTER: Duration = Duration::from_secs(120);

/// Identifies a partition inside a session, by name and (v13+) topic id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionPartition {
    /// Topic id; nil for fetch versions before 13.
    pub topic_id: Uuid,
    /// Topic name (resolved from the id when the request carries only ids).
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

/// What a client asks of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFetch {
    /// Offset to read from.
    pub fetch_offset: i64,
    /// `partition_max_bytes`.
    pub max_bytes: i32,
    /// The leader epoch the client believes current, -1 if unknown.
    pub current_leader_epoch: i32,
    /// Follower's log start offset (replication), -1 for consumers.
    pub log_start_offset: i64,
}

/// The values a partition reported last time, to decide whether an
/// incremental response must include it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionReport {
    /// High watermark.
    pub high_watermark: i64,
    /// Last stable offset.
    pub last_stable_offset: i64,
    /// Log start offset.
    pub log_start_offset: i64,
}

#[derive(Debug)]
struct CachedPartition {
    fetch: PartitionFetch,
    last_report: Option<PartitionReport>,
}

#[derive(Debug)]
struct Session {
    next_epoch: i32,
    partitions: IndexMap<SessionPartition, CachedPartition>,
    last_used: Instant,
}

/// How the fetch handler must treat this request.
#[derive(Debug)]
pub enum FetchContext {
    /// Read every listed partition and return them all; no session.
    Sessionless(Vec<(SessionPartition, PartitionFetch)>),
    /// Read every listed partition, return them all, then open a session.
    FullWithNewSession(Vec<(SessionPartition, PartitionFetch)>),
    /// Read every partition of the session; return only those that changed.
    Incremental {
        /// The session.
        session_id: i32,
        /// All of the session's partitions after applying the request.
        partitions: Vec<(SessionPartition, PartitionFetch)>,
    },
    /// Answer with this top-level error and nothing else.
    Error(ErrorCode),
}

/// The broker's session cache, bounded by
/// `max.incremental.fetch.session.cache.slots`.
pub struct FetchSessionCache {
    max_slots: usize,
    sessions: Mutex<HashMap<i32, Session>>,
}

impl FetchSessionCache {
    /// An empty cache with room for `max_slots` sessions.
    pub fn new(max_slots: usize) -> Self {
        FetchSessionCache {
            max_slots,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Number of open sessions (for metrics and tests).
    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Works out what a fetch request means for the session state.
    pub fn new_context(
        &self,
        session_id: i32,
        epoch: i32,
        requested: Vec<(SessionPartition, PartitionFetch)>,
        forgotten: Vec<SessionPartition>,
    ) -> FetchContext {
        if epoch == FINAL_EPOCH {
            if session_id != INVALID_SESSION_ID {
                self.sessions.lock().remove(&session_id);
            }
            return FetchContext::Sessionless(requested);
        }
        if epoch == INITIAL_EPOCH {
            if session_id != INVALID_SESSION_ID {
                // A client that opens a fresh session abandons its old one.
                self.sessions.lock().remove(&session_id);
            }
            return FetchContext::FullWithNewSession(requested);
        }
        if session_id == INVALID_SESSION_ID {
            return FetchContext::Error(ErrorCode::InvalidFetchSessionEpoch);
        }
        let mut sessions = self.sessions.lock();
        let Some(session) = sessions.get_mut(&session_id) else {
            return FetchContext::Error(ErrorCode::FetchSessionIdNotFound);
        };
        if session.next_epoch != epoch {
            return FetchContext::Error(ErrorCode::InvalidFetchSessionEpoch);
        }
        for key in forgotten {
            session.partitions.shift_remove(&key);
        }
        for (key, fetch) in requested {
            match session.partitions.get_mut(&key) {
                Some(cached) => cached.fetch = fetch,
                None => {
                    session.partitions.insert(
                        key,
                        CachedPartition {
                            fetch,
                            last_report: None,
                        },
                    );
                }
            }
        }
        session.last_used = Instant::now();
        let partitions = session
            .partitions
            .iter()
            .map(|(k, c)| (k.clone(), c.fetch.clone()))
            .collect();
        FetchContext::Incremental {
            session_id,
            partitions,
        }
    }

    /// Opens a session holding `partitions` with the values just reported.
    /// Returns its id, or [`INVALID_SESSION_ID`] when the cache is full of
    /// recently used sessions (the client then fetches without a session).
    pub fn create_session(
        &self,
        partitions: &[(SessionPartition, PartitionFetch, PartitionReport)],
    ) -> i32 {
        if self.max_slots == 0 {
            return INVALID_SESSION_ID;
        }
        let mut sessions = self.sessions.lock();
        if sessions.len() >= self.max_slots {
            let now = Instant::now();
            let oldest = sessions
                .iter()
                .filter(|(_, s)| now.duration_since(s.last_used) >= EVICTABLE_AFTER)
                .min_by_key(|(_, s)| s.last_used)
                .map(|(&id, _)| id);
            match oldest {
                Some(id) => {
                    sessions.remove(&id);
                }
                None => return INVALID_SESSION_ID,
            }
        }
        let mut rng = rand::rng();
        let id = loop {
            let candidate = rng.random_range(1..i32::MAX);
            if !sessions.contains_key(&candidate) {
                break candidate;
            }
        };
        let partitions = partitions
            .iter()
            .map(|(k, f, r)| {
                (
                    k.clone(),
                    CachedPartition {
                        fetch: f.clone(),
                        last_report: Some(*r),
                    },
                )
            })
            .collect();
        sessions.insert(
            id,
            Session {
                next_epoch: 1,
                partitions,
                last_used: Instant::now(),
            },
        );
        id
    }

    /// Records what an incremental fetch reported and decides, per partition,
    /// whether the response includes it. Advances the session epoch.
    pub fn complete_incremental(
        &self,
        session_id: i32,
        reports: &[(SessionPartition, PartitionReport, bool)],
    ) -> Vec<bool> {
        let mut sessions = self.sessions.lock();
        let Some(session) = sessions.get_mut(&session_id) else {
            return reports.iter().map(|_| true).collect();
        };
        session.next_epoch = next_epoch(session.next_epoch);
        reports
            .iter()
            .map(|(key, report, has_news)| {
                let Some(cached) = session.partitions.get_mut(key) else {
                    return true;
                };
                let changed = cached.last_report != Some(*report);
                cached.last_report = Some(*report);
                *has_news || changed
            })
            .collect()
    }
}

fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> SessionPartition {
        SessionPartition {
            topic_id: Uuid::nil(),
            topic: "t".into(),
            partition: p,
        }
    }

    fn fetch(offset: i64) -> PartitionFetch {
        PartitionFetch {
            fetch_offset: offset,
            max_bytes: 1024,
            current_leader_epoch: -1,
            log_start_offset: -1,
        }
    }

    const REPORT: PartitionReport = PartitionReport {
        high_watermark: 10,
        last_stable_offset: 10,
        log_start_offset: 0,
    };

    #[test]
    fn session_lifecycle() {
        let cache = FetchSessionCache::new(10);
        let ctx = cache.new_context(0, 0, vec![(key(0), fetch(0)), (key(1), fetch(0))], vec![]);
        assert!(matches!(ctx, FetchContext::FullWithNewSession(ref p) if p.len() == 2));
        let id = cache.create_session(&[(key(0), fetch(0), REPORT), (key(1), fetch(0), REPORT)]);
        assert_ne!(id, INVALID_SESSION_ID);

        // Incremental at epoch 1 with only partition 0 updated: both are read.
        let FetchContext::Incremental { partitions, .. } =
            cache.new_context(id, 1, vec![(key(0), fetch(5))], vec![])
        else {
            panic!("expected incremental");
        };
        assert_eq!(partitions.len(), 2);
        assert_eq!(partitions[0].1.fetch_offset, 5);
        // Nothing new on partition 1, records on partition 0.
        let include =
            cache.complete_incremental(id, &[(key(0), REPORT, true), (key(1), REPORT, false)]);
        assert_eq!(include, vec![true, false]);

        // Wrong epoch, unknown session.
        assert!(matches!(
            cache.new_context(id, 1, vec![], vec![]),
            FetchContext::Error(ErrorCode::InvalidFetchSessionEpoch)
        ));
        assert!(matches!(
            cache.new_context(id + 1, 1, vec![], vec![]),
            FetchContext::Error(ErrorCode::FetchSessionIdNotFound)
        ));
        // Forget partition 1 at epoch 2.
        let FetchContext::Incremental { partitions, .. } =
            cache.new_context(id, 2, vec![], vec![key(1)])
        else {
            panic!("expected incremental");
        };
        assert_eq!(partitions.len(), 1);
        // Close.
        assert!(matches!(
            cache.new_context(id, -1, vec![], vec![]),
            FetchContext::Sessionless(_)
        ));
        assert!(cache.is_empty());
    }

    #[test]
    fn a_moved_high_watermark_is_news() {
        let cache = FetchSessionCache::new(1);
        let id = cache.create_session(&[(key(0), fetch(0), REPORT)]);
        cache.new_context(id, 1, vec![], vec![]);
        let moved = PartitionReport {
            high_watermark: 11,
            ..REPORT
        };
        assert_eq!(
            cache.complete_incremental(id, &[(key(0), moved, false)]),
            vec![true]
        );
    }

    #[test]
    fn full_cache_refuses_new_sessions() {
        let cache = FetchSessionCache::new(1);
        assert_ne!(cache.create_session(&[]), INVALID_SESSION_ID);
        assert_eq!(cache.create_session(&[]), INVALID_SESSION_ID);
    }
}
