//! PostgreSQL for tests: a fresh database per test on the stack's server.

use std::time::Duration;

use seckill_store::Store;

/// The stack's server, as the role `scripts/services.sh postgres` creates (it may create
/// databases).
pub const PG_BASE: &str = "postgres://seckill:seckill@127.0.0.1:5432";

/// Creates an empty database of this test's own (`t_…`, dropped by `scripts/test.sh` before the
/// next run); returns its URL.
pub async fn fresh_database() -> String {
    let name = crate::unique("t");
    let (client, connection) =
        tokio_postgres::connect(&format!("{PG_BASE}/seckill"), tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL must be running (scripts/services.sh postgres starts it)");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    format!("{PG_BASE}/{name}")
}

/// Waits (bounded) until the activity has `expected` rows; returns the count seen last.
pub async fn wait_for_rows(
    store: &Store,
    activity: &str,
    expected: usize,
    limit: Duration,
) -> usize {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let rows = store.activity_orders(activity).await.unwrap().len();
        if rows >= expected || tokio::time::Instant::now() >= deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
