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
}
