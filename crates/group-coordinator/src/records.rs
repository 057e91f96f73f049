//! The `__consumer_offsets` record formats, encoded as Kafka encodes them.
//!
//! Every record key starts with an `int16` version that tells which schema the
//! key (and so its value) follows; every value starts with its own `int16`
//! version. Keys 0 and 1 are offset commits, 2 is classic group metadata and
//! 3..=8 are the KIP-848 consumer group records. Values of versions marked
//! flexible in Kafka's JSON specs use compact strings/arrays and carry tagged
//! fields; the others are the classic big-endian layout. Keeping the exact
//! layout means Kafka's own tools can read a Millrace `__consumer_offsets`
//! topic and Millrace can load one written by Kafka.

use bytes::Bytes;
use uuid::Uuid;

/// A record that cannot be decoded (truncated or of an unknown version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed __consumer_offsets record: {0}")]
pub struct DecodeError(pub String);

type Result<T> = std::result::Result<T, DecodeError>;

/// Big-endian writer for the Kafka primitive types.
#[derive(Default)]
pub(crate) struct Writer(pub Vec<u8>);

impl Writer {
    fn i8(&mut self, v: i8) {
        self.0.push(v as u8);
    }
    fn i16(&mut self, v: i16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.0.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn string(&mut self, s: &str) {
        self.i16(s.len() as i16);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn nstring(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.i16(-1),
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.i32(b.len() as i32);
        self.0.extend_from_slice(b);
    }
    fn cstring(&mut self, s: &str) {
        self.uvarint(s.len() as u32 + 1);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn cnstring(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.cstring(s),
            None => self.uvarint(0),
        }
    }
    fn cbytes(&mut self, b: &[u8]) {
        self.uvarint(b.len() as u32 + 1);
        self.0.extend_from_slice(b);
    }
    fn carray(&mut self, n: usize) {
        self.uvarint(n as u32 + 1);
    }
    fn no_tags(&mut self) {
        self.uvarint(0);
    }
    fn uuid(&mut self, id: Uuid) {
        self.0.extend_from_slice(id.as_bytes());
    }
    fn into_bytes(self) -> Bytes {
        Bytes::from(self.0)
    }
}

/// Big-endian reader for the Kafka primitive types.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| DecodeError(format!("truncated at byte {}", self.pos)))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }
    pub(crate) fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn uvarint(&mut self) -> Result<u32> {
        let mut v: u32 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.array::<1>()?[0];
            v |= u32::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint too long".into()))
    }
    fn utf8(&mut self, n: usize) -> Result<String> {
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError("string is not UTF-8".into()))
    }
    fn nstring(&mut self) -> Result<Option<String>> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        self.utf8(n as usize).map(Some)
    }
    fn string(&mut self) -> Result<String> {
        Ok(self.nstring()?.unwrap_or_default())
    }
    fn bytes(&mut self) -> Result<Bytes> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(n as usize)?))
    }
    fn cnstring(&mut self) -> Result<Option<String>> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(None);
        }
        self.utf8(n as usize - 1).map(Some)
    }
    fn cstring(&mut self) -> Result<String> {
        Ok(self.cnstring()?.unwrap_or_default())
    }
    fn cbytes(&mut self) -> Result<Bytes> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(n as usize - 1)?))
    }
    fn carray(&mut self) -> Result<usize> {
        Ok((self.uvarint()? as usize).saturating_sub(1))
    }
    fn array_len(&mut self) -> Result<usize> {
        Ok(self.i32()?.max(0) as usize)
    }
    fn skip_tags(&mut self) -> Result<()> {
        let n = self.uvarint()?;
        for _ in 0..n {
            self.uvarint()?;
            let len = self.uvarint()? as usize;
            self.take(len)?;
        }
        Ok(())
    }
    fn uuid(&mut self) -> Result<Uuid> {
        Ok(Uuid::from_bytes(self.array()?))
    }
}

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordKey {
    /// Key versions 0 and 1: a committed offset of one partition.
    OffsetCommit {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// Key version 2: a classic group's metadata.
    GroupMetadata {
        /// The group.
        group: String,
    },
    /// Key version 3: a consumer group's epoch.
    ConsumerGroupMetadata {
        /// The group.
        group: String,
    },
    /// Key version 4: the topic metadata a consumer group's assignment used.
    ConsumerGroupPartitionMetadata {
        /// The group.
        group: String,
    },
    /// Key version 5: a consumer group member's subscription.
    ConsumerGroupMemberMetadata {
        /// The group.
        group: String,
        /// The member.
        member: String,
    },
    /// Key version 6: the epoch of a consumer group's target assignment.
    ConsumerGroupTargetAssignmentMetadata {
        /// The group.
        group: String,
    },
    /// Key version 7: one member's target assignment.
    ConsumerGroupTargetAssignmentMember {
        /// The group.
        group: String,
        /// The member.
        member: String,
    },
    /// Key version 8: one member's current assignment and epochs.
    ConsumerGroupCurrentMemberAssignment {
        /// The group.
        group: String,
        /// The member.
        member: String,
    },
}

impl RecordKey {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            RecordKey::OffsetCommit { group, .. }
            | RecordKey::GroupMetadata { group }
            | RecordKey::ConsumerGroupMetadata { group }
            | RecordKey::ConsumerGroupPartitionMetadata { group }
            | RecordKey::ConsumerGroupMemberMetadata { group, .. }
            | RecordKey::ConsumerGroupTargetAssignmentMetadata { group }
            | RecordKey::ConsumerGroupTargetAssignmentMember { group, .. }
            | RecordKey::ConsumerGroupCurrentMemberAssignment { group, .. } => group,
        }
    }

    /// Encodes the key (offset commits as version 1, as Kafka writes them).
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::default();
        match self {
            RecordKey::OffsetCommit {
                group,
                topic,
                partition,
            } => {
                w.i16(1);
                w.string(group);
                w.string(topic);
                w.i32(*partition);
            }
            RecordKey::GroupMetadata { group } => {
                w.i16(2);
                w.string(group);
            }
            RecordKey::ConsumerGroupMetadata { group } => {
                w.i16(3);
                w.string(group);
            }
            RecordKey::ConsumerGroupPartitionMetadata { group } => {
                w.i16(4);
                w.string(group);
            }
            RecordKey::ConsumerGroupMemberMetadata { group, member } => {
                w.i16(5);
                w.string(group);
                w.string(member);
            }
            RecordKey::ConsumerGroupTargetAssignmentMetadata { group } => {
                w.i16(6);
                w.string(group);
            }
            RecordKey::ConsumerGroupTargetAssignmentMember { group, member } => {
                w.i16(7);
                w.string(group);
                w.string(member);
            }
            RecordKey::ConsumerGroupCurrentMemberAssignment { group, member } => {
                w.i16(8);
                w.string(group);
                w.string(member);
            }
        }
        w.into_bytes()
    }

    /// Decodes a key; `Ok(None)` for key versions this coordinator does not
    /// know (Kafka skips those too, e.g. share-group records).
    pub fn decode(buf: &[u8]) -> Result<Option<RecordKey>> {
        let mut r = Reader::new(buf);
        let version = r.i16()?;
        Ok(Some(match version {
            0 | 1 => RecordKey::OffsetCommit {
                group: r.string()?,
                topic: r.string()?,
                partition: r.i32()?,
            },
            2 => RecordKey::GroupMetadata { group: r.string()? },
            3 => RecordKey::ConsumerGroupMetadata { group: r.string()? },
            4 => RecordKey::ConsumerGroupPartitionMetadata { group: r.string()? },
            5 => RecordKey::ConsumerGroupMemberMetadata {
                group: r.string()?,
                member: r.string()?,
            },
            6 => RecordKey::ConsumerGroupTargetAssignmentMetadata { group: r.string()? },
            7 => RecordKey::ConsumerGroupTargetAssignmentMember {
                group: r.string()?,
                member: r.string()?,
            },
            8 => RecordKey::ConsumerGroupCurrentMemberAssignment {
                group: r.string()?,
                member: r.string()?,
            },
            _ => return Ok(None),
        }))
    }
}

