//! Read-only reports over the persisted orders: the counts and aggregates operators
//! (`seckillctl order list`) and the bench's checks and figures read. Nothing here writes.

use seckill_ledger::OrderId;

use crate::{Store, StoreError, LIVE_STATUSES};

/// How fast one activity's won orders became rows: the time from the win (`created_at`, by the
/// Redis clock) to the insert (`persisted_at`, by the database clock).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct WinToRow {
    /// Rows of the activity.
    pub rows: i64,
    /// Median win→row latency in milliseconds (`None` without rows).
    pub p50_ms: Option<f64>,
    /// 99th percentile win→row latency in milliseconds (`None` without rows).
    pub p99_ms: Option<f64>,
    /// Rows over the time between the first and the last insert (`None` below two rows).
    pub rows_per_s: Option<f64>,
    /// When the first and the last row were inserted (Unix seconds, database clock).
    pub first_row_unix_s: Option<f64>,
    pub last_row_unix_s: Option<f64>,
}

/// One persisted order as `seckillctl order list` shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PersistedOrder {
    pub order_id: OrderId,
    pub user_id: String,
    /// The database's status (`pending_payment`, `paid`, …).
    pub status: String,
    pub amount_cents: i64,
    /// From the win (Redis clock) to the row's insert (database clock), in milliseconds.
    pub win_to_row_ms: f64,
}

impl Store {
    /// How many rows (orders) the database holds for `activity`, whatever their status.
    pub async fn order_count(&self, activity: &str) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM orders WHERE activity_id = $1",
                &[&activity],
            )
            .await?;
        Ok(row.get(0))
    }

    /// The users whose live orders (queued, pending payment or paid) of `activity` hold more
    /// than `limit` units in total, with that total; sorted by user id. Empty when every buyer
    /// kept to the limit.
    pub async fn users_over_limit(
        &self,
        activity: &str,
        limit: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let live: Vec<&str> = LIVE_STATUSES.iter().map(|s| s.as_str()).collect();
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT user_id, sum(quantity)::bigint FROM orders
                  WHERE activity_id = $1 AND status = ANY($3)
                  GROUP BY user_id HAVING sum(quantity) > $2 ORDER BY user_id",
                &[&activity, &limit, &live],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The win→row figures of `activity`: row count, median and 99th percentile latency, and
    /// the insert rate.
    pub async fn win_to_row(&self, activity: &str) -> Result<WinToRow, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT count(*),
                        1000 * extract(epoch FROM percentile_cont(0.5)
                            WITHIN GROUP (ORDER BY persisted_at - created_at))::float8,
                        1000 * extract(epoch FROM percentile_cont(0.99)
                            WITHIN GROUP (ORDER BY persisted_at - created_at))::float8,
                        CASE WHEN count(*) > 1 THEN count(*) / greatest(
                            extract(epoch FROM max(persisted_at) - min(persisted_at))::float8,
                            0.001) END,
                        extract(epoch FROM min(persisted_at))::float8,
                        extract(epoch FROM max(persisted_at))::float8
                   FROM orders WHERE activity_id = $1",
                &[&activity],
            )
            .await?;
        Ok(WinToRow {
            rows: row.get(0),
            p50_ms: row.get(1),
            p99_ms: row.get(2),
            rows_per_s: row.get(3),
            first_row_unix_s: row.get(4),
            last_row_unix_s: row.get(5),
        })
    }

    /// Every persisted order of `activity`, by order id, with its win→row latency.
    pub async fn persisted_orders(
        &self,
        activity: &str,
    ) -> Result<Vec<PersistedOrder>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT order_id, user_id, status, amount_cents,
                        1000 * extract(epoch FROM persisted_at - created_at)::float8
                   FROM orders WHERE activity_id = $1 ORDER BY order_id",
                &[&activity],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| PersistedOrder {
                order_id: OrderId(row.get::<_, i64>(0) as u64),
                user_id: row.get(1),
                status: row.get(2),
                amount_cents: row.get(3),
                win_to_row_ms: row.get(4),
            })
            .collect())
    }

    /// The PostgreSQL server's version, as `SHOW server_version` reports it (e.g.
    /// `16.4 (Debian 16.4-1.pgdg120+1)`).
    pub async fn server_version(&self) -> Result<String, StoreError> {
        let client = self.pool.get().await?;
        let row = client.query_one("SHOW server_version", &[]).await?;
        Ok(row.get(0))
    }
}
