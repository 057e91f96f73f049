//! Control records (transaction markers) and the coordinator key hash.
//!
//! Transaction markers are control batches holding one record whose key is
//! `{version: i16 = 0, type: i16}` (0 = abort, 1 = commit) and whose value is
//! `{version: i16 = 0, coordinator_epoch: i32}`, as Kafka's
//! `ControlRecordType` and `EndTransactionMarker` encode them. Everything that
//! writes or reads markers (the log, the coordinators, fetch) shares this.

use crate::records::{BatchBuilder, Compression, RecordsError};
use bytes::Bytes;

/// What a control record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    /// The producer's open transaction was aborted.
    Abort,
    /// The producer's open transaction was committed.
    Commit,
    /// A type this version does not know (Kafka ignores them too).
    Unknown(i16),
}

impl ControlType {
    /// The `type` field of the control record key.
    pub fn id(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
            ControlType::Unknown(id) => id,
        }
    }

    /// Parses a control record key; `None` when it is too short to hold one.
    pub fn parse_key(key: &[u8]) -> Option<ControlType> {
        if key.len() < 4 {
            return None;
        }
        Some(match i16::from_be_bytes([key[2], key[3]]) {
            0 => ControlType::Abort,
            1 => ControlType::Commit,
            other => ControlType::Unknown(other),
        })
    }

    /// Encodes the control record key.
    pub fn key(self) -> [u8; 4] {
        let id = self.id().to_be_bytes();
        [0, 0, id[0], id[1]]
    }
}

/// Encodes an end-transaction marker value.
pub fn end_txn_marker_value(coordinator_epoch: i32) -> [u8; 6] {
    let e = coordinator_epoch.to_be_bytes();
    [0, 0, e[0], e[1], e[2], e[3]]
}

/// Reads the coordinator epoch from an end-transaction marker value.
pub fn parse_end_txn_marker_value(value: &[u8]) -> Option<i32> {
    let bytes: [u8; 4] = value.get(2..6)?.try_into().ok()?;
    Some(i32::from_be_bytes(bytes))
}

/// Builds the control batch of one end-transaction marker at offset 0 (the
/// log patches the offset on append).
pub fn end_txn_marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Result<Bytes, RecordsError> {
    let kind = if commit {
        ControlType::Commit
    } else {
        ControlType::Abort
    };
    let mut builder = BatchBuilder::new(0, Compression::None)
        .producer(producer_id, producer_epoch, -1)
        .transaction(true, true);
    builder.append(
        0,
        timestamp,
        Some(&kind.key()),
        Some(&end_txn_marker_value(coordinator_epoch)),
        0,
        &[],
    );
    builder.build()
}

/// The partition of a coordinator topic (`__consumer_offsets`,
/// `__transaction_state`) that owns `key` (a group id or transactional id):
/// `abs(key.hashCode()) % partitions` with Java's `String.hashCode`, so
/// Millrace places groups where Kafka does.
pub fn coordinator_partition(key: &str, partitions: i32) -> i32 {
    let hash = key
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::BatchIter;

    #[test]
    fn java_hash_matches_kafka() {
        // "abc".hashCode() == 96354; "" == 0.
        assert_eq!(coordinator_partition("abc", 50), 96354 % 50);
        assert_eq!(coordinator_partition("", 50), 0);
        // A hash that overflows: "polygenelubricants".hashCode() == i32::MIN.
        assert_eq!(coordinator_partition("polygenelubricants", 50), 0);
    }

    #[test]
    fn marker_round_trips() {
        let batch = end_txn_marker_batch(7, 3, true, 11, 1000).unwrap();
        let mut iter = BatchIter::new(&batch);
        let b = iter.next().unwrap().unwrap();
        assert!(b.header.is_control() && b.header.is_transactional());
        assert_eq!(b.header.producer_id, 7);
        let payload = b.records().unwrap();
        let rec = payload.iter().next().unwrap().unwrap();
        assert_eq!(
            ControlType::parse_key(rec.key.unwrap()),
            Some(ControlType::Commit)
        );
        assert_eq!(parse_end_txn_marker_value(rec.value.unwrap()), Some(11));
    }
}
