//! [`CtlError`]: every way a command can fail, phrased for the operator and keeping its cause.
//!
//! Any of them ends the process with exit code 2 (see `run`); the message is what the operator
//! reads after `seckillctl: `, so it names what to fix. URLs in messages are redacted: operators
//! paste these lines into tickets.

use std::io;
use std::path::PathBuf;

use seckill_ledger::{ActivityId, LedgerError, OrderId};
use seckill_lifecycle::LifecycleError;
use seckill_messages::MqError;
use seckill_service::DurationError;
use seckill_store::StoreError;

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The operator's mistake (a bad flag, id or file) or a change the ledger refused; retrying
    /// the same command cannot help.
    #[error("{0}")]
    Input(String),
    /// A `--duration` / `--ttl` the operator mistyped.
    #[error(transparent)]
    Duration(#[from] DurationError),
    #[error("unknown activity {0}")]
    UnknownActivity(ActivityId),
    #[error("unknown order {0}")]
    UnknownOrder(OrderId),
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    /// An `activity load` file that is neither valid TOML nor valid JSON of activities.
    #[error("{}: not a valid activity file: {source}", .path.display())]
    ActivityFile {
        path: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Write { path: PathBuf, source: io::Error },
    /// The first contact with Redis failed: nothing was read or written.
    #[error("cannot reach Redis at {url}: {source}")]
    RedisUnreachable {
        /// Redacted.
        url: String,
        source: LedgerError,
    },
    /// The first contact with the database failed: nothing was read or written.
    #[error("cannot reach the database at {url}: {source}")]
    DatabaseUnreachable {
        /// Redacted.
        url: String,
        source: StoreError,
    },
    #[error("cannot start a RocketMQ producer on {namesrv}: {source}")]
    Producer { namesrv: String, source: MqError },
    /// `reconcile` stopped part-way; running it again republishes only what is still missing.
    #[error(
        "republished {republished} of {missing} missing orders, then the broker failed: {source}"
    )]
    Republish {
        republished: usize,
        missing: usize,
        source: MqError,
    },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mq(#[from] MqError),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// Writing the output failed (e.g. stdout closed by `| head`).
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl CtlError {
    pub(crate) fn input(message: impl Into<String>) -> Self {
        CtlError::Input(message.into())
    }
}
