//! Order ids unique across gateway instances.
//!
//! A snowflake: 41 bits of milliseconds since 2026-01-01, 10 bits of worker id, 12 bits of
//! sequence. Each gateway instance leases a worker id in Redis (`sk:idgen:worker:<n>`, renewed
//! well before it expires), so two live instances never share one. Within an instance the
//! generator is lock-free and never goes backwards: if the clock steps back or the 4096 ids of a
//! millisecond run out, it borrows from the next millisecond.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::order::OrderId;

/// 2026-01-01T00:00:00Z in Unix milliseconds.
pub const EPOCH_MS: u64 = 1_767_225_600_000;
/// Number of distinct worker ids.
pub const WORKERS: u16 = 1024;
const SEQUENCE_BITS: u32 = 12;
const WORKER_BITS: u32 = 10;

/// Generates ids for one worker id.
#[derive(Debug)]
pub struct IdGenerator {
    /// The leased worker id; may change if a lease is lost and another is taken.
    worker: AtomicU64,
    /// `(ms since EPOCH) << 12 | sequence` of the last id handed out.
    last: AtomicU64,
}

impl IdGenerator {
    pub fn new(worker: u16) -> Self {
        IdGenerator {
            worker: AtomicU64::new(u64::from(worker % WORKERS)),
            last: AtomicU64::new(0),
        }
    }

    pub fn worker(&self) -> u16 {
        self.worker.load(Ordering::Relaxed) as u16
    }

    /// Switches to a newly leased worker id.
    pub fn set_worker(&self, worker: u16) {
        self.worker
            .store(u64::from(worker % WORKERS), Ordering::Relaxed);
    }

    pub fn next_id(&self) -> OrderId {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
            .saturating_sub(EPOCH_MS);
        let floor = now << SEQUENCE_BITS;
        let mut previous = self.last.load(Ordering::Relaxed);
        let tick = loop {
            let candidate = floor.max(previous + 1);
            match self.last.compare_exchange_weak(
                previous,
                candidate,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break candidate,
                Err(actual) => previous = actual,
            }
        };
        let millis = tick >> SEQUENCE_BITS;
        let sequence = tick & ((1 << SEQUENCE_BITS) - 1);
        OrderId(
            (millis << (SEQUENCE_BITS + WORKER_BITS))
                | (self.worker.load(Ordering::Relaxed) << SEQUENCE_BITS)
                | sequence,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    #[test]
    fn ids_are_unique_and_increasing_under_threads() {
        let generator = Arc::new(IdGenerator::new(7));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let generator = generator.clone();
                std::thread::spawn(move || {
                    let ids: Vec<u64> = (0..50_000).map(|_| generator.next_id().0).collect();
                    assert!(ids.windows(2).all(|w| w[0] < w[1]));
                    ids
                })
            })
            .collect();
        let mut all = HashSet::new();
        for handle in handles {
            for id in handle.join().unwrap() {
                assert!(all.insert(id), "duplicate id {id}");
            }
        }
        assert_eq!(all.len(), 200_000);
    }

    #[test]
    fn workers_never_collide() {
        let a = IdGenerator::new(1);
        let b = IdGenerator::new(2);
        let ids_a: HashSet<u64> = (0..10_000).map(|_| a.next_id().0).collect();
        assert!((0..10_000).all(|_| !ids_a.contains(&b.next_id().0)));
        assert_eq!((a.next_id().0 >> SEQUENCE_BITS) & 1023, 1);
    }
}
