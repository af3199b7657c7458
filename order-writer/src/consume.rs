//! The push consumer of `seckill_order`: each batch of won orders is persisted (one
//! transactional message, one database transaction), its status mirrored into the ledger, and
//! only then acknowledged. Anything that fails is left to redelivery: nothing is acknowledged that
//! was not committed, and persisting is idempotent, so redelivery never duplicates a row.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rocketmq_client_rust::{
    ClientResult, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus,
    MessageListenerConcurrently,
};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::MessageTrait;
use seckill_ledger::event::LedgerEvent;
use seckill_ledger::ledger::ReleaseOutcome;
use seckill_ledger::{
    ActivityId, ActivityKeys, Ledger, LedgerError, OrderId, OrderRecord, OrderStatus,
};
use seckill_lifecycle::{Lifecycle, LifecycleError};
use seckill_messages::order::decode_orders;
use seckill_messages::{CancelReason, CancelRequest, MqError, Payment, ORDER_TOPIC};
use seckill_store::Parked;
use tokio::runtime::Handle;

use crate::coalesce::Coalescer;
use crate::persist::{Persisted, Persister};

/// The `parked.reason` of a message that is not an order.
pub const UNDECODABLE: &str = "undecodable";

/// Why a batch of won orders was not (completely) persisted; it is redelivered either way.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The transactional `ORDER_CREATED` message (and so the insert) did not commit.
    #[error("persisting the batch: {0}")]
    Persist(#[from] MqError),
    /// The database could not say which orders of the batch are persisted already.
    #[error("reading the batch's persisted orders: {0}")]
    Store(#[from] seckill_store::StoreError),
    /// A parked order's stock could not be given back (the batch is redelivered: parking and
    /// releasing again change nothing twice).
    #[error("giving back the stock of parked order {order}: {source}")]
    Release { order: OrderId, source: LedgerError },
    /// The rows committed but the batch's status could not be mirrored into the ledger.
    #[error("mirroring the batch's orders of activity {activity} into the ledger: {source}")]
    Mirror {
        activity: String,
        source: LedgerError,
    },
    /// The writer is stopping: the coalescer took no more batches.
    #[error("the writer is stopping")]
    Stopped,
}

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
    /// Parks what cannot be decoded.
    pub persister: Arc<Persister>,
    /// Persists the orders, merged with other queues' calls in flight.
    pub coalescer: Arc<Coalescer>,
    pub filter: ActivityFilter,
    /// Set at shutdown: new deliveries are refused (redelivered later), in-flight ones finish.
    pub stopping: Arc<AtomicBool>,
}

