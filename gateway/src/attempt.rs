//! The buying path, `POST /v1/activities/{id}/orders`, as the phases of the request path
//! (`docs/ARCHITECTURE.md`, "The request path"). The cheapest refusal comes first: a crowd of
//! losers must cost almost nothing.
//!
//! 1. Route ([`route`]): an unknown activity, one not started or ended, is refused from memory
//!    before the body is read, the token checked or a task spawned. After sell-out a buyer who
//!    holds nothing is refused here too ([`sold_out_before_auth`]): that answer is the same
//!    whoever the caller is.
//! 2. [`parse`]: bearer token, body → [`ParsedAttempt`], or 400/401.
//! 3. Admission, no I/O: the sold-out flag for buyers who hold units, rate buckets, then the
//!    in-flight permit, held only while Redis (or, with `SECKILL_CONFIRM=broker`, the broker) is
//!    being called.
//! 4. Deduct: `deduct.lua`, which also makes a won order findable by its id (so
//!    `GET /v1/orders/{id}` finds it), in one call with the attempts queued meanwhile
//!    ([`crate::deduct`]).
//! 5. Enqueue: queue the won order to RocketMQ ([`crate::publish`]). With `SECKILL_CONFIRM=ledger` (the default)
//!    the answer is 202 at once: the deduct committed the order to the ledger and its outbox,
//!    and the relay republishes whatever the broker does not confirm. With
//!    `SECKILL_CONFIRM=broker` the 202 waits for the broker's confirmation; if it does not come
//!    within `Timing::publish_wait`, the answer is 503 and the order stays in the outbox for
//!    the relay: the buyer's retry finds it (200, their existing order).
//!
//! The caller maps the [`AttemptOutcome`] to HTTP.

use std::borrow::Cow;
use std::sync::Arc;

use http::HeaderMap;
use seckill_ledger::ledger::{Buyer, DeductOutcome};
use seckill_ledger::{ActivityId, LedgerError, UserId};
use seckill_service::{now_ms, now_unix};
use serde::Deserialize;

use crate::catalog::{Activity, Holders};
use crate::config::Confirm;
use crate::deduct::DeductError;
use crate::outcome::{AttemptOutcome, Refusal};
use crate::{auth, wire, App};

/// Largest quantity one attempt may ask for (the per-user limit usually bounds it further).
pub const MAX_QUANTITY: u32 = 100;
const DEFAULT_CHANNEL: &str = "web";

/// The optional JSON body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttemptBody {
    // As the contract types them (`crate::wire`): `2.0` is 2, `null` is not "absent".
    #[serde(default, deserialize_with = "wire::optional_integer")]
    quantity: Option<u32>,
    #[serde(default, deserialize_with = "wire::present")]
    channel: Option<String>,
}

/// A request that passed the parse phase.
#[derive(Debug)]
pub struct ParsedAttempt {
    pub activity: ActivityId,
    pub user: UserId,
    pub quantity: u32,
    pub channel: String,
}

/// Phase 1: the activity in the path and its window, before the token is looked at. From
/// memory for every activity this instance knows and every id that does not exist
/// ([`crate::catalog::Catalog::find`]); one load the first time a real activity is asked for.
pub async fn route(app: &App, id: &str) -> Result<(ActivityId, Arc<Activity>), Refusal> {
    let (id, activity) = find_activity(app, id).await?;
    check_window(&activity, now_ms())?;
    Ok((id, activity))
}

/// The activity a path names, through the catalog; 404 for an id that is not one.
pub async fn find_activity(app: &App, id: &str) -> Result<(ActivityId, Arc<Activity>), Refusal> {
    // An id that could never have been created cannot exist.
    let id = ActivityId::parse(id).map_err(|_| Refusal::ActivityNotFound)?;
    let activity = app
        .catalog
        .find(&id)
        .await
        .map_err(|e| ledger_refusal(&e, "loading activity"))?
        .ok_or(Refusal::ActivityNotFound)?;
    Ok((id, activity))
}

/// Phase 1 on a sold-out activity: true if the deduct would answer this attempt `sold_out`
/// whoever sent it — the buyer it names holds nothing and asks no more than the limit — so it
/// is refused before the token is checked. Anything else (a holder, whose retry must find their
/// order; a body to refuse; holders not read yet) goes the whole way.
pub fn sold_out_before_auth(activity: &Activity, headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(holders) = activity.holders_read() else {
        return false;
    };
    let Ok(body) = parse_body(body) else {
        return false;
    };
    let quantity = body.quantity.unwrap_or(1);
    auth::claimed_user(headers).is_some_and(|user| {
        !holds_units(&holders, user) && quantity <= activity.meta.per_user_limit
    })
}

