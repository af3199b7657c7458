//! Errors of the ledger, tagged by whether retrying can help.

/// What went wrong talking to the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Redis could not be reached or answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// `SECKILL_REDIS_URL` (or the given URL list) names no usable topology.
    #[error("redis url {0}")]
    Config(String),
    /// A script answered outside its documented contract: a bug or a foreign key in our space.
    #[error("script {script} answered outside its contract: {detail}")]
    Contract {
        script: &'static str,
        detail: String,
    },
    /// A stored value (activity metadata) is not what the scripts write.
    #[error("corrupt ledger record {key}: {detail}")]
    Corrupt { key: String, detail: String },
    /// A stored order record is not valid JSON of an order.
    #[error("corrupt order record in {key}: {source}")]
    Record {
        key: String,
        source: serde_json::Error,
    },
}

impl LedgerError {
    /// True when the same call may succeed later (Redis down, timeout, failover).
    pub fn is_retryable(&self) -> bool {
        match self {
            LedgerError::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || matches!(
                        e.kind(),
                        redis::ErrorKind::BusyLoadingError
                            | redis::ErrorKind::TryAgain
                            | redis::ErrorKind::MasterDown
                            | redis::ErrorKind::ClusterDown
                    )
            }
            LedgerError::Config(_)
            | LedgerError::Contract { .. }
            | LedgerError::Corrupt { .. }
            | LedgerError::Record { .. } => false,
        }
    }
}
