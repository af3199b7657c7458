//! `seckill-order-writer`: turns every won order into a durable PostgreSQL row.
//!
//! - [`config`]: `SECKILL_*` settings.
//! - [`store`]: the PostgreSQL schema (migrations applied at start-up) and queries; also used by
//!   `seckillctl verify` and `reconcile`.
//! - [`persist`]: one transactional `ORDER_CREATED` message per batch, whose local transaction
//!   inserts the batch; the check-back answers from the database.
//! - [`consume`]: the push consumers: `seckill_order` (acknowledged only after commit and the
//!   ledger mirror), `seckill_order_timeout` (cancel requests) and `seckill_payment`.
//! - [`lifecycle`]: payment, payment timeout, cancellation and refund, each one conditional
//!   update; [`sweep`] cancels overdue orders whose timeout message was lost.
//!
//! [`Writer::start`] runs all of it; [`Writer::shutdown`] stops consuming, lets in-flight
//! batches finish, and stops.

#![recursion_limit = "256"]

pub mod config;
pub mod consume;
pub mod lifecycle;
pub mod persist;
pub mod store;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rocketmq_client_rust::{DefaultMQPushConsumer, MQPushConsumer};
use seckill_core::ledger::LedgerConfig;
use seckill_core::mq::{
    MqError, MqRuntime, CONSUME_THREADS, ORDER_TIMEOUT_TOPIC, ORDER_TOPIC, PAYMENT_TOPIC,
};
use seckill_core::{Ledger, LedgerError};

use crate::config::{StartAt, WriterConfig};
use crate::consume::OrderListener;
use crate::consume::{cancel_step, payment_step, ActivityFilter, StepListener};
use crate::lifecycle::Lifecycle;
use crate::persist::Persister;
use crate::store::{Store, StoreError};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;

/// Orders handed to the listener at once (one transaction, one event).
pub const CONSUME_BATCH: u32 = 32;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot reach the database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot reach the ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error("cannot start RocketMQ clients: {0}")]
    Mq(#[from] MqError),
}

/// A push consumer of `group` with the writer's start position and concurrency.
fn consumer(
    mq: &MqRuntime,
    config: &WriterConfig,
    group: &str,
    batch: u32,
) -> DefaultMQPushConsumer {
    let mut builder = DefaultMQPushConsumer::builder(mq.client_runtime());
    builder = match config.start_at {
        StartAt::Earliest => builder.consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset),
        StartAt::UnixMs(ms) => builder
            .consume_from_where(ConsumeFromWhere::ConsumeFromTimestamp)
            .consume_timestamp(consume_timestamp(ms)),
    };
    builder
        .consumer_group(group.to_owned())
        .name_server_addr(config.rocketmq_namesrv.clone())
        .consume_message_batch_max_size(batch)
        .consume_thread_min(CONSUME_THREADS)
        .consume_thread_max(CONSUME_THREADS)
        .await_termination_millis_when_shutdown(10_000)
        .build()
}

/// The client's `yyyyMMddHHmmss` form of a time (UTC, as this stack runs in UTC; one minute
/// earlier to absorb any skew: replays are harmless).
fn consume_timestamp(unix_ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(unix_ms / 1000 - 60)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

pub struct Writer {
    consumers: Vec<DefaultMQPushConsumer>,
    persister: Arc<Persister>,
    lifecycle: Lifecycle,
    stopping: Arc<AtomicBool>,
    sweeper: tokio::task::JoinHandle<()>,
    mq: MqRuntime,
}

/// Redis lease that makes one writer of a group at a time the sweeper (writers of a group share
/// one database).
pub fn sweep_lease(group: &str) -> String {
    format!("sk:lock:sweep:{group}")
}

/// Every `every`: if this writer holds (or can take) the sweep lease, cancel overdue orders.
async fn sweep_loop(
    lifecycle: Lifecycle,
    ledger: Ledger,
    lease: String,
    every: Duration,
    stopping: Arc<AtomicBool>,
) {
    let holder = format!(
        "writer-{}-{}",
        std::process::id(),
        seckill_core::time::now_ms()
    );
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stopping.load(Ordering::Acquire) {
        tick.tick().await;
        // The lease outlives one tick, so the holder keeps it while alive; if it dies another
        // writer takes over after the lease expires.
        match ledger.hold_lease(&lease, &holder, every * 3).await {
            Ok(true) => match lifecycle.sweep(500).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(cancelled = n, "sweep cancelled overdue orders"),
                Err(e) => tracing::warn!(error = %e, "sweep failed; next tick retries"),
            },
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "sweep lease unavailable"),
        }
    }
}

