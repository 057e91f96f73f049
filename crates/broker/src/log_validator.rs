//! Produce-path validation, after Kafka's `LogValidator`: everything a
//! partition checks before records reach the log.
//!
//! A batch passes through untouched unless Kafka itself would change it: the
//! broker owns the base offset, leader epoch and (for LogAppendTime topics)
//! the timestamp, which the log patches in place; a wrong CreateTime
//! `maxTimestamp` is corrected in place; and only a topic whose
//! `compression.type` names a codec other than the producer's gets its
//! records re-encoded.

use bytes::{Bytes, BytesMut};
use millrace_protocol::records::{
    self, Batch, BatchBuilder, BatchIter, Compression, RecordsError, BATCH_HEADER_LEN,
};
use millrace_protocol::ErrorCode;

/// The topic settings validation depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationSettings {
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: usize,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
    /// `message.timestamp.before.max.ms`.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`.
    pub timestamp_after_max_ms: i64,
    /// `cleanup.policy` contains `compact`: every record needs a key.
    pub compacted: bool,
    /// `compression.type`, `None` for `producer` (keep what the producer sent).
    pub target_compression: Option<Compression>,
}

/// Records ready for [`millrace_storage::Log::append_as_leader`].
#[derive(Debug)]
pub struct ValidatedRecords {
    /// The batch bytes, owned and mutable so the log can patch offsets.
    pub records: BytesMut,
    /// The append time to stamp, for LogAppendTime topics.
    pub log_append_time: Option<i64>,
    /// Number of records.
    pub record_count: i64,
}

/// A produce partition rejected, as the Produce response reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProduceError {
    /// The partition error code.
    pub code: ErrorCode,
    /// The partition error message (Produce v8+).
    pub message: Option<String>,
    /// Per-record errors (batch index, message), Produce v8+.
    pub record_errors: Vec<(i32, Option<String>)>,
}

impl ProduceError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProduceError {
            code,
            message: Some(message.into()),
            record_errors: Vec::new(),
        }
    }

    fn code_only(code: ErrorCode) -> Self {
        ProduceError {
            code,
            message: None,
            record_errors: Vec::new(),
        }
    }

    fn from_records(e: RecordsError) -> Self {
        ProduceError::new(e.error_code(), e.to_string())
    }

    fn per_record(code: ErrorCode, errors: Vec<(i32, String)>) -> Self {
        let shown: Vec<String> = errors
            .iter()
            .take(3)
            .map(|(i, m)| format!("RecordError(batchIndex={i}, message='{m}')"))
            .collect();
        ProduceError {
            code,
            message: Some(format!(
                "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
                errors.len(),
                shown.join(", ")
            )),
            record_errors: errors.into_iter().map(|(i, m)| (i, Some(m))).collect(),
        }
    }
}

/// Validates the `records` of one partition of a Produce request at
/// `api_version` and returns them ready to append.
pub fn validate(
    records: &Bytes,
    api_version: i16,
    settings: &ValidationSettings,
    topic_partition: &str,
    now_ms: i64,
) -> Result<ValidatedRecords, ProduceError> {
    let mut batches = BatchIter::new(records);
    let batch = match batches.next() {
        None => {
            return Err(ProduceError::new(
                ErrorCode::InvalidRecord,
                format!(
                    "Produce requests with version {api_version} must have at least one record batch per partition"
                ),
            ))
        }
        // A v0/v1 message set: Millrace stores only format v2 and says so
        // with UNSUPPORTED_FOR_MESSAGE_FORMAT (Kafka 3.7 answers
        // INVALID_RECORD here; see docs/protocol.md). A magic byte no format
        // has is corrupt data.
        Some(Err(RecordsError::UnsupportedMagic(magic @ (0 | 1)))) => {
            return Err(ProduceError::new(
                ErrorCode::UnsupportedForMessageFormat,
                format!(
                    "Produce requests with version {api_version} are only allowed to contain record batches with magic version 2 (got magic {magic})"
                ),
            ))
        }
        Some(Err(e @ RecordsError::UnsupportedMagic(_))) => {
            return Err(ProduceError::new(ErrorCode::CorruptMessage, e.to_string()))
        }
        Some(Err(e)) => return Err(ProduceError::from_records(e)),
        Some(Ok(batch)) => batch,
    };
    if batches.next().is_some() {
        return Err(ProduceError::new(
            ErrorCode::InvalidRecord,
            format!(
                "Produce requests with version {api_version} are only allowed to contain exactly one record batch per partition"
            ),
        ));
    }
    let header = batch.header;
    let codec = header.compression().map_err(ProduceError::from_records)?;
    if api_version < 7 && codec == Compression::Zstd {
        return Err(ProduceError::code_only(
            ErrorCode::UnsupportedCompressionType,
        ));
    }
    if batch.bytes.len() > settings.max_message_bytes {
        return Err(ProduceError::from_records(RecordsError::TooLarge {
            size: batch.bytes.len(),
            max: settings.max_message_bytes,
        }));
    }
    batch.verify_crc().map_err(ProduceError::from_records)?;
    if header.is_control() {
        return Err(ProduceError::new(
            ErrorCode::InvalidRecord,
            "Clients are not allowed to write control records",
        ));
    }
    if i64::from(header.records_count) != i64::from(header.last_offset_delta) + 1 {
        return Err(ProduceError::new(
            ErrorCode::InvalidRecord,
            format!(
                "Record count {} does not match the batch offset range (last offset delta {})",
                header.records_count, header.last_offset_delta
            ),
        ));
    }
    if header.is_transactional() && !header.has_producer_id() {
        return Err(ProduceError::new(
            ErrorCode::InvalidRecord,
            "Transactional records must carry a producer id",
        ));
    }
    let max_timestamp = check_records(&batch, settings, topic_partition, now_ms)?;

    let recompress_to = settings.target_compression.filter(|&c| c != codec);
    let mut out = match recompress_to {
        Some(target) => recompress(&batch, target).map_err(ProduceError::from_records)?,
        None => BytesMut::from(batch.bytes),
    };
    if !settings.log_append_time && max_timestamp != header.max_timestamp {
        records::set_max_timestamp(&mut out, max_timestamp);
    }
    Ok(ValidatedRecords {
        records: out,
        log_append_time: settings.log_append_time.then_some(now_ms),
        record_count: i64::from(header.records_count),
    })
}

