//! The sweep: cancels orders still unpaid a full payment window after their win whose timeout
//! message was lost, and adopts won orders whose message is out of reach (`adopt.rs`). Writers
//! of one group share one database, so one of them sweeps at a time: whoever holds the group's
//! Redis lease.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use seckill_ledger::Ledger;
use seckill_lifecycle::Lifecycle;

use crate::adopt::Adopter;
use crate::timing::Timing;

/// Overdue orders cancelled per tick at most.
const SWEEP_LIMIT: i64 = 500;

/// The Redis lease that makes one writer of `group` at a time the sweeper.
pub fn lease_key(group: &str) -> String {
    format!("sk:lock:sweep:{group}")
}

/// Every `timing.sweep_every`: if this writer holds (or can take) the sweep lease, cancel
/// overdue orders, then adopt stranded ones. Ends once `stopping` is set.
pub async fn run(
    mut adopter: Adopter,
    lifecycle: Lifecycle,
    ledger: Ledger,
    lease: String,
    timing: Timing,
    stopping: Arc<AtomicBool>,
) {
    let holder = format!(
        "writer-{}-{}",
        std::process::id(),
        seckill_service::now_ms()
    );
    let mut tick = tokio::time::interval(timing.sweep_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stopping.load(Ordering::Acquire) {
        tick.tick().await;
        // The lease outlives one tick (checked at start), so the holder keeps it while alive; if
        // it dies another writer takes over after the lease expires.
        match ledger.hold_lease(&lease, &holder, timing.sweep_lease).await {
            Ok(true) => {
                match lifecycle.sweep(SWEEP_LIMIT).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(cancelled = n, "sweep cancelled overdue orders"),
                    Err(e) => tracing::warn!(error = %e, "sweep failed; next tick retries"),
                }
                if let Err(e) = adopter.tick().await {
                    tracing::warn!(error = %e, "adopting stranded orders failed; next tick retries");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "sweep lease unavailable"),
        }
    }
}
