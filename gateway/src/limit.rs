//! Local admission control, no I/O: GCRA token buckets (governor) and the in-flight cap.
//!
//! - The global bucket bounds what one instance sends to Redis per second, whatever the crowd.
//! - The per-user bucket stops one client (or bot) from hogging the global budget; every request
//!   that reaches Redis with a user's token takes from it (attempts, order reads, cancels).
//! - The per-order bucket does the same for payment notifications (signed by the provider, not
//!   by a user).
//! - The semaphore caps concurrent Redis calls: past it, queueing would only add latency that
//!   ends in timeouts, so we shed at once with 503 and let the client retry.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use seckill_ledger::{OrderId, UserId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::outcome::Refusal;

pub struct Limits {
    global: DefaultDirectRateLimiter,
    per_user: DefaultKeyedRateLimiter<UserId>,
    /// Payment notifications per order id, at the per-user rate.
    per_order: DefaultKeyedRateLimiter<u64>,
    /// Permits = concurrent Redis calls allowed (`SECKILL_MAX_INFLIGHT`).
    inflight: Arc<Semaphore>,
    clock: DefaultClock,
}

fn per_second(rate: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(rate.max(1)).unwrap_or(NonZeroU32::MIN))
}

impl Limits {
    pub fn new(rate_global: u32, rate_per_user: u32, max_inflight: usize) -> Self {
        Limits {
            global: RateLimiter::direct(per_second(rate_global)),
            per_user: RateLimiter::keyed(per_second(rate_per_user)),
            per_order: RateLimiter::keyed(per_second(rate_per_user)),
            inflight: Arc::new(Semaphore::new(max_inflight)),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one token from the user's bucket, then from the global one.
    pub fn check_rate(&self, user: &UserId) -> Result<(), Refusal> {
        if let Err(not_until) = self.per_user.check_key(user) {
            return Err(rate_limited(not_until.wait_time_from(self.clock.now())));
        }
        if let Err(not_until) = self.global.check() {
            return Err(rate_limited(not_until.wait_time_from(self.clock.now())));
        }
        Ok(())
    }

    /// Takes one token from the order's payment bucket, then from the global one.
    pub fn check_payment(&self, order: OrderId) -> Result<(), Refusal> {
        if let Err(not_until) = self.per_order.check_key(&order.0) {
            return Err(rate_limited(not_until.wait_time_from(self.clock.now())));
        }
        if let Err(not_until) = self.global.check() {
            return Err(rate_limited(not_until.wait_time_from(self.clock.now())));
        }
        Ok(())
    }

    /// A permit for one Redis call, or 503 when the cap is reached.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        self.inflight
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Overloaded)
    }

    /// Forgets idle per-user buckets so the map does not grow with every user ever seen.
    pub fn forget_idle_users(&self) {
        self.per_user.retain_recent();
        self.per_user.shrink_to_fit();
        self.per_order.retain_recent();
        self.per_order.shrink_to_fit();
    }
}

fn rate_limited(wait: Duration) -> Refusal {
    // Whole seconds, rounded up, at least 1 (Retry-After has no fractions).
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Refusal::RateLimited {
        retry_after_secs: secs.max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_bucket_stops_one_user_not_others() {
        let limits = Limits::new(1_000, 2, 10);
        let (a, b) = (UserId::parse("a").unwrap(), UserId::parse("b").unwrap());
        assert!(limits.check_rate(&a).is_ok());
        assert!(limits.check_rate(&a).is_ok());
        let Err(Refusal::RateLimited { retry_after_secs }) = limits.check_rate(&a) else {
            panic!("third attempt within a second must be limited")
        };
        assert!(retry_after_secs >= 1);
        assert!(limits.check_rate(&b).is_ok());
    }

    #[test]
    fn global_bucket_and_inflight_cap() {
        let limits = Limits::new(1, 100, 1);
        assert!(limits.check_rate(&UserId::parse("a").unwrap()).is_ok());
        assert!(limits.check_rate(&UserId::parse("b").unwrap()).is_err());
        let permit = limits.admit().unwrap();
        assert_eq!(limits.admit().unwrap_err(), Refusal::Overloaded);
        drop(permit);
        assert!(limits.admit().is_ok());
    }
}
