//! Where committed metadata lives, as the controller sees it.
//!
//! The controller validates a request against the latest image and appends
//! the resulting records; it does not care whether the log behind is a
//! single local file ([`LocalMetadataStore`], a one-node cluster) or a Raft
//! quorum that replicates the same records to every controller (a
//! multi-node cluster). Either way an append returns only once the records
//! are durable and applied to the image subscribers see.

use std::path::Path;
use std::sync::Arc;

use millrace_protocol::ErrorCode;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::image::MetadataImage;
use crate::metadata_log::{MetadataLog, MetadataLogError};
use crate::records::MetadataRecord;

/// Why an append was refused; the broker turns it into the Kafka error a
/// client would get from a KRaft controller.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// This node is not the active controller; `leader` is the one that is,
    /// when known (NOT_CONTROLLER).
    #[error("not the active controller (leader: {leader:?})")]
    NotController {
        /// The active controller's node id, if known.
        leader: Option<i32>,
    },
    /// No quorum answered in time, or a forwarded request's answer was
    /// lost: the outcome is unknown, the change may still commit
    /// (REQUEST_TIMED_OUT, which clients retry).
    #[error("metadata quorum unavailable: {0}")]
    Unavailable(String),
    /// The local log could not be written (KAFKA_STORAGE_ERROR).
    #[error("metadata log: {0}")]
    Storage(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let code = match &e {
            StoreError::NotController { .. } => ErrorCode::NotController,
            StoreError::Unavailable(_) => ErrorCode::RequestTimedOut,
            StoreError::Storage(_) => ErrorCode::KafkaStorageError,
        };
        ApiError::new(code, e.to_string())
    }
}

/// The committed metadata log and the image it produces.
pub trait MetadataStore: Send + Sync {
    /// Appends `records` as one atomic batch. Blocks (call it off the async
    /// runtime) until the batch is committed and applied, and returns the
    /// image offset after it.
    fn append(&self, records: Vec<MetadataRecord>) -> Result<i64, StoreError>;
    /// The latest committed image.
    fn image(&self) -> Arc<MetadataImage>;
    /// A receiver that sees every image published from now on.
    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>>;
    /// Whether this node is the active controller, the one that may
    /// append. A single-node store always is.
    fn is_active(&self) -> bool {
        true
    }
    /// The image an operation of the active controller must validate
    /// against: everything committed before it, including what earlier
    /// leaders committed and this node may not have applied yet. Blocks
    /// (call it off the async runtime).
    fn image_for_update(&self) -> Result<Arc<MetadataImage>, StoreError> {
        Ok(self.image())
    }
    /// Sends an encoded controller request to the active controller and
    /// returns its encoded answer. Blocks (call it off the async runtime).
    /// [`StoreError::NotController`] means it was not delivered (safe to
    /// retry); [`StoreError::Unavailable`] that its outcome is unknown.
    fn forward(&self, request: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let _ = request;
        Err(StoreError::NotController { leader: None })
    }
}

/// A one-node metadata store: the fsynced local [`MetadataLog`], replayed
/// into an image at open.
pub struct LocalMetadataStore {
    log: Mutex<(MetadataLog, MetadataImage)>,
    image_tx: watch::Sender<Arc<MetadataImage>>,
}

impl LocalMetadataStore {
    /// Opens the log under `metadata_dir` and replays it.
    pub fn open(metadata_dir: &Path) -> Result<LocalMetadataStore, MetadataLogError> {
        let (log, batches) = MetadataLog::open(metadata_dir)?;
        let mut image = MetadataImage::empty();
        for batch in batches {
            for (i, record) in batch.records.iter().enumerate() {
                image.apply(batch.offset + i as i64, record);
            }
        }
        tracing::info!(
            offset = image.offset,
            topics = image.topics_by_id.len(),
            "metadata log replayed"
        );
        let (image_tx, _) = watch::channel(Arc::new(image.clone()));
        Ok(LocalMetadataStore {
            log: Mutex::new((log, image)),
            image_tx,
        })
    }
}

impl MetadataStore for LocalMetadataStore {
    fn append(&self, records: Vec<MetadataRecord>) -> Result<i64, StoreError> {
        let mut guard = self.log.lock();
        let (log, image) = &mut *guard;
        let first = log.append(&records).map_err(|e| {
            tracing::error!(error = %e, "metadata log append failed");
            StoreError::Storage(e.to_string())
        })?;
        for (i, record) in records.iter().enumerate() {
            image.apply(first + i as i64, record);
        }
        let offset = image.offset;
        self.image_tx.send_replace(Arc::new(image.clone()));
        Ok(offset)
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.image_tx.borrow().clone()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image_tx.subscribe()
    }
}
