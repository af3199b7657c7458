//! `seckill-order-writer`: turns every won order into a durable PostgreSQL row.
//!
//! - [`config`]: `SECKILL_*` settings.
//! - [`store`]: the PostgreSQL schema (migrations applied at start-up) and queries; also used by
//!   `seckillctl verify` and `reconcile`.
//! - [`persist`]: one transactional `ORDER_CREATED` message per batch, whose local transaction
//!   inserts the batch; the check-back answers from the database.
//! - [`consume`]: the push consumer of `seckill_order`; acknowledges only after commit and the
//!   ledger mirror.
//!
//! [`Writer::start`] runs all of it; [`Writer::shutdown`] stops consuming, lets in-flight
//! batches finish, and stops.

#![recursion_limit = "256"]

pub mod config;
pub mod consume;
pub mod persist;
pub mod store;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rocketmq_client_rust::{DefaultMQPushConsumer, MQPushConsumer};
use seckill_core::ledger::LedgerConfig;
use seckill_core::mq::{MqError, MqRuntime, CONSUME_THREADS, ORDER_TOPIC};
use seckill_core::{Ledger, LedgerError};

use crate::config::{StartAt, WriterConfig};
use crate::consume::OrderListener;
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
    consumer: DefaultMQPushConsumer,
    persister: Arc<Persister>,
    stopping: Arc<AtomicBool>,
    mq: MqRuntime,
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
        let persister = Arc::new(Persister::start(&mq, &config.rocketmq_namesrv, store).await?);
        let stopping = Arc::new(AtomicBool::new(false));
        let mut builder = DefaultMQPushConsumer::builder(mq.client_runtime());
        builder = match config.start_at {
            StartAt::Earliest => {
                builder.consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
            }
            StartAt::UnixMs(ms) => builder
                .consume_from_where(ConsumeFromWhere::ConsumeFromTimestamp)
                .consume_timestamp(consume_timestamp(ms)),
        };
        let mut consumer = builder
            .consumer_group(config.consumer_group.clone())
            .name_server_addr(config.rocketmq_namesrv.clone())
            .consume_message_batch_max_size(CONSUME_BATCH)
            .consume_thread_min(CONSUME_THREADS)
            .consume_thread_max(CONSUME_THREADS)
            .await_termination_millis_when_shutdown(10_000)
            .build();
        consumer
            .subscribe(ORDER_TOPIC, "*")
            .await
            .map_err(MqError::from)?;
        consumer.register_message_listener_concurrently(OrderListener::new(
            tokio::runtime::Handle::current(),
            persister.clone(),
            ledger,
            stopping.clone(),
        ));
        consumer.start().await.map_err(MqError::from)?;
        tracing::info!(group = %config.consumer_group, "consuming {ORDER_TOPIC}");
        Ok(Writer {
            consumer,
            persister,
            stopping,
            mq,
        })
    }

    /// Stops taking new batches, lets the ones in flight commit, then stops the clients.
    pub async fn shutdown(mut self) {
        self.stopping.store(true, Ordering::Release);
        self.consumer.shutdown().await;
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
