//! The MSK control plane: Amazon MSK's `kafka` REST API (the paths, JSON
//! shapes, errors and asynchronous operations the AWS CLI and SDKs speak),
//! authenticated with SigV4, its state kept in SQLite, and the broker
//! processes of each cluster provisioned and watched behind it.
//!
//! # Layout
//!
//! | module | what it holds |
//! |---|---|
//! | [`server`] | [`Server`]: start, serve, shut down; the `export` lines |
//! | [`api`] | route table, SigV4 on every request, JSON/query/pagination helpers |
//! | [`sigv4`] | SigV4 verification (canonical request rebuilt from the wire) |
//! | [`clusters`] | cluster records, create/describe/list/delete, [`clusters::updates`], [`clusters::validation`] |
//! | [`operations`] | cluster operations and their describe/list operations |
//! | [`nodes`] | ListNodes, RebootBroker |
//! | [`bootstrap_brokers`] | GetBootstrapBrokers |
//! | [`configurations`] | MSK configurations and revisions |
//! | [`tags`] | TagResource, UntagResource, ListTagsForResource |
//! | [`versions`] | Kafka versions, upgrade paths |
//! | [`dev_cluster`] | the development cluster of `millrace up` |
//! | [`engine`] | creation, deletion, operations, healing, restart recovery |
//! | [`provisioner`] | the [`Provisioner`] trait and [`ProcessProvisioner`] |
//! | [`store`] | the SQLite state |
//! | [`wire`], [`arn`], [`error`], [`timestamps`] | shapes, ARNs, errors and times of the wire |
//!
//! The `millrace` binary (`millrace up`) starts a [`Server`] and, unless
//! told not to, [`dev_cluster::ensure_dev_cluster`].

pub mod api;
pub mod arn;
pub mod bootstrap_brokers;
pub mod clusters;
pub mod config;
pub mod configurations;
pub mod dev_cluster;
pub mod engine;
pub mod error;
pub mod kafka_health;
pub mod nodes;
pub mod operations;
pub mod provisioner;
pub mod server;
pub mod sigv4;
pub mod store;
pub mod tags;
pub mod timestamps;
pub mod versions;
pub mod wire;

pub use config::{ControlPlaneConfig, SubnetZone, Timings};
pub use dev_cluster::{ensure_dev_cluster, DevCluster, DEV_CLUSTER_NAME};
pub use provisioner::{ProcessProvisioner, Provisioner};
pub use server::{env_exports, RunningServer, Server, StartError};
pub use store::Credential;

use std::future::Future;

/// Runs a control plane until `shutdown` completes: serves the API, prints
/// the `export` lines for the AWS CLI, then stops every broker (state and
/// data are kept for the next run).
pub async fn run(
    config: ControlPlaneConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let running = Server::new(config).start().await?;
    print_env_exports(&running);
    shutdown.await;
    running.shutdown().await;
    Ok(())
}

/// Prints the `export AWS_ENDPOINT_URL=… AWS_REGION=… AWS_ACCESS_KEY_ID=…
/// AWS_SECRET_ACCESS_KEY=…` lines that point the AWS CLI at `running`.
pub fn print_env_exports(running: &RunningServer) {
    print!("{}", running.env_exports());
}
