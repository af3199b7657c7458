//! Helpers shared by the gateway's integration tests: a real gateway on port 0 against a real
//! Redis, a small HTTP client, fresh activity ids, and (for counting tests) a private Redis.

#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

pub mod stack;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use seckill_core::ledger::LedgerConfig;
use seckill_core::time::{now_ms, now_unix};
use seckill_core::{token, ActivityId, Ledger, NewActivity, UserId};
use seckill_gateway::config::Config;
use seckill_gateway::{App, Gateway};
use tokio::sync::oneshot;

pub const SECRET: &str = "integration-test-secret-0123456789";
pub const PAYMENT_SECRET: &str = "integration-payment-secret-0123456789";

pub fn redis_url() -> String {
    std::env::var("SECKILL_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub async fn ledger_at(url: &str) -> Ledger {
    Ledger::connect(&LedgerConfig::new(url))
        .await
        .expect("Redis must be running (scripts/services.sh starts it)")
}

/// A fresh activity id no other test (or earlier run) uses.
pub fn fresh_id(name: &str) -> ActivityId {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    ActivityId::parse(&format!(
        "t-{name}-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000,
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
    .unwrap()
}

/// Creates an activity that opens `starts_in_ms` from now and lasts until `ends_in_ms`.
pub async fn create(
    ledger: &Ledger,
    name: &str,
    stock: i64,
    limit: u32,
    starts_in_ms: i64,
    ends_in_ms: i64,
) -> ActivityId {
    let id = fresh_id(name);
    let now = now_ms();
    ledger
        .create_activity(&NewActivity {
            id: id.clone(),
            name: format!("{name} item"),
            price_cents: 4999,
            stock_total: stock,
            per_user_limit: limit,
            starts_at_ms: now + starts_in_ms,
            ends_at_ms: now + ends_in_ms,
        })
        .await
        .unwrap();
    id
}

/// An open activity (started a second ago, ends in an hour).
pub async fn open(ledger: &Ledger, name: &str, stock: i64, limit: u32) -> ActivityId {
    create(ledger, name, stock, limit, -1_000, 3_600_000).await
}

pub fn token_for(user: &str) -> String {
    token::mint(
        SECRET.as_bytes(),
        &UserId::parse(user).unwrap(),
        now_unix() + 3600,
    )
}

/// A gateway serving on 127.0.0.1:0 until dropped.
pub struct TestGateway {
    pub addr: std::net::SocketAddr,
    pub app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: serde_json::Value,
    pub text: String,
}

impl Reply {
    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }
}

impl TestGateway {
    /// Starts a gateway on `redis` with extra `SECKILL_*` settings.
    pub async fn start_with(redis: &str, settings: &[(&str, &str)]) -> Self {
        let mut env: HashMap<String, String> = HashMap::from([
            ("SECKILL_AUTH_SECRET".into(), SECRET.into()),
            ("SECKILL_PAYMENT_SECRET".into(), PAYMENT_SECRET.into()),
            ("SECKILL_REDIS_URL".into(), redis.into()),
            ("SECKILL_RATE_PER_USER".into(), "1000".into()),
            ("SECKILL_REDIS_CONNECTIONS".into(), "2".into()),
        ]);
        for (k, v) in settings {
            env.insert(k.to_string(), v.to_string());
        }
        let config = Config::from_sources(None, |name| env.get(name).cloned()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = Gateway::bind(config, listener).await.unwrap();
        let addr = gateway.local_addr();
        let app = gateway.app();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(gateway.run_until(async {
            let _ = stopped.await;
        }));
        TestGateway {
            addr,
            app,
            stop: Some(stop),
            task: Some(task),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn start(settings: &[(&str, &str)]) -> Self {
        Self::start_with(&redis_url(), settings).await
    }

    /// Sends a request; `token` becomes a bearer header.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> Reply {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("authorization", b.as_str()))
            .collect();
        self.send_with(method, path, &headers, body).await
    }

    /// Sends a request with the given headers.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Reply {
            status,
            headers,
            json: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
            text,
        }
    }

    pub async fn attempt(&self, activity: &ActivityId, user: &str) -> Reply {
        self.send(
            Method::POST,
            &format!("/v1/activities/{activity}/orders"),
            Some(&token_for(user)),
            b"",
        )
        .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::GET, path, token, b"").await
    }

    /// Stops accepting, drains, and waits for the gateway to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A Redis server of this test's own, so counters read from it are ours alone.
pub struct PrivateRedis {
    pub url: String,
    pub port: u16,
    child: Child,
}

impl PrivateRedis {
    pub async fn start() -> Self {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let mut child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/services.sh installs it)");
        let url = format!("redis://127.0.0.1:{port}");
        let client = redis::Client::open(url.as_str()).unwrap();
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                if redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
                {
                    return PrivateRedis { url, port, child };
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("private redis-server on port {port} did not start");
    }

    /// Calls of one command so far, from INFO commandstats.
    pub async fn calls(&self, command: &str) -> u64 {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .unwrap();
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `quantity` units bought straight in the ledger as `user` (no gateway, nothing published).
pub async fn buy(
    ledger: &Ledger,
    keys: &seckill_core::ActivityKeys,
    ids: &seckill_core::id::IdGenerator,
    user: &str,
    quantity: u32,
) -> seckill_core::ledger::DeductOutcome {
    let user = UserId::parse(user).unwrap();
    let attempt = seckill_core::ledger::Attempt {
        user: &user,
        quantity,
        channel: "app",
    };
    ledger.deduct(keys, attempt, ids).await.unwrap()
}

/// Buys with `users` distinct users at once; returns the order ids of the 202s.
pub async fn crowd(
    gw: &Arc<TestGateway>,
    activity: &ActivityId,
    prefix: &str,
    users: usize,
) -> Vec<String> {
    let tasks: Vec<_> = (0..users)
        .map(|i| {
            let (gw, activity, user) = (gw.clone(), activity.clone(), format!("{prefix}{i}"));
            tokio::spawn(async move { gw.attempt(&activity, &user).await })
        })
        .collect();
    let mut won = Vec::new();
    for task in tasks {
        let reply = task.await.unwrap();
        if reply.status == StatusCode::ACCEPTED {
            won.push(reply.json["order_id"].as_str().unwrap().to_owned());
        }
    }
    won
}

/// Polls `check` every 50 ms for up to `limit`; true once it holds. Waiting, not timing.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}
