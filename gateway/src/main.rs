//! `seckill-gateway`: read the configuration, start tracing, serve until SIGTERM/Ctrl-C.

#![recursion_limit = "256"]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use seckill_gateway::config::Config;
use seckill_gateway::Gateway;
use seckill_service::process::{run_service, shutdown_signal};

/// jemalloc rather than glibc's allocator: a connection's buffers are its memory, and with
/// 3,000 slowloris connections open glibc kept 10.7 KiB resident per connection, jemalloc
/// 6.5 KiB; the whole 6,000-connection crowd of the `crowd` bench took the gateway to 97 MB with
/// glibc, 86 MB with jemalloc (mimalloc: 168 MB).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The seckill HTTP gateway. Configuration comes from SECKILL_* environment variables
/// (see README), optionally from a TOML file; the environment wins.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML file with the same settings in lower case without the SECKILL_ prefix.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("seckill-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    run_service("seckill-gateway", config.log_json, || async {
        match Gateway::build(config).await {
            Ok(gateway) => {
                gateway.run_until(shutdown_signal()).await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("seckill-gateway: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
