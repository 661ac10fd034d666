//! `tunesmith`: the command line over the engine. Parses arguments, hands the resolved config to
//! the engine, and renders its events.

// The CLI is the one place that prints to stdout.
#![allow(clippy::print_stdout)]

mod args;
mod commands;
mod sink;

use clap::Parser;

fn main() {
    tunesmith_malloc::keep_freed_memory();
    tunesmith_engine::device::configure_cpu_pool();
    let cli = args::Cli::parse();
    let code = match commands::run(cli.command) {
        Ok(()) => 0,
        Err(e) => {
            // JSON-mode commands have already printed a `failed` event on stdout.
            if !commands::ERROR_REPORTED.load(std::sync::atomic::Ordering::SeqCst) {
                eprintln!("error: {e:#}");
            }
            1
        }
    };
    std::process::exit(code);
}
