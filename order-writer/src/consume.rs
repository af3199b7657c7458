//! The push consumer of `seckill_order`: each batch of won orders is persisted (one
//! transactional message, one database transaction), its status mirrored into the ledger, and
//! only then acknowledged. Anything that fails is left to redelivery: nothing is acknowledged that
//! was not committed, and persisting is idempotent, so redelivery never duplicates a row.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rocketmq_client_rust::{
    ClientResult, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus,
    MessageListenerConcurrently,
};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::MessageTrait;
use seckill_core::mq::decode_order;
use seckill_core::{ActivityId, ActivityKeys, Ledger, OrderRecord, OrderStatus};
use tokio::runtime::Handle;

use crate::persist::Persister;

pub struct OrderListener {
    handle: Handle,
    persister: Arc<Persister>,
    ledger: Ledger,
    /// Set at shutdown: new deliveries are refused (redelivered later), in-flight ones finish.
    stopping: Arc<AtomicBool>,
}

impl OrderListener {
    pub fn new(
        handle: Handle,
        persister: Arc<Persister>,
        ledger: Ledger,
        stopping: Arc<AtomicBool>,
    ) -> Self {
        OrderListener {
            handle,
            persister,
            ledger,
            stopping,
        }
    }
}

/// Persist, then mirror `pending_payment` into the ledger.
pub async fn persist_and_mirror(
    persister: &Persister,
    ledger: &Ledger,
    orders: Vec<OrderRecord>,
) -> Result<(), String> {
    let started = std::time::Instant::now();
    let count = orders.len();
    let refs: Vec<(String, seckill_core::OrderId)> = orders
        .iter()
        .map(|o| (o.activity_id.clone(), o.order_id))
        .collect();
    persister.persist(orders).await.map_err(|e| e.to_string())?;
    let mut keys: HashMap<String, ActivityKeys> = HashMap::new();
    for (activity, order_id) in refs {
        let Ok(id) = ActivityId::parse(&activity) else {
            continue;
        };
        let keys = keys
            .entry(activity)
            .or_insert_with(|| ActivityKeys::new(&id));
        ledger
            .set_status(
                keys,
                order_id,
                OrderStatus::PendingPayment,
                &[OrderStatus::Queued],
            )
            .await
            .map_err(|e| format!("mirroring order {order_id}: {e}"))?;
    }
    tracing::debug!(
        orders = count,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "batch persisted"
    );
    Ok(())
}

impl MessageListenerConcurrently for OrderListener {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _context: &ConsumeConcurrentlyContext,
    ) -> ClientResult<ConsumeConcurrentlyStatus> {
        if self.stopping.load(Ordering::Acquire) {
            return Ok(ConsumeConcurrentlyStatus::ReconsumeLater);
        }
        let mut orders = Vec::with_capacity(msgs.len());
        for msg in msgs {
            match decode_order(msg.get_body().map(|b| b.as_ref()).unwrap_or_default()) {
                Ok(order) => orders.push(order),
                // A message no writer can ever read: log it loudly, do not block the queue.
                Err(e) => {
                    tracing::error!(error = %e, msg_id = %msg.msg_id(), "dropping undecodable order message")
                }
            }
        }
        if orders.is_empty() {
            return Ok(ConsumeConcurrentlyStatus::ConsumeSuccess);
        }
        // We are on one of the client's blocking threads: block_on is allowed here.
        match self
            .handle
            .block_on(persist_and_mirror(&self.persister, &self.ledger, orders))
        {
            Ok(()) => Ok(ConsumeConcurrentlyStatus::ConsumeSuccess),
            Err(e) => {
                tracing::warn!(error = %e, "order batch not persisted; it will be redelivered");
                Ok(ConsumeConcurrentlyStatus::ReconsumeLater)
            }
        }
    }
}
