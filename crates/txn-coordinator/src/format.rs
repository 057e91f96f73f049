//! `__transaction_state` records, encoded as Kafka encodes them so a Millrace
//! log can be read by Kafka's tools and vice versa.
//!
//! Key: `i16 version (0)` then `TransactionLogKey` v0 (`transactional_id:
//! string`). Value: `i16 version` then `TransactionLogValue`; version 0 is
//! what Kafka 3.7 writes, version 1 (flexible: compact strings and arrays,
//! tagged fields) is read too. A null value is a tombstone.

use crate::state::{Transit, TxnState, NO_PRODUCER_EPOCH};
use crate::TopicPartition;
use bytes::Bytes;
use millrace_protocol::records::{BatchBuilder, BatchIter, Compression};
use std::collections::{BTreeMap, BTreeSet};

/// Why a record could not be decoded; loading skips such records.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    /// The bytes ended early or a length was impossible.
    #[error("truncated or malformed {0}")]
    Malformed(&'static str),
    /// A value version this coordinator does not know.
    #[error("unknown transaction log value version {0}")]
    UnknownVersion(i16),
    /// A status byte outside Kafka's states.
    #[error("unknown transaction status {0}")]
    UnknownStatus(i8),
}

/// Encodes the record key for `transactional_id`.
pub fn encode_key(transactional_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    out.extend_from_slice(&0i16.to_be_bytes());
    put_string(&mut out, transactional_id);
    out
}

/// Encodes a value as `TransactionLogValue` version 0 (Kafka 3.7's format).
/// Empty transactions store a null partition array, as Kafka does.
pub fn encode_value(t: &Transit) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&t.producer_id.to_be_bytes());
    out.extend_from_slice(&t.producer_epoch.to_be_bytes());
    out.extend_from_slice(&t.timeout_ms.to_be_bytes());
    out.push(t.state.id() as u8);
    if t.state == TxnState::Empty {
        out.extend_from_slice(&(-1i32).to_be_bytes());
    } else {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in &t.partitions {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        out.extend_from_slice(&(by_topic.len() as i32).to_be_bytes());
        for (topic, parts) in by_topic {
            put_string(&mut out, topic);
            out.extend_from_slice(&(parts.len() as i32).to_be_bytes());
            for p in parts {
                out.extend_from_slice(&p.to_be_bytes());
            }
        }
    }
    out.extend_from_slice(&t.last_update_ms.to_be_bytes());
    out.extend_from_slice(&t.start_ms.to_be_bytes());
    out
}

/// Decodes a key; `Ok(None)` for other key versions (records Kafka would skip).
pub fn decode_key(key: &[u8]) -> Result<Option<String>, FormatError> {
    let mut r = Reader { buf: key };
    let version = r.i16()?;
    if version != 0 {
        return Ok(None);
    }
    Ok(Some(r.string(false)?))
}

