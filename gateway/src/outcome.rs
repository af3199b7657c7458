//! Typed outcomes of every endpoint. Each phase returns one of these; `crate::http` (its
//! `refusal` and the per-endpoint response functions) is the one place that turns them into
//! status codes and JSON bodies.

use std::borrow::Cow;

use http::StatusCode;
use seckill_ledger::{OrderId, OrderStatus};

/// Why a request was not served as asked. Clients see `code` and `detail`, never internal errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    BadRequest(Cow<'static, str>),
    Unauthorized(&'static str),
    ActivityNotFound,
    OrderNotFound,
    NotStarted,
    Ended,
    SoldOut,
    LimitExceeded,
    RateLimited {
        retry_after_secs: u64,
    },
    /// The in-flight cap is reached (load shedding).
    Overloaded,
    /// A dependency is unreachable or timed out (Redis; or the broker, for payments, cancels and
    /// wins with `SECKILL_CONFIRM=broker`): retrying later may work.
    Unavailable,
    /// A bug or corrupt data; details are in the log, not in the answer.
    Internal,
    RouteNotFound,
    MethodNotAllowed,
    /// A payment notification whose X-Signature does not match its body.
    BadSignature,
    /// A payment whose amount is not the order's.
    AmountMismatch,
    /// The order is paid (or past it): it can no longer be cancelled.
    NotCancellable,
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Refusal::ActivityNotFound | Refusal::OrderNotFound | Refusal::RouteNotFound => {
                StatusCode::NOT_FOUND
            }
            Refusal::NotStarted => StatusCode::FORBIDDEN,
            Refusal::Ended => StatusCode::GONE,
            Refusal::SoldOut | Refusal::LimitExceeded => StatusCode::CONFLICT,
            Refusal::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Overloaded | Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::BadSignature => StatusCode::UNAUTHORIZED,
            Refusal::AmountMismatch | Refusal::NotCancellable => StatusCode::CONFLICT,
        }
    }

    /// The machine-readable `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::BadRequest(_) => "bad_request",
            Refusal::Unauthorized(_) => "unauthorized",
            Refusal::ActivityNotFound => "activity_not_found",
            Refusal::OrderNotFound => "order_not_found",
            Refusal::NotStarted => "not_started",
            Refusal::Ended => "ended",
            Refusal::SoldOut => "sold_out",
            Refusal::LimitExceeded => "limit_exceeded",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::Overloaded => "overloaded",
            Refusal::Unavailable => "unavailable",
            Refusal::Internal => "internal",
            Refusal::RouteNotFound => "not_found",
            Refusal::MethodNotAllowed => "method_not_allowed",
            Refusal::BadSignature => "bad_signature",
            Refusal::AmountMismatch => "amount_mismatch",
            Refusal::NotCancellable => "not_cancellable",
        }
    }

    /// The human-readable `detail` field.
    pub fn detail(&self) -> Cow<'static, str> {
        match self {
            Refusal::BadRequest(detail) => detail.clone(),
            Refusal::Unauthorized(detail) => Cow::Borrowed(detail),
            Refusal::ActivityNotFound => "no such activity".into(),
            Refusal::OrderNotFound => "no such order for this user".into(),
            Refusal::NotStarted => "the sale has not started yet".into(),
            Refusal::Ended => "the sale has ended".into(),
            Refusal::SoldOut => "sold out".into(),
            Refusal::LimitExceeded => "this would exceed the per-user limit".into(),
            Refusal::RateLimited { .. } => {
                "too many attempts; retry after the indicated time".into()
            }
            Refusal::Overloaded => "the gateway is at capacity; retry shortly".into(),
            Refusal::Unavailable => {
                "the stock ledger or the order queue did not answer in time; retry shortly".into()
            }
            Refusal::Internal => "internal error".into(),
            Refusal::RouteNotFound => "no such endpoint".into(),
            Refusal::MethodNotAllowed => "method not allowed on this endpoint".into(),
            Refusal::BadSignature => "X-Signature is not the HMAC-SHA256 of the body".into(),
            Refusal::AmountMismatch => "the amount is not the order's amount".into(),
            Refusal::NotCancellable => "the order is paid and can no longer be cancelled".into(),
        }
    }

    /// Seconds for a `Retry-After` header, where one applies.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Refusal::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            Refusal::Overloaded | Refusal::Unavailable => Some(1),
            _ => None,
        }
    }
}

/// What a buying attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A new order: 202.
    Won {
        order_id: OrderId,
    },
    /// The same user again: 200 with their existing order.
    Repeat {
        order_id: OrderId,
        status: OrderStatus,
    },
    Refused(Refusal),
}

impl From<Refusal> for AttemptOutcome {
    fn from(refusal: Refusal) -> Self {
        AttemptOutcome::Refused(refusal)
    }
}

impl AttemptOutcome {
    /// The metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            AttemptOutcome::Won { .. } => "won",
            AttemptOutcome::Repeat { .. } => "repeat",
            AttemptOutcome::Refused(refusal) => refusal.code(),
        }
    }
}
