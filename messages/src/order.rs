//! `seckill_order`: winning orders of one activity, gateway → writer.
//!
//! The body is the ledger's order records as JSON — the very text the ledger stores — one per
//! line, so a consumer needs nothing but the message to persist them. Keys = the order ids
//! (each is indexed by the broker, so an operator finds the message by any of them), tag = the
//! activity id. A message of one order is that order's record alone, as every message was
//! before orders were packed, so both read the same.
//!
//! Why packed: the broker's work is per message (its commit-log entry, its consume-queue
//! entry, its share of a pull), and so is the client's encoding on both sides. One message per
//! order cost the broker about as much CPU per win as Redis; `docs/ARCHITECTURE.md`,
//! "Messages and topics", has the figures.

use seckill_ledger::{OrderRecord, OrderText};

use crate::{Message, MAX_KEYED_ORDERS, ORDER_TOPIC};

/// Orders one `seckill_order` message carries at most: its keys name them all. The senders'
/// own batches are smaller (the gateway's and `seckillctl reconcile`'s are of at most 64
/// orders), so this only bounds what a caller could pass at once.
pub const MAX_PACKED_ORDERS: usize = MAX_KEYED_ORDERS;

/// The `seckill_order` messages of `orders`: one per activity (in the order activities first
/// appear), each of at most [`MAX_PACKED_ORDERS`] orders, orders in their given order.
pub fn order_messages<'a>(orders: impl IntoIterator<Item = &'a OrderText>) -> Vec<Message> {
    let mut activities: Vec<(&str, Vec<&OrderText>)> = Vec::new();
    for order in orders {
        let activity = order.activity_id.as_str();
        match activities.iter_mut().rev().find(|(a, _)| *a == activity) {
            Some((_, group)) => group.push(order),
            None => activities.push((activity, vec![order])),
        }
    }
    activities
        .iter()
        .flat_map(|(activity, group)| {
            group
                .chunks(MAX_PACKED_ORDERS)
                .map(|chunk| packed(activity, chunk))
        })
        .collect()
}

/// One message of `orders`, all of `activity`.
fn packed(activity: &str, orders: &[&OrderText]) -> Message {
    let mut body = Vec::with_capacity(orders.iter().map(|o| o.json.len() + 1).sum());
    for (i, order) in orders.iter().enumerate() {
        if i > 0 {
            body.push(b'\n');
        }
        // The records the stack writes hold no newline (`deduct.lua` formats them from
        // validated ids and a cjson-escaped channel; serde_json writes compact JSON), but a
        // record is text from Redis, and one that held a newline would split into lines no
        // writer can read. JSON allows a raw newline only as whitespace between tokens (never
        // inside a string), so a space in its place means the same record.
        if order.json.contains('\n') {
            body.extend(
                order
                    .json
                    .bytes()
                    .map(|b| if b == b'\n' { b' ' } else { b }),
            );
        } else {
            body.extend_from_slice(order.json.as_bytes());
        }
    }
    Message::builder()
        .topic(ORDER_TOPIC)
        .tags(activity)
        .keys(orders.iter().map(|o| o.order_id.to_string()).collect())
        .body(body)
        .build_unchecked()
}

/// A line of a `seckill_order` body that is not an order record.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {error}")]
pub struct UndecodableLine {
    /// 1-based.
    pub line: usize,
    /// Not a `source`: the message above already says it, and a cause chain would say it twice.
    pub error: serde_json::Error,
}

/// Decodes a `seckill_order` body: each line's record or why it is not one. An empty body is
/// one undecodable line, so no message is ever taken for zero orders.
pub fn decode_orders(body: &[u8]) -> Vec<Result<OrderRecord, UndecodableLine>> {
    body.split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_slice(line).map_err(|error| UndecodableLine { line: i + 1, error })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocketmq_model::common::message::MessageTrait;
    use seckill_ledger::{OrderId, OrderStatus};

    fn record(id: u64, activity: &str) -> OrderRecord {
        OrderRecord {
            order_id: OrderId(id),
            activity_id: activity.to_string(),
            user_id: format!("u{id}"),
            quantity: 1,
            amount_cents: 100,
            channel: "web".to_string(),
            status: OrderStatus::Queued,
            created_at: 1_700_000_000_000,
            per_user_limit: 1,
        }
    }

    fn text(id: u64, activity: &str) -> OrderText {
        OrderText::from_record(&record(id, activity)).expect("encodes")
    }

    fn body(message: &Message) -> &[u8] {
        message.get_body().map(|b| b.as_ref()).unwrap_or_default()
    }

    #[test]
    fn orders_are_packed_per_activity_and_read_back_in_order() {
        let orders = [text(1, "a"), text(2, "b"), text(3, "a"), text(4, "a")];
        let messages = order_messages(&orders);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].get_tags().as_deref(), Some("a"));
        assert_eq!(messages[0].get_keys().as_deref(), Some("1 3 4"));
        assert_eq!(messages[1].get_tags().as_deref(), Some("b"));
        let ids: Vec<OrderId> = decode_orders(body(&messages[0]))
            .into_iter()
            .map(|o| o.expect("decodes").order_id)
            .collect();
        assert_eq!(ids, [OrderId(1), OrderId(3), OrderId(4)]);
    }

    #[test]
    fn a_message_of_one_order_is_its_record_alone() {
        let order = text(7, "a");
        let messages = order_messages([&order]);
        assert_eq!(body(&messages[0]), order.json.as_bytes());
        assert_eq!(messages[0].get_keys().as_deref(), Some("7"));
    }

    #[test]
    fn no_message_names_more_orders_than_its_keys_can_hold() {
        let orders: Vec<OrderText> = (1..=MAX_PACKED_ORDERS as u64 + 1)
            .map(|id| text(id, "a"))
            .collect();
        let messages = order_messages(&orders);
        let sizes: Vec<usize> = messages
            .iter()
            .map(|m| decode_orders(body(m)).len())
            .collect();
        assert_eq!(sizes, [MAX_PACKED_ORDERS, 1]);
    }

    #[test]
    fn a_record_with_a_newline_still_travels_as_one_line() {
        // Pretty-printed JSON: newlines between its tokens, as a hand-repaired record might be.
        let pretty = OrderText {
            json: serde_json::to_string_pretty(&record(1, "a")).expect("encodes"),
            ..text(1, "a")
        };
        assert!(pretty.json.contains('\n'));
        let messages = order_messages([&pretty, &text(2, "a")]);
        let decoded: Vec<OrderRecord> = decode_orders(body(&messages[0]))
            .into_iter()
            .map(|o| o.expect("decodes"))
            .collect();
        assert_eq!(decoded, [record(1, "a"), record(2, "a")]);
    }

    #[test]
    fn each_bad_line_is_told_apart_from_the_good_ones() {
        let good = text(1, "a");
        let decoded = decode_orders(format!("{}\nnot json", good.json).as_bytes());
        assert_eq!(decoded[0].as_ref().expect("decodes").order_id, OrderId(1));
        assert_eq!(decoded[1].as_ref().expect_err("refused").line, 2);
        assert!(decode_orders(b"")[0].is_err());
    }
}
