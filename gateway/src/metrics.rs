//! Prometheus metrics, kept in atomics (no locks on the hot path) and rendered as text.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Attempt outcome labels, in a fixed order (index = position here).
pub const ATTEMPT_LABELS: [&str; 15] = [
    "won",
    "repeat",
    "sold_out",
    "limit_exceeded",
    "not_started",
    "ended",
    "activity_not_found",
    "bad_request",
    "unauthorized",
    "rate_limited",
    "overloaded",
    "unavailable",
    "internal",
    "order_not_found",
    "other",
];

/// Upper bounds of the latency buckets, in seconds: about 1.5x apart, so that a percentile read
/// from the histogram (bench/ does, per outcome) is within a bucket's width of the truth.
const BUCKETS: [f64; 31] = [
    0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0004, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003,
    0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
    0.75, 1.0, 2.5, 5.0,
];

#[derive(Default)]
struct Histogram {
    /// Non-cumulative counts; the last slot is +Inf.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        self.observe_times(elapsed, 1);
    }

    /// `times` observations of `elapsed`.
    fn observe_times(&self, elapsed: Duration, times: u64) {
        let slot = BUCKETS.partition_point(|b| *b < elapsed.as_secs_f64());
        self.buckets[slot].fetch_add(times, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(elapsed.as_nanos() as u64 * times, Ordering::Relaxed);
    }

    /// The `_bucket`, `_sum` and `_count` series of `name{label_name="label"}`.
    fn render(&self, out: &mut String, name: &str, label_name: &str, label: &str) {
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = BUCKETS.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(
                out,
                "{name}_bucket{{{label_name}=\"{label}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{label_name}=\"{label}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{{label_name}=\"{label}\"}} {cumulative}");
    }
}

/// The stages of a deduct, each timed per attempt: `queued` from joining the batcher's queue to
/// its script call starting (waiting for a call slot and for the batcher), `call` the script
/// call's round trip. What is left of a winner's latency is the HTTP side and the scheduler.
pub const DEDUCT_STAGES: [&str; 2] = ["queued", "call"];

/// A stage of [`DEDUCT_STAGES`].
#[derive(Clone, Copy, Debug)]
pub enum DeductStage {
    Queued = 0,
    Call = 1,
}

/// Other endpoints, counted by route and status class.
const ROUTES: [&str; 10] = [
    "activity",
    "buyer_order",
    "order",
    "payment",
    "healthz",
    "readyz",
    "metrics",
    "preflight",
    "demo",
    "other",
];

/// What [`Metrics::connections`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connections {
    pub open: i64,
    /// Closed at accept: `SECKILL_MAX_CONNECTIONS` were open.
    pub refused: u64,
    /// Closed because no complete request head came in time (slow, or idle keep-alive).
    pub header_timeouts: u64,
    /// Closed because the client read nothing for the write timeout.
    pub write_timeouts: u64,
}

#[derive(Default)]
pub struct Metrics {
    attempts: [Histogram; ATTEMPT_LABELS.len()],
    deduct_stages: [Histogram; DEDUCT_STAGES.len()],
    requests: [[AtomicU64; 5]; ROUTES.len()],
    inflight: AtomicI64,
    sold_out_short_circuits: AtomicU64,
    redis_calls: AtomicU64,
    deduct_calls: AtomicU64,
    deduct_attempts: AtomicU64,
    publish_unconfirmed: AtomicU64,
    publish_deferred: AtomicU64,
    connections_open: AtomicI64,
    connections_refused: AtomicU64,
    header_timeouts: AtomicU64,
    write_timeouts: AtomicU64,
}

fn attempt_index(label: &str) -> usize {
    ATTEMPT_LABELS
        .iter()
        .position(|l| *l == label)
        .unwrap_or(ATTEMPT_LABELS.len() - 1)
}

impl Metrics {
    /// One call of `deduct.lua` carrying `attempts` attempts (also a Redis call).
    pub fn deduct_call(&self, attempts: usize) {
        self.redis_call();
        self.deduct_calls.fetch_add(1, Ordering::Relaxed);
        self.deduct_attempts
            .fetch_add(attempts as u64, Ordering::Relaxed);
    }

    pub fn observe_attempt(&self, label: &str, elapsed: Duration) {
        self.attempts[attempt_index(label)].observe(elapsed);
    }

