//! Activity metadata as stored in `sk:{A}:meta`, and the validated input that creates it.

use std::collections::HashMap;

use crate::error::LedgerError;
use crate::keys::ActivityId;

/// An activity's metadata (everything but its live counters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityMeta {
    pub id: ActivityId,
    pub name: String,
    pub price_cents: i64,
    pub stock_total: i64,
    pub per_user_limit: u32,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    /// Closed early by an operator.
    pub closed: bool,
}

/// Where an activity stands, as shown to buyers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivityState {
    Upcoming,
    Open,
    SoldOut,
    Ended,
}

impl ActivityState {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityState::Upcoming => "upcoming",
            ActivityState::Open => "open",
            ActivityState::SoldOut => "sold_out",
            ActivityState::Ended => "ended",
        }
    }
}

impl ActivityMeta {
    /// Decodes the `meta` hash; `None` when the hash is empty (no such activity).
    pub fn from_hash(
        id: &ActivityId,
        fields: &HashMap<String, String>,
    ) -> Result<Option<Self>, LedgerError> {
        if fields.is_empty() {
            return Ok(None);
        }
        let corrupt = |detail: String| LedgerError::Corrupt {
            key: format!("sk:{{{id}}}:meta"),
            detail,
        };
        let text = |name: &str| {
            fields
                .get(name)
                .cloned()
                .ok_or_else(|| corrupt(format!("missing field {name}")))
        };
        fn number<T: std::str::FromStr>(
            name: &str,
            raw: String,
            corrupt: &dyn Fn(String) -> LedgerError,
        ) -> Result<T, LedgerError> {
            raw.parse()
                .map_err(|_| corrupt(format!("field {name} is not a number: {raw:?}")))
        }
        Ok(Some(ActivityMeta {
            id: id.clone(),
            name: text("name")?,
            price_cents: number("price_cents", text("price_cents")?, &corrupt)?,
            stock_total: number("stock_total", text("stock_total")?, &corrupt)?,
            per_user_limit: number("per_user_limit", text("per_user_limit")?, &corrupt)?,
            starts_at_ms: number("starts_at", text("starts_at")?, &corrupt)?,
            ends_at_ms: number("ends_at", text("ends_at")?, &corrupt)?,
            closed: fields.get("closed").is_some_and(|c| c == "1"),
        }))
    }

    /// The buyer-facing state at `now_ms` with `stock_left` units available.
    pub fn state(&self, now_ms: i64, stock_left: i64) -> ActivityState {
        if self.closed || now_ms >= self.ends_at_ms {
            ActivityState::Ended
        } else if now_ms < self.starts_at_ms {
            ActivityState::Upcoming
        } else if stock_left <= 0 {
            ActivityState::SoldOut
        } else {
            ActivityState::Open
        }
    }
}

/// A validated request to create an activity.
#[derive(Clone, Debug)]
pub struct NewActivity {
    pub id: ActivityId,
    pub name: String,
    pub price_cents: i64,
    pub stock_total: i64,
    pub per_user_limit: u32,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
}

impl NewActivity {
    /// The activity as stored once created (open, not closed).
    pub fn recorded(&self) -> ActivityMeta {
        ActivityMeta {
            id: self.id.clone(),
            name: self.name.clone(),
            price_cents: self.price_cents,
            stock_total: self.stock_total,
            per_user_limit: self.per_user_limit,
            starts_at_ms: self.starts_at_ms,
            ends_at_ms: self.ends_at_ms,
            closed: false,
        }
    }

