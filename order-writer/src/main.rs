//! `seckill-order-writer`: read the configuration, start tracing, persist orders until
//! SIGTERM/Ctrl-C.

use std::process::ExitCode;

use seckill_order_writer::config::WriterConfig;
use seckill_order_writer::Writer;
use seckill_service::process::{run_service, shutdown_signal};

fn main() -> ExitCode {
    let config = match WriterConfig::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("seckill-order-writer: {e}");
            return ExitCode::from(2);
        }
    };
    run_service("seckill-order-writer", config.log_json, || async {
        match Writer::start(&config).await {
            Ok(writer) => {
                shutdown_signal().await;
                tracing::info!("shutting down: finishing in-flight batches");
                writer.shutdown().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("seckill-order-writer: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
