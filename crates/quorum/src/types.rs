//! The openraft type configuration: what one entry of the replicated log
//! carries and what applying it answers.

use std::io::Cursor;

use millrace_metadata::records::MetadataRecord;
use openraft::{BasicNode, TokioRuntime};
use serde::{Deserialize, Serialize};

/// A Raft node id. Kafka's `node.id` is an `i32`; openraft wants an unsigned
/// id, and Kafka node ids are never negative, so the two convert losslessly.
pub(crate) type NodeId = u64;

openraft::declare_raft_types!(
    /// Millrace's Raft types: the metadata log's entries are record batches,
    /// nodes are known by their quorum RPC address.
    pub(crate) TypeConfig:
        D = RecordBatch,
        R = AppliedBatch,
        NodeId = NodeId,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = TokioRuntime,
);

/// The payload of one normal log entry: records committed together, so a
/// crash or a leader change never leaves half of a topic creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RecordBatch {
    /// The records in the order they are applied.
    pub(crate) records: Vec<MetadataRecord>,
}

/// What applying an entry answers the writer: the metadata offset of the
/// last record applied so far (the batch's last record for a non-empty
/// batch), so the writer can wait for brokers to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AppliedBatch {
    /// Offset of the last applied record, -1 when none has been.
    pub(crate) last_offset: i64,
}

/// Kafka node id → Raft node id; `None` for a negative id, which Kafka
/// never assigns.
pub(crate) fn raft_id(node_id: i32) -> Option<NodeId> {
    u64::try_from(node_id).ok()
}

/// Raft node id → Kafka node id; `None` for an id no Kafka node can have.
pub(crate) fn kafka_id(id: NodeId) -> Option<i32> {
    i32::try_from(id).ok()
}
