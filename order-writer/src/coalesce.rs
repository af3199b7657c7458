//! Concurrent consume calls share one persist.
//!
//! The consumer hands the listener one queue's pull at a time, on up to
//! [`crate::ORDER_CONSUME_THREADS`] threads at once. Persisting costs the same few
//! round trips whatever a batch holds (a transaction, a transactional message, a timer message,
//! a mirror call per activity), so when the orders of a sale are spread over many queues (16 on
//! two brokers), each pull brings a few dozen orders and those fixed costs dominate. The
//! coalescer merges them: a call's orders wait for one of [`PERSIST_SLOTS`] persists in flight,
//! and every call that queued up meanwhile joins the same persist (up to [`MAX_MERGED`] orders).
//! There is no linger: when the writer keeps up, a persist is what arrived during the previous
//! one.
//!
//! Each call blocks until the persist holding its orders is over and gets its outcome: nothing
//! is acknowledged before the commit, and a failed persist makes every call in it be
//! redelivered (persisting is idempotent).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use seckill_ledger::{Ledger, OrderRecord};
use seckill_lifecycle::Lifecycle;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::consume::{persist_and_mirror, ConsumeError};
use crate::persist::Persister;

/// Persists in flight at once. Two keep the database and the broker busy while the next batch
/// gathers; every consume thread beyond them waits and merges.
pub const PERSIST_SLOTS: usize = 2;
/// Orders in one merged persist at most: calls are merged while they fit, and a single call
/// bigger than this (a full 1 MiB pull of packed messages brings about 3,000) goes alone. Its
/// `ORDER_CREATED` events and timers name at most 1,024 orders each (their keys' limit), so a
/// persist sends one of each per activity and 1,024 orders.
pub const MAX_MERGED: usize = 2048;

/// How a call's persist ended (shared by every call merged into it).
pub type Outcome = Result<(), Arc<ConsumeError>>;

struct Part {
    orders: Vec<OrderRecord>,
    redelivered: bool,
    done: oneshot::Sender<Outcome>,
}

/// The writer's side of [`persist_and_mirror`] for consumed orders.
pub struct Coalescer {
    queue: mpsc::UnboundedSender<Part>,
    /// The persist slots: all free when no persist is in flight.
    slots: Arc<Semaphore>,
}

impl Coalescer {
    /// Starts the merging task on the current runtime; it ends when the coalescer is dropped.
    /// Once `stopping` is set, calls still queued get [`ConsumeError::Stopped`] (redelivered
    /// later) instead of a persist.
    pub fn start(
        persister: Arc<Persister>,
        ledger: Ledger,
        lifecycle: Lifecycle,
        stopping: Arc<AtomicBool>,
    ) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let slots = Arc::new(Semaphore::new(PERSIST_SLOTS));
        tokio::spawn(merge_loop(
            receiver,
            slots.clone(),
            persister,
            ledger,
            lifecycle,
            stopping,
        ));
        Coalescer { queue, slots }
    }

    /// Waits until no persist is in flight. At shutdown, once the consumer stopped calling,
    /// this is when the producers the persists send with may stop.
    pub async fn settled(&self) {
        let _ = self.slots.acquire_many(PERSIST_SLOTS as u32).await;
    }

    /// Persists `orders` together with whatever other calls queued meanwhile.
    pub async fn persist(&self, orders: Vec<OrderRecord>, redelivered: bool) -> Outcome {
        let (done, outcome) = oneshot::channel();
        let part = Part {
            orders,
            redelivered,
            done,
        };
        if self.queue.send(part).is_err() {
            return Err(Arc::new(ConsumeError::Stopped));
        }
        outcome
            .await
            .unwrap_or(Err(Arc::new(ConsumeError::Stopped)))
    }
}

async fn merge_loop(
    mut receiver: mpsc::UnboundedReceiver<Part>,
    slots: Arc<Semaphore>,
    persister: Arc<Persister>,
    ledger: Ledger,
    lifecycle: Lifecycle,
    stopping: Arc<AtomicBool>,
) {
    let mut persists = tokio::task::JoinSet::new();
    // A call that would have taken a merge past MAX_MERGED starts the next one.
    let mut carried: Option<Part> = None;
    loop {
        let first = match carried.take() {
            Some(part) => part,
            None => match receiver.recv().await {
                Some(part) => part,
                None => break,
            },
        };
        // Waiting for a slot is what lets the next persist grow while the others run.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let mut merged = first.orders.len();
        let mut parts = vec![first];
        while let Ok(part) = receiver.try_recv() {
            if merged + part.orders.len() > MAX_MERGED {
                carried = Some(part);
                break;
            }
            merged += part.orders.len();
            parts.push(part);
        }
        if stopping.load(Ordering::Acquire) {
            for part in parts {
                let _ = part.done.send(Err(Arc::new(ConsumeError::Stopped)));
            }
            continue;
        }
        let (persister, ledger, lifecycle) = (persister.clone(), ledger.clone(), lifecycle.clone());
        persists.spawn(async move {
            let (orders, redelivered) = merge(&mut parts);
            let outcome =
                persist_and_mirror(&persister, &ledger, Some(&lifecycle), orders, redelivered)
                    .await
                    .map(|_| ())
                    .map_err(Arc::new);
            for part in parts {
                let _ = part.done.send(outcome.clone());
            }
            drop(permit);
        });
        while persists.try_join_next().is_some() {}
    }
    while persists.join_next().await.is_some() {}
}

/// The parts' orders as one batch, redelivered if any part was. An order two parts both hold
/// (a redelivery overlapping its first delivery) is persisted once: [`Persister::persist`]
/// skips repeats within a batch.
fn merge(parts: &mut [Part]) -> (Vec<OrderRecord>, bool) {
    let redelivered = parts.iter().any(|p| p.redelivered);
    let orders = parts.iter_mut().flat_map(|p| p.orders.drain(..)).collect();
    (orders, redelivered)
}

#[cfg(test)]
mod tests {
    use seckill_ledger::{OrderId, OrderStatus};

    use super::*;

    fn part(ids: &[u64], redelivered: bool) -> (Part, oneshot::Receiver<Outcome>) {
        let (done, outcome) = oneshot::channel();
        let orders = ids
            .iter()
            .map(|id| OrderRecord {
                order_id: OrderId(*id),
                activity_id: "a1".into(),
                user_id: format!("u{id}"),
                quantity: 1,
                amount_cents: 100,
                channel: "app".into(),
                status: OrderStatus::Queued,
                created_at: 0,
                per_user_limit: 1,
            })
            .collect();
        let part = Part {
            orders,
            redelivered,
            done,
        };
        (part, outcome)
    }

    #[test]
    fn a_merge_keeps_every_order_in_order_and_any_redelivery() {
        let (a, _a) = part(&[1, 2], false);
        let (b, _b) = part(&[3], true);
        let (c, _c) = part(&[4, 5], false);
        let mut parts = vec![a, b, c];
        let (orders, redelivered) = merge(&mut parts);
        let ids: Vec<u64> = orders.iter().map(|o| o.order_id.0).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5]);
        assert!(redelivered);
        let (fresh, _) = part(&[6], false);
        assert!(!merge(&mut [fresh]).1);
    }
}
