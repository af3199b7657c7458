//! Readiness of the ledger, kept by a background PING so that `/readyz` answers from memory: a
//! load balancer (or a crowd) probing it as often as it likes costs Redis one PING per
//! `Timing::ready_ping`, not one per probe.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use seckill_ledger::Ledger;
use tokio::sync::watch;

const OK: u8 = 0;
const UNREACHABLE: u8 = 1;
const TIMEOUT: u8 = 2;

/// The outcome of the last PING.
#[derive(Debug, Default)]
pub struct Readiness {
    redis: AtomicU8,
}

impl Readiness {
    /// `ok`, `unreachable` (refused or failed) or `timeout` (no answer within the PING's bound).
    pub fn redis(&self) -> &'static str {
        match self.redis.load(Ordering::Relaxed) {
            OK => "ok",
            UNREACHABLE => "unreachable",
            _ => "timeout",
        }
    }

    async fn probe(&self, ledger: &Ledger, within: Duration) {
        let state = match tokio::time::timeout(within, ledger.ping()).await {
            Ok(Ok(())) => OK,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: redis");
                UNREACHABLE
            }
            Err(_) => TIMEOUT,
        };
        self.redis.store(state, Ordering::Relaxed);
    }
}

/// PINGs the ledger every `every` (each bounded by `every` too) until `stop` flips.
pub async fn keep_probing(
    readiness: Arc<Readiness>,
    ledger: Ledger,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => readiness.probe(&ledger, every).await,
            _ = stop.changed() => return,
        }
    }
}