/// Persist, schedule the payment timeouts (`lifecycle`, if given), then mirror
/// `pending_payment` into the ledger: one script call per activity of the batch. So an order
/// mirrored has its row and its timer. An order parked as a limit-1 buyer's second live order
/// gets no timer and no mirror: its stock goes back (status `cancelled`) instead. Returns what
/// [`Persister::persist`] did (see there for `redelivered`).
pub async fn persist_and_mirror(
    persister: &Persister,
    ledger: &Ledger,
    lifecycle: Option<&Lifecycle>,
    orders: Vec<OrderRecord>,
    redelivered: bool,
) -> Result<Persisted, ConsumeError> {
    let started = std::time::Instant::now();
    let count = orders.len();
    let mut batch = orders.clone();
    let persisted = persister.persist(orders, redelivered).await?;
    for order in &persisted.parked {
        let Ok(activity) = ActivityId::parse(&order.activity_id) else {
            continue;
        };
        let released = ledger
            .release(
                &ActivityKeys::new(&activity),
                order.order_id,
                OrderStatus::Cancelled,
            )
            .await
            .map_err(|source| ConsumeError::Release {
                order: order.order_id,
                source,
            })?;
        if let ReleaseOutcome::Released { .. } = released {
            // Stock came back: every gateway clears its sold-out flag now, not at its next
            // refresh.
            ledger
                .publish(&LedgerEvent::StockBack(activity))
                .await
                .map_err(|source| ConsumeError::Release {
                    order: order.order_id,
                    source,
                })?;
        }
    }
    if !persisted.parked.is_empty() {
        let parked: std::collections::HashSet<OrderId> =
            persisted.parked.iter().map(|o| o.order_id).collect();
        batch.retain(|o| !parked.contains(&o.order_id));
    }
    if let Some(lifecycle) = lifecycle {
        // The payment window starts now; a lost timeout is caught by the sweep.
        lifecycle.schedule_timeouts(&batch).await;
    }
    let mut by_activity: HashMap<&str, Vec<OrderId>> = HashMap::new();
    for order in &batch {
        by_activity
            .entry(order.activity_id.as_str())
            .or_default()
            .push(order.order_id);
    }
    // Concurrent, so the multiplexed Redis connection pipelines them.
    let mirrors = by_activity.iter().filter_map(|(activity, ids)| {
        let keys = ActivityKeys::new(&ActivityId::parse(activity).ok()?);
        Some(async move {
            ledger
                .mirror(&keys, ids, OrderStatus::PendingPayment, OrderStatus::Queued)
                .await
                .map_err(|source| ConsumeError::Mirror {
                    activity: activity.to_string(),
                    source,
                })
        })
    });
    for mirrored in futures_util::future::join_all(mirrors).await {
        mirrored?;
    }
    tracing::debug!(
        orders = count,
        announced = persisted.announced.len(),
        parked = persisted.parked.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "batch persisted"
    );
    Ok(persisted)
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
        // Each message packs the orders of one gateway batch (up to 64).
        let mut orders = Vec::new();
        let mut unreadable = Vec::new();
        let mut redelivered = false;
        for msg in msgs.iter().filter(|m| self.filter.wants(m)) {
            redelivered |= msg.reconsume_times() > 0;
            let body = msg.get_body().map(|b| b.as_ref()).unwrap_or_default();
            let mut bad = Vec::new();
            for decoded in decode_orders(body) {
                match decoded {
                    Ok(order) => orders.push(order),
                    Err(e) => bad.push(e.to_string()),
                }
            }
            // Lines no writer can ever read: the message is parked for an operator (its
            // readable orders are persisted), so it neither blocks the queue nor disappears.
            if !bad.is_empty() {
                let detail = bad.join("; ");
                tracing::error!(%detail, msg_id = %msg.msg_id(), "undecodable order message: parked");
                unreadable.push(Parked::message(
                    ORDER_TOPIC,
                    msg.msg_id().as_ref(),
                    msg.get_tags().as_deref(),
                    UNDECODABLE,
                    detail,
                    body.to_vec(),
                ));
            }
        }
        if !unreadable.is_empty() {
            if let Err(e) = self.handle.block_on(self.persister.park(&unreadable)) {
                tracing::warn!(error = %e, "could not park undecodable orders; the batch will be redelivered");
                return Ok(ConsumeConcurrentlyStatus::ReconsumeLater);
            }
        }
        if orders.is_empty() {
            return Ok(ConsumeConcurrentlyStatus::ConsumeSuccess);
        }
        // We are on one of the client's blocking threads: block_on is allowed here.
        match self
            .handle
            .block_on(self.coalescer.persist(orders, redelivered))
        {
            Ok(()) => Ok(ConsumeConcurrentlyStatus::ConsumeSuccess),
            Err(e) => {
                tracing::warn!(error = %e, "order batch not persisted; it will be redelivered");
                Ok(ConsumeConcurrentlyStatus::ReconsumeLater)
            }
        }
    }
}

/// One lifecycle step, applied to one decoded message.
type Step<T> = fn(
    Lifecycle,
    T,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), LifecycleError>> + Send>,
>;

