//! `seckill_order`: one winning order, gateway → writer.
//!
//! The body is the ledger's order record as JSON — the very text the ledger stores — so a
//! consumer needs nothing but the message to persist the order. Key = order id, tag = activity
//! id.

use seckill_ledger::{OrderRecord, OrderText};

use crate::{Message, ORDER_TOPIC};

/// The `seckill_order` message of one order.
pub fn order_message(order: &OrderText) -> Message {
    Message::builder()
        .topic(ORDER_TOPIC)
        .tags(order.activity_id.as_str())
        .key(order.order_id.to_string())
        .body_slice(order.json.as_bytes())
        .build_unchecked()
}

/// Decodes a `seckill_order` message body.
pub fn decode_order(body: &[u8]) -> Result<OrderRecord, serde_json::Error> {
    serde_json::from_slice(body)
}
