//! The `millrace` command. Thin: parse arguments, hand over to [`boot`].

mod boot;
mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    boot::run(cli)
}
