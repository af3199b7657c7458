//! The order record: what the ledger stores per won order and what travels to the writer.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::keys::InvalidId;

/// A 64-bit order id. Always a string in JSON: it does not fit a JavaScript number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(pub u64);

impl OrderId {
    pub fn parse(text: &str) -> Result<Self, InvalidId> {
        match text.parse::<u64>() {
            Ok(n) if n > 0 && !text.starts_with('+') && !text.starts_with('0') => Ok(OrderId(n)),
            _ => Err(InvalidId {
                what: "order id",
                text: text.to_owned(),
                expected: "expected a positive decimal number",
            }),
        }
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for OrderId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OrderId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        OrderId::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Where an order is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Queued,
    PendingPayment,
    Paid,
    Cancelled,
    Refunding,
    Refunded,
}

impl OrderStatus {
    /// Every status.
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Queued,
        OrderStatus::PendingPayment,
        OrderStatus::Paid,
        OrderStatus::Cancelled,
        OrderStatus::Refunding,
        OrderStatus::Refunded,
    ];

    /// The order lifecycle: the only transitions that ever happen.
    ///
    /// ```text
    /// queued ─▶ pending_payment ─▶ paid ─▶ refunding ─▶ refunded
    ///                  │                       ▲
    ///                  └─▶ cancelled ──────────┘  (payment arriving after cancellation)
    /// ```
    pub fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Queued, PendingPayment)
                | (PendingPayment, Paid)
                | (PendingPayment, Cancelled)
                | (Cancelled, Refunding)
                | (Paid, Refunding)
                | (Refunding, Refunded)
        )
    }

    /// The statuses from which `to` can be reached in one step.
    pub fn sources(to: OrderStatus) -> Vec<OrderStatus> {
        OrderStatus::ALL
            .into_iter()
            .filter(|from| from.can_become(to))
            .collect()
    }

    pub fn parse(text: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Queued => "queued",
            OrderStatus::PendingPayment => "pending_payment",
            OrderStatus::Paid => "paid",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Refunding => "refunding",
            OrderStatus::Refunded => "refunded",
        }
    }
}

/// A won order as the ledger stores it: the JSON text `deduct.lua` wrote, which is also the
/// `seckill_order` message body. The gateway passes it on as is — a record is encoded once, by
/// the script — and only the writer decodes it ([`OrderText::decode`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderText {
    pub order_id: OrderId,
    pub activity_id: String,
    /// The record, `{"order_id":"<order_id>",…}`.
    pub json: String,
}

impl OrderText {
    /// The text of a record built in Rust (the operators' reconcile; the relay's decoded claims).
    pub fn from_record(record: &OrderRecord) -> Result<Self, serde_json::Error> {
        Ok(OrderText {
            order_id: record.order_id,
            activity_id: record.activity_id.clone(),
            json: serde_json::to_string(record)?,
        })
    }

    pub fn decode(&self) -> Result<OrderRecord, serde_json::Error> {
        serde_json::from_str(&self.json)
    }
}

/// One won order, as recorded by `deduct.lua` in `sk:{A}:orders`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub order_id: OrderId,
    pub activity_id: String,
    pub user_id: String,
    pub quantity: u32,
    pub amount_cents: i64,
    pub channel: String,
    pub status: OrderStatus,
    /// Unix milliseconds, from the Redis clock at the moment of the win.
    pub created_at: i64,
    /// The activity's per-user limit at the moment of the win.
    #[serde(default)]
    pub per_user_limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_transitions_exist() {
        use OrderStatus::*;
        let allowed = [
            (Queued, PendingPayment),
            (PendingPayment, Paid),
            (PendingPayment, Cancelled),
            (Cancelled, Refunding),
            (Paid, Refunding),
            (Refunding, Refunded),
        ];
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
        assert_eq!(OrderStatus::sources(Refunding), vec![Paid, Cancelled]);
        assert_eq!(OrderStatus::parse("pending_payment"), Some(PendingPayment));
        assert_eq!(OrderStatus::parse("lost"), None);
    }

    #[test]
    fn order_id_is_a_json_string() {
        let id = OrderId(u64::MAX - 1);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"18446744073709551614\"");
        assert_eq!(serde_json::from_str::<OrderId>(&json).unwrap(), id);
        assert!(
            serde_json::from_str::<OrderId>("12").is_err(),
            "numbers are refused"
        );
    }

    #[test]
    fn order_id_parse_refuses_odd_spellings() {
        for bad in ["", "0", "007", "+7", "-7", "7x", "99999999999999999999"] {
            assert!(OrderId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn record_decodes_what_the_script_writes() {
        // The exact shape cjson produces in deduct.lua.
        let raw = r#"{"amount_cents":19900,"channel":"app","quantity":1,"status":"queued","order_id":"123","user_id":"u1","activity_id":"a","created_at":1763766000123}"#;
        let record: OrderRecord = serde_json::from_str(raw).unwrap();
        assert_eq!(record.order_id, OrderId(123));
        assert_eq!(record.status, OrderStatus::Queued);
        assert_eq!(record.created_at, 1_763_766_000_123);
    }
}