    /// `attempts` attempts spent `elapsed` in `stage` (one call times all its attempts).
    pub fn observe_deduct_stage(&self, stage: DeductStage, elapsed: Duration, attempts: usize) {
        self.deduct_stages[stage as usize].observe_times(elapsed, attempts as u64);
    }

    pub fn observe_request(&self, route: &str, status: u16) {
        let route = ROUTES
            .iter()
            .position(|r| *r == route)
            .unwrap_or(ROUTES.len() - 1);
        let class = (usize::from(status / 100)).clamp(1, 5) - 1;
        self.requests[route][class].fetch_add(1, Ordering::Relaxed);
    }

    pub fn inflight_add(&self, delta: i64) {
        self.inflight.fetch_add(delta, Ordering::Relaxed);
    }

    pub fn sold_out_short_circuit(&self) {
        self.sold_out_short_circuits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn redis_call(&self) {
        self.redis_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn publish_unconfirmed(&self) {
        self.publish_unconfirmed.fetch_add(1, Ordering::Relaxed);
    }

    /// A winner answered at the ledger's commit whose order found the publish queue full: the
    /// relay sends it.
    pub fn publish_deferred(&self) {
        self.publish_deferred.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection accepted (`1`) or ended (`-1`).
    pub fn connections_add(&self, delta: i64) {
        self.connections_open.fetch_add(delta, Ordering::Relaxed);
    }

    /// A connection closed at accept: `SECKILL_MAX_CONNECTIONS` were open.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection closed because its client sent no complete request head in time.
    pub fn header_timeout(&self) {
        self.header_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection closed because its client read nothing for the write timeout.
    pub fn write_timeout(&self) {
        self.write_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// The connection gauges and counters.
    pub fn connections(&self) -> Connections {
        Connections {
            open: self.connections_open.load(Ordering::Relaxed),
            refused: self.connections_refused.load(Ordering::Relaxed),
            header_timeouts: self.header_timeouts.load(Ordering::Relaxed),
            write_timeouts: self.write_timeouts.load(Ordering::Relaxed),
        }
    }

    pub fn redis_calls(&self) -> u64 {
        self.redis_calls.load(Ordering::Relaxed)
    }

    /// (calls of `deduct.lua`, attempts they carried).
    pub fn deduct_batches(&self) -> (u64, u64) {
        (
            self.deduct_calls.load(Ordering::Relaxed),
            self.deduct_attempts.load(Ordering::Relaxed),
        )
    }

    pub fn sold_out_short_circuits(&self) -> u64 {
        self.sold_out_short_circuits.load(Ordering::Relaxed)
    }

    /// Prometheus text exposition format.
    pub fn render(&self, script_reloads: u64) -> String {
        let mut out = String::with_capacity(8 * 1024);
        out.push_str("# HELP seckill_attempts_total Buying attempts by outcome.\n# TYPE seckill_attempts_total counter\n");
        for (label, histogram) in ATTEMPT_LABELS.iter().zip(&self.attempts) {
            let count: u64 = histogram
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .sum();
            let _ = writeln!(out, "seckill_attempts_total{{outcome=\"{label}\"}} {count}");
        }
        out.push_str("# HELP seckill_attempt_duration_seconds Attempt latency by outcome.\n# TYPE seckill_attempt_duration_seconds histogram\n");
        for (label, histogram) in ATTEMPT_LABELS.iter().zip(&self.attempts) {
            histogram.render(
                &mut out,
                "seckill_attempt_duration_seconds",
                "outcome",
                label,
            );
        }
        out.push_str("# HELP seckill_deduct_stage_seconds Time each deduct attempt spent queued for a script call and in the call.\n# TYPE seckill_deduct_stage_seconds histogram\n");
        for (stage, histogram) in DEDUCT_STAGES.iter().zip(&self.deduct_stages) {
            histogram.render(&mut out, "seckill_deduct_stage_seconds", "stage", stage);
        }
        out.push_str("# HELP seckill_http_requests_total Other requests by route and status class.\n# TYPE seckill_http_requests_total counter\n");
        for (route, classes) in ROUTES.iter().zip(&self.requests) {
            for (i, count) in classes.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "seckill_http_requests_total{{route=\"{route}\",status=\"{}xx\"}} {}",
                    i + 1,
                    count.load(Ordering::Relaxed)
                );
            }
        }
        let _ = write!(
            out,
            "# HELP seckill_inflight_requests Requests being served now.\n# TYPE seckill_inflight_requests gauge\nseckill_inflight_requests {}\n\
             # HELP seckill_sold_out_short_circuits_total Attempts answered sold_out from the local flag, without Redis.\n# TYPE seckill_sold_out_short_circuits_total counter\nseckill_sold_out_short_circuits_total {}\n\
             # HELP seckill_redis_calls_total Redis round trips made for requests.\n# TYPE seckill_redis_calls_total counter\nseckill_redis_calls_total {}\n\
             # HELP seckill_deduct_calls_total Calls of deduct.lua (each carries a batch of attempts on one activity).\n# TYPE seckill_deduct_calls_total counter\nseckill_deduct_calls_total {}\n\
             # HELP seckill_deduct_attempts_total Attempts carried by those calls.\n# TYPE seckill_deduct_attempts_total counter\nseckill_deduct_attempts_total {}\n\
             # HELP seckill_script_reloads_total NOSCRIPT recoveries.\n# TYPE seckill_script_reloads_total counter\nseckill_script_reloads_total {}\n\
             # HELP seckill_publish_unconfirmed_total Won orders the broker did not confirm in time (left to the relay).\n# TYPE seckill_publish_unconfirmed_total counter\nseckill_publish_unconfirmed_total {}\n\
             # HELP seckill_publish_deferred_total Won orders answered at the ledger's commit that found the publish queue full (left to the relay).\n# TYPE seckill_publish_deferred_total counter\nseckill_publish_deferred_total {}\n\
             # HELP seckill_connections_open Client connections open now.\n# TYPE seckill_connections_open gauge\nseckill_connections_open {}\n\
             # HELP seckill_connections_refused_total Connections closed at accept (SECKILL_MAX_CONNECTIONS open).\n# TYPE seckill_connections_refused_total counter\nseckill_connections_refused_total {}\n\
             # HELP seckill_connections_timed_out_total Connections closed by a timeout, by which.\n# TYPE seckill_connections_timed_out_total counter\nseckill_connections_timed_out_total{{timeout=\"header\"}} {}\nseckill_connections_timed_out_total{{timeout=\"write\"}} {}\n",
            self.inflight.load(Ordering::Relaxed),
            self.sold_out_short_circuits.load(Ordering::Relaxed),
            self.redis_calls.load(Ordering::Relaxed),
            self.deduct_calls.load(Ordering::Relaxed),
            self.deduct_attempts.load(Ordering::Relaxed),
            script_reloads,
            self.publish_unconfirmed.load(Ordering::Relaxed),
            self.publish_deferred.load(Ordering::Relaxed),
            self.connections_open.load(Ordering::Relaxed),
            self.connections_refused.load(Ordering::Relaxed),
            self.header_timeouts.load(Ordering::Relaxed),
            self.write_timeouts.load(Ordering::Relaxed),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_labels_are_known() {
        let metrics = Metrics::default();
        metrics.observe_attempt("won", Duration::from_micros(80));
        metrics.observe_attempt("won", Duration::from_millis(3));
        metrics.observe_attempt("made_up", Duration::from_millis(3));
        let text = metrics.render(0);
        assert!(text.contains("seckill_attempts_total{outcome=\"won\"} 2"));
        assert!(text
            .contains("seckill_attempt_duration_seconds_bucket{outcome=\"won\",le=\"0.0001\"} 1"));
        assert!(
            text.contains("seckill_attempt_duration_seconds_bucket{outcome=\"won\",le=\"+Inf\"} 2")
        );
        assert!(text.contains("seckill_attempts_total{outcome=\"other\"} 1"));
        assert!(text.contains("seckill_attempt_duration_seconds_count{outcome=\"won\"} 2"));
    }

    #[test]
    fn a_call_times_every_attempt_it_carried() {
        let metrics = Metrics::default();
        metrics.observe_deduct_stage(DeductStage::Call, Duration::from_millis(2), 16);
        metrics.observe_deduct_stage(DeductStage::Queued, Duration::from_micros(300), 1);
        let text = metrics.render(0);
        assert!(
            text.contains("seckill_deduct_stage_seconds_bucket{stage=\"call\",le=\"0.0015\"} 0")
        );
        assert!(
            text.contains("seckill_deduct_stage_seconds_bucket{stage=\"call\",le=\"0.002\"} 16")
        );
        assert!(text.contains("seckill_deduct_stage_seconds_count{stage=\"queued\"} 1"));
        assert!(text.contains("seckill_deduct_stage_seconds_sum{stage=\"call\"} 0.032"));
    }
}
