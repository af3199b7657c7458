//! The `parked` table: messages the writer could not apply and must not drop, each with its
//! reason, kept for an operator instead of being acknowledged and lost.

use std::collections::HashSet;

use seckill_ledger::OrderId;

use crate::{Store, StoreError};

/// A message to park.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parked {
    /// Parked once per key: `order:<id>` or `message:<broker message id>`.
    pub key: String,
    pub topic: String,
    pub order_id: Option<OrderId>,
    pub activity_id: Option<String>,
    /// A short code (`duplicate_buyer`, `undecodable`, …).
    pub reason: String,
    pub detail: String,
    pub body: Vec<u8>,
}

impl Parked {
    /// A parked order, keyed by its id.
    pub fn order(
        topic: &str,
        order_id: OrderId,
        activity_id: &str,
        reason: &str,
        detail: String,
        body: Vec<u8>,
    ) -> Self {
        Parked {
            key: format!("order:{order_id}"),
            topic: topic.to_owned(),
            order_id: Some(order_id),
            activity_id: Some(activity_id.to_owned()),
            reason: reason.to_owned(),
            detail,
            body,
        }
    }

    /// A message nobody can read, keyed by the broker's message id; `activity_id` where the
    /// message names it outside its body (its tag), so an operator listing one activity's
    /// parked rows finds it.
    pub fn message(
        topic: &str,
        msg_id: &str,
        activity_id: Option<&str>,
        reason: &str,
        detail: String,
        body: Vec<u8>,
    ) -> Self {
        Parked {
            key: format!("message:{msg_id}"),
            topic: topic.to_owned(),
            order_id: None,
            activity_id: activity_id.map(str::to_owned),
            reason: reason.to_owned(),
            detail,
            body,
        }
    }
}

/// One parked row as listed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ParkedRow {
    pub key: String,
    pub topic: String,
    pub order_id: Option<OrderId>,
    pub activity_id: Option<String>,
    pub reason: String,
    pub detail: String,
    /// The body as text (lossy where it is not UTF-8).
    pub body: String,
    /// Unix milliseconds.
    pub parked_at_ms: i64,
}

impl Store {
    /// Parks messages (each key once: parking again is a no-op). Returns how many were new.
    pub async fn park(&self, parked: &[Parked]) -> Result<u64, StoreError> {
        if parked.is_empty() {
            return Ok(0);
        }
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO parked (key, topic, order_id, activity_id, reason, detail, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO NOTHING",
            )
            .await?;
        let mut new = 0;
        for p in parked {
            new += client
                .execute(
                    &statement,
                    &[
                        &p.key,
                        &p.topic,
                        &p.order_id.map(|id| id.0 as i64),
                        &p.activity_id,
                        &p.reason,
                        &p.detail,
                        &p.body,
                    ],
                )
                .await?;
        }
        Ok(new)
    }

    /// The most recently parked messages, newest first (`limit` at most).
    pub async fn parked(&self, limit: i64) -> Result<Vec<ParkedRow>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT key, topic, order_id, activity_id, reason, detail, body,
                        (extract(epoch FROM parked_at) * 1000)::bigint
                 FROM parked ORDER BY parked_at DESC, key LIMIT $1",
                &[&limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| ParkedRow {
                key: row.get(0),
                topic: row.get(1),
                order_id: row.get::<_, Option<i64>>(2).map(|id| OrderId(id as u64)),
                activity_id: row.get(3),
                reason: row.get(4),
                detail: row.get(5),
                body: String::from_utf8_lossy(row.get::<_, &[u8]>(6)).into_owned(),
                parked_at_ms: row.get(7),
            })
            .collect())
    }

    /// The orders of an activity that are parked.
    pub async fn parked_orders(&self, activity: &str) -> Result<HashSet<OrderId>, StoreError> {
        let rows = self
            .query_parked(
                "SELECT order_id FROM parked WHERE activity_id = $1 AND order_id IS NOT NULL",
                &[&activity],
            )
            .await?;
        Ok(rows.iter().map(order_id).collect())
    }

    /// Which of `ids` are parked orders (an order parked once is never persisted later, when it
    /// arrives again by redelivery or republication).
    pub async fn parked_among(&self, ids: &[OrderId]) -> Result<HashSet<OrderId>, StoreError> {
        let ids: Vec<i64> = ids.iter().map(|id| id.0 as i64).collect();
        let rows = self
            .query_parked(
                "SELECT order_id FROM parked WHERE order_id = ANY($1)",
                &[&ids],
            )
            .await?;
        Ok(rows.iter().map(order_id).collect())
    }

    /// Parked messages by reason.
    pub async fn parked_by_reason(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = self
            .query_parked(
                "SELECT reason, count(*) FROM parked GROUP BY reason ORDER BY reason",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// A read of `parked`; no rows when the table does not exist (a database no writer of this
    /// version migrated yet has nothing parked).
    async fn query_parked(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = self.pool.get().await?;
        match client.query(sql, params).await {
            Ok(rows) => Ok(rows),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                Ok(Vec::new())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// How many messages are parked.
    pub async fn parked_count(&self) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_one("SELECT count(*) FROM parked", &[])
            .await?
            .get(0))
    }
}

fn order_id(row: &tokio_postgres::Row) -> OrderId {
    OrderId(row.get::<_, i64>(0) as u64)
}
