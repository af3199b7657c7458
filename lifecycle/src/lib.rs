//! `seckill-lifecycle`: the order lifecycle after creation — payment, payment timeout,
//! cancellation, refund (the state machine itself is [`OrderStatus::can_become`]).
//!
//! The order writer runs it from its consumers and its sweep; `seckillctl order refund` runs it
//! for an operator.
//!
//! Every transition is one conditional update in PostgreSQL (see [`Store::transition`] and
//! [`Store::record_payment`]), so of two racing transitions exactly one applies. The database
//! decides; the ledger follows: after the commit the stock is confirmed (paid) or released
//! (cancelled, with the sold-out flag cleared on every gateway), the status is mirrored, and an
//! event (`ORDER_PAID`, `ORDER_CANCELLED`, …) goes out on `seckill_order_event`.
//!
//! If anything after the commit fails, the caller retries the whole step: the database answers
//! "already there", and the ledger operations are idempotent, so the retry only completes what is
//! missing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rocketmq_client_rust::DefaultMQProducer;
use seckill_ledger::event::LedgerEvent;
use seckill_ledger::ledger::ReleaseOutcome;
use seckill_ledger::{
    ActivityId, ActivityKeys, Ledger, LedgerError, OrderId, OrderRecord, OrderStatus,
};
use seckill_messages::{
    cancel::cancel_message, CancelReason, CancelRequest, MqError, MqRuntime, Payment, RefundEvent,
    StatusEvent, MAX_KEYED_ORDERS,
};
use seckill_store::{Parked, PaymentOutcome, Store, StoreError, Transition};

/// The broker's deadline for one lifecycle message (timer, event).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(3);

/// How old an unsettled transition or an unannounced refund must be before the sweep completes
/// it (the step that made it is probably still running before that).
pub const SETTLE_GRACE: Duration = Duration::from_secs(5);

/// The `parked.reason` of a payment whose id was recorded for another order.
pub const PAYMENT_ID_REUSED: &str = "payment_id_reused";

/// Why a lifecycle step did not complete. Every step is idempotent: retrying a failed one only
/// completes what is missing.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Mq(#[from] MqError),
    /// The order is not persisted yet (its creation is still on the way): retry later.
    #[error("order {0} is not persisted yet")]
    NotYetPersisted(OrderId),
    /// A row names an activity id the ledger could never have created.
    #[error("order {order} names an invalid activity id {activity:?}")]
    BadActivity { order: OrderId, activity: String },
}

impl LifecycleError {
    /// True when running the step again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            LifecycleError::Store(e) => e.is_retryable(),
            LifecycleError::Ledger(e) => e.is_retryable(),
            LifecycleError::Mq(e) => e.is_retryable(),
            LifecycleError::NotYetPersisted(_) => true,
            LifecycleError::BadActivity { .. } => false,
        }
    }
}

/// What a cancellation came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// This call cancelled the order and gave its stock back.
    Cancelled,
    /// It was cancelled before (by a racing timeout, sweep or owner).
    AlreadyCancelled,
    /// It is paid (or past it): it stays as it is.
    NotCancellable(OrderStatus),
}

#[derive(Clone)]
pub struct Lifecycle {
    store: Store,
    ledger: Ledger,
    producer: Arc<DefaultMQProducer>,
    window: Duration,
}

