//! The history checker of the fault suite: every write a producer attempts
//! is recorded (in flight, acknowledged at an offset, or failed), every read
//! of the partitions is recorded, and [`History::check`] decides whether the
//! cluster kept the promises `acks=all` makes:
//!
//! - no acknowledged record is lost: every read pass that reaches an
//!   acknowledged offset finds the acknowledged value there, and the last
//!   pass reaches every acknowledged offset;
//! - nothing is read that was never written (a phantom): every value read was
//!   sent by a producer of this run, to that partition;
//! - no value of an idempotent writer is read at two different positions
//!   (duplication), which would be a broker bug; a writer registered with
//!   [`History::at_least_once`] (non-idempotent) may be duplicated, as
//!   Kafka allows, and its duplicates are counted in the summary;
//! - no offset holds two different values across the run's reads (replicas
//!   diverged, or a committed offset was rewritten).
//!
//! Failed and unanswered writes are "in flight": they may or may not be in
//! the log (a connection lost after the append, NOT_ENOUGH_REPLICAS_AFTER_
//! APPEND, a timeout), so the checker allows either.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;

/// How an attempted write ended, as far as the producer knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No delivery report yet.
    InFlight,
    /// Acknowledged at this offset (negative: acknowledged without an
    /// offset, as librdkafka reports an idempotent batch the broker
    /// answered DUPLICATE_SEQUENCE_NUMBER; it must still be in the log).
    Acked(i64),
    /// Failed with this error; the record may still have been appended.
    Failed(String),
}

/// One attempted write.
#[derive(Debug, Clone)]
pub struct Write {
    /// The partition it was sent to.
    pub partition: i32,
    /// Which producer sent it (for messages).
    pub writer: String,
    /// How it ended.
    pub outcome: Outcome,
}

/// One record as a consumer read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    /// Partition read.
    pub partition: i32,
    /// Offset of the record.
    pub offset: i64,
    /// The value (the unique id the writer put there).
    pub value: String,
}

/// One read of the partitions: what was read, and up to where each
/// partition was read (the high watermark at the time).
#[derive(Debug, Clone, Default)]
pub struct ReadPass {
    /// A label for messages ("after round 3").
    pub label: String,
    /// Partition -> the end offset read up to (exclusive).
    pub ends: BTreeMap<i32, i64>,
    /// The records read.
    pub records: Vec<ReadRecord>,
}

/// A broken promise found by [`History::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// An acknowledged record is missing or another value is at its offset.
    Lost {
        /// The acknowledged value.
        value: String,
        /// Its partition.
        partition: i32,
        /// The acknowledged offset.
        offset: i64,
        /// What the read pass found there (None: the pass ended before it).
        found: Option<String>,
        /// Which read pass.
        pass: String,
    },
    /// A value no producer of this run sent to that partition.
    Phantom {
        /// The value read.
        value: String,
        /// Where.
        partition: i32,
        /// Where.
        offset: i64,
        /// Which read pass.
        pass: String,
    },
    /// One value at more than one position.
    Duplicated {
        /// The value.
        value: String,
        /// Every (partition, offset) it was read at.
        positions: Vec<(i32, i64)>,
        /// The read pass that first saw each position.
        passes: Vec<String>,
    },
    /// One offset read with different values in different passes.
    Diverged {
        /// Where.
        partition: i32,
        /// Where.
        offset: i64,
        /// (pass, value) for each distinct value.
        values: Vec<(String, String)>,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Lost {
                value,
                partition,
                offset,
                found,
                pass,
            } => write!(
                f,
                "LOST: {value} was acknowledged at {partition}@{offset}, read pass '{pass}' found {found:?}"
            ),
            Violation::Phantom {
                value,
                partition,
                offset,
                pass,
            } => write!(
                f,
                "PHANTOM: read pass '{pass}' found {value:?} at {partition}@{offset}, never sent to that partition"
            ),
            Violation::Duplicated {
                value,
                positions,
                passes,
            } => write!(
                f,
                "DUPLICATED: {value} is at {positions:?} (first read in passes {passes:?})"
            ),
            Violation::Diverged {
                partition,
                offset,
                values,
            } => write!(
                f,
                "DIVERGED: {partition}@{offset} held different values: {values:?}"
            ),
        }
    }
}