fn holds_units(holders: &Holders, user: &str) -> bool {
    holders.get(user).is_some_and(|held| *held > 0)
}

fn parse_body(body: &[u8]) -> Result<AttemptBody, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(AttemptBody::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        Refusal::BadRequest(Cow::Owned(format!(
            "body is not valid JSON for an attempt: {e}"
        )))
    })
}

/// Phase 2: the token and the body, nothing from the ledger.
pub fn parse(
    app: &App,
    activity: ActivityId,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<ParsedAttempt, Refusal> {
    let user = auth::authenticate(headers, &app.token_key, now_unix())?;
    let body = parse_body(body)?;
    let quantity = body.quantity.unwrap_or(1);
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(Refusal::BadRequest(Cow::Owned(format!(
            "quantity must be between 1 and {MAX_QUANTITY}"
        ))));
    }
    let channel = body.channel.unwrap_or_else(|| DEFAULT_CHANNEL.to_owned());
    if channel.is_empty()
        || channel.len() > 32
        || !channel
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Refusal::BadRequest(Cow::Borrowed(
            "channel must be 1 to 32 characters of A-Z a-z 0-9 _ -",
        )));
    }
    Ok(ParsedAttempt {
        activity,
        user,
        quantity,
        channel,
    })
}

/// The sale's window, from the cached metadata.
fn check_window(activity: &Activity, now_ms: i64) -> Result<(), Refusal> {
    let meta = &activity.meta;
    if meta.closed || now_ms >= meta.ends_at_ms {
        return Err(Refusal::Ended);
    }
    if now_ms < meta.starts_at_ms {
        return Err(Refusal::NotStarted);
    }
    Ok(())
}

/// The part of phase 3 that needs the cached activity: window (again: the clock moved since
/// phase 1, or the activity was just loaded) and sold-out flag.
async fn check_cached(
    app: &App,
    activity: &Arc<Activity>,
    attempt: &ParsedAttempt,
    now_ms: i64,
) -> Result<(), AttemptOutcome> {
    check_window(activity, now_ms)?;
    if activity.is_sold_out() {
        return Err(after_sell_out(app, activity, attempt).await);
    }
    Ok(())
}

/// An attempt on a flagged activity gets what `deduct.lua` would answer it with no stock left:
/// its order (200) if the buyer holds their whole allowance, `limit_exceeded` if the quantity
/// would take them over it, else `sold_out`. Buyers who hold nothing — nearly everyone — are
/// answered from memory once the activity's holders are read ([`Catalog::holders`], once per
/// sell-out); the ledger is asked only about a buyer who holds their whole allowance.
///
/// [`Catalog::holders`]: crate::catalog::Catalog::holders
async fn after_sell_out(
    app: &App,
    activity: &Arc<Activity>,
    attempt: &ParsedAttempt,
) -> AttemptOutcome {
    app.metrics.sold_out_short_circuit();
    let limit = activity.meta.per_user_limit;
    let held = match app.catalog.holders(activity).await {
        Ok(holders) => holders.get(attempt.user.as_str()).copied().unwrap_or(0),
        Err(e) => return ledger_refusal(&e, "reading the buyers").into(),
    };
    if held.saturating_add(attempt.quantity) <= limit {
        return Refusal::SoldOut.into();
    }
    if held < limit {
        return Refusal::LimitExceeded.into();
    }
    let buyer = match ask_ledger(app, activity, attempt).await {
        Ok(found) => found,
        Err(r) => return r.into(),
    };
    match buyer.order {
        Some(order) => AttemptOutcome::Repeat {
            order_id: order.order_id,
            status: order.status,
        },
        None => {
            tracing::error!(activity = %activity.keys.id, user = %attempt.user, "buyer holds units but has no order");
            Refusal::Internal.into()
        }
    }
}

/// One buyer's holding and latest order, from the ledger (rate-limited per user).
async fn ask_ledger(
    app: &App,
    activity: &Activity,
    attempt: &ParsedAttempt,
) -> Result<Buyer, Refusal> {
    app.limits.check_rate(&attempt.user)?;
    app.metrics.redis_call();
    app.ledger
        .buyer(&activity.keys, &attempt.user)
        .await
        .map_err(|e| ledger_refusal(&e, "reading the buyer"))
}

