//! The `millrace` command. Thin: parse arguments, hand over to [`boot`].

mod allocator;
mod boot;
mod cli;
mod cluster;

#[global_allocator]
static ALLOCATOR: allocator::ReservingAllocator = allocator::ReservingAllocator;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    boot::run(cli)
}
