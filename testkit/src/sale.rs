//! A sale on a stack of the test's own: a private broker (no other test's traffic, no history
//! to replay), a private Redis, a fresh database, an open activity, and the gateway binary on
//! that broker and Redis. The writer is the test's to start (in-process or as a process), so it
//! can be configured, stopped or killed.
//!
//! The Redis is private because every gateway's outbox relay sweeps every activity of its Redis
//! and republishes to its own broker: on a Redis shared by stacks with different brokers, one
//! test's gateway would take another's unconfirmed orders to a broker no writer of theirs reads.

use http::StatusCode;
use seckill_ledger::{ActivityId, Ledger};
use seckill_store::Store;

use crate::client::Http;
use crate::process::GatewayProcess;
use crate::redis::PrivateRedis;
use crate::rocketmq::PrivateRocketMq;

/// Fields are public so a test destructures what it uses.
/// Bind `redis` (and `mq`) to a name when destructuring: a field matched by `_` or `..` is
/// dropped at once, and its server with it.
pub struct Sale {
    pub mq: PrivateRocketMq,
    pub redis: PrivateRedis,
    pub database: String,
    pub ledger: Ledger,
    pub activity: ActivityId,
    pub gw: GatewayProcess,
    pub store: Store,
}

impl Sale {
    /// `stock` units of a fresh activity, at most `limit` per buyer, open for an hour.
    pub async fn start(name: &str, stock: i64, limit: u32) -> Self {
        Self::start_with(name, stock, limit, &[]).await
    }

    /// As [`Sale::start`], the gateway with extra `SECKILL_*` settings.
    pub async fn start_with(
        name: &str,
        stock: i64,
        limit: u32,
        gateway_settings: &[(&str, &str)],
    ) -> Self {
        let Stack {
            mq,
            redis,
            database,
            store,
            ledger,
            activity,
        } = Stack::start(name, stock, limit).await;
        let mut settings = vec![("SECKILL_ROCKETMQ_NAMESRV", mq.namesrv.as_str())];
        settings.extend_from_slice(gateway_settings);
        let gw = GatewayProcess::start(&redis.url, &settings).await;
        Sale {
            mq,
            redis,
            database,
            ledger,
            activity,
            gw,
            store,
        }
    }

    /// The settings of a writer of this sale's own: its own group, its Redis, database and
    /// broker, starting now, for this activity only (so concurrent tests never act on each
    /// other's orders).
    pub fn writer_settings(&self) -> Vec<(&'static str, String)> {
        writer_settings(
            &self.redis.url,
            &self.database,
            &self.mq.namesrv,
            &[&self.activity],
        )
    }
}

/// A stack of a test's own without a gateway: a private broker, a private Redis (see the module
/// comment), a fresh database with the schema in place (so a test can read the tables at once,
/// whether its writer runs in-process or not; a writer's own migration is then a no-op), and an
/// open activity on that Redis. Destructure it as [`Sale`]: bind `redis` to a name.
pub struct Stack {
    pub mq: PrivateRocketMq,
    pub redis: PrivateRedis,
    pub database: String,
    pub store: Store,
    pub ledger: Ledger,
    pub activity: ActivityId,
}

impl Stack {
    /// `stock` units of a fresh activity, at most `limit` per buyer, open for an hour.
    pub async fn start(name: &str, stock: i64, limit: u32) -> Self {
        let mq = PrivateRocketMq::start().await;
        let redis = PrivateRedis::start().await;
        let database = crate::fresh_database().await;
        let store = Store::connect(&database, 8).await.unwrap();
        store.migrate().await.unwrap();
        let ledger = crate::ledger_at(&redis.url).await;
        let activity = crate::open(&ledger, name, stock, limit).await;
        Stack {
            mq,
            redis,
            database,
            store,
            ledger,
            activity,
        }
    }
}

/// The `SECKILL_*` settings of a writer of a test's own (see [`Sale::writer_settings`]).
pub fn writer_settings(
    redis: &str,
    database: &str,
    namesrv: &str,
    activities: &[&ActivityId],
) -> Vec<(&'static str, String)> {
    let start_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    vec![
        ("SECKILL_ROCKETMQ_NAMESRV", namesrv.to_owned()),
        ("SECKILL_DATABASE_URL", database.to_owned()),
        ("SECKILL_REDIS_URL", redis.to_owned()),
        ("SECKILL_WRITER_GROUP", crate::unique("writer")),
        ("SECKILL_WRITER_START_AT", start_at),
        (
            "SECKILL_WRITER_ACTIVITIES",
            activities
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
    ]
}

/// Buys with `users` distinct users at once; returns the order ids of the 202s.
pub async fn crowd(gw: &Http, activity: &ActivityId, prefix: &str, users: usize) -> Vec<String> {
    let tasks: Vec<_> = (0..users)
        .map(|i| {
            let (gw, activity, user) = (gw.clone(), activity.clone(), format!("{prefix}{i}"));
            tokio::spawn(async move { gw.attempt(&activity, &user).await })
        })
        .collect();
    let mut won = Vec::new();
    for task in tasks {
        let reply = task.await.unwrap();
        if reply.status == StatusCode::ACCEPTED {
            won.push(reply.json["order_id"].as_str().unwrap().to_owned());
        }
    }
    won
}
