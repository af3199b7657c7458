//! `seckill-store`: the order store in PostgreSQL — schema migrations, idempotent batch inserts,
//! conditional status transitions, lookups and the read-only reports operators and the bench
//! read.
//!
//! The writer persists through it, the lifecycle moves orders through it, `seckillctl` and the
//! bench read through it: no other crate spells the schema (table names, column names, SQL).
//! The tables (`orders`, `order_items`, `payments`) are created by `migrations/` and described in
//! `docs/ARCHITECTURE.md` ("The database"). Inserts are idempotent (primary key on the order id;
//! one live order per (activity, user) where the limit is 1), so a redelivered message never
//! creates a second row.
//!
//! Where things live — every module adds methods to the one [`Store`]:
//!
//! - this file: [`Store`] and [`Store::connect`], [`StoreError`], [`DEFAULT_DATABASE_URL`].
//! - `migrate`: [`Store::migrate`], the embedded migrations (`migrations/*.sql`).
//! - `orders`: writing and moving orders — [`Store::insert_orders`], [`Store::existing`],
//!   [`Store::activity_orders`], [`Store::status`], [`Store::transition`], [`Store::overdue`].
//!   Types [`StoredOrder`], [`Transition`].
//! - `payments`: [`Store::record_payment`], [`Store::payments`]. Types [`Payment`],
//!   [`PaymentOutcome`].
//! - `reports`: read-only aggregates — [`Store::order_count`], [`Store::users_over_limit`],
//!   [`Store::win_to_row`], [`Store::persisted_orders`], [`Store::server_version`]. Types
//!   [`WinToRow`], [`PersistedOrder`].

use deadpool_postgres::{Pool, Runtime};
use seckill_ledger::OrderStatus;
use tokio_postgres::NoTls;

mod activities;
mod migrate;
mod orders;
mod parked;
mod payments;
mod reports;

pub use activities::Recorded;
pub use orders::{StoredOrder, Transition};
pub use parked::{Parked, ParkedRow};
pub use payments::{Payment, PaymentOutcome, PendingRefund};
pub use reports::{PersistedOrder, WinToRow};

/// Default database of the local stack (`scripts/services.sh postgres` creates it).
pub const DEFAULT_DATABASE_URL: &str = "postgres://seckill:seckill@127.0.0.1:5432/seckill";

/// The statuses of a live order: it holds its units (the stock has not gone back). The same set
/// as the `orders_one_live_per_user` index of the first migration.
const LIVE_STATUSES: [OrderStatus; 3] = [
    OrderStatus::Queued,
    OrderStatus::PendingPayment,
    OrderStatus::Paid,
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database configuration: {0}")]
    Config(String),
    #[error("database URL {url}: {source}")]
    Url {
        /// The URL with its password hidden.
        url: String,
        source: tokio_postgres::Error,
    },
    #[error("database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {}", db_detail(.0))]
    Db(#[from] tokio_postgres::Error),
}

/// tokio-postgres's own text of a server error is only "db error"; the server's message, and
/// its code, say what went wrong.
fn db_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl StoreError {
    /// True when an order insert met a live order of the same buyer in an activity with a
    /// per-user limit of 1 (the `orders_one_live_per_user` index): the ledger let a buyer win
    /// twice, which only a ledger that lost data does. Nothing of the statement was written.
    pub fn is_duplicate_buyer(&self) -> bool {
        match self {
            StoreError::Db(e) => e.as_db_error().is_some_and(|db| {
                *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                    && db.constraint() == Some(orders::ONE_LIVE_PER_USER)
            }),
            _ => false,
        }
    }

    /// True when the same call may succeed later (database down, connection lost).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Config(_) | StoreError::Url { .. } => false,
            StoreError::Pool(_) => true,
            StoreError::Db(e) => {
                e.is_closed()
                    || e.code().is_none()
                    || e.code().is_some_and(|c| {
                        c.code().starts_with("08")
                            || c.code().starts_with("40")
                            || c.code().starts_with("57")
                    })
            }
        }
    }
}

/// The order store: a pool of connections to one PostgreSQL database. Cheap to clone (the clones
/// share the pool).
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// A connection pool on `url` (`postgres://user:password@host:port/db`).
    pub async fn connect(url: &str, max_size: usize) -> Result<Self, StoreError> {
        let pg: tokio_postgres::Config = url.parse().map_err(|source| StoreError::Url {
            url: seckill_service::redact_url(url),
            source,
        })?;
        let manager = deadpool_postgres::Manager::from_config(
            pg,
            NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(std::time::Duration::from_secs(5)))
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let store = Store { pool };
        // Fail now, with a clear message, rather than at the first order.
        drop(store.pool.get().await?);
        Ok(store)
    }
}
