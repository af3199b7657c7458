//! `seckill-testkit`: what seckill's integration tests share. Real servers only — Redis,
//! RocketMQ and PostgreSQL are started for real (the shared ones by `scripts/services.sh`, the
//! private ones here); nothing is mocked.
//!
//! - `ports`: loopback ports reserved for one test's servers ([`Ports`], no bind-and-release
//!   race).
//! - `redis`: the shared Redis ([`redis_url`]), a [`PrivateRedis`] for counting tests and for
//!   every stack, activities ([`open`], [`create`]) and direct buys in the ledger ([`buy`],
//!   [`leased_ids`]).
//! - `rocketmq`: a [`PrivateRocketMq`] name server + broker per test, stoppable.
//! - `postgres`: a fresh database per test ([`fresh_database`]).
//! - `client`: a small HTTP client for the gateway's API ([`Http`], [`Reply`]).
//! - `process`: the binaries as child processes ([`GatewayProcess`], [`WriterProcess`]).
//! - `sale`: a private stack ([`Stack`]: its own broker, Redis and database), a whole sale on
//!   one ([`Sale`]), and a crowd of buyers ([`crowd`]).
//! - [`eventually`], [`eventually_async`]: waiting on a condition, never on a sleep.

#![allow(clippy::unwrap_used)]

// Private modules, their items re-exported: a test's `use seckill_testkit::*` then never
// shadows the `redis` or `http` crates.
mod client;
mod ports;
mod postgres;
mod process;
mod redis;
mod rocketmq;
mod sale;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use seckill_auth::TokenKey;
use seckill_ledger::{ActivityId, UserId};

pub use crate::client::{Http, Reply};
pub use crate::ports::Ports;
pub use crate::postgres::{fresh_database, wait_for_rows, PG_BASE};
pub use crate::process::{GatewayProcess, WriterProcess};
pub use crate::redis::{
    buy, create, leased_ids, ledger_at, open, redis_url, PrivateRedis, PrivateRedisCluster,
};
pub use crate::rocketmq::PrivateRocketMq;
pub use crate::sale::{crowd, writer_settings, Sale, Stack};

/// The user-token secret every test gateway and `seckillctl` run uses.
pub const SECRET: &str = "integration-test-secret-0123456789";
/// The payment-notification secret of test gateways.
pub const PAYMENT_SECRET: &str = "integration-payment-secret-0123456789";

/// `<prefix>_<pid>_<nanos>_<seq>`: a name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh activity id no other test (or earlier run) uses (`t-<name>-…`).
pub fn fresh_id(name: &str) -> ActivityId {
    ActivityId::parse(&unique(&format!("t-{name}")).replace('_', "-")).unwrap()
}

/// A token for `user`, valid for an hour, signed with [`SECRET`].
pub fn token_for(user: &str) -> String {
    TokenKey::new(SECRET.as_bytes()).mint(
        &UserId::parse(user).unwrap(),
        seckill_service::now_unix() + 3600,
    )
}

/// Polls `check` every 50 ms for up to `limit`; true once it holds. Waiting, not timing.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

/// As [`eventually`] for a condition that needs I/O.
pub async fn eventually_async<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check().await
}

/// A workspace binary, from the target directory of the running test (`scripts/test.sh` builds
/// every binary first).
pub fn binary(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let binary = dir.join(name);
    assert!(
        binary.exists(),
        "{} missing: build it first (cargo build --workspace --bins)",
        binary.display()
    );
    binary
}
