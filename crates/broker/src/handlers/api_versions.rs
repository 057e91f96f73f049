//! ApiVersions: the first request every client sends, to learn which versions
//! of every API this broker speaks.

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use millrace_protocol::header::encode_response;
use millrace_protocol::{ApiKey, ErrorCode};

use super::{supported_apis, Handler, Outcome};
use crate::request_context::RequestContext;

/// Serves ApiVersions v0-v3 (Kafka 3.7's range).
pub struct ApiVersionsHandler;

impl Handler for ApiVersionsHandler {
    const KEY: ApiKey = ApiKey::ApiVersions;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 3;
    type Request = ApiVersionsRequest;
    type Response = ApiVersionsResponse;

    async fn handle(
        ctx: &RequestContext,
        request: ApiVersionsRequest,
    ) -> Outcome<ApiVersionsResponse> {
        if ctx.header.api_version >= 3
            && (!valid_software_field(request.client_software_name.as_str())
                || !valid_software_field(request.client_software_version.as_str()))
        {
            return Outcome::Respond(Self::error_response(&request, ErrorCode::InvalidRequest));
        }
        Outcome::Respond(full_response(0))
    }

    fn error_response(_request: &ApiVersionsRequest, error: ErrorCode) -> ApiVersionsResponse {
        let mut response = ApiVersionsResponse::default().with_error_code(error.code());
        if error == ErrorCode::UnsupportedVersion {
            response = full_response(error.code());
        }
        response
    }
}

/// The response listing every served API.
fn full_response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = supported_apis()
        .into_iter()
        .map(|api| {
            ApiVersion::default()
                .with_api_key(api.key as i16)
                .with_min_version(api.min)
                .with_max_version(api.max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}

/// Kafka's fallback for clients newer than the broker: an ApiVersions request
/// at a version above ours is answered in v0 (which every client can read)
/// with UNSUPPORTED_VERSION and the versions we do serve, so the client
/// retries with a version both sides know.
pub fn unsupported_version_fallback(ctx: &RequestContext) -> Option<Bytes> {
    if ctx.header.api_version <= ApiVersionsHandler::MAX_VERSION {
        return None;
    }
    let response = full_response(ErrorCode::UnsupportedVersion.code());
    match encode_response(ApiKey::ApiVersions, 0, ctx.header.correlation_id, &response) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the ApiVersions fallback");
            None
        }
    }
}

/// `ClientSoftwareName`/`Version` must match Kafka's
/// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
fn valid_software_field(value: &str) -> bool {
    let bytes = value.as_bytes();
    let edge_ok = |b: &u8| b.is_ascii_alphanumeric();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            edge_ok(first)
                && edge_ok(last)
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_names_follow_kafkas_pattern() {
        assert!(valid_software_field("librdkafka"));
        assert!(valid_software_field("2.0.2"));
        assert!(valid_software_field("apache-kafka-java"));
        assert!(!valid_software_field(""));
        assert!(!valid_software_field("-x"));
        assert!(!valid_software_field("a b"));
        assert!(!valid_software_field("x."));
    }

    #[test]
    fn registry_lists_apis_once_with_sane_ranges() {
        let apis = supported_apis();
        for api in &apis {
            assert!(api.min <= api.max, "{api:?}");
            let codec = api.key.valid_versions();
            assert!(
                api.min >= codec.min && api.max <= codec.max,
                "{api:?} outside codec {codec}"
            );
        }
        let mut keys: Vec<i16> = apis.iter().map(|a| a.key as i16).collect();
        keys.dedup();
        assert_eq!(keys.len(), apis.len());
    }
}
