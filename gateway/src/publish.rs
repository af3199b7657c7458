//! Phase 4, enqueue: winning orders go to RocketMQ (`seckill_order`), packed: one message per
//! activity of each batch, every order id a key ([`seckill_messages::order`]).
//!
//! Single sends are latency-bound (about 1.4k/s on this machine even with 64 concurrent
//! senders) while batch sends of 64 reach about 80k/s, so concurrent winners are coalesced.
//! The batcher takes the next order, waits for one of `senders` send slots, then adds every
//! order that queued up meanwhile and, for up to `linger`, those that arrive next (up to
//! [`MAX_BATCH`]), and sends them in one `send_batch` (one message per activity among them:
//! the broker's work is per message); every waiting request resolves with its
//! batch's result. Busy slots make batches grow by themselves; the linger trades a little
//! latency for bigger batches, which matters when the broker shares the machine's cores.
//!
//! A confirmed order is then removed from the ledger's outbox. An order whose send failed or
//! timed out stays there; the relay ([`crate::relay`]) republishes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rocketmq_client_rust::DefaultMQProducer;
use seckill_ledger::{ActivityId, ActivityKeys, Ledger, OrderText};
use seckill_messages::order::order_messages;
use seckill_messages::{Message, MqError, MqRuntime, MAX_BATCH};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

/// How winners are batched (`SECKILL_PUBLISH_SENDERS`, `SECKILL_PUBLISH_LINGER_US`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batching {
    /// Batches in flight at once.
    pub senders: usize,
    /// How long a batch waits for more orders once it has a send slot.
    pub linger: Duration,
}

impl Batching {
    /// The defaults: with `SECKILL_CONFIRM=ledger` the winner is answered before the publish,
    /// so a batch may wait 5 ms to grow (fewer, bigger sends: less broker CPU per order); with
    /// `broker` the winner waits for the send, so 1 ms.
    pub fn for_confirm(confirm: crate::config::Confirm) -> Self {
        Batching {
            senders: 4,
            linger: match confirm {
                crate::config::Confirm::Ledger => Duration::from_millis(5),
                crate::config::Confirm::Broker => Duration::from_millis(1),
            },
        }
    }
}
/// Queue between requests and the batcher; when full, requests wait (backpressure).
const QUEUE: usize = 16 * 1024;

struct Pending {
    order: OrderText,
    /// The winner waiting for the broker (`SECKILL_CONFIRM=broker`); `None` once answered.
    done: Option<oneshot::Sender<bool>>,
}