/// Decodes a value (version 0 or 1) into the state it records.
pub fn decode_value(value: &[u8]) -> Result<Transit, FormatError> {
    let mut r = Reader { buf: value };
    let version = r.i16()?;
    if !(0..=1).contains(&version) {
        return Err(FormatError::UnknownVersion(version));
    }
    let flexible = version >= 1;
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let status = r.i8()?;
    let state = TxnState::from_id(status).ok_or(FormatError::UnknownStatus(status))?;
    let mut partitions = BTreeSet::new();
    if let Some(topics) = r.array_len(flexible)? {
        for _ in 0..topics {
            let topic = r.string(flexible)?;
            let count = r
                .array_len(flexible)?
                .ok_or(FormatError::Malformed("partition ids"))?;
            for _ in 0..count {
                partitions.insert(TopicPartition {
                    topic: topic.clone(),
                    partition: r.i32()?,
                });
            }
            if flexible {
                r.skip_tagged_fields()?;
            }
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    if flexible {
        r.skip_tagged_fields()?;
    }
    Ok(Transit {
        producer_id,
        last_producer_id: producer_id,
        producer_epoch,
        last_producer_epoch: NO_PRODUCER_EPOCH,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
    })
}

/// Builds the one-record batch the coordinator appends for a transition
/// (`None` = tombstone).
pub fn build_batch(
    transactional_id: &str,
    value: Option<&Transit>,
    now: i64,
) -> Result<Bytes, millrace_protocol::records::RecordsError> {
    let key = encode_key(transactional_id);
    let value = value.map(encode_value);
    let mut builder = BatchBuilder::new(0, Compression::None);
    builder.append(0, now, Some(&key), value.as_deref(), 0, &[]);
    builder.build()
}

/// One decoded record of a `__transaction_state` partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    /// The latest state of a transactional id.
    Value(String, Transit),
    /// The transactional id was removed.
    Tombstone(String),
}

/// Decodes the whole batches in `records`: the entries, the offset after the
/// last whole batch (`None` if there was none), and how many records were
/// skipped as undecodable.
pub fn decode_chunk(records: &[u8]) -> (Vec<LogEntry>, Option<i64>, usize) {
    let mut entries = Vec::new();
    let mut next = None;
    let mut skipped = 0;
    for batch in BatchIter::new(records) {
        let Ok(batch) = batch else { break };
        next = Some(batch.header.next_offset());
        if batch.header.is_control() {
            continue;
        }
        let payload = match batch.records() {
            Ok(p) => p,
            Err(_) => {
                skipped += 1;
                continue;
            }
        };
        for record in payload.iter() {
            let Ok(record) = record else {
                skipped += 1;
                break;
            };
            let Some(key) = record.key else {
                skipped += 1;
                continue;
            };
            let id = match decode_key(key) {
                Ok(Some(id)) => id,
                Ok(None) => continue,
                Err(_) => {
                    skipped += 1;
                    continue;
                }
            };
            match record.value {
                None => entries.push(LogEntry::Tombstone(id)),
                Some(v) => match decode_value(v) {
                    Ok(t) => entries.push(LogEntry::Value(id, t)),
                    Err(e) => {
                        tracing::warn!(transactional_id = %id, error = %e, "skipping undecodable transaction log value");
                        skipped += 1;
                    }
                },
            }
        }
    }
    (entries, next, skipped)
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], FormatError> {
        if self.buf.len() < n {
            return Err(FormatError::Malformed(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn fixed<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], FormatError> {
        self.take(N, what)?
            .try_into()
            .map_err(|_| FormatError::Malformed(what))
    }

    fn i8(&mut self) -> Result<i8, FormatError> {
        Ok(self.fixed::<1>("int8")?[0] as i8)
    }

    fn i16(&mut self) -> Result<i16, FormatError> {
        Ok(i16::from_be_bytes(self.fixed("int16")?))
    }

    fn i32(&mut self) -> Result<i32, FormatError> {
        Ok(i32::from_be_bytes(self.fixed("int32")?))
    }

    fn i64(&mut self) -> Result<i64, FormatError> {
        Ok(i64::from_be_bytes(self.fixed("int64")?))
    }

    fn uvarint(&mut self) -> Result<u32, FormatError> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let b = self.i8()? as u8;
            value |= u32::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(FormatError::Malformed("varint"))
    }

    /// A (compact when flexible) non-null string.
    fn string(&mut self, flexible: bool) -> Result<String, FormatError> {
        let len = if flexible {
            (self.uvarint()? as i64) - 1
        } else {
            i64::from(self.i16()?)
        };
        if len < 0 {
            return Err(FormatError::Malformed("null string"));
        }
        let bytes = self.take(len as usize, "string")?;
        String::from_utf8(bytes.to_vec()).map_err(|_| FormatError::Malformed("utf-8 string"))
    }

    /// A (compact when flexible) nullable array length.
    fn array_len(&mut self, flexible: bool) -> Result<Option<usize>, FormatError> {
        let len = if flexible {
            (self.uvarint()? as i64) - 1
        } else {
            i64::from(self.i32()?)
        };
        if len < 0 {
            return Ok(None);
        }
        // Each element takes at least one byte: refuse impossible counts.
        if len as usize > self.buf.len() {
            return Err(FormatError::Malformed("array length"));
        }
        Ok(Some(len as usize))
    }

    fn skip_tagged_fields(&mut self) -> Result<(), FormatError> {
        let count = self.uvarint()?;
        for _ in 0..count {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size, "tagged field")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transit(state: TxnState) -> Transit {
        Transit {
            producer_id: 42,
            last_producer_id: 42,
            producer_epoch: 3,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: 60_000,
            state,
            partitions: [
                TopicPartition::new("a", 1),
                TopicPartition::new("a", 0),
                TopicPartition::new("b", 7),
            ]
            .into_iter()
            .collect(),
            start_ms: 1000,
            last_update_ms: 2000,
        }
    }

    #[test]
    fn key_matches_kafka_bytes() {
        assert_eq!(encode_key("tx"), vec![0, 0, 0, 2, b't', b'x']);
        assert_eq!(decode_key(&encode_key("tx")), Ok(Some("tx".to_string())));
        assert_eq!(decode_key(&[0, 1, 0, 0]), Ok(None));
        assert!(decode_key(&[0, 0, 0, 9, b'x']).is_err());
    }

    #[test]
    fn value_v0_round_trips_with_kafka_layout() {
        let t = transit(TxnState::Ongoing);
        let bytes = encode_value(&t);
        // version, pid, epoch, timeout, status
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &42i64.to_be_bytes());
        assert_eq!(&bytes[10..12], &3i16.to_be_bytes());
        assert_eq!(&bytes[12..16], &60_000i32.to_be_bytes());
        assert_eq!(bytes[16], 1);
        assert_eq!(&bytes[17..21], &2i32.to_be_bytes(), "two topics");
        assert_eq!(decode_value(&bytes), Ok(t));
    }

    #[test]
    fn empty_state_writes_null_partitions() {
        let mut t = transit(TxnState::Empty);
        t.partitions.clear();
        t.start_ms = -1;
        let bytes = encode_value(&t);
        assert_eq!(&bytes[17..21], &(-1i32).to_be_bytes());
        assert_eq!(decode_value(&bytes), Ok(t));
    }

    #[test]
    fn value_v1_flexible_is_read() {
        // version 1, compact array of one topic "t" with partitions [5], tagged fields.
        let mut v = vec![0, 1];
        v.extend_from_slice(&9i64.to_be_bytes());
        v.extend_from_slice(&2i16.to_be_bytes());
        v.extend_from_slice(&100i32.to_be_bytes());
        v.push(2);
        v.push(2); // one topic
        v.extend_from_slice(&[2, b't']); // compact string "t"
        v.push(2); // one partition
        v.extend_from_slice(&5i32.to_be_bytes());
        v.push(0); // topic tagged fields
        v.extend_from_slice(&7i64.to_be_bytes());
        v.extend_from_slice(&6i64.to_be_bytes());
        v.extend_from_slice(&[1, 0, 8]); // one tagged field: tag 0, 8 bytes
        v.extend_from_slice(&11i64.to_be_bytes());
        let t = decode_value(&v).expect("v1");
        assert_eq!(t.producer_id, 9);
        assert_eq!(t.state, TxnState::PrepareCommit);
        assert_eq!(
            t.partitions.into_iter().collect::<Vec<_>>(),
            vec![TopicPartition::new("t", 5)]
        );
        assert_eq!((t.last_update_ms, t.start_ms), (7, 6));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_value(&[]).is_err());
        assert!(decode_value(&[0, 5]).is_err());
        let bytes = encode_value(&transit(TxnState::Ongoing));
        for cut in 0..bytes.len() {
            assert!(decode_value(&bytes[..cut]).is_err());
        }
        let mut bad = bytes.clone();
        bad[16] = 99;
        assert_eq!(decode_value(&bad), Err(FormatError::UnknownStatus(99)));
    }

    #[test]
    fn batches_decode_with_tombstones() {
        let t = transit(TxnState::Ongoing);
        let mut all = Vec::new();
        all.extend_from_slice(&build_batch("x", Some(&t), 5).expect("batch"));
        let mut second = build_batch("x", None, 6).expect("batch").to_vec();
        millrace_protocol::records::set_base_offset(&mut second, 1);
        all.extend_from_slice(&second);
        let (entries, next, skipped) = decode_chunk(&all);
        assert_eq!(skipped, 0);
        assert_eq!(next, Some(2));
        assert_eq!(
            entries,
            vec![
                LogEntry::Value("x".into(), t),
                LogEntry::Tombstone("x".into())
            ]
        );
    }
}
