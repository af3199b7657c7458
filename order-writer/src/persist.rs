//! Persisting orders with a RocketMQ transactional message.
//!
//! For a batch of orders the writer sends a half message `ORDER_CREATED` on
//! `seckill_order_event`; its local transaction inserts the orders (and their items) in ONE
//! database transaction. The broker makes the event visible only if that transaction committed.
//! If the outcome is unclear (the database failed mid-way), the answer is `Unknown` and the
//! broker's check-back asks [`LocalTransaction::check_local_transaction`], which answers from
//! the database: every order of the event present → commit, otherwise → roll back.
//!
//! Both listener methods are synchronous and run on the client's blocking threads; they reach
//! the async store through a captured runtime handle, never blocking a runtime worker.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rocketmq_client_rust::{LocalTransactionState, TransactionListener, TransactionMQProducer};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::MessageTrait;
use seckill_ledger::{OrderId, OrderRecord, OrderStatus};
use seckill_messages::{
    MqError, MqRuntime, OrderEvent, MAX_KEYED_ORDERS, ORDER_EVENT_TOPIC, ORDER_TOPIC,
};
use seckill_store::{Parked, Store};
use tokio::runtime::Handle;

use crate::consume::ConsumeError;

/// The local transaction of `ORDER_CREATED`, and its check-back.
pub struct LocalTransaction {
    store: Store,
    handle: Handle,
}

impl LocalTransaction {
    pub fn new(store: Store, handle: Handle) -> Self {
        LocalTransaction { store, handle }
    }

    /// The decision for an event whose local transaction may or may not have committed.
    pub fn check(&self, body: &[u8]) -> LocalTransactionState {
        let Ok(event) = serde_json::from_slice::<OrderEvent>(body) else {
            tracing::error!("check-back: undecodable ORDER_CREATED body; rolling back");
            return LocalTransactionState::RollbackMessage;
        };
        let ids: Vec<OrderId> = event.orders.iter().map(|o| o.order_id).collect();
        match self.handle.block_on(self.store.existing(&ids)) {
            Ok(found) if found.len() == ids.len() => LocalTransactionState::CommitMessage,
            Ok(found) => {
                tracing::warn!(
                    orders = ids.len(),
                    found = found.len(),
                    "check-back: orders missing; rolling back"
                );
                LocalTransactionState::RollbackMessage
            }
            Err(e) => {
                tracing::warn!(error = %e, "check-back: database unreachable; asking again later");
                LocalTransactionState::Unknown
            }
        }
    }
}

/// The argument of one `ORDER_CREATED` send: its orders, and what the local transaction found.
struct Batch {
    orders: Vec<OrderRecord>,
    /// Set when the insert failed on a limit-1 buyer's second live order (nothing written).
    duplicate_buyer: AtomicBool,
}

impl TransactionListener for LocalTransaction {
    fn execute_local_transaction(
        &self,
        msg: &dyn MessageTrait,
        arg: Option<&(dyn Any + Send + Sync)>,
    ) -> LocalTransactionState {
        let Some(batch) = arg.and_then(|a| a.downcast_ref::<Arc<Batch>>()) else {
            // Only `Persister::persist` sends these; without its argument, decide from the body.
            return self.check(msg.get_body().map(|b| b.as_ref()).unwrap_or_default());
        };
        let orders = &batch.orders;
        match self.handle.block_on(
            self.store
                .insert_orders(orders, OrderStatus::PendingPayment),
        ) {
            Ok(inserted) => {
                tracing::debug!(
                    orders = orders.len(),
                    inserted = inserted.len(),
                    "orders committed"
                );
                LocalTransactionState::CommitMessage
            }
            // Certain: the statement failed as a whole. The persister parks the duplicates and
            // sends the rest again.
            Err(e) if e.is_duplicate_buyer() => {
                batch.duplicate_buyer.store(true, Ordering::Release);
                LocalTransactionState::RollbackMessage
            }
            Err(e) => {
                // The commit may or may not have happened: let the check-back read the truth.
                tracing::warn!(error = %e, orders = orders.len(), "order insert failed");
                LocalTransactionState::Unknown
            }
        }
    }

    fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        self.check(msg.get_body().map(|b| b.as_ref()).unwrap_or_default())
    }
}

/// The `parked.reason` of a limit-1 buyer's second live order.
pub const DUPLICATE_BUYER: &str = "duplicate_buyer";

/// What [`Persister::persist`] did with a batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Persisted {
    /// The orders `ORDER_CREATED` announced (inserted now).
    pub announced: Vec<OrderId>,
    /// Orders refused as a limit-1 buyer's second live order, parked.
    pub parked: Vec<OrderRecord>,
}

/// Sends `ORDER_CREATED` transactional messages.
pub struct Persister {
    producer: TransactionMQProducer,
    store: Store,
}

impl Persister {
    pub async fn start(
        runtime: &MqRuntime,
        namesrv: &str,
        store: Store,
        send_timeout: Duration,
    ) -> Result<Self, MqError> {
        let mut producer = TransactionMQProducer::builder(runtime.client_runtime())
            .producer_group("seckill_order_writer_tx")
            .name_server_addr(namesrv.to_owned())
            .topics(vec![ORDER_EVENT_TOPIC])
            .send_msg_timeout(send_timeout.as_millis() as u32)
            .transaction_listener(LocalTransaction::new(store.clone(), Handle::current()))
            .build();
        producer.start().await?;
        Ok(Persister { producer, store })
    }

