//! Producer ids handed out from controller-allocated blocks (KIP-730), so
//! ids stay unique across coordinators without a round trip per producer.

use crate::{ErrorCode, ProducerIdBlock, ProducerIdSource};
use std::sync::Arc;

/// Serves ids from the current block and fetches the next block when it
/// runs out.
pub struct ProducerIdManager {
    source: Arc<dyn ProducerIdSource>,
    state: tokio::sync::Mutex<Option<(i64, i64)>>, // (next id, end exclusive)
}

impl ProducerIdManager {
    /// Starts with no block; the first id fetches one.
    pub fn new(source: Arc<dyn ProducerIdSource>) -> Self {
        ProducerIdManager {
            source,
            state: tokio::sync::Mutex::new(None),
        }
    }

    /// The next unused producer id. While no block can be fetched the
    /// answer is COORDINATOR_LOAD_IN_PROGRESS, which clients retry (as
    /// Kafka's `RPCProducerIdManager` answers).
    pub async fn next_id(&self) -> Result<i64, ErrorCode> {
        let mut state = self.state.lock().await;
        if let Some((next, end)) = *state {
            if next < end {
                *state = Some((next + 1, end));
                return Ok(next);
            }
        }
        let block = self.source.allocate_block().await.map_err(|e| {
            tracing::warn!(error = %e, "producer id block allocation failed");
            ErrorCode::CoordinatorLoadInProgress
        })?;
        let ProducerIdBlock { first_id, len } = block;
        if first_id < 0 || len <= 0 || first_id.checked_add(len).is_none() {
            tracing::error!(
                first_id,
                len,
                "controller returned an invalid producer id block"
            );
            return Err(ErrorCode::UnknownServerError);
        }
        *state = Some((first_id + 1, first_id + len));
        Ok(first_id)
    }
}