/// `OffsetCommitValue`: one committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    /// The committed offset.
    pub offset: i64,
    /// The leader epoch of the last consumed record (-1 when unknown).
    pub leader_epoch: i32,
    /// Client metadata ("" when the client sent null).
    pub metadata: String,
    /// When the coordinator accepted the commit.
    pub commit_timestamp: i64,
    /// Explicit expiry from OffsetCommit v2-v4 `retention_time_ms` (value
    /// version 1 only), `None` otherwise.
    pub expire_timestamp: Option<i64>,
}

impl OffsetCommitValue {
    /// Encodes as version 3, or version 1 when an explicit expiry is set
    /// (the choice Kafka 3.x makes).
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::default();
        match self.expire_timestamp {
            Some(expire) => {
                w.i16(1);
                w.i64(self.offset);
                w.string(&self.metadata);
                w.i64(self.commit_timestamp);
                w.i64(expire);
            }
            None => {
                w.i16(3);
                w.i64(self.offset);
                w.i32(self.leader_epoch);
                w.string(&self.metadata);
                w.i64(self.commit_timestamp);
            }
        }
        w.into_bytes()
    }

    /// Decodes any version 0-4.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf);
        let version = r.i16()?;
        let mut v = OffsetCommitValue {
            offset: r.i64()?,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: -1,
            expire_timestamp: None,
        };
        match version {
            0 | 2 => {
                v.metadata = r.string()?;
                v.commit_timestamp = r.i64()?;
            }
            1 => {
                v.metadata = r.string()?;
                v.commit_timestamp = r.i64()?;
                let expire = r.i64()?;
                v.expire_timestamp = (expire >= 0).then_some(expire);
            }
            3 => {
                v.leader_epoch = r.i32()?;
                v.metadata = r.string()?;
                v.commit_timestamp = r.i64()?;
            }
            4 => {
                v.leader_epoch = r.i32()?;
                v.metadata = r.cstring()?;
                v.commit_timestamp = r.i64()?;
                r.skip_tags()?;
            }
            other => return Err(DecodeError(format!("OffsetCommitValue version {other}"))),
        }
        Ok(v)
    }
}