    /// Persists `orders`, each [`MAX_KEYED_ORDERS`] of them in one database transaction bound
    /// to one `ORDER_CREATED` event. Ok only when every order is persisted or parked:
    /// `announced` are the ids the events announced, `parked` the orders refused as a limit-1 buyer's second live order (a ledger
    /// that lost data let them win): parked in the `parked` table, their stock for the caller
    /// to give back.
    ///
    /// A batch some of whose messages were `redelivered` reads first which of its orders are
    /// persisted already and leaves them out of the event (so a redelivery announces nothing
    /// twice). A first delivery skips that read: its orders are new unless the gateway's relay
    /// republished one whose first message got through, which the event then announces again
    /// (consumers of `seckill_order_event` dedupe by order id, as at-least-once delivery asks).
    pub async fn persist(
        &self,
        orders: Vec<OrderRecord>,
        redelivered: bool,
    ) -> Result<Persisted, ConsumeError> {
        let known = if redelivered {
            let ids: Vec<OrderId> = orders.iter().map(|o| o.order_id).collect();
            self.store.existing(&ids).await?
        } else {
            Default::default()
        };
        // An order parked before stays parked when it arrives again (after its buyer's other
        // order was cancelled it would no longer conflict, and would sell its unit twice).
        let ids: Vec<OrderId> = orders.iter().map(|o| o.order_id).collect();
        let parked_before = self.store.parked_among(&ids).await?;
        let mut parked = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut fresh: Vec<OrderRecord> = Vec::with_capacity(orders.len());
        for order in orders {
            if known.contains(&order.order_id) || !seen.insert(order.order_id) {
                continue;
            }
            let order = OrderRecord {
                status: OrderStatus::PendingPayment,
                ..order
            };
            if parked_before.contains(&order.order_id) {
                parked.push(order);
            } else {
                fresh.push(order);
            }
        }
        // One event per chunk: an event's keys (its order ids) must fit the broker's limit on
        // a message's properties. A chunk that fails after others committed fails the call; the
        // redelivery finds those persisted and leaves them out.
        let mut persisted = Persisted {
            announced: Vec::new(),
            parked,
        };
        let mut rest = fresh;
        while !rest.is_empty() {
            let later = rest.split_off(rest.len().min(MAX_KEYED_ORDERS));
            let done = self.announce(std::mem::replace(&mut rest, later)).await?;
            persisted.announced.extend(done.announced);
            persisted.parked.extend(done.parked);
        }
        Ok(persisted)
    }

    /// Persists `fresh` (at most [`MAX_KEYED_ORDERS`]) in one database transaction bound to
    /// one `ORDER_CREATED` event; a limit-1 buyer's second live order among them is parked and
    /// the rest tried again.
    async fn announce(&self, mut fresh: Vec<OrderRecord>) -> Result<Persisted, ConsumeError> {
        let mut parked = Vec::new();
        // Twice at most: a second duplicate can only come from a concurrent batch, and the
        // redelivery handles that.
        for _ in 0..2 {
            if fresh.is_empty() {
                break;
            }
            let batch = Arc::new(Batch {
                orders: fresh.clone(),
                duplicate_buyer: AtomicBool::new(false),
            });
            let message = OrderEvent::message(fresh.clone())?;
            let result = self
                .producer
                .send_message_in_transaction(message, Some(batch.clone()))
                .await
                .map_err(MqError::from)?;
            match result.local_transaction_state {
                Some(LocalTransactionState::CommitMessage) => {
                    return Ok(Persisted {
                        announced: fresh.iter().map(|o| o.order_id).collect(),
                        parked,
                    })
                }
                Some(LocalTransactionState::RollbackMessage)
                    if batch.duplicate_buyer.load(Ordering::Acquire) =>
                {
                    let duplicates = self.store.duplicate_buyers(&fresh).await?;
                    if duplicates.is_empty() {
                        break;
                    }
                    let (out, kept): (Vec<OrderRecord>, Vec<OrderRecord>) = fresh
                        .into_iter()
                        .partition(|o| duplicates.contains(&o.order_id));
                    self.park_duplicates(&out).await?;
                    parked.extend(out);
                    fresh = kept;
                }
                other => return Err(MqError::NotCommitted(format!("{other:?}")).into()),
            }
        }
        if fresh.is_empty() {
            return Ok(Persisted {
                announced: Vec::new(),
                parked,
            });
        }
        Err(MqError::NotCommitted("a buyer's second live order, not found again".into()).into())
    }

    /// Parks messages no writer can apply (each once).
    pub async fn park(&self, parked: &[Parked]) -> Result<(), ConsumeError> {
        self.store.park(parked).await?;
        Ok(())
    }

    async fn park_duplicates(&self, orders: &[OrderRecord]) -> Result<(), ConsumeError> {
        let parked: Vec<Parked> = orders
            .iter()
            .map(|o| {
                tracing::error!(
                    order = %o.order_id,
                    activity = %o.activity_id,
                    user = %o.user_id,
                    "a limit-1 buyer's second live order: parked, its stock given back (the ledger lost a win?)"
                );
                Parked::order(
                    ORDER_TOPIC,
                    o.order_id,
                    &o.activity_id,
                    DUPLICATE_BUYER,
                    format!(
                        "user {} already holds a live order in activity {} (per-user limit 1)",
                        o.user_id, o.activity_id
                    ),
                    serde_json::to_vec(o).unwrap_or_default(),
                )
            })
            .collect();
        self.store.park(&parked).await?;
        Ok(())
    }

    pub async fn shutdown(&mut self) {
        self.producer.shutdown().await;
    }
}
