//! RocketMQ plumbing shared by the gateway, the order writer and `seckillctl`: the client
//! runtime, topic names and the order message.
//!
//! The order message is the ledger's order record as JSON, keyed by the order id, so a consumer
//! needs nothing but the message to persist the order. Every message about an order carries its
//! activity id as the tag, so a writer group can be dedicated to some activities.

use std::sync::Arc;

use rocketmq_client_rust::{ClientError, ClientRuntime, ClientRuntimeConfig};
use rocketmq_model::common::message::message_single::Message;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

use crate::order::{OrderId, OrderRecord};
use serde::{Deserialize, Serialize};

/// Gateway → writer: each winning order.
pub const ORDER_TOPIC: &str = "seckill_order";
/// Writer → downstream: lifecycle events (`ORDER_CREATED`, …), sent as transactional messages.
pub const ORDER_EVENT_TOPIC: &str = "seckill_order_event";
/// Writer → writer: cancel requests, delayed until the payment window ends (or immediate, when
/// the owner cancels).
pub const ORDER_TIMEOUT_TOPIC: &str = "seckill_order_timeout";
/// Gateway → writer: payment notifications.
pub const PAYMENT_TOPIC: &str = "seckill_payment";
/// Name server of the local stack.
pub const DEFAULT_NAMESRV: &str = "127.0.0.1:9876";
/// The most messages the gateway puts in one batch send.
pub const MAX_BATCH: usize = 64;

/// Blocking-lane slots of the client runtime (listeners run there).
pub const BLOCKING_LANE: usize = 64;
/// Concurrent consume calls per consumer: well below [`BLOCKING_LANE`] so that each can also
/// get a slot for its nested local transaction.
pub const CONSUME_THREADS: u32 = 4;

/// Tags of `seckill_order_event` messages.
pub const ORDER_CREATED: &str = "ORDER_CREATED";

/// A RocketMQ failure, with the client's own message.
#[derive(Debug, thiserror::Error)]
#[error("rocketmq: {0}")]
pub struct MqError(pub String);

impl From<ClientError> for MqError {
    fn from(e: ClientError) -> Self {
        MqError(e.to_string())
    }
}

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
        .map_err(|e| MqError(format!("runtime config: {e}")))?;
        config.blocking_lane_policies.metadata_io.max_concurrency = BLOCKING_LANE;
        config.blocking_lane_policies.metadata_io.max_queue_depth = 4 * BLOCKING_LANE;
        let owner = RuntimeOwner::plan(config)
            .map_err(|e| MqError(format!("runtime plan: {e}")))?
            .build()
            .map_err(|e| MqError(format!("runtime: {e}")))?;
        // Our own tracing subscriber stays in charge of logs: the client's logging is off.
        let mut telemetry_config = rocketmq_observability::TelemetryBootstrapConfig::default();
        telemetry_config.logging.enabled = false;
        let telemetry = rocketmq_observability::install_global(&telemetry_config)
            .map_err(|e| MqError(format!("telemetry: {e}")))?;
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

/// The `seckill_order` message of one order: key = order id, tag = activity id.
pub fn order_message(order: &OrderRecord) -> Message {
    let body = serde_json::to_vec(order).unwrap_or_default();
    Message::builder()
        .topic(ORDER_TOPIC)
        .tags(order.activity_id.as_str())
        .key(order.order_id.to_string())
        .body_slice(&body)
        .build_unchecked()
}

/// Decodes a `seckill_order` message body.
pub fn decode_order(body: &[u8]) -> Result<OrderRecord, serde_json::Error> {
    serde_json::from_slice(body)
}

/// A `seckill_payment` message: a payment notification the gateway accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub payment_id: String,
    pub order_id: OrderId,
    pub amount_cents: i64,
}

/// Why an order is being cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The payment window passed (delay message or sweep).
    Timeout,
    /// The owner cancelled it (`DELETE /v1/orders/{id}`).
    User,
}

/// A `seckill_order_timeout` message: cancel these orders if they are still unpaid — one order
/// for an owner's cancel, a persisted batch (of one activity) whose payment windows have all
/// ended for a timeout. Reads the older one-order form (`"order_id"`) too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    #[serde(alias = "order_id", deserialize_with = "one_or_many")]
    pub order_ids: Vec<OrderId>,
    pub reason: CancelReason,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<OrderId>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(OrderId),
        Many(Vec<OrderId>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(id) => vec![id],
        OneOrMany::Many(ids) => ids,
    })
}

/// The `seckill_payment` message of a payment (key = order id, tag = its activity).
pub fn payment_message(payment: &Payment, activity: &str) -> Message {
    Message::builder()
        .topic(PAYMENT_TOPIC)
        .tags(activity)
        .key(payment.order_id.to_string())
        .body_slice(&serde_json::to_vec(payment).unwrap_or_default())
        .build_unchecked()
}

/// The `seckill_order_timeout` message of a cancel request (tag = its activity, keys = its order
/// ids), delivered at `deliver_at_ms` (a payment window's end) or at once.
pub fn cancel_message(
    request: &CancelRequest,
    activity: &str,
    deliver_at_ms: Option<u64>,
) -> Message {
    let builder = Message::builder()
        .topic(ORDER_TIMEOUT_TOPIC)
        .tags(activity)
        .key(
            request
                .order_ids
                .iter()
                .map(|id| id.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        )
        .body_slice(&serde_json::to_vec(request).unwrap_or_default());
    match deliver_at_ms {
        Some(at) => builder.deliver_time_ms(at).build_unchecked(),
        None => builder.build_unchecked(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_requests_carry_many_orders_and_read_the_one_order_form() {
        let batch = CancelRequest {
            order_ids: vec![OrderId(7), OrderId(9)],
            reason: CancelReason::Timeout,
        };
        let text = serde_json::to_string(&batch).unwrap();
        assert_eq!(text, r#"{"order_ids":["7","9"],"reason":"timeout"}"#);
        assert_eq!(serde_json::from_str::<CancelRequest>(&text).unwrap(), batch);
        let old: CancelRequest =
            serde_json::from_str(r#"{"order_id":"42","reason":"user"}"#).unwrap();
        assert_eq!(old.order_ids, vec![OrderId(42)]);
        assert_eq!(old.reason, CancelReason::User);
    }
}
