//! SigV4 verification of incoming requests, as the AWS front door of MSK
//! does it: the canonical request is rebuilt from the request exactly as it
//! arrived, and the signature recomputed with the caller's secret.
//!
//! Two traps (API wire reference §2.3): the canonical URI is the raw wire
//! path percent-encoded *once more* (ARNs in paths arrive as `%3A`, and are
//! signed as `%253A`), and the payload hash is computed here from the body
//! received, never taken from a header. The HMAC chain comes from the
//! `aws-sigv4` crate; only the request canonicalisation is ours.

use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::error::{ApiError, ErrorKind};

/// The signing service name of the `kafka` API.
pub const SERVICE: &str = "kafka";

/// How far a request's `X-Amz-Date` may be from the server's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// A request as received, for verification.
pub struct SignedRequest<'a> {
    /// `GET`, `PUT`…
    pub method: &'a str,
    /// The path as sent on the wire, still percent-encoded.
    pub raw_path: &'a str,
    /// The raw query string (without `?`), if any.
    pub raw_query: Option<&'a str>,
    /// Every header as (name, value); names in any case.
    pub headers: Vec<(String, String)>,
    /// The body bytes as received.
    pub body: &'a [u8],
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AuthorizationHeader {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
}

fn incomplete(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::IncompleteSignature, message)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::InvalidSignature, message)
}

fn parse_authorization(value: &str) -> Result<AuthorizationHeader, ApiError> {
    let rest = value.trim().strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        incomplete(format!(
            "Authorization header requires 'AWS4-HMAC-SHA256' as its algorithm. Authorization={value}"
        ))
    })?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    fn require<'v>(v: Option<&'v str>, name: &str, value: &str) -> Result<&'v str, ApiError> {
        v.filter(|v| !v.is_empty()).ok_or_else(|| {
            incomplete(format!(
                "Authorization header requires '{name}' parameter. Authorization={value}"
            ))
        })
    }
    let credential = require(credential, "Credential", value)?;
    let signed = require(signed, "SignedHeaders", value)?;
    let signature = require(signature, "Signature", value)?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, terminator] = scope.as_slice() else {
        return Err(incomplete(format!(
            "Credential should have 5 parts (key/date/region/service/aws4_request): {credential}"
        )));
    };
    if *terminator != "aws4_request" {
        return Err(invalid(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
        )));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(incomplete(format!(
            "Signature must be 64 hexadecimal characters. Authorization={value}"
        )));
    }
    Ok(AuthorizationHeader {
        access_key_id: akid.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed.split(';').map(|h| h.to_ascii_lowercase()).collect(),
        signature: signature.to_ascii_lowercase(),
    })
}

/// RFC 3986 percent-encoding of every byte outside the unreserved set;
/// `/` is kept when `keep_slash` (the canonical URI rule).
pub fn uri_encode(input: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len() * 3);
    for b in input.bytes() {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as a space, as query strings are read);
