//! The read endpoints: an activity as buyers see it, and an order as its owner sees it.

use http::HeaderMap;
use seckill_ledger::{ActivityId, ActivityKeys, OrderId, OrderRecord, UserId};
use seckill_service::clock::rfc3339;
use seckill_service::{now_ms, now_unix};
use serde::Serialize;

use crate::attempt::ledger_refusal;
use crate::outcome::Refusal;
use crate::{auth, App};

/// `GET /v1/activities/{id}`.
#[derive(Debug, Serialize)]
pub struct ActivityView {
    pub id: String,
    pub name: String,
    pub price_cents: i64,
    pub stock_total: i64,
    pub stock_left: i64,
    pub per_user_limit: u32,
    pub starts_at: String,
    pub ends_at: String,
    pub state: &'static str,
    /// The gateway's clock (same format as `starts_at`): pages count down against it, not
    /// against the buyer's.
    pub server_time: String,
}

/// `GET /v1/orders/{order_id}`.
#[derive(Debug, Serialize)]
pub struct OrderView {
    pub order_id: OrderId,
    pub activity_id: String,
    pub user_id: String,
    pub quantity: u32,
    pub amount_cents: i64,
    pub status: &'static str,
    pub created_at: String,
}

pub async fn activity(app: &App, id: &str) -> Result<ActivityView, Refusal> {
    let (_, activity) = crate::attempt::find_activity(app, id).await?;
    // After sell-out the flag answers; otherwise one GET for the live figure.
    let stock_left = if activity.is_sold_out() {
        0
    } else {
        app.metrics.redis_call();
        app.ledger
            .stock_left(&activity.keys)
            .await
            .map_err(|e| ledger_refusal(&e, "reading stock"))?
    };
    let meta = &activity.meta;
    let now = now_ms();
    Ok(ActivityView {
        id: meta.id.to_string(),
        name: meta.name.clone(),
        price_cents: meta.price_cents,
        stock_total: meta.stock_total,
        stock_left,
        per_user_limit: meta.per_user_limit,
        starts_at: rfc3339(meta.starts_at_ms),
        ends_at: rfc3339(meta.ends_at_ms),
        state: meta.state(now, stock_left).as_str(),
        server_time: rfc3339(now),
    })
}

/// The order `order_id` if the bearer token's user owns it. Someone else's order is answered
/// exactly like a missing one (404), so ids cannot be probed.
pub async fn owned_order(
    app: &App,
    headers: &HeaderMap,
    order_id: &str,
) -> Result<OrderRecord, Refusal> {
    let user = auth::authenticate(headers, &app.token_key, now_unix())?;
    app.limits.check_rate(&user)?;
    order_of(app, &user, order_id).await
}

/// The order `order_id` if `user` owns it (404 otherwise, as for a missing one).
pub async fn order_of(app: &App, user: &UserId, order_id: &str) -> Result<OrderRecord, Refusal> {
    let order_id = OrderId::parse(order_id).map_err(|_| Refusal::OrderNotFound)?;
    app.metrics.redis_call();
    app.ledger
        .order(order_id)
        .await
        .map_err(|e| ledger_refusal(&e, "reading order"))?
        .filter(|record| record.user_id == user.as_str())
        .ok_or(Refusal::OrderNotFound)
}

pub async fn order(app: &App, headers: &HeaderMap, order_id: &str) -> Result<OrderView, Refusal> {
    Ok(OrderView::from(owned_order(app, headers, order_id).await?))
}

/// `GET /v1/activities/{id}/order`: the bearer's latest order in an activity, whatever its
/// status, from the ledger — how a buyer learns whether they won after an uncertain answer (a
/// timeout, a 503). Rate-limited per user like an attempt.
pub async fn buyer_order(
    app: &App,
    headers: &HeaderMap,
    activity: &str,
) -> Result<OrderView, Refusal> {
    let activity = ActivityId::parse(activity).map_err(|_| Refusal::ActivityNotFound)?;
    let user = auth::authenticate(headers, &app.token_key, now_unix())?;
    app.limits.check_rate(&user)?;
    app.metrics.redis_call();
    app.ledger
        .buyer(&ActivityKeys::new(&activity), &user)
        .await
        .map_err(|e| ledger_refusal(&e, "reading the buyer"))?
        .order
        .map(OrderView::from)
        .ok_or(Refusal::OrderNotFound)
}

impl From<OrderRecord> for OrderView {
    fn from(record: OrderRecord) -> Self {
        OrderView {
            order_id: record.order_id,
            activity_id: record.activity_id,
            user_id: record.user_id,
            quantity: record.quantity,
            amount_cents: record.amount_cents,
            status: record.status.as_str(),
            created_at: rfc3339(record.created_at),
        }
    }
}
