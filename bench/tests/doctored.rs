//! The harness's checks catch what they must. A real sale runs first (gateway → Redis →
//! RocketMQ → writer → PostgreSQL) and `seckill-bench check` passes on it; then each doctoring —
//! the stock key altered behind the gateway's back, a duplicate buyer written into the ledger,
//! a row deleted from the database — makes it report that violation and exit 1. The doctoring
//! is done here, by hand on the stores; the product has no switch for it.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};
use std::time::Duration;

use redis::AsyncCommands;
use seckill_bench::checks::{check_sale, Sources, Told, Verdict};
use seckill_ledger::{ActivityId, ActivityKeys, Ledger};
use seckill_testkit::*;

const STOCK: usize = 30;

struct Harness<'a> {
    ledger: &'a Ledger,
    store: &'a seckill_store::Store,
    /// Raw access to the tables, for the doctoring only.
    database: tokio_postgres::Client,
    database_url: &'a str,
    /// The sale's own Redis (the ledger's).
    redis_url: &'a str,
    activity: &'a ActivityId,
    told: Told,
}

impl Harness<'_> {
    /// The checks through the library: the verdict, to name which checks failed.
    async fn verdict(&self) -> Verdict {
        let seckillctl = binary("seckillctl");
        let sources = Sources {
            ledger: self.ledger,
            database: self.store,
            seckillctl: &seckillctl,
            env: &[
                ("SECKILL_REDIS_URL", self.redis_url),
                ("SECKILL_DATABASE_URL", self.database_url),
            ],
        };
        check_sale(&sources, self.activity, self.told)
            .await
            .unwrap()
    }

    /// The checks through the command an operator runs: its exit code and report.
    fn command(&self) -> Output {
        Command::new(env!("CARGO_BIN_EXE_seckill-bench"))
            .args(["check", self.activity.as_str(), "--wins"])
            .arg(self.told.wins.to_string())
            .arg("--demand-exceeded-stock")
            .arg("--seckillctl")
            .arg(binary("seckillctl"))
            .env("SECKILL_REDIS_URL", self.redis_url)
            .env("SECKILL_DATABASE_URL", self.database_url)
            .output()
            .unwrap()
    }

    async fn assert_clean(&self) {
        let verdict = self.verdict().await;
        assert!(verdict.ok(), "expected every check to pass: {verdict:#?}");
    }

    /// The doctoring is caught: the named checks fail, and the command says so and exits 1.
    async fn assert_caught(&self, doctoring: &str, expected: &[&str]) {
        let verdict = self.verdict().await;
        assert!(
            !verdict.ok(),
            "{doctoring}: the checks passed: {verdict:#?}"
        );
        for name in expected {
            assert!(
                verdict.failed(name),
                "{doctoring}: {name} did not fail: {verdict:#?}"
            );
        }
        let output = self.command();
        let text = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{doctoring}: {text}");
        for name in expected {
            assert!(
                text.lines().any(|l| l.contains("FAIL") && l.contains(name)),
                "{doctoring}: {name} not reported:\n{text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checks_pass_a_real_sale_and_catch_each_doctoring() {
    let sale = Sale::start("doctored", STOCK as i64, 1).await;
    let settings = sale.writer_settings();
    let _writer = WriterProcess::spawn(
        &settings
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    );
    let Sale {
        mq: _mq,
        redis: own_redis,
        database: database_url,
        ledger,
        activity,
        gw,
        store,
    } = sale;

    let won = crowd(&gw, &activity, "buyer", 3 * STOCK).await;
    assert_eq!(won.len(), STOCK);
    assert_eq!(
        wait_for_rows(&store, activity.as_str(), STOCK, Duration::from_secs(90)).await,
        STOCK
    );
    // The gateway also empties the outbox once the broker confirmed each batch.
    let keys = ActivityKeys::new(&activity);
    assert!(
        eventually_async(Duration::from_secs(30), || async {
            ledger.audit(&keys).await.unwrap().unwrap().outbox == 0
        })
        .await,
        "outbox never emptied"
    );

    let (database, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let harness = Harness {
        ledger: &ledger,
        store: &store,
        database,
        database_url: &database_url,
        redis_url: &own_redis.url,
        activity: &activity,
        told: Told {
            wins: won.len() as u64,
            demand_exceeded_stock: true,
        },
    };
    harness.assert_clean().await;
    let clean = harness.command();
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );

    let mut redis = ledger.connection();

    // The stock key altered behind the gateway's back.
    let _: i64 = redis.incr(&keys.stock, 3).await.unwrap();
    harness
        .assert_caught("stock altered", &["ledger_balanced", "seckillctl_verify"])
        .await;
    let _: i64 = redis.decr(&keys.stock, 3).await.unwrap();
    harness.assert_clean().await;

    // A duplicate buyer: a winner counted twice in the ledger.
    let buyers: Vec<String> = redis.hkeys(&keys.buyers).await.unwrap();
    let _: i64 = redis.hincr(&keys.buyers, &buyers[0], 1).await.unwrap();
    harness
        .assert_caught(
            "duplicate buyer",
            &[
                "no_user_over_limit",
                "buyers_hold_wins",
                "seckillctl_verify",
            ],
        )
        .await;
    let _: i64 = redis.hincr(&keys.buyers, &buyers[0], -1).await.unwrap();
    harness.assert_clean().await;

    // A row deleted from the database (with its item).
    let order: i64 = won[0].parse().unwrap();
    harness
        .database
        .batch_execute(&format!(
            "DELETE FROM order_items WHERE order_id = {order}; DELETE FROM orders WHERE order_id = {order}"
        ))
        .await
        .unwrap();
    harness
        .assert_caught("row deleted", &["rows_equal_wins", "seckillctl_verify"])
        .await;
}
