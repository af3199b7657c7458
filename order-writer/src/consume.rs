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

/// The activities a writer group handles (empty: all). Every message about an order carries its
/// activity id as its tag; messages of other activities are acknowledged untouched. (The broker
/// could filter by tag, but this broker version delivers every tag, so the writer filters.)
#[derive(Clone, Debug, Default)]
pub struct ActivityFilter(Arc<std::collections::HashSet<String>>);

impl ActivityFilter {
    pub fn new(activities: &[String]) -> Self {
        ActivityFilter(Arc::new(activities.iter().cloned().collect()))
    }

    fn wants(&self, msg: &MessageExt) -> bool {
        self.0.is_empty()
            || msg
                .get_tags()
                .is_some_and(|tag| self.0.contains(tag.as_str()))
    }
}

/// The consumer of `seckill_order`.
pub struct OrderListener {
    pub handle: Handle,
    pub persister: Arc<Persister>,
    pub ledger: Ledger,
    pub lifecycle: crate::lifecycle::Lifecycle,
    pub filter: ActivityFilter,
    /// Set at shutdown: new deliveries are refused (redelivered later), in-flight ones finish.
    pub stopping: Arc<AtomicBool>,
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
    for (activity, _) in &refs {
        if let (false, Ok(id)) = (keys.contains_key(activity), ActivityId::parse(activity)) {
            keys.insert(activity.clone(), ActivityKeys::new(&id));
        }
    }
    // Concurrent, so the multiplexed Redis connection pipelines the whole batch.
    let mirrors = refs.iter().filter_map(|(activity, order_id)| {
        let keys = keys.get(activity)?;
        Some(async move {
            ledger
                .set_status(
                    keys,
                    *order_id,
                    OrderStatus::PendingPayment,
                    &[OrderStatus::Queued],
                )
                .await
                .map_err(|e| format!("mirroring order {order_id}: {e}"))
        })
    });
    for mirrored in futures_util::future::join_all(mirrors).await {
        mirrored?;
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
        for msg in msgs.iter().filter(|m| self.filter.wants(m)) {
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
        let created = orders.clone();
        match self.handle.block_on(async {
            persist_and_mirror(&self.persister, &self.ledger, orders).await?;
            // The payment window starts now; a lost timeout is caught by the sweep.
            self.lifecycle.schedule_timeouts(&created).await;
            Ok::<(), String>(())
        }) {
            Ok(()) => Ok(ConsumeConcurrentlyStatus::ConsumeSuccess),
            Err(e) => {
                tracing::warn!(error = %e, "order batch not persisted; it will be redelivered");
                Ok(ConsumeConcurrentlyStatus::ReconsumeLater)
            }
        }
    }
}

/// One lifecycle step, applied to one decoded message.
type Step<T> =
    fn(
        crate::lifecycle::Lifecycle,
        T,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// A consumer of lifecycle messages (`T`): each message is one step, run on a blocking client
/// thread through the captured runtime handle. A step that fails (or meets an order not
/// persisted yet) makes the batch be redelivered; steps are idempotent, so that is safe.
pub struct StepListener<T> {
    pub handle: Handle,
    pub lifecycle: crate::lifecycle::Lifecycle,
    pub filter: ActivityFilter,
    pub stopping: Arc<AtomicBool>,
    /// For logs.
    pub what: &'static str,
    pub step: Step<T>,
}

impl<T: serde::de::DeserializeOwned + Send + Sync + 'static> MessageListenerConcurrently
    for StepListener<T>
{
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _context: &ConsumeConcurrentlyContext,
    ) -> ClientResult<ConsumeConcurrentlyStatus> {
        if self.stopping.load(Ordering::Acquire) {
            return Ok(ConsumeConcurrentlyStatus::ReconsumeLater);
        }
        for msg in msgs.iter().filter(|m| self.filter.wants(m)) {
            let body = msg.get_body().map(|b| b.as_ref()).unwrap_or_default();
            let item: T = match serde_json::from_slice(body) {
                Ok(item) => item,
                Err(e) => {
                    tracing::error!(error = %e, msg_id = %msg.msg_id(), "dropping undecodable {} message", self.what);
                    continue;
                }
            };
            if let Err(e) = self
                .handle
                .block_on((self.step)(self.lifecycle.clone(), item))
            {
                tracing::warn!(error = %e, "{} not applied; it will be redelivered", self.what);
                return Ok(ConsumeConcurrentlyStatus::ReconsumeLater);
            }
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

/// `seckill_order_timeout`: payment windows that ended, and owners' cancellations.
pub fn cancel_step(
    lifecycle: crate::lifecycle::Lifecycle,
    request: crate::lifecycle::CancelRequest,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>> {
    Box::pin(async move {
        // Each cancel is idempotent: a redelivery after a failure part-way repeats none.
        for order_id in request.order_ids {
            let outcome = lifecycle
                .cancel(order_id)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(order = order_id.0, reason = ?request.reason, ?outcome, "cancel request handled");
        }
        Ok(())
    })
}

/// `seckill_payment`: payment notifications accepted by the gateway.
pub fn payment_step(
    lifecycle: crate::lifecycle::Lifecycle,
    payment: crate::store::Payment,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>> {
    Box::pin(async move {
        let status = lifecycle.pay(&payment).await.map_err(|e| e.to_string())?;
        tracing::info!(order = payment.order_id.0, payment = %payment.payment_id, status = status.as_str(), "payment handled");
        Ok(())
    })
}
