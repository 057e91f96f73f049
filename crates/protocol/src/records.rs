//! Record batches (message format v2, "magic 2") viewed in place.
//!
//! Millrace stores batches exactly as producers send them, so this module never
//! decodes a batch into owned records on the produce path: it reads the fixed
//! 61-byte header, checks the CRC, walks the records to validate their
//! structure, and patches the few header fields the broker owns (base offset,
//! partition leader epoch, LogAppendTime) in place.
//!
//! # Format
//!
//! ```text
//! offset  size  field                  covered by CRC
//!      0     8  baseOffset             no
//!      8     4  batchLength            no   (bytes after this field)
//!     12     4  partitionLeaderEpoch   no
//!     16     1  magic (= 2)            no
//!     17     4  crc (CRC-32C)          no
//!     21     2  attributes             yes  (bits 0-2 codec, 3 timestamp type,
//!                                            4 transactional, 5 control, 6 delete horizon)
//!     23     4  lastOffsetDelta        yes
//!     27     8  baseTimestamp          yes
//!     35     8  maxTimestamp           yes
//!     43     8  producerId             yes
//!     51     2  producerEpoch          yes
//!     53     4  baseSequence           yes
//!     57     4  recordsCount           yes
//!     61     …  records (possibly compressed)
//! ```
//!
//! A record is `length varint, attributes i8, timestampDelta varlong,
//! offsetDelta varint, key (varint length, -1 = null), value (same),
//! headerCount varint, headers (key varint-length string, value varint-length
//! bytes)`.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{self as codec, Compressor, Decompressor};
use kafka_protocol::error::ResponseError;

/// Bytes before `batchLength` counts: the base offset and the length itself.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the v2 batch header, up to and including `recordsCount`.
pub const BATCH_HEADER_LEN: usize = 61;
/// The smallest valid `batchLength` (a header with no records).
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
/// The only message format Millrace accepts and stores.
pub const CURRENT_MAGIC: i8 = 2;
/// `producerId` of batches from producers without idempotence.
pub const NO_PRODUCER_ID: i64 = -1;
/// `partitionLeaderEpoch` before a leader stamps a batch.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;
/// Timestamp value meaning "none".
pub const NO_TIMESTAMP: i64 = -1;

const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;
const DELETE_HORIZON_BIT: i16 = 1 << 6;

/// Why a run of bytes is not an acceptable record batch. Each variant maps to
/// the Kafka error code Apache Kafka answers with for the same fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// The bytes end inside a batch or a length field is impossible.
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    /// The stored CRC-32C does not match the batch contents.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC carried by the batch.
        stored: u32,
        /// CRC computed over the batch.
        computed: u32,
    },
    /// Message format v0/v1 (or an unknown magic byte).
    #[error("record batch magic {0} is not supported (only magic 2)")]
    UnsupportedMagic(i8),
    /// A record inside a batch with a valid CRC does not decode: lengths,
    /// varints or the record count disagree with the bytes.
    #[error("malformed record: {0}")]
    MalformedRecord(String),
    /// A batch is larger than `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Size of the batch, including the log overhead.
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// A CreateTime timestamp outside the window the topic allows.
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    /// The compressed payload could not be decompressed.
    #[error("cannot decompress {codec:?} records: {reason}")]
    Decompression {
        /// Codec named by the batch attributes.
        codec: Compression,
        /// What the decompressor reported.
        reason: String,
    },
}

impl RecordsError {
    /// The Kafka error code a Produce response carries for this fault.
    pub fn error_code(&self) -> ResponseError {
        match self {
            RecordsError::Corrupt(_)
            | RecordsError::CrcMismatch { .. }
            | RecordsError::MalformedRecord(_)
            | RecordsError::Decompression { .. } => ResponseError::CorruptMessage,
            RecordsError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
            RecordsError::TooLarge { .. } => ResponseError::MessageTooLarge,
            RecordsError::InvalidTimestamp(_) => ResponseError::InvalidTimestamp,
        }
    }
}

