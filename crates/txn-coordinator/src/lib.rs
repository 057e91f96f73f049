//! Kafka's transaction coordinator (Apache Kafka 3.7 semantics) as a library.
//!
//! The broker owns the network, the `__transaction_state` log and the data
//! partitions; this crate owns the transaction state machine. It is reached
//! through three traits the broker implements:
//!
//! - [`TransactionLog`]: appends to and reads from `__transaction_state`
//!   partitions this broker leads, so every state change is durable before a
//!   client hears about it and a new leader can rebuild the state by replay.
//! - [`ProducerIdSource`]: hands out producer id blocks from the metadata
//!   controller (KIP-730), so ids are unique cluster-wide.
//! - [`MarkerWriter`]: writes COMMIT/ABORT control markers to data partitions,
//!   which is what makes a transaction's records visible or hidden.
//!
//! [`TransactionCoordinator`] takes decoded `kafka_protocol` requests and
//! returns full responses, so the broker only decodes, routes and encodes.
//!
//! # Layout
//!
//! - [`format`](mod@format): Kafka's `TransactionLogKey`/`TransactionLogValue` encoding.
//! - [`state`]: transaction states and per-transactional-id metadata.
//! - [`producer_ids`]: the block-based producer id allocator.
//! - [`coordinator`]: request handling, loading, markers and timers.

pub mod coordinator;
pub mod format;
pub mod producer_ids;
pub mod state;

pub use coordinator::TransactionCoordinator;
pub use millrace_protocol::ErrorCode;
pub use state::TxnState;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed `Send` future, so the broker's trait implementations can be
/// stored as trait objects and awaited from spawned tasks.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// `__transaction_state` partitions as the broker exposes them.
///
/// The coordinator writes every state transition here before answering the
/// client and replays a partition when it becomes its leader.
pub trait TransactionLog: Send + Sync + 'static {
    /// Appends one v2 batch (built with `BatchBuilder`, base offset 0) to
    /// `partition` as leader; resolves when committed (acks=all). Returns the
    /// base offset.
    fn append(&self, partition: i32, batch: bytes::Bytes) -> BoxFuture<Result<i64, ErrorCode>>;

    /// Reads whole batches from `offset` for loading, only up to the high
    /// watermark (uncommitted records must not be replayed).
    ///
    /// Reading below the log start offset must return batches from the log
    /// start (or an empty chunk whose `log_start_offset` tells where to go);
    /// the coordinator starts its replay at offset 0.
    fn read(
        &self,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> BoxFuture<Result<LogChunk, ErrorCode>>;
}

/// One read of a `__transaction_state` partition, with the bounds the
/// loader needs to know when it has replayed everything committed.
#[derive(Debug, Clone, Default)]
pub struct LogChunk {
    /// Whole v2 batches laid end to end.
    pub records: bytes::Bytes,
    /// The partition's log start offset.
    pub log_start_offset: i64,
    /// The partition's high watermark; loading stops there.
    pub high_watermark: i64,
}

/// Producer ids come from the metadata controller in blocks (KIP-730), so
/// two coordinators never hand out the same id.
pub trait ProducerIdSource: Send + Sync + 'static {
    /// Allocates the next block of producer ids.
    fn allocate_block(&self) -> BoxFuture<Result<ProducerIdBlock, ErrorCode>>;
}

/// A contiguous range of producer ids owned by this coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdBlock {
    /// The first id of the block.
    pub first_id: i64,
    /// How many ids the block holds.
    pub len: i64,
}

/// Writes transaction markers to data partitions (locally or, later, via
/// WriteTxnMarkers to their leaders); the coordinator needs nothing else from
/// the data plane to finish a transaction.
pub trait MarkerWriter: Send + Sync + 'static {
    /// Writes one marker per partition and reports each partition's outcome.
    /// A partition missing from the answer is retried.
    fn write_markers(
        &self,
        request: MarkerRequest,
    ) -> BoxFuture<Vec<(TopicPartition, Result<(), ErrorCode>)>>;
}

/// The markers to write for one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerRequest {
    /// The transaction's producer id.
    pub producer_id: i64,
    /// The producer epoch the markers carry (bumped when a timeout fenced it).
    pub producer_epoch: i16,
    /// COMMIT (true) or ABORT (false).
    pub commit: bool,
    /// The `__transaction_state` leader epoch, so partitions can reject
    /// markers from a deposed coordinator.
    pub coordinator_epoch: i32,
    /// The data partitions that still need a marker.
    pub partitions: Vec<TopicPartition>,
}

/// A topic partition, ordered so transaction partition sets print and
/// persist deterministically.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic name.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// Builds a topic partition; a convenience for the broker and tests.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

/// Coordinator settings, named after Kafka's configs and defaulting to
/// Kafka's defaults so an unconfigured Millrace behaves like Kafka.
#[derive(Debug, Clone)]
pub struct TxnCoordinatorConfig {
    /// `transaction.state.log.num.partitions`.
    pub transaction_state_partitions: i32,
    /// `offsets.topic.num.partitions`, to place AddOffsetsToTxn's group partition.
    pub offsets_topic_partitions: i32,
    /// `transaction.max.timeout.ms`.
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_timed_out_transaction_cleanup_interval_ms: u64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub remove_expired_transaction_cleanup_interval_ms: u64,
    /// Pause before retrying failed marker writes and failed completion
    /// appends (Kafka's inter-broker `retry.backoff.ms`); doubles up to 10x.
    pub marker_retry_backoff_ms: u64,
    /// `transaction.state.log.load.buffer.size`: bytes asked for per read
    /// while loading (grown when one batch is larger).
    pub load_buffer_size: usize,
}

impl Default for TxnCoordinatorConfig {
    fn default() -> Self {
        TxnCoordinatorConfig {
            transaction_state_partitions: 50,
            offsets_topic_partitions: 50,
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            remove_expired_transaction_cleanup_interval_ms: 3_600_000,
            marker_retry_backoff_ms: 100,
            load_buffer_size: 5 * 1024 * 1024,
        }
    }
}

/// Wall-clock milliseconds; injectable so timeouts and expiry can be tested
/// without sleeping.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock in epoch milliseconds.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    })
}
