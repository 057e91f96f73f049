//! Errors the controller answers with, already in Kafka's vocabulary.

use millrace_protocol::ErrorCode;

/// A Kafka error code plus the human-readable message Kafka would send with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code:?}: {}", message.as_deref().unwrap_or(""))]
pub struct ApiError {
    /// The code clients branch on.
    pub code: ErrorCode,
    /// Detail for people; sent where the response has an error message field.
    pub message: Option<String>,
}

impl ApiError {
    /// An error with a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: Some(message.into()),
        }
    }

    /// An error with only a code.
    pub fn code(code: ErrorCode) -> Self {
        ApiError {
            code,
            message: None,
        }
    }

    /// The numeric code for a response field.
    pub fn code_i16(&self) -> i16 {
        self.code.code()
    }
}
