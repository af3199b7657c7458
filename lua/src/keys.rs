//! The Redis key layout and the validated ids that go into keys.
//!
//! Every key of one activity carries the hash tag `{<activity>}` so each script touches a single
//! slot and runs unchanged on Redis Cluster. Ids are restricted to `[A-Za-z0-9_-]{1,64}`: no
//! braces (which would break the hash tag), no dots (which separate token fields), no spaces.

use std::fmt;

/// Global set of every activity id ever created (for `seckillctl activity list`).
pub const ACTIVITIES: &str = "sk:activities";
/// Pub/sub channel on which ledger events travel between processes.
pub const EVENTS_CHANNEL: &str = "sk:events";

/// Start of every order-id index key (`sk:order:<order id>`).
pub const ORDER_INDEX_PREFIX: &str = "sk:order:";

/// Key of the order-id → activity index, so `GET /v1/orders/{id}` finds the activity.
pub fn order_index(order_id: u64) -> String {
    format!("{ORDER_INDEX_PREFIX}{order_id}")
}

/// Key of id-generator worker lease `n`.
pub fn worker_lease(n: u16) -> String {
    format!("sk:idgen:worker:{n}")
}

/// Lease naming the activities writer group `group` handles (`*` = all), held while any writer
/// of the group runs: writers of one group never split the topic differently.
pub fn writer_group(group: &str) -> String {
    format!("sk:writer_group:{group}")
}

/// A text that can never be an id (of an activity, a user or an order), and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {text:?}: {expected}")]
pub struct InvalidId {
    /// "activity id", "user id", "order id".
    pub what: &'static str,
    pub text: String,
    pub expected: &'static str,
}

fn valid_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses an id, refusing anything outside `[A-Za-z0-9_-]{1,64}`.
            pub fn parse(text: &str) -> Result<Self, InvalidId> {
                if valid_id(text) {
                    Ok(Self(text.to_owned()))
                } else {
                    Err(InvalidId {
                        what: $what,
                        text: text.to_owned(),
                        expected: "use 1 to 64 characters of A-Z a-z 0-9 _ -",
                    })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                Self::parse(s)
            }
        }
    };
}

id_type!(
    /// An activity id, safe to embed in keys.
    ActivityId,
    "activity id"
);
id_type!(
    /// A user id, safe to embed in tokens and keys.
    UserId,
    "user id"
);

/// All keys of one activity, built once and reused (the hot path formats nothing).
#[derive(Clone, Debug)]
pub struct ActivityKeys {
    pub id: ActivityId,
    /// hash: name, price_cents, stock_total, per_user_limit, starts_at, ends_at (unix ms), closed
    pub meta: String,
    /// available units
    pub stock: String,
    /// units won and not yet paid
    pub reserved: String,
    /// units paid
    pub sold: String,
    /// hash user → units held
    pub buyers: String,
    /// hash user → latest order id (answers a repeat attempt)
    pub user_order: String,
    /// hash order id → order record (JSON)
    pub orders: String,
    /// zset order id → created_at ms: orders not yet confirmed published
    pub outbox: String,
    /// set of order ids whose stock went back
    pub released: String,
    /// hash order id → the first payment notice the gateway accepted (JSON), so a payment
    /// notified in time wins over the payment timeout whatever the database did meanwhile
    pub payments: String,
}

impl ActivityKeys {
    pub fn new(id: &ActivityId) -> Self {
        let key = |suffix: &str| format!("sk:{{{id}}}:{suffix}");
        ActivityKeys {
            meta: key("meta"),
            stock: key("stock"),
            reserved: key("reserved"),
            sold: key("sold"),
            buyers: key("buyers"),
            user_order: key("user_order"),
            orders: key("orders"),
            outbox: key("outbox"),
            released: key("released"),
            payments: key("payments"),
            id: id.clone(),
        }
    }

    /// The KEYS of `deduct.lua`, in its order, but the last: the order-id index key of the
    /// attempt's order id ([`order_index`]).
    pub fn deduct_keys(&self) -> [&str; 7] {
        [
            &self.meta,
            &self.stock,
            &self.reserved,
            &self.buyers,
            &self.user_order,
            &self.orders,
            &self.outbox,
        ]
    }

    /// Every key of the activity (for deleting a test activity).
    pub fn all(&self) -> [&str; 10] {
        [
            &self.meta,
            &self.stock,
            &self.reserved,
            &self.sold,
            &self.buyers,
            &self.user_order,
            &self.orders,
            &self.outbox,
            &self.released,
            &self.payments,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = ActivityKeys::new(&ActivityId::parse("iphone-17").unwrap());
        for key in keys.all() {
            assert!(key.starts_with("sk:{iphone-17}:"), "{key}");
        }
    }

    #[test]
    fn ids_reject_what_would_break_keys_or_tokens() {
        for bad in ["", "a{b", "a}b", "a.b", "a b", "ä", &"x".repeat(65)] {
            assert!(ActivityId::parse(bad).is_err(), "{bad:?}");
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(UserId::parse("user_42-x").is_ok());
    }
}
