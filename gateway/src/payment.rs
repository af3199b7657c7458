//! Payments and cancellations, as the gateway sees them: checked here, carried out by the order
//! writer (the gateway never touches PostgreSQL).
//!
//! - `POST /v1/payments/notify`: the payment provider's notification. The signature is checked
//!   over the raw body first (nothing else happens for a bad one), then the per-order rate
//!   bucket, then the order and amount
//!   against the ledger; an accepted notification is noted in the ledger (the first per order:
//!   the payment timeout applies it rather than cancel the order) and travels on
//!   `seckill_payment` to the writer, which records it once per payment id. A repeat is accepted
//!   again and changes nothing.
//! - `DELETE /v1/orders/{id}`: the owner cancels an unpaid order; the request travels on
//!   `seckill_order_timeout` (undelayed) to the writer, which cancels it if it is still unpaid
//!   and gives the stock back.

use http::HeaderMap;
use seckill_ledger::ledger::PaymentNotice;
use seckill_ledger::{ActivityId, ActivityKeys, OrderId, OrderStatus};
use seckill_messages::cancel::cancel_message;
use seckill_messages::payment::payment_message;
use seckill_messages::{CancelReason, CancelRequest, Message, MqError, Payment};
use seckill_service::now_ms;
use serde::{Deserialize, Serialize};

use crate::attempt::ledger_refusal;
use crate::outcome::Refusal;
use crate::App;

/// The notification body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Notice {
    order_id: String,
    payment_id: String,
    #[serde(deserialize_with = "crate::wire::integer")]
    amount_cents: i64,
}

#[derive(Debug, Serialize)]
pub struct Accepted {
    pub status: &'static str,
}

/// Checks `X-Signature: <hex hmac-sha256(payment secret, body)>`.
fn signature_ok(app: &App, headers: &HeaderMap, body: &[u8]) -> bool {
    headers
        .get("x-signature")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|signature| app.signature_key.verify(body, signature))
}

/// Hands one message to the writer; 503 unless the broker stored it within `notify_wait`.
async fn send(app: &App, message: Result<Message, MqError>, what: &str) -> Result<(), Refusal> {
    let message = message.map_err(|e| {
        tracing::error!(error = %e, "{what} message not encodable");
        Refusal::Internal
    })?;
    if app
        .publisher
        .send_one(message, app.config.timing.notify_wait)
        .await
    {
        Ok(())
    } else {
        Err(Refusal::Unavailable)
    }
}

pub async fn notify(app: &App, headers: &HeaderMap, body: &[u8]) -> Result<Accepted, Refusal> {
    if !signature_ok(app, headers, body) {
        return Err(Refusal::BadSignature);
    }
    let notice: Notice = serde_json::from_slice(body).map_err(|e| {
        Refusal::BadRequest(format!("body is not a payment notification: {e}").into())
    })?;
    if notice.payment_id.is_empty() || notice.payment_id.len() > 128 {
        return Err(Refusal::BadRequest(
            "payment_id must be 1 to 128 characters".into(),
        ));
    }
    let order_id = OrderId::parse(&notice.order_id).map_err(|_| Refusal::OrderNotFound)?;
    // Each costs Redis calls and a broker message: a provider retrying one order in a loop (or
    // a leaked secret) is bounded per order, and by the instance's global bucket.
    app.limits.check_payment(order_id)?;
    app.metrics.redis_call();
    let order = app
        .ledger
        .order(order_id)
        .await
        .map_err(|e| ledger_refusal(&e, "reading order"))?
        .ok_or(Refusal::OrderNotFound)?;
    if order.amount_cents != notice.amount_cents {
        return Err(Refusal::AmountMismatch);
    }
    // Recorded in the ledger first: a payment notified in time wins over the payment timeout
    // even while its message waits for a database that is down (the writer's expiry reads this).
    let keys = ActivityId::parse(&order.activity_id)
        .map(|id| ActivityKeys::new(&id))
        .map_err(|_| Refusal::OrderNotFound)?;
    app.ledger
        .note_payment(
            &keys,
            &PaymentNotice {
                order_id,
                payment_id: notice.payment_id.clone(),
                amount_cents: notice.amount_cents,
                accepted_at: now_ms(),
            },
        )
        .await
        .map_err(|e| ledger_refusal(&e, "recording the payment notice"))?;
    let payment = Payment {
        payment_id: notice.payment_id,
        order_id,
        amount_cents: notice.amount_cents,
    };
    send(
        app,
        payment_message(&payment, &order.activity_id),
        "payment",
    )
    .await?;
    Ok(Accepted { status: "accepted" })
}

#[derive(Debug, Serialize)]
pub struct Cancelling {
    pub order_id: OrderId,
    pub status: &'static str,
}

/// The owner's cancellation. 202 `cancelling` when requested, 200 `cancelled` when it already
/// is, 409 once paid.
pub async fn cancel(
    app: &App,
    headers: &HeaderMap,
    order_id: &str,
) -> Result<(bool, Cancelling), Refusal> {
    // A cancel costs Redis calls and a broker message: rate-limited per user like an attempt
    // (`owned_order` takes the token).
    let order = crate::query::owned_order(app, headers, order_id).await?;
    let order_id = order.order_id;
    match order.status {
        OrderStatus::Cancelled => Ok((
            false,
            Cancelling {
                order_id,
                status: "cancelled",
            },
        )),
        OrderStatus::Queued | OrderStatus::PendingPayment => {
            let request = CancelRequest {
                order_ids: vec![order_id],
                reason: CancelReason::User,
            };
            send(
                app,
                cancel_message(&request, &order.activity_id, None),
                "cancel",
            )
            .await?;
            Ok((
                true,
                Cancelling {
                    order_id,
                    status: "cancelling",
                },
            ))
        }
        OrderStatus::Paid | OrderStatus::Refunding | OrderStatus::Refunded => {
            Err(Refusal::NotCancellable)
        }
    }
}
