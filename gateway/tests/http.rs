//! The HTTP contract (`docs/ARCHITECTURE.md`, "HTTP"), outcome by outcome, against a port-0
//! gateway and real Redis.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::{Method, StatusCode};
use seckill_auth::TokenKey;
use seckill_ledger::{ActivityKeys, UserId};
use seckill_service::now_unix;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn won_then_repeat_then_the_owner_sees_the_order() {
    let gw = TestGateway::start(&[]).await;
    let ledger = ledger_at(&redis_url()).await;
    let id = open(&ledger, "won", 10, 1).await;

    let won = gw.attempt(&id, "alice").await;
    assert_eq!(won.status, StatusCode::ACCEPTED, "{}", won.text);
    assert_eq!(won.json["status"], "queued");
    let order_id = won.json["order_id"]
        .as_str()
        .expect("order id is a JSON string")
        .to_owned();

    let again = gw.attempt(&id, "alice").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.json["order_id"], order_id.as_str());
    assert_eq!(again.json["status"], "queued");

    let path = format!("/v1/orders/{order_id}");
    let mine = gw.get(&path, Some(&token_for("alice"))).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.text);
    assert_eq!(mine.json["order_id"], order_id.as_str());
    assert_eq!(mine.json["activity_id"], id.as_str());
    assert_eq!(mine.json["user_id"], "alice");
    assert_eq!(mine.json["quantity"], 1);
    assert_eq!(mine.json["amount_cents"], 4999);
    assert_eq!(mine.json["status"], "queued");
    assert!(mine.json["created_at"].as_str().unwrap().ends_with('Z'));

    let theirs = gw.get(&path, Some(&token_for("mallory"))).await;
    assert_eq!(
        (theirs.status, theirs.error()),
        (StatusCode::NOT_FOUND, "order_not_found")
    );
    let anonymous = gw.get(&path, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let bogus = gw
        .get("/v1/orders/123456789", Some(&token_for("alice")))
        .await;
    assert_eq!(bogus.status, StatusCode::NOT_FOUND);
    let garbage = gw
        .get("/v1/orders/not-a-number", Some(&token_for("alice")))
        .await;
    assert_eq!(garbage.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quantity_and_channel_body_and_limit_exceeded() {
    let gw = TestGateway::start(&[]).await;
    let ledger = ledger_at(&redis_url()).await;
    let id = open(&ledger, "qty", 10, 2).await;
    let path = format!("/v1/activities/{id}/orders");
    let bob = token_for("bob");

    let too_many = gw
        .send(Method::POST, &path, Some(&bob), br#"{"quantity":3}"#)
        .await;
    assert_eq!(
        (too_many.status, too_many.error()),
        (StatusCode::CONFLICT, "limit_exceeded")
    );
    let won = gw
        .send(
            Method::POST,
            &path,
            Some(&bob),
            // `2.0` is JSON Schema's integer 2 (schemathesis sent one; it was a 400).
            br#"{"quantity":2.0,"channel":"app"}"#,
        )
        .await;
    assert_eq!(won.status, StatusCode::ACCEPTED, "{}", won.text);
    let order_id = won.json["order_id"].as_str().unwrap();
    let order = gw.get(&format!("/v1/orders/{order_id}"), Some(&bob)).await;
    assert_eq!(
        (
            order.json["quantity"].as_u64(),
            order.json["amount_cents"].as_u64()
        ),
        (Some(2), Some(9998))
    );

    let carol = token_for("carol");
    assert_eq!(
        gw.send(Method::POST, &path, Some(&carol), br#"{"quantity":1}"#)
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let over = gw
        .send(Method::POST, &path, Some(&carol), br#"{"quantity":2}"#)
        .await;
    assert_eq!(
        (over.status, over.error()),
        (StatusCode::CONFLICT, "limit_exceeded")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sold_out_and_after_sell_out_no_attempt_reaches_redis() {
    // A Redis of our own: its command counters see only this test.
    let redis = PrivateRedis::start().await;
    let gw = TestGateway::start_with(&redis.url, &[]).await;
    let ledger = ledger_at(&redis.url).await;
    let id = open(&ledger, "soldout", 3, 1).await;

    for user in ["u1", "u2", "u3"] {
        assert_eq!(gw.attempt(&id, user).await.status, StatusCode::ACCEPTED);
    }
    let evalsha_before = redis.calls("evalsha").await;
    let hscan_before = redis.calls("hscan").await;
    let calls_before = gw.app.metrics.redis_calls();
    let short_before = gw.app.metrics.sold_out_short_circuits();

    for i in 0..200 {
        let reply = gw.attempt(&id, &format!("late{i}")).await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::CONFLICT, "sold_out"),
            "{}",
            reply.text
        );
        assert!(reply.json["detail"].is_string());
    }
    assert_eq!(
        redis.calls("evalsha").await,
        evalsha_before,
        "an attempt reached Redis after sell-out"
    );
    // The buyers were read once, in one page, for all 200 (so a holder's retry is not refused).
    assert_eq!(redis.calls("hscan").await - hscan_before, 1);
    assert_eq!(gw.app.metrics.redis_calls() - calls_before, 1);
    assert_eq!(gw.app.metrics.sold_out_short_circuits() - short_before, 200);

    let view = gw.get(&format!("/v1/activities/{id}"), None).await;
    assert_eq!(
        (
            view.json["state"].as_str(),
            view.json["stock_left"].as_i64()
        ),
        (Some("sold_out"), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_always_learns_their_order_even_after_sell_out_or_cancellation() {
    let gw = TestGateway::start(&[]).await;
    let ledger = ledger_at(&redis_url()).await;
    let id = open(&ledger, "mine", 2, 2).await;
    let keys = ActivityKeys::new(&id);
    let mine = format!("/v1/activities/{id}/order");
    let buy = format!("/v1/activities/{id}/orders");

    // Before any win: 404 order_not_found; no token: 401; an impossible id: 404.
    let none = gw.get(&mine, Some(&token_for("ann"))).await;
    assert_eq!(
        (none.status, none.error()),
        (StatusCode::NOT_FOUND, "order_not_found"),
        "{}",
        none.text
    );
    assert_eq!(gw.get(&mine, None).await.status, StatusCode::UNAUTHORIZED);
    let bad = gw
        .get("/v1/activities/no%20such/order", Some(&token_for("ann")))
        .await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND);

    // ann takes the whole allowance (2 units), which sells the activity out.
    let won = gw
        .send(
            Method::POST,
            &buy,
            Some(&token_for("ann")),
            br#"{"quantity":2}"#,
        )
        .await;
    assert_eq!(won.status, StatusCode::ACCEPTED, "{}", won.text);
    let order_id = won.json["order_id"].as_str().unwrap().to_owned();
    let found = gw.get(&mine, Some(&token_for("ann"))).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
    assert_eq!(
        (
            found.json["order_id"].as_str(),
            found.json["status"].as_str()
        ),
        (Some(order_id.as_str()), Some("queued"))
    );
    assert_eq!(found.json["quantity"], 2);

    // Sold out, flag up: ann's retry still gets her order (as the ledger would answer it);
    // a buyer with nothing gets sold_out; one unit more than a holder may have: limit_exceeded.
    let retry = gw.attempt(&id, "ann").await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
    assert_eq!(retry.json["order_id"], order_id.as_str());
    let late = gw.attempt(&id, "bea").await;
    assert_eq!(
        (late.status, late.error()),
        (StatusCode::CONFLICT, "sold_out")
    );
    let other = gw.get(&mine, Some(&token_for("bea"))).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);

    // Cancelled (stock back): the buyer still learns the order and that it was cancelled.
    let order = seckill_ledger::OrderId::parse(&order_id).unwrap();
    ledger
        .release(&keys, order, seckill_ledger::OrderStatus::Cancelled)
        .await
        .unwrap();
    let cancelled = gw.get(&mine, Some(&token_for("ann"))).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    assert_eq!(
        (
            cancelled.json["order_id"].as_str(),
            cancelled.json["status"].as_str()
        ),
        (Some(order_id.as_str()), Some("cancelled"))
    );
    // Wrong method on the route: 405.
    let post = gw
        .send(Method::POST, &mine, Some(&token_for("ann")), b"")
        .await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sold_out_flag_travels_to_other_instances_and_clears_on_restock() {
    let ledger = ledger_at(&redis_url()).await;
    let id = open(&ledger, "shared", 1, 1).await;
    let a = TestGateway::start(&[]).await;
    let b = TestGateway::start(&[]).await;
    // B learns the activity while stock is left.
    let view = b.get(&format!("/v1/activities/{id}"), None).await;
    assert_eq!(view.json["state"], "open");
    assert!(!b.app.catalog.cached(&id).unwrap().is_sold_out());

    assert_eq!(a.attempt(&id, "winner").await.status, StatusCode::ACCEPTED);
    let b_app = b.app.clone();
    let id2 = id.clone();
    assert!(
        eventually(Duration::from_secs(5), || b_app
            .catalog
            .cached(&id2)
            .is_some_and(|x| x.is_sold_out()))
        .await,
        "B never heard of the sell-out"
    );
    // B reads the activity's buyers once (one call), then answers from its flag.
    let calls = b.app.metrics.redis_calls();
    assert_eq!(b.attempt(&id, "loser").await.error(), "sold_out");
    assert_eq!(b.app.metrics.redis_calls(), calls + 1);
    assert_eq!(b.attempt(&id, "loser2").await.error(), "sold_out");
    assert_eq!(
        b.app.metrics.redis_calls(),
        calls + 1,
        "B answered from its flag"
    );
    // The winner's retry on B still finds their order.
    assert_eq!(b.attempt(&id, "winner").await.status, StatusCode::OK);

    // Stock comes back: every instance clears its flag and sells again.
    ledger.restock(&ActivityKeys::new(&id), 2).await.unwrap();
    let b_app = b.app.clone();
    let id2 = id.clone();
    assert!(
        eventually(Duration::from_secs(5), || b_app
            .catalog
            .cached(&id2)
            .is_some_and(|x| !x.is_sold_out()))
        .await,
        "B never heard of the restock"
    );
    assert_eq!(b.attempt(&id, "second").await.status, StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_started_ended_closed_and_not_found() {
    let gw = TestGateway::start(&[]).await;
    let ledger = ledger_at(&redis_url()).await;
    let upcoming = create(&ledger, "upcoming", 5, 1, 3_600_000, 7_200_000).await;
    let ended = create(&ledger, "ended", 5, 1, -7_200_000, -1).await;

    let r = gw.attempt(&upcoming, "u").await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::FORBIDDEN, "not_started")
    );
    assert_eq!(
        gw.get(&format!("/v1/activities/{upcoming}"), None)
            .await
            .json["state"],
        "upcoming"
    );
    let r = gw.attempt(&ended, "u").await;
    assert_eq!((r.status, r.error()), (StatusCode::GONE, "ended"));
    assert_eq!(
        gw.get(&format!("/v1/activities/{ended}"), None).await.json["state"],
        "ended"
    );

    let closing = open(&ledger, "closing", 5, 1).await;
    assert_eq!(
        gw.attempt(&closing, "u1").await.status,
        StatusCode::ACCEPTED
    );
    ledger.close(&ActivityKeys::new(&closing)).await.unwrap();
    // The script refuses at once, whatever the cache says; the cache catches up via pub/sub.
    let r = gw.attempt(&closing, "u2").await;
    assert_eq!((r.status, r.error()), (StatusCode::GONE, "ended"));

    let missing = fresh_id("missing");
    for path in [
        format!("/v1/activities/{missing}/orders"),
        "/v1/activities/bad%7Bid/orders".to_owned(),
    ] {
        let r = gw
            .send(Method::POST, &path, Some(&token_for("u")), b"")
            .await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::NOT_FOUND, "activity_not_found"),
            "{path}"
        );
    }
    let r = gw.get(&format!("/v1/activities/{missing}"), None).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::NOT_FOUND, "activity_not_found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_bad_fields_and_oversized_bodies_are_400() {
    let gw = TestGateway::start(&[]).await;
    let ledger = ledger_at(&redis_url()).await;
    let id = open(&ledger, "bad", 5, 1).await;
    let path = format!("/v1/activities/{id}/orders");
    let token = token_for("u");
    let big = format!(r#"{{"quantity":1,"channel":"{}"}}"#, "x".repeat(5000));
    for body in [
        &b"{not json"[..],
        br#"{"quantity":"one"}"#,
        br#"{"quantity":0}"#,
        br#"{"quantity":1000}"#,
        br#"{"qty":1}"#,
        br#"{"channel":"a b"}"#,
        // Found by schemathesis (scripts/api-check.sh): `null` was taken as "absent".
        br#"{"channel":null}"#,
        br#"{"quantity":null}"#,
        br#"{"quantity":1.5}"#,
        br#"{"quantity":-1}"#,
        br#"[1,2]"#,
        big.as_bytes(),
    ] {
        let r = gw.send(Method::POST, &path, Some(&token), body).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
        assert_eq!(r.error(), "bad_request");
        assert!(!r.json["detail"].as_str().unwrap().is_empty());
    }
    // Nothing was sold by all that.
    assert_eq!(ledger.stock_left(&ActivityKeys::new(&id)).await.unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_forged_expired_and_malformed_tokens_are_401() {
    let gw = TestGateway::start(&[]).await;
    let ledger = ledger_at(&redis_url()).await;
    let id = open(&ledger, "auth", 5, 1).await;
    let path = format!("/v1/activities/{id}/orders");
    let user = UserId::parse("eve").unwrap();
    let forged = TokenKey::new(b"another-secret-0123456789").mint(&user, now_unix() + 3600);
    let expired = TokenKey::new(SECRET.as_bytes()).mint(&user, now_unix() - 1);
    for token in [
        None,
        Some(forged.as_str()),
        Some(expired.as_str()),
        Some("eve.1.2"),
        Some(""),
    ] {
        let r = gw.send(Method::POST, &path, token, b"").await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{token:?}"
        );
    }
    assert_eq!(ledger.stock_left(&ActivityKeys::new(&id)).await.unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_rate_limit_answers_429_with_retry_after() {
    let gw = TestGateway::start(&[("SECKILL_RATE_PER_USER", "1")]).await;
    let ledger = ledger_at(&redis_url()).await;
    let id = open(&ledger, "rate", 5, 1).await;
    assert_eq!(gw.attempt(&id, "hammer").await.status, StatusCode::ACCEPTED);
    let r = gw.attempt(&id, "hammer").await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    // Someone else is not held back by that user.
    let calm = gw.attempt(&id, "calm").await;
    assert_eq!(calm.status, StatusCode::ACCEPTED);
    // A cancel is bucketed like an attempt (it costs a broker message): at once after calm's
    // attempt, refused before any lookup or send.
    let order = calm.json["order_id"].as_str().unwrap();
    let cancel = gw
        .send(
            Method::DELETE,
            &format!("/v1/orders/{order}"),
            Some(&token_for("calm")),
            b"",
        )
        .await;
    assert_eq!(
        (cancel.status, cancel.error()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_rate_limit_and_overload_shedding() {
    let ledger = ledger_at(&redis_url()).await;
    let id = open(&ledger, "global", 50, 1).await;
    let gw = TestGateway::start(&[("SECKILL_RATE_GLOBAL", "2")]).await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(gw.attempt(&id, &format!("g{i}")).await.status);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert!(statuses.contains(&StatusCode::ACCEPTED), "{statuses:?}");

    // One in-flight permit and many concurrent attempts: some must be shed with 503.
    let gw = Arc::new(TestGateway::start(&[("SECKILL_MAX_INFLIGHT", "1")]).await);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (gw, id) = (gw.clone(), id.clone());
            tokio::spawn(async move {
                let r = gw.attempt(&id, &format!("o{i}")).await;
                (
                    r.status,
                    r.error().to_owned(),
                    r.headers.contains_key("retry-after"),
                )
            })
        })
        .collect();
    let mut shed = 0;
    for task in tasks {
        let (status, error, retry_after) = task.await.unwrap();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(error, "overloaded");
            assert!(retry_after);
            shed += 1;
        } else {
            assert!(
                matches!(status, StatusCode::ACCEPTED | StatusCode::CONFLICT),
                "{status}"
            );
        }
    }
    // With a single permit, 64 simultaneous attempts cannot all be admitted.
    assert!(shed > 0, "nothing was shed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_over_http_buys_exactly_the_stock() {
    let gw = Arc::new(TestGateway::start(&[]).await);
    let ledger = ledger_at(&redis_url()).await;
    let id = open(&ledger, "crowd", 50, 1).await;
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let (gw, id) = (gw.clone(), id.clone());
            tokio::spawn(async move {
                let r = gw.attempt(&id, &format!("buyer{i}")).await;
                (r.status, r.json["order_id"].as_str().map(str::to_owned))
            })
        })
        .collect();
    let mut orders = HashSet::new();
    let mut sold_out = 0;
    for task in tasks {
        match task.await.unwrap() {
            (StatusCode::ACCEPTED, Some(order_id)) => assert!(orders.insert(order_id)),
            (StatusCode::CONFLICT, None) => sold_out += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((orders.len(), sold_out), (50, 450));
    let audit = ledger
        .audit(&ActivityKeys::new(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((audit.stock, audit.reserved, audit.orders), (0, 50, 50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_attempts_share_script_calls_and_each_gets_its_own_outcome() {
    let gw = Arc::new(TestGateway::start(&[]).await);
    let ledger = ledger_at(&redis_url()).await;
    let id = open(&ledger, "batched", 100, 1).await;
    // 300 buyers, each trying twice at the same time: 600 attempts on 100 units.
    let tasks: Vec<_> = (0..600)
        .map(|i| {
            let (gw, id) = (gw.clone(), id.clone());
            tokio::spawn(async move {
                let user = format!("twice{}", i % 300);
                let r = gw.attempt(&id, &user).await;
                (
                    user,
                    r.status,
                    r.json["order_id"].as_str().map(str::to_owned),
                )
            })
        })
        .collect();
    let mut won: HashMap<String, String> = HashMap::new();
    let mut repeats = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (user, StatusCode::ACCEPTED, Some(order)) => {
                assert!(won.insert(user, order).is_none(), "a buyer won twice");
            }
            (user, StatusCode::OK, Some(order)) => repeats.push((user, order)),
            (_, StatusCode::CONFLICT, None) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won.len(), 100, "exactly the stock is sold");
    // A repeat names the buyer's own winning order.
    for (user, order) in repeats {
        assert_eq!(won.get(&user), Some(&order));
    }
    // This gateway's own counters: every attempt reached Redis (nothing was sold out locally
    // before the first answers) in fewer script calls than attempts.
    let (calls, attempts) = gw.app.metrics.deduct_batches();
    assert!(attempts >= 100, "{attempts}");
    assert!(
        calls < attempts,
        "{attempts} attempts reached Redis in {calls} calls: none were batched"
    );
    let audit = ledger
        .audit(&ActivityKeys::new(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (audit.stock, audit.reserved, audit.orders, audit.buyers),
        (0, 100, 100, 100)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_view_health_ready_metrics_and_unknown_routes() {
    let gw = TestGateway::start(&[]).await;
    let ledger = ledger_at(&redis_url()).await;
    let id = open(&ledger, "view", 7, 2).await;
    let view = gw.get(&format!("/v1/activities/{id}"), None).await;
    assert_eq!(view.status, StatusCode::OK);
    for field in [
        "id",
        "name",
        "price_cents",
        "stock_total",
        "stock_left",
        "per_user_limit",
        "starts_at",
        "ends_at",
        "state",
    ] {
        assert!(
            !view.json[field].is_null(),
            "missing {field}: {}",
            view.text
        );
    }
    assert_eq!(
        (
            view.json["stock_left"].as_i64(),
            view.json["state"].as_str()
        ),
        (Some(7), Some("open"))
    );

    assert_eq!(gw.get("/healthz", None).await.json["status"], "ok");
    let ready = gw.get("/readyz", None).await;
    assert_eq!(
        (ready.status, ready.json["redis"].as_str()),
        (StatusCode::OK, Some("ok"))
    );

    gw.attempt(&id, "m1").await;
    let metrics = gw.get("/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    for needle in [
        "seckill_attempts_total{outcome=\"won\"} 1",
        "seckill_attempt_duration_seconds_bucket{outcome=\"won\",le=\"+Inf\"} 1",
        "seckill_inflight_requests",
        "seckill_sold_out_short_circuits_total",
    ] {
        assert!(metrics.text.contains(needle), "missing {needle}");
    }

    let r = gw.get("/nope", None).await;
    assert_eq!((r.status, r.error()), (StatusCode::NOT_FOUND, "not_found"));
    // Only one leading slash is a route's: `//metrics` is not `/metrics`.
    for path in ["//metrics", "//healthz", "///v1/activities/x"] {
        let r = gw.get(path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
    // A 405 lists the methods the path answers (RFC 9110; schemathesis checks it).
    let allow = |r: &Reply| {
        r.headers
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let r = gw.send(Method::DELETE, "/healthz", None, b"").await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    assert_eq!(allow(&r).as_deref(), Some("GET, OPTIONS"));
    let r = gw.get(&format!("/v1/activities/{id}/orders"), None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(allow(&r).as_deref(), Some("POST, OPTIONS"));
    let trace = Method::from_bytes(b"TRACE").unwrap();
    for (path, methods) in [
        ("/v1/orders/1", "GET, DELETE, OPTIONS"),
        ("/v1/payments/notify", "POST, OPTIONS"),
        ("/v1/activities/x/order", "GET, OPTIONS"),
    ] {
        let r = gw.send(trace.clone(), path, None, b"").await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(allow(&r).as_deref(), Some(methods), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_listener_takes_metrics_and_readyz_off_the_public_door() {
    let gw = TestGateway::start(&[("SECKILL_ADMIN_LISTEN", "127.0.0.1:0")]).await;
    let admin = gw.admin.as_ref().expect("the admin listener is bound");
    assert_ne!(admin.addr, gw.addr);
    let ledger = ledger_at(&redis_url()).await;
    let id = open(&ledger, "admin", 5, 1).await;
    assert_eq!(gw.attempt(&id, "a1").await.status, StatusCode::ACCEPTED);

    // The public door: the API and /healthz, no /metrics or /readyz (not even in a preflight).
    for path in ["/metrics", "/readyz"] {
        let r = gw.get(path, None).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
        let r = gw.send(Method::OPTIONS, path, None, b"").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "OPTIONS {path}");
    }
    assert_eq!(gw.get("/healthz", None).await.status, StatusCode::OK);

    // The admin door: the three probes, nothing of the API.
    let metrics = admin.get("/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics
            .text
            .contains("seckill_attempts_total{outcome=\"won\"} 1"),
        "{}",
        metrics.text
    );
    assert_eq!(admin.get("/readyz", None).await.json["redis"], "ok");
    assert_eq!(admin.get("/healthz", None).await.json["status"], "ok");
    let r = admin.send(Method::POST, "/metrics", None, b"").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers.get("allow").unwrap(), "GET");
    for path in [
        format!("/v1/activities/{id}"),
        "//metrics".to_owned(),
        "/demo/".to_owned(),
    ] {
        let r = admin.get(&path, None).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    let r = admin.attempt(&id, "a2").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        ledger.stock_left(&ActivityKeys::new(&id)).await.unwrap(),
        4,
        "nothing was sold through the admin door"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_a_dead_redis_and_attempts_get_503() {
    let redis = PrivateRedis::start().await;
    let gw = TestGateway::start_with(&redis.url, &[]).await;
    let ledger = ledger_at(&redis.url).await;
    let id = open(&ledger, "dead", 5, 1).await;
    assert_eq!(gw.attempt(&id, "before").await.status, StatusCode::ACCEPTED);
    drop(redis);
    // The background probe notices within a probe or two: refused, or (the server still
    // closing) no answer within its 1 s bound.
    let mut ready = gw.get("/readyz", None).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while ready.status == StatusCode::OK && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ready = gw.get("/readyz", None).await;
    }
    assert!(
        matches!(
            ready.json["redis"].as_str(),
            Some("unreachable" | "timeout")
        ),
        "{}",
        ready.text
    );
    assert_eq!(
        (ready.status, ready.error()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    let r = gw.attempt(&id, "after").await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_and_stops_listening() {
    let gw = TestGateway::start(&[]).await;
    let addr = gw.addr;
    assert_eq!(gw.get("/healthz", None).await.status, StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(15), gw.shutdown())
        .await
        .expect("shutdown finished");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_runs_to_its_end_when_the_buyer_hangs_up() {
    use tokio::io::AsyncWriteExt;

    // No broker answers, and the answer waits for it: a win waits `SECKILL_PUBLISH_WAIT` for a
    // confirmation that never comes, which gives the buyer time to hang up mid-attempt.
    let gw = TestGateway::start(&[
        ("SECKILL_ROCKETMQ_NAMESRV", "127.0.0.1:1"),
        ("SECKILL_CONFIRM", "broker"),
    ])
    .await;
    let ledger = ledger_at(&redis_url()).await;
    let id = open(&ledger, "hangup", 10, 1).await;
    let keys = ActivityKeys::new(&id);

    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /v1/activities/{id}/orders HTTP/1.1\r\nHost: seckill\r\n\
                 Authorization: Bearer {}\r\nContent-Length: 0\r\n\r\n",
                token_for("quitter")
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // The deduct is done (the order is in the ledger); now the buyer hangs up.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ledger.audit(&keys).await.unwrap().unwrap().orders == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the attempt never reached the ledger"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(stream);

    // The attempt still ends as it would have: counted (503, the broker did not confirm),
    // nothing left in flight, the order in the outbox for the relay.
    let finished = eventually(Duration::from_secs(10), || {
        let text = gw.app.metrics.render(0);
        text.contains("seckill_attempts_total{outcome=\"unavailable\"} 1\n")
            && text.contains("seckill_inflight_requests 0\n")
    })
    .await;
    assert!(finished, "{}", gw.app.metrics.render(0));
    let audit = ledger.audit(&keys).await.unwrap().unwrap();
    assert_eq!((audit.orders, audit.outbox), (1, 1));
}

/// `SECKILL_CONFIRM`: with no broker reachable, a winner is answered 202 at the ledger's commit
/// (the default), or 503 after `SECKILL_PUBLISH_WAIT` when the answer waits for the broker;
/// either way the order is won and the buyer's retry finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_winner_is_answered_at_the_ledger_commit_or_at_the_broker_as_configured() {
    let ledger = ledger_at(&redis_url()).await;
    let id = open(&ledger, "confirm", 10, 1).await;
    let no_broker = ("SECKILL_ROCKETMQ_NAMESRV", "127.0.0.1:1");

    let at_ledger = TestGateway::start(&[no_broker]).await;
    let won = at_ledger.attempt(&id, "at-ledger").await;
    assert_eq!(won.status, StatusCode::ACCEPTED, "{}", won.text);
    let order = won.json["order_id"].as_str().unwrap().to_owned();
    let view = at_ledger
        .get(
            &format!("/v1/orders/{order}"),
            Some(&token_for("at-ledger")),
        )
        .await;
    assert_eq!(view.json["status"], "queued", "{}", view.text);

    let at_broker = TestGateway::start(&[
        no_broker,
        ("SECKILL_CONFIRM", "broker"),
        ("SECKILL_PUBLISH_WAIT", "1s"),
    ])
    .await;
    let unconfirmed = at_broker.attempt(&id, "at-broker").await;
    assert_eq!(
        (unconfirmed.status, unconfirmed.error()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{}",
        unconfirmed.text
    );
    let retry = at_broker.attempt(&id, "at-broker").await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);

    let audit = ledger
        .audit(&ActivityKeys::new(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((audit.orders, audit.reserved), (2, 2), "both orders won");
}
