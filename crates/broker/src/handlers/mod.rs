//! One file per Kafka API, and the registry that lists them.
//!
//! Each handler names its API key and the versions it serves beside its code;
//! [`supported_apis`] is built from the same list, so ApiVersions can never
//! advertise a version no handler serves. A handler decodes nothing itself:
//! [`run`] decodes the body with the `kafka-protocol` codec, checks the version,
//! calls [`Handler::handle`] and encodes the response.
//!
//! Versions: Millrace serves Kafka 3.7's ranges, except that versions removed
//! from Kafka in 4.0 by KIP-896 (Produce v0-2, Fetch v0-3, ListOffsets v0, …),
//! which the codec crate no longer carries, start at the codec's minimum.

use std::future::Future;

use bytes::Bytes;
use kafka_protocol::protocol::{Decodable, Encodable};
use millrace_protocol::header::encode_response;
use millrace_protocol::{ApiKey, ErrorCode};
use tracing::Instrument;

use crate::request_context::RequestContext;

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_transactions;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod write_txn_markers;

/// What a handler wants done with the connection after a request.
#[derive(Debug)]
pub enum Outcome<R> {
    /// Send this response.
    Respond(R),
    /// Send nothing (Produce with acks=0).
    NoResponse,
    /// Close the connection without answering (acks=0 produce that failed:
    /// closing is the only way Kafka can tell such a producer).
    Close(String),
}

/// A Kafka API served by the broker.
pub trait Handler {
    /// The API.
    const KEY: ApiKey;
    /// Lowest version served.
    const MIN_VERSION: i16;
    /// Highest version served.
    const MAX_VERSION: i16;
    /// The decoded request type.
    type Request: Decodable + Send;
    /// The response type.
    type Response: Encodable + Send;

    /// Serves one request.
    fn handle(
        ctx: &RequestContext,
        request: Self::Request,
    ) -> impl Future<Output = Outcome<Self::Response>> + Send;

    /// The response that reports `error` for everything in `request`, as
    /// Kafka's `AbstractRequest.getErrorResponse` builds it.
    fn error_response(request: &Self::Request, error: ErrorCode) -> Self::Response;
}

/// Why a request got no response and its connection must close.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// A valid API key that this broker does not serve.
    #[error("API {0:?} is not served by this broker")]
    NotServed(ApiKey),
    /// The body does not decode at the version the header names.
    #[error("cannot decode {api:?} v{version} request: {reason}")]
    Undecodable {
        /// API.
        api: ApiKey,
        /// Version.
        version: i16,
        /// Decoder message.
        reason: String,
    },
    /// A version neither served nor encodable, so no error response can be sent.
    #[error("{api:?} v{version} is not supported and cannot be answered")]
    UnanswerableVersion {
        /// API.
        api: ApiKey,
        /// Version.
        version: i16,
    },
    /// The handler asked to close the connection.
    #[error("{0}")]
    Close(String),
    /// The response could not be encoded (a bug; logged with detail).
    #[error("cannot encode {api:?} v{version} response: {reason}")]
    Encode {
        /// API.
        api: ApiKey,
        /// Version.
        version: i16,
        /// Encoder message.
        reason: String,
    },
}

/// Decodes, checks the version, handles and encodes one request for `H`.
pub async fn run<H: Handler>(
    ctx: &RequestContext,
    mut body: Bytes,
) -> Result<Option<Bytes>, DispatchError> {
    let version = ctx.header.api_version;
    let request = H::Request::decode(&mut body, version).map_err(|e| {
        if (H::MIN_VERSION..=H::MAX_VERSION).contains(&version) {
            DispatchError::Undecodable {
                api: H::KEY,
                version,
                reason: format!("{e:#}"),
            }
        } else {
            DispatchError::UnanswerableVersion {
                api: H::KEY,
                version,
            }
        }
    })?;
    let outcome = if (H::MIN_VERSION..=H::MAX_VERSION).contains(&version) {
        H::handle(ctx, request).await
    } else {
        Outcome::Respond(H::error_response(&request, ErrorCode::UnsupportedVersion))
    };
    match outcome {
        Outcome::Respond(response) => {
            encode_response(H::KEY, version, ctx.header.correlation_id, &response)
                .map(Some)
                .map_err(|e| DispatchError::Encode {
                    api: H::KEY,
                    version,
                    reason: format!("{e:#}"),
                })
        }
        Outcome::NoResponse => Ok(None),
        Outcome::Close(reason) => Err(DispatchError::Close(reason)),
    }
}

