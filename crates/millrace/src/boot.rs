//! Start-up of the `millrace` process, as one story:
//!
//! 1. read the configuration (file or development profile, then overrides)
//!    and stop with a message naming the property if anything is invalid;
//! 2. start logging, after the config so its warnings are printed;
//! 3. start the broker (which recovers its logs before listening), or, for
//!    `process.roles=controller`, a controller-only node;
//! 4. print where it listens and how to try it;
//! 5. run until SIGINT or SIGTERM, then shut down cleanly so the next start
//!    needs no recovery.

use std::process::ExitCode;

use millrace_broker::{Broker, ControllerNode};
use millrace_config::{parse_override, parse_properties, BrokerConfig};

use crate::cli::{Cli, Command};

/// The development profile used when `--config` is not given.
const DEV_PROPERTIES: &str = include_str!("../config/dev.properties");

/// Runs the command line to completion.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Broker { config, overrides } => {
            let (config, warnings) = match load_config(config.as_deref(), &overrides) {
                Ok(loaded) => loaded,
                Err(message) => {
                    eprintln!("millrace: {message}");
                    return ExitCode::from(2);
                }
            };
            init_logging(LogTo::Stdout);
            for warning in warnings {
                tracing::warn!("{warning}");
            }
            let threads = worker_threads(&config);
            tracing::debug!(worker_threads = ?threads, "runtime size");
            block_on(threads, run_broker(config))
        }
        Command::Cluster {
            brokers,
            racks,
            data_dir,
            base_port,
            overrides,
        } => {
            init_logging(LogTo::Stdout);
            let spec = crate::cluster::ClusterSpec {
                brokers,
                racks,
                data_dir,
                base_port,
                overrides,
            };
            block_on(None, crate::cluster::run(spec, wait_for_signal()))
        }
    }
}