    /// Checks everything Redis would otherwise store blindly.
    pub fn validate(&self) -> Result<(), InvalidActivity> {
        let problem = if self.name.trim().is_empty() || self.name.len() > 200 {
            "name must be 1 to 200 bytes"
        } else if self.price_cents < 0 {
            "price must not be negative"
        } else if i128::from(self.price_cents) * i128::from(self.per_user_limit) > MAX_EXACT_AMOUNT
        {
            // deduct.lua computes an order's amount (quantity × price, quantity ≤ the limit) in
            // Lua numbers, exact only up to 2^53.
            "price × per-user limit must be at most 9007199254740992 cents (2^53)"
        } else if self.stock_total < 0 {
            "stock must not be negative"
        } else if self.stock_total > MAX_STOCK {
            // The scripts do stock arithmetic in Lua numbers; past 2^53 a total is rounded and
            // written back as `1e+16`, which DECRBY refuses: every attempt would fail.
            "stock must be at most 9007199254740992 units (2^53)"
        } else if self.per_user_limit == 0 {
            "per-user limit must be at least 1"
        } else if self.ends_at_ms <= self.starts_at_ms {
            "it must end after it starts"
        } else {
            return Ok(());
        };
        Err(InvalidActivity {
            id: self.id.clone(),
            problem,
        })
    }
}

/// The largest amount (cents) `deduct.lua` computes exactly: Lua numbers are doubles.
pub const MAX_EXACT_AMOUNT: i128 = 1 << 53;

/// The largest stock total the scripts handle exactly (Lua numbers are doubles).
pub const MAX_STOCK: i64 = 1 << 53;

/// An activity definition the ledger refuses to store, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("activity {id}: {problem}")]
pub struct InvalidActivity {
    pub id: ActivityId,
    pub problem: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ActivityMeta {
        ActivityMeta {
            id: ActivityId::parse("a").unwrap(),
            name: "n".into(),
            price_cents: 100,
            stock_total: 5,
            per_user_limit: 1,
            starts_at_ms: 1_000,
            ends_at_ms: 2_000,
            closed: false,
        }
    }

    #[test]
    fn an_amount_lua_cannot_compute_exactly_is_refused() {
        let id = ActivityId::parse("amounts").unwrap();
        let activity = |price_cents, per_user_limit| NewActivity {
            id: id.clone(),
            name: "x".into(),
            price_cents,
            stock_total: 10,
            per_user_limit,
            starts_at_ms: 0,
            ends_at_ms: 1,
        };
        assert!(activity(90_071_992_547_409, 100).validate().is_ok());
        let refused = activity(90_071_992_547_410, 100).validate().unwrap_err();
        assert!(refused.problem.contains("2^53"), "{refused}");
        assert!(activity(i64::MAX, 1).validate().is_err());
    }

    #[test]
    fn a_stock_lua_cannot_count_exactly_is_refused() {
        let activity = |stock_total| NewActivity {
            id: ActivityId::parse("stocks").unwrap(),
            name: "x".into(),
            price_cents: 1,
            stock_total,
            per_user_limit: 1,
            starts_at_ms: 0,
            ends_at_ms: 1,
        };
        assert!(activity(MAX_STOCK).validate().is_ok());
        let refused = activity(MAX_STOCK + 1).validate().unwrap_err();
        assert!(refused.problem.contains("2^53"), "{refused}");
    }

    #[test]
    fn state_follows_window_stock_and_close() {
        let m = meta();
        assert_eq!(m.state(999, 5), ActivityState::Upcoming);
        assert_eq!(m.state(1_000, 5), ActivityState::Open);
        assert_eq!(m.state(1_500, 0), ActivityState::SoldOut);
        assert_eq!(m.state(2_000, 5), ActivityState::Ended);
        let closed = ActivityMeta { closed: true, ..m };
        assert_eq!(closed.state(1_500, 5), ActivityState::Ended);
    }

    #[test]
    fn hash_round_trip_and_corruption() {
        let id = ActivityId::parse("a").unwrap();
        assert_eq!(ActivityMeta::from_hash(&id, &HashMap::new()).unwrap(), None);
        let mut fields: HashMap<String, String> = [
            ("name", "n"),
            ("price_cents", "100"),
            ("stock_total", "5"),
            ("per_user_limit", "1"),
            ("starts_at", "1000"),
            ("ends_at", "2000"),
            ("closed", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(ActivityMeta::from_hash(&id, &fields).unwrap(), Some(meta()));
        fields.insert("stock_total".into(), "lots".into());
        assert!(ActivityMeta::from_hash(&id, &fields).is_err());
    }
}