impl Writer {
    /// Migrates the database, then starts the transactional producer and the consumer.
    /// Must be called inside a multi-threaded Tokio runtime.
    pub async fn start(config: &WriterConfig) -> Result<Self, StartError> {
        let store = Store::connect(&config.database_url, config.db_pool).await?;
        let applied = store.migrate().await?;
        tracing::info!(applied, "database schema up to date");
        let ledger = Ledger::connect(&LedgerConfig::new(config.redis_url.clone())).await?;
        let mq = MqRuntime::start("writer")?;
        let persister =
            Arc::new(Persister::start(&mq, &config.rocketmq_namesrv, store.clone()).await?);
        let lifecycle = Lifecycle::start(
            &mq,
            &config.rocketmq_namesrv,
            store,
            ledger.clone(),
            config.payment_window,
        )
        .await?;
        let stopping = Arc::new(AtomicBool::new(false));
        let handle = tokio::runtime::Handle::current();
        let filter = ActivityFilter::new(&config.activities);

        let mut orders = consumer(&mq, config, &config.consumer_group, CONSUME_BATCH);
        orders
            .subscribe(ORDER_TOPIC, "*")
            .await
            .map_err(MqError::from)?;
        orders.register_message_listener_concurrently(OrderListener {
            handle: handle.clone(),
            persister: persister.clone(),
            ledger: ledger.clone(),
            lifecycle: lifecycle.clone(),
            filter: filter.clone(),
            stopping: stopping.clone(),
        });
        let mut cancels = consumer(&mq, config, &format!("{}_cancel", config.consumer_group), 1);
        cancels
            .subscribe(ORDER_TIMEOUT_TOPIC, "*")
            .await
            .map_err(MqError::from)?;
        cancels.register_message_listener_concurrently(StepListener {
            handle: handle.clone(),
            lifecycle: lifecycle.clone(),
            filter: filter.clone(),
            stopping: stopping.clone(),
            what: "cancel",
            step: cancel_step,
        });
        let mut payments = consumer(
            &mq,
            config,
            &format!("{}_payment", config.consumer_group),
            1,
        );
        payments
            .subscribe(PAYMENT_TOPIC, "*")
            .await
            .map_err(MqError::from)?;
        payments.register_message_listener_concurrently(StepListener {
            handle,
            lifecycle: lifecycle.clone(),
            filter: filter.clone(),
            stopping: stopping.clone(),
            what: "payment",
            step: payment_step,
        });
        let mut consumers = vec![orders, cancels, payments];
        for consumer in &mut consumers {
            consumer.start().await.map_err(MqError::from)?;
        }
        let sweeper = tokio::spawn(sweep_loop(
            lifecycle.clone(),
            ledger,
            sweep_lease(&config.consumer_group),
            config.sweep_every,
            stopping.clone(),
        ));
        tracing::info!(group = %config.consumer_group, window = ?config.payment_window, "consuming {ORDER_TOPIC}, {ORDER_TIMEOUT_TOPIC}, {PAYMENT_TOPIC}");
        Ok(Writer {
            consumers,
            persister,
            lifecycle,
            stopping,
            sweeper,
            mq,
        })
    }

    /// Stops taking new batches, lets the ones in flight commit, then stops the clients.
    pub async fn shutdown(mut self) {
        self.stopping.store(true, Ordering::Release);
        self.sweeper.abort();
        for consumer in &mut self.consumers {
            consumer.shutdown().await;
        }
        self.lifecycle.shutdown().await;
        if let Ok(mut persister) = Arc::try_unwrap(self.persister) {
            persister.shutdown().await;
        }
        if tokio::time::timeout(Duration::from_secs(5), self.mq.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("RocketMQ client runtime did not stop within 5 s");
        }
        tracing::info!("order writer stopped");
    }
}