/// Runs `main` on a multi-threaded tokio runtime to completion, with
/// `worker_threads` workers (tokio's default, one per CPU, when `None`).
/// Shared with `up`.
pub(crate) fn block_on(
    worker_threads: Option<usize>,
    main: impl std::future::Future<Output = ExitCode>,
) -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = worker_threads {
        builder.worker_threads(n);
    }
    match builder.build() {
        Ok(runtime) => runtime.block_on(main),
        Err(e) => {
            eprintln!("millrace: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(
    path: Option<&std::path::Path>,
    overrides: &[String],
) -> Result<(BrokerConfig, Vec<String>), String> {
    let text = match path {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        None => DEV_PROPERTIES.to_string(),
    };
    let mut entries = parse_properties(&text).map_err(|e| e.to_string())?;
    for o in overrides {
        entries.push(parse_override(o).map_err(|e| e.to_string())?);
    }
    BrokerConfig::from_entries(&entries).map_err(|e| e.to_string())
}

/// The broker's request work runs on the runtime's workers, so a broker's
/// size (the control plane writes `num.network.threads` and
/// `num.io.threads` from it) sizes the runtime: their sum, as Kafka runs
/// that many request threads. `None` (tokio's default of one worker per
/// CPU) when the configuration sets neither, as in the development profile.
fn worker_threads(config: &BrokerConfig) -> Option<usize> {
    let set = config.static_entries();
    if !set.contains_key("num.network.threads") && !set.contains_key("num.io.threads") {
        return None;
    }
    let threads = config.num_network_threads().max(1) + config.num_io_threads().max(1);
    Some((threads as usize).clamp(2, MAX_WORKER_THREADS))
}

/// More workers than this only cost memory, whatever the broker size says.
const MAX_WORKER_THREADS: usize = 256;

/// Where log lines go: the broker logs to stdout (its supervisor collects
/// it); `millrace up` keeps stdout for the lines a user copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogTo {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Starts logging with `RUST_LOG` (default `info`). Shared with `up`.
pub(crate) fn init_logging(to: LogTo) {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    // openraft logs every failed RPC to an unreachable peer, twice a
    // second per peer, at WARN and ERROR; the quorum logs what an operator
    // needs (leader changes, refused appends). RUST_LOG=openraft=... brings
    // it back.
    let directives = if directives.contains("openraft") {
        directives
    } else {
        format!("{directives},openraft=off")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=off"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match to {
        LogTo::Stdout => fmt.init(),
        LogTo::Stderr => fmt.with_writer(std::io::stderr).init(),
    }
}

async fn run_broker(config: BrokerConfig) -> ExitCode {
    if ControllerNode::is_controller_only(&config) {
        return run_controller(config).await;
    }
    let running = match Broker::start(config).await {
        Ok(running) => running,
        Err(e) => {
            tracing::error!("cannot start the broker: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (name, addr) in running.addresses() {
        println!(
            "Millrace broker {} listening: {name} {addr}",
            running.broker().node_id()
        );
    }
    if let Some((_, addr)) = running.addresses().first() {
        println!("Bootstrap servers: {addr}");
        println!("Try it:  echo 'hello millrace' | kcat -b {addr} -t hello -P && kcat -b {addr} -t hello -C -e");
    }
    wait_for_stop().await;
    tracing::info!("shutting down");
    match running.shutdown().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("unclean shutdown: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A controller-only node (`process.roles=controller`): a metadata quorum
/// voter with no Kafka listener of its own.
async fn run_controller(config: BrokerConfig) -> ExitCode {
    let node = match ControllerNode::start(config).await {
        Ok(node) => node,
        Err(e) => {
            tracing::error!("cannot start the controller: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "Millrace controller {} running (cluster {})",
        node.node_id(),
        node.cluster_id()
    );
    wait_for_stop().await;
    tracing::info!("shutting down");
    node.shutdown().await;
    ExitCode::SUCCESS
}

/// The environment variable `millrace cluster` sets on the nodes it starts:
/// its own pid, so a node stops when that process is gone.
pub(crate) const EXIT_WITH_PARENT_ENV: &str = "MILLRACE_EXIT_WITH_PARENT";

/// Waits for SIGINT or SIGTERM, or, for a node `millrace cluster` started,
/// for that process to be gone (killed with SIGKILL, say, when it cannot
/// stop its nodes itself): such a node would otherwise keep its ports and
/// data dir with nobody left to stop it.
async fn wait_for_stop() {
    tokio::select! {
        () = wait_for_signal() => {}
        () = parent_gone() => tracing::warn!("the millrace cluster process that started this node is gone"),
    }
}

/// Completes once this process' parent is no longer the pid in
/// [`EXIT_WITH_PARENT_ENV`] (an orphan is re-parented); never without it.
async fn parent_gone() {
    let parent = std::env::var(EXIT_WITH_PARENT_ENV)
        .ok()
        .and_then(|v| v.parse::<u32>().ok());
    let Some(parent) = parent else {
        return std::future::pending().await;
    };
    loop {
        if std::os::unix::process::parent_id() != parent {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Waits for SIGINT or SIGTERM; the handlers are installed when the
/// future is first polled, so a signal before that (during start-up) still
/// ends the process at once. Falls back to Ctrl-C alone if they cannot be.
pub(crate) async fn wait_for_signal() {
    match stop_signals() {
        Ok(stop) => stop.await,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A future that completes at the first SIGINT or SIGTERM, with the
/// handlers installed now rather than when it is first polled (`up` needs
/// them before start-up, to stop brokers it is still creating).
pub(crate) fn stop_signals() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> BrokerConfig {
        let entries = parse_properties(text).expect("parses");
        BrokerConfig::from_entries(&entries).expect("valid").0
    }

    #[test]
    fn the_broker_size_sets_the_runtime_workers() {
        // What the control plane writes for kafka.m5.4xlarge (16 vCPUs).
        let sized = config("node.id=1\nnum.io.threads=16\nnum.network.threads=8\n");
        assert_eq!(worker_threads(&sized), Some(24));
        // One of the two set: the other takes its default (MSK: 8 io, 5 network).
        let io_only = config("node.id=1\nnum.io.threads=4\n");
        assert_eq!(worker_threads(&io_only), Some(4 + 5));
        // Neither set (the development profile): tokio's default.
        assert_eq!(worker_threads(&config(DEV_PROPERTIES)), None);
        let huge = config("node.id=1\nnum.io.threads=1000\nnum.network.threads=1000\n");
        assert_eq!(worker_threads(&huge), Some(MAX_WORKER_THREADS));
    }
}
