//! The front door's bounds (`docs/ARCHITECTURE.md`, "The front door"): what a hostile client, or
//! a crowd of them, can hold of a gateway — connections, time, memory, Redis calls — and that
//! the cheapest refusals come before authentication.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n";

/// Sends one request on a raw connection and reads until the answer's status line is in.
async fn status_line(stream: &mut TcpStream, request: &[u8]) -> Option<String> {
    stream.write_all(request).await.ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !got.windows(4).any(|w| w == b"\r\n\r\n") && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    text.lines().next().map(str::to_owned)
}

/// Polls the gateway's connection metrics until `check` holds (true) or `limit` passes (false).
async fn until_connections(
    gw: &TestGateway,
    limit: Duration,
    check: impl Fn(&seckill_gateway::metrics::Connections) -> bool,
) -> bool {
    eventually(limit, || check(&gw.app.metrics.connections())).await
}

/// True once the peer closed (EOF or reset) within `within`.
async fn closed_by_peer(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_new_connections_are_closed_until_one_frees() {
    let gw = TestGateway::start(&[("SECKILL_MAX_CONNECTIONS", "2")]).await;
    let mut first = TcpStream::connect(gw.addr).await.unwrap();
    let mut second = TcpStream::connect(gw.addr).await.unwrap();
    for stream in [&mut first, &mut second] {
        assert_eq!(
            status_line(stream, HEALTHZ).await.as_deref(),
            Some("HTTP/1.1 200 OK")
        );
    }
    // The third is accepted by the kernel, then closed without an answer.
    let mut third = TcpStream::connect(gw.addr).await.unwrap();
    let _ = third.write_all(HEALTHZ).await;
    assert!(closed_by_peer(&mut third, Duration::from_secs(10)).await);
    assert_eq!(
        gw.app.metrics.connections().refused,
        1,
        "one refused at accept"
    );

    // One leaves: a new connection is served again.
    drop(first);
    assert!(until_connections(&gw, Duration::from_secs(10), |c| c.open == 1).await);
    let mut fourth = TcpStream::connect(gw.addr).await.unwrap();
    assert_eq!(
        status_line(&mut fourth, HEALTHZ).await.as_deref(),
        Some("HTTP/1.1 200 OK")
    );
    drop((second, fourth));
    assert!(until_connections(&gw, Duration::from_secs(10), |c| c.open == 0).await);
    let metrics = gw.get("/metrics", None).await;
    assert!(metrics.text.contains("seckill_connections_refused_total 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_after_the_write_timeout() {
    let gw = TestGateway::start(&[("SECKILL_WRITE_TIMEOUT", "1s")]).await;
    // A small receive window, and requests pipelined without ever reading an answer: the
    // gateway's writes stall once the kernel's buffers are full.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(gw.addr).await.unwrap();
    let (_read_half, mut write_half) = stream.into_split();
    let pipelined: Vec<u8> = HEALTHZ.repeat(1000);
    let writer = tokio::spawn(async move {
        // Bounded: at most 200 batches (~7 MB); stops as soon as the gateway hangs up.
        for _ in 0..200 {
            if write_half.write_all(&pipelined).await.is_err() {
                return;
            }
        }
    });
    assert!(
        until_connections(&gw, Duration::from_secs(60), |c| c.write_timeouts == 1).await,
        "the stalled connection was not closed: {:?}",
        gw.app.metrics.connections()
    );
    assert!(until_connections(&gw, Duration::from_secs(10), |c| c.open == 0).await);
    writer.abort();
    // The gateway still serves everyone else.
    assert_eq!(gw.get("/healthz", None).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_idle_keep_alive_are_dropped_after_the_header_timeout() {
    let gw = TestGateway::start(&[("SECKILL_HEADER_TIMEOUT", "1s")]).await;
    // A head trickled a byte at a time, never finished (bounded: 100 bytes, 200 ms apart).
    let mut slow = TcpStream::connect(gw.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        for byte in b"x-slow: ".iter().cycle().take(100) {
            if slow.write_all(&[*byte]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    });
    assert!(
        until_connections(&gw, Duration::from_secs(20), |c| c.header_timeouts >= 1).await,
        "the slow head was not cut: {:?}",
        gw.app.metrics.connections()
    );
    assert!(
        trickle.await.unwrap(),
        "the trickling client was not disconnected"
    );

    // A keep-alive connection that answered once and then sits idle is closed the same way.
    let mut idle = TcpStream::connect(gw.addr).await.unwrap();
    assert_eq!(
        status_line(&mut idle, HEALTHZ).await.as_deref(),
        Some("HTTP/1.1 200 OK")
    );
    assert!(closed_by_peer(&mut idle, Duration::from_secs(20)).await);
    assert!(until_connections(&gw, Duration::from_secs(10), |c| c.open == 0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_activity_ids_cost_no_redis_call_per_request() {
    // A Redis of our own: its command counters see only this test.
    let redis = PrivateRedis::start().await;
    let gw = TestGateway::start_with(&redis.url, &[]).await;
    let ledger = ledger_at(&redis.url).await;
    let known = open(&ledger, "known", 5, 1).await;
    // Loaded on its `changed` event; from then on reloaded only by the periodic refresh.
    assert!(cached_soon(&gw, &known).await);
    let snapshots_before = redis.calls("hgetall").await;
    let reads_before = redis.calls("smembers").await;
    let calls_before = gw.app.metrics.redis_calls();
    let token = token_for("flooder");

    let started = Instant::now();
    let requests = 2000;
    for i in 0..requests / 2 {
        let made_up = format!("no-such-{i}");
        let view = gw.get(&format!("/v1/activities/{made_up}"), None).await;
        assert_eq!(
            (view.status, view.error()),
            (StatusCode::NOT_FOUND, "activity_not_found")
        );
        let attempt = gw
            .send(
                Method::POST,
                &format!("/v1/activities/{made_up}/orders"),
                Some(&token),
                b"",
            )
            .await;
        assert_eq!(attempt.error(), "activity_not_found");
    }
    let elapsed = started.elapsed();

    // No activity was loaded for them (the one cached activity is reloaded by the refresh,
    // every 2 s); the id set was re-read at most once per MISS_REREAD.
    let periodic = elapsed.as_millis() as u64 / 2000 + 1;
    let snapshots = redis.calls("hgetall").await - snapshots_before;
    assert!(
        snapshots <= periodic,
        "an unknown id was looked up in Redis: {snapshots} snapshots in {elapsed:?}"
    );
    let rereads = redis.calls("smembers").await - reads_before;
    let allowed =
        elapsed.as_millis() as u64 / seckill_gateway::catalog::MISS_REREAD.as_millis() as u64 + 1;
    assert!(
        rereads <= allowed + periodic,
        "{rereads} re-reads in {elapsed:?}"
    );
    let counted = gw.app.metrics.redis_calls() - calls_before;
    assert!(counted <= allowed, "{counted} counted Redis calls");

    // A real activity is found.
    assert_eq!(
        gw.get(&format!("/v1/activities/{known}"), None)
            .await
            .status,
        StatusCode::OK
    );
    // A real activity created after the gateway started is loaded on its `changed` event,
    // before anyone asks for it: the crowd at a sale's start finds it cached.
    let late = open(&ledger, "late", 5, 1).await;
    assert!(cached_soon(&gw, &late).await);
    assert_eq!(
        gw.get(&format!("/v1/activities/{late}"), None).await.status,
        StatusCode::OK
    );
    // Cached is not served: the relay looks only at outboxes this instance may have written.
    assert!(!gw.app.catalog.served().contains(&late));
    assert_eq!(
        gw.attempt(&late, "buyer").await.status,
        StatusCode::ACCEPTED
    );
    assert!(gw.app.catalog.served().contains(&late));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_refuses_before_authentication_and_a_holder_still_finds_their_order() {
    let redis = PrivateRedis::start().await;
    let gw = TestGateway::start_with(&redis.url, &[]).await;
    let ledger = ledger_at(&redis.url).await;
    let buy = |id: &seckill_ledger::ActivityId| format!("/v1/activities/{id}/orders");

    // Not started, ended: answered from the cache whatever the token (none here).
    let later = create(&ledger, "later", 5, 1, 3_600_000, 7_200_000).await;
    let _ = gw.get(&format!("/v1/activities/{later}"), None).await; // cached now
    let r = gw.send(Method::POST, &buy(&later), None, b"").await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::FORBIDDEN, "not_started")
    );

    // Sold out: once the holders are read, a buyer who holds nothing gets sold_out even with a
    // forged token (the answer says nothing about anyone); a forged token naming a holder is
    // checked (401); the holder's own retry gets their order.
    let id = open(&ledger, "gone", 1, 1).await;
    let won = gw.attempt(&id, "holder").await;
    assert_eq!(won.status, StatusCode::ACCEPTED);
    assert_eq!(gw.attempt(&id, "first-late").await.error(), "sold_out"); // reads the holders
    let forged = |user: &str| format!("{user}.{}.00", seckill_service::now_unix() + 60);
    let hscan_before = redis.calls("hscan").await;
    let r = gw
        .send(Method::POST, &buy(&id), Some(&forged("nobody")), b"")
        .await;
    assert_eq!((r.status, r.error()), (StatusCode::CONFLICT, "sold_out"));
    let r = gw
        .send(Method::POST, &buy(&id), Some(&forged("holder")), b"")
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let retry = gw.attempt(&id, "holder").await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
    assert_eq!(retry.json["order_id"], won.json["order_id"]);
    // A body that is not an attempt is still a 400, not a sold_out.
    let r = gw
        .send(Method::POST, &buy(&id), Some(&token_for("x")), b"{nope")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(redis.calls("hscan").await, hscan_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_probes_cost_redis_nothing_and_payments_are_rate_limited() {
    let redis = PrivateRedis::start().await;
    let gw = TestGateway::start_with(&redis.url, &[("SECKILL_RATE_PER_USER", "3")]).await;
    let pings_before = redis.calls("ping").await;
    let started = Instant::now();
    for _ in 0..300 {
        assert_eq!(gw.get("/readyz", None).await.status, StatusCode::OK);
    }
    let pings = redis.calls("ping").await - pings_before;
    // The background probe, once a second; not one per request.
    assert!(
        pings <= started.elapsed().as_secs() + 2,
        "{pings} PINGs for 300 probes"
    );

    // Signed notifications for one order: past the per-order rate, 429 with Retry-After.
    let body = br#"{"order_id":"12345","payment_id":"p-1","amount_cents":100}"#;
    let signature = seckill_auth::SignatureKey::new(PAYMENT_SECRET.as_bytes()).sign(body);
    let mut limited = None;
    for _ in 0..10 {
        let r = gw
            .send_with(
                Method::POST,
                "/v1/payments/notify",
                &[("x-signature", &signature)],
                body,
            )
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
        assert_eq!(r.error(), "order_not_found");
    }
    let limited = limited.expect("ten notifications in a row were never limited");
    assert_eq!(limited.error(), "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
}

/// True once the gateway's catalog holds `id` (within 10 s): loaded on its `changed` event.
async fn cached_soon(gw: &TestGateway, id: &seckill_ledger::ActivityId) -> bool {
    eventually(Duration::from_secs(10), || {
        gw.app.catalog.cached(id).is_some()
    })
    .await
}
