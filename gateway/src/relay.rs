//! The outbox relay: republishes won orders the broker never confirmed.
//!
//! Every `relay_tick` it looks at the activities this instance has deducted in
//! ([`crate::catalog::Catalog::served`]), and every
//! `relay_full_sweep` at every activity ever created (an instance that died may have left orders
//! in an activity nobody here serves). It claims outbox entries older than `relay_age` — longer
//! than any request's own wait for its send, checked at start ([`crate::timing`]) — (the claim
//! re-queues them, so several instances never relay the same entry at once) and sends them.
//! The writer persists idempotently, so an order sent twice is still one row.

use std::sync::Arc;

use seckill_ledger::ActivityKeys;
use tokio::sync::watch;

use crate::App;

/// Outbox entries claimed per call.
const CLAIM: usize = 512;

pub async fn run(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let timing = &app.config.timing;
    let mut tick = tokio::time::interval(timing.relay_tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_full = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let full = last_full.elapsed() >= timing.relay_full_sweep;
                if full {
                    last_full = tokio::time::Instant::now();
                }
                relay_once(&app, full).await;
            }
            _ = stop.changed() => return,
        }
    }
}

/// One pass over the outboxes (of every activity if `all`, else of those this instance served).
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
        app.catalog.served()
    };
    let mut relayed = 0;
    for id in activities {
        let keys = ActivityKeys::new(&id);
        loop {
            let orders = match app
                .ledger
                .claim_outbox(&keys, app.config.timing.relay_age, CLAIM)
                .await
            {
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
