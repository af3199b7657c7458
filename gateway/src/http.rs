//! HTTP: routing, body limits, and the one mapping from typed outcomes to responses.

use std::convert::Infallible;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;

use crate::attempt::ParsedAttempt;
use crate::cors::Cors;
use crate::outcome::{AttemptOutcome, Refusal};
use crate::{attempt, payment, query, App};

/// Largest accepted request body.
pub const MAX_BODY: usize = 4 * 1024;

type Body = Full<Bytes>;

const JSON: HeaderValue = HeaderValue::from_static("application/json");

fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    response
}

fn error_body(refusal: &Refusal) -> Bytes {
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        error: &'a str,
        detail: &'a str,
    }
    let detail = refusal.detail();
    let body = ErrorBody {
        error: refusal.code(),
        detail: &detail,
    };
    Bytes::from(serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec()))
}

/// The bodies of the refusals a crowd gets by the thousand, serialised once (a clone of
/// `Bytes` is a reference count).
static CANNED: LazyLock<Vec<(Refusal, Bytes)>> = LazyLock::new(|| {
    [
        Refusal::SoldOut,
        Refusal::Ended,
        Refusal::NotStarted,
        Refusal::ActivityNotFound,
        Refusal::LimitExceeded,
        Refusal::RouteNotFound,
        Refusal::Overloaded,
        Refusal::Unavailable,
    ]
    .into_iter()
    .map(|r| {
        let body = error_body(&r);
        (r, body)
    })
    .collect()
});

/// The error shape of the contract: `{"error": "<code>", "detail": "<human text>"}`.
pub fn refusal(refusal: &Refusal) -> Response<Body> {
    let body = CANNED
        .iter()
        .find(|(canned, _)| canned == refusal)
        .map_or_else(|| error_body(refusal), |(_, body)| body.clone());
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = refusal.status();
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    if let Some(secs) = refusal.retry_after_secs() {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn attempt_response(outcome: &AttemptOutcome) -> Response<Body> {
    #[derive(Serialize)]
    struct OrderRef<'a> {
        order_id: String,
        status: &'a str,
    }
    match outcome {
        AttemptOutcome::Won { order_id } => json(
            StatusCode::ACCEPTED,
            &OrderRef {
                order_id: order_id.to_string(),
                status: "queued",
            },
        ),
        AttemptOutcome::Repeat { order_id, status } => json(
            StatusCode::OK,
            &OrderRef {
                order_id: order_id.to_string(),
                status: status.as_str(),
            },
        ),
        AttemptOutcome::Refused(r) => refusal(r),
    }
}

fn ok_or_refusal<T: Serialize>(result: Result<T, Refusal>) -> Response<Body> {
    match result {
        Ok(value) => json(StatusCode::OK, &value),
        Err(r) => refusal(&r),
    }
}

/// Reads a body of at most [`MAX_BODY`] bytes.
async fn read_body(
    body: Incoming,
    declared: Option<&HeaderValue>,
    within: std::time::Duration,
) -> Result<Bytes, Refusal> {
    let too_large = || Refusal::BadRequest(format!("body exceeds {MAX_BODY} bytes").into());
    if let Some(len) = declared
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > MAX_BODY {
            return Err(too_large());
        }
    }
    // Most attempts carry no body: nothing to wait for, no timer to arm.
    if hyper::body::Body::is_end_stream(&body) {
        return Ok(Bytes::new());
    }
    match tokio::time::timeout(within, Limited::new(body, MAX_BODY).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(Refusal::BadRequest("could not read the body".into())),
        Err(_) => Err(Refusal::BadRequest("body not received in time".into())),
    }
}

/// Runs a parsed attempt on a task of its own. Once an attempt may touch the ledger it runs to
/// its end — its win counted, its order sent to the broker at once — even if the buyer hangs up
/// and hyper drops the request meanwhile.
async fn run_to_the_end(app: Arc<App>, parsed: ParsedAttempt, started: Instant) -> AttemptOutcome {
    let task = tokio::spawn(async move {
        app.metrics.inflight_add(1);
        let outcome = attempt::run(&app, parsed).await;
        app.metrics.inflight_add(-1);
        app.metrics
            .observe_attempt(outcome.label(), started.elapsed());
        outcome
    });
    task.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "attempt task failed");
        Refusal::Internal.into()
    })
}

