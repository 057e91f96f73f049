//! Errors the controller answers with, already in Kafka's vocabulary.

use millrace_protocol::ErrorCode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// On the wire between controllers (a forwarded request's answer) an error
/// travels as its numeric code and message.
#[derive(Serialize, Deserialize)]
struct WireApiError {
    code: i16,
    message: Option<String>,
}

impl Serialize for ApiError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireApiError {
            code: self.code.code(),
            message: self.message.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ApiError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ApiError, D::Error> {
        let wire = WireApiError::deserialize(deserializer)?;
        let code = ErrorCode::try_from_code(wire.code).unwrap_or(ErrorCode::UnknownServerError);
        Ok(ApiError {
            code,
            message: wire.message,
        })
    }
}