/// The compression codec of a batch (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Records stored as is.
    None,
    /// gzip (deflate) stream.
    Gzip,
    /// Snappy in the xerial framing Java clients use.
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// Decodes the codec bits of batch attributes.
    pub fn from_attributes(attributes: i16) -> Result<Compression, RecordsError> {
        match attributes & COMPRESSION_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(RecordsError::Corrupt(format!(
                "unknown compression codec id {other}"
            ))),
        }
    }

    /// The codec id stored in the attribute bits.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// How a batch's timestamps were assigned (attributes bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when the batch was appended.
    LogAppendTime,
}

/// The fixed header of a v2 record batch, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes following the length field.
    pub batch_length: i32,
    /// Epoch of the leader that appended the batch.
    pub partition_leader_epoch: i32,
    /// Message format version; always 2 here.
    pub magic: i8,
    /// CRC-32C of everything from `attributes` to the end.
    pub crc: u32,
    /// Codec, timestamp type, transactional, control and delete-horizon bits.
    pub attributes: i16,
    /// `lastOffset - baseOffset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (or the delete horizon once compacted).
    pub base_timestamp: i64,
    /// Largest timestamp in the batch (LogAppendTime when so typed).
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub records_count: i32,
}

impl BatchHeader {
    /// Decodes the header at the start of `buf`.
    ///
    /// Fails with [`RecordsError::UnsupportedMagic`] for v0/v1 message sets
    /// (their magic byte sits at the same position) and with
    /// [`RecordsError::Corrupt`] when the bytes are too short or a length is
    /// impossible.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, RecordsError> {
        if buf.len() <= MAGIC_OFFSET {
            return Err(RecordsError::Corrupt(format!(
                "{} bytes is less than the minimum batch header",
                buf.len()
            )));
        }
        let magic = buf[MAGIC_OFFSET] as i8;
        if magic != CURRENT_MAGIC {
            return Err(RecordsError::UnsupportedMagic(magic));
        }
        if buf.len() < BATCH_HEADER_LEN {
            return Err(RecordsError::Corrupt(format!(
                "{} bytes is less than the {BATCH_HEADER_LEN}-byte batch header",
                buf.len()
            )));
        }
        let header = BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH_OFFSET),
            magic,
            crc: be_i32(buf, CRC_OFFSET) as u32,
            attributes: be_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            records_count: be_i32(buf, 57),
        };
        if header.batch_length < MIN_BATCH_LENGTH {
            return Err(RecordsError::Corrupt(format!(
                "batch length {} is less than the minimum {MIN_BATCH_LENGTH}",
                header.batch_length
            )));
        }
        Ok(header)
    }

    /// Total bytes the batch occupies, including the offset and length fields.
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Offset of the last record the batch covers.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Codec of the records section.
    pub fn compression(&self) -> Result<Compression, RecordsError> {
        Compression::from_attributes(self.attributes)
    }

    /// CreateTime or LogAppendTime.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Whether the batch holds control records (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Whether compaction set a delete horizon in `base_timestamp`.
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }

    /// Whether the producer uses idempotence (a producer id is present).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id != NO_PRODUCER_ID
    }
}

/// One whole batch borrowed from a larger buffer.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// The decoded header.
    pub header: BatchHeader,
    /// The batch's bytes, header included.
    pub bytes: &'a [u8],
}