/// The gateway's side of `seckill_order`.
pub struct Publisher {
    queue: mpsc::Sender<Pending>,
    producer: Arc<DefaultMQProducer>,
    ledger: Ledger,
    /// Outcome of the most recent send (readiness): true until a send fails.
    healthy: Arc<AtomicBool>,
    /// The broker's own deadline for one batch send (`Timing::send_timeout`).
    send_timeout: Duration,
    /// Set at shutdown: the batcher stops taking orders, sends what is queued, and ends.
    closing: watch::Sender<bool>,
    batcher: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Publisher {
    /// Starts a producer on `namesrv` and the batcher task.
    pub async fn start(
        runtime: &MqRuntime,
        namesrv: &str,
        ledger: Ledger,
        batching: Batching,
        send_timeout: Duration,
    ) -> Result<Self, MqError> {
        let producer = Arc::new(
            seckill_messages::producer(runtime, "seckill_gateway", namesrv, send_timeout).await?,
        );
        let healthy = Arc::new(AtomicBool::new(true));
        let (queue, receiver) = mpsc::channel(QUEUE);
        let (closing, closed) = watch::channel(false);
        // Ends at shutdown (or when the publisher is dropped), after sending what is queued.
        let batcher = tokio::spawn(batch_loop(
            receiver,
            closed,
            producer.clone(),
            ledger.clone(),
            healthy.clone(),
            batching,
            send_timeout,
        ));
        Ok(Publisher {
            queue,
            producer,
            ledger,
            healthy,
            send_timeout,
            closing,
            batcher: std::sync::Mutex::new(Some(batcher)),
        })
    }

    /// Queues one won order and waits at most `wait` for the broker's confirmation.
    /// True only when the broker confirmed it.
    pub async fn publish(&self, order: OrderText, wait: Duration) -> bool {
        let (done, confirmed) = oneshot::channel();
        let queued = async {
            let pending = Pending {
                order,
                done: Some(done),
            };
            self.queue.send(pending).await.is_ok() && confirmed.await.unwrap_or(false)
        };
        tokio::time::timeout(wait, queued).await.unwrap_or(false)
    }

    /// Queues one won order behind an answer already given (`SECKILL_CONFIRM=ledger`): the
    /// order is in the ledger's outbox, so if the queue is full (the broker far behind) it is
    /// left to the relay instead of making the winner wait. True when queued.
    pub fn publish_behind(&self, order: OrderText) -> bool {
        self.queue.try_send(Pending { order, done: None }).is_ok()
    }

    /// Sends one message and waits at most `wait` for the broker's confirmation (payment
    /// notifications, cancel requests: rare, so not batched).
    ///
    /// The client's send future is about 34 KB. Held inline it made the future of every
    /// request that might send one (the router's, so every request's) 36 KB, which hyper
    /// moved into a box per request: 7-10 % of the gateway's CPU in `memmove` under `hot`
    /// (perf). Boxed, it is allocated only by the requests that send.
    pub async fn send_one(&self, message: Message, wait: Duration) -> bool {
        let send = Box::pin(seckill_messages::send_one(&self.producer, message));
        let sent = tokio::time::timeout(wait, send)
            .await
            .unwrap_or(Err(MqError::Timeout(wait)));
        if let Err(e) = &sent {
            tracing::warn!(error = %e, "message not confirmed by the broker");
        }
        sent.is_ok()
    }

    /// Sends orders now (the relay's path), then clears them from the outbox.
    pub async fn publish_now(&self, orders: &[OrderText]) -> Result<(), MqError> {
        for chunk in orders.chunks(MAX_BATCH) {
            send(
                &self.producer,
                &self.healthy,
                self.send_timeout,
                chunk.iter(),
            )
            .await?;
            clear_outbox(&self.ledger, chunk.iter()).await;
        }
        Ok(())
    }

    /// Stops the producer. Call after the last request was answered: later sends fail (and
    /// their orders stay in the outbox).
    pub async fn shutdown(&self) {
        // Winners answered at the ledger's commit may still be queued: send them first (bounded:
        // what the broker does not take stays in the outbox for the relay).
        let _ = self.closing.send(true);
        let batcher = self
            .batcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(batcher) = batcher {
            let flush = self.send_timeout * 2;
            if tokio::time::timeout(flush, batcher).await.is_err() {
                tracing::warn!("queued orders not all sent within {flush:?}; the relay sends them");
            }
        }
        // A clone shares the producer's inner state; shutting it down stops the one producer.
        let mut producer = DefaultMQProducer::clone(&self.producer);
        producer.shutdown().await;
    }

    /// Whether the last send reached the broker.
    pub fn broker_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// Collects orders into batches and hands each to a sender task.
async fn batch_loop(
    mut receiver: mpsc::Receiver<Pending>,
    mut closing: watch::Receiver<bool>,
    producer: Arc<DefaultMQProducer>,
    ledger: Ledger,
    healthy: Arc<AtomicBool>,
    batching: Batching,
    send_timeout: Duration,
) {
    let senders = Arc::new(Semaphore::new(batching.senders.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut open = true;
    loop {
        let next = tokio::select! {
            next = receiver.recv() => next,
            _ = closing.changed(), if open => {
                // No new orders (a late winner's goes to the relay); what is queued still goes.
                receiver.close();
                open = false;
                continue;
            }
        };
        let Some(first) = next else { break };
        // Waiting for a slot is what lets a batch grow under load.
        let Ok(permit) = senders.clone().acquire_owned().await else {
            break;
        };
        let mut batch = Vec::with_capacity(MAX_BATCH);
        batch.push(first);
        let deadline = tokio::time::Instant::now() + batching.linger;
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) if batching.linger.is_zero() => break,
                Err(_) => match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(Some(pending)) => batch.push(pending),
                    _ => break,
                },
            }
        }
        let (producer, ledger, healthy) = (producer.clone(), ledger.clone(), healthy.clone());
        tasks.spawn(async move {
            let confirmed = send(
                &producer,
                &healthy,
                send_timeout,
                batch.iter().map(|p| &p.order),
            )
            .await
            .is_ok();
            drop(permit);
            // Answer first; clearing the outbox is not on the buyer's clock.
            let orders: Vec<OrderText> = batch
                .into_iter()
                .map(|p| {
                    if let Some(done) = p.done {
                        let _ = done.send(confirmed);
                    }
                    p.order
                })
                .collect();
            if confirmed {
                clear_outbox(&ledger, orders.iter()).await;
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// One batch send; Ok only on SEND_OK.
async fn send<'a>(
    producer: &DefaultMQProducer,
    healthy: &AtomicBool,
    send_timeout: Duration,
    orders: impl Iterator<Item = &'a OrderText>,
) -> Result<(), MqError> {
    let orders: Vec<&OrderText> = orders.collect();
    let count = orders.len();
    let messages = order_messages(orders);
    let result = seckill_messages::send_batch(producer, messages, send_timeout).await;
    if let Err(e) = &result {
        tracing::warn!(orders = count, error = %e, "order batch not confirmed; the orders stay in the outbox");
    }
    healthy.store(result.is_ok(), Ordering::Relaxed);
    result
}

/// Removes confirmed orders from their outboxes. A failure only means a later duplicate send
/// (the writer is idempotent), so it is logged, not retried.
async fn clear_outbox<'a>(ledger: &Ledger, orders: impl Iterator<Item = &'a OrderText>) {
    let mut keys: HashMap<&str, ActivityKeys> = HashMap::new();
    let mut entries = Vec::new();
    for order in orders {
        if !keys.contains_key(order.activity_id.as_str()) {
            let Ok(id) = ActivityId::parse(&order.activity_id) else {
                continue;
            };
            keys.insert(order.activity_id.as_str(), ActivityKeys::new(&id));
        }
        entries.push((order.activity_id.as_str(), order.order_id));
    }
    let entries: Vec<(&ActivityKeys, _)> = entries
        .iter()
        .filter_map(|(activity, id)| keys.get(activity).map(|k| (k, *id)))
        .collect();
    if let Err(e) = ledger.mark_published(&entries).await {
        tracing::warn!(error = %e, "could not clear published orders from the outbox");
    }
}
