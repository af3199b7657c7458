//! `seckill_order_event`: what the writer tells downstream systems about orders.

use seckill_ledger::{OrderId, OrderRecord, OrderStatus};
use serde::{Deserialize, Serialize};

use crate::{event_tag, Message, MqError, ORDER_EVENT_TOPIC};

/// The body of an `ORDER_CREATED` event: the orders of one persisted batch, as persisted. It is
/// sent as a transactional message whose local transaction is the batch's database insert.
#[derive(Debug, Serialize, Deserialize)]
pub struct OrderEvent {
    pub event: String,
    pub orders: Vec<OrderRecord>,
}

impl OrderEvent {
    /// The half message of a batch (keys = its order ids) of at most
    /// [`crate::MAX_KEYED_ORDERS`].
    pub fn message(orders: Vec<OrderRecord>) -> Result<Message, MqError> {
        crate::check_keyed("ORDER_CREATED event", orders.len())?;
        let keys = orders.iter().map(|o| o.order_id.to_string()).collect();
        let body = serde_json::to_vec(&OrderEvent {
            event: crate::ORDER_CREATED.to_owned(),
            orders,
        })?;
        Ok(Message::builder()
            .topic(ORDER_EVENT_TOPIC)
            .tags(crate::ORDER_CREATED)
            .keys(keys)
            .body_slice(&body)
            .build_unchecked())
    }
}

/// A later lifecycle event (`ORDER_PAID`, `ORDER_CANCELLED`, …) of one order.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusEvent {
    pub event: String,
    pub order_id: OrderId,
    pub activity_id: String,
    pub status: OrderStatus,
}

impl StatusEvent {
    /// The event of `order_id` reaching `status` (tag = the event name, key = the order id).
    pub fn message(
        order_id: OrderId,
        activity_id: &str,
        status: OrderStatus,
    ) -> Result<Message, MqError> {
        let tag = event_tag(status);
        let body = serde_json::to_vec(&StatusEvent {
            event: tag.to_owned(),
            order_id,
            activity_id: activity_id.to_owned(),
            status,
        })?;
        Ok(Message::builder()
            .topic(ORDER_EVENT_TOPIC)
            .tags(tag)
            .key(order_id.to_string())
            .body_slice(&body)
            .build_unchecked())
    }
}

/// `PAYMENT_REFUND`: money received for an order that could not take it (paid already by
/// another payment, or refunded): the payment system gives it back. Keys: the order id and the
/// payment id.
#[derive(Debug, Serialize, Deserialize)]
pub struct RefundEvent {
    pub event: String,
    pub order_id: OrderId,
    pub activity_id: String,
    pub payment_id: String,
    pub amount_cents: i64,
    /// The order's status when the payment arrived.
    pub order_status: OrderStatus,
}

impl RefundEvent {
    pub fn message(
        order_id: OrderId,
        activity_id: &str,
        payment_id: &str,
        amount_cents: i64,
        order_status: OrderStatus,
    ) -> Result<Message, MqError> {
        let body = serde_json::to_vec(&RefundEvent {
            event: crate::PAYMENT_REFUND.to_owned(),
            order_id,
            activity_id: activity_id.to_owned(),
            payment_id: payment_id.to_owned(),
            amount_cents,
            order_status,
        })?;
        Ok(Message::builder()
            .topic(ORDER_EVENT_TOPIC)
            .tags(crate::PAYMENT_REFUND)
            .keys(vec![order_id.to_string(), payment_id.to_owned()])
            .body_slice(&body)
            .build_unchecked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: u64) -> OrderRecord {
        OrderRecord {
            order_id: OrderId(id),
            activity_id: "a1".into(),
            user_id: format!("u{id}"),
            quantity: 1,
            amount_cents: 100,
            channel: "web".into(),
            status: OrderStatus::PendingPayment,
            created_at: 0,
            per_user_limit: 1,
        }
    }

    #[test]
    fn a_full_event_is_built_and_a_bigger_one_refused_before_the_broker() {
        let full: Vec<OrderRecord> = (0..crate::MAX_KEYED_ORDERS as u64)
            .map(|i| order(u64::MAX - i))
            .collect();
        assert!(OrderEvent::message(full.clone()).is_ok());
        let mut more = full;
        more.push(order(1));
        assert!(matches!(
            OrderEvent::message(more),
            Err(MqError::TooLarge { count, .. }) if count == crate::MAX_KEYED_ORDERS + 1
        ));
    }
}
