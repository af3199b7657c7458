//! Payments: recording one (and moving its order in the same transaction), listing an order's.

use seckill_ledger::{OrderId, OrderStatus};

use crate::{Store, StoreError};

/// A payment as the `payments` table records it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Payment {
    pub payment_id: String,
    pub order_id: OrderId,
    pub amount_cents: i64,
}

/// What recording a payment came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// pending_payment → paid.
    Paid {
        activity_id: String,
    },
    /// The order had been cancelled: cancelled → refunding (the money goes back).
    Refunding {
        activity_id: String,
    },
    /// This payment id was recorded before for this order: nothing changed. `settled`: the
    /// order's follow-ups are done; `refund_pending`: the payment was refused and its refund
    /// not announced yet.
    Duplicate {
        activity_id: String,
        current: OrderStatus,
        settled: bool,
        refund_pending: bool,
    },
    /// The order is in a status that takes no payment (already paid by another payment, say):
    /// the payment is recorded as not applied, its money to go back (`PAYMENT_REFUND`).
    Refused {
        activity_id: String,
        current: OrderStatus,
    },
    /// The order's last transition still has follow-ups to do (a release, a confirm): nothing
    /// recorded; settle `current` first, then record the payment.
    Unsettled {
        activity_id: String,
        current: OrderStatus,
    },
    /// This payment id was recorded before for ANOTHER order: nothing recorded (the payment
    /// provider reused an id, or the notification is forged with a valid signature).
    Reused {
        other_order: OrderId,
    },
    Missing,
}

/// A refused payment whose refund is not announced yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRefund {
    pub payment: Payment,
    pub activity_id: String,
}

impl Store {
    /// Records a payment and moves its order, in ONE database transaction: pending_payment →
    /// paid, or cancelled → refunding when the payment arrives after the cancellation. A payment
    /// id seen before changes nothing.
    pub async fn record_payment(&self, payment: &Payment) -> Result<PaymentOutcome, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let id = payment.order_id.0 as i64;
        // Lock the order row: a concurrent timeout waits for us (or we for it).
        let Some(row) = tx
            .query_opt(
                "SELECT activity_id, status, settled FROM orders WHERE order_id = $1 FOR UPDATE",
                &[&id],
            )
            .await?
        else {
            return Ok(PaymentOutcome::Missing);
        };
        let activity_id: String = row.get(0);
        let status: String = row.get(1);
        let settled: bool = row.get(2);
        let current = OrderStatus::parse(&status).unwrap_or(OrderStatus::Queued);
        if !settled {
            tx.commit().await?;
            return Ok(PaymentOutcome::Unsettled {
                activity_id,
                current,
            });
        }
        let to = match current {
            OrderStatus::PendingPayment => Some(OrderStatus::Paid),
            OrderStatus::Cancelled => Some(OrderStatus::Refunding),
            // Keep the record of the money received; the order itself does not move.
            _ => None,
        };
        let inserted = tx
            .execute(
                "INSERT INTO payments (payment_id, order_id, amount_cents, applied, refund_announced)
                 VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (payment_id) DO NOTHING",
                &[
                    &payment.payment_id,
                    &id,
                    &payment.amount_cents,
                    &to.is_some(),
                ],
            )
            .await?;
        if inserted == 0 {
            let earlier = tx
                .query_one(
                    "SELECT order_id, applied, refund_announced FROM payments WHERE payment_id = $1",
                    &[&payment.payment_id],
                )
                .await?;
            tx.commit().await?;
            let other: i64 = earlier.get(0);
            if other != id {
                return Ok(PaymentOutcome::Reused {
                    other_order: OrderId(other as u64),
                });
            }
            let (applied, announced): (bool, bool) = (earlier.get(1), earlier.get(2));
            return Ok(PaymentOutcome::Duplicate {
                activity_id,
                current,
                settled,
                refund_pending: !applied && !announced,
            });
        }
        let Some(to) = to else {
            tx.commit().await?;
            return Ok(PaymentOutcome::Refused {
                activity_id,
                current,
            });
        };
        tx.execute(
            "UPDATE orders SET status = $2, updated_at = now(), settled = false WHERE order_id = $1",
            &[&id, &to.as_str()],
        )
        .await?;
        tx.commit().await?;
        Ok(match to {
            OrderStatus::Paid => PaymentOutcome::Paid { activity_id },
            _ => PaymentOutcome::Refunding { activity_id },
        })
    }

    /// Records that a refused payment's refund was announced.
    pub async fn mark_refund_announced(&self, payment_id: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE payments SET refund_announced = true WHERE payment_id = $1",
                &[&payment_id],
            )
            .await?;
        Ok(())
    }

    /// Refused payments older than `grace` whose refund is not announced (oldest first).
    pub async fn pending_refunds(
        &self,
        grace: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<PendingRefund>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT p.payment_id, p.order_id, p.amount_cents, o.activity_id
                 FROM payments p JOIN orders o ON o.order_id = p.order_id
                 WHERE NOT p.refund_announced
                   AND p.received_at < now() - make_interval(secs => $1)
                 ORDER BY p.received_at LIMIT $2",
                &[&grace.as_secs_f64(), &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| PendingRefund {
                payment: Payment {
                    payment_id: row.get(0),
                    order_id: OrderId(row.get::<_, i64>(1) as u64),
                    amount_cents: row.get(2),
                },
                activity_id: row.get(3),
            })
            .collect())
    }

    /// Payments recorded for an order.
    pub async fn payments(&self, order_id: OrderId) -> Result<Vec<Payment>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT payment_id, amount_cents FROM payments WHERE order_id = $1 ORDER BY received_at",
                &[&(order_id.0 as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| Payment {
                payment_id: row.get(0),
                order_id,
                amount_cents: row.get(1),
            })
            .collect())
    }
}
