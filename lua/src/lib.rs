//! `seckill-core`: the seckill stock ledger, and everything more than one binary needs.
//!
//! Redis holds the single source of truth for each activity's stock. Every mutation happens in
//! one of the Lua scripts under `lua/scripts/`, whose headers state their KEYS, ARGV and return
//! codes; this crate is the only Rust code that calls them.
//!
//! - [`keys`]: the key layout (`sk:{<activity>}:…`, one hash tag per activity) and the
//!   validated ids that go into keys.
//! - [`scripts`]: the script sources and their SHA1s.
//! - [`ledger`]: [`Ledger`], typed callers of the scripts over auto-pipelined connections.
//! - [`activity`], [`order`]: the records the ledger stores.
//! - [`id`]: order ids unique across gateway instances (snowflake with a leased worker id).
//! - [`token`]: the bearer token format shared by the gateway and `seckillctl token mint`.
//! - [`event`]: the pub/sub messages that keep gateway caches in step.
//! - [`mq`]: RocketMQ runtime, topics and the order message.
//! - [`time`]: clock and duration helpers; [`process`]: logging set-up and shutdown signal.

pub mod activity;
pub mod error;
pub mod event;
pub mod id;
pub mod keys;
pub mod ledger;
pub mod mq;
pub mod order;
pub mod process;
pub mod scripts;
pub mod time;
pub mod token;

pub use activity::{ActivityMeta, ActivityState, NewActivity};
pub use error::LedgerError;
pub use keys::{ActivityId, ActivityKeys, UserId};
pub use ledger::Ledger;
pub use order::{OrderId, OrderRecord, OrderStatus};
