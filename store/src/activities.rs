//! The `activities` table: the definition of every sale, written by `seckillctl` before the
//! ledger is preloaded from it, so an activity's ledger can be rebuilt from the database.

use seckill_ledger::{ActivityId, ActivityMeta, NewActivity};

use crate::{Store, StoreError};

/// What recording a new activity came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded now.
    New,
    /// Recorded before with the same definition (a create that failed later, retried).
    Same,
    /// Recorded before with another definition.
    Different(ActivityMeta),
}

const COLUMNS: &str = "activity_id, name, price_cents, stock_total, per_user_limit,
    (extract(epoch FROM starts_at) * 1000)::bigint, (extract(epoch FROM ends_at) * 1000)::bigint,
    closed";

fn meta(row: &tokio_postgres::Row) -> Result<ActivityMeta, StoreError> {
    let id: String = row.get(0);
    Ok(ActivityMeta {
        id: ActivityId::parse(&id)
            .map_err(|e| StoreError::Config(format!("activities row {id:?}: {e}")))?,
        name: row.get(1),
        price_cents: row.get(2),
        stock_total: row.get(3),
        per_user_limit: row.get::<_, i32>(4) as u32,
        starts_at_ms: row.get(5),
        ends_at_ms: row.get(6),
        closed: row.get(7),
    })
}

impl Store {
    /// Records a new activity (before the ledger is told), unless it is recorded already.
    pub async fn record_activity(&self, activity: &NewActivity) -> Result<Recorded, StoreError> {
        let recorded = activity.recorded();
        if self.write_activity(&recorded, "DO NOTHING").await? == 1 {
            return Ok(Recorded::New);
        }
        let Some(existing) = self.activity(&activity.id).await? else {
            return Ok(Recorded::New);
        };
        Ok(if existing == recorded {
            Recorded::Same
        } else {
            Recorded::Different(existing)
        })
    }

    /// Writes an activity as the ledger now holds it (after a restock or a close; also adopts
    /// an activity created before this table existed).
    pub async fn save_activity(&self, meta: &ActivityMeta) -> Result<(), StoreError> {
        self.write_activity(
            meta,
            "DO UPDATE SET
                 name = EXCLUDED.name, price_cents = EXCLUDED.price_cents,
                 stock_total = EXCLUDED.stock_total, per_user_limit = EXCLUDED.per_user_limit,
                 starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,
                 closed = EXCLUDED.closed, updated_at = now()",
        )
        .await?;
        Ok(())
    }

    /// One `INSERT … ON CONFLICT (activity_id) <on_conflict>` of `meta`; the rows written.
    async fn write_activity(
        &self,
        meta: &ActivityMeta,
        on_conflict: &str,
    ) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(
                &format!(
                    "INSERT INTO activities (activity_id, name, price_cents, stock_total,
                                             per_user_limit, starts_at, ends_at, closed)
                     VALUES ($1, $2, $3, $4, $5, to_timestamp($6::float8 / 1000),
                             to_timestamp($7::float8 / 1000), $8)
                     ON CONFLICT (activity_id) {on_conflict}"
                ),
                &[
                    &meta.id.as_str(),
                    &meta.name,
                    &meta.price_cents,
                    &meta.stock_total,
                    &(meta.per_user_limit as i32),
                    &(meta.starts_at_ms as f64),
                    &(meta.ends_at_ms as f64),
                    &meta.closed,
                ],
            )
            .await?)
    }

    /// One activity as recorded.
    pub async fn activity(&self, id: &ActivityId) -> Result<Option<ActivityMeta>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM activities WHERE activity_id = $1"),
                &[&id.as_str()],
            )
            .await?;
        row.as_ref().map(meta).transpose()
    }
}
