//! The RocketMQ client side every process shares: the runtime the clients run on, and the one
//! way to build a producer or a push consumer with this project's settings.

use std::sync::Arc;
use std::time::Duration;

use rocketmq_client_rust::{
    ClientRuntime, ClientRuntimeConfig, DefaultMQProducer, DefaultMQPushConsumer,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::result::SendStatus;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

use crate::{Message, MqError};

/// Blocking-lane slots of the client runtime (listeners run there).
pub const BLOCKING_LANE: usize = 64;
/// Concurrent consume calls of a consumer that does its work in the call: well below
/// [`BLOCKING_LANE`] so that each can also get a slot for its nested local transaction.
pub const CONSUME_THREADS: u32 = 4;

/// The runtime every RocketMQ client of a process runs on. Keep it alive as long as the clients.
pub struct MqRuntime {
    owner: RuntimeOwner,
    client_runtime: Arc<ClientRuntime>,
    telemetry: rocketmq_observability::TelemetryRuntimeGuard,
}

impl MqRuntime {
    /// Starts the client runtime. `scope` names its threads.
    pub fn start(scope: &str) -> Result<Self, MqError> {
        // The client runs listeners (consume, local transaction, check-back) on its
        // "metadata I/O" blocking lane, sized from the core count by default: a handful of slots
        // on this 2-core machine. A consume call holds a slot while its transactional send needs
        // another for the local transaction, so a small lane deadlocks under a backlog. Give the
        // lane room; consumers cap their own concurrency well below it (see CONSUME_THREADS).
        let mut config = RuntimeConfig {
            thread_name: format!("rocketmq-{scope}"),
            ..Default::default()
        }
        .with_max_blocking_threads(BLOCKING_LANE)
        .map_err(|e| MqError::Runtime {
            what: "config",
            detail: e.to_string(),
        })?;
        config.blocking_lane_policies.metadata_io.max_concurrency = BLOCKING_LANE;
        config.blocking_lane_policies.metadata_io.max_queue_depth = 4 * BLOCKING_LANE;
        let owner = RuntimeOwner::plan(config)
            .map_err(|e| MqError::Runtime {
                what: "plan",
                detail: e.to_string(),
            })?
            .build()
            .map_err(|e| MqError::Runtime {
                what: "build",
                detail: e.to_string(),
            })?;
        // Our own tracing subscriber stays in charge of logs: the client's logging is off.
        let mut telemetry_config = rocketmq_observability::TelemetryBootstrapConfig::default();
        telemetry_config.logging.enabled = false;
        let telemetry = rocketmq_observability::install_global(&telemetry_config).map_err(|e| {
            MqError::Runtime {
                what: "telemetry",
                detail: e.to_string(),
            }
        })?;
        let client_runtime = ClientRuntime::try_new(
            owner.root_context().component("client"),
            ClientRuntimeConfig::default(),
            telemetry.handle(),
        )?;
        Ok(MqRuntime {
            owner,
            client_runtime,
            telemetry,
        })
    }

    pub fn client_runtime(&self) -> Arc<ClientRuntime> {
        Arc::clone(&self.client_runtime)
    }

    /// Stops the runtime after every client on it was shut down.
    pub async fn shutdown(self) {
        let _ = self.client_runtime.shutdown().await;
        let _ = self.owner.shutdown_tasks().await;
        let _ = self.owner.shutdown_background();
        let _ = self.telemetry.shutdown();
    }
}

/// A started producer of `group` on `namesrv`; `send_timeout` is the broker's own deadline for
/// one send, retried once on another broker when it fails.
pub async fn producer(
    runtime: &MqRuntime,
    group: &str,
    namesrv: &str,
    send_timeout: Duration,
) -> Result<DefaultMQProducer, MqError> {
    let mut producer = DefaultMQProducer::builder(runtime.client_runtime())
        .producer_group(group.to_owned())
        .name_server_addr(namesrv.to_owned())
        .send_msg_timeout(send_timeout.as_millis().min(u128::from(u32::MAX)) as u32)
        .retry_times_when_send_failed(1)
        .build();
    producer.start().await?;
    Ok(producer)
}

/// Queues per broker of a topic created by [`spread_topics`] (the broker's default for a topic
/// it creates on first use).
pub const TOPIC_QUEUES: i32 = 8;

/// The broker template topic: every broker with `autoCreateTopicEnable` serves it, so its
/// route lists the brokers that take new topics.
const TEMPLATE_TOPIC: &str = "TBW102";

/// Gives every topic of the project ([`crate::ALL_TOPICS`]) queues on every broker under the
/// name server. A broker creates a topic when a first message reaches it, so with several
/// brokers a topic would otherwise live on whichever one its first messages happened to reach,
/// and writers could not share the load of the others. Topics already on every broker are left
/// as they are. Returns the topics it created or extended.
pub async fn spread_topics(runtime: &MqRuntime, namesrv: &str) -> Result<Vec<String>, MqError> {
    let mut admin = DefaultMQProducer::builder(runtime.client_runtime())
        .producer_group("seckill_topic_admin".to_owned())
        .name_server_addr(namesrv.to_owned())
        .build();
    admin.start().await?;
    let result = spread_with(&mut admin).await;
    admin.shutdown().await;
    result
}

async fn spread_with(admin: &mut DefaultMQProducer) -> Result<Vec<String>, MqError> {
    use std::collections::BTreeMap;
    // Queues per broker name.
    let per_broker = |queues: Vec<rocketmq_model::message::MessageQueue>| {
        let mut brokers: BTreeMap<String, i32> = BTreeMap::new();
        for queue in &queues {
            *brokers.entry(queue.broker_name().to_string()).or_default() += 1;
        }
        brokers
    };
    let all = per_broker(admin.fetch_publish_message_queues(TEMPLATE_TOPIC).await?);
    let mut spread = Vec::new();
    for topic in crate::ALL_TOPICS {
        let on = match admin.fetch_publish_message_queues(topic).await {
            Ok(queues) => per_broker(queues),
            // No broker has it yet: created on every one.
            Err(e) if not_found(&e) => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        if all.keys().all(|broker| on.contains_key(broker)) {
            continue;
        }
        // Creating sends create-or-update to every broker of the template's route, those that
        // have the topic included: with their own queue count (the largest, if they differ),
        // so no queue an operator added is taken away.
        let queues = on.values().copied().max().unwrap_or(TOPIC_QUEUES);
        admin
            .create_topic(TEMPLATE_TOPIC, topic, queues, Default::default())
            .await?;
        tracing::info!(topic, queues, brokers = ?all.keys().collect::<Vec<_>>(), "topic given queues on every broker");
        spread.push((*topic).to_owned());
    }
    Ok(spread)
}

/// Whether a route lookup failed because the topic does not exist (anything else — a timeout,
/// an unreachable name server — must not pass for it). The client (1.0.0) answers a topic the
/// name server does not know with an "Argument is invalid" error whose source says "… Can not
/// find Message Queue for this topic, <topic>": the whole chain is looked at, since the error's
/// own text does not say which argument.
fn not_found(error: &rocketmq_client_rust::ClientError) -> bool {
    crate::error::causes(error).any(|cause| {
        cause
            .to_string()
            .to_ascii_lowercase()
            .contains("can not find message queue for this topic")
    })
}

/// Sends one batch; Ok only when the broker answers SEND_OK (stored), so a caller never counts
/// a batch the broker did not store.
pub async fn send_batch(
    producer: &DefaultMQProducer,
    messages: Vec<Message>,
    timeout: Duration,
) -> Result<(), MqError> {
    match producer
        .send_batch_with_timeout(messages, timeout.as_millis() as u64)
        .await
    {
        Ok(result) if result.send_status == SendStatus::SendOk => Ok(()),
        Ok(result) => Err(MqError::NotStored(result.send_status)),
        Err(e) => Err(MqError::from(e)),
    }
}

/// Sends one message; Ok only when the broker answers SEND_OK.
pub async fn send_one(producer: &DefaultMQProducer, message: Message) -> Result<(), MqError> {
    match producer.send(message).await {
        Ok(Some(result)) if result.send_status == SendStatus::SendOk => Ok(()),
        Ok(Some(result)) => Err(MqError::NotStored(result.send_status)),
        Ok(None) => Err(MqError::NoResult),
        Err(e) => Err(MqError::from(e)),
    }
}

/// Where a push consumer's group starts, and how it consumes.
#[derive(Clone, Debug)]
pub struct ConsumerOptions {
    pub group: String,
    pub namesrv: String,
    /// `None`: from the first message the broker holds; `Some(ms)`: from this Unix time (a new
    /// group only; a group that consumed before resumes where it stopped).
    pub start_at_ms: Option<i64>,
    /// Messages handed to one listener call (also the pull size, so a pull can fill a call).
    pub batch: u32,
    /// How long shutdown waits for listener calls in flight.
    pub shutdown_wait: Duration,
    /// Pause between two pulls of one queue that found messages (zero: pull again at once).
    pub pull_interval: Duration,
    /// Listener calls at once (each holds a slot of [`BLOCKING_LANE`]; see
    /// [`CONSUME_THREADS`]).
    pub threads: u32,
}

/// The most one pull brings, in MiB.
const PULL_MIB: u32 = 1;

/// A push consumer (not started: subscribe and register its listener first).
pub fn consumer(runtime: &MqRuntime, options: &ConsumerOptions) -> DefaultMQPushConsumer {
    let mut builder = DefaultMQPushConsumer::builder(runtime.client_runtime());
    builder = match options.start_at_ms {
        None => builder.consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset),
        Some(ms) => builder
            .consume_from_where(ConsumeFromWhere::ConsumeFromTimestamp)
            .consume_timestamp(consume_timestamp(ms)),
    };
    builder
        .consumer_group(options.group.clone())
        .name_server_addr(options.namesrv.clone())
        .consume_message_batch_max_size(options.batch)
        // The client's default pull brings 32 messages: a bigger listener batch needs bigger
        // pulls to ever fill.
        .pull_batch_size(options.batch.max(32))
        .pull_interval(options.pull_interval.as_millis() as u64)
        // Room for a few pulls per queue while the listener works on the last: the client stops
        // pulling a queue holding more than this many unconsumed messages (default 1000), or
        // more than this many MiB of them (default 100). Both bound the same four pulls: a
        // packed order message carries up to 64 orders (~21 KB), so the count alone would let
        // a backlog cache ~86 MB per queue.
        .pull_threshold_for_queue(4 * options.batch.max(256))
        .pull_threshold_size_for_queue(PULL_MIB * 4)
        .consume_concurrently_max_span(4 * options.batch.max(500))
        // A pull may bring up to 1 MiB (the client's default, 256 KiB, would stop a pull of
        // ~330-byte orders well short of 1024 messages; the broker allows 1 MiB).
        .pull_batch_size_in_bytes(PULL_MIB << 20)
        .consume_thread_min(options.threads)
        .consume_thread_max(options.threads)
        .await_termination_millis_when_shutdown(options.shutdown_wait.as_millis() as u64)
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
