//! Every duration the gateway runs by, in one place, with the relations between them checked at
//! start (`docs/ARCHITECTURE.md`, "Timing"). Five can be set (`SECKILL_PUBLISH_WAIT`,
//! `SECKILL_SEND_TIMEOUT`, `SECKILL_RELAY_AGE`, `SECKILL_HEADER_TIMEOUT`,
//! `SECKILL_WRITE_TIMEOUT`); the rest are fixed here.

use std::time::Duration;

use seckill_service::ConfigError;

/// The gateway's clocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a winner waits for the broker's confirmation before the answer becomes 503
    /// (the order then stays in the outbox for the relay).
    pub publish_wait: Duration,
    /// The broker's own deadline for one batch send.
    pub send_timeout: Duration,
    /// How long a payment notification or a cancel waits for the broker before a 503.
    pub notify_wait: Duration,
    /// The relay republishes outbox entries at least this old. It must exceed `publish_wait`
    /// and `send_timeout`, or the relay would race a live request's own send.
    pub relay_age: Duration,
    /// How often the relay looks at the activities this instance serves.
    pub relay_tick: Duration,
    /// How often the relay looks at every activity ever created (one a dead instance served).
    pub relay_full_sweep: Duration,
    /// How often every cached activity is reloaded (covers lost pub/sub messages).
    pub catalog_refresh: Duration,
    /// The id-generator worker lease; renewed every third of it.
    pub worker_lease: Duration,
    /// Upper bound on one Redis command's round trip; past it the caller gets a retryable error.
    pub redis_reply: Duration,
    /// How often readiness PINGs Redis in the background (each PING bounded by it too).
    pub ready_ping: Duration,
    /// A client must send a request's head within this once the connection waits for one (so
    /// it is also the idle keep-alive timeout: `crate::conn`), and its body within `body_read`.
    pub header_read: Duration,
    pub body_read: Duration,
    /// A response write making no progress for this long closes the connection.
    pub write: Duration,
    /// How long in-flight requests get to finish after a shutdown signal.
    pub drain: Duration,
    /// How often per-user rate limiters of users gone quiet are dropped.
    pub forget_idle_users: Duration,
    /// How long shutdown waits for the RocketMQ client runtime.
    pub mq_shutdown: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            publish_wait: Duration::from_secs(2),
            send_timeout: Duration::from_secs(3),
            notify_wait: Duration::from_secs(2),
            relay_age: Duration::from_secs(5),
            relay_tick: Duration::from_secs(1),
            relay_full_sweep: Duration::from_secs(30),
            catalog_refresh: Duration::from_secs(2),
            worker_lease: Duration::from_secs(30),
            redis_reply: Duration::from_secs(2),
            ready_ping: Duration::from_secs(1),
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(10),
            write: Duration::from_secs(10),
            drain: Duration::from_secs(10),
            forget_idle_users: Duration::from_secs(60),
            mq_shutdown: Duration::from_secs(5),
        }
    }
}

impl Timing {
    /// Refuses combinations under which the gateway would misbehave.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.relay_age <= self.publish_wait {
            return Err(ConfigError::new(format!(
                "SECKILL_RELAY_AGE ({:?}) must be longer than SECKILL_PUBLISH_WAIT ({:?}): \
                 the relay would republish orders whose buyers are still waiting for their send",
                self.relay_age, self.publish_wait
            )));
        }
        if self.relay_age <= self.send_timeout {
            return Err(ConfigError::new(format!(
                "SECKILL_RELAY_AGE ({:?}) must be longer than SECKILL_SEND_TIMEOUT ({:?}): \
                 the relay would republish orders whose batch send is still in flight",
                self.relay_age, self.send_timeout
            )));
        }
        for (name, value) in [
            ("SECKILL_PUBLISH_WAIT", self.publish_wait),
            ("SECKILL_SEND_TIMEOUT", self.send_timeout),
            ("SECKILL_HEADER_TIMEOUT", self.header_read),
            ("SECKILL_WRITE_TIMEOUT", self.write),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(format!("{name} must be positive")));
            }
        }
        if self.worker_lease < 3 * self.redis_reply {
            return Err(ConfigError::new(format!(
                "the worker lease ({:?}) must allow a renewal every third of it to finish ({:?} each)",
                self.worker_lease, self.redis_reply
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
        let racing = Timing {
            relay_age: Duration::from_secs(2),
            ..Timing::default()
        };
        assert!(racing
            .check()
            .unwrap_err()
            .to_string()
            .contains("SECKILL_PUBLISH_WAIT"));
        let slow_send = Timing {
            send_timeout: Duration::from_secs(8),
            ..Timing::default()
        };
        assert!(slow_send
            .check()
            .unwrap_err()
            .to_string()
            .contains("SECKILL_SEND_TIMEOUT"));
        let no_wait = Timing {
            publish_wait: Duration::ZERO,
            ..Timing::default()
        };
        assert!(no_wait.check().is_err());
    }
}