/// `POST /v1/activities/{id}/orders`, phase by phase (see [`attempt`]): what memory can refuse
/// is refused before the body is read, the token checked or a task spawned.
async fn buy(
    app: Arc<App>,
    id: &str,
    parts: &Parts,
    body: Incoming,
    started: Instant,
) -> AttemptOutcome {
    let refused = |r: Refusal| {
        let outcome = AttemptOutcome::from(r);
        app.metrics
            .observe_attempt(outcome.label(), started.elapsed());
        outcome
    };
    let (activity_id, activity) = match attempt::route(&app, id).await {
        Ok(routed) => routed,
        Err(r) => return refused(r),
    };
    let bytes = match read_body(
        body,
        parts.headers.get(CONTENT_LENGTH),
        app.config.timing.body_read,
    )
    .await
    {
        Ok(bytes) => bytes,
        Err(r) => return refused(r),
    };
    if activity.is_sold_out() && attempt::sold_out_before_auth(&activity, &parts.headers, &bytes) {
        app.metrics.sold_out_short_circuit();
        return refused(Refusal::SoldOut);
    }
    match attempt::parse(&app, activity_id, &parts.headers, &bytes) {
        Ok(parsed) => run_to_the_end(app, parsed, started).await,
        Err(r) => refused(r),
    }
}

/// The listener a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// `SECKILL_LISTEN`: the API (and, without an admin listener, `/metrics` and `/readyz`).
    Public,
    /// `SECKILL_ADMIN_LISTEN`: `/metrics`, `/readyz` and `/healthz` only.
    Admin,
}

/// The hyper service: one request in, one response out.
pub async fn handle(
    app: Arc<App>,
    listener: Listener,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if listener == Listener::Admin {
        return Ok(admin_route(&app, &request));
    }
    // Nothing to look at unless origins are configured (`crate::cors`).
    let origin = app.config.cors.allowed(request.headers());
    let preflight = request.method() == Method::OPTIONS;
    let mut response = route(app, request).await;
    if let Some(origin) = origin {
        Cors::decorate(response.headers_mut(), origin, preflight);
    }
    Ok(response)
}

/// The methods a path of the public listener answers, as its `Allow` header (RFC 9110: a `405`
/// lists them), or `None` for a path it does not have. `/readyz` and `/metrics` are not its
/// own when an admin listener serves them (`admin_apart`).
fn allowed_methods(segments: &[&str], demo_ui: bool, admin_apart: bool) -> Option<&'static str> {
    Some(match segments {
        ["v1", "activities", _] | ["v1", "activities", _, "order"] | ["healthz"] => "GET, OPTIONS",
        ["readyz"] | ["metrics"] if !admin_apart => "GET, OPTIONS",
        ["v1", "activities", _, "orders"] | ["v1", "payments", "notify"] => "POST, OPTIONS",
        ["v1", "orders", _] => "GET, DELETE, OPTIONS",
        ["demo"] | ["demo", _] if demo_ui => "GET",
        _ => return None,
    })
}

/// `405`, with the methods the path does answer.
fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = refusal(&Refusal::MethodNotAllowed);
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

