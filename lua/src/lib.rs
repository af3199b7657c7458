//! `seckill-ledger`: the seckill stock ledger in Redis — the single source of truth for stock.
//!
//! Every mutation happens in one of the Lua scripts under `lua/scripts/`, whose headers state
//! their KEYS, ARGV and return codes; this crate is the only Rust code that calls them. The
//! keys, their invariants and the scripts are described in `docs/ARCHITECTURE.md` ("The ledger").
//!
//! - [`keys`]: the key layout (`sk:{<activity>}:…`, one hash tag per activity) and the
//!   validated ids that go into keys.
//! - [`connection`]: one node or a Redis Cluster, from `SECKILL_REDIS_URL` ([`Topology`]).
//! - [`scripts`]: the script sources and their SHA1s.
//! - [`ledger`]: [`Ledger`], typed callers of the scripts over auto-pipelined connections, and
//!   the typed outcome of each script.
//! - [`activity`], [`order`]: the records the ledger stores; [`order`] also holds the order
//!   state machine.
//! - [`id`]: order ids unique across gateway instances (snowflake with a leased worker id).
//! - [`event`]: the pub/sub messages that keep gateway caches in step.
//! - [`error`]: [`LedgerError`], tagged by whether a retry can help.

pub mod activity;
pub mod connection;
pub mod error;
pub mod event;
pub mod id;
pub mod keys;
pub mod ledger;
pub mod order;
pub mod scripts;

pub use activity::{ActivityMeta, ActivityState, InvalidActivity, NewActivity};
pub use connection::{Connection, Topology};
pub use error::LedgerError;
pub use keys::{ActivityId, ActivityKeys, InvalidId, UserId};
pub use ledger::{Ledger, LedgerConfig, DEFAULT_REDIS_URL};
pub use order::{OrderId, OrderRecord, OrderStatus, OrderText};
