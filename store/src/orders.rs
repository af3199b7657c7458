//! Writing and moving orders: idempotent batch inserts, conditional status transitions, the
//! lookups the writer, the lifecycle and `verify` need, and the bench's clean-up.

use std::collections::{HashMap, HashSet};

use seckill_ledger::{OrderId, OrderRecord, OrderStatus};

use crate::{Store, StoreError};

/// What a conditional status update came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// This call moved the order; `activity_id` says where its stock lives.
    Applied { activity_id: String },
    /// The order was not in a status the transition starts from, or its last transition's
    /// follow-ups are not done (`settled` false: a transition never discards them — settle
    /// `current` first, then try again); it is in `current`.
    Refused {
        activity_id: String,
        current: OrderStatus,
        settled: bool,
    },
    /// No such order (yet: the writer may not have persisted it).
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

/// The partial unique index on (activity, user) of live orders where the limit is 1.
pub const ONE_LIVE_PER_USER: &str = "orders_one_live_per_user";

/// The orders of a batch and one item each, skipping orders already there (by id only: a
/// second live order of a limit-1 buyer fails the statement, see
/// [`StoreError::is_duplicate_buyer`]); returns the ids inserted now.
const INSERT_ORDERS: &str = "
    WITH inserted AS (
        INSERT INTO orders (order_id, activity_id, user_id, quantity, amount_cents, channel,
                            status, created_at, per_user_limit)
        SELECT id, activity, usr, qty, amount, chan, $9, to_timestamp(created), lim
        FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::int[], $5::bigint[],
                    $6::text[], $7::float8[], $8::int[])
             AS u(id, activity, usr, qty, amount, chan, created, lim)
        ON CONFLICT (order_id) DO NOTHING
        RETURNING order_id, activity_id, quantity, amount_cents
    )
    INSERT INTO order_items (order_id, sku, quantity, unit_price_cents)
    SELECT order_id, activity_id, quantity, amount_cents / quantity FROM inserted
    RETURNING order_id";

impl Store {
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

        // One statement, so one implicit transaction: the orders, then an item for each order
        // this statement inserted (taken from its RETURNING, so no join with `orders` that the
        // planner could turn into a scan of the whole table; an order that was already there
        // got its item with it).
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(INSERT_ORDERS).await?;
        let inserted = client
            .query(
                &statement,
                &[
                    &ids,
                    &activities,
                    &users,
                    &quantities,
                    &amounts,
                    &channels,
                    &created,
                    &limits,
                    &status.as_str(),
                ],
            )
            .await?;
        let inserted: Vec<i64> = inserted.iter().map(|row| row.get(0)).collect();
        Ok(inserted.into_iter().map(|id| OrderId(id as u64)).collect())
    }

    /// The orders of `orders` that would be a limit-1 buyer's second live order: those whose
    /// buyer holds a live order with another id in the database, and every one after the first
    /// of a buyer who appears twice in `orders` (the first is the one the ledger counted).
    pub async fn duplicate_buyers(
        &self,
        orders: &[OrderRecord],
    ) -> Result<Vec<OrderId>, StoreError> {
        let single: Vec<&OrderRecord> = orders.iter().filter(|o| o.per_user_limit == 1).collect();
        if single.is_empty() {
            return Ok(Vec::new());
        }
        let activities: Vec<&str> = single.iter().map(|o| o.activity_id.as_str()).collect();
        let users: Vec<&str> = single.iter().map(|o| o.user_id.as_str()).collect();
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT o.activity_id, o.user_id, o.order_id FROM orders o
                 JOIN UNNEST($1::text[], $2::text[]) AS u(activity, usr)
                   ON o.activity_id = u.activity AND o.user_id = u.usr
                 WHERE o.per_user_limit = 1 AND o.status IN ('queued', 'pending_payment', 'paid')",
                &[&activities, &users],
            )
            .await?;
        let mut holder: HashMap<(String, String), OrderId> = rows
            .iter()
            .map(|row| {
                (
                    (row.get(0), row.get(1)),
                    OrderId(row.get::<_, i64>(2) as u64),
                )
            })
            .collect();
        let mut duplicates = Vec::new();
        for order in single {
            let buyer = (order.activity_id.clone(), order.user_id.clone());
            match holder.get(&buyer) {
                Some(live) if *live != order.order_id => duplicates.push(order.order_id),
                Some(_) => {}
                None => {
                    holder.insert(buyer, order.order_id);
                }
            }
        }
        Ok(duplicates)
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

    /// Every persisted order of one activity as a ledger record (what a rebuilt ledger holds),
    /// with whether its stock went back to the sale (cancelled, then perhaps paid late).
    pub async fn activity_records(
        &self,
        activity: &str,
    ) -> Result<Vec<(OrderRecord, bool)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT order_id, user_id, quantity, amount_cents, channel, status,
                        (extract(epoch FROM created_at) * 1000)::bigint, per_user_limit,
                        stock_released
                 FROM orders WHERE activity_id = $1 ORDER BY order_id",
                &[&activity],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let status: String = row.get(5);
                let record = OrderRecord {
                    order_id: OrderId(row.get::<_, i64>(0) as u64),
                    activity_id: activity.to_owned(),
                    user_id: row.get(1),
                    quantity: row.get::<_, i32>(2) as u32,
                    amount_cents: row.get(3),
                    channel: row.get(4),
                    status: OrderStatus::parse(&status).ok_or_else(|| {
                        StoreError::Config(format!("order row with unknown status {status:?}"))
                    })?,
                    created_at: row.get(6),
                    per_user_limit: row.get::<_, i32>(7) as u32,
                };
                Ok((record, row.get(8)))
            })
            .collect()
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
                "UPDATE orders SET status = $2, updated_at = now(), settled = false,
                        stock_released = stock_released OR $2 = 'cancelled'
                 WHERE order_id = $1 AND status = ANY($3) AND settled
                 RETURNING activity_id",
                &[&id, &to.as_str(), &sources],
            )
            .await?;
        if let Some(row) = updated {
            return Ok(Transition::Applied {
                activity_id: row.get(0),
            });
        }
        let row = client
            .query_opt(
                "SELECT activity_id, status, settled FROM orders WHERE order_id = $1",
                &[&id],
            )
            .await?;
        Ok(match row {
            Some(row) => Transition::Refused {
                activity_id: row.get(0),
                current: OrderStatus::parse(row.get(1)).unwrap_or(OrderStatus::Queued),
                settled: row.get(2),
            },
            None => Transition::Missing,
        })
    }

    /// Records that the follow-ups of `order_id` reaching `status` are done (a no-op if it has
    /// moved on since: the later transition has follow-ups of its own).
    pub async fn mark_settled(
        &self,
        order_id: OrderId,
        status: OrderStatus,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE orders SET settled = true
                 WHERE order_id = $1 AND status = $2 AND NOT settled",
                &[&(order_id.0 as i64), &status.as_str()],
            )
            .await?;
        Ok(())
    }

    /// Orders whose last transition, older than `grace`, still has follow-ups to do (oldest
    /// first, `limit` at most): (order, activity, status).
    pub async fn unsettled(
        &self,
        grace: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<(OrderId, String, OrderStatus)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT order_id, activity_id, status FROM orders
                 WHERE NOT settled AND updated_at < now() - make_interval(secs => $1)
                 ORDER BY updated_at LIMIT $2",
                &[&grace.as_secs_f64(), &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                Some((
                    OrderId(row.get::<_, i64>(0) as u64),
                    row.get(1),
                    OrderStatus::parse(row.get(2))?,
                ))
            })
            .collect())
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
}