/// One member in a `GroupMetadataValue`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupMemberValue {
    /// Member id.
    pub member_id: String,
    /// Static member instance id (KIP-345).
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host as Kafka prints it ("/127.0.0.1").
    pub client_host: String,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// `GroupMetadataValue`: a classic group as of its last rebalance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupMetadataValue {
    /// Protocol type ("consumer", "connect", or "" for none).
    pub protocol_type: String,
    /// Generation.
    pub generation: i32,
    /// Selected protocol.
    pub protocol: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// When the group entered its current state (-1 unknown).
    pub current_state_timestamp: i64,
    /// Members with their assignment.
    pub members: Vec<GroupMemberValue>,
}

impl GroupMetadataValue {
    /// Encodes as version 3 (what Kafka 3.7 writes).
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::default();
        w.i16(3);
        w.string(&self.protocol_type);
        w.i32(self.generation);
        w.nstring(self.protocol.as_deref());
        w.nstring(self.leader.as_deref());
        w.i64(self.current_state_timestamp);
        w.i32(self.members.len() as i32);
        for m in &self.members {
            w.string(&m.member_id);
            w.nstring(m.group_instance_id.as_deref());
            w.string(&m.client_id);
            w.string(&m.client_host);
            w.i32(m.rebalance_timeout_ms);
            w.i32(m.session_timeout_ms);
            w.bytes(&m.subscription);
            w.bytes(&m.assignment);
        }
        w.into_bytes()
    }

    /// Decodes any version 0-4.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf);
        let version = r.i16()?;
        if !(0..=4).contains(&version) {
            return Err(DecodeError(format!("GroupMetadataValue version {version}")));
        }
        let flex = version >= 4;
        let s = |r: &mut Reader| if flex { r.cstring() } else { r.string() };
        let ns = |r: &mut Reader| if flex { r.cnstring() } else { r.nstring() };
        let mut v = GroupMetadataValue {
            protocol_type: s(&mut r)?,
            generation: r.i32()?,
            protocol: ns(&mut r)?,
            leader: ns(&mut r)?,
            current_state_timestamp: -1,
            members: Vec::new(),
        };
        if version >= 2 {
            v.current_state_timestamp = r.i64()?;
        }
        let n = if flex { r.carray()? } else { r.array_len()? };
        for _ in 0..n {
            let mut m = GroupMemberValue {
                member_id: s(&mut r)?,
                ..Default::default()
            };
            if version >= 3 {
                m.group_instance_id = ns(&mut r)?;
            }
            m.client_id = s(&mut r)?;
            m.client_host = s(&mut r)?;
            m.rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
            m.session_timeout_ms = r.i32()?;
            if version == 0 {
                m.rebalance_timeout_ms = m.session_timeout_ms;
            }
            m.subscription = if flex { r.cbytes()? } else { r.bytes()? };
            m.assignment = if flex { r.cbytes()? } else { r.bytes()? };
            if flex {
                r.skip_tags()?;
            }
            v.members.push(m);
        }
        if flex {
            r.skip_tags()?;
        }
        Ok(v)
    }
}

