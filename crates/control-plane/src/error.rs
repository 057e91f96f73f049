//! The one error type of the API: what the AWS CLI and SDKs parse.
//!
//! botocore's rest-json parser takes the error code from the
//! `x-amzn-ErrorType` header (everything before `:`), and the message from
//! the body's `message`; MSK's body also names the offending request member in
//! `invalidParameter`. Every refusal the control plane makes goes through
//! [`ApiError`] so that status, header and body always agree.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The MSK exception shapes (and the SigV4 refusals of the AWS front door),
/// each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the request is invalid (validation, wrong state, stale version).
    BadRequest,
    /// 404: the named resource does not exist.
    NotFound,
    /// 409: a name is taken, or the resource is not ready for the request.
    Conflict,
    /// 429: the caller is being throttled.
    TooManyRequests,
    /// 500: the control plane failed.
    InternalServerError,
    /// 503: the control plane cannot serve the request now.
    ServiceUnavailable,
    /// 403: no `Authorization` header at all (API Gateway's answer).
    MissingAuthenticationToken,
    /// 403: an `Authorization` header that is not a complete SigV4 header.
    IncompleteSignature,
    /// 403: the signature, its scope or its date is wrong.
    InvalidSignature,
    /// 403: the access key id is not known.
    UnrecognizedClient,
}

impl ErrorKind {
    /// The error code clients see (the `x-amzn-ErrorType` value).
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "BadRequestException",
            ErrorKind::NotFound => "NotFoundException",
            ErrorKind::Conflict => "ConflictException",
            ErrorKind::TooManyRequests => "TooManyRequestsException",
            ErrorKind::InternalServerError => "InternalServerErrorException",
            ErrorKind::ServiceUnavailable => "ServiceUnavailableException",
            ErrorKind::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            ErrorKind::IncompleteSignature => "IncompleteSignatureException",
            ErrorKind::InvalidSignature => "InvalidSignatureException",
            ErrorKind::UnrecognizedClient => "UnrecognizedClientException",
        }
    }

    /// The HTTP status MSK (or its API Gateway front) answers with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::InternalServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::MissingAuthenticationToken
            | ErrorKind::IncompleteSignature
            | ErrorKind::InvalidSignature
            | ErrorKind::UnrecognizedClient => StatusCode::FORBIDDEN,
        }
    }

    /// Whether this is an MSK-modelled exception (whose body carries
    /// `invalidParameter`) rather than a front-door authentication refusal.
    fn is_msk_shape(self) -> bool {
        !matches!(
            self,
            ErrorKind::MissingAuthenticationToken
                | ErrorKind::IncompleteSignature
                | ErrorKind::InvalidSignature
                | ErrorKind::UnrecognizedClient
        )
    }
}

/// A refused request: kind, human message, and the request member at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.code())]
pub struct ApiError {
    /// Which exception.
    pub kind: ErrorKind,
    /// The message shown by the CLI after the error code.
    pub message: String,
    /// The lowerCamel request member that caused it, when there is one.
    pub invalid_parameter: Option<String>,
}

impl ApiError {
    /// A refusal of `kind` with no member named.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            invalid_parameter: None,
        }
    }

    /// 400 BadRequestException naming the member `parameter`.
    pub fn bad_request(parameter: &str, message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::BadRequest, message).with_parameter(parameter)
    }

    /// 404 NotFoundException naming the member `parameter`.
    pub fn not_found(parameter: &str, message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::NotFound, message).with_parameter(parameter)
    }

    /// 409 ConflictException naming the member `parameter`.
    pub fn conflict(parameter: &str, message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::Conflict, message).with_parameter(parameter)
    }

    /// 500 InternalServerErrorException; the cause is logged, not shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        ApiError::new(
            ErrorKind::InternalServerError,
            "The server encountered an internal error.",
        )
    }

    /// Names the request member at fault.
    pub fn with_parameter(mut self, parameter: &str) -> Self {
        self.invalid_parameter = Some(parameter.to_string());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("message".into(), self.message.clone().into());
        if self.kind.is_msk_shape() {
            if let Some(p) = &self.invalid_parameter {
                body.insert("invalidParameter".into(), p.clone().into());
            }
        }
        let mut response = (
            self.kind.status(),
            [(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            serde_json::Value::Object(body).to_string(),
        )
            .into_response();
        let error_type = if self.kind.is_msk_shape() {
            format!(
                "{}:http://internal.amazon.com/coral/com.amazonaws.kafka/",
                self.kind.code()
            )
        } else {
            self.kind.code().to_string()
        };
        if let Ok(v) = HeaderValue::from_str(&error_type) {
            response.headers_mut().insert("x-amzn-ErrorType", v);
        }
        response
    }
}