/// Runs `step`, trying again after each of `waits` while it meets an order not persisted yet;
/// any other error, or the last one, is returned at once.
pub async fn retry_until_persisted<F, Fut>(
    waits: &[Duration],
    mut step: F,
) -> Result<(), LifecycleError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), LifecycleError>>,
{
    let mut waits = waits.iter();
    loop {
        match step().await {
            Err(LifecycleError::NotYetPersisted(order)) => match waits.next() {
                Some(wait) => {
                    tracing::debug!(
                        order = order.0,
                        ?wait,
                        "order not persisted yet; trying again"
                    );
                    tokio::time::sleep(*wait).await;
                }
                None => return Err(LifecycleError::NotYetPersisted(order)),
            },
            other => return other,
        }
    }
}

/// A consumer of lifecycle messages (`T`): each message is one step, run on a blocking client
/// thread through the captured runtime handle. A step that fails (or meets an order not
/// persisted yet) makes the batch be redelivered; steps are idempotent, so that is safe.
pub struct StepListener<T> {
    pub handle: Handle,
    pub lifecycle: Lifecycle,
    pub filter: ActivityFilter,
    pub stopping: Arc<AtomicBool>,
    /// For logs.
    pub what: &'static str,
    pub step: Step<T>,
    /// Waits between in-process tries while the order is not persisted yet
    /// ([`crate::timing::Timing::not_persisted_retries`]).
    pub retries: Vec<Duration>,
}

impl<T: serde::de::DeserializeOwned + Clone + Send + Sync + 'static> MessageListenerConcurrently
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
                .block_on(retry_until_persisted(&self.retries, || {
                    (self.step)(self.lifecycle.clone(), item.clone())
                }))
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
    lifecycle: Lifecycle,
    request: CancelRequest,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), LifecycleError>> + Send>> {
    Box::pin(async move {
        // Each cancel is idempotent: a retry after a failure part-way repeats none.
        for order_id in request.order_ids {
            let outcome = match request.reason {
                CancelReason::Timeout => lifecycle.expire(order_id).await?,
                CancelReason::User => lifecycle.cancel(order_id).await?,
            };
            tracing::info!(order = order_id.0, reason = ?request.reason, ?outcome, "cancel request handled");
        }
        Ok(())
    })
}

/// `seckill_payment`: payment notifications accepted by the gateway.
pub fn payment_step(
    lifecycle: Lifecycle,
    payment: Payment,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), LifecycleError>> + Send>> {
    Box::pin(async move {
        let status = lifecycle.pay(&payment).await?;
        tracing::info!(order = payment.order_id.0, payment = %payment.payment_id, status = status.as_str(), "payment handled");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const NO_WAIT: [Duration; 3] = [Duration::ZERO; 3];

    #[tokio::test]
    async fn a_step_is_tried_again_while_its_order_is_not_persisted() {
        let tries = Cell::new(0);
        let result = retry_until_persisted(&NO_WAIT, || {
            tries.set(tries.get() + 1);
            let n = tries.get();
            async move {
                if n < 3 {
                    Err(LifecycleError::NotYetPersisted(OrderId(1)))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert!(result.is_ok());
        assert_eq!(tries.get(), 3);
    }

    #[tokio::test]
    async fn it_gives_up_after_the_last_wait_and_never_retries_other_errors() {
        let tries = Cell::new(0);
        let result = retry_until_persisted(&NO_WAIT, || {
            tries.set(tries.get() + 1);
            async { Err(LifecycleError::NotYetPersisted(OrderId(1))) }
        })
        .await;
        assert!(matches!(result, Err(LifecycleError::NotYetPersisted(_))));
        assert_eq!(tries.get(), 1 + NO_WAIT.len());

        tries.set(0);
        let result = retry_until_persisted(&NO_WAIT, || {
            tries.set(tries.get() + 1);
            async { Err(LifecycleError::Mq(MqError::Timeout(Duration::ZERO))) }
        })
        .await;
        assert!(matches!(result, Err(LifecycleError::Mq(_))));
        assert_eq!(tries.get(), 1);
    }
}
