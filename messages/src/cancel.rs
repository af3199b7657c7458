//! `seckill_order_timeout`: cancel requests — a payment window that ended (delivered late, at the
//! window's end) or an owner's cancellation (delivered at once); writer and gateway → writer.

use seckill_ledger::OrderId;
use serde::{Deserialize, Serialize};

use crate::{Message, MqError, ORDER_TIMEOUT_TOPIC};

/// Why an order is being cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The payment window passed (delay message or sweep).
    Timeout,
    /// The owner cancelled it (`DELETE /v1/orders/{id}`).
    User,
}

/// A `seckill_order_timeout` message: cancel these orders if they are still unpaid — one order
/// for an owner's cancel, a persisted batch (of one activity) whose payment windows have all
/// ended for a timeout. Reads the older one-order form (`"order_id"`) too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    #[serde(alias = "order_id", deserialize_with = "one_or_many")]
    pub order_ids: Vec<OrderId>,
    pub reason: CancelReason,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<OrderId>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(OrderId),
        Many(Vec<OrderId>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(id) => vec![id],
        OneOrMany::Many(ids) => ids,
    })
}

/// The `seckill_order_timeout` message of a cancel request (tag = its activity, keys = its order
/// ids, at most [`crate::MAX_KEYED_ORDERS`]), delivered at `deliver_at_ms` (a payment window's end)
/// or at once.
pub fn cancel_message(
    request: &CancelRequest,
    activity: &str,
    deliver_at_ms: Option<u64>,
) -> Result<Message, MqError> {
    crate::check_keyed("cancel request", request.order_ids.len())?;
    let builder = Message::builder()
        .topic(ORDER_TIMEOUT_TOPIC)
        .tags(activity)
        .key(
            request
                .order_ids
                .iter()
                .map(|id| id.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        )
        .body_slice(&serde_json::to_vec(request)?);
    Ok(match deliver_at_ms {
        Some(at) => builder.deliver_time_ms(at).build_unchecked(),
        None => builder.build_unchecked(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_requests_carry_many_orders_and_read_the_one_order_form() {
        let batch = CancelRequest {
            order_ids: vec![OrderId(7), OrderId(9)],
            reason: CancelReason::Timeout,
        };
        let text = serde_json::to_string(&batch).unwrap();
        assert_eq!(text, r#"{"order_ids":["7","9"],"reason":"timeout"}"#);
        assert_eq!(serde_json::from_str::<CancelRequest>(&text).unwrap(), batch);
        let old: CancelRequest =
            serde_json::from_str(r#"{"order_id":"42","reason":"user"}"#).unwrap();
        assert_eq!(old.order_ids, vec![OrderId(42)]);
        assert_eq!(old.reason, CancelReason::User);
    }
}
