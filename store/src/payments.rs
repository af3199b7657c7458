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
    /// This payment id was recorded before: nothing changed.
    Duplicate {
        activity_id: String,
        current: OrderStatus,
    },
    /// The order is in a status that takes no payment (e.g. already paid by another payment).
    Refused {
        activity_id: String,
        current: OrderStatus,
    },
    Missing,
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
                "SELECT activity_id, status FROM orders WHERE order_id = $1 FOR UPDATE",
                &[&id],
            )
            .await?
        else {
            return Ok(PaymentOutcome::Missing);
        };
        let activity_id: String = row.get(0);
        let status: String = row.get(1);
        let current = OrderStatus::parse(&status).unwrap_or(OrderStatus::Queued);
        let inserted = tx
            .execute(
                "INSERT INTO payments (payment_id, order_id, amount_cents) VALUES ($1, $2, $3)
                 ON CONFLICT (payment_id) DO NOTHING",
                &[&payment.payment_id, &id, &payment.amount_cents],
            )
            .await?;
        if inserted == 0 {
            tx.commit().await?;
            return Ok(PaymentOutcome::Duplicate {
                activity_id,
                current,
            });
        }
        let to = match current {
            OrderStatus::PendingPayment => OrderStatus::Paid,
            OrderStatus::Cancelled => OrderStatus::Refunding,
            _ => {
                // Keep the record of the money received; the order itself does not move.
                tx.commit().await?;
                return Ok(PaymentOutcome::Refused {
                    activity_id,
                    current,
                });
            }
        };
        tx.execute(
            "UPDATE orders SET status = $2, updated_at = now() WHERE order_id = $1",
            &[&id, &to.as_str()],
        )
        .await?;
        tx.commit().await?;
        Ok(match to {
            OrderStatus::Paid => PaymentOutcome::Paid { activity_id },
            _ => PaymentOutcome::Refunding { activity_id },
        })
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
