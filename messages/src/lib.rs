//! `seckill-messages`: the message contract between the seckill processes, on RocketMQ.
//!
//! Everything that travels through the broker is defined here and nowhere else: the topics and
//! tags ([`topics`]), the body of each message with its codec ([`order`], [`payment`],
//! [`cancel`], [`event`]), the client runtime every process runs its clients on and the one way
//! to build a producer or a consumer ([`client`]), and [`MqError`]. `docs/ARCHITECTURE.md`
//! ("Messages and topics") shows who sends what to whom.
//!
//! Every message about orders carries their order ids as its keys and their activity id as its
//! tag (lifecycle events carry the event name as the tag), so a writer group can be dedicated to
//! some activities.

pub mod cancel;
pub mod client;
pub mod error;
pub mod event;
pub mod order;
pub mod payment;
pub mod topics;

pub use cancel::{CancelReason, CancelRequest};

/// Orders one message names at most when their ids are its keys (an `ORDER_CREATED` event, a
/// cancel request): the broker refuses a message whose properties pass 32,767 bytes (seen: a
/// merged batch of about 1,960 orders, 39,188 bytes of properties, refused).
pub const MAX_KEYED_ORDERS: usize = 1024;
/// The broker's limit on a message's properties, in bytes.
const MAX_PROPERTIES: usize = i16::MAX as usize;
// The keys of a full message (a u64 id is 20 digits at most, then a separator) leave room for
// the other properties (tags, the transaction's, the unique key).
const _: () = assert!(MAX_KEYED_ORDERS * 21 <= MAX_PROPERTIES - 8 * 1024);

/// Refuses a `what` whose keys would name more than [`MAX_KEYED_ORDERS`] orders.
fn check_keyed(what: &'static str, count: usize) -> Result<(), MqError> {
    if count > MAX_KEYED_ORDERS {
        return Err(MqError::TooLarge {
            what,
            count,
            max: MAX_KEYED_ORDERS,
        });
    }
    Ok(())
}
pub use client::{
    consumer, producer, send_batch, send_one, spread_topics, ConsumerOptions, MqRuntime,
};
pub use error::MqError;
pub use event::{OrderEvent, RefundEvent, StatusEvent};
pub use payment::Payment;
pub use topics::*;

/// The message type of the RocketMQ client, for callers that hand messages to a producer.
pub use rocketmq_model::common::message::message_single::Message;