/// Topic id -> partitions, sorted, as the KIP-848 records store assignments.
pub type TopicPartitions = std::collections::BTreeMap<Uuid, std::collections::BTreeSet<i32>>;

fn write_assignment(w: &mut Writer, a: &TopicPartitions) {
    w.carray(a.len());
    for (id, parts) in a {
        w.uuid(*id);
        w.carray(parts.len());
        for p in parts {
            w.i32(*p);
        }
        w.no_tags();
    }
}

fn read_assignment(r: &mut Reader) -> Result<TopicPartitions> {
    let n = r.carray()?;
    let mut out = TopicPartitions::new();
    for _ in 0..n {
        let id = r.uuid()?;
        let m = r.carray()?;
        let mut parts = std::collections::BTreeSet::new();
        for _ in 0..m {
            parts.insert(r.i32()?);
        }
        r.skip_tags()?;
        out.entry(id).or_default().extend(parts);
    }
    Ok(out)
}

fn flexible_v0(r: &mut Reader, name: &str) -> Result<()> {
    let version = r.i16()?;
    if version != 0 {
        return Err(DecodeError(format!("{name} version {version}")));
    }
    Ok(())
}

/// `ConsumerGroupMetadataValue`: the group epoch.
pub fn encode_consumer_group_metadata(epoch: i32) -> Bytes {
    let mut w = Writer::default();
    w.i16(0);
    w.i32(epoch);
    w.no_tags();
    w.into_bytes()
}

/// Decodes a `ConsumerGroupMetadataValue`.
pub fn decode_consumer_group_metadata(buf: &[u8]) -> Result<i32> {
    let mut r = Reader::new(buf);
    flexible_v0(&mut r, "ConsumerGroupMetadataValue")?;
    r.i32()
}

/// A topic in `ConsumerGroupPartitionMetadataValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// Topic id.
    pub id: Uuid,
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
}

/// `ConsumerGroupPartitionMetadataValue`: the subscribed topics' metadata
/// (no rack information: the resolver does not give it).
pub fn encode_partition_metadata(topics: &[TopicMetadata]) -> Bytes {
    let mut w = Writer::default();
    w.i16(0);
    w.carray(topics.len());
    for t in topics {
        w.uuid(t.id);
        w.cstring(&t.name);
        w.i32(t.partitions);
        w.carray(0); // PartitionMetadata (racks)
        w.no_tags();
    }
    w.no_tags();
    w.into_bytes()
}

/// Decodes a `ConsumerGroupPartitionMetadataValue`.
pub fn decode_partition_metadata(buf: &[u8]) -> Result<Vec<TopicMetadata>> {
    let mut r = Reader::new(buf);
    flexible_v0(&mut r, "ConsumerGroupPartitionMetadataValue")?;
    let n = r.carray()?;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let id = r.uuid()?;
        let name = r.cstring()?;
        let partitions = r.i32()?;
        let racks = r.carray()?;
        for _ in 0..racks {
            r.i32()?;
            let k = r.carray()?;
            for _ in 0..k {
                r.cstring()?;
            }
            r.skip_tags()?;
        }
        r.skip_tags()?;
        out.push(TopicMetadata {
            id,
            name,
            partitions,
        });
    }
    Ok(out)
}

/// `ConsumerGroupMemberMetadataValue`: what a KIP-848 member subscribed with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadataValue {
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack id.
    pub rack_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topic names.
    pub subscribed_topic_names: Vec<String>,
    /// Subscribed regex (stored, not evaluated).
    pub subscribed_topic_regex: Option<String>,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Server-side assignor the member asked for.
    pub server_assignor: Option<String>,
}

