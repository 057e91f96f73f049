//! Replica placement for new partitions, after Kafka's
//! `AdminUtils.assignReplicasToBrokers`: leaders spread round-robin over the
//! brokers, followers shifted so no two partitions share the same replica
//! list pattern, and, when every broker has a rack, replicas of a partition
//! in distinct racks wherever there are enough racks.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;

/// A broker as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementBroker {
    /// Broker id.
    pub id: i32,
    /// Rack (availability zone), if configured.
    pub rack: Option<String>,
}

/// Why replicas cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// More replicas requested than brokers exist.
    #[error("Replication factor: {replication_factor} larger than available brokers: {brokers}.")]
    NotEnoughBrokers {
        /// Requested replication factor.
        replication_factor: i16,
        /// Brokers available.
        brokers: usize,
    },
    /// A replication factor below one.
    #[error("Replication factor must be larger than 0, or -1 to use the default value.")]
    InvalidReplicationFactor,
}

/// Assigns `count` partitions starting at index `first_partition`.
///
/// `start` fixes the otherwise random starting broker and shift (tests use it
/// for determinism).
pub fn assign(
    brokers: &[PlacementBroker],
    first_partition: i32,
    count: i32,
    replication_factor: i16,
    start: Option<(usize, usize)>,
) -> Result<BTreeMap<i32, Vec<i32>>, PlacementError> {
    if replication_factor < 1 {
        return Err(PlacementError::InvalidReplicationFactor);
    }
    let rf = replication_factor as usize;
    if rf > brokers.len() {
        return Err(PlacementError::NotEnoughBrokers {
            replication_factor,
            brokers: brokers.len(),
        });
    }
    let rack_aware = brokers.iter().all(|b| b.rack.is_some());
    let ordered = if rack_aware {
        rack_alternated(brokers)
    } else {
        let mut ids: Vec<i32> = brokers.iter().map(|b| b.id).collect();
        ids.sort_unstable();
        ids
    };
    let n = ordered.len();
    let (start_index, mut shift) = start.unwrap_or_else(|| {
        (
            rand::rng().random_range(0..n),
            rand::rng().random_range(0..n),
        )
    });
    let rack_of: BTreeMap<i32, Option<&String>> =
        brokers.iter().map(|b| (b.id, b.rack.as_ref())).collect();
    let rack_count = brokers
        .iter()
        .filter_map(|b| b.rack.as_ref())
        .collect::<BTreeSet<_>>()
        .len();
    let mut result = BTreeMap::new();
    for partition in first_partition..first_partition + count {
        let p = partition.max(0) as usize;
        if p > 0 && p.is_multiple_of(n) {
            shift += 1;
        }
        let first = (p + start_index) % n;
        let mut replicas = vec![ordered[first]];
        if rack_aware {
            let mut racks_used: BTreeSet<Option<&String>> = BTreeSet::new();
            racks_used.insert(rack_of[&ordered[first]]);
            let mut k = 0usize;
            while replicas.len() < rf {
                let candidate = ordered[replica_index(first, shift, k, n)];
                k += 1;
                let rack = rack_of[&candidate];
                let all_racks_used = racks_used.len() >= rack_count;
                if replicas.contains(&candidate) || (!all_racks_used && racks_used.contains(&rack))
                {
                    if k > 4 * n {
                        // Fall back to any unused broker rather than loop.
                        if let Some(&b) = ordered.iter().find(|b| !replicas.contains(b)) {
                            replicas.push(b);
                        }
                    }
                    continue;
                }
                racks_used.insert(rack);
                replicas.push(candidate);
            }
        } else {
            for j in 0..rf - 1 {
                replicas.push(ordered[replica_index(first, shift, j, n)]);
            }
        }
        result.insert(partition, replicas);
    }
    Ok(result)
}

fn replica_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    if n == 1 {
        return first;
    }
    let s = 1 + (shift + j) % (n - 1);
    (first + s) % n
}

/// Orders brokers so consecutive entries sit in different racks:
/// rack1-b1, rack2-b1, rack3-b1, rack1-b2, …
fn rack_alternated(brokers: &[PlacementBroker]) -> Vec<i32> {
    let mut by_rack: BTreeMap<&String, Vec<i32>> = BTreeMap::new();
    for b in brokers {
        if let Some(rack) = &b.rack {
            by_rack.entry(rack).or_default().push(b.id);
        }
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(brokers.len());
    for i in 0..longest {
        for ids in by_rack.values() {
            if let Some(&id) = ids.get(i) {
                out.push(id);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(racks: &[Option<&str>]) -> Vec<PlacementBroker> {
        racks
            .iter()
            .enumerate()
            .map(|(i, r)| PlacementBroker {
                id: i as i32 + 1,
                rack: r.map(str::to_string),
            })
            .collect()
    }

    #[test]
    fn single_broker_gets_every_replica() {
        let a = assign(&brokers(&[None]), 0, 3, 1, None).unwrap();
        assert_eq!(
            a.values().cloned().collect::<Vec<_>>(),
            vec![vec![1], vec![1], vec![1]]
        );
    }

    #[test]
    fn too_few_brokers_is_an_error() {
        assert_eq!(
            assign(&brokers(&[None]), 0, 1, 3, None),
            Err(PlacementError::NotEnoughBrokers {
                replication_factor: 3,
                brokers: 1
            })
        );
    }

    #[test]
    fn rack_aware_placement_uses_distinct_racks_and_spreads_leaders() {
        let b = brokers(&[
            Some("a"),
            Some("b"),
            Some("c"),
            Some("a"),
            Some("b"),
            Some("c"),
        ]);
        let a = assign(&b, 0, 12, 3, Some((0, 0))).unwrap();
        let rack = |id: i32| b[(id - 1) as usize].rack.clone().unwrap();
        let mut leaders = BTreeMap::new();
        for replicas in a.values() {
            let racks: BTreeSet<_> = replicas.iter().map(|&r| rack(r)).collect();
            assert_eq!(racks.len(), 3, "{replicas:?}");
            *leaders.entry(replicas[0]).or_insert(0) += 1;
        }
        assert!(leaders.values().all(|&c| c == 2), "{leaders:?}");
    }

    #[test]
    fn replicas_are_distinct_without_racks() {
        let a = assign(&brokers(&[None, None, None, None]), 0, 20, 3, None).unwrap();
        for replicas in a.values() {
            let set: BTreeSet<_> = replicas.iter().collect();
            assert_eq!(set.len(), 3);
        }
    }
}
