//! `seckill-order-writer`: turns every won order into a durable PostgreSQL row and runs the
//! order lifecycle from the broker.
//!
//! - [`config`]: `SECKILL_*` settings; [`timing`]: every duration the writer runs by, checked.
//! - [`persist`]: one transactional `ORDER_CREATED` message per batch, whose local transaction
//!   inserts the batch; the check-back answers from the database.
//! - [`consume`]: the push consumers: `seckill_order` (acknowledged only after commit and the
//!   ledger mirror), `seckill_order_timeout` (cancel requests) and `seckill_payment`, each step
//!   carried out by `seckill_lifecycle`.
//! - [`sweep`]: cancels overdue orders whose timeout message was lost, one writer of a group at
//!   a time.
//!
//! The schema and queries are `seckill_store`'s, the lifecycle `seckill_lifecycle`'s, the
//! messages `seckill_messages`'. [`Writer::start`] runs all of it; [`Writer::shutdown`] stops
//! consuming, lets in-flight batches finish, and stops.

#![recursion_limit = "256"]

pub mod adopt;
pub mod coalesce;
pub mod config;
pub mod consume;
pub mod group;
pub mod metrics;
pub mod persist;
pub mod sweep;
pub mod timing;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rocketmq_client_rust::{DefaultMQPushConsumer, MQPushConsumer};
use seckill_ledger::{Ledger, LedgerConfig, LedgerError};
use seckill_lifecycle::Lifecycle;
use seckill_messages::client::CONSUME_THREADS;
use seckill_messages::{
    ConsumerOptions, MqError, MqRuntime, ORDER_TIMEOUT_TOPIC, ORDER_TOPIC, PAYMENT_TOPIC,
};
use seckill_store::{Store, StoreError};

use crate::coalesce::Coalescer;
use crate::config::WriterConfig;
use crate::consume::{cancel_step, payment_step, ActivityFilter, OrderListener, StepListener};
use crate::group::GroupFilter;
use crate::persist::Persister;