/// What a passing check saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Writes attempted.
    pub attempted: usize,
    /// Writes acknowledged.
    pub acked: usize,
    /// Writes that failed or had no answer.
    pub unacked: usize,
    /// Unacknowledged writes that were nevertheless read (allowed).
    pub unacked_present: usize,
    /// Read passes.
    pub passes: usize,
    /// Records read in the last pass.
    pub last_pass_records: usize,
    /// Values of at-least-once writers read at more than one position.
    pub duplicated: usize,
}

/// The history of one run, shared by the producers' delivery callbacks and
/// the readers.
#[derive(Default)]
pub struct History {
    writes: Mutex<HashMap<String, Write>>,
    passes: Mutex<Vec<ReadPass>>,
    /// Writers whose records may be duplicated (non-idempotent producers).
    at_least_once: Mutex<std::collections::HashSet<String>>,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// Declares that `writer` promises at-least-once only (a
    /// non-idempotent producer): its records may appear more than once.
    pub fn at_least_once(&self, writer: &str) {
        self.at_least_once
            .lock()
            .unwrap()
            .insert(writer.to_string());
    }

    /// Records that `value` is about to be sent to `partition`: it is in
    /// flight from now on. Values must be unique within a run.
    pub fn sent(&self, value: &str, partition: i32, writer: &str) {
        let previous = self.writes.lock().unwrap().insert(
            value.to_string(),
            Write {
                partition,
                writer: writer.to_string(),
                outcome: Outcome::InFlight,
            },
        );
        assert!(previous.is_none(), "value {value} sent twice by the test");
    }

    /// Records an acknowledgement of `value` at `partition`@`offset`.
    pub fn acked(&self, value: &str, partition: i32, offset: i64) {
        let mut writes = self.writes.lock().unwrap();
        let w = writes
            .get_mut(value)
            .unwrap_or_else(|| panic!("acknowledgement for unsent value {value}"));
        assert_eq!(
            w.partition, partition,
            "{value} was sent to partition {} but acknowledged on {partition}",
            w.partition
        );
        assert!(
            w.outcome == Outcome::InFlight,
            "second delivery report for {value}: {:?}",
            w.outcome
        );
        w.outcome = Outcome::Acked(offset);
    }

    /// Records that the write of `value` failed (it may still be in the log).
    pub fn failed(&self, value: &str, error: &str) {
        let mut writes = self.writes.lock().unwrap();
        let w = writes
            .get_mut(value)
            .unwrap_or_else(|| panic!("failure report for unsent value {value}"));
        assert!(
            w.outcome == Outcome::InFlight,
            "second delivery report for {value}: {:?}",
            w.outcome
        );
        w.outcome = Outcome::Failed(error.to_string());
    }

    /// Adds a read pass.
    pub fn read(&self, pass: ReadPass) {
        self.passes.lock().unwrap().push(pass);
    }

    /// (acknowledged, attempted) so far.
    pub fn counts(&self) -> (usize, usize) {
        let writes = self.writes.lock().unwrap();
        let acked = writes
            .values()
            .filter(|w| matches!(w.outcome, Outcome::Acked(_)))
            .count();
        (acked, writes.len())
    }

    /// Failure messages of failed writes, with how often each occurred.
    pub fn failure_kinds(&self) -> BTreeMap<String, usize> {
        let mut kinds = BTreeMap::new();
        for w in self.writes.lock().unwrap().values() {
            if let Outcome::Failed(e) = &w.outcome {
                *kinds.entry(e.clone()).or_insert(0) += 1;
            }
        }
        kinds
    }

