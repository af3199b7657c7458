//! `seckill-store`: the order store in PostgreSQL — schema migrations, idempotent batch inserts,
//! conditional status transitions, lookups.
//!
//! The writer persists through it, the lifecycle moves orders through it, `seckillctl` and the
//! bench read through it: no other crate spells the schema. The tables (`orders`,
//! `order_items`, `payments`) are described in `docs/ARCHITECTURE.md` ("The database"). Inserts
//! are idempotent (primary key on the order id; one live order per (activity, user) where the
//! limit is 1), so a redelivered message never creates a second row.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::{Pool, Runtime};
use seckill_ledger::{OrderId, OrderRecord, OrderStatus};
use tokio_postgres::NoTls;

/// Default database of the local stack (`scripts/services.sh postgres` creates it).
pub const DEFAULT_DATABASE_URL: &str = "postgres://seckill:seckill@127.0.0.1:5432/seckill";

/// Embedded migrations, applied in order at start-up.
const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("../migrations/0001_orders.sql"))];

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
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
}

impl StoreError {
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

/// What a conditional status update came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// This call moved the order; `activity_id` says where its stock lives.
    Applied { activity_id: String },
    /// The order was not in a status the transition starts from; it is in `current`.
    Refused {
        activity_id: String,
        current: OrderStatus,
    },
    /// No such order (yet: the writer may not have persisted it).
    Missing,
}

/// A payment as the `payments` table records it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Payment {
    pub payment_id: String,
    pub order_id: OrderId,
    pub amount_cents: i64,
}

/// What recording a payment came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// pending_payment → paid.
    Paid {
        activity_id: String,
    },
    /// The order had been cancelled: cancelled → refunding (the money goes back).
    Refunding {
        activity_id: String,
    },
    /// This payment id was recorded before: nothing changed.
    Duplicate {
        activity_id: String,
        current: OrderStatus,
    },
    /// The order is in a status that takes no payment (e.g. already paid by another payment).
    Refused {
        activity_id: String,
        current: OrderStatus,
    },
    Missing,
}

