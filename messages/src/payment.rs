//! `seckill_payment`: a payment notification the gateway accepted, gateway → writer.

use seckill_ledger::OrderId;
use serde::{Deserialize, Serialize};

use crate::{Message, MqError, PAYMENT_TOPIC};

/// A `seckill_payment` message: a payment notification the gateway accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub payment_id: String,
    pub order_id: OrderId,
    pub amount_cents: i64,
}

/// The `seckill_payment` message of a payment (key = order id, tag = its activity).
pub fn payment_message(payment: &Payment, activity: &str) -> Result<Message, MqError> {
    Ok(Message::builder()
        .topic(PAYMENT_TOPIC)
        .tags(activity)
        .key(payment.order_id.to_string())
        .body_slice(&serde_json::to_vec(payment)?)
        .build_unchecked())
}
