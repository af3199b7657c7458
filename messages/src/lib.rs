//! `seckill-messages`: the message contract between the seckill processes, on RocketMQ.
//!
//! Everything that travels through the broker is defined here and nowhere else: the topics and
//! tags ([`topics`]), the body of each message with its codec ([`order`], [`payment`],
//! [`cancel`], [`event`]), the client runtime every process runs its clients on and the one way
//! to build a producer or a consumer ([`client`]), and [`MqError`]. `docs/ARCHITECTURE.md`
//! ("Messages and topics") shows who sends what to whom.
//!
//! Every message about an order carries the order id as its key and its activity id as its tag
//! (lifecycle events carry the event name as the tag), so a writer group can be dedicated to
//! some activities.

pub mod cancel;
pub mod client;
pub mod error;
pub mod event;
pub mod order;
pub mod payment;
pub mod topics;

pub use cancel::{CancelReason, CancelRequest};
pub use client::{
    consumer, producer, send_batch, send_one, spread_topics, ConsumerOptions, MqRuntime,
};
pub use error::MqError;
pub use event::{OrderEvent, RefundEvent, StatusEvent};
pub use payment::Payment;
pub use topics::*;

/// The message type of the RocketMQ client, for callers that hand messages to a producer.
pub use rocketmq_model::common::message::message_single::Message;
