//! Schema migrations: the SQL files of `migrations/`, embedded and applied in order.

use std::collections::HashSet;

use crate::{Store, StoreError};

/// Embedded migrations, applied in order at start-up.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_orders.sql")),
    (2, include_str!("../migrations/0002_ids_byte_order.sql")),
    (3, include_str!("../migrations/0003_parked.sql")),
    (4, include_str!("../migrations/0004_settling.sql")),
    (5, include_str!("../migrations/0005_activities.sql")),
    (6, include_str!("../migrations/0006_stock_released.sql")),
];

impl Store {
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
}
