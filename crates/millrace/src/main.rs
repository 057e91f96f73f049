//! The `millrace` command. Thin: parse arguments, hand over to [`boot`]
//! (brokers) or [`up`] (the control plane).

mod allocator;
mod boot;
mod cli;
mod cluster;
mod up;

#[global_allocator]
static ALLOCATOR: allocator::ReservingAllocator = allocator::ReservingAllocator;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let invocation = cli::Invocation::parse();
    match invocation.command {
        cli::TopCommand::Up(args) => up::run(args),
        cli::TopCommand::Run(command) => boot::run(cli::Cli { command }),
    }
}
