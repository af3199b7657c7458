//! What the writer's integration tests share: an in-process writer of the test's own, a sale
//! with one, and `seckillctl verify` as an operator runs it. The rest is `seckill-testkit`.

#![allow(clippy::unwrap_used, dead_code)]

use std::process::{Command, Output};
use std::time::Duration;

use seckill_ledger::ActivityId;
use seckill_order_writer::config::WriterConfig;
use seckill_order_writer::Writer;
pub use seckill_testkit::*;

/// Generous bound for a fresh consumer group to rebalance (~20 s here) and drain.
pub const DRAIN: Duration = Duration::from_secs(90);

/// A writer of the test's own: its own group, Redis, database, start time and activities (so
/// concurrent tests never act on each other's orders).
pub fn writer_config(
    redis: &str,
    database: &str,
    namesrv: &str,
    activities: &[&ActivityId],
) -> WriterConfig {
    let settings = writer_settings(redis, database, namesrv, activities);
    WriterConfig::from_lookup(|name| {
        settings
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    })
    .unwrap()
}

/// An in-process writer for `activities`.
pub async fn start_writer(
    redis: &str,
    database: &str,
    namesrv: &str,
    activities: &[&ActivityId],
) -> Writer {
    Writer::start(&writer_config(redis, database, namesrv, activities))
        .await
        .unwrap()
}

/// A [`Sale`] and an in-process writer for it; `configure` adjusts the writer (payment window,
/// sweep period) before it starts.
pub async fn sale_with_writer(
    name: &str,
    stock: i64,
    limit: u32,
    configure: impl FnOnce(&mut WriterConfig),
) -> (Sale, Writer) {
    gateway_sale_with_writer(name, stock, limit, &[], configure).await
}

/// As [`sale_with_writer`], the gateway with extra `SECKILL_*` settings.
pub async fn gateway_sale_with_writer(
    name: &str,
    stock: i64,
    limit: u32,
    gateway_settings: &[(&str, &str)],
    configure: impl FnOnce(&mut WriterConfig),
) -> (Sale, Writer) {
    let sale = Sale::start_with(name, stock, limit, gateway_settings).await;
    let mut config = writer_config(
        &sale.redis.url,
        &sale.database,
        &sale.mq.namesrv,
        &[&sale.activity],
    );
    configure(&mut config);
    let writer = Writer::start(&config).await.unwrap();
    (sale, writer)
}

/// `seckillctl` against this Redis, database and broker.
pub fn seckillctl(args: &[&str], redis: &str, database: &str, namesrv: &str) -> Output {
    Command::new(binary("seckillctl"))
        .args(args)
        .env("SECKILL_REDIS_URL", redis)
        .env("SECKILL_DATABASE_URL", database)
        .env("SECKILL_ROCKETMQ_NAMESRV", namesrv)
        .output()
        .unwrap()
}

/// Polls `seckillctl verify` until it passes (the status mirror and the outbox settle after the
/// rows), then asserts the ledger and the database agree.
pub async fn assert_verified_within(
    activity: &ActivityId,
    redis: &str,
    database: &str,
    namesrv: &str,
    limit: Duration,
) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let out = seckillctl(&["verify", activity.as_str()], redis, database, namesrv);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.code() == Some(0) {
            assert!(text.contains("database agrees"), "{text}");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "verify still failing after {limit:?}:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One unit won straight in the ledger by each of `users` (nothing published): the orders, in
/// `users`' order.
pub async fn won_in_ledger(
    ledger: &seckill_ledger::Ledger,
    activity: &ActivityId,
    users: &[&str],
) -> Vec<seckill_ledger::OrderRecord> {
    let keys = seckill_ledger::ActivityKeys::new(activity);
    let ids = leased_ids(ledger).await;
    let mut orders = Vec::new();
    for user in users {
        let seckill_ledger::ledger::DeductOutcome::Won { record, .. } =
            buy(ledger, &keys, &ids, user, 1).await
        else {
            panic!("{user}: expected a win")
        };
        orders.push(record.decode().unwrap());
    }
    orders
}

/// One unit won straight in the ledger by each of `users`, then persisted as the writer would
/// (rows `pending_payment`, the status mirrored): the orders, in `users`' order.
pub async fn persisted_wins(
    ledger: &seckill_ledger::Ledger,
    store: &seckill_store::Store,
    activity: &ActivityId,
    users: &[&str],
) -> Vec<seckill_ledger::OrderRecord> {
    use seckill_ledger::{ActivityKeys, OrderStatus};
    let keys = ActivityKeys::new(activity);
    let orders = won_in_ledger(ledger, activity, users).await;
    store
        .insert_orders(&orders, OrderStatus::PendingPayment)
        .await
        .unwrap();
    let order_ids: Vec<_> = orders.iter().map(|o| o.order_id).collect();
    ledger
        .mirror(
            &keys,
            &order_ids,
            OrderStatus::PendingPayment,
            OrderStatus::Queued,
        )
        .await
        .unwrap();
    orders
}

/// A transactional persister of the test's own on `namesrv` (keep the runtime alive as long as
/// it), with a 3 s send timeout.
pub async fn persister_on(
    namesrv: &str,
    store: &seckill_store::Store,
) -> (
    seckill_messages::MqRuntime,
    seckill_order_writer::persist::Persister,
) {
    let runtime = seckill_messages::MqRuntime::start(&unique("test-persist")).unwrap();
    let persister = seckill_order_writer::persist::Persister::start(
        &runtime,
        namesrv,
        store.clone(),
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    (runtime, persister)
}

/// A lifecycle of the test's own on `namesrv` (keep the runtime alive as long as it).
pub async fn lifecycle_on(
    namesrv: &str,
    store: &seckill_store::Store,
    ledger: &seckill_ledger::Ledger,
    window: Duration,
) -> (seckill_messages::MqRuntime, seckill_lifecycle::Lifecycle) {
    let runtime = seckill_messages::MqRuntime::start(&unique("test-lifecycle")).unwrap();
    let lifecycle = seckill_lifecycle::Lifecycle::start(
        &runtime,
        namesrv,
        store.clone(),
        ledger.clone(),
        window,
    )
    .await
    .unwrap();
    (runtime, lifecycle)
}
