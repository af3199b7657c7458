//! The outbox relay: republishes won orders the broker never confirmed.
//!
//! Every [`TICK`] it looks at the activities this instance serves (the catalog), and every
//! [`FULL_SWEEP`] at every activity ever created (an instance that died may have left orders in
//! an activity nobody here serves). It claims outbox entries older than [`MIN_AGE`] (the claim
//! re-queues them, so several instances never relay the same entry at once) and sends them.
//! The writer persists idempotently, so an order sent twice is still one row.

use std::sync::Arc;
use std::time::Duration;

use seckill_core::ActivityKeys;
use tokio::sync::watch;

use crate::App;

pub const TICK: Duration = Duration::from_secs(1);
pub const FULL_SWEEP: Duration = Duration::from_secs(30);
/// Older than any request's own wait for its send, so the relay never races a live request.
pub const MIN_AGE: Duration = Duration::from_secs(5);
const CLAIM: usize = 512;

pub async fn run(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_full = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let full = last_full.elapsed() >= FULL_SWEEP;
                if full {
                    last_full = tokio::time::Instant::now();
                }
                relay_once(&app, full).await;
            }
            _ = stop.changed() => return,
        }
    }
}

/// One pass over the outboxes (of every activity if `all`, else of the cached ones).
/// Returns how many orders were republished.
pub async fn relay_once(app: &App, all: bool) -> usize {
    let activities = if all {
        match app.ledger.list_activities().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "relay: cannot list activities");
                return 0;
            }
        }
    } else {
        app.catalog.ids()
    };
    let mut relayed = 0;
    for id in activities {
        let keys = ActivityKeys::new(&id);
        loop {
            let orders = match app.ledger.claim_outbox(&keys, MIN_AGE, CLAIM).await {
                Ok(orders) if orders.is_empty() => break,
                Ok(orders) => orders,
                Err(e) => {
                    tracing::warn!(activity = %id, error = %e, "relay: claim failed");
                    break;
                }
            };
            match app.publisher.publish_now(&orders).await {
                Ok(()) => {
                    relayed += orders.len();
                    tracing::info!(activity = %id, orders = orders.len(), "relay: republished orders");
                }
                // Still in the outbox, re-queued by the claim: the next tick tries again.
                Err(_) => return relayed,
            }
            if orders.len() < CLAIM {
                break;
            }
        }
    }
    relayed
}