    /// Checks every rule of the module docs over all writes and read passes.
    pub fn check(&self) -> Result<Summary, Vec<Violation>> {
        let writes = self.writes.lock().unwrap();
        let passes = self.passes.lock().unwrap();
        let mut violations = Vec::new();
        // (partition, offset) -> distinct (pass, value) seen there.
        let mut at: BTreeMap<(i32, i64), Vec<(String, String)>> = BTreeMap::new();
        // value -> distinct positions.
        let mut positions: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
        let mut first_pass: HashMap<(i32, i64), &str> = HashMap::new();
        for pass in passes.iter() {
            for r in &pass.records {
                match writes.get(&r.value) {
                    Some(w) if w.partition == r.partition => {}
                    _ => violations.push(Violation::Phantom {
                        value: r.value.clone(),
                        partition: r.partition,
                        offset: r.offset,
                        pass: pass.label.clone(),
                    }),
                }
                let seen = at.entry((r.partition, r.offset)).or_default();
                if !seen.iter().any(|(_, v)| *v == r.value) {
                    seen.push((pass.label.clone(), r.value.clone()));
                }
                let pos = positions.entry(&r.value).or_default();
                if !pos.contains(&(r.partition, r.offset)) {
                    pos.push((r.partition, r.offset));
                }
                first_pass
                    .entry((r.partition, r.offset))
                    .or_insert(pass.label.as_str());
            }
        }
        for ((partition, offset), values) in &at {
            if values.len() > 1 {
                violations.push(Violation::Diverged {
                    partition: *partition,
                    offset: *offset,
                    values: values.clone(),
                });
            }
        }
        let at_least_once = self.at_least_once.lock().unwrap();
        let mut duplicated = 0;
        for (value, pos) in &positions {
            let may_repeat = writes
                .get(*value)
                .is_some_and(|w| at_least_once.contains(&w.writer));
            if pos.len() > 1 && may_repeat {
                duplicated += 1;
            }
            if pos.len() > 1 && !may_repeat {
                violations.push(Violation::Duplicated {
                    value: value.to_string(),
                    positions: pos.clone(),
                    passes: pos
                        .iter()
                        .map(|p| first_pass.get(p).copied().unwrap_or_default().to_string())
                        .collect(),
                });
            }
        }
        // Acknowledged writes, against every pass that reached their offset;
        // the last pass must reach all of them.
        let indexed: Vec<HashMap<(i32, i64), &str>> = passes
            .iter()
            .map(|p| {
                p.records
                    .iter()
                    .map(|r| ((r.partition, r.offset), r.value.as_str()))
                    .collect()
            })
            .collect();
        let mut acked = 0;
        let mut unacked = 0;
        for (value, w) in writes.iter() {
            let Outcome::Acked(offset) = w.outcome else {
                unacked += 1;
                continue;
            };
            acked += 1;
            if offset < 0 {
                // Offset unknown: the last pass must hold it somewhere in
                // its partition.
                let held = positions
                    .get(value.as_str())
                    .is_some_and(|pos| pos.iter().any(|(p, _)| *p == w.partition));
                if !held {
                    violations.push(Violation::Lost {
                        value: value.clone(),
                        partition: w.partition,
                        offset,
                        found: None,
                        pass: "(any pass, acknowledged without an offset)".into(),
                    });
                }
                continue;
            }
            for (i, pass) in passes.iter().enumerate() {
                let end = pass.ends.get(&w.partition).copied().unwrap_or(0);
                let is_last = i + 1 == passes.len();
                if offset >= end && !is_last {
                    continue;
                }
                let found = indexed[i].get(&(w.partition, offset)).copied();
                if found != Some(value.as_str()) {
                    violations.push(Violation::Lost {
                        value: value.clone(),
                        partition: w.partition,
                        offset,
                        found: found.map(str::to_string),
                        pass: pass.label.clone(),
                    });
                }
            }
        }
        if passes.is_empty() && acked > 0 {
            violations.push(Violation::Lost {
                value: "(every acknowledged value)".into(),
                partition: -1,
                offset: -1,
                found: None,
                pass: "(no read pass at all)".into(),
            });
        }
        if !violations.is_empty() {
            return Err(violations);
        }
        let unacked_present = positions
            .keys()
            .filter(|v| {
                writes
                    .get(**v)
                    .is_some_and(|w| !matches!(w.outcome, Outcome::Acked(_)))
            })
            .count();
        Ok(Summary {
            attempted: writes.len(),
            acked,
            unacked,
            unacked_present,
            passes: passes.len(),
            last_pass_records: passes.last().map_or(0, |p| p.records.len()),
            duplicated,
        })
    }

