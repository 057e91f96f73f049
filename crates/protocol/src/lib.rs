//! The Kafka wire protocol as Millrace's broker speaks it.
//!
//! Message bodies (every request and response schema) come from the
//! [`kafka_protocol`] crate, which is generated from Kafka's own JSON message
//! specs. This crate holds only what that crate leaves to a broker: cutting a
//! byte stream into frames, reading request headers leniently enough to answer
//! clients that speak versions we do not, framing responses, and viewing record
//! batches in place so the produce path never re-encodes them.
//!
//! # Layout
//!
//! - [`control`]: transaction markers and the coordinator key hash.
//! - [`frame`]: length-prefixed frames; "need more bytes" is not an error.
//! - [`header`]: request headers (v0-v2) and response framing.
//! - [`records`]: zero-copy views of v2 record batches, their CRCs and records,
//!   plus a builder for the few places Kafka itself re-encodes.
//! - [`uuid_text`]: Kafka's 22-character text form of UUIDs.
//!
//! Error codes are [`kafka_protocol::error::ResponseError`], re-exported here
//! as [`ErrorCode`] so the rest of Millrace names one table.

pub mod control;
pub mod frame;
pub mod header;
pub mod records;
pub mod uuid_text;

pub use kafka_protocol;
/// Kafka's error codes, one variant per code.
pub use kafka_protocol::error::ResponseError as ErrorCode;
/// The API keys Kafka defines.
pub use kafka_protocol::messages::ApiKey;
