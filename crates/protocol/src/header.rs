//! Request headers in, response frames out.
//!
//! Kafka has three request header versions: v0 (api key, version, correlation
//! id), v1 (adds the client id) and v2 (adds tagged fields, used by flexible
//! API versions). Which one a request carries depends on its API and version,
//! so the header is read in two steps: the fixed 8-byte prefix first, then the
//! rest once the API key is known.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader as WireRequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// A decoded request header.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestHeader {
    /// Which API the request calls.
    pub api_key: ApiKey,
    /// The version of that API the client encoded the body with.
    pub api_version: i16,
    /// Echoed in the response so the client can match it.
    pub correlation_id: i32,
    /// The client's self-chosen name (v1+), for logs and quotas.
    pub client_id: Option<String>,
    /// The header version that was read (0, 1 or 2).
    pub header_version: i16,
}

/// Why a request header could not be read. The connection is closed in every
/// case, as Kafka does, but the correlation id is kept where known for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Fewer than the 8 bytes every header starts with.
    #[error("request of {0} bytes is too short for a header")]
    TooShort(usize),
    /// An API key Kafka does not define.
    #[error("unknown API key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey {
        /// The key the client sent.
        api_key: i16,
        /// The client's correlation id.
        correlation_id: i32,
    },
    /// The header itself does not decode.
    #[error("malformed {api_key:?} v{api_version} request header: {reason}")]
    Malformed {
        /// The API named by the header.
        api_key: ApiKey,
        /// The version named by the header.
        api_version: i16,
        /// What the decoder reported.
        reason: String,
    },
}

/// Reads the header off the front of `frame`, leaving the body in `frame`.
pub fn parse_request_header(frame: &mut Bytes) -> Result<RequestHeader, HeaderError> {
    if frame.len() < 8 {
        return Err(HeaderError::TooShort(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| HeaderError::UnknownApiKey {
        api_key: raw_key,
        correlation_id,
    })?;
    let header_version = api_key.request_header_version(api_version);
    let wire =
        WireRequestHeader::decode(frame, header_version).map_err(|e| HeaderError::Malformed {
            api_key,
            api_version,
            reason: format!("{e:#}"),
        })?;
    Ok(RequestHeader {
        api_key,
        api_version,
        correlation_id,
        client_id: wire.client_id.map(|s| s.to_string()),
        header_version,
    })
}

/// Encodes a complete response frame: size prefix, response header (v0, or
/// v1 with empty tagged fields for flexible versions) and body.
///
/// The header version is the one Kafka uses for `api_key` at `api_version`;
/// ApiVersions responses always use header v0 so that clients can read them
/// before they know which versions the broker speaks.
pub fn encode_response<R: Encodable>(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &R,
) -> anyhow::Result<Bytes> {
    let header_version = api_key.response_header_version(api_version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header.compute_size(header_version)? + body.compute_size(api_version)?;
    let mut out = BytesMut::with_capacity(4 + size);
    out.put_i32(i32::try_from(size)?);
    header.encode(&mut out, header_version)?;
    body.encode(&mut out, api_version)?;
    anyhow::ensure!(
        out.len() == 4 + size,
        "encoded {:?} v{api_version} response is {} bytes, expected {}",
        api_key,
        out.len() - 4,
        size
    );
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiVersionsResponse;
    use kafka_protocol::protocol::StrBytes;

    fn request(
        api_key: i16,
        version: i16,
        header: &WireRequestHeader,
        header_version: i16,
    ) -> Bytes {
        let mut buf = BytesMut::new();
        let mut h = header.clone();
        h.request_api_key = api_key;
        h.request_api_version = version;
        h.encode(&mut buf, header_version).unwrap();
        buf.put_slice(b"body");
        buf.freeze()
    }

    #[test]
    fn reads_v1_and_v2_headers() {
        let wire = WireRequestHeader::default()
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("rdkafka")));
        // Metadata v9 is flexible: header v2.
        let mut frame = request(3, 9, &wire, 2);
        let header = parse_request_header(&mut frame).unwrap();
        assert_eq!(header.api_key, ApiKey::Metadata);
        assert_eq!(header.header_version, 2);
        assert_eq!(header.client_id.as_deref(), Some("rdkafka"));
        assert_eq!(&frame[..], b"body");
        // Produce v7 is not: header v1.
        let mut frame = request(0, 7, &wire, 1);
        let header = parse_request_header(&mut frame).unwrap();
        assert_eq!((header.header_version, header.correlation_id), (1, 7));
        assert_eq!(&frame[..], b"body");
    }

    #[test]
    fn unknown_keys_and_short_frames_are_errors() {
        let mut frame = Bytes::from_static(&[0x7f, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(
            parse_request_header(&mut frame),
            Err(HeaderError::UnknownApiKey {
                api_key: 0x7f00,
                correlation_id: 9
            })
        );
        let mut frame = Bytes::from_static(&[0, 3, 0]);
        assert_eq!(
            parse_request_header(&mut frame),
            Err(HeaderError::TooShort(3))
        );
    }

    #[test]
    fn api_versions_response_uses_header_v0() {
        let body = ApiVersionsResponse::default();
        let frame = encode_response(ApiKey::ApiVersions, 3, 11, &body).unwrap();
        let size = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(size + 4, frame.len());
        assert_eq!(&frame[4..8], &11i32.to_be_bytes());
        // error code follows the correlation id directly: no tagged-field byte.
        assert_eq!(&frame[8..10], &0i16.to_be_bytes());
    }
}