impl<'a> Batch<'a> {
    /// CRC-32C over `attributes..end`, as stored in the header.
    pub fn computed_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[ATTRIBUTES_OFFSET..])
    }

    /// Checks the stored CRC against the contents.
    pub fn verify_crc(&self) -> Result<(), RecordsError> {
        let computed = self.computed_crc();
        if computed != self.header.crc {
            return Err(RecordsError::CrcMismatch {
                stored: self.header.crc,
                computed,
            });
        }
        Ok(())
    }

    /// The records section, decompressed when the batch is compressed.
    pub fn records_payload(&self) -> Result<Cow<'a, [u8]>, RecordsError> {
        let compression = self.header.compression()?;
        let raw = &self.bytes[BATCH_HEADER_LEN..];
        decompress(compression, raw)
    }

    /// Iterates the records, decompressing first when needed.
    ///
    /// The returned value owns the decompressed bytes; call
    /// [`RecordsPayload::iter`] on it to walk records.
    pub fn records(&self) -> Result<RecordsPayload<'a>, RecordsError> {
        Ok(RecordsPayload {
            payload: self.records_payload()?,
            count: self.header.records_count,
        })
    }
}

/// Decompressed record bytes of one batch plus the record count it claims.
pub struct RecordsPayload<'a> {
    payload: Cow<'a, [u8]>,
    count: i32,
}

impl RecordsPayload<'_> {
    /// Iterates the records; the iterator reports a structural error at most once.
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter {
            buf: &self.payload,
            remaining: self.count,
            failed: false,
        }
    }

    /// The uncompressed records section.
    pub fn as_bytes(&self) -> &[u8] {
        &self.payload
    }
}

/// Decompresses a records section with the codecs Kafka clients use.
pub fn decompress(compression: Compression, raw: &[u8]) -> Result<Cow<'_, [u8]>, RecordsError> {
    let mut input = raw;
    let keep = |out: &mut Bytes| Ok(out.clone());
    let result = match compression {
        Compression::None => return Ok(Cow::Borrowed(raw)),
        Compression::Gzip => codec::Gzip::decompress(&mut input, keep),
        Compression::Snappy => {
            check_snappy_lengths(raw)?;
            codec::Snappy::decompress(&mut input, keep)
        }
        Compression::Lz4 => codec::Lz4::decompress(&mut input, keep),
        Compression::Zstd => codec::Zstd::decompress(&mut input, keep),
    };
    result
        .map(|bytes| Cow::Owned(bytes.to_vec()))
        .map_err(|e| RecordsError::Decompression {
            codec: compression,
            reason: format!("{e:#}"),
        })
}

/// xerial's framing of snappy blocks, as Java clients write it.
const XERIAL_SNAPPY_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// No snappy element expands more than 64 bytes out of 3 (a 2-byte-offset
/// copy), so no valid block declares more than ~22 times its own size.
const SNAPPY_MAX_EXPANSION: usize = 32;

/// The snappy decoder allocates and zeroes the uncompressed length a block
/// declares before reading it, so a few bytes claiming 4 GiB would make the
/// broker allocate 4 GiB. Reject lengths no snappy block can decode to.
fn check_snappy_lengths(raw: &[u8]) -> Result<(), RecordsError> {
    let check = |block: &[u8]| -> Result<(), RecordsError> {
        // The block starts with its uncompressed length, a little-endian
        // base-128 varint of at most 5 bytes; the decoder reports bad ones.
        let mut declared = 0u64;
        for (i, &byte) in block.iter().take(5).enumerate() {
            declared |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                if declared > (block.len() * SNAPPY_MAX_EXPANSION) as u64 {
                    return Err(RecordsError::Decompression {
                        codec: Compression::Snappy,
                        reason: format!(
                            "a snappy block of {} bytes cannot decode to the {declared} bytes it declares",
                            block.len()
                        ),
                    });
                }
                break;
            }
        }
        Ok(())
    };
    let Some(mut rest) = raw.strip_prefix(&XERIAL_SNAPPY_MAGIC[..]) else {
        return check(raw);
    };
    while rest.len() >= 4 {
        let size = be_i32(rest, 0) as u32 as usize;
        rest = &rest[4..];
        if size > rest.len() {
            break;
        }
        check(&rest[..size])?;
        rest = &rest[size..];
    }
    Ok(())
}

