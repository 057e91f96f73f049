//! Batch generators (all via `BatchBuilder`) and a decoder for checking
//! what the log returns.

use millrace_protocol::records::{BatchBuilder, BatchIter, Compression, TimestampType};
use rand::Rng;

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub epoch: i32,
}

/// Every codec Kafka clients use.
pub const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// One record to build: key, value, timestamp.
pub type RecSpec<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64);

/// A batch of `(key, value, timestamp)` records at base offset 0.
pub fn batch_of(records: &[RecSpec<'_>], codec: Compression) -> Vec<u8> {
    let mut b = BatchBuilder::new(0, codec);
    for (i, (k, v, ts)) in records.iter().enumerate() {
        b.append(i as i64, *ts, *k, *v, 0, &[]);
    }
    b.build().expect("build").to_vec()
}

/// `n` records with values `v<i>` and timestamps `ts + i`.
pub fn simple_batch(n: usize, ts: i64) -> Vec<u8> {
    let values: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
    let recs: Vec<RecSpec<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (None, Some(v.as_bytes()), ts + i as i64))
        .collect();
    batch_of(&recs, Compression::None)
}

/// One keyed record; `value: None` is a tombstone.
pub fn kv(key: &str, value: Option<&str>, ts: i64) -> Vec<u8> {
    batch_of(
        &[(Some(key.as_bytes()), value.map(str::as_bytes), ts)],
        Compression::None,
    )
}

/// A batch of `records` values of `value_len` bytes (for size-based tests).
pub fn sized_batch(records: usize, value_len: usize, ts: i64) -> Vec<u8> {
    let value = vec![b'x'; value_len];
    let recs: Vec<RecSpec<'_>> = (0..records)
        .map(|i| (None, Some(&value[..]), ts + i as i64))
        .collect();
    batch_of(&recs, Compression::None)
}

/// A random batch: 1..=max_records records, random keys from a small key
/// space (so compaction has work), random sizes, a random codec.
pub fn random_batch(rng: &mut impl Rng, max_records: usize, ts: i64) -> Vec<u8> {
    let codec = CODECS[rng.random_range(0..CODECS.len())];
    let n = rng.random_range(1..=max_records);
    let mut b = BatchBuilder::new(0, codec);
    for i in 0..n {
        let key = format!("k{}", rng.random_range(0..20));
        let value: Option<Vec<u8>> = if rng.random_range(0..10) == 0 {
            None
        } else {
            let len = rng.random_range(0..200);
            Some((0..len).map(|_| rng.random::<u8>()).collect())
        };
        let key_opt = if rng.random_range(0..8) == 0 {
            None
        } else {
            Some(key.as_bytes())
        };
        b.append(i as i64, ts + i as i64, key_opt, value.as_deref(), 0, &[]);
    }
    b.build().expect("build").to_vec()
}

/// Decodes every record of `bytes` (whole batches).
pub fn decode(bytes: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    for batch in BatchIter::new(bytes) {
        let batch = batch.expect("framed batch");
        batch.verify_crc().expect("crc");
        let h = batch.header;
        let payload = batch.records().expect("records");
        for r in payload.iter() {
            let r = r.expect("record");
            let timestamp = if h.timestamp_type() == TimestampType::LogAppendTime {
                h.max_timestamp
            } else {
                h.base_timestamp + r.timestamp_delta
            };
            out.push(Rec {
                offset: h.base_offset + i64::from(r.offset_delta),
                timestamp,
                key: r.key.map(<[u8]>::to_vec),
                value: r.value.map(<[u8]>::to_vec),
                epoch: h.partition_leader_epoch,
            });
        }
    }
    out
}

/// Decodes the records of a batch appended at `base_offset` (what the log
/// should return for it).
pub fn expected_records(batch: &[u8], base_offset: i64, epoch: i32) -> Vec<Rec> {
    let mut copy = batch.to_vec();
    millrace_protocol::records::set_base_offset(&mut copy, base_offset);
    millrace_protocol::records::set_partition_leader_epoch(&mut copy, epoch);
    decode(&copy)
}
