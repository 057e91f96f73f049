//! Cluster metadata: what topics, partitions, brokers and configs exist.
//!
//! Millrace follows KRaft's shape. Every change is a [`records::MetadataRecord`]
//! appended to an ordered metadata log; the [`image::MetadataImage`] is the
//! result of applying that log, and brokers serve Metadata requests from it.
//! The [`controller::Controller`] is the only writer: it validates a request
//! (create topics, alter configs …), turns it into records, appends them and
//! publishes the new image to every subscriber.
//!
//! The controller appends through a [`store::MetadataStore`]: a single local
//! file ([`store::LocalMetadataStore`] over [`metadata_log::MetadataLog`]) for
//! a one-node cluster, the Raft quorum (`millrace-quorum`) for a cluster, with
//! the same records, image and controller either way.
//!
//! # Layout
//!
//! - [`records`]: the record types, serialised as JSON lines.
//! - [`image`]: the applied state (`*_table` in Redpanda's terms).
//! - [`metadata_log`]: the durable, append-only record log with torn-tail recovery.
//! - [`store`]: where committed records live (local log or quorum).
//! - [`controller`]: validation and record generation (the `*_frontend`).
//! - [`remote`]: the controller's public operations, run here on the active
//!   controller or forwarded to it from any other node.
//! - [`topic_name`]: Kafka's topic-name rules.
//! - [`placement`]: replica assignment for new partitions.
//! - [`error`]: [`error::ApiError`], a Kafka error code with a message.

pub mod controller;
pub mod error;
pub mod image;
pub mod metadata_log;
pub mod placement;
pub mod reassignment;
pub mod records;
pub mod remote;
pub mod store;
pub mod topic_name;

pub use controller::Controller;
pub use error::ApiError;
pub use image::MetadataImage;
