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

use std::time::Duration;

use rocketmq_client_rust::{LocalTransactionState, TransactionListener, TransactionMQProducer};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::MessageTrait;
use seckill_ledger::{OrderId, OrderRecord, OrderStatus};
use seckill_messages::{MqError, MqRuntime, OrderEvent, ORDER_EVENT_TOPIC};
use seckill_store::Store;
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

impl TransactionListener for LocalTransaction {
    fn execute_local_transaction(
        &self,
        msg: &dyn MessageTrait,
        arg: Option<&(dyn Any + Send + Sync)>,
    ) -> LocalTransactionState {
        let Some(orders) = arg.and_then(|a| a.downcast_ref::<Vec<OrderRecord>>()) else {
            // Only `Persister::persist` sends these; without its argument, decide from the body.
            return self.check(msg.get_body().map(|b| b.as_ref()).unwrap_or_default());
        };
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

    /// Persists `orders` in one database transaction bound to one `ORDER_CREATED` event. Ok,
    /// with the ids the event announced, only when every order is persisted.
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
    ) -> Result<Vec<OrderId>, ConsumeError> {
        let known = if redelivered {
            let ids: Vec<OrderId> = orders.iter().map(|o| o.order_id).collect();
            self.store.existing(&ids).await?
        } else {
            Default::default()
        };
        let mut seen = std::collections::HashSet::new();
        let fresh: Vec<OrderRecord> = orders
            .into_iter()
            .filter(|o| !known.contains(&o.order_id) && seen.insert(o.order_id))
            .map(|o| OrderRecord {
                status: OrderStatus::PendingPayment,
                ..o
            })
            .collect();
        if fresh.is_empty() {
            return Ok(Vec::new());
        }
        let announced = fresh.iter().map(|o| o.order_id).collect();
        let message = OrderEvent::message(fresh.clone())?;
        let result = self
            .producer
            .send_message_in_transaction(message, Some(fresh))
            .await
            .map_err(MqError::from)?;
        match result.local_transaction_state {
            Some(LocalTransactionState::CommitMessage) => Ok(announced),
            other => Err(MqError::NotCommitted(format!("{other:?}")).into()),
        }
    }

    pub async fn shutdown(&mut self) {
        self.producer.shutdown().await;
    }
}
