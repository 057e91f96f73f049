//! The quorum as the controller's [`MetadataStore`]: what turns a
//! single-node controller into one of a cluster.
//!
//! The controller's operations are synchronous (they run on blocking
//! threads and hold the controller's lock across an append), while the
//! quorum is async. Each call here runs the quorum future on the runtime
//! the store was made on and waits for it on the calling thread, so it
//! must not be called from an async task.

use std::sync::mpsc;
use std::sync::Arc;

use bytes::Bytes;
use millrace_metadata::records::MetadataRecord;
use millrace_metadata::store::{MetadataStore, StoreError};
use millrace_metadata::MetadataImage;
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::{Quorum, QuorumError};

/// A [`MetadataStore`] over a running [`Quorum`] node.
pub struct QuorumMetadataStore {
    quorum: Arc<Quorum>,
    runtime: Handle,
}

impl QuorumMetadataStore {
    /// Wraps `quorum`; its futures run on `runtime`.
    pub fn new(quorum: Arc<Quorum>, runtime: Handle) -> QuorumMetadataStore {
        QuorumMetadataStore { quorum, runtime }
    }

    /// The quorum node behind the store.
    pub fn quorum(&self) -> &Arc<Quorum> {
        &self.quorum
    }

    /// Runs `future` on the runtime and waits for it on this (blocking) thread.
    fn wait<T: Send + 'static>(
        &self,
        future: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::channel();
        self.runtime.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv()
            .map_err(|_| StoreError::Unavailable("the runtime stopped".into()))
    }
}

/// The controller's view of a quorum failure.
fn store_error(e: QuorumError) -> StoreError {
    match e {
        QuorumError::NotLeader { leader } => StoreError::NotController { leader },
        // No leader was reachable: nothing was delivered.
        QuorumError::NoLeader { .. } => StoreError::NotController { leader: None },
        // A leader without a handler yet (it is still starting) served nothing.
        QuorumError::Remote(_) => StoreError::NotController { leader: None },
        QuorumError::Storage(reason) => StoreError::Storage(reason),
        other => StoreError::Unavailable(other.to_string()),
    }
}

impl MetadataStore for QuorumMetadataStore {
    fn append(&self, records: Vec<MetadataRecord>) -> Result<i64, StoreError> {
        let quorum = self.quorum.clone();
        self.wait(async move { quorum.append(records).await })?
            .map_err(store_error)
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.quorum.image()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.quorum.subscribe()
    }

    fn is_active(&self) -> bool {
        self.quorum.is_leader()
    }

    fn image_for_update(&self) -> Result<Arc<MetadataImage>, StoreError> {
        let quorum = self.quorum.clone();
        self.wait(async move { quorum.linearizable_image().await })?
            .map_err(store_error)
    }

    fn forward(&self, request: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let quorum = self.quorum.clone();
        self.wait(async move { quorum.forward(Bytes::from(request)).await })?
            .map(|answer| answer.to_vec())
            .map_err(store_error)
    }
}
