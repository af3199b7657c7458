//! Keeps this instance's id-generator worker lease alive (see `seckill_ledger::id`).
//!
//! The lease lasts `Timing::worker_lease` and is renewed every third of it. If a renewal finds the lease
//! taken by another instance (we were cut off from Redis for longer than the TTL), we switch to
//! a free worker id before handing out more ids.

use std::sync::Arc;
use std::time::Duration;

use seckill_ledger::id::{IdGenerator, WORKERS};
use seckill_ledger::{Ledger, LedgerError};
use tokio::sync::watch;

/// A random-enough per-process instance token.
pub fn instance_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("gw-{}-{nanos}", std::process::id())
}

/// Leases a worker id and returns a generator using it.
pub async fn lease(
    ledger: &Ledger,
    instance: &str,
    ttl: Duration,
) -> Result<IdGenerator, LedgerError> {
    let start = (instance
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % u32::from(WORKERS)) as u16;
    let worker = ledger.acquire_worker(start, instance, ttl).await?;
    tracing::info!(worker, "leased id-generator worker id");
    Ok(IdGenerator::new(worker))
}

/// Renews the lease until shutdown; re-leases if it was lost.
pub async fn keep_lease(
    ledger: Ledger,
    ids: Arc<IdGenerator>,
    instance: String,
    ttl: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(ttl / 3);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        match ledger.lease_worker(ids.worker(), &instance, ttl).await {
            Ok(true) => {}
            Ok(false) => match ledger.acquire_worker(ids.worker(), &instance, ttl).await {
                Ok(worker) => {
                    tracing::warn!(worker, "worker lease was lost; switched to a new worker id");
                    ids.set_worker(worker);
                }
                Err(e) => tracing::error!(error = %e, "cannot lease a new worker id"),
            },
            Err(e) => tracing::warn!(error = %e, "worker lease renewal failed; will retry"),
        }
    }
}
