//! The Millrace broker: a Kafka-compatible server over `millrace-storage`
//! logs and `millrace-metadata` metadata.
//!
//! A request travels: [`server`] accepts → [`connection`] cuts frames and
//! reads the header → [`handlers::dispatch`] decodes the body and calls the
//! API's handler with a [`request_context::RequestContext`] → the handler
//! works through [`partition_manager`]/[`partition`] (data) or the metadata
//! controller (admin) → the response is encoded and queued for the
//! connection's writer, in request order.
//!
//! # Layout
//!
//! - [`broker`]: start-up, shared state, shutdown; `cluster_metadata`:
//!   the local metadata log or the cluster's Raft quorum behind the controller;
//!   [`controller_node`]: a controller-only node (`process.roles=controller`).
//! - [`server`], [`connection`], [`request_context`]: the network side.
//! - [`handlers`]: one file per Kafka API, plus the registry.
//! - [`partition_manager`], [`partition`]: hosted partitions, leadership,
//!   high watermark, appends and reads.
//! - [`replication`]: replica fetchers (followers) and ISR upkeep (leaders).
//! - [`log_validator`]: produce-path record validation (Kafka's `LogValidator`).
//! - [`fetch_session`]: incremental fetch sessions (KIP-227).
//! - [`settings`], [`topic_settings`], [`config_bridge`]: the config model
//!   resolved into what the request path reads.
//! - [`authorized_operations`], [`wire`]: small shared helpers.

pub mod authorized_operations;
pub mod broker;
mod cluster_metadata;
pub mod config_bridge;
pub mod connection;
pub mod controller_node;
pub mod coordinators;
pub mod fetch_session;
pub mod handlers;
pub mod log_validator;
pub mod partition;
pub mod partition_manager;
pub mod replication;
pub mod request_context;
pub mod server;
pub mod settings;
pub mod topic_settings;
pub mod wire;

pub use broker::{BootError, Broker, RunningBroker};
pub use controller_node::ControllerNode;