impl MemberMetadataValue {
    /// Encodes the 3.7 layout (an empty client-side `Assignors` array).
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::default();
        w.i16(0);
        w.cnstring(self.instance_id.as_deref());
        w.cnstring(self.rack_id.as_deref());
        w.cstring(&self.client_id);
        w.cstring(&self.client_host);
        w.carray(self.subscribed_topic_names.len());
        for t in &self.subscribed_topic_names {
            w.cstring(t);
        }
        w.cnstring(self.subscribed_topic_regex.as_deref());
        w.i32(self.rebalance_timeout_ms);
        w.cnstring(self.server_assignor.as_deref());
        w.carray(0);
        w.no_tags();
        w.into_bytes()
    }

    /// Decodes it (client-side assignors are skipped).
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf);
        flexible_v0(&mut r, "ConsumerGroupMemberMetadataValue")?;
        let instance_id = r.cnstring()?;
        let rack_id = r.cnstring()?;
        let client_id = r.cstring()?;
        let client_host = r.cstring()?;
        let n = r.carray()?;
        let mut subscribed_topic_names = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            subscribed_topic_names.push(r.cstring()?);
        }
        Ok(MemberMetadataValue {
            instance_id,
            rack_id,
            client_id,
            client_host,
            subscribed_topic_names,
            subscribed_topic_regex: r.cnstring()?,
            rebalance_timeout_ms: r.i32()?,
            server_assignor: r.cnstring()?,
        })
    }
}

/// `ConsumerGroupTargetAssignmentMetadataValue`: the target assignment epoch.
pub fn encode_target_assignment_metadata(epoch: i32) -> Bytes {
    encode_consumer_group_metadata(epoch)
}

/// Decodes a `ConsumerGroupTargetAssignmentMetadataValue`.
pub fn decode_target_assignment_metadata(buf: &[u8]) -> Result<i32> {
    decode_consumer_group_metadata(buf)
}

/// `ConsumerGroupTargetAssignmentMemberValue`: one member's target.
pub fn encode_target_assignment_member(a: &TopicPartitions) -> Bytes {
    let mut w = Writer::default();
    w.i16(0);
    write_assignment(&mut w, a);
    w.i8(0); // Error
    w.i16(0); // MetadataVersion
    w.cbytes(&[]); // MetadataBytes
    w.no_tags();
    w.into_bytes()
}

/// Decodes a `ConsumerGroupTargetAssignmentMemberValue`.
pub fn decode_target_assignment_member(buf: &[u8]) -> Result<TopicPartitions> {
    let mut r = Reader::new(buf);
    flexible_v0(&mut r, "ConsumerGroupTargetAssignmentMemberValue")?;
    read_assignment(&mut r)
}

/// `ConsumerGroupCurrentMemberAssignmentValue`: where a member is in its
/// reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentAssignmentValue {
    /// Epoch the member must send.
    pub member_epoch: i32,
    /// Epoch before the last bump (accepted once, for a lost response).
    pub previous_member_epoch: i32,
    /// The target assignment epoch being reconciled to.
    pub target_member_epoch: i32,
    /// Partitions the member owns.
    pub assigned: TopicPartitions,
    /// Partitions the member must give up.
    pub pending_revocation: TopicPartitions,
    /// Partitions the member will get once their owners revoke them.
    pub pending_assignment: TopicPartitions,
}

impl CurrentAssignmentValue {
    /// Encodes the 3.7 layout.
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::default();
        w.i16(0);
        w.i32(self.member_epoch);
        w.i32(self.previous_member_epoch);
        w.i32(self.target_member_epoch);
        write_assignment(&mut w, &self.assigned);
        write_assignment(&mut w, &self.pending_revocation);
        write_assignment(&mut w, &self.pending_assignment);
        w.i8(0);
        w.i16(0);
        w.cbytes(&[]);
        w.no_tags();
        w.into_bytes()
    }

    /// Decodes it.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf);
        flexible_v0(&mut r, "ConsumerGroupCurrentMemberAssignmentValue")?;
        Ok(CurrentAssignmentValue {
            member_epoch: r.i32()?,
            previous_member_epoch: r.i32()?,
            target_member_epoch: r.i32()?,
            assigned: read_assignment(&mut r)?,
            pending_revocation: read_assignment(&mut r)?,
            pending_assignment: read_assignment(&mut r)?,
        })
    }
}

