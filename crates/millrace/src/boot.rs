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
            init_logging();
            for warning in warnings {
                tracing::warn!("{warning}");
            }
            block_on(run_broker(config))
        }
        Command::Cluster {
            brokers,
            racks,
            data_dir,
            base_port,
            overrides,
        } => {
            init_logging();
            let spec = crate::cluster::ClusterSpec {
                brokers,
                racks,
                data_dir,
                base_port,
                overrides,
            };
            block_on(crate::cluster::run(spec, wait_for_signal()))
        }
    }
}

/// Runs `main` on a multi-threaded tokio runtime to completion.
fn block_on(main: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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

fn init_logging() {
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
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
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
    wait_for_signal().await;
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
    wait_for_signal().await;
    tracing::info!("shutting down");
    node.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
