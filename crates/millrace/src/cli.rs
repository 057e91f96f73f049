//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Millrace: a self-hosted Amazon MSK with Kafka-compatible brokers.
#[derive(Debug, Parser)]
#[command(name = "millrace", version, about)]
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
