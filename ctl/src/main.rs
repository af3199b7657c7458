//! `seckillctl`: the operators' CLI. All logic lives in the `seckill_ctl` library.

#![recursion_limit = "256"]

use std::process::ExitCode;

use clap::Parser;
use seckill_ctl::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One command at a time: a single-threaded runtime is enough and starts faster.
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