/// invalid escapes are kept as they are.
pub fn percent_decode(input: &str, plus_as_space: bool) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a raw query into decoded (key, value) pairs, in order, repeated
/// keys kept.
pub fn parse_query(raw_query: Option<&str>) -> Vec<(String, String)> {
    raw_query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

fn canonical_query(raw_query: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = parse_query(raw_query)
        .into_iter()
        .map(|(k, v)| (uri_encode(&k, false), uri_encode(&v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Vec<&'h str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn canonical_header_value(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(",")
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(s, &format)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

fn format_amz_date(t: OffsetDateTime) -> String {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    t.format(&format).unwrap_or_default()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verifies `request`'s SigV4 signature for `region` at time `now`, looking
/// the secret up with `secret_of`. Returns the caller's access key id, or
/// the refusal AWS would give (403 with `MissingAuthenticationTokenException`,
/// `IncompleteSignatureException`, `InvalidSignatureException` or
/// `UnrecognizedClientException`).
pub fn verify(
    request: &SignedRequest<'_>,
    region: &str,
    now: SystemTime,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<String, ApiError> {
    let headers = &request.headers;
    let authorization = header(headers, "authorization");
    let Some(authorization) = authorization.first() else {
        return Err(ApiError::new(
            ErrorKind::MissingAuthenticationToken,
            "Missing Authentication Token",
        ));
    };
    let auth = parse_authorization(authorization)?;

    let amz_date = header(headers, "x-amz-date");
    let Some(amz_date) = amz_date.first().copied() else {
        return Err(incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    let signed_at = parse_amz_date(amz_date).ok_or_else(|| {
        incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
        ))
    })?;
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(invalid(
            "'Host' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    if !auth.signed_headers.iter().any(|h| h == "x-amz-date") {
        return Err(invalid(
            "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    if !amz_date.starts_with(&auth.date) {
        return Err(invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
            auth.date,
            &amz_date[..amz_date.len().min(8)]
        )));
    }
    if auth.service != SERVICE {
        return Err(invalid(format!(
            "Credential should be scoped to correct service: '{SERVICE}'. "
        )));
    }
    if auth.region != region {
        return Err(invalid(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            auth.region
        )));
    }

    let now_dt = OffsetDateTime::from(now);
    let skew = time::Duration::try_from(MAX_SKEW).unwrap_or(time::Duration::minutes(15));
    if signed_at < now_dt - skew {
        return Err(invalid(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)",
            format_amz_date(now_dt - skew),
            format_amz_date(now_dt)
        )));
    }
    if signed_at > now_dt + skew {
        return Err(invalid(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 15 min.)",
            format_amz_date(now_dt + skew),
            format_amz_date(now_dt)
        )));
    }

    let Some(secret) = secret_of(&auth.access_key_id) else {
        return Err(ApiError::new(
            ErrorKind::UnrecognizedClient,
            "The security token included in the request is invalid.",
        ));
    };
    if !header(headers, "x-amz-security-token").is_empty() {
        // No session credentials are ever issued here.
        return Err(ApiError::new(
            ErrorKind::UnrecognizedClient,
            "The security token included in the request is invalid.",
        ));
    }

    let payload_hash = sha256_hex(request.body);
    if let Some(claimed) = header(headers, "x-amz-content-sha256").first() {
        if *claimed != "UNSIGNED-PAYLOAD" && !claimed.eq_ignore_ascii_case(&payload_hash) {
            return Err(invalid(
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ));
        }
    }

    let mut canonical_headers = String::new();
    for name in &auth.signed_headers {
        let values = header(headers, name);
        if values.is_empty() {
            return Err(invalid(format!(
                "The request signature we calculated does not match the signature you provided. Signed header '{name}' is missing from the request."
            )));
        }
        canonical_headers.push_str(&format!("{name}:{}\n", canonical_header_value(&values)));
    }
    let signed_headers = auth.signed_headers.join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        uri_encode(
            if request.raw_path.is_empty() {
                "/"
            } else {
                request.raw_path
            },
            true
        ),
        canonical_query(request.raw_query),
        canonical_headers,
        signed_headers,
        payload_hash
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let scope_day = parse_amz_date(&format!("{}T000000Z", auth.date))
        .map(SystemTime::from)
        .ok_or_else(|| invalid(format!("Invalid date in Credential scope: '{}'", auth.date)))?;
    let key =
        aws_sigv4::sign::v4::generate_signing_key(&secret, scope_day, &auth.region, &auth.service);
    let expected =
        aws_sigv4::sign::v4::calculate_signature(key.as_ref(), string_to_sign.as_bytes());
    if !constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        tracing::debug!(%canonical_request, "signature mismatch");
        return Err(invalid(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ));
    }
    Ok(auth.access_key_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The get-bootstrap-brokers capture of the wire reference (§2.3): its
    /// canonical request double-encodes the ARN.
    #[test]
    fn canonical_uri_double_encodes() {
        let raw = "/v1/clusters/arn%3Aaws%3Akafka%3Aus-east-1%3A000000000000%3Acluster%2Fdemo%2Fx-1/bootstrap-brokers";
        assert_eq!(
            uri_encode(raw, true),
            "/v1/clusters/arn%253Aaws%253Akafka%253Aus-east-1%253A000000000000%253Acluster%252Fdemo%252Fx-1/bootstrap-brokers"
        );
    }

    #[test]
    fn canonical_query_sorts_and_reencodes() {
        assert_eq!(
            canonical_query(Some("tagKeys=c&tagKeys=a&clusterNameFilter=de%20mo")),
            "clusterNameFilter=de%20mo&tagKeys=a&tagKeys=c"
        );
        assert_eq!(canonical_query(None), "");
    }

    #[test]
    fn decode() {
        assert_eq!(percent_decode("arn%3Aaws%2Fx", false), "arn:aws/x");
        assert_eq!(percent_decode("a+b%2", true), "a b%2");
    }

    /// Signs like botocore (worked example computed with the reference
    /// verifier's algorithm) and checks each refusal.
    #[test]
    fn verify_round_trip_and_refusals() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let now = SystemTime::now();
        let date = format_amz_date(OffsetDateTime::from(now));
        let body = br#"{"a":1}"#;
        let sign = |date: &str, secret: &str| {
            let creq = format!(
                "POST\n/v1/tags/arn%253Ax\n\ncontent-type:application/json\nhost:127.0.0.1:1\nx-amz-date:{date}\n\ncontent-type;host;x-amz-date\n{}",
                sha256_hex(body)
            );
            let sts = format!(
                "AWS4-HMAC-SHA256\n{date}\n{}/us-east-1/kafka/aws4_request\n{}",
                &date[..8],
                sha256_hex(creq.as_bytes())
            );
            let day = parse_amz_date(&format!("{}T000000Z", &date[..8])).unwrap();
            let key = aws_sigv4::sign::v4::generate_signing_key(
                secret,
                SystemTime::from(day),
                "us-east-1",
                "kafka",
            );
            aws_sigv4::sign::v4::calculate_signature(key.as_ref(), sts.as_bytes())
        };
        let request = |date: &str, sig: &str, akid: &str| {
            SignedRequest {
            method: "POST",
            raw_path: "/v1/tags/arn%3Ax",
            raw_query: None,
            headers: vec![
                ("Host".into(), "127.0.0.1:1".into()),
                ("Content-Type".into(), "application/json".into()),
                ("X-Amz-Date".into(), date.to_string()),
                (
                    "Authorization".into(),
                    format!(
                        "AWS4-HMAC-SHA256 Credential={akid}/{}/us-east-1/kafka/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature={sig}",
                        &date[..8]
                    ),
                ),
            ],
            body,
        }
        };
        let lookup = |k: &str| (k == "AKID").then(|| secret.to_string());
        let sig = sign(&date, secret);
        assert_eq!(
            verify(&request(&date, &sig, "AKID"), "us-east-1", now, lookup),
            Ok("AKID".to_string())
        );
        let kind = |r: Result<String, ApiError>| r.map_err(|e| e.kind);
        assert_eq!(
            kind(verify(
                &request(&date, &sign(&date, "nope"), "AKID"),
                "us-east-1",
                now,
                lookup
            )),
            Err(ErrorKind::InvalidSignature)
        );
        assert_eq!(
            kind(verify(
                &request(&date, &sig, "OTHER"),
                "us-east-1",
                now,
                lookup
            )),
            Err(ErrorKind::UnrecognizedClient)
        );
        assert_eq!(
            kind(verify(
                &request(&date, &sig, "AKID"),
                "eu-west-1",
                now,
                lookup
            )),
            Err(ErrorKind::InvalidSignature)
        );
        let old = format_amz_date(OffsetDateTime::from(now) - time::Duration::minutes(16));
        assert_eq!(
            kind(verify(
                &request(&old, &sign(&old, secret), "AKID"),
                "us-east-1",
                now,
                lookup
            )),
            Err(ErrorKind::InvalidSignature)
        );
        let mut unsigned = request(&date, &sig, "AKID");
        unsigned.headers.retain(|(n, _)| n != "Authorization");
        assert_eq!(
            kind(verify(&unsigned, "us-east-1", now, lookup)),
            Err(ErrorKind::MissingAuthenticationToken)
        );
    }
}
