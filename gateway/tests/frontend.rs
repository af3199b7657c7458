//! What browser frontends rely on (README, "For frontend developers"): CORS answered from
//! memory for the configured origins only, the gateway's clock for countdowns, and the demo
//! storefront served only when asked.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use http::{Method, StatusCode};

const SHOP: &str = "http://shop.test:5173";

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.headers.get(name).and_then(|v| v.to_str().ok())
}

async fn preflight(gw: &TestGateway, path: &str, origin: &str) -> Reply {
    gw.send_with(
        Method::OPTIONS,
        path,
        &[
            ("origin", origin),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ],
        b"",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_are_answered_from_memory_and_only_for_configured_origins() {
    // A Redis of our own: its command counters see only this test.
    let redis = PrivateRedis::start().await;
    let gw = TestGateway::start_with(
        &redis.url,
        &[(
            "SECKILL_CORS_ORIGINS",
            &format!("https://other.test, {SHOP}"),
        )],
    )
    .await;
    let ledger = ledger_at(&redis.url).await;
    let id = open(&ledger, "cors", 5, 1).await;
    let snapshots_before = redis.calls("hgetall").await;
    let stock_reads_before = redis.calls("get").await;
    let calls_before = gw.app.metrics.redis_calls();

    let paths = [
        format!("/v1/activities/{id}/orders"),
        format!("/v1/activities/{id}"),
        format!("/v1/activities/{id}/order"),
        "/v1/activities/no-such-sale/orders".to_owned(),
        "/v1/orders/12345".to_owned(),
    ];
    for round in 0..40 {
        let path = &paths[round % paths.len()];
        let ours = preflight(&gw, path, SHOP).await;
        assert_eq!(ours.status, StatusCode::NO_CONTENT, "{path}: {}", ours.text);
        assert_eq!(header(&ours, "access-control-allow-origin"), Some(SHOP));
        assert_eq!(
            header(&ours, "access-control-allow-methods"),
            Some("GET, POST, DELETE")
        );
        assert_eq!(
            header(&ours, "access-control-allow-headers"),
            Some("Authorization, Content-Type")
        );
        assert_eq!(header(&ours, "access-control-max-age"), Some("600"));
        assert_eq!(header(&ours, "vary"), Some("Origin"));

        let theirs = preflight(&gw, path, "https://evil.test").await;
        assert_eq!(theirs.status, StatusCode::NO_CONTENT);
        assert!(
            !theirs
                .headers
                .keys()
                .any(|name| name.as_str().starts_with("access-control-")),
            "another origin got CORS headers: {:?}",
            theirs.headers
        );
    }
    // Not a route: no preflight either.
    let nowhere = preflight(&gw, "/v2/anything", SHOP).await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);

    assert_eq!(
        gw.app.metrics.redis_calls(),
        calls_before,
        "a preflight made a Redis call"
    );
    assert_eq!(redis.calls("hgetall").await, snapshots_before);
    assert_eq!(redis.calls("get").await, stock_reads_before);

    // The answers themselves, to our origin: readable, Retry-After included.
    for buyer in ["b1", "b2", "b3", "b4", "b5", "b6"] {
        let token = format!("Bearer {}", token_for(buyer));
        let reply = gw
            .send_with(
                Method::POST,
                &format!("/v1/activities/{id}/orders"),
                &[("origin", SHOP), ("authorization", &token)],
                b"",
            )
            .await;
        assert!(
            matches!(reply.status, StatusCode::ACCEPTED | StatusCode::CONFLICT),
            "{}",
            reply.text
        );
        assert_eq!(header(&reply, "access-control-allow-origin"), Some(SHOP));
        assert_eq!(
            header(&reply, "access-control-expose-headers"),
            Some("Retry-After")
        );
    }
    let other = gw
        .send_with(
            Method::GET,
            &format!("/v1/activities/{id}"),
            &[("origin", "https://evil.test")],
            b"",
        )
        .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(header(&other, "access-control-allow-origin"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_origins_configured_no_cors_header_is_sent() {
    let gw = TestGateway::start(&[]).await;
    let ledger = ledger_at(&redis_url()).await;
    let id = open(&ledger, "nocors", 5, 1).await;
    let path = format!("/v1/activities/{id}/orders");
    let answer = preflight(&gw, &path, SHOP).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let view = gw
        .send_with(
            Method::GET,
            &format!("/v1/activities/{id}"),
            &[("origin", SHOP)],
            b"",
        )
        .await;
    for reply in [&answer, &view] {
        assert!(
            !reply
                .headers
                .keys()
                .any(|name| name.as_str().starts_with("access-control-")),
            "{:?}",
            reply.headers
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_carries_the_gateways_clock_in_the_format_of_its_times() {
    let gw = TestGateway::start(&[]).await;
    let ledger = ledger_at(&redis_url()).await;
    let id = create(&ledger, "clock", 5, 1, 60_000, 3_600_000).await;
    let view = gw.get(&format!("/v1/activities/{id}"), None).await;
    assert_eq!(view.status, StatusCode::OK);
    let parse = |field: &str| {
        let text = view.json[field].as_str().unwrap_or_default();
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{field}={text:?}: {e}"))
    };
    let (server_time, starts_at) = (parse("server_time"), parse("starts_at"));
    assert_eq!(view.json["state"], "upcoming");
    // The sale opens a minute after the activity was made: the gateway's clock is before it,
    // and the two differ by that minute (give or take what this test took).
    let until_start = starts_at - server_time;
    assert!(
        until_start > time::Duration::ZERO && until_start <= time::Duration::seconds(60),
        "{until_start}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storefront_is_served_only_when_asked() {
    let off = TestGateway::start(&[]).await;
    let hidden = off.get("/demo/", None).await;
    assert_eq!(
        (hidden.status, hidden.error()),
        (StatusCode::NOT_FOUND, "not_found")
    );

    let on = TestGateway::start(&[("SECKILL_DEMO_UI", "1")]).await;
    let bare = on.get("/demo", None).await;
    assert_eq!(bare.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header(&bare, "location"), Some("/demo/"));
    let page = on.get("/demo/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        header(&page, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.text.contains(r#"<script src="app.js">"#),
        "{}",
        page.text
    );
    for (file, kind) in [("app.js", "text/javascript"), ("style.css", "text/css")] {
        let reply = on.get(&format!("/demo/{file}"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{file}");
        assert!(header(&reply, "content-type").unwrap().starts_with(kind));
        assert!(!reply.text.is_empty());
    }
    let missing = on.get("/demo/secrets.txt", None).await;
    assert_eq!(
        (missing.status, missing.error()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    // The page is read-only: another method is 405 with what it takes (not 404).
    let post = on.send(Method::POST, "/demo/", None, b"").await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&post, "allow"), Some("GET"));
    // Without the page, its path is nobody's.
    let post = off.send(Method::POST, "/demo/", None, b"").await;
    assert_eq!(post.status, StatusCode::NOT_FOUND);
    // The API is untouched by it.
    assert_eq!(on.get("/healthz", None).await.status, StatusCode::OK);
}