/// Walks every record: structure, sequential offsets, keys on compacted
/// topics and CreateTime bounds. Returns the batch's largest timestamp.
fn check_records(
    batch: &Batch<'_>,
    settings: &ValidationSettings,
    topic_partition: &str,
    now_ms: i64,
) -> Result<i64, ProduceError> {
    let header = &batch.header;
    let payload = batch.records().map_err(ProduceError::from_records)?;
    let mut max_timestamp = records::NO_TIMESTAMP;
    let mut missing_keys = Vec::new();
    let mut bad_timestamps = Vec::new();
    let mut count = 0i32;
    for (index, record) in payload.iter().enumerate() {
        let record = record.map_err(ProduceError::from_records)?;
        let index = index as i32;
        if record.offset_delta != index {
            return Err(ProduceError::new(
                ErrorCode::InvalidRecord,
                format!(
                    "Record {index} has offset delta {} where {index} was expected",
                    record.offset_delta
                ),
            ));
        }
        let timestamp = header.base_timestamp.wrapping_add(record.timestamp_delta);
        max_timestamp = max_timestamp.max(timestamp);
        if settings.compacted && record.key.is_none() {
            missing_keys.push((
                index,
                format!(
                    "Compacted topic cannot accept message without key in topic partition {topic_partition}."
                ),
            ));
        }
        if !settings.log_append_time {
            let earliest = now_ms.saturating_sub(settings.timestamp_before_max_ms);
            let latest = now_ms.saturating_add(settings.timestamp_after_max_ms);
            if timestamp < earliest || timestamp > latest {
                bad_timestamps.push((
                    index,
                    format!(
                        "Timestamp {timestamp} of message with offset {index} is out of range. The timestamp should be within [{earliest}, {latest}]"
                    ),
                ));
            }
        }
        count += 1;
    }
    if count != header.records_count {
        return Err(ProduceError::from_records(RecordsError::MalformedRecord(
            format!(
                "batch claims {} records but holds {count}",
                header.records_count
            ),
        )));
    }
    if !missing_keys.is_empty() {
        return Err(ProduceError::per_record(
            ErrorCode::InvalidRecord,
            missing_keys,
        ));
    }
    if !bad_timestamps.is_empty() {
        return Err(ProduceError::per_record(
            ErrorCode::InvalidTimestamp,
            bad_timestamps,
        ));
    }
    Ok(max_timestamp)
}