impl Lifecycle {
    pub async fn start(
        runtime: &MqRuntime,
        namesrv: &str,
        store: Store,
        ledger: Ledger,
        window: Duration,
    ) -> Result<Self, MqError> {
        let producer =
            seckill_messages::producer(runtime, "seckill_order_lifecycle", namesrv, SEND_TIMEOUT)
                .await?;
        Ok(Lifecycle {
            store,
            ledger,
            producer: Arc::new(producer),
            window,
        })
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Schedules the payment timeout of new orders: a message delivered when the window ends.
    /// A failed send is only logged: the sweep catches orders whose timeout never arrives.
    /// Returns how many orders' timeouts the broker took.
    pub async fn schedule_timeouts(&self, orders: &[OrderRecord]) -> usize {
        // One timer message per activity of the batch (per MAX_KEYED_ORDERS of its orders:
        // their ids are the message's keys), not one per order (a broker round trip each): it
        // fires when the last window of its orders ends, so every order gets at least its
        // window (and at most the few seconds over which the batch was won).
        let mut by_activity: HashMap<&str, (Vec<OrderId>, i64)> = HashMap::new();
        for order in orders {
            let (ids, latest) = by_activity.entry(&order.activity_id).or_default();
            ids.push(order.order_id);
            *latest = (*latest).max(order.created_at);
        }
        let mut timers = Vec::new();
        for (activity, (order_ids, latest)) in by_activity {
            for chunk in order_ids.chunks(MAX_KEYED_ORDERS) {
                timers.push((activity, chunk.to_vec(), latest));
            }
        }
        let sends = timers.into_iter().map(|(activity, order_ids, latest)| {
            let deliver_at = latest.max(0) as u64 + self.window.as_millis() as u64;
            let count = order_ids.len();
            let message = cancel_message(
                &CancelRequest {
                    order_ids,
                    reason: CancelReason::Timeout,
                },
                activity,
                Some(deliver_at),
            );
            async move {
                let sent = match message {
                    Ok(message) => seckill_messages::send_one(&self.producer, message).await,
                    Err(e) => Err(e),
                };
                match sent {
                    Ok(_) => count,
                    Err(e) => {
                        tracing::warn!(activity, orders = count, error = %e, "timeouts not scheduled; the sweep will catch them");
                        0
                    }
                }
            }
        });
        futures_util::future::join_all(sends)
            .await
            .into_iter()
            .sum()
    }

    /// pending_payment → cancelled, then the stock goes back.
    pub async fn cancel(&self, order_id: OrderId) -> Result<CancelOutcome, LifecycleError> {
        match self
            .transition(
                order_id,
                &[OrderStatus::PendingPayment],
                OrderStatus::Cancelled,
            )
            .await?
        {
            Transition::Applied { activity_id } => {
                self.settle(order_id, &activity_id, OrderStatus::Cancelled)
                    .await?;
                Ok(CancelOutcome::Cancelled)
            }
            Transition::Refused {
                activity_id,
                current: OrderStatus::Cancelled,
                settled,
            } => {
                // Complete what a failed earlier attempt may have left undone.
                if !settled {
                    self.settle(order_id, &activity_id, OrderStatus::Cancelled)
                        .await?;
                }
                Ok(CancelOutcome::AlreadyCancelled)
            }
            Transition::Refused { current, .. } => Ok(CancelOutcome::NotCancellable(current)),
            Transition::Missing => Err(LifecycleError::NotYetPersisted(order_id)),
        }
    }

    /// The payment window of `order_id` ended: cancel it, unless the gateway accepted a payment
    /// notice for it — then that payment is applied now, whatever happened to its message (in
    /// redelivery while the database was down, say): a payment notified in time wins over the
    /// timeout.
    pub async fn expire(&self, order_id: OrderId) -> Result<CancelOutcome, LifecycleError> {
        if let Some(notice) = self.ledger.payment_notice(order_id).await? {
            let payment = Payment {
                order_id,
                payment_id: notice.payment_id,
                amount_cents: notice.amount_cents,
            };
            let status = self.pay(&payment).await?;
            if status != OrderStatus::PendingPayment {
                tracing::info!(order = %order_id, payment = %payment.payment_id, ?status, "payment window ended: the notified payment applied instead of a cancel");
                return Ok(CancelOutcome::NotCancellable(status));
            }
            // Not applicable (its payment id was recorded for another order: parked): the
            // order is unpaid, so it is cancelled like any other.
        }
        self.cancel(order_id).await
    }

    /// Records a payment and applies it; a repeated notification is a no-op. A payment the
    /// order cannot take (paid already) is kept and its refund announced (`PAYMENT_REFUND`); a
    /// payment id already recorded for another order is parked for an operator.
    pub async fn pay(&self, payment: &Payment) -> Result<OrderStatus, LifecycleError> {
        let record = seckill_store::Payment {
            payment_id: payment.payment_id.clone(),
            order_id: payment.order_id,
            amount_cents: payment.amount_cents,
        };
        let mut outcome = self.store.record_payment(&record).await?;
        if let PaymentOutcome::Unsettled {
            activity_id,
            current,
        } = &outcome
        {
            // A payment never discards the follow-ups of the transition before it (a cancel's
            // release): they first, then the payment.
            self.settle(payment.order_id, activity_id, *current).await?;
            outcome = self.store.record_payment(&record).await?;
        }
        match outcome {
            PaymentOutcome::Unsettled { .. } => {
                Err(LifecycleError::Store(StoreError::Config(format!(
                    "order {} stays unsettled; the payment is retried",
                    payment.order_id
                ))))
            }
            PaymentOutcome::Paid { activity_id } => {
                self.settle(payment.order_id, &activity_id, OrderStatus::Paid)
                    .await?;
                Ok(OrderStatus::Paid)
            }
            PaymentOutcome::Refunding { activity_id } => {
                self.settle(payment.order_id, &activity_id, OrderStatus::Refunding)
                    .await?;
                Ok(OrderStatus::Refunding)
            }
            PaymentOutcome::Duplicate {
                activity_id,
                current,
                settled,
                refund_pending,
            } => {
                // Complete what a failed earlier attempt may have left undone.
                if !settled {
                    self.settle(payment.order_id, &activity_id, current).await?;
                }
                if refund_pending {
                    self.announce_refund(&record, &activity_id, current).await?;
                }
                Ok(current)
            }
            PaymentOutcome::Refused {
                activity_id,
                current,
            } => {
                self.announce_refund(&record, &activity_id, current).await?;
                Ok(current)
            }
            PaymentOutcome::Reused { other_order } => {
                tracing::error!(
                    payment = %payment.payment_id,
                    order = %payment.order_id,
                    %other_order,
                    "a payment id already recorded for another order: parked"
                );
                self.store
                    .park(&[Parked {
                        key: format!("payment:{}:{}", payment.payment_id, payment.order_id),
                        topic: seckill_messages::PAYMENT_TOPIC.to_owned(),
                        order_id: Some(payment.order_id),
                        activity_id: None,
                        reason: PAYMENT_ID_REUSED.to_owned(),
                        detail: format!(
                            "payment {} was recorded for order {other_order} already",
                            payment.payment_id
                        ),
                        body: serde_json::to_vec(&record).unwrap_or_default(),
                    }])
                    .await?;
                let current = self.store.status(payment.order_id).await?;
                Ok(current.map_or(OrderStatus::PendingPayment, |(_, s)| s))
            }
            PaymentOutcome::Missing => Err(LifecycleError::NotYetPersisted(payment.order_id)),
        }
    }

    /// Operator refund: paid or refunding (payment after cancellation) → refunding → refunded.
    pub async fn refund(&self, order_id: OrderId) -> Result<OrderStatus, LifecycleError> {
        let activity_id = match self
            .transition(order_id, &[OrderStatus::Paid], OrderStatus::Refunding)
            .await?
        {
            Transition::Applied { activity_id } => {
                self.settle(order_id, &activity_id, OrderStatus::Refunding)
                    .await?;
                activity_id
            }
            Transition::Refused {
                activity_id,
                current: OrderStatus::Refunding,
                settled,
            } => {
                if !settled {
                    self.settle(order_id, &activity_id, OrderStatus::Refunding)
                        .await?;
                }
                activity_id
            }
            Transition::Refused { current, .. } => return Ok(current),
            Transition::Missing => return Err(LifecycleError::NotYetPersisted(order_id)),
        };
        match self
            .transition(order_id, &[OrderStatus::Refunding], OrderStatus::Refunded)
            .await?
        {
            Transition::Applied { .. }
            | Transition::Refused {
                current: OrderStatus::Refunded,
                settled: false,
                ..
            } => {
                self.settle(order_id, &activity_id, OrderStatus::Refunded)
                    .await?;
                Ok(OrderStatus::Refunded)
            }
            Transition::Refused {
                current: OrderStatus::Refunded,
                ..
            } => Ok(OrderStatus::Refunded),
            Transition::Refused { current, .. } => Ok(current),
            Transition::Missing => Err(LifecycleError::NotYetPersisted(order_id)),
        }
    }

    /// Cancels every order still unpaid a full window after its win, then completes the
    /// follow-ups that failed after earlier commits (a release, a confirm, an event) and the
    /// refund announcements that failed. Returns how many orders it cancelled.
    pub async fn sweep(&self, limit: i64) -> Result<usize, LifecycleError> {
        // One order's failure does not stop the others; the first error is returned at the end.
        let mut cancelled = 0;
        let mut first_error = None;
        for order_id in self.store.overdue(self.window, limit).await? {
            match self.expire(order_id).await {
                Ok(CancelOutcome::Cancelled) => cancelled += 1,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(order = %order_id, error = %e, "sweep: expiry failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        for (order_id, activity_id, status) in self.store.unsettled(SETTLE_GRACE, limit).await? {
            tracing::info!(order = %order_id, ?status, "sweep: completing the follow-ups of an earlier transition");
            if let Err(e) = self.settle(order_id, &activity_id, status).await {
                tracing::warn!(order = %order_id, error = %e, "sweep: follow-ups failed again");
                first_error.get_or_insert(e);
            }
        }
        for refund in self.store.pending_refunds(SETTLE_GRACE, limit).await? {
            let current = self
                .store
                .status(refund.payment.order_id)
                .await?
                .map_or(OrderStatus::Paid, |(_, s)| s);
            if let Err(e) = self
                .announce_refund(&refund.payment, &refund.activity_id, current)
                .await
            {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(cancelled),
        }
    }

    /// `from → to` in the database, never discarding the follow-ups of the transition before:
    /// a row found unsettled in a `from` status is settled first, then tried again.
    async fn transition(
        &self,
        order_id: OrderId,
        from: &[OrderStatus],
        to: OrderStatus,
    ) -> Result<Transition, LifecycleError> {
        let transition = self.store.transition(order_id, from, to).await?;
        if let Transition::Refused {
            activity_id,
            current,
            settled: false,
        } = &transition
        {
            if from.contains(current) {
                self.settle(order_id, activity_id, *current).await?;
                return Ok(self.store.transition(order_id, from, to).await?);
            }
        }
        Ok(transition)
    }

    /// The follow-ups of `order_id` having reached `status`, each idempotent: the ledger's
    /// confirm (paid), release (cancelled) or status mirror, then the lifecycle event; then the
    /// row is marked settled. Any failure leaves it unsettled for a retry (the redelivered
    /// step, or the sweep).
    async fn settle(
        &self,
        order_id: OrderId,
        activity_id: &str,
        status: OrderStatus,
    ) -> Result<(), LifecycleError> {
        match status {
            OrderStatus::Paid => self.confirm(activity_id, order_id).await?,
            OrderStatus::Cancelled => self.release(activity_id, order_id).await?,
            OrderStatus::Refunding | OrderStatus::Refunded => {
                self.mirror(activity_id, order_id, status).await?
            }
            // Creation's follow-ups (mirror, timer) belong to the writer's batch.
            OrderStatus::Queued | OrderStatus::PendingPayment => return Ok(()),
        }
        self.publish_event(order_id, activity_id, status).await?;
        self.store.mark_settled(order_id, status).await?;
        Ok(())
    }

    /// Announces that a refused payment's money goes back, then records the announcement.
    async fn announce_refund(
        &self,
        payment: &seckill_store::Payment,
        activity_id: &str,
        current: OrderStatus,
    ) -> Result<(), LifecycleError> {
        let message = RefundEvent::message(
            payment.order_id,
            activity_id,
            &payment.payment_id,
            payment.amount_cents,
            current,
        )?;
        self.send(message).await?;
        tracing::warn!(
            payment = %payment.payment_id,
            order = %payment.order_id,
            ?current,
            "a payment the order could not take: refund announced"
        );
        self.store
            .mark_refund_announced(&payment.payment_id)
            .await?;
        Ok(())
    }

    fn keys(activity_id: &str, order: OrderId) -> Result<ActivityKeys, LifecycleError> {
        let id = ActivityId::parse(activity_id).map_err(|_| LifecycleError::BadActivity {
            order,
            activity: activity_id.to_owned(),
        })?;
        Ok(ActivityKeys::new(&id))
    }

    async fn release(&self, activity_id: &str, order_id: OrderId) -> Result<(), LifecycleError> {
        let keys = Self::keys(activity_id, order_id)?;
        if let ReleaseOutcome::Released { .. } = self
            .ledger
            .release(&keys, order_id, OrderStatus::Cancelled)
            .await?
        {
            // Stock came back: every gateway clears its sold-out flag.
            self.ledger
                .publish(&LedgerEvent::StockBack(keys.id.clone()))
                .await?;
        }
        Ok(())
    }

    async fn confirm(&self, activity_id: &str, order_id: OrderId) -> Result<(), LifecycleError> {
        let keys = Self::keys(activity_id, order_id)?;
        self.ledger.confirm(&keys, order_id).await?;
        Ok(())
    }

    async fn mirror(
        &self,
        activity_id: &str,
        order_id: OrderId,
        to: OrderStatus,
    ) -> Result<(), LifecycleError> {
        let keys = Self::keys(activity_id, order_id)?;
        self.ledger
            .set_status(&keys, order_id, to, &OrderStatus::sources(to))
            .await?;
        Ok(())
    }

    /// The lifecycle event of a transition. A failed send fails the step (the row stays
    /// unsettled, so a retry sends it); a retry may send an event twice — consumers dedupe by
    /// order id and event, as at-least-once delivery asks.
    async fn publish_event(
        &self,
        order_id: OrderId,
        activity_id: &str,
        status: OrderStatus,
    ) -> Result<(), LifecycleError> {
        self.send(StatusEvent::message(order_id, activity_id, status)?)
            .await
    }

    /// One message; Ok only when the broker stored it.
    async fn send(&self, message: seckill_messages::Message) -> Result<(), LifecycleError> {
        Ok(seckill_messages::send_one(&self.producer, message).await?)
    }

    pub async fn shutdown(&self) {
        let mut producer = DefaultMQProducer::clone(&self.producer);
        producer.shutdown().await;
    }
}
