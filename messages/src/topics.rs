//! Topic names, tags and sizes: the names operators and downstream consumers rely on.

use seckill_ledger::OrderStatus;

/// Gateway → writer: the winning orders, packed per activity ([`crate::order`]).
pub const ORDER_TOPIC: &str = "seckill_order";
/// Writer → downstream: lifecycle events (`ORDER_CREATED`, …); `ORDER_CREATED` is sent as a
/// transactional message bound to the database insert.
pub const ORDER_EVENT_TOPIC: &str = "seckill_order_event";
/// Writer → writer: cancel requests, delayed until the payment window ends (or immediate, when
/// the owner cancels).
pub const ORDER_TIMEOUT_TOPIC: &str = "seckill_order_timeout";
/// Gateway → writer: payment notifications.
pub const PAYMENT_TOPIC: &str = "seckill_payment";
/// Every topic the project sends to.
pub const ALL_TOPICS: &[&str] = &[
    ORDER_TOPIC,
    ORDER_EVENT_TOPIC,
    ORDER_TIMEOUT_TOPIC,
    PAYMENT_TOPIC,
];
/// Name server of the local stack.
pub const DEFAULT_NAMESRV: &str = "127.0.0.1:9876";
/// The most orders put in one batch send (one message per activity among them).
pub const MAX_BATCH: usize = 64;

/// Tag of the `seckill_order_event` message that reports persisted orders.
pub const ORDER_CREATED: &str = "ORDER_CREATED";
/// Tag of the `seckill_order_event` message asking for a refused payment's money to go back.
pub const PAYMENT_REFUND: &str = "PAYMENT_REFUND";

/// The `seckill_order_event` tag announcing that an order reached `status`.
pub fn event_tag(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Queued => "ORDER_QUEUED",
        OrderStatus::PendingPayment => ORDER_CREATED,
        OrderStatus::Paid => "ORDER_PAID",
        OrderStatus::Cancelled => "ORDER_CANCELLED",
        OrderStatus::Refunding => "ORDER_REFUNDING",
        OrderStatus::Refunded => "ORDER_REFUNDED",
    }
}