/// Re-encodes a batch with the topic's codec, keeping producer identity,
/// timestamps, keys, values and headers.
fn recompress(batch: &Batch<'_>, target: Compression) -> Result<BytesMut, RecordsError> {
    let header = &batch.header;
    let payload = batch.records()?;
    let mut builder = BatchBuilder::like(header, header.base_offset, target);
    for record in payload.iter() {
        let record = record?;
        builder.append(
            header.base_offset + i64::from(record.offset_delta),
            header.base_timestamp.wrapping_add(record.timestamp_delta),
            record.key,
            record.value,
            record.header_count,
            record.headers,
        );
    }
    let built = builder.build()?;
    debug_assert!(built.len() >= BATCH_HEADER_LEN);
    Ok(BytesMut::from(&built[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ValidationSettings {
        ValidationSettings {
            max_message_bytes: 1 << 20,
            log_append_time: false,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            compacted: false,
            target_compression: None,
        }
    }

    fn batch(keys: &[Option<&str>], codec: Compression, ts: i64) -> Bytes {
        let mut b = BatchBuilder::new(0, codec);
        for (i, k) in keys.iter().enumerate() {
            b.append(
                i as i64,
                ts + i as i64,
                k.map(str::as_bytes),
                Some(b"v"),
                0,
                &[],
            );
        }
        b.build().unwrap()
    }

    #[test]
    fn a_good_batch_passes_unchanged() {
        let bytes = batch(&[Some("a"), None], Compression::None, 1_000);
        let v = validate(&bytes, 9, &settings(), "t-0", 5_000).unwrap();
        assert_eq!(&v.records[..], &bytes[..]);
        assert_eq!(v.record_count, 2);
        assert_eq!(v.log_append_time, None);
    }

    #[test]
    fn oversized_corrupt_and_old_magic_batches_get_kafkas_codes() {
        let bytes = batch(&[Some("a")], Compression::None, 0);
        let mut s = settings();
        s.max_message_bytes = 10;
        assert_eq!(
            validate(&bytes, 9, &s, "t-0", 0).unwrap_err().code,
            ErrorCode::MessageTooLarge
        );
        let mut corrupt = bytes.to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert_eq!(
            validate(&Bytes::from(corrupt), 9, &settings(), "t-0", 0)
                .unwrap_err()
                .code,
            ErrorCode::CorruptMessage
        );
        let mut old = bytes.to_vec();
        old[16] = 1;
        assert_eq!(
            validate(&Bytes::from(old.clone()), 9, &settings(), "t-0", 0)
                .unwrap_err()
                .code,
            ErrorCode::UnsupportedForMessageFormat
        );
        old[16] = 3;
        assert_eq!(
            validate(&Bytes::from(old), 9, &settings(), "t-0", 0)
                .unwrap_err()
                .code,
            ErrorCode::CorruptMessage
        );
        let mut two = bytes.to_vec();
        two.extend_from_slice(&bytes);
        assert_eq!(
            validate(&Bytes::from(two), 9, &settings(), "t-0", 0)
                .unwrap_err()
                .code,
            ErrorCode::InvalidRecord
        );
    }

    #[test]
    fn compacted_topics_need_keys() {
        let bytes = batch(&[Some("a"), None], Compression::None, 0);
        let mut s = settings();
        s.compacted = true;
        let e = validate(&bytes, 9, &s, "t-0", 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRecord);
        assert_eq!(e.record_errors.len(), 1);
        assert_eq!(e.record_errors[0].0, 1);
    }

    #[test]
    fn timestamps_outside_the_window_are_rejected() {
        let bytes = batch(&[Some("a")], Compression::None, 1_000);
        let mut s = settings();
        s.timestamp_before_max_ms = 100;
        let e = validate(&bytes, 9, &s, "t-0", 10_000).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidTimestamp);
        s.log_append_time = true;
        let v = validate(&bytes, 9, &s, "t-0", 10_000).unwrap();
        assert_eq!(v.log_append_time, Some(10_000));
    }

    #[test]
    fn topic_codec_recompresses_and_keeps_records() {
        let bytes = batch(&[Some("a"), Some("b")], Compression::None, 7);
        let mut s = settings();
        s.target_compression = Some(Compression::Gzip);
        let v = validate(&bytes, 9, &s, "t-0", 0).unwrap();
        let b = BatchIter::new(&v.records).next().unwrap().unwrap();
        b.verify_crc().unwrap();
        assert_eq!(b.header.compression().unwrap(), Compression::Gzip);
        let payload = b.records().unwrap();
        let keys: Vec<_> = payload
            .iter()
            .map(|r| r.unwrap().key.unwrap().to_vec())
            .collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(b.header.max_timestamp, 8);
    }

    #[test]
    fn zstd_needs_produce_v7() {
        let bytes = batch(&[Some("a")], Compression::Zstd, 0);
        assert_eq!(
            validate(&bytes, 6, &settings(), "t-0", 0).unwrap_err().code,
            ErrorCode::UnsupportedCompressionType
        );
        assert!(validate(&bytes, 7, &settings(), "t-0", 0).is_ok());
    }
}
