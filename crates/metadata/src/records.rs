//! The metadata records: every change to cluster metadata is one of these,
//! appended to the metadata log and applied to the image in order.
//!
//! They mirror KRaft's record types (`RegisterBrokerRecord`, `TopicRecord`,
//! `PartitionRecord`, `ConfigRecord`, `RemoveTopicRecord` …) so the replicated
//! quorum later carries the same vocabulary.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One listener a broker serves clients on, as advertised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Listener name (`PLAINTEXT`, `CLIENT_TLS` …); clients get the endpoints
    /// of the listener they connected through.
    pub name: String,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: u16,
    /// Security protocol id as Kafka numbers them (0 = PLAINTEXT, 1 = SSL,
    /// 2 = SASL_PLAINTEXT, 3 = SASL_SSL).
    pub security_protocol: i16,
}

/// Which kind of resource a config record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConfigResourceType {
    /// A topic; the resource name is the topic name.
    Topic,
    /// A broker; the resource name is the broker id, or empty for the
    /// cluster-wide default.
    Broker,
}

/// A change to cluster metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// A broker joined (or re-joined) with these endpoints.
    RegisterBroker {
        /// The broker's `node.id`.
        broker_id: i32,
        /// Changes every process start, so a restarted broker is recognised.
        incarnation_id: Uuid,
        /// Advertised listeners.
        endpoints: Vec<Endpoint>,
        /// `broker.rack` (the availability zone on MSK).
        rack: Option<String>,
    },
    /// The controller fenced a broker (session expired, controlled
    /// shutdown) or unfenced it (it heartbeats again): KRaft's
    /// `FenceBrokerRecord` / `UnfenceBrokerRecord`.
    BrokerFencing {
        /// The broker.
        broker_id: i32,
        /// Fenced (true) or unfenced (false).
        fenced: bool,
    },
    /// A topic was created.
    Topic {
        /// Topic name.
        name: String,
        /// Topic id (stable across renames of nothing; distinguishes re-creations).
        topic_id: Uuid,
    },
    /// A partition was created or its replica set/leadership replaced.
    Partition {
        /// The topic it belongs to.
        topic_id: Uuid,
        /// Partition index.
        partition_id: i32,
        /// Replica broker ids, preferred leader first.
        replicas: Vec<i32>,
        /// In-sync replicas.
        isr: Vec<i32>,
        /// Current leader, or -1 when none.
        leader: i32,
        /// Bumped on every leader change; fences stale leaders and clients.
        leader_epoch: i32,
        /// Bumped on every change to the partition.
        partition_epoch: i32,
    },
    /// A partition's reassignment (KIP-455) started, changed or ended: the
    /// replicas being added and removed. Kept apart from `Partition` (KRaft
    /// carries them in `PartitionRecord`/`PartitionChangeRecord`) so every
    /// writer of `Partition` records leaves an ongoing reassignment alone:
    /// applying a `Partition` record keeps them (minus replicas no longer in
    /// the replica set). Empty lists end the reassignment.
    PartitionReassignment {
        /// The topic it belongs to.
        topic_id: Uuid,
        /// Partition index.
        partition_id: i32,
        /// Target replicas not yet in the original replica set: they join
        /// as followers and must reach the ISR before the move completes.
        adding_replicas: Vec<i32>,
        /// Original replicas not in the target: dropped on completion.
        removing_replicas: Vec<i32>,
    },
    /// A topic and all its partitions and configs were deleted.
    RemoveTopic {
        /// The topic deleted.
        topic_id: Uuid,
    },
    /// A config was set (`Some`) or removed (`None`).
    Config {
        /// Topic or broker.
        resource_type: ConfigResourceType,
        /// Topic name, broker id, or empty for the broker default.
        resource_name: String,
        /// Config name.
        name: String,
        /// New value, `None` to delete the override.
        value: Option<String>,
    },
    /// A block of producer ids was handed to a broker (KRaft's
    /// `ProducerIdsRecord`): ids below `next_producer_id` are never reused,
    /// even across restarts, so idempotent producers are never confused.
    ProducerIds {
        /// The broker that received the block.
        broker_id: i32,
        /// First id not yet handed out.
        next_producer_id: i64,
    },
}