/// The topics in a `ConsumerProtocolSubscription` (the metadata a Java,
/// librdkafka or Python consumer sends in JoinGroup with protocol type
/// "consumer"), or `None` when it cannot be parsed. Used to know which
/// topics a classic group consumes (OffsetDelete, offset expiry).
pub fn consumer_subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader::new(metadata);
    let version = r.i16().ok()?;
    if version < 0 {
        return None;
    }
    let n = r.i32().ok()?;
    if n < 0 {
        return Some(Vec::new());
    }
    let mut topics = Vec::with_capacity((n as usize).min(1024));
    for _ in 0..n {
        topics.push(r.string().ok()?);
    }
    Some(topics)
}

/// Encodes a `ConsumerProtocolSubscription` v0 (tests and tools).
pub fn encode_consumer_subscription(topics: &[&str]) -> Bytes {
    let mut w = Writer::default();
    w.i16(0);
    w.i32(topics.len() as i32);
    for t in topics {
        w.string(t);
    }
    w.bytes(&[]);
    w.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_commit_key_layout() {
        let key = RecordKey::OffsetCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        let b = key.encode();
        assert_eq!(&b[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        assert_eq!(RecordKey::decode(&b).unwrap(), Some(key));
        assert_eq!(RecordKey::decode(&[0, 9]).unwrap(), None);
        assert!(RecordKey::decode(&[0, 1, 0]).is_err());
    }

    #[test]
    fn offset_commit_value_round_trips() {
        let v = OffsetCommitValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "meta".into(),
            commit_timestamp: 1000,
            expire_timestamp: None,
        };
        let b = v.encode();
        assert_eq!(&b[..2], &[0, 3]);
        assert_eq!(b.len(), 2 + 8 + 4 + 2 + 4 + 8);
        assert_eq!(OffsetCommitValue::decode(&b).unwrap(), v);
        let v1 = OffsetCommitValue {
            leader_epoch: -1,
            expire_timestamp: Some(5000),
            ..v
        };
        assert_eq!(OffsetCommitValue::decode(&v1.encode()).unwrap(), v1);
    }

    #[test]
    fn group_metadata_round_trips() {
        let v = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 99,
            members: vec![GroupMemberValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300000,
                session_timeout_ms: 10000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(GroupMetadataValue::decode(&v.encode()).unwrap(), v);
    }

    #[test]
    fn consumer_records_round_trip() {
        let id = Uuid::from_u128(7);
        let mut a = TopicPartitions::new();
        a.entry(id).or_default().extend([0, 2]);
        let cur = CurrentAssignmentValue {
            member_epoch: 3,
            previous_member_epoch: 2,
            target_member_epoch: 3,
            assigned: a.clone(),
            pending_revocation: TopicPartitions::new(),
            pending_assignment: a.clone(),
        };
        assert_eq!(CurrentAssignmentValue::decode(&cur.encode()).unwrap(), cur);
        assert_eq!(
            decode_target_assignment_member(&encode_target_assignment_member(&a)).unwrap(),
            a
        );
        let m = MemberMetadataValue {
            instance_id: None,
            rack_id: Some("r".into()),
            client_id: "c".into(),
            client_host: "/h".into(),
            subscribed_topic_names: vec!["a".into(), "b".into()],
            subscribed_topic_regex: None,
            rebalance_timeout_ms: 1000,
            server_assignor: Some("range".into()),
        };
        assert_eq!(MemberMetadataValue::decode(&m.encode()).unwrap(), m);
        let t = vec![TopicMetadata {
            id,
            name: "a".into(),
            partitions: 3,
        }];
        assert_eq!(
            decode_partition_metadata(&encode_partition_metadata(&t)).unwrap(),
            t
        );
        assert_eq!(
            decode_consumer_group_metadata(&encode_consumer_group_metadata(9)).unwrap(),
            9
        );
    }

    #[test]
    fn subscription_topics() {
        let s = encode_consumer_subscription(&["a", "bb"]);
        assert_eq!(
            consumer_subscription_topics(&s),
            Some(vec!["a".to_string(), "bb".to_string()])
        );
        assert_eq!(consumer_subscription_topics(&[0]), None);
    }
}