/// Compresses an uncompressed records section with `compression`.
pub fn compress(compression: Compression, raw: &[u8]) -> Result<Vec<u8>, RecordsError> {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len() / 2 + 64);
    let fill = |buf: &mut BytesMut| {
        buf.put_slice(raw);
        Ok(())
    };
    let result = match compression {
        Compression::None => {
            out.extend_from_slice(raw);
            Ok(())
        }
        Compression::Gzip => codec::Gzip::compress(&mut out, fill),
        Compression::Snappy => codec::Snappy::compress(&mut out, fill),
        Compression::Lz4 => codec::Lz4::compress(&mut out, fill),
        Compression::Zstd => codec::Zstd::compress(&mut out, fill),
    };
    result.map_err(|e| RecordsError::Decompression {
        codec: compression,
        reason: format!("compression failed: {e:#}"),
    })?;
    Ok(out)
}

/// A record header: a key and a nullable value.
pub type HeaderPair<'a> = (&'a [u8], Option<&'a [u8]>);

/// One record inside a batch, borrowed from the (decompressed) payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Record attributes (unused by Kafka today, kept as sent).
    pub attributes: i8,
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// The key, or `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// The value, or `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// Number of headers.
    pub header_count: i32,
    /// The encoded headers.
    pub headers: &'a [u8],
}

impl<'a> Record<'a> {
    /// Decodes the headers as (key, value) pairs.
    pub fn header_pairs(&self) -> Result<Vec<HeaderPair<'a>>, RecordsError> {
        let mut cursor = Cursor::new(self.headers);
        let mut out = Vec::with_capacity(self.header_count.max(0) as usize);
        for _ in 0..self.header_count {
            let key = cursor
                .bytes()?
                .ok_or_else(|| RecordsError::MalformedRecord("null header key".into()))?;
            let value = cursor.bytes()?;
            out.push((key, value));
        }
        Ok(out)
    }
}

/// Walks the records of a payload, checking each record's framing.
pub struct RecordIter<'a> {
    buf: &'a [u8],
    remaining: i32,
    failed: bool,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, RecordsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.remaining <= 0 {
            if !self.buf.is_empty() {
                self.failed = true;
                return Some(Err(RecordsError::MalformedRecord(format!(
                    "{} unexpected bytes after the last record",
                    self.buf.len()
                ))));
            }
            return None;
        }
        self.remaining -= 1;
        let result = parse_record(&mut self.buf);
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}

fn parse_record<'a>(buf: &mut &'a [u8]) -> Result<Record<'a>, RecordsError> {
    let mut outer = Cursor::new(buf);
    let length = outer.varint()?;
    if length < 0 || length as usize > outer.remaining() {
        return Err(RecordsError::MalformedRecord(format!(
            "record length {length} exceeds the {} bytes left in the batch",
            outer.remaining()
        )));
    }
    let body = outer.take(length as usize)?;
    *buf = outer.rest();
    let mut cursor = Cursor::new(body);
    let attributes = cursor.u8()? as i8;
    let timestamp_delta = cursor.varlong()?;
    let offset_delta = cursor.varint()?;
    let key = cursor.bytes()?;
    let value = cursor.bytes()?;
    let header_count = cursor.varint()?;
    if header_count < 0 {
        return Err(RecordsError::MalformedRecord(format!(
            "negative header count {header_count}"
        )));
    }
    let headers = cursor.rest();
    // Check the headers now, so a record that passes validation can always be read.
    let mut header_cursor = Cursor::new(headers);
    for _ in 0..header_count {
        if header_cursor.bytes()?.is_none() {
            return Err(RecordsError::MalformedRecord("null header key".into()));
        }
        header_cursor.bytes()?;
    }
    if header_cursor.remaining() != 0 {
        return Err(RecordsError::MalformedRecord(format!(
            "record length {length} does not match its contents"
        )));
    }
    Ok(Record {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        header_count,
        headers,
    })
}

