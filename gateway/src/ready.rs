//! Readiness of the ledger, kept by a background PING so that `/readyz` answers from memory: a
//! load balancer (or a crowd) probing it as often as it likes costs Redis one PING per
//! `Timing::ready_ping`, not one per probe.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
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

    /// `deducting`: the deducter's thread is alive ([`crate::deduct::Deducter::running`]);
    /// without it no attempt reaches the ledger, so the ledger counts as unreachable.
    async fn probe(&self, ledger: &Ledger, deducting: &AtomicBool, within: Duration) {
        if !deducting.load(Ordering::Relaxed) {
            tracing::error!("readiness: the deduct thread ended");
            self.redis.store(UNREACHABLE, Ordering::Relaxed);
            return;
        }
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
    deducting: Arc<AtomicBool>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => readiness.probe(&ledger, &deducting, every).await,
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use seckill_ledger::LedgerConfig;

    use super::*;

    #[tokio::test]
    async fn a_gone_deduct_thread_makes_the_ledger_unready() {
        let ledger = Ledger::connect(&LedgerConfig::new(seckill_testkit::redis_url()))
            .await
            .expect("the shared Redis (scripts/services.sh redis)");
        let readiness = Readiness::default();
        let deducting = AtomicBool::new(true);
        readiness
            .probe(&ledger, &deducting, Duration::from_secs(2))
            .await;
        assert_eq!(readiness.redis(), "ok");
        deducting.store(false, Ordering::Relaxed);
        readiness
            .probe(&ledger, &deducting, Duration::from_secs(2))
            .await;
        assert_eq!(readiness.redis(), "unreachable");
    }
}
