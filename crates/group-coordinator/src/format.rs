//! The `__consumer_offsets` record formats, as Kafka writes them, so the
//! topic reads the same to Kafka's tools.
//!
//! Keys: `OffsetCommitKey` (version 0/1: group, topic, partition) and
//! `GroupMetadataKey` (version 2: group). Values: `OffsetCommitValue`
//! (written at version 3: offset, leader epoch, metadata, commit timestamp)
//! and `GroupMetadataValue` (written at version 3). A null value is a
//! tombstone. Everything is big-endian with i16-length strings and i32-length
//! bytes, Kafka's non-flexible encoding.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A decoded record key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// A committed offset of one partition.
    Offset {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// A group's membership and generation.
    Group {
        /// Group id.
        group: String,
    },
    /// A key version this coordinator does not read (KIP-848 records).
    Other,
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// The committed offset.
    pub offset: i64,
    /// Leader epoch of the record at `offset - 1`, or -1.
    pub leader_epoch: i32,
    /// Client metadata string.
    pub metadata: String,
    /// When it was committed (ms).
    pub commit_timestamp: i64,
}

/// One member as stored in the group metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host as Kafka prints it (`/127.0.0.1`).
    pub client_host: String,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Metadata for the selected protocol.
    pub subscription: Bytes,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// A group's metadata as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    /// Protocol type (`consumer`, `connect`, ...).
    pub protocol_type: String,
    /// Generation.
    pub generation: i32,
    /// Selected protocol.
    pub protocol: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// When the group entered its current state (ms).
    pub state_timestamp: i64,
    /// Members.
    pub members: Vec<MemberValue>,
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_i16(s.len() as i16);
    out.put_slice(s.as_bytes());
}

fn put_nullable_str(out: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.put_i16(-1),
    }
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_i32(b.len() as i32);
    out.put_slice(b);
}

fn get_i16(buf: &mut &[u8]) -> Option<i16> {
    (buf.remaining() >= 2).then(|| buf.get_i16())
}

fn get_i32(buf: &mut &[u8]) -> Option<i32> {
    (buf.remaining() >= 4).then(|| buf.get_i32())
}

fn get_i64(buf: &mut &[u8]) -> Option<i64> {
    (buf.remaining() >= 8).then(|| buf.get_i64())
}

fn get_nullable_str(buf: &mut &[u8]) -> Option<Option<String>> {
    let len = get_i16(buf)?;
    if len < 0 {
        return Some(None);
    }
    let len = len as usize;
    if buf.remaining() < len {
        return None;
    }
    let s = String::from_utf8(buf[..len].to_vec()).ok()?;
    buf.advance(len);
    Some(Some(s))
}

fn get_str(buf: &mut &[u8]) -> Option<String> {
    get_nullable_str(buf).map(Option::unwrap_or_default)
}

fn get_bytes(buf: &mut &[u8]) -> Option<Bytes> {
    let len = get_i32(buf)?;
    if len < 0 {
        return Some(Bytes::new());
    }
    let len = len as usize;
    if buf.remaining() < len {
        return None;
    }
    let b = Bytes::copy_from_slice(&buf[..len]);
    buf.advance(len);
    Some(b)
}

/// Encodes an offset commit key (version 1).
pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + group.len() + topic.len());
    out.put_i16(1);
    put_str(&mut out, group);
    put_str(&mut out, topic);
    out.put_i32(partition);
    out.freeze()
}

/// Encodes a group metadata key (version 2).
pub fn group_key(group: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + group.len());
    out.put_i16(2);
    put_str(&mut out, group);
    out.freeze()
}

/// Decodes a key; `None` when it is malformed.
pub fn parse_key(mut buf: &[u8]) -> Option<RecordKey> {
    let version = get_i16(&mut buf)?;
    match version {
        0 | 1 => Some(RecordKey::Offset {
            group: get_str(&mut buf)?,
            topic: get_str(&mut buf)?,
            partition: get_i32(&mut buf)?,
        }),
        2 => Some(RecordKey::Group {
            group: get_str(&mut buf)?,
        }),
        _ => Some(RecordKey::Other),
    }
}

/// Encodes an offset value (version 3).
pub fn offset_value(v: &OffsetValue) -> Bytes {
    let mut out = BytesMut::with_capacity(32 + v.metadata.len());
    out.put_i16(3);
    out.put_i64(v.offset);
    out.put_i32(v.leader_epoch);
    put_str(&mut out, &v.metadata);
    out.put_i64(v.commit_timestamp);
    out.freeze()
}