/// Iterates whole batches laid end to end (a produce payload or a log segment).
///
/// Yields an error for the first batch that cannot be framed and then stops;
/// [`BatchIter::position`] tells how many bytes were whole batches.
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> BatchIter<'a> {
    /// Starts iterating at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter {
            buf,
            pos: 0,
            done: false,
        }
    }

    /// Bytes consumed by the batches yielded so far.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<Batch<'a>, RecordsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let header = match BatchHeader::parse(rest) {
            Ok(h) => h,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        let size = header.size();
        if size > rest.len() {
            self.done = true;
            return Some(Err(RecordsError::Corrupt(format!(
                "batch at byte {} claims {size} bytes but only {} remain",
                self.pos,
                rest.len()
            ))));
        }
        self.pos += size;
        Some(Ok(Batch {
            header,
            bytes: &rest[..size],
        }))
    }
}

/// Overwrites the base offset of the batch starting at `batch[0]`.
/// The field is outside the CRC, so no checksum changes.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Stamps the leader epoch of the appending leader (outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch as LogAppendTime with `timestamp` as its max timestamp,
/// then recomputes the CRC, which covers both fields.
pub fn set_log_append_time(batch: &mut [u8], timestamp: i64) {
    let attributes = be_i16(batch, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Replaces the max timestamp of a CreateTime batch (Kafka corrects a
/// producer's wrong value) and recomputes the CRC.
pub fn set_max_timestamp(batch: &mut [u8], timestamp: i64) {
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Builds a v2 batch record by record: used where Kafka itself re-encodes
/// (log compaction, recompression to a topic's codec, control batches), never
/// on the plain produce path.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_offset: i64,
    compression: Compression,
    timestamp_type: TimestampType,
    transactional: bool,
    control: bool,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    partition_leader_epoch: i32,
    base_timestamp: Option<i64>,
    delete_horizon: Option<i64>,
    max_timestamp: i64,
    last_offset_delta: Option<i32>,
    count: i32,
    records: Vec<u8>,
}

impl BatchBuilder {
    /// Starts a batch whose first record has offset `base_offset`.
    pub fn new(base_offset: i64, compression: Compression) -> Self {
        BatchBuilder {
            base_offset,
            compression,
            timestamp_type: TimestampType::CreateTime,
            transactional: false,
            control: false,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            base_sequence: -1,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            base_timestamp: None,
            delete_horizon: None,
            max_timestamp: NO_TIMESTAMP,
            last_offset_delta: None,
            count: 0,
            records: Vec::new(),
        }
    }

    /// Copies producer, transaction and timestamp-type properties from an
    /// existing batch, so a rewritten batch keeps its identity.
    pub fn like(header: &BatchHeader, base_offset: i64, compression: Compression) -> Self {
        let mut builder = BatchBuilder::new(base_offset, compression);
        builder.timestamp_type = header.timestamp_type();
        builder.transactional = header.is_transactional();
        builder.control = header.is_control();
        builder.producer_id = header.producer_id;
        builder.producer_epoch = header.producer_epoch;
        builder.base_sequence = header.base_sequence;
        builder.partition_leader_epoch = header.partition_leader_epoch;
        if header.timestamp_type() == TimestampType::LogAppendTime {
            builder.max_timestamp = header.max_timestamp;
        }
        builder
    }

    /// Sets the producer identity (idempotent and transactional batches).
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch transactional and/or control.
    pub fn transaction(mut self, transactional: bool, control: bool) -> Self {
        self.transactional = transactional;
        self.control = control;
        self
    }

    /// Sets the partition leader epoch.
    pub fn leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Makes the batch a LogAppendTime batch with this append time.
    pub fn log_append_time(mut self, timestamp: i64) -> Self {
        self.timestamp_type = TimestampType::LogAppendTime;
        self.max_timestamp = timestamp;
        self
    }

    /// Records the compaction delete horizon in the base timestamp (KIP-534).
    /// Record timestamp deltas are then relative to the horizon, as Kafka
    /// encodes them, so this must be set before the first record is added.
    pub fn delete_horizon(mut self, horizon_ms: i64) -> Self {
        debug_assert!(self.count == 0, "set the delete horizon before appending");
        self.delete_horizon = Some(horizon_ms);
        self
    }

    /// Keeps the batch's last offset even when its last records were dropped,
    /// as Kafka does so producer sequence numbers stay consistent.
    pub fn last_offset_delta(mut self, delta: i32) -> Self {
        self.last_offset_delta = Some(delta);
        self
    }

    /// Number of records added so far.
    pub fn len(&self) -> i32 {
        self.count
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds a record with absolute `offset` and `timestamp`; `headers` are
    /// already encoded (as found in a [`Record`]) with `header_count` entries.
    pub fn append(
        &mut self,
        offset: i64,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        header_count: i32,
        headers: &[u8],
    ) {
        let base_timestamp = *self
            .base_timestamp
            .get_or_insert(self.delete_horizon.unwrap_or(timestamp));
        if self.timestamp_type == TimestampType::CreateTime {
            self.max_timestamp = self.max_timestamp.max(timestamp);
        }
        let mut body = Vec::with_capacity(
            16 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len) + headers.len(),
        );
        body.push(0);
        put_varlong(&mut body, timestamp - base_timestamp);
        put_varint(&mut body, (offset - self.base_offset) as i32);
        put_nullable_bytes(&mut body, key);
        put_nullable_bytes(&mut body, value);
        put_varint(&mut body, header_count);
        body.extend_from_slice(headers);
        put_varint(&mut self.records, body.len() as i32);
        self.records.extend_from_slice(&body);
        self.count += 1;
        if self
            .last_offset_delta
            .is_none_or(|d| d < (offset - self.base_offset) as i32)
        {
            self.last_offset_delta = Some((offset - self.base_offset) as i32);
        }
    }

    /// Encodes the batch: header, (compressed) records and CRC.
    pub fn build(self) -> Result<Bytes, RecordsError> {
        let payload = compress(self.compression, &self.records)?;
        let mut out = Vec::with_capacity(BATCH_HEADER_LEN + payload.len());
        let batch_length = (BATCH_HEADER_LEN - LOG_OVERHEAD + payload.len()) as i32;
        let mut attributes = self.compression.id();
        if self.timestamp_type == TimestampType::LogAppendTime {
            attributes |= TIMESTAMP_TYPE_BIT;
        }
        if self.transactional {
            attributes |= TRANSACTIONAL_BIT;
        }
        if self.control {
            attributes |= CONTROL_BIT;
        }
        if self.delete_horizon.is_some() {
            attributes |= DELETE_HORIZON_BIT;
        }
        // With a delete horizon, `base_timestamp` already holds it.
        let base_timestamp = self
            .base_timestamp
            .or(self.delete_horizon)
            .unwrap_or(NO_TIMESTAMP);
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out.push(CURRENT_MAGIC as u8);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&self.last_offset_delta.unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&base_timestamp.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&payload);
        let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(Bytes::from(out))
    }
}

/// Encodes a zigzag varint (Kafka `varint`).
pub fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_unsigned_varint(out, ((value << 1) ^ (value >> 31)) as u32 as u64);
}

/// Encodes a zigzag varlong (Kafka `varlong`).
pub fn put_varlong(out: &mut Vec<u8>, value: i64) {
    put_unsigned_varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_unsigned_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_nullable_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

/// A bounds-checked reader over record bytes; every read fails cleanly at
/// the end of input instead of panicking.
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Cursor { buf }
    }

    fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn rest(&self) -> &'a [u8] {
        self.buf
    }

    fn u8(&mut self) -> Result<u8, RecordsError> {
        let (&first, rest) = self
            .buf
            .split_first()
            .ok_or_else(|| RecordsError::MalformedRecord("record ends early".into()))?;
        self.buf = rest;
        Ok(first)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordsError> {
        if n > self.buf.len() {
            return Err(RecordsError::MalformedRecord(format!(
                "field of {n} bytes exceeds the {} bytes left",
                self.buf.len()
            )));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn unsigned_varint(&mut self, max_bytes: usize) -> Result<u64, RecordsError> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordsError::MalformedRecord("varint is too long".into()))
    }

    fn varint(&mut self) -> Result<i32, RecordsError> {
        let raw = self.unsigned_varint(5)?;
        if raw > u64::from(u32::MAX) {
            return Err(RecordsError::MalformedRecord(
                "varint overflows 32 bits".into(),
            ));
        }
        let raw = raw as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    fn varlong(&mut self) -> Result<i64, RecordsError> {
        let raw = self.unsigned_varint(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn bytes(&mut self) -> Result<Option<&'a [u8]>, RecordsError> {
        let len = self.varint()?;
        match len {
            -1 => Ok(None),
            n if n < -1 => Err(RecordsError::MalformedRecord(format!("invalid length {n}"))),
            n => self.take(n as usize).map(Some),
        }
    }
}

fn be_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn be_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn be_i64(buf: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(compression: Compression, n: i64) -> Bytes {
        let mut builder = BatchBuilder::new(0, compression);
        for i in 0..n {
            let key = format!("k{i}");
            let value = format!("value-{i}");
            builder.append(
                i,
                1_000 + i,
                Some(key.as_bytes()),
                Some(value.as_bytes()),
                0,
                &[],
            );
        }
        builder.build().unwrap()
    }

    #[test]
    fn built_batches_round_trip_with_every_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let bytes = sample(codec, 5);
            let batch = BatchIter::new(&bytes).next().unwrap().unwrap();
            batch.verify_crc().unwrap();
            assert_eq!(batch.header.records_count, 5);
            assert_eq!(batch.header.last_offset_delta, 4);
            assert_eq!(batch.header.max_timestamp, 1_004);
            assert_eq!(batch.header.compression().unwrap(), codec);
            let payload = batch.records().unwrap();
            let records: Vec<_> = payload.iter().collect::<Result<_, _>>().unwrap();
            assert_eq!(records.len(), 5);
            assert_eq!(records[3].key, Some(&b"k3"[..]));
            assert_eq!(records[3].value, Some(&b"value-3"[..]));
            assert_eq!(records[3].offset_delta, 3);
            assert_eq!(records[3].timestamp_delta, 3);
        }
    }

    #[test]
    fn snappy_lengths_beyond_what_snappy_can_encode_are_rejected() {
        // Raw snappy: a 4-byte varint claiming ~4 GiB, then nothing.
        let raw = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(
            decompress(Compression::Snappy, &raw),
            Err(RecordsError::Decompression { .. })
        ));
        // xerial framing: one block of 5 bytes claiming the same.
        let mut framed = XERIAL_SNAPPY_MAGIC.to_vec();
        framed.extend_from_slice(&5u32.to_be_bytes());
        framed.extend_from_slice(&raw);
        assert!(matches!(
            decompress(Compression::Snappy, &framed),
            Err(RecordsError::Decompression { .. })
        ));
        // Highly compressible data still round-trips.
        let zeros = vec![0u8; 1 << 20];
        let compressed = compress(Compression::Snappy, &zeros).unwrap();
        assert!(compressed.len() * 20 < zeros.len());
        assert_eq!(
            &decompress(Compression::Snappy, &compressed).unwrap()[..],
            &zeros[..]
        );
    }

    #[test]
    fn crc_detects_a_flipped_bit() {
        let mut bytes = sample(Compression::None, 3).to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let batch = BatchIter::new(&bytes).next().unwrap().unwrap();
        assert!(matches!(
            batch.verify_crc(),
            Err(RecordsError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn patching_offsets_and_epoch_keeps_the_crc_valid() {
        let mut bytes = sample(Compression::None, 2).to_vec();
        set_base_offset(&mut bytes, 42);
        set_partition_leader_epoch(&mut bytes, 7);
        let batch = BatchIter::new(&bytes).next().unwrap().unwrap();
        batch.verify_crc().unwrap();
        assert_eq!(batch.header.base_offset, 42);
        assert_eq!(batch.header.last_offset(), 43);
        assert_eq!(batch.header.partition_leader_epoch, 7);
    }

    #[test]
    fn log_append_time_rewrites_the_crc() {
        let mut bytes = sample(Compression::None, 2).to_vec();
        set_log_append_time(&mut bytes, 99_999);
        let batch = BatchIter::new(&bytes).next().unwrap().unwrap();
        batch.verify_crc().unwrap();
        assert_eq!(batch.header.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(batch.header.max_timestamp, 99_999);
    }

    #[test]
    fn old_magic_is_reported_as_unsupported() {
        let mut bytes = sample(Compression::None, 1).to_vec();
        bytes[MAGIC_OFFSET] = 1;
        assert_eq!(
            BatchHeader::parse(&bytes).unwrap_err(),
            RecordsError::UnsupportedMagic(1)
        );
    }

    #[test]
    fn truncated_batch_stops_iteration_with_position_of_whole_batches() {
        let one = sample(Compression::None, 2);
        let mut two = one.to_vec();
        two.extend_from_slice(&one[..one.len() - 3]);
        let mut iter = BatchIter::new(&two);
        assert!(iter.next().unwrap().is_ok());
        assert!(iter.next().unwrap().is_err());
        assert!(iter.next().is_none());
        assert_eq!(iter.position(), one.len());
    }

    #[test]
    fn delete_horizon_keeps_record_timestamps() {
        for codec in [Compression::None, Compression::Zstd] {
            let mut b = BatchBuilder::new(10, codec)
                .delete_horizon(90_000)
                .last_offset_delta(4);
            b.append(10, 1_000, Some(b"k"), None, 0, &[]);
            b.append(12, 1_500, Some(b"j"), Some(b"v"), 0, &[]);
            let built = b.build().unwrap();
            let batch = BatchIter::new(&built).next().unwrap().unwrap();
            batch.verify_crc().unwrap();
            assert!(batch.header.has_delete_horizon());
            assert_eq!(batch.header.base_timestamp, 90_000);
            assert_eq!(batch.header.max_timestamp, 1_500);
            assert_eq!(batch.header.last_offset(), 14);
            let payload = batch.records().unwrap();
            let ts: Vec<i64> = payload
                .iter()
                .map(|r| batch.header.base_timestamp + r.unwrap().timestamp_delta)
                .collect();
            assert_eq!(ts, vec![1_000, 1_500]);
        }
    }

    #[test]
    fn headers_are_decoded() {
        let mut headers = Vec::new();
        put_nullable_bytes(&mut headers, Some(b"h1"));
        put_nullable_bytes(&mut headers, Some(b"v1"));
        put_nullable_bytes(&mut headers, Some(b"h2"));
        put_nullable_bytes(&mut headers, None);
        let mut builder = BatchBuilder::new(0, Compression::None);
        builder.append(0, 5, None, None, 2, &headers);
        let bytes = builder.build().unwrap();
        let batch = BatchIter::new(&bytes).next().unwrap().unwrap();
        let payload = batch.records().unwrap();
        let record = payload.iter().next().unwrap().unwrap();
        assert_eq!(record.key, None);
        assert_eq!(
            record.header_pairs().unwrap(),
            vec![(&b"h1"[..], Some(&b"v1"[..])), (&b"h2"[..], None)]
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            for batch in BatchIter::new(&data).flatten() {
                let _ = batch.verify_crc();
                if let Ok(payload) = batch.records() {
                    for record in payload.iter().flatten() {
                        let _ = record.header_pairs();
                    }
                }
            }
        }
    }
}
