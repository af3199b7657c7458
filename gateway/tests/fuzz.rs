//! The request path fuzzed (proptest, a bounded number of cases, in CI): odd methods, paths,
//! tokens and bodies sent over a raw connection to a real gateway. Whatever arrives, the
//! gateway stays up, never answers 5xx while Redis and the broker are healthy, and every refusal
//! is in the contract's shape, `{"error": "<code>", "detail": "<text>"}`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Requests per run: enough to reach every route with odd input, a few seconds of CI.
const CASES: u32 = 2_000;

/// One path segment: the characters a URI path may carry, percent-escapes, and odd shapes.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_-]{1,70}",
        "[A-Za-z0-9._~!$&'()*+,;=:@%-]{0,40}",
        Just(String::new()),
        Just("..".to_owned()),
        Just("%00".to_owned()),
        Just("%2F".to_owned()),
        "[0-9]{1,25}",
    ]
}

fn path(activity: String) -> impl Strategy<Value = String> {
    let known = Just(activity);
    prop_oneof![
        (segment()).prop_map(|s| format!("/v1/activities/{s}/orders")),
        (known.clone()).prop_map(|s| format!("/v1/activities/{s}/orders")),
        (known.clone()).prop_map(|s| format!("/v1/activities/{s}")),
        (known).prop_map(|s| format!("/v1/activities/{s}/order")),
        (segment()).prop_map(|s| format!("/v1/activities/{s}")),
        (segment()).prop_map(|s| format!("/v1/activities/{s}/order")),
        (segment()).prop_map(|s| format!("/v1/orders/{s}")),
        Just("/v1/payments/notify".to_owned()),
        Just("/healthz".to_owned()),
        Just("/readyz".to_owned()),
        Just("//metrics".to_owned()),
        Just("/v1/activities".to_owned()),
        prop::collection::vec(segment(), 0..6).prop_map(|s| format!("/{}", s.join("/"))),
        (segment(), segment()).prop_map(|(a, b)| format!("/v1/{a}/{b}?x={a}")),
    ]
}

fn method() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => Just("POST"),
        3 => Just("GET"),
        1 => Just("DELETE"),
        1 => prop::sample::select(vec!["PUT", "PATCH", "OPTIONS"]),
    ]
}

/// An `Authorization` header value, or none.
fn authorization() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        "[A-Za-z0-9_-]{1,20}".prop_map(|user| Some(format!("Bearer {}", token_for(&user)))),
        "[ -~]{0,120}".prop_map(|text| Some(format!("Bearer {text}"))),
        "[A-Za-z0-9_-]{1,70}\\.[0-9]{0,22}\\.[0-9a-f]{0,70}"
            .prop_map(|t| Some(format!("Bearer {t}"))),
        "[ -~]{0,60}".prop_map(Some),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..200),
        (any::<i64>(), "[ -~]{0,40}").prop_map(|(q, c)| {
            format!(r#"{{"quantity":{q},"channel":{}}}"#, serde_json::json!(c)).into_bytes()
        }),
        (0u32..5, "[a-z_-]{0,8}")
            .prop_map(|(q, c)| format!(r#"{{"quantity":{q},"channel":"{c}"}}"#).into_bytes()),
        Just(br#"{"order_id":"1","payment_id":"p","amount_cents":1}"#.to_vec()),
        Just(br#"{"quantity":1,"extra":true}"#.to_vec()),
    ]
}

/// One request on a fresh connection; (status, body).
async fn send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\n");
    if let Some(value) = authorization {
        request.push_str(&format!("authorization: {value}\r\n"));
    }
    request.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await.map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
        .await
        .map_err(|_| "no answer within 10 s".to_owned())?
        .map_err(|e| e.to_string())?;
    let end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no header end")?;
    let head = String::from_utf8_lossy(&reply[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, reply[end + 4..].to_vec()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_requests_get_answers_in_the_contract_shape_and_never_a_5xx() {
    let gw = TestGateway::start(&[]).await;
    let ledger = ledger_at(&redis_url()).await;
    let activity = open(&ledger, "fuzz", 1_000_000, 100).await;
    let addr = gw.addr;
    let handle = tokio::runtime::Handle::current();
    let strategy = (
        method(),
        path(activity.to_string()),
        authorization(),
        body(),
    );
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&strategy, |(method, path, authorization, body)| {
            let (status, reply) = handle
                .block_on(send(addr, method, &path, authorization.as_deref(), &body))
                .map_err(TestCaseError::fail)?;
            *seen.lock().unwrap().entry(status).or_default() += 1;
            let shown = String::from_utf8_lossy(&reply).into_owned();
            prop_assert!(status < 500, "{method} {path}: {status} {shown}");
            if path == "/metrics" || status < 400 {
                return Ok(());
            }
            let json: serde_json::Value = serde_json::from_slice(&reply).map_err(|e| {
                TestCaseError::fail(format!(
                    "{method} {path}: {status} body is not JSON ({e}): {shown}"
                ))
            })?;
            prop_assert!(
                json["error"].is_string() && json["detail"].is_string(),
                "{method} {path}: {status} {shown}"
            );
            Ok(())
        })
    });
    outcome.unwrap();
    // What the run reached (cargo test -- --nocapture shows it).
    eprintln!("answers by status: {:?}", seen.lock().unwrap());
    // Still serving.
    assert_eq!(gw.get("/healthz", None).await.status, http::StatusCode::OK);
}