/// Decodes an offset value of any version Kafka wrote (0-4).
pub fn parse_offset_value(mut buf: &[u8]) -> Option<OffsetValue> {
    let version = get_i16(&mut buf)?;
    let offset = get_i64(&mut buf)?;
    let leader_epoch = if version >= 3 { get_i32(&mut buf)? } else { -1 };
    if version >= 4 {
        // Flexible: compact string (unsigned varint length + 1).
        let (len, used) = read_uvarint(buf)?;
        buf.advance(used);
        let len = (len as usize).saturating_sub(1);
        if buf.remaining() < len {
            return None;
        }
        let metadata = String::from_utf8(buf[..len].to_vec()).ok()?;
        buf.advance(len);
        let commit_timestamp = get_i64(&mut buf)?;
        return Some(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
        });
    }
    let metadata = get_str(&mut buf)?;
    let commit_timestamp = get_i64(&mut buf)?;
    Some(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

fn read_uvarint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, b) in buf.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Encodes a group metadata value (version 3).
pub fn group_value(v: &GroupValue) -> Bytes {
    let mut out = BytesMut::with_capacity(128);
    out.put_i16(3);
    put_str(&mut out, &v.protocol_type);
    out.put_i32(v.generation);
    put_nullable_str(&mut out, v.protocol.as_deref());
    put_nullable_str(&mut out, v.leader.as_deref());
    out.put_i64(v.state_timestamp);
    out.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_str(&mut out, &m.member_id);
        put_nullable_str(&mut out, m.instance_id.as_deref());
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        out.put_i32(m.rebalance_timeout_ms);
        out.put_i32(m.session_timeout_ms);
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out.freeze()
}

/// Decodes a group metadata value (versions 0-3).
pub fn parse_group_value(mut buf: &[u8]) -> Option<GroupValue> {
    let version = get_i16(&mut buf)?;
    if !(0..=3).contains(&version) {
        return None;
    }
    let protocol_type = get_str(&mut buf)?;
    let generation = get_i32(&mut buf)?;
    let protocol = get_nullable_str(&mut buf)?;
    let leader = get_nullable_str(&mut buf)?;
    let state_timestamp = if version >= 2 { get_i64(&mut buf)? } else { -1 };
    let count = get_i32(&mut buf)?.max(0);
    let mut members = Vec::new();
    for _ in 0..count {
        let member_id = get_str(&mut buf)?;
        let instance_id = if version >= 3 {
            get_nullable_str(&mut buf)?
        } else {
            None
        };
        let client_id = get_str(&mut buf)?;
        let client_host = get_str(&mut buf)?;
        let rebalance_timeout_ms = if version >= 1 { get_i32(&mut buf)? } else { -1 };
        let session_timeout_ms = get_i32(&mut buf)?;
        let subscription = get_bytes(&mut buf)?;
        let assignment = get_bytes(&mut buf)?;
        members.push(MemberValue {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            },
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Some(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp,
        members,
    })
}

/// The topics a `consumer` protocol member subscribes to
/// (`ConsumerProtocolSubscription`: version i16, topics array of strings).
pub fn subscribed_topics(subscription: &[u8]) -> Vec<String> {
    let mut buf = subscription;
    let Some(_version) = get_i16(&mut buf) else {
        return Vec::new();
    };
    let Some(count) = get_i32(&mut buf) else {
        return Vec::new();
    };
    (0..count.max(0)).map_while(|_| get_str(&mut buf)).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let k = offset_key("g", "t", 3);
        assert_eq!(
            parse_key(&k),
            Some(RecordKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3
            })
        );
        assert_eq!(
            parse_key(&group_key("g")),
            Some(RecordKey::Group { group: "g".into() })
        );
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "meta".into(),
            commit_timestamp: 1000,
        };
        assert_eq!(parse_offset_value(&offset_value(&v)), Some(v));
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            state_timestamp: 99,
            members: vec![MemberValue {
                member_id: "m1".into(),
                instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(parse_group_value(&group_value(&g)), Some(g));
    }

    #[test]
    fn garbage_never_panics() {
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = parse_key(&junk);
            let _ = parse_offset_value(&junk);
            let _ = parse_group_value(&junk);
            let _ = subscribed_topics(&junk);
        }
    }
}