async fn route(app: Arc<App>, request: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    // One leading slash only: `//metrics` is not `/metrics`.
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let method = &parts.method;

    // The hot path first.
    if let ["v1", "activities", id, "orders"] = segments[..] {
        if method == Method::POST {
            let outcome = buy(app, id, &parts, body, started).await;
            return attempt_response(&outcome);
        }
    }

    // A CORS preflight: answered from memory, its headers added by `handle` for our origins.
    let admin_apart = app.config.admin_listen.is_some();
    let allow = allowed_methods(&segments, app.config.demo_ui, admin_apart);
    if method == Method::OPTIONS && allow.is_some_and(|methods| methods.ends_with("OPTIONS")) {
        app.metrics.observe_request("preflight", 204);
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NO_CONTENT;
        return response;
    }

    if let (["v1", "activities", _, "orders"], Some(allow)) = (&segments[..], allow) {
        return method_not_allowed(allow);
    }

    if let (["v1", "payments", "notify"], Some(allow)) = (&segments[..], allow) {
        if method != Method::POST {
            return method_not_allowed(allow);
        }
        let response = match read_body(
            body,
            parts.headers.get(CONTENT_LENGTH),
            app.config.timing.body_read,
        )
        .await
        {
            Ok(bytes) => ok_or_refusal(payment::notify(&app, &parts.headers, &bytes).await),
            Err(r) => refusal(&r),
        };
        app.metrics
            .observe_request("payment", response.status().as_u16());
        return response;
    }

    if app.config.demo_ui && method == Method::GET {
        let page = match segments[..] {
            ["demo"] => crate::demo::serve(None),
            ["demo", file] => crate::demo::serve(Some(file)),
            _ => None,
        };
        if let Some(response) = page {
            app.metrics
                .observe_request("demo", response.status().as_u16());
            return response;
        }
    }

    let (route, response) = match (method, &segments[..]) {
        (&Method::DELETE, ["v1", "orders", id]) => (
            "order",
            match payment::cancel(&app, &parts.headers, id).await {
                Ok((true, body)) => json(StatusCode::ACCEPTED, &body),
                Ok((false, body)) => json(StatusCode::OK, &body),
                Err(r) => refusal(&r),
            },
        ),
        (&Method::GET, ["v1", "activities", id]) => {
            ("activity", ok_or_refusal(query::activity(&app, id).await))
        }
        (&Method::GET, ["v1", "activities", id, "order"]) => (
            "buyer_order",
            ok_or_refusal(query::buyer_order(&app, &parts.headers, id).await),
        ),
        (&Method::GET, ["v1", "orders", id]) => (
            "order",
            ok_or_refusal(query::order(&app, &parts.headers, id).await),
        ),
        (&Method::GET, ["healthz"]) => ("healthz", healthz()),
        (&Method::GET, ["readyz"]) if !admin_apart => ("readyz", ready(&app)),
        (&Method::GET, ["metrics"]) if !admin_apart => ("metrics", metrics(&app)),
        _ => match allow {
            // A GET of a file the demo page does not have.
            Some(_) if method == Method::GET => ("other", refusal(&Refusal::RouteNotFound)),
            Some(allow) => ("other", method_not_allowed(allow)),
            None => ("other", refusal(&Refusal::RouteNotFound)),
        },
    };
    app.metrics
        .observe_request(route, response.status().as_u16());
    response
}

/// The admin listener (`SECKILL_ADMIN_LISTEN`): what operators and probes ask, apart from the
/// crowd's door. No CORS, no API.
fn admin_route(app: &App, request: &Request<Incoming>) -> Response<Body> {
    let (route, response) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => ("healthz", healthz()),
        (&Method::GET, "/readyz") => ("readyz", ready(app)),
        (&Method::GET, "/metrics") => ("metrics", metrics(app)),
        (_, "/healthz" | "/readyz" | "/metrics") => ("other", method_not_allowed("GET")),
        _ => ("other", refusal(&Refusal::RouteNotFound)),
    };
    app.metrics
        .observe_request(route, response.status().as_u16());
    response
}

fn healthz() -> Response<Body> {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// Prometheus text.
fn metrics(app: &App) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(
        app.metrics
            .render(app.ledger.script_reloads() + app.deducter.script_reloads()),
    )));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// Readiness: the ledger answered the last background PING ([`crate::ready`]) and the last
/// send to the broker went through. No I/O: a flood of probes costs Redis nothing.
fn ready(app: &App) -> Response<Body> {
    let redis = app.readiness.redis();
    let rocketmq = if app.publisher.broker_healthy() {
        "ok"
    } else {
        "failing"
    };
    if redis == "ok" && rocketmq == "ok" {
        return json(
            StatusCode::OK,
            &serde_json::json!({"status": "ready", "redis": redis, "rocketmq": rocketmq}),
        );
    }
    // The contract's error shape, plus which dependency is down.
    let mut response = json(
        StatusCode::SERVICE_UNAVAILABLE,
        &serde_json::json!({
            "error": "unavailable",
            "detail": format!("redis: {redis}, rocketmq: {rocketmq}"),
            "redis": redis,
            "rocketmq": rocketmq,
        }),
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(1u64));
    response
}
