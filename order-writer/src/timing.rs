//! Every duration the writer runs by, in one place, with the relations between them checked at
//! start (`docs/ARCHITECTURE.md`, "Timing").

use std::time::Duration;

use seckill_service::ConfigError;

/// The writer's clocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// `SECKILL_PAYMENT_WINDOW` (default 30 min): an order unpaid this long after its win is
    /// cancelled and its stock returned.
    pub payment_window: Duration,
    /// `SECKILL_SWEEP_EVERY` (default 30 s): how often the sweep looks for overdue orders whose
    /// timeout message was lost.
    pub sweep_every: Duration,
    /// How long the sweep lease lasts; the holder renews it every `sweep_every`, so it must be
    /// longer, or two writers would sweep at once.
    pub sweep_lease: Duration,
    /// Waits between tries of a payment or cancel whose order is not persisted yet (a buyer who
    /// acts within a second of winning), before the message goes back to the broker, whose own
    /// redelivery waits 10 s, then 30 s, then longer.
    pub not_persisted_retries: Vec<Duration>,
    /// The broker's deadline for one send (the transactional `ORDER_CREATED`, timers, events).
    pub send_timeout: Duration,
    /// How long shutdown waits for consume calls in flight.
    pub shutdown_wait: Duration,
    /// The pause between two pulls of one queue of `seckill_order` that found orders: what
    /// arrives meanwhile is persisted as one batch, whose cost (a transaction, a transactional
    /// message, a mirror call, a timer) barely depends on its size. It adds at most this much
    /// to the time from a win to its row.
    pub order_pull_interval: Duration,
    /// `SECKILL_WRITER_ADOPT_AFTER` (default 60 s): a won order still `queued` this long after
    /// its win, with no row, in an activity whose rows stopped growing and whose outbox is
    /// empty, is persisted by the sweeper itself (its message is out of reach: `adopt.rs`).
    pub adopt_after: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        let sweep_every = Duration::from_secs(30);
        Timing {
            payment_window: Duration::from_secs(30 * 60),
            sweep_every,
            sweep_lease: 3 * sweep_every,
            not_persisted_retries: [100, 200, 400, 800, 1500]
                .into_iter()
                .map(Duration::from_millis)
                .collect(),
            send_timeout: seckill_lifecycle::SEND_TIMEOUT,
            shutdown_wait: Duration::from_secs(10),
            order_pull_interval: Duration::from_millis(50),
            adopt_after: Duration::from_secs(60),
        }
    }
}

impl Timing {
    /// These settings with `sweep_every` changed (and the lease that follows from it).
    pub fn with_sweep_every(mut self, every: Duration) -> Self {
        self.sweep_every = every;
        self.sweep_lease = 3 * every;
        self
    }

    /// Refuses combinations under which the writer would misbehave.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.payment_window.is_zero() || self.sweep_every.is_zero() || self.adopt_after.is_zero()
        {
            return Err(ConfigError::new(
                "SECKILL_PAYMENT_WINDOW, SECKILL_SWEEP_EVERY and SECKILL_WRITER_ADOPT_AFTER must be positive",
            ));
        }
        if self.sweep_lease <= self.sweep_every {
            return Err(ConfigError::new(format!(
                "the sweep lease ({:?}) must outlast the sweep period ({:?}), or two writers sweep at once",
                self.sweep_lease, self.sweep_every
            )));
        }
        let retrying: Duration = self.not_persisted_retries.iter().sum();
        if retrying >= self.shutdown_wait {
            return Err(ConfigError::new(format!(
                "in-process retries of a step ({retrying:?}) must end within the shutdown wait ({:?})",
                self.shutdown_wait
            )));
        }
        if self.send_timeout >= self.shutdown_wait {
            return Err(ConfigError::new(format!(
                "the send timeout ({:?}) must be shorter than the shutdown wait ({:?})",
                self.send_timeout, self.shutdown_wait
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_hold_together_and_bad_combinations_are_refused() {
        assert!(Timing::default().check().is_ok());
        let short_lease = Timing {
            sweep_lease: Duration::from_secs(30),
            ..Timing::default()
        };
        assert!(short_lease
            .check()
            .unwrap_err()
            .to_string()
            .contains("sweep lease"));
        let long_retries = Timing {
            not_persisted_retries: vec![Duration::from_secs(20)],
            ..Timing::default()
        };
        assert!(long_retries
            .check()
            .unwrap_err()
            .to_string()
            .contains("retries"));
        let slow_send = Timing {
            send_timeout: Duration::from_secs(60),
            ..Timing::default()
        };
        assert!(slow_send
            .check()
            .unwrap_err()
            .to_string()
            .contains("send timeout"));
        let sweep = Timing::default().with_sweep_every(Duration::from_secs(1));
        assert_eq!(sweep.sweep_lease, Duration::from_secs(3));
        assert!(sweep.check().is_ok());
    }
}