/// One entry of ApiVersions: an API and the versions served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    /// The API.
    pub key: ApiKey,
    /// Lowest version.
    pub min: i16,
    /// Highest version.
    pub max: i16,
}

macro_rules! registry {
    ($($module:ident :: $handler:ident),* $(,)?) => {
        /// Every API this broker serves with its version range, in key order.
        pub fn supported_apis() -> Vec<ApiRange> {
            let mut apis = vec![$(ApiRange {
                key: <$module::$handler as Handler>::KEY,
                min: <$module::$handler as Handler>::MIN_VERSION,
                max: <$module::$handler as Handler>::MAX_VERSION,
            }),*];
            apis.sort_by_key(|a| a.key as i16);
            apis
        }

        /// Routes a request to its handler.
        pub async fn dispatch(ctx: &RequestContext, body: Bytes) -> Result<Option<Bytes>, DispatchError> {
            let key = ctx.header.api_key;
            let span = tracing::debug_span!(
                "request",
                api = ?key,
                version = ctx.header.api_version,
                correlation_id = ctx.header.correlation_id,
                client_id = ctx.header.client_id.as_deref().unwrap_or(""),
                peer = %ctx.peer,
            );
            async move {
                if key == ApiKey::ApiVersions {
                    if let Some(response) = api_versions::unsupported_version_fallback(ctx) {
                        return Ok(Some(response));
                    }
                }
                $(
                    if key == <$module::$handler as Handler>::KEY {
                        return run::<$module::$handler>(ctx, body).await;
                    }
                )*
                Err(DispatchError::NotServed(key))
            }
            .instrument(span)
            .await
        }
    };
}

registry!(
    produce::ProduceHandler,
    fetch::FetchHandler,
    list_offsets::ListOffsetsHandler,
    metadata::MetadataHandler,
    api_versions::ApiVersionsHandler,
    create_topics::CreateTopicsHandler,
    delete_topics::DeleteTopicsHandler,
    delete_records::DeleteRecordsHandler,
    offset_for_leader_epoch::OffsetForLeaderEpochHandler,
    describe_configs::DescribeConfigsHandler,
    alter_configs::AlterConfigsHandler,
    describe_log_dirs::DescribeLogDirsHandler,
    create_partitions::CreatePartitionsHandler,
    incremental_alter_configs::IncrementalAlterConfigsHandler,
    elect_leaders::ElectLeadersHandler,
    alter_partition_reassignments::AlterPartitionReassignmentsHandler,
    list_partition_reassignments::ListPartitionReassignmentsHandler,
    describe_cluster::DescribeClusterHandler,
    find_coordinator::FindCoordinatorHandler,
    join_group::JoinGroupHandler,
    heartbeat::HeartbeatHandler,
    leave_group::LeaveGroupHandler,
    sync_group::SyncGroupHandler,
    offset_commit::OffsetCommitHandler,
    offset_fetch::OffsetFetchHandler,
    offset_delete::OffsetDeleteHandler,
    list_groups::ListGroupsHandler,
    describe_groups::DescribeGroupsHandler,
    delete_groups::DeleteGroupsHandler,
    init_producer_id::InitProducerIdHandler,
    add_partitions_to_txn::AddPartitionsToTxnHandler,
    add_offsets_to_txn::AddOffsetsToTxnHandler,
    end_txn::EndTxnHandler,
    write_txn_markers::WriteTxnMarkersHandler,
    txn_offset_commit::TxnOffsetCommitHandler,
    describe_producers::DescribeProducersHandler,
    describe_transactions::DescribeTransactionsHandler,
    list_transactions::ListTransactionsHandler,
    consumer_group_heartbeat::ConsumerGroupHeartbeatHandler,
    consumer_group_describe::ConsumerGroupDescribeHandler,
);

/// Who sent a group request, as the group coordinator records it
/// (DescribeGroups shows `client_id` and `/host`).
pub fn client_info(ctx: &RequestContext) -> millrace_group_coordinator::ClientInfo {
    millrace_group_coordinator::ClientInfo {
        client_id: ctx.header.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", ctx.peer.ip()),
    }
}
