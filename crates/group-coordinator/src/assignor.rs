//! KIP-848 server-side assignors: `uniform` (Kafka's default) and `range`.
//!
//! Both are pure functions of the members' subscriptions, the subscribed
//! topics' partition counts and (for stickiness) the previous target
//! assignment, so the coordinator can recompute a target whenever the group
//! epoch moves and tests can check them in isolation.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::records::TopicPartitions;

/// One member as an assignor sees it.
#[derive(Debug, Clone, Default)]
pub struct MemberSpec {
    /// Ids of the existing topics the member subscribes to.
    pub subscribed: BTreeSet<Uuid>,
    /// The member's previous target assignment (kept where still valid).
    pub current: TopicPartitions,
}

/// The assignors this coordinator implements.
pub const ASSIGNORS: [&str; 2] = ["uniform", "range"];

/// Computes a target assignment with the named assignor (`None` when the
/// name is unknown). `topics` maps topic id to partition count. Every member
/// appears in the result, possibly with nothing.
pub fn assign(
    name: &str,
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<Uuid, i32>,
) -> Option<BTreeMap<String, TopicPartitions>> {
    match name {
        "uniform" => Some(uniform(members, topics)),
        "range" => Some(range(members, topics)),
        _ => None,
    }
}

/// Kafka's RangeAssignor on the server: per topic, the subscribed members in
/// member id order each get a contiguous range; the first
/// `partitions % members` get one more.
pub fn range(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, TopicPartitions> {
    let mut out: BTreeMap<String, TopicPartitions> = members
        .keys()
        .map(|m| (m.clone(), TopicPartitions::new()))
        .collect();
    for (topic, &count) in topics {
        let subs: Vec<&String> = members
            .iter()
            .filter(|(_, s)| s.subscribed.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if subs.is_empty() || count <= 0 {
            continue;
        }
        let n = subs.len() as i32;
        let (per, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, m) in subs.into_iter().enumerate() {
            let take = per + i32::from((i as i32) < extra);
            if take > 0 {
                if let Some(a) = out.get_mut(m) {
                    a.entry(*topic).or_default().extend(next..next + take);
                }
            }
            next += take;
        }
    }
    out
}

/// A sticky, balanced assignment: every partition goes to a member
/// subscribed to its topic; previous owners keep their partitions while that
/// keeps the counts of members that could take a partition within one of
/// each other.
pub fn uniform(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, TopicPartitions> {
    let mut owner: BTreeMap<(Uuid, i32), String> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = members.keys().map(|m| (m.clone(), 0)).collect();
    // Keep still-valid previous assignments.
    for (m, spec) in members {
        for (topic, parts) in &spec.current {
            let Some(&count) = topics.get(topic) else {
                continue;
            };
            if !spec.subscribed.contains(topic) {
                continue;
            }
            for &p in parts {
                if p < count && !owner.contains_key(&(*topic, p)) {
                    owner.insert((*topic, p), m.clone());
                    *counts.entry(m.clone()).or_default() += 1;
                }
            }
        }
    }
    let eligible = |topic: &Uuid| -> Vec<&String> {
        members
            .iter()
            .filter(|(_, s)| s.subscribed.contains(topic))
            .map(|(m, _)| m)
            .collect()
    };
    // Assign the rest to the least loaded eligible member.
    for (topic, &count) in topics {
        let candidates = eligible(topic);
        if candidates.is_empty() {
            continue;
        }
        for p in 0..count {
            if owner.contains_key(&(*topic, p)) {
                continue;
            }
            let Some(best) = candidates
                .iter()
                .min_by_key(|m| (counts.get(**m).copied().unwrap_or(0), (**m).clone()))
            else {
                continue;
            };
            owner.insert((*topic, p), (*best).clone());
            *counts.entry((*best).clone()).or_default() += 1;
        }
    }
    // Balance: move partitions from a member to an eligible one holding at
    // least two fewer, until no such move exists.
    let total = owner.len();
    for _ in 0..total.saturating_mul(2).max(1) {
        let mut moved = false;
        let keys: Vec<(Uuid, i32)> = owner.keys().copied().collect();
        for key in keys {
            let Some(current) = owner.get(&key).cloned() else {
                continue;
            };
            let from = counts.get(&current).copied().unwrap_or(0);
            let target = eligible(&key.0)
                .into_iter()
                .filter(|m| **m != current)
                .min_by_key(|m| (counts.get(*m).copied().unwrap_or(0), (*m).clone()));
            if let Some(t) = target {
                let to = counts.get(t).copied().unwrap_or(0);
                if to + 1 < from {
                    let t = t.clone();
                    owner.insert(key, t.clone());
                    *counts.entry(current).or_default() -= 1;
                    *counts.entry(t).or_default() += 1;
                    moved = true;
                }
            }
        }
        if !moved {
            break;
        }
    }
    let mut out: BTreeMap<String, TopicPartitions> = members
        .keys()
        .map(|m| (m.clone(), TopicPartitions::new()))
        .collect();
    for ((topic, p), m) in owner {
        if let Some(a) = out.get_mut(&m) {
            a.entry(topic).or_default().insert(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(topics: &[Uuid]) -> MemberSpec {
        MemberSpec {
            subscribed: topics.iter().copied().collect(),
            current: TopicPartitions::new(),
        }
    }

    fn count(a: &TopicPartitions) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    #[test]
    fn range_splits_like_kafka() {
        let t = Uuid::from_u128(1);
        let members: BTreeMap<String, MemberSpec> =
            [("a".to_string(), spec(&[t])), ("b".to_string(), spec(&[t]))].into();
        let out = range(&members, &[(t, 5)].into());
        assert_eq!(out["a"][&t], [0, 1, 2].into());
        assert_eq!(out["b"][&t], [3, 4].into());
    }

    #[test]
    fn uniform_is_balanced_and_sticky() {
        let t1 = Uuid::from_u128(1);
        let t2 = Uuid::from_u128(2);
        let topics: BTreeMap<Uuid, i32> = [(t1, 4), (t2, 3)].into();
        let mut members: BTreeMap<String, MemberSpec> = [
            ("a".to_string(), spec(&[t1, t2])),
            ("b".to_string(), spec(&[t1, t2])),
        ]
        .into();
        let first = uniform(&members, &topics);
        assert_eq!(count(&first["a"]) + count(&first["b"]), 7);
        assert!(count(&first["a"]).abs_diff(count(&first["b"])) <= 1);
        // A third member joins: each old member keeps most of what it had.
        for (m, a) in &first {
            if let Some(s) = members.get_mut(m) {
                s.current = a.clone();
            }
        }
        members.insert("c".to_string(), spec(&[t1, t2]));
        let second = uniform(&members, &topics);
        for m in ["a", "b", "c"] {
            assert!((2..=3).contains(&count(&second[m])), "{m}: {:?}", second[m]);
        }
        for m in ["a", "b"] {
            for (t, ps) in &second[m] {
                assert!(
                    ps.is_subset(&first[m][t]),
                    "{m} moved partitions it did not own"
                );
            }
        }
    }

    #[test]
    fn uniform_respects_subscriptions() {
        let t1 = Uuid::from_u128(1);
        let t2 = Uuid::from_u128(2);
        let members: BTreeMap<String, MemberSpec> = [
            ("a".to_string(), spec(&[t1])),
            ("b".to_string(), spec(&[t1, t2])),
        ]
        .into();
        let out = uniform(&members, &[(t1, 2), (t2, 2)].into());
        assert!(!out["a"].contains_key(&t2));
        assert_eq!(count(&out["a"]) + count(&out["b"]), 4);
    }
}