    /// Runs [`History::check`] and panics listing the first violations.
    pub fn assert_ok(&self, what: &str) -> Summary {
        match self.check() {
            Ok(summary) => {
                println!("{what}: history check passed: {summary:?}");
                summary
            }
            Err(violations) => {
                let shown: Vec<String> =
                    violations.iter().take(30).map(|v| v.to_string()).collect();
                let (acked, attempted) = self.counts();
                panic!(
                    "{what}: history check found {} violation(s) ({acked} of {attempted} writes \
                     acknowledged; failures {:?}):\n{}",
                    violations.len(),
                    self.failure_kinds(),
                    shown.join("\n")
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(label: &str, ends: &[(i32, i64)], records: &[(i32, i64, &str)]) -> ReadPass {
        ReadPass {
            label: label.into(),
            ends: ends.iter().copied().collect(),
            records: records
                .iter()
                .map(|&(partition, offset, value)| ReadRecord {
                    partition,
                    offset,
                    value: value.into(),
                })
                .collect(),
        }
    }

    /// a, b acknowledged at 0-1 of partition 0; c failed; d never answered.
    fn base() -> History {
        let h = History::new();
        for v in ["a", "b", "c", "d"] {
            h.sent(v, 0, "w");
        }
        h.acked("a", 0, 0);
        h.acked("b", 0, 1);
        h.failed("c", "NOT_ENOUGH_REPLICAS");
        h
    }

    #[test]
    fn a_clean_history_passes_with_unacknowledged_records_present_or_not() {
        let h = base();
        h.read(pass("mid", &[(0, 1)], &[(0, 0, "a")]));
        h.read(pass(
            "end",
            &[(0, 4)],
            &[(0, 0, "a"), (0, 1, "b"), (0, 2, "c"), (0, 3, "d")],
        ));
        let s = h.check().expect("clean");
        assert_eq!(
            (s.attempted, s.acked, s.unacked, s.unacked_present),
            (4, 2, 2, 2)
        );

        let h = base();
        h.read(pass("end", &[(0, 2)], &[(0, 0, "a"), (0, 1, "b")]));
        assert_eq!(h.check().expect("clean").unacked_present, 0);
    }

    #[test]
    fn catches_a_lost_acknowledged_record() {
        // Missing from the log: the pass ends before its offset.
        let h = base();
        h.read(pass("end", &[(0, 1)], &[(0, 0, "a")]));
        let v = h.check().unwrap_err();
        assert!(
            v.iter()
                .any(|v| matches!(v, Violation::Lost { value, found: None, .. } if value == "b")),
            "{v:?}"
        );
        // Overwritten by an unacknowledged record (a truncated leader).
        let h = base();
        h.read(pass("end", &[(0, 2)], &[(0, 0, "a"), (0, 1, "c")]));
        let v = h.check().unwrap_err();
        assert!(
            v.iter().any(|v| matches!(v, Violation::Lost { value, found: Some(f), .. } if value == "b" && f == "c")),
            "{v:?}"
        );
        // Present in a middle pass, gone in the last.
        let h = base();
        h.read(pass("mid", &[(0, 2)], &[(0, 0, "a"), (0, 1, "b")]));
        h.read(pass("end", &[(0, 1)], &[(0, 0, "a")]));
        assert!(h.check().is_err());
        // No read at all while something was acknowledged.
        assert!(base().check().is_err());
    }

    #[test]
    fn an_ack_without_offset_needs_the_value_somewhere_in_its_partition() {
        let h = base();
        h.acked("d", 0, -1001);
        h.read(pass(
            "end",
            &[(0, 3)],
            &[(0, 0, "a"), (0, 1, "b"), (0, 2, "d")],
        ));
        assert!(h.check().is_ok());
        let h = base();
        h.acked("d", 0, -1001);
        h.read(pass("end", &[(0, 2)], &[(0, 0, "a"), (0, 1, "b")]));
        assert!(
            matches!(&h.check().unwrap_err()[..], [Violation::Lost { value, .. }] if value == "d")
        );
    }

    #[test]
    fn an_at_least_once_writer_may_repeat_but_not_lose() {
        let h = base();
        h.at_least_once("w");
        h.read(pass(
            "end",
            &[(0, 3)],
            &[(0, 0, "a"), (0, 1, "b"), (0, 2, "a")],
        ));
        assert_eq!(h.check().expect("a repeat is allowed").duplicated, 1);
        // It still may not lose an acknowledged record.
        let h = base();
        h.at_least_once("w");
        h.read(pass("end", &[(0, 2)], &[(0, 0, "a"), (0, 1, "a")]));
        assert!(h
            .check()
            .unwrap_err()
            .iter()
            .any(|v| matches!(v, Violation::Lost { value, .. } if value == "b")));
    }

    #[test]
    fn catches_duplication_at_different_offsets() {
        let h = base();
        h.read(pass(
            "end",
            &[(0, 3)],
            &[(0, 0, "a"), (0, 1, "b"), (0, 2, "a")],
        ));
        let v = h.check().unwrap_err();
        assert!(
            v.iter().any(|v| matches!(v, Violation::Duplicated { value, positions, .. } if value == "a" && positions.len() == 2)),
            "{v:?}"
        );
        // An unacknowledged record twice is as wrong.
        let h = base();
        h.read(pass(
            "end",
            &[(0, 4)],
            &[(0, 0, "a"), (0, 1, "b"), (0, 2, "d"), (0, 3, "d")],
        ));
        assert!(matches!(
            &h.check().unwrap_err()[..],
            [Violation::Duplicated { .. }]
        ));
        // An acknowledged record read only at another offset is lost and moved.
        let h = base();
        h.read(pass(
            "end",
            &[(0, 3)],
            &[(0, 0, "a"), (0, 1, "c"), (0, 2, "b")],
        ));
        let v = h.check().unwrap_err();
        assert!(v
            .iter()
            .any(|v| matches!(v, Violation::Lost { value, .. } if value == "b")));
    }

    #[test]
    fn catches_phantom_records() {
        let h = base();
        h.read(pass(
            "end",
            &[(0, 3)],
            &[(0, 0, "a"), (0, 1, "b"), (0, 2, "zzz")],
        ));
        let v = h.check().unwrap_err();
        assert_eq!(
            v,
            vec![Violation::Phantom {
                value: "zzz".into(),
                partition: 0,
                offset: 2,
                pass: "end".into()
            }]
        );
        // A real value in a partition it was never sent to.
        let h = base();
        h.read(pass(
            "end",
            &[(0, 2), (1, 1)],
            &[(0, 0, "a"), (0, 1, "b"), (1, 0, "d")],
        ));
        assert!(matches!(
            &h.check().unwrap_err()[..],
            [Violation::Phantom { .. }]
        ));
    }

    #[test]
    fn catches_an_offset_read_with_two_values() {
        let h = base();
        h.read(pass(
            "mid",
            &[(0, 3)],
            &[(0, 0, "a"), (0, 1, "b"), (0, 2, "c")],
        ));
        h.read(pass(
            "end",
            &[(0, 3)],
            &[(0, 0, "a"), (0, 1, "b"), (0, 2, "d")],
        ));
        let v = h.check().unwrap_err();
        assert!(
            v.iter().any(
                |v| matches!(v, Violation::Diverged { offset: 2, values, .. } if values.len() == 2)
            ),
            "{v:?}"
        );
    }
}
