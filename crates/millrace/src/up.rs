//! `millrace up`: the MSK control plane and a development cluster in one
//! command, as one story:
//!
//! 1. start logging (to stderr: stdout carries only what the user copies);
//! 2. start the control plane over the data directory (state reloaded and
//!    clusters of an earlier run re-adopted) and print the `export` lines
//!    that point the AWS CLI and SDKs at it;
//! 3. unless `--no-dev-cluster`, find or create the development cluster
//!    through the control plane's own CreateCluster and print its ARN and
//!    bootstrap servers once it is ACTIVE and its brokers answer;
//! 4. run until SIGINT or SIGTERM, then stop every broker cleanly, keeping
//!    state and data for the next `millrace up`.

use std::io::Write;
use std::process::ExitCode;

use millrace_control_plane::{ensure_dev_cluster, ControlPlaneConfig, Server};

use crate::boot::{block_on, init_logging, stop_signals, LogTo};
use crate::cli::UpArgs;

/// Runs `millrace up` to completion.
pub fn run(args: UpArgs) -> ExitCode {
    init_logging(LogTo::Stderr);
    block_on(None, up(args))
}

/// The control plane's configuration for `args`: brokers are this very
/// executable (`millrace broker`), so an installed `millrace` needs nothing
/// next to it.
fn config(args: &UpArgs) -> ControlPlaneConfig {
    let mut config = ControlPlaneConfig::new(&args.data_dir);
    config.listen = args.listen;
    if let Ok(exe) = std::env::current_exe() {
        config.broker_binary = exe;
    }
    config
}

async fn up(args: UpArgs) -> ExitCode {
    // Signals are caught from the start, so that a Ctrl-C while the
    // development cluster is being made still stops its brokers.
    let stop = match stop_signals() {
        Ok(stop) => stop,
        Err(e) => {
            eprintln!("millrace: cannot catch SIGINT/SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::pin!(stop);

    if let Err(e) = std::fs::create_dir_all(&args.data_dir) {
        eprintln!(
            "millrace: cannot create the data directory {}: {e}",
            args.data_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let running = match Server::new(config(&args)).start().await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("millrace: cannot start the control plane: {e}");
            return ExitCode::FAILURE;
        }
    };
    print_out(&running.env_exports());

    let mut ready = true;
    if !args.no_dev_cluster {
        tracing::info!("waiting for the development cluster to be ACTIVE");
        tokio::select! {
            outcome = ensure_dev_cluster(&running) => match outcome {
                Ok(dev) => {
                    let how = if dev.adopted { "re-adopted" } else { "created" };
                    tracing::info!(cluster = %dev.arn, "development cluster {how} and ACTIVE");
                    print_out(&format!(
                        "Cluster ARN: {}\nBootstrap servers: {}\n",
                        dev.arn, dev.bootstrap_servers
                    ));
                }
                Err(e) => {
                    tracing::error!("the development cluster is not ready: {e}");
                    eprintln!("millrace: the development cluster is not ready: {e}");
                    ready = false;
                }
            },
            _ = &mut stop => {
                tracing::info!("stopping before the development cluster was ready");
                running.shutdown().await;
                return ExitCode::SUCCESS;
            }
        }
    }
    if ready {
        stop.await;
    }
    tracing::info!("shutting down: stopping every broker");
    running.shutdown().await;
    tracing::info!(
        "stopped; state and data kept in {}",
        args.data_dir.display()
    );
    if ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints and flushes at once: stdout is usually a pipe when scripted, and
/// whoever reads it waits for these lines.
fn print_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