/// Logs a ledger error once and turns it into what the client may see.
pub fn ledger_refusal(error: &LedgerError, what: &str) -> Refusal {
    if error.is_retryable() {
        tracing::warn!(error = %error, "{what}: ledger unavailable");
        Refusal::Unavailable
    } else {
        tracing::error!(error = %error, "{what}: ledger error");
        Refusal::Internal
    }
}

/// Phases 3 to 5.
pub async fn run(app: &Arc<App>, attempt: ParsedAttempt) -> AttemptOutcome {
    match decide(app, &attempt).await {
        Ok(outcome) | Err(outcome) => outcome,
    }
}

async fn decide(app: &Arc<App>, attempt: &ParsedAttempt) -> Result<AttemptOutcome, AttemptOutcome> {
    let now = now_ms();
    // Phase 3, admission (no I/O).
    let cached = app.catalog.cached(&attempt.activity);
    if let Some(activity) = &cached {
        check_cached(app, activity, attempt, now).await?;
    }
    app.limits.check_rate(&attempt.user)?;
    // Held until the attempt is decided: the deduct and, for a winner with
    // `SECKILL_CONFIRM=broker`, the wait for the broker.
    let _permit = app.limits.admit()?;

    let activity = match cached {
        Some(activity) => activity,
        None => match app.catalog.find(&attempt.activity).await {
            Ok(Some(activity)) => {
                check_cached(app, &activity, attempt, now).await?;
                activity
            }
            Ok(None) => return Err(Refusal::ActivityNotFound.into()),
            Err(e) => return Err(ledger_refusal(&e, "loading activity").into()),
        },
    };

    // Phase 4, deduct (batched with the attempts queued meanwhile).
    app.catalog.serving(&activity);
    let deducted = app
        .deducter
        .deduct(&activity, &attempt.user, attempt.quantity, &attempt.channel)
        .await
        .map_err(|e| match e {
            DeductError::Ledger(e) => ledger_refusal(&e, "deduct"),
            DeductError::Stopped => Refusal::Unavailable,
        })?;

    Ok(match deducted {
        DeductOutcome::Won { record, stock_left } => {
            if stock_left <= 0 {
                sold_out(app, &activity.keys.id);
            }
            // Phase 5. The order is already safe in the ledger, findable by its id, and in its
            // outbox, from which the relay republishes whatever the broker never confirms; the
            // publish hands it to the writer.
            let order_id = record.order_id;
            let confirmed = match app.config.confirm {
                Confirm::Ledger => {
                    if !app.publisher.publish_behind(*record) {
                        app.metrics.publish_deferred();
                    }
                    true
                }
                Confirm::Broker => {
                    app.publisher
                        .publish(*record, app.config.timing.publish_wait)
                        .await
                }
            };
            if !confirmed {
                app.metrics.publish_unconfirmed();
                return Err(Refusal::Unavailable.into());
            }
            AttemptOutcome::Won { order_id }
        }
        DeductOutcome::Repeat {
            order_id: Some(order_id),
            status,
        } => AttemptOutcome::Repeat {
            order_id,
            status: status.unwrap_or(seckill_ledger::OrderStatus::Queued),
        },
        DeductOutcome::Repeat { order_id: None, .. } => {
            tracing::error!(activity = %activity.keys.id, user = %attempt.user, "buyer holds units but has no order");
            Refusal::Internal.into()
        }
        DeductOutcome::SoldOut { stock_left } => {
            if stock_left <= 0 {
                sold_out(app, &activity.keys.id);
            }
            Refusal::SoldOut.into()
        }
        DeductOutcome::LimitExceeded => Refusal::LimitExceeded.into(),
        DeductOutcome::NotStarted => Refusal::NotStarted.into(),
        DeductOutcome::Ended => Refusal::Ended.into(),
        DeductOutcome::NotFound => Refusal::ActivityNotFound.into(),
    })
}

/// Raises the local flag and, on the first sighting, tells the other instances.
fn sold_out(app: &Arc<App>, id: &ActivityId) {
    if app.catalog.mark_sold_out(id) {
        let catalog = app.catalog.clone();
        let id = id.clone();
        tokio::spawn(async move { catalog.announce_sold_out(&id).await });
    }
}
