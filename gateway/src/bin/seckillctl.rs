//! `seckillctl`: the operators' CLI. All logic lives in `seckill_gateway::ctl`.

#![recursion_limit = "256"]

use std::process::ExitCode;

use clap::Parser;
use seckill_gateway::ctl::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => {
            eprintln!("seckillctl: cannot start the runtime: {e}");
            ExitCode::from(2)
        }
    }
}