/// Messages handed to the listener at once. A call's orders (each message packs one gateway
/// batch's, up to 64) are one database transaction, one mirror call, and one transactional
/// `ORDER_CREATED` and one timer message per activity and 1,024 orders, whatever the size — so
/// the bigger, the less each order costs. A call gets at most what one pull brings, which the
/// broker caps (`maxTransferCountOnMessageInMemory`, 32 by default; `scripts/services.sh`
/// raises it to 1024) and the client's 1 MiB pull size caps too (about 3,000 orders of ~330
/// bytes). With a pull every `Timing::order_pull_interval` (50 ms) per queue, that is also what
/// bounds draining a backlog.
pub const CONSUME_BATCH: u32 = 1024;
/// Consume calls of `seckill_order` at once. They only wait for the coalescer ([`coalesce`]),
/// which runs two persists at a time whatever this is: more calls waiting means more pulls
/// merged into each persist. (Without merging, 8 calls each persisting made every batch take
/// twice as long: the writer was short of CPU, not of concurrency.) Each call holds a slot of
/// the client's blocking lane ([`seckill_messages::client::BLOCKING_LANE`], 64), as do the other
/// consumers' 2 × 4 and the persists' local transactions.
pub const ORDER_CONSUME_THREADS: u32 = 16;
/// How long shutdown waits for the persists in flight once the consumers stopped (each is two
/// transactional sends at most, each bounded by the send timeout, 3 s by default).
const MERGING_SHUTDOWN_WAIT: Duration = Duration::from_secs(15);
/// How long shutdown waits for the RocketMQ client runtime once every client stopped.
const RUNTIME_SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot reach the database: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] seckill_service::ConfigError),
    #[error("cannot reach the ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error("cannot start RocketMQ clients: {0}")]
    Mq(#[from] MqError),
    #[error("cannot listen for metrics on {listen} (SECKILL_WRITER_METRICS_LISTEN): {source}")]
    Metrics {
        listen: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// A push consumer of `group` with the writer's start position and concurrency.
fn consumer(
    mq: &MqRuntime,
    config: &WriterConfig,
    group: &str,
    batch: u32,
    pull_interval: Duration,
    threads: u32,
) -> DefaultMQPushConsumer {
    seckill_messages::consumer(
        mq,
        &ConsumerOptions {
            group: group.to_owned(),
            namesrv: config.rocketmq_namesrv.clone(),
            start_at_ms: config.start_at.unix_ms(),
            batch,
            shutdown_wait: config.timing.shutdown_wait,
            pull_interval,
            threads,
        },
    )
}

pub struct Writer {
    consumers: Vec<DefaultMQPushConsumer>,
    /// The order listener's coalescer ([`coalesce`]), to wait for its persists at shutdown.
    coalescer: Arc<Coalescer>,
    persister: Arc<Persister>,
    lifecycle: Lifecycle,
    stopping: Arc<AtomicBool>,
    sweeper: tokio::task::JoinHandle<()>,
    /// Renews the group's activity lease ([`group`]).
    group_lease: tokio::task::JoinHandle<()>,
    group_filter: Arc<GroupFilter>,
    ledger: Ledger,
    /// `GET /metrics` ([`metrics`]), if configured.
    metrics: Option<tokio::task::JoinHandle<()>>,
    mq: MqRuntime,
}

impl Writer {
    /// Migrates the database, then starts the transactional producer and the consumer.
    /// Must be called inside a multi-threaded Tokio runtime.
    pub async fn start(config: &WriterConfig) -> Result<Self, StartError> {
        config.timing.check()?;
        let store = Store::connect(&config.database_url, config.db_pool).await?;
        let applied = store.migrate().await?;
        tracing::info!(applied, "database schema up to date");
        let ledger = Ledger::connect(&LedgerConfig::new(config.redis_url.clone())).await?;
        // Every writer of a group handles the same activities: one filtered differently would
        // acknowledge, unpersisted, orders its group-mates would have persisted.
        let group_filter = Arc::new(GroupFilter::new(config));
        group_filter.hold(&ledger).await?;
        let mq = MqRuntime::start("writer")?;
        // Not fatal: without it a topic lives on the brokers its first messages reached.
        if let Err(e) = seckill_messages::spread_topics(&mq, &config.rocketmq_namesrv).await {
            tracing::warn!(error = %e, "could not give every topic queues on every broker");
        }
        let persister = Arc::new(
            Persister::start(
                &mq,
                &config.rocketmq_namesrv,
                store.clone(),
                config.timing.send_timeout,
            )
            .await?,
        );
        let metrics_store = store.clone();
        let adopt_store = store.clone();
        let lifecycle = Lifecycle::start(
            &mq,
            &config.rocketmq_namesrv,
            store,
            ledger.clone(),
            config.timing.payment_window,
        )
        .await?;
        let stopping = Arc::new(AtomicBool::new(false));
        let handle = tokio::runtime::Handle::current();
        let filter = ActivityFilter::new(&config.activities);

        let mut orders = consumer(
            &mq,
            config,
            &config.consumer_group,
            CONSUME_BATCH,
            config.timing.order_pull_interval,
            ORDER_CONSUME_THREADS,
        );
        orders
            .subscribe(ORDER_TOPIC, "*")
            .await
            .map_err(MqError::from)?;
        let coalescer = Arc::new(Coalescer::start(
            persister.clone(),
            ledger.clone(),
            lifecycle.clone(),
            stopping.clone(),
        ));
        orders.register_message_listener_concurrently(OrderListener {
            handle: handle.clone(),
            persister: persister.clone(),
            coalescer: coalescer.clone(),
            filter: filter.clone(),
            stopping: stopping.clone(),
        });
        let mut cancels = consumer(
            &mq,
            config,
            &format!("{}_cancel", config.consumer_group),
            1,
            Duration::ZERO,
            CONSUME_THREADS,
        );
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
            retries: config.timing.not_persisted_retries.clone(),
        });
        let mut payments = consumer(
            &mq,
            config,
            &format!("{}_payment", config.consumer_group),
            1,
            Duration::ZERO,
            CONSUME_THREADS,
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
            retries: config.timing.not_persisted_retries.clone(),
        });
        let mut consumers = vec![orders, cancels, payments];
        for consumer in &mut consumers {
            consumer.start().await.map_err(MqError::from)?;
        }
        let metrics = match config.metrics_listen {
            Some(listen) => Some(
                metrics::start(listen, metrics_store, stopping.clone())
                    .await
                    .map_err(|source| StartError::Metrics { listen, source })?,
            ),
            None => None,
        };
        let group_lease = tokio::spawn(group_filter.clone().keep(ledger.clone(), stopping.clone()));
        let writer_ledger = ledger.clone();
        let adopter = adopt::Adopter::new(
            persister.clone(),
            ledger.clone(),
            adopt_store,
            lifecycle.clone(),
            config.activities.clone(),
            config.timing.adopt_after,
        );
        let sweeper = tokio::spawn(sweep::run(
            adopter,
            lifecycle.clone(),
            ledger,
            sweep::lease_key(&config.consumer_group),
            config.timing.clone(),
            stopping.clone(),
        ));
        tracing::info!(group = %config.consumer_group, window = ?config.timing.payment_window, "consuming {ORDER_TOPIC}, {ORDER_TIMEOUT_TOPIC}, {PAYMENT_TOPIC}");
        Ok(Writer {
            consumers,
            coalescer,
            persister,
            lifecycle,
            stopping,
            sweeper,
            group_lease,
            group_filter,
            ledger: writer_ledger,
            metrics,
            mq,
        })
    }

    /// Stops taking new batches, lets the ones in flight commit, then stops the clients.
    pub async fn shutdown(mut self) {
        self.stopping.store(true, Ordering::Release);
        self.sweeper.abort();
        self.group_lease.abort();
        if let Some(metrics) = &self.metrics {
            metrics.abort();
        }
        for consumer in &mut self.consumers {
            consumer.shutdown().await;
        }
        // A call the consumer gave up waiting for may still be persisting: the producers it
        // sends with stop only after it (each persist bounded by its sends' timeout).
        if tokio::time::timeout(MERGING_SHUTDOWN_WAIT, self.coalescer.settled())
            .await
            .is_err()
        {
            tracing::warn!(
                "order persists still in flight after 15 s; their orders will be redelivered"
            );
        }
        self.lifecycle.shutdown().await;
        self.group_filter.release(&self.ledger).await;
        if let Ok(mut persister) = Arc::try_unwrap(self.persister) {
            persister.shutdown().await;
        }
        if tokio::time::timeout(RUNTIME_SHUTDOWN_WAIT, self.mq.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("RocketMQ client runtime did not stop within 5 s");
        }
        tracing::info!("order writer stopped");
    }
}
