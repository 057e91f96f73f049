//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Millrace: a self-hosted Amazon MSK with Kafka-compatible brokers.
#[derive(Debug, Parser)]
#[command(name = "millrace", version, about)]
pub struct Invocation {
    /// What to run.
    #[command(subcommand)]
    pub command: TopCommand,
}

/// Every subcommand: `up` is handled by [`crate::up`], the broker-level
/// ones by [`crate::boot`] (kept in their own enum so that start-up code
/// that knows nothing of the control plane matches only its own commands).
#[derive(Debug, Subcommand)]
pub enum TopCommand {
    /// Run the MSK control plane (the AWS `kafka` API) and a ready 3-broker
    /// development cluster behind it.
    ///
    /// Prints `export` lines for the AWS CLI and SDKs, then the development
    /// cluster's ARN and bootstrap servers once it is ACTIVE. Stop it with
    /// Ctrl-C or SIGTERM: brokers stop cleanly, state and data stay in the
    /// data directory, and the next `millrace up` there brings the same
    /// clusters back.
    Up(UpArgs),
    /// Broker-level commands.
    #[command(flatten)]
    Run(Command),
}

/// What `millrace up` was asked for.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Address of the AWS `kafka` REST API (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9876")]
    pub listen: SocketAddr,
    /// Directory of the control plane's SQLite state and of every broker's
    /// data.
    #[arg(long, value_name = "DIR", default_value = "./data-msk")]
    pub data_dir: PathBuf,
    /// Start only the control plane; make clusters with `aws kafka
    /// create-cluster`.
    #[arg(long)]
    pub no_dev_cluster: bool,
}

/// What the broker-level start-up ([`crate::boot`]) runs.
#[derive(Debug, Parser)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one Kafka-compatible broker.
    ///
    /// Without --config, runs the development profile: one broker on
    /// 127.0.0.1:9092 with its data in ./data.
    Broker {
        /// A Kafka `server.properties` file (Kafka's own property names).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Overrides one property, as `key=value` (repeatable; later wins).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Run a local cluster: N brokers on consecutive loopback ports, spread
    /// over R availability zones (racks), replicating to each other.
    Cluster {
        /// Number of brokers.
        #[arg(long, default_value_t = 3)]
        brokers: u16,
        /// Number of availability zones; broker N is in zone ((N-1) mod R)+1.
        #[arg(long, default_value_t = 3)]
        racks: u16,
        /// Data directory (a broker-N directory per broker, plus metadata).
        #[arg(long, value_name = "DIR", default_value = "./data-cluster")]
        data_dir: PathBuf,
        /// Port of broker 1; broker N listens on BASE_PORT + N - 1.
        #[arg(long, default_value_t = 9092)]
        base_port: u16,
        /// Overrides one property on every broker, as `key=value`.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
}
