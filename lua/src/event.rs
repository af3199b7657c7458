//! Ledger events on the `sk:events` pub/sub channel.
//!
//! Gateways keep a local sold-out flag and cached metadata per activity; these events keep the
//! copies of every instance in step. Pub/sub is lossy, so receivers also refresh periodically.

use crate::keys::ActivityId;

/// One event about one activity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerEvent {
    /// Stock reached zero: answer from the local flag from now on.
    SoldOut(ActivityId),
    /// Stock came back (release, restock): clear the flag.
    StockBack(ActivityId),
    /// Metadata changed (close, restock, create): reload it.
    Changed(ActivityId),
}

impl LedgerEvent {
    pub fn encode(&self) -> String {
        match self {
            LedgerEvent::SoldOut(id) => format!("sold_out {id}"),
            LedgerEvent::StockBack(id) => format!("stock_back {id}"),
            LedgerEvent::Changed(id) => format!("changed {id}"),
        }
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (kind, id) = text.split_once(' ')?;
        let id = ActivityId::parse(id).ok()?;
        match kind {
            "sold_out" => Some(LedgerEvent::SoldOut(id)),
            "stock_back" => Some(LedgerEvent::StockBack(id)),
            "changed" => Some(LedgerEvent::Changed(id)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let id = ActivityId::parse("a-1").unwrap();
        for event in [
            LedgerEvent::SoldOut(id.clone()),
            LedgerEvent::StockBack(id.clone()),
            LedgerEvent::Changed(id),
        ] {
            assert_eq!(LedgerEvent::decode(&event.encode()), Some(event));
        }
        assert_eq!(LedgerEvent::decode("sold_out a{b"), None);
        assert_eq!(LedgerEvent::decode("nonsense"), None);
    }
}