/// One order as the database holds it (what `verify` compares with the ledger).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredOrder {
    pub order_id: OrderId,
    pub user_id: String,
    pub quantity: i32,
    pub status: String,
    pub items: i64,
}

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

    /// Applies the migrations not applied yet; several writers starting at once are serialized
    /// by an advisory lock. Returns how many were applied.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock(7385001)", &[])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
        let applied: HashSet<i32> = tx
            .query("SELECT version FROM schema_migrations", &[])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut count = 0;
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[version],
            )
            .await?;
            count += 1;
        }
        tx.commit().await?;
        Ok(count)
    }

    /// Inserts orders (and one item each) in ONE transaction, skipping those already there.
    /// Returns the ids inserted now.
    pub async fn insert_orders(
        &self,
        orders: &[OrderRecord],
        status: OrderStatus,
    ) -> Result<Vec<OrderId>, StoreError> {
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = orders.iter().map(|o| o.order_id.0 as i64).collect();
        let activities: Vec<&str> = orders.iter().map(|o| o.activity_id.as_str()).collect();
        let users: Vec<&str> = orders.iter().map(|o| o.user_id.as_str()).collect();
        let quantities: Vec<i32> = orders.iter().map(|o| o.quantity as i32).collect();
        let amounts: Vec<i64> = orders.iter().map(|o| o.amount_cents).collect();
        let channels: Vec<&str> = orders.iter().map(|o| o.channel.as_str()).collect();
        let created: Vec<f64> = orders
            .iter()
            .map(|o| o.created_at as f64 / 1000.0)
            .collect();
        let limits: Vec<i32> = orders.iter().map(|o| o.per_user_limit as i32).collect();
        let unit_prices: Vec<i64> = orders
            .iter()
            .map(|o| o.amount_cents / i64::from(o.quantity.max(1)))
            .collect();

        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let inserted = tx
            .query(
                "INSERT INTO orders (order_id, activity_id, user_id, quantity, amount_cents, channel,
                                     status, created_at, per_user_limit)
                 SELECT id, activity, usr, qty, amount, chan, $9, to_timestamp(created), lim
                 FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::int[], $5::bigint[],
                             $6::text[], $7::float8[], $8::int[])
                      AS u(id, activity, usr, qty, amount, chan, created, lim)
                 ON CONFLICT DO NOTHING
                 RETURNING order_id",
                &[&ids, &activities, &users, &quantities, &amounts, &channels, &created, &limits, &status.as_str()],
            )
            .await?;
        let inserted: Vec<i64> = inserted.iter().map(|row| row.get(0)).collect();
        // Items only for the orders that exist (a conflicting duplicate was skipped above).
        tx.execute(
            "INSERT INTO order_items (order_id, sku, quantity, unit_price_cents)
             SELECT id, activity, qty, price
             FROM UNNEST($1::bigint[], $2::text[], $3::int[], $4::bigint[]) AS u(id, activity, qty, price)
             WHERE EXISTS (SELECT 1 FROM orders o WHERE o.order_id = u.id)
             ON CONFLICT DO NOTHING",
            &[&ids, &activities, &quantities, &unit_prices],
        )
        .await?;
        tx.commit().await?;
        Ok(inserted.into_iter().map(|id| OrderId(id as u64)).collect())
    }

    /// Which of `ids` are persisted.
    pub async fn existing(&self, ids: &[OrderId]) -> Result<HashSet<OrderId>, StoreError> {
        let ids: Vec<i64> = ids.iter().map(|id| id.0 as i64).collect();
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT order_id FROM orders WHERE order_id = ANY($1)",
                &[&ids],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| OrderId(row.get::<_, i64>(0) as u64))
            .collect())
    }

    /// Every persisted order of one activity, with its item count.
    pub async fn activity_orders(
        &self,
        activity: &str,
    ) -> Result<HashMap<OrderId, StoredOrder>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT o.order_id, o.user_id, o.quantity, o.status,
                        (SELECT count(*) FROM order_items i WHERE i.order_id = o.order_id)
                 FROM orders o WHERE o.activity_id = $1",
                &[&activity],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let id = OrderId(row.get::<_, i64>(0) as u64);
                (
                    id,
                    StoredOrder {
                        order_id: id,
                        user_id: row.get(1),
                        quantity: row.get(2),
                        status: row.get(3),
                        items: row.get(4),
                    },
                )
            })
            .collect())
    }

    /// Moves one order from one of `from` to `to` with ONE conditional update
    /// (`… WHERE status IN (from)`), so of two racing transitions exactly one applies. Only
    /// transitions of the lifecycle are allowed (see `OrderStatus::can_become`).
    pub async fn transition(
        &self,
        order_id: OrderId,
        from: &[OrderStatus],
        to: OrderStatus,
    ) -> Result<Transition, StoreError> {
        debug_assert!(from.iter().all(|f| f.can_become(to)), "{from:?} -> {to:?}");
        let sources: Vec<&str> = from
            .iter()
            .filter(|f| f.can_become(to))
            .map(|s| s.as_str())
            .collect();
        let client = self.pool.get().await?;
        let id = order_id.0 as i64;
        let updated = client
            .query_opt(
                "UPDATE orders SET status = $2, updated_at = now()
                 WHERE order_id = $1 AND status = ANY($3)
                 RETURNING activity_id",
                &[&id, &to.as_str(), &sources],
            )
            .await?;
        if let Some(row) = updated {
            return Ok(Transition::Applied {
                activity_id: row.get(0),
            });
        }
        Ok(match self.status(order_id).await? {
            Some((activity_id, current)) => Transition::Refused {
                activity_id,
                current,
            },
            None => Transition::Missing,
        })
    }

    /// An order's activity and current status.
    pub async fn status(
        &self,
        order_id: OrderId,
    ) -> Result<Option<(String, OrderStatus)>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT activity_id, status FROM orders WHERE order_id = $1",
                &[&(order_id.0 as i64)],
            )
            .await?;
        Ok(row.map(|row| {
            let status: String = row.get(1);
            (
                row.get(0),
                OrderStatus::parse(&status).unwrap_or(OrderStatus::Queued),
            )
        }))
    }

    /// Records a payment and moves its order, in ONE database transaction: pending_payment →
    /// paid, or cancelled → refunding when the payment arrives after the cancellation. A payment
    /// id seen before changes nothing.
    pub async fn record_payment(&self, payment: &Payment) -> Result<PaymentOutcome, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let id = payment.order_id.0 as i64;
        // Lock the order row: a concurrent timeout waits for us (or we for it).
        let Some(row) = tx
            .query_opt(
                "SELECT activity_id, status FROM orders WHERE order_id = $1 FOR UPDATE",
                &[&id],
            )
            .await?
        else {
            return Ok(PaymentOutcome::Missing);
        };
        let activity_id: String = row.get(0);
        let status: String = row.get(1);
        let current = OrderStatus::parse(&status).unwrap_or(OrderStatus::Queued);
        let inserted = tx
            .execute(
                "INSERT INTO payments (payment_id, order_id, amount_cents) VALUES ($1, $2, $3)
                 ON CONFLICT (payment_id) DO NOTHING",
                &[&payment.payment_id, &id, &payment.amount_cents],
            )
            .await?;
        if inserted == 0 {
            tx.commit().await?;
            return Ok(PaymentOutcome::Duplicate {
                activity_id,
                current,
            });
        }
        let to = match current {
            OrderStatus::PendingPayment => OrderStatus::Paid,
            OrderStatus::Cancelled => OrderStatus::Refunding,
            _ => {
                // Keep the record of the money received; the order itself does not move.
                tx.commit().await?;
                return Ok(PaymentOutcome::Refused {
                    activity_id,
                    current,
                });
            }
        };
        tx.execute(
            "UPDATE orders SET status = $2, updated_at = now() WHERE order_id = $1",
            &[&id, &to.as_str()],
        )
        .await?;
        tx.commit().await?;
        Ok(match to {
            OrderStatus::Paid => PaymentOutcome::Paid { activity_id },
            _ => PaymentOutcome::Refunding { activity_id },
        })
    }

    /// Orders still unpaid `window` after their win (for the sweep), oldest first.
    pub async fn overdue(
        &self,
        window: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<OrderId>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT order_id FROM orders
                 WHERE status = 'pending_payment' AND created_at < now() - make_interval(secs => $1)
                 ORDER BY created_at LIMIT $2",
                &[&window.as_secs_f64(), &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| OrderId(row.get::<_, i64>(0) as u64))
            .collect())
    }

    /// Payments recorded for an order.
    pub async fn payments(&self, order_id: OrderId) -> Result<Vec<Payment>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT payment_id, amount_cents FROM payments WHERE order_id = $1 ORDER BY received_at",
                &[&(order_id.0 as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| Payment {
                payment_id: row.get(0),
                order_id,
                amount_cents: row.get(1),
            })
            .collect())
    }
}
